import { createHash } from 'node:crypto';
import { link, lstat, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Status } from '../../src/chimney/status.js';
import { decodeBody, encodeFrame } from '../../src/ipc/codec.js';
import { IpcClient } from '../../src/ipc/client.js';
import { IpcClosedError, IpcHandshakeError, IpcRemoteError } from '../../src/ipc/errors.js';
import { FrameParser } from '../../src/ipc/framing.js';
import { PROTOCOL_VERSION, type Capabilities, type HostMessage, type Message, type TargetMessage } from '../../src/ipc/messages.js';
import { IpcServer, type IpcBinding, type IpcServerOptions } from '../../src/ipc/server.js';
import { seqBytes } from './samples.js';

const CAPS: Capabilities = { supportIPv4: true, supportIPv6: true, supportSack: true, tcpConnectionOffloadCapacity: 4096, ticksPerSecond: 1000 };

let dir: string;
let n = 0;
const cleanups: Array<() => Promise<unknown> | unknown> = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ipc-'));
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function sockPath(): string {
  return join(dir, `t${n++}.sock`);
}

/** A server whose bindings are queued for the test to take. */
async function startServer(over: Partial<IpcServerOptions> = {}) {
  const path = sockPath();
  const waiting: Array<(b: IpcBinding) => void> = [];
  const ready: IpcBinding[] = [];
  const failures: Error[] = [];
  const server = await IpcServer.listen(path, {
    software: 'test-target 1',
    capabilities: CAPS,
    onBinding: (b) => {
      const w = waiting.shift();
      if (w) w(b);
      else ready.push(b);
    },
    onHandshakeFailure: (e) => failures.push(e),
    ...over,
  });
  cleanups.push(() => server.close());
  const nextBinding = (): Promise<IpcBinding> => {
    const b = ready.shift();
    return b ? Promise.resolve(b) : new Promise((resolve) => waiting.push(resolve));
  };
  return { server, path, nextBinding, failures };
}

async function connectClient(path: string, over: Partial<Parameters<typeof IpcClient.connect>[1]> = {}): Promise<IpcClient> {
  const c = await IpcClient.connect(path, { software: 'test-host 1', ...over });
  cleanups.push(() => c.close());
  return c;
}

/** A raw socket collecting decoded frames until it closes. */
async function rawConnect(path: string) {
  const s = connect(path);
  await new Promise<void>((resolve, reject) => s.once('connect', resolve).once('error', reject));
  cleanups.push(() => s.destroy());
  const got: Message[] = [];
  const parser = new FrameParser();
  let waiter: (() => void) | undefined;
  s.on('data', (chunk: Buffer) => {
    parser.push(chunk, (type, body) => {
      const r = decodeBody(type, body);
      if (!r.ok) throw r.error;
      got.push(r.message);
    });
    waiter?.();
  });
  const closed = new Promise<void>((resolve) => s.on('close', () => resolve()));
  s.on('error', () => undefined);
  const until = async (count: number): Promise<Message[]> => {
    while (got.length < count) await new Promise<void>((resolve) => (waiter = resolve));
    return got;
  };
  return { socket: s, got, until, closed };
}

function digest(m: Message): string {
  return createHash('sha256').update(encodeFrame(m)).digest('hex');
}

function collect<T extends Message>(conn: { setHandler?: (h: (m: T) => void) => void; on?: (h: (m: T) => void) => void }, count: number): Promise<T[]> {
  return new Promise((resolve) => {
    const got: T[] = [];
    const h = (m: T): void => {
      got.push(m);
      if (got.length === count) resolve(got);
    };
    if (conn.setHandler) conn.setHandler(h);
    else conn.on!(h);
  });
}

/** Mixed message sizes: tiny control messages to 16 KiB payloads, chosen by a seeded generator. */
function hostMix(count: number, seed: number): HostMessage[] {
  const out: HostMessage[] = [];
  let x = seed;
  for (let i = 0; i < count; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    const kind = x % 4;
    const size = (x >>> 8) % (kind === 0 ? 16384 : 1500);
    if (kind === 0) out.push({ type: 'TcpSend', ctx: i, buffers: [{ requestId: i, bytes: seqBytes(size + 1, x) }] });
    else if (kind === 1) out.push({ type: 'RawFrame', frame: seqBytes(size + 1, x) });
    else if (kind === 2) out.push({ type: 'TcpReceiveReturn', bufferIds: [i, x] });
    else out.push({ type: 'IndicateReply', indicationId: i, status: 0, bytesConsumed: size });
  }
  return out;
}

