/**
 * TAP link against the real kernel: the TAP's netdev is moved into a namespace this file creates,
 * the kernel there talks to the JS side (ARP, ICMP echo, UDP, TCP with TSO/GRO).
 *
 * The few frame builders below are test-local on purpose: they check the addon and the link, not
 * src/wire (written concurrently), and the checksum used to *verify* is a plain byte loop
 * independent of the one in src/link/tap.ts.
 */
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab } from '../../src/lab/lab.js';
import { labAvailable } from '../../src/lab/availability.js';
import {
  loadTapAddon,
  openTapLink,
  prepareTcpGso,
  TUN_F_CSUM,
  TUN_F_TSO4,
  TUN_F_TSO6,
  VNET_GSO_NONE,
  VNET_GSO_TCPV4,
  VNET_HDR_F_NEEDS_CSUM,
  type TapLink,
  type VnetBatchInfo,
} from '../../src/link/tap.js';

const avail = labAvailable(['ip', 'python3']);
if (!avail.ok) console.warn(`skipping TAP tests: ${avail.reason}`);

const run = promisify(execFile);
const ADDON_PATH = new URL('../../build/Release/chimney_tap.node', import.meta.url).pathname;

// ---- test-local frame helpers -------------------------------------------------------------

const JS_MAC = Uint8Array.from([0x02, 0xc4, 0x11, 0x00, 0x00, 0x02]);
const KERNEL_IP = '10.201.0.1';
const JS_IP = '10.201.0.2';

const ip4 = (s: string): Uint8Array => Uint8Array.from(s.split('.').map(Number));
const macBytes = (s: string): Uint8Array => Uint8Array.from(s.split(':').map((h) => parseInt(h, 16)));
const eq = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

/** Reference Internet checksum, byte by byte (RFC 1071). */
function refSum(parts: Uint8Array[]): number {
  let sum = 0;
  for (const p of parts) {
    for (let i = 0; i < p.length; i += 2) sum += (p[i]! << 8) | (i + 1 < p.length ? p[i + 1]! : 0);
  }
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}
const refChecksum = (parts: Uint8Array[]): number => ~refSum(parts) & 0xffff;

function pseudo4(src: Uint8Array, dst: Uint8Array, proto: number, len: number): Uint8Array {
  return Uint8Array.from([...src, ...dst, 0, proto, len >> 8, len & 0xff]);
}

function ethernet(dst: Uint8Array, src: Uint8Array, type: number, payload: Uint8Array): Uint8Array {
  const f = new Uint8Array(14 + payload.length);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = type >> 8;
  f[13] = type & 0xff;
  f.set(payload, 14);
  return f;
}

function ipv4(src: Uint8Array, dst: Uint8Array, proto: number, payload: Uint8Array): Uint8Array {
  const p = new Uint8Array(20 + payload.length);
  const v = new DataView(p.buffer);
  p[0] = 0x45;
  v.setUint16(2, p.length);
  v.setUint16(6, 0x4000); // DF
  p[8] = 64;
  p[9] = proto;
  p.set(src, 12);
  p.set(dst, 16);
  v.setUint16(10, refChecksum([p.subarray(0, 20)]));
  p.set(payload, 20);
  return p;
}

function udp(src: Uint8Array, dst: Uint8Array, sport: number, dport: number, data: Uint8Array): Uint8Array {
  const u = new Uint8Array(8 + data.length);
  const v = new DataView(u.buffer);
  v.setUint16(0, sport);
  v.setUint16(2, dport);
  v.setUint16(4, u.length);
  u.set(data, 8);
  v.setUint16(6, refChecksum([pseudo4(src, dst, 17, u.length), u]) || 0xffff);
  return ipv4(src, dst, 17, u);
}

interface TcpFields {
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  flags: number;
  window?: number;
  mss?: number;
}
const SYN = 0x02;
const ACK = 0x10;
const PSH = 0x08;
const FIN = 0x01;
const RST = 0x04;

