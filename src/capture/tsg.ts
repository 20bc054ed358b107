/**
 * Time-sequence graphs (tcptrace style) of one data direction as plain SVG: time to the right,
 * relative sequence up; each data segment a vertical bar coloured by its class, the receiver's
 * cumulative ACK and window edge as step lines, SACK blocks as bars at their ACK's time, and
 * labelled vertical marks (e.g. the moments a connection was offloaded or terminated).
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import type { DataKind, DirectionReport } from './flow-analysis.js';

/** What a graph needs of a direction: `analyzeFlows` reports, or events made by hand. */
export type TsgInput = Pick<DirectionReport, 'from' | 'to' | 'events'>;

export interface TsgMark {
  timeMs: number;
  label: string;
}

export interface TsgOptions {
  marks?: TsgMark[];
  /** Pixels, default 1000 x 600. */
  width?: number;
  height?: number;
  /** Default: "from -> to". */
  title?: string;
}

/** Colours and legend names per segment class; also the `class` attribute of each bar. */
export const TSG_STYLE: Record<DataKind | 'ack' | 'window' | 'sack' | 'mark', { colour: string; name: string }> = {
  new: { colour: '#1f5fbf', name: 'data' },
  retransmission: { colour: '#d62728', name: 'retransmission' },
  spurious: { colour: '#ff7f0e', name: 'spurious retransmission' },
  reordered: { colour: '#9467bd', name: 'reordered' },
  duplicate: { colour: '#7f7f7f', name: 'network duplicate' },
  ack: { colour: '#2ca02c', name: 'cumulative ACK' },
  window: { colour: '#b5a000', name: 'receive window edge' },
  sack: { colour: '#17becf', name: 'SACK block' },
  mark: { colour: '#000000', name: 'mark' },
};

const KINDS: DataKind[] = ['new', 'retransmission', 'spurious', 'reordered', 'duplicate'];

const MARGIN = { left: 76, right: 190, top: 36, bottom: 54 };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

function num(v: number): string {
  return (Math.round(v * 100) / 100).toString();
}

/** About `count` round tick values covering [lo, hi]. */
function ticks(lo: number, hi: number, count: number): number[] {
  const span = hi - lo;
  if (!(span > 0)) return [lo];
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.round(v / step) * step);
  return out;
}

/** The unit that keeps sequence tick labels short. */
function byteUnit(span: number): [name: string, size: number] {
  if (span >= 4 * 2 ** 30) return ['GiB', 2 ** 30];
  if (span >= 4 * 2 ** 20) return ['MiB', 2 ** 20];
  if (span >= 4 * 2 ** 10) return ['KiB', 2 ** 10];
  return ['bytes', 1];
}

