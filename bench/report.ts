/** Medians per scenario, ratios to the same run's baseline, and the printed table. */
import type { Sample, ScenarioId } from './scenarios.js';

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
  allGbps: number[];
  shaOk: boolean;
}

const LABELS: Record<ScenarioId, string> = {
  'baseline': 'baseline: Linux -> Linux (veth)',
  'linux-to-stack': 'Linux -> userspace stack (TAP)',
  'stack-to-linux': 'userspace stack -> Linux (TAP)',
};

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
    out.push({
      scenario: id, label: LABELS[id], runs: mine.length,
      gbps: median(mine.map((s) => s.gbps)), ms: median(mine.map((s) => s.ms)),
      recvCpuMs: median(mine.map((s) => s.recvCpuMs)), sendCpuMs: median(mine.map((s) => s.sendCpuMs)),
      ratio: undefined, allGbps: mine.map((s) => s.gbps), shaOk: mine.every((s) => s.shaOk),
    });
  }
  const base = out.find((s) => s.scenario === 'baseline');
  for (const s of out) if (base) s.ratio = s.gbps / base.gbps;
  return out;
}

function cpu(ms: number, wallMs: number): string {
  return `${(ms / 1000).toFixed(2)} s (${Math.round((100 * ms) / wallMs)} %)`;
}

export function table(rows: readonly Summary[], iperf3?: { gbps: number } | { error: string }): string {
  const head = ['scenario', 'Gbit/s', 'ratio', 'wall', 'receiver node CPU', 'sender node CPU', 'runs (Gbit/s)', 'sha256'];
  const body = rows.map((r) => [
    r.label, r.gbps.toFixed(2), r.ratio === undefined ? '-' : r.ratio.toFixed(3), `${(r.ms / 1000).toFixed(2)} s`,
    cpu(r.recvCpuMs, r.ms), cpu(r.sendCpuMs, r.ms), r.allGbps.map((g) => g.toFixed(2)).join(' '), r.shaOk ? 'ok' : 'MISMATCH',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  const lines = [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)];
  lines.push('Gbit/s and wall: medians, receiver clock (established -> end of stream); ratio to the baseline of this run;');
  lines.push('CPU: user + system of each node process over the transfer (the stack is the node process on its side).');
  if (iperf3) lines.push('gbps' in iperf3 ? `reference: iperf3 over the same veth, no hashing: ${iperf3.gbps.toFixed(2)} Gbit/s` : `reference: iperf3 failed: ${iperf3.error}`);
  return lines.join('\n');
}
