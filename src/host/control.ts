/**
 * The host's control socket (`chimney host --control PATH`): a Unix stream socket, owner-only
 * (0600), speaking newline-delimited JSON, one response line per request line, in order
 * (docs/control-protocol.md). It lists the stack's connections and offloads, terminates or queries
 * one of them. A bad request gets an error response; it never throws into the stack.
 */
import { lstat, unlink } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import { listenOwnerOnly } from '../ipc/owner-only-socket.js';
import { OFFLOADABLE_STATES, TCP_STATE_NAMES, TcpState } from '../tcp/types.js';
import type { OffloadManager } from './offload.js';
import type { TcpSocket } from './socket.js';
import type { HostStack } from './stack.js';

export type ControlErrorCode =
  | 'bad-request'
  | 'unknown-connection'
  | 'no-offload-target'
  | 'not-offloadable'
  | 'offload-paused'
  | 'already-offloaded'
  | 'not-offloaded'
  | 'offload-in-progress'
  | 'terminate-in-progress'
  | 'failed';

export type OffloadPhase = 'host' | 'initiating' | 'offloaded' | 'terminating';

/** One connection as `status` lists it. Sequence values are absent when nobody can tell them now. */
export interface ConnectionRow {
  id: number;
  local: string;
  remote: string;
  /** TCP state name; the target's while the connection is offloaded. */
  state: string;
  offload: OffloadPhase;
  /** Where state and sequence values come from: the host engine, the target (a query), or none (hand-over running). */
  source: 'host' | 'target' | 'none';
  sndUna?: number;
  sndNxt?: number;
  rcvNxt?: number;
  /** Bytes the application read / wrote (accepted for sending). */
  bytesIn: number;
  bytesOut: number;
}

export interface StatusResponse {
  ok: true;
  host: {
    address: string;
    offload?: { policy: string; accepting: boolean; initiates: number; initiateFailures: number; terminates: number };
  };
  connections: ConnectionRow[];
}

export interface QueryResponse {
  ok: true;
  connection: ConnectionRow;
  /** The delegated TCP variables (spec 1.5), numbers only: the target's when offloaded. */
  delegated: Record<string, number>;
}

export interface OpResponse {
  ok: true;
  connection: ConnectionRow;
}

export interface ErrorResponse {
  ok: false;
  error: ControlErrorCode;
  message: string;
}

export type ControlResponse = StatusResponse | QueryResponse | OpResponse | ErrorResponse;

export interface ControlServerOptions {
  path: string;
  stack: HostStack;
  logger?: Logger;
  /** How long a QueryOffload may take before the request fails (default 5000 ms). */
  queryTimeoutMs?: number;
}

const MAX_LINE = 64 * 1024;

class RequestError extends Error {
  constructor(readonly code: ControlErrorCode, message: string) {
    super(message);
  }
}

function policyName(p: OffloadManager['policy']): string {
  return typeof p === 'object' ? `bytes:${p.afterBytes}` : p;
}

function numbersOf(o: object): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(o)) if (typeof v === 'number') out[k] = v;
  return out;
}

