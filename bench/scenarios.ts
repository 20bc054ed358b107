/**
 * The three measured transfers (and the optional iperf3 reference) over a lab built once:
 *   baseline:  node:net in ns A --veth--> node:net in ns B (kernel TCP both ends, offloads on)
 *   to-stack:  node:net in ns K --TAP--> HostStack in this process
 *   from-stack: HostStack in this process --TAP--> node:net in ns K
 * Every transfer hashes the stream on both ends; the receiver's clock (established -> end of
 * stream) gives the throughput.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Lab } from '../src/lab/lab.js';
import type { LabProcess } from '../src/lab/process.js';
import { HostStack } from '../src/host/stack.js';
import type { TcpSocket } from '../src/host/socket.js';
import { WallClockScheduler } from '../src/link/scheduler.js';
import { openTapLink, type TapLink } from '../src/link/tap.js';
import { ipv4, mac } from '../src/wire/addresses.js';
import type { PeerConfig, PeerReport } from './child-peer.js';
import { benchStream, cpuMsSince, sha256Hex } from './stream.js';

const PEER = fileURLToPath(new URL('./child-peer.js', import.meta.url));
const VETH_A_IP = '10.79.0.1';
const VETH_B_IP = '10.79.0.2';
const TAP_KERNEL_IP = '10.77.0.1';
const STACK_IP = '10.77.0.2';
const STACK_MAC = '02:c4:77:00:00:02';
/** The kernel's queue towards the TAP is tail-drop: room for bursts of a slow reader. */
export const TAP_TXQUEUELEN = 10_000;
const WRITE_CHUNK = 256 * 1024;

export type ScenarioId = 'baseline' | 'linux-to-stack' | 'stack-to-linux' | 'linux-to-offloaded' | 'offloaded-to-linux' | 'iperf3';

export interface Sample {
  scenario: ScenarioId;
  bytes: number;
  /** Receiver's time from established to end of stream. */
  ms: number;
  gbps: number;
  /** CPU (user + system) of the receiving and sending node processes over the transfer. */
  recvCpuMs: number;
  sendCpuMs: number;
  sentSha: string;
  recvSha: string;
  /** Both digests equal and every byte arrived (iperf3: not checked, always false). */
  shaOk: boolean;
  /** Which side ran the userspace stack (its node process is the one the CPU column is about). */
  stackSide?: 'recv' | 'send';
  /** Stack-side counters for the userspace runs. */
  stack?: {
    retransmittedSegments: number; framesIn: number; framesOut: number; tapDropsOut: number; kernelTapTxDrops: number;
    /** Read bursts (one JS callback each) and write batches (one native call each). */
    readBursts: number; writeBatches: number;
  };
  /** Offloaded runs: what went through the target (bench/offload.ts). */
  offload?: {
    initiates: number; terminates: number; framesOffloaded: number; framesToHost: number;
    sendRequests: number; indications: number; ipcMessagesOut: number; ipcMessagesIn: number; ipcWrites: number;
  };
}

export interface Progress {
  (label: string, bytes: () => number): () => void;
}

export interface BenchLab {
  lab: Lab;
  nsA: string;
  nsB: string;
  nsK: string;
  tap: TapLink;
  stack: HostStack;
  /** The baseline's veth ends (ns a, ns b). */
  vethA: string;
  vethB: string;
}

/**
 * The userspace end of a TAP transfer: which stack, its address, the kernel address it talks to,
 * and where its frames are counted (the stack itself, or the target service owning the TAP).
 */
export interface StackEnd {
  stack: HostStack;
  tap: TapLink;
  ns: string;
  ip: string;
  kernelIp: string;
  /** Frames in/out over the TAP and link write batches so far. */
  frames(): { in: number; out: number; writeBatches: number };
}

export function plainEnd(b: BenchLab): StackEnd {
  return {
    stack: b.stack, tap: b.tap, ns: b.nsK, ip: STACK_IP, kernelIp: TAP_KERNEL_IP,
    frames: () => ({ in: b.stack.stats.framesIn, out: b.stack.stats.framesOut, writeBatches: b.stack.stats.batchesOut }),
  };
}

