/**
 * Interop rigs: the host stack on a TAP whose kernel side sits in a namespace the test builds, a
 * Linux TCP peer (test/support/host-peer.ts under node:net) started there, tcpdump captures read
 * back with pcap-parser. Everything is created through the Lab, so teardown removes every
 * namespace, device and process, also when a test fails.
 *
 *  direct:  [HostStack]=TAP fd ... TAP netdev 10.77.0.1 (ns k, Linux peer)
 *  routed:  [HostStack]=TAP fd ... TAP netdev 10.77.0.1 (ns r, forwarding) veth 10.78.0.1
 *                                    ... veth 10.78.0.2 (ns k, Linux peer); netem on both r egresses
 */
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { rmSync } from 'node:fs';
import { Lab } from '../../src/lab/lab.js';
import type { LabProcess } from '../../src/lab/process.js';
import type { NetemOptions } from '../../src/lab/netem.js';
import { tsNodeArgs } from '../../src/lab/ts-child.js';
import { WallClockScheduler } from '../../src/link/scheduler.js';
import { openTapLink, type TapLink } from '../../src/link/tap.js';
import type { Link } from '../../src/link/link.js';
import { HostStack } from '../../src/host/stack.js';
import type { TcpConfig } from '../../src/tcp/types.js';
import { ipv4, ipv4ToString, mac } from '../../src/wire/addresses.js';
import { parseFrame } from '../../src/wire/frame.js';
import type { TcpSegment } from '../../src/wire/tcp-segment.js';
import type { PeerConfig, PeerReport } from './host-peer.js';

export const STACK_IP = '10.77.0.2';
export const STACK_MAC = '02:c4:77:00:00:02';
export const TAP_KERNEL_IP = '10.77.0.1';
export const ROUTED_PEER_IP = '10.78.0.2';

export interface HostRig {
  lab: Lab;
  /** Namespace of the Linux peer. */
  peerNs: string;
  /** Address the stack reaches the peer at. */
  peerIp: string;
  /** The peer's interface (where captures run). */
  peerDev: string;
  /** Router namespace and its two devices (routed rig only). */
  router?: { ns: string; tapDev: string; vethDev: string };
  link: TapLink;
  /** What the stack sends through: the TAP, or the wrapper around it. */
  stackLink: Link;
  scheduler: WallClockScheduler;
  stack: HostStack;
}

export interface RigOptions {
  routed?: boolean;
  tcp?: Partial<TcpConfig>;
  /** Put a wrapper (e.g. a userspace impairment) between the stack and the TAP. */
  wrapLink?: (tap: Link) => Link;
}

export async function buildRig(opts: RigOptions = {}): Promise<HostRig> {
  const lab = new Lab();
  try {
    const tapNs = await lab.addNamespace(opts.routed ? 'r' : 'k');
    await lab.prepareLinuxPeer(tapNs);
    const link = openTapLink({ name: lab.devName('t') });
    lab.adoptDevice(link.name);
    await lab.moveLink(link.name, tapNs);
    await lab.addAddress(tapNs, link.name, `${TAP_KERNEL_IP}/24`);
    await lab.setLink(tapNs, link.name, { txqueuelen: 10_000, up: true });
    const scheduler = new WallClockScheduler();
    const stackLink = opts.wrapLink ? opts.wrapLink(link) : link;
    const stack = new HostStack({
      link: stackLink, mac: mac(STACK_MAC), scheduler, tcp: opts.tcp,
      ipv4: { address: ipv4(STACK_IP), prefixLength: 24, gateway: ipv4(TAP_KERNEL_IP) },
    });
    // Teardown hooks run last-registered first: stack, then scheduler, then the link(s).
    lab.onTeardown(() => stackLink.close());
    lab.onTeardown(() => scheduler.close());
    lab.onTeardown(() => stack.close());
    if (!opts.routed) {
      return { lab, peerNs: tapNs, peerIp: TAP_KERNEL_IP, peerDev: link.name, link, stackLink, scheduler, stack };
    }
    const peerNs = await lab.addNamespace('k');
    await lab.prepareLinuxPeer(peerNs);
    const { a: rDev, b: kDev } = await lab.addVeth(tapNs, peerNs, { txqueuelen: 10_000 });
    await lab.addAddress(tapNs, rDev, '10.78.0.1/24');
    await lab.addAddress(peerNs, kDev, `${ROUTED_PEER_IP}/24`);
    await lab.addRoute(peerNs, ['default', 'via', '10.78.0.1']);
    await lab.sysctl(tapNs, 'net.ipv4.ip_forward', 1);
    // One MSS per packet on the peer's side, so netem loses segments, not 64 KB GSO bursts.
    await lab.exec(peerNs, 'ip', ['link', 'set', 'dev', kDev, 'gso_max_segs', '1']);
    return { lab, peerNs, peerIp: ROUTED_PEER_IP, peerDev: kDev, router: { ns: tapNs, tapDev: link.name, vethDev: rDev }, link, stackLink, scheduler, stack };
  } catch (err) {
    await lab.teardown().catch(() => undefined);
    throw err;
  }
}

