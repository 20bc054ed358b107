/**
 * Issue 5, a hand-over storm: a transfer each way between the host stack and Linux TCP under 2 %
 * loss and reordering while the connection is terminated and offloaded again after a random
 * 0-15 ms each time (thousands of hand-overs per transfer, mid-recovery, mid-close). This load
 * found the two end-of-transfer data-loss bugs the 100 ms cycle test hit only once in a while
 * (docs/loss-recovery.md, the issue 5 notes). Checked: both byte streams exact (SHA-256), every
 * hand-over's receive stream consistent (bytes to the application vs RcvNxt), no returned byte
 * dropped after the stream ended, no hand-over error.
 *
 * CI runs one 4 MB transfer; TERMINATE_STORM_RUNS / TERMINATE_STORM_MB / TERMINATE_STORM_PERIOD_MS
 * scale it (the bugs above showed in about one of two 20 MB runs).
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { tapLabSkipReason } from '../support/tap-lab-available.js';
import { toggleEvery } from '../support/handover-toggler.js';
import { Collector, writeAll } from '../support/host-sim.js';
import { expectExactExchange } from '../support/interop-checks.js';
import { Peer, until } from '../support/host-lab.js';
import { buildOffloadRig, unfinishedTransferReport, type OffloadRig } from '../support/offload-lab.js';

const reason = tapLabSkipReason(['ip']);
if (reason) console.warn(`skipping the hand-over storm interop test: ${reason}`);

const MB = 1024 * 1024;
const RUNS = Number(process.env.TERMINATE_STORM_RUNS ?? 1);
const BYTES = Number(process.env.TERMINATE_STORM_MB ?? 4) * MB;
const PERIOD_MS = Number(process.env.TERMINATE_STORM_PERIOD_MS ?? 15);
/** A loaded machine moved ~0.1 MB/s through such a storm: 10 s per MB, at least 2 min. */
const WAIT_MS = Math.max(120_000, (BYTES / MB) * 10_000);

describe.skipIf(reason !== '')('hand-over storm against Linux TCP under loss (issue 5)', () => {
  let rig: OffloadRig | undefined;
  afterEach(async () => {
    await rig?.lab.teardown();
    rig = undefined;
  });

  for (let run = 0; run < RUNS; run++) {
    it(`spec 6 / issue 5, storm ${run + 1}/${RUNS}: ${BYTES / MB} MB each way through 2 % loss and reordering, a hand-over every 0-${PERIOD_MS} ms: both streams exact, every hand-over consistent`, async () => {
      const seed = `storm-${run}-${Date.now()}`;
      rig = await buildOffloadRig({ policy: 'after-handshake', impair: { delayMs: 1, lossPct: 2, reorderPct: 2, seed } });
      const port = 5300 + run;
      const peer = await Peer.start(rig, { role: 'server', port, send: BYTES, close: 'after-peer-end' });
      const up = randomBytes(BYTES);
      const sock = rig.stack.connect({ host: rig.peerIp, port });
      const c = new Collector(sock);
      const t0 = Date.now();
      await until(() => sock.offloaded || c.closed, 10_000, 'first offload');
      void writeAll(sock, up);
      const toggler = toggleEvery(sock, () => Math.random() * PERIOD_MS);
      let report;
      try {
        [report] = await Promise.all([peer.done(WAIT_MS), until(() => c.closed, WAIT_MS, 'stack socket closed')]);
      } catch (e) {
        console.error(await unfinishedTransferReport(rig, sock, c.bytes, BYTES));
        throw e;
      } finally {
        await toggler.stop();
      }
      const st = rig.stack.offload!.stats;
      console.info(`hand-over storm (impairment seed ${seed}): ${BYTES / MB} MB each way in ${((Date.now() - t0) / 1000).toFixed(1)} s; ${toggler.terminates} terminates, ${toggler.offloads} re-offloads; ` +
        `the stack read ${c.bytes} of ${BYTES} (stream ended by: ${sock.endedBy ?? 'nothing'}; returned after that: ${sock.receiveDiscarded}); host offload ${JSON.stringify(st)}`);
      if (c.bytes !== BYTES || st.receiveMismatches > 0 || sock.receiveDiscarded > 0 || c.error) {
        console.error(`storm failed; last log lines:\n${rig.logTail().slice(-60).join('\n')}`);
      }
      expect(sock.receiveDiscarded, 'received bytes returned after the read stream ended').toBe(0);
      expect(st.receiveMismatches, 'hand-overs where RcvNxt and the bytes given to the application disagree').toBe(0);
      expectExactExchange(c, report, up, BYTES);
      expect(toggler.errors).toEqual([]);
      expect(toggler.terminates + toggler.offloads).toBeGreaterThanOrEqual(100);
    }, WAIT_MS + 30_000);
  }
});
