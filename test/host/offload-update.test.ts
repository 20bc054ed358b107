/**
 * The host side of update, invalidate and query (spec 2.2-2.4; issue 4 deliverable 5): a neighbor's
 * MAC or the path MTU changing while a connection is offloaded reaches the target as an
 * UpdateOffload, invalidate hands the connection back, query reads the target's live state.
 */
import { describe, expect, it } from 'vitest';
import { OffloadRig } from '../support/offload-rig.js';
import { Collector, IP_A, IP_B, MAC_A, MAC_B, payload, runSimFor, sha256, writeAll } from '../support/host-sim.js';
import { buildArpFrame, buildIcmpv4Frame, buildIpv4TcpPacket, parseFrame } from '../../src/wire/frame.js';
import { ARP_REPLY } from '../../src/wire/arp.js';
import { ICMP_DEST_UNREACHABLE, ICMP_UNREACH_FRAG_NEEDED } from '../../src/wire/icmp.js';
import { mac, macToString } from '../../src/wire/addresses.js';
import { TCP_ACK } from '../../src/wire/tcp-segment.js';
import type { TcpSocket } from '../../src/host/socket.js';

const MAC_X = mac('02:00:00:00:00:99');
/** A 100 Mbit/s wire, so the sender is still sending when the ICMP arrives. */
const RATE_LIMITED = { delayMs: 1, rateBps: 100e6, queueFrames: 100 };

/** B announces `senderMac` for its address (an ARP reply to A), as a replaced NIC would. */
function announce(rig: OffloadRig, senderMac: Uint8Array): void {
  rig.peerWire.send([buildArpFrame({ srcMac: senderMac, dstMac: MAC_A, arp: { op: ARP_REPLY, senderMac, senderIp: IP_B, targetMac: MAC_A, targetIp: IP_A } })]);
}

/** A router on the way reports that A's packets to B need at most `mtu` bytes (RFC 1191). */
function fragNeeded(rig: OffloadRig, ca: TcpSocket, mtu: number): void {
  const quoted = buildIpv4TcpPacket({
    ip: { version: 4, src: IP_A, dst: IP_B },
    segment: { srcPort: ca.localPort, dstPort: 80, seq: 1, ack: 1, flags: TCP_ACK, window: 100, urgent: 0, options: {}, payload: new Uint8Array(0) },
  }).subarray(0, 28);
  rig.peerWire.send([buildIcmpv4Frame({
    srcMac: MAC_B, dstMac: MAC_A, ip: { version: 4, src: IP_B, dst: IP_A },
    icmp: { kind: 'error', type: ICMP_DEST_UNREACHABLE, code: ICMP_UNREACH_FRAG_NEEDED, nextHopMtu: mtu, original: quoted },
  })]);
}

/** Data frames of the connection the target sent from index `from` on: [destination MAC, IP length]. */
function dataFrames(rig: OffloadRig, from = 0): Array<[string, number]> {
  return rig.wireOut.slice(from).flatMap((f) => {
    const p = parseFrame(f);
    return typeof p !== 'string' && p.tcp && p.ip && p.tcp.payload.length > 0 ? [[macToString(p.eth.dst), f.length - 14] as [string, number]] : [];
  });
}

/** A recorded rig with A writing `bytes` to B, returned once B has some of them (and A is offloaded, unless the policy is 'never'). */
async function transferUnderway(opts: Omit<ConstructorParameters<typeof OffloadRig>[0], 'recordWire'>, seed: number, bytes: number): Promise<{ rig: OffloadRig; ca: TcpSocket; rb: Collector; data: Buffer }> {
  const rig = new OffloadRig({ ...opts, recordWire: true });
  const { ca, cb } = await rig.pair();
  const rb = new Collector(cb);
  if (opts.policy !== 'never') await rig.run(() => ca.offloaded, 'offloaded');
  const data = payload(seed, bytes);
  void writeAll(ca, data);
  await rig.run(() => rb.bytes > 100_000, 'some data');
  return { rig, ca, rb, data };
}

