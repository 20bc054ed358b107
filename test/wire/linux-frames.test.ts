/**
 * Real frames written by Linux (test/fixtures/linux-*.hex, made by test/fixtures/capture-linux.sh;
 * see test/fixtures/README.md). Checks what Linux put on the wire and that our builders reproduce
 * Linux's bytes exactly.
 */
import { describe, expect, it } from 'vitest';
import { ipv4, ipv6, ipv6Equals, ipv6ToString, mac, macToString } from '../../src/wire/addresses.js';
import { ARP_REPLY, ARP_REQUEST } from '../../src/wire/arp.js';
import {
  buildArpFrame, buildIcmpv4Frame, buildTcpFrame, parseFrame, type ParsedFrame,
} from '../../src/wire/frame.js';
import { ICMP_DEST_UNREACHABLE, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, ICMP_UNREACH_FRAG_NEEDED } from '../../src/wire/icmp.js';
import { seqLe, seqLt } from '../../src/wire/seq.js';
import { TCP_ACK, TCP_FIN, TCP_SYN, type TcpSegment } from '../../src/wire/tcp-segment.js';
import { loadHexFrames, toHex } from '../fixtures/wire-helpers.js';

const MAC_A = mac('02:00:00:77:01:01');
const MAC_R = mac('02:00:00:77:01:02');
const A4 = ipv4('10.77.1.1');
const R4 = ipv4('10.77.1.2');

function parseAll(name: string): ParsedFrame[] {
  return loadHexFrames(name).map((bytes, i) => {
    const f = parseFrame(bytes);
    if (typeof f === 'string') throw new Error(`${name} frame ${i}: ${f}`);
    return f;
  });
}

/** Rebuilds an Ethernet + IP + TCP frame from its parsed fields alone. */
function rebuildTcp(f: ParsedFrame): Uint8Array {
  const ip = f.ip!;
  return buildTcpFrame({
    srcMac: f.eth.src, dstMac: f.eth.dst, vlan: f.eth.vlan, segment: f.tcp!,
    ip: ip.version === 4
      ? { version: 4, src: ip.src, dst: ip.dst, ttl: ip.ttl, tos: ip.tos, id: ip.id, df: ip.df }
      : { version: 6, src: ip.src, dst: ip.dst, hopLimit: ip.hopLimit, trafficClass: ip.trafficClass, flowLabel: ip.flowLabel },
  });
}

function tcpFrames(frames: ParsedFrame[]): Array<ParsedFrame & { tcp: TcpSegment }> {
  return frames.filter((f): f is ParsedFrame & { tcp: TcpSegment } => f.tcp !== undefined);
}

describe('Linux frames: ARP', () => {
  const raw = loadHexFrames('linux-arp.hex');
  const frames = parseAll('linux-arp.hex');

  it('RFC 826: A broadcasts a request for R, R replies with its MAC', () => {
    expect(frames).toHaveLength(2);
    const [req, rep] = frames;
    expect(macToString(req!.eth.dst)).toBe('ff:ff:ff:ff:ff:ff');
    expect(req!.arp).toMatchObject({ op: ARP_REQUEST, senderIp: A4, targetIp: R4 });
    expect(toHex(req!.arp!.senderMac)).toBe(toHex(MAC_A));
    expect(toHex(req!.arp!.targetMac)).toBe('000000000000');
    expect(rep!.arp).toMatchObject({ op: ARP_REPLY, senderIp: R4, targetIp: A4 });
    expect(toHex(rep!.arp!.senderMac)).toBe(toHex(MAC_R));
    expect(toHex(rep!.arp!.targetMac)).toBe(toHex(MAC_A));
    expect(toHex(rep!.eth.dst)).toBe(toHex(MAC_A));
  });

  it('buildArpFrame reproduces both frames byte for byte', () => {
    frames.forEach((f, i) => {
      expect(toHex(buildArpFrame({ srcMac: f.eth.src, dstMac: f.eth.dst, arp: f.arp! }))).toBe(toHex(raw[i]!));
    });
  });
});

