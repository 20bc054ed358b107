/**
 * `chimney lab peer|stack`: the two roles of the lab scenario as separate processes, so that
 * containers (docker-compose.yml) or namespaces can run them. The peer is the Linux side: kernel
 * TCP (node:net) serving the scenario's peer protocol (src/lab/scenario.ts). The stack is the
 * chimney side: a TAP, the target and the host stack, running `chimney start`'s scenario
 * (`runScenario`) against the remote peer, whose reports arrive over a kernel TCP control
 * connection. The TAP's kernel side reaches the peer by forwarding + proxy ARP in the stack's
 * network namespace (native-notes/containers.md).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { Lab } from '../lab/lab.js';
import { parsePeerEvents, SCENARIO, sinkHandler, sourceHandler, STACK_SYSCTLS, type PeerEvent } from '../lab/scenario.js';
import { openTapLink } from '../link/tap.js';
import { startTargetService } from '../target/service.js';
import { ipv4, mac } from '../wire/addresses.js';
import { connectHost, DEFAULT_HOST_MAC, parseCidr } from './host.js';
import { parseArgs, type CliIo } from './io.js';
import { cliLogger, isLogLevel, LOG_LEVELS } from './log.js';
import { parseScenarioSize, parseSize, PeerEvents, runScenario, startTcpdump, type PeerAddress, type Topology } from './start.js';
import type { StopSignal } from './target.js';

const S = SCENARIO;
const sysctlList = Object.entries(STACK_SYSCTLS).map(([k, v]) => `${k}=${v}`).join(' ');

export const LAB_HELP = `usage: chimney lab peer  --listen ADDR [--sink-port N] [--source-port N] [--control-port N]
                        [--bytes SIZE] [--dry-run]
       chimney lab stack --peer ADDR --ip A.B.C.D/N [--tap NAME] [--sink-port N] [--source-port N]
                        [--control-port N] [--bytes SIZE] [--cycles N] [--results DIR]
                        [--wait-peer SECONDS] [--log-level LEVEL] [--dry-run]

The roles of the lab scenario (\`chimney start\`) as separate processes, so containers can run
them: docker-compose.yml runs exactly these two commands (native-notes/containers.md).

peer   The Linux peer, kernel TCP (node:net) on ADDR. The sink port reads each connection to the
       end and reports the SHA-256 of what it read; the source port sends SIZE random bytes and
       reports their SHA-256. Reports are JSON lines on stdout and on every connection to the
       control port. Runs until SIGTERM/SIGINT (exit 0).
stack  The chimney side: creates the TAP device NAME, runs the offload target on it and the host
       stack bound to it at A.B.C.D/N, waits for the peer's control port, then runs the scenario
       of \`chimney start\`: SIZE bytes each way (upload, download), each connection offloaded after
       the handshake and handed back and offloaded again N times, the digests compared with the
       peer's reports, a tcpdump capture of the TAP judged, report and run folder in DIR. The TAP
       gets a route to A.B.C.D/32; this network namespace must forward and proxy-ARP between the
       TAP and the peer's network:
         ${sysctlList}

  --sink-port / --source-port / --control-port   default ${S.sinkPort} / ${S.sourcePort} / ${S.controlPort}
  --bytes      bytes each way, with an optional K/M/G suffix (default ${S.bytes})
  --cycles     terminate + re-offload hand-overs per transfer (default ${S.cycles})
  --tap        TAP device to create (default ${S.compose.tap})
  --results    where run-<time>/ is created (default ./results)
  --wait-peer  how long to wait for the peer's control port (default 60)
  --log-level  ${LOG_LEVELS.join('|')} (default warn); logs go to stderr
  --dry-run    check the options, print the resolved settings as one JSON line, exit 0

Exit codes: 0 ok (stack: digests and capture ok; peer: stopped by a signal); 1 a check failed;
2 usage error; 3 cannot run (TAP, sysctls, address in use, peer unreachable).`;

const PORTS = ['sink-port', 'source-port', 'control-port'] as const;

function isIpv4(s: string | undefined): s is string {
  return s !== undefined && parseCidr(`${s}/32`) !== undefined;
}

/** The three ports, or a problem in words. */
function parsePorts(values: Map<string, string>): { sinkPort: number; sourcePort: number; controlPort: number; problem?: string } {
  const defaults = [S.sinkPort, S.sourcePort, S.controlPort];
  const nums = PORTS.map((name, i) => Number(values.get(name) ?? defaults[i]));
  const bad = PORTS.find((_, i) => !Number.isInteger(nums[i]) || nums[i] < 1 || nums[i] > 65535);
  const problem = bad ? `--${bad} must be a port 1..65535, not '${values.get(bad)}'`
    : new Set(nums).size !== 3 ? 'the sink, source and control ports must differ' : undefined;
  return { sinkPort: nums[0], sourcePort: nums[1], controlPort: nums[2], problem };
}