describe('host update / invalidate / query while offloaded (spec 2.2-2.4)', () => {
  it('spec 2.2: the peer MAC changes (ARP) while offloaded: a neighbor UpdateOffload moves the target to it; back again, the stream stays exact', async () => {
    const { rig, ca, rb, data } = await transferUnderway({ policy: 'after-handshake' }, 21, 600_000);
    announce(rig, MAC_X);
    await rig.run(() => dataFrames(rig).some(([m]) => m === macToString(MAC_X)), 'a frame to the new MAC');
    expect(rig.a.offload!.stats.updates).toBe(1);
    await runSimFor(rig.sim, 50); // B drops what goes to X (not its MAC): retransmissions make up for it
    announce(rig, MAC_B);
    await rig.run(() => rb.ended, 'all data at B', 60_000);
    expect(rb.digest()).toBe(sha256(data));
    expect(rig.a.offload!.stats.updates).toBe(2);
    expect(dataFrames(rig).at(-1)?.[0]).toBe(macToString(MAC_B));
    expect(ca.offloaded).toBe(true);
  });

  it('spec 2.2 / RFC 1191: "fragmentation needed" while offloaded becomes a path UpdateOffload; the target then sends segments that fit', async () => {
    const { rig, ca, rb, data } = await transferUnderway({ policy: 'after-handshake', impair: RATE_LIMITED }, 22, 4_000_000);
    expect(Math.max(...dataFrames(rig).map(([, len]) => len))).toBe(1500);
    fragNeeded(rig, ca, 1000);
    await runSimFor(rig.sim, 2); // the ICMP reaches the host, the update the target
    const mark = rig.wireOut.length;
    await rig.run(() => rb.ended, 'all data at B', 60_000);
    expect(rb.digest()).toBe(sha256(data));
    expect(rig.a.stats.pathMtuUpdates).toBe(1);
    expect(rig.a.offload!.stats.updates).toBe(1);
    const after = dataFrames(rig, mark);
    expect(after.length).toBeGreaterThan(100);
    expect(Math.max(...after.map(([, len]) => len))).toBe(1000);
  });

  it('RFC 1191 on the host engine (never offloaded): segments shrink to the reported MTU; 0 and larger MTUs are ignored and counted', async () => {
    const { rig, ca, rb, data } = await transferUnderway({ policy: 'never', impair: RATE_LIMITED }, 23, 4_000_000);
    fragNeeded(rig, ca, 0);
    fragNeeded(rig, ca, 1600);
    fragNeeded(rig, ca, 1200);
    await runSimFor(rig.sim, 2);
    const mark = rig.wireOut.length;
    await rig.run(() => rb.ended, 'all data at B', 60_000);
    expect(rb.digest()).toBe(sha256(data));
    expect(rig.a.stats.pathMtuUpdates).toBe(1);
    expect(rig.a.drops.snapshot()['icmp-pmtu-ignored']).toBe(2);
    expect(Math.max(...dataFrames(rig, mark).map(([, len]) => len))).toBe(1200);
  });

  it('spec 2.3: query returns the live delegated state: its sequence numbers are the peer engine\'s, exactly', async () => {
    const rig = new OffloadRig({ policy: 'after-handshake' });
    const { ca, cb } = await rig.pair();
    const rb = new Collector(cb);
    const ra = new Collector(ca);
    await rig.run(() => ca.offloaded, 'offloaded');
    ca.write(payload(24, 70_000));
    cb.write(payload(25, 30_000));
    await rig.run(() => rb.bytes === 70_000 && ra.bytes === 30_000, 'both transfers');
    await runSimFor(rig.sim, 500); // the last ACKs
    const d = await queried(rig, ca);
    const peer = cb.connection;
    expect([d.sndUna, d.sndNxt, d.rcvNxt]).toEqual([peer.rcvNxt, peer.rcvNxt, peer.sndNxt]);
    await expect(rig.a.offload!.query(cb)).rejects.toThrow(/not offloaded/);
  });

  it('spec 2.4: invalidate stops the target and the connection comes back to the host; the transfer finishes exact', async () => {
    const rig = new OffloadRig({ policy: 'after-handshake' });
    const { ca, cb } = await rig.pair();
    const rb = new Collector(cb);
    await rig.run(() => ca.offloaded, 'offloaded');
    const data = payload(26, 500_000);
    void writeAll(ca, data);
    await rig.run(() => rb.bytes > 100_000, 'some data');
    let done = false;
    void rig.a.offload!.invalidate(ca).then(() => { done = true; });
    await rig.run(() => done && !ca.offloaded && rig.core.connectionCount === 0, 'handed back');
    await rig.run(() => rb.ended, 'all data at B', 60_000);
    expect(rb.digest()).toBe(sha256(data));
    expect(rig.a.offload!.stats.terminates).toBe(1);
  });
});

/** Runs the simulator until the query answers. */
async function queried(rig: OffloadRig, s: TcpSocket): Promise<Awaited<ReturnType<NonNullable<OffloadRig['a']['offload']>['query']>>> {
  let out: Awaited<ReturnType<NonNullable<OffloadRig['a']['offload']>['query']>> | undefined;
  void rig.a.offload!.query(s).then((d) => { out = d; });
  await rig.run(() => out !== undefined, 'the query');
  return out!;
}
