/**
 * `chimney target`: the offload target as a process. Opens (creates) the TAP, starts the service on
 * a Unix socket and runs until SIGTERM/SIGINT, which shut it down gracefully (UploadAll first).
 */
import { existsSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { openTapLink } from '../link/tap.js';
import { withCapture } from '../link/capture-link.js';
import { PcapWriter, pcapFileSink } from '../capture/pcap-writer.js';
import { startTargetService, type TargetService } from '../target/service.js';
import { parseArgs, type CliIo } from './io.js';
import { cliLogger, isLogLevel, LOG_LEVELS } from './log.js';

export const TARGET_HELP = `usage: chimney target --tap NAME --socket PATH [--log-level LEVEL] [--capture FILE.pcap]

Runs the offload target (the "NIC"): opens or creates the TAP device NAME (at most 15 characters;
'%d' lets the kernel number it), listens for one host on the Unix socket PATH (created 0600; its
directory must exist) and forwards frames of connections it has not offloaded to that host.
SIGTERM or SIGINT asks the host to take every offloaded connection back, then exits 0.

  --log-level   ${LOG_LEVELS.join('|')} (default info); logs go to stderr, JSON unless a terminal
  --capture     write every frame the target sends and receives on the TAP to FILE.pcap

Needs CAP_NET_ADMIN (root) and /dev/net/tun.
Exit codes: 0 stopped by a signal; 2 usage error; 3 cannot start (TAP, socket, capture file).`;

/** Resolves when the process receives SIGTERM or SIGINT (tests pass their own). */
export type StopSignal = Promise<string>;

function signalled(): StopSignal {
  return new Promise((resolve) => {
    const on = (s: NodeJS.Signals): void => {
      process.off('SIGTERM', on);
      process.off('SIGINT', on);
      resolve(s);
    };
    process.on('SIGTERM', on);
    process.on('SIGINT', on);
  });
}

export async function runTarget(args: string[], io: CliIo, stop: StopSignal = signalled()): Promise<number> {
  const p = parseArgs(args, { values: ['tap', 'socket', 'log-level', 'capture'], flags: [] });
  const tap = p.values.get('tap');
  const socket = p.values.get('socket');
  const level = p.values.get('log-level') ?? 'info';
  const problem = p.problem ?? (p.positional.length ? `unexpected argument '${p.positional[0]}'` : !tap ? '--tap is required' : !socket ? '--socket is required' : !isLogLevel(level) ? `--log-level must be one of ${LOG_LEVELS.join(', ')}` : undefined);
  if (problem || !tap || !socket || !isLogLevel(level)) {
    io.err(`chimney target: ${problem}\n\n${TARGET_HELP}`);
    return 2;
  }
  const dir = dirname(socket);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    io.err(`chimney target: the socket's directory ${dir} does not exist: create it (mkdir -p ${dir}) or pick another --socket path`);
    return 3;
  }
  const capture = p.values.get('capture');
  if (capture !== undefined && !existsSync(dirname(capture))) {
    io.err(`chimney target: the capture's directory ${dirname(capture)} does not exist`);
    return 3;
  }
  const log = cliLogger({ name: 'chimney-target', level });
  let link;
  try {
    link = openTapLink({ name: tap });
  } catch (e) {
    io.err(`chimney target: ${(e as Error).message}`);
    return 3;
  }
  const sink = capture !== undefined ? pcapFileSink(capture) : undefined;
  const wired = sink ? withCapture(link, new PcapWriter(sink, 'ethernet'), () => Date.now()) : link;
  let service: TargetService;
  try {
    service = await startTargetService({ link: wired, socketPath: socket, logger: log });
  } catch (e) {
    await link.close();
    sink?.close();
    io.err(`chimney target: cannot listen on ${socket}: ${(e as Error).message}`);
    return 3;
  }
  io.out(`chimney target: TAP ${link.name}, waiting for a host on ${socket}`);
  const sig = await stop;
  log.info({ signal: sig }, 'stopping');
  const r = await service.shutdown();
  sink?.close();
  io.out(`chimney target: stopped (${r.uploaded} connection(s) uploaded, ${r.aborted} aborted)`);
  return 0;
}
