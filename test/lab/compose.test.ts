/**
 * The docker-compose lab, checked statically (no Docker engine runs here): docker-compose accepts
 * the file; its services run exactly the role commands of src/lab/scenario.ts, with the
 * scenario's addresses and sysctls; every command and option they use is accepted by the CLI's
 * own parser (a --dry-run of each role resolves to the scenario's values); the Dockerfile's
 * entrypoint is the `chimney` command and its image has the tools the roles run.
 * test/lab/roles.test.ts runs the same two commands as processes in namespaces.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main, mainHelp } from '../../src/cli/main.js';
import { LAB_HELP, runLabPeer } from '../../src/cli/lab.js';
import { parseSize } from '../../src/cli/start.js';
import { findCommand } from '../../src/lab/availability.js';
import { PEER_SYSCTLS, peerRoleArgv, SCENARIO, STACK_SYSCTLS, stackRoleArgv } from '../../src/lab/scenario.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const composeFile = join(root, 'docker-compose.yml');
const compose = findCommand('docker-compose');
if (!compose) console.log('skipping the docker-compose validation: docker-compose is not installed (Debian: apt-get install docker-compose; CI installs it)');

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { out: (s) => out.push(s), err: (s) => err.push(s) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

interface ComposeService {
  command: string[];
  image: string;
  init?: boolean;
  cap_add?: string[];
  devices?: string[];
  sysctls?: Record<string, string | number>;
  volumes?: string[];
  depends_on?: Record<string, unknown>;
  networks: Record<string, { ipv4_address: string }>;
}
interface ComposeConfig {
  services: Record<string, ComposeService>;
  networks: Record<string, { ipam: { config: Array<{ subnet: string; gateway: string; aux_addresses?: Record<string, string> }> } }>;
}

/** `docker-compose config` (the normalized file) as JSON, read with the yaml module docker-compose itself ships. */
function composeConfig(): ComposeConfig {
  const yaml = execFileSync(compose!, ['-f', composeFile, 'config'], { cwd: root, encoding: 'utf8' });
  const python = /^#!\s*(\S+)/.exec(readFileSync(compose!, 'utf8').split('\n')[0])?.[1] ?? 'python3';
  const json = execFileSync(python, ['-c', 'import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))'], { input: yaml, encoding: 'utf8' });
  return JSON.parse(json) as ComposeConfig;
}

