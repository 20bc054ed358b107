/**
 * The host stack without offload: IPv4 + ARP + ICMP echo + TCP over any Link (tap, raw, sim).
 *
 * Input: each frame is parsed with the wire codec; anything malformed or not for us is dropped and
 * counted by reason, never thrown. TCP segments are demultiplexed by 4-tuple to their connection's
 * handler; a SYN to a listening port creates a connection, anything else unknown gets an RST.
 * Output: frames produced during one event-loop turn are built into one preallocated arena and
 * handed to `link.send` as one batch (at the end of the turn, or when the batch is full).
 */
import { randomBytes } from 'node:crypto';
import pino, { type Logger } from 'pino';
import type { Link } from '../link/link.js';
import { deferOn } from '../link/scheduler.js';
import { TcpConnection } from '../tcp/connection.js';
import type { Scheduler } from '../tcp/driver.js';
import { generateIsn, randomIsnSecret } from '../tcp/isn.js';
import { TCP_STATE_NAMES, type TcpConfig } from '../tcp/types.js';
import {
  BROADCAST_MAC, ipv4ToString, isBroadcastMac, macEquals, parseIpv4Address, writeIpv4, ZERO_MAC,
} from '../wire/addresses.js';
import { ARP_REPLY, ARP_REQUEST, type ArpPacket } from '../wire/arp.js';
import { DropCounter, type WireDropReason } from '../wire/drop-counter.js';
import { ETHERNET_HEADER_LENGTH } from '../wire/ethernet.js';
import {
  buildArpFrame, buildIcmpv4Frame, buildIpTcpPacket, buildTcpFrame, ipTcpPacketLength, parseFrame, parseIpPacket,
  type IpHeader, type TcpPacketSpec,
} from '../wire/frame.js';
import { ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, ICMP_UNREACH_FRAG_NEEDED, type IcmpMessage } from '../wire/icmp.js';
import { IPV4_HEADER_LENGTH } from '../wire/ipv4.js';
import { TCP_ACK, TCP_RST, TCP_SYN, type TcpSegment } from '../wire/tcp-segment.js';
import { ArpCache, type ArpCacheOptions, type ArpTableRow } from './arp-cache.js';
import { ChimneyLink } from './chimney-link.js';
import { socketError } from './errors.js';
import { HostConnection, type ConnectionHost } from './host-connection.js';
import { OffloadManager, type OffloadManagerOptions } from './offload.js';
import { TcpServer, type ServerHost, type TcpServerOptions } from './server.js';
import { TcpSocket, type TcpSocketOptions } from './socket.js';
import { TcpDemux } from './tcp-demux.js';

/** Why the stack dropped a frame (wire reasons from the codec plus the stack's own). */
export type HostDropReason =
  | WireDropReason
  /** Ethernet destination neither our MAC nor broadcast, or IP destination not our address. */
  | 'not-for-us'
  | 'vlan-tagged'
  | 'ipv6'
  /** IP protocol other than TCP and ICMP. */
  | 'unsupported-protocol'
  /** ICMP other than an echo request (errors are not acted on yet). */
  | 'icmp-unhandled'
  /** Source address broadcast, multicast, zero or our own: never answered. */
  | 'bad-source'
  | 'arp-queue-full'
  | 'arp-unresolved'
  /** Destination off-link and no gateway. */
  | 'no-route'
  /** SYN for a listener whose backlog of half-open connections is full. */
  | 'listen-overflow'
  /** A handler threw while processing the frame (a bug; logged). */
  | 'handler-error'
  /** ICMP "fragmentation needed" with no usable MTU (0, below 68, or not below ours). */
  | 'icmp-pmtu-ignored';

