/**
 * Why a frame was rejected. Parsers return one of these strings instead of a result (never throw),
 * so `typeof r === 'string'` tells a drop from a parse; the caller drops and counts it.
 */
export const WIRE_DROP_REASONS = [
  /** Buffer shorter than a header or than a length field claims. */
  'truncated',
  /** IP version field is not the one expected. */
  'bad-version',
  /** IPv4 IHL < 5, or TCP data offset < 5. */
  'bad-header-length',
  /** A length field is inconsistent (IPv4 total length < IHL, IPv6 jumbogram). */
  'bad-length',
  'bad-checksum',
  /** IPv4 MF set or offset != 0, or an IPv6 fragment header: no reassembly here. */
  'fragment',
  /** Malformed TCP option list (length 0/1, overrun, wrong length of a known kind). */
  'bad-tcp-options',
  /** IPv6 hop-by-hop header anywhere but first (RFC 8200 4.1). */
  'bad-extension-header',
  /** Not Ethernet/IPv4 ARP, or an opcode other than request/reply. */
  'bad-arp',
  /** ICMP message too short for its type. */
  'bad-icmp',
  /** Ethertype other than IPv4, IPv6, ARP (after at most one 802.1Q tag). */
  'unsupported-ethertype',
] as const;

export type WireDropReason = (typeof WIRE_DROP_REASONS)[number];

/** Counts drops by reason. Generic so that other layers can count their own reasons too. */
export class DropCounter<R extends string = WireDropReason> {
  private readonly counts = new Map<R, number>();
  private totalCount = 0;

  count(reason: R, n = 1): void {
    this.counts.set(reason, (this.counts.get(reason) ?? 0) + n);
    this.totalCount += n;
  }

  get(reason: R): number {
    return this.counts.get(reason) ?? 0;
  }

  get total(): number {
    return this.totalCount;
  }

  /** Non-zero counts, keys sorted, as a fresh plain object. */
  snapshot(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const key of [...this.counts.keys()].sort()) out[key] = this.counts.get(key)!;
    return out;
  }

  reset(): void {
    this.counts.clear();
    this.totalCount = 0;
  }
}
