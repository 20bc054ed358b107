/**
 * Raw link and kernel-RST suppression, in two namespaces this file creates: A owns the address the
 * raw socket serves (the raw link runs in a child process inside A, since a socket belongs to its
 * process's namespace), B runs a Linux TCP client and a tcpdump that counts RSTs on the wire.
 */
import { createRequire } from 'node:module';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labAvailable } from '../../src/lab/availability.js';
import { Lab } from '../../src/lab/lab.js';
import type { LabProcess } from '../../src/lab/process.js';
import { installRstSuppression, rstSuppressRuleset } from '../../src/lab/rst-suppress.js';
import { tsNodeArgs } from '../../src/lab/ts-child.js';
import { CHIMNEY_MARK } from '../../src/link/raw.js';

const avail = labAvailable(['ip', 'nft', 'tcpdump', 'python3']);
if (!avail.ok) console.warn(`skipping raw link tests: ${avail.reason}`);

const RAW_TS = fileURLToPath(new URL('../../src/link/raw.ts', import.meta.url));
const A = '10.202.0.1';
const B = '10.202.0.2';
const PORT = 8080;

interface PcapPacket {
  data: Buffer;
}
const pcapParser = createRequire(import.meta.url)('pcap-parser') as {
  parse(path: string): { on(ev: 'packet', fn: (p: PcapPacket) => void): void; on(ev: 'end', fn: () => void): void; on(ev: 'error', fn: (e: Error) => void): void };
};

/** TCP segments from A in an Ethernet pcap: flags, seq, ack. */
function readSegmentsFromA(path: string): Promise<Array<{ flags: number; seq: number; ack: number }>> {
  return new Promise((resolve, reject) => {
    const out: Array<{ flags: number; seq: number; ack: number }> = [];
    const p = pcapParser.parse(path);
    p.on('packet', ({ data }) => {
      if (data.readUInt16BE(12) !== 0x0800 || data[23] !== 6) return;
      if (data.subarray(26, 30).join('.') !== A) return;
      const t = 14 + (data[14]! & 0x0f) * 4;
      out.push({ flags: data[t + 13]!, seq: data.readUInt32BE(t + 4), ack: data.readUInt32BE(t + 8) });
    });
    p.on('end', () => resolve(out));
    p.on('error', reject);
  });
}

/** The raw link inside namespace A, printing what it sees; with `reset` it answers SYNs with its own RST. */
function rawChildScript(reset: boolean): string {
  return `
const { openRawLink } = await import(${JSON.stringify(RAW_TS)});
const link = openRawLink({ localAddress: ${JSON.stringify(A)} });
function sum(b) { let s = 0; for (let i = 0; i < b.length; i += 2) s += (b[i] << 8) | (b[i + 1] ?? 0); while (s > 0xffff) s = (s & 0xffff) + (s >>> 16); return s; }
link.setReceiver((frames) => {
  for (const p of frames) {
    if (p[9] !== 6) continue;
    const t = p.subarray((p[0] & 15) * 4);
    const v = new DataView(t.buffer, t.byteOffset, t.byteLength);
    if (v.getUint16(2) !== ${PORT}) continue;
    const seg = { flags: t[13], seq: v.getUint32(4), sport: v.getUint16(0) };
    console.log(JSON.stringify({ seg }));
    if (${reset} && (seg.flags & 0x02)) {
      const pkt = new Uint8Array(40);
      const d = new DataView(pkt.buffer);
      pkt[0] = 0x45; d.setUint16(2, 40); pkt[8] = 64; pkt[9] = 6;
      pkt.set(p.subarray(16, 20), 12); pkt.set(p.subarray(12, 16), 16);
      d.setUint16(20, ${PORT}); d.setUint16(22, seg.sport); d.setUint32(24, 0); d.setUint32(28, (seg.seq + 1) >>> 0);
      pkt[32] = 5 << 4; pkt[33] = 0x14;
      const pseudo = new Uint8Array([...pkt.subarray(12, 20), 0, 6, 0, 20]);
      d.setUint16(36, ~sum(new Uint8Array([...pseudo, ...pkt.subarray(20)])) & 0xffff);
      link.send([pkt]);
      console.log('sent-rst');
    }
  }
});
console.log('ready');
`;
}

const CONNECT = (timeoutS: number): string =>
  [
    'import socket',
    's = socket.socket()',
    `s.settimeout(${timeoutS})`,
    'try:',
    `    s.connect(("${A}", ${PORT}))`,
    '    print("connected")',
    'except ConnectionRefusedError:',
    '    print("refused")',
    'except socket.timeout:',
    '    print("timeout")',
  ].join('\n');