/** The graph as a standalone SVG document. */
export function timeSequenceSvg(dir: TsgInput, opts: TsgOptions = {}): string {
  const width = opts.width ?? 1000;
  const height = opts.height ?? 600;
  const marks = opts.marks ?? [];
  const { data, acks } = dir.events;

  let tLo = Infinity;
  let tHi = -Infinity;
  let yLo = Infinity;
  let yHi = -Infinity;
  const time = (t: number): void => {
    if (t < tLo) tLo = t;
    if (t > tHi) tHi = t;
  };
  for (const d of data) {
    time(d.timeMs);
    yLo = Math.min(yLo, d.start);
    yHi = Math.max(yHi, d.end);
  }
  let edgeHi = -Infinity;
  for (const a of acks) {
    time(a.timeMs);
    yLo = Math.min(yLo, a.ack);
    yHi = Math.max(yHi, a.ack);
    edgeHi = Math.max(edgeHi, a.windowEdge);
  }
  // Room for the window line, up to a quarter of the plot; above that it is clipped.
  if (Number.isFinite(yLo)) yHi = Math.max(yHi, Math.min(edgeHi, yHi + (yHi - yLo) / 3));
  for (const m of marks) time(m.timeMs);
  if (!Number.isFinite(yLo)) {
    yLo = 0;
    yHi = 1;
  }
  if (yHi <= yLo) yHi = yLo + 1;
  const origin = Number.isFinite(tLo) ? tLo : 0;
  let t0 = origin;
  let t1 = Number.isFinite(tHi) ? tHi : 1;
  if (t1 <= t0) t1 = t0 + 1;
  // Breathing room so that the first and last bars are not on the axes.
  const pad = (t1 - t0) * 0.02;
  t0 -= pad;
  t1 += pad;

  const pw = width - MARGIN.left - MARGIN.right;
  const ph = height - MARGIN.top - MARGIN.bottom;
  const x = (t: number): number => MARGIN.left + ((t - t0) / (t1 - t0)) * pw;
  const y = (s: number): number => MARGIN.top + ph - ((s - yLo) / (yHi - yLo)) * ph;

  const out: string[] = [];
  out.push(`<?xml version="1.0" encoding="UTF-8"?>`);
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect class="background" x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(`<text class="title" x="${MARGIN.left}" y="22" font-size="15">${esc(opts.title ?? `${dir.from} -> ${dir.to}`)}</text>`);

  // Axes, grid and tick labels.
  out.push(`<g class="axes" stroke="#000000" stroke-width="1">`);
  out.push(`<line x1="${MARGIN.left}" y1="${MARGIN.top + ph}" x2="${MARGIN.left + pw}" y2="${MARGIN.top + ph}"/>`);
  out.push(`<line x1="${MARGIN.left}" y1="${MARGIN.top}" x2="${MARGIN.left}" y2="${MARGIN.top + ph}"/>`);
  out.push(`</g>`);
  out.push(`<g class="ticks" fill="#000000">`);
  for (const v of ticks(t0 - origin, t1 - origin, 8)) {
    const px = num(x(v + origin));
    out.push(`<line x1="${px}" y1="${MARGIN.top + ph}" x2="${px}" y2="${MARGIN.top + ph + 5}" stroke="#000000"/>`);
    out.push(`<line x1="${px}" y1="${MARGIN.top}" x2="${px}" y2="${MARGIN.top + ph}" stroke="#e6e6e6"/>`);
    out.push(`<text x="${px}" y="${MARGIN.top + ph + 18}" text-anchor="middle">${esc(num(v))}</text>`);
  }
  const [unit, unitSize] = byteUnit(yHi - yLo);
  for (const v of ticks(yLo / unitSize, yHi / unitSize, 8)) {
    const py = num(y(v * unitSize));
    out.push(`<line x1="${MARGIN.left - 5}" y1="${py}" x2="${MARGIN.left}" y2="${py}" stroke="#000000"/>`);
    out.push(`<line x1="${MARGIN.left}" y1="${py}" x2="${MARGIN.left + pw}" y2="${py}" stroke="#e6e6e6"/>`);
    out.push(`<text x="${MARGIN.left - 8}" y="${py}" text-anchor="end" dominant-baseline="middle">${esc(num(v))}</text>`);
  }
  out.push(`</g>`);
  out.push(`<text class="x-label" x="${MARGIN.left + pw / 2}" y="${height - 12}" text-anchor="middle">time (ms since first packet)</text>`);
  out.push(`<text class="y-label" transform="translate(16 ${MARGIN.top + ph / 2}) rotate(-90)" text-anchor="middle">relative sequence number (${unit})</text>`);
  out.push(`<defs><clipPath id="plot"><rect x="${MARGIN.left}" y="${MARGIN.top}" width="${pw}" height="${ph}"/></clipPath></defs>`);

  // Window edge and ACK as step lines.
  const steps = (pick: (i: number) => number): string => {
    const pts: string[] = [];
    let prev: number | undefined;
    for (let i = 0; i < acks.length; i++) {
      const px = num(x(acks[i]!.timeMs));
      const v = num(y(pick(i)));
      if (prev !== undefined) pts.push(`${px},${prev}`);
      pts.push(`${px},${v}`);
      prev = Number(v);
    }
    return pts.join(' ');
  };
  if (acks.length > 0) {
    out.push(`<polyline class="window" clip-path="url(#plot)" fill="none" stroke="${TSG_STYLE.window.colour}" stroke-width="1" points="${steps((i) => acks[i]!.windowEdge)}"/>`);
    out.push(`<polyline class="ack" fill="none" stroke="${TSG_STYLE.ack.colour}" stroke-width="1.2" points="${steps((i) => acks[i]!.ack)}"/>`);
  }

  // SACK blocks.
  out.push(`<g class="sack" stroke="${TSG_STYLE.sack.colour}" stroke-width="2">`);
  for (const a of acks) {
    if (!a.sack) continue;
    const px = num(x(a.timeMs));
    for (const [l, r] of a.sack) out.push(`<line x1="${px}" y1="${num(y(l))}" x2="${px}" y2="${num(y(r))}"/>`);
  }
  out.push(`</g>`);

  // Data segments, one group per class.
  for (const kind of KINDS) {
    out.push(`<g class="data-${kind}" stroke="${TSG_STYLE[kind].colour}" stroke-width="1.5" stroke-linecap="square">`);
    for (const d of data) {
      if (d.kind !== kind) continue;
      const px = num(x(d.timeMs));
      out.push(`<line x1="${px}" y1="${num(y(d.start))}" x2="${px}" y2="${num(y(d.end))}"/>`);
    }
    out.push(`</g>`);
  }

  // Marks.
  out.push(`<g class="marks">`);
  for (const m of marks) {
    const px = num(x(m.timeMs));
    out.push(`<g class="mark"><line x1="${px}" y1="${MARGIN.top}" x2="${px}" y2="${MARGIN.top + ph}" stroke="${TSG_STYLE.mark.colour}" stroke-dasharray="6 4"/>`
      + `<text x="${px}" y="${MARGIN.top - 4}" text-anchor="middle">${esc(m.label)}</text></g>`);
  }
  out.push(`</g>`);

  // Legend.
  const entries: Array<[string, string, boolean]> = [
    ...KINDS.map((k): [string, string, boolean] => [TSG_STYLE[k].name, TSG_STYLE[k].colour, true]),
    [TSG_STYLE.ack.name, TSG_STYLE.ack.colour, false],
    [TSG_STYLE.window.name, TSG_STYLE.window.colour, false],
    [TSG_STYLE.sack.name, TSG_STYLE.sack.colour, true],
  ];
  if (marks.length > 0) entries.push([TSG_STYLE.mark.name, TSG_STYLE.mark.colour, false]);
  const lx = width - MARGIN.right + 14;
  const ly = MARGIN.top + 4;
  out.push(`<g class="legend">`);
  out.push(`<rect x="${lx - 8}" y="${ly - 4}" width="${MARGIN.right - 16}" height="${entries.length * 18 + 8}" fill="#ffffff" stroke="#999999"/>`);
  entries.forEach(([name, colour, bar], i) => {
    const ey = ly + 8 + i * 18;
    const line = bar
      ? `<line x1="${lx + 8}" y1="${ey - 6}" x2="${lx + 8}" y2="${ey + 6}" stroke="${colour}" stroke-width="2"/>`
      : `<line x1="${lx}" y1="${ey}" x2="${lx + 16}" y2="${ey}" stroke="${colour}" stroke-width="2"/>`;
    out.push(`<g class="legend-entry">${line}<text x="${lx + 22}" y="${ey}" dominant-baseline="middle">${esc(name)}</text></g>`);
  });
  out.push(`</g>`);
  if (dir.events.truncated) {
    out.push(`<text class="truncated" x="${MARGIN.left + pw}" y="22" text-anchor="end" fill="#d62728">events truncated</text>`);
  }
  out.push(`</svg>`);
  return out.join('\n') + '\n';
}

