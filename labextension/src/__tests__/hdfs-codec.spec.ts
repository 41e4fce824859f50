import {
  decode,
  encode,
  rootListing,
  serializeNotebook,
  toModel
} from '../hdfs/codec';
import type { IHdfsEntry } from '../tokens';

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (data: Uint8Array) => new TextDecoder().decode(data);

/** An HDFS entry as the edge lists it. */
function entry(
  path: string,
  type: 'file' | 'directory',
  more: Partial<IHdfsEntry> = {}
): IHdfsEntry {
  const name = path.split('/').pop()!;
  const fixed = { owner: 'alice', group: 'alice', permission: '755' };
  return { name, path, type, ...fixed, modified: 0, size: 0, writable: true, ...more };
}

const NOTEBOOK = {
  cells: [
    { cell_type: 'code', metadata: { trusted: true, tags: ['x'] }, source: '1' },
    { cell_type: 'markdown', metadata: { trusted: true }, source: '# t' }
  ],
  metadata: {},
  nbformat: 4,
  nbformat_minor: 5
};

describe('the HDFS codec', () => {
  it('maps entries to contents models, notebooks by their extension', () => {
    const listing = entry('/user/alice', 'directory', {
      content: [entry('/user/alice/a.IPYNB', 'file', { modified: 1, size: 2 })]
    });
    const dir = toModel(listing, true);
    expect(dir).toMatchObject({ path: 'user/alice', type: 'directory', last_modified: '', format: 'json' });
    expect((dir.content as any[])[0]).toMatchObject({
      path: 'user/alice/a.IPYNB',
      type: 'notebook',
      size: 2,
      last_modified: new Date(1).toISOString()
    });
    const top = rootListing([{ name: 'Shared', path: '/shared', writable: true }], false);
    expect(top).toMatchObject({ path: '', type: 'directory', writable: false, content: null });
  });

  it('reads notebooks with every code cell untrusted, whatever the file says', () => {
    const model = decode('n.ipynb', bytes(JSON.stringify(NOTEBOOK)), {}, null);
    expect(model).toMatchObject({ type: 'notebook', format: 'json' });
    const cells = (model.content as typeof NOTEBOOK).cells;
    expect(cells[0].metadata).toEqual({ trusted: false, tags: ['x'] });
    expect(cells[1].metadata).toEqual({});
    expect(() => decode('bad.ipynb', bytes('{'), {}, null)).toThrow('bad.ipynb is not a readable notebook');
  });

  it('reads text as text, other bytes and binary kinds as base64', () => {
    const latin1 = new Uint8Array([0x63, 0x61, 0x66, 0xe9]);
    expect(decode('a.txt', bytes('café'), {}, null)).toMatchObject({ format: 'text', content: 'café' });
    expect(decode('a.bin', latin1, {}, null)).toMatchObject({ format: 'base64', content: 'Y2Fm6Q==' });
    const png = { format: 'base64' as const, mimetype: 'image/png' };
    expect(decode('a.png', bytes('abc'), {}, png)).toMatchObject({
      format: 'base64',
      mimetype: 'image/png',
      content: 'YWJj'
    });
    expect(() => decode('a.bin', latin1, { format: 'text' }, null)).toThrow('not UTF-8');
  });

  it('writes notebooks as Jupyter does, without trust flags, and base64 as its bytes', () => {
    const written = text(encode('n.ipynb', { type: 'notebook', content: NOTEBOOK }));
    expect(written.endsWith('\n')).toBe(true);
    expect(written).not.toContain('trusted');
    expect(written).toBe(text(serializeNotebook(JSON.parse(written))));
    expect(Array.from(encode('a.bin', { format: 'base64', content: 'Y2Fm6Q==' }))).toEqual([0x63, 0x61, 0x66, 0xe9]);
    expect(text(encode('a.txt', { format: 'text', content: 'café' }))).toBe('café');
    expect(() => encode('a.txt', { format: 'text' })).toThrow('No content to save for a.txt');
  });
});
