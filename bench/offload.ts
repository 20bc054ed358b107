/**
 * Issue 4: the same TAP transfers with the connection offloaded. A second TAP in ns k belongs to a
 * target service (`startTargetService`, the "NIC"); a second HostStack runs on a ChimneyLink over an
 * IpcClient to the service's Unix socket, with the 'after-handshake' policy, so each connection's
 * data path runs in the target's engine and the host sees send completions and receive indications.
 * Target and host run in the bench process (two endpoints of a real Unix-socket binding in one
 * event loop): the CPU figures are the sum of both.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { IpcClient } from '../src/ipc/client.js';
import { ChimneyLink } from '../src/host/chimney-link.js';
import { HostStack } from '../src/host/stack.js';
import { WallClockScheduler } from '../src/link/scheduler.js';
import { openTapLink } from '../src/link/tap.js';
import { startTargetService, type TargetService } from '../src/target/service.js';
import { ipv4, mac } from '../src/wire/addresses.js';
import { runLinuxToStack, runStackToLinux, TAP_TXQUEUELEN, type BenchLab, type Progress, type Sample, type StackEnd } from './scenarios.js';

const KERNEL_IP = '10.78.0.1';
const HOST_IP = '10.78.0.2';
const HOST_MAC = '02:c4:78:00:00:02';

export interface OffloadEnd extends StackEnd {
  service: TargetService;
  client: IpcClient;
}

/** Adds the target's TAP, the service, and the offloading host stack to the lab (torn down with it). */
export async function addOffloadPath(b: BenchLab): Promise<OffloadEnd> {
  const { lab, nsK } = b;
  const dir = await mkdtemp(join(tmpdir(), 'chim-bench-'));
  lab.onTeardown(() => rm(dir, { recursive: true, force: true }));
  const tap = openTapLink({ name: lab.devName('o') });
  lab.adoptDevice(tap.name);
  lab.onTeardown(() => tap.close());
  await lab.moveLink(tap.name, nsK);
  await lab.addAddress(nsK, tap.name, `${KERNEL_IP}/24`);
  await lab.setLink(nsK, tap.name, { txqueuelen: TAP_TXQUEUELEN, up: true });
  const logger = pino({ name: 'bench-target', level: 'warn' }, pino.destination(2));
  const service = await startTargetService({ link: tap, socketPath: join(dir, 't.sock'), interfaceMac: mac(HOST_MAC), logger, uploadGraceMs: 2000 });
  let client: IpcClient;
  try {
    client = await IpcClient.connect(service.socketPath, { software: 'bench-host' });
  } catch (err) {
    await service.shutdown({ graceMs: 0 });
    throw err;
  }
  lab.onTeardown(() => client.close());
  // Hooks run last-registered first: the service shuts down while the host is still bound.
  lab.onTeardown(async () => { await service.shutdown({ graceMs: 2000 }); });
  const scheduler = new WallClockScheduler();
  lab.onTeardown(() => scheduler.close());
  const link = ChimneyLink.overIpc(client, { mtu: tap.mtu });
  const stack = new HostStack({
    link, mac: mac(HOST_MAC), scheduler,
    ipv4: { address: ipv4(HOST_IP), prefixLength: 24, gateway: ipv4(KERNEL_IP) },
    offload: { policy: 'after-handshake' },
  });
  lab.onTeardown(() => stack.close());
  return {
    stack, tap, ns: nsK, ip: HOST_IP, kernelIp: KERNEL_IP, service, client,
    frames: () => ({ in: service.core.counters.framesIn, out: service.core.counters.framesOut, writeBatches: service.counters.linkBatchesOut }),
  };
}

type Snapshot = NonNullable<Sample['offload']>;

function snapshot(end: OffloadEnd): Snapshot {
  const c = end.service.core.counters;
  const o = end.stack.offload!.stats;
  const ipc = end.client.counters;
  return {
    initiates: o.initiates, terminates: o.terminates, framesOffloaded: c.framesOffloaded, framesToHost: c.framesToHost,
    sendRequests: o.sendRequests, indications: o.indications, ipcMessagesOut: ipc.messagesOut, ipcMessagesIn: ipc.messagesIn, ipcWrites: ipc.writes,
  };
}

function delta(a: Snapshot, b: Snapshot): Snapshot {
  const out = { ...b };
  for (const k of Object.keys(out) as Array<keyof Snapshot>) out[k] = b[k] - a[k];
  return out;
}

/** A run counts only if the target carried the data: one initiate and most frames offloaded. */
function checkOffloaded(s: Sample): Sample {
  const o = s.offload!;
  const carried = o.framesOffloaded + o.framesToHost;
  if (o.initiates !== 1 || carried === 0 || o.framesOffloaded / carried < 0.9) {
    throw new Error(`${s.scenario}: the connection was not offloaded for the transfer (initiates ${o.initiates}, frames offloaded ${o.framesOffloaded}, to host ${o.framesToHost})`);
  }
  return s;
}

export async function runLinuxToOffloaded(b: BenchLab, end: OffloadEnd, bytes: number, seed: string, progress: Progress): Promise<Sample> {
  const before = snapshot(end);
  const s = await runLinuxToStack(b, bytes, seed, progress, end, 'linux-to-offloaded', 'Linux -> offloaded host stack (TAP, target)');
  s.offload = delta(before, snapshot(end));
  return checkOffloaded(s);
}

export async function runOffloadedToLinux(b: BenchLab, end: OffloadEnd, bytes: number, seed: string, progress: Progress): Promise<Sample> {
  const before = snapshot(end);
  const s = await runStackToLinux(b, bytes, seed, progress, end, 'offloaded-to-linux', 'offloaded host stack -> Linux (TAP, target)');
  s.offload = delta(before, snapshot(end));
  return checkOffloaded(s);
}
