/**
 * `chimney host`: the host stack as a process, bound to a target over its Unix socket. The stack
 * runs over a ChimneyLink (frames and offload control on one ordered IPC stream). Unmodified
 * programs reach it through forwarders (`--forward`, `--expose`: src/host/forwarder.ts); the
 * process runs until SIGTERM/SIGINT or until the target goes away. `connectHost` is also what
 * `chimney start` uses in-process.
 */
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { IpcClient } from '../ipc/client.js';
import { ChimneyLink } from '../host/chimney-link.js';
import { HostStack } from '../host/stack.js';
import type { OffloadPolicy } from '../host/offload.js';
import { WallClockScheduler } from '../link/scheduler.js';
import { ipv4, mac as parseMac } from '../wire/addresses.js';
import { PcapWriter, pcapFileSink, type PcapFileSink } from '../capture/pcap-writer.js';
import { ControlServer } from '../host/control.js';
import { Forwarders, HandoverCycle, parseExpose, parseForward, type ExposeSpec, type ForwardSpec } from '../host/forwarder.js';
import { parseArgs, type CliIo } from './io.js';
import { cliLogger, isLogLevel, LOG_LEVELS } from './log.js';
import type { StopSignal } from './target.js';

export const HOST_HELP = `usage: chimney host --socket PATH --ip A.B.C.D/N [--gateway G] [--mac MAC]
                    [--offload never|after-handshake|bytes:N|manual] [--log-level LEVEL]
                    [--control PATH] [--capture FILE.pcap]
                    [--forward LOCAL_ADDR:PORT=REMOTE_ADDR:PORT]... [--expose STACK_PORT=LOCAL_ADDR:PORT]...
                    [--handover-every MS]

Runs the userspace host stack bound to the target listening on the Unix socket PATH (start
\`chimney target\` first). The stack owns address A.B.C.D/N on the target's wire (ARP, ICMP echo,
TCP handshakes) and hands established connections to the target according to --offload:
  never            keep every connection on the host
  after-handshake  offload each connection once it is established (default)
  bytes:N          offload after N bytes went either way
  manual           only when asked

  --gateway   next hop for addresses outside A.B.C.D/N
  --mac       the stack's MAC address (default 02:c4:00:00:00:01)
  --log-level ${LOG_LEVELS.join('|')} (default info); logs go to stderr
  --control   create a control socket at PATH (0600; e.g. /run/chimney-host.ctl) for
              \`chimney ctl --control PATH status|offload ID|terminate ID|query ID\`
  --capture   write every frame the host stack sends and receives over its link to FILE.pcap
              (the slow path: segments of an offloaded connection are on the target's wire only;
              \`chimney target --capture\` records those)

Forwarders let unmodified programs use the stack's (offloaded) connections (repeatable):
  --forward LOCAL_ADDR:PORT=REMOTE_ADDR:PORT
              a kernel listener on LOCAL_ADDR:PORT in this process's namespace (port 0: any free
              port, printed); each connection is relayed over a stack connection to REMOTE
              e.g. --forward 127.0.0.1:8080=10.77.0.1:80, then curl http://127.0.0.1:8080/
  --expose STACK_PORT=LOCAL_ADDR:PORT
              a stack listener on STACK_PORT; each connection from the wire is relayed to a
              kernel connection to the local server LOCAL_ADDR:PORT
  --handover-every MS
              every MS milliseconds, terminate each offloaded relayed connection (the host takes
              it back) and offload it again: hand-overs under a real program's transfer
Relays pass data both ways with backpressure, a FIN as a FIN, an error on one side as a reset of
the other; on exit the host prints how many connections it relayed and how many hand-overs ran.

Runs until SIGTERM/SIGINT (exit 0) or until the target closes the binding (exit 1).
Exit codes: 0 stopped by a signal; 1 the target went away; 2 usage error; 3 cannot connect
(or a forwarder cannot listen).`;

export const DEFAULT_HOST_MAC = '02:c4:00:00:00:01';

export function parseOffloadPolicy(s: string): OffloadPolicy | undefined {
  if (s === 'never' || s === 'after-handshake' || s === 'manual') return s;
  const m = /^bytes:(\d+)$/.exec(s);
  return m ? { afterBytes: Number(m[1]) } : undefined;
}

/** "A.B.C.D/N" -> address and prefix, or undefined when malformed. */
export function parseCidr(s: string): { address: number; prefixLength: number } | undefined {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3})\/(\d{1,2})$/.exec(s);
  if (!m || Number(m[2]) > 32 || m[1].split('.').some((o) => Number(o) > 255)) return undefined;
  return { address: ipv4(m[1]), prefixLength: Number(m[2]) };
}

export interface HostOptions {
  socket: string;
  address: number;
  prefixLength: number;
  gateway?: number;
  mac?: string;
  policy: OffloadPolicy;
  logger: Logger;
  /** Path of a control socket to create (`chimney ctl`). */
  control?: string;
  /** Path of a pcap file recording the frames of the stack's link. */
  capture?: string;
}

