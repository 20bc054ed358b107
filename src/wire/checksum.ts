/**
 * RFC 1071 internet checksum, pseudo-header sums (RFC 9293 3.1, RFC 8200 8.1) and incremental
 * update (RFC 1624).
 *
 * Sums are ones'-complement sums of big-endian 16-bit words. The core loop reads aligned 32-bit
 * words in host byte order and byte-swaps the folded result once at the end (RFC 1071 2(B): the
 * sum is byte-order independent up to a final swap).
 */

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// One Uint32Array view per ArrayBuffer, reused while callers keep checksumming the same receive /
// send buffer (the common case), so the hot path does not allocate a view per call. The view
// identity check in front saves the `.buffer` getter (~30 ns, not inlined by V8) on repeats.
let lastView: Uint8Array | null = null;
let cachedBuffer: ArrayBufferLike | null = null;
let cachedWords: Uint32Array = new Uint32Array(0);

function wordsCovering(buf: Uint8Array, wordEnd: number): Uint32Array {
  if (buf !== lastView || wordEnd > cachedWords.length) {
    const ab = buf.buffer;
    // A grown resizable buffer (or a shrunk one, whose fixed view then reads as length 0) fails
    // the coverage check and gets a fresh view.
    if (ab !== cachedBuffer || wordEnd > cachedWords.length) {
      cachedBuffer = ab;
      cachedWords = new Uint32Array(ab, 0, ab.byteLength >>> 2);
    }
    lastView = buf;
  }
  return cachedWords;
}

/** Below this many bytes a plain byte loop beats setting up the word view. */
const WORD_PATH_MIN_LENGTH = 64;

function sumBytes(buf: Uint8Array, offset: number, length: number): number {
  let hi = 0;
  let lo = 0;
  let i = offset;
  const end = offset + length;
  for (; i + 1 < end; i += 2) {
    hi += buf[i]!;
    lo += buf[i + 1]!;
  }
  if (i < end) hi += buf[i]!;
  return hi * 256 + lo;
}

/** Fold any non-negative sum (< 2^53) to 16 bits with end-around carry. */
export function foldSum(sum: number): number {
  // 2^32 == 1 (mod 0xffff): fold doubles to 32 bits first, then use int ops (a double `%` is slow).
  if (sum > 0xffffffff) {
    sum = (sum >>> 0) + Math.floor(sum / 4294967296);
    if (sum > 0xffffffff) sum = (sum >>> 0) + 1;
  }
  sum = (sum >>> 16) + (sum & 0xffff);
  return (sum >>> 16) + (sum & 0xffff);
}

function swap16(x: number): number {
  return ((x & 0xff) << 8) | (x >>> 8);
}

/**
 * Ones'-complement sum of `buf[offset .. offset+length)` as big-endian 16-bit words (an odd last
 * byte is padded with zero), plus `initial` (another such sum, e.g. a pseudo-header sum, which may
 * be unfolded). Returns the folded 16-bit sum, not complemented. The range must lie inside `buf`.
 */
export function onesComplementSum(buf: Uint8Array, offset = 0, length = buf.length - offset, initial = 0): number {
  if (length <= 0) return foldSum(initial);
  if (length < WORD_PATH_MIN_LENGTH) return foldSum(sumBytes(buf, offset, length) + initial);
  const abs = buf.byteOffset + offset;
  // Memory-order sum: byte at absolute address a weighs 2^(8*(a & 1)) on a little-endian host, the
  // same weight it has inside the 32-bit word reads (mod 0xffff, since 2^16 == 1).
  let mem = 0;
  let pos = abs;
  const end = abs + length;
  const base = buf.byteOffset;
  const big = HOST_LITTLE_ENDIAN ? 0 : 1;
  // Head: up to 3 bytes until 4-byte alignment.
  while (pos < end && (pos & 3) !== 0) {
    mem += buf[pos - base]! << ((((pos & 1) ^ big)) << 3);
    pos++;
  }
  const wordStart = pos >>> 2;
  const wordEnd = (end - pos) >= 4 ? (end >>> 2) : wordStart;
  if (wordEnd > wordStart) {
    const words = wordsCovering(buf, wordEnd);
    let a = 0;
    let b = 0;
    let i = wordStart;
    const unrolledEnd = wordEnd - ((wordEnd - wordStart) & 3);
    // Doubles are exact to 2^53; per 256 Ki-word chunk each accumulator takes 2^17 words < 2^32,
    // so folding once per chunk keeps the sums exact.
    while (i < unrolledEnd) {
      const stop = Math.min(unrolledEnd, i + 0x40000);
      for (; i < stop; i += 4) {
        a += words[i]! + words[i + 2]!;
        b += words[i + 1]! + words[i + 3]!;
      }
      a = foldSum(a);
      b = foldSum(b);
    }
    for (; i < wordEnd; i++) a += words[i]!;
    mem += a + b;
    pos = wordEnd << 2;
  }
  // Tail: up to 3 bytes.
  while (pos < end) {
    mem += buf[pos - base]! << ((((pos & 1) ^ big)) << 3);
    pos++;
  }
  mem = foldSum(mem);
  // Memory-order words are byte-swapped relative to big-endian words starting at `abs` exactly
  // when host order and start parity disagree.
  const swap = HOST_LITTLE_ENDIAN ? (abs & 1) === 0 : (abs & 1) === 1;
  if (swap) mem = swap16(mem);
  return foldSum(mem + initial);
}

/** The RFC 1071 checksum of a range: the complement of its ones'-complement sum plus `initial`. */
export function internetChecksum(buf: Uint8Array, offset = 0, length = buf.length - offset, initial = 0): number {
  return ~onesComplementSum(buf, offset, length, initial) & 0xffff;
}

/** True when a range that contains its own checksum field (plus `initial`) sums to 0xffff. */
export function checksumValid(buf: Uint8Array, offset = 0, length = buf.length - offset, initial = 0): boolean {
  return onesComplementSum(buf, offset, length, initial) === 0xffff;
}

/**
 * IPv4 pseudo-header sum (unfolded). Pass `length` 0 to get a per-connection base that
 * `parseTcp`/`buildTcp` complete with the segment length.
 */
export function pseudoHeaderSumV4(src: number, dst: number, protocol: number, length: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + protocol + length;
}

/** IPv6 pseudo-header sum (unfolded); `src`/`dst` are 16-byte addresses. See pseudoHeaderSumV4. */
export function pseudoHeaderSumV6(src: Uint8Array, dst: Uint8Array, protocol: number, length: number): number {
  let sum = protocol + (length >>> 16) + (length & 0xffff);
  for (let i = 0; i < 16; i += 2) {
    sum += ((src[i]! << 8) | src[i + 1]!) + ((dst[i]! << 8) | dst[i + 1]!);
  }
  return sum;
}

/** RFC 1624 eqn. 3: the checksum after one 16-bit word changes from `oldWord` to `newWord`. */
export function checksumAdjust16(checksum: number, oldWord: number, newWord: number): number {
  return ~foldSum((~checksum & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff)) & 0xffff;
}

/** RFC 1624 for a 32-bit field (e.g. an IPv4 address or a sequence number). */
export function checksumAdjust32(checksum: number, oldValue: number, newValue: number): number {
  const sum = (~checksum & 0xffff)
    + (~(oldValue >>> 16) & 0xffff) + (~oldValue & 0xffff)
    + ((newValue >>> 16) & 0xffff) + (newValue & 0xffff);
  return ~foldSum(sum) & 0xffff;
}
