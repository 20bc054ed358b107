/**
 * Initial sequence numbers per RFC 6528: ISN = M + F(localip, localport, remoteip, remoteport,
 * secretkey), with M a 4-microsecond timer. node:crypto is a pure computation here, not I/O.
 */
import { createHash, randomBytes } from 'node:crypto';

const TWO_32 = 2 ** 32;

/** A fresh secret key for F; keep one per host stack and reuse it for all connections. */
export function randomIsnSecret(): Uint8Array {
  return new Uint8Array(randomBytes(16));
}

/**
 * @param nowMs clock in ms (any origin; only differences matter to the peer)
 * @param secret key for F, e.g. from randomIsnSecret()
 * @returns ISN in [0, 2^32)
 */
export function generateIsn(
  nowMs: number,
  secret: Uint8Array,
  localAddr: Uint8Array,
  localPort: number,
  remoteAddr: Uint8Array,
  remotePort: number,
): number {
  // M ticks every 4 us: 250 ticks per ms, wrapping mod 2^32.
  const m = ((Math.floor(nowMs * 250) % TWO_32) + TWO_32) % TWO_32;
  const ports = new Uint8Array(4);
  const pv = new DataView(ports.buffer);
  pv.setUint16(0, localPort & 0xffff);
  pv.setUint16(2, remotePort & 0xffff);
  const digest = createHash('sha256')
    .update(secret)
    .update(localAddr)
    .update(ports.subarray(0, 2))
    .update(remoteAddr)
    .update(ports.subarray(2, 4))
    .digest();
  const f = digest.readUInt32BE(0);
  return (m + f) >>> 0;
}