export interface RunningHost {
  client: IpcClient;
  link: ChimneyLink;
  stack: HostStack;
  scheduler: WallClockScheduler;
  /** Resolves with the reason when the target closes the binding. */
  bindingClosed: Promise<string>;
  control: ControlServer | undefined;
  capture: PcapFileSink | undefined;
  close(): Promise<void>;
}

/** Why connectHost failed: the capture file, the binding to the target, or the control socket. */
export class HostStartError extends Error {
  constructor(readonly stage: 'capture' | 'target' | 'control', message: string) {
    super(message);
  }
}

/**
 * A ChimneyLink over `client` that also records its frames. The stack needs the ChimneyLink itself
 * (offload control shares its ordered stream), so a wrapping Link (withCapture) cannot sit in
 * between: frames are recorded where they cross the binding.
 */
function capturedChimneyLink(client: IpcClient, writer: PcapWriter): ChimneyLink {
  const link = new ChimneyLink({
    send: (m) => {
      if (m.type === 'RawFrame') writer.write(m.frame, Date.now());
      client.send(m);
    },
  });
  client.on((m) => {
    if (m.type === 'RawFrame') writer.write(m.frame, Date.now());
    link.onTargetMessage(m);
  });
  client.onClose((reason) => link.bindingClosed(reason));
  return link;
}

export async function connectHost(o: HostOptions): Promise<RunningHost> {
  let capture: PcapFileSink | undefined;
  try {
    if (o.capture !== undefined) capture = pcapFileSink(o.capture);
  } catch (e) {
    throw new HostStartError('capture', `cannot write the capture ${o.capture}: ${(e as Error).message}`);
  }
  let client: IpcClient;
  try {
    client = await IpcClient.connect(o.socket, { software: 'tcp-chimney host' });
  } catch (e) {
    capture?.close();
    throw new HostStartError('target', (e as Error).message);
  }
  const bindingClosed = new Promise<string>((resolve) => client.onClose(resolve));
  const link = capture ? capturedChimneyLink(client, new PcapWriter(capture, 'ethernet')) : ChimneyLink.overIpc(client);
  const scheduler = new WallClockScheduler();
  const stack = new HostStack({
    link, mac: parseMac(o.mac ?? DEFAULT_HOST_MAC), scheduler, logger: o.logger,
    ipv4: { address: o.address, prefixLength: o.prefixLength, gateway: o.gateway },
    offload: { policy: o.policy, log: (msg, fields) => o.logger.debug(fields ?? {}, msg) },
  });
  o.logger.info({ socket: o.socket, target: client.target.software }, 'bound to the target');
  let closed: Promise<void> | undefined;
  const running: RunningHost = {
    client, link, stack, scheduler, bindingClosed, control: undefined, capture,
    close(): Promise<void> {
      closed ??= (async () => {
        await running.control?.close();
        stack.close();
        await link.close();
        scheduler.close();
        await client.close();
        capture?.close();
      })();
      return closed;
    },
  };
  if (o.control !== undefined) {
    try {
      running.control = await ControlServer.listen({ path: o.control, stack, logger: o.logger.child({ component: 'control' }) });
    } catch (e) {
      await running.close();
      throw new HostStartError('control', `cannot create the control socket ${o.control}: ${(e as Error).message}`);
    }
    o.logger.info({ control: o.control }, 'control socket ready');
  }
  return running;
}

