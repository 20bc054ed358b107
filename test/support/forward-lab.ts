/**
 * Forwarder interop rig: the target service (this process) on a TAP whose kernel side is a Linux
 * peer namespace; the real `chimney host` CLI in a child process (in our own namespace, so its
 * kernel listeners are on our loopback), bound to the target over the Unix socket. Everything is
 * owned by the Lab: teardown stops the host child, the service, tcpdump and peer processes and
 * removes the namespace, the TAP and the temp dir, also on failure.
 *
 *  curl/iperf3 (root ns) -> 127.0.0.1:P [chimney host child] =IPC= [target service] = TAP
 *      ... TAP netdev 10.77.0.1 (peer ns: HTTP server, iperf3 -s, clients of --expose)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import type { FlowAnalysis } from '../../src/capture/index.js';
import { startPcap } from './offload-lab.js';
import { Lab } from '../../src/lab/lab.js';
import type { LabProcess } from '../../src/lab/process.js';
import { tsNodeArgs } from '../../src/lab/ts-child.js';
import { openTapLink } from '../../src/link/tap.js';
import { startTargetService, type TargetService } from '../../src/target/service.js';

export const PEER_IP = '10.77.0.1';
export const STACK_IP = '10.77.0.2';

export interface ForwardRig {
  lab: Lab;
  peerNs: string;
  peerDev: string;
  service: TargetService;
  /** Temp dir (target socket, files), removed at teardown. */
  dir: string;
}

export async function buildForwardRig(): Promise<ForwardRig> {
  const lab = new Lab();
  try {
    const ns = await lab.addNamespace('p');
    await lab.prepareLinuxPeer(ns);
    const tap = openTapLink({ name: lab.devName('t') });
    lab.adoptDevice(tap.name);
    lab.onTeardown(() => tap.close());
    await lab.moveLink(tap.name, ns);
    await lab.addAddress(ns, tap.name, `${PEER_IP}/24`);
    await lab.setLink(ns, tap.name, { txqueuelen: 10_000, up: true });
    await lab.up(ns, 'lo');
    const dir = mkdtempSync(join(tmpdir(), 'chim-fwd-'));
    lab.onTeardown(() => rmSync(dir, { recursive: true, force: true }));
    const service = await startTargetService({ link: tap, socketPath: join(dir, 't.sock'), logger: pino({ level: 'silent' }), uploadGraceMs: 1000 });
    lab.onTeardown(async () => { await service.shutdown({ graceMs: 1000 }); });
    return { lab, peerNs: ns, peerDev: tap.name, service, dir };
  } catch (err) {
    await lab.teardown().catch(() => undefined);
    throw err;
  }
}

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

/** `chimney host` in a child of our namespace; resolves once it printed every forwarder line. */
export async function startHostCli(rig: ForwardRig, extra: string[]): Promise<LabProcess> {
  const args = ['host', '--socket', join(rig.dir, 't.sock'), '--ip', `${STACK_IP}/24`, '--gateway', PEER_IP, '--log-level', 'info', ...extra];
  const host = rig.lab.spawn(null, process.execPath, [...tsNodeArgs(), MAIN, ...args]);
  // Stopped first at teardown (hooks run before processes are killed), gracefully.
  rig.lab.onTeardown(async () => { await host.kill('SIGTERM', 5_000); });
  const relays = extra.filter((a) => a === '--forward' || a === '--expose').length;
  const ready = new RegExp(`((forwarding|exposing) [^\\n]*\\n[^]*){${relays}}`);
  await host.waitForOutput(relays > 0 ? ready : /bound to the target/, 30_000);
  return host;
}

/** Kernel ports the host printed for its `--forward` listeners, in order. */
export function forwardPorts(host: LabProcess): number[] {
  return [...host.stdout.matchAll(/forwarding [\d.]+:(\d+) ->/g)].map((m) => Number(m[1]));
}

/** JSON log lines of the host child (pino writes JSON when stderr is not a terminal). */
export function hostLog(host: LabProcess): Array<Record<string, unknown>> {
  return host.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** tcpdump -w on the peer's TAP device (OFFLOAD_KEEP_PCAP_DIR keeps a copy); `stop()` analyses it. */
export function startPeerCapture(rig: ForwardRig, filter: string): Promise<{ stop(): Promise<FlowAnalysis> }> {
  return startPcap(rig, filter);
}

/** A program's result line (JSON on stdout, `{"event": ...}`), or its error line. */
export async function resultOf(p: LabProcess, event: string, timeoutMs: number): Promise<Record<string, unknown>> {
  await p.waitForOutput(new RegExp(`"event":"(${event}|error)"`), timeoutMs);
  const lines = p.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  const err = lines.find((l) => l.event === 'error');
  if (err) throw new Error(`${p.argv.join(' ').slice(0, 80)}: ${String(err.message)}`);
  return lines.find((l) => l.event === event)!;
}
