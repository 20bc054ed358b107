/**
 * Address helpers. IPv4 addresses are u32 numbers (cheap map keys), IPv6 addresses 16-byte
 * Uint8Arrays, MAC addresses 6-byte Uint8Arrays. `parse*Address` return undefined on bad text; the short
 * forms `ipv4()`, `ipv6()`, `mac()` throw and are meant for constants and configuration.
 */

export const BROADCAST_MAC: Uint8Array = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
export const ZERO_MAC: Uint8Array = new Uint8Array(6);

const HEX = '0123456789abcdef';

function hex2(b: number): string {
  return HEX[b >>> 4]! + HEX[b & 15]!;
}

export function macToString(mac: Uint8Array, offset = 0): string {
  let s = hex2(mac[offset]!);
  for (let i = 1; i < 6; i++) s += ':' + hex2(mac[offset + i]!);
  return s;
}

/** Accepts `aa:bb:cc:dd:ee:ff` or `aa-bb-...` (case-insensitive, two hex digits per byte). */
export function parseMacAddress(text: string): Uint8Array | undefined {
  const m = /^([0-9a-f]{2})([:-])([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})$/i.exec(text);
  if (!m) return undefined;
  const out = new Uint8Array(6);
  for (let i = 0; i < 6; i++) out[i] = parseInt(m[i === 0 ? 1 : i + 2]!, 16);
  return out;
}

export function mac(text: string): Uint8Array {
  const m = parseMacAddress(text);
  if (!m) throw new RangeError(`not a MAC address: ${JSON.stringify(text)}`);
  return m;
}

export function macEquals(a: Uint8Array, b: Uint8Array): boolean {
  return a[0] === b[0] && a[1] === b[1] && a[2] === b[2] && a[3] === b[3] && a[4] === b[4] && a[5] === b[5];
}

export function isBroadcastMac(m: Uint8Array): boolean {
  return (m[0]! & m[1]! & m[2]! & m[3]! & m[4]! & m[5]!) === 0xff;
}

/** Group bit: broadcast and multicast. */
export function isMulticastMac(m: Uint8Array): boolean {
  return (m[0]! & 1) === 1;
}

export function ipv4ToString(addr: number): string {
  return `${addr >>> 24}.${(addr >>> 16) & 255}.${(addr >>> 8) & 255}.${addr & 255}`;
}

/** Dotted quad, exactly four decimal parts 0..255 without leading zeros. */
export function parseIpv4Address(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const p of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
    const v = Number(p);
    if (v > 255) return undefined;
    n = n * 256 + v;
  }
  return n;
}

export function ipv4(text: string): number {
  const n = parseIpv4Address(text);
  if (n === undefined) throw new RangeError(`not an IPv4 address: ${JSON.stringify(text)}`);
  return n;
}

export function readIpv4(buf: Uint8Array, offset: number): number {
  return ((buf[offset]! << 24) | (buf[offset + 1]! << 16) | (buf[offset + 2]! << 8) | buf[offset + 3]!) >>> 0;
}

export function writeIpv4(buf: Uint8Array, offset: number, addr: number): void {
  buf[offset] = addr >>> 24;
  buf[offset + 1] = addr >>> 16;
  buf[offset + 2] = addr >>> 8;
  buf[offset + 3] = addr;
}

/** RFC 5952 canonical text: lower case, longest run (>= 2) of zero groups compressed, first wins. */
export function ipv6ToString(addr: Uint8Array, offset = 0): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((addr[offset + 2 * i]! << 8) | addr[offset + 2 * i + 1]!);
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = (from: number, to: number): string => g.slice(from, to).map((x) => x.toString(16)).join(':');
  if (bestStart < 0) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLen, 8)}`;
}

/** Text form of RFC 4291 2.2 (hex groups, one `::`, optional trailing dotted quad); no zone id. */
export function parseIpv6Address(text: string): Uint8Array | undefined {
  let head = text;
  let tailV4: number | undefined;
  const lastColon = text.lastIndexOf(':');
  if (lastColon >= 0 && text.indexOf('.', lastColon) >= 0) {
    tailV4 = parseIpv4Address(text.slice(lastColon + 1));
    if (tailV4 === undefined) return undefined;
    const prefix = text.slice(0, lastColon + 1);
    // "::1.2.3.4" keeps its "::"; "a:b:...:f:1.2.3.4" drops the separator before the quad.
    head = prefix.endsWith('::') ? prefix : text.slice(0, lastColon);
  }
  const maxGroups = tailV4 === undefined ? 8 : 6;
  const halves = head.split('::');
  if (halves.length > 2) return undefined;
  const parseGroups = (s: string): number[] | undefined => {
    if (s === '') return [];
    const out: number[] = [];
    for (const p of s.split(':')) {
      if (!/^[0-9a-f]{1,4}$/i.test(p)) return undefined;
      out.push(parseInt(p, 16));
    }
    return out;
  };
  const left = parseGroups(halves[0]!);
  const right = halves.length === 2 ? parseGroups(halves[1]!) : [];
  if (!left || !right) return undefined;
  const groups = left.length + right.length;
  if (halves.length === 2 ? groups >= maxGroups : groups !== maxGroups) return undefined;
  const all = [...left, ...new Array<number>(maxGroups - groups).fill(0), ...right];
  const out = new Uint8Array(16);
  for (let i = 0; i < maxGroups; i++) {
    out[2 * i] = all[i]! >>> 8;
    out[2 * i + 1] = all[i]! & 0xff;
  }
  if (tailV4 !== undefined) writeIpv4(out, 12, tailV4);
  return out;
}

export function ipv6(text: string): Uint8Array {
  const a = parseIpv6Address(text);
  if (!a) throw new RangeError(`not an IPv6 address: ${JSON.stringify(text)}`);
  return a;
}

export function ipv6Equals(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < 16; i++) if (a[i] !== b[i]) return false;
  return true;
}
