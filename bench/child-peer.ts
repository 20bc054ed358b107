/**
 * A Linux kernel TCP endpoint for the benchmark, run by `node` inside a lab namespace:
 *   node dist/bench/child-peer.js '<PeerConfig JSON>'
 * The sender makes the whole stream (and its digest) before it connects or listens, so stream
 * generation is outside the timed part; the receiver hashes as the bytes arrive. JSON lines on
 * stdout: {"event":"ready"}, {"event":"progress","bytes"}, {"event":"done",...PeerReport}.
 */
import { createHash } from 'node:crypto';
import { connect, createServer, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { benchStream, cpuMsSince, sha256Hex } from './stream.js';

export interface PeerConfig {
  role: 'send' | 'recv';
  /** 'listen' on host:port, or 'connect' to it. */
  open: 'listen' | 'connect';
  host: string;
  port: number;
  bytes: number;
  seed: string;
}

export interface PeerReport {
  event: 'done';
  bytes: number;
  sha: string;
  /** Established -> end of stream (receiver: the peer's FIN after the last byte; sender: close). */
  ms: number;
  userMs: number;
  systemMs: number;
  error?: string;
}

const WRITE_CHUNK = 256 * 1024;
const PROGRESS_MS = 250;

function say(o: object): void {
  process.stdout.write(`${JSON.stringify(o)}\n`);
}

function finish(report: Omit<PeerReport, 'event'>): void {
  say({ event: 'done', ...report });
  process.exit(0);
}

function receive(sock: Socket): void {
  const hash = createHash('sha256');
  let bytes = 0;
  let error: string | undefined;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  let ms = 0;
  let cpu = { userMs: 0, systemMs: 0 };
  const progress = setInterval(() => say({ event: 'progress', bytes }), PROGRESS_MS);
  sock.on('data', (d: Buffer) => {
    hash.update(d);
    bytes += d.length;
  });
  sock.on('end', () => {
    ms = performance.now() - t0;
    cpu = cpuMsSince(cpu0);
    sock.end();
  });
  sock.on('error', (e: NodeJS.ErrnoException) => { error = e.code ?? e.message; });
  sock.on('close', () => {
    clearInterval(progress);
    const r: Omit<PeerReport, 'event'> = { bytes, sha: hash.digest('hex'), ms, ...cpu };
    if (error !== undefined) r.error = error;
    finish(r);
  });
}

function send(sock: Socket, data: Buffer, sha: string): void {
  let off = 0;
  let error: string | undefined;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  sock.on('error', (e: NodeJS.ErrnoException) => { error = e.code ?? e.message; });
  sock.on('data', () => undefined); // the receiver sends nothing; read its FIN
  sock.on('close', () => {
    const r: Omit<PeerReport, 'event'> = { bytes: off, sha, ms: performance.now() - t0, ...cpuMsSince(cpu0) };
    if (error !== undefined) r.error = error;
    finish(r);
  });
  const pump = (): void => {
    while (off < data.length) {
      const end = Math.min(off + WRITE_CHUNK, data.length);
      const ok = sock.write(data.subarray(off, end));
      off = end;
      if (!ok) {
        sock.once('drain', pump);
        return;
      }
    }
    sock.end();
  };
  pump();
}

function main(): void {
  const cfg = JSON.parse(process.argv[2] ?? '{}') as PeerConfig;
  const data = cfg.role === 'send' ? benchStream(cfg.bytes, cfg.seed) : undefined;
  const sha = data ? sha256Hex(data) : '';
  const run = (sock: Socket): void => {
    sock.setNoDelay(true);
    if (data) send(sock, data, sha);
    else receive(sock);
  };
  if (cfg.open === 'listen') {
    const server = createServer((sock) => {
      server.close();
      run(sock);
    });
    server.listen(cfg.port, cfg.host, () => say({ event: 'ready' }));
  } else {
    say({ event: 'ready' });
    const sock = connect({ host: cfg.host, port: cfg.port });
    sock.once('connect', () => run(sock));
    sock.once('error', (e: NodeJS.ErrnoException) => {
      if (sock.connecting) finish({ bytes: 0, sha: '', ms: 0, userMs: 0, systemMs: 0, error: e.code ?? e.message });
    });
  }
}

main();
