/**
 * `chimney start` (= `npm start`): the lab scenario (src/lab/scenario.ts). As root: a network
 * namespace with the Linux peer (`chimney lab peer`, node:net) on the kernel side of a TAP, the
 * target on that TAP and the host stack in this process bound to it over the IPC socket. Otherwise (or with --sim): the same target service and
 * host over the in-memory sim link to an in-process peer stack. Either way: one transfer each way,
 * offloaded after the handshake and terminated / re-offloaded a few times in the middle, digests
 * compared end to end, the wire capture judged by `analyzePcap`/`verdict`, a report, and the
 * capture plus time-sequence graphs left in `results/run-<time>/`. `runScenario` is that run on
 * any `Topology`; `chimney lab stack` runs it against a peer in another container.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { analyzePcap, verdict, type ConnectionReport, type DirectionReport, type Verdict } from '../capture/flow-analysis.js';
import { PcapWriter, pcapFileSink } from '../capture/pcap-writer.js';
import { svgToPng, timeSequenceSvg } from '../capture/tsg.js';
import type { TcpSocket } from '../host/socket.js';
import { labAvailable } from '../lab/availability.js';
import { Lab } from '../lab/lab.js';
import { registerForCleanup, unregisterForCleanup } from '../lab/cleanup.js';
import type { LabProcess } from '../lab/process.js';
import { parsePeerEvents, peerRoleArgv, SCENARIO, sinkHandler, sourceHandler, type PeerEvent, type PeerResult } from '../lab/scenario.js';
import { tsNodeArgs } from '../lab/ts-child.js';
import { withCapture } from '../link/capture-link.js';
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
import { PumpedLink } from '../link/sim/pumped-link.js';

export const START_HELP = `usage: chimney start [--bytes SIZE] [--cycles N] [--sim] [--results DIR] [--log-level LEVEL]

The lab scenario (what \`npm start\` runs). As root it builds a network namespace with a Linux TCP
peer on the kernel side of a TAP, runs the offload target on the TAP and the host stack bound to
it, then transfers SIZE bytes each way (upload, then download). Each connection is offloaded to
the target after the handshake and handed back to the host and offloaded again N times in the
middle. Both ends' SHA-256 digests must match, and a tcpdump capture of the wire (taken in the
peer's namespace) must show no gap and no corruption. Not root (or --sim): the same scenario on
the in-memory sim link with an in-process peer stack; the capture is then the target's own.

  --bytes      bytes each way, with an optional K/M/G suffix (default ${SCENARIO.bytes})
  --cycles     terminate + re-offload hand-overs per transfer (default ${SCENARIO.cycles})
  --sim        use the sim link even as root
  --results    where run-<time>/ is created (default ./results)
  --log-level  ${LOG_LEVELS.join('|')} (default warn); logs go to stderr

Leaves wire.pcap, report.json and time-sequence graphs (SVG, PNG when rsvg-convert or ImageMagick
is installed) in the run folder it names. Ctrl-C removes the namespace, devices and processes.
Exit codes: 0 digests and capture ok; 1 a check failed; 2 usage error; 3 the lab could not run.`;

export function parseSize(s: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)([kKmMgG]?)[bB]?$/.exec(s);
  if (!m) return undefined;
  const mult = { '': 1, k: 1 << 10, m: 1 << 20, g: 1 << 30 }[m[2].toLowerCase() as '' | 'k' | 'm' | 'g'];
  const n = Math.round(Number(m[1]) * mult);
  return n > 0 && Number.isSafeInteger(n) ? n : undefined;
}

/**
 * How to run this `chimney` command in a child process (after `node`): the built main.js, or
 * main.ts with the TypeScript hooks when running from source (tests).
 */
export function chimneyArgv(): string[] {
  const here = fileURLToPath(import.meta.url);
  return here.endsWith('.ts') ? [...tsNodeArgs(), join(dirname(here), 'main.ts')] : [join(dirname(here), 'main.js')];
}

/** Where the peer listens, as seen from the host stack. */
export interface PeerAddress {
  ip: string;
  sinkPort: number;
  sourcePort: number;
}

// ---------------------------------------------------------------------------------------- topology

