/**
 * Issue 5: a transfer each way between the host stack and Linux kernel TCP while the connection is
 * terminated and offloaded again every 100 ms (the target service on a TAP, the host over IPC).
 * Checked: SHA-256 equal on both ends, no stream gap and no RST from our side in an independent
 * tcpdump capture, Linux resets only after both FINs (like host-tap.test.ts: a late duplicate ACK
 * of ours may meet its closed socket), many hand-overs each way.
 *
 * On the loss-free path the hand-overs must be invisible: no end ever reports a hole, no RST at all,
 * and (on a machine that is not starved of CPU) no retransmission. That needs the hand-over barrier (docs/ipc-protocol.md section 7): segments that reached the host
 * during an initiate are forwarded to the target, and the target processes its own wire segments
 * only after them, so it never reports a hole.
 */
import { randomBytes } from 'node:crypto';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { afterEach, describe, expect, it } from 'vitest';
import { verdict } from '../../src/capture/index.js';
import { tapLabSkipReason } from '../support/tap-lab-available.js';
import type { FlowAnalysis } from '../../src/capture/index.js';
import type { TcpSocket } from '../../src/host/socket.js';
import type { WallImpairment } from '../support/host-impair.js';
import { Collector, writeAll } from '../support/host-sim.js';
import { expectExactExchange, expectWholeConnection } from '../support/interop-checks.js';
import { Peer, STACK_IP, TAP_KERNEL_IP, until } from '../support/host-lab.js';
import { buildOffloadRig, startPcap, unfinishedTransferReport, type OffloadRig } from '../support/offload-lab.js';
import { toggleEvery, type HandOver, type Toggler } from '../support/handover-toggler.js';

const reason = tapLabSkipReason(['ip', 'tcpdump']);
if (reason) console.warn(`skipping terminate/re-offload interop tests: ${reason}`);

const MB = 1024 * 1024;
const envMb = (name: string): number => Number(process.env[name] ?? 0) * MB;

/** Under 2 % loss with a hand-over every 100 ms a loaded machine moved ~0.15 MB/s: 8 s per MB. */
function transferWaitMs(bytes: number): number {
  return Math.max(120_000, (bytes / MB) * 8_000);
}

/** The transfer's outcome; `expectExact()` asserts both streams (after the caller printed the diagnostics). */
async function cycleTransfer(rig: OffloadRig, port: number, up: Uint8Array, bytes: number): Promise<{ toggler: Toggler; secs: number; sock: TcpSocket; received: number; expectExact(): void }> {
  const peer = await Peer.start(rig, { role: 'server', port, send: bytes, close: 'after-peer-end' });
  const sock = rig.stack.connect({ host: rig.peerIp, port });
  const c = new Collector(sock);
  const t0 = Date.now();
  await until(() => sock.offloaded || c.closed, 10_000, 'first offload');
  void writeAll(sock, up);
  const toggler = toggleEvery(sock, () => 100);
  let report;
  try {
    const waitMs = transferWaitMs(bytes);
    [report] = await Promise.all([peer.done(waitMs), until(() => c.closed, waitMs, 'stack socket closed')]);
  } catch (e) {
    console.error(await unfinishedTransferReport(rig, sock, c.bytes, bytes));
    throw e;
  } finally {
    await toggler.stop();
  }
  const secs = (Date.now() - t0) / 1000;
  return { toggler, secs, sock, received: c.bytes, expectExact: () => expectExactExchange(c, report, up, bytes) };
}

interface Outcome {
  analysis: FlowAnalysis;
  toggler: Toggler;
  handOvers: HandOver[];
  /** Longest event-loop stall of this process (host and target) during the transfer, ms. */
  maxLoopLagMs: number;
}

/**
 * Linux's shortest loss-probe timeout: tcp_schedule_loss_probe arms 2 * SRTT + TCP_TIMEOUT_MIN
 * (2 jiffies: 2 ms at HZ=1000, 8 ms at this machine's HZ=250) with more than one segment out.
 */
const LINUX_MIN_PROBE_MS = 2;

/**
 * For each retransmission in `d` (data from `d.from`): when the receiver's last ACK about this data
 * before it was sent, and when it was sent (epoch ms).
 */
function silencesBeforeRetransmissions(d: FlowAnalysis['connections'][number]['ab']): Array<{ fromMs: number; atMs: number }> {
  const acks = d.events.acks;
  const out: Array<{ fromMs: number; atMs: number }> = [];
  let i = 0;
  for (const e of d.events.data) {
    while (i < acks.length && acks[i]!.timeMs <= e.timeMs) i++;
    if (e.kind === 'retransmission' || e.kind === 'spurious') out.push({ fromMs: i === 0 ? -Infinity : acks[i - 1]!.timeMs, atMs: e.timeMs });
  }
  return out;
}