// ---------------------------------------------------------------- PNG

export type PngConverter = 'rsvg-convert' | 'magick' | 'convert';

/** Detection results by PATH (a test or a caller may change PATH). */
const detected = new Map<string, PngConverter | null>();

/**
 * The first working SVG -> PNG converter on PATH: rsvg-convert (librsvg2-bin), or ImageMagick
 * (`magick`, `convert`). Each is asked for its version, so a stand-in script of the same name that
 * is not the real tool does not count.
 */
export function findPngConverter(): PngConverter | undefined {
  const key = process.env.PATH ?? '';
  const known = detected.get(key);
  if (known !== undefined) return known ?? undefined;
  const probe = (cmd: string, arg: string, mustSay: string): boolean => {
    const r = spawnSync(cmd, [arg], { encoding: 'utf8', timeout: 10_000 });
    return r.status === 0 && `${r.stdout}`.includes(mustSay);
  };
  let found: PngConverter | null = null;
  if (probe('rsvg-convert', '--version', 'rsvg-convert')) found = 'rsvg-convert';
  else if (probe('magick', '-version', 'ImageMagick')) found = 'magick';
  else if (probe('convert', '-version', 'ImageMagick')) found = 'convert';
  detected.set(key, found);
  return found ?? undefined;
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/**
 * Renders `svg` to a PNG file at `path`. Resolves false when no converter is installed; rejects
 * when the converter fails or writes something that is not a PNG.
 */
export async function svgToPng(svg: string, path: string): Promise<boolean> {
  const tool = findPngConverter();
  if (!tool) return false;
  const args = tool === 'rsvg-convert' ? ['-f', 'png', '-o', path] : ['svg:-', `png:${path}`];
  await new Promise<void>((resolve, reject) => {
    const child = spawn(tool, args, { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`${tool} failed (exit ${code}): ${stderr.trim()}`));
    });
    child.stdin.on('error', () => {}); // a failing converter may close stdin early; 'close' reports it
    child.stdin.end(svg);
  });
  const head = (await readFile(path)).subarray(0, 8);
  if (!head.equals(PNG_SIGNATURE)) throw new Error(`${tool} did not write a PNG to ${path}`);
  return true;
}
