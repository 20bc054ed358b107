/**
 * The host stack against Linux TCP through a router namespace with 20 ms delay each way,
 * reordering, and 1 % or 5 % loss. Both directions carry data at once and are checked by SHA-256
 * on both ends. The stack reaches the peer through its gateway, so routing and ARP for the gateway
 * are exercised too.
 *
 * The impairment is netem on the router's two egresses where the kernel has sch_netem; where it
 * has not (some micro-VM kernels), the same delay/loss/reorder is applied in userspace between the
 * stack and its TAP (test/support/host-impair.ts), so the test still runs against real Linux TCP.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { netemAvailable } from '../../src/lab/availability.js';
import { tapLabSkipReason } from '../support/tap-lab-available.js';
import { Collector, sha256, writeAll } from '../support/host-sim.js';
import { buildRig, impairBothWays, Peer, STACK_IP, TAP_KERNEL_IP, until, type HostRig } from '../support/host-lab.js';
import { ipv4 } from '../../src/wire/addresses.js';
import { WallImpairedLink } from '../support/host-impair.js';

const reason = tapLabSkipReason(['ip', 'tc']);
if (reason) console.warn(`skipping host impairment interop tests: ${reason}`);
const netem = reason === '' ? await netemAvailable() : false;
if (reason === '' && !netem) {
  console.warn('no netem qdisc in this kernel (CONFIG_NET_SCH_NETEM): impairing in userspace between the stack and its TAP instead');
}

/** A routed rig with 20 ms each way, `lossPct` loss and 5 % reordering, by netem or in userspace. */
async function impairedRig(lossPct: number, seed: string): Promise<HostRig> {
  if (netem) {
    const r = await buildRig({ routed: true });
    await impairBothWays(r, { delayMs: 20, lossPct, reorderPct: 5, limit: 20_000 });
    return r;
  }
  return buildRig({ routed: true, wrapLink: (tap) => new WallImpairedLink(tap, { delayMs: 20, lossPct, reorderPct: 5, seed }) });
}

const MB = 1024 * 1024;

interface Case {
  lossPct: number;
  bytes: number;
}

describe.skipIf(reason !== '')('HostStack vs Linux TCP through 20 ms each way, reordering and loss', () => {
  let rig: HostRig | undefined;

  afterEach(async () => {
    await rig?.lab.teardown();
    rig = undefined;
  });

  const cases: Case[] = [
    // Sized so that each test stays well under a minute at 40 ms RTT (loss-bound throughput).
    { lossPct: 1, bytes: 6 * MB },
    { lossPct: 5, bytes: 1.5 * MB },
  ];

  for (const { lossPct, bytes } of cases) {
    it(`${lossPct} % loss: ${bytes / MB} MB each way, active open, SHA-256 equal on both ends`, async () => {
      rig = await impairedRig(lossPct, `active-${lossPct}`);
      const peer = await Peer.start(rig, { role: 'server', port: 5001, send: bytes, close: 'after-peer-end' });
      const up = randomBytes(bytes);
      const sock = rig.stack.connect({ host: rig.peerIp, port: 5001 });
      const c = new Collector(sock);
      sock.once('connect', () => void writeAll(sock, up));
      const [report] = await Promise.all([peer.done(50_000), until(() => c.closed, 50_000, 'transfer')]);
      expect(c.error).toBeUndefined();
      expect(report.error).toBeUndefined();
      expect(report.recvSha).toBe(sha256(up));
      expect(c.bytes).toBe(bytes);
      expect(c.digest()).toBe(report.sentSha);
      // The path really lost and reordered segments, the stack recovered; it went through the gateway.
      if (rig.stackLink instanceof WallImpairedLink) {
        expect(rig.stackLink.out.stats.dropped + rig.stackLink.in.stats.dropped).toBeGreaterThan(0);
        expect(rig.stackLink.out.stats.reordered + rig.stackLink.in.stats.reordered).toBeGreaterThan(0);
      }
      const stats = sock.connection.stats;
      expect(stats.retransmittedSegments).toBeGreaterThan(0);
      expect(stats.outOfOrderSegments).toBeGreaterThan(0);
      expect(rig.stack.arpTable().map((r) => r.ip)).toEqual([ipv4(TAP_KERNEL_IP)]);
    }, 60_000);
  }

  it('5 % loss, passive open: Linux connects to the stack, 1.5 MB each way', async () => {
    rig = await impairedRig(5, 'passive-5');
    const down = randomBytes(1.5 * MB);
    let c: Collector | undefined;
    rig.stack.listen(6001, (s) => {
      c = new Collector(s);
      void writeAll(s, down);
    }, { allowHalfOpen: true });
    const peer = await Peer.start(rig, { role: 'client', host: STACK_IP, port: 6001, send: 1.5 * MB, close: 'end' });
    // Our last FIN may still be in retransmission when our socket is done: wait for both ends.
    const [report] = await Promise.all([peer.done(50_000), until(() => c !== undefined && c.closed, 50_000, 'transfer')]);
    expect(c!.error ?? report.error).toBeUndefined();
    expect(report.recvSha).toBe(sha256(down));
    expect(c!.digest()).toBe(report.sentSha);
    expect(c!.bytes).toBe(1.5 * MB);
  }, 60_000);
});
