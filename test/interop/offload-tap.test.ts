/**
 * Issue 4: a connection offloaded after the handshake carries data both ways between an
 * application on the host stack and Linux kernel TCP, through the target service on a TAP, with
 * 1 % loss and reordering between the target and its TAP. Checked by SHA-256 on both ends, by an
 * independent tcpdump capture in the peer namespace (analyzePcap + verdict: no RST, no stream gap),
 * and by the target's counters (it, not the host, carried the connection).
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { verdict } from '../../src/capture/index.js';
import { netemAvailable } from '../../src/lab/availability.js';
import { tapLabSkipReason } from '../support/tap-lab-available.js';
import { Collector, writeAll } from '../support/host-sim.js';
import { expectExactExchange, expectWholeConnection } from '../support/interop-checks.js';
import { Peer, until } from '../support/host-lab.js';
import { buildOffloadRig, startPcap, type OffloadRig } from '../support/offload-lab.js';

const reason = tapLabSkipReason(['ip', 'tcpdump']);
if (reason) console.warn(`skipping offload interop tests: ${reason}`);
if (reason === '') {
  // The impairment sits between the target and its TAP, inside this process, whatever the kernel:
  // netem on the TAP would only reach one direction (the kernel's egress).
  const netem = await netemAvailable();
  console.warn(`offload interop: impairing in userspace between the target and its TAP (netem in this kernel: ${netem ? 'yes' : 'no'})`);
}

const MB = 1024 * 1024;
const SIZE = Number(process.env.OFFLOAD_INTEROP_MB ?? 0) * MB || 0;

describe.skipIf(reason !== '')('offloaded connection against Linux TCP (issue 4)', () => {
  let rig: OffloadRig | undefined;

  afterEach(async () => {
    await rig?.lab.teardown();
    rig = undefined;
  });

  // The size issue 4 asks for: 50 MB each way took 15-19 s alone on this 2-core machine (with
  // D-SACK); the waits leave room for CI running files in parallel. OFFLOAD_INTEROP_MB overrides.
  const bytes = SIZE || 50 * MB;
  it(`spec 8 / issue 4: offloaded after the handshake, ${bytes / MB} MB each way, 1 % loss and reordering: SHA-256 equal on both ends, capture without RST or stream gap, the target carried it`, async () => {
    rig = await buildOffloadRig({ policy: 'after-handshake', impair: { delayMs: 1, lossPct: 1, reorderPct: 1, seed: 'issue4' } });
    const port = 5101;
    const cap = await startPcap(rig, `tcp port ${port}`);
    const peer = await Peer.start(rig, { role: 'server', port, send: bytes, close: 'after-peer-end' });
    const up = randomBytes(bytes);
    const sock = rig.stack.connect({ host: rig.peerIp, port });
    const c = new Collector(sock);
    const t0 = Date.now();
    sock.once('connect', () => {
      void until(() => sock.offloaded, 5_000, 'offloaded').then(() => writeAll(sock, up), () => writeAll(sock, up));
    });
    const [report] = await Promise.all([peer.done(150_000), until(() => c.closed, 150_000, 'stack socket closed')]);
    const secs = (Date.now() - t0) / 1000;
    const analysis = await cap.stop();
    const st = rig.service.status();
    console.info(`issue 4: ${bytes / MB} MB each way in ${secs.toFixed(1)} s; impair out ${JSON.stringify(rig.impaired!.out.stats)} in ${JSON.stringify(rig.impaired!.in.stats)}; ` +
      `core ${JSON.stringify(st.counters.core)}; host offload ${JSON.stringify(rig.stack.offload!.stats)}`);
    expectExactExchange(c, report, up, bytes);

    const v = verdict(analysis, { failOnRst: true });
    const rtx = analysis.connections.map((k) => [k.ab, k.ba].map((d) => `${d.from}->${d.to} rtx ${d.retransmissions.segments} (spurious ${d.retransmissions.spurious.segments})`).join(', '));
    console.info(`issue 4 capture: ${rtx.join('; ')}; notes: ${v.notes.join(' | ') || 'none'}`);
    expect(v.problems).toEqual([]);
    expectWholeConnection(analysis, { noRst: true });
    // The path really lost and reordered frames; the target carried the connection.
    const imp = rig.impaired!;
    expect(imp.out.stats.dropped + imp.in.stats.dropped).toBeGreaterThan(0);
    expect(imp.out.stats.reordered + imp.in.stats.reordered).toBeGreaterThan(0);
    expect(rig.stack.offload!.stats.initiates).toBe(1);
    expect(st.counters.core.framesOffloaded).toBeGreaterThan(bytes / 1448);
  }, 180_000);
});
