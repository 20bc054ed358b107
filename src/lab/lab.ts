/**
 * A network-namespace topology built for one test (or one CLI run) and removed afterwards.
 *
 * Every name carries the lab id ('ch' + 6 random hex), so labs of test files running in parallel
 * never collide. Everything created is recorded and `teardown()` removes it in a safe order
 * (hooks, processes, nftables tables, namespaces, devices left in our own namespace), continuing
 * past failures, also on Ctrl-C and process exit. Commands run without a shell.
 *
 * `ns: string | null`: a namespace this lab made, or null for the caller's own namespace (where a
 * TAP is created before its netdev is moved into a lab namespace).
 */
import { spawn as spawnChild } from 'node:child_process';
import { CommandError, inNamespace, isAlreadyGone, runCommand, runCommandSync, type CommandOptions, type CommandResult } from './command.js';
import { registerForCleanup, unregisterForCleanup, type Teardownable } from './cleanup.js';
import { checkIfName, IFNAME_MAX, newLabId } from './names.js';
import {
  ImpairmentError,
  needsRealNetem,
  netemArgs,
  nftDuplicateRuleset,
  nftEgressLossRuleset,
  nftLossRuleset,
  tbfArgs,
  validateNetem,
  type ImpairmentResult,
  type NetemOptions,
} from './netem.js';
import { LabProcess } from './process.js';
import { PEER_SYSCTLS } from './scenario.js';

export type Ns = string | null;

export interface NftTableRef {
  ns: Ns;
  family: string;
  name: string;
}

export interface VethOptions {
  /** Device names (default: lab id + 'a<n>' / 'b<n>'). */
  nameA?: string;
  nameB?: string;
  mtu?: number;
  txqueuelen?: number;
  /** Bring both ends up (default true). */
  up?: boolean;
}

export interface LinkSettings {
  mtu?: number;
  txqueuelen?: number;
  /** MAC address. */
  address?: string;
  up?: boolean;
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** 'pipe' keeps stdin open for `child.stdin` (default 'ignore'). */
  stdin?: 'pipe' | 'ignore';
}

export interface LabOptions {
  /** Fixed id instead of a random one (tests of the lab itself). */
  id?: string;
}

const key = (ns: Ns, dev: string): string => `${ns ?? ''}/${dev}`;

export class Lab implements Teardownable {
  readonly id: string;
  private readonly namespaces: string[] = [];
  private readonly ownDevices = new Set<string>();
  private readonly nftTables: NftTableRef[] = [];
  private readonly processes = new Set<LabProcess>();
  private readonly hooks: Array<() => void | Promise<void>> = [];
  private readonly vethPeer = new Map<string, { ns: Ns; dev: string }>();
  private readonly impairTables = new Map<string, NftTableRef[]>();
  private counter = 0;
  private teardownPromise: Promise<void> | undefined;

  constructor(opts: LabOptions = {}) {
    this.id = opts.id ?? newLabId();
    if (this.id.length > IFNAME_MAX - 3) throw new RangeError(`lab id '${this.id}' leaves no room for device suffixes`);
    registerForCleanup(this);
  }

  /** `<id><suffix>`, checked against the 15-character interface name limit. */
  devName(suffix: string): string {
    return checkIfName(`${this.id}${suffix}`);
  }

  private next(): number {
    return ++this.counter;
  }

  /** A name unique within this lab and across labs: `<id><stem><n>` (nft tables, files ...). */
  uniqueName(stem: string): string {
    return `${this.id}${stem}${this.next()}`;
  }

  private assertLive(): void {
    if (this.teardownPromise) throw new Error(`lab ${this.id} is torn down`);
  }

  /** Runs `cmd args` in `ns`; rejects with a CommandError carrying stderr. */
  exec(ns: Ns, cmd: string, args: readonly string[], opts?: CommandOptions): Promise<CommandResult> {
    const [c, a] = inNamespace(ns, cmd, args);
    return runCommand(c, a, opts);
  }

  private ip(ns: Ns, args: readonly string[], opts?: CommandOptions): Promise<CommandResult> {
    return runCommand('ip', ns === null ? args : ['-n', ns, ...args], opts);
  }

