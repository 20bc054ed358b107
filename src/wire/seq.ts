/**
 * Sequence-number arithmetic modulo 2^32 (RFC 9293 section 3.4). All sequence numbers are plain
 * JS numbers kept in [0, 2^32). Comparisons are valid while the two numbers are less than 2^31 apart.
 */

/** Normalise any integer to [0, 2^32). */
export function seq32(n: number): number {
  return n >>> 0;
}

/** a + n mod 2^32 (n may be negative). */
export function seqAdd(a: number, n: number): number {
  return (a + n) >>> 0;
}

/** Signed distance b - a in (-2^31, 2^31]: positive when b is after a. */
export function seqDiff(b: number, a: number): number {
  return (b - a) | 0;
}

export function seqLt(a: number, b: number): boolean {
  return ((a - b) | 0) < 0;
}

export function seqLe(a: number, b: number): boolean {
  return ((a - b) | 0) <= 0;
}

export function seqGt(a: number, b: number): boolean {
  return ((a - b) | 0) > 0;
}

export function seqGe(a: number, b: number): boolean {
  return ((a - b) | 0) >= 0;
}

export function seqMax(a: number, b: number): number {
  return seqGe(a, b) ? a : b;
}

export function seqMin(a: number, b: number): number {
  return seqLe(a, b) ? a : b;
}

/** lo <= x < hi, mod 2^32. */
export function seqInRange(x: number, lo: number, hi: number): boolean {
  return seqLe(lo, x) && seqLt(x, hi);
}
