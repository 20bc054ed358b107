import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  LINKTYPE_ETHERNET,
  LINKTYPE_RAW,
  PcapWriter,
  memorySink,
  pcapFileSink,
  type PcapSinkObject,
} from '../../src/capture/pcap-writer.js';
import { withCapture } from '../../src/link/capture-link.js';
import type { Link } from '../../src/link/link.js';
import { impair } from '../../src/link/sim/impair.js';
import { Rng } from '../../src/link/sim/rng.js';
import { createSimPair } from '../../src/link/sim/sim-link.js';
import { Simulator } from '../../src/link/sim/simulator.js';

// pcap-parser is CommonJS without types: describe the part we use.
interface PcapPacket {
  header: { timestampSeconds: number; timestampMicroseconds: number; capturedLength: number; originalLength: number };
  data: Buffer;
}
interface PcapGlobalHeader {
  magicNumber: number;
  majorVersion: number;
  minorVersion: number;
  snapshotLength: number;
  linkLayerType: number;
}
interface PcapParser {
  on(ev: 'globalHeader', cb: (h: PcapGlobalHeader) => void): void;
  on(ev: 'packet', cb: (p: PcapPacket) => void): void;
  on(ev: 'end', cb: () => void): void;
  on(ev: 'error', cb: (e: Error) => void): void;
}
const pcapParser = createRequire(import.meta.url)('pcap-parser') as { parse(path: string): PcapParser };

