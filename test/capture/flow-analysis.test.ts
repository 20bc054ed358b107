import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  analyzeFlows, analyzePcap, FlowAnalyzer, IntervalSet, verdict, type ConnectionReport, type DirectionReport, type FlowAnalysis,
} from '../../src/capture/flow-analysis.js';
import { readPcap } from '../../src/capture/pcap-reader.js';
import { memorySink, PcapWriter } from '../../src/capture/pcap-writer.js';
import { ipv4, ipv6, mac } from '../../src/wire/addresses.js';
import { buildTcpFrame } from '../../src/wire/frame.js';
import { seqAdd } from '../../src/wire/seq.js';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, type SackBlock, type TcpOptions } from '../../src/wire/tcp-segment.js';

const here = dirname(fileURLToPath(import.meta.url));
const fixtures = join(here, '../fixtures/capture');
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

// ------------------------------------------------------------------ a conversation builder

interface Side {
  mac: Uint8Array;
  ip: number | Uint8Array;
  port: number;
  isn: number;
  ipId: number;
  ts: number;
}

interface SegOpts {
  flags?: number;
  /** Relative to the sender's ISN (1 = first data byte). */
  seq?: number;
  /** Relative to the other side's ISN. */
  ack?: number;
  payload?: Uint8Array;
  window?: number;
  options?: TcpOptions;
  /** Relative SACK blocks. */
  sack?: Array<[number, number]>;
  /** Override the IPv4 id / TSval (default: next in order). */
  ipId?: number;
  tsVal?: number;
  noTs?: boolean;
}

/** Builds both directions of one connection as Ethernet frames with src/wire, stamped in ms. */
class Conversation {
  readonly frames: Array<{ t: number; frame: Uint8Array }> = [];
  t = 1_000;
  readonly a: Side;
  readonly b: Side;

  constructor(o: { isnA?: number; isnB?: number; v6?: boolean; portA?: number } = {}) {
    this.a = { mac: mac('02:00:00:00:00:0a'), ip: o.v6 ? ipv6('fd00::a') : ipv4('10.0.0.1'), port: o.portA ?? 40000, isn: o.isnA ?? 1_000_000, ipId: 100, ts: 5_000 };
    this.b = { mac: mac('02:00:00:00:00:0b'), ip: o.v6 ? ipv6('fd00::b') : ipv4('10.0.0.2'), port: 80, isn: o.isnB ?? 7_000_000, ipId: 900, ts: 90_000 };
  }

  at(t: number): this {
    this.t = t;
    return this;
  }

  send(from: 'a' | 'b', o: SegOpts): Uint8Array {
    const [s, r] = from === 'a' ? [this.a, this.b] : [this.b, this.a];
    const flags = o.flags ?? TCP_ACK;
    const options: TcpOptions = { ...o.options };
    if (!o.noTs) options.ts = { val: o.tsVal ?? s.ts++, ecr: r.ts };
    if (o.sack) options.sack = o.sack.map(([l, rr]): SackBlock => ({ left: seqAdd(r.isn, l), right: seqAdd(r.isn, rr) }));
    const id = o.ipId ?? s.ipId++;
    const ip = typeof s.ip === 'number'
      ? { version: 4 as const, src: s.ip, dst: r.ip as number, id }
      : { version: 6 as const, src: s.ip, dst: r.ip as Uint8Array };
    const frame = buildTcpFrame({
      srcMac: s.mac, dstMac: r.mac, ip,
      segment: {
        srcPort: s.port, dstPort: r.port, seq: seqAdd(s.isn, o.seq ?? 0), ack: flags & TCP_ACK ? seqAdd(r.isn, o.ack ?? 0) : 0,
        flags, window: o.window ?? 1000, urgent: 0, options, payload: o.payload ?? new Uint8Array(0),
      },
    });
    this.frames.push({ t: this.t, frame });
    this.t += 1;
    return frame;
  }

  handshake(o: { wscaleA?: number; wscaleB?: number; mssA?: number; mssB?: number; sack?: boolean } = {}): this {
    const sack = o.sack ?? true;
    this.send('a', { flags: TCP_SYN, window: 64240, options: { mss: o.mssA ?? 1460, sackPermitted: sack, wscale: o.wscaleA ?? 7 } });
    this.send('b', { flags: TCP_SYN | TCP_ACK, ack: 1, window: 65160, options: { mss: o.mssB ?? 1400, sackPermitted: sack, wscale: o.wscaleB ?? 6 } });
    this.send('a', { ack: 1, window: 502 });
    return this;
  }

  /** `from` sends `payload` at relative seq `seq`. */
  data(from: 'a' | 'b', seq: number, payload: Uint8Array, o: SegOpts = {}): this {
    this.send(from, { flags: TCP_ACK | TCP_PSH, seq, ack: 1, payload, ...o });
    return this;
  }

  ack(from: 'a' | 'b', ack: number, o: SegOpts = {}): this {
    this.send(from, { seq: 1, ack, ...o });
    return this;
  }

  fin(from: 'a' | 'b', seq: number, ack = 1): this {
    this.send(from, { flags: TCP_FIN | TCP_ACK, seq, ack });
    return this;
  }

  /** The capture as pcap bytes, through the project's writer. */
  pcap(snaplen?: number): Uint8Array {
    const sink = memorySink();
    const w = new PcapWriter(sink, 'ethernet', snaplen ? { snaplen } : {});
    for (const { t, frame } of this.frames) w.write(frame, t);
    return sink.bytes();
  }

