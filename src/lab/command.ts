/**
 * Running the lab's tools (`ip`, `tc`, `nft`, ...) without a shell: argv arrays only, so names
 * and addresses can never be interpreted as shell syntax.
 */
import { execFile, spawnSync } from 'node:child_process';

export interface CommandResult {
  stdout: string;
  stderr: string;
}

export interface CommandOptions {
  /** Written to the command's stdin (e.g. an `nft -f -` ruleset). */
  input?: string;
  timeoutMs?: number;
}

/** A command that exited non-zero (or could not start); carries what it printed. */
export class CommandError extends Error {
  constructor(
    readonly argv: readonly string[],
    readonly exitCode: number | null,
    readonly stdout: string,
    readonly stderr: string,
    cause?: unknown,
  ) {
    super(`command failed (${exitCode ?? 'no exit code'}): ${argv.join(' ')}${stderr.trim() ? `\n${stderr.trim()}` : ''}`, { cause });
    this.name = 'CommandError';
  }
}

export function runCommand(cmd: string, args: readonly string[], opts: CommandOptions = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      { timeout: opts.timeoutMs ?? 30_000, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (err) {
          const code = typeof (err as NodeJS.ErrnoException).code === 'number' ? ((err as unknown as { code: number }).code) : null;
          reject(new CommandError([cmd, ...args], code, stdout, stderr || err.message, err));
        } else {
          resolve({ stdout, stderr });
        }
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Synchronous variant for `process.on('exit')`, where nothing asynchronous runs any more. */
export function runCommandSync(cmd: string, args: readonly string[], opts: CommandOptions = {}): CommandResult {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: opts.timeoutMs ?? 10_000, input: opts.input });
  if (r.error || r.status !== 0) {
    throw new CommandError([cmd, ...args], r.status, r.stdout ?? '', r.stderr || (r.error?.message ?? ''), r.error);
  }
  return { stdout: r.stdout, stderr: r.stderr };
}

/** argv that runs `cmd` inside network namespace `ns` (null: the caller's own namespace). */
export function inNamespace(ns: string | null, cmd: string, args: readonly string[]): [string, string[]] {
  return ns === null ? [cmd, [...args]] : ['ip', ['netns', 'exec', ns, cmd, ...args]];
}

/** True for the errors teardown expects when something is already gone. */
export function isAlreadyGone(err: unknown): boolean {
  if (!(err instanceof CommandError)) return false;
  return /Cannot find device|No such file or directory|does not exist|Cannot open network namespace|No such process|Invalid argument.*(netns|namespace)/i.test(err.stderr);
}
