/** Medians per scenario, ratios to the same run's baseline, and the printed table. */
import type { Sample, ScenarioId } from './scenarios.js';
import type { MassTerminate, TerminateLatency } from './terminate.js';

export interface Summary {
  scenario: ScenarioId;
  label: string;
  runs: number;
  /** Medians over the runs. */
  gbps: number;
  ms: number;
  recvCpuMs: number;
  sendCpuMs: number;
  /** gbps / baseline gbps (medians of the same run); undefined without a baseline. */
  ratio: number | undefined;
  /** gbps / iperf3 gbps (medians of the same run); undefined without iperf3. */
  ratioIperf3: number | undefined;
  /** Offloaded rows: gbps / the same direction's non-offloaded stack (medians of the same run). */
  ratioStack: number | undefined;
  /**
   * Throughput per CPU-second of the stack's node process (bytes * 8 / its CPU time): what one
   * core would carry if the stack had it to itself. Userspace rows only.
   */
  stackGbpsPerCore: number | undefined;
  allGbps: number[];
  /** sha256 checked and equal in every run (iperf3: not checked). */
  verified: boolean;
}

const LABELS: Record<ScenarioId, string> = {
  'baseline': 'baseline: Linux -> Linux (veth)',
  'linux-to-stack': 'Linux -> userspace stack (TAP)',
  'stack-to-linux': 'userspace stack -> Linux (TAP)',
  'linux-to-offloaded': 'Linux -> offloaded host (TAP, target)',
  'offloaded-to-linux': 'offloaded host -> Linux (TAP, target)',
  'iperf3': 'reference: iperf3 Linux -> Linux (veth)',
};

const NOT_OFFLOADED: Partial<Record<ScenarioId, ScenarioId>> = { 'linux-to-offloaded': 'linux-to-stack', 'offloaded-to-linux': 'stack-to-linux' };

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return NaN;
  return n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
}

export function summarize(samples: readonly Sample[]): Summary[] {
  const out: Summary[] = [];
  for (const id of Object.keys(LABELS) as ScenarioId[]) {
    const mine = samples.filter((s) => s.scenario === id);
    if (!mine.length) continue;
    const side = mine[0]!.stackSide;
    const perCore = side === undefined
      ? undefined
      : median(mine.map((s) => (s.bytes * 8) / ((side === 'recv' ? s.recvCpuMs : s.sendCpuMs) * 1e6)));
    out.push({
      scenario: id, label: LABELS[id], runs: mine.length,
      gbps: median(mine.map((s) => s.gbps)), ms: median(mine.map((s) => s.ms)),
      recvCpuMs: median(mine.map((s) => s.recvCpuMs)), sendCpuMs: median(mine.map((s) => s.sendCpuMs)),
      ratio: undefined, ratioIperf3: undefined, ratioStack: undefined, stackGbpsPerCore: perCore,
      allGbps: mine.map((s) => s.gbps), verified: mine.every((s) => s.shaOk),
    });
  }
  const base = out.find((s) => s.scenario === 'baseline');
  const iperf3 = out.find((s) => s.scenario === 'iperf3');
  for (const s of out) {
    if (base) s.ratio = s.gbps / base.gbps;
    if (iperf3) s.ratioIperf3 = s.gbps / iperf3.gbps;
    const plain = NOT_OFFLOADED[s.scenario];
    const p = plain === undefined ? undefined : out.find((x) => x.scenario === plain);
    if (p) s.ratioStack = s.gbps / p.gbps;
  }
  return out;
}

function cpu(ms: number, wallMs: number): string {
  return `${(ms / 1000).toFixed(2)} s (${Math.round((100 * ms) / wallMs)} %)`;
}

const fixed = (x: number | undefined, digits: number): string => (x === undefined ? '-' : x.toFixed(digits));

export function table(rows: readonly Summary[]): string {
  const head = ['scenario', 'Gbit/s', 'ratio', 'vs iperf3', 'vs stack', 'wall', 'receiver CPU', 'sender CPU', 'stack Gbit/s/core', 'runs (Gbit/s)', 'sha256'];
  const body = rows.map((r) => [
    r.label, r.gbps.toFixed(2), fixed(r.ratio, 3), fixed(r.ratioIperf3, 3), fixed(r.ratioStack, 3), `${(r.ms / 1000).toFixed(2)} s`,
    cpu(r.recvCpuMs, r.ms), cpu(r.sendCpuMs, r.ms), fixed(r.stackGbpsPerCore, 2), r.allGbps.map((g) => g.toFixed(2)).join(' '),
    r.scenario === 'iperf3' ? 'not checked' : r.verified ? 'equal' : 'MISMATCH',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [
    line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line),
    'Gbit/s, wall: medians over the rounds, receiver clock (established -> end of stream). ratio: to the baseline',
    '(node:net endpoints hashing every byte, as ours do) of this run. CPU: user + system of each endpoint process',
    'over the transfer; the userspace stack is the node process on its side (iperf3: its own CPU report).',
    'stack Gbit/s/core: bytes * 8 / CPU time of the stack process, what it would carry with a core to itself.',
    'vs stack: offloaded rows to the non-offloaded stack in the same direction (target and host share the bench process).',
  ].join('\n');
}

function grid(head: readonly string[], body: readonly string[][]): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)];
}

export function terminateTable(lat: readonly TerminateLatency[], mass: readonly MassTerminate[]): string {
  const out: string[] = [];
  if (lat.length) {
    out.push(...grid(['terminate, outstanding send data', 'median', 'p99', 'min', 'max', 'samples', 'stream after'], lat.map((r) => [
      `${r.outstandingBytes} B`, `${r.medianMs.toFixed(3)} ms`, `${r.p99Ms.toFixed(3)} ms`, `${r.minMs.toFixed(3)} ms`, `${r.maxMs.toFixed(3)} ms`,
      String(r.samples), r.verified ? 'sha256 equal' : 'MISMATCH',
    ])));
    out.push('socket.terminateOffload() until the host engine runs the connection: host stack + TargetCore in this process,',
      'messages as sim events at one virtual instant (software only: no IPC, no wire); a fresh connection per sample.');
  }
  if (mass.length) {
    if (out.length) out.push('');
    out.push(...grid(['mass terminate (one TerminateOffload)', 'core', 'per connection', 'IPC encode+decode', 'completion', 'core runs (ms)', 'result'], mass.map((r) => [
      `${r.connections} connections`, `${r.coreMs.toFixed(1)} ms`, `${((1000 * r.coreMs) / r.connections).toFixed(1)} us`,
      `${r.ipcMs.toFixed(1)} ms`, `${(r.completionBytes / 1024).toFixed(0)} KiB`, r.coreRunsMs.map((x) => x.toFixed(0)).join(' '), r.verified ? 'all SUCCESS' : 'FAILED',
    ])));
    out.push('One TerminateOffload naming one neighbor, one path and N TCP blocks, into a bare TargetCore (0 B outstanding each);',
      'core = message in until its completion is out (same turn); medians over fresh cores.');
  }
  return out.join('\n');
}
