/** Errors the IPC layer hands to its users (all carry a reason a person can read). */
import { statusName } from '../chimney/status.js';

/** The binding closed before the awaited answer arrived. */
export class IpcClosedError extends Error {
  constructor(reason: string) {
    super(`IPC connection closed: ${reason}`);
    this.name = 'IpcClosedError';
  }
}

/** The hello exchange failed: version or role mismatch, a peer Error, or no hello in time. */
export class IpcHandshakeError extends Error {
  constructor(readonly problem: string) {
    super(`IPC handshake failed: ${problem}`);
    this.name = 'IpcHandshakeError';
  }
}

/** The peer answered a request with an `Error` message instead of its completion. */
export class IpcRemoteError extends Error {
  constructor(readonly status: number, readonly problem: string) {
    super(`${statusName(status)}: ${problem}`);
    this.name = 'IpcRemoteError';
  }
}