// ---------------------------------------------------------------------------------------- peer

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function signalled(): StopSignal {
  return new Promise((resolve) => {
    const on = (s: NodeJS.Signals): void => { process.off('SIGTERM', on); process.off('SIGINT', on); resolve(s); };
    process.on('SIGTERM', on);
    process.on('SIGINT', on);
  });
}

export async function runLabPeer(args: string[], io: CliIo, stop?: StopSignal): Promise<number> {
  const p = parseArgs(args, { values: ['listen', ...PORTS, 'bytes'], flags: ['dry-run'] });
  const host = p.values.get('listen');
  const ports = parsePorts(p.values);
  const bytes = parseSize(p.values.get('bytes') ?? S.bytes);
  const problem = p.problem ?? (p.positional.length ? `unexpected argument '${p.positional[0]}'` : host === undefined ? '--listen is required'
    : !isIpv4(host) ? `--listen must be an IPv4 address, not '${host}'` : ports.problem ?? (bytes === undefined ? `--bytes must be a size like 20M, not '${p.values.get('bytes')}'` : undefined));
  if (problem || !isIpv4(host) || bytes === undefined) {
    io.err(`chimney lab peer: ${problem}\n\n${LAB_HELP}`);
    return 2;
  }
  const { sinkPort, sourcePort, controlPort } = ports;
  if (p.flags.has('dry-run')) {
    io.out(JSON.stringify({ role: 'peer', listen: host, sinkPort, sourcePort, controlPort, bytes }));
    return 0;
  }
  const stopped = stop ?? signalled();
  const events: PeerEvent[] = [];
  const controls = new Set<Socket>();
  const say = (e: PeerEvent): void => {
    events.push(e);
    const line = JSON.stringify(e);
    io.out(line);
    for (const c of controls) c.write(`${line}\n`);
  };
  const sink = createServer({ allowHalfOpen: true }, sinkHandler(say));
  const source = createServer({ allowHalfOpen: true }, sourceHandler(bytes, say));
  const control = createServer((c) => {
    // Everything reported so far, then each report as it happens.
    for (const e of events) c.write(`${JSON.stringify(e)}\n`);
    controls.add(c);
    c.on('close', () => controls.delete(c));
    c.on('error', () => undefined);
    c.resume();
  });
  const servers = [sink, source, control];
  const close = async (): Promise<void> => {
    for (const c of controls) c.destroy();
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  };
  for (const [server, port] of [[sink, sinkPort], [source, sourcePort], [control, controlPort]] as const) {
    try {
      await listen(server, host, port);
    } catch (e) {
      await close();
      const err = e as NodeJS.ErrnoException;
      const hint = err.code === 'EADDRINUSE' ? ' (another process listens there: stop it or pick other ports)'
        : err.code === 'EADDRNOTAVAIL' ? ` (no interface here has ${host}: give this network namespace or container that address)` : '';
      io.err(`chimney lab peer: cannot listen on ${host}:${port}: ${err.message}${hint}`);
      return 3;
    }
  }
  say({ event: 'listening', host, ports: [sinkPort, sourcePort, controlPort] });
  await stopped;
  await close();
  return 0;
}

// ---------------------------------------------------------------------------------------- stack

interface StackOptions {
  peer: string;
  stackIp: string;
  prefixLength: number;
  tap: string;
  controlPort: number;
  waitPeerMs: number;
}

