/** Ethernet II with an optional single 802.1Q tag. */

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_VLAN = 0x8100;
export const ETHERTYPE_IPV6 = 0x86dd;

export const ETHERNET_HEADER_LENGTH = 14;
export const VLAN_TAG_LENGTH = 4;

/** 802.1Q tag control information. */
export interface VlanTag {
  /** Priority code point, 0..7. */
  pcp: number;
  /** Drop eligible indicator. */
  dei: boolean;
  /** VLAN id, 0..4095. */
  vid: number;
}

/**
 * A parsed Ethernet header. `dst`, `src` and `payload` are views into the frame, made on each
 * access (a view costs ~50 ns; the hot path reads none of them). Copy what you keep: the frame's
 * memory belongs to the link.
 */
export interface EthernetHeader {
  readonly dst: Uint8Array;
  readonly src: Uint8Array;
  /** Ethertype after any 802.1Q tag. */
  readonly ethertype: number;
  readonly vlan: VlanTag | undefined;
  /** 14, or 18 with a tag. */
  readonly headerLength: number;
  /** Everything after the header, including any trailing padding. */
  readonly payload: Uint8Array;
  /** The frame as given to the parser. */
  readonly frame: Uint8Array;
}

class EthernetView implements EthernetHeader {
  constructor(
    readonly frame: Uint8Array,
    readonly ethertype: number,
    readonly vlan: VlanTag | undefined,
    readonly headerLength: number,
  ) {}

  get dst(): Uint8Array {
    return this.frame.subarray(0, 6);
  }

  get src(): Uint8Array {
    return this.frame.subarray(6, 12);
  }

  get payload(): Uint8Array {
    return this.frame.subarray(this.headerLength);
  }
}

export function parseEthernet(buf: Uint8Array): EthernetHeader | 'truncated' {
  if (buf.length < ETHERNET_HEADER_LENGTH) return 'truncated';
  const ethertype = (buf[12]! << 8) | buf[13]!;
  if (ethertype !== ETHERTYPE_VLAN) return new EthernetView(buf, ethertype, undefined, ETHERNET_HEADER_LENGTH);
  if (buf.length < ETHERNET_HEADER_LENGTH + VLAN_TAG_LENGTH) return 'truncated';
  const tci = (buf[14]! << 8) | buf[15]!;
  const vlan: VlanTag = { pcp: tci >>> 13, dei: (tci & 0x1000) !== 0, vid: tci & 0x0fff };
  return new EthernetView(buf, (buf[16]! << 8) | buf[17]!, vlan, ETHERNET_HEADER_LENGTH + VLAN_TAG_LENGTH);
}

export function ethernetHeaderLength(vlan?: VlanTag): number {
  return vlan ? ETHERNET_HEADER_LENGTH + VLAN_TAG_LENGTH : ETHERNET_HEADER_LENGTH;
}

export interface EthernetFields {
  dst: Uint8Array;
  src: Uint8Array;
  ethertype: number;
  vlan?: VlanTag;
}

/** Writes the header at `offset`; returns the offset just past it. */
export function buildEthernet(h: EthernetFields, out: Uint8Array, offset = 0): number {
  for (let i = 0; i < 6; i++) {
    out[offset + i] = h.dst[i]!;
    out[offset + 6 + i] = h.src[i]!;
  }
  let o = offset + 12;
  if (h.vlan) {
    const tci = ((h.vlan.pcp & 7) << 13) | (h.vlan.dei ? 0x1000 : 0) | (h.vlan.vid & 0x0fff);
    out[o] = ETHERTYPE_VLAN >>> 8;
    out[o + 1] = ETHERTYPE_VLAN & 0xff;
    out[o + 2] = tci >>> 8;
    out[o + 3] = tci & 0xff;
    o += 4;
  }
  out[o] = h.ethertype >>> 8;
  out[o + 1] = h.ethertype & 0xff;
  return o + 2;
}
