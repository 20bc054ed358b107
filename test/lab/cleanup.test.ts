/**
 * The safety net: a process that built a lab and then is interrupted (SIGINT), exits without
 * tearing down, or crashes, still removes its namespaces, devices and processes.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { labAvailable } from '../../src/lab/availability.js';
import { runCommand } from '../../src/lab/command.js';
import { Lab } from '../../src/lab/lab.js';
import { tsNodeArgs } from '../../src/lab/ts-child.js';

const avail = labAvailable(['ip']);
if (!avail.ok) console.warn(`skipping lab cleanup tests: ${avail.reason}`);

const LAB_TS = fileURLToPath(new URL('../../src/lab/lab.ts', import.meta.url));

const childScript = (mode: 'wait' | 'exit' | 'crash'): string => `
const { Lab } = await import(${JSON.stringify(LAB_TS)});
const lab = new Lab();
const ns = await lab.addNamespace('sig');
const { a } = await lab.addVeth(null, ns);
const p = lab.spawn(ns, 'sleep', ['600']);
console.log(JSON.stringify({ id: lab.id, ns, dev: a, pid: p.pid }));
if (${JSON.stringify(mode)} === 'exit') process.exit(0);
if (${JSON.stringify(mode)} === 'crash') setTimeout(() => { throw new Error('boom'); }, 10);
else setInterval(() => {}, 1000);
`;

/** Running, not merely a zombie waiting for init (orphans of the exited child) to reap it. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

describe.skipIf(!avail.ok)('lab cleanup on interrupt and exit', () => {
  const parent = new Lab(); // tracks the child processes, in case a check fails
  afterAll(async () => {
    await parent.teardown();
  });

  for (const mode of ['wait', 'exit', 'crash'] as const) {
    const what = { wait: 'SIGINT', exit: 'process.exit() without teardown', crash: 'an uncaught exception' }[mode];
    it(`removes namespace, device and processes after ${what}`, async () => {
      const child = parent.spawn(null, process.execPath, [...tsNodeArgs(), '--input-type=module', '-e', childScript(mode)]);
      const [line] = await child.waitForOutput(/\{.*\}/, 20_000);
      const made = JSON.parse(line) as { id: string; ns: string; dev: string; pid: number };
      if (mode === 'wait') {
        expect(alive(made.pid)).toBe(true);
        expect((await runCommand('ip', ['netns', 'list'])).stdout).toContain(made.ns);
        const exit = await child.kill('SIGINT', 15_000);
        expect(exit.signal).toBe('SIGINT'); // re-raised after cleanup: ends like an unhandled Ctrl-C
      } else {
        const exit = await child.exited;
        expect(exit.code).toBe(mode === 'exit' ? 0 : 1);
      }
      expect((await runCommand('ip', ['netns', 'list'])).stdout).not.toContain(made.ns);
      expect((await runCommand('ip', ['-br', 'link'])).stdout).not.toContain(made.dev);
      expect(alive(made.pid)).toBe(false);
    });
  }
});
