/**
 * `chimney start` (= `npm start`): the lab scenario. As root: a network namespace with a Linux
 * peer (node:net) on the kernel side of a TAP, the target on that TAP and the host stack in this
 * process bound to it over the IPC socket. Otherwise (or with --sim): the same target service and
 * host over the in-memory sim link to an in-process peer stack. Either way: one transfer each way,
 * offloaded after the handshake and terminated / re-offloaded a few times in the middle, digests
 * compared end to end, the wire capture judged by `analyzePcap`/`verdict`, a report, and the
 * capture plus time-sequence graphs left in `results/run-<time>/`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { analyzePcap, verdict, type ConnectionReport, type DirectionReport, type Verdict } from '../capture/flow-analysis.js';
import { PcapWriter, pcapFileSink } from '../capture/pcap-writer.js';
import { svgToPng, timeSequenceSvg } from '../capture/tsg.js';
import type { HostStack } from '../host/stack.js';
import type { TcpSocket } from '../host/socket.js';
import { labAvailable } from '../lab/availability.js';
import { Lab } from '../lab/lab.js';
import { registerForCleanup, unregisterForCleanup } from '../lab/cleanup.js';
import type { LabProcess } from '../lab/process.js';
import { withCapture } from '../link/capture-link.js';
import { ForwardingLink, type Link } from '../link/link.js';
import { WallClockScheduler } from '../link/scheduler.js';
import { createSimPair } from '../link/sim/sim-link.js';
import { Simulator } from '../link/sim/simulator.js';
import { openTapLink } from '../link/tap.js';
import { startTargetService, type TargetService } from '../target/service.js';
import { ipv4, mac } from '../wire/addresses.js';
import { HostStack as Stack } from '../host/stack.js';
import { connectHost, DEFAULT_HOST_MAC, type RunningHost } from './host.js';
import { parseArgs, type CliIo } from './io.js';
import { cliLogger, isLogLevel, LOG_LEVELS } from './log.js';

export const START_HELP = `usage: chimney start [--bytes SIZE] [--cycles N] [--sim] [--results DIR] [--log-level LEVEL]

The lab scenario (what \`npm start\` runs). As root it builds a network namespace with a Linux TCP
peer on the kernel side of a TAP, runs the offload target on the TAP and the host stack bound to
it, then transfers SIZE bytes each way (upload, then download). Each connection is offloaded to
the target after the handshake and handed back to the host and offloaded again N times in the
middle. Both ends' SHA-256 digests must match, and a tcpdump capture of the wire (taken in the
peer's namespace) must show no gap and no corruption. Not root (or --sim): the same scenario on
the in-memory sim link with an in-process peer stack; the capture is then the target's own.

  --bytes      bytes each way, with an optional K/M/G suffix (default 20M)
  --cycles     terminate + re-offload hand-overs per transfer (default 3)
  --sim        use the sim link even as root
  --results    where run-<time>/ is created (default ./results)
  --log-level  ${LOG_LEVELS.join('|')} (default warn); logs go to stderr

Leaves wire.pcap, report.json and time-sequence graphs (SVG, PNG when rsvg-convert or ImageMagick
is installed) in the run folder it names. Ctrl-C removes the namespace, devices and processes.
Exit codes: 0 digests and capture ok; 1 a check failed; 2 usage error; 3 the lab could not run.`;

const STACK_IP = '10.77.0.2';
const PEER_IP = '10.77.0.1';
const PEER_MAC = '02:c4:00:00:00:02';
const SINK_PORT = 5001;
const SOURCE_PORT = 5002;

export function parseSize(s: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)([kKmMgG]?)[bB]?$/.exec(s);
  if (!m) return undefined;
  const mult = { '': 1, k: 1 << 10, m: 1 << 20, g: 1 << 30 }[m[2].toLowerCase() as '' | 'k' | 'm' | 'g'];
  const n = Math.round(Number(m[1]) * mult);
  return n > 0 && Number.isSafeInteger(n) ? n : undefined;
}

// ---------------------------------------------------------------------------------------- peer

/**
 * The peer protocol, the same for the Linux peer and the in-process one: the sink port reads to
 * the end, reports its digest and closes; the source port sends `sourceBytes` random bytes, reports
 * their digest and closes.
 */
