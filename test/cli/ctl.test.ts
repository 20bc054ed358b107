/**
 * `chimney ctl` against a host's control socket, and `chimney host --capture`: a target service
 * on the sim link, the host bound to it over a real IPC socket in a tmp dir, and an in-process
 * peer stack on the other end of the sim wire (no root needed). Sequence values are checked
 * exactly against the bytes transferred and the peer's own engine; the transfer's sha256 must
 * survive hand-overs driven through the control socket.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { analyzePcap } from '../../src/capture/flow-analysis.js';
import { readPcap } from '../../src/capture/pcap-reader.js';
import { main } from '../../src/cli/main.js';
import { cliLogger } from '../../src/cli/log.js';
import { runCtl } from '../../src/cli/ctl.js';
import { connectHost, DEFAULT_HOST_MAC, runHost, type RunningHost } from '../../src/cli/host.js';
import type { QueryResponse, StatusResponse } from '../../src/host/control.js';
import type { TcpSocket } from '../../src/host/socket.js';
import { HostStack } from '../../src/host/stack.js';
import type { OffloadPolicy } from '../../src/host/offload.js';
import { WallClockScheduler } from '../../src/link/scheduler.js';
import { createSimPair } from '../../src/link/sim/sim-link.js';
import { Simulator } from '../../src/link/sim/simulator.js';
import { startTargetService, type TargetService } from '../../src/target/service.js';
import { ipv4, mac } from '../../src/wire/addresses.js';
import { PumpedLink } from '../../src/link/sim/pumped-link.js';

const STACK_IP = '10.78.0.2';
const PEER_IP = '10.78.0.1';
const PEER_MAC = '02:c4:00:00:00:02';
const PORT = 5001;
const silent = pino({ level: 'silent' });
const dir = mkdtempSync(join(tmpdir(), 'chimney-ctl-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function capture(): { out: string[]; err: string[]; io: { out: (s: string) => void; err: (s: string) => void } } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (s) => out.push(s), err: (s) => err.push(s) } };
}

async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

interface Lab {
  service: TargetService;
  host: RunningHost;
  peer: HostStack;
  control: string;
  close(): Promise<void>;
}

async function lab(name: string, policy: OffloadPolicy, hostExtra: { control?: string; capture?: string } = {}): Promise<Lab> {
  const sim = new Simulator();
  const [a, b] = createSimPair(sim, { name: 'sim', mtu: 1500 });
  const cleanups: Array<() => unknown> = [];
  const close = async (): Promise<void> => {
    for (const c of cleanups.splice(0).reverse()) await c();
  };
  try {
    // The default congestion control (CUBIC, fractional cwnd): its query answers must encode too.
    const service = await startTargetService({
      link: new PumpedLink(a, sim), socketPath: join(dir, `${name}-t.sock`), logger: silent, interfaceMac: mac(DEFAULT_HOST_MAC),
    });
    cleanups.push(() => service.shutdown({ graceMs: 1000 }));
    const control = hostExtra.control ?? join(dir, `${name}-ctl.sock`);
    const host = await connectHost({ socket: service.socketPath, address: ipv4(STACK_IP), prefixLength: 24, policy, logger: silent, control, capture: hostExtra.capture });
    cleanups.push(() => host.close());
    const peerSched = new WallClockScheduler();
    const peer = new HostStack({ link: new PumpedLink(b, sim), mac: mac(PEER_MAC), scheduler: peerSched, ipv4: { address: ipv4(PEER_IP), prefixLength: 24 } });
    cleanups.push(() => { peer.close(); peerSched.close(); });
    return { service, host, peer, control, close };
  } catch (e) {
    await close();
    throw e;
  }
}

/** Both ends of one connection, with what each received hashed, and the ISNs (+1) recorded before any data. */
async function openPair(l: Lab): Promise<{ hostSock: TcpSocket; peerSock: TcpSocket; hostIss1: number; peerIss1: number; got: { host: Hash; peer: Hash } }> {
  const got = { host: new Hash(), peer: new Hash() };
  const accepted = new Promise<TcpSocket>((resolve) => {
    const server = l.peer.listen(PORT, (s) => { server.close(); resolve(s); }, { allowHalfOpen: true });
  });
  const hostSock = l.host.stack.connect({ host: PEER_IP, port: PORT, allowHalfOpen: true });
  hostSock.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => { hostSock.once('connect', resolve); hostSock.once('error', reject); });
  const peerSock = await accepted;
  peerSock.on('error', () => undefined);
  // Nothing written yet: SND.NXT = ISS + 1 and RCV.NXT = IRS + 1 on the peer's engine.
  const peerIss1 = peerSock.connection.sndNxt;
  const hostIss1 = peerSock.connection.rcvNxt;
  hostSock.on('data', (d: Buffer) => got.host.update(d));
  peerSock.on('data', (d: Buffer) => got.peer.update(d));
  return { hostSock, peerSock, hostIss1, peerIss1, got };
}

