/**
 * Ethernet link over a Linux TAP device, through the native addon `chimney_tap`
 * (native/tap, built by `npm install` / `npx node-gyp rebuild`).
 *
 * Receive: the addon reads each readable burst into one preallocated buffer and calls us once per
 * burst; frames handed on are views into that buffer, valid only during the callback (the array
 * holding them is reused as well). Send: one native call per batch.
 *
 * With `vnetHdr` every frame crosses the fd behind a 12-byte virtio_net_hdr_v1. Plain `send`
 * writes a zero header; `sendGso` lets the kernel segment and checksum up to 64 KiB TCP segments.
 * On receive the kernel may hand us coalesced (GSO) frames and frames whose checksum it left
 * partial: `setReceiver` completes such checksums so frames look like wire frames (a GSO frame
 * arrives as one large, valid segment); `setVnetReceiver` gets the raw header fields instead and
 * no checksum work is done. See native-notes/tap.md.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { endianness } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { newLinkCounters, type FrameHandler, type Link, type LinkCounters } from './link.js';

// TUNSETOFFLOAD bits: what we let the kernel hand us (partial checksums, coalesced frames).
export const TUN_F_CSUM = 0x01;
export const TUN_F_TSO4 = 0x02;
export const TUN_F_TSO6 = 0x04;
export const TUN_F_TSO_ECN = 0x08;
export const TUN_F_UFO = 0x10;
export const TUN_F_USO4 = 0x20;
export const TUN_F_USO6 = 0x40;

// virtio_net_hdr flags and gso types.
export const VNET_HDR_F_NEEDS_CSUM = 1;
export const VNET_HDR_F_DATA_VALID = 2;
export const VNET_GSO_NONE = 0;
export const VNET_GSO_TCPV4 = 1;
export const VNET_GSO_UDP = 3;
export const VNET_GSO_TCPV6 = 4;
export const VNET_GSO_UDP_L4 = 5;
export const VNET_GSO_ECN = 0x80;

export const VNET_HDR_SIZE = 12;
const ETH_HLEN = 14;

/** The fields of a virtio_net_hdr_v1 (num_buffers is always 0 on send and ignored on receive). */
export interface VnetHeader {
  flags: number;
  gsoType: number;
  /** Bytes of Ethernet + IP + L4 headers (the part copied in front of each segment). */
  hdrLen: number;
  /** Payload bytes per segment (the MSS for TCP). */
  gsoSize: number;
  /** Where checksumming starts (L4 header offset from the Ethernet header). */
  csumStart: number;
  /** Where the checksum goes, from csumStart (16 for TCP, 6 for UDP). */
  csumOffset: number;
}

/** Native counters of one TAP device (frames/bytes exclude the vnet header). */
export interface TapDeviceCounters {
  framesIn: number;
  bytesIn: number;
  framesOut: number;
  bytesOut: number;
  dropsOut: number;
  bursts: number;
  burstCapHits: number;
  maxBurst: number;
  eagainWrites: number;
  writeErrors: number;
  readErrors: number;
  queued: number;
  lastWriteError: string | null;
}

/** The addon's device object (native/tap/tap_device.h). */
export interface NativeTapDevice {
  readonly name: string;
  readonly vnetHdrSize: number;
  readonly offloads: number;
  readonly vnetLittleEndian: boolean;
  readonly queued: number;
  readonly closed: boolean;
  /** Shared counters, indexed like COUNTER_INDEX. */
  readonly counterArray: Float64Array;
  start(
    onBatch: (buf: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number) => void,
    onError?: (err: NodeJS.ErrnoException) => void,
  ): void;
  stop(): void;
  /** Returns frames accepted (written now or queued natively); the rest were dropped. */
  write(frames: readonly Uint8Array[], headers?: Uint8Array): number;
  close(): void;
  counters(): TapDeviceCounters;
  ref(): void;
  unref(): void;
  /** Test hook: the next n writes fail with errno `code` without reaching the fd. */
  _testFailWrites(n: number, code: number): void;
}

