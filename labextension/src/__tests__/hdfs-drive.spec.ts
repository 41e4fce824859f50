import { Contents, ServerConnection } from '@jupyterlab/services';

import { HdfsDrive } from '../hdfs/drive';
import type { IHdfsEntry, IStorageInfo } from '../tokens';

const BASE_URL = 'http://localhost:8888/user/alice/';
const API = '/user/alice/yardlab/api';

/**
 * One request the drive sent, as the fake server saw it.
 */
interface ISeenRequest {
  /** HTTP method. */
  method: string;
  /** URL path, still percent-encoded. */
  pathname: string;
  /** Query parameters, without Lab's numeric cache-buster. */
  query: { [key: string]: string };
  /** Request headers. */
  headers: Headers;
  /** Raw request body. */
  body: Uint8Array;
}

/**
 * What the fake server answers: a JSON value, raw bytes, or a status with JSON.
 */
type Reply =
  | { json: unknown; status?: number }
  | { bytes: Uint8Array<ArrayBuffer>; status?: number }
  | { status: number };

/**
 * A fake Jupyter server for the drive: `reply` picks the answer to each request,
 * and every request is recorded in `seen`.
 */
function fakeServer(
  reply: (request: ISeenRequest) => Reply,
  options: Omit<HdfsDrive.IOptions, 'serverSettings'> = {}
): {
  drive: HdfsDrive;
  seen: ISeenRequest[];
  changes: Contents.IChangedArgs[];
} {
  const seen: ISeenRequest[] = [];
  const fetch = jest.fn(async (input: RequestInfo) => {
    // ServerConnection always passes a Request built from the settings.
    const request = input as Request;
    const url = new URL(request.url);
    const query: { [key: string]: string } = {};
    url.searchParams.forEach((value, key) => {
      // Lab appends `?<timestamp>` to every request made with cache: 'no-store'.
      if (!/^\d+$/.test(key)) {
        query[key] = value;
      }
    });
    const seenRequest: ISeenRequest = {
      method: request.method,
      pathname: url.pathname,
      query,
      headers: request.headers,
      body: new Uint8Array(await request.arrayBuffer())
    };
    seen.push(seenRequest);
    const answer = reply(seenRequest);
    if ('json' in answer) {
      return new Response(JSON.stringify(answer.json), {
        status: answer.status ?? 200,
        headers: { 'Content-Type': 'application/json' }
      });
    }
    if ('bytes' in answer) {
      return new Response(answer.bytes, {
        status: answer.status ?? 200,
        headers: { 'Content-Type': 'application/octet-stream' }
      });
    }
    return new Response(null, { status: answer.status });
  });
  const serverSettings = ServerConnection.makeSettings({
    baseUrl: BASE_URL,
    fetch
  });
  const drive = new HdfsDrive({
    serverSettings,
    describeFile: path =>
      path.endsWith('.png') ? { mimetype: 'image/png', format: 'base64' } : null,
    ...options
  });
  const changes: Contents.IChangedArgs[] = [];
  drive.fileChanged.connect((_, change) => changes.push(change));
  return { drive, seen, changes };
}

const STORAGE: IStorageInfo = {
  user: 'alice',
  roots: [
    { name: 'Personal', path: '/user/alice', writable: true },
    { name: 'Shared', path: '/shared', writable: true },
    { name: 'Public', path: '/public', writable: false }
  ],
  usage: {
    personal: { bytes: 123, files: 4, directories: 1 },
    shared: { bytes: 0, files: 0, directories: 1 },
    public: { bytes: 2048, files: 2, directories: 1 }
  }
};

function fileEntry(path: string, extra: Partial<IHdfsEntry> = {}): IHdfsEntry {
  return {
    type: 'file',
    path,
    name: path.split('/').pop()!,
    owner: 'alice',
    group: 'alice',
    permission: '644',
    modified: 1700000000000,
    size: 10,
    writable: true,
    ...extra
  };
}