  async addNamespace(label?: string): Promise<string> {
    this.assertLive();
    const name = `${this.id}-${label ?? `n${this.next()}`}`;
    await runCommand('ip', ['netns', 'add', name]);
    this.namespaces.push(name);
    await this.ip(name, ['link', 'set', 'lo', 'up']);
    return name;
  }

  async addVeth(nsA: Ns, nsB: Ns, opts: VethOptions = {}): Promise<{ a: string; b: string }> {
    this.assertLive();
    const n = this.next();
    const a = checkIfName(opts.nameA ?? this.devName(`a${n}`));
    const b = checkIfName(opts.nameB ?? this.devName(`b${n}`));
    const args = ['link', 'add', a];
    if (nsA !== null) args.push('netns', nsA);
    args.push('type', 'veth', 'peer', 'name', b);
    if (nsB !== null) args.push('netns', nsB);
    await runCommand('ip', args);
    // Deleting either end deletes the pair; ends in our own namespace must go explicitly.
    if (nsA === null) this.ownDevices.add(a);
    if (nsB === null) this.ownDevices.add(b);
    this.vethPeer.set(key(nsA, a), { ns: nsB, dev: b });
    this.vethPeer.set(key(nsB, b), { ns: nsA, dev: a });
    const settings: LinkSettings = { mtu: opts.mtu, txqueuelen: opts.txqueuelen, up: opts.up ?? true };
    await this.setLink(nsA, a, settings);
    await this.setLink(nsB, b, settings);
    return { a, b };
  }

  async addBridge(ns: Ns, opts: { name?: string; up?: boolean } = {}): Promise<string> {
    this.assertLive();
    const name = checkIfName(opts.name ?? this.devName(`br${this.next()}`));
    await this.ip(ns, ['link', 'add', name, 'type', 'bridge']);
    if (ns === null) this.ownDevices.add(name);
    if (opts.up ?? true) await this.up(ns, name);
    return name;
  }

  async setMaster(ns: Ns, dev: string, bridge: string): Promise<void> {
    await this.ip(ns, ['link', 'set', dev, 'master', bridge]);
  }

  /**
   * Moves a device into namespace `ns` (from `fromNs`, default our own). A TAP keeps working: its
   * fd stays attached while the netdev lives in another namespace (and the netdev is deleted with
   * that namespace).
   */
  async moveLink(dev: string, ns: string, fromNs: Ns = null): Promise<void> {
    this.assertLive();
    await this.ip(fromNs, ['link', 'set', dev, 'netns', ns]);
    const peer = this.vethPeer.get(key(fromNs, dev));
    if (peer) {
      this.vethPeer.delete(key(fromNs, dev));
      this.vethPeer.set(key(ns, dev), peer);
      this.vethPeer.set(key(peer.ns, peer.dev), { ns, dev });
    }
  }

  /** Records a device created elsewhere (e.g. a TAP) in our namespace, deleted at teardown if still there. */
  adoptDevice(dev: string): void {
    this.ownDevices.add(dev);
  }

  async addAddress(ns: Ns, dev: string, cidr: string): Promise<void> {
    await this.ip(ns, ['addr', 'add', cidr, 'dev', dev]);
  }

  async up(ns: Ns, dev: string): Promise<void> {
    await this.ip(ns, ['link', 'set', dev, 'up']);
  }

  async setLink(ns: Ns, dev: string, s: LinkSettings): Promise<void> {
    const args: string[] = [];
    if (s.mtu !== undefined) args.push('mtu', String(s.mtu));
    if (s.txqueuelen !== undefined) args.push('txqueuelen', String(s.txqueuelen));
    if (s.address !== undefined) args.push('address', s.address);
    if (s.up) args.push('up');
    if (args.length) await this.ip(ns, ['link', 'set', dev, ...args]);
  }

  async addRoute(ns: Ns, args: readonly string[]): Promise<void> {
    await this.ip(ns, ['route', 'add', ...args]);
  }

