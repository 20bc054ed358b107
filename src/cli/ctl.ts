/**
 * `chimney ctl`: talk to a running `chimney host --control PATH` over its control socket
 * (newline-delimited JSON, docs/control-protocol.md): list connections, offload, terminate or
 * query one. One request per invocation.
 */
import { connect } from 'node:net';
import type { ConnectionRow, ControlResponse, QueryResponse, StatusResponse } from '../host/control.js';
import { parseArgs, type CliIo } from './io.js';

export const DEFAULT_CONTROL_PATH = '/run/chimney-host.ctl';
const DEFAULT_TIMEOUT_MS = 15_000;

export const CTL_HELP = `usage: chimney ctl [--control PATH] [--json] [--timeout MS] status|offload ID|terminate ID|query ID

Talks to a running \`chimney host --control PATH\` (default PATH ${DEFAULT_CONTROL_PATH}).
  status        the host's connections: id, addresses, TCP state, SND.UNA / SND.NXT / RCV.NXT
                (the target's values, read with a query, while offloaded), bytes read / written
                by the application, and whether the target drives the connection
  offload ID    hand connection ID to the target (waits until it runs there)
  terminate ID  take connection ID back from the target (waits until the host drives it)
  query ID      the connection's delegated TCP variables now (the target's when offloaded)

  --json        print the response as JSON (the control protocol's own answer)
  --timeout MS  give up waiting for the answer after MS milliseconds (default ${DEFAULT_TIMEOUT_MS})

Exit codes: 0 done; 1 the host refused the request (unknown id, not offloaded, already
offloaded ...); 2 usage error; 3 cannot reach the host (no socket, no answer).`;

type Request = { cmd: 'status' } | { cmd: 'offload' | 'terminate' | 'query'; id: number };

/** Send one request line, resolve with the first response line (parsed), or reject. */
export function controlRequest(path: string, req: Request, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<ControlResponse> {
  return new Promise((resolve, reject) => {
    const sock = connect(path);
    let buf = '';
    let done = false;
    const finish = (err: Error | undefined, res?: ControlResponse): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(res!);
    };
    const timer = setTimeout(() => finish(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(`${JSON.stringify(req)}\n`));
    sock.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      try {
        finish(undefined, JSON.parse(buf.slice(0, nl)) as ControlResponse);
      } catch (e) {
        finish(new Error(`the answer is not JSON: ${(e as Error).message}`));
      }
    });
    sock.on('error', (e) => finish(e));
    sock.on('close', () => finish(new Error('the host closed the control connection without an answer')));
  });
}

function seq(n: number | undefined): string {
  return n === undefined ? '-' : String(n);
}

/** The status response as an aligned table. */
export function formatStatus(r: StatusResponse): string[] {
  const o = r.host.offload;
  const head = o
    ? `host ${r.host.address}: offload policy ${o.policy}${o.accepting ? '' : ' (target paused offloads)'}; hand-overs so far: ${o.initiates} offload(s) (${o.initiateFailures} failed), ${o.terminates} terminate(s)`
    : `host ${r.host.address}: no offload target`;
  if (r.connections.length === 0) return [head, 'no open connections'];
  const cols = ['ID', 'LOCAL', 'REMOTE', 'STATE', 'OFFLOADED', 'SND.UNA', 'SND.NXT', 'RCV.NXT', 'BYTES IN', 'BYTES OUT'];
  const rows = r.connections.map((c: ConnectionRow) => [
    String(c.id), c.local, c.remote, c.state, c.offload === 'host' ? 'no' : c.offload === 'offloaded' ? 'yes' : c.offload,
    seq(c.sndUna), seq(c.sndNxt), seq(c.rcvNxt), String(c.bytesIn), String(c.bytesOut),
  ]);
  const widths = cols.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  const out = [head, line(cols), ...rows.map(line)];
  if (r.connections.some((c) => c.source === 'target')) out.push('(sequence values of offloaded connections are the target\'s, read with QueryOffload)');
  return out;
}

export function formatQuery(r: QueryResponse): string[] {
  const c = r.connection;
  const from = c.source === 'target' ? 'offloaded: values from the target' : 'on the host: values from the host engine';
  const names = Object.keys(r.delegated);
  const w = Math.max(...names.map((n) => n.length));
  return [
    `connection ${c.id} ${c.local} -> ${c.remote} ${c.state} (${from})`,
    ...names.map((n) => `  ${n.padEnd(w)}  ${n === 'state' ? `${r.delegated[n]} (${c.state})` : r.delegated[n]}`),
  ];
}

function parseId(s: string | undefined): number | undefined {
  return s !== undefined && /^[1-9]\d{0,9}$/.test(s) ? Number(s) : undefined;
}

export async function runCtl(args: string[], io: CliIo): Promise<number> {
  const p = parseArgs(args, { values: ['control', 'timeout'], flags: ['json'] });
  const [cmd, idArg, extra] = p.positional;
  const id = parseId(idArg);
  const timeout = p.values.get('timeout');
  const needsId = cmd === 'offload' || cmd === 'terminate' || cmd === 'query';
  const problem = p.problem
    ?? (cmd === undefined ? 'which request? status, offload ID, terminate ID or query ID'
      : cmd !== 'status' && !needsId ? `unknown request '${cmd}': status, offload ID, terminate ID or query ID`
        : needsId && idArg === undefined ? `${cmd} needs a connection ID (see chimney ctl status)`
          : needsId && id === undefined ? `ID must be a connection id from status (a positive integer), not '${idArg}'`
            : (cmd === 'status' ? idArg : extra) !== undefined ? `unexpected argument '${cmd === 'status' ? idArg : extra}'`
              : timeout !== undefined && !/^[1-9]\d{0,6}$/.test(timeout) ? `--timeout must be a number of milliseconds, not '${timeout}'` : undefined);
  if (problem !== undefined) {
    io.err(`chimney ctl: ${problem}\n\n${CTL_HELP}`);
    return 2;
  }
  const path = p.values.get('control') ?? DEFAULT_CONTROL_PATH;
  const req: Request = cmd === 'status' ? { cmd: 'status' } : { cmd: cmd as 'offload' | 'terminate' | 'query', id: id! };
  let res: ControlResponse;
  try {
    res = await controlRequest(path, req, timeout !== undefined ? Number(timeout) : DEFAULT_TIMEOUT_MS);
  } catch (e) {
    io.err(`chimney ctl: cannot talk to the host at ${path}: ${(e as Error).message} (is \`chimney host --control ${path}\` running?)`);
    return 3;
  }
  if (p.flags.has('json')) io.out(JSON.stringify(res, null, 2));
  if (!res.ok) {
    if (!p.flags.has('json')) io.err(`chimney ctl: ${cmd} refused (${res.error}): ${res.message}`);
    return 1;
  }
  if (p.flags.has('json')) return 0;
  if (cmd === 'status') for (const l of formatStatus(res as StatusResponse)) io.out(l);
  else if (cmd === 'query') for (const l of formatQuery(res as QueryResponse)) io.out(l);
  else if (cmd === 'offload') io.out(`connection ${id} offloaded: the target drives it`);
  else io.out(`connection ${id} terminated: the host drives it again`);
  return 0;
}
