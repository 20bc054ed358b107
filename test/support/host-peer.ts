/**
 * A Linux kernel TCP peer for the interop tests, run as a child inside a lab namespace:
 *   node <ts hooks> host-peer.ts '<PeerConfig JSON>'
 * It sends `send` random bytes, hashes what it sends and what it receives, and reports JSON lines
 * on stdout: {"event":"listening"}, {"event":"connected",...}, {"event":"peer-end",...},
 * {"event":"done", sentSha, recvSha, sentBytes, recvBytes, error?}.
 */
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer, type Socket } from 'node:net';

export interface PeerConfig {
  role: 'server' | 'client';
  port: number;
  /** Client: where to connect. Server: address to bind (default all). */
  host?: string;
  /** Bytes to send. */
  send: number;
  /**
   * 'end': end() once everything is written. 'after-peer-end': end() only after the peer's FIN.
   * 'hold': never end and never read (so that unread data makes a kill send RST).
   */
  close: 'end' | 'after-peer-end' | 'hold';
}

export interface PeerReport {
  event: 'done';
  sentSha: string;
  recvSha: string;
  sentBytes: number;
  recvBytes: number;
  error?: string;
}

function say(o: object): void {
  process.stdout.write(`${JSON.stringify(o)}\n`);
}

function run(sock: Socket, cfg: PeerConfig): void {
  const sent = createHash('sha256');
  const recv = createHash('sha256');
  let sentBytes = 0;
  let recvBytes = 0;
  let error: string | undefined;
  let peerEnded = false;
  let writesDone = false;
  say({ event: 'connected', localPort: sock.localPort, remotePort: sock.remotePort });
  if (cfg.close !== 'hold') {
    sock.on('data', (d: Buffer) => {
      recv.update(d);
      recvBytes += d.length;
    });
  }
  sock.on('end', () => {
    peerEnded = true;
    say({ event: 'peer-end', recvBytes });
    if (cfg.close === 'after-peer-end' && writesDone) sock.end();
  });
  sock.on('error', (e: NodeJS.ErrnoException) => { error = e.code ?? e.message; });
  sock.on('close', () => {
    const report: PeerReport = { event: 'done', sentSha: sent.digest('hex'), recvSha: recv.digest('hex'), sentBytes, recvBytes };
    if (error !== undefined) report.error = error;
    say(report);
    process.exit(0);
  });
  const chunk = 64 * 1024;
  const pump = (): void => {
    while (sentBytes < cfg.send) {
      const n = Math.min(chunk, cfg.send - sentBytes);
      const b = randomBytes(n);
      sent.update(b);
      sentBytes += n;
      if (!sock.write(b)) {
        sock.once('drain', pump);
        return;
      }
    }
    writesDone = true;
    say({ event: 'sent', sentBytes });
    if (cfg.close === 'end' || (cfg.close === 'after-peer-end' && peerEnded)) sock.end();
  };
  pump();
}

function main(): void {
  const cfg = JSON.parse(process.argv[2] ?? '{}') as PeerConfig;
  if (cfg.role === 'server') {
    const server = createServer({ allowHalfOpen: true }, (sock) => {
      server.close();
      run(sock, cfg);
    });
    server.listen(cfg.port, cfg.host, () => say({ event: 'listening' }));
  } else {
    const sock = connect({ host: cfg.host, port: cfg.port, allowHalfOpen: true });
    sock.once('connect', () => run(sock, cfg));
    sock.once('error', (e: NodeJS.ErrnoException) => {
      if (sock.connecting || !sock.remotePort) {
        say({ event: 'done', sentSha: '', recvSha: '', sentBytes: 0, recvBytes: 0, error: e.code ?? e.message });
        process.exit(0);
      }
    });
  }
}

main();