export interface HostStackOptions {
  link: Link;
  /** Our MAC address; required on Ethernet links. */
  mac?: Uint8Array;
  ipv4: { address: number; prefixLength: number; gateway?: number };
  scheduler: Scheduler;
  /** Defaults for every connection; `mss` defaults to the link MTU minus 40. */
  tcp?: Partial<TcpConfig>;
  logger?: Logger;
  arp?: ArpCacheOptions;
  /** Verify TCP/ICMP checksums on input (default true; false when the link hands over partial ones). */
  verifyChecksums?: boolean;
  /** Local port range for `connect` (default 49152..65535, IANA). */
  ephemeralPorts?: { low: number; high: number };
  /** Frames per `link.send` batch (default 64). */
  batchFrames?: number;
  /** Source of 32-bit random numbers (timestamp offsets, ephemeral ports); default crypto. */
  random?: () => number;
  /** Key for RFC 6528 ISNs; default a fresh random one. */
  isnSecret?: Uint8Array;
  /** Offload to the target behind `link` (which must then be a ChimneyLink). */
  offload?: OffloadManagerOptions;
}

export interface ConnectOptions extends TcpSocketOptions {
  /** Dotted-quad IPv4 address (or the number). */
  host: string | number;
  port: number;
  localPort?: number;
  noDelay?: boolean;
  keepAlive?: boolean;
  keepAliveInitialDelay?: number;
  /** Per-connection engine settings on top of the stack's. */
  tcp?: Partial<TcpConfig>;
}

export interface HostStackStats {
  framesIn: number;
  framesOut: number;
  batchesOut: number;
  arpRequestsIn: number;
  arpRepliesIn: number;
  arpRequestsOut: number;
  arpRepliesOut: number;
  icmpEchoRequestsIn: number;
  /** ICMP "fragmentation needed" reports that lowered a path MTU (RFC 1191). */
  pathMtuUpdates: number;
  tcpSegmentsIn: number;
  tcpSegmentsOut: number;
  /** RSTs sent for segments that matched no connection. */
  resetsSent: number;
}

export interface TcpTableRow {
  local: string;
  remote: string;
  state: string;
  sendQueued: number;
  readable: number;
  /** False while someone else (the offload target) drives the connection. */
  attached: boolean;
}

const DEFAULT_BATCH = 64;

function u32Random(): number {
  return randomBytes(4).readUInt32BE(0);
}

function ipBytes(addr: number): Uint8Array {
  const b = new Uint8Array(4);
  writeIpv4(b, 0, addr);
  return b;
}

export class HostStack implements ConnectionHost, ServerHost {
  readonly link: Link;
  readonly mac: Uint8Array;
  readonly address: number;
  readonly localAddress: string;
  readonly prefixLength: number;
  readonly gateway: number | undefined;
  readonly scheduler: Scheduler;
  readonly demux = new TcpDemux();
  readonly arp: ArpCache;
  readonly drops = new DropCounter<HostDropReason>();
  readonly stats: HostStackStats = {
    framesIn: 0, framesOut: 0, batchesOut: 0, arpRequestsIn: 0, arpRepliesIn: 0, arpRequestsOut: 0, arpRepliesOut: 0,
    icmpEchoRequestsIn: 0, pathMtuUpdates: 0, tcpSegmentsIn: 0, tcpSegmentsOut: 0, resetsSent: 0,
  };
  readonly tcpConfig: Partial<TcpConfig>;
  /** Present when the stack runs over an offload target (`opts.offload`). */
  readonly offload: OffloadManager | undefined;
  private readonly log: Logger;
  private readonly mask: number;
  private readonly ethernet: boolean;
  private readonly verify: boolean;
  private readonly random: () => number;
  private readonly isnSecret: Uint8Array;
  private readonly addressBytes: Uint8Array;
  private readonly ephemeral: { low: number; high: number };
  private readonly listeners = new Map<number, TcpServer>();
  private readonly sockets = new Set<TcpSocket>();
  private ipId: number;
  private closed = false;

  // Output batching: frames of this turn, built into `arena` while it has room.
  private readonly batchMax: number;
  private readonly arena: Uint8Array;
  private arenaUsed = 0;
  private out: Uint8Array[] = [];
  private flushQueued = false;

