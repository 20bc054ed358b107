/** Whether the namespace labs can run here, and why not when they cannot. */
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { runCommand } from './command.js';

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** Finds an executable on PATH (plus the sbin directories, where ip/tc/nft live). */
export function findCommand(name: string): string | undefined {
  const dirs = (process.env.PATH ?? '').split(delimiter).concat(['/usr/sbin', '/sbin', '/usr/bin', '/bin']);
  for (const dir of dirs) {
    if (!dir) continue;
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // keep looking
    }
  }
  return undefined;
}

export interface Availability {
  ok: boolean;
  /** Why not, in words a test can print when it skips. */
  reason: string;
}

/** Root, Linux and the given tools (default `ip`; add 'tc', 'nft', 'tcpdump' ... as needed). */
export function labAvailable(tools: readonly string[] = ['ip']): Availability {
  if (process.platform !== 'linux') return { ok: false, reason: `network-namespace labs need Linux (this is ${process.platform})` };
  if (!isRoot()) return { ok: false, reason: 'network-namespace labs need root (CAP_NET_ADMIN + CAP_SYS_ADMIN); run the tests as root' };
  const missing = tools.filter((t) => findCommand(t) === undefined);
  if (missing.length) {
    return { ok: false, reason: `missing tool(s): ${missing.join(', ')} (Debian: apt-get install iproute2 nftables tcpdump ...)` };
  }
  return { ok: true, reason: '' };
}

let netemProbe: Promise<boolean> | undefined;

/**
 * Whether this kernel has the netem qdisc (CONFIG_NET_SCH_NETEM). Probed once per process on the
 * loopback device of a throw-away namespace, so nothing outside it is touched.
 */
export function netemAvailable(): Promise<boolean> {
  netemProbe ??= (async () => {
    if (!labAvailable(['ip', 'tc']).ok) return false;
    const ns = `chprobe${process.pid.toString(16)}${Math.floor(Math.random() * 0xffff).toString(16)}`;
    try {
      await runCommand('ip', ['netns', 'add', ns]);
      await runCommand('ip', ['netns', 'exec', ns, 'tc', 'qdisc', 'add', 'dev', 'lo', 'root', 'netem', 'delay', '1ms']);
      return true;
    } catch {
      return false;
    } finally {
      await runCommand('ip', ['netns', 'del', ns]).catch(() => undefined);
    }
  })();
  return netemProbe;
}
