/**
 * Reading classic pcap files (what `tcpdump -w` writes) on top of the `pcap-parser` package, and
 * decoding each record's link layer down to a TCP segment with `src/wire`.
 *
 * pcap-parser 0.2 knows only the microsecond magic (both byte orders) and is event based. This
 * wrapper adds: nanosecond files (the magic is rewritten to the microsecond one before the parser
 * sees it and the fraction is read as nanoseconds), promise/callback APIs, clean-up of the input
 * stream on errors, a readable error for pcapng, and detection of a cut-off last record (the parser
 * silently drops it). pcapng is not supported.
 */
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { ipv4ToString, ipv6ToString } from '../wire/addresses.js';
import { checksumValid, internetChecksum } from '../wire/checksum.js';
import type { WireDropReason } from '../wire/drop-counter.js';
import { parseEthernet, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_VLAN } from '../wire/ethernet.js';
import { parseIpPacket } from '../wire/frame.js';
import type { TcpSegment } from '../wire/tcp-segment.js';
import { LINKTYPE_ETHERNET, LINKTYPE_RAW } from './pcap-writer.js';

export { LINKTYPE_ETHERNET, LINKTYPE_RAW };
/** DLT_RAW as some platforms number it in files (Linux writes 101). */
export const LINKTYPE_RAW_ALT = 12;
/** Linux cooked capture v1: `tcpdump -i any -y LINUX_SLL`. */
export const LINKTYPE_LINUX_SLL = 113;
/** Linux cooked capture v2: what `tcpdump -i any` writes since libpcap 1.10. */
export const LINKTYPE_LINUX_SLL2 = 276;

export interface PcapPacket {
  /** Capture time in ms since the Unix epoch (fractions carry the us/ns part). */
  timeMs: number;
  /** The captured bytes of the frame (at most the snaplen). */
  data: Uint8Array;
  /** Length of the frame on the wire. */
  origLength: number;
}

export interface PcapInfo {
  linktype: number;
  snaplen: number;
  timePrecision: 'us' | 'ns';
  byteOrder: 'little' | 'big';
  /** Records read. */
  packetCount: number;
  /** Bytes of a last record cut off by the end of the file (a capture still being written). */
  truncatedTailBytes: number;
}

export interface PcapCapture extends PcapInfo {
  packets: PcapPacket[];
}

/** Raised for input that is not a classic pcap file, or that pcap-parser cannot read. */
export class PcapFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PcapFormatError';
  }
}

// pcap-parser is CommonJS without types: the part used here.
interface ParserGlobalHeader {
  majorVersion: number;
  minorVersion: number;
  snapshotLength: number;
  linkLayerType: number;
}
interface ParserPacket {
  header: { timestampSeconds: number; timestampMicroseconds: number; capturedLength: number; originalLength: number };
  data: Buffer;
}
interface Parser {
  on(ev: 'globalHeader', cb: (h: ParserGlobalHeader) => void): void;
  on(ev: 'packet', cb: (p: ParserPacket) => void): void;
  on(ev: 'end', cb: () => void): void;
  on(ev: 'error', cb: (e: Error) => void): void;
  /** Internal: bytes received but not yet parsed (a partial record at the end). */
  buffer: Buffer | null;
  /** Internal: the next parse step; in `parsePacketBody` the 16-byte record header is consumed. */
  state: { name: string };
}
const pcapParser = createRequire(import.meta.url)('pcap-parser') as { parse(input: NodeJS.ReadableStream): Parser };

const MAGIC_US_BE = 'a1b2c3d4';
const MAGIC_US_LE = 'd4c3b2a1';
const MAGIC_NS_BE = 'a1b23c4d';
const MAGIC_NS_LE = '4d3cb2a1';
const MAGIC_PCAPNG = '0a0d0d0a';

interface Magic {
  precision: 'us' | 'ns';
  byteOrder: 'little' | 'big';
  /** The microsecond magic bytes pcap-parser understands, in the file's byte order. */
  usMagic: Buffer;
}

function classifyMagic(first4: Buffer): Magic {
  const hex = first4.toString('hex');
  switch (hex) {
    case MAGIC_US_BE:
      return { precision: 'us', byteOrder: 'big', usMagic: Buffer.from(MAGIC_US_BE, 'hex') };
    case MAGIC_US_LE:
      return { precision: 'us', byteOrder: 'little', usMagic: Buffer.from(MAGIC_US_LE, 'hex') };
    case MAGIC_NS_BE:
      return { precision: 'ns', byteOrder: 'big', usMagic: Buffer.from(MAGIC_US_BE, 'hex') };
    case MAGIC_NS_LE:
      return { precision: 'ns', byteOrder: 'little', usMagic: Buffer.from(MAGIC_US_LE, 'hex') };
    case MAGIC_PCAPNG:
      throw new PcapFormatError('pcapng files are not supported (pcap-parser reads classic pcap): convert with `tcpdump -r IN -w OUT` or `editcap -F pcap IN OUT`');
    default:
      throw new PcapFormatError(`not a pcap file (magic ${hex || 'missing'})`);
  }
}