  constructor(opts: HostStackOptions) {
    this.link = opts.link;
    this.ethernet = opts.link.layer === 'ethernet';
    if (this.ethernet && opts.mac === undefined) throw new Error(`HostStack: link ${opts.link.name} is Ethernet: a MAC address is required`);
    this.mac = opts.mac?.slice() ?? ZERO_MAC;
    const { address, prefixLength, gateway } = opts.ipv4;
    if (!(Number.isInteger(prefixLength) && prefixLength >= 0 && prefixLength <= 32)) throw new RangeError(`HostStack: bad prefix length ${prefixLength}`);
    this.address = address >>> 0;
    this.localAddress = ipv4ToString(this.address);
    this.addressBytes = ipBytes(this.address);
    this.prefixLength = prefixLength;
    this.mask = prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0;
    this.gateway = gateway === undefined ? undefined : gateway >>> 0;
    this.scheduler = opts.scheduler;
    this.log = opts.logger ?? pino({ level: 'silent' });
    this.verify = opts.verifyChecksums ?? true;
    this.random = opts.random ?? u32Random;
    this.isnSecret = opts.isnSecret ?? randomIsnSecret();
    this.ephemeral = opts.ephemeralPorts ?? { low: 49152, high: 65535 };
    // No FIN_WAIT_2 timeout while an application holds the socket (Linux applies tcp_fin_timeout
    // to orphans only): a half-closed connection still receiving must not be cut off after a long
    // silence of the peer. An orphaned socket starts the timeout (TcpSocket).
    this.tcpConfig = { mss: opts.link.mtu - IPV4_HEADER_LENGTH - 20, finWait2TimeoutMs: 0, ...opts.tcp };
    this.ipId = this.random() & 0xffff;
    this.batchMax = opts.batchFrames ?? DEFAULT_BATCH;
    this.arena = new Uint8Array(this.batchMax * (opts.link.mtu + ETHERNET_HEADER_LENGTH));
    this.arp = new ArpCache(this.scheduler, {
      sendRequest: (ip, mac) => this.sendArpRequest(ip, mac),
      release: (_ip, mac, frames) => {
        for (const f of frames) {
          f.set(mac, 0);
          this.queueFrame(f);
        }
      },
      drop: (reason, n) => this.drops.count(reason === 'queue-full' ? 'arp-queue-full' : 'arp-unresolved', n),
      // Spec 2.2: offloaded connections through this neighbor get its new MAC (UpdateOffload).
      changed: (ip, mac) => this.offload?.neighborChanged(ip, mac),
    }, opts.arp);
    this.link.setReceiver((frames) => this.receive(frames));
    if (opts.offload !== undefined) {
      if (!(opts.link instanceof ChimneyLink)) throw new Error('HostStack: offload needs a ChimneyLink (the target owns the wire)');
      const log = this.log;
      this.offload = new OffloadManager(this, opts.link, { log: (msg, fields) => log.info(fields ?? {}, msg), ...opts.offload });
    }
  }

  // ------------------------------------------------------------------------------ public API

  /** Active open. The socket emits 'connect' once established, or 'error' (ECONNREFUSED, ETIMEDOUT). */
  connect(opts: ConnectOptions, onConnect?: () => void): TcpSocket {
    if (this.closed) throw new Error('HostStack is closed');
    const remoteIp = typeof opts.host === 'number' ? opts.host >>> 0 : parseIpv4Address(opts.host);
    if (remoteIp === undefined) throw new TypeError(`connect: host must be an IPv4 address, got ${JSON.stringify(opts.host)}`);
    checkPort(opts.port, 'port');
    let localPort: number;
    if (opts.localPort !== undefined) {
      checkPort(opts.localPort, 'localPort');
      if (this.demux.get(remoteIp, opts.port, opts.localPort) || this.listeners.has(opts.localPort)) {
        throw socketError('EADDRINUSE', 'connect', this.localAddress, opts.localPort);
      }
      localPort = opts.localPort;
    } else {
      localPort = this.ephemeralPort(remoteIp, opts.port);
    }
    const now = this.scheduler.now();
    const config: Partial<TcpConfig> = { ...this.tcpConfig, ...opts.tcp };
    if (opts.noDelay) config.nagle = false;
    if (opts.keepAlive) {
      config.keepalive = {
        ...this.tcpConfig.keepalive, ...opts.tcp?.keepalive, enabled: true,
        ...(opts.keepAliveInitialDelay ? { idleMs: opts.keepAliveInitialDelay } : {}),
      } as TcpConfig['keepalive'];
    }
    const iss = generateIsn(now, this.isnSecret, this.addressBytes, localPort, ipBytes(remoteIp), opts.port);
    const conn = TcpConnection.connect({ config, localPort, remotePort: opts.port, iss, now, tsOffset: this.random() });
    const binding = new HostConnection(this, remoteIp, opts.port, localPort, conn);
    const socket = new TcpSocket(binding, {
      localAddress: this.localAddress, localPort, remoteAddress: ipv4ToString(remoteIp), remotePort: opts.port,
    }, opts);
    this.track(socket);
    if (onConnect) socket.once('connect', onConnect);
    this.log.debug({ local: localPort, remote: `${ipv4ToString(remoteIp)}:${opts.port}` }, 'tcp connect');
    return socket;
  }

