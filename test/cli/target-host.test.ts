/**
 * `chimney target` and `chimney host`: usage errors, the documented exit codes and messages, and
 * as root a target on a real TAP with a host bound to it, both stopped the way a signal stops them.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { runTarget } from '../../src/cli/target.js';
import { runHost, parseCidr, parseOffloadPolicy } from '../../src/cli/host.js';
import { isRoot } from '../../src/lab/availability.js';
import { cliLogger } from '../../src/cli/log.js';
import { ipv4 } from '../../src/wire/addresses.js';
import { readPcap } from '../../src/capture/pcap-reader.js';

const dir = mkdtempSync(join(tmpdir(), 'chimney-th-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function capture(): { out: string[]; err: string[]; io: { out: (s: string) => void; err: (s: string) => void } } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (s) => out.push(s), err: (s) => err.push(s) } };
}

function stopper(): { stop: Promise<string>; fire: () => void } {
  let fire: () => void = () => undefined;
  const stop = new Promise<string>((r) => { fire = () => r('SIGTERM'); });
  return { stop, fire };
}

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('chimney target', () => {
  it('--help documents the options and exit codes', async () => {
    const c = capture();
    expect(await main(['target', '--help'], c.io)).toBe(0);
    expect(c.out.join('\n')).toMatch(/--tap NAME --socket PATH/);
    expect(c.out.join('\n')).toContain('3 cannot start');
  });

  it('without --tap: usage error, exit 2', async () => {
    const c = capture();
    expect(await main(['target', '--socket', join(dir, 's')], c.io)).toBe(2);
    expect(c.err.join('\n')).toContain('chimney target: --tap is required');
  });

  it('a bad TAP name: exit 3 with the TAP error message', async () => {
    const c = capture();
    const code = await runTarget(['--tap', 'this-name-is-far-too-long', '--socket', join(dir, 'bad.sock')], c.io, new Promise(() => undefined));
    expect(code).toBe(3);
    expect(c.err.join('\n')).toContain("TAP name 'this-name-is-far-too-long' is too long: interface names have at most 15 characters");
    expect(existsSync(join(dir, 'bad.sock'))).toBe(false);
  });

  it('a socket directory that does not exist: exit 3 saying which and what to do', async () => {
    const c = capture();
    const missing = join(dir, 'no-such-dir');
    expect(await runTarget(['--tap', 'cht0', '--socket', join(missing, 't.sock')], c.io, new Promise(() => undefined))).toBe(3);
    expect(c.err.join('\n')).toContain(`the socket's directory ${missing} does not exist: create it (mkdir -p ${missing})`);
  });

  it('--log-level must be a pino level (exit 2)', async () => {
    const c = capture();
    expect(await main(['target', '--tap', 'x', '--socket', join(dir, 's'), '--log-level', 'loud'], c.io)).toBe(2);
    expect(c.err.join('\n')).toContain('--log-level must be one of fatal, error, warn, info, debug, trace, silent');
  });
});

describe('CLI logs (pino)', () => {
  it('JSON lines when not pretty, readable lines when pretty, level respected', () => {
    const json: string[] = [];
    const log = cliLogger({ name: 'chimney-test', level: 'info', pretty: false, write: (l) => json.push(l) });
    log.debug('hidden');
    log.info({ socket: '/tmp/x.sock', n: 3 }, 'target listening');
    expect(json).toHaveLength(1);
    const o = JSON.parse(json[0]) as Record<string, unknown>;
    expect([o.level, o.name, o.msg, o.socket, o.n]).toEqual([30, 'chimney-test', 'target listening', '/tmp/x.sock', 3]);
  });
});

describe('chimney host', () => {
  it('parses --ip and --offload', () => {
    expect(parseCidr('10.77.0.2/24')).toEqual({ address: ipv4('10.77.0.2'), prefixLength: 24 });
    expect(parseCidr('10.77.0.2')).toBeUndefined();
    expect(parseCidr('10.77.0.256/24')).toBeUndefined();
    expect(parseCidr('10.77.0.2/33')).toBeUndefined();
    expect(parseOffloadPolicy('bytes:4096')).toEqual({ afterBytes: 4096 });
    expect(parseOffloadPolicy('manual')).toBe('manual');
    expect(parseOffloadPolicy('sometimes')).toBeUndefined();
  });

  it('usage errors exit 2 and say what is wrong', async () => {
    for (const [args, msg] of [
      [['--ip', '10.0.0.1/24'], '--socket is required'],
      [['--socket', 's'], '--ip is required'],
      [['--socket', 's', '--ip', '10.0.0.1'], "--ip must be A.B.C.D/N, not '10.0.0.1'"],
      [['--socket', 's', '--ip', '10.0.0.1/24', '--offload', 'sometimes'], '--offload must be never, after-handshake, bytes:N or manual'],
      [['--socket', 's', '--ip', '10.0.0.1/24', '--gateway', 'router'], "--gateway must be an IPv4 address, not 'router'"],
    ] as const) {
      const c = capture();
      expect(await main(['host', ...args], c.io)).toBe(2);
      expect(c.err.join('\n')).toContain(msg);
    }
  });

  it('no target listening: exit 3 naming the socket and the command to start', async () => {
    const c = capture();
    const sock = join(dir, 'nobody.sock');
    expect(await runHost(['--socket', sock, '--ip', '10.0.0.1/24', '--log-level', 'silent'], c.io, new Promise(() => undefined))).toBe(3);
    expect(c.err.join('\n')).toContain(`cannot bind to the target at ${sock}`);
    expect(c.err.join('\n')).toContain(`is \`chimney target --socket ${sock}\` running?`);
  });
});

const reason = isRoot() ? '' : 'a TAP device needs root (CAP_NET_ADMIN)';
if (reason) console.log(`skipping the TAP target + host run: ${reason}`);
describe.skipIf(!isRoot())('chimney target + chimney host on a real TAP (root)', () => {
  it('the host binds, both stop with exit 0 on their signal, the TAP is gone afterwards', async () => {
    const tap = `cht${randomBytes(4).toString('hex')}`;
    const sock = join(dir, 'target.sock');
    const t = capture();
    const ts = stopper();
    const target = runTarget(['--tap', tap, '--socket', sock, '--log-level', 'silent', '--capture', join(dir, 't.pcap')], t.io, ts.stop);
    try {
      await until(() => t.out.some((l) => l.includes('waiting for a host')), 'the target to listen');
      expect(execFileSync('ip', ['-o', 'link', 'show', 'dev', tap], { encoding: 'utf8' })).toContain(tap);
      const h = capture();
      const hs = stopper();
      const host = runHost(['--socket', sock, '--ip', '10.99.0.2/24', '--log-level', 'silent'], h.io, hs.stop);
      await until(() => h.out.some((l) => l.includes('bound to the target')), `the host to bind (${h.err.join(' ')})`);
      hs.fire();
      expect(await host).toBe(0);
      expect(h.out).toContain('chimney host: stopped');
    } finally {
      ts.fire();
    }
    expect(await target).toBe(0);
    expect(t.out.join('\n')).toContain('chimney target: stopped (0 connection(s) uploaded, 0 aborted)');
    expect(existsSync(sock)).toBe(false);
    expect(() => execFileSync('ip', ['link', 'show', 'dev', tap], { stdio: 'ignore' })).toThrow();
    // The capture file is a classic Ethernet pcap (its header is written even with no frames).
    const cap = await readPcap(join(dir, 't.pcap'));
    expect(cap.linktype).toBe(1);
  }, 30_000);

  it('the host exits 1 and says so when the target stops under it', async () => {
    const tap = `cht${randomBytes(4).toString('hex')}`;
    const sock = join(dir, 'target2.sock');
    const t = capture();
    const ts = stopper();
    const target = runTarget(['--tap', tap, '--socket', sock, '--log-level', 'silent'], t.io, ts.stop);
    const h = capture();
    try {
      await until(() => t.out.some((l) => l.includes('waiting for a host')), 'the target to listen');
      const host = runHost(['--socket', sock, '--ip', '10.99.0.2/24', '--log-level', 'silent'], h.io, new Promise(() => undefined));
      await until(() => h.out.some((l) => l.includes('bound to the target')), `the host to bind (${h.err.join(' ')})`);
      ts.fire();
      expect(await host).toBe(1);
    } finally {
      ts.fire();
    }
    expect(await target).toBe(0);
    expect(h.err.join('\n')).toContain('chimney host: the target closed the binding');
  }, 30_000);
});
