/**
 * Keeps the kernel from resetting connections a userspace stack owns on a raw socket.
 *
 * The kernel sees every segment for the address too, knows no socket for it and answers with RST.
 * This installs, in the namespace that owns the address, an nftables output rule that drops TCP RSTs
 * from that address unless they carry `mark` - the userspace stack sets that mark on its raw socket
 * (SO_MARK), so its own RSTs still go out. See native-notes/raw-sockets.md.
 */
import { isIPv6 } from 'node:net';
import { CHIMNEY_MARK } from '../link/raw.js';
import type { Lab, NftTableRef } from './lab.js';

export { CHIMNEY_MARK };

export interface RstSuppression {
  readonly ns: string;
  readonly table: NftTableRef;
  readonly address: string;
  readonly mark: number;
  /** How many kernel RSTs the rule has dropped so far. */
  suppressed(): Promise<number>;
  remove(): Promise<void>;
}

export function rstSuppressRuleset(table: string, address: string, mark: number): string {
  const fam = isIPv6(address) ? 'ip6' : 'ip';
  return [
    `table ${fam} ${table} {`,
    `  chain output {`,
    `    type filter hook output priority 0; policy accept;`,
    `    ${fam} saddr ${address} tcp flags & rst == rst meta mark != ${mark} counter drop`,
    `  }`,
    `}`,
    '',
  ].join('\n');
}

interface NftJsonRule {
  rule?: { expr?: Array<{ counter?: { packets: number } }> };
}

export async function installRstSuppression(lab: Lab, ns: string, address: string, opts: { mark?: number } = {}): Promise<RstSuppression> {
  const mark = opts.mark ?? CHIMNEY_MARK;
  const table: NftTableRef = { ns, family: isIPv6(address) ? 'ip6' : 'ip', name: lab.uniqueName('rst') };
  await lab.loadNft(ns, table, rstSuppressRuleset(table.name, address, mark));
  return {
    ns,
    table,
    address,
    mark,
    async suppressed() {
      const { stdout } = await lab.exec(ns, 'nft', ['-j', 'list', 'table', table.family, table.name]);
      const items = (JSON.parse(stdout) as { nftables: NftJsonRule[] }).nftables;
      let n = 0;
      for (const it of items) for (const e of it.rule?.expr ?? []) n += e.counter?.packets ?? 0;
      return n;
    },
    remove: () => lab.deleteNftTable(table),
  };
}