describe('Linux frames: TCP over IPv4 (curl <-> python http.server)', () => {
  const raw = loadHexFrames('linux-tcp4.hex');
  const frames = tcpFrames(parseAll('linux-tcp4.hex'));

  it('every frame is IPv4 TCP with valid IP and TCP checksums, DF set, TTL 64', () => {
    expect(frames).toHaveLength(raw.length);
    for (const f of frames) {
      const ip = f.ip!;
      if (ip.version !== 4) throw new Error('not IPv4');
      expect(ip.df).toBe(true);
      expect(ip.ttl).toBe(64);
      expect(ip.hasOptions).toBe(false);
    }
  });

  it('SYN and SYN-ACK carry MSS 1460, SACK_PERM, timestamps and window scale 7', () => {
    const syn = frames.find((f) => f.tcp.flags === TCP_SYN)!.tcp;
    const synAck = frames.find((f) => f.tcp.flags === (TCP_SYN | TCP_ACK))!.tcp;
    expect(syn.options).toEqual({ mss: 1460, sackPermitted: true, ts: { val: syn.options.ts!.val, ecr: 0 }, wscale: 7 });
    expect(syn.options.ts!.val).not.toBe(0);
    expect(syn.dstPort).toBe(8080);
    expect(synAck.ack).toBe((syn.seq + 1) >>> 0);
    expect(synAck.options).toEqual({ mss: 1460, sackPermitted: true, ts: { val: synAck.options.ts!.val, ecr: syn.options.ts!.val }, wscale: 7 });
  });

  it('carries the HTTP request and the served file in payload views', () => {
    const text = frames.map((f) => Buffer.from(f.tcp.payload).toString('latin1')).join('');
    expect(text).toContain('GET /hello.txt HTTP/1.1\r\n');
    expect(text).toContain('HTTP/1.0 200 OK\r\n');
    expect(text).toContain('hello from the chimney fixture\n');
    // Both sides close.
    expect(frames.filter((f) => f.tcp.flags & TCP_FIN)).toHaveLength(2);
  });

  it('after the SYN every segment has only the timestamps option (NOP NOP TS)', () => {
    for (const f of frames.filter((x) => !(x.tcp.flags & TCP_SYN))) {
      expect(Object.keys(f.tcp.options)).toEqual(['ts']);
    }
  });

  it('buildTcpFrame(parseFrame(frame)) reproduces every frame byte for byte', () => {
    frames.forEach((f, i) => expect(toHex(rebuildTcp(f)), `frame ${i}`).toBe(toHex(raw[i]!)));
  });
});

describe('Linux frames: IPv6 (TCP, neighbour discovery, MLD behind hop-by-hop)', () => {
  const raw = loadHexFrames('linux-tcp6.hex');
  const frames = parseAll('linux-tcp6.hex');
  const A6 = ipv6('fd77:1::1');
  const R6 = ipv6('fd77:1::2');

  it('IPv6 SYN carries MSS 1440 (1500 - 40 - 20), SACK_PERM, TS, WS 7; TCP checksums verify', () => {
    const tcp = tcpFrames(frames);
    expect(tcp.length).toBeGreaterThanOrEqual(10);
    const syn = tcp.find((f) => f.tcp.flags === TCP_SYN)!;
    expect(syn.ip!.version).toBe(6);
    expect(ipv6Equals(syn.ip!.src as Uint8Array, A6)).toBe(true);
    expect(ipv6Equals(syn.ip!.dst as Uint8Array, R6)).toBe(true);
    expect(syn.tcp.options).toMatchObject({ mss: 1440, sackPermitted: true, wscale: 7 });
    expect(syn.tcp.options.ts).toBeDefined();
    const text = tcp.map((f) => Buffer.from(f.tcp.payload).toString('latin1')).join('');
    expect(text).toContain('hello from the chimney fixture\n');
  });

  it('buildTcpFrame reproduces every IPv6 TCP frame byte for byte (flow label, hop limit)', () => {
    let n = 0;
    frames.forEach((f, i) => {
      if (!f.tcp) return;
      expect(toHex(rebuildTcp(f)), `frame ${i}`).toBe(toHex(raw[i]!));
      n++;
    });
    expect(n).toBeGreaterThanOrEqual(10);
  });

  it('neighbour discovery and MLD reports parse as ICMPv6; MLD sits behind a hop-by-hop header', () => {
    const icmp6 = frames.filter((f) => f.ip?.protocol === 58);
    expect(icmp6.length).toBeGreaterThanOrEqual(3);
    for (const f of icmp6) expect(f.tcp).toBeUndefined();
    const ns = icmp6.find((f) => f.ip!.payload[0] === 135)!; // neighbor solicitation
    expect(ns.ip!.headerLength).toBe(40);
    const mld = icmp6.filter((f) => f.ip!.version === 6 && f.ip!.nextHeader === 0);
    expect(mld.length).toBeGreaterThanOrEqual(1);
    for (const f of mld) {
      expect(f.ip!.headerLength).toBe(48); // fixed header + 8-byte hop-by-hop (router alert + PadN)
      expect(f.ip!.payload[0]).toBe(143); // MLDv2 report
      expect(f.ip!.version === 6 && f.ip!.hopLimit).toBe(1);
      // Address views stay right past the extension header.
      expect(ipv6ToString(f.ip!.dst as Uint8Array)).toBe('ff02::16');
      expect(['fe80::ff:fe77:101', 'fe80::ff:fe77:102']).toContain(ipv6ToString(f.ip!.src as Uint8Array));
    }
  });
});