function readPcap(path: string): Promise<{ global: PcapGlobalHeader; packets: PcapPacket[] }> {
  return new Promise((resolve, reject) => {
    const p = pcapParser.parse(path);
    let global: PcapGlobalHeader | undefined;
    const packets: PcapPacket[] = [];
    p.on('globalHeader', (h) => (global = h));
    p.on('packet', (pkt) => packets.push(pkt));
    p.on('error', reject);
    p.on('end', () => (global ? resolve({ global, packets }) : reject(new Error('no pcap global header'))));
  });
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

const hasTcpdump = spawnSync('tcpdump', ['--version']).status === 0;
if (!hasTcpdump) console.log('tcpdump not installed (apt-get install -y tcpdump): skipping the tcpdump read-back checks');

const dir = mkdtempSync(join(tmpdir(), 'chimney-pcap-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// ---------------------------------------------------------------- valid IPv4/TCP frames for tcpdump

function checksum(bytes: Uint8Array, initial = 0): number {
  let sum = initial;
  for (let i = 0; i + 1 < bytes.length; i += 2) sum += (bytes[i]! << 8) | bytes[i + 1]!;
  if (bytes.length & 1) sum += bytes[bytes.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

interface Seg {
  src: [number, number, number, number];
  dst: [number, number, number, number];
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  flags: number;
  payload: Uint8Array;
}

function ipv4Tcp(s: Seg): Uint8Array {
  const tcpLen = 20 + s.payload.length;
  const p = new Uint8Array(20 + tcpLen);
  const v = new DataView(p.buffer);
  v.setUint8(0, 0x45);
  v.setUint16(2, p.length);
  v.setUint16(4, s.seq & 0xffff);
  v.setUint16(6, 0x4000);
  v.setUint8(8, 64);
  v.setUint8(9, 6);
  p.set(s.src, 12);
  p.set(s.dst, 16);
  v.setUint16(10, checksum(p.subarray(0, 20)));
  v.setUint16(20, s.sport);
  v.setUint16(22, s.dport);
  v.setUint32(24, s.seq);
  v.setUint32(28, s.ack);
  v.setUint8(32, 5 << 4);
  v.setUint8(33, s.flags);
  v.setUint16(34, 65535);
  p.set(s.payload, 40);
  const pseudo = new Uint8Array(12);
  pseudo.set(s.src, 0);
  pseudo.set(s.dst, 4);
  new DataView(pseudo.buffer).setUint16(8, 6);
  new DataView(pseudo.buffer).setUint16(10, tcpLen);
  const partial = ~checksum(pseudo) & 0xffff;
  v.setUint16(36, checksum(p.subarray(20), partial));
  return p;
}

const MAC_A = [0x02, 0, 0, 0, 0, 0x0a];
const MAC_B = [0x02, 0, 0, 0, 0, 0x0b];
function ethernet(dst: number[], src: number[], ip: Uint8Array): Uint8Array {
  const f = new Uint8Array(14 + ip.length);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = 0x08; // IPv4
  f.set(ip, 14);
  return f;
}

const A: Seg['src'] = [10, 0, 0, 1];
const B: Seg['src'] = [10, 0, 0, 2];

/** The peer answers each segment by echoing its payload back with swapped addresses. */
function echoReply(ip: Uint8Array): Uint8Array {
  const v = new DataView(ip.buffer, ip.byteOffset, ip.byteLength);
  return ipv4Tcp({
    src: B,
    dst: A,
    sport: v.getUint16(22),
    dport: v.getUint16(20),
    seq: 1000,
    ack: (v.getUint32(24) + ip.length - 40) >>> 0,
    flags: 0x18,
    payload: ip.subarray(40),
  });
}

// ---------------------------------------------------------------- unit tests of the writer

describe('PcapWriter', () => {
  it('writes the classic pcap global header: magic a1b2c3d4, v2.4, snaplen 262144, linktype 1 or 101', () => {
    const m = memorySink();
    new PcapWriter(m, 'ethernet');
    expect(hex(m.bytes())).toBe('d4c3b2a1' + '02000400' + '00000000' + '00000000' + '00000400' + '01000000');
    const r = memorySink();
    const w = new PcapWriter(r, { layer: 'ip' });
    expect(w.linktype).toBe(LINKTYPE_RAW);
    expect(hex(r.bytes().subarray(20))).toBe('65000000');
  });

  it('writes exact record headers: microsecond timestamps rounded once (with carry), caplen and original length', () => {
    const m = memorySink();
    const w = new PcapWriter(m, 'ethernet', { snaplen: 4 });
    w.write(Uint8Array.of(1, 2, 3), 1234.5678); // 1 s, 234 568 us
    w.write(Uint8Array.of(9, 8, 7, 6, 5, 4), 999.9996); // rounds to 1 s, 0 us (not 999 999 + carry lost)
    w.write(Uint8Array.of(0xaa), 1_700_000_000_000.001); // wall-clock scale keeps the microsecond
    expect(w.records).toBe(3);
    const rec = hex(m.bytes().subarray(24));
    expect(rec).toBe(
      '01000000' + '48940300' + '03000000' + '03000000' + '010203' +
        '01000000' + '00000000' + '04000000' + '06000000' + '09080706' +
        '00f15365' + '01000000' + '01000000' + '01000000' + 'aa',
    );
  });

  it('pcapFileSink writes the same bytes as memorySink through small and large chunks, and counts writes after close', () => {
    const path = join(dir, 'sink.pcap');
    const file = pcapFileSink(path, { bufferBytes: 100 });
    const mem = memorySink();
    const tee: PcapSinkObject = {
      write: (c) => {
        file.write(c);
        mem.write(c);
      },
      flush: () => file.flush(),
      close: () => file.close(),
    };
    const w = new PcapWriter(tee, 'ethernet');
    const rng = new Rng(1);
    for (let i = 0; i < 200; i++) {
      const f = new Uint8Array(1 + rng.int(400)); // some fit the buffer, some exceed it
      for (let j = 0; j < f.length; j++) f[j] = rng.int(256);
      w.write(f, i * 0.5);
    }
    w.flush();
    expect(statSync(path).size).toBe(file.bytesWritten);
    expect(file.bytesWritten).toBe(mem.bytes().length); // flush leaves nothing behind
    w.write(new Uint8Array(10), 1000);
    w.close();
    w.write(new Uint8Array(10), 1001);
    expect(file.droppedAfterClose).toBe(2);
    expect(sha(readFileSync(path))).toBe(sha(mem.bytes().subarray(0, mem.bytes().length - 26)));
  });
});

// ---------------------------------------------------------------- capture on a sim pair, read back

interface Expected {
  frame: Uint8Array;
  sec: number;
  usec: number;
}

/**
 * a sends segments at the given times; b (2.5 ms away each way) echoes them. a is captured outside
 * its impairment chain, so the file holds a's sends at send time and the echoes at +5 ms.
 */
function captureScenario(layer: 'ethernet' | 'ip', path: string) {
  const EPOCH_MS = 1_700_000_000_000;
  const sim = new Simulator();
  const [a0, b0] = createSimPair(sim, { name: `cap-${layer}`, layer });
  const rng = new Rng(5);
  const aImp = impair(a0, sim, rng, { delayMs: 2.5 });
  const b = impair(b0, sim, rng, { delayMs: 2.5 });
  const sink = pcapFileSink(path);
  const writer = new PcapWriter(sink, a0);
  const a: Link = withCapture(aImp, writer, () => EPOCH_MS + sim.now);
  const toB = (ip: Uint8Array) => (layer === 'ethernet' ? ethernet(MAC_B, MAC_A, ip) : ip);
  const toA = (ip: Uint8Array) => (layer === 'ethernet' ? ethernet(MAC_A, MAC_B, ip) : ip);
  const unwrap = (f: Uint8Array) => (layer === 'ethernet' ? f.subarray(14) : f);
  b.setReceiver((frames) => b.send(frames.map((f) => toA(echoReply(unwrap(f))))));
  const received: Uint8Array[] = [];
  a.setReceiver((frames) => frames.forEach((f) => received.push(new Uint8Array(f))));

  const times = [0, 0.25, 1.5, 1000.125, 2500.5];
  const expected: Expected[] = [];
  const ts = (ms: number) => ({ sec: 1_700_000_000 + Math.floor(ms / 1000), usec: Math.round((ms % 1000) * 1000) });
  times.forEach((t, i) => {
    const payload = new Uint8Array(10 + i * 100).map((_, j) => (i * 31 + j) & 0xff);
    const frame = toB(ipv4Tcp({ src: A, dst: B, sport: 40000, dport: 5001, seq: 1 + i * 1000, ack: 1, flags: i === 0 ? 0x02 : 0x18, payload }));
    expected.push({ frame, ...ts(t) });
    expected.push({ frame: toA(echoReply(unwrap(frame))), ...ts(t + 5) });
    sim.schedule(t, () => a.send([frame]));
  });
  // Order in the file is time order: a send at t, its echo at t+5 (the first three sends are < 5 ms apart).
  expected.sort((x, y) => x.sec - y.sec || x.usec - y.usec);
  sim.runUntilIdle();
  writer.close();
  return { expected, received, writer };
}

describe('withCapture + PcapWriter on a sim link, read back independently', () => {
  for (const layer of ['ethernet', 'ip'] as const) {
    it(`${layer}: pcap-parser reads back every frame in both directions with exact bytes and timestamps`, async () => {
      const path = join(dir, `sim-${layer}.pcap`);
      const { expected, received, writer } = captureScenario(layer, path);
      expect(received).toHaveLength(5);
      const { global, packets } = await readPcap(path);
      expect(global).toMatchObject({
        magicNumber: 0xa1b2c3d4,
        majorVersion: 2,
        minorVersion: 4,
        snapshotLength: 262144,
        linkLayerType: layer === 'ethernet' ? LINKTYPE_ETHERNET : LINKTYPE_RAW,
      });
      expect(writer.records).toBe(10);
      expect(packets.map((p) => ({ sec: p.header.timestampSeconds, usec: p.header.timestampMicroseconds }))).toEqual(
        expected.map((e) => ({ sec: e.sec, usec: e.usec })),
      );
      expect(packets.map((p) => sha(p.data))).toEqual(expected.map((e) => sha(e.frame)));
      for (const p of packets) expect(p.header.capturedLength).toBe(p.header.originalLength);
      // The received echoes in the file are the very bytes handed up to the receiver.
      expect(packets.filter((p) => p.data[layer === 'ethernet' ? 26 + 3 : 12 + 3] === 2).map((p) => sha(p.data))).toEqual(received.map(sha));
    });

    it.skipIf(!hasTcpdump)(`${layer}: tcpdump -r parses the file without error and decodes every TCP segment`, async () => {
      const path = join(dir, `dump-${layer}.pcap`);
      captureScenario(layer, path);
      const res = spawnSync('tcpdump', ['-r', path, '-nn', '-tt', '-vv'], { encoding: 'utf8' });
      expect(res.status, res.stderr).toBe(0);
      expect(res.stderr).toContain(layer === 'ethernet' ? 'link-type EN10MB' : 'link-type RAW');
      const out = res.stdout;
      expect(out).not.toMatch(/incorrect|truncated|bad/i);
      expect(out.match(/cksum 0x[0-9a-f]{4} \(correct\)/g)).toHaveLength(10);
      const plain = execFileSync('tcpdump', ['-r', path, '-nn', '-tt', '-S'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      const lines = plain.trim().split('\n');
      expect(lines).toHaveLength(10);
      expect(lines[0]).toMatch(/^1700000000\.000000 .*IP 10\.0\.0\.1\.40000 > 10\.0\.0\.2\.5001: Flags \[S\], seq 1:11, win 65535, length 10$/);
      expect(lines.filter((l) => l.includes('10.0.0.2.5001 > 10.0.0.1.40000: Flags [P.]'))).toHaveLength(5);
      expect(lines[lines.length - 1]).toMatch(/^1700000002\.505500 .*IP 10\.0\.0\.2\.5001 > 10\.0\.0\.1\.40000: Flags \[P\.\], seq 1000:1410, ack 4411, .*length 410$/);
    });
  }

  it('withCapture passes the link through and refuses a writer of the wrong linktype', async () => {
    const sim = new Simulator();
    const [a] = createSimPair(sim, { name: 'pt', mtu: 9000 });
    const m = memorySink();
    const c = withCapture(a, new PcapWriter(m, a), () => sim.now);
    expect([c.name, c.layer, c.mtu, c.counters === a.counters]).toEqual(['pt.a', 'ethernet', 9000, true]);
    expect(() => withCapture(a, new PcapWriter(memorySink(), 'ip'), () => 0)).toThrow(/linktype 101 does not match link pt\.a/);
    await c.close();
    c.send([new Uint8Array(60)]);
    expect(a.counters.dropsOut).toBe(1); // the link under it was closed
  });
});