describe('docker-compose lab (static)', () => {
  it.skipIf(!compose)('issue 6: docker-compose -f docker-compose.yml config -q accepts the file', () => {
    const r = spawnSync(compose!, ['-f', composeFile, 'config', '-q'], { cwd: root, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
  });

  it.skipIf(!compose)('issue 6: the services run exactly the scenario roles (same commands, options and values)', () => {
    const c = composeConfig();
    expect(Object.keys(c.services).sort()).toEqual(['chimney', 'peer']);
    expect(c.services.peer.command).toEqual(peerRoleArgv());
    expect(c.services.chimney.command).toEqual(stackRoleArgv());
    for (const s of Object.values(c.services)) {
      expect(s.image).toBe('tcp-chimney:lab');
      expect(s.init).toBe(true); // node is not PID 1: signals and zombies handled by tini
    }
    expect(Object.keys(c.services.chimney.depends_on ?? {})).toEqual(['peer']);
  });

  it.skipIf(!compose)('issue 6: addresses: the peer and the chimney container on the scenario subnet, the stack address reserved', () => {
    const c = composeConfig();
    const net = SCENARIO.compose.network;
    expect(Object.keys(c.networks)).toEqual([net]);
    expect(c.networks[net].ipam.config).toEqual([{ subnet: SCENARIO.compose.subnet, gateway: SCENARIO.compose.gateway, aux_addresses: { stack: SCENARIO.stackIp } }]);
    expect(c.services.peer.networks).toEqual({ [net]: { ipv4_address: SCENARIO.peerIp } });
    expect(c.services.chimney.networks).toEqual({ [net]: { ipv4_address: SCENARIO.compose.chimneyIp } });
    expect(`${SCENARIO.stackIp}/${SCENARIO.prefixLength}`).toBe(stackRoleArgv()[stackRoleArgv().indexOf('--ip') + 1]);
  });

  it.skipIf(!compose)('issue 6: the chimney service has the TAP device, the capabilities, the sysctls and the results volume; the peer only its sysctls (orphan retries)', () => {
    const c = composeConfig();
    const ch = c.services.chimney;
    expect([...(ch.cap_add ?? [])].sort()).toEqual(['NET_ADMIN', 'NET_RAW']);
    expect(ch.devices).toEqual(['/dev/net/tun:/dev/net/tun']);
    expect(Object.fromEntries(Object.entries(ch.sysctls ?? {}).map(([k, v]) => [k, String(v)]))).toEqual(STACK_SYSCTLS);
    expect(ch.volumes?.map((v) => v.split(':')[1])).toEqual([SCENARIO.compose.results]);
    const peer = c.services.peer;
    expect(peer.cap_add ?? []).toEqual([]);
    expect(peer.devices ?? []).toEqual([]);
    expect(Object.fromEntries(Object.entries(peer.sysctls ?? {}).map(([k, v]) => [k, String(v)]))).toEqual(PEER_SYSCTLS);
  });

  it('issue 6: every role command is a chimney command and every option it uses is accepted (dry run resolves to the scenario)', async () => {
    const commands = mainHelp().split('\n').filter((l) => /^ {2}\S/.test(l)).map((l) => l.trim().split(/\s+/)[0]);
    for (const argv of [peerRoleArgv(), stackRoleArgv()]) {
      expect(commands).toContain(argv[0]);
      for (const opt of argv.filter((a) => a.startsWith('--'))) expect(LAB_HELP, `--help of ${argv.slice(0, 2).join(' ')} names ${opt}`).toContain(opt);
    }
    const peer = await run([...peerRoleArgv(), '--dry-run']);
    expect(peer.code, peer.err).toBe(0);
    expect(JSON.parse(peer.out)).toEqual({ role: 'peer', listen: SCENARIO.peerIp, sinkPort: SCENARIO.sinkPort, sourcePort: SCENARIO.sourcePort, controlPort: SCENARIO.controlPort, bytes: parseSize(SCENARIO.bytes) });
    const stack = await run([...stackRoleArgv(), '--dry-run']);
    expect(stack.code, stack.err).toBe(0);
    expect(JSON.parse(stack.out)).toEqual({
      role: 'stack', peer: SCENARIO.peerIp, ip: SCENARIO.stackIp, prefixLength: SCENARIO.prefixLength, tap: SCENARIO.compose.tap,
      sinkPort: SCENARIO.sinkPort, sourcePort: SCENARIO.sourcePort, controlPort: SCENARIO.controlPort,
      bytes: parseSize(SCENARIO.bytes), cycles: SCENARIO.cycles, results: SCENARIO.compose.results, waitPeerSeconds: 60,
    });
    expect(parseSize(SCENARIO.bytes)).toBe(20 * 1024 * 1024);
  });

  it('the role parsers reject what they do not know (so a passing dry run means something): exit 2 with the reason', async () => {
    const unknown = await run([...stackRoleArgv(), '--no-such-option', '--dry-run']);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toContain('chimney lab stack: unknown option --no-such-option');
    const port = await run([...peerRoleArgv(), '--sink-port', '70000', '--dry-run']);
    expect(port.code).toBe(2);
    expect(port.err).toContain("--sink-port must be a port 1..65535, not '70000'");
    const same = await run([...peerRoleArgv(), '--control-port', String(SCENARIO.sinkPort), '--dry-run']);
    expect(same.code).toBe(2);
    expect(same.err).toContain('the sink, source and control ports must differ');
    const ip = await run(['lab', 'stack', '--peer', SCENARIO.peerIp, '--ip', '10.77.0.2', '--dry-run']);
    expect(ip.code).toBe(2);
    expect(ip.err).toContain("--ip must be A.B.C.D/N, not '10.77.0.2'");
    const role = await run(['lab', 'router']);
    expect(role.code).toBe(2);
    expect(role.err).toContain("unknown role 'router' (peer or stack)");
    const help = await run(['lab', 'stack', '--help']);
    expect(help.code).toBe(0);
    expect(help.out).toBe(LAB_HELP);
  });

  it('chimney lab peer on an address no interface has: exit 3 and says what to do', async () => {
    const err: string[] = [];
    // 192.0.2.1 is TEST-NET-1: never local, so the bind fails before any traffic.
    const code = await runLabPeer(['--listen', '192.0.2.1', '--sink-port', '47101', '--source-port', '47102', '--control-port', '47103'], { out: () => undefined, err: (s) => err.push(s) });
    expect(code).toBe(3);
    expect(err.join('\n')).toContain('cannot listen on 192.0.2.1:47101');
    expect(err.join('\n')).toContain('no interface here has 192.0.2.1');
  });

  it('issue 6: the Dockerfile: the entrypoint is the chimney command (package.json bin), CMD is accepted, the image has the tools the roles run', async () => {
    const df = readFileSync(join(root, 'Dockerfile'), 'utf8');
    const instr = (name: string): string[] => df.split('\n').filter((l) => l.startsWith(`${name} `)).map((l) => l.slice(name.length + 1).trim());
    expect(instr('FROM')).toEqual(['node:20-bookworm-slim']);
    expect(instr('ENTRYPOINT').map((j) => JSON.parse(j) as string[])).toEqual([['chimney']]);
    const [workdir] = instr('WORKDIR');
    const bin = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { bin: Record<string, string> }).bin.chimney;
    expect(existsSync(join(root, 'src/cli/main.ts'))).toBe(true);
    expect(bin).toBe('dist/src/cli/main.js');
    // /usr/local/bin/chimney is the package's bin (main resolves the symlink to run).
    expect(df).toContain(`ln -s ${workdir}/${bin} /usr/local/bin/chimney`);
    expect(df).toContain(`chmod +x ${bin}`);
    const [cmd] = instr('CMD').map((j) => JSON.parse(j) as string[]);
    expect((await run(cmd)).code).toBe(0);
    // The build (npm ci: node-gyp) and what `chimney lab stack` runs (ip, tcpdump).
    const apt = /apt-get install -y --no-install-recommends ([^\\\n&]+)/.exec(df)?.[1].trim().split(/\s+/);
    expect(apt?.sort()).toEqual(['g++', 'iproute2', 'make', 'python3', 'tcpdump']);
    expect(df).toMatch(/RUN npm ci\b/);
    const ignore = readFileSync(join(root, '.dockerignore'), 'utf8').split('\n');
    for (const p of ['node_modules', 'dist', 'build', 'results']) expect(ignore).toContain(p);
  });
});
