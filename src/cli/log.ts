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