interface PeerResult {
  event: 'sink' | 'source';
  bytes: number;
  sha256: string;
}

/** The Linux peer: CommonJS for `node -e`, run inside the peer namespace. */
const LINUX_PEER = `
const net = require('net'); const crypto = require('crypto');
const cfg = JSON.parse(process.argv[process.argv.length - 1]);
const say = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
const fail = (where) => (e) => say({ event: 'error', where, message: e.message });
const sink = net.createServer({ allowHalfOpen: true }, (s) => {
  const h = crypto.createHash('sha256'); let n = 0;
  s.on('data', (d) => { h.update(d); n += d.length; });
  s.on('end', () => { say({ event: 'sink', bytes: n, sha256: h.digest('hex') }); s.end(); });
  s.on('error', fail('sink'));
});
const source = net.createServer({ allowHalfOpen: true }, (s) => {
  const h = crypto.createHash('sha256'); let left = cfg.sourceBytes; let n = 0;
  const pump = () => {
    while (left > 0) {
      const c = crypto.randomBytes(Math.min(65536, left)); left -= c.length; n += c.length; h.update(c);
      if (!s.write(c)) { s.once('drain', pump); return; }
    }
    s.end(); say({ event: 'source', bytes: n, sha256: h.digest('hex') });
  };
  s.on('data', () => {}); s.on('error', fail('source')); pump();
});
let up = 0; const ready = () => { if (++up === 2) say({ event: 'listening' }); };
sink.listen(cfg.sinkPort, cfg.host, ready); source.listen(cfg.sourcePort, cfg.host, ready);
`;

/** The in-process peer on a HostStack: the same protocol as LINUX_PEER. */
function servePeerOnStack(stack: HostStack, sourceBytes: number, say: (r: PeerResult) => void): void {
  stack.listen(SINK_PORT, (s) => {
    const h = createHash('sha256');
    let n = 0;
    s.on('data', (d: Buffer) => { h.update(d); n += d.length; });
    s.on('end', () => { say({ event: 'sink', bytes: n, sha256: h.digest('hex') }); s.end(); });
    s.on('error', () => undefined);
  }, { allowHalfOpen: true });
  stack.listen(SOURCE_PORT, (s) => {
    const h = createHash('sha256');
    let left = sourceBytes;
    const pump = (): void => {
      while (left > 0) {
        const c = randomBytes(Math.min(65536, left));
        left -= c.length;
        h.update(c);
        if (!s.write(c)) { s.once('drain', pump); return; }
      }
      s.end();
      say({ event: 'source', bytes: sourceBytes, sha256: h.digest('hex') });
    };
    s.on('data', () => undefined);
    s.on('error', () => undefined);
    pump();
  }, { allowHalfOpen: true });
}

// ---------------------------------------------------------------------------------------- topology

interface Topology {
  mode: 'namespace' | 'sim';
  /** What was built, for the user (names the namespace, so a leftover can be found). */
  description: string;
  host: RunningHost;
  service: TargetService;
  /** Resolves with the peer's report of its `event` connection. */
  peerResult(event: 'sink' | 'source', timeoutMs: number): Promise<PeerResult>;
  /** Stops the capture; the file is complete afterwards. Returns notes (e.g. tcpdump drops). */
  stopCapture(): Promise<string[]>;
  close(): Promise<void>;
}

function waitFor<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms); }),
  ]);
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Runs the sim link's zero-delay deliveries on the next event-loop turn after each send. */
class PumpedLink extends ForwardingLink {
  private armed = false;
  constructor(inner: Link, private readonly sim: Simulator) {
    super(inner);
  }

  send(frames: readonly Uint8Array[]): void {
    this.inner.send(frames);
    if (this.armed) return;
    this.armed = true;
    setImmediate(() => {
      this.armed = false;
      this.sim.runUntil(this.sim.now);
    });
  }
}