  /** Passive open on `port`; `onConnection` gets each established socket. */
  listen(port: number, onConnection?: (socket: TcpSocket) => void, options: TcpServerOptions = {}): TcpServer {
    if (this.closed) throw new Error('HostStack is closed');
    checkPort(port, 'port');
    if (this.listeners.has(port)) throw socketError('EADDRINUSE', 'listen', this.localAddress, port);
    const server = new TcpServer(this, port, options);
    if (onConnection) server.on('connection', onConnection);
    this.listeners.set(port, server);
    return server;
  }

  /** Called by TcpServer.close. */
  unlisten(server: TcpServer): void {
    if (this.listeners.get(server.port) === server) this.listeners.delete(server.port);
  }

  arpTable(): ArpTableRow[] {
    return this.arp.table();
  }

  tcpTable(): TcpTableRow[] {
    const rows: TcpTableRow[] = [];
    for (const e of this.demux.entries()) {
      const h = e.handler;
      const hc = h instanceof HostConnection ? h : undefined;
      const c = hc?.connection;
      rows.push({
        local: `${this.localAddress}:${e.localPort}`,
        remote: `${ipv4ToString(e.remoteIp)}:${e.remotePort}`,
        state: c ? TCP_STATE_NAMES[c.state] : 'DETACHED',
        sendQueued: c?.sendQueued ?? 0,
        readable: c?.readable ?? 0,
        attached: hc?.attached ?? false,
      });
    }
    return rows;
  }

  /** The open sockets (application connections), oldest first. */
  connections(): TcpSocket[] {
    return [...this.sockets];
  }

  /**
   * Shut down: open connections are reset, listeners closed, ARP timers cancelled, pending output
   * sent. The link stays open (its owner closes it).
   */
  close(): void {
    if (this.closed) return;
    for (const server of [...this.listeners.values()]) server.close();
    for (const s of [...this.sockets]) s.resetAndDestroy();
    for (const e of this.demux.entries()) {
      if (e.handler instanceof HostConnection && e.handler.attached && !e.handler.closed) {
        e.handler.run((c, now) => c.abort(now));
      }
    }
    this.flush();
    this.closed = true;
    this.arp.clear();
    this.link.setReceiver(() => {});
  }

  // ------------------------------------------------------------------------------ input

  private receive(frames: readonly Uint8Array[]): void {
    for (const f of frames) {
      if (this.closed) return; // an application closed the stack from inside a handler
      this.stats.framesIn++;
      try {
        if (this.ethernet) this.inputFrame(f);
        else this.inputIpPacket(f);
      } catch (err) {
        this.drops.count('handler-error');
        this.log.error({ err }, 'frame handler threw');
      }
    }
  }

