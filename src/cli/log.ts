/**
 * The CLI's pino logger: JSON lines when stderr is not a terminal (scripts, CI), pino-pretty lines
 * on a terminal (local time, colour when the terminal has it). Logs go to stderr so stdout stays
 * the command's own output (reports, tables).
 */
import { Writable } from 'node:stream';
import pino, { type Logger } from 'pino';
import { prettyFactory } from 'pino-pretty';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function isLogLevel(s: string): s is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(s);
}

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const OMIT = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'name']);

/**
 * One JSON log line as `HH:MM:SS.mmm LEVEL name: msg key=value ...` (UTC).
 * @deprecated cliLogger formats with pino-pretty; only test/cli/target-host.test.ts still uses this.
 */
export function prettyLine(json: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const t = typeof o.time === 'number' ? new Date(o.time).toISOString().slice(11, 23) : '';
  const lvl = LEVEL_NAMES[o.level as number] ?? String(o.level);
  const fields = Object.entries(o).filter(([k]) => !OMIT.has(k)).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
  return `${t} ${lvl.padEnd(5)} ${o.name ? `${String(o.name)}: ` : ''}${String(o.msg ?? '')}${fields.length ? ` ${fields.join(' ')}` : ''}`;
}

export interface CliLoggerOptions {
  name: string;
  level?: LogLevel;
  /** Force readable lines (true) or JSON (false); default: readable when stderr is a TTY. */
  pretty?: boolean;
  /** Colour in readable lines; default: when they go to process.stderr and it has colours (NO_COLOR / FORCE_COLOR respected). */
  colorize?: boolean;
  /** Where lines go (default process.stderr). */
  write?: (line: string) => void;
}

/** pino-pretty on one line per record: `[HH:MM:ss.mmm] LEVEL (name): msg {fields}`, local time. */
function prettyFormatter(colorize: boolean): (line: string) => string {
  return prettyFactory({ colorize, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', singleLine: true });
}

export function cliLogger(o: CliLoggerOptions): Logger {
  const pretty = o.pretty ?? process.stderr.isTTY === true;
  const write = o.write ?? ((s: string) => { process.stderr.write(s); });
  const format = pretty ? prettyFormatter(o.colorize ?? (o.write === undefined && process.stderr.hasColors?.() === true)) : undefined;
  let pending = '';
  const dest = new Writable({
    write(chunk: Buffer, _enc, cb) {
      pending += chunk.toString('utf8');
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        // pino-pretty ends its line with the EOL already.
        write(format ? format(line) : `${line}\n`);
      }
      cb();
    },
  });
  return pino({ name: o.name, level: o.level ?? 'info', base: { pid: process.pid } }, dest);
}
