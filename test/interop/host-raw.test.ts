/**
 * The host stack on the raw IP link against Linux kernel TCP: the stack runs in a child process in
 * namespace A (a raw socket belongs to its process's namespace; test/support/raw-child.ts), with
 * the kernel's RSTs for A's address suppressed (src/lab/rst-suppress.ts); node:net runs in
 * namespace B across a veth pair. 20 MB each way, active and passive open, graceful close, checked
 * by SHA-256 on both ends and by an independent tcpdump capture in B read back with src/capture.
 */
import { createRequire } from 'node:module';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyzePcap, decodeTcpPacket, readPcap, verdict, type ConnectionReport } from '../../src/capture/index.js';
import { labAvailable } from '../../src/lab/availability.js';
import { Lab } from '../../src/lab/lab.js';
import type { LabProcess } from '../../src/lab/process.js';
import { installRstSuppression, type RstSuppression } from '../../src/lab/rst-suppress.js';
import { tsNodeArgs } from '../../src/lab/ts-child.js';
import { TCP_ACK, TCP_RST, TCP_SYN } from '../../src/wire/tcp-segment.js';
import type { PeerConfig, PeerReport } from '../support/host-peer.js';
import type { RawChildConfig, RawChildReport } from '../support/raw-child.js';

function rawSocketReason(): string {
  try {
    createRequire(import.meta.url)('raw-socket');
    return '';
  } catch (err) {
    return `the raw-socket addon does not load (run npm install): ${(err as Error).message}`;
  }
}
const avail = labAvailable(['ip', 'nft', 'tcpdump', 'ethtool']);
const why = avail.ok ? rawSocketReason() : avail.reason;
if (why) console.warn(`skipping raw-link interop tests: ${why}`);

const PEER_SCRIPT = fileURLToPath(new URL('../support/host-peer.ts', import.meta.url));
const CHILD_SCRIPT = fileURLToPath(new URL('../support/raw-child.ts', import.meta.url));
const STACK_IP = '10.205.0.1';
const LINUX_IP = '10.205.0.2';
const MB = 1024 * 1024;
const SIZE = 20 * MB;

/** Last JSON line on stdout with this event. */
function eventOf<T>(p: LabProcess, event: string): T | undefined {
  const lines = p.stdout.split('\n').filter((l) => l.startsWith('{"event":"' + event + '"'));
  return lines.length ? (JSON.parse(lines[lines.length - 1]!) as T) : undefined;
}