export async function buildBenchLab(): Promise<BenchLab> {
  const lab = new Lab();
  try {
    const nsA = await lab.addNamespace('a');
    const nsB = await lab.addNamespace('b');
    const nsK = await lab.addNamespace('k');
    for (const ns of [nsA, nsB, nsK]) {
      for (const k of ['all', 'default']) await lab.sysctl(ns, `net.ipv6.conf.${k}.disable_ipv6`, 1);
    }
    const { a, b } = await lab.addVeth(nsA, nsB);
    await lab.addAddress(nsA, a, `${VETH_A_IP}/24`);
    await lab.addAddress(nsB, b, `${VETH_B_IP}/24`);

    const tap = openTapLink({ name: lab.devName('t') });
    lab.adoptDevice(tap.name);
    await lab.moveLink(tap.name, nsK);
    await lab.addAddress(nsK, tap.name, `${TAP_KERNEL_IP}/24`);
    await lab.setLink(nsK, tap.name, { txqueuelen: TAP_TXQUEUELEN, up: true });
    const scheduler = new WallClockScheduler();
    const stack = new HostStack({
      link: tap, mac: mac(STACK_MAC), scheduler,
      ipv4: { address: ipv4(STACK_IP), prefixLength: 24, gateway: ipv4(TAP_KERNEL_IP) },
    });
    // Hooks run last-registered first: stack, scheduler, TAP.
    lab.onTeardown(() => tap.close());
    lab.onTeardown(() => scheduler.close());
    lab.onTeardown(() => stack.close());
    return { lab, nsA, nsB, nsK, tap, stack, vethA: a, vethB: b };
  } catch (err) {
    await lab.teardown().catch(() => undefined);
    throw err;
  }
}

/**
 * The segmentation/receive offloads of the baseline's veth ends as ethtool reports them (they are
 * on by default; recorded so a result says what the baseline had). Undefined without ethtool.
 */
export async function vethOffloads(b: BenchLab): Promise<Record<string, string> | undefined> {
  const out: Record<string, string> = {};
  try {
    for (const [ns, dev] of [[b.nsA, b.vethA], [b.nsB, b.vethB]] as const) {
      const { stdout } = await b.lab.exec(ns, 'ethtool', ['-k', dev]);
      for (const f of ['tcp-segmentation-offload', 'generic-segmentation-offload', 'generic-receive-offload', 'tx-checksumming']) {
        const m = new RegExp(`^${f}: (\\S+)`, 'm').exec(stdout);
        if (m) out[`${dev}/${f}`] = m[1]!;
      }
    }
  } catch {
    return undefined;
  }
  return out;
}

function timeoutFor(bytes: number): number {
  return 60_000 + bytes / 4_000; // never slower than 4 MB/s
}

function startPeer(b: BenchLab, ns: string, cfg: PeerConfig): LabProcess {
  return b.lab.spawn(ns, process.execPath, [PEER, JSON.stringify(cfg)]);
}

async function peerReport(p: LabProcess, timeoutMs: number): Promise<PeerReport> {
  await p.waitForOutput(/"event":"done"/, timeoutMs);
  const line = p.stdout.split('\n').find((l) => l.includes('"event":"done"'))!;
  const r = JSON.parse(line) as PeerReport;
  if (r.error !== undefined) throw new Error(`Linux peer failed: ${r.error}\n${p.stderr}`);
  return r;
}

/** Bytes the child receiver last reported. */
function lastProgress(p: LabProcess): number {
  const tail = p.stdout.slice(-400);
  const m = /.*"bytes":(\d+)/s.exec(tail);
  return m ? Number(m[1]) : 0;
}

const gbps = (bytes: number, ms: number): number => (bytes * 8) / (ms * 1e6);

let nextPort = 6000;

export async function runBaseline(b: BenchLab, bytes: number, seed: string, progress: Progress): Promise<Sample> {
  const port = nextPort++;
  const t = timeoutFor(bytes);
  const recv = startPeer(b, b.nsB, { role: 'recv', open: 'listen', host: VETH_B_IP, port, bytes, seed });
  await recv.waitForOutput(/"event":"ready"/, 20_000);
  const stop = progress('baseline (Linux -> Linux, veth)', () => lastProgress(recv));
  try {
    const send = startPeer(b, b.nsA, { role: 'send', open: 'connect', host: VETH_B_IP, port, bytes, seed });
    const [r, s] = await Promise.all([peerReport(recv, t), peerReport(send, t)]);
    return sample('baseline', bytes, r.ms, r.userMs + r.systemMs, s.userMs + s.systemMs, s.sha, r.sha, r.bytes);
  } finally {
    stop();
  }
}