async function simTopology(pcapPath: string, sourceBytes: number, log: Logger): Promise<Topology> {
  const sim = new Simulator();
  const [a, b] = createSimPair(sim, { name: 'sim', mtu: 1500 });
  const sink = pcapFileSink(pcapPath);
  const targetLink = withCapture(new PumpedLink(a, sim), new PcapWriter(sink, 'ethernet'), () => Date.now());
  const dir = mkdtempSync(join(tmpdir(), 'chimney-start-'));
  const cleanups: Array<() => unknown> = [() => rmSync(dir, { recursive: true, force: true })];
  // Ctrl-C: nothing outside this process but the socket's directory to remove.
  const guard = { teardown: () => close(), teardownSync: () => rmSync(dir, { recursive: true, force: true }) };
  registerForCleanup(guard);
  const close = async (): Promise<void> => {
    for (const c of cleanups.splice(0).reverse()) await c();
    unregisterForCleanup(guard);
  };
  try {
    const service = await startTargetService({ link: targetLink, socketPath: join(dir, 'target.sock'), logger: log.child({ component: 'target' }), interfaceMac: mac(DEFAULT_HOST_MAC) });
    cleanups.push(() => service.shutdown({ graceMs: 1000 }));
    const host = await connectHost({ socket: service.socketPath, address: ipv4(STACK_IP), prefixLength: 24, policy: 'after-handshake', logger: log.child({ component: 'host' }) });
    cleanups.push(() => host.close());
    const peerSched = new WallClockScheduler();
    const peer = new Stack({ link: new PumpedLink(b, sim), mac: mac(PEER_MAC), scheduler: peerSched, ipv4: { address: ipv4(PEER_IP), prefixLength: 24 } });
    cleanups.push(() => { peer.close(); peerSched.close(); });
    const results: PeerResult[] = [];
    const waiters: Array<() => void> = [];
    servePeerOnStack(peer, sourceBytes, (r) => { results.push(r); for (const w of waiters.splice(0)) w(); });
    return {
      mode: 'sim', description: 'sim link with an in-process peer stack', host, service, close,
      async peerResult(event, timeoutMs) {
        await waitFor(new Promise<void>((res) => {
          const check = (): void => { if (results.some((r) => r.event === event)) res(); else waiters.push(check); };
          check();
        }), timeoutMs, `the peer's ${event} report`);
        return results.find((r) => r.event === event)!;
      },
      stopCapture() {
        sink.close();
        return Promise.resolve([]);
      },
    };
  } catch (e) {
    await close();
    sink.close();
    throw e;
  }
}

async function namespaceTopology(pcapPath: string, sourceBytes: number, log: Logger): Promise<Topology & { lab: Lab }> {
  const lab = new Lab();
  try {
    const ns = await lab.addNamespace('peer');
    for (const k of ['all', 'default']) await lab.sysctl(ns, `net.ipv6.conf.${k}.disable_ipv6`, 1);
    const tap = openTapLink({ name: lab.devName('t') });
    lab.adoptDevice(tap.name);
    await lab.moveLink(tap.name, ns);
    await lab.addAddress(ns, tap.name, `${PEER_IP}/24`);
    await lab.setLink(ns, tap.name, { txqueuelen: 10_000, up: true });
    const dir = mkdtempSync(join(tmpdir(), 'chimney-start-'));
    lab.onTeardown(() => rmSync(dir, { recursive: true, force: true }));
    const dump = lab.spawn(ns, 'tcpdump', ['-i', tap.name, '-nn', '-U', '--immediate-mode', '-B', '32768', '-w', pcapPath, 'tcp']);
    await dump.waitForOutput(/listening on/, 20_000);
    const service = await startTargetService({ link: tap, socketPath: join(dir, 'target.sock'), logger: log.child({ component: 'target' }), interfaceMac: mac(DEFAULT_HOST_MAC) });
    lab.onTeardown(() => service.shutdown({ graceMs: 1000 }).then(() => undefined));
    const host = await connectHost({ socket: service.socketPath, address: ipv4(STACK_IP), prefixLength: 24, gateway: ipv4(PEER_IP), policy: 'after-handshake', logger: log.child({ component: 'host' }) });
    lab.onTeardown(() => host.close());
    const peer: LabProcess = lab.spawn(ns, process.execPath, ['-e', LINUX_PEER, JSON.stringify({ host: PEER_IP, sinkPort: SINK_PORT, sourcePort: SOURCE_PORT, sourceBytes })]);
    await peer.waitForOutput(/"event":"listening"/, 20_000);
    const events = (): Array<Record<string, unknown>> => peer.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    return {
      mode: 'namespace', description: `namespace lab ${lab.id}: Linux peer in namespace ${ns} on TAP ${tap.name}`, lab, host, service,
      async peerResult(event, timeoutMs) {
        await peer.waitForOutput(new RegExp(`"event":"(${event}|error)"`), timeoutMs);
        const err = events().find((e) => e.event === 'error');
        if (err) throw new Error(`the Linux peer failed (${String(err.where)}): ${String(err.message)}`);
        return events().find((e) => e.event === event) as unknown as PeerResult;
      },
      async stopCapture() {
        await new Promise((r) => setTimeout(r, 200)); // the last frames reach the capture
        await dump.kill('SIGTERM');
        const m = /(\d+) packets? dropped by kernel/.exec(dump.stderr);
        if (!m) return ['tcpdump did not report its statistics: the capture may be incomplete'];
        return Number(m[1]) === 0 ? [] : [`tcpdump dropped ${m[1]} packets: the capture is incomplete`];
      },
      close: () => lab.teardown(),
    };
  } catch (e) {
    await lab.teardown().catch(() => undefined);
    throw e;
  }
}