describe.skipIf(why !== '')('HostStack on the raw IP link against Linux TCP', () => {
  let lab: Lab;
  let nsA: string;
  let nsB: string;
  let devB: string;
  let sup: RstSuppression;

  beforeAll(async () => {
    lab = new Lab();
    nsA = await lab.addNamespace('a');
    nsB = await lab.addNamespace('b');
    for (const ns of [nsA, nsB]) for (const k of ['all', 'default']) await lab.sysctl(ns, `net.ipv6.conf.${k}.disable_ipv6`, 1);
    const { a, b } = await lab.addVeth(nsA, nsB, { txqueuelen: 10_000 });
    devB = b;
    await lab.addAddress(nsA, a, `${STACK_IP}/24`);
    await lab.addAddress(nsB, b, `${LINUX_IP}/24`);
    // Linux would hand the veth 64 KB TSO packets with partial checksums; the raw socket (and the
    // capture) would see them as such. Software checksums and MTU-sized segments, as on a wire.
    await lab.exec(nsB, 'ethtool', ['-K', b, 'tx', 'off', 'tso', 'off', 'gso', 'off']);
    sup = await installRstSuppression(lab, nsA, STACK_IP);
  });

  afterAll(async () => {
    await lab?.teardown();
  });

  function startChild(cfg: RawChildConfig): Promise<LabProcess> {
    const p = lab.spawn(nsA, process.execPath, [...tsNodeArgs(), CHILD_SCRIPT, JSON.stringify(cfg)]);
    return p.waitForOutput(/"event":"ready"/, 20_000).then(() => p);
  }

  function startPeer(cfg: PeerConfig): LabProcess {
    return lab.spawn(nsB, process.execPath, [...tsNodeArgs(), PEER_SCRIPT, JSON.stringify(cfg)]);
  }

  async function startCapture(port: number): Promise<{ stop(): Promise<string> }> {
    const file = join(tmpdir(), `${lab.uniqueName('raw')}.pcap`);
    lab.onTeardown(() => rmSync(file, { force: true }));
    const dump = lab.spawn(nsB, 'tcpdump', ['-i', devB, '-nn', '-U', '--immediate-mode', '-B', '32768', '-w', file, `tcp port ${port}`]);
    await dump.waitForOutput(/listening on/, 20_000);
    return {
      async stop() {
        await new Promise((r) => setTimeout(r, 200)); // the last packets reach the capture
        await dump.kill('SIGTERM');
        const m = /(\d+) packets? dropped by kernel/.exec(dump.stderr);
        if (!m) throw new Error(`tcpdump did not report its statistics:\n${dump.stderr}`);
        if (Number(m[1]) !== 0) throw new Error(`tcpdump dropped ${m[1]} packets: the capture is incomplete`);
        return file;
      },
    };
  }

  /** The 'done' report of one end; rejects at once when that end reports an error. */
  async function waitDone<T extends { error?: string }>(p: LabProcess, what: string, timeoutMs: number): Promise<T> {
    const context = (): string => `\nstdout:\n${p.stdout.slice(-2000)}\nstderr:\n${p.stderr.slice(-2000)}`;
    await p.waitForOutput(/"event":"done"/, timeoutMs).catch((e: Error) => {
      throw new Error(`${what}: ${e.message}${context()}`);
    });
    const report = eventOf<T>(p, 'done')!;
    if (report.error !== undefined) throw new Error(`${what} failed: ${report.error}${context()}`);
    return report;
  }

  /** Both ends' reports; the first failure (an end's error or silence) ends the wait. */
  function bothDone(child: LabProcess, peer: LabProcess): Promise<[RawChildReport, PeerReport]> {
    return Promise.all([waitDone<RawChildReport>(child, 'stack child', 50_000), waitDone<PeerReport>(peer, 'Linux peer', 50_000)]);
  }

  /** The capture's last packets as tcpdump prints them, for failure messages. */
  async function captureTail(file: string): Promise<string> {
    const { stdout } = await lab.exec(null, 'tcpdump', ['-nn', '-r', file]).catch(() => ({ stdout: '(tcpdump -r failed)' }));
    return stdout.split('\n').slice(-16).join('\n');
  }

  /**
   * The capture's one connection: both streams complete, equal to what the ends hashed, both FINs
   * acknowledged, no RST from the stack. Linux may reset after that, and only then: on a loaded
   * machine our ACK of its FIN can be late, its FIN retransmission meets our TIME_WAIT, our
   * repeated ACK reaches a socket Linux has closed (the TAP interop tests allow the same).
   */
  async function checkCapture(file: string, stackSentSha: string, linuxSentSha: string): Promise<ConnectionReport> {
    const analysis = await analyzePcap(file, { verifyChecksums: true, contentBudgetBytes: 128 * MB });
    const v = verdict(analysis, { failOnCaptureGap: true });
    const tail = `\nlast packets:\n${await captureTail(file)}\nverdict notes: ${v.notes.join('; ')}`;
    expect(v.problems, tail).toEqual([]);
    expect(analysis.skipped).toEqual({});
    expect(analysis.connections).toHaveLength(1);
    const c = analysis.connections[0]!;
    const fromStack = c.ab.from.startsWith(`${STACK_IP}:`) ? c.ab : c.ba;
    const fromLinux = fromStack === c.ab ? c.ba : c.ab;
    expect(fromLinux.from.startsWith(`${LINUX_IP}:`)).toBe(true);
    expect(fromStack.rst, `the stack sent an RST${tail}`).toBeUndefined();
    for (const d of [fromStack, fromLinux]) {
      expect(d.gaps.streamBytes).toBe(0);
      expect(d.content.bytes).toBe(SIZE);
      expect(d.ackedBytes).toBe(SIZE);
      expect(d.fin, `no FIN from ${d.from}${tail}`).toBeDefined();
      expect(d.acks.highest, `FIN of ${d.from} not acknowledged${tail}`).toBe(d.fin!.seq + 1);
    }
    if (fromLinux.rst) {
      const lastFin = Math.max(fromStack.fin!.firstMs, fromLinux.fin!.firstMs);
      expect(fromLinux.rst.firstMs, `Linux reset before both FINs${tail}`).toBeGreaterThan(lastFin);
    } else {
      expect(c.state).toBe('closed');
    }
    // The wire carried exactly what each end hashed.
    expect(fromStack.content.sha256).toBe(stackSentSha);
    expect(fromLinux.content.sha256).toBe(linuxSentSha);
    return c;
  }

  it('RFC 9293 3.5/3.6: active open from the stack to a Linux server, 20 MB each way, graceful close, no RST on the wire', async () => {
    const port = 7001;
    const cap = await startCapture(port);
    const before = await sup.suppressed();
    const peer = startPeer({ role: 'server', port, send: SIZE, close: 'after-peer-end' });
    await peer.waitForOutput(/"event":"listening"/, 20_000);
    const child = await startChild({ address: STACK_IP, prefixLength: 24, role: 'client', host: LINUX_IP, port, send: SIZE, timeoutMs: 45_000 });
    const [ours, theirs] = await bothDone(child, peer);
    const file = await cap.stop();

    expect(ours.error).toBeUndefined();
    expect(theirs.error).toBeUndefined();
    expect(ours.recvBytes).toBe(SIZE);
    expect(ours.recvSha).toBe(theirs.sentSha);
    expect(theirs.recvBytes).toBe(SIZE);
    expect(theirs.recvSha).toBe(ours.sentSha);
    expect(ours.ended).toBe(true);
    expect(ours.resetsSent).toBe(0);

    const c = await checkCapture(file, ours.sentSha, theirs.sentSha);
    // We closed first (end after our writes; Linux ends after our FIN): we hold TIME_WAIT, unless
    // a late Linux RST ended it (RFC 1337 TIME-WAIT assassination, which Linux allows too).
    const fromLinux = c.ab.from.startsWith(`${LINUX_IP}:`) ? c.ab : c.ba;
    expect(ours.state).toBe(fromLinux.rst ? 'CLOSED' : 'TIME_WAIT');
    expect(fromLinux.fin!.firstMs).toBeGreaterThan((fromLinux === c.ab ? c.ba : c.ab).fin!.firstMs);
    expect(c.a.startsWith(`${STACK_IP}:`)).toBe(true); // our SYN opened it
    expect(c.negotiated.complete).toBe(true);
    // The kernel in A answered Linux's SYN-ACK (a connection it has no socket for) with an RST
    // that the rule dropped: suppression was needed, and worked.
    expect(await sup.suppressed()).toBeGreaterThan(before);
  }, 60_000);

  it('RFC 9293 3.5/3.6: passive open, a Linux client connects to the stack, 20 MB each way, graceful close, no RST on the wire', async () => {
    const port = 7002;
    const cap = await startCapture(port);
    const before = await sup.suppressed();
    const child = await startChild({ address: STACK_IP, prefixLength: 24, role: 'server', port, send: SIZE, timeoutMs: 45_000 });
    const peer = startPeer({ role: 'client', host: STACK_IP, port, send: SIZE, close: 'end' });
    const [ours, theirs] = await bothDone(child, peer);
    const file = await cap.stop();

    expect(ours.error).toBeUndefined();
    expect(theirs.error).toBeUndefined();
    expect(ours.recvBytes).toBe(SIZE);
    expect(ours.recvSha).toBe(theirs.sentSha);
    expect(theirs.recvBytes).toBe(SIZE);
    expect(theirs.recvSha).toBe(ours.sentSha);
    expect(ours.ended).toBe(true);
    expect(ours.resetsSent).toBe(0);

    const c = await checkCapture(file, ours.sentSha, theirs.sentSha);
    expect(c.a.startsWith(`${LINUX_IP}:`)).toBe(true); // Linux's SYN opened it
    // The kernel in A has no listener on the port: it answered the SYN with an RST, dropped.
    expect(await sup.suppressed()).toBeGreaterThan(before);
  }, 60_000);

  it('RFC 9293 3.10.7.1: a SYN to a port the stack does not serve is refused by the stack\'s own RST; the kernel\'s is dropped', async () => {
    const port = 7003;
    const cap = await startCapture(port);
    const before = await sup.suppressed();
    const child = await startChild({ address: STACK_IP, prefixLength: 24, role: 'idle', port, send: 0, timeoutMs: 0 });
    const peer = startPeer({ role: 'client', host: STACK_IP, port, send: 0, close: 'end' });
    await peer.waitForOutput(/"event":"done"/, 20_000);
    expect(eventOf<PeerReport>(peer, 'done')!.error).toBe('ECONNREFUSED');
    const file = await cap.stop();
    await child.kill('SIGTERM', 5_000);
    const ours = eventOf<RawChildReport>(child, 'done');
    expect(ours, `no report from the stack child:\n${child.stderr}`).toBeDefined();
    expect(ours!.resetsSent).toBe(1);

    const analysis = await analyzePcap(file, { verifyChecksums: true });
    expect(analysis.skipped).toEqual({});
    expect(analysis.connections).toHaveLength(1);
    const c = analysis.connections[0]!;
    expect(c.a.startsWith(`${LINUX_IP}:`)).toBe(true);
    const fromLinux = c.ab;
    const fromStack = c.ba;
    // Linux sent one SYN; exactly one RST came back, ours (RST|ACK acking the SYN), and nothing
    // else: the kernel's own RST for the same SYN was dropped by the rule.
    expect(fromLinux.syn?.count).toBe(1);
    expect(fromStack.packets).toBe(1);
    expect(fromStack.rst?.count).toBe(1);
    expect(fromStack.syn).toBeUndefined();
    // The segments themselves: our RST|ACK acknowledges exactly the SYN (RFC 9293 3.10.7.1).
    const cap2 = await readPcap(file);
    const segs = cap2.packets.map((p) => decodeTcpPacket(cap2.linktype, p, { verifyChecksums: true })).filter((x) => typeof x !== 'string');
    expect(segs.map((x) => [x.src, x.tcp.flags])).toEqual([[LINUX_IP, TCP_SYN], [STACK_IP, TCP_RST | TCP_ACK]]);
    expect(segs[1]!.tcp.seq).toBe(0);
    expect(segs[1]!.tcp.ack).toBe((segs[0]!.tcp.seq + 1) >>> 0);
    expect(c.state).toBe('reset');
    expect(await sup.suppressed()).toBeGreaterThan(before);
  }, 40_000);
});
