#!/usr/bin/env node
/**
 * The `chimney` command. Each subcommand is a module exporting `run(args, io) -> exit code`, so
 * tests call it in-process. Exit codes: 0 ok, 1 the check failed (e.g. a gap in a capture),
 * 2 usage error, 3 runtime error (file missing, unreadable).
 */
import { readFileSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { runVerify, VERIFY_HELP } from './verify.js';
import { runGraph, GRAPH_HELP } from './graph.js';
import { runTarget, TARGET_HELP } from './target.js';
import { runHost, HOST_HELP } from './host.js';
import { runStart, START_HELP } from './start.js';
import { runLab, LAB_HELP } from './lab.js';
import { runCtl, CTL_HELP } from './ctl.js';
import type { CliIo } from './io.js';

const COMMANDS: Record<string, { summary: string; help: string; run: (args: string[], io: CliIo) => Promise<number> }> = {
  start: { summary: 'the lab: a transfer each way with offloads and hand-overs, checked and reported (npm start)', help: START_HELP, run: runStart },
  lab: { summary: "the lab's roles as separate processes (peer, stack), as the docker-compose lab runs them", help: LAB_HELP, run: runLab },
  target: { summary: 'run the offload target on a TAP device, serving one host over a Unix socket', help: TARGET_HELP, run: (a, io) => runTarget(a, io) },
  host: { summary: 'run the userspace host stack bound to a target', help: HOST_HELP, run: (a, io) => runHost(a, io) },
  ctl: { summary: 'talk to a running host over its control socket: status, offload, terminate, query', help: CTL_HELP, run: runCtl },
  verify: { summary: 'check the TCP flows of a pcap: gaps, corruption, retransmissions, RSTs', help: VERIFY_HELP, run: runVerify },
  graph: { summary: 'draw a time-sequence graph (SVG, PNG when a converter exists) of a flow in a pcap', help: GRAPH_HELP, run: runGraph },
};

function version(): string {
  try {
    const here = dirname(fileURLToPath(import.meta.url));
    for (const p of [join(here, '../../package.json'), join(here, '../../../package.json')]) {
      try {
        return (JSON.parse(readFileSync(p, 'utf8')) as { version: string }).version;
      } catch { /* try the next layout (src/ or dist/src/) */ }
    }
  } catch { /* fall through */ }
  return 'unknown';
}

export function mainHelp(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(8)} ${c.summary}`);
  return [
    'usage: chimney <command> [options]',
    '',
    'commands:',
    ...lines,
    '',
    'chimney <command> --help shows the options of a command; chimney --version the version.',
  ].join('\n');
}

export async function main(argv: string[], io: CliIo): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    io.out(mainHelp());
    return cmd === undefined ? 2 : 0;
  }
  if (cmd === '--version' || cmd === '-V') {
    io.out(version());
    return 0;
  }
  const c = COMMANDS[cmd];
  if (!c) {
    io.err(`chimney: unknown command '${cmd}'\n\n${mainHelp()}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    io.out(c.help);
    return 0;
  }
  try {
    return await c.run(rest, io);
  } catch (e) {
    io.err(`chimney ${cmd}: ${(e as Error).message}`);
    return 3;
  }
}

// realpath: npm's bin link and the container's /usr/local/bin/chimney are symlinks to this file.
const invokedDirectly = ((): boolean => {
  try {
    return fileURLToPath(import.meta.url) === realpathSync(process.argv[1] ?? '');
  } catch {
    return false; // argv[1] is not a file (node -e, a REPL)
  }
})();
if (invokedDirectly) {
  main(process.argv.slice(2), { out: (s) => process.stdout.write(`${s}\n`), err: (s) => process.stderr.write(`${s}\n`) })
    .then((code) => { process.exitCode = code; });
}