class Hash {
  bytes = 0;
  private readonly h = createHash('sha256');
  update(d: Uint8Array): void {
    this.bytes += d.length;
    this.h.update(d);
  }
  digest(): string {
    return this.h.digest('hex');
  }
}

/** Writes `data` with backpressure; resolves when all of it was accepted. */
function writeAll(s: TcpSocket, data: Buffer, chunk = 32 * 1024): Promise<void> {
  return new Promise((resolve) => {
    let off = 0;
    const pump = (): void => {
      while (off < data.length) {
        const c = data.subarray(off, Math.min(data.length, off + chunk));
        off += c.length;
        if (!s.write(c)) { s.once('drain', pump); return; }
      }
      resolve();
    };
    pump();
  });
}

async function ctl(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const c = capture();
  const code = await runCtl(args, c.io);
  return { code, out: c.out.join('\n'), err: c.err.join('\n') };
}

async function ctlJson<T>(control: string, args: string[]): Promise<T> {
  const r = await ctl(['--control', control, '--json', ...args]);
  if (r.code !== 0) throw new Error(`chimney ctl ${args.join(' ')} exited ${r.code}: ${r.out} ${r.err}`);
  return JSON.parse(r.out) as T;
}

/** Send raw lines on the control socket; resolves with the first `n` response lines. */
function rawLines(path: string, payload: string, n: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    let buf = '';
    s.setEncoding('utf8');
    s.on('connect', () => s.write(payload));
    s.on('data', (d: string) => {
      buf += d;
      const lines = buf.split('\n');
      if (lines.length > n) {
        s.destroy();
        resolve(lines.slice(0, n));
      }
    });
    s.on('error', reject);
    s.on('close', () => reject(new Error(`closed after ${JSON.stringify(buf)}`)));
  });
}

describe('chimney ctl: usage and reachability', () => {
  it('--help (through main) lists the requests and exit codes', async () => {
    const c = capture();
    expect(await main(['ctl', '--help'], c.io)).toBe(0);
    const help = c.out.join('\n');
    for (const s of ['status', 'offload ID', 'terminate ID', 'query ID', '--json', '3 cannot reach the host']) expect(help).toContain(s);
    const m = capture();
    await main(['--help'], m.io);
    expect(m.out.join('\n')).toMatch(/^ {2}ctl +talk to a running host/m);
  });

  it('usage errors exit 2 and say what is wrong', async () => {
    for (const [args, msg] of [
      [[], 'which request?'],
      [['offload'], 'offload needs a connection ID'],
      [['query', 'x1'], "ID must be a connection id from status (a positive integer), not 'x1'"],
      [['restart'], "unknown request 'restart'"],
      [['status', '3'], "unexpected argument '3'"],
      [['status', '--timeout', 'soon'], "--timeout must be a number of milliseconds, not 'soon'"],
      [['status', '--verbose'], 'unknown option --verbose'],
    ] as const) {
      const r = await ctl([...args]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err).toContain(msg);
    }
  });

  it('no control socket: exit 3 naming the path and the command to start', async () => {
    const missing = join(dir, 'nobody.ctl');
    const r = await ctl(['--control', missing, 'status']);
    expect(r.code).toBe(3);
    expect(r.err).toContain(`cannot talk to the host at ${missing}`);
    expect(r.err).toContain(`is \`chimney host --control ${missing}\` running?`);
  });
});