  private inputFrame(f: Uint8Array): void {
    const p = parseFrame(f, this.verify);
    if (typeof p === 'string') {
      this.drops.count(p);
      return;
    }
    const dst = p.eth.dst;
    if (!macEquals(dst, this.mac) && !isBroadcastMac(dst)) {
      this.drops.count('not-for-us');
      return;
    }
    if (p.eth.vlan) {
      this.drops.count('vlan-tagged');
      return;
    }
    if (p.arp) {
      this.inputArp(p.arp);
      return;
    }
    this.inputIp(p.ip!, p.tcp, p.icmp);
  }

  private inputIpPacket(f: Uint8Array): void {
    const p = parseIpPacket(f, this.verify);
    if (typeof p === 'string') {
      this.drops.count(p);
      return;
    }
    this.inputIp(p.ip, p.tcp, p.icmp);
  }

  private inputIp(ip: IpHeader, tcp: TcpSegment | undefined, icmp: IcmpMessage | undefined): void {
    if (ip.version !== 4) {
      this.drops.count('ipv6');
      return;
    }
    if (ip.dst !== this.address) {
      this.drops.count('not-for-us');
      return;
    }
    if (!this.validSource(ip.src)) {
      this.drops.count('bad-source');
      return;
    }
    if (tcp) {
      this.inputTcp(ip.src, tcp);
      return;
    }
    if (icmp) {
      if (icmp.kind === 'echo' && icmp.type === ICMP_ECHO_REQUEST) {
        this.stats.icmpEchoRequestsIn++;
        this.sendEchoReply(ip.src, icmp.id, icmp.seq, icmp.data);
      } else if (icmp.kind === 'dest-unreachable' && icmp.code === ICMP_UNREACH_FRAG_NEEDED && icmp.quoted?.protocol === 6 && icmp.quoted.src === this.address) {
        this.pathMtuReported(icmp.quoted.dst, icmp.nextHopMtu);
      } else {
        this.drops.count('icmp-unhandled');
      }
      return;
    }
    this.drops.count('unsupported-protocol');
  }

  /**
   * RFC 1191: a router on the way to `dst` needs packets of at most `mtu` bytes. Connections to
   * `dst` driven here shrink their segments; offloaded ones get it as a path UpdateOffload.
   */
  private pathMtuReported(dst: number, mtu: number): void {
    // RFC 1191 section 5: an old router reports 0; 68 is IPv4's minimum. Larger than ours: ignore.
    if (mtu < 68 || mtu >= this.link.mtu) {
      this.drops.count('icmp-pmtu-ignored');
      return;
    }
    this.stats.pathMtuUpdates++;
    for (const s of this.sockets) {
      const b = s.binding;
      if (b.entry.remoteIp !== dst || b.closed) continue;
      if (b.attached) b.run((c) => c.setPathMtu(mtu, 20));
      else this.offload?.pathMtuChanged(s, mtu);
    }
  }

  private validSource(src: number): boolean {
    if (src === 0 || src === this.address || src === 0xffffffff) return false;
    if (src >>> 28 === 0xe) return false; // 224.0.0.0/4 multicast
    // The directed broadcast of our subnet (for prefixes that have one).
    if (this.prefixLength < 31 && (src & ~this.mask) >>> 0 === (~this.mask >>> 0) && ((src ^ this.address) & this.mask) === 0) return false;
    return true;
  }

  private inputArp(arp: ArpPacket): void {
    if (arp.op === ARP_REQUEST) this.stats.arpRequestsIn++;
    else this.stats.arpRepliesIn++;
    if (macEquals(arp.senderMac, this.mac)) return; // our own frame looped back
    const forUs = arp.targetIp === this.address;
    // RFC 826: update an existing entry from any ARP; create one only when the ARP is for us.
    if (arp.senderIp !== 0 && arp.senderIp !== this.address && !isBroadcastMac(arp.senderMac)) {
      this.arp.learn(arp.senderIp, arp.senderMac, forUs);
    }
    if (arp.op === ARP_REQUEST && forUs) {
      this.stats.arpRepliesOut++;
      const dst = arp.senderMac.slice();
      const { buf, offset } = this.alloc(ETHERNET_HEADER_LENGTH + 28);
      this.queueFrame(buildArpFrame({
        srcMac: this.mac, dstMac: dst,
        arp: { op: ARP_REPLY, senderMac: this.mac, senderIp: this.address, targetMac: dst, targetIp: arp.senderIp },
      }, buf, offset));
    }
  }