function tcp(src: Uint8Array, dst: Uint8Array, t: TcpFields, data: Uint8Array): Uint8Array {
  const opt = t.mss ? 4 : 0;
  const h = new Uint8Array(20 + opt + data.length);
  const v = new DataView(h.buffer);
  v.setUint16(0, t.sport);
  v.setUint16(2, t.dport);
  v.setUint32(4, t.seq >>> 0);
  v.setUint32(8, t.ack >>> 0);
  h[12] = ((20 + opt) / 4) << 4;
  h[13] = t.flags;
  v.setUint16(14, t.window ?? 65535);
  if (t.mss) {
    h.set([2, 4, t.mss >> 8, t.mss & 0xff], 20);
  }
  h.set(data, 20 + opt);
  v.setUint16(16, refChecksum([pseudo4(src, dst, 6, h.length), h]));
  return ipv4(src, dst, 6, h);
}

interface Parsed {
  ethType: number;
  srcMac: Uint8Array;
  ip?: { src: Uint8Array; dst: Uint8Array; proto: number; hdrLen: number; totalLen: number };
  l4?: Uint8Array; // from the L4 header to the end of the IP packet
}

function parse(f: Uint8Array): Parsed {
  const v = new DataView(f.buffer, f.byteOffset, f.byteLength);
  const out: Parsed = { ethType: v.getUint16(12), srcMac: f.slice(6, 12) };
  if (out.ethType === 0x0800) {
    const hl = (f[14]! & 0x0f) * 4;
    const total = v.getUint16(16);
    out.ip = { src: f.subarray(26, 30), dst: f.subarray(30, 34), proto: f[23]!, hdrLen: hl, totalLen: total };
    out.l4 = f.subarray(14 + hl, 14 + total);
  }
  return out;
}

/** Answers ARP for JS_IP and ICMP echo to JS_IP; returns true if the frame was one of those. */
function respond(link: TapLink, f: Uint8Array, echoPayloads?: Uint8Array[]): boolean {
  const p = parse(f);
  if (p.ethType === 0x0806 && f[21] === 1 && eq(f.subarray(38, 42), ip4(JS_IP))) {
    const arp = new Uint8Array(28);
    arp.set(f.subarray(14, 20), 0); // htype, ptype, hlen, plen
    arp[7] = 2; // reply
    arp.set(JS_MAC, 8);
    arp.set(ip4(JS_IP), 14);
    arp.set(f.subarray(22, 28), 18);
    arp.set(f.subarray(28, 32), 24);
    link.send([ethernet(p.srcMac, JS_MAC, 0x0806, arp)]);
    return true;
  }
  if (p.ip && p.ip.proto === 1 && p.l4 && p.l4[0] === 8 && eq(p.ip.dst, ip4(JS_IP))) {
    expect(refSum([p.l4])).toBe(0xffff); // the kernel's ICMP checksum verifies
    const reply = p.l4.slice();
    reply[0] = 0;
    reply[2] = 0;
    reply[3] = 0;
    const c = refChecksum([reply]);
    reply[2] = c >> 8;
    reply[3] = c & 0xff;
    echoPayloads?.push(p.l4.slice(8));
    link.send([ethernet(p.srcMac, JS_MAC, 0x0800, ipv4(ip4(JS_IP), p.ip.src, 1, reply))]);
    return true;
  }
  return false;
}

async function kernelMac(lab: Lab, ns: string, dev: string): Promise<Uint8Array> {
  const { stdout } = await lab.exec(ns, 'ip', ['-j', 'link', 'show', 'dev', dev]);
  return macBytes((JSON.parse(stdout) as Array<{ address: string }>)[0]!.address);
}

function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const tick = (): void => {
      if (cond()) return resolve();
      if (Date.now() - t0 > timeoutMs) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 5);
    };
    tick();
  });
}