describe('Linux frames: ICMP', () => {
  const raw = loadHexFrames('linux-icmp.hex');
  const frames = parseAll('linux-icmp.hex');

  it('echo requests and replies pair up by id/seq with identical data; checksums verify', () => {
    const req = frames.filter((f) => f.icmp?.kind === 'echo' && f.icmp.type === ICMP_ECHO_REQUEST && f.ip!.dst === R4);
    const rep = frames.filter((f) => f.icmp?.kind === 'echo' && f.icmp.type === ICMP_ECHO_REPLY);
    expect(req).toHaveLength(2);
    expect(rep).toHaveLength(2);
    for (let i = 0; i < 2; i++) {
      const q = req[i]!.icmp!;
      const p = rep[i]!.icmp!;
      if (q.kind !== 'echo' || p.kind !== 'echo') throw new Error('not echo');
      expect([p.id, p.seq]).toEqual([q.id, q.seq]);
      expect(q.seq).toBe(i + 1);
      expect(q.data.length).toBe(56);
      expect(toHex(p.data)).toBe(toHex(q.data));
    }
  });

  it('RFC 1191: R answers the too-big DF ping with fragmentation needed, next-hop MTU 1280', () => {
    const err = frames.find((f) => f.icmp?.kind === 'dest-unreachable')!;
    const m = err.icmp!;
    if (m.kind !== 'dest-unreachable') throw new Error('not dest-unreachable');
    expect(m.type).toBe(ICMP_DEST_UNREACHABLE);
    expect(m.code).toBe(ICMP_UNREACH_FRAG_NEEDED);
    expect(m.nextHopMtu).toBe(1280);
    expect(err.ip!.src).toBe(R4);
    expect(m.quoted).toEqual({ src: A4, dst: ipv4('10.77.2.3'), protocol: 1 });
    // Linux quotes as much as fits in 576 bytes: 576 - 20 - 8.
    expect(m.original.length).toBe(548);
  });

  it('buildIcmpv4Frame reproduces every frame byte for byte', () => {
    frames.forEach((f, i) => {
      const ip = f.ip!;
      if (ip.version !== 4) throw new Error('not IPv4');
      const m = f.icmp!;
      const icmp = m.kind === 'echo'
        ? { kind: 'echo' as const, type: m.type, id: m.id, seq: m.seq, data: m.data }
        : m.kind === 'dest-unreachable'
          ? { kind: 'error' as const, type: m.type, code: m.code, nextHopMtu: m.nextHopMtu, original: m.original }
          : undefined;
      if (!icmp) throw new Error(`frame ${i}: unexpected ICMP`);
      const built = buildIcmpv4Frame({
        srcMac: f.eth.src, dstMac: f.eth.dst, icmp,
        ip: { version: 4, src: ip.src, dst: ip.dst, ttl: ip.ttl, tos: ip.tos, id: ip.id, df: ip.df },
      });
      expect(toHex(built), `frame ${i}`).toBe(toHex(raw[i]!));
    });
  });
});

