import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { analyzePcap, type DataEvent, type DataKind } from '../../src/capture/flow-analysis.js';
import { findPngConverter, svgToPng, timeSequenceSvg, TSG_STYLE, type TsgInput } from '../../src/capture/tsg.js';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), '../fixtures/capture');
const tmp = mkdtempSync(join(tmpdir(), 'tsg-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  children: XmlElement[];
  text: string;
  parent: XmlElement | undefined;
}

/**
 * A small strict XML parser for what an SVG needs: declaration, elements, attributes in double
 * quotes, text with the five predefined entities. Throws on anything not well-formed.
 */
function parseXml(src: string): XmlElement {
  let i = 0;
  const decl = /^<\?xml[^?]*\?>\s*/.exec(src);
  if (decl) i = decl[0].length;
  const root: XmlElement = { name: '#document', attrs: {}, children: [], text: '', parent: undefined };
  let cur = root;
  const text = (t: string): string => {
    if (/<|&(?!(amp|lt|gt|quot|apos);)/.test(t)) throw new Error(`bad character data: ${JSON.stringify(t.slice(0, 40))}`);
    return t.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&');
  };
  while (i < src.length) {
    const lt = src.indexOf('<', i);
    if (lt < 0) {
      if (src.slice(i).trim() !== '') throw new Error('text after the root element');
      break;
    }
    cur.text += text(src.slice(i, lt));
    const gt = src.indexOf('>', lt);
    if (gt < 0) throw new Error('unterminated tag');
    const tag = src.slice(lt + 1, gt);
    i = gt + 1;
    if (tag.startsWith('/')) {
      if (tag.slice(1).trim() !== cur.name) throw new Error(`</${tag.slice(1)}> closes <${cur.name}>`);
      cur = cur.parent!;
      continue;
    }
    const m = /^([A-Za-z][\w:.-]*)((?:\s+[A-Za-z_:][\w:.-]*="[^"<]*")*)\s*(\/?)$/.exec(tag);
    if (!m) throw new Error(`malformed tag <${tag.slice(0, 60)}>`);
    const attrs: Record<string, string> = {};
    for (const a of m[2]!.matchAll(/([A-Za-z_:][\w:.-]*)="([^"]*)"/g)) {
      if (a[1]! in attrs) throw new Error(`duplicate attribute ${a[1]}`);
      attrs[a[1]!] = text(a[2]!);
    }
    const el: XmlElement = { name: m[1]!, attrs, children: [], text: '', parent: cur };
    if (cur === root && root.children.length > 0) throw new Error('more than one root element');
    cur.children.push(el);
    if (m[3] !== '/') cur = el;
  }
  if (cur !== root) throw new Error(`<${cur.name}> not closed`);
  if (root.children.length !== 1) throw new Error('no root element');
  return root.children[0]!;
}

function all(el: XmlElement, pred: (e: XmlElement) => boolean, out: XmlElement[] = []): XmlElement[] {
  if (pred(el)) out.push(el);
  for (const c of el.children) all(c, pred, out);
  return out;
}
const byClass = (root: XmlElement, cls: string): XmlElement => {
  const found = all(root, (e) => e.attrs.class === cls);
  expect(found).toHaveLength(1);
  return found[0]!;
};

describe('time-sequence graph', () => {
  it('the XML checker rejects what is not well-formed', () => {
    expect(() => parseXml('<svg><g></svg>')).toThrow();
    expect(() => parseXml('<svg><text>a < b</text></svg>')).toThrow();
    expect(() => parseXml('<svg x="1" x="2"/>')).toThrow();
    expect(() => parseXml('<svg/><svg/>')).toThrow();
    expect(parseXml('<?xml version="1.0"?>\n<svg a="&amp;"><t>x &lt; y</t></svg>').children[0]!.text).toBe('x < y');
  });

  it('hand-made events: one bar per segment in its class, ACK and window steps, SACK bars, escaped marks, legend', () => {
    const kinds: DataKind[] = ['new', 'new', 'new', 'retransmission', 'spurious', 'reordered', 'duplicate', 'new'];
    const data: DataEvent[] = kinds.map((kind, i) => ({ timeMs: 100 + i, start: 1 + i * 1000, end: 1001 + i * 1000, kind }));
    const dir: TsgInput = {
      from: '10.0.0.1:1', to: '10.0.0.2:2',
      events: {
        data,
        acks: [
          { timeMs: 101, ack: 1001, windowEdge: 9001, sack: undefined },
          { timeMs: 103, ack: 1001, windowEdge: 9001, sack: [[2001, 3001], [4001, 5001]] },
          { timeMs: 108, ack: 8001, windowEdge: 16001, sack: undefined },
        ],
        truncated: false,
      },
    };
    const marks = [{ timeMs: 102.5, label: 'offload <A&B>' }, { timeMs: 106, label: 'terminate "x"' }];
    const svg = timeSequenceSvg(dir, { marks, width: 800, height: 500 });
    const root = parseXml(svg);
    expect(root.name).toBe('svg');
    expect(root.attrs).toMatchObject({ width: '800', height: '500', xmlns: 'http://www.w3.org/2000/svg' });
    for (const k of ['new', 'retransmission', 'spurious', 'reordered', 'duplicate'] as const) {
      const g = byClass(root, `data-${k}`);
      expect(g.attrs.stroke).toBe(TSG_STYLE[k].colour);
      expect(g.children.map((c) => c.name)).toEqual(kinds.filter((x) => x === k).map(() => 'line'));
      // Vertical bars: one x, two different y.
      for (const l of g.children) {
        expect(l.attrs.x1).toBe(l.attrs.x2);
        expect(Number(l.attrs.y1)).toBeGreaterThan(Number(l.attrs.y2));
      }
    }
    // Bars go up with the sequence and right with time.
    const news = byClass(root, 'data-new').children;
    expect(Number(news[1]!.attrs.x1)).toBeGreaterThan(Number(news[0]!.attrs.x1));
    expect(Number(news[1]!.attrs.y2)).toBeLessThan(Number(news[0]!.attrs.y2));
    // Step lines: n points plus one riser per change after the first.
    expect(byClass(root, 'ack').attrs.points!.split(' ')).toHaveLength(3 + 2);
    expect(byClass(root, 'window').attrs.points!.split(' ')).toHaveLength(3 + 2);
    expect(byClass(root, 'sack').children).toHaveLength(2);
    const markEls = all(root, (e) => e.attrs.class === 'mark');
    expect(markEls.map((m) => m.children.find((c) => c.name === 'text')!.text)).toEqual(['offload <A&B>', 'terminate "x"']);
    expect(svg).toContain('offload &lt;A&amp;B&gt;');
    // Each mark's line is where its time is: between the bars of the segments around it.
    const markX = Number(markEls[0]!.children[0]!.attrs.x1);
    expect(markX).toBeGreaterThan(Number(news[2]!.attrs.x1));
    expect(markX).toBeLessThan(Number(byClass(root, 'data-retransmission').children[0]!.attrs.x1));
    const legend = all(byClass(root, 'legend'), (e) => e.attrs.class === 'legend-entry').map((e) => e.children.find((c) => c.name === 'text')!.text);
    expect(legend).toEqual(['data', 'retransmission', 'spurious retransmission', 'reordered', 'network duplicate', 'cumulative ACK', 'receive window edge', 'SACK block', 'mark']);
    expect(byClass(root, 'x-label').text).toBe('time (ms since first packet)');
    expect(byClass(root, 'y-label').text).toBe('relative sequence number (KiB)');
    expect(byClass(root, 'title').text).toBe('10.0.0.1:1 -> 10.0.0.2:2');
  });

  it('an empty direction still gives a valid graph', () => {
    const root = parseXml(timeSequenceSvg({ from: 'a', to: 'b', events: { data: [], acks: [], truncated: true } }));
    expect(byClass(root, 'data-new').children).toHaveLength(0);
    expect(byClass(root, 'truncated').text).toBe('events truncated');
  });

  it('a real capture with loss: as many bars per class as the analysis has segments', async () => {
    const a = await analyzePcap(join(fixtures, 'loss-sender.pcap'));
    const dir = a.connections[0]!.ab;
    const t0 = dir.events.data[0]!.timeMs;
    const svg = timeSequenceSvg(dir, { marks: [{ timeMs: t0 + 5, label: 'offload' }] });
    const root = parseXml(svg);
    const count = (k: DataKind): number => dir.events.data.filter((e) => e.kind === k).length;
    expect(count('retransmission')).toBe(dir.retransmissions.needed.segments);
    expect(count('retransmission')).toBeGreaterThan(0);
    for (const k of ['new', 'retransmission', 'spurious', 'reordered', 'duplicate'] as const) {
      expect(byClass(root, `data-${k}`).children).toHaveLength(count(k));
    }
    const sackBlocks = dir.events.acks.reduce((n, e) => n + (e.sack?.length ?? 0), 0);
    expect(byClass(root, 'sack').children).toHaveLength(sackBlocks);
    expect(sackBlocks).toBe(dir.acks.sack.blocks);
    expect(all(root, (e) => e.attrs.class === 'mark')).toHaveLength(1);
    writeFileSync(join(tmp, 'loss.svg'), svg);
  });

  const converter = findPngConverter();
  if (!converter) console.log('no SVG->PNG converter (apt-get install -y librsvg2-bin, or imagemagick): skipping the PNG rendering test');
  it.skipIf(!converter)(`svgToPng renders a PNG of the requested size (with ${converter})`, async () => {
    const a = await analyzePcap(join(fixtures, 'small-full-sll.pcap'));
    const svg = timeSequenceSvg(a.connections[0]!.ab, { width: 640, height: 400 });
    const out = join(tmp, 'small.png');
    expect(await svgToPng(svg, out)).toBe(true);
    const png = readFileSync(out);
    expect(png.subarray(0, 8).toString('hex')).toBe('89504e470d0a1a0a');
    expect(png.subarray(12, 16).toString('ascii')).toBe('IHDR');
    expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([640, 400]);
    await expect(svgToPng('<svg', join(tmp, 'bad.png'))).rejects.toThrow(/failed/);
  });

  it('without a converter on PATH (a stand-in `convert` that is not ImageMagick) svgToPng resolves false', async () => {
    const bin = join(tmp, 'bin');
    mkdirSync(bin, { recursive: true });
    writeFileSync(join(bin, 'convert'), '#!/bin/sh\necho "convert: ImageMagick is not installed here" >&2\nexit 1\n');
    chmodSync(join(bin, 'convert'), 0o755);
    const saved = process.env.PATH;
    process.env.PATH = bin;
    try {
      expect(findPngConverter()).toBeUndefined();
      expect(await svgToPng('<svg xmlns="http://www.w3.org/2000/svg"/>', join(tmp, 'none.png'))).toBe(false);
    } finally {
      process.env.PATH = saved;
    }
  });
});