export async function runHost(args: string[], io: CliIo, stop?: StopSignal): Promise<number> {
  const p = parseArgs(args, { values: ['socket', 'ip', 'gateway', 'mac', 'offload', 'log-level', 'forward', 'expose', 'handover-every', 'control', 'capture'], flags: [] });
  const relays = parseRelayOptions(p.lists);
  const socket = p.values.get('socket');
  const cidr = parseCidr(p.values.get('ip') ?? '');
  const gw = p.values.get('gateway');
  const policy = parseOffloadPolicy(p.values.get('offload') ?? 'after-handshake');
  const level = p.values.get('log-level') ?? 'info';
  const problem = p.problem ?? (p.positional.length ? `unexpected argument '${p.positional[0]}'` : !socket ? '--socket is required'
    : !p.values.has('ip') ? '--ip is required' : !cidr ? `--ip must be A.B.C.D/N, not '${p.values.get('ip')}'`
      : gw !== undefined && !parseCidr(`${gw}/32`) ? `--gateway must be an IPv4 address, not '${gw}'`
        : !policy ? '--offload must be never, after-handshake, bytes:N or manual'
          : !isLogLevel(level) ? `--log-level must be one of ${LOG_LEVELS.join(', ')}` : typeof relays === 'string' ? relays
            : relays.handoverEveryMs !== undefined && policy === 'never' ? '--handover-every needs offloaded connections: not with --offload never' : undefined);
  if (problem || !socket || !cidr || !policy || !isLogLevel(level) || typeof relays === 'string') {
    io.err(`chimney host: ${problem}\n\n${HOST_HELP}`);
    return 2;
  }
  const control = p.values.get('control');
  const capture = p.values.get('capture');
  for (const [opt, path] of [['--control', control], ['--capture', capture]] as const) {
    if (path !== undefined && !existsSync(dirname(path))) {
      io.err(`chimney host: the ${opt} directory ${dirname(path)} does not exist: create it (mkdir -p ${dirname(path)}) or pick another path`);
      return 3;
    }
  }
  const logger = cliLogger({ name: 'chimney-host', level });
  let host: RunningHost;
  try {
    host = await connectHost({ socket, ...cidr, gateway: gw !== undefined ? ipv4(gw) : undefined, mac: p.values.get('mac'), policy, logger, control, capture });
  } catch (e) {
    const stage = e instanceof HostStartError ? e.stage : 'target';
    io.err(stage === 'target'
      ? `chimney host: cannot bind to the target at ${socket}: ${(e as Error).message} (is \`chimney target --socket ${socket}\` running?)`
      : `chimney host: ${(e as Error).message}`);
    return 3;
  }
  io.out(`chimney host: ${p.values.get('ip')} bound to the target at ${socket}`);
  if (control !== undefined) io.out(`chimney host: control socket at ${control} (chimney ctl --control ${control} status)`);
  if (capture !== undefined) io.out(`chimney host: capturing the stack's frames to ${capture}`);
  let fw: RunningForwarders;
  try {
    fw = await startForwarders(host.stack, relays, logger, io);
  } catch (e) {
    await host.close();
    io.err(`chimney host: ${(e as Error).message}`);
    return 3;
  }
  const stopped = stop ?? new Promise<string>((resolve) => {
    const on = (s: NodeJS.Signals): void => { process.off('SIGTERM', on); process.off('SIGINT', on); resolve(s); };
    process.on('SIGTERM', on);
    process.on('SIGINT', on);
  });
  const why = await Promise.race([stopped.then((s) => ({ signal: s })), host.bindingClosed.then((r) => ({ closed: r }))]);
  await fw.close();
  await host.close();
  if ('closed' in why) {
    io.err(`chimney host: the target closed the binding: ${why.closed}`);
    return 1;
  }
  io.out('chimney host: stopped');
  return 0;
}

// ---------------------------------------------------------------------------------------- forwarders

interface RelayOptions {
  forwards: ForwardSpec[];
  exposes: ExposeSpec[];
  handoverEveryMs: number | undefined;
}

/** `--forward` / `--expose` / `--handover-every` -> specs, or the first problem. */
export function parseRelayOptions(lists: Map<string, string[]>): RelayOptions | string {
  const forwards: ForwardSpec[] = [];
  const exposes: ExposeSpec[] = [];
  for (const v of lists.get('forward') ?? []) {
    const f = parseForward(v);
    if (typeof f === 'string') return f;
    forwards.push(f);
  }
  for (const v of lists.get('expose') ?? []) {
    const e = parseExpose(v);
    if (typeof e === 'string') return e;
    exposes.push(e);
  }
  const every = lists.get('handover-every')?.at(-1);
  if (every !== undefined && !/^[1-9]\d{0,8}$/.test(every)) return `--handover-every must be a number of milliseconds >= 1, not '${every}'`;
  return { forwards, exposes, handoverEveryMs: every === undefined ? undefined : Number(every) };
}

interface RunningForwarders {
  close(): Promise<void>;
}

async function startForwarders(stack: HostStack, o: RelayOptions, logger: Logger, io: CliIo): Promise<RunningForwarders> {
  const fw = new Forwarders(stack, logger);
  try {
    for (const f of o.forwards) {
      const bound = await fw.forward(f).catch((e: Error) => {
        throw new Error(`--forward: cannot listen on ${f.local.address}:${f.local.port}: ${e.message}`);
      });
      io.out(`chimney host: forwarding ${bound.address}:${bound.port} -> ${f.remote.address}:${f.remote.port}`);
    }
    for (const e of o.exposes) {
      try {
        fw.expose(e);
      } catch (err) {
        throw new Error(`--expose: cannot listen on stack port ${e.stackPort}: ${(err as Error).message}`);
      }
      io.out(`chimney host: exposing stack port ${e.stackPort} -> ${e.local.address}:${e.local.port}`);
    }
  } catch (e) {
    await fw.close();
    throw e;
  }
  const cycle = o.handoverEveryMs !== undefined ? new HandoverCycle(o.handoverEveryMs, fw, logger) : undefined;
  return {
    async close(): Promise<void> {
      cycle?.stop();
      await fw.close();
      if (o.forwards.length + o.exposes.length === 0) return;
      const st = fw.stats;
      const h = cycle ? `; hand-overs: ${cycle.stats.terminates} terminates, ${cycle.stats.offloads} re-offloads, ${cycle.stats.failures} not completed` : '';
      io.out(`chimney host: relayed ${st.connections} connection(s), ${st.failed} ended with an error${h}`);
    },
  };
}