type Direction = FlowAnalysis['connections'][number]['ab'];

/** Whether [a, b] meets a hand-over; `hs` sorted by start. */
function meetsHandOver(hs: HandOver[], a: number, b: number): HandOver | undefined {
  return hs.find((h) => h.startMs <= b && h.endMs >= a);
}

/**
 * The ACK silences the receiver of `d` left while `d`'s sender had data out, split by whether they
 * meet a hand-over: the longest silence meeting each hand-over, by kind, and the longest elsewhere.
 */
function ackSilencesByHandOver(d: Direction, hs: HandOver[]): { terminate: number[]; offload: number[]; elsewhereMaxMs: number } {
  const acks = d.events.acks;
  const data = d.events.data;
  const out = { terminate: [] as number[], offload: [] as number[], elsewhereMaxMs: 0 };
  if (data.length === 0 || acks.length < 2) return out;
  const perHandOver = new Map<HandOver, number>();
  let j = 0;
  let sentEnd = 0; // highest relative sequence sent up to the ACK at hand
  for (let i = 1; i < acks.length; i++) {
    const a = acks[i - 1]!.timeMs;
    const b = acks[i]!.timeMs;
    while (j < data.length && data[j]!.timeMs <= a) sentEnd = Math.max(sentEnd, data[j++]!.end);
    // Nothing unacknowledged after this ACK: the sender had nothing to time out on.
    if (sentEnd <= acks[i - 1]!.ack) continue;
    const h = meetsHandOver(hs, a, b);
    if (h) perHandOver.set(h, Math.max(perHandOver.get(h) ?? 0, b - a));
    else out.elsewhereMaxMs = Math.max(out.elsewhereMaxMs, b - a);
  }
  for (const [h, ms] of perHandOver) out[h.kind].push(ms);
  return out;
}

function quantiles(xs: number[]): string {
  if (xs.length === 0) return 'none';
  const s = [...xs].sort((x, y) => x - y);
  const q = (p: number): string => s[Math.min(s.length - 1, Math.floor(p * s.length))]!.toFixed(1);
  return `n ${s.length}, median ${q(0.5)}, p99 ${q(0.99)}, max ${s[s.length - 1]!.toFixed(1)} ms`;
}

/** No RST from us; an RST from Linux only once both FINs are on the wire (its socket is gone). */
function expectNoEarlyReset(a: FlowAnalysis, ourIp: string): void {
  const conn = a.connections[0]!;
  const ours = [conn.ab, conn.ba].find((d) => d.from.startsWith(`${ourIp}:`))!;
  const theirs = ours === conn.ab ? conn.ba : conn.ab;
  expect(ours.rst).toBeUndefined();
  if (theirs.rst) {
    expect(ours.fin).toBeDefined();
    expect(theirs.fin).toBeDefined();
    expect(theirs.rst.firstMs).toBeGreaterThanOrEqual(Math.max(ours.fin!.firstMs, theirs.fin!.firstMs));
  }
}

