/**
 * The host stack's offload path (issue 4 deliverable 5): a HostStack whose link is a ChimneyLink to
 * an in-process TargetCore; the core's wire side on a sim link to a peer HostStack. Messages cross
 * in both directions as separate simulator events, in order, as an IPC binding would carry them.
 */
import { describe, expect, it } from 'vitest';
import { OffloadRig } from '../support/offload-rig.js';
import { Rng } from '../../src/link/sim/rng.js';
import type { TcpSocket } from '../../src/host/socket.js';
import { AdapterStatus, UploadReason } from '../../src/chimney/state.js';
import {
  Collector, IP_A, IP_B, payload, runSimFor, sha256, writeAll,
} from '../support/host-sim.js';

const MB5 = 5 * 1024 * 1024;

/**
 * An offloaded pair whose application (A) does not read: B sends `bytes` (and its FIN with `end`),
 * A refuses the indications and the target holds the data, acknowledged, after `settleMs`.
 */
async function heldAtTarget(seed: number, bytes: number, opts: { end: boolean; settleMs: number }): Promise<{ rig: OffloadRig; ca: TcpSocket; cb: TcpSocket; data: Buffer }> {
  const rig = new OffloadRig({ policy: 'after-handshake', impair: { delayMs: 1 } });
  const { ca, cb } = await rig.pair();
  await rig.run(() => ca.offloaded && rig.core.connectionCount === 1, 'offloaded');
  ca.pause(); // an explicit pause() is not undone by a 'data' listener: the tests resume() later
  const data = payload(seed, bytes);
  if (opts.end) cb.end(data);
  else cb.write(data);
  await rig.run(() => rig.a.offload!.stats.indicationsRefused > 0, 'indication refused: the data waits at the target');
  await runSimFor(rig.sim, opts.settleMs);
  return { rig, ca, cb, data };
}