/** The sysctls this namespace lacks, read from /proc (per network namespace). */
export function missingSysctls(): string[] {
  return Object.entries(STACK_SYSCTLS).filter(([k, v]) => {
    try {
      return readFileSync(`/proc/sys/${k.replaceAll('.', '/')}`, 'utf8').trim() !== v;
    } catch {
      return true;
    }
  }).map(([k, v]) => `${k}=${v}`);
}

/** A kernel TCP connection to the peer's control port, retried until `waitMs`; reports go to `events`. */
async function connectControl(host: string, port: number, waitMs: number, events: PeerEvents): Promise<Socket> {
  const deadline = Date.now() + waitMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const sock = await new Promise<Socket>((resolve, reject) => {
        const s = createConnection({ host, port }, () => { s.off('error', reject); resolve(s); });
        s.once('error', reject);
        s.setTimeout(5_000, () => s.destroy(new Error('connect timed out')));
      });
      sock.setTimeout(0);
      let buf = '';
      sock.setEncoding('utf8').on('data', (d: string) => {
        buf += d;
        const cut = buf.lastIndexOf('\n') + 1;
        for (const e of parsePeerEvents(buf.slice(0, cut))) events.push(e);
        buf = buf.slice(cut);
      });
      sock.on('error', () => undefined);
      sock.on('close', () => events.push({ event: 'error', where: 'control', message: `the peer closed the control connection ${host}:${port}` }));
      return sock;
    } catch (e) {
      last = (e as Error).message;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  throw new Error(`the peer's control port ${host}:${port} did not answer within ${waitMs / 1000} s (${last}); is \`chimney lab peer --listen ${host}\` running and routed?`);
}

/**
 * Proxy ARP answers broadcast requests after a random delay of up to proxy_delay (0.8 s): zero it
 * on the TAP and on the device towards the peer, so the first connection does not wait for ARP.
 * Best effort (a slow first ARP is not a failure).
 */
async function noProxyDelay(lab: Lab, tap: string, peer: string, log: Logger): Promise<void> {
  try {
    const route = await lab.exec(null, 'ip', ['-o', 'route', 'get', peer]);
    const uplink = / dev (\S+)/.exec(route.stdout)?.[1];
    for (const dev of new Set([tap, uplink ?? tap])) await lab.exec(null, 'ip', ['ntable', 'change', 'name', 'arp_cache', 'dev', dev, 'proxy_delay', '0']);
  } catch (e) {
    log.warn({ err: (e as Error).message }, 'could not zero the proxy ARP delay: the first ARP answers may take up to 0.8 s');
  }
}

/** The stack side of the compose lab: a TAP in this namespace, routed to the peer by the kernel. */
async function remotePeerTopology(o: StackOptions, pcapPath: string, log: Logger): Promise<Topology> {
  const missing = missingSysctls();
  if (missing.length) {
    throw new Error(`this network namespace needs ${missing.join(' ')} (docker-compose.yml sets them with sysctls:; elsewhere: sysctl -w ...) so the TAP's kernel side forwards to the peer`);
  }
  const events = new PeerEvents(`the Linux peer at ${o.peer}`);
  // No namespaces here: the lab tracks tcpdump and the TAP and removes them, also on Ctrl-C.
  const lab = new Lab();
  try {
    const control = await connectControl(o.peer, o.controlPort, o.waitPeerMs, events);
    lab.onTeardown(() => { control.destroy(); });
    const tap = openTapLink({ name: o.tap });
    lab.adoptDevice(tap.name);
    await lab.setLink(null, tap.name, { txqueuelen: 10_000, up: true });
    // The stack's address lives behind the TAP; proxy ARP answers for it on the peer's network.
    await lab.addRoute(null, [`${o.stackIp}/32`, 'dev', tap.name]);
    await noProxyDelay(lab, tap.name, o.peer, log);
    const stopDump = await startTcpdump(lab, null, tap.name, pcapPath);
    const dir = mkdtempSync(join(tmpdir(), 'chimney-lab-'));
    lab.onTeardown(() => rmSync(dir, { recursive: true, force: true }));
    const service = await startTargetService({ link: tap, socketPath: join(dir, 'target.sock'), logger: log.child({ component: 'target' }), interfaceMac: mac(DEFAULT_HOST_MAC) });
    lab.onTeardown(() => service.shutdown({ graceMs: 1000 }).then(() => undefined));
    const host = await connectHost({ socket: service.socketPath, address: ipv4(o.stackIp), prefixLength: o.prefixLength, gateway: ipv4(o.peer), policy: 'after-handshake', logger: log.child({ component: 'host' }) });
    lab.onTeardown(() => host.close());
    return {
      mode: 'remote', label: `Linux peer at ${o.peer}`, description: `target on TAP ${tap.name}, host stack at ${o.stackIp}, Linux peer at ${o.peer} (control port ${o.controlPort})`, host, service,
      peerResult: (event, timeoutMs) => events.wait(event, timeoutMs),
      stopCapture: stopDump,
      close: () => lab.teardown(),
    };
  } catch (e) {
    await lab.teardown().catch(() => undefined);
    throw e;
  }
}

