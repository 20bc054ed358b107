/**
 * IP-layer link over a raw IPv4 socket (`raw-socket` package): receives the TCP packets addressed
 * to `localAddress` as the kernel delivers them to raw sockets, sends whole IP packets
 * (IP_HDRINCL). For labs and for hosts without TAP; the fast path is the TAP link.
 *
 * - One packet per receive callback: raw-socket reads one datagram per readable event, so batches
 *   are always of one (measured ~150k packets/s in, ~65k out; see native-notes/raw-sockets.md).
 * - The kernel still owns the address and answers segments of connections it does not know with
 *   RST; the lab's RST suppression (src/lab/rst-suppress.ts) drops those unless they carry our
 *   SO_MARK, which this socket sets, so our own RSTs pass.
 * - The socket belongs to the network namespace of the process that opens it.
 */
import { createRequire } from 'node:module';
import { isIPv4 } from 'node:net';
import { newLinkCounters, type FrameHandler, type Link, type LinkCounters } from './link.js';

/** Default SO_MARK of chimney's raw sockets ('CH' + 1); the RST suppression rule lets it pass. */
export const CHIMNEY_MARK = 0x43480001;

const SOL_SOCKET = 1;
const SO_MARK = 36; // linux/asm-generic/socket.h; raw-socket passes numeric options through
const IPPROTO_IP = 0;
const IP_HDRINCL = 3;
const IPPROTO_TCP = 6;

/** The part of raw-socket's API used here (it ships no types). */
interface RawSocket {
  on(event: 'message', fn: (buf: Buffer, source: string) => void): this;
  on(event: 'error', fn: (err: Error) => void): this;
  on(event: 'close', fn: () => void): this;
  setOption(level: number, option: number, value: number): void;
  send(buf: Buffer, offset: number, length: number, address: string, after: (err: Error | null, bytes: number) => void): this;
  close(): this;
}
interface RawSocketModule {
  createSocket(opts: { protocol: number; addressFamily?: number; bufferSize?: number }): RawSocket;
  AddressFamily: { IPv4: number };
}

export interface RawLinkOptions {
  /** The IPv4 address this stack owns; only packets to it are delivered. */
  localAddress: string;
  /** SO_MARK for our packets (default CHIMNEY_MARK); 0 leaves the mark unset. */
  mark?: number;
  /** Largest IP packet (default 1500). */
  mtu?: number;
  /** Sends waiting in raw-socket's queue before further sends are dropped (default 4096). */
  maxPendingSends?: number;
  onError?: (err: Error) => void;
}

/** Error from opening the raw socket, with a code and what to do. */
export class RawLinkError extends Error {
  constructor(
    message: string,
    readonly code: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'RawLinkError';
  }
}

function loadRawSocket(): RawSocketModule {
  try {
    return createRequire(import.meta.url)('raw-socket') as RawSocketModule;
  } catch (err) {
    throw new RawLinkError('the raw-socket package is not installed or not built: run `npm install`', 'ENOADDON', { cause: err });
  }
}

export class RawLink implements Link {
  readonly layer = 'ip' as const;
  readonly name: string;
  readonly mtu: number;
  readonly counters: LinkCounters = newLinkCounters();
  private receiver: FrameHandler | undefined;
  private readonly local: Uint8Array;
  private pending = 0;
  private closed = false;
  private readonly closedPromise: Promise<void>;
  private readonly batch: Uint8Array[] = [];
  lastError: Error | undefined;

  constructor(
    private readonly socket: RawSocket,
    readonly localAddress: string,
    mtu: number,
    private readonly maxPending: number,
    private readonly onError?: (err: Error) => void,
  ) {
    this.name = `raw:${localAddress}`;
    this.mtu = mtu;
    this.local = Uint8Array.from(localAddress.split('.').map(Number));
    this.closedPromise = new Promise((resolve) => socket.on('close', () => resolve()));
    socket.on('message', (buf) => this.onMessage(buf));
    socket.on('error', (err) => {
      this.lastError = err;
      if (this.onError) this.onError(err);
      else process.emitWarning(`raw link ${this.name}: ${err.message}`, { code: 'CHIMNEY_RAW' });
    });
  }

  private onMessage(buf: Buffer): void {
    // Every TCP packet the namespace receives reaches every TCP raw socket: keep ours only.
    if (buf.length < 20 || buf[0]! >> 4 !== 4) return;
    const l = this.local;
    if (buf[16] !== l[0] || buf[17] !== l[1] || buf[18] !== l[2] || buf[19] !== l[3]) return;
    this.counters.framesIn++;
    this.counters.bytesIn += buf.length;
    if (!this.receiver) {
      this.counters.dropsIn++;
      return;
    }
    this.batch[0] = buf;
    this.receiver(this.batch);
  }

  setReceiver(handler: FrameHandler): void {
    this.receiver = handler;
  }

  send(frames: readonly Uint8Array[]): void {
    for (const f of frames) {
      if (this.closed || this.pending >= this.maxPending || f.length < 20 || f[0]! >> 4 !== 4) {
        this.counters.dropsOut++;
        continue;
      }
      // raw-socket sends later, from its writable callback: copy, the caller may reuse f.
      const copy = Buffer.from(f);
      const dst = `${copy[16]}.${copy[17]}.${copy[18]}.${copy[19]}`;
      this.pending++;
      this.socket.send(copy, 0, copy.length, dst, (err) => {
        this.pending--;
        if (err) {
          this.counters.dropsOut++;
          this.lastError = err;
        } else {
          this.counters.framesOut++;
          this.counters.bytesOut += copy.length;
        }
      });
    }
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.socket.close();
    }
    return this.closedPromise;
  }
}

/**
 * Opens a raw IPv4 TCP socket in the caller's network namespace. Needs CAP_NET_RAW (and
 * CAP_NET_ADMIN for a non-zero mark).
 */
export function openRawLink(opts: RawLinkOptions): RawLink {
  if (!isIPv4(opts.localAddress)) throw new RawLinkError(`raw link: '${opts.localAddress}' is not an IPv4 address`, 'EINVAL');
  const raw = loadRawSocket();
  let socket: RawSocket;
  try {
    socket = raw.createSocket({ protocol: IPPROTO_TCP, addressFamily: raw.AddressFamily.IPv4, bufferSize: 65_536 + 4_096 });
  } catch (err) {
    const msg = (err as Error).message;
    if (/not permitted|permission/i.test(msg)) {
      throw new RawLinkError('opening a raw socket needs CAP_NET_RAW: run as root or setcap cap_net_raw+ep on node', 'EPERM', { cause: err });
    }
    throw new RawLinkError(`opening a raw socket failed: ${msg}`, 'ERAW', { cause: err });
  }
  try {
    socket.setOption(IPPROTO_IP, IP_HDRINCL, 1);
    const mark = opts.mark ?? CHIMNEY_MARK;
    if (mark) socket.setOption(SOL_SOCKET, SO_MARK, mark >>> 0);
  } catch (err) {
    socket.close();
    const msg = (err as Error).message;
    if (/not permitted/i.test(msg)) {
      throw new RawLinkError('setting SO_MARK needs CAP_NET_ADMIN: run as root, or pass mark: 0 and no RST suppression', 'EPERM', { cause: err });
    }
    throw new RawLinkError(`configuring the raw socket failed: ${msg}`, 'ERAW', { cause: err });
  }
  return new RawLink(socket, opts.localAddress, opts.mtu ?? 1500, opts.maxPendingSends ?? 4096, opts.onError);
}
