/** A child process started by a lab: output captured, waitable, killed by PID at teardown. */
import type { ChildProcess } from 'node:child_process';

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

const MAX_CAPTURE = 16 * 1024 * 1024;

export class LabProcess {
  readonly pid: number;
  stdout = '';
  stderr = '';
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<ProcessExit>;
  private exit: ProcessExit | undefined;
  private readonly waiters = new Set<() => void>();

  constructor(
    readonly child: ChildProcess,
    readonly argv: readonly string[],
  ) {
    if (child.pid === undefined) throw new Error(`could not start: ${argv.join(' ')}`);
    this.pid = child.pid;
    child.stdout?.setEncoding('utf8');
    child.stderr?.setEncoding('utf8');
    child.stdout?.on('data', (d: string) => this.append('stdout', d));
    child.stderr?.on('data', (d: string) => this.append('stderr', d));
    this.exited = new Promise((resolve) => {
      child.once('close', (code, signal) => {
        this.exit = { code, signal };
        this.notify();
        resolve(this.exit);
      });
    });
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  private append(which: 'stdout' | 'stderr', d: string): void {
    if (this[which].length < MAX_CAPTURE) this[which] += d;
    this.notify();
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Waits until stdout or stderr matches (e.g. tcpdump's "listening on"); rejects on exit/timeout. */
  waitForOutput(pattern: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const m = this.stdout.match(pattern) ?? this.stderr.match(pattern);
        if (m) {
          done();
          resolve(m);
          return true;
        }
        if (this.exit) {
          done();
          reject(new Error(`${this.argv.join(' ')} exited (${this.exit.code ?? this.exit.signal}) before printing ${pattern}\n${this.stderr}`));
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${pattern} from ${this.argv.join(' ')}\n${this.stderr}`));
      }, timeoutMs);
      const waiter = (): void => void check();
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
      };
      this.waiters.add(waiter);
      check();
    });
  }

  /** SIGTERM (or `signal`), then SIGKILL after graceMs; resolves once the process is gone. */
  async kill(signal: NodeJS.Signals = 'SIGTERM', graceMs = 2_000): Promise<ProcessExit> {
    if (this.exit) return this.exit;
    try {
      process.kill(this.pid, signal);
    } catch {
      // already gone
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((r) => {
      timer = setTimeout(() => r('timeout'), graceMs);
    });
    const first = await Promise.race([this.exited, timeout]);
    clearTimeout(timer);
    if (first === 'timeout') {
      try {
        process.kill(this.pid, 'SIGKILL');
      } catch {
        // already gone
      }
      return this.exited;
    }
    return first;
  }

  /** For process 'exit' handlers, where nothing asynchronous runs any more. */
  killSync(): void {
    if (this.exit) return;
    try {
      process.kill(this.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}
