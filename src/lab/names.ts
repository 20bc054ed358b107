/** Unique short names so labs of parallel test files never collide. */
import { randomBytes } from 'node:crypto';

/** Linux interface names have at most 15 characters (IFNAMSIZ - 1). */
export const IFNAME_MAX = 15;

/** 'ch' + 6 random hex characters: 8 characters, leaving 7 for a device suffix. */
export function newLabId(): string {
  return `ch${randomBytes(3).toString('hex')}`;
}

export function checkIfName(name: string): string {
  if (name.length === 0 || name.length > IFNAME_MAX) {
    throw new RangeError(`interface name '${name}' must have 1..${IFNAME_MAX} characters`);
  }
  if (/[\s/:]/.test(name) || name === '.' || name === '..') {
    throw new RangeError(`interface name '${name}' may not contain whitespace, '/' or ':'`);
  }
  return name;
}
