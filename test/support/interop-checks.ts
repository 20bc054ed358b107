/**
 * The checks every Linux interop transfer ends with: both byte streams exact (sizes and SHA-256 at
 * both ends), and the independent capture showing one whole connection (no stream gap, both FINs,
 * and no RST when asked). One definition for the offload, terminate and forwarder interop tests.
 */
import { expect } from 'vitest';
import type { ConnectionReport, FlowAnalysis } from '../../src/capture/index.js';
import type { PeerReport } from './host-peer.js';
import { sha256, type Collector } from './host-sim.js';

/** The stack sent `sent` to the peer and collected in `c` the `fromPeer` bytes the peer sent. */
export function expectExactExchange(c: Collector, report: PeerReport, sent: Uint8Array, fromPeer: number): void {
  expect(c.error).toBeUndefined();
  expect(report.error).toBeUndefined();
  expect(report.recvBytes).toBe(sent.length);
  expect(report.recvSha).toBe(sha256(sent));
  expect(report.sentBytes).toBe(fromPeer);
  expect(c.bytes).toBe(fromPeer);
  expect(c.digest()).toBe(report.sentSha);
}

/** One connection on the capture, no stream gap and a FIN each way; `noRst`: no RST either way. */
export function expectWholeConnection(analysis: FlowAnalysis, opts: { noRst: boolean }): ConnectionReport {
  expect(analysis.connections).toHaveLength(1);
  const conn = analysis.connections[0]!;
  for (const d of [conn.ab, conn.ba]) {
    if (opts.noRst) expect(d.rst).toBeUndefined();
    expect(d.gaps.streamBytes).toBe(0);
    expect(d.fin).toBeDefined();
  }
  return conn;
}