describe('chimney ctl against a running host (sim link, in-process target, host and peer)', () => {
  it('status, terminate, offload and query follow a transfer exactly; its sha256 survives the hand-overs', async () => {
    const l = await lab('xfer', 'after-handshake');
    try {
      // The socket is owner-only.
      expect(statSync(l.control).mode & 0o777).toBe(0o600);
      const { hostSock, peerSock, hostIss1, peerIss1, got } = await openPair(l);
      const status = (): Promise<StatusResponse> => ctlJson<StatusResponse>(l.control, ['status']);
      await until(async () => (await status()).connections[0]?.offload === 'offloaded', 'the automatic offload');

      let st = await status();
      expect(st.host.address).toBe(STACK_IP);
      expect(st.host.offload).toMatchObject({ policy: 'after-handshake', accepting: true, initiates: 1, terminates: 0 });
      expect(st.connections).toHaveLength(1);
      const id = st.connections[0].id;
      expect(st.connections[0]).toEqual({
        id, local: `${STACK_IP}:${hostSock.localPort}`, remote: `${PEER_IP}:${PORT}`, state: 'ESTABLISHED', offload: 'offloaded',
        source: 'target', sndUna: hostIss1, sndNxt: hostIss1, rcvNxt: peerIss1, bytesIn: 0, bytesOut: 0,
      });
      const table = await ctl(['--control', l.control, 'status']);
      expect(table.code).toBe(0);
      expect(table.out).toMatch(/^ID\s+LOCAL\s+REMOTE\s+STATE\s+OFFLOADED\s+SND\.UNA\s+SND\.NXT\s+RCV\.NXT\s+BYTES IN\s+BYTES OUT$/m);
      expect(table.out).toMatch(new RegExp(`^${id}\\s+${STACK_IP}:${hostSock.localPort}\\s+${PEER_IP}:${PORT}\\s+ESTABLISHED\\s+yes\\s+${hostIss1}\\s+${hostIss1}\\s+${peerIss1}\\s+0\\s+0$`, 'm'));

      // Refusals while offloaded.
      const again = await ctl(['--control', l.control, 'offload', String(id)]);
      expect(again.code).toBe(1);
      expect(again.err).toContain(`offload refused (already-offloaded): connection ${id} is already offloaded`);

      // Five parts written back to back with a hand-over between each: data is written (and
      // usually in flight) on both sides of every terminate and offload.
      const part = 640 * 1024;
      const N = 5 * part;
      const M = 2 * 1024 * 1024;
      const up = randomBytes(N);
      const down = randomBytes(M);
      const downDone = writeAll(peerSock, down);
      for (let i = 0; i < 5; i++) {
        await writeAll(hostSock, up.subarray(i * part, (i + 1) * part));
        if (i === 4) break;
        if (i % 2 === 0) {
          const t = await ctl(['--control', l.control, 'terminate', String(id)]);
          expect(t.code, t.err).toBe(0);
          expect(t.out).toBe(`connection ${id} terminated: the host drives it again`);
          st = await status();
          expect(st.connections[0]).toMatchObject({ id, offload: 'host', source: 'host', state: 'ESTABLISHED' });
          const notOff = await ctl(['--control', l.control, 'terminate', String(id)]);
          expect(notOff.code).toBe(1);
          expect(notOff.err).toContain('(not-offloaded)');
        } else {
          const o = await ctl(['--control', l.control, 'offload', String(id)]);
          expect(o.code, o.err).toBe(0);
          expect(o.out).toBe(`connection ${id} offloaded: the target drives it`);
          st = await status();
          expect(st.connections[0]).toMatchObject({ id, offload: 'offloaded', source: 'target', state: 'ESTABLISHED' });
        }
      }
      await downDone;
      await until(() => got.peer.bytes === N && got.host.bytes === M, 'both transfers');
      expect(got.peer.digest()).toBe(createHash('sha256').update(up).digest('hex'));
      expect(got.host.digest()).toBe(createHash('sha256').update(down).digest('hex'));

      // Exact sequence accounting on the target's side once the peer acknowledged everything.
      const q = (): Promise<QueryResponse> => ctlJson<QueryResponse>(l.control, ['query', String(id)]);
      await until(async () => { const d = (await q()).delegated; return d.sndUna === d.sndNxt; }, 'every byte acknowledged');
      let r = await q();
      expect(r.connection.source).toBe('target');
      expect((r.delegated.sndNxt - hostIss1) >>> 0).toBe(N);
      expect((r.delegated.rcvNxt - peerIss1) >>> 0).toBe(M);
      expect([r.delegated.sndUna, r.delegated.sndNxt, r.delegated.rcvNxt]).toEqual([peerSock.connection.rcvNxt, peerSock.connection.rcvNxt, peerSock.connection.sndNxt]);
      expect(r.connection).toMatchObject({ bytesIn: M, bytesOut: N, state: 'ESTABLISHED' });
      st = await status();
      expect(st.host.offload).toMatchObject({ initiates: 3, terminates: 2 });
      const qt = await ctl(['--control', l.control, 'query', String(id)]);
      expect(qt.out).toContain(`connection ${id} ${STACK_IP}:${hostSock.localPort} -> ${PEER_IP}:${PORT} ESTABLISHED (offloaded: values from the target)`);
      expect(qt.out).toMatch(new RegExp(`^ {2}rcvNxt +${r.delegated.rcvNxt}$`, 'm'));

      // The same numbers from the host engine after a last terminate.
      expect((await ctl(['--control', l.control, 'terminate', String(id)])).code).toBe(0);
      r = await q();
      expect(r.connection.source).toBe('host');
      expect([(r.delegated.sndUna - hostIss1) >>> 0, (r.delegated.sndNxt - hostIss1) >>> 0, (r.delegated.rcvNxt - peerIss1) >>> 0]).toEqual([N, N, M]);
    } finally {
      await l.close();
    }
    expect(existsSync(l.control)).toBe(false);
  }, 90_000);

  it('refuses bad requests with an error naming the problem and keeps serving', async () => {
    const l = await lab('bad', 'manual');
    try {
      const unknown = await ctl(['--control', l.control, 'query', '99']);
      expect(unknown.code).toBe(1);
      expect(unknown.err).toContain('query refused (unknown-connection): no open connection with id 99 (see status)');
      const lines = await rawLines(l.control, '{not json\n[1,2]\n{"cmd":"offload","id":"x"}\n{"cmd":"reboot"}\n{"cmd":"status"}\n', 5);
      const res = lines.map((x) => JSON.parse(x) as { ok: boolean; error?: string; message?: string });
      expect(res.slice(0, 4).map((x) => [x.ok, x.error])).toEqual([[false, 'bad-request'], [false, 'bad-request'], [false, 'bad-request'], [false, 'bad-request']]);
      expect(res[0].message).toMatch(/^not JSON: /);
      expect(res[2].message).toBe('"id" must be a connection id (a positive integer from status), not "x"');
      expect(res[3].message).toBe('unknown cmd "reboot": status, offload, terminate or query');
      expect(res[4]).toEqual({ ok: true, host: { address: STACK_IP, offload: { policy: 'manual', accepting: true, initiates: 0, initiateFailures: 0, terminates: 0 } }, connections: [] });
      const long = JSON.parse((await rawLines(l.control, `{"cmd":"status"}\n${'x'.repeat(70_000)}`, 2))[1]) as { error: string; message: string };
      expect(long).toEqual({ ok: false, error: 'bad-request', message: 'request line longer than 65536 characters' });
      // A line without its newline followed by a disconnect: the host stays up.
      await new Promise<void>((resolve) => { const s = connect(l.control, () => { s.end('{"cmd":'); resolve(); }); });
      const { hostSock } = await openPair(l);
      const st = await ctlJson<StatusResponse>(l.control, ['status']);
      expect(st.connections.map((c) => [c.local, c.offload, c.state])).toEqual([[`${STACK_IP}:${hostSock.localPort}`, 'host', 'ESTABLISHED']]);
      const id = String(st.connections[0].id);
      const t = await ctl(['--control', l.control, 'terminate', id]);
      expect([t.code, t.err]).toEqual([1, `chimney ctl: terminate refused (not-offloaded): connection ${id} is not offloaded (the host drives it)`]);
      expect((await ctl(['--control', l.control, 'offload', id])).code).toBe(0);
      const closedLater = await ctl(['--control', l.control, 'query', id]);
      expect(closedLater.code).toBe(0);
      hostSock.destroy();
      await until(async () => (await ctlJson<StatusResponse>(l.control, ['status'])).connections.length === 0, 'the closed socket to leave the list');
      const gone = await ctl(['--control', l.control, 'offload', id]);
      expect(gone.code).toBe(1);
      expect(gone.err).toContain('(unknown-connection)');
    } finally {
      await l.close();
    }
  }, 60_000);
});