// ---------------------------------------------------------------------------------------- transfer

interface TransferResult {
  direction: 'upload' | 'download';
  bytes: number;
  ms: number;
  sentSha256: string;
  receivedSha256: string;
  receivedBytes: number;
  handovers: number;
  /** Local port of the host's connection (to find it in the capture). */
  localPort: number;
  /** Hand-over instants (Date.now ms) for the graph. */
  marks: Array<{ timeMs: number; label: string }>;
}

async function writeStream(s: Duplex, bytes: number, hash: ReturnType<typeof createHash>, onBytes: (n: number) => void): Promise<void> {
  let left = bytes;
  while (left > 0) {
    if (s.destroyed) throw new Error('the connection was closed while writing');
    const c = randomBytes(Math.min(65536, left));
    left -= c.length;
    hash.update(c);
    onBytes(c.length);
    if (!s.write(c)) {
      await new Promise<void>((res, rej) => {
        const ok = (): void => { s.off('close', gone); res(); };
        const gone = (): void => { s.off('drain', ok); rej(new Error('the connection was closed while writing')); };
        s.once('drain', ok);
        s.once('close', gone);
      });
    }
  }
  s.end();
}

async function transfer(t: Topology, direction: 'upload' | 'download', bytes: number, cycles: number, timeoutMs: number, progress: (text: string) => void): Promise<TransferResult> {
  const stack = t.host.stack;
  const sock: TcpSocket = stack.connect({ host: PEER_IP, port: direction === 'upload' ? SINK_PORT : SOURCE_PORT, allowHalfOpen: true });
  const t0 = Date.now();
  let error: Error | undefined;
  sock.on('error', (e: Error) => { error ??= e; });
  await until(() => sock.offloaded || error !== undefined, 10_000, 'the connection to be offloaded after the handshake');
  if (error) throw error;
  const marks: TransferResult['marks'] = [{ timeMs: Date.now(), label: 'offload' }];
  const milestones = Array.from({ length: cycles }, (_, k) => Math.floor((bytes * (k + 1)) / (cycles + 1)));
  let moved = 0;
  let next = 0;
  let busy: Promise<void> | undefined;
  let handovers = 1;
  const handOver = (): void => {
    if (busy || next >= milestones.length || moved < milestones[next]) return;
    next++;
    busy = (async () => {
      await sock.terminateOffload();
      marks.push({ timeMs: Date.now(), label: 'terminate' });
      handovers++;
      await sock.offload();
      marks.push({ timeMs: Date.now(), label: 'offload' });
      handovers++;
    })().catch((e: Error) => { error ??= new Error(`hand-over failed: ${e.message}`); }).finally(() => { busy = undefined; handOver(); });
  };
  const count = (n: number): void => {
    moved += n;
    progress(`${direction} ${(moved / 2 ** 20).toFixed(1)}/${(bytes / 2 ** 20).toFixed(1)} MiB, ${handovers} hand-overs${sock.offloaded ? ', offloaded' : ''}`);
    handOver();
  };
  const sent = createHash('sha256');
  const received = createHash('sha256');
  let receivedBytes = 0;
  const ended = new Promise<void>((res, rej) => {
    sock.on('end', () => res());
    sock.on('close', () => (error ? rej(error) : res()));
    sock.on('error', rej);
  });
  sock.on('data', (d: Buffer) => {
    received.update(d);
    receivedBytes += d.length;
    if (direction === 'download') count(d.length);
  });
  if (direction === 'upload') await waitFor(writeStream(sock, bytes, sent, count), timeoutMs, 'the upload to be written');
  const peer = await t.peerResult(direction === 'upload' ? 'sink' : 'source', timeoutMs);
  await waitFor(ended, timeoutMs, `the ${direction} to end`);
  while (busy) await busy;
  if (direction === 'download') sock.end();
  await until(() => sock.destroyed || error !== undefined, 10_000, 'the connection to close');
  if (error) throw error;
  const ms = Date.now() - t0;
  return direction === 'upload'
    ? { direction, bytes, ms, sentSha256: sent.digest('hex'), receivedSha256: peer.sha256, receivedBytes: peer.bytes, handovers, localPort: sock.localPort, marks }
    : { direction, bytes, ms, sentSha256: peer.sha256, receivedSha256: received.digest('hex'), receivedBytes, handovers, localPort: sock.localPort, marks };
}