  /**
   * A namespace whose Linux TCP is a lab's peer: IPv4 only, and orphaned sockets keep the retry
   * budget of open ones (tcp_orphan_retries 15, as tcp_retries2). A peer program exits once its
   * last bytes are written, leaving an orphan socket to deliver them; by default an orphan gives up
   * after 8 retries counted from the first retransmission of its oldest unacknowledged segment, which
   * in a long loss recovery (hand-overs under loss make many) was long past: Linux dropped the
   * connection without a RST (TCPAbortOnTimeout) with 2.5 MB undelivered, and our socket waited for
   * data that never came.
   */
  async prepareLinuxPeer(ns: string): Promise<void> {
    for (const k of ['all', 'default']) await this.sysctl(ns, `net.ipv6.conf.${k}.disable_ipv6`, 1);
    for (const [k, v] of Object.entries(PEER_SYSCTLS)) await this.sysctl(ns, k, v);
  }

  /** `sysctl -w key=value` inside ns (e.g. net.ipv4.ip_forward=1). */
  async sysctl(ns: string, name: string, value: string | number): Promise<void> {
    await this.exec(ns, 'sysctl', ['-qw', `${name}=${value}`]);
  }

  /**
   * Impairs what `dev` transmits. Uses netem; if the kernel has no netem, falls back to tbf (rate),
   * nftables ingress drop on the veth peer (loss; egress drop if the peer is unknown) and nftables
   * egress dup (duplication), and throws ImpairmentError for delay/jitter/reorder.
   */
  async setNetem(ns: Ns, dev: string, opts: NetemOptions): Promise<ImpairmentResult> {
    this.assertLive();
    validateNetem(opts);
    await this.clearNetem(ns, dev);
    if (!opts.forceFallback) {
      try {
        await this.exec(ns, 'tc', ['qdisc', 'replace', 'dev', dev, 'root', 'netem', ...netemArgs(opts)]);
        return { mechanism: 'netem', details: [] };
      } catch (err) {
        if (!(err instanceof CommandError) || !/qdisc kind is unknown|unknown qdisc/i.test(err.stderr)) throw err;
      }
    }
    const missing = needsRealNetem(opts);
    if (missing.length) {
      const why = opts.forceFallback ? 'the nftables/tbf fallback was forced' : 'this kernel has no netem qdisc (CONFIG_NET_SCH_NETEM)';
      throw new ImpairmentError(
        `${why}, so ${missing.join(', ')} cannot be emulated; loss, duplication and rate still work ` +
          '(nftables/tbf). Use a kernel with sch_netem for delay/reordering.',
      );
    }
    const details: string[] = [];
    if (opts.ratekbit) {
      await this.exec(ns, 'tc', ['qdisc', 'replace', 'dev', dev, 'root', 'tbf', ...tbfArgs(opts.ratekbit)]);
      details.push(`rate: tbf on ${dev}`);
    }
    const tables: NftTableRef[] = [];
    this.impairTables.set(key(ns, dev), tables);
    if (opts.lossPct) {
      const peer = this.vethPeer.get(key(ns, dev));
      const table = `${this.id}i${this.next()}`;
      const where = peer ?? { ns, dev };
      const ruleset = peer ? nftLossRuleset(table, peer.dev, opts.lossPct) : nftEgressLossRuleset(table, dev, opts.lossPct);
      await this.loadNft(where.ns, { ns: where.ns, family: 'netdev', name: table }, ruleset);
      tables.push({ ns: where.ns, family: 'netdev', name: table });
      details.push(peer ? `loss: nft ingress drop on peer ${peer.dev}` : `loss: nft egress drop on ${dev} (local senders see ENOBUFS)`);
    }
    if (opts.duplicatePct) {
      const table = `${this.id}i${this.next()}`;
      await this.loadNft(ns, { ns, family: 'netdev', name: table }, nftDuplicateRuleset(table, dev, opts.duplicatePct));
      tables.push({ ns, family: 'netdev', name: table });
      details.push(`duplicate: nft egress dup on ${dev}`);
    }
    if (opts.limit) details.push('limit: ignored without netem');
    return { mechanism: 'fallback', details };
  }