/** Rewrites the first 4 bytes of a stream (the nanosecond magic) to the microsecond one. */
class MagicRewrite extends Transform {
  private done = false;
  constructor(private readonly magic: Buffer) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    // Our own reader delivers the 24-byte header in the first chunk (highWaterMark >> 4).
    if (!this.done && chunk.length >= 4) {
      chunk = Buffer.from(chunk);
      this.magic.copy(chunk, 0);
      this.done = true;
    }
    cb(null, chunk);
  }
}

const READ_CHUNK = 1 << 20;

async function openInput(input: string | Uint8Array): Promise<{ stream: Readable; magic: Magic }> {
  if (typeof input !== 'string') {
    const buf = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
    const magic = classifyMagic(buf.subarray(0, 4));
    const data = magic.precision === 'ns' ? Buffer.concat([magic.usMagic, buf.subarray(4)]) : buf;
    return { stream: Readable.from([data]), magic };
  }
  const fh = await open(input, 'r');
  let first: Buffer;
  try {
    first = Buffer.alloc(4);
    const { bytesRead } = await fh.read(first, 0, 4, 0);
    first = first.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
  const magic = classifyMagic(first);
  const file = createReadStream(input, { highWaterMark: READ_CHUNK });
  if (magic.precision === 'us') return { stream: file, magic };
  const rewrite = new MagicRewrite(magic.usMagic);
  file.on('error', (e) => rewrite.destroy(e));
  rewrite.on('close', () => file.destroy());
  return { stream: file.pipe(rewrite), magic };
}

/**
 * Streams the records of a pcap file (path) or buffer to `onPacket`, in file order, without
 * keeping them. `onPacket` may throw: reading stops and the promise rejects with that error.
 * The packet's `data` stays valid after the call (it is never reused).
 */
export async function streamPcap(
  input: string | Uint8Array,
  onPacket: (packet: PcapPacket, info: PcapInfo) => void,
): Promise<PcapInfo> {
  const { stream, magic } = await openInput(input);
  return new Promise<PcapInfo>((resolve, reject) => {
    const parser = pcapParser.parse(stream);
    const fracToMs = magic.precision === 'ns' ? 1e-6 : 1e-3;
    let info: PcapInfo | undefined;
    let settled = false;
    const fail = (e: Error): void => {
      if (settled) return;
      settled = true;
      stream.destroy();
      reject(e);
    };
    parser.on('globalHeader', (h) => {
      info = {
        linktype: h.linkLayerType,
        snaplen: h.snapshotLength,
        timePrecision: magic.precision,
        byteOrder: magic.byteOrder,
        packetCount: 0,
        truncatedTailBytes: 0,
      };
    });
    parser.on('packet', (p) => {
      if (settled || !info) return;
      const h = p.header;
      const packet: PcapPacket = {
        timeMs: h.timestampSeconds * 1000 + h.timestampMicroseconds * fracToMs,
        data: p.data,
        origLength: h.originalLength,
      };
      info.packetCount++;
      try {
        onPacket(packet, info);
      } catch (e) {
        fail(e instanceof Error ? e : new Error(String(e)));
      }
    });
    parser.on('error', (e) => fail(new PcapFormatError(`pcap-parser: ${e.message}`)));
    parser.on('end', () => {
      if (settled) return;
      if (!info) {
        fail(new PcapFormatError('not a pcap file (shorter than the 24-byte global header)'));
        return;
      }
      const pending = parser.buffer ? parser.buffer.length : 0;
      info.truncatedTailBytes = pending + (parser.state.name === 'parsePacketBody' ? 16 : 0);
      settled = true;
      resolve(info);
    });
    stream.on('error', (e) => fail(e));
  });
}

/** Reads a whole pcap file (path) or buffer into memory. For big captures prefer `streamPcap`. */
export async function readPcap(input: string | Uint8Array): Promise<PcapCapture> {
  const packets: PcapPacket[] = [];
  const info = await streamPcap(input, (p) => packets.push(p));
  return { ...info, packets };
}

// ---------------------------------------------------------------- link layer -> IP -> TCP

export type LinkDecodeError = 'truncated' | 'not-ip' | 'unsupported-linktype';

/** The IP packet inside one captured frame of `linktype` (a view), or why there is none. */
export function ipPacketOf(linktype: number, frame: Uint8Array): Uint8Array | LinkDecodeError {
  let ethertype: number;
  let offset: number;
  switch (linktype) {
    case LINKTYPE_ETHERNET: {
      const eth = parseEthernet(frame);
      if (typeof eth === 'string') return eth;
      ethertype = eth.ethertype;
      offset = eth.headerLength;
      break;
    }
    case LINKTYPE_RAW:
    case LINKTYPE_RAW_ALT:
      return frame;
    case LINKTYPE_LINUX_SLL:
      // packet type, ARPHRD, address length, 8 address bytes, protocol.
      if (frame.length < 16) return 'truncated';
      ethertype = (frame[14]! << 8) | frame[15]!;
      offset = 16;
      break;
    case LINKTYPE_LINUX_SLL2:
      // protocol, reserved, ifindex, ARPHRD, packet type, address length, 8 address bytes.
      if (frame.length < 20) return 'truncated';
      ethertype = (frame[0]! << 8) | frame[1]!;
      offset = 20;
      break;
    default:
      return 'unsupported-linktype';
  }
  if (ethertype === ETHERTYPE_VLAN && linktype !== LINKTYPE_ETHERNET) {
    // Cooked captures keep a tag the NIC did not strip in the payload.
    if (frame.length < offset + 4) return 'truncated';
    ethertype = (frame[offset + 2]! << 8) | frame[offset + 3]!;
    offset += 4;
  }
  if (ethertype !== ETHERTYPE_IPV4 && ethertype !== ETHERTYPE_IPV6) return 'not-ip';
  return frame.subarray(offset);
}

export interface TcpPacketInfo {
  timeMs: number;
  ipVersion: 4 | 6;
  /** Source and destination address as text (dotted quad / RFC 5952). */
  src: string;
  dst: string;
  /** IPv4 identification field (Linux counts it up per socket: it tells send order). */
  ipId: number | undefined;
  /** The segment; `tcp.payload` holds only the captured bytes of the payload. */
  tcp: TcpSegment;
  /** Payload length on the wire (more than `tcp.payload.length` when the snaplen cut it). */
  payloadLength: number;
}

/** Why a frame yields no TCP segment: link layer, `src/wire` parse errors, or not TCP at all. */
export type TcpDecodeError = LinkDecodeError | WireDropReason | 'not-tcp';

export interface DecodeOptions {
  /**
   * Verify TCP checksums. Off by default: captures of locally sent packets carry only the
   * pseudo-header sum when the kernel leaves the checksum to offload. Snaplen-cut packets cannot
   * be verified and are accepted.
   */
  verifyChecksums?: boolean;
}

/**
 * Decodes a captured frame to its TCP segment. Frames cut by the snaplen still decode as long as
 * the IP and TCP headers were captured: the IP length fields are patched on a small copy so that
 * `src/wire` accepts them, and `payloadLength` keeps the real length.
 */
export function decodeTcpPacket(linktype: number, packet: PcapPacket, opts: DecodeOptions = {}): TcpPacketInfo | TcpDecodeError {
  const ip = ipPacketOf(linktype, packet.data);
  if (typeof ip === 'string') return ip;
  const fit = fitToCapture(ip);
  if (typeof fit === 'string') return fit;
  const verify = (opts.verifyChecksums ?? false) && !fit.cut;
  const parsed = parseIpPacket(fit.buf, verify);
  if (typeof parsed === 'string') return parsed;
  if (!parsed.tcp) return 'not-tcp';
  const tcp = parsed.tcp;
  const tcpHeaderLength = parsed.ip.payload.length - tcp.payload.length;
  const payloadLength = fit.wireLength - parsed.ip.headerLength - tcpHeaderLength;
  if (parsed.ip.version === 4) {
    return {
      timeMs: packet.timeMs, ipVersion: 4, src: ipv4ToString(parsed.ip.src), dst: ipv4ToString(parsed.ip.dst),
      ipId: parsed.ip.id, tcp, payloadLength,
    };
  }
  return {
    timeMs: packet.timeMs, ipVersion: 6, src: ipv6ToString(parsed.ip.src), dst: ipv6ToString(parsed.ip.dst),
    ipId: undefined, tcp, payloadLength,
  };
}

/**
 * When the snaplen cut the packet, a copy of the captured bytes whose IP length field claims only
 * what was captured (IPv4 header checksum recomputed, after checking the original one).
 */
function fitToCapture(ip: Uint8Array): { buf: Uint8Array; wireLength: number; cut: boolean } | 'truncated' | 'bad-checksum' {
  if (ip.length < 1) return 'truncated';
  const version = ip[0]! >>> 4;
  if (version === 4) {
    if (ip.length < 20) return 'truncated';
    const ihl = (ip[0]! & 0x0f) << 2;
    const total = (ip[2]! << 8) | ip[3]!;
    if (total <= ip.length || ihl < 20) return { buf: ip, wireLength: total, cut: false };
    if (ihl > ip.length) return 'truncated';
    if (!checksumValid(ip, 0, ihl)) return 'bad-checksum';
    const copy = new Uint8Array(ip); // a copy (Buffer#slice would be a view)
    copy[2] = copy.length >>> 8;
    copy[3] = copy.length & 0xff;
    copy[10] = 0;
    copy[11] = 0;
    const sum = internetChecksum(copy, 0, ihl);
    copy[10] = sum >>> 8;
    copy[11] = sum & 0xff;
    return { buf: copy, wireLength: total, cut: true };
  }
  if (version === 6) {
    if (ip.length < 40) return 'truncated';
    const total = 40 + ((ip[4]! << 8) | ip[5]!);
    if (total <= ip.length) return { buf: ip, wireLength: total, cut: false };
    const copy = new Uint8Array(ip); // a copy (Buffer#slice would be a view)
    const pl = copy.length - 40;
    copy[4] = pl >>> 8;
    copy[5] = pl & 0xff;
    return { buf: copy, wireLength: total, cut: true };
  }
  return { buf: ip, wireLength: ip.length, cut: false };
}