  async analyze(snaplen?: number): Promise<FlowAnalysis> {
    return analyzeFlows(await readPcap(this.pcap(snaplen)));
  }
}

/** Deterministic stream content. */
function stream(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

const SEG = 1000;

/** a sends `count` segments of SEG bytes; `skip` lists segments (0-based) the capture never saw. */
function bulk(c: Conversation, data: Uint8Array, o: { skip?: number[] } = {}): void {
  for (let i = 0; i * SEG < data.length; i++) {
    if (o.skip?.includes(i)) {
      c.a.ipId++;
      c.a.ts++;
      continue;
    }
    c.data('a', 1 + i * SEG, data.subarray(i * SEG, (i + 1) * SEG));
  }
}

function only(a: FlowAnalysis): ConnectionReport {
  expect(a.connections).toHaveLength(1);
  return a.connections[0]!;
}

// ------------------------------------------------------------------ interval set

describe('IntervalSet', () => {
  it('matches a per-integer reference under random adds', () => {
    const set = new IntervalSet();
    const ref = new Uint8Array(5000);
    let x = 12345;
    const rnd = (n: number): number => {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      return x % n;
    };
    let wrong = 0;
    for (let i = 0; i < 2000; i++) {
      const s = rnd(4900);
      const e = s + 1 + rnd(60);
      let had = 0;
      for (let k = s; k < e; k++) had += ref[k]!;
      let gotHad = 0;
      for (const [p, q] of set.add(s, e)) {
        for (let k = p; k < q; k++) if (ref[k] !== 1) wrong++;
        gotHad += q - p;
      }
      if (gotHad !== had) wrong++;
      for (let k = s; k < e; k++) ref[k] = 1;
    }
    expect(wrong).toBe(0);
    let measure = 0;
    let runs = 0;
    for (let k = 0; k < ref.length; k++) {
      measure += ref[k]!;
      if (ref[k] && !ref[k - 1]) runs++;
    }
    expect(set.measure).toBe(measure);
    expect(set.size).toBe(runs);
    const holes = set.holes(0, 5000);
    let holeBytes = 0;
    for (const [p, q] of holes) {
      for (let k = p; k < q; k++) if (ref[k] !== 0) wrong++;
      holeBytes += q - p;
    }
    expect(wrong).toBe(0);
    expect(holeBytes).toBe(5000 - measure);
    set.removeBelow(2500);
    let above = 0;
    for (let k = 2500; k < ref.length; k++) above += ref[k]!;
    expect(set.measure).toBe(above);
    expect(set.first()![0]).toBeGreaterThanOrEqual(2500);
  });

  it('adjacent ranges merge, and 200k in-order adds stay one range (fast)', () => {
    const set = new IntervalSet();
    const t0 = performance.now();
    for (let i = 0; i < 200_000; i++) set.add(i * 1448, (i + 1) * 1448);
    expect(set.size).toBe(1);
    expect(set.ranges()).toEqual([[0, 200_000 * 1448]]);
    expect(performance.now() - t0).toBeLessThan(2000);
  });
});

// ------------------------------------------------------------------ synthesized captures

describe('flow analysis of synthesized captures', () => {
  it('RFC 9293/7323/2018 handshake: options, negotiated values, byte counts and the stream digest', async () => {
    const c = new Conversation().handshake();
    const data = stream(10 * SEG);
    bulk(c, data);
    c.ack('b', 1 + 10 * SEG, { window: 300 }).fin('a', 1 + 10 * SEG).fin('b', 1, 2 + 10 * SEG).ack('a', 2, { seq: 2 + 10 * SEG });
    const conn = only(await c.analyze());
    expect(conn).toMatchObject({ a: '10.0.0.1:40000', b: '10.0.0.2:80', ipVersion: 4, state: 'closed' });
    expect(conn.negotiated).toEqual({ complete: true, sackPermitted: true, timestamps: true, windowScale: { a: 7, b: 6 }, mss: { ab: 1400, ba: 1460 } });
    const ab = conn.ab;
    expect(ab.synOptions).toEqual({ mss: 1460, wscale: 7, sackPermitted: true, timestamps: true, window: 64240 });
    expect(conn.ba.synOptions).toEqual({ mss: 1400, wscale: 6, sackPermitted: true, timestamps: true, window: 65160 });
    expect(ab.isn).toBe(1_000_000);
    expect(ab.stream).toEqual({ start: 1, end: 10_001, bytes: 10_000, seq: 1_000_001 });
    expect(ab).toMatchObject({ dataSegments: 10, payloadBytes: 10_000, uniqueBytes: 10_000, ackedBytes: 10_000 });
    expect(ab.fin).toMatchObject({ count: 1, seq: 10_001 });
    expect(ab.content.sha256).toBe(sha(data));
    expect(ab.content.bytes).toBe(10_000);
    // b's windows scale by b's shift (6): 300 << 6.
    expect(ab.acks.maxWindow).toBe(65160);
    expect(ab.acks.windowScaleKnown).toBe(true);
    // a's windows (1000 on every segment after the SYN) scale by a's shift (7).
    expect(conn.ba.acks.maxWindow).toBe(1000 * 128);
    expect(ab.gaps).toEqual({ capture: [], captureBytes: 0, stream: [], streamBytes: 0 });
    expect(ab.retransmissions.segments).toBe(0);
    expect(verdict([conn])).toEqual({ ok: true, problems: [], notes: [] });
  });

  it('scaled windows: the largest window and zero windows the receiver advertised', async () => {
    const c = new Conversation().handshake({ wscaleB: 7 });
    bulk(c, stream(3 * SEG));
    c.ack('b', 1 + SEG, { window: 2000 }).ack('b', 1 + 3 * SEG, { window: 0 }).ack('b', 1 + 3 * SEG, { window: 0 });
    const ab = only(await c.analyze()).ab;
    expect(ab.acks.maxWindow).toBe(2000 * 128);
    expect(ab.acks.zeroWindows).toMatchObject({ count: 2 });
    const events = ab.events.acks;
    expect(events[events.length - 3]).toMatchObject({ ack: 1 + SEG, windowEdge: 1 + SEG + 2000 * 128 });
  });

  it('a range missing from the capture and never acknowledged is a stream gap: verdict not ok', async () => {
    const c = new Conversation().handshake();
    const data = stream(10 * SEG);
    bulk(c, data, { skip: [4] });
    // The receiver acknowledges up to the hole and SACKs what is above it.
    c.ack('b', 1 + 4 * SEG, { sack: [[1 + 5 * SEG, 1 + 10 * SEG]] }).fin('a', 1 + 10 * SEG);
    const a = await c.analyze();
    const ab = only(a).ab;
    expect(ab.gaps.stream).toEqual([{ start: 4001, end: 5001, bytes: 1000, seq: 1_004_001 }]);
    expect(ab.gaps.streamBytes).toBe(1000);
    expect(ab.gaps.captureBytes).toBe(0);
    expect(ab.uniqueBytes).toBe(9000);
    expect(ab.content.sha256).toBeUndefined();
    expect(ab.content.unavailable).toBe('never captured from relative seq 4001');
    const v = verdict(a);
    expect(v.ok).toBe(false);
    expect(v.problems).toEqual([
      '10.0.0.1:40000 -> 10.0.0.2:80: stream gap: 1000 bytes at relative seq 4001-5001 (1000 B, seq 1004001) never seen and never acknowledged',
    ]);
  });

  it('a range acknowledged but missing from the capture is a capture gap, not a stream gap', async () => {
    const c = new Conversation().handshake();
    bulk(c, stream(10 * SEG), { skip: [2, 7] });
    // Cumulative ACK covers segment 2; a SACK block covers segment 7 (segment 6.. were received).
    c.ack('b', 1 + 6 * SEG, { sack: [[1 + 7 * SEG, 1 + 8 * SEG]] });
    const a = await c.analyze();
    const ab = only(a).ab;
    expect(ab.gaps.capture.map((g) => [g.start, g.end])).toEqual([[2001, 3001], [7001, 8001]]);
    expect(ab.gaps.stream).toEqual([]);
    const v = verdict(a);
    expect(v.ok).toBe(true);
    expect(v.notes[0]).toMatch(/capture gap: 2000 bytes at relative seq 2001-3001 .*7001-8001.* acknowledged by the receiver but missing from the capture/);
    expect(verdict(a, { failOnCaptureGap: true }).ok).toBe(false);
  });

  it('a retransmission with different bytes is reported as corruption with the first differing byte', async () => {
    const c = new Conversation().handshake();
    const data = stream(6 * SEG);
    bulk(c, data);
    // Resent with other boundaries (half of segment 2 and half of segment 3); one byte flipped.
    const resent = data.slice(2 * SEG + 500, 3 * SEG + 500);
    resent[700] ^= 0x5a;
    c.data('a', 1 + 2 * SEG + 500, resent);
    c.ack('b', 1 + 6 * SEG).fin('a', 1 + 6 * SEG);
    const a = await c.analyze();
    const ab = only(a).ab;
    expect(ab.overlaps).toMatchObject({ bytes: 1000, comparedBytes: 1000, uncheckedBytes: 0, differingCount: 1, differingBytes: 1 });
    const d = ab.overlaps.differing[0]!;
    // Chunks are kept per first-seen segment: the differing byte lies in segment 3's chunk.
    expect(d).toMatchObject({ start: 3001, end: 3501, firstDiff: 1 + 2 * SEG + 500 + 700 });
    expect(d.firstByte).toBe(data[2 * SEG + 500 + 700]);
    expect(d.laterByte).toBe(data[2 * SEG + 500 + 700]! ^ 0x5a);
    // The digest is of the stream as first captured.
    expect(ab.content.sha256).toBe(sha(data));
    const v = verdict(a);
    expect(v.ok).toBe(false);
    expect(v.problems).toHaveLength(1);
    expect(v.problems[0]).toContain('corruption: 1 resent range(s) differ from the first copy (1 bytes), first at relative seq 3001-3501');
    expect(v.problems[0]).toContain(`byte 3201 was 0x${data[3200]!.toString(16).padStart(2, '0')}`);
  });

  it('an identical retransmission is compared and not reported', async () => {
    const c = new Conversation().handshake();
    const data = stream(4 * SEG);
    bulk(c, data);
    c.data('a', 1 + SEG, data.subarray(SEG, 2 * SEG));
    const ab = only(await c.analyze()).ab;
    expect(ab.overlaps).toMatchObject({ bytes: 1000, comparedBytes: 1000, differingCount: 0 });
  });

  it('RFC 5681/6675: a retransmission after duplicate ACKs is needed; one of acknowledged bytes is spurious', async () => {
    const c = new Conversation().handshake();
    const data = stream(8 * SEG);
    bulk(c, data);
    // Segment 2 was lost after the capture point: the receiver ACKs up to it, SACKs above.
    c.ack('b', 1 + 2 * SEG);
    for (let k = 4; k <= 6; k++) c.ack('b', 1 + 2 * SEG, { sack: [[1 + 3 * SEG, 1 + k * SEG]] });
    c.data('a', 1 + 2 * SEG, data.subarray(2 * SEG, 3 * SEG)); // needed
    c.ack('b', 1 + 6 * SEG);
    c.data('a', 1 + 4 * SEG, data.subarray(4 * SEG, 5 * SEG)); // below the cumulative ACK: spurious
    c.ack('b', 1 + 6 * SEG, { sack: [[1 + 7 * SEG, 1 + 8 * SEG]] });
    c.data('a', 1 + 7 * SEG, data.subarray(7 * SEG, 8 * SEG)); // SACKed: spurious
    c.data('a', 1 + 6 * SEG, data.subarray(6 * SEG, 7 * SEG)); // not acknowledged: needed
    const ab = only(await c.analyze()).ab;
    expect(ab.retransmissions).toEqual({
      segments: 4, bytes: 4000,
      needed: { segments: 2, bytes: 2000 },
      spurious: { segments: 2, bytes: 2000 },
      lostBeforeCapture: { segments: 0, bytes: 0 },
    });
    expect(ab.events.data.filter((e) => e.kind !== 'new').map((e) => [e.start, e.kind])).toEqual([
      [2001, 'retransmission'], [4001, 'spurious'], [7001, 'spurious'], [6001, 'retransmission'],
    ]);
    // Same cumulative ACK, same window, data outstanding: the three SACKing ACKs at 2001 and the
    // one at 6001 are duplicate ACKs.
    expect(ab.acks.dupAcks).toBe(4);
    expect(ab.acks.sack).toEqual({ acks: 4, blocks: 4, dsackBlocks: 0, dsackBytes: 0 });
    expect(ab.overlaps.differingCount).toBe(0);
  });

  it('RFC 2883: a D-SACK block is counted apart from SACK information', async () => {
    const c = new Conversation().handshake();
    bulk(c, stream(3 * SEG));
    c.ack('b', 1 + 3 * SEG);
    c.data('a', 1 + SEG, stream(3 * SEG).subarray(SEG, 2 * SEG));
    c.ack('b', 1 + 3 * SEG, { sack: [[1 + SEG, 1 + 2 * SEG]] });
    const ab = only(await c.analyze()).ab;
    expect(ab.acks.sack).toEqual({ acks: 1, blocks: 1, dsackBlocks: 1, dsackBytes: 1000 });
    expect(ab.retransmissions.spurious.segments).toBe(1);
  });

  it('a hole filled later with a newer TSval is a retransmission the capture saw only once; same TSval and older id: reordering', async () => {
    const c = new Conversation().handshake();
    const data = stream(6 * SEG);
    // Segment 1 lost before the capture point: resent later (newer TSval, newer id).
    bulk(c, data, { skip: [1] });
    c.data('a', 1 + SEG, data.subarray(SEG, 2 * SEG));
    // Segment 7 overtaken by segment 8: it arrives late but was sent first.
    const more = stream(3 * SEG, 9);
    c.data('a', 1 + 7 * SEG, more.subarray(SEG, 2 * SEG), { tsVal: 7000, ipId: 501 });
    c.data('a', 1 + 6 * SEG, more.subarray(0, SEG), { tsVal: 7000, ipId: 500 });
    const ab = only(await c.analyze()).ab;
    expect(ab.retransmissions).toMatchObject({ segments: 1, bytes: 1000, needed: { segments: 1, bytes: 1000 }, lostBeforeCapture: { segments: 1, bytes: 1000 } });
    expect(ab.reordered).toEqual({ segments: 1, bytes: 1000 });
    expect(ab.gaps.streamBytes).toBe(0);
    expect(ab.uniqueBytes).toBe(8000);
  });

  it('IPv4 ids tell send order without timestamps', async () => {
    const c = new Conversation().handshake();
    const data = stream(12 * SEG);
    for (let i = 0; i < 12; i++) if (i !== 3) c.data('a', 1 + i * SEG, data.subarray(i * SEG, (i + 1) * SEG), { noTs: true });
    c.data('a', 1 + 3 * SEG, data.subarray(3 * SEG, 4 * SEG), { noTs: true });
    const ab = only(await c.analyze()).ab;
    expect(ab.retransmissions.lostBeforeCapture.segments).toBe(1);
    expect(ab.reordered.segments).toBe(0);
  });

  it('an exact copy (same seq, length, IPv4 id and TSval) is a network duplicate, not a retransmission', async () => {
    const c = new Conversation().handshake();
    bulk(c, stream(3 * SEG));
    const last = c.frames[c.frames.length - 1]!.frame;
    c.frames.push({ t: c.t++, frame: last });
    const ab = only(await c.analyze()).ab;
    expect(ab.duplicates).toEqual({ segments: 1, bytes: 1000 });
    expect(ab.retransmissions.segments).toBe(0);
    expect(ab.overlaps.comparedBytes).toBe(1000);
  });

  it('RFC 9293 3.8.4 keep-alives with one garbage byte are neither data nor corruption', async () => {
    const c = new Conversation().handshake();
    bulk(c, stream(2 * SEG));
    c.ack('b', 1 + 2 * SEG);
    c.at(60_000).data('a', 2 * SEG, new Uint8Array([0xee]));
    c.ack('b', 1 + 2 * SEG);
    const ab = only(await c.analyze()).ab;
    expect(ab.keepAlives).toBe(1);
    expect(ab).toMatchObject({ dataSegments: 2, payloadBytes: 2000 });
    expect(ab.overlaps.differingCount).toBe(0);
    expect(ab.retransmissions.segments).toBe(0);
    expect(ab.longestPause?.ms).toBe(1);
  });

  it('RST is reported with its time; the verdict fails on it only when asked', async () => {
    const c = new Conversation().handshake();
    bulk(c, stream(2 * SEG));
    c.at(1_500).send('b', { flags: TCP_RST | TCP_ACK, seq: 1, ack: 1 + 2 * SEG });
    const a = await c.analyze();
    const conn = only(a);
    expect(conn.state).toBe('reset');
    expect(conn.ba.rst).toEqual({ firstMs: 1_500, count: 1 });
    expect(conn.ab.rst).toBeUndefined();
    // An RST's ACK field is not taken as an acknowledgement.
    expect(conn.ab.acks.highest).toBe(1);
    expect(verdict(a).ok).toBe(true);
    expect(verdict(a).notes).toContain('10.0.0.2:80 -> 10.0.0.1:40000: RST sent by 10.0.0.2:80 (1x, first 500.000 ms after the connection\'s first packet)');
    const strict = verdict(a, { failOnRst: true });
    expect(strict.ok).toBe(false);
    expect(strict.problems).toEqual(['10.0.0.2:80 -> 10.0.0.1:40000: RST sent by 10.0.0.2:80 (1x, first 500.000 ms after the connection\'s first packet)']);
  });

  it('SYN and FIN times, SYN retransmission, and the longest pause between data segments', async () => {
    const c = new Conversation();
    c.at(100).send('a', { flags: TCP_SYN, options: { mss: 1460 }, noTs: true });
    c.at(1100).send('a', { flags: TCP_SYN, options: { mss: 1460 }, noTs: true });
    c.at(1101).send('b', { flags: TCP_SYN | TCP_ACK, ack: 1, options: { mss: 1460 }, noTs: true });
    c.at(1102).send('a', { ack: 1 });
    c.at(1200).data('a', 1, stream(SEG));
    c.at(1450).data('a', 1 + SEG, stream(SEG));
    c.at(1460).data('a', 1 + 2 * SEG, stream(SEG));
    c.at(1470).fin('a', 1 + 3 * SEG);
    const conn = only(await c.analyze());
    expect(conn.ab.syn).toEqual({ firstMs: 100, count: 2 });
    expect(conn.ba.syn).toEqual({ firstMs: 1101, count: 1 });
    expect(conn.ab.fin).toEqual({ firstMs: 1470, count: 1, seq: 3001 });
    expect(conn.ab.longestPause).toEqual({ ms: 250, fromMs: 1200, toMs: 1450 });
    // No window scale on either SYN: RFC 7323 says no scaling; no SACK; no timestamps on SYNs.
    expect(conn.negotiated).toMatchObject({ complete: true, windowScale: undefined, sackPermitted: false, timestamps: false });
    expect(conn.state).toBe('open');
  });

  it('RFC 9293 sequence wrap: a stream across 2^32 is counted without gaps', async () => {
    const c = new Conversation({ isnA: 0xffff_f000 }).handshake();
    const data = stream(20 * SEG);
    bulk(c, data);
    c.ack('b', 1 + 20 * SEG).fin('a', 1 + 20 * SEG);
    const ab = only(await c.analyze()).ab;
    expect(ab.stream).toMatchObject({ start: 1, end: 20_001, bytes: 20_000, seq: 0xffff_f001 });
    expect(ab).toMatchObject({ uniqueBytes: 20_000, ackedBytes: 20_000 });
    expect(ab.gaps.streamBytes + ab.gaps.captureBytes).toBe(0);
    expect(ab.content.sha256).toBe(sha(data));
  });

  it('a stream of 5 GiB (relative sequence numbers past 2^32) stays exact', () => {
    // Decoded packets straight into the analyzer: 64 KB segments, payload not captured.
    const an = new FlowAnalyzer();
    const isn = 0x7000_0000;
    const seg = (seq: number, ack: number, flags: number, len: number, from: 'a' | 'b', t: number) => an.addTcp({
      timeMs: t, ipVersion: 4, src: from === 'a' ? '10.0.0.1' : '10.0.0.2', dst: from === 'a' ? '10.0.0.2' : '10.0.0.1', ipId: undefined,
      payloadLength: len,
      tcp: { srcPort: from === 'a' ? 1 : 2, dstPort: from === 'a' ? 2 : 1, seq: seq >>> 0, ack: ack >>> 0, flags, window: 100, urgent: 0, options: {}, payload: new Uint8Array(0) },
    });
    seg(isn, 0, TCP_SYN, 0, 'a', 0);
    seg(5, isn + 1, TCP_SYN | TCP_ACK, 0, 'b', 0);
    const total = 5 * 2 ** 30;
    const len = 65_536;
    for (let off = 0; off < total; off += len) {
      seg(isn + 1 + off, 6, TCP_ACK, len, 'a', off / 1e6);
      if ((off / len) % 8 === 7) seg(6, isn + 1 + off + len, TCP_ACK, 0, 'b', off / 1e6);
    }
    seg(isn + 1 + total, 6, TCP_ACK | TCP_FIN, 0, 'a', 6000);
    seg(6, isn + 2 + total, TCP_ACK, 0, 'b', 6000);
    const ab = an.finish().connections[0]!.ab;
    expect(ab.stream).toMatchObject({ start: 1, end: total + 1, bytes: total });
    expect(ab).toMatchObject({ uniqueBytes: total, ackedBytes: total, payloadBytes: total });
    expect(ab.retransmissions.segments).toBe(0);
    expect(ab.gaps.streamBytes + ab.gaps.captureBytes).toBe(0);
    expect(ab.fin!.seq).toBe(total + 1);
  });

  it('a new SYN with another ISN on the same 4-tuple starts a second connection', async () => {
    const c = new Conversation().handshake();
    bulk(c, stream(SEG));
    c.fin('a', 1 + SEG);
    c.a.isn = 5_000_000;
    c.b.isn = 9_000_000;
    c.handshake();
    bulk(c, stream(2 * SEG));
    const a = await c.analyze();
    expect(a.connections.map((x) => [x.ab.isn, x.ab.uniqueBytes])).toEqual([[1_000_000, 1000], [5_000_000, 2000]]);
  });

  it('a capture that starts mid-connection: no ISN, windows unscaled, relative seq 1 is the first byte seen', async () => {
    const c = new Conversation().handshake();
    bulk(c, stream(5 * SEG));
    c.ack('b', 1 + 5 * SEG);
    c.frames.splice(0, 5); // drop the handshake and the first two data segments
    const ab = only(await c.analyze()).ab;
    expect(ab.isn).toBeUndefined();
    expect(ab.acks.windowScaleKnown).toBe(false);
    expect(ab.stream).toMatchObject({ start: 1, end: 3001, bytes: 3000, seq: 1_002_001 });
    expect(ab.acks.highest).toBe(3001);
    expect(ab.gaps.streamBytes + ab.gaps.captureBytes).toBe(0);
    expect(ab.content.unavailable).toBe('the SYN was not captured');
  });

  it('IPv6 connections are keyed and named with brackets', async () => {
    const c = new Conversation({ v6: true }).handshake();
    bulk(c, stream(2 * SEG));
    const conn = only(await c.analyze());
    expect(conn).toMatchObject({ a: '[fd00::a]:40000', b: '[fd00::b]:80', ipVersion: 6 });
    expect(conn.ab.uniqueBytes).toBe(2000);
  });

  it('a snaplen cut: byte counts from the IP header, resent bytes unchecked, digest unavailable', async () => {
    const c = new Conversation().handshake();
    const data = stream(4 * SEG);
    bulk(c, data);
    c.data('a', 1 + SEG, data.subarray(SEG, 2 * SEG));
    c.fin('a', 1 + 4 * SEG);
    // 14 + 20 + 32 bytes of headers: 30 bytes of each payload captured.
    const a = await c.analyze(96);
    const ab = only(a).ab;
    expect(ab).toMatchObject({ payloadBytes: 5000, uniqueBytes: 4000 });
    expect(ab.overlaps).toMatchObject({ bytes: 1000, comparedBytes: 30, uncheckedBytes: 970 });
    expect(ab.content.unavailable).toBe('payload not captured (snaplen) or not kept (content budget)');
    expect(verdict(a).notes).toContain('10.0.0.1:40000 -> 10.0.0.2:80: 970 resent bytes not compared (payload not captured or beyond the content budget)');
  });

  it('the content budget bounds what is kept: old chunks are evicted and then unchecked', async () => {
    const c = new Conversation().handshake();
    const data = stream(10 * SEG);
    bulk(c, data);
    c.data('a', 1, data.subarray(0, SEG)); // first chunk was evicted
    c.data('a', 1 + 9 * SEG, data.subarray(9 * SEG)); // last chunk still kept
    // Room for three chunks: each costs its bytes plus 512.
    const a = analyzeFlows(await readPcap(c.pcap()), { contentBudgetBytes: 3 * (SEG + 512) });
    const ab = only(a).ab;
    expect(a.contentEvictedBytes).toBe(8 * SEG);
    expect(ab.overlaps).toMatchObject({ bytes: 2000, comparedBytes: 1000, uncheckedBytes: 1000 });
  });

  it('events are bounded per direction and say so', async () => {
    const c = new Conversation().handshake();
    bulk(c, stream(10 * SEG));
    const a = analyzeFlows(await readPcap(c.pcap()), { maxEventsPerDirection: 4 });
    const ab = only(a).ab;
    expect(ab.events.data).toHaveLength(4);
    expect(ab.events.truncated).toBe(true);
    expect(ab.dataSegments).toBe(10);
  });

  it('non-TCP frames are counted as skipped, by reason', () => {
    const arp = new Uint8Array(42);
    arp[12] = 0x08;
    arp[13] = 0x06;
    const a = analyzeFlows([{ timeMs: 1, data: arp, origLength: 42 }, { timeMs: 2, data: new Uint8Array(5), origLength: 5 }]);
    expect(a).toMatchObject({ packets: 2, tcpPackets: 0, skipped: { 'not-ip': 1, truncated: 1 }, connections: [] });
    expect(verdict(a)).toEqual({ ok: true, problems: [], notes: ['undecodable packets: 1 truncated'] });
  });
});

// ------------------------------------------------------------------ real captures

interface Transfer {
  port: number;
  bytes: number;
  sha256: string;
  dropped?: number;
  files: string[];
}

function connectionOnPort(a: FlowAnalysis, port: number): ConnectionReport {
  const conns = a.connections.filter((c) => c.b.endsWith(`:${port}`));
  expect(conns).toHaveLength(1);
  return conns[0]!;
}

/** What holds for every transfer the capture script makes (Linux defaults, namespaces, socat). */
function checkLinuxTransfer(conn: ConnectionReport, t: Transfer): DirectionReport {
  expect(conn.state).toBe('closed');
  expect(conn.negotiated).toEqual({ complete: true, sackPermitted: true, timestamps: true, windowScale: { a: 7, b: 7 }, mss: { ab: 1460, ba: 1460 } });
  const ab = conn.ab;
  expect(ab.synOptions).toMatchObject({ mss: 1460, wscale: 7, sackPermitted: true, timestamps: true });
  expect(ab.stream).toMatchObject({ start: 1, end: t.bytes + 1, bytes: t.bytes });
  expect(ab.uniqueBytes).toBe(t.bytes);
  expect(ab.ackedBytes).toBe(t.bytes);
  expect(ab.fin?.seq).toBe(t.bytes + 1);
  expect(ab.gaps).toEqual({ capture: [], captureBytes: 0, stream: [], streamBytes: 0 });
  expect(ab.overlaps.differingCount).toBe(0);
  expect(ab.acks.maxWindow).toBeGreaterThan(65_535); // scaled
  // The receiver sent nothing: one FIN, its stream is empty.
  expect(conn.ba.fin?.seq).toBe(1);
  expect(conn.ba.payloadBytes).toBe(0);
  expect(verdict([conn], { failOnRst: true, failOnCaptureGap: true }).ok).toBe(true);
  return ab;
}

/**
 * `fresh`: captures just made on this (possibly loaded) machine. Their retransmission classes are
 * heuristics (same-millisecond hole fills, veth reordering under load), so only exact invariants are
 * checked there; the committed fixtures are checked in full.
 */
async function checkCaptureSet(dir: string, fresh = false): Promise<void> {
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { transfers: Transfer[] };
  const [lossy, clean, small] = manifest.transfers as [Transfer, Transfer, Transfer];

  // 1. 5 % loss seen before it (sender side): every original and every retransmission.
  const sender = await analyzePcap(join(dir, 'loss-sender.pcap'));
  const s = checkLinuxTransfer(connectionOnPort(sender, lossy.port), lossy);
  expect(lossy.dropped).toBeGreaterThan(0);
  expect(s.retransmissions.segments).toBeGreaterThan(0);
  expect(s.retransmissions.needed.segments).toBeGreaterThan(0);
  // Nothing is lost before this capture point: no hole fills, and every byte counted once or as a resend.
  expect(s.retransmissions.lostBeforeCapture.segments).toBe(0);
  expect(s.reordered.segments).toBe(0);
  expect(s.payloadBytes).toBe(lossy.bytes + s.retransmissions.bytes);
  expect(s.acks.sack.blocks).toBeGreaterThan(0);
  expect(s.acks.dupAcks).toBeGreaterThan(0);
  expect(s.overlaps.uncheckedBytes).toBeGreaterThan(0); // -s 128: payload not captured

  // Seen after the loss (receiver side): retransmissions fill the holes the drops left.
  const receiver = await analyzePcap(join(dir, 'loss-receiver.pcap'));
  const r = checkLinuxTransfer(connectionOnPort(receiver, lossy.port), lossy);
  if (fresh) {
    expect(r.reordered.segments + r.retransmissions.lostBeforeCapture.segments).toBeGreaterThan(0);
  } else {
    expect(r.retransmissions.lostBeforeCapture.segments).toBeGreaterThan(0);
    expect(r.retransmissions.lostBeforeCapture.segments).toBeLessThanOrEqual(lossy.dropped!);
    expect(r.retransmissions.segments).toBeLessThanOrEqual(s.retransmissions.segments);
    expect(r.reordered.segments).toBe(0);
  }
  expect(r.dataSegments).toBe(s.dataSegments - lossy.dropped!);

  // 2. No loss, GSO super-frames, cooked v2, nanoseconds.
  const any = await analyzePcap(join(dir, 'clean-any-ns.pcap'));
  const c = checkLinuxTransfer(connectionOnPort(any, clean.port), clean);
  if (fresh) {
    // A loaded machine can delay an ACK past Linux's tail-loss probe even without loss (seen in a
    // clean-clone CI run: one resent segment): exact accounting instead of zero.
    expect(c.payloadBytes).toBe(clean.bytes + c.retransmissions.bytes);
  } else {
    expect(c.retransmissions.segments).toBe(0);
    expect(c.payloadBytes).toBe(clean.bytes);
  }
  expect(c.dataSegments).toBeLessThan(clean.bytes / 1448); // segments larger than the MSS

  // 3. Full payload, cooked v1, 5 % loss: resent bytes compared, the stream digest matches.
  const full = await analyzePcap(join(dir, 'small-full-sll.pcap'));
  const f = checkLinuxTransfer(connectionOnPort(full, small.port), small);
  expect(f.retransmissions.segments).toBeGreaterThan(0);
  expect(f.overlaps.comparedBytes).toBe(f.overlaps.bytes);
  expect(f.overlaps.uncheckedBytes).toBe(0);
  expect(f.content).toEqual({ sha256: small.sha256, bytes: small.bytes, unavailable: undefined });
  // Checksums are complete on this link (offloads off on a0): verification passes too.
  const verified = await analyzePcap(join(dir, 'small-full-sll.pcap'), { verifyChecksums: true });
  expect(verified.skipped).toEqual({});
  expect(connectionOnPort(verified, small.port).ab.content.sha256).toBe(small.sha256);
}

/** Frames of a `test/fixtures/linux-*.hex` file (one Ethernet frame per line). */
function hexFrames(name: string): Array<{ timeMs: number; data: Uint8Array; origLength: number }> {
  return readFileSync(join(here, '../fixtures', name), 'utf8').split('\n').filter((l) => l.trim() !== '')
    .map((l, i) => {
      const data = new Uint8Array(Buffer.from(l.trim(), 'hex'));
      return { timeMs: i, data, origLength: data.length };
    });
}

/** TCP payloads by source port, with plain offset arithmetic (Ethernet, IPv4 IHL or IPv6 fixed header). */
function payloadsBySourcePort(frames: Array<{ data: Uint8Array }>): Map<number, Uint8Array[]> {
  const out = new Map<number, Uint8Array[]>();
  for (const { data: f } of frames) {
    const type = (f[12]! << 8) | f[13]!;
    let l4: number;
    let end: number;
    if (type === 0x0800 && f[23] === 6) {
      l4 = 14 + (f[14]! & 0x0f) * 4;
      end = 14 + ((f[16]! << 8) | f[17]!);
    } else if (type === 0x86dd && f[20] === 6) {
      l4 = 54;
      end = 54 + ((f[18]! << 8) | f[19]!);
    } else continue;
    const port = (f[l4]! << 8) | f[l4 + 1]!;
    const payload = f.subarray(l4 + (f[l4 + 12]! >> 4) * 4, end);
    if (payload.length > 0) out.set(port, [...(out.get(port) ?? []), payload]);
  }
  return out;
}

describe('flow analysis of the wire fixtures (other Linux captures in this repo)', () => {
  for (const name of ['linux-tcp4.hex', 'linux-tcp6.hex']) {
    it(`${name}: an HTTP exchange, both directions complete, digests equal to the payloads`, () => {
      const frames = hexFrames(name);
      const a = analyzeFlows(frames);
      const conn = only(a);
      expect(conn.state).toBe('closed');
      const payloads = payloadsBySourcePort(frames);
      for (const d of [conn.ab, conn.ba]) {
        const port = Number(d.from.slice(d.from.lastIndexOf(':') + 1));
        const parts = payloads.get(port)!;
        const bytes = Buffer.concat(parts);
        expect(d.stream?.bytes).toBe(bytes.length);
        expect(d).toMatchObject({ uniqueBytes: bytes.length, ackedBytes: bytes.length, dataSegments: parts.length });
        expect(d.content.sha256).toBe(sha(bytes));
      }
      expect(Buffer.concat(payloads.get(8080)!).toString('latin1')).toContain('hello from the chimney fixture');
      expect(verdict(a, { failOnRst: true, failOnCaptureGap: true })).toMatchObject({ ok: true, problems: [] });
    });
  }

  it('linux-sack.hex: data frames cut from the file show up as capture gaps, not stream gaps', () => {
    const a = analyzeFlows(hexFrames('linux-sack.hex'));
    const ab = only(a).ab;
    expect(ab.acks.sack.blocks).toBeGreaterThan(ab.acks.sack.acks);
    expect(ab.gaps.streamBytes).toBe(0);
    expect(ab.gaps.captureBytes).toBe(ab.stream!.bytes - ab.uniqueBytes);
    expect(ab.gaps.captureBytes).toBeGreaterThan(250_000);
    const v = verdict(a);
    expect(v.ok).toBe(true);
    expect(v.notes[0]).toMatch(/capture gap: \d+ bytes at relative seq \d+-\d+ .*acknowledged by the receiver but missing from the capture/);
    expect(verdict(a, { failOnCaptureGap: true }).ok).toBe(false);
  });
});

describe('flow analysis of real Linux captures', () => {
  it('committed fixtures: options, byte counts, loss and retransmissions, stream digest', async () => {
    await checkCaptureSet(fixtures);
  });

  const tools = ['ip', 'tcpdump', 'socat', 'nft', 'ethtool', 'sha256sum'];
  const missing = tools.filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);
  const root = process.getuid?.() === 0;
  const why = !root ? 'not root' : missing.length ? `missing ${missing.join(', ')} (apt-get install -y iproute2 tcpdump socat nftables ethtool)` : '';
  if (why) console.log(`skipping the fresh-capture test: ${why}`);
  it.skipIf(why !== '')('fresh captures from the fixture script pass the same checks', async () => {
    const out = mkdtempSync(join(tmpdir(), 'capture-fresh-'));
    try {
      const r = spawnSync(join(fixtures, 'make-captures.sh'), [out], { encoding: 'utf8', timeout: 120_000 });
      if (r.status !== 0) throw new Error(`make-captures.sh failed (${r.status}): ${r.stderr}`);
      await checkCaptureSet(out, true);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 150_000);
});