describe('IPC over a real Unix socket', () => {
  it('the socket file is owner-only (0600) and the hello exchange carries capabilities both ways', async () => {
    const { path, nextBinding } = await startServer();
    const st = await lstat(path);
    expect(st.isSocket()).toBe(true);
    expect((st.mode & 0o777).toString(8)).toBe('600');
    const client = await connectClient(path);
    const binding = await nextBinding();
    expect(client.target).toStrictEqual({ type: 'Hello', version: PROTOCOL_VERSION, role: 'target', software: 'test-target 1', capabilities: CAPS });
    expect(client.capabilities).toStrictEqual(CAPS);
    expect(binding.host).toStrictEqual({ type: 'Hello', version: PROTOCOL_VERSION, role: 'host', software: 'test-host 1' });
    expect(binding.connection.isOpen).toBe(true);
  });

  it('10k messages of mixed sizes arrive complete and in order, both ways, in few writes', async () => {
    const { path, nextBinding } = await startServer();
    const client = await connectClient(path);
    const binding = await nextBinding();
    const up = hostMix(10_000, 1);
    const writes = { host: 0 };
    const realWrite = client.connection.socket.write.bind(client.connection.socket);
    client.connection.socket.write = ((...args: Parameters<typeof realWrite>) => {
      writes.host++;
      return realWrite(...args);
    }) as typeof realWrite;
    const writesBefore = client.counters.writes;
    const received = collect<HostMessage>(binding.connection, up.length);
    for (const m of up) client.send(m); // one event-loop turn
    const got = await received;
    expect(got.map(digest)).toEqual(up.map(digest));
    // All 10k queued in one turn went out in one socket.write (batching per turn).
    expect(client.counters.writes - writesBefore).toBe(1);
    expect(writes.host).toBe(1);
    expect(binding.connection.counters.messagesIn).toBe(up.length + 1); // + hello

    // Target -> host, spread over 50 turns: one write per turn at most.
    const down: TargetMessage[] = up.map((m, i) => (m.type === 'TcpSend'
      ? { type: 'TcpReceiveComplete', entries: [{ ctx: i, requestId: i, status: 0, bytesTransferred: m.buffers[0]!.bytes.length, bytes: m.buffers[0]!.bytes }] }
      : { type: 'TcpSendComplete', entries: [{ ctx: i, requestId: i, status: 0, bytesTransferred: i }] }));
    const back = collect<TargetMessage>(client, down.length);
    const targetWrites = binding.connection.counters.writes;
    for (let t = 0; t < 50; t++) {
      for (const m of down.slice(t * 200, (t + 1) * 200)) binding.connection.send(m);
      await new Promise((r) => setImmediate(r));
    }
    expect((await back).map(digest)).toEqual(down.map(digest));
    const used = binding.connection.counters.writes - targetWrites;
    expect(used).toBeGreaterThan(0);
    expect(used).toBeLessThanOrEqual(50);
  });

  it('messages that arrive before the owner sets a handler are delivered first, in order', async () => {
    const { path, nextBinding } = await startServer();
    const client = await connectClient(path);
    for (let i = 0; i < 100; i++) client.send({ type: 'TcpReceiveReturn', bufferIds: [i] });
    const binding = await nextBinding();
    await new Promise((r) => setTimeout(r, 50));
    const got = await collect<HostMessage>(binding.connection, 100);
    expect(got.map((m) => (m as { bufferIds: number[] }).bufferIds[0])).toEqual([...Array(100).keys()]);
  });

  it('write backpressure: frames queue while the peer does not read, none is lost', async () => {
    const { path, nextBinding } = await startServer();
    const client = await connectClient(path);
    const binding = await nextBinding();
    binding.connection.pause();
    const results: boolean[] = [];
    const sock = client.connection.socket;
    const realWrite = sock.write.bind(sock);
    sock.write = ((...args: Parameters<typeof realWrite>) => {
      const ok = realWrite(...args);
      results.push(ok);
      return ok;
    }) as typeof realWrite;
    const sent: HostMessage[] = [];
    // 48 turns of 1 MiB each while the target reads nothing.
    for (let t = 0; t < 48; t++) {
      const m: HostMessage = { type: 'TcpSend', ctx: 1, buffers: [{ requestId: t, bytes: seqBytes(1 << 20, t + 1) }] };
      sent.push(m);
      expect(client.send(m)).toBe(true);
      await new Promise((r) => setImmediate(r));
    }
    expect(results).toContain(false);
    // Frames sent after write() said false wait in our buffer, not in the socket.
    expect(client.connection.bufferedBytes).toBeGreaterThan(1 << 20);
    expect(results.length).toBeLessThan(48);
    const got = collect<HostMessage>(binding.connection, sent.length);
    binding.connection.resume();
    expect((await got).map(digest)).toEqual(sent.map(digest));
  });

  it('request(): completions resolve by opId, in any order; an Error about the request rejects it (spec 2.0, 8.1)', async () => {
    const { path, nextBinding } = await startServer();
    const client = await connectClient(path);
    const binding = await nextBinding();
    const seen: HostMessage[] = [];
    binding.connection.setHandler((m) => {
      seen.push(m);
      if (seen.length < 3) return;
      // Answer the second first, the first with a completion, the third with an Error.
      const [a, b, c] = seen as Array<HostMessage & { opId: number }>;
      binding.connection.send({ type: 'QueryOffloadComplete', opId: b!.opId, results: [{ blockId: 1, status: Status.FAILURE }] });
      binding.connection.send({ type: 'InitiateOffloadComplete', opId: a!.opId, results: [{ blockId: 1, status: Status.SUCCESS, ctx: 77 }] });
      binding.connection.send({ type: 'Error', refKind: 0x0003, refId: c!.opId, status: Status.IPC_INVALID_IN_STATE, problem: 'parameters refused' });
    });
    const unsolicited: TargetMessage[] = [];
    client.on((m) => unsolicited.push(m));
    const p1 = client.request({ type: 'InitiateOffload', blocks: [{ blockId: 1, role: 'placeholder', layer: 'neighbor', children: [] }] });
    const p2 = client.request({ type: 'QueryOffload', blocks: [{ blockId: 1, ctx: 5, layer: 'tcp', children: [] }] });
    const p3 = client.request({ type: 'SetParameters', ticksPerSecond: 1000, tcpAckFrequency: 2, tcpDelayedAckTicks: 200, tcpMaximumRetransmissions: 5, tcpDoubtReachabilityRetransmissions: 3, tcpSwsPreventionTicks: 1000, tcpDuplicateAckThreshold: 3, tcpPushTicks: 500, nceStaleTicks: 30000 });
    const r1 = await p1;
    expect(r1.results).toStrictEqual([{ blockId: 1, status: Status.SUCCESS, ctx: 77 }]);
    expect((await p2).results).toStrictEqual([{ blockId: 1, status: Status.FAILURE }]);
    await expect(p3).rejects.toThrow(new IpcRemoteError(Status.IPC_INVALID_IN_STATE, 'parameters refused'));
    expect(new Set((seen as Array<{ opId: number }>).map((m) => m.opId)).size).toBe(3);
    expect(unsolicited).toEqual([]);
    expect(client.pendingRequests).toBe(0);
  });

  it('request(): pending requests reject when the binding closes', async () => {
    const { path, nextBinding } = await startServer();
    const client = await connectClient(path);
    const binding = await nextBinding();
    binding.connection.setHandler(() => void binding.connection.close('test'));
    const p = client.request({ type: 'TerminateOffload', blocks: [{ blockId: 1, ctx: 1, layer: 'tcp', children: [] }] });
    await expect(p).rejects.toBeInstanceOf(IpcClosedError);
    expect(client.send({ type: 'TcpReceiveReturn', bufferIds: [1] })).toBe(false);
  });

  it('version mismatch: the target answers Error naming both versions, then closes', async () => {
    const { path, failures } = await startServer();
    const raw = await rawConnect(path);
    raw.socket.write(encodeFrame({ type: 'Hello', version: PROTOCOL_VERSION + 1, role: 'host', software: 'future host' }));
    await raw.closed;
    expect(raw.got.map((m) => m.type)).toEqual(['Hello', 'Error']);
    expect(raw.got[1]).toStrictEqual({
      type: 'Error', refKind: 0x0001, refId: 0, status: Status.IPC_MALFORMED,
      problem: `protocol version mismatch: the peer speaks version ${PROTOCOL_VERSION + 1}, this target speaks version ${PROTOCOL_VERSION}`,
    });
    expect(failures.map((e) => e.message)).toEqual([`IPC handshake failed: protocol version mismatch: the peer speaks version ${PROTOCOL_VERSION + 1}, this target speaks version ${PROTOCOL_VERSION}`]);
  });

  it('version mismatch seen from the host: connect rejects with both versions', async () => {
    const { path } = await startServer();
    const err = await IpcClient.connect(path, { software: 'h', version: 3 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IpcHandshakeError);
    expect((err as Error).message).toMatch(new RegExp(`version (3|${PROTOCOL_VERSION}).*version (${PROTOCOL_VERSION}|3)`));
  });

  it('a first message other than Hello is answered with Error and the binding closes', async () => {
    const { path } = await startServer();
    const raw = await rawConnect(path);
    raw.socket.write(encodeFrame({ type: 'TcpReceiveReturn', bufferIds: [1] }));
    await raw.closed;
    expect(raw.got[1]).toMatchObject({ type: 'Error', refKind: 0x0022, status: Status.IPC_INVALID_IN_STATE, problem: 'expected Hello as the first message, got TcpReceiveReturn' });
  });

  it('oversize frame: Error (IPC_LIMIT), then the binding closes (length cannot be trusted)', async () => {
    const { path, nextBinding } = await startServer({ maxFrameBytes: 65536 });
    const client = await connectClient(path);
    await nextBinding();
    const errors = collect<TargetMessage>(client, 1);
    const closed = new Promise<string>((resolve) => client.onClose(resolve));
    const head = Buffer.alloc(6);
    head.writeUInt32LE(70000, 0);
    head.writeUInt16LE(0x0006, 4);
    client.connection.socket.write(head);
    expect((await errors)[0]).toStrictEqual({
      type: 'Error', refKind: 0x0006, refId: 0, status: Status.IPC_LIMIT,
      problem: 'frame length 70000 exceeds the 64 KiB limit; the stream cannot be resynchronised, closing',
    });
    await closed;
  });

  it('oversize frame at the default limit: 16 MiB + 1', async () => {
    const { path, nextBinding } = await startServer();
    const client = await connectClient(path);
    await nextBinding();
    const errors = collect<TargetMessage>(client, 1);
    const head = Buffer.alloc(6);
    head.writeUInt32LE(16 * 1024 * 1024 + 1, 0);
    client.connection.socket.write(head);
    expect((await errors)[0]).toMatchObject({ type: 'Error', status: Status.IPC_LIMIT, problem: expect.stringContaining('frame length 16777217 exceeds the 16 MiB limit') });
  });

  it('undecodable, unknown-type and wrong-direction frames with a sane length: Error each, the binding goes on', async () => {
    const { path, nextBinding } = await startServer();
    const client = await connectClient(path);
    const binding = await nextBinding();
    const toTarget = collect<HostMessage>(binding.connection, 1);
    const errors = collect<TargetMessage>(client, 3);
    const bad = Buffer.from(encodeFrame({ type: 'TcpReceiveReturn', bufferIds: [5] }));
    bad.writeUInt32LE(0, 6); // count 0
    const unknown = Buffer.from([6, 0, 0, 0, 0x77, 0x77, 9, 0, 0, 0]);
    const wrongWay = encodeFrame({ type: 'TcpSendComplete', entries: [{ ctx: 1, requestId: 2, status: 0, bytesTransferred: 3 }] });
    client.connection.socket.write(Buffer.concat([bad, unknown, wrongWay, encodeFrame({ type: 'TcpReceiveReturn', bufferIds: [42] })]));
    expect(await errors).toStrictEqual([
      { type: 'Error', refKind: 0x0022, refId: 0, status: Status.IPC_MALFORMED, problem: 'TcpReceiveReturn.bufferIds: count 0 is below the minimum 1' },
      { type: 'Error', refKind: 0x7777, refId: 9, status: Status.IPC_MALFORMED, problem: 'message type 0x7777: unknown message type 0x7777' },
      { type: 'Error', refKind: 0x0030, refId: 1, status: Status.IPC_MALFORMED, problem: 'TcpSendComplete is a target->host message; this side is the target' },
    ]);
    expect(await toTarget).toStrictEqual([{ type: 'TcpReceiveReturn', bufferIds: [42] }]);
    expect(binding.connection.counters.framesRejected).toBe(3);
    expect(binding.connection.counters.errorsSent).toBe(3);
    expect(binding.connection.isOpen).toBe(true);
  });

  it('a garbage length (below the type field) is answered with Error and closes', async () => {
    const { path, nextBinding } = await startServer();
    const client = await connectClient(path);
    await nextBinding();
    const errors = collect<TargetMessage>(client, 1);
    const closed = new Promise<string>((resolve) => client.onClose(resolve));
    client.connection.socket.write(Buffer.from([1, 0, 0, 0, 0xff]));
    expect((await errors)[0]).toMatchObject({ type: 'Error', refKind: 0, status: Status.IPC_MALFORMED, problem: 'frame length 1 is shorter than the 2-byte type field; the stream cannot be resynchronised, closing' });
    await closed;
  });

  it('an invalid message is refused at send() with the field named, and nothing is written', async () => {
    const { path } = await startServer();
    const client = await connectClient(path);
    const before = client.counters.messagesOut;
    expect(() => client.send({ type: 'TcpDisconnect', ctx: 1, requestId: 1, flags: 2, bytes: new Uint8Array(3) })).toThrow('TcpDisconnect: abortive disconnect with 3 bytes of data');
    expect(client.counters.messagesOut).toBe(before);
  });

  it('a stale socket file (nobody listening) is replaced; a live one and a non-socket file are refused', async () => {
    // A socket file whose listener is gone: bind, hard-link the name, close (libuv unlinks only its own name).
    const live = sockPath();
    const stale = sockPath();
    const plain = createServer();
    await new Promise<void>((resolve) => plain.listen(live, resolve));
    await link(live, stale);
    await new Promise<void>((resolve) => plain.close(() => resolve()));
    expect((await lstat(stale)).isSocket()).toBe(true);
    const { server } = await startServer();
    const s2 = await IpcServer.listen(stale, { software: 't', capabilities: CAPS, onBinding: () => undefined });
    cleanups.push(() => s2.close());
    expect(((await stat(stale)).mode & 0o777).toString(8)).toBe('600');
    const c = await connectClient(stale);
    expect(c.target.software).toBe('t');

    await expect(IpcServer.listen(server.path, { software: 't', capabilities: CAPS, onBinding: () => undefined })).rejects.toThrow('another target is listening there');
    const file = sockPath();
    await writeFile(file, 'keep me');
    await expect(IpcServer.listen(file, { software: 't', capabilities: CAPS, onBinding: () => undefined })).rejects.toThrow('exists and is not a socket');
    expect(await readFile(file, 'utf8')).toBe('keep me');
  });

  it('close() ends every binding and removes the socket file', async () => {
    const { server, path, nextBinding } = await startServer();
    const client = await connectClient(path);
    await nextBinding();
    const closed = new Promise<string>((resolve) => client.onClose(resolve));
    await server.close();
    await closed;
    await expect(lstat(path)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(server.bindingCount).toBe(0);
  });

  it('a host that never says hello is dropped after the handshake timeout', async () => {
    const { path, failures } = await startServer({ handshakeTimeoutMs: 100 });
    const raw = await rawConnect(path);
    await raw.closed;
    expect(raw.got.map((m) => m.type)).toEqual(['Hello', 'Error']);
    expect(raw.got[1]).toMatchObject({ problem: 'no Hello within 100 ms', status: Status.IPC_INVALID_IN_STATE });
    expect(failures[0]?.message).toMatch(/no Hello/);
  });
});
