/**
 * `chimney start` (npm start): the lab scenario end to end, in sim mode everywhere and in a real
 * namespace lab as root. Checks the exit code, the report, and the results folder's contents: the
 * capture's stream digests must equal the digests both ends computed.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { parseSize } from '../../src/cli/start.js';
import { analyzePcap, verdict } from '../../src/capture/flow-analysis.js';
import { labAvailable } from '../../src/lab/availability.js';
import { SCENARIO } from '../../src/lab/scenario.js';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { tsNodeArgs } from '../../src/lab/ts-child.js';

const dir = mkdtempSync(join(tmpdir(), 'chimney-start-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { out: (s) => out.push(s), err: (s) => err.push(s) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

interface Report {
  mode: string;
  ok: boolean;
  captureNotes: string[];
  transfers: Array<{ direction: string; bytes: number; sentSha256: string; receivedSha256: string; handovers: number; localPort: number }>;
}

/** The results folder named in the output holds a capture that tells the same story as the report. */
async function checkResults(out: string, bytes: number, mode: string): Promise<void> {
  const m = /results {2}(\S+) \(/.exec(out);
  expect(m, out).not.toBeNull();
  const runDir = m![1];
  expect(runDir).toMatch(/run-\d{4}-\d\d-\d\dT/);
  const report = JSON.parse(readFileSync(join(runDir, 'report.json'), 'utf8')) as Report;
  expect(report.mode).toBe(mode);
  expect(report.ok).toBe(true);
  expect(report.transfers.map((t) => t.direction)).toEqual(['upload', 'download']);
  const analysis = await analyzePcap(join(runDir, 'wire.pcap'));
  expect(verdict(analysis).ok).toBe(true);
  for (const t of report.transfers) {
    expect(t.bytes).toBe(bytes);
    expect(t.sentSha256).toBe(t.receivedSha256);
    // Initial offload + a terminate and a re-offload per cycle (3 by default).
    expect(t.handovers).toBe(7);
    const conn = analysis.connections.find((c) => c.a.endsWith(`:${t.localPort}`));
    expect(conn, `connection from host port ${t.localPort}`).toBeDefined();
    // The scenario's addresses and ports (src/lab/scenario.ts), as the compose lab uses them.
    expect(conn!.a).toBe(`${SCENARIO.stackIp}:${t.localPort}`);
    expect(conn!.b).toBe(`${SCENARIO.peerIp}:${t.direction === 'upload' ? SCENARIO.sinkPort : SCENARIO.sourcePort}`);
    const data = t.direction === 'upload' ? conn!.ab : conn!.ba;
    // The wire carried exactly the bytes both ends hashed. tcpdump on a loaded machine may drop
    // packets (the run reports it): only then may the stream digest be unavailable.
    if (data.content.sha256 === undefined) {
      const dropped = report.captureNotes.some((n) => n.includes('tcpdump dropped'));
      console.log(`${t.direction}: stream digest unavailable (${data.content.unavailable}); run notes: ${report.captureNotes.join('; ')}`);
      expect(mode === 'namespace' && dropped, 'a stream digest may be missing only from a capture tcpdump reported incomplete').toBe(true);
    } else {
      expect(data.content.bytes).toBe(bytes);
      expect(data.content.sha256).toBe(t.sentSha256);
    }
    const svg = readFileSync(join(runDir, `${t.direction}.svg`), 'utf8');
    expect(svg.startsWith('<svg') || svg.startsWith('<?xml')).toBe(true);
    expect(svg).toContain('</svg>');
  }
}

describe('chimney start (npm start)', () => {
  it('parses sizes with K/M/G suffixes', () => {
    expect(parseSize('20M')).toBe(20 * 1024 * 1024);
    expect(parseSize('2m')).toBe(2 * 1024 * 1024);
    expect(parseSize('1500')).toBe(1500);
    expect(parseSize('1.5K')).toBe(1536);
    expect(parseSize('0')).toBeUndefined();
    expect(parseSize('lots')).toBeUndefined();
  });

  it('a bad --bytes is a usage error (exit 2) that says what is wrong', async () => {
    const r = await run(['start', '--bytes', 'lots', '--results', dir]);
    expect(r.code).toBe(2);
    expect(r.err).toContain("--bytes must be a size like 20M, not 'lots'");
  });

  it('issue 6: --sim runs both transfers with hand-overs, digests equal, capture verdict ok, results folder (exit 0)', async () => {
    const r = await run(['start', '--sim', '--bytes', '2M', '--results', join(dir, 'sim')]);
    expect(r.code, `${r.out}\n${r.err}`).toBe(0);
    expect(r.out).toContain('built sim link with an in-process peer stack');
    expect(r.out.match(/sha256 equal/g)).toHaveLength(2);
    expect(r.out).toContain('verdict ok');
    expect(r.out).toMatch(/chimney start: ok$/);
    await checkResults(r.out, 2 * 1024 * 1024, 'sim');
  }, 60_000);

  const avail = labAvailable(['ip', 'tcpdump']);
  if (!avail.ok) console.log(`skipping the namespace lab run of chimney start: ${avail.reason}`);
  it.skipIf(!avail.ok)('issue 6: as root, a real namespace lab run (--bytes 2M) completes with exit 0 and leaves no namespace or device behind', async () => {
    const r = await run(['start', '--bytes', '2M', '--results', join(dir, 'ns')]);
    expect(r.code, `${r.out}\n${r.err}`).toBe(0);
    const m = /built namespace lab (ch[0-9a-f]+):/.exec(r.out);
    expect(m, r.out).not.toBeNull();
    const id = m![1];
    expect(r.out.match(/sha256 equal/g)).toHaveLength(2);
    await checkResults(r.out, 2 * 1024 * 1024, 'namespace');
    expect(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })).not.toContain(id);
    expect(execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' })).not.toContain(id);
    expect(readdirSync(join(dir, 'ns'))).toHaveLength(1);
    expect(existsSync(join(dir, 'ns'))).toBe(true);
  }, 90_000);

  it.skipIf(!avail.ok)('issue 6: Ctrl-C (SIGINT) during a namespace lab run removes the namespace, the TAP and the peer', async () => {
    const main = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
    const child = spawn(process.execPath, [...tsNodeArgs(), main, 'start', '--bytes', '2G', '--results', join(dir, 'int')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
    child.stderr.resume();
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('close', (code, signal) => r({ code, signal })));
    try {
      const deadline = Date.now() + 60_000; // the peer role starts from TypeScript here: seconds on a loaded machine
      while (!/built namespace lab ch[0-9a-f]+/.test(out)) {
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`the lab was not built: ${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const id = /built namespace lab (ch[0-9a-f]+)/.exec(out)![1];
      expect(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })).toContain(`${id}-peer`);
      await new Promise((r) => setTimeout(r, 500)); // mid-transfer
      child.kill('SIGINT');
      const e = await exited;
      expect(e.signal === 'SIGINT' || e.code !== 0, `exit ${JSON.stringify(e)}`).toBe(true);
      expect(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })).not.toContain(id);
      expect(execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' })).not.toContain(id);
      expect(execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' })).not.toMatch(new RegExp(`tcpdump -i ${id}`));
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  }, 90_000);
});