export class ControlServer {
  private readonly ids = new WeakMap<TcpSocket, number>();
  private nextId = 1;
  private readonly clients = new Set<Socket>();
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly server: Server,
    readonly path: string,
    private readonly inode: number,
    private readonly stack: HostStack,
    private readonly log: Logger | undefined,
    private readonly queryTimeoutMs: number,
  ) {
    server.on('error', (e) => this.log?.warn({ err: e }, 'control socket error'));
  }

  /** Listen at `path` (owner-only from the moment the name exists; a stale socket is replaced). */
  static async listen(o: ControlServerOptions): Promise<ControlServer> {
    // Clients that connect before the server object exists wait in `early`.
    const early: Socket[] = [];
    let accept = (s: Socket): void => { early.push(s); };
    const server = createServer((s) => accept(s));
    const inode = await listenOwnerOnly(server, o.path, 'control server');
    const cs = new ControlServer(server, o.path, inode, o.stack, o.logger, o.queryTimeoutMs ?? 5000);
    accept = (s) => cs.accept(s);
    for (const s of early.splice(0)) cs.accept(s);
    return cs;
  }

  /** Handle one request (what a line on the socket does), for in-process callers too. */
  async handle(req: unknown): Promise<ControlResponse> {
    try {
      return await this.dispatch(req);
    } catch (e) {
      if (e instanceof RequestError) return { ok: false, error: e.code, message: e.message };
      this.log?.warn({ err: e }, 'control request failed');
      return { ok: false, error: 'failed', message: (e as Error).message };
    }
  }

  /** Stop listening, drop the clients, remove the socket file. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const stopped = new Promise<void>((resolve) => this.server.close(() => resolve()));
      for (const c of this.clients) c.destroy();
      await stopped;
      try {
        if ((await lstat(this.path)).ino === this.inode) await unlink(this.path);
      } catch {
        // Already gone.
      }
    })();
    return this.closing;
  }

  private accept(socket: Socket): void {
    if (this.closing !== undefined) {
      socket.destroy();
      return;
    }
    this.clients.add(socket);
    socket.on('close', () => this.clients.delete(socket));
    socket.on('error', () => undefined);
    let buf = '';
    // Requests of one client are answered in order, one at a time.
    let chain = Promise.resolve();
    const reply = (r: ControlResponse): void => {
      if (!socket.destroyed) socket.write(`${JSON.stringify(r)}\n`);
    };
    let refused = false;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      if (refused) return;
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line === '') continue;
        chain = chain.then(async () => reply(await this.handle(parseLine(line))));
      }
      if (buf.length > MAX_LINE) {
        // Answer what came before, then this, then hang up: nothing after it is read.
        refused = true;
        buf = '';
        chain = chain.then(() => {
          reply({ ok: false, error: 'bad-request', message: `request line longer than ${MAX_LINE} characters` });
          socket.end();
        });
      }
    });
  }

  private async dispatch(req: unknown): Promise<ControlResponse> {
    if (req instanceof RequestError) throw req;
    if (typeof req !== 'object' || req === null || Array.isArray(req)) throw new RequestError('bad-request', 'a request is a JSON object such as {"cmd":"status"}');
    const r = req as Record<string, unknown>;
    switch (r.cmd) {
      case 'status':
        return this.status();
      case 'offload':
        return this.offload(this.connection(r.id));
      case 'terminate':
        return this.terminate(this.connection(r.id));
      case 'query':
        return this.query(this.connection(r.id));
      default:
        throw new RequestError('bad-request', `unknown cmd ${JSON.stringify(r.cmd)}: status, offload, terminate or query`);
    }
  }

  /** Open sockets with their ids (assigned in creation order the first time they are listed). */
  private sockets(): Array<{ id: number; socket: TcpSocket }> {
    return this.stack.connections().map((socket) => {
      let id = this.ids.get(socket);
      if (id === undefined) {
        id = this.nextId++;
        this.ids.set(socket, id);
      }
      return { id, socket };
    });
  }

  private connection(id: unknown): { id: number; socket: TcpSocket } {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 1) throw new RequestError('bad-request', `"id" must be a connection id (a positive integer from status), not ${JSON.stringify(id)}`);
    const c = this.sockets().find((x) => x.id === id);
    if (c === undefined) throw new RequestError('unknown-connection', `no open connection with id ${id} (see status)`);
    return c;
  }

  private manager(): OffloadManager {
    const m = this.stack.offload;
    if (m === undefined) throw new RequestError('no-offload-target', 'this host stack runs without an offload target');
    return m;
  }

  private phase(socket: TcpSocket): OffloadPhase {
    return this.stack.offload?.offloadState(socket)?.phase ?? 'host';
  }

  private async status(): Promise<StatusResponse> {
    const m = this.stack.offload;
    const rows = await Promise.all(this.sockets().map(async ({ id, socket }) => {
      try {
        return (await this.describe(id, socket)).row;
      } catch {
        return this.baseRow(id, socket, 'none');
      }
    }));
    return {
      ok: true,
      host: {
        address: this.stack.localAddress,
        ...(m ? { offload: { policy: policyName(m.policy), accepting: m.accepting, initiates: m.stats.initiates, initiateFailures: m.stats.initiateFailures, terminates: m.stats.terminates } } : {}),
      },
      connections: rows,
    };
  }

  private baseRow(id: number, socket: TcpSocket, source: ConnectionRow['source']): ConnectionRow {
    return {
      id, local: `${socket.localAddress}:${socket.localPort}`, remote: `${socket.remoteAddress}:${socket.remotePort}`,
      state: source === 'none' ? '-' : TCP_STATE_NAMES[socket.connection.state], offload: this.phase(socket), source,
      bytesIn: socket.bytesRead, bytesOut: socket.bytesWritten,
    };
  }

  /** The connection's row and delegated variables, from whoever drives it now. */
  private async describe(id: number, socket: TcpSocket): Promise<{ row: ConnectionRow; delegated: Record<string, number> }> {
    const st = this.stack.offload?.offloadState(socket);
    if (st === undefined) {
      const b = socket.binding;
      if (!b.attached || b.closed) throw new RequestError('failed', `connection ${id} is closed`);
      const exp = b.connection.export(this.stack.scheduler.now(), { flushAck: false, msPerTick: this.stack.offload?.msPerTick ?? 1 });
      const d = numbersOf(exp.delegated);
      return { row: { ...this.baseRow(id, socket, 'host'), sndUna: d.sndUna, sndNxt: d.sndNxt, rcvNxt: d.rcvNxt }, delegated: d };
    }
    if (st.phase !== 'offloaded') throw new RequestError(st.phase === 'initiating' ? 'offload-in-progress' : 'terminate-in-progress', `connection ${id} is being handed over (${st.phase}); try again`);
    const d = numbersOf(await this.targetState(socket));
    const row: ConnectionRow = {
      ...this.baseRow(id, socket, 'target'), state: TCP_STATE_NAMES[d.state as TcpState] ?? String(d.state),
      sndUna: d.sndUna, sndNxt: d.sndNxt, rcvNxt: d.rcvNxt,
    };
    return { row, delegated: d };
  }

  /** The offload manager's QueryOffload, bounded in time; failures named for the client. */
  private targetState(socket: TcpSocket): Promise<object> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new RequestError('failed', `the target did not answer the query within ${this.queryTimeoutMs} ms`)), this.queryTimeoutMs);
      this.manager().query(socket).then(
        (d) => { clearTimeout(timer); resolve(d); },
        (e: Error) => { clearTimeout(timer); reject(new RequestError(/not offloaded|FAILURE|INVALID/.test(e.message) ? 'not-offloaded' : 'failed', `the target refused the query: ${e.message}`)); },
      );
    });
  }

  private async query(c: { id: number; socket: TcpSocket }): Promise<QueryResponse> {
    const { row, delegated } = await this.describe(c.id, c.socket);
    return { ok: true, connection: row, delegated };
  }

  private async offload({ id, socket }: { id: number; socket: TcpSocket }): Promise<OpResponse> {
    const m = this.manager();
    const st = m.offloadState(socket);
    if (st?.phase === 'offloaded') throw new RequestError('already-offloaded', `connection ${id} is already offloaded`);
    if (st?.phase === 'initiating') throw new RequestError('offload-in-progress', `connection ${id} is being offloaded already`);
    if (st?.phase === 'terminating') throw new RequestError('terminate-in-progress', `connection ${id} is being terminated; offload it again once that finished`);
    if (!m.accepting) throw new RequestError('offload-paused', 'the target asked for no new offloads (upload all / pause)');
    const state = socket.connection.state;
    if (!socket.binding.attached || socket.binding.closed || !OFFLOADABLE_STATES.has(state)) {
      throw new RequestError('not-offloadable', `connection ${id} is ${socket.binding.closed ? 'closed' : TCP_STATE_NAMES[state]}: only established (or closing) connections can be offloaded`);
    }
    try {
      await socket.offload();
    } catch (e) {
      throw new RequestError('failed', (e as Error).message);
    }
    this.log?.info({ id, local: socket.localPort, remote: `${socket.remoteAddress}:${socket.remotePort}` }, 'offloaded on request');
    return { ok: true, connection: this.baseRow(id, socket, 'none') };
  }

  private async terminate({ id, socket }: { id: number; socket: TcpSocket }): Promise<OpResponse> {
    const m = this.manager();
    const st = m.offloadState(socket);
    if (st === undefined) throw new RequestError('not-offloaded', `connection ${id} is not offloaded (the host drives it)`);
    if (st.phase === 'initiating') throw new RequestError('offload-in-progress', `connection ${id} is still being offloaded; try again`);
    if (st.phase === 'terminating') throw new RequestError('terminate-in-progress', `connection ${id} is being terminated already`);
    try {
      await socket.terminateOffload();
    } catch (e) {
      throw new RequestError('failed', (e as Error).message);
    }
    this.log?.info({ id, local: socket.localPort, remote: `${socket.remoteAddress}:${socket.remotePort}` }, 'terminated on request');
    const alive = socket.binding.attached && !socket.binding.closed;
    return { ok: true, connection: this.baseRow(id, socket, alive ? 'host' : 'none') };
  }
}

function parseLine(line: string): unknown {
  try {
    return JSON.parse(line) as unknown;
  } catch (e) {
    return new RequestError('bad-request', `not JSON: ${(e as Error).message}`);
  }
}