// ---------------------------------------------------------------------------------------- run

function runFolderName(): string {
  return `run-${new Date().toISOString().replace(/[:.]/g, '-').replace(/Z$/, '')}`;
}

function findConnection(conns: ConnectionReport[], localPort: number): ConnectionReport | undefined {
  return conns.find((c) => c.a.endsWith(`:${localPort}`) || c.b.endsWith(`:${localPort}`));
}

function dataDirection(c: ConnectionReport, r: TransferResult): DirectionReport {
  const hostIsA = c.a.endsWith(`:${r.localPort}`);
  return r.direction === 'upload' === hostIsA ? c.ab : c.ba;
}

export async function runStart(args: string[], io: CliIo): Promise<number> {
  const p = parseArgs(args, { values: ['bytes', 'cycles', 'results', 'log-level'], flags: ['sim'] });
  const bytes = parseSize(p.values.get('bytes') ?? '20M');
  const cycles = Number(p.values.get('cycles') ?? '3');
  const level = p.values.get('log-level') ?? 'warn';
  const problem = p.problem ?? (p.positional.length ? `unexpected argument '${p.positional[0]}'` : bytes === undefined ? `--bytes must be a size like 20M, not '${p.values.get('bytes')}'`
    : !Number.isInteger(cycles) || cycles < 0 || cycles > 100 ? '--cycles must be an integer 0..100' : !isLogLevel(level) ? `--log-level must be one of ${LOG_LEVELS.join(', ')}` : undefined);
  if (problem || bytes === undefined || !isLogLevel(level)) {
    io.err(`chimney start: ${problem}\n\n${START_HELP}`);
    return 2;
  }
  const log = cliLogger({ name: 'chimney', level });
  const avail = labAvailable(['ip', 'tcpdump']);
  const sim = p.flags.has('sim') || !avail.ok;
  if (!p.flags.has('sim') && !avail.ok) io.out(`chimney start: ${avail.reason}; running the same scenario on the sim link instead (no Linux peer, no kernel-side capture).`);
  const runDir = resolve(p.values.get('results') ?? 'results', runFolderName());
  mkdirSync(runDir, { recursive: true });
  const pcapPath = join(runDir, 'wire.pcap');
  const tty = process.stdout.isTTY === true;
  let shownAt = 0;
  const progress = (text: string): void => {
    // At most ten updates a second: a redraw per 64 KiB chunk would cost more than the transfer.
    if (!tty || Date.now() - shownAt < 100) return;
    shownAt = Date.now();
    process.stdout.write(`\r\x1b[K${text}`);
  };
  // At least 60 s, else 1 MiB/s: generous for a loaded 2-core machine.
  const timeoutMs = Math.max(60_000, (bytes / 2 ** 20) * 1000);

  let topo: Topology | undefined;
  const results: TransferResult[] = [];
  let failure: string | undefined;
  let captureNotes: string[] = [];
  try {
    io.out(`chimney start: ${sim ? 'sim link, in-process peer stack' : 'namespace lab, Linux peer behind a TAP'}; ${bytes} bytes each way, ${cycles} terminate/re-offload cycle(s) per transfer`);
    topo = sim ? await simTopology(pcapPath, bytes, log) : await namespaceTopology(pcapPath, bytes, log);
    io.out(`chimney start: built ${topo.description}`);
    for (const d of ['upload', 'download'] as const) {
      results.push(await transfer(topo, d, bytes, cycles, timeoutMs, progress));
      if (tty) process.stdout.write('\r\x1b[K');
    }
    captureNotes = await topo.stopCapture();
  } catch (e) {
    if (tty) process.stdout.write('\n');
    failure = (e as Error).message;
  } finally {
    if (topo) await topo.stopCapture().catch(() => []);
    await topo?.close().catch((e: Error) => { io.err(`chimney start: cleanup: ${e.message}`); });
  }
  if (failure !== undefined) {
    io.err(`chimney start: the run failed: ${failure}`);
    io.out(`results (partial): ${runDir}`);
    return topo === undefined ? 3 : 1;
  }

  const analysis = await analyzePcap(pcapPath);
  const v: Verdict = verdict(analysis, { failOnRst: false });
  const lines: string[] = [];
  // A capture that missed packets (tcpdump drops on a busy machine) is reported, not failed: the
  // digests still judge the stack, and the verdict judges what was captured.
  let ok = v.ok;
  const report: Record<string, unknown>[] = [];
  for (const r of results) {
    const digestOk = r.sentSha256 === r.receivedSha256 && r.receivedBytes === r.bytes;
    ok &&= digestOk;
    const conn = findConnection(analysis.connections, r.localPort);
    const dir = conn ? dataDirection(conn, r) : undefined;
    if (!dir) { ok = false; captureNotes.push(`the ${r.direction} connection (host port ${r.localPort}) is not in the capture`); }
    const retrans = dir ? dir.retransmissions.segments : 0;
    const mbit = (r.bytes * 8) / (r.ms / 1000) / 1e6;
    lines.push(`  ${r.direction.padEnd(8)} ${r.bytes} bytes in ${(r.ms / 1000).toFixed(2)} s (${mbit.toFixed(1)} Mbit/s), ${r.handovers} hand-overs, ${retrans} retransmitted segments, sha256 ${digestOk ? 'equal' : `DIFFERENT (sent ${r.sentSha256.slice(0, 16)}, received ${r.receivedSha256.slice(0, 16)}, ${r.receivedBytes} bytes)`}`);
    report.push({ ...r, digestOk, retransmittedSegments: retrans });
    if (dir) {
      const svg = timeSequenceSvg(dir, { marks: r.marks, title: `${r.direction}: ${dir.from} -> ${dir.to} (${r.handovers} hand-overs)` });
      const svgPath = join(runDir, `${r.direction}.svg`);
      writeFileSync(svgPath, svg);
      await svgToPng(svg, join(runDir, `${r.direction}.png`)).catch(() => false);
    }
  }
  const offload = topo!.host.stack.offload?.stats;
  writeFileSync(join(runDir, 'report.json'), `${JSON.stringify({ mode: topo!.mode, bytes, cycles, ok, transfers: report, verdict: v, captureNotes, offload, target: topo!.service.counters }, null, 2)}\n`);
  io.out(`chimney start report (${topo!.mode === 'sim' ? 'sim link' : 'namespace lab'}):`);
  for (const l of lines) io.out(l);
  io.out(`  capture  ${analysis.tcpPackets} TCP packets, verdict ${v.ok ? 'ok' : 'FAILED'}${v.problems.length ? `: ${v.problems.join('; ')}` : ''}`);
  for (const n of [...captureNotes, ...v.notes]) io.out(`  note     ${n}`);
  io.out(`  results  ${runDir} (wire.pcap, report.json, upload.svg, download.svg)`);
  io.out(ok ? 'chimney start: ok' : 'chimney start: FAILED');
  return ok ? 0 : 1;
}
