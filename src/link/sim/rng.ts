/**
 * Small fast seeded PRNG for simulation: sfc32 (Chris Doty-Humphrey's Small Fast Counting
 * generator, from PractRand), keyed through a murmur3-style mix. Not for cryptography.
 *
 * `fork(label)` derives a child from the parent's *key* and the label, not from its current state:
 * the child is the same whatever the parent has drawn, and forking does not advance the parent. So
 * adding an impairment (its own fork) does not shift any other random decision of a run.
 */

export type RngSeed = number | string;

const TAG_NUMBER = 0x5eed0001;
const TAG_STRING = 0x5eed0002;
const TAG_FORK = 0x5eed0003;
const TWO_POW_32 = 0x1_0000_0000;

export class Rng {
  private a = 0;
  private b = 0;
  private c = 0;
  private d = 0;
  private key: readonly number[] = [];
  /** Human-readable origin, e.g. `42/a.b/loss`: print it with a failing run. */
  private origin = '';

  /** A generator for `seed`: an integer in [0, 2^53) or a string. */
  constructor(seed: RngSeed) {
    let words: number[];
    if (typeof seed === 'number') {
      if (!Number.isSafeInteger(seed) || seed < 0) {
        throw new RangeError(`Rng seed must be a non-negative safe integer or a string, got ${seed}`);
      }
      words = [TAG_NUMBER, seed >>> 0, Math.floor(seed / TWO_POW_32) >>> 0];
    } else {
      words = [TAG_STRING, ...stringWords(seed)];
    }
    this.init(deriveKey(words), String(seed));
  }

  get path(): string {
    return this.origin;
  }

  /** Independent child stream named by `label`; same parent key + label = same stream. */
  fork(label: string): Rng {
    const child = Object.create(Rng.prototype) as Rng;
    child.init(deriveKey([TAG_FORK, ...this.key, ...stringWords(label)]), `${this.origin}/${label}`);
    return child;
  }

  private init(key: readonly number[], origin: string): void {
    // Same property order as the field declarations: one hidden class for constructed and forked.
    this.a = key[0]!;
    this.b = key[1]!;
    this.c = key[2]!;
    this.d = key[3]!;
    this.key = key;
    this.origin = origin;
    // Warm up so that nearby keys diverge before the first output.
    for (let i = 0; i < 15; i++) this.nextU32();
  }

  /** Uniform 32-bit unsigned integer. */
  nextU32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  float(): number {
    return this.nextU32() / TWO_POW_32;
  }

  /** Uniform in [lo, hi). */
  range(lo: number, hi: number): number {
    return lo + (hi - lo) * this.float();
  }

  /** Uniform integer in [0, n), n an integer in [1, 2^32]. Unbiased (rejection sampling). */
  int(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > TWO_POW_32) {
      throw new RangeError(`Rng.int: n must be an integer in [1, 2^32], got ${n}`);
    }
    const limit = TWO_POW_32 - (TWO_POW_32 % n);
    for (;;) {
      const r = this.nextU32();
      if (r < limit) return r % n;
    }
  }

  /** True with probability p. Always consumes one draw, so p does not change the stream's use. */
  chance(p: number): boolean {
    return this.float() < p;
  }
}

function stringWords(s: string): number[] {
  const words: number[] = [];
  for (let i = 0; i < s.length; i++) words.push(s.charCodeAt(i));
  words.push(s.length);
  return words;
}

/** murmur3 fmix32: a bijection on 32-bit words with full avalanche. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Four independent 32-bit hashes of the words: a 128-bit generator key. */
function deriveKey(words: readonly number[]): number[] {
  const key: number[] = [];
  for (let lane = 0; lane < 4; lane++) {
    let h = fmix32(Math.imul(lane + 1, 0x9e3779b9));
    for (const w of words) h = fmix32((h ^ w) + 0x7f4a7c15);
    key.push(h);
  }
  return key;
}