/** What a scenario runs on: a target with a host bound to it, a peer, and a capture of the wire. */
export interface Topology {
  mode: 'namespace' | 'sim' | 'remote';
  /** For the report's title. */
  label: string;
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

export function waitFor<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
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

/** The peer's report of its `event` connection, if there; throws when the peer reported an error. */
export function pickPeerResult(events: readonly PeerEvent[], event: 'sink' | 'source', who: string): PeerResult | undefined {
  const e = events.find((x) => x.event === event || x.event === 'error');
  if (e?.event === 'error') throw new Error(`${who} failed (${e.where}): ${e.message}`);
  return e as PeerResult | undefined;
}

/** A growing list of peer reports that promises can wait on. */
export class PeerEvents {
  readonly list: PeerEvent[] = [];
  private waiters: Array<() => void> = [];
  constructor(private readonly who: string) {}

  push(e: PeerEvent): void {
    this.list.push(e);
    for (const w of this.waiters.splice(0)) w();
  }

  wait(event: 'sink' | 'source', timeoutMs: number): Promise<PeerResult> {
    return waitFor(new Promise<PeerResult>((res, rej) => {
      const check = (): void => {
        try {
          const r = pickPeerResult(this.list, event, this.who);
          if (r) res(r);
          else this.waiters.push(check);
        } catch (e) {
          rej(e as Error);
        }
      };
      check();
    }), timeoutMs, `the peer's ${event} report`);
  }
}

/** tcpdump of TCP on `dev` in `ns`, written to pcapPath; stopping it reports kernel drops. */
export async function startTcpdump(lab: Lab, ns: string | null, dev: string, pcapPath: string): Promise<() => Promise<string[]>> {
  const dump = lab.spawn(ns, 'tcpdump', ['-i', dev, '-nn', '-U', '--immediate-mode', '-B', '32768', '-w', pcapPath, 'tcp']);
  await dump.waitForOutput(/listening on/, 20_000);
  return async () => {
    await new Promise((r) => setTimeout(r, 200)); // the last frames reach the capture
    await dump.kill('SIGTERM');
    const m = /(\d+) packets? dropped by kernel/.exec(dump.stderr);
    if (!m) return ['tcpdump did not report its statistics: the capture may be incomplete'];
    return Number(m[1]) === 0 ? [] : [`tcpdump dropped ${m[1]} packets: the capture is incomplete`];
  };
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
    const host = await connectHost({ socket: service.socketPath, address: ipv4(SCENARIO.stackIp), prefixLength: SCENARIO.prefixLength, policy: 'after-handshake', logger: log.child({ component: 'host' }) });
    cleanups.push(() => host.close());
    const peerSched = new WallClockScheduler();
    const peer = new Stack({ link: new PumpedLink(b, sim), mac: mac(SCENARIO.peerMac), scheduler: peerSched, ipv4: { address: ipv4(SCENARIO.peerIp), prefixLength: SCENARIO.prefixLength } });
    cleanups.push(() => { peer.close(); peerSched.close(); });
    const events = new PeerEvents('the in-process peer');
    const say = (e: PeerEvent): void => events.push(e);
    // The same protocol as the Linux peer (`chimney lab peer`), on the in-process stack.
    peer.listen(SCENARIO.sinkPort, sinkHandler(say), { allowHalfOpen: true });
    peer.listen(SCENARIO.sourcePort, sourceHandler(sourceBytes, say), { allowHalfOpen: true });
    return {
      mode: 'sim', label: 'sim link', description: 'sim link with an in-process peer stack', host, service, close,
      peerResult: (event, timeoutMs) => events.wait(event, timeoutMs),
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
    await lab.prepareLinuxPeer(ns);
    const tap = openTapLink({ name: lab.devName('t') });
    lab.adoptDevice(tap.name);
    await lab.moveLink(tap.name, ns);
    await lab.addAddress(ns, tap.name, `${SCENARIO.peerIp}/${SCENARIO.prefixLength}`);
    await lab.setLink(ns, tap.name, { txqueuelen: 10_000, up: true });
    const dir = mkdtempSync(join(tmpdir(), 'chimney-start-'));
    lab.onTeardown(() => rmSync(dir, { recursive: true, force: true }));
    const stopDump = await startTcpdump(lab, ns, tap.name, pcapPath);
    const service = await startTargetService({ link: tap, socketPath: join(dir, 'target.sock'), logger: log.child({ component: 'target' }), interfaceMac: mac(DEFAULT_HOST_MAC) });
    lab.onTeardown(() => service.shutdown({ graceMs: 1000 }).then(() => undefined));
    const host = await connectHost({ socket: service.socketPath, address: ipv4(SCENARIO.stackIp), prefixLength: SCENARIO.prefixLength, gateway: ipv4(SCENARIO.peerIp), policy: 'after-handshake', logger: log.child({ component: 'host' }) });
    lab.onTeardown(() => host.close());
    // The Linux peer is the peer role of the docker-compose lab, run in the namespace.
    const peer: LabProcess = lab.spawn(ns, process.execPath, [...chimneyArgv(), ...peerRoleArgv(), '--bytes', String(sourceBytes)]);
    await peer.waitForOutput(/"event":"listening"/, 30_000);
    return {
      mode: 'namespace', label: 'namespace lab', description: `namespace lab ${lab.id}: Linux peer in namespace ${ns} on TAP ${tap.name}`, lab, host, service,
      async peerResult(event, timeoutMs) {
        await peer.waitForOutput(new RegExp(`"event":"(${event}|error)"[^\n]*\n`), timeoutMs);
        return pickPeerResult(parsePeerEvents(peer.stdout), event, 'the Linux peer')!;
      },
      stopCapture: stopDump,
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

/** `pause`: awaited before each chunk (a hand-over runs: the stream must not finish meanwhile). */
async function writeStream(s: Duplex, bytes: number, hash: ReturnType<typeof createHash>, onBytes: (n: number) => void, pause: () => Promise<void> = async () => {}): Promise<void> {
  let left = bytes;
  while (left > 0) {
    await pause();
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

async function transfer(t: Topology, peer: PeerAddress, direction: 'upload' | 'download', bytes: number, cycles: number, timeoutMs: number, progress: (text: string) => void): Promise<TransferResult> {
  const stack = t.host.stack;
  const sock: TcpSocket = stack.connect({ host: peer.ip, port: direction === 'upload' ? peer.sinkPort : peer.sourcePort, allowHalfOpen: true });
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
    })().catch((e: Error) => {
      // The transfer may finish while a hand-over runs: a connection that has closed (or left the
      // offloadable states) is no failure, there is just nothing left to hand over.
      if (sock.destroyed || /not offloadable in state|closed or not driven/.test(e.message)) return;
      error ??= new Error(`hand-over failed: ${e.message}`);
    }).finally(() => { busy = undefined; handOver(); });
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
  // Each hand-over finishes before more is written: the upload cannot end in the middle of one.
  if (direction === 'upload') await waitFor(writeStream(sock, bytes, sent, count, async () => { while (busy) await busy; }), timeoutMs, 'the upload to be written');
  const reported = await t.peerResult(direction === 'upload' ? 'sink' : 'source', timeoutMs);
  await waitFor(ended, timeoutMs, `the ${direction} to end`);
  while (busy) await busy;
  if (direction === 'download') sock.end();
  await until(() => sock.destroyed || error !== undefined, 10_000, 'the connection to close');
  if (error) throw error;
  const ms = Date.now() - t0;
  return direction === 'upload'
    ? { direction, bytes, ms, sentSha256: sent.digest('hex'), receivedSha256: reported.sha256, receivedBytes: reported.bytes, handovers, localPort: sock.localPort, marks }
    : { direction, bytes, ms, sentSha256: reported.sha256, receivedSha256: received.digest('hex'), receivedBytes, handovers, localPort: sock.localPort, marks };
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

export interface ScenarioRun {
  /** The command, for its messages ('chimney start', 'chimney lab stack'). */
  name: string;
  /** One line on what is about to be built. */
  what: string;
  bytes: number;
  cycles: number;
  /** run-<time>/ is created in there. */
  resultsDir: string;
  peer: PeerAddress;
  build(pcapPath: string): Promise<Topology>;
}

/**
 * The scenario on any topology: one transfer each way with hand-overs, the digests, the capture's
 * verdict, the report and the run folder. Exit code: 0 ok, 1 a check failed, 3 nothing was built.
 */
export async function runScenario(o: ScenarioRun, io: CliIo): Promise<number> {
  const { name, bytes, cycles } = o;
  const runDir = resolve(o.resultsDir, runFolderName());
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
    io.out(`${name}: ${o.what}; ${bytes} bytes each way, ${cycles} terminate/re-offload cycle(s) per transfer`);
    topo = await o.build(pcapPath);
    io.out(`${name}: built ${topo.description}`);
    for (const d of ['upload', 'download'] as const) {
      results.push(await transfer(topo, o.peer, d, bytes, cycles, timeoutMs, progress));
      if (tty) process.stdout.write('\r\x1b[K');
    }
    captureNotes = await topo.stopCapture();
  } catch (e) {
    if (tty) process.stdout.write('\n');
    failure = (e as Error).message;
  } finally {
    if (topo) await topo.stopCapture().catch(() => []);
    await topo?.close().catch((e: Error) => { io.err(`${name}: cleanup: ${e.message}`); });
  }
  if (failure !== undefined) {
    io.err(`${name}: the run failed: ${failure}`);
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
  io.out(`${name} report (${topo!.label}):`);
  for (const l of lines) io.out(l);
  io.out(`  capture  ${analysis.tcpPackets} TCP packets, verdict ${v.ok ? 'ok' : 'FAILED'}${v.problems.length ? `: ${v.problems.join('; ')}` : ''}`);
  for (const n of [...captureNotes, ...v.notes]) io.out(`  note     ${n}`);
  io.out(`  results  ${runDir} (wire.pcap, report.json, upload.svg, download.svg)`);
  io.out(ok ? `${name}: ok` : `${name}: FAILED`);
  return ok ? 0 : 1;
}

/** --bytes and --cycles as `chimney start` and `chimney lab stack` take them; a problem in words. */
export function parseScenarioSize(bytesOpt: string | undefined, cyclesOpt: string | undefined): { bytes?: number; cycles: number; problem?: string } {
  const bytes = parseSize(bytesOpt ?? SCENARIO.bytes);
  const cycles = Number(cyclesOpt ?? String(SCENARIO.cycles));
  if (bytes === undefined) return { cycles, problem: `--bytes must be a size like 20M, not '${bytesOpt}'` };
  if (!Number.isInteger(cycles) || cycles < 0 || cycles > 100) return { bytes, cycles, problem: '--cycles must be an integer 0..100' };
  return { bytes, cycles };
}

export async function runStart(args: string[], io: CliIo): Promise<number> {
  const p = parseArgs(args, { values: ['bytes', 'cycles', 'results', 'log-level'], flags: ['sim'] });
  const size = parseScenarioSize(p.values.get('bytes'), p.values.get('cycles'));
  const level = p.values.get('log-level') ?? 'warn';
  const problem = p.problem ?? (p.positional.length ? `unexpected argument '${p.positional[0]}'` : size.problem ?? (!isLogLevel(level) ? `--log-level must be one of ${LOG_LEVELS.join(', ')}` : undefined));
  const bytes = size.bytes;
  if (problem || bytes === undefined || !isLogLevel(level)) {
    io.err(`chimney start: ${problem}\n\n${START_HELP}`);
    return 2;
  }
  const log = cliLogger({ name: 'chimney', level });
  const avail = labAvailable(['ip', 'tcpdump']);
  const sim = p.flags.has('sim') || !avail.ok;
  if (!p.flags.has('sim') && !avail.ok) io.out(`chimney start: ${avail.reason}; running the same scenario on the sim link instead (no Linux peer, no kernel-side capture).`);
  return runScenario({
    name: 'chimney start',
    what: sim ? 'sim link, in-process peer stack' : 'namespace lab, Linux peer behind a TAP',
    bytes, cycles: size.cycles, resultsDir: p.values.get('results') ?? 'results',
    peer: { ip: SCENARIO.peerIp, sinkPort: SCENARIO.sinkPort, sourcePort: SCENARIO.sourcePort },
    build: (pcapPath) => (sim ? simTopology(pcapPath, bytes, log) : namespaceTopology(pcapPath, bytes, log)),
  }, io);
}