  /** Removes what setNetem installed on dev (no error if nothing was). */
  async clearNetem(ns: Ns, dev: string): Promise<void> {
    await this.exec(ns, 'tc', ['qdisc', 'del', 'dev', dev, 'root']).catch(() => undefined);
    for (const t of this.impairTables.get(key(ns, dev)) ?? []) await this.deleteNftTable(t);
    this.impairTables.delete(key(ns, dev));
  }

  /** Loads an nftables ruleset (`nft -f -`) and records its table for teardown. */
  async loadNft(ns: Ns, table: NftTableRef, ruleset: string): Promise<void> {
    this.assertLive();
    this.nftTables.push(table);
    try {
      await this.exec(ns, 'nft', ['-f', '-'], { input: ruleset });
    } catch (err) {
      this.nftTables.splice(this.nftTables.indexOf(table), 1);
      throw err;
    }
  }

  async deleteNftTable(t: NftTableRef): Promise<void> {
    const i = this.nftTables.findIndex((x) => x.ns === t.ns && x.family === t.family && x.name === t.name);
    if (i >= 0) this.nftTables.splice(i, 1);
    await this.exec(t.ns, 'nft', ['delete', 'table', t.family, t.name]).catch((err: unknown) => {
      if (!isAlreadyGone(err)) throw err;
    });
  }

  /** Starts `cmd args` inside ns (via `ip netns exec`, which execs: the PID is the command's). */
  spawn(ns: Ns, cmd: string, args: readonly string[], opts: SpawnOptions = {}): LabProcess {
    this.assertLive();
    const [c, a] = inNamespace(ns, cmd, args);
    const child = spawnChild(c, a, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: [opts.stdin ?? 'ignore', 'pipe', 'pipe'] });
    const p = new LabProcess(child, [c, ...a]);
    this.processes.add(p);
    void p.exited.then(() => this.processes.delete(p));
    return p;
  }

  /** Runs fn first at teardown (last registered first), e.g. closing a TAP link. */
  onTeardown(fn: () => void | Promise<void>): void {
    this.hooks.push(fn);
  }

  /** Removes everything this lab created; continues past failures and reports them at the end. */
  teardown(): Promise<void> {
    this.teardownPromise ??= this.doTeardown();
    return this.teardownPromise;
  }

  private async doTeardown(): Promise<void> {
    const errors: unknown[] = [];
    const attempt = async (fn: () => unknown): Promise<void> => {
      try {
        await fn();
      } catch (err) {
        if (!isAlreadyGone(err)) errors.push(err);
      }
    };
    for (const h of this.hooks.splice(0).reverse()) await attempt(h);
    await Promise.all([...this.processes].map((p) => attempt(() => p.kill())));
    for (const t of this.nftTables.splice(0).reverse()) {
      // Tables inside lab namespaces vanish with them; only ours need deleting.
      if (t.ns === null) await attempt(() => this.exec(null, 'nft', ['delete', 'table', t.family, t.name]));
    }
    for (const ns of this.namespaces.splice(0).reverse()) await attempt(() => runCommand('ip', ['netns', 'del', ns]));
    for (const dev of this.ownDevices) await attempt(() => runCommand('ip', ['link', 'del', dev]));
    this.ownDevices.clear();
    unregisterForCleanup(this);
    if (errors.length) throw new AggregateError(errors, `lab ${this.id}: teardown left ${errors.length} problem(s)`);
  }

  teardownSync(): void {
    if (this.teardownPromise) return;
    this.teardownPromise = Promise.resolve();
    const quiet = (fn: () => unknown): void => {
      try {
        fn();
      } catch {
        // best effort at exit
      }
    };
    for (const p of this.processes) p.killSync();
    for (const t of this.nftTables) if (t.ns === null) quiet(() => runCommandSync('nft', ['delete', 'table', t.family, t.name]));
    for (const ns of [...this.namespaces].reverse()) quiet(() => runCommandSync('ip', ['netns', 'del', ns]));
    for (const dev of this.ownDevices) quiet(() => runCommandSync('ip', ['link', 'del', dev]));
    unregisterForCleanup(this);
  }

  /** Names of the namespaces this lab currently owns. */
  get namespaceNames(): readonly string[] {
    return [...this.namespaces];
  }
}