export interface TapAddon {
  openTap(name: string, opts?: { vnetHdr?: boolean; offloads?: number; mtu?: number; devicePath?: string }): NativeTapDevice;
  constants: Record<string, number>;
}

/** Indices into NativeTapDevice.counterArray (native/tap/tap_device.h `Counter`). */
export const COUNTER_INDEX = {
  framesIn: 0,
  bytesIn: 1,
  framesOut: 2,
  bytesOut: 3,
  dropsOut: 4,
  bursts: 5,
  burstCapHits: 6,
  maxBurst: 7,
  eagainWrites: 8,
  writeErrors: 9,
  readErrors: 10,
  queued: 11,
} as const;

let addon: TapAddon | undefined;

/** Loads build/Release/chimney_tap.node (from src/link or dist/src/link). */
export function loadTapAddon(): TapAddon {
  if (addon) return addon;
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, '../../build/Release/chimney_tap.node'), join(here, '../../../build/Release/chimney_tap.node')];
  const path = candidates.find((p) => existsSync(p));
  if (!path) {
    const err = new Error(
      'the TAP addon is not built (build/Release/chimney_tap.node is missing): run `npm install` ' +
        '(it builds native/tap through binding.gyp) or `npx node-gyp rebuild` in the repository root',
    ) as NodeJS.ErrnoException;
    err.code = 'ENOADDON';
    throw err;
  }
  addon = createRequire(import.meta.url)(path) as TapAddon;
  return addon;
}

export interface TapLinkOptions {
  /** Interface name (at most 15 characters); '%d' lets the kernel pick a number (e.g. 'chtap%d'). */
  name: string;
  /** Use the virtio-net header (checksum offload, TSO/GSO both ways). */
  vnetHdr?: boolean;
  /** TUN_F_* bits to offer the kernel (default with vnetHdr: CSUM | TSO4 | TSO6). */
  offloads?: number;
  /** IP MTU; also set on the kernel's netdev when given (default: leave it, report 1500). */
  mtu?: number;
  /** Called when the device fails (e.g. its netdev was deleted); the link stops reading. */
  onError?: (err: NodeJS.ErrnoException) => void;
  /** Test hook: another path instead of /dev/net/tun. */
  devicePath?: string;
}

/** Per-frame virtio header fields of one received batch, read on demand (no objects per frame). */
export class VnetBatchInfo {
  private readonly view: DataView;
  /** Offset of frame i's vnet header in the batch buffer. */
  readonly hdrOffsets = new Uint32Array(256);

