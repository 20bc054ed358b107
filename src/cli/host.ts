/**
 * `chimney host`: the host stack as a process, bound to a target over its Unix socket. The stack
 * runs over a ChimneyLink (frames and offload control on one ordered IPC stream). Applications and
 * forwarders are a later item: for now the process answers ARP/ICMP and keeps the binding alive
 * until SIGTERM/SIGINT or until the target goes away. `connectHost` is also what `chimney start`
 * uses in-process.
 */
import type { Logger } from 'pino';
import { IpcClient } from '../ipc/client.js';
import { ChimneyLink } from '../host/chimney-link.js';
import { HostStack } from '../host/stack.js';
import type { OffloadPolicy } from '../host/offload.js';
import { WallClockScheduler } from '../link/scheduler.js';
import { ipv4, mac as parseMac } from '../wire/addresses.js';
import { parseArgs, type CliIo } from './io.js';
import { cliLogger, isLogLevel, LOG_LEVELS } from './log.js';
import type { StopSignal } from './target.js';

export const HOST_HELP = `usage: chimney host --socket PATH --ip A.B.C.D/N [--gateway G] [--mac MAC]
                    [--offload never|after-handshake|bytes:N|manual] [--log-level LEVEL]

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

Runs until SIGTERM/SIGINT (exit 0) or until the target closes the binding (exit 1).
Exit codes: 0 stopped by a signal; 1 the target went away; 2 usage error; 3 cannot connect.`;

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
}

export interface RunningHost {
  client: IpcClient;
  link: ChimneyLink;
  stack: HostStack;
  scheduler: WallClockScheduler;
  /** Resolves with the reason when the target closes the binding. */
  bindingClosed: Promise<string>;
  close(): Promise<void>;
}

export async function connectHost(o: HostOptions): Promise<RunningHost> {
  const client = await IpcClient.connect(o.socket, { software: 'tcp-chimney host' });
  const bindingClosed = new Promise<string>((resolve) => client.onClose(resolve));
  const link = ChimneyLink.overIpc(client);
  const scheduler = new WallClockScheduler();
  const stack = new HostStack({
    link, mac: parseMac(o.mac ?? DEFAULT_HOST_MAC), scheduler, logger: o.logger,
    ipv4: { address: o.address, prefixLength: o.prefixLength, gateway: o.gateway },
    offload: { policy: o.policy, log: (msg, fields) => o.logger.debug(fields ?? {}, msg) },
  });
  o.logger.info({ socket: o.socket, target: client.target.software }, 'bound to the target');
  let closed: Promise<void> | undefined;
  return {
    client, link, stack, scheduler, bindingClosed,
    close(): Promise<void> {
      closed ??= (async () => {
        stack.close();
        await link.close();
        scheduler.close();
        await client.close();
      })();
      return closed;
    },
  };
}

export async function runHost(args: string[], io: CliIo, stop?: StopSignal): Promise<number> {
  const p = parseArgs(args, { values: ['socket', 'ip', 'gateway', 'mac', 'offload', 'log-level'], flags: [] });
  const socket = p.values.get('socket');
  const cidr = parseCidr(p.values.get('ip') ?? '');
  const gw = p.values.get('gateway');
  const policy = parseOffloadPolicy(p.values.get('offload') ?? 'after-handshake');
  const level = p.values.get('log-level') ?? 'info';
  const problem = p.problem ?? (p.positional.length ? `unexpected argument '${p.positional[0]}'` : !socket ? '--socket is required'
    : !p.values.has('ip') ? '--ip is required' : !cidr ? `--ip must be A.B.C.D/N, not '${p.values.get('ip')}'`
      : gw !== undefined && !parseCidr(`${gw}/32`) ? `--gateway must be an IPv4 address, not '${gw}'`
        : !policy ? '--offload must be never, after-handshake, bytes:N or manual'
          : !isLogLevel(level) ? `--log-level must be one of ${LOG_LEVELS.join(', ')}` : undefined);
  if (problem || !socket || !cidr || !policy || !isLogLevel(level)) {
    io.err(`chimney host: ${problem}\n\n${HOST_HELP}`);
    return 2;
  }
  const logger = cliLogger({ name: 'chimney-host', level });
  let host: RunningHost;
  try {
    host = await connectHost({ socket, ...cidr, gateway: gw !== undefined ? ipv4(gw) : undefined, mac: p.values.get('mac'), policy, logger });
  } catch (e) {
    io.err(`chimney host: cannot bind to the target at ${socket}: ${(e as Error).message} (is \`chimney target --socket ${socket}\` running?)`);
    return 3;
  }
  io.out(`chimney host: ${p.values.get('ip')} bound to the target at ${socket}`);
  const stopped = stop ?? new Promise<string>((resolve) => {
    const on = (s: NodeJS.Signals): void => { process.off('SIGTERM', on); process.off('SIGINT', on); resolve(s); };
    process.on('SIGTERM', on);
    process.on('SIGINT', on);
  });
  const why = await Promise.race([stopped.then((s) => ({ signal: s })), host.bindingClosed.then((r) => ({ closed: r }))]);
  await host.close();
  if ('closed' in why) {
    io.err(`chimney host: the target closed the binding: ${why.closed}`);
    return 1;
  }
  io.out('chimney host: stopped');
  return 0;
}
