/** One kernel start in flight, as the edge's `GET /api/v1/kernels/starting` describes it. */
export interface IKernelStart {
  id: string;
  kernelspec: string;
  /** When the edge took the start request (seconds since the epoch). */
  created: number;
  app: string | null;
  /** submitting | queued | driver | kernel | ended */
  phase: string;
  /** What it waits for, in words (the queue and the reason when queued). */
  message: string;
}

export interface IKernelStartsReply {
  kernels: IKernelStart[];
}

/** Kernel display states during which the notebook waits for its kernel. */
export const WAITING = new Set(['initializing', 'starting', 'unknown', 'connecting']);

/**
 * The text the notebook's toolbar shows for its kernel start: the start of this kernel when its id
 * is known, else the newest start the edge took since the notebook began waiting (a start's id is
 * only known once it has run: the Lab server's request returns then).
 */
export function startText(
  reply: IKernelStartsReply,
  kernelId: string | null,
  since: number
): string | null {
  const starts = reply.kernels.filter(k =>
    kernelId ? k.id === kernelId : k.created >= since
  );
  if (starts.length === 0) {
    return null;
  }
  const start = starts.reduce((a, b) => (b.created > a.created ? b : a));
  return `Kernel: ${start.message}`;
}