  private inputTcp(src: number, seg: TcpSegment): void {
    this.stats.tcpSegmentsIn++;
    const entry = this.demux.get(src, seg.srcPort, seg.dstPort);
    if (entry !== undefined) {
      entry.handler.input(seg);
      return;
    }
    if ((seg.flags & (TCP_SYN | TCP_ACK | TCP_RST)) === TCP_SYN) {
      const server = this.listeners.get(seg.dstPort);
      if (server !== undefined) {
        if (server.acceptsSyn) this.accept(server, src, seg);
        else this.drops.count('listen-overflow');
        return;
      }
    }
    const rst = TcpConnection.resetFor(seg);
    if (rst !== null) {
      this.stats.resetsSent++;
      this.sendSegment(src, rst);
    }
  }

  private accept(server: TcpServer, src: number, syn: TcpSegment): void {
    const now = this.scheduler.now();
    const o = server.options;
    const config: Partial<TcpConfig> = { ...this.tcpConfig };
    if (o.noDelay) config.nagle = false;
    if (o.keepAlive) {
      config.keepalive = {
        ...this.tcpConfig.keepalive, enabled: true, ...(o.keepAliveInitialDelay ? { idleMs: o.keepAliveInitialDelay } : {}),
      } as TcpConfig['keepalive'];
    }
    const iss = generateIsn(now, this.isnSecret, this.addressBytes, syn.dstPort, ipBytes(src), syn.srcPort);
    const conn = TcpConnection.accept({
      config, localPort: syn.dstPort, remotePort: syn.srcPort, iss, now, syn, tsOffset: this.random(),
    });
    const binding = new HostConnection(this, src, syn.srcPort, syn.dstPort, conn);
    const socket = new TcpSocket(binding, {
      localAddress: this.localAddress, localPort: syn.dstPort, remoteAddress: ipv4ToString(src), remotePort: syn.srcPort,
    }, o, (s) => server.onEstablished(s));
    server.adopt(socket);
    this.track(socket);
  }

