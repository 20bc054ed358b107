/**
 * The benchmark's byte stream: an AES-128-CTR keystream from a seed. Cheap to make (AES-NI) and
 * never periodic, so a stack that drops, duplicates or reorders any chunk changes the digest.
 */
import { createCipheriv, createHash } from 'node:crypto';

/** `bytes` bytes of the keystream for `seed` (the same seed gives the same bytes in every process). */
export function benchStream(bytes: number, seed: string): Buffer {
  const key = createHash('sha256').update(`tcp-chimney bench ${seed}`).digest();
  const cipher = createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32));
  return cipher.update(Buffer.alloc(bytes));
}

export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** CPU time (user + system) in milliseconds since `since` (a process.cpuUsage() value). */
export function cpuMsSince(since: NodeJS.CpuUsage): { userMs: number; systemMs: number } {
  const d = process.cpuUsage(since);
  return { userMs: d.user / 1000, systemMs: d.system / 1000 };
}