describe('host offload path (spec 2.1, 3, 4, 6)', () => {
  it('after-handshake policy: 5 MB each way through an offloaded socket, sha256 on both ends', async () => {
    const rig = new OffloadRig({ policy: 'after-handshake' });
    const { ca, cb } = await rig.pair();
    const ra = new Collector(ca);
    const rb = new Collector(cb);
    await rig.run(() => ca.offloaded && rig.a.offload!.offloadedCount === 1 && rig.core.connectionCount === 1, 'offloaded');
    const da = payload(1, MB5);
    const db = payload(2, MB5);
    void writeAll(ca, da);
    void writeAll(cb, db);
    await rig.run(() => (ra.ended && rb.ended) || ra.error !== undefined || rb.error !== undefined, 'transfer', 600_000);
    expect(rb.digest()).toBe(sha256(da));
    expect(ra.digest()).toBe(sha256(db));
    expect(rb.bytes).toBe(MB5);
    expect(ra.bytes).toBe(MB5);
    // The data went through the target's engine, not the host's.
    expect(rig.core.counters.framesOffloaded).toBeGreaterThan(3000);
    expect(rig.a.offload!.stats.initiates).toBe(1);
    expect(ra.error).toBeUndefined();
    expect(rb.error).toBeUndefined();
    // Both closed: the target hands TIME-WAIT back (Retrieve) and the host finishes it.
    await rig.run(() => ra.closed && rb.closed && rig.core.connectionCount === 0 && rig.a.demux.size === 0, 'closed');
    expect(rig.a.offload!.stats.terminates).toBe(1);
    expect(rig.core.ledger.lentCount).toBe(0);
  }, 60_000);

  it('offload after N bytes ({ afterBytes }): the host engine carries the first bytes, the target the rest', async () => {
    const rig = new OffloadRig({ policy: { afterBytes: 300_000 }, impair: { delayMs: 2 } });
    const { ca, cb } = await rig.pair();
    const ra = new Collector(ca);
    const rb = new Collector(cb);
    let atOffload = -1;
    const da = payload(3, 1 << 20);
    const db = payload(4, 1 << 20);
    void writeAll(ca, da);
    void writeAll(cb, db);
    await rig.run(() => { if (atOffload < 0 && ca.offloaded) atOffload = ca.bytesRead + ca.bytesWritten; return atOffload >= 0; }, 'offloaded');
    expect(rig.core.counters.framesOffloaded).toBe(0);
    expect(atOffload).toBeGreaterThanOrEqual(300_000);
    await rig.run(() => (ra.ended && rb.ended) || ra.error !== undefined || rb.error !== undefined, 'transfer');
    expect(rb.digest()).toBe(sha256(da));
    expect(ra.digest()).toBe(sha256(db));
    expect(rig.core.counters.framesOffloaded).toBeGreaterThan(300);
    expect(rig.a.offload!.stats.initiates).toBe(1);
  }, 60_000);

  for (const mode of ['chain', 'complete'] as const) {
    it(`manual: terminate mid-transfer and continue, several offload/terminate cycles under 1 % loss (terminate mode ${mode})`, async () => {
      const rig = new OffloadRig({ policy: 'manual', impair: { delayMs: 1, loss: 0.01 }, terminateSendMode: mode, seed: `cycles-${mode}` });
      const { ca, cb } = await rig.pair();
      expect(ca.offloaded).toBe(false);
      const ra = new Collector(ca);
      const rb = new Collector(cb);
      const da = payload(5, 3 << 20);
      const db = payload(6, 3 << 20);
      void writeAll(ca, da);
      void writeAll(cb, db);
      let offloads = 0;
      let terminates = 0;
      const problems: string[] = [];
      // Every 10 virtual ms: flip between host engine and target.
      const flip = (): void => {
        if (ra.ended && rb.ended) return;
        if (ca.offloaded) ca.terminateOffload().then(() => { terminates++; }, (e: Error) => problems.push(e.message));
        else if (!ca.destroyed) ca.offload().then(() => { offloads++; }, (e: Error) => problems.push(e.message));
        rig.sim.after(10, flip);
      };
      rig.sim.after(5, flip);
      await rig.run(() => (ra.ended && rb.ended) || ra.error !== undefined || rb.error !== undefined, 'transfer', 600_000);
      expect(ra.error).toBeUndefined();
      expect(rb.error).toBeUndefined();
      expect(rb.digest()).toBe(sha256(da));
      expect(ra.digest()).toBe(sha256(db));
      expect(offloads).toBeGreaterThanOrEqual(3);
      expect(terminates).toBeGreaterThanOrEqual(2);
      expect(problems.filter((p) => !p.includes('not offloadable'))).toEqual([]);
      await rig.run(() => ra.closed && rb.closed && rig.core.connectionCount === 0 && rig.a.demux.size === 0, 'released');
      expect(rig.core.ledger.lentCount).toBe(0);
    }, 60_000);
  }

  it('end() while offloaded is a graceful TcpDisconnect: the peer reads everything, then end; then the reverse', async () => {
    const rig = new OffloadRig({ policy: 'after-handshake', impair: { delayMs: 1 } });
    const { ca, cb } = await rig.pair();
    const ra = new Collector(ca);
    const rb = new Collector(cb);
    await rig.run(() => ca.offloaded && rig.core.connectionCount === 1, 'offloaded');
    const da = payload(7, 200_000);
    ca.end(da);
    await rig.run(() => rb.ended, 'peer end');
    expect(rb.digest()).toBe(sha256(da));
    expect(ca.offloaded).toBe(true);
    const db = payload(8, 150_000);
    cb.end(db);
    await rig.run(() => ra.ended && ra.closed && rb.closed, 'host end');
    expect(ra.digest()).toBe(sha256(db));
    expect(ra.error).toBeUndefined();
    await rig.run(() => rig.core.connectionCount === 0 && rig.a.demux.size === 0, 'released');
    expect(rig.core.ledger.lentCount).toBe(0);
  }, 60_000);

  it('R117 / R15: a close that finishes at the target (LAST_ACK done) while the application has not read: the data comes back and the stream ends without an error', async () => {
    // The peer's data and FIN reach the target: CLOSE_WAIT there, the data held.
    const { rig, ca, data: db } = await heldAtTarget(9, 300_000, { end: true, settleMs: 50 });
    ca.end(); // our FIN: LAST_ACK at the target, done when B acknowledges it
    await rig.run(() => rig.a.offload!.stats.terminates === 1, 'offered back and terminated');
    const ra = new Collector(ca); // only now does the application read
    ca.resume();
    await rig.run(() => ra.ended && ra.closed, 'end after the data');
    expect(ra.error).toBeUndefined();
    expect(ra.digest()).toBe(sha256(db));
    expect(rig.a.offload!.stats.receiveMismatches).toBe(0);
    await rig.run(() => rig.core.connectionCount === 0 && rig.a.demux.size === 0 && rig.core.ledger.lentCount === 0, 'released');
  }, 60_000);

  it('destroy() while offloaded is an abortive TcpDisconnect: the peer gets ECONNRESET, the target context is released', async () => {
    const rig = new OffloadRig({ policy: 'after-handshake', impair: { delayMs: 1 } });
    const { ca, cb } = await rig.pair();
    const rb = new Collector(cb);
    await rig.run(() => ca.offloaded && rig.core.connectionCount === 1, 'offloaded');
    ca.write(payload(9, 50_000));
    await rig.run(() => rb.bytes === 50_000, 'data');
    expect(rb.digest()).toBe(sha256(payload(9, 50_000)));
    ca.destroy();
    await rig.run(() => rb.error !== undefined, 'peer reset');
    expect(rb.error?.code).toBe('ECONNRESET');
    await rig.run(() => rig.core.connectionCount === 0 && rig.a.demux.size === 0, 'released');
  }, 60_000);

  it('TcpIndicateAbort (peer RST while offloaded): the socket errors with ECONNRESET after the data before it', async () => {
    const rig = new OffloadRig({ policy: 'after-handshake', impair: { delayMs: 1 } });
    const { ca, cb } = await rig.pair();
    const ra = new Collector(ca);
    await rig.run(() => ca.offloaded && rig.core.connectionCount === 1, 'offloaded');
    const db = payload(10, 30_000);
    cb.write(db);
    await rig.run(() => ra.bytes === db.length, 'data');
    cb.resetAndDestroy();
    await rig.run(() => ra.error !== undefined, 'reset');
    expect(ra.error?.code).toBe('ECONNRESET');
    expect(ra.digest()).toBe(sha256(db));
    await rig.run(() => rig.core.connectionCount === 0 && rig.a.demux.size === 0, 'released');
  }, 60_000);

  it('R111 / R15: an RST while the target still holds received data (the application paused): the application reads that data first, then gets ECONNRESET', async () => {
    const { rig, ca, cb, data: db } = await heldAtTarget(11, 200_000, { end: false, settleMs: 50 });
    cb.resetAndDestroy();
    await rig.run(() => rig.a.offload!.stats.terminates === 1 && rig.core.connectionCount === 0, 'aborted and terminated');
    const ra = new Collector(ca);
    ca.resume();
    await rig.run(() => ra.error !== undefined, 'reset after the data');
    expect(ra.error?.code).toBe('ECONNRESET');
    expect(ra.bytes).toBe(db.length);
    expect(ra.digest()).toBe(sha256(db));
    await rig.run(() => rig.a.demux.size === 0 && rig.core.ledger.lentCount === 0, 'released');
  }, 60_000);

  it('half close on the host engine: a peer silent for longer than the FIN_WAIT_2 timeout does not cut off a socket the application still reads (Linux: tcp_fin_timeout is for orphans); an orphan is released after it', async () => {
    const rig = new OffloadRig({ policy: 'never' });
    const { ca, cb } = await rig.pair();
    const ra = new Collector(ca);
    const rb = new Collector(cb);
    ca.end(); // FIN_WAIT_2 once B acknowledges
    await rig.run(() => rb.ended, 'our FIN at B');
    await runSimFor(rig.sim, 200_000); // longer than the 120 s FIN_WAIT_2 timeout
    expect(ra.closed).toBe(false);
    const db = payload(12, 100_000);
    cb.end(db);
    await rig.run(() => ra.ended && ra.closed, 'the peer\'s data and FIN');
    expect(ra.error).toBeUndefined();
    expect(ra.digest()).toBe(sha256(db));
    // The orphan: the application ends and lets go; the peer never closes.
    const rig2 = new OffloadRig({ policy: 'never' });
    const { ca: oa, cb: ob } = await rig2.pair();
    const rob = new Collector(ob);
    oa.end();
    await rig2.run(() => rob.ended, 'orphan FIN at B');
    oa.destroy();
    await runSimFor(rig2.sim, 100_000);
    expect(rig2.a.demux.size).toBe(1); // FIN_WAIT_2, within the timeout
    await runSimFor(rig2.sim, 30_000);
    expect(rig2.a.demux.size).toBe(0);
  }, 60_000);

  it('TcpIndicateRetrieve: the host terminates and the transfer continues on the host engine', async () => {
    const rig = new OffloadRig({ policy: 'after-handshake', impair: { delayMs: 1 } });
    const { ca, cb } = await rig.pair();
    const ra = new Collector(ca);
    const rb = new Collector(cb);
    await rig.run(() => ca.offloaded && rig.core.connectionCount === 1, 'offloaded');
    const da = payload(11, 1 << 20);
    const db = payload(12, 1 << 20);
    void writeAll(ca, da);
    void writeAll(cb, db);
    await rig.run(() => rb.bytes > 200_000, 'some data');
    rig.core.connections()[0].requestUpload(UploadReason.UploadRequested);
    await rig.run(() => !ca.offloaded && rig.core.connectionCount === 0, 'terminated');
    expect(rig.a.offload!.stats.terminates).toBe(1);
    await rig.run(() => (ra.ended && rb.ended) || ra.error !== undefined || rb.error !== undefined, 'transfer');
    expect(rb.digest()).toBe(sha256(da));
    expect(ra.digest()).toBe(sha256(db));
  }, 60_000);

  it('StatusIndication UploadAll: every offloaded connection comes back to the host', async () => {
    const rig = new OffloadRig({ policy: 'after-handshake', impair: { delayMs: 1 } });
    const socks: TcpSocket[] = [];
    rig.b.listen(80, () => {});
    for (let i = 0; i < 3; i++) socks.push(rig.a.connect({ host: IP_B, port: 80 }));
    await rig.run(() => socks.every((s) => s.offloaded) && rig.core.connectionCount === 3, 'offloaded');
    rig.core.requestUploadAll();
    await rig.run(() => socks.every((s) => !s.offloaded) && rig.core.connectionCount === 0, 'uploaded');
    expect(rig.a.offload!.stats.terminates).toBe(3);
    expect(rig.a.demux.size).toBe(3);
    // Spec 5.5: no new offloads until the target sends OffloadResume.
    await expect(socks[0].offload()).rejects.toThrow('no new offloads');
    rig.link.onTargetMessage({
      type: 'StatusIndication', code: AdapterStatus.OffloadResume,
      capabilities: { supportIPv4: true, supportIPv6: false, supportSack: true, tcpConnectionOffloadCapacity: 16, ticksPerSecond: 1000 },
    });
    const again = socks[0].offload();
    await rig.run(() => socks[0].offloaded && rig.core.connectionCount === 1, 'offloaded again');
    await again;
  }, 60_000);

  it('binding lost: the target resets what it held, offloaded sockets fail with ECONNRESET and leave the demux', async () => {
    const rig = new OffloadRig({ policy: 'after-handshake', impair: { delayMs: 1 } });
    const { ca, cb } = await rig.pair();
    const ra = new Collector(ca);
    const rb = new Collector(cb);
    await rig.run(() => ca.offloaded && rig.core.connectionCount === 1, 'offloaded');
    rig.core.hostGone();
    rig.link.bindingClosed('test');
    await rig.run(() => ra.error !== undefined && rb.error !== undefined, 'both reset');
    expect(ra.error?.code).toBe('ECONNRESET');
    expect(rb.error?.code).toBe('ECONNRESET');
    expect(rig.a.demux.size).toBe(0);
    expect(rig.a.offload!.accepting).toBe(false);
  }, 60_000);

  it('spec 4.3: a paused reader refuses indications; on resume a posted receive brings the held data, exact', async () => {
    const { rig, ca, data: db } = await heldAtTarget(13, 400_000, { end: true, settleMs: 200 });
    const ra = new Collector(ca);
    ca.resume(); // an explicit pause() is not undone by a 'data' listener
    await rig.run(() => ra.ended, 'all data');
    expect(ra.bytes).toBe(db.length);
    expect(ra.digest()).toBe(sha256(db));
  }, 60_000);

  it('passive open: an accepted socket is offloaded after the handshake; writes see backpressure from the send backlog', async () => {
    const rig = new OffloadRig({ policy: 'after-handshake', impair: { delayMs: 1 } });
    let accepted: TcpSocket | undefined;
    rig.a.listen(8080, (s) => { accepted = s; }, { allowHalfOpen: true });
    const cb = rig.b.connect({ host: IP_A, port: 8080, allowHalfOpen: true });
    await rig.run(() => accepted !== undefined && accepted.offloaded && rig.core.connectionCount === 1, 'offloaded');
    const ca = accepted!;
    const ra = new Collector(ca);
    const rb = new Collector(cb);
    const da = payload(31, 2 << 20);
    const db = payload(32, 1 << 20);
    const wa = writeAll(ca, da, { chunk: 256 * 1024 });
    void writeAll(cb, db);
    await rig.run(() => (ra.ended && rb.ended) || ra.error !== undefined || rb.error !== undefined, 'transfer');
    expect(rb.digest()).toBe(sha256(da));
    expect(ra.digest()).toBe(sha256(db));
    expect((await wa).sawBackpressure).toBe(true);
    // The writes waited for send completions: the target never held more than the backlog.
    expect(rig.a.offload!.stats.sendBacklogPeak).toBe(256 * 1024);
    expect(rig.core.counters.framesOffloaded).toBeGreaterThan(300);
  }, 60_000);

  it('CACHED keepalive (spec 2.1): a keepalive socket keeps probing while offloaded, from the target', async () => {
    const rig = new OffloadRig({ policy: 'after-handshake', impair: { delayMs: 1 } });
    rig.b.listen(80, () => {});
    const ca = rig.a.connect({ host: IP_B, port: 80, keepAlive: true, keepAliveInitialDelay: 1000 });
    await rig.run(() => ca.offloaded && rig.core.connectionCount === 1, 'offloaded');
    const target = rig.core.connections()[0].connection;
    expect(target.config.keepalive.enabled).toBe(true);
    expect(target.config.keepalive.idleMs).toBe(1000);
    await runSimFor(rig.sim, 5500);
    expect(target.stats.keepaliveProbes).toBeGreaterThanOrEqual(4);
    expect(ca.destroyed).toBe(false);
  }, 60_000);

  it('spec 2.2: setNoDelay / setKeepAlive while offloaded reach the target engine as an UpdateOffload', async () => {
    const rig = new OffloadRig({ policy: 'after-handshake', impair: { delayMs: 1 } });
    const { ca } = await rig.pair();
    await rig.run(() => ca.offloaded && rig.core.connectionCount === 1, 'offloaded');
    const target = rig.core.connections()[0].connection;
    expect(target.config.nagle).toBe(true);
    expect(target.config.keepalive.enabled).toBe(false);
    ca.setNoDelay(true);
    ca.setKeepAlive(true, 2000);
    await rig.run(() => !target.config.nagle && target.config.keepalive.enabled, 'updated');
    expect(target.config.keepalive.idleMs).toBe(2000);
    await runSimFor(rig.sim, 2500);
    expect(target.stats.keepaliveProbes).toBeGreaterThanOrEqual(1);
    // Back on the host the engine keeps the settings.
    let back = false;
    void ca.terminateOffload().then(() => { back = true; });
    await rig.run(() => back, 'terminated');
    expect(ca.connection.config.nagle).toBe(false);
    expect(ca.connection.config.keepalive.enabled).toBe(true);
  }, 60_000);

  it('initiate refused by the target (OFFLOAD_TCP_ENTRIES): the host engine continues mid-transfer, streams exact', async () => {
    const rig = new OffloadRig({ policy: 'manual', impair: { delayMs: 1 }, maxConnections: 0 });
    const { ca, cb } = await rig.pair();
    const ra = new Collector(ca);
    const rb = new Collector(cb);
    const da = payload(41, 1 << 20);
    const db = payload(42, 1 << 20);
    void writeAll(ca, da);
    void writeAll(cb, db);
    await rig.run(() => rb.bytes > 100_000 && ra.bytes > 100_000, 'some data');
    let refusal: Error | undefined;
    ca.offload().catch((e: Error) => { refusal = e; });
    await rig.run(() => refusal !== undefined, 'refused');
    expect(refusal!.message).toContain('OFFLOAD_TCP_ENTRIES');
    expect(ca.offloaded).toBe(false);
    expect(rig.a.offload!.stats.initiateFailures).toBe(1);
    await rig.run(() => (ra.ended && rb.ended) || ra.error !== undefined || rb.error !== undefined, 'transfer');
    expect(rb.digest()).toBe(sha256(da));
    expect(ra.digest()).toBe(sha256(db));
    expect(rig.core.counters.framesOffloaded).toBe(0);
  }, 60_000);

  it('HostStack.close() while offloaded: the peer is reset and the target releases the connection', async () => {
    const rig = new OffloadRig({ policy: 'after-handshake', impair: { delayMs: 1 } });
    const { ca, cb } = await rig.pair();
    const ra = new Collector(ca);
    const rb = new Collector(cb);
    await rig.run(() => ca.offloaded && rig.core.connectionCount === 1, 'offloaded');
    rig.a.close();
    await rig.run(() => rb.error !== undefined && ra.closed && rig.core.connectionCount === 0, 'reset and released');
    expect(rb.error?.code).toBe('ECONNRESET');
  }, 60_000);

  it('terminate without a returned state (the target lost the context): the socket is reset and leaves the demux', async () => {
    const rig = new OffloadRig({ policy: 'after-handshake', impair: { delayMs: 1 } });
    const { ca } = await rig.pair();
    const ra = new Collector(ca);
    await rig.run(() => ca.offloaded && rig.core.connectionCount === 1, 'offloaded');
    rig.core.hostGone(); // the target forgets every context (and resets the peer)
    let failure: Error | undefined;
    ca.terminateOffload().catch((e: Error) => { failure = e; });
    await rig.run(() => failure !== undefined && ra.closed, 'failed');
    expect(failure!.message).toContain('terminate failed');
    expect(ra.error?.code).toBe('ECONNRESET');
    expect(rig.a.demux.size).toBe(0);
    expect(rig.a.offload!.offloadedCount).toBe(0);
  }, 60_000);

  it('seeded: 24 runs with offload/terminate at random times under loss, reordering and duplication, streams exact', async () => {
    const failures: string[] = [];
    let cycles = 0;
    for (let i = 0; i < 24; i++) {
      const seed = `prop-${i}`;
      const rng = new Rng(seed);
      const rig = new OffloadRig({
        policy: 'manual', seed, terminateSendMode: i % 3 === 0 ? 'complete' : i % 3 === 1 ? 'chain' : 'alternate',
        impair: { delayMs: 1 + rng.int(3), loss: 0.02, reorder: 0.02, reorderDelayMs: 2, duplicate: 0.01 },
      });
      const { ca, cb } = await rig.pair();
      const ra = new Collector(ca);
      const rb = new Collector(cb);
      const da = payload(100 + i, 100_000 + rng.int(200_000));
      const db = payload(200 + i, 100_000 + rng.int(200_000));
      void writeAll(ca, da, { chunk: 1000 + rng.int(30_000) });
      void writeAll(cb, db, { chunk: 1000 + rng.int(30_000) });
      const flip = (): void => {
        if (ca.destroyed || (ra.ended && rb.ended)) return;
        const op = ca.offloaded ? ca.terminateOffload() : ca.offload();
        op.catch(() => {}); // not offloadable in some close states: fine
        rig.sim.after(1 + rng.int(30), flip);
      };
      rig.sim.after(rng.int(10), flip);
      try {
        await rig.run(() => (ra.ended && rb.ended) || ra.error !== undefined || rb.error !== undefined, `${seed} transfer`, 600_000);
        cycles += rig.a.offload!.stats.terminates;
        const mismatches = rig.a.offload!.stats.receiveMismatches;
        if (mismatches > 0) failures.push(`${seed}: ${mismatches} hand-overs where RcvNxt and the bytes given to the application disagree`);
        if (ra.error || rb.error) failures.push(`${seed}: error ${ra.error?.message ?? rb.error?.message}`);
        else if (rb.digest() !== sha256(da) || ra.digest() !== sha256(db)) failures.push(`${seed}: streams differ (${rb.bytes}/${da.length}, ${ra.bytes}/${db.length})`);
        else {
          // Closed both ways, wherever the connection was: nothing left on the target or the host.
          await rig.run(() => ra.closed && rb.closed && rig.core.connectionCount === 0 && rig.a.demux.size === 0 && rig.b.demux.size === 0, `${seed} release`, 600_000);
          if (rig.core.ledger.lentCount !== 0) failures.push(`${seed}: ${rig.core.ledger.lentCount} lent buffers not returned`);
        }
      } catch (e) {
        failures.push(`${seed}: ${(e as Error).message} (${rb.bytes}/${da.length}, ${ra.bytes}/${db.length})`);
      }
    }
    expect(failures).toEqual([]);
    console.log(`seeded offload runs: ${cycles} terminates in 24 runs`);
    expect(cycles).toBeGreaterThanOrEqual(48);
  }, 60_000);
});