/** netem on both directions of the routed rig (the router's two egresses). */
export async function impairBothWays(rig: HostRig, o: NetemOptions): Promise<void> {
  const r = rig.router;
  if (!r) throw new Error('impairBothWays needs the routed rig');
  await rig.lab.setNetem(r.ns, r.tapDev, o);
  await rig.lab.setNetem(r.ns, r.vethDev, o);
}

const PEER_SCRIPT = fileURLToPath(new URL('./host-peer.ts', import.meta.url));

export class Peer {
  constructor(readonly proc: LabProcess) {}

  static async start(rig: HostRig, cfg: PeerConfig): Promise<Peer> {
    const proc = rig.lab.spawn(rig.peerNs, process.execPath, [...tsNodeArgs(), PEER_SCRIPT, JSON.stringify(cfg)]);
    const p = new Peer(proc);
    if (cfg.role === 'server') await proc.waitForOutput(/"event":"listening"/, 20_000);
    return p;
  }

  events(): Array<Record<string, unknown>> {
    return this.proc.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  async wait(event: string, timeoutMs: number): Promise<Record<string, unknown>> {
    await this.proc.waitForOutput(new RegExp(`"event":"${event}"`), timeoutMs);
    return this.events().find((e) => e.event === event)!;
  }

  async done(timeoutMs: number): Promise<PeerReport> {
    return (await this.wait('done', timeoutMs)) as unknown as PeerReport;
  }
}

/**
 * The Linux peer's TCP abort and timeout counters that are not zero (`nstat` in its namespace), for
 * a failed transfer's report: TCPAbortOnTimeout there means Linux gave the connection up.
 */
export async function peerTcpAborts(rig: Pick<HostRig, 'lab' | 'peerNs'>): Promise<string> {
  try {
    const { stdout } = await rig.lab.exec(rig.peerNs, 'nstat', ['-az']);
    return stdout.split('\n').filter((l) => /TCPAbort|TCPTimeouts|TcpExtTCPLossFailures/.test(l) && !/\s0\s/.test(l)).map((l) => l.trim().replace(/\s+/g, ' ')).join('; ') || 'none';
  } catch (e) {
    return `nstat failed: ${(e as Error).message}`;
  }
}

/** Polls `cond` every few ms until it holds; rejects after `timeoutMs`. */
export async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

// ---- capture ----------------------------------------------------------------------------------

interface PcapParser {
  on(ev: 'globalHeader', cb: (h: { linkLayerType: number }) => void): void;
  on(ev: 'packet', cb: (p: { data: Buffer }) => void): void;
  on(ev: 'end', cb: () => void): void;
  on(ev: 'error', cb: (e: Error) => void): void;
}
const pcapParser = createRequire(import.meta.url)('pcap-parser') as { parse(path: string): PcapParser };

export interface CapturedSegment {
  src: string;
  dst: string;
  seg: TcpSegment;
}

/** tcpdump -w in the peer namespace; `stop()` returns the TCP segments it saw, decoded. */
export async function startCapture(rig: HostRig, filter = 'tcp'): Promise<{ stop(): Promise<CapturedSegment[]> }> {
  const file = join(tmpdir(), `${rig.lab.uniqueName('cap')}.pcap`);
  rig.lab.onTeardown(() => rmSync(file, { force: true }));
  // A 32 MiB buffer: the stack writes its frames in bursts of 64.
  const dump = rig.lab.spawn(rig.peerNs, 'tcpdump', ['-i', rig.peerDev, '-nn', '-U', '--immediate-mode', '-B', '32768', '-w', file, filter]);
  await dump.waitForOutput(/listening on/, 20_000);
  return {
    async stop(): Promise<CapturedSegment[]> {
      await new Promise((r) => setTimeout(r, 200)); // the last frames reach the capture
      await dump.kill('SIGTERM');
      // An incomplete capture would make the test judge the stack on missing frames: refuse it.
      const m = /(\d+) packets? dropped by kernel/.exec(dump.stderr);
      if (!m) throw new Error(`tcpdump did not report its statistics:\n${dump.stderr}`);
      if (Number(m[1]) !== 0) throw new Error(`tcpdump dropped ${m[1]} packets: the capture is incomplete`);
      return readTcpCapture(file);
    },
  };
}

/**
 * Reads a tcpdump file with pcap-parser and decodes each frame with src/wire. Checksums are not
 * verified: the peer's own frames are captured before the kernel fills them in (offload).
 */
export function readTcpCapture(file: string): Promise<CapturedSegment[]> {
  return new Promise((resolve, reject) => {
    const out: CapturedSegment[] = [];
    let linktype = -1;
    const parser = pcapParser.parse(file);
    parser.on('globalHeader', (h) => { linktype = h.linkLayerType; });
    parser.on('packet', (p) => {
      if (linktype !== 1) return;
      const f = parseFrame(new Uint8Array(p.data), false);
      if (typeof f === 'string' || !f.tcp || !f.ip || f.ip.version !== 4) return;
      out.push({ src: ipv4ToString(f.ip.src), dst: ipv4ToString(f.ip.dst), seg: { ...f.tcp, payload: f.tcp.payload.slice() } });
    });
    parser.on('end', () => resolve(out));
    parser.on('error', reject);
  });
}