describe.skipIf(!avail.ok)('raw link and kernel RST suppression', () => {
  let lab: Lab;
  let nsA: string;
  let nsB: string;
  let devB: string;
  const pcaps: string[] = [];

  beforeAll(async () => {
    lab = new Lab();
    nsA = await lab.addNamespace('a');
    nsB = await lab.addNamespace('b');
    const { a, b } = await lab.addVeth(nsA, nsB);
    devB = b;
    await lab.addAddress(nsA, a, `${A}/24`);
    await lab.addAddress(nsB, b, `${B}/24`);
  });

  afterAll(async () => {
    for (const p of pcaps) rmSync(p, { force: true });
    await lab?.teardown();
  });

  async function startRaw(reset: boolean): Promise<LabProcess> {
    const p = lab.spawn(nsA, process.execPath, [...tsNodeArgs(), '--input-type=module', '-e', rawChildScript(reset)]);
    await p.waitForOutput(/ready/, 20_000);
    return p;
  }

  /** Runs a Linux connect() from B while tcpdump in B records; returns its result and A's segments. */
  async function connectAndCapture(timeoutS: number): Promise<{ result: string; fromA: Array<{ flags: number; seq: number; ack: number }> }> {
    const file = join(tmpdir(), `${lab.uniqueName('cap')}.pcap`);
    pcaps.push(file);
    const dump = lab.spawn(nsB, 'tcpdump', ['-i', devB, '-nn', '-U', '--immediate-mode', '-w', file, 'tcp']);
    await dump.waitForOutput(/listening on/);
    const { stdout } = await lab.exec(nsB, 'python3', ['-c', CONNECT(timeoutS)]);
    await new Promise((r) => setTimeout(r, 100)); // let a late RST reach the capture
    await dump.kill('SIGTERM');
    return { result: stdout.trim(), fromA: await readSegmentsFromA(file) };
  }

  const seenSyns = (p: LabProcess): Array<{ flags: number; seq: number }> =>
    p.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => (JSON.parse(l) as { seg: { flags: number; seq: number } }).seg)
      .filter((s) => s.flags & 0x02);

  it('without suppression: the raw socket sees the SYN, and the kernel resets the connection', async () => {
    const raw = await startRaw(false);
    const { result, fromA } = await connectAndCapture(3);
    expect(result).toBe('refused');
    expect(fromA.filter((s) => s.flags & 0x04).length).toBeGreaterThanOrEqual(1);
    expect(seenSyns(raw).length).toBeGreaterThanOrEqual(1);
    await raw.kill();
  });

  it('with the nftables rule: the kernel RST is dropped (counted), none reaches the wire, the SYN still reaches the raw socket', async () => {
    const sup = await installRstSuppression(lab, nsA, A);
    try {
      const raw = await startRaw(false);
      const { result, fromA } = await connectAndCapture(1.5);
      expect(result).toBe('timeout');
      expect(fromA.filter((s) => s.flags & 0x04)).toEqual([]);
      expect(await sup.suppressed()).toBeGreaterThanOrEqual(1);
      expect(seenSyns(raw).length).toBeGreaterThanOrEqual(1);
      await raw.kill();
    } finally {
      await sup.remove();
    }
  });

  it('with the rule: our own RST, sent on the raw socket with SO_MARK, passes and refuses the connection', async () => {
    const sup = await installRstSuppression(lab, nsA, A);
    try {
      const raw = await startRaw(true);
      const { result, fromA } = await connectAndCapture(3);
      expect(result).toBe('refused');
      await raw.waitForOutput(/sent-rst/);
      const syn = seenSyns(raw)[0]!;
      const rsts = fromA.filter((s) => s.flags & 0x04);
      expect(rsts.length).toBeGreaterThanOrEqual(1);
      expect(rsts[0]!.ack).toBe((syn.seq + 1) >>> 0); // exactly the RST the raw link built
      expect(await sup.suppressed()).toBeGreaterThanOrEqual(1); // the kernel's own RST was dropped
      await raw.kill();
    } finally {
      await sup.remove();
    }
  });

  it('remove() deletes the table; the lab deletes what is left at teardown', async () => {
    const listTables = async (ns: string): Promise<string> => (await lab.exec(ns, 'nft', ['list', 'tables'])).stdout;
    const sup = await installRstSuppression(lab, nsA, A);
    expect(await listTables(nsA)).toContain(sup.table.name);
    expect(rstSuppressRuleset(sup.table.name, A, CHIMNEY_MARK)).toContain(`meta mark != ${CHIMNEY_MARK}`);
    await sup.remove();
    expect(await listTables(nsA)).not.toContain(sup.table.name);

    const lab2 = new Lab();
    const ns = await lab2.addNamespace('t');
    const left = await installRstSuppression(lab2, ns, '10.203.0.1');
    expect(await listTables(ns)).toContain(left.table.name);
    await lab2.teardown();
    const { stdout } = await lab.exec(null, 'ip', ['netns', 'list']);
    expect(stdout).not.toContain(ns);
  });
});