export async function runLinuxToStack(
  b: BenchLab, bytes: number, seed: string, progress: Progress,
  end: StackEnd = plainEnd(b), scenario: ScenarioId = 'linux-to-stack', label = 'Linux -> userspace (TAP)',
): Promise<Sample> {
  const port = nextPort++;
  const t = timeoutFor(bytes);
  const before = await stackCounters(b, end);
  const hash = createHash('sha256');
  let got = 0;
  let sock: TcpSocket | undefined;
  const accepted = new Promise<TcpSocket>((resolve) => {
    const server = end.stack.listen(port, (s) => {
      server.close();
      resolve(s);
    });
  });
  const send = startPeer(b, end.ns, { role: 'send', open: 'connect', host: end.ip, port, bytes, seed });
  const stop = progress(label, () => got);
  try {
    sock = await withTimeout(unlessExited(accepted, send), t, 'the Linux sender did not connect');
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    sock.on('data', (d: Buffer) => {
      hash.update(d);
      got += d.length;
    });
    await withTimeout(unlessExited(once(sock, 'end'), send, true), t, `end of stream (got ${got} of ${bytes} bytes)`);
    const ms = performance.now() - t0;
    const cpu = cpuMsSince(cpu0);
    const s = await peerReport(send, t);
    const out = sample(scenario, bytes, ms, cpu.userMs + cpu.systemMs, s.userMs + s.systemMs, s.sha, hash.digest('hex'), got);
    out.stackSide = 'recv';
    out.stack = await stackDelta(b, end, before, sock);
    return out;
  } finally {
    stop();
    sock?.destroy();
  }
}

export async function runStackToLinux(
  b: BenchLab, bytes: number, seed: string, progress: Progress,
  end: StackEnd = plainEnd(b), scenario: ScenarioId = 'stack-to-linux', label = 'userspace -> Linux (TAP)',
): Promise<Sample> {
  const port = nextPort++;
  const t = timeoutFor(bytes);
  const data = benchStream(bytes, seed);
  const sentSha = sha256Hex(data);
  const before = await stackCounters(b, end);
  const recv = startPeer(b, end.ns, { role: 'recv', open: 'listen', host: end.kernelIp, port, bytes, seed });
  await recv.waitForOutput(/"event":"ready"/, 20_000);
  const stop = progress(label, () => lastProgress(recv));
  const cpu0 = process.cpuUsage();
  const sock = end.stack.connect({ host: end.kernelIp, port });
  try {
    await withTimeout(once(sock, 'connect'), 20_000, 'connect to the Linux receiver');
    const closed = once(sock, 'close');
    sock.on('data', () => undefined);
    await withTimeout(unlessExited(writeAll(sock, data), recv), t, 'writing the stream');
    await withTimeout(unlessExited(closed, recv, true), t, 'close after the Linux receiver ended');
    const cpu = cpuMsSince(cpu0);
    const r = await peerReport(recv, t);
    const out = sample(scenario, bytes, r.ms, r.userMs + r.systemMs, cpu.userMs + cpu.systemMs, sentSha, r.sha, r.bytes);
    out.stackSide = 'send';
    out.stack = await stackDelta(b, end, before, sock);
    return out;
  } finally {
    stop();
    sock.destroy();
  }
}

/**
 * iperf3 -n over the same veth: what the kernel moves without application work (a reference, not
 * the ratio's denominator: our endpoints hash every byte, iperf3 does not look at them).
 */
export async function runIperf3(b: BenchLab, bytes: number, progress: Progress): Promise<Sample> {
  const port = nextPort++;
  const server = b.lab.spawn(b.nsB, 'iperf3', ['-s', '-1', '--forceflush', '-B', VETH_B_IP, '-p', String(port)]);
  const stop = progress('reference: iperf3 Linux -> Linux (veth)', () => 0);
  try {
    await server.waitForOutput(/Server listening/, 20_000);
    const { stdout } = await b.lab.exec(b.nsA, 'iperf3', ['-c', VETH_B_IP, '-p', String(port), '-n', String(bytes), '-J'], { timeoutMs: Math.ceil(timeoutFor(bytes)) });
    const j = JSON.parse(stdout) as {
      end?: { sum_received?: { bits_per_second?: number; seconds?: number }; cpu_utilization_percent?: { host_total?: number; remote_total?: number } };
    };
    const r = j.end?.sum_received;
    if (!r?.bits_per_second || !r.seconds) throw new Error(`iperf3 gave no receiver summary:\n${stdout.slice(0, 2000)}`);
    const ms = r.seconds * 1000;
    const u = j.end?.cpu_utilization_percent ?? {};
    return {
      scenario: 'iperf3', bytes, ms, gbps: r.bits_per_second / 1e9,
      recvCpuMs: ((u.remote_total ?? 0) * ms) / 100, sendCpuMs: ((u.host_total ?? 0) * ms) / 100,
      sentSha: '', recvSha: '', shaOk: false,
    };
  } finally {
    stop();
    await server.kill();
  }
}