  constructor(buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  flags(i: number): number {
    return this.view.getUint8(this.hdrOffsets[i]!);
  }
  gsoType(i: number): number {
    return this.view.getUint8(this.hdrOffsets[i]! + 1);
  }
  hdrLen(i: number): number {
    return this.view.getUint16(this.hdrOffsets[i]! + 2, true);
  }
  gsoSize(i: number): number {
    return this.view.getUint16(this.hdrOffsets[i]! + 4, true);
  }
  csumStart(i: number): number {
    return this.view.getUint16(this.hdrOffsets[i]! + 6, true);
  }
  csumOffset(i: number): number {
    return this.view.getUint16(this.hdrOffsets[i]! + 8, true);
  }
  header(i: number): VnetHeader {
    return {
      flags: this.flags(i),
      gsoType: this.gsoType(i),
      hdrLen: this.hdrLen(i),
      gsoSize: this.gsoSize(i),
      csumStart: this.csumStart(i),
      csumOffset: this.csumOffset(i),
    };
  }
}

export type VnetFrameHandler = (frames: readonly Uint8Array[], info: VnetBatchInfo) => void;

const littleEndianHost = endianness() === 'LE';

/**
 * Unfolded ones'-complement sum of big-endian 16-bit words over data[start, end). Word-aligned
 * stretches are summed as 32-bit words (two 16-bit halves, byte-swapped once at the end).
 */
export function onesSum(data: Uint8Array, start: number, end: number, initial = 0): number {
  let sum = initial;
  let i = start;
  const abs = data.byteOffset + start;
  if (littleEndianHost && (abs & 3) === 0 && end - start >= 64) {
    const words = (end - start) >>> 2;
    const u32 = new Uint32Array(data.buffer, abs, words);
    let a = 0;
    let b = 0;
    for (let k = 0; k < words; k++) {
      const w = u32[k]!;
      a += w & 0xffff;
      b += w >>> 16;
    }
    let le = a + b;
    while (le > 0xffff) le = (le % 0x10000) + Math.floor(le / 0x10000);
    sum += ((le & 0xff) << 8) | (le >>> 8);
    i = start + words * 4;
  }
  for (; i + 1 < end; i += 2) sum += (data[i]! << 8) | data[i + 1]!;
  if (i < end) sum += data[i]! << 8;
  return sum;
}

export function foldSum(sum: number): number {
  while (sum > 0xffff) sum = (sum % 0x10000) + Math.floor(sum / 0x10000);
  return sum;
}

/**
 * Finishes a checksum the kernel left partial (NEEDS_CSUM): the field at csumStart + csumOffset
 * holds the pseudo-header sum; the sum over [csumStart, end) complemented replaces it.
 */
export function completeChecksum(frame: Uint8Array, csumStart: number, csumOffset: number): boolean {
  const at = csumStart + csumOffset;
  if (at + 2 > frame.length || csumStart >= frame.length) return false;
  let c = ~foldSum(onesSum(frame, csumStart, frame.length)) & 0xffff;
  if (c === 0 && csumOffset === 6) c = 0xffff; // UDP: 0 means "no checksum"
  frame[at] = c >>> 8;
  frame[at + 1] = c & 0xff;
  return true;
}

/**
 * Prepares an Ethernet + IPv4/IPv6 + TCP frame for `sendGso`: fixes the IP length (and IPv4 header
 * checksum), puts the pseudo-header sum in the TCP checksum field, and returns the vnet header that
 * makes the kernel cut the payload into `mss`-sized segments and checksum each.
 */
export function prepareTcpGso(frame: Uint8Array, mss: number): VnetHeader {
  const v = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const type = v.getUint16(12);
  let l4: number;
  let pseudo: number;
  let gsoType: number;
  if (type === 0x0800) {
    const ihl = (frame[ETH_HLEN]! & 0x0f) * 4;
    l4 = ETH_HLEN + ihl;
    if (frame[ETH_HLEN + 9] !== 6) throw new Error('prepareTcpGso: not a TCP segment');
    v.setUint16(ETH_HLEN + 2, frame.length - ETH_HLEN);
    v.setUint16(ETH_HLEN + 10, 0);
    v.setUint16(ETH_HLEN + 10, ~foldSum(onesSum(frame, ETH_HLEN, l4)) & 0xffff);
    pseudo = onesSum(frame, ETH_HLEN + 12, ETH_HLEN + 20, 6 + (frame.length - l4));
    gsoType = VNET_GSO_TCPV4;
  } else if (type === 0x86dd) {
    l4 = ETH_HLEN + 40;
    if (frame[ETH_HLEN + 6] !== 6) throw new Error('prepareTcpGso: not a TCP segment (IPv6 extension headers are not supported)');
    v.setUint16(ETH_HLEN + 4, frame.length - l4);
    pseudo = onesSum(frame, ETH_HLEN + 8, ETH_HLEN + 40, 6 + (frame.length - l4));
    gsoType = VNET_GSO_TCPV6;
  } else {
    throw new Error(`prepareTcpGso: ethertype 0x${type.toString(16)} is not IPv4/IPv6`);
  }
  const thl = (frame[l4 + 12]! >>> 4) * 4;
  // Not complemented: the kernel (or each segment's checksum) adds the rest and complements.
  v.setUint16(l4 + 16, foldSum(pseudo));
  const payload = frame.length - l4 - thl;
  return {
    flags: VNET_HDR_F_NEEDS_CSUM,
    gsoType: payload > mss ? gsoType : VNET_GSO_NONE,
    hdrLen: l4 + thl,
    gsoSize: payload > mss ? mss : 0,
    csumStart: l4,
    csumOffset: 16,
  };
}

export function encodeVnetHeader(h: VnetHeader, out: Uint8Array, at: number): void {
  const v = new DataView(out.buffer, out.byteOffset + at, VNET_HDR_SIZE);
  v.setUint8(0, h.flags);
  v.setUint8(1, h.gsoType);
  v.setUint16(2, h.hdrLen, true);
  v.setUint16(4, h.gsoSize, true);
  v.setUint16(6, h.csumStart, true);
  v.setUint16(8, h.csumOffset, true);
  v.setUint16(10, 0, true);
}

export class TapLink implements Link {
  readonly layer = 'ethernet' as const;
  readonly name: string;
  readonly mtu: number;
  readonly vnetHdr: boolean;
  /** TUN_F_* bits the kernel accepted. */
  readonly offloads: number;
  /** Link counters (mutable: wrappers add their own drops); native deltas are folded in on access. */
  private readonly linkCounters: LinkCounters = newLinkCounters();
  private readonly seen = new Float64Array(5);
  private receiver: FrameHandler | undefined;
  private vnetReceiver: VnetFrameHandler | undefined;
  private readonly frames: Uint8Array[] = [];
  private info: VnetBatchInfo | undefined;
  private headerScratch = new Uint8Array(64 * VNET_HDR_SIZE);
  private closed = false;
  lastError: NodeJS.ErrnoException | undefined;

