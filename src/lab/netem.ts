/**
 * Link impairments for labs. netem does all of them; kernels built without it (some CI and
 * micro-VM kernels) still get loss, duplication and rate limits from nftables and tbf, and a clear
 * error for what cannot be emulated (delay, jitter, reordering).
 */

export interface NetemOptions {
  /** Random loss, percent (0..100). */
  lossPct?: number;
  delayMs?: number;
  /** Delay variation, needs delayMs. */
  jitterMs?: number;
  /** Percent of packets sent immediately, overtaking delayed ones (needs delayMs). */
  reorderPct?: number;
  /** Rate limit in kbit/s. */
  ratekbit?: number;
  /** Random duplication, percent. */
  duplicatePct?: number;
  /** netem queue limit in packets (default 1000 in the kernel; large BDP tests want more). */
  limit?: number;
  /** Use the nftables/tbf fallback even where netem exists (tests of the fallback). */
  forceFallback?: boolean;
}

export type ImpairmentMechanism = 'netem' | 'fallback';

export interface ImpairmentResult {
  mechanism: ImpairmentMechanism;
  /** Fallback only: how each requested impairment was applied, e.g. 'loss: nft ingress ch12ab34b@ns'. */
  details: string[];
}

/** Raised when an impairment cannot be applied here (code 'ENETEM'). */
export class ImpairmentError extends Error {
  readonly code = 'ENETEM';
  constructor(message: string) {
    super(message);
    this.name = 'ImpairmentError';
  }
}

function pct(v: number, what: string): number {
  if (!(v >= 0 && v <= 100)) throw new RangeError(`${what} must be a percentage in 0..100, got ${v}`);
  return v;
}

export function validateNetem(o: NetemOptions): void {
  if (o.lossPct !== undefined) pct(o.lossPct, 'lossPct');
  if (o.duplicatePct !== undefined) pct(o.duplicatePct, 'duplicatePct');
  if (o.reorderPct !== undefined) pct(o.reorderPct, 'reorderPct');
  for (const [k, v] of Object.entries({ delayMs: o.delayMs, jitterMs: o.jitterMs, ratekbit: o.ratekbit, limit: o.limit })) {
    if (v !== undefined && !(Number.isFinite(v) && v >= 0)) throw new RangeError(`${k} must be a non-negative number, got ${v}`);
  }
  if ((o.jitterMs || o.reorderPct) && !o.delayMs) {
    throw new RangeError('jitterMs and reorderPct need delayMs (netem reorders by letting some packets skip the delay)');
  }
}

/** `tc qdisc replace dev DEV root netem ...` arguments after `netem`. */
export function netemArgs(o: NetemOptions): string[] {
  const a: string[] = [];
  if (o.limit) a.push('limit', String(Math.round(o.limit)));
  if (o.delayMs) {
    a.push('delay', `${o.delayMs}ms`);
    if (o.jitterMs) a.push(`${o.jitterMs}ms`);
  }
  if (o.lossPct) a.push('loss', `${o.lossPct}%`);
  if (o.duplicatePct) a.push('duplicate', `${o.duplicatePct}%`);
  if (o.reorderPct) a.push('reorder', `${o.reorderPct}%`);
  if (o.ratekbit) a.push('rate', `${o.ratekbit}kbit`);
  // An empty netem is valid and means "no impairment", but say so explicitly for `tc qdisc show`.
  if (a.length === 0) a.push('delay', '0ms');
  return a;
}

/** What the fallback cannot do, as a list of option names (empty: fallback suffices). */
export function needsRealNetem(o: NetemOptions): string[] {
  const out: string[] = [];
  if (o.delayMs) out.push('delayMs');
  if (o.jitterMs) out.push('jitterMs');
  if (o.reorderPct) out.push('reorderPct');
  return out;
}

/** tbf for a rate limit: burst at least a 64 KiB GSO packet, else tbf would drop it. */
export function tbfArgs(ratekbit: number): string[] {
  const bytesPerTick = Math.ceil((ratekbit * 1000) / 8 / 250);
  const burst = Math.max(65_536 + 1_514, bytesPerTick);
  return ['rate', `${ratekbit}kbit`, 'burst', String(burst), 'latency', '100ms'];
}

/** Mark that keeps a duplicated packet from being duplicated again on its second pass. */
export const DUP_MARK = 0x4348d0;

function chance(pct: number, action: string): string {
  // numgen's range is 0..9999, so 100 % is written as an unconditional rule.
  return pct >= 100 ? action : `numgen random mod 10000 < ${Math.round(pct * 100)} ${action}`;
}

/**
 * Random loss as silent wire loss: dropped on the *ingress* hook of the receiving device. (Dropping
 * on the sender's egress hook instead makes local senders see ENOBUFS, which TCP treats as local
 * congestion, not as a lost segment.)
 */
export function nftLossRuleset(table: string, rxDev: string, lossPct: number): string {
  return [
    `table netdev ${table} {`,
    `  chain ingress {`,
    `    type filter hook ingress device "${rxDev}" priority 0; policy accept;`,
    `    ${chance(lossPct, 'counter drop')}`,
    `  }`,
    `}`,
    '',
  ].join('\n');
}

/**
 * Random duplication on the sender's egress hook: `dup to` re-sends on the same device, and the
 * copy carries DUP_MARK so it is not duplicated again when it passes the hook.
 */
export function nftDuplicateRuleset(table: string, txDev: string, duplicatePct: number): string {
  return [
    `table netdev ${table} {`,
    `  chain egress {`,
    `    type filter hook egress device "${txDev}" priority 0; policy accept;`,
    `    meta mark != ${DUP_MARK} ${chance(duplicatePct, `meta mark set ${DUP_MARK} counter dup to "${txDev}"`)}`,
    `  }`,
    `}`,
    '',
  ].join('\n');
}

/** Loss without a known receiving device: egress drop, with the ENOBUFS caveat above. */
export function nftEgressLossRuleset(table: string, txDev: string, lossPct: number): string {
  return [
    `table netdev ${table} {`,
    `  chain egress {`,
    `    type filter hook egress device "${txDev}" priority 0; policy accept;`,
    `    ${chance(lossPct, 'counter drop')}`,
    `  }`,
    `}`,
    '',
  ].join('\n');
}