function sample(scenario: ScenarioId, bytes: number, ms: number, recvCpuMs: number, sendCpuMs: number, sentSha: string, recvSha: string, got: number): Sample {
  const shaOk = got === bytes && sentSha === recvSha && sentSha !== '';
  return { scenario, bytes, ms, gbps: gbps(bytes, ms), recvCpuMs, sendCpuMs, sentSha, recvSha, shaOk };
}

interface Counters {
  framesIn: number;
  framesOut: number;
  readBursts: number;
  writeBatches: number;
  tapDropsOut: number;
  kernelTapTxDrops: number;
}

async function stackCounters(b: BenchLab, end: StackEnd): Promise<Counters> {
  const f = end.frames();
  return {
    framesIn: f.in,
    framesOut: f.out,
    readBursts: end.tap.tapCounters().bursts,
    writeBatches: f.writeBatches,
    tapDropsOut: end.tap.counters.dropsOut,
    kernelTapTxDrops: await kernelTxDrops(b, end),
  };
}

async function stackDelta(b: BenchLab, end: StackEnd, before: Counters, sock: TcpSocket): Promise<NonNullable<Sample['stack']>> {
  const now = await stackCounters(b, end);
  return {
    retransmittedSegments: sock.connection.stats.retransmittedSegments,
    framesIn: now.framesIn - before.framesIn,
    framesOut: now.framesOut - before.framesOut,
    readBursts: now.readBursts - before.readBursts,
    writeBatches: now.writeBatches - before.writeBatches,
    tapDropsOut: now.tapDropsOut - before.tapDropsOut,
    kernelTapTxDrops: now.kernelTapTxDrops - before.kernelTapTxDrops,
  };
}

/** Frames the kernel dropped on their way to our TAP reader (its tail-drop queue overflowed). */
async function kernelTxDrops(b: BenchLab, end: StackEnd): Promise<number> {
  const { stdout } = await b.lab.exec(end.ns, 'ip', ['-s', '-j', 'link', 'show', 'dev', end.tap.name]);
  const j = JSON.parse(stdout) as Array<{ stats64?: { tx?: { dropped?: number } } }>;
  return j[0]?.stats64?.tx?.dropped ?? 0;
}

async function writeAll(sock: TcpSocket, data: Uint8Array): Promise<void> {
  let closed = false;
  const onClose = (): void => { closed = true; sock.emit('drain'); };
  sock.once('close', onClose);
  try {
    for (let off = 0; off < data.length; off += WRITE_CHUNK) {
      if (closed || sock.destroyed) throw new Error('socket closed while writing');
      if (!sock.write(data.subarray(off, Math.min(off + WRITE_CHUNK, data.length)))) await once(sock, 'drain');
    }
  } finally {
    sock.off('close', onClose);
  }
  sock.end();
}

/**
 * `p`, or a rejection once the Linux peer has exited without it (after a grace period when the
 * peer may legitimately exit first, as a receiver does right after it has seen the end).
 */
function unlessExited<T>(p: Promise<T>, peer: LabProcess, exitIsNormal = false): Promise<T> {
  const died = peer.exited.then(async (e) => {
    if (exitIsNormal) await new Promise((r) => setTimeout(r, 10_000).unref());
    throw new Error(`the Linux peer exited (${e.code ?? e.signal}) first:\n${peer.stdout.slice(-500)}${peer.stderr.slice(-2000)}`);
  });
  died.catch(() => undefined);
  return Promise.race([p, died]);
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${Math.round(ms / 1000)} s: ${what}`)), ms);
  });
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}
