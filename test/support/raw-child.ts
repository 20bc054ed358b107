/**
 * The userspace HostStack on a raw IP link, run as a child inside a lab namespace (a raw socket
 * belongs to its process's namespace):
 *   node <ts hooks> raw-child.ts '<RawChildConfig JSON>'
 * It opens one connection (connect, or accept one on `port`), writes `send` random bytes and then
 * ends, reads everything the peer sends, and reports JSON lines on stdout: {"event":"ready"},
 * {"event":"connected"}, {"event":"done", ...RawChildReport}. Role 'idle' opens nothing (every
 * segment gets the stack's RST) and reports when sent SIGTERM.
 */
import { createHash, randomBytes } from 'node:crypto';
import { HostStack } from '../../src/host/stack.js';
import type { TcpSocket } from '../../src/host/socket.js';
import type { Link } from '../../src/link/link.js';
import { openRawLink } from '../../src/link/raw.js';
import { WallClockScheduler } from '../../src/link/scheduler.js';
import { TCP_STATE_NAMES } from '../../src/tcp/types.js';
import { ipv4 } from '../../src/wire/addresses.js';

export interface RawChildConfig {
  /** The address the stack owns (assigned to the namespace's interface too). */
  address: string;
  prefixLength: number;
  /** 'idle': no connection and no listener (every segment gets our RST); reports on SIGTERM. */
  role: 'client' | 'server' | 'idle';
  /** Client: the Linux peer's address. */
  host?: string;
  port: number;
  /** Random bytes to send before ending our side. */
  send: number;
  /** Give up (report an error) after this long. */
  timeoutMs: number;
}

export interface RawChildReport {
  event: 'done';
  sentSha: string;
  recvSha: string;
  sentBytes: number;
  recvBytes: number;
  /** The peer's FIN arrived ('end'). */
  ended: boolean;
  error?: string;
  /** Final TCP state of the connection, e.g. TIME_WAIT. */
  state: string;
  resetsSent: number;
  link: { framesIn: number; framesOut: number; dropsOut: number };
}

const LINGER_MS = 300;

/** Hashes what the socket delivers. (Self-contained: the child imports as little as it can.) */
class Collector {
  readonly hash = createHash('sha256');
  bytes = 0;
  ended = false;
  error: (Error & { code?: string }) | undefined;

  constructor(socket: TcpSocket) {
    socket.on('data', (d: Buffer) => {
      this.hash.update(d);
      this.bytes += d.length;
    });
    socket.on('end', () => { this.ended = true; });
    socket.on('error', (e: Error & { code?: string }) => { this.error = e; });
  }

  digest(): string {
    return this.hash.copy().digest('hex');
  }
}

/** Writes `data` in 64 KiB chunks, honouring backpressure, then ends. */
async function writeAll(socket: TcpSocket, data: Uint8Array): Promise<void> {
  const chunk = 64 * 1024;
  for (let off = 0; off < data.length; off += chunk) {
    if (socket.destroyed) throw new Error('socket destroyed while writing');
    if (!socket.write(data.subarray(off, Math.min(off + chunk, data.length)))) {
      await new Promise<void>((resolve, reject) => {
        const onDrain = (): void => { socket.off('close', onClose); resolve(); };
        const onClose = (): void => { socket.off('drain', onDrain); reject(new Error('socket closed while waiting for drain')); };
        socket.once('drain', onDrain);
        socket.once('close', onClose);
      });
    }
  }
  socket.end();
}

function say(o: object): void {
  process.stdout.write(`${JSON.stringify(o)}\n`);
}

function main(): void {
  const cfg = JSON.parse(process.argv[2] ?? '{}') as RawChildConfig;
  const link = openRawLink({ localAddress: cfg.address });
  // raw-socket sends from its writable callback, and closing drops what is still queued (e.g. our
  // last ACK): count what the stack hands over, to wait until the link has sent it all.
  let handedOver = 0;
  const counting: Link = {
    name: link.name, layer: link.layer, mtu: link.mtu, counters: link.counters,
    send: (frames) => { handedOver += frames.length; link.send(frames); },
    setReceiver: (h) => link.setReceiver(h),
    close: () => link.close(),
  };
  const drained = async (): Promise<void> => {
    const end = Date.now() + 5_000;
    while (link.counters.framesOut + link.counters.dropsOut < handedOver && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
  };
  const scheduler = new WallClockScheduler();
  const stack = new HostStack({ link: counting, scheduler, ipv4: { address: ipv4(cfg.address), prefixLength: cfg.prefixLength } });
  const data = randomBytes(cfg.send);
  const sentSha = createHash('sha256').update(data).digest('hex');
  let finished = false;
  let phase = 'waiting for a connection';
  // A child that ends without its report leaves the test guessing: say where it stopped.
  process.on('exit', (code) => {
    if (phase !== 'reported') process.stderr.write(`raw-child: exit ${code} without a report while ${phase}\n`);
  });

  const finish = async (sock: TcpSocket | undefined, c: Collector | undefined, error?: string): Promise<void> => {
    if (finished) return;
    finished = true;
    phase = 'lingering';
    // Stay up a moment: the last ACK goes out, and a retransmitted FIN still meets our TIME_WAIT.
    await new Promise((r) => setTimeout(r, LINGER_MS));
    phase = 'draining';
    await drained();
    const report: RawChildReport = {
      event: 'done', sentSha, sentBytes: data.length,
      recvSha: c?.digest() ?? '', recvBytes: c?.bytes ?? 0, ended: c?.ended ?? false,
      state: sock ? TCP_STATE_NAMES[sock.connection.state] : 'none',
      resetsSent: stack.stats.resetsSent,
      link: { framesIn: link.counters.framesIn, framesOut: link.counters.framesOut, dropsOut: link.counters.dropsOut },
    };
    const err = error ?? c?.error?.code ?? c?.error?.message;
    if (err !== undefined) report.error = err;
    // TIME_WAIT would keep the stack's timers alive: stop here.
    stack.close();
    scheduler.close();
    phase = 'closing';
    await drained();
    await link.close();
    phase = 'reported';
    process.stdout.write(`${JSON.stringify(report)}\n`, () => process.exit(0));
  };

  const run = (sock: TcpSocket): void => {
    say({ event: 'connected', localPort: sock.localPort, remotePort: sock.remotePort });
    phase = 'transferring';
    const c = new Collector(sock);
    sock.on('close', () => void finish(sock, c));
    writeAll(sock, data).catch((e: Error) => void finish(sock, c, `write: ${e.message}`));
    setTimeout(() => void finish(sock, c, 'timeout'), cfg.timeoutMs).unref();
  };

  if (cfg.role === 'client') {
    const sock = stack.connect({ host: cfg.host ?? '', port: cfg.port });
    sock.once('connect', () => run(sock));
    sock.once('error', (e: Error & { code?: string }) => {
      if (sock.connecting) void finish(undefined, undefined, e.code ?? e.message);
    });
  } else if (cfg.role === 'idle') {
    process.once('SIGTERM', () => void finish(undefined, undefined));
  } else {
    const server = stack.listen(cfg.port, (sock) => {
      server.close();
      run(sock);
    }, { allowHalfOpen: true });
  }
  say({ event: 'ready' });
}

main();
