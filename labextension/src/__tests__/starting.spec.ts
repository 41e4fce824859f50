import { IKernelStartsReply, startText } from '../progress/startModel';

const reply: IKernelStartsReply = {
  kernels: [
    { id: 'k-old', kernelspec: 'yardlab_pyspark', created: 100, app: null, phase: 'submitting', message: 'submitting to YARN' },
    {
      id: 'k-new',
      kernelspec: 'yardlab_pyspark',
      created: 200,
      app: 'application_1_0002',
      phase: 'queued',
      message: 'waiting in queue default (ACCEPTED): needs 2.0 GB, 0.5 GB free'
    }
  ]
};

describe('startText', () => {
  it('shows the start of the notebook kernel once its id is known', () => {
    expect(startText(reply, 'k-old', 0)).toBe('Kernel: submitting to YARN');
  });

  it('shows the newest start since the notebook began waiting, with the queue reason', () => {
    expect(startText(reply, null, 150)).toBe(
      'Kernel: waiting in queue default (ACCEPTED): needs 2.0 GB, 0.5 GB free'
    );
  });

  it('says nothing about starts from before, or of other kernels', () => {
    expect(startText(reply, null, 300)).toBeNull();
    expect(startText(reply, 'k-other', 0)).toBeNull();
  });
});
