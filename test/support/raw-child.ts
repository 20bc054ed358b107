/**
 * The userspace HostStack on a raw IP link, run as a child inside a lab namespace (a raw socket
 * belongs to its process's namespace):
 *   node <ts hooks> raw-child.ts '<RawChildConfig JSON>'
 * It opens one connection (connect, or accept one on `port`), writes `send` random bytes and then
 * ends, reads everything the peer sends, and reports JSON lines on stdout: {"event":"ready"},
 * {"event":"connected"}, {"event":"done", ...RawChildReport}.
 */
import { createHash, randomBytes } from 'node:crypto';
import { HostStack } from '../../src/host/stack.js';
import type { TcpSocket } from '../../src/host/socket.js';
import type { Link } from '../../src/link/link.js';
import { openRawLink } from '../../src/link/raw.js';
import { WallClockScheduler } from '../../src/link/scheduler.js';
import { TCP_STATE_NAMES } from '../../src/tcp/types.js';
import { ipv4 } from '../../src/wire/addresses.js';
import { Collector, writeAll } from './host-sim.js';

export interface RawChildConfig {
  /** The address the stack owns (assigned to the namespace's interface too). */
  address: string;
  prefixLength: number;
  role: 'client' | 'server';
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

  const finish = async (sock: TcpSocket | undefined, c: Collector | undefined, error?: string): Promise<void> => {
    if (finished) return;
    finished = true;
    // Stay up a moment: the last ACK goes out, and a retransmitted FIN still meets our TIME_WAIT.
    await new Promise((r) => setTimeout(r, LINGER_MS));
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
    await drained();
    await link.close();
    process.stdout.write(`${JSON.stringify(report)}\n`, () => process.exit(0));
  };

  const run = (sock: TcpSocket): void => {
    say({ event: 'connected', localPort: sock.localPort, remotePort: sock.remotePort });
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
  } else {
    const server = stack.listen(cfg.port, (sock) => {
      server.close();
      run(sock);
    }, { allowHalfOpen: true });
  }
  say({ event: 'ready' });
}

main();
