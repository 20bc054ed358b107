/**
 * Ctrl-C of `chimney lab stack` mid-transfer (what `docker-compose down` or a terminal does): the
 * role removes its TAP and stops its tcpdump. Same namespace wiring as roles.test.ts.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { chimneyArgv } from '../../src/cli/start.js';
import { labAvailable } from '../../src/lab/availability.js';
import { Lab } from '../../src/lab/lab.js';
import { composeNamespaces } from '../support/compose-namespaces.js';
import { peerRoleArgv, SCENARIO, stackRoleArgv } from '../../src/lab/scenario.js';

const dir = mkdtempSync(join(tmpdir(), 'chimney-roles-signal-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const avail = labAvailable(['ip', 'tcpdump', 'sysctl']);
if (!avail.ok) console.log(`skipping Ctrl-C of chimney lab stack: ${avail.reason}`);

describe('chimney lab stack, interrupted', () => {
  it.skipIf(!avail.ok)('issue 6: SIGINT during the transfer: the stack role exits, its TAP and tcpdump are gone from its namespace', async () => {
    const lab = new Lab();
    try {
      const { chim, peerNs } = await composeNamespaces(lab);
      const peer = lab.spawn(peerNs, process.execPath, [...chimneyArgv(), ...peerRoleArgv(), '--bytes', '2G']);
      await peer.waitForOutput(/"event":"listening"/, 30_000);
      const stack = lab.spawn(chim, process.execPath, [...chimneyArgv(), ...stackRoleArgv(), '--bytes', '2G', '--results', dir]);
      await stack.waitForOutput(new RegExp(`built target on TAP ${SCENARIO.compose.tap}`), 45_000);
      expect(execFileSync('ip', ['-n', chim, '-o', 'link', 'show'], { encoding: 'utf8' })).toContain(SCENARIO.compose.tap);
      const inside = execFileSync('ip', ['netns', 'pids', chim], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
      expect(inside.length, 'the stack and its tcpdump run in the namespace').toBeGreaterThanOrEqual(2);
      await new Promise((r) => setTimeout(r, 500)); // mid-transfer
      process.kill(stack.pid, 'SIGINT');
      const exit = await Promise.race([stack.exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 20_000))]);
      expect(exit === 'timeout' ? exit : exit.signal === 'SIGINT' || exit.code !== 0, JSON.stringify(exit)).toBe(true);
      expect(execFileSync('ip', ['-n', chim, '-o', 'link', 'show'], { encoding: 'utf8' })).not.toContain(SCENARIO.compose.tap);
      expect(execFileSync('ip', ['netns', 'pids', chim], { encoding: 'utf8' }).trim(), 'no process left in the stack namespace').toBe('');
    } finally {
      await lab.teardown();
    }
  }, 90_000);
});
