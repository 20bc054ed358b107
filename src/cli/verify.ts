/** `chimney verify FILE.pcap`: per-flow report and a verdict; exit 1 on a gap or corruption. */
import { existsSync, readFileSync } from 'node:fs';
import { analyzePcap, verdict, type DirectionReport } from '../capture/flow-analysis.js';
import { handoversOf, parseHandoverLog, type HandoverEvent, type HandoverLog } from '../capture/handover-log.js';
import { parseArgs, type CliIo } from './io.js';

export const VERIFY_HELP = `usage: chimney verify FILE.pcap [--events LOG] [--fail-on-rst] [--json]

Reads a classic pcap (Ethernet, raw IP, Linux cooked), follows every TCP connection and reports per
direction: bytes, stream gaps (bytes never seen and never acknowledged), capture gaps (acknowledged
but missing from the capture), resent bytes that differ from the first copy, retransmissions
(needed / spurious), RSTs, and the longest pause between data segments.

--events LOG reads the target's JSON log (\`chimney target ... 2> LOG\` when stderr is not a
terminal, or --log-level info) and lists, per connection, the moments it was offloaded to the
target and handed back to the host, in seconds from the connection's first packet.

Exit codes: 0 every flow is whole; 1 a stream gap or corruption (or an RST with --fail-on-rst);
2 usage error; 3 the file cannot be read.`;

function line(d: DirectionReport): string {
  const r = d.retransmissions;
  const pause = d.longestPause ? `${d.longestPause.ms.toFixed(1)} ms` : '-';
  return `  ${d.from} -> ${d.to}: ${d.uniqueBytes} bytes, ${d.dataSegments} data segments, retransmissions ${r.segments} (needed ${r.needed.segments}, spurious ${r.spurious.segments}), stream gaps ${d.gaps.streamBytes} B, capture gaps ${d.gaps.captureBytes} B, differing ${d.overlaps.differingBytes} B, RST ${d.rst ? 'yes' : 'no'}, longest pause ${pause}`;
}

export async function runVerify(args: string[], io: CliIo): Promise<number> {
  const p = parseArgs(args, { values: ['events'], flags: ['fail-on-rst', 'json'] });
  if (p.problem || p.positional.length !== 1) {
    io.err(`chimney verify: ${p.problem ?? 'expected exactly one capture file'}\n\n${VERIFY_HELP}`);
    return 2;
  }
  const file = p.positional[0];
  if (!existsSync(file)) {
    io.err(`chimney verify: no such file: ${file}`);
    return 3;
  }
  const log = readEventsOption(p.values.get('events'), 'verify', io);
  if (log === 'error') return 3;
  const analysis = await analyzePcap(file);
  const v = verdict(analysis, { failOnRst: p.flags.has('fail-on-rst') });
  const moments = (a: string, b: string): HandoverEvent[] | undefined => (log ? handoversOf(log.events, a, b) : undefined);
  if (p.flags.has('json')) {
    io.out(JSON.stringify({
      verdict: v,
      connections: analysis.connections.map((c) => ({ a: c.a, b: c.b, ab: summary(c.ab), ba: summary(c.ba), handovers: moments(c.a, c.b) })),
    }, null, 2));
  } else {
    io.out(`${file}: ${analysis.connections.length} TCP connection(s)`);
    for (const c of analysis.connections) {
      io.out(`${c.a} <-> ${c.b}`);
      io.out(line(c.ab));
      io.out(line(c.ba));
      const h = moments(c.a, c.b);
      if (h) io.out(`  hand-overs: ${h.filter((e) => e.kind === 'offload').length} offloads, ${h.filter((e) => e.kind === 'terminate').length} terminates${h.length ? `: ${h.map((e) => `${e.kind} +${((e.timeMs - c.startMs) / 1000).toFixed(3)} s`).join(', ')}` : ''}`);
    }
    if (log && log.unreadable > 0) io.out(`note: ${log.unreadable} line(s) of the event log were not JSON and were skipped`);
    for (const n of v.notes) io.out(`note: ${n}`);
    for (const pr of v.problems) io.out(`PROBLEM: ${pr}`);
    io.out(v.ok ? 'verdict: ok' : `verdict: NOT OK (${v.problems.length} problem(s))`);
  }
  return v.ok ? 0 : 1;
}

function summary(d: DirectionReport): Record<string, unknown> {
  return {
    from: d.from, to: d.to, bytes: d.uniqueBytes, dataSegments: d.dataSegments,
    retransmissions: d.retransmissions.segments, spurious: d.retransmissions.spurious.segments,
    streamGapBytes: d.gaps.streamBytes, captureGapBytes: d.gaps.captureBytes,
    differingBytes: d.overlaps.differingBytes, rst: d.rst !== undefined, sha256: d.content.sha256,
    longestPauseMs: d.longestPause?.ms,
  };
}

/** `--events LOG`: the hand-over log, undefined when not asked for, 'error' (said) when unreadable. */
export function readEventsOption(path: string | undefined, cmd: string, io: CliIo): HandoverLog | undefined | 'error' {
  if (path === undefined) return undefined;
  try {
    return parseHandoverLog(readFileSync(path, 'utf8'));
  } catch (e) {
    io.err(`chimney ${cmd}: cannot read the event log ${path}: ${(e as Error).message}`);
    return 'error';
  }
}
