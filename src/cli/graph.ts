/** `chimney graph FILE.pcap`: time-sequence graph of one flow direction, SVG (and PNG if possible). */
import { existsSync, writeFileSync } from 'node:fs';
import { analyzePcap } from '../capture/flow-analysis.js';
import { svgToPng, timeSequenceSvg } from '../capture/tsg.js';
import { handoversOf } from '../capture/handover-log.js';
import { parseArgs, type CliIo } from './io.js';
import { readEventsOption } from './verify.js';

export const GRAPH_HELP = `usage: chimney graph FILE.pcap --out GRAPH.svg [--flow N] [--direction ab|ba] [--png GRAPH.png]
                     [--events LOG]

Draws a time-sequence graph (time right, sequence up) of one direction of one TCP connection:
data segments, retransmissions, the ACK line, the receive window and SACK ranges.
--flow picks the connection (0-based, in order of first packet; default the one with most data),
--direction picks a->b (the SYN sender's data, default) or b->a. --png also writes a PNG when
rsvg-convert or ImageMagick is installed. --events marks the moments the connection was offloaded
and handed back, from the target's JSON log (see chimney verify --help).

Exit codes: 0 written; 2 usage error; 3 the file cannot be read or has no such flow.`;

export async function runGraph(args: string[], io: CliIo): Promise<number> {
  const p = parseArgs(args, { values: ['out', 'flow', 'direction', 'png', 'events'], flags: [] });
  const out = p.values.get('out');
  if (p.problem || p.positional.length !== 1 || !out) {
    io.err(`chimney graph: ${p.problem ?? (out ? 'expected exactly one capture file' : '--out is required')}\n\n${GRAPH_HELP}`);
    return 2;
  }
  const file = p.positional[0];
  if (!existsSync(file)) {
    io.err(`chimney graph: no such file: ${file}`);
    return 3;
  }
  const log = readEventsOption(p.values.get('events'), 'graph', io);
  if (log === 'error') return 3;
  const analysis = await analyzePcap(file);
  if (analysis.connections.length === 0) {
    io.err(`chimney graph: ${file} has no TCP connection`);
    return 3;
  }
  const dirName = p.values.get('direction') ?? 'ab';
  if (dirName !== 'ab' && dirName !== 'ba') {
    io.err('chimney graph: --direction must be ab or ba');
    return 2;
  }
  let index: number;
  if (p.values.has('flow')) {
    index = Number(p.values.get('flow'));
    if (!Number.isInteger(index) || index < 0 || index >= analysis.connections.length) {
      io.err(`chimney graph: --flow must be 0..${analysis.connections.length - 1}`);
      return 3;
    }
  } else {
    index = analysis.connections.reduce((best, c, i, all) => (c[dirName].uniqueBytes > all[best][dirName].uniqueBytes ? i : best), 0);
  }
  const conn = analysis.connections[index];
  const dir = conn[dirName];
  const marks = log ? handoversOf(log.events, conn.a, conn.b).map((e) => ({ timeMs: e.timeMs, label: e.kind })) : undefined;
  const svg = timeSequenceSvg(dir, { title: `${dir.from} -> ${dir.to} (${file})`, marks });
  writeFileSync(out, svg);
  io.out(`wrote ${out} (${dir.from} -> ${dir.to}, ${dir.dataSegments} data segments${marks ? `, ${marks.length} hand-over marks` : ''})`);
  const png = p.values.get('png');
  if (png) {
    if (await svgToPng(svg, png)) io.out(`wrote ${png}`);
    else io.out('no PNG converter installed (rsvg-convert or ImageMagick): only the SVG was written');
  }
  return 0;
}
