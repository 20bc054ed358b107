import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { sweepStaleHookDirs } from '../../src/lab/ts-child.js';

const made: string[] = [];
afterEach(() => { for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true }); });

describe('TypeScript child hooks folder', () => {
  it('a folder left by a process that is gone is removed; a running process keeps its own', () => {
    const exited = spawnSync(process.execPath, ['-e', '0']);
    const deadPid = exited.pid!; // finished and reaped: no process has this pid now (unless reused at once)
    const dead = join(tmpdir(), `chimney-ts-hooks-${deadPid}`);
    const alive = join(tmpdir(), `chimney-ts-hooks-${process.ppid}`);
    for (const d of [dead, alive]) {
      if (existsSync(d)) continue; // never remove a folder this test did not make
      mkdirSync(d, { recursive: true });
      made.push(d);
    }
    sweepStaleHookDirs();
    expect(existsSync(dead)).toBe(false);
    expect(existsSync(alive)).toBe(true);
  });
});
