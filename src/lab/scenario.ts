/**
 * The lab scenario, defined once: addresses, ports, sizes, the peer protocol, and the argv of each
 * role. `chimney start` (namespace lab and sim), `chimney lab peer|stack` (separate processes) and
 * docker-compose.yml all take their values from here; test/lab/compose.test.ts checks that the
 * compose file names exactly these commands.
 *
 * Peer protocol (the same on the Linux peer and on the in-process sim peer): the sink port reads
 * to the end, reports the digest of what it read and closes; the source port sends `bytes` random
 * bytes, reports their digest and closes. Reports are `PeerEvent`s, one JSON object per line.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';

export const SCENARIO = {
  /** The Linux peer (also the stack's gateway). */
  peerIp: '10.77.0.1',
  /** The userspace host stack's address on the target's wire. */
  stackIp: '10.77.0.2',
  prefixLength: 24,
  /** The in-process peer's MAC in sim mode. */
  peerMac: '02:c4:00:00:00:02',
  /** Upload: the peer reads to the end. */
  sinkPort: 5001,
  /** Download: the peer writes `bytes`. */
  sourcePort: 5002,
  /** Kernel TCP only: the peer's reports as JSON lines, for a stack role in another container. */
  controlPort: 5003,
  /** Bytes each way (CLI size syntax). */
  bytes: '20M',
  /** Terminate + re-offload hand-overs in the middle of each transfer. */
  cycles: 3,
  /**
   * docker-compose lab: one bridge network that is the peer's subnet. The chimney container sits
   * on it as `chimneyIp`; the stack's address is reserved there (never given to a container) and
   * routed to the TAP, with proxy ARP answering for it (native-notes/containers.md).
   */
  compose: {
    network: 'chimnet',
    subnet: '10.77.0.0/24',
    gateway: '10.77.0.254',
    chimneyIp: '10.77.0.3',
    tap: 'chtap0',
    results: '/results',
  },
} as const;

/** What the chimney container's network namespace needs (compose `sysctls:`). */
export const STACK_SYSCTLS: Readonly<Record<string, string>> = {
  // Forward between the TAP and the container network.
  'net.ipv4.ip_forward': '1',
  // Answer ARP for the stack's address on the network, and for the peer on the TAP. (Their
  // random proxy delay, up to 0.8 s, is set to 0 per device by the stack role over netlink:
  // net.ipv4.neigh.default exists only in the initial namespace, so no container can set it.)
  'net.ipv4.conf.all.proxy_arp': '1',
};

/**
 * What a Linux peer's network namespace needs (compose `sysctls:` of the peer; `Lab.prepareLinuxPeer`).
 * A peer program exits once its data is written; its orphaned socket must keep the retry budget
 * of an open one, or Linux drops it silently after a long loss recovery (native-notes/troubleshooting.md).
 */
export const PEER_SYSCTLS: Readonly<Record<string, string>> = {
  'net.ipv4.tcp_orphan_retries': '15',
};

/** `chimney lab peer ...` as run by the peer container (and, inside a namespace, by `chimney start`). */
export function peerRoleArgv(): string[] {
  const s = SCENARIO;
  return ['lab', 'peer', '--listen', s.peerIp, '--sink-port', String(s.sinkPort), '--source-port', String(s.sourcePort), '--control-port', String(s.controlPort), '--bytes', s.bytes];
}

/** `chimney lab stack ...` as run by the chimney container. */
export function stackRoleArgv(): string[] {
  const s = SCENARIO;
  return [
    'lab', 'stack', '--peer', s.peerIp, '--ip', `${s.stackIp}/${s.prefixLength}`, '--tap', s.compose.tap,
    '--sink-port', String(s.sinkPort), '--source-port', String(s.sourcePort), '--control-port', String(s.controlPort),
    '--bytes', s.bytes, '--cycles', String(s.cycles), '--results', s.compose.results,
  ];
}

export type PeerEvent =
  | { event: 'listening'; host: string; ports: number[] }
  | { event: 'sink' | 'source'; bytes: number; sha256: string }
  | { event: 'error'; where: string; message: string };

export type PeerResult = Extract<PeerEvent, { event: 'sink' | 'source' }>;

/** Parses the JSON lines of a peer's output, ignoring anything else (logs). */
export function parsePeerEvents(text: string): PeerEvent[] {
  const out: PeerEvent[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const o = JSON.parse(line) as PeerEvent;
      if (typeof o.event === 'string') out.push(o);
    } catch {
      // a partial line: the rest comes later
    }
  }
  return out;
}

/** The sink side of the protocol, for any listener that hands out Duplex sockets. */
export function sinkHandler(say: (e: PeerEvent) => void): (s: Duplex) => void {
  return (s) => {
    const h = createHash('sha256');
    let n = 0;
    s.on('data', (d: Buffer) => { h.update(d); n += d.length; });
    s.on('end', () => { say({ event: 'sink', bytes: n, sha256: h.digest('hex') }); s.end(); });
    s.on('error', (e: Error) => say({ event: 'error', where: 'sink', message: e.message }));
  };
}

/** The source side: `bytes` random bytes, then the digest report and the close. */
export function sourceHandler(bytes: number, say: (e: PeerEvent) => void): (s: Duplex) => void {
  return (s) => {
    const h = createHash('sha256');
    let left = bytes;
    const pump = (): void => {
      while (left > 0) {
        const c = randomBytes(Math.min(65536, left));
        left -= c.length;
        h.update(c);
        if (!s.write(c)) { s.once('drain', pump); return; }
      }
      s.end();
      say({ event: 'source', bytes, sha256: h.digest('hex') });
    };
    s.on('data', () => undefined);
    s.on('error', (e: Error) => say({ event: 'error', where: 'source', message: e.message }));
    pump();
  };
}