  constructor(
    /** The addon's device: native counters, ref/unref, test hooks. */
    readonly device: NativeTapDevice,
    mtu: number,
    private readonly onError?: (err: NodeJS.ErrnoException) => void,
  ) {
    this.name = device.name;
    this.mtu = mtu;
    this.vnetHdr = device.vnetHdrSize > 0;
    this.offloads = device.offloads;
    // Read from the start: unread frames would pile up in the kernel's 1000-frame queue.
    this.startDevice();
  }

  get counters(): LinkCounters {
    this.syncCounters();
    return this.linkCounters;
  }

  /** Native counters (bursts, EAGAIN, queue, write errors ...). */
  tapCounters(): TapDeviceCounters {
    return this.device.counters();
  }

  private syncCounters(): void {
    const a = this.device.counterArray;
    const c = this.linkCounters;
    const s = this.seen;
    const delta = (k: number, slot: number): number => {
      const d = a[k]! - s[slot]!;
      s[slot] = a[k]!;
      return d;
    };
    c.framesIn += delta(COUNTER_INDEX.framesIn, 0);
    c.bytesIn += delta(COUNTER_INDEX.bytesIn, 1);
    c.framesOut += delta(COUNTER_INDEX.framesOut, 2);
    c.bytesOut += delta(COUNTER_INDEX.bytesOut, 3);
    c.dropsOut += delta(COUNTER_INDEX.dropsOut, 4);
  }

  setReceiver(handler: FrameHandler): void {
    this.receiver = handler;
    this.vnetReceiver = undefined;
  }

  /** Receives frames with their virtio header fields (vnet links only); no checksum work is done. */
  setVnetReceiver(handler: VnetFrameHandler): void {
    if (!this.vnetHdr) throw new Error(`TAP ${this.name} was opened without vnetHdr`);
    this.vnetReceiver = handler;
    this.receiver = undefined;
  }

