/** Socket errors shaped like Node's (`code`, `errno`, `syscall`, `address`, `port`). */
import { constants } from 'node:os';

export type SocketErrorCode = 'ECONNREFUSED' | 'ECONNRESET' | 'ETIMEDOUT' | 'EPIPE' | 'EADDRINUSE' | 'EHOSTUNREACH';

export interface SocketError extends Error {
  code: SocketErrorCode;
  errno: number;
  syscall: string;
  address?: string;
  port?: number;
}

export function socketError(code: SocketErrorCode, syscall: string, address?: string, port?: number): SocketError {
  const where = address === undefined ? '' : port === undefined ? ` ${address}` : ` ${address}:${port}`;
  const err = new Error(`${syscall} ${code}${where}`) as SocketError;
  err.code = code;
  err.errno = -(constants.errno[code] ?? 0);
  err.syscall = syscall;
  if (address !== undefined) err.address = address;
  if (port !== undefined) err.port = port;
  return err;
}
