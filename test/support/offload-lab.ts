/**
 * Offload interop rig: the target service on a TAP whose kernel side is a Linux TCP peer in a
 * namespace the test builds; the host stack in this process on a ChimneyLink over an IpcClient to
 * the service's Unix socket in a temp dir. Optional userspace delay/loss/reorder between the
 * target and its TAP (this kernel has no netem). Everything is owned by the Lab, so teardown
 * removes namespace, devices, processes, socket dir and capture files, also on failure.
 *
 *  [HostStack]=ChimneyLink=IPC=[target service]=(impair)=TAP fd ... TAP netdev 10.77.0.1 (ns k, Linux)
 */
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { analyzePcap, type FlowAnalysis } from '../../src/capture/index.js';
import { ChimneyLink } from '../../src/host/chimney-link.js';
import type { OffloadPolicy } from '../../src/host/offload.js';
import { HostStack } from '../../src/host/stack.js';
import { IpcClient } from '../../src/ipc/client.js';
import { Lab } from '../../src/lab/lab.js';
import type { Link } from '../../src/link/link.js';
import { WallClockScheduler } from '../../src/link/scheduler.js';
import { openTapLink } from '../../src/link/tap.js';
import { startTargetService, type TargetService } from '../../src/target/service.js';
import { ipv4, mac } from '../../src/wire/addresses.js';
import { WallImpairedLink, type WallImpairment } from './host-impair.js';
import { peerTcpAborts, STACK_IP, STACK_MAC, TAP_KERNEL_IP, type HostRig } from './host-lab.js';
import type { TcpSocket } from '../../src/host/socket.js';

export interface OffloadRig extends HostRig {
  service: TargetService;
  client: IpcClient;
  chimney: ChimneyLink;
  /** Host -> target messages by type (e.g. how many TcpForward the host sent). */
  sentToTarget: Map<string, number>;
  /** The impairment between the target and its TAP, when asked for. */
  impaired: WallImpairedLink | undefined;
  /** The last log lines (JSON) of the target service and the host stack, for a failure's report. */
  logTail(): string[];
}

/** A pino logger keeping its last `max` lines in memory. */
function ringLogger(name: string, lines: string[], max = 400): pino.Logger {
  return pino({ level: 'info', name }, { write(line: string): void { lines.push(line.trimEnd()); if (lines.length > max) lines.shift(); } });
}

export interface OffloadRigOptions {
  policy: OffloadPolicy;
  impair?: WallImpairment;
}

