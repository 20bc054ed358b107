/**
 * The namespace lab: what it creates works, and teardown removes all of it (namespaces, devices,
 * processes, nftables tables), also after a failing step. Checks are filtered by the lab's unique
 * id so other test files building labs in parallel do not disturb them.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { labAvailable } from '../../src/lab/availability.js';
import { CommandError, runCommand } from '../../src/lab/command.js';
import { Lab } from '../../src/lab/lab.js';
import { checkIfName, newLabId } from '../../src/lab/names.js';

const avail = labAvailable(['ip', 'python3']);
if (!avail.ok) console.warn(`skipping lab tests: ${avail.reason}`);

async function netnsWith(id: string): Promise<string[]> {
  const { stdout } = await runCommand('ip', ['netns', 'list']);
  return stdout
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter((n) => n.startsWith(id));
}

async function rootLinksWith(id: string): Promise<string[]> {
  const { stdout } = await runCommand('ip', ['-j', 'link', 'show']);
  return (JSON.parse(stdout) as Array<{ ifname: string }>).map((l) => l.ifname).filter((n) => n.startsWith(id));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('lab names', () => {
  it('ids are "ch" + 6 hex characters and differ between labs', () => {
    const ids = new Set(Array.from({ length: 50 }, () => newLabId()));
    for (const id of ids) expect(id).toMatch(/^ch[0-9a-f]{6}$/);
    expect(ids.size).toBeGreaterThan(45);
  });

  it('interface names are checked against the 15-character limit', () => {
    expect(checkIfName('ch123456abcdefg')).toBe('ch123456abcdefg');
    expect(() => checkIfName('ch123456abcdefgh')).toThrow(/1\.\.15/);
    expect(() => checkIfName('a/b')).toThrow(RangeError);
  });
});

describe.skipIf(!avail.ok)('Lab (network namespaces)', () => {
  const labs: Lab[] = [];
  const newLab = (): Lab => {
    const l = new Lab();
    labs.push(l);
    return l;
  };
  afterEach(async () => {
    for (const l of labs.splice(0)) await l.teardown();
  });

  it('builds namespaces, veths (one end in our namespace), a bridge and addresses that carry traffic; teardown leaves nothing', async () => {
    const lab = newLab();
    expect(() => lab.devName('12345678')).toThrow(RangeError);
    const n1 = await lab.addNamespace('one');
    const n2 = await lab.addNamespace('two');
    const v = await lab.addVeth(n1, n2);
    const br = await lab.addBridge(n2);
    const w = await lab.addVeth(null, n2, { txqueuelen: 5000, mtu: 1400 });
    await lab.setMaster(n2, v.b, br);
    await lab.setMaster(n2, w.b, br);
    await lab.addAddress(n1, v.a, '10.204.0.1/24');
    await lab.addAddress(n2, br, '10.204.0.2/24');
    const { stdout } = await lab.exec(n1, 'ping', ['-c', '1', '-W', '2', '10.204.0.2']);
    expect(stdout).toMatch(/1 received/);
    const info = JSON.parse((await lab.exec(null, 'ip', ['-j', 'link', 'show', w.a])).stdout) as Array<{ mtu: number; txqlen: number }>;
    expect(info[0]).toMatchObject({ mtu: 1400, txqlen: 5000 });
    const sleeper = lab.spawn(n1, 'sleep', ['600']);

    expect(await netnsWith(lab.id)).toEqual(expect.arrayContaining([n1, n2]));
    expect(await rootLinksWith(lab.id)).toEqual([w.a]);
    expect(alive(sleeper.pid)).toBe(true);

    await lab.teardown();
    expect(await netnsWith(lab.id)).toEqual([]);
    expect(await rootLinksWith(lab.id)).toEqual([]);
    expect(alive(sleeper.pid)).toBe(false);
    await lab.teardown(); // idempotent
  });

  it('removes everything when a step throws midway; the error carries the tool stderr', async () => {
    const lab = newLab();
    let thrown: unknown;
    try {
      const ns = await lab.addNamespace();
      await lab.addVeth(null, ns);
      lab.spawn(ns, 'sleep', ['600']);
      await lab.addAddress(ns, 'nosuchdev0', '10.205.0.1/24');
    } catch (err) {
      thrown = err;
    } finally {
      await lab.teardown();
    }
    expect(thrown).toBeInstanceOf(CommandError);
    expect((thrown as CommandError).stderr).toMatch(/Cannot find device "nosuchdev0"/);
    expect((thrown as CommandError).message).toContain('addr add 10.205.0.1/24 dev nosuchdev0');
    expect(await netnsWith(lab.id)).toEqual([]);
    expect(await rootLinksWith(lab.id)).toEqual([]);
    await expect(lab.addNamespace()).rejects.toThrow(/torn down/);
  });

  it('spawn runs inside the namespace, is tracked by PID, and kill() stops it (SIGKILL after the grace period)', async () => {
    const lab = newLab();
    const ns = await lab.addNamespace();
    const p = lab.spawn(ns, 'python3', ['-u', '-c', 'import os, time; print("pid", os.getpid(), flush=True); time.sleep(600)']);
    await p.waitForOutput(/pid \d+/);
    expect(p.stdout).toContain(`pid ${p.pid}`); // `ip netns exec` execs: the PID is the command's
    const { stdout } = await runCommand('ip', ['netns', 'pids', ns]);
    expect(stdout.split('\n')).toContain(String(p.pid));
    expect(await p.kill()).toEqual({ code: null, signal: 'SIGTERM' });
    expect(p.running).toBe(false);

    const stubborn = lab.spawn(ns, 'python3', ['-u', '-c', 'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print("ready", flush=True); time.sleep(600)']);
    await stubborn.waitForOutput(/ready/);
    expect(await stubborn.kill('SIGTERM', 300)).toEqual({ code: null, signal: 'SIGKILL' });
    expect((await runCommand('ip', ['netns', 'pids', ns])).stdout.trim()).toBe('');
  });

  it('exec rejects with the command, exit code and stderr', async () => {
    const lab = newLab();
    const ns = await lab.addNamespace();
    const err = await lab.exec(ns, 'ip', ['link', 'show', 'nope0']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandError);
    expect((err as CommandError).exitCode).toBe(1);
    expect((err as CommandError).stderr).toMatch(/"nope0" does not exist/);
    expect((err as CommandError).argv).toEqual(['ip', 'netns', 'exec', ns, 'ip', 'link', 'show', 'nope0']);
  });

  it('prepareLinuxPeer: IPv6 off, and orphaned sockets keep 15 retries in that namespace only', async () => {
    const lab = newLab();
    const get = async (key: string, where: string | null): Promise<string> =>
      (where === null ? await runCommand('sysctl', ['-n', key]) : await lab.exec(where, 'sysctl', ['-n', key])).stdout.trim();
    const ours = await get('net.ipv4.tcp_orphan_retries', null);
    const ns = await lab.addNamespace();
    await lab.prepareLinuxPeer(ns);
    expect(await get('net.ipv4.tcp_orphan_retries', ns)).toBe('15');
    expect(await get('net.ipv6.conf.all.disable_ipv6', ns)).toBe('1');
    expect(await get('net.ipv4.tcp_orphan_retries', null), 'our own namespace untouched').toBe(ours);
  });

  it('waitForOutput rejects when the process exits without printing the pattern', async () => {
    const lab = newLab();
    const ns = await lab.addNamespace();
    const p = lab.spawn(ns, 'sh', ['-c', 'echo nope; exit 3']);
    await expect(p.waitForOutput(/never/)).rejects.toThrow(/exited \(3\)/);
  });

  it('moveLink keeps track of veth peers and onTeardown hooks run first', async () => {
    const lab = newLab();
    const ns = await lab.addNamespace();
    const order: string[] = [];
    const { a } = await lab.addVeth(null, ns);
    await lab.moveLink(a, ns);
    expect(await rootLinksWith(lab.id)).toEqual([]);
    const { stdout } = await lab.exec(ns, 'ip', ['-br', 'link']);
    expect(stdout).toContain(a);
    lab.onTeardown(() => void order.push('first registered'));
    lab.onTeardown(async () => {
      order.push('last registered');
      expect(await netnsWith(lab.id)).toEqual([ns]); // namespaces still there while hooks run
    });
    await lab.teardown();
    expect(order).toEqual(['last registered', 'first registered']);
  });
});
