/**
 * Impairments: netem where the kernel has it, and the nftables/tbf fallback (forced here so it is
 * tested on every kernel; this CI kernel has no sch_netem, where the fallback is what runs).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labAvailable, netemAvailable } from '../../src/lab/availability.js';
import { Lab } from '../../src/lab/lab.js';
import { ImpairmentError, netemArgs, nftDuplicateRuleset, nftLossRuleset, tbfArgs, validateNetem } from '../../src/lab/netem.js';

const avail = labAvailable(['ip', 'tc', 'nft', 'ping']);
if (!avail.ok) console.warn(`skipping netem lab tests: ${avail.reason}`);
const netem = avail.ok ? await netemAvailable() : false;
if (avail.ok && !netem) console.warn('skipping the real-netem test: this kernel has no sch_netem (CONFIG_NET_SCH_NETEM); the fallback tests run instead');

describe('netem argument builders', () => {
  it('maps every option to tc netem syntax', () => {
    expect(netemArgs({ delayMs: 10, jitterMs: 2, lossPct: 1, duplicatePct: 0.5, reorderPct: 25, ratekbit: 1000, limit: 5000 })).toEqual([
      'limit', '5000', 'delay', '10ms', '2ms', 'loss', '1%', 'duplicate', '0.5%', 'reorder', '25%', 'rate', '1000kbit',
    ]);
    expect(netemArgs({})).toEqual(['delay', '0ms']);
  });

  it('rejects impossible settings', () => {
    expect(() => validateNetem({ lossPct: 101 })).toThrow(/0\.\.100/);
    expect(() => validateNetem({ jitterMs: 5 })).toThrow(/need delayMs/);
    expect(() => validateNetem({ ratekbit: -1 })).toThrow(/non-negative/);
  });

  it('nftables rules: 0.01 % resolution, 100 % unconditional, duplicates marked once', () => {
    expect(nftLossRuleset('t', 'eth9', 2.5)).toContain('type filter hook ingress device "eth9" priority 0; policy accept;\n    numgen random mod 10000 < 250 counter drop');
    expect(nftLossRuleset('t', 'eth9', 100)).toMatch(/policy accept;\n {4}counter drop/);
    expect(nftDuplicateRuleset('t', 'eth9', 10)).toContain('meta mark != 4409552 numgen random mod 10000 < 1000 meta mark set 4409552 counter dup to "eth9"');
    expect(tbfArgs(1000)).toEqual(['rate', '1000kbit', 'burst', '67050', 'latency', '100ms']);
  });
});

describe.skipIf(!avail.ok)('Lab.setNetem', () => {
  let lab: Lab;
  let n1: string;
  let n2: string;
  let a: string;
  let b: string;

  beforeAll(async () => {
    lab = new Lab();
    n1 = await lab.addNamespace('x');
    n2 = await lab.addNamespace('y');
    ({ a, b } = await lab.addVeth(n1, n2));
    await lab.addAddress(n1, a, '10.206.0.1/24');
    await lab.addAddress(n2, b, '10.206.0.2/24');
  });
  afterAll(async () => {
    await lab?.teardown();
  });

  const qdisc = async (): Promise<string> => (await lab.exec(n1, 'tc', ['qdisc', 'show', 'dev', a])).stdout;
  const tables = async (ns: string): Promise<string> => (await lab.exec(ns, 'nft', ['list', 'tables'])).stdout;
  const ping = (args: string[]): Promise<{ stdout: string; stderr: string }> =>
    lab.exec(n1, 'ping', [...args, '10.206.0.2']).catch((e: { stdout: string; stderr: string }) => ({ stdout: e.stdout, stderr: e.stderr }));

  it.skipIf(!netem)('netem: delay and loss show up in `tc qdisc show` and in the RTT', async () => {
    const r = await lab.setNetem(n1, a, { delayMs: 20, lossPct: 0.5 });
    expect(r.mechanism).toBe('netem');
    expect(await qdisc()).toMatch(/netem .*delay 20ms.*loss 0\.5%/);
    const { stdout } = await ping(['-c', '2', '-i', '0.2']);
    const avg = Number(/= [\d.]+\/([\d.]+)\//.exec(stdout)![1]);
    expect(avg).toBeGreaterThanOrEqual(20);
    await lab.clearNetem(n1, a);
  });

  it('automatic choice: netem where available, else the fallback; delay without netem is a clear error', async () => {
    const r = await lab.setNetem(n1, a, { lossPct: 1 });
    expect(r.mechanism).toBe(netem ? 'netem' : 'fallback');
    if (netem) expect(await qdisc()).toContain('netem');
    else expect(r.details).toEqual([`loss: nft ingress drop on peer ${b}`]);
    if (!netem) {
      const err = await lab.setNetem(n1, a, { delayMs: 10 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ImpairmentError);
      expect((err as ImpairmentError).code).toBe('ENETEM');
      expect((err as ImpairmentError).message).toMatch(/no netem qdisc.*delayMs/);
    }
    await lab.clearNetem(n1, a);
  });

  it('fallback rate: tbf on the device', async () => {
    const r = await lab.setNetem(n1, a, { ratekbit: 2000, forceFallback: true });
    expect(r).toEqual({ mechanism: 'fallback', details: [`rate: tbf on ${a}`] });
    expect(await qdisc()).toMatch(/qdisc tbf .* rate 2Mbit burst 67050b/);
    await lab.clearNetem(n1, a);
    expect(await qdisc()).not.toContain('tbf');
  });

  it('fallback loss: silent drops at the peer ingress (no ENOBUFS for the sender), counted by nftables', async () => {
    await lab.setNetem(n1, a, { lossPct: 100, forceFallback: true });
    const all = await ping(['-c', '3', '-i', '0.2', '-W', '1']);
    expect(all.stdout).toMatch(/3 packets transmitted, 0 received/);
    expect(all.stderr).not.toMatch(/No buffer space/);
    expect((await lab.exec(n2, 'nft', ['list', 'ruleset'])).stdout).toMatch(/counter packets ([3-9]|\d{2,}) bytes \d+ drop/);

    await lab.setNetem(n1, a, { lossPct: 50, forceFallback: true });
    // 400 UDP datagrams (ARP pinned, so only they cross the rule); ping is no good here, it slows
    // down when replies go missing.
    const mac = (JSON.parse((await lab.exec(n2, 'ip', ['-j', 'link', 'show', b])).stdout) as Array<{ address: string }>)[0]!.address;
    await lab.exec(n1, 'ip', ['neigh', 'replace', '10.206.0.2', 'lladdr', mac, 'dev', a, 'nud', 'permanent']);
    const sink = lab.spawn(n2, 'python3', [
      '-u',
      '-c',
      [
        'import socket',
        's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
        's.bind(("10.206.0.2", 9000))',
        'print("ready", flush=True)',
        's.settimeout(5)',
        'n = 0',
        'try:',
        '    while True:',
        '        s.recv(100)',
        '        n += 1',
        '        s.settimeout(1)',
        'except socket.timeout:',
        '    print("count", n, flush=True)',
      ].join('\n'),
    ]);
    await sink.waitForOutput(/ready/);
    await lab.exec(n1, 'python3', ['-c', 'import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nfor i in range(400): s.sendto(b"x", ("10.206.0.2", 9000))']);
    const [, count] = await sink.waitForOutput(/count (\d+)/);
    // binomial(400, 0.5): outside 120..280 is 8 standard deviations away
    expect(Number(count)).toBeGreaterThan(120);
    expect(Number(count)).toBeLessThan(280);
    await lab.clearNetem(n1, a);
    expect(await tables(n2)).toBe('');
    expect((await ping(['-c', '1', '-W', '1'])).stdout).toMatch(/1 received/);
  });

  it('fallback duplication: copies on the wire, each duplicated once', async () => {
    await lab.setNetem(n1, a, { duplicatePct: 100, forceFallback: true });
    const { stdout } = await ping(['-c', '3', '-i', '0.2']);
    expect(stdout).toMatch(/3 received, \+[1-3] duplicates/);
    await lab.clearNetem(n1, a);
    expect(await tables(n1)).toBe('');
  });

  it('fallback refuses what it cannot emulate', async () => {
    await expect(lab.setNetem(n1, a, { delayMs: 5, forceFallback: true })).rejects.toThrow(/fallback was forced, so delayMs cannot be emulated/);
  });
});