  private track(socket: TcpSocket): void {
    socket.offloadControl = this.offload;
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  connectionGone(hc: HostConnection): void {
    this.log.debug({ local: hc.entry.localPort, remote: `${ipv4ToString(hc.entry.remoteIp)}:${hc.entry.remotePort}` }, 'tcp connection closed');
  }

  // ------------------------------------------------------------------------------ output

  sendSegments(remoteIp: number, segs: readonly TcpSegment[]): void {
    for (const s of segs) this.sendSegment(remoteIp, s);
  }

  private sendSegment(dst: number, segment: TcpSegment): void {
    if (this.closed) return;
    const spec: TcpPacketSpec = { ip: { version: 4, src: this.address, dst, id: this.nextIpId() }, segment };
    const ipLength = ipTcpPacketLength(spec);
    this.stats.tcpSegmentsOut++;
    if (!this.ethernet) {
      const { buf, offset } = this.alloc(ipLength);
      this.queueFrame(buildIpTcpPacket(spec, buf, offset));
      return;
    }
    const hop = this.nextHop(dst);
    if (hop === undefined) return;
    const mac = this.arp.lookup(hop);
    if (mac !== undefined) {
      const { buf, offset } = this.alloc(ETHERNET_HEADER_LENGTH + ipLength);
      this.queueFrame(buildTcpFrame({ ...spec, srcMac: this.mac, dstMac: mac }, buf, offset));
    } else {
      this.arp.enqueue(hop, buildTcpFrame({ ...spec, srcMac: this.mac, dstMac: ZERO_MAC }));
    }
  }

  private sendEchoReply(dst: number, id: number, seq: number, data: Uint8Array): void {
    const spec = {
      srcMac: this.mac, dstMac: ZERO_MAC, ip: { version: 4 as const, src: this.address, dst, id: this.nextIpId() },
      icmp: { kind: 'echo' as const, type: ICMP_ECHO_REPLY, id, seq, data },
    };
    const len = ETHERNET_HEADER_LENGTH + IPV4_HEADER_LENGTH + 8 + data.length;
    if (!this.ethernet) {
      const { buf, offset } = this.alloc(len);
      this.queueFrame(buildIcmpv4Frame(spec, buf, offset).subarray(ETHERNET_HEADER_LENGTH));
      return;
    }
    const hop = this.nextHop(dst);
    if (hop === undefined) return;
    const mac = this.arp.lookup(hop);
    if (mac !== undefined) {
      const { buf, offset } = this.alloc(len);
      this.queueFrame(buildIcmpv4Frame({ ...spec, dstMac: mac }, buf, offset));
    } else {
      this.arp.enqueue(hop, buildIcmpv4Frame(spec));
    }
  }

  private sendArpRequest(ip: number, unicastTo: Uint8Array | undefined): void {
    if (this.closed || !this.ethernet) return;
    this.stats.arpRequestsOut++;
    const { buf, offset } = this.alloc(ETHERNET_HEADER_LENGTH + 28);
    this.queueFrame(buildArpFrame({
      srcMac: this.mac, dstMac: unicastTo ?? BROADCAST_MAC,
      arp: { op: ARP_REQUEST, senderMac: this.mac, senderIp: this.address, targetMac: ZERO_MAC, targetIp: ip },
    }, buf, offset));
  }

  /** The resolved link-layer address of the next hop to `remoteIp` (offload neighbor state). */
  neighborMac(remoteIp: number): Uint8Array | undefined {
    const hop = this.nextHop(remoteIp);
    return hop === undefined ? undefined : this.arp.lookup(hop);
  }

  /** On-link destinations directly, the rest through the gateway. */
  private nextHop(dst: number): number | undefined {
    const hop = this.routeTo(dst);
    if (hop === undefined) this.drops.count('no-route');
    return hop;
  }

  /** The next hop toward `dst`: itself when on-link, else the gateway (undefined: no route). */
  routeTo(dst: number): number | undefined {
    if (((dst ^ this.address) & this.mask) === 0) return dst;
    return this.gateway;
  }

  private nextIpId(): number {
    this.ipId = (this.ipId + 1) & 0xffff;
    return this.ipId;
  }

  /** Room for one frame: in the arena while it lasts, else a fresh buffer. */
  private alloc(len: number): { buf: Uint8Array; offset: number } {
    if (this.arenaUsed + len <= this.arena.length) {
      const offset = this.arenaUsed;
      this.arenaUsed += len;
      return { buf: this.arena, offset };
    }
    return { buf: new Uint8Array(len), offset: 0 };
  }

  private queueFrame(frame: Uint8Array): void {
    this.out.push(frame);
    if (this.out.length >= this.batchMax) {
      this.flush();
    } else if (!this.flushQueued) {
      this.flushQueued = true;
      deferOn(this.scheduler, () => {
        this.flushQueued = false;
        this.flush();
      });
    }
  }

  /** Hand the frames of this turn to the link; the arena is free again afterwards. */
  flush(): void {
    if (this.out.length === 0) return;
    const frames = this.out;
    this.out = [];
    this.stats.framesOut += frames.length;
    this.stats.batchesOut++;
    this.link.send(frames);
    this.arenaUsed = 0;
  }

  private ephemeralPort(remoteIp: number, remotePort: number): number {
    const { low, high } = this.ephemeral;
    const span = high - low + 1;
    const start = this.random() % span;
    for (let i = 0; i < span; i++) {
      const p = low + ((start + i) % span);
      if (!this.listeners.has(p) && this.demux.get(remoteIp, remotePort, p) === undefined) return p;
    }
    throw socketError('EADDRINUSE', 'connect', ipv4ToString(remoteIp), remotePort);
  }
}

function checkPort(port: number, what: string): void {
  if (!(Number.isInteger(port) && port > 0 && port <= 65535)) throw new RangeError(`${what} must be an integer in 1..65535, got ${port}`);
}