export async function buildOffloadRig(opts: OffloadRigOptions): Promise<OffloadRig> {
  const lab = new Lab();
  try {
    const ns = await lab.addNamespace('k');
    await lab.prepareLinuxPeer(ns);
    const tap = openTapLink({ name: lab.devName('t') });
    lab.adoptDevice(tap.name);
    lab.onTeardown(() => tap.close());
    await lab.moveLink(tap.name, ns);
    await lab.addAddress(ns, tap.name, `${TAP_KERNEL_IP}/24`);
    await lab.setLink(ns, tap.name, { txqueuelen: 10_000, up: true });

    const impaired = opts.impair ? new WallImpairedLink(tap, opts.impair) : undefined;
    const targetLink: Link = impaired ?? tap;
    if (impaired) lab.onTeardown(() => impaired.close());
    const dir = mkdtempSync(join(tmpdir(), 'chim-off-'));
    lab.onTeardown(() => rmSync(dir, { recursive: true, force: true }));
    const logLines: string[] = [];
    const service = await startTargetService({ link: targetLink, socketPath: join(dir, 't.sock'), logger: ringLogger('target', logLines), uploadGraceMs: 1000 });
    lab.onTeardown(async () => { await service.shutdown({ graceMs: 1000 }); });
    const client = await IpcClient.connect(service.socketPath, { software: 'offload-interop-host' });
    lab.onTeardown(() => client.close());
    // ChimneyLink.overIpc, with a count of what the host sends.
    const sentToTarget = new Map<string, number>();
    // For a hand-over's timeline: OFFLOAD_TRACE=FILE writes every IPC message's type with the
    // time the host sent or received it (epoch ms, as in a capture), at teardown.
    const trace = process.env.OFFLOAD_TRACE ? [] as string[] : undefined;
    if (trace) lab.onTeardown(() => writeFileSync(process.env.OFFLOAD_TRACE!, trace.join('\n')));
    const now = (): string => (performance.timeOrigin + performance.now()).toFixed(3);
    const chimney = new ChimneyLink({
      send: (m) => {
        sentToTarget.set(m.type, (sentToTarget.get(m.type) ?? 0) + 1);
        trace?.push(`${now()} h> ${m.type}`);
        client.send(m);
      },
    });
    client.on((m) => { trace?.push(`${now()} <t ${m.type}`); chimney.onTargetMessage(m); });
    client.onClose((reason) => chimney.bindingClosed(reason));
    const scheduler = new WallClockScheduler();
    lab.onTeardown(() => scheduler.close());
    const stack = new HostStack({
      link: chimney, mac: mac(STACK_MAC), scheduler, offload: { policy: opts.policy }, logger: ringLogger('host', logLines),
      ipv4: { address: ipv4(STACK_IP), prefixLength: 24, gateway: ipv4(TAP_KERNEL_IP) },
    });
    // Hooks run last-registered first: stack, scheduler, IPC client, service, impairment, TAP.
    lab.onTeardown(() => stack.close());
    return { lab, peerNs: ns, peerIp: TAP_KERNEL_IP, peerDev: tap.name, link: tap, stackLink: chimney, scheduler, stack, service, client, chimney, sentToTarget, impaired, logTail: () => logLines.slice() };
  } catch (err) {
    await lab.teardown().catch(() => undefined);
    throw err;
  }
}

/** Why a transfer did not finish: what the stack read, what ended its stream, the Linux peer's TCP abort counters, the last log lines. */
export async function unfinishedTransferReport(rig: OffloadRig, sock: TcpSocket, read: number, expected: number): Promise<string> {
  return `transfer did not finish: the stack read ${read} of ${expected} bytes (stream ended by: ${sock.endedBy ?? 'nothing'}); ` +
    `Linux peer's TCP counters: ${await peerTcpAborts(rig)}; last log lines:\n${rig.logTail().slice(-40).join('\n')}`;
}

/** tcpdump -w on the peer's TAP device; `stop()` returns the flow analysis of the file. */
export async function startPcap(rig: Pick<HostRig, 'lab' | 'peerNs' | 'peerDev'>, filter: string): Promise<{ stop(): Promise<FlowAnalysis> }> {
  const file = join(tmpdir(), `${rig.lab.uniqueName('cap')}.pcap`);
  rig.lab.onTeardown(() => rmSync(file, { force: true }));
  // Headers plus some payload: enough for sequence analysis, and retransmitted copies of the
  // first 64 bytes are compared; full payloads of 100 MB would cost more than they tell.
  const dump = rig.lab.spawn(rig.peerNs, 'tcpdump', ['-i', rig.peerDev, '-nn', '-U', '--immediate-mode', '-B', '65536', '-s', '160', '-w', file, filter]);
  await dump.waitForOutput(/listening on/, 20_000);
  return {
    async stop(): Promise<FlowAnalysis> {
      await new Promise((r) => setTimeout(r, 200)); // the last frames reach the capture
      await dump.kill('SIGTERM');
      // A lossy capture would judge the connection on missing frames: refuse it.
      const m = /(\d+) packets? dropped by kernel/.exec(dump.stderr);
      if (!m) throw new Error(`tcpdump did not report its statistics:\n${dump.stderr}`);
      if (Number(m[1]) !== 0) throw new Error(`tcpdump dropped ${m[1]} packets: the capture is incomplete`);
      // For debugging a failure: OFFLOAD_KEEP_PCAP_DIR=/some/dir keeps a copy of every capture.
      const keep = process.env.OFFLOAD_KEEP_PCAP_DIR;
      if (keep) copyFileSync(file, join(keep, `${rig.lab.uniqueName('keep')}.pcap`));
      return analyzePcap(file);
    },
  };
}
