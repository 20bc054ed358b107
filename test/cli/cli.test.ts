import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { PcapWriter, memorySink } from '../../src/capture/pcap-writer.js';
import { buildTcpFrame } from '../../src/wire/frame.js';
import { ipv4, mac } from '../../src/wire/addresses.js';
import { TCP_ACK, TCP_SYN, type TcpSegment } from '../../src/wire/tcp-segment.js';
import { writeFileSync } from 'node:fs';

const dir = mkdtempSync(join(tmpdir(), 'chimney-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function capture(): { out: string[]; err: string[]; io: { out: (s: string) => void; err: (s: string) => void } } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (s) => out.push(s), err: (s) => err.push(s) } };
}

/** A tiny handshake + data capture; `skipMiddle` leaves out a data segment the receiver never acknowledges. */
function writePcap(path: string, skipMiddle: boolean): void {
  const sink = memorySink();
  const w = new PcapWriter(sink, 'ethernet');
  const A = { mac: mac('02:00:00:00:00:01'), ip: ipv4('10.9.0.1'), port: 4000 };
  const B = { mac: mac('02:00:00:00:00:02'), ip: ipv4('10.9.0.2'), port: 80 };
  let t = 0;
  const put = (from: typeof A, to: typeof A, seg: Partial<TcpSegment>): void => {
    const s: TcpSegment = { srcPort: from.port, dstPort: to.port, seq: 0, ack: 0, flags: TCP_ACK, window: 65535, urgent: 0, options: {}, payload: new Uint8Array(0), ...seg };
    w.write(buildTcpFrame({ srcMac: from.mac, dstMac: to.mac, ip: { version: 4, src: from.ip, dst: to.ip }, segment: s }), (t += 1));
  };
  put(A, B, { seq: 100, flags: TCP_SYN, options: { mss: 1460 } });
  put(B, A, { seq: 500, ack: 101, flags: TCP_SYN | TCP_ACK, options: { mss: 1460 } });
  put(A, B, { seq: 101, ack: 501 });
  put(A, B, { seq: 101, ack: 501, payload: new Uint8Array(1000).fill(1) });
  if (!skipMiddle) put(A, B, { seq: 1101, ack: 501, payload: new Uint8Array(1000).fill(2) });
  put(A, B, { seq: 2101, ack: 501, payload: new Uint8Array(1000).fill(3) });
  put(B, A, { seq: 501, ack: skipMiddle ? 1101 : 3101 });
  writeFileSync(path, sink.bytes());
}

describe('chimney command', () => {
  it('--help lists the commands; no command is a usage error (exit 2); unknown command exit 2', async () => {
    let c = capture();
    expect(await main(['--help'], c.io)).toBe(0);
    expect(c.out.join('\n')).toMatch(/verify/);
    c = capture();
    expect(await main([], c.io)).toBe(2);
    c = capture();
    expect(await main(['frobnicate'], c.io)).toBe(2);
    expect(c.err.join('\n')).toMatch(/unknown command 'frobnicate'/);
  });

  it('--version prints the package version', async () => {
    const c = capture();
    expect(await main(['--version'], c.io)).toBe(0);
    expect(c.out[0]).toBe(JSON.parse(readFileSync('package.json', 'utf8')).version);
  });

  it('verify: a whole capture is ok (exit 0); a stream gap makes it fail (exit 1) and names the bytes', async () => {
    const good = join(dir, 'good.pcap');
    const bad = join(dir, 'bad.pcap');
    writePcap(good, false);
    writePcap(bad, true);
    let c = capture();
    expect(await main(['verify', good], c.io)).toBe(0);
    expect(c.out.at(-1)).toBe('verdict: ok');
    expect(c.out.join('\n')).toMatch(/3000 bytes/);
    c = capture();
    expect(await main(['verify', bad], c.io)).toBe(1);
    expect(c.out.join('\n')).toMatch(/stream gap: 1000 bytes/);
    c = capture();
    expect(await main(['verify', join(dir, 'missing.pcap')], c.io)).toBe(3);
    c = capture();
    expect(await main(['verify'], c.io)).toBe(2);
  });

  it('verify/graph --events: the offload and upload moments of the target log are listed per connection and marked on the graph', async () => {
    const good = join(dir, 'ev.pcap');
    writePcap(good, false);
    const log = join(dir, 'target.log');
    writeFileSync(log, [
      JSON.stringify({ level: 30, time: 2, msg: 'connection offloaded', ctx: 1, handle: 3, flow: '10.9.0.2:80>10.9.0.1:4000' }),
      'not json: a readable line',
      JSON.stringify({ level: 30, time: 4, msg: 'connection uploaded', ctx: 1, handle: 3, flow: '10.9.0.2:80>10.9.0.1:4000' }),
      JSON.stringify({ level: 30, time: 5, msg: 'connection offloaded', ctx: 2, handle: 6, flow: '10.9.0.2:81>10.9.0.1:4001' }),
      JSON.stringify({ level: 30, time: 6, msg: 'target listening' }),
    ].join('\n'));
    let c = capture();
    expect(await main(['verify', good, '--events', log], c.io)).toBe(0);
    expect(c.out).toContain('  hand-overs: 1 offloads, 1 terminates: offload +0.001 s, terminate +0.003 s');
    expect(c.out).toContain('note: 1 line(s) of the event log were not JSON and were skipped');
    c = capture();
    expect(await main(['verify', good, '--events', log, '--json'], c.io)).toBe(0);
    const j = JSON.parse(c.out.join('\n')) as { connections: Array<{ handovers: unknown[] }> };
    expect(j.connections[0].handovers).toEqual([{ timeMs: 2, kind: 'offload', flow: '10.9.0.2:80>10.9.0.1:4000' }, { timeMs: 4, kind: 'terminate', flow: '10.9.0.2:80>10.9.0.1:4000' }]);
    c = capture();
    expect(await main(['verify', good, '--events', join(dir, 'no-such.log')], c.io)).toBe(3);
    expect(c.err.join('\n')).toMatch(/cannot read the event log/);
    const svg = join(dir, 'ev.svg');
    c = capture();
    expect(await main(['graph', good, '--out', svg, '--events', log], c.io)).toBe(0);
    expect(c.out[0]).toMatch(/2 hand-over marks/);
    const text = readFileSync(svg, 'utf8');
    expect(text).toMatch(/>offload</);
    expect(text).toMatch(/>terminate</);
  });

  it('graph: writes an SVG of the busiest flow (and a PNG when a converter exists)', async () => {
    const good = join(dir, 'g.pcap');
    writePcap(good, false);
    const svg = join(dir, 'g.svg');
    const c = capture();
    expect(await main(['graph', good, '--out', svg, '--png', join(dir, 'g.png')], c.io)).toBe(0);
    const text = readFileSync(svg, 'utf8');
    expect(text.startsWith('<svg') || text.startsWith('<?xml')).toBe(true);
    expect(text).toMatch(/10\.9\.0\.1/);
    if (c.out.some((l) => l.startsWith('wrote') && l.endsWith('.png'))) expect(readdirSync(dir)).toContain('g.png');
    else console.log('graph: no PNG converter here, only the SVG was checked');
    expect(await main(['graph', good], capture().io)).toBe(2);
  });
});