describe('TAP addon loading', () => {
  it('without a build, says the addon is not built and how to build it (code ENOADDON)', async () => {
    // A copy of the module in a tree without build/Release: what a fresh checkout sees.
    const root = mkdtempSync(join(tmpdir(), 'chimney-noaddon-'));
    try {
      mkdirSync(join(root, 'src/link'), { recursive: true });
      for (const f of ['tap.ts', 'link.ts']) copyFileSync(new URL(`../../src/link/${f}`, import.meta.url), join(root, 'src/link', f));
      const mod = (await import(join(root, 'src/link/tap.ts'))) as typeof import('../../src/link/tap.js');
      let err: NodeJS.ErrnoException | undefined;
      try {
        mod.openTapLink({ name: 'chnever0' });
      } catch (e) {
        err = e as NodeJS.ErrnoException;
      }
      expect(err?.code).toBe('ENOADDON');
      expect(err?.message).toMatch(/not built.*npm install.*npx node-gyp rebuild/s);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

// ---- the lab: one namespace per TAP, the TAP's netdev inside it ------------------------------

interface Rig {
  lab: Lab;
  ns: string;
  link: TapLink;
  kmac: Uint8Array;
}

async function rig(lab: Lab, label: string, opts: { vnetHdr?: boolean } = {}): Promise<Rig> {
  const ns = await lab.addNamespace(label);
  await lab.sysctl(ns, 'net.ipv6.conf.all.disable_ipv6', 1); // no ND/MLD chatter in the captures
  await lab.sysctl(ns, 'net.ipv6.conf.default.disable_ipv6', 1);
  const link = openTapLink({ name: lab.devName(label), vnetHdr: opts.vnetHdr });
  lab.onTeardown(() => link.close());
  lab.adoptDevice(link.name);
  await lab.moveLink(link.name, ns);
  await lab.addAddress(ns, link.name, `${KERNEL_IP}/24`);
  await lab.setLink(ns, link.name, { txqueuelen: 4096, up: true });
  return { lab, ns, link, kmac: await kernelMac(lab, ns, link.name) };
}

describe.skipIf(!avail.ok)('TAP link (native addon) against the kernel', () => {
  let lab: Lab;
  let plain: Rig;

  beforeAll(async () => {
    lab = new Lab();
    plain = await rig(lab, 'p');
  });

  afterAll(async () => {
    await lab?.teardown();
  });

  it('opens with the requested name, Ethernet layer, no vnet header', () => {
    expect(plain.link.name).toBe(lab.devName('p'));
    expect(plain.link.layer).toBe('ethernet');
    expect(plain.link.mtu).toBe(1500);
    expect(plain.link.vnetHdr).toBe(false);
    expect(plain.link.offloads).toBe(0);
  });

  it('answers ARP and ICMP echo from JS: `ping -c 3` succeeds and the echoed payload is intact', async () => {
    const payloads: Uint8Array[] = [];
    plain.link.setReceiver((frames) => {
      for (const f of frames) respond(plain.link, f, payloads);
    });
    const { stdout } = await lab.exec(plain.ns, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', '-p', 'c0ffee42', JS_IP]);
    expect(stdout).toMatch(/3 packets transmitted, 3 received/);
    expect(stdout).not.toMatch(/wrong data byte|DUP!/); // ping compares the echoed bytes itself
    expect(payloads).toHaveLength(3);
    for (const p of payloads) {
      // 56 bytes: a 16-byte struct timeval, then the -p pattern repeated
      expect(p.length).toBe(56);
      expect(Buffer.from(p.subarray(16)).toString('hex')).toBe('c0ffee42'.repeat(10));
    }
    const c = plain.link.counters;
    expect(c.framesIn).toBeGreaterThanOrEqual(4); // >= 1 ARP request + 3 echo requests
    expect(c.framesOut).toBeGreaterThanOrEqual(4);
  });

  it('delivers a readable burst in one callback: 2000 queued UDP datagrams arrive in order, at most 256 per batch', async () => {
    const { link, ns } = plain;
    await lab.exec(ns, 'ip', ['neigh', 'replace', JS_IP, 'lladdr', '02:c4:11:00:00:02', 'dev', link.name, 'nud', 'permanent']);
    const batches: number[] = [];
    const seen: number[] = [];
    link.setReceiver((frames) => {
      let n = 0;
      for (const f of frames) {
        const p = parse(f);
        if (p.ip?.proto === 17 && p.l4 && new DataView(p.l4.buffer, p.l4.byteOffset).getUint16(2) === 9999) {
          expect(refSum([pseudo4(p.ip.src, p.ip.dst, 17, p.l4.length), p.l4])).toBe(0xffff);
          seen.push(new DataView(p.l4.buffer, p.l4.byteOffset + 8).getUint32(0));
          n++;
        }
      }
      if (n) batches.push(frames.length);
    });
    const before = link.tapCounters();
    // Not reading while the kernel queues them makes the burst deterministic.
    link.pauseReceive();
    await lab.exec(ns, 'python3', [
      '-c',
      [
        'import socket, struct',
        's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
        `for i in range(2000): s.sendto(struct.pack("!I", i) + bytes(60), ("${JS_IP}", 9999))`,
      ].join('\n'),
    ]);
    link.resumeReceive();
    await waitFor(() => seen.length >= 2000, 10_000, '2000 datagrams');
    expect(seen).toEqual(Array.from({ length: 2000 }, (_, i) => i));
    expect(Math.max(...batches)).toBe(256);
    expect(batches.length).toBeLessThan(2000 / 100);
    const after = link.tapCounters();
    expect(after.burstCapHits - before.burstCapHits).toBeGreaterThanOrEqual(7); // 2000 / 256
    expect(after.maxBurst).toBe(256);
    expect(after.framesIn - before.framesIn).toBeGreaterThanOrEqual(2000);
  });

  it('queues frames natively on EAGAIN and sends them in order once writable', async () => {
    const { link, ns, kmac } = plain;
    const listener = lab.spawn(ns, 'python3', [
      '-u',
      '-c',
      [
        'import socket',
        's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
        `s.bind(("${KERNEL_IP}", 7000))`,
        'print("ready", flush=True)',
        'while True:',
        '    d, a = s.recvfrom(2048)',
        '    print("got " + d.decode(), flush=True)',
      ].join('\n'),
    ]);
    await listener.waitForOutput(/ready/);
    const frames = [0, 1, 2, 3, 4].map((i) =>
      ethernet(kmac, JS_MAC, 0x0800, udp(ip4(JS_IP), ip4(KERNEL_IP), 40000, 7000, new TextEncoder().encode(`m${i}`))),
    );
    const before = link.tapCounters();
    link.device._testFailWrites(3, 11 /* EAGAIN */);
    expect(link.device.write(frames)).toBe(5); // all accepted: 5 queued behind the first EAGAIN
    expect(link.device.queued).toBe(5);
    await listener.waitForOutput(/got m4/);
    expect(listener.stdout.match(/got m\d/g)).toEqual(['got m0', 'got m1', 'got m2', 'got m3', 'got m4']);
    const after = link.tapCounters();
    expect(after.eagainWrites - before.eagainWrites).toBe(3);
    expect(after.queued).toBe(0);
    expect(after.framesOut - before.framesOut).toBe(5);
    expect(after.dropsOut - before.dropsOut).toBe(0);
    await listener.kill();
  });

  it('drops and counts what does not fit the native queue, and write errors other than EAGAIN', () => {
    const { link, kmac } = plain;
    const frame = ethernet(kmac, JS_MAC, 0x0800, udp(ip4(JS_IP), ip4(KERNEL_IP), 40000, 7001, new Uint8Array(8)));
    const linkBefore = { ...link.counters };
    const before = link.tapCounters();
    link.device._testFailWrites(1, 22 /* EINVAL */);
    expect(link.device.write([frame, frame])).toBe(1);
    let after = link.tapCounters();
    expect(after.writeErrors - before.writeErrors).toBe(1);
    expect(after.lastWriteError).toBe('EINVAL');
    expect(after.framesOut - before.framesOut).toBe(1);

    const max = loadTapAddon().constants.QUEUE_MAX_FRAMES!;
    link.device._testFailWrites(1_000_000, 11);
    const accepted = link.device.write(Array.from({ length: max + 76 }, () => frame));
    expect(accepted).toBe(max);
    after = link.tapCounters();
    expect(after.queued).toBe(max);
    expect(after.dropsOut - before.dropsOut).toBe(1 + 76);
    expect(link.counters.dropsOut - linkBefore.dropsOut).toBe(1 + 76);
    link.device._testFailWrites(0, 0);
  });

  it('reports the errors it documents: EBUSY, EINVAL, EEXIST, ENOENT (+ fix in the message)', () => {
    const addon = loadTapAddon();
    const err = (fn: () => unknown): NodeJS.ErrnoException => {
      try {
        fn();
      } catch (e) {
        return e as NodeJS.ErrnoException;
      }
      throw new Error('did not throw');
    };
    // (The rigs' netdevs live in lab namespaces; EBUSY needs an attached TAP in this namespace.)
    const here = openTapLink({ name: lab.devName('x%d') });
    lab.onTeardown(() => here.close());
    const busy = err(() => addon.openTap(here.name));
    expect(busy.code).toBe('EBUSY');
    expect(busy.message).toMatch(/already attached/);

    const bad = err(() => addon.openTap('bad/name'));
    expect(bad.code).toBe('EINVAL');
    expect(bad.message).toMatch(/invalid TAP name/);
    const long = err(() => addon.openTap('x'.repeat(16)));
    expect(long.code).toBe('EINVAL');
    expect(long.message).toMatch(/at most 15/);
    const exists = err(() => addon.openTap('lo'));
    expect(exists.code).toBe('EEXIST');
    expect(exists.message).toMatch(/not a TAP/);
    const noDev = err(() => addon.openTap('chnone', { devicePath: '/nonexistent/tun' }));
    expect(noDev.code).toBe('ENOENT');
    expect(noDev.message).toMatch(/modprobe tun/);
    const noVnet = err(() => addon.openTap('chnone', { offloads: TUN_F_CSUM }));
    expect(noVnet.code).toBe('EINVAL');
  });

  it('names the fix when /dev/net/tun is missing (ENOENT) or CAP_NET_ADMIN is missing (EPERM)', async () => {
    const script = `const a=require(${JSON.stringify(ADDON_PATH)});try{a.openTap('${lab.devName('e')}');console.log('{}')}catch(e){console.log(JSON.stringify({code:e.code,message:e.message}))}`;
    // A private mount namespace with an empty /dev/net: the real ENOENT path, nothing else affected.
    const noent = await run('unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', 'mount -t tmpfs tmpfs /dev/net && exec "$0" -e "$1"', process.execPath, script]);
    const e1 = JSON.parse(noent.stdout) as { code: string; message: string };
    expect(e1.code).toBe('ENOENT');
    expect(e1.message).toMatch(/--device \/dev\/net\/tun/);
    // Root without CAP_NET_ADMIN in the bounding set: TUNSETIFF fails.
    const perm = await run('setpriv', ['--bounding-set', '-net_admin', '--', process.execPath, '-e', script]);
    const e2 = JSON.parse(perm.stdout) as { code: string; message: string };
    expect(e2.code).toBe('EPERM');
    expect(e2.message).toMatch(/CAP_NET_ADMIN/);
  });

  it('a worker that exits or is terminated with devices open (reading, queued, closed) tears down cleanly', async () => {
    // Regression: uv_close callbacks run after a worker's teardown, when the addon is unloaded;
    // the async cleanup hook keeps it loaded until they have run (this used to SIGSEGV).
    const worker = [
      `const a = require(${JSON.stringify(ADDON_PATH)});`,
      'const mode = require("worker_threads").workerData;',
      `const d = a.openTap(${JSON.stringify(lab.devName('w%d'))}); d.start(() => {});`,
      `const e = a.openTap(${JSON.stringify(lab.devName('w%d'))});`,
      'if (mode === 1) { d._testFailWrites(1000, 11); d.write([new Uint8Array(60)]); }',
      'if (mode === 2) { d.close(); e.close(); }',
      'if (mode !== 3) setTimeout(() => process.exit(0), 30);',
    ].join('\n');
    const main = [
      'const { Worker } = require("worker_threads");',
      'const codes = [];',
      'for (let i = 0; i < 4; i++) {',
      `  const w = new Worker(${JSON.stringify(worker)}, { eval: true, workerData: i });`,
      '  w.on("exit", (c) => { codes.push(i); if (codes.length === 4) console.log("all exited"); });',
      '  if (i === 3) setTimeout(() => w.terminate(), 60);',
      '}',
    ].join('\n');
    const { stdout } = await run(process.execPath, ['-e', main]);
    expect(stdout.trim()).toBe('all exited');
    const { stdout: links } = await run('ip', ['-br', 'link']);
    expect(links).not.toContain(lab.devName('w'));
  });

  it('negotiates the vnet header and offloads, falling back to what the kernel accepts', () => {
    const addon = loadTapAddon();
    const d = addon.openTap(lab.devName('v%d'), { vnetHdr: true, offloads: TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | 0x8000 });
    try {
      expect(d.vnetHdrSize).toBe(12);
      expect(d.vnetLittleEndian).toBe(true);
      // 0x8000 is no TUN_F_* bit: dropped, the rest accepted
      expect(d.offloads).toBe(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6);
    } finally {
      d.close();
    }
    const tsoOnly = addon.openTap(lab.devName('v%d'), { vnetHdr: true, offloads: TUN_F_TSO4 });
    try {
      expect(tsoOnly.offloads).toBe(TUN_F_CSUM | TUN_F_TSO4); // TSO implies checksum offload
    } finally {
      tsoOnly.close();
    }
  });

  it('close is idempotent, removes the netdev, and counts later sends as drops', async () => {
    const r = await rig(lab, 'c');
    expect((await lab.exec(r.ns, 'ip', ['link', 'show', r.link.name])).stdout).toContain(r.link.name);
    await r.link.close();
    await r.link.close();
    expect(r.link.device.closed).toBe(true);
    await expect(lab.exec(r.ns, 'ip', ['link', 'show', r.link.name])).rejects.toThrow(/does not exist/);
    const drops = r.link.counters.dropsOut;
    r.link.send([new Uint8Array(60)]);
    expect(r.link.counters.dropsOut).toBe(drops + 1);
  });

  it('stops reading and reports an error when its netdev disappears (namespace deleted)', async () => {
    const ns = await lab.addNamespace('gone');
    const errors: NodeJS.ErrnoException[] = [];
    const link = openTapLink({ name: lab.devName('g'), onError: (e) => errors.push(e) });
    lab.onTeardown(() => link.close());
    await lab.moveLink(link.name, ns);
    await run('ip', ['netns', 'del', ns]);
    await waitFor(() => errors.length > 0, 5_000, 'device error');
    await new Promise((r) => setTimeout(r, 100));
    expect(errors).toHaveLength(1); // not a busy loop of errors
    expect(link.tapCounters().readErrors).toBe(1);
    expect(link.lastError).toBe(errors[0]);
  });
});

// ---- vnet header: TSO sends and coalesced receives over a real TCP connection ----------------

interface TcpRun {
  echoedDigest: string;
  received: Buffer;
  maxFrame: number;
  gsoFrames: number;
  partialCsumFrames: number;
  badChecksums: number;
}

/**
 * A minimal TCP client written in the test: handshake, one 20000-byte segment sent with TSO, then
 * receive everything the server sends (acking each batch) until its FIN.
 */
async function tcpExchange(r: Rig, mode: 'vnet' | 'plain', upload: Uint8Array, port: number): Promise<TcpRun> {
  const { link, kmac } = r;
  const me = ip4(JS_IP);
  const peer = ip4(KERNEL_IP);
  const sport = 40000 + port;
  const iss = 1000;
  let rcvNxt = 0;
  let established = false;
  let finished = false;
  const chunks: Uint8Array[] = [];
  const out: TcpRun = { echoedDigest: '', received: Buffer.alloc(0), maxFrame: 0, gsoFrames: 0, partialCsumFrames: 0, badChecksums: 0 };
  const send = (t: Omit<TcpFields, 'sport' | 'dport'>, data = new Uint8Array(0)): void =>
    link.send([ethernet(kmac, JS_MAC, 0x0800, tcp(me, peer, { sport, dport: port, ...t }, data))]);

  const onFrames = (frames: readonly Uint8Array[], info?: VnetBatchInfo): void => {
    let ackNeeded = false;
    frames.forEach((f, i) => {
      if (respond(link, f)) return;
      const p = parse(f);
      if (p.ip?.proto !== 6 || !p.l4) return;
      const v = new DataView(p.l4.buffer, p.l4.byteOffset, p.l4.byteLength);
      if (v.getUint16(0) !== port || v.getUint16(2) !== sport) return;
      out.maxFrame = Math.max(out.maxFrame, f.length);
      if (info) {
        if (info.flags(i) & VNET_HDR_F_NEEDS_CSUM) out.partialCsumFrames++;
        if (info.gsoType(i) === VNET_GSO_TCPV4) {
          out.gsoFrames++;
          expect(info.gsoSize(i)).toBeGreaterThan(0);
          expect(info.gsoSize(i)).toBeLessThanOrEqual(1460);
          expect(info.csumStart(i)).toBe(34);
          expect(info.csumOffset(i)).toBe(16);
        } else {
          expect(info.gsoType(i)).toBe(VNET_GSO_NONE);
        }
      } else if (refSum([pseudo4(p.ip.src, p.ip.dst, 6, p.l4.length), p.l4]) !== 0xffff) {
        out.badChecksums++;
      }
      const flags = p.l4[13]!;
      const seq = v.getUint32(4);
      const payload = p.l4.subarray((p.l4[12]! >> 4) * 4);
      if (flags & RST) throw new Error('connection reset by the kernel');
      if (flags & SYN && flags & ACK && !established) {
        established = true;
        rcvNxt = (seq + 1) >>> 0;
        send({ seq: iss + 1, ack: rcvNxt, flags: ACK });
        // One 20000-byte segment; the kernel cuts it into MSS-sized ones (TSO on our side).
        const frame = ethernet(kmac, JS_MAC, 0x0800, tcp(me, peer, { sport, dport: port, seq: iss + 1, ack: rcvNxt, flags: ACK | PSH }, upload));
        link.sendGso([frame], [prepareTcpGso(frame, 1448)]);
        return;
      }
      if (!established) return;
      if (seq === rcvNxt && (payload.length || flags & FIN)) {
        chunks.push(payload.slice());
        rcvNxt = (rcvNxt + payload.length + (flags & FIN ? 1 : 0)) >>> 0;
        if (flags & FIN) finished = true;
      }
      if (payload.length || flags & FIN) ackNeeded = true;
    });
    if (ackNeeded) send({ seq: iss + 1 + upload.length, ack: rcvNxt, flags: ACK | (finished ? FIN : 0) });
  };
  if (mode === 'vnet') link.setVnetReceiver(onFrames);
  else link.setReceiver((frames) => onFrames(frames));

  send({ seq: iss, ack: 0, flags: SYN, mss: 1460 });
  await waitFor(() => finished, 20_000, 'server FIN');
  const all = Buffer.concat(chunks);
  out.echoedDigest = all.subarray(0, 64).toString();
  out.received = all.subarray(64);
  return out;
}

const SERVER = (port: number, uploadLen: number, downloadLen: number): string =>
  [
    'import socket, hashlib',
    's = socket.socket()',
    's.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)',
    `s.bind(("${KERNEL_IP}", ${port}))`,
    's.listen(1)',
    'print("ready", flush=True)',
    'c, _ = s.accept()',
    'buf = b""',
    `while len(buf) < ${uploadLen}:`,
    '    d = c.recv(65536)',
    '    if not d: break',
    '    buf += d',
    'c.sendall(hashlib.sha256(buf).hexdigest().encode())',
    `c.sendall(bytes((i * 7 + 3) & 0xff for i in range(${downloadLen})))`,
    'c.close()',
    'print("done", flush=True)',
  ].join('\n');

describe.skipIf(!avail.ok)('TAP link with the virtio-net header (TSO/GSO/checksum offload)', () => {
  let lab: Lab;
  let r: Rig;
  const upload = Uint8Array.from({ length: 20_000 }, (_, i) => (i * 13 + 5) & 0xff);
  const downloadLen = 300_000;
  const expectedDownload = createHash('sha256')
    .update(Uint8Array.from({ length: downloadLen }, (_, i) => (i * 7 + 3) & 0xff))
    .digest('hex');

  beforeAll(async () => {
    lab = new Lab();
    r = await rig(lab, 'v', { vnetHdr: true });
  });
  afterAll(async () => {
    await lab?.teardown();
  });

  it('reports the negotiated header size and offloads', () => {
    expect(r.link.vnetHdr).toBe(true);
    expect(r.link.device.vnetHdrSize).toBe(12);
    expect(r.link.offloads & (TUN_F_CSUM | TUN_F_TSO4)).toBe(TUN_F_CSUM | TUN_F_TSO4);
  });

  it('TSO send + coalesced receive: a 20000-byte segment reaches a Linux socket intact, and 300 kB come back as GSO frames', async () => {
    const server = lab.spawn(r.ns, 'python3', ['-c', SERVER(5001, upload.length, downloadLen)]);
    await server.waitForOutput(/ready/);
    const res = await tcpExchange(r, 'vnet', upload, 5001);
    expect(res.echoedDigest).toBe(createHash('sha256').update(upload).digest('hex'));
    expect(res.received.length).toBe(downloadLen);
    expect(createHash('sha256').update(res.received).digest('hex')).toBe(expectedDownload);
    expect(res.gsoFrames).toBeGreaterThan(0);
    expect(res.maxFrame).toBeGreaterThan(1514);
    expect(res.partialCsumFrames).toBeGreaterThan(0);
    await server.exited;
    expect(server.stdout).toContain('done');
  });

  it('plain receiver on a vnet link: partial checksums are completed, so every TCP frame verifies', async () => {
    const server = lab.spawn(r.ns, 'python3', ['-c', SERVER(5002, upload.length, downloadLen)]);
    await server.waitForOutput(/ready/);
    const res = await tcpExchange(r, 'plain', upload, 5002);
    expect(res.echoedDigest).toBe(createHash('sha256').update(upload).digest('hex'));
    expect(createHash('sha256').update(res.received).digest('hex')).toBe(expectedDownload);
    expect(res.maxFrame).toBeGreaterThan(1514); // coalesced frames arrive whole
    expect(res.badChecksums).toBe(0);
    await server.exited;
  });
});