describe.skipIf(reason !== '')('terminate and re-offload every 100 ms during transfers against Linux TCP (issue 5)', () => {
  let rig: OffloadRig | undefined;
  const outcomes = new Map<string, Outcome>();

  afterEach(async () => {
    await rig?.lab.teardown();
    rig = undefined;
  });

  const cases: Array<{ name: string; bytes: number; impair: WallImpairment | undefined; port: number; linuxRateKbit?: number }> = [
    // Loss-free: 32 MB each way, ~3-8 s, as fast as the stack goes. The same over a link slower
    // than the stack (Linux's side shaped by tbf, or netem's rate where the kernel has netem):
    // 32 MB each way, ~7 s at 40 Mbit/s. Under 2 % loss + reordering the size issue 5 asks for,
    // 100 MB each way: 128 s alone here with ~620 hand-overs each way (every terminate with
    // out-of-order data is a SACK renege, R18, so Linux resends a lot; docs/loss-recovery.md).
    // TERMINATE_INTEROP_CLEAN_MB / TERMINATE_INTEROP_SHAPED_MB / TERMINATE_INTEROP_LOSS_MB override.
    { name: 'loss-free path', bytes: envMb('TERMINATE_INTEROP_CLEAN_MB') || 32 * MB, impair: undefined, port: 5201 },
    { name: 'loss-free 40 Mbit/s link', bytes: envMb('TERMINATE_INTEROP_SHAPED_MB') || 32 * MB, impair: undefined, port: 5203, linuxRateKbit: 40_000 },
    { name: '2 % loss and reordering', bytes: envMb('TERMINATE_INTEROP_LOSS_MB') || 100 * MB, impair: { delayMs: 1, lossPct: 2, reorderPct: 2, seed: 'issue5' }, port: 5202 },
  ];

  for (const { name, bytes, impair, port, linuxRateKbit } of cases) {
    it(`spec 6 / issue 5, ${name}: ${bytes / MB} MB each way, terminate/offload alternately every 100 ms: SHA-256 equal on both ends, capture without stream gap, no RST before both FINs`, async () => {
      rig = await buildOffloadRig({ policy: 'after-handshake', impair });
      if (linuxRateKbit) await rig.lab.setNetem(rig.peerNs, rig.peerDev, { ratekbit: linuxRateKbit });
      const cap = await startPcap(rig, `tcp port ${port}`);
      const up = randomBytes(bytes); // before the lag monitor: 32 MB of random bytes block the loop for a while
      const lag = monitorEventLoopDelay({ resolution: 1 });
      lag.enable();
      const { toggler, secs, sock, received, expectExact } = await cycleTransfer(rig, port, up, bytes);
      lag.disable();
      const maxLoopLagMs = lag.max / 1e6;
      const analysis = await cap.stop();
      const st = rig.service.status();
      const v = verdict(analysis);
      const rtx = analysis.connections.map((k) => [k.ab, k.ba].map((d) => `${d.from}->${d.to} rtx ${d.retransmissions.segments}, rst ${d.rst?.count ?? 0}`).join(', '));
      console.info(`issue 5 (${name}): ${bytes / MB} MB each way in ${secs.toFixed(1)} s; ${toggler.terminates} terminates, ${toggler.offloads} re-offloads, errors ${JSON.stringify(toggler.errors)}; ` +
        `event loop max lag ${maxLoopLagMs.toFixed(1)} ms; TcpForward messages ${rig.sentToTarget.get('TcpForward') ?? 0}; host offload ${JSON.stringify(rig.stack.offload!.stats)}; core ${JSON.stringify(st.counters.core)}; capture ${rtx.join('; ')}; notes: ${v.notes.join(' | ') || 'none'}` +
        (rig.impaired ? `; impair out ${JSON.stringify(rig.impaired.out.stats)} in ${JSON.stringify(rig.impaired.in.stats)}` : ''));
      outcomes.set(name, { analysis, toggler, handOvers: toggler.handOvers, maxLoopLagMs });
      const offloadStats = rig.stack.offload!.stats;
      console.info(`issue 5 (${name}): the stack read ${received} of ${bytes} bytes; read stream ended by: ${sock.endedBy ?? 'nothing'}; bytes the target returned after that: ${sock.receiveDiscarded}`);
      if (received !== bytes || sock.receiveDiscarded > 0) console.error(`short read; last log lines:\n${rig.logTail().slice(-60).join('\n')}`);
      expect(sock.receiveDiscarded, `received bytes returned after the read stream ended (${sock.endedBy ?? 'not ended'})`).toBe(0);
      if (offloadStats.receiveMismatches > 0) console.error(`receive stream mismatches; last log lines:\n${rig.logTail().filter((l) => !l.includes('"level":30,') || l.includes('mismatch')).slice(-60).join('\n')}`);
      expect(offloadStats.receiveMismatches, 'hand-overs where RcvNxt and the bytes given to the application disagree').toBe(0);
      expectExact();
      expect(toggler.errors).toEqual([]);
      // At 100 ms the transfer saw many hand-overs each way.
      // Every 100 ms for as long as the transfer runs: how many depends on the machine's speed
      // (1-2 MB under loss can finish in under a second on a quiet machine); at least two each.
      expect(toggler.terminates).toBeGreaterThanOrEqual(2);
      expect(toggler.offloads).toBeGreaterThanOrEqual(2);
      expect(st.counters.core.framesOffloaded).toBeGreaterThan(0);
      expect(v.problems).toEqual([]);
      expectWholeConnection(analysis, { noRst: false });
      expectNoEarlyReset(analysis, STACK_IP);
      if (rig.impaired) expect(rig.impaired.out.stats.dropped + rig.impaired.in.stats.dropped).toBeGreaterThan(0);
    }, transferWaitMs(bytes) + 30_000);
  }

  // Neither end ever reports a hole (no SACK block other than a D-SACK) and we never reset (Linux
  // only after both FINs, checked above). A retransmission can then only come from a timer: Linux
  // probes (TLP, 2 * SRTT + 2 jiffies) when no ACK came for that long while its window allowed no
  // new data. A terminate holds the ACKs from the target's stop until the host has resumed; here
  // host and target share one process whose turns take tens of ms under load (event-loop lag
  // printed), and the held ACKs are printed per hand-over (issue 5 keeps that criterion open:
  // retransmissions meeting a hand-over are named). So: every retransmission must come after an
  // ACK silence of at least Linux's shortest probe timeout; a hand-over that made an end see a
  // hole would show as a fast retransmit right after duplicate ACKs instead.
  /** Holes, RSTs and the ACKs held per hand-over, checked and printed; returns the retransmissions. */
  function lossFreeChecks(name: string): Array<{ dir: string; silenceMs: number; handOver: HandOver | undefined }> {
    const o = outcomes.get(name);
    expect(o, `the ${name} transfer above ran`).toBeDefined();
    if (o === undefined) return [];
    const out: Array<{ dir: string; silenceMs: number; handOver: HandOver | undefined }> = [];
    const conn = o.analysis.connections[0]!;
    for (const d of [conn.ab, conn.ba]) {
      const dir = `${d.from} -> ${d.to}`;
      const holes = d.acks.sack.blocks - d.acks.sack.dsackBlocks;
      expect(holes, `SACK blocks reporting a hole in ${dir}`).toBe(0);
      expect(d.events.truncated, 'every segment kept for the timing check').toBe(false);
      const by = ackSilencesByHandOver(d, o.handOvers);
      console.info(`issue 5 ${name} ${dir}: longest ACK silence with data out, per terminate: ${quantiles(by.terminate)}; per offload: ${quantiles(by.offload)}; elsewhere ${by.elsewhereMaxMs.toFixed(1)} ms`);
      const rtx = silencesBeforeRetransmissions(d).map((r) => ({ dir, silenceMs: r.atMs - r.fromMs, handOver: meetsHandOver(o.handOvers, r.fromMs, r.atMs) }));
      console.info(`issue 5 ${name} ${dir}: ${rtx.length} retransmissions, ACK silence before each: ${rtx.map((r) => `${r.silenceMs.toFixed(1)} ms${r.handOver ? ` (${r.handOver.kind})` : ''}`).join(', ') || 'none'}; event loop max lag ${o.maxLoopLagMs.toFixed(1)} ms`);
      for (const r of rtx.filter((x) => x.handOver)) console.warn(`issue 5 ${name}: a probe retransmission ${dir} after ${r.silenceMs.toFixed(1)} ms of ACKs held across a ${r.handOver!.kind} (${(r.handOver!.endMs - r.handOver!.startMs).toFixed(1)} ms from the host's call to its completion)`);
      if (d.from.startsWith(`${STACK_IP}:`)) expect(d.rst).toBeUndefined();
      out.push(...rtx);
    }
    return out;
  }

  it('spec 2.6 / issue 5, loss-free path: no end reports a hole, no RST from us, and no retransmission other than a timer probe after an ACK silence', () => {
    for (const r of lossFreeChecks('loss-free path')) expect(r.silenceMs, `a retransmission ${r.dir} without a silence of a probe timeout before it`).toBeGreaterThanOrEqual(LINUX_MIN_PROBE_MS);
  });

  // Over a link slower than the stack, the application keeps up and the receive window stays
  // open: a probe the held ACKs may draw carries new data, and the ACKs held by a hand-over are
  // far below Linux's retransmission timeout (200 ms minimum). So no retransmission at all.
  it('spec 2.6 / issue 5, loss-free 40 Mbit/s link (the link, not the stack, the bottleneck): the capture shows no retransmission either way, no hole, no RST from us', () => {
    const o = outcomes.get('loss-free 40 Mbit/s link');
    if (o) {
      const fromLinux = [o.analysis.connections[0]!.ab, o.analysis.connections[0]!.ba].find((d) => d.from.startsWith(`${TAP_KERNEL_IP}:`))!;
      const secs = (fromLinux.events.data.at(-1)!.timeMs - fromLinux.events.data[0]!.timeMs) / 1000;
      const mbit = (fromLinux.uniqueBytes * 8) / secs / 1e6;
      console.info(`issue 5 loss-free 40 Mbit/s link: Linux sent at ${mbit.toFixed(1)} Mbit/s; ${o.handOvers.length} hand-overs`);
      expect(mbit, 'the shaping held Linux below the stack').toBeLessThan(44);
      expect(o.handOvers.length).toBeGreaterThanOrEqual(10);
    }
    expect(lossFreeChecks('loss-free 40 Mbit/s link')).toEqual([]);
  });
});
