import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  decodeTcpPacket, ipPacketOf, LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_RAW, LINKTYPE_RAW_ALT,
  PcapFormatError, readPcap, streamPcap, type PcapPacket,
} from '../../src/capture/pcap-reader.js';
import { memorySink, PcapWriter } from '../../src/capture/pcap-writer.js';
import { ipv4, ipv6, mac } from '../../src/wire/addresses.js';
import { buildTcpFrame, type TcpFrameSpec } from '../../src/wire/frame.js';
import { buildIpv4Header } from '../../src/wire/ipv4.js';
import { TCP_ACK, TCP_PSH } from '../../src/wire/tcp-segment.js';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), '../fixtures/capture');
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const tmp = mkdtempSync(join(tmpdir(), 'pcap-reader-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface RawRecord {
  sec: number;
  frac: number;
  data: Uint8Array;
  origLength: number;
}

/** Independent walk over a classic pcap file (no pcap-parser): the reference for the reader. */
function walkPcap(file: Uint8Array): { le: boolean; ns: boolean; linktype: number; snaplen: number; records: RawRecord[] } {
  const v = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const magicLe = v.getUint32(0, true);
  const le = magicLe === 0xa1b2c3d4 || magicLe === 0xa1b23c4d;
  const magic = v.getUint32(0, le);
  const ns = magic === 0xa1b23c4d;
  const records: RawRecord[] = [];
  let off = 24;
  while (off + 16 <= file.length) {
    const caplen = v.getUint32(off + 8, le);
    if (off + 16 + caplen > file.length) break;
    records.push({
      sec: v.getUint32(off, le), frac: v.getUint32(off + 4, le), origLength: v.getUint32(off + 12, le),
      data: file.subarray(off + 16, off + 16 + caplen),
    });
    off += 16 + caplen;
  }
  return { le, ns, linktype: v.getUint32(20, le), snaplen: v.getUint32(16, le), records };
}

/** A pcap file of any byte order, precision and linktype (the project writer does LE/us/1|101 only). */
function makePcap(records: RawRecord[], o: { le: boolean; ns: boolean; linktype: number; snaplen?: number }): Uint8Array {
  let size = 24;
  for (const r of records) size += 16 + r.data.length;
  const out = new Uint8Array(size);
  const v = new DataView(out.buffer);
  v.setUint32(0, o.ns ? 0xa1b23c4d : 0xa1b2c3d4, o.le);
  v.setUint16(4, 2, o.le);
  v.setUint16(6, 4, o.le);
  v.setUint32(16, o.snaplen ?? 262144, o.le);
  v.setUint32(20, o.linktype, o.le);
  let off = 24;
  for (const r of records) {
    v.setUint32(off, r.sec, o.le);
    v.setUint32(off + 4, r.frac, o.le);
    v.setUint32(off + 8, r.data.length, o.le);
    v.setUint32(off + 12, r.origLength, o.le);
    out.set(r.data, off + 16);
    off += 16 + r.data.length;
  }
  return out;
}

function expectSamePackets(got: PcapPacket[], want: RawRecord[], ns: boolean): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const w = want[i]!;
    expect(got[i]!.origLength).toBe(w.origLength);
    expect(sha(got[i]!.data)).toBe(sha(w.data));
    expect(got[i]!.timeMs).toBeCloseTo(w.sec * 1000 + w.frac / (ns ? 1e6 : 1e3), 6);
  }
}

const A = { mac: mac('02:00:00:00:0a:01'), ip: ipv4('10.9.0.1'), port: 41000 };
const B = { mac: mac('02:00:00:00:0b:01'), ip: ipv4('10.9.0.2'), port: 80 };

function tcpSpec(payload: Uint8Array, flags = TCP_ACK | TCP_PSH, seq = 1000): TcpFrameSpec {
  return {
    srcMac: A.mac, dstMac: B.mac, ip: { version: 4, src: A.ip, dst: B.ip, id: 7 },
    segment: { srcPort: A.port, dstPort: B.port, seq, ack: 5000, flags, window: 512, urgent: 0, options: { ts: { val: 1, ecr: 2 } }, payload },
  };
}