describe('chimney host --control / --capture', () => {
  it('runHost creates the control socket 0600, answers status, removes it on stop; --capture writes a classic pcap', async () => {
    const sim = new Simulator();
    const [a] = createSimPair(sim, { name: 'sim', mtu: 1500 });
    const service = await startTargetService({ link: new PumpedLink(a, sim), socketPath: join(dir, 'run-t.sock'), logger: silent, interfaceMac: mac(DEFAULT_HOST_MAC) });
    const control = join(dir, 'run.ctl');
    const c = capture();
    let fire: () => void = () => undefined;
    const stop = new Promise<string>((r) => { fire = () => r('SIGTERM'); });
    const pcap = join(dir, 'run.pcap');
    const host = runHost(['--socket', service.socketPath, '--ip', `${STACK_IP}/24`, '--log-level', 'silent', '--control', control, '--capture', pcap], c.io, stop);
    try {
      await until(() => c.out.some((x) => x.includes('control socket at')), `the host to start (${c.err.join(' ')})`);
      expect(c.out).toContain(`chimney host: control socket at ${control} (chimney ctl --control ${control} status)`);
      expect(c.out).toContain(`chimney host: capturing the stack's frames to ${pcap}`);
      expect(statSync(control).mode & 0o777).toBe(0o600);
      const r = await ctl(['--control', control, 'status']);
      expect([r.code, r.out]).toEqual([0, `host ${STACK_IP}: offload policy after-handshake; hand-overs so far: 0 offload(s) (0 failed), 0 terminate(s)\nno open connections`]);
    } finally {
      fire();
      expect(await host).toBe(0);
      await service.shutdown({ graceMs: 1000 });
    }
    expect(existsSync(control)).toBe(false);
    const cap = await readPcap(pcap);
    expect([cap.linktype, cap.packets.length]).toEqual([1, 0]);
    const bad = capture();
    expect(await runHost(['--socket', service.socketPath, '--ip', `${STACK_IP}/24`, '--control', join(dir, 'nope', 'x.ctl')], bad.io, stop)).toBe(3);
    expect(bad.err.join('\n')).toContain(`the --control directory ${join(dir, 'nope')} does not exist`);
  }, 30_000);

  it('the capture holds the frames of the host link: a pcap whose TCP payload digests equal the transfer (offload never)', async () => {
    const pcap = join(dir, 'host.pcap');
    const l = await lab('cap', 'never', { capture: pcap });
    const N = 512 * 1024;
    const M = 256 * 1024;
    const up = randomBytes(N);
    const down = randomBytes(M);
    let ports: { host: number } | undefined;
    try {
      const { hostSock, peerSock, got } = await openPair(l);
      ports = { host: hostSock.localPort };
      await Promise.all([writeAll(hostSock, up), writeAll(peerSock, down)]);
      hostSock.end();
      peerSock.end();
      await until(() => got.peer.bytes === N && got.host.bytes === M, 'both transfers');
      await until(() => hostSock.destroyed || hostSock.readableEnded, 'the FINs');
      await until(() => peerSock.readableEnded, 'the host FIN at the peer');
    } finally {
      await l.close();
    }
    const cap = await readPcap(pcap);
    expect(cap.linktype).toBe(1);
    const a = await analyzePcap(pcap);
    const conns = a.connections.filter((c) => c.a === `${STACK_IP}:${ports!.host}` && c.b === `${PEER_IP}:${PORT}`);
    expect(conns).toHaveLength(1);
    const conn = conns[0];
    expect(conn.negotiated.complete).toBe(true);
    expect([conn.ab.content.bytes, conn.ab.content.sha256]).toEqual([N, createHash('sha256').update(up).digest('hex')]);
    expect([conn.ba.content.bytes, conn.ba.content.sha256]).toEqual([M, createHash('sha256').update(down).digest('hex')]);
    expect(conn.ab.gaps.streamBytes + conn.ba.gaps.streamBytes).toBe(0);
  }, 60_000);
});