export async function runLabStack(args: string[], io: CliIo): Promise<number> {
  const p = parseArgs(args, { values: ['peer', 'ip', 'tap', ...PORTS, 'bytes', 'cycles', 'results', 'wait-peer', 'log-level'], flags: ['dry-run'] });
  const peer = p.values.get('peer');
  const cidr = parseCidr(p.values.get('ip') ?? '');
  const tap = p.values.get('tap') ?? S.compose.tap;
  const ports = parsePorts(p.values);
  const size = parseScenarioSize(p.values.get('bytes'), p.values.get('cycles'));
  const waitPeer = Number(p.values.get('wait-peer') ?? '60');
  const level = p.values.get('log-level') ?? 'warn';
  const problem = p.problem ?? (p.positional.length ? `unexpected argument '${p.positional[0]}'`
    : peer === undefined ? '--peer is required' : !isIpv4(peer) ? `--peer must be an IPv4 address, not '${peer}'`
      : !p.values.has('ip') ? '--ip is required' : !cidr ? `--ip must be A.B.C.D/N, not '${p.values.get('ip')}'`
        : tap.length === 0 || tap.length > 15 || /[\s/:%]/.test(tap) ? `--tap must be an interface name of 1..15 characters, not '${tap}'`
          : ports.problem ?? size.problem ?? (!(waitPeer > 0) ? '--wait-peer must be a positive number of seconds'
            : !isLogLevel(level) ? `--log-level must be one of ${LOG_LEVELS.join(', ')}` : undefined));
  if (problem || !isIpv4(peer) || !cidr || size.bytes === undefined || !isLogLevel(level)) {
    io.err(`chimney lab stack: ${problem}\n\n${LAB_HELP}`);
    return 2;
  }
  const stackIp = p.values.get('ip')!.split('/')[0];
  const resultsDir = p.values.get('results') ?? 'results';
  const { sinkPort, sourcePort, controlPort } = ports;
  if (p.flags.has('dry-run')) {
    io.out(JSON.stringify({ role: 'stack', peer, ip: stackIp, prefixLength: cidr.prefixLength, tap, sinkPort, sourcePort, controlPort, bytes: size.bytes, cycles: size.cycles, results: resultsDir, waitPeerSeconds: waitPeer }));
    return 0;
  }
  const log = cliLogger({ name: 'chimney-lab', level });
  const target: PeerAddress = { ip: peer, sinkPort, sourcePort };
  const o: StackOptions = { peer, stackIp, prefixLength: cidr.prefixLength, tap, controlPort, waitPeerMs: waitPeer * 1000 };
  return runScenario({
    name: 'chimney lab stack', what: `target on TAP ${tap}, Linux peer at ${peer}`,
    bytes: size.bytes, cycles: size.cycles, resultsDir, peer: target,
    build: (pcapPath) => remotePeerTopology(o, pcapPath, log),
  }, io);
}

export async function runLab(args: string[], io: CliIo): Promise<number> {
  const [role, ...rest] = args;
  if (role === 'peer') return runLabPeer(rest, io);
  if (role === 'stack') return runLabStack(rest, io);
  io.err(`chimney lab: ${role === undefined ? 'name a role: peer or stack' : `unknown role '${role}' (peer or stack)`}\n\n${LAB_HELP}`);
  return 2;
}