describe('Linux frames: TCP path MTU discovery', () => {
  const raw = loadHexFrames('linux-pmtu.hex');
  const frames = parseAll('linux-pmtu.hex');

  it('the fragmentation-needed quotes the TCP segment it refused (ports and sequence number)', () => {
    const syn = frames.find((f) => f.tcp?.flags === TCP_SYN)!.tcp!;
    const sent = tcpFrames(frames).filter((f) => f.ip!.src === A4 && f.tcp.payload.length === 1448);
    const errors = frames.filter((f) => f.icmp?.kind === 'dest-unreachable');
    expect(errors.length).toBeGreaterThanOrEqual(1);
    for (const e of errors) {
      const m = e.icmp!;
      if (m.kind !== 'dest-unreachable') throw new Error('kind');
      expect(m.code).toBe(ICMP_UNREACH_FRAG_NEEDED);
      expect(m.nextHopMtu).toBe(1280);
      expect(m.quoted).toMatchObject({ src: A4, dst: ipv4('10.77.2.2'), protocol: 6, srcPort: syn.srcPort, dstPort: 5002 });
      expect(sent.map((f) => f.tcp.seq)).toContain(m.quoted!.seq);
    }
  });

  it('after it, A sends segments that fit 1280 (payload <= 1280 - 20 - 20 - 12)', () => {
    const firstError = frames.findIndex((f) => f.icmp !== undefined);
    const later = tcpFrames(frames.slice(firstError)).filter((f) => f.ip!.src === A4 && f.tcp.payload.length > 0);
    expect(later.length).toBeGreaterThan(0);
    expect(later.some((f) => f.tcp.payload.length === 1228)).toBe(true);
    for (const f of later) expect(f.ip!.version === 4 && f.ip!.totalLength).toBeLessThanOrEqual(1500);
  });

  it('buildTcpFrame reproduces every TCP frame byte for byte', () => {
    frames.forEach((f, i) => {
      if (f.tcp) expect(toHex(rebuildTcp(f)), `frame ${i}`).toBe(toHex(raw[i]!));
    });
  });
});

describe('Linux frames: bulk transfer with loss (SACK)', () => {
  const raw = loadHexFrames('linux-sack.hex');
  const frames = tcpFrames(parseAll('linux-sack.hex'));

  it('RFC 2018: R acknowledges with 1..3 SACK blocks beside timestamps, above the cumulative ACK (RFC 2883 D-SACK aside)', () => {
    const sent = frames.filter((f) => f.ip!.src === A4);
    const acks = frames.filter((f) => f.ip!.src === R4 && f.tcp.options.sack);
    expect(acks.length).toBeGreaterThan(5);
    const counts = new Set(acks.map((f) => f.tcp.options.sack!.length));
    expect(counts.has(1)).toBe(true);
    expect(counts.has(3)).toBe(true);
    const synSeq = frames.find((f) => f.tcp.flags === TCP_SYN)!.tcp.seq;
    const maxEnd = (synSeq + 1 + 300000 + 1) >>> 0; // SYN, data, FIN (a SACK block may cover the FIN)
    for (const f of acks) {
      expect(f.tcp.options.ts).toBeDefined();
      expect(f.tcp.payload.length).toBe(0);
      f.tcp.options.sack!.forEach((b, i) => {
        expect(seqLt(b.left, b.right)).toBe(true);
        expect(seqLe(b.right, maxEnd)).toBe(true);
        // RFC 2883: only the first block may be a D-SACK at or below the cumulative ACK.
        const dsack = i === 0 && seqLe(b.right, f.tcp.ack);
        if (!dsack) expect(seqLt(f.tcp.ack, b.left)).toBe(true);
      });
    }
    expect(sent.length).toBeGreaterThan(0);
  });

  it('buildTcpFrame reproduces every frame (SACK option layout NOP NOP SACK) byte for byte', () => {
    frames.forEach((f, i) => expect(toHex(rebuildTcp(f)), `frame ${i}`).toBe(toHex(raw[i]!)));
  });
});