function directoryEntry(path: string, names: string[]): IHdfsEntry {
  return {
    type: 'directory',
    path,
    name: path.split('/').pop()!,
    owner: 'alice',
    group: 'alice',
    permission: '700',
    modified: 1700000000000,
    size: 0,
    writable: true,
    content: names.map(name => fileEntry(`${path}/${name}`))
  };
}

const utf8 = (text: string) => new TextEncoder().encode(text);
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const base64 = (bytes: Uint8Array) =>
  btoa(Array.from(bytes, byte => String.fromCharCode(byte)).join(''));

const NOTEBOOK = {
  cells: [
    {
      cell_type: 'code',
      source: 'print("héllo")',
      metadata: {},
      outputs: [],
      execution_count: null
    }
  ],
  metadata: { kernelspec: { name: 'python3', display_name: 'Python 3' } },
  nbformat: 4,
  nbformat_minor: 5
};

describe('HdfsDrive', () => {
  it('lists the storage roots as a virtual top-level directory', async () => {
    const { drive, seen } = fakeServer(() => ({ json: STORAGE }));

    const [root, usage] = await Promise.all([
      drive.get(''),
      drive.fetchStorage()
    ]);
    const again = await drive.get('/');

    Contents.validateContentsModel(root);
    expect(root.type).toBe('directory');
    expect(root.path).toBe('');
    expect(root.writable).toBe(false);
    expect(
      root.content.map((entry: Contents.IModel) => [
        entry.name,
        entry.path,
        entry.type,
        entry.writable
      ])
    ).toEqual([
      ['Personal', 'user/alice', 'directory', true],
      ['Shared', 'shared', 'directory', true],
      ['Public', 'public', 'directory', false]
    ]);
    root.content.forEach(Contents.validateContentsModel);
    expect(usage).toEqual(STORAGE);
    expect(again.content).toHaveLength(3);
    // One request: concurrent callers share it, and listings reuse the roots.
    expect(seen.map(r => r.pathname)).toEqual([`${API}/storage`]);
  });

  it('lists a directory with notebooks typed as notebooks', async () => {
    const { drive, seen } = fakeServer(() => ({
      json: directoryEntry('/user/alice', ['a.ipynb', 'b.csv'])
    }));

    const listing = await drive.get('user/alice');

    expect(seen[0].pathname).toBe(`${API}/files/user/alice`);
    Contents.validateContentsModel(listing);
    expect(listing.path).toBe('user/alice');
    expect(listing.last_modified).toBe('2023-11-14T22:13:20.000Z');
    expect(
      listing.content.map((entry: Contents.IModel) => [
        entry.path,
        entry.type,
        entry.size
      ])
    ).toEqual([
      ['user/alice/a.ipynb', 'notebook', 10],
      ['user/alice/b.csv', 'file', 10]
    ]);
  });

  it('gets a notebook as parsed JSON with type notebook', async () => {
    const bytes = utf8(JSON.stringify(NOTEBOOK));
    const { drive, seen } = fakeServer(request =>
      request.query.download === '1'
        ? { bytes }
        : {
            json: fileEntry('/user/alice/my notes.ipynb', {
              writable: false,
              size: bytes.length
            })
          }
    );

    const model = await drive.get('user/alice/my notes.ipynb', {
      type: 'notebook',
      format: 'json',
      content: true
    });

    expect(seen.map(r => [r.method, r.pathname, r.query])).toEqual([
      ['GET', `${API}/files/user/alice/my%20notes.ipynb`, {}],
      ['GET', `${API}/files/user/alice/my%20notes.ipynb`, { download: '1' }]
    ]);
    Contents.validateContentsModel(model);
    expect(model.type).toBe('notebook');
    expect(model.format).toBe('json');
    expect(model.content).toEqual({
      ...NOTEBOOK,
      cells: [{ ...NOTEBOOK.cells[0], metadata: { trusted: false } }]
    });
    expect(model.path).toBe('user/alice/my notes.ipynb');
    expect(model.name).toBe('my notes.ipynb');
    expect(model.writable).toBe(false);
    expect(model.size).toBe(bytes.length);
  });

  it('never believes trust flags stored in a notebook file', async () => {
    // Anyone can write this into /shared; Lab would run the script if trusted.
    const planted = {
      ...NOTEBOOK,
      cells: [
        {
          ...NOTEBOOK.cells[0],
          metadata: { trusted: true, tags: ['x'] },
          outputs: [
            {
              output_type: 'display_data',
              metadata: {},
              data: { 'text/html': '<script>steal()</script>' }
            }
          ]
        },
        { cell_type: 'markdown', source: 'hi', metadata: { trusted: true } }
      ]
    };
    const { drive } = fakeServer(request =>
      request.query.download === '1'
        ? { bytes: utf8(JSON.stringify(planted)) }
        : { json: fileEntry('/shared/planted.ipynb') }
    );

    const model = await drive.get('shared/planted.ipynb', {
      type: 'notebook',
      format: 'json'
    });

    expect(model.content.cells.map((cell: any) => cell.metadata)).toEqual([
      { trusted: false, tags: ['x'] },
      {}
    ]);
  });

  it('does not write trust flags into saved notebooks', async () => {
    const { drive, seen } = fakeServer(() => ({
      json: fileEntry('/shared/a.ipynb'),
      status: 201
    }));
    const content = {
      ...NOTEBOOK,
      cells: [{ ...NOTEBOOK.cells[0], metadata: { trusted: true, tags: ['x'] } }]
    };

    await drive.save('shared/a.ipynb', {
      type: 'notebook',
      format: 'json',
      content
    });

    const written = JSON.parse(text(seen[0].body));
    expect(written.cells[0].metadata).toEqual({ tags: ['x'] });
    // The document's own model is left alone.
    expect(content.cells[0].metadata.trusted).toBe(true);
  });

  it('does not download when only the model is asked for', async () => {
    const { drive, seen } = fakeServer(() => ({
      json: fileEntry('/shared/data.bin')
    }));

    const model = await drive.get('shared/data.bin', { content: false });

    expect(seen).toHaveLength(1);
    expect(model.content).toBeNull();
    expect(model.format).toBeNull();
  });

  describe('chooses text or base64', () => {
    const cases: {
      name: string;
      path: string;
      bytes: Uint8Array<ArrayBuffer>;
      options?: Contents.IFetchOptions;
      format: Contents.FileFormat;
      mimetype: string;
    }[] = [
      {
        name: 'UTF-8 bytes become text',
        path: 'shared/notes.md',
        bytes: utf8('# Tïtle\n'),
        format: 'text',
        mimetype: 'text/plain'
      },
      {
        name: 'UTF-8 bytes without a known extension become text',
        path: 'shared/README',
        bytes: utf8('plain words'),
        format: 'text',
        mimetype: 'text/plain'
      },
      {
        name: 'bytes that are not UTF-8 become base64',
        path: 'shared/data.bin',
        bytes: new Uint8Array([0xff, 0xfe, 0x00, 0x80]),
        format: 'base64',
        mimetype: 'application/octet-stream'
      },
      {
        name: 'files Lab reads as binary stay base64 even if they decode',
        path: 'shared/tiny.png',
        bytes: utf8('PNG'),
        format: 'base64',
        mimetype: 'image/png'
      },
      {
        name: 'an explicit base64 request wins',
        path: 'shared/notes.txt',
        bytes: utf8('text'),
        options: { format: 'base64' },
        format: 'base64',
        mimetype: 'application/octet-stream'
      },
      {
        name: 'a notebook asked for as a text file is text',
        path: 'shared/a.ipynb',
        bytes: utf8('{"cells": []}'),
        options: { type: 'file', format: 'text' },
        format: 'text',
        mimetype: 'text/plain'
      }
    ];

    it.each(cases)('$name', async ({ path, bytes, options, format, mimetype }) => {
      const { drive } = fakeServer(request =>
        request.query.download === '1'
          ? { bytes }
          : { json: fileEntry(`/${path}`, { size: bytes.length }) }
      );

      const model = await drive.get(path, { content: true, ...options });

      Contents.validateContentsModel(model);
      expect(model.type).toBe('file');
      expect(model.format).toBe(format);
      expect(model.mimetype).toBe(mimetype);
      expect(model.content).toBe(
        format === 'text' ? text(bytes) : base64(bytes)
      );
    });

    it('refuses text when the bytes are not UTF-8', async () => {
      const { drive } = fakeServer(request =>
        request.query.download === '1'
          ? { bytes: new Uint8Array([0xc3, 0x28]) }
          : { json: fileEntry('/shared/latin1.txt') }
      );

      await expect(
        drive.get('shared/latin1.txt', { format: 'text', type: 'file' })
      ).rejects.toThrow('latin1.txt is not UTF-8 encoded text.');
    });
  });

  it('saves a notebook as Jupyter-formatted JSON to the encoded URL', async () => {
    const { drive, seen, changes } = fakeServer(request => ({
      json: fileEntry('/user/alice/My Notes #1.ipynb', {
        size: request.body.length
      }),
      status: 201
    }));

    const model = await drive.save('user/alice/My Notes #1.ipynb', {
      type: 'notebook',
      format: 'json',
      content: NOTEBOOK
    });

    expect(seen).toHaveLength(1);
    const [put] = seen;
    expect(put.method).toBe('PUT');
    expect(put.pathname).toBe(
      `${API}/files/user/alice/My%20Notes%20%231.ipynb`
    );
    expect(put.query).toEqual({});
    expect(put.headers.get('Content-Type')).toBe('application/octet-stream');
    expect(text(put.body)).toBe(JSON.stringify(NOTEBOOK, null, 1) + '\n');
    expect(model.type).toBe('notebook');
    expect(model.path).toBe('user/alice/My Notes #1.ipynb');
    expect(changes).toEqual([{ type: 'save', oldValue: null, newValue: model }]);
  });

  it('saves text as UTF-8 and base64 as the decoded bytes', async () => {
    const { drive, seen } = fakeServer(() => ({
      json: fileEntry('/shared/x'),
      status: 201
    }));
    const binary = new Uint8Array([0, 1, 2, 250, 251, 255]);

    await drive.save('shared/a.txt', {
      type: 'file',
      format: 'text',
      content: 'zwölf\n'
    });
    await drive.save('shared/b.bin', {
      type: 'file',
      format: 'base64',
      content: base64(binary)
    });

    expect(text(seen[0].body)).toBe('zwölf\n');
    expect(seen[1].body).toEqual(binary);
  });

  it('renames with a PATCH carrying the new absolute path', async () => {
    const { drive, seen, changes } = fakeServer(() => ({
      json: fileEntry('/shared/new name.txt')
    }));

    const model = await drive.rename('user/alice/old.txt', 'shared/new name.txt');

    expect(seen).toHaveLength(1);
    expect(seen[0].method).toBe('PATCH');
    expect(seen[0].pathname).toBe(`${API}/files/user/alice/old.txt`);
    expect(JSON.parse(text(seen[0].body))).toEqual({
      path: '/shared/new name.txt'
    });
    expect(model.path).toBe('shared/new name.txt');
    expect(changes).toEqual([
      {
        type: 'rename',
        oldValue: { path: 'user/alice/old.txt' },
        newValue: model
      }
    ]);
  });

  it("turns the server's error JSON into a ResponseError with its message", async () => {
    const message = 'Permission denied: user=alice, access=WRITE, inode="/public"';
    const { drive, changes } = fakeServer(() => ({
      json: { message, reason: 'Forbidden' },
      status: 403
    }));

    const saving = drive.save('public/x.txt', {
      type: 'file',
      format: 'text',
      content: 'x'
    });

    await expect(saving).rejects.toBeInstanceOf(ServerConnection.ResponseError);
    await expect(saving).rejects.toThrow(message);
    await saving.catch((error: ServerConnection.ResponseError) =>
      expect(error.response.status).toBe(403)
    );
    expect(changes).toEqual([]);
  });

  it('buffers chunked uploads and writes them with one PUT', async () => {
    const { drive, seen, changes } = fakeServer(request => ({
      json: fileEntry('/user/alice/big.bin', { size: request.body.length }),
      status: 201
    }));
    const parts = [
      new Uint8Array([1, 2, 3]),
      new Uint8Array([4, 5]),
      new Uint8Array([6])
    ];
    const chunk = (index: number, chunkNumber: number) =>
      drive.save('user/alice/big.bin', {
        type: 'file',
        format: 'base64',
        name: 'big.bin',
        chunk: chunkNumber,
        content: base64(parts[index])
      });

    const first = await chunk(0, 1);
    await chunk(1, 2);
    expect(seen).toHaveLength(0);
    expect(first.size).toBe(3);

    const last = await chunk(2, -1);

    expect(seen).toHaveLength(1);
    expect(seen[0].method).toBe('PUT');
    expect(seen[0].pathname).toBe(`${API}/files/user/alice/big.bin`);
    expect(seen[0].body).toEqual(new Uint8Array([1, 2, 3, 4, 5, 6]));
    expect(last.size).toBe(6);
    expect(changes.map(change => change.type)).toEqual(['save']);
  });

  it('refuses uploads above the size cap with a clear message', async () => {
    const { drive, seen } = fakeServer(() => ({ status: 500 }), {
      maxUploadBytes: 4 * 1024 * 1024
    });
    const megabyte = base64(new Uint8Array(1024 * 1024));
    const save = (chunk: number) =>
      drive.save('user/alice/huge.bin', {
        type: 'file',
        format: 'base64',
        chunk,
        content: megabyte
      });

    for (let chunk = 1; chunk <= 4; chunk++) {
      await save(chunk);
    }
    await expect(save(5)).rejects.toThrow(
      'huge.bin is larger than 4 MB, the most the HDFS browser can upload.'
    );
    // The buffer is dropped: the next chunk cannot continue the failed upload.
    await expect(save(6)).rejects.toThrow('lost its first part');
    expect(seen).toHaveLength(0);
  });

  it('forgets an upload whose next chunk never comes', async () => {
    const { drive, seen } = fakeServer(() => ({ status: 500 }));
    const now = jest.spyOn(Date, 'now');
    const save = (chunk: number) =>
      drive.save('user/alice/stalled.bin', {
        type: 'file',
        format: 'base64',
        chunk,
        content: base64(new Uint8Array([chunk]))
      });

    try {
      now.mockReturnValue(1_000_000);
      await save(1);
      now.mockReturnValue(1_000_000 + 11 * 60 * 1000);
      await expect(save(2)).rejects.toThrow('lost its first part');
    } finally {
      now.mockRestore();
    }
    expect(seen).toHaveLength(0);
  });

  it('names new notebooks after the free untitled name and never overwrites', async () => {
    const { drive, seen, changes } = fakeServer(request => {
      if (request.method === 'GET') {
        return {
          json: directoryEntry('/shared/team', ['untitled.ipynb', 'untitled1.ipynb'])
        };
      }
      // Someone else just created untitled2.ipynb.
      if (request.pathname.endsWith('untitled2.ipynb')) {
        return { json: { message: 'exists', reason: 'Conflict' }, status: 409 };
      }
      return { json: fileEntry('/shared/team/untitled3.ipynb'), status: 201 };
    });

    const model = await drive.newUntitled({ path: 'shared/team', type: 'notebook' });

    expect(seen.map(r => [r.method, r.pathname.slice(API.length), r.query])).toEqual([
      ['GET', '/files/shared/team', {}],
      ['PUT', '/files/shared/team/untitled2.ipynb', { overwrite: '0' }],
      ['PUT', '/files/shared/team/untitled3.ipynb', { overwrite: '0' }]
    ]);
    expect(JSON.parse(text(seen[2].body))).toEqual({
      cells: [],
      metadata: {},
      nbformat: 4,
      nbformat_minor: 5
    });
    expect(model.path).toBe('shared/team/untitled3.ipynb');
    expect(model.type).toBe('notebook');
    expect(changes.map(change => change.type)).toEqual(['new']);
  });

  it('creates numbered folders with mkdir', async () => {
    const { drive, seen } = fakeServer(request =>
      request.method === 'GET'
        ? { json: directoryEntry('/shared', ['Untitled Folder']) }
        : {
            json: { ...directoryEntry('/shared/Untitled Folder 1', []), content: undefined },
            status: 201
          }
    );

    const model = await drive.newUntitled({ path: 'shared', type: 'directory' });

    expect(seen[1].method).toBe('POST');
    expect(seen[1].pathname).toBe(`${API}/files/shared/Untitled%20Folder%201`);
    expect(seen[1].query).toEqual({ op: 'mkdir' });
    expect(model.type).toBe('directory');
  });

  it('copies a file through the browser as <name>-Copy1', async () => {
    const bytes = utf8('a,b\n1,2\n');
    const { drive, seen } = fakeServer(request => {
      if (request.method === 'PUT') {
        return { json: fileEntry('/shared/data-Copy1.csv'), status: 201 };
      }
      if (request.query.download === '1') {
        return { bytes };
      }
      return request.pathname.endsWith('.csv')
        ? { json: fileEntry('/user/alice/data.csv') }
        : { json: directoryEntry('/shared', ['data.csv']) };
    });

    await drive.copy('user/alice/data.csv', 'shared');

    const put = seen[seen.length - 1];
    expect(put.pathname).toBe(`${API}/files/shared/data-Copy1.csv`);
    expect(put.query).toEqual({ overwrite: '0' });
    expect(put.body).toEqual(bytes);
  });

  it('deletes recursively and refuses to delete a storage root', async () => {
    const { drive, seen, changes } = fakeServer(request =>
      request.pathname.endsWith('/storage') ? { json: STORAGE } : { status: 204 }
    );
    await drive.fetchStorage();

    await drive.delete('shared/old');
    await expect(drive.delete('user/alice')).rejects.toThrow(
      'Personal (/user/alice) is a storage root'
    );

    expect(seen.slice(1).map(r => [r.method, r.pathname, r.query])).toEqual([
      ['DELETE', `${API}/files/shared/old`, { recursive: '1' }]
    ]);
    expect(changes).toEqual([
      { type: 'delete', oldValue: { path: 'shared/old' }, newValue: null }
    ]);
  });

  it('refuses to write at the virtual top level', async () => {
    const { drive, seen } = fakeServer(() => ({ status: 500 }));

    await expect(drive.newUntitled({ path: '', type: 'notebook' })).rejects.toThrow(
      'Open Personal or Shared first'
    );
    await expect(
      drive.save('notes.txt', { type: 'file', format: 'text', content: '' })
    ).rejects.toThrow('Open Personal or Shared first');
    expect(seen).toHaveLength(0);
  });

  it('builds download URLs with ?download=1 and encoded segments', async () => {
    const { drive } = fakeServer(() => ({ status: 500 }));

    await expect(drive.getDownloadUrl('user/alice/a b/c#d.txt')).resolves.toBe(
      `http://localhost:8888${API}/files/user/alice/a%20b/c%23d.txt?download=1`
    );
  });

  it('has no checkpoints', async () => {
    const { drive, seen } = fakeServer(() => ({ status: 500 }));

    const checkpoint = await drive.createCheckpoint('shared/a.txt');

    Contents.validateCheckpointModel(checkpoint);
    await expect(drive.listCheckpoints('shared/a.txt')).resolves.toEqual([]);
    await expect(
      drive.restoreCheckpoint('shared/a.txt', checkpoint.id)
    ).resolves.toBeUndefined();
    expect(seen).toHaveLength(0);
  });
});