/** Linux cooked v1 / v2 headers in front of an IP packet. */
function sll(ip: Uint8Array, ethertype = 0x0800): Uint8Array {
  const h = new Uint8Array(16 + ip.length);
  h[1] = 4; // outgoing
  h[3] = 1; // ARPHRD_ETHER
  h[5] = 6;
  h.set(A.mac, 6);
  h[14] = ethertype >>> 8;
  h[15] = ethertype & 0xff;
  h.set(ip, 16);
  return h;
}
function sll2(ip: Uint8Array, ethertype = 0x0800): Uint8Array {
  const h = new Uint8Array(20 + ip.length);
  h[0] = ethertype >>> 8;
  h[1] = ethertype & 0xff;
  h[7] = 3; // ifindex
  h[9] = 1; // ARPHRD_ETHER
  h[10] = 0; // to us
  h[11] = 6;
  h.set(A.mac, 12);
  h.set(ip, 20);
  return h;
}

describe('readPcap on real tcpdump captures', () => {
  const files: Array<[string, number, boolean]> = [
    ['loss-sender.pcap', LINKTYPE_ETHERNET, false],
    ['clean-any-ns.pcap', LINKTYPE_LINUX_SLL2, true],
    ['small-full-sll.pcap', LINKTYPE_LINUX_SLL, false],
  ];
  for (const [name, linktype, ns] of files) {
    it(`${name}: every record, byte for byte, with linktype ${linktype} and ${ns ? 'nano' : 'micro'}second times`, async () => {
      const file = readFileSync(join(fixtures, name));
      const ref = walkPcap(file);
      const cap = await readPcap(join(fixtures, name));
      expect(cap.linktype).toBe(linktype);
      expect(ref.linktype).toBe(linktype);
      expect(cap.snaplen).toBe(ref.snaplen);
      expect(cap.timePrecision).toBe(ns ? 'ns' : 'us');
      expect(cap.byteOrder).toBe('little');
      expect(cap.truncatedTailBytes).toBe(0);
      expect(cap.packetCount).toBe(cap.packets.length);
      expect(ref.records.length).toBeGreaterThan(100);
      expectSamePackets(cap.packets, ref.records, ns);
      // Every record is TCP on this capture; decoding must get through the link layer.
      for (const p of cap.packets) {
        const d = decodeTcpPacket(cap.linktype, p);
        if (typeof d === 'string') throw new Error(`record at ${p.timeMs} did not decode: ${d}`);
        expect(d.ipVersion).toBe(4);
      }
    });
  }

  it('a Buffer, a Uint8Array view at an offset and a path read the same', async () => {
    const path = join(fixtures, 'small-full-sll.pcap');
    const file = readFileSync(path);
    const shifted = new Uint8Array(file.length + 3);
    shifted.set(file, 3);
    const [a, b, c] = await Promise.all([readPcap(path), readPcap(file), readPcap(shifted.subarray(3))]);
    for (const x of [b, c]) {
      expect(x.packets.length).toBe(a.packets.length);
      expect(sha(x.packets[77]!.data)).toBe(sha(a.packets[77]!.data));
      expect(x.packets[77]!.timeMs).toBe(a.packets[77]!.timeMs);
    }
  });

  const hasTcpdump = spawnSync('tcpdump', ['--version']).status === 0;
  if (!hasTcpdump) console.log('tcpdump not installed (apt-get install -y tcpdump): skipping the tcpdump cross-check of record counts');
  it.skipIf(!hasTcpdump)('record count and first timestamp agree with tcpdump -r', async () => {
    const path = join(fixtures, 'clean-any-ns.pcap');
    const r = spawnSync('tcpdump', ['-r', path, '-nn', '-tt', '--time-stamp-precision', 'nano'], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' } });
    const lines = r.stdout.trim().split('\n');
    const cap = await readPcap(path);
    expect(cap.packets.length).toBe(lines.length);
    const [sec, nsec] = lines[0]!.split(' ')[0]!.split('.');
    expect(cap.packets[0]!.timeMs).toBeCloseTo(Number(sec) * 1000 + Number(nsec) / 1e6, 4);
  });
});

describe('readPcap byte orders and precisions (pcap-parser knows only the microsecond magic)', () => {
  const frames = [0, 1, 2].map((i) => buildTcpFrame(tcpSpec(new Uint8Array(100 + i).fill(0x41 + i), TCP_ACK, 1000 + 100 * i)));
  const records: RawRecord[] = frames.map((data, i) => ({ sec: 1_700_000_000 + i, frac: 123_456 + i, data, origLength: data.length }));
  for (const le of [true, false]) {
    for (const ns of [false, true]) {
      it(`${le ? 'little' : 'big'}-endian, ${ns ? 'nanosecond' : 'microsecond'} magic`, async () => {
        const file = makePcap(records, { le, ns, linktype: LINKTYPE_ETHERNET });
        const path = join(tmp, `order-${le}-${ns}.pcap`);
        writeFileSync(path, file);
        for (const input of [file, path]) {
          const cap = await readPcap(input);
          expect(cap.byteOrder).toBe(le ? 'little' : 'big');
          expect(cap.timePrecision).toBe(ns ? 'ns' : 'us');
          expectSamePackets(cap.packets, records, ns);
        }
      });
    }
  }

  it('the project PcapWriter output reads back with exact times and bytes', async () => {
    const sink = memorySink();
    const w = new PcapWriter(sink, 'ethernet');
    frames.forEach((f, i) => w.write(f, 1_700_000_000_000 + i * 1.5));
    const cap = await readPcap(sink.bytes());
    expect(cap.packets.map((p) => p.timeMs)).toEqual([1_700_000_000_000, 1_700_000_000_001.5, 1_700_000_000_003]);
    expect(cap.packets.map((p) => sha(p.data))).toEqual(frames.map(sha));
  });
});

describe('readPcap errors', () => {
  it('pcapng is refused with a way out', async () => {
    const ng = new Uint8Array([0x0a, 0x0d, 0x0d, 0x0a, 0x1c, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, ...new Array(20).fill(0)]);
    await expect(readPcap(ng)).rejects.toThrow(/pcapng .*tcpdump -r IN -w OUT/);
    await expect(readPcap(ng)).rejects.toBeInstanceOf(PcapFormatError);
  });

  it('unknown magic, short files and missing files reject', async () => {
    await expect(readPcap(new Uint8Array(40).fill(0x55))).rejects.toThrow(/not a pcap file \(magic 55555555\)/);
    await expect(readPcap(new Uint8Array([0xd4, 0xc3, 0xb2, 0xa1, 2, 0]))).rejects.toThrow(/shorter than the 24-byte global header/);
    await expect(readPcap(new Uint8Array(0))).rejects.toThrow(/magic missing/);
    await expect(readPcap(join(tmp, 'no-such.pcap'))).rejects.toThrow(/ENOENT/);
  });

  it('a record cut off by the end of the file is reported, the complete ones are kept', async () => {
    const frame = buildTcpFrame(tcpSpec(new Uint8Array(300).fill(9)));
    const whole = makePcap([0, 1, 2].map((i) => ({ sec: 10 + i, frac: 0, data: frame, origLength: frame.length })), { le: true, ns: false, linktype: 1 });
    const cut = whole.subarray(0, whole.length - 100);
    const cap = await readPcap(cut);
    expect(cap.packets.length).toBe(2);
    expect(cap.truncatedTailBytes).toBe(16 + frame.length - 100);
    expect(sha(cap.packets[1]!.data)).toBe(sha(frame));
  });

  it('an exception in the callback stops the stream and rejects with it', async () => {
    let calls = 0;
    const path = join(fixtures, 'loss-sender.pcap');
    await expect(streamPcap(path, () => {
      if (++calls === 5) throw new Error('stop here');
    })).rejects.toThrow('stop here');
    expect(calls).toBe(5);
  });
});

describe('link layers down to TCP', () => {
  const payload = new Uint8Array(200).map((_, i) => (i * 7) & 0xff);
  const eth = buildTcpFrame(tcpSpec(payload));
  const ip = eth.subarray(14);
  const packet = (data: Uint8Array): PcapPacket => ({ timeMs: 5, data, origLength: data.length });

  const cases: Array<[string, number, Uint8Array]> = [
    ['Ethernet (1)', LINKTYPE_ETHERNET, eth],
    ['raw IP (101)', LINKTYPE_RAW, ip],
    ['raw IP (12)', LINKTYPE_RAW_ALT, ip],
    ['Linux cooked v1 (113)', LINKTYPE_LINUX_SLL, sll(ip)],
    ['Linux cooked v2 (276)', LINKTYPE_LINUX_SLL2, sll2(ip)],
  ];
  for (const [name, linktype, frame] of cases) {
    it(`${name} decodes to the same segment`, () => {
      expect(sha(ipPacketOf(linktype, frame) as Uint8Array)).toBe(sha(ip));
      const d = decodeTcpPacket(linktype, packet(frame));
      if (typeof d === 'string') throw new Error(d);
      expect(d).toMatchObject({ ipVersion: 4, src: '10.9.0.1', dst: '10.9.0.2', ipId: 7, payloadLength: 200 });
      expect(d.tcp).toMatchObject({ srcPort: A.port, dstPort: B.port, seq: 1000, ack: 5000, window: 512, options: { ts: { val: 1, ecr: 2 } } });
      expect(sha(d.tcp.payload)).toBe(sha(payload));
    });
  }

  it('802.1Q tags: in the Ethernet header, and left in the payload of a cooked capture', () => {
    const tagged = buildTcpFrame({ ...tcpSpec(payload), vlan: { pcp: 0, dei: false, vid: 42 } });
    const d1 = decodeTcpPacket(LINKTYPE_ETHERNET, packet(tagged));
    const inner = new Uint8Array(4 + ip.length);
    inner.set([0x00, 0x2a, 0x08, 0x00]);
    inner.set(ip, 4);
    const d2 = decodeTcpPacket(LINKTYPE_LINUX_SLL2, packet(sll2(inner, 0x8100)));
    for (const d of [d1, d2]) {
      if (typeof d === 'string') throw new Error(d);
      expect(sha(d.tcp.payload)).toBe(sha(payload));
    }
  });

  it('IPv6', () => {
    const v6 = buildTcpFrame({
      ...tcpSpec(payload),
      ip: { version: 6, src: ipv6('fd00::1'), dst: ipv6('fd00::2') },
    });
    const d = decodeTcpPacket(LINKTYPE_ETHERNET, packet(v6));
    if (typeof d === 'string') throw new Error(d);
    expect(d).toMatchObject({ ipVersion: 6, src: 'fd00::1', dst: 'fd00::2', ipId: undefined, payloadLength: 200 });
  });

  it('a snaplen-cut frame keeps its real payload length; only captured bytes are in the payload', () => {
    const cut = eth.subarray(0, 14 + 20 + 32 + 10);
    const d = decodeTcpPacket(LINKTYPE_ETHERNET, { timeMs: 1, data: cut, origLength: eth.length });
    if (typeof d === 'string') throw new Error(d);
    expect(d.payloadLength).toBe(200);
    expect(sha(d.tcp.payload)).toBe(sha(payload.subarray(0, 10)));
    // The original is untouched (the length is patched on a copy), also when it is a Buffer
    // (as pcap-parser delivers it: Buffer#slice makes views, not copies).
    expect(sha(cut)).toBe(sha(eth.subarray(0, cut.length)));
    const asBuffer = Buffer.from(cut);
    const d2 = decodeTcpPacket(LINKTYPE_ETHERNET, { timeMs: 1, data: asBuffer, origLength: eth.length });
    expect(typeof d2 === 'object' && d2.payloadLength).toBe(200);
    expect(sha(asBuffer)).toBe(sha(cut));
    // A cut TCP header cannot be decoded.
    expect(decodeTcpPacket(LINKTYPE_ETHERNET, { timeMs: 1, data: eth.subarray(0, 14 + 20 + 10), origLength: eth.length })).toBe('truncated');
    // A damaged IPv4 header is still caught when cut.
    const bad = cut.slice();
    bad[14 + 8] ^= 0xff;
    expect(decodeTcpPacket(LINKTYPE_ETHERNET, { timeMs: 1, data: bad, origLength: eth.length })).toBe('bad-checksum');
  });

  it('TCP checksums are ignored by default and verified on request', () => {
    const bad = eth.slice();
    bad[eth.length - 1] ^= 0x01;
    expect(typeof decodeTcpPacket(LINKTYPE_ETHERNET, packet(bad))).toBe('object');
    expect(decodeTcpPacket(LINKTYPE_ETHERNET, packet(bad), { verifyChecksums: true })).toBe('bad-checksum');
    expect(typeof decodeTcpPacket(LINKTYPE_ETHERNET, packet(eth), { verifyChecksums: true })).toBe('object');
  });

  it('what is not TCP says why', () => {
    const arp = new Uint8Array(42);
    arp[12] = 0x08;
    arp[13] = 0x06;
    expect(decodeTcpPacket(LINKTYPE_ETHERNET, packet(arp))).toBe('not-ip');
    const udp = new Uint8Array(28);
    buildIpv4Header({ src: A.ip, dst: B.ip, protocol: 17, payloadLength: 8 }, udp, 0);
    expect(decodeTcpPacket(LINKTYPE_RAW, packet(udp))).toBe('not-tcp');
    const damaged = ip.slice();
    damaged[9] = 17; // protocol changed without fixing the header checksum
    expect(decodeTcpPacket(LINKTYPE_RAW, packet(damaged))).toBe('bad-checksum');
    expect(decodeTcpPacket(LINKTYPE_RAW, packet(new Uint8Array([0x55, 1, 2])))).toBe('bad-version');
    expect(decodeTcpPacket(147, packet(eth))).toBe('unsupported-linktype');
    expect(decodeTcpPacket(LINKTYPE_LINUX_SLL, packet(eth.subarray(0, 10)))).toBe('truncated');
  });
});