describe('CLI logs (pino; pino-pretty on a terminal)', () => {
  it('readable lines through pino-pretty: local time, level, name, message, fields on one line; colour only when asked', () => {
    const plain: string[] = [];
    const log = cliLogger({ name: 'chimney-test', level: 'info', pretty: true, colorize: false, write: (l) => plain.push(l) });
    log.debug('hidden');
    log.warn({ aborted: 1, socket: '/tmp/x.sock' }, 'host gone');
    expect(plain).toHaveLength(1);
    expect(plain[0]).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] WARN \(chimney-test\): host gone \{"aborted":1,"socket":"\/tmp\/x\.sock"\}\n$/);
    const coloured: string[] = [];
    cliLogger({ name: 'chimney-test', pretty: true, colorize: true, write: (l) => coloured.push(l) }).error('bad');
    expect(coloured).toHaveLength(1);
    const esc = String.fromCharCode(27);
    expect(coloured[0]).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] /);
    expect(coloured[0].slice(15)).toBe(`${esc}[31mERROR${esc}[39m (chimney-test): ${esc}[36mbad${esc}[39m\n`);
    const json: string[] = [];
    cliLogger({ name: 'chimney-test', level: 'warn', pretty: false, write: (l) => json.push(l) }).warn({ n: 3 }, 'as JSON');
    expect(json).toHaveLength(1);
    const o = JSON.parse(json[0]) as Record<string, unknown>;
    expect([o.level, o.name, o.msg, o.n, json[0].endsWith('}\n')]).toEqual([40, 'chimney-test', 'as JSON', 3, true]);
  });
});
