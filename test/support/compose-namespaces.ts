/**
 * The docker-compose lab's network as two namespaces: `chim` (where the stack role runs, with the
 * compose file's sysctls) and `peer` (with the peer service's), joined by a veth on the compose network's addresses.
 */
import type { Lab } from '../../src/lab/lab.js';
import { PEER_SYSCTLS, SCENARIO, STACK_SYSCTLS } from '../../src/lab/scenario.js';

export async function composeNamespaces(lab: Lab): Promise<{ chim: string; peerNs: string }> {
  const chim = await lab.addNamespace('chim');
  const peerNs = await lab.addNamespace('peer');
  const { a, b } = await lab.addVeth(chim, peerNs);
  await lab.addAddress(chim, a, `${SCENARIO.compose.chimneyIp}/${SCENARIO.prefixLength}`);
  await lab.addAddress(peerNs, b, `${SCENARIO.peerIp}/${SCENARIO.prefixLength}`);
  for (const [k, v] of Object.entries(STACK_SYSCTLS)) await lab.sysctl(chim, k, v);
  for (const [k, v] of Object.entries(PEER_SYSCTLS)) await lab.sysctl(peerNs, k, v);
  return { chim, peerNs };
}