  private onBatch(buf: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number): void {
    const hdr = this.device.vnetHdrSize;
    const frames = this.frames;
    frames.length = 0;
    const raw = this.vnetReceiver !== undefined;
    if (hdr && !this.info) this.info = new VnetBatchInfo(buf);
    const info = this.info;
    for (let i = 0; i < count; i++) {
      const off = offsets[i]!;
      const len = lengths[i]!;
      if (len < hdr + ETH_HLEN) {
        this.linkCounters.dropsIn++;
        continue;
      }
      const frame = buf.subarray(off + hdr, off + len);
      if (hdr && info) {
        info.hdrOffsets[frames.length] = off;
        if (!raw && buf[off]! & VNET_HDR_F_NEEDS_CSUM) {
          const start = buf[off + 6]! | (buf[off + 7]! << 8);
          const offset = buf[off + 8]! | (buf[off + 9]! << 8);
          if (!completeChecksum(frame, start, offset)) {
            this.linkCounters.dropsIn++;
            continue;
          }
        }
      }
      frames.push(frame);
    }
    if (frames.length === 0) return;
    if (raw) {
      this.vnetReceiver!(frames, info!);
    } else if (this.receiver) {
      this.receiver(frames);
    } else {
      this.linkCounters.dropsIn += frames.length;
    }
  }

  private onDeviceError(err: NodeJS.ErrnoException): void {
    this.lastError = err;
    if (this.onError) this.onError(err);
    else process.emitWarning(`TAP link ${this.name} stopped: ${err.message}`, { code: 'CHIMNEY_TAP' });
  }

  send(frames: readonly Uint8Array[]): void {
    if (frames.length === 0) return;
    if (this.closed) {
      this.linkCounters.dropsOut += frames.length;
      return;
    }
    this.device.write(frames);
  }

  /** Sends frames with explicit vnet headers (TSO/GSO, checksum offload); see prepareTcpGso. */
  sendGso(frames: readonly Uint8Array[], meta: readonly VnetHeader[]): void {
    if (!this.vnetHdr) throw new Error(`TAP ${this.name} was opened without vnetHdr: no GSO sends`);
    if (meta.length !== frames.length) throw new RangeError('sendGso: one header per frame');
    if (this.closed) {
      this.linkCounters.dropsOut += frames.length;
      return;
    }
    const need = frames.length * VNET_HDR_SIZE;
    if (this.headerScratch.length < need) this.headerScratch = new Uint8Array(need * 2);
    for (let i = 0; i < meta.length; i++) encodeVnetHeader(meta[i]!, this.headerScratch, i * VNET_HDR_SIZE);
    this.device.write(frames, this.headerScratch.subarray(0, need));
  }

  /**
   * Stops reading (frames wait in the kernel's queue, txqueuelen deep, then drop) until
   * resumeReceive(): backpressure for a stack that cannot keep up.
   */
  pauseReceive(): void {
    if (!this.closed) this.device.stop();
  }

  resumeReceive(): void {
    if (!this.closed) this.startDevice();
  }

  private startDevice(): void {
    this.device.start(
      (buf, offsets, lengths, count) => this.onBatch(buf, offsets, lengths, count),
      (err) => this.onDeviceError(err),
    );
  }

  /** Let the process exit while the link is open (uv_unref) / undo it. */
  unref(): void {
    this.device.unref();
  }
  ref(): void {
    this.device.ref();
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.syncCounters();
      this.closed = true;
      this.device.close();
      this.syncCounters();
    }
    return Promise.resolve();
  }
}

/** Opens (creates) a TAP device and returns it as an Ethernet Link. Throws errors with `code`. */
export function openTapLink(opts: TapLinkOptions): TapLink {
  const native = loadTapAddon();
  const vnetHdr = opts.vnetHdr ?? false;
  const offloads = opts.offloads ?? (vnetHdr ? TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 : 0);
  const device = native.openTap(opts.name, { vnetHdr, offloads, mtu: opts.mtu, devicePath: opts.devicePath });
  return new TapLink(device, opts.mtu ?? 1500, opts.onError);
}
