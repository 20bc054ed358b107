/**
 * `npm run bench`: throughput of the host stack on a TAP against Linux TCP, as ratios to a kernel
 * baseline measured in the same run (docs/benchmarks.md). Needs root (network namespaces).
 *   BENCH_BYTES   stream size, e.g. 209715200, 200M, 1G (default 200M; K/M/G are powers of 1024)
 *   BENCH_RUNS    rounds of the three transfers, interleaved; medians are reported (default 3)
 *   BENCH_ONLY    comma-separated subset: baseline, linux-to-stack, stack-to-linux, offloaded, iperf3,
 *                 terminate (e.g. to profile one direction with `node --cpu-prof dist/bench/run.js`)
 *   BENCH_TERMINATES  terminates measured per outstanding size in `terminate` (default 200)
 * `offloaded` runs both directions through the target (bench/offload.ts); `terminate` is software
 * only (bench/terminate.ts: sim link, in-process core and host) and needs no root on its own.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, hostname, loadavg, release } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findCommand, isRoot, labAvailable } from '../src/lab/availability.js';
import { loadTapAddon } from '../src/link/tap.js';
import { buildBenchLab, vethOffloads, runBaseline, runIperf3, runLinuxToStack, runStackToLinux, type BenchLab, type Progress, type Sample } from './scenarios.js';
import { summarize, table, terminateTable, type Summary } from './report.js';
import { addOffloadPath, runLinuxToOffloaded, runOffloadedToLinux, type OffloadEnd } from './offload.js';
import { massTerminateRuns, terminateLatency, type MassTerminate, type TerminateLatency } from './terminate.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

export function parseBytes(s: string | undefined, fallback: number): number {
  if (s === undefined || s.trim() === '') return fallback;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kKmMgG])?i?[bB]?\s*$/.exec(s);
  if (!m) throw new RangeError(`BENCH_BYTES: cannot read '${s}' (examples: 209715200, 200M, 1G)`);
  const mult = { k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[(m[2] ?? '').toLowerCase() as 'k' | 'm' | 'g'] ?? 1;
  const n = Math.round(Number(m[1]) * mult);
  if (n < 1) throw new RangeError('BENCH_BYTES must be at least 1');
  return n;
}

const SCENARIOS = ['baseline', 'linux-to-stack', 'stack-to-linux', 'offloaded', 'iperf3', 'terminate'] as const;
/** Scenarios that need the namespace lab (root, ip, the TAP addon). */
const LAB_SCENARIOS = ['baseline', 'linux-to-stack', 'stack-to-linux', 'offloaded', 'iperf3'];
const TERMINATE_SIZES = [0, 64 * 1024, 4 * 1024 * 1024];
const MASS_TERMINATES = [1000, 10_000];
const MASS_REPS = 5;

function parseOnly(s: string | undefined): Set<string> {
  if (s === undefined || s.trim() === '') return new Set(SCENARIOS);
  const names = s.split(',').map((x) => x.trim()).filter(Boolean);
  const bad = names.filter((n) => !(SCENARIOS as readonly string[]).includes(n));
  if (bad.length) throw new RangeError(`BENCH_ONLY: unknown scenario(s) ${bad.join(', ')} (known: ${SCENARIOS.join(', ')})`);
  return new Set(names);
}

/** Thrown to skip the lab part when only software-only scenarios were asked for. */
class SkipLab extends Error {}

/** Linux PSI: the share of time runnable tasks waited for a CPU (other work on the machine). */
function cpuPressure(): string | undefined {
  try {
    return /some avg10=([\d.]+)/.exec(readFileSync('/proc/pressure/cpu', 'utf8'))?.[1];
  } catch {
    return undefined;
  }
}

/** A one-line live counter on a TTY; silent otherwise. */
const progress: Progress = (label, bytes) => {
  if (!process.stdout.isTTY) {
    process.stdout.write(`  ${label} ...\n`);
    return () => undefined;
  }
  const t0 = Date.now();
  const draw = (): void => {
    const b = bytes();
    const s = (Date.now() - t0) / 1000;
    process.stdout.write(`\r\x1b[K  ${label}: ${(b / 1024 ** 2).toFixed(1)} MiB, ${s.toFixed(1)} s`);
  };
  const timer = setInterval(draw, 200);
  return () => {
    clearInterval(timer);
    process.stdout.write('\r\x1b[K');
  };
};

function preflight(): string | undefined {
  if (process.platform === 'linux' && !isRoot()) {
    return 'the benchmark builds network namespaces and a TAP device, which needs root (CAP_NET_ADMIN + CAP_SYS_ADMIN): run `sudo npm run bench`';
  }
  const lab = labAvailable(['ip']);
  if (!lab.ok) return lab.reason;
  try {
    loadTapAddon();
  } catch (err) {
    return (err as Error).message;
  }
  return undefined;
}

async function main(): Promise<number> {
  let bytes: number;
  let only: Set<string>;
  try {
    bytes = parseBytes(process.env.BENCH_BYTES, 200 * 1024 ** 2);
    only = parseOnly(process.env.BENCH_ONLY);
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n`);
    return 2;
  }
  const runs = Math.max(1, Math.floor(Number(process.env.BENCH_RUNS ?? '3')) || 1);
  const terminates = Math.max(1, Math.floor(Number(process.env.BENCH_TERMINATES ?? '200')) || 1);
  const withLab = LAB_SCENARIOS.some((s) => only.has(s));
  const why = withLab ? preflight() : undefined;
  if (why) {
    process.stderr.write(`bench: cannot run: ${why}\n`);
    return 2;
  }
  const started = new Date();
  const seed = started.toISOString();
  const loadBefore = loadavg();
  const pressureBefore = cpuPressure();
  process.stdout.write(`bench: ${(bytes / 1024 ** 2).toFixed(1)} MiB per transfer, ${runs} round(s), ${cpus().length} CPU(s), Linux ${release()}\n`);
  if (loadBefore[0]! > cpus().length / 2) {
    const psi = pressureBefore === undefined ? '' : `, tasks waited for a CPU ${pressureBefore} % of the last 10 s`;
    process.stdout.write(`bench: the machine is busy (load average ${loadBefore[0]!.toFixed(1)} on ${cpus().length} CPUs${psi}): absolute numbers will be low and noisy; compare ratios\n`);
  }

  const samples: Sample[] = [];
  let b: BenchLab | undefined;
  let offloads: Record<string, string> | undefined;
  let failure: unknown;
  let latency: TerminateLatency[] = [];
  const mass: MassTerminate[] = [];
  try {
    if (!withLab) throw new SkipLab();
    b = await buildBenchLab();
    const off: OffloadEnd | undefined = only.has('offloaded') ? await addOffloadPath(b) : undefined;
    offloads = findCommand('ethtool') ? await vethOffloads(b) : undefined;
    const order = [runBaseline, runLinuxToStack, runStackToLinux].filter((_, i) => only.has(SCENARIOS[i]!));
    let withIperf3 = only.has('iperf3');
    if (withIperf3 && findCommand('iperf3') === undefined) {
      withIperf3 = false;
      process.stdout.write('bench: no iperf3 (Debian: apt-get install iperf3): the kernel-only reference is left out\n');
    }
    for (let round = 0; round < runs; round++) {
      for (const run of order) {
        const s = await run(b, bytes, `${seed}/${round}`, progress);
        samples.push(s);
        if (!s.shaOk) throw new Error(`${s.scenario}: the stream arrived wrong (${s.bytes} bytes sent, sha256 ${s.sentSha}; received sha256 ${s.recvSha})`);
      }
      if (off) {
        for (const run of [runLinuxToOffloaded, runOffloadedToLinux]) {
          const s = await run(b, off, bytes, `${seed}/${round}`, progress);
          samples.push(s);
          if (!s.shaOk) throw new Error(`${s.scenario}: the stream arrived wrong (${s.bytes} bytes sent, sha256 ${s.sentSha}; received sha256 ${s.recvSha})`);
        }
      }
      if (withIperf3) samples.push(await runIperf3(b, bytes, progress));
    }
  } catch (err) {
    if (!(err instanceof SkipLab)) failure = err;
  } finally {
    await b?.lab.teardown().catch((err: unknown) => {
      // Something of the lab may be left behind: say so, and fail the run.
      process.stderr.write(`bench: teardown: ${(err as Error).message}\n`);
      failure ??= err;
    });
  }
  if (failure === undefined && only.has('terminate')) {
    try {
      process.stdout.write(`  terminate latency (${terminates} per size, software only) ...\n`);
      latency = await terminateLatency(TERMINATE_SIZES, terminates);
      for (const n of MASS_TERMINATES) {
        process.stdout.write(`  mass terminate of ${n} connections (${MASS_REPS} times) ...\n`);
        mass.push(massTerminateRuns(n, MASS_REPS));
      }
      const bad = [...latency.filter((r) => !r.verified).map((r) => `terminate with ${r.outstandingBytes} B outstanding: the stream after the resume arrived wrong`),
        ...mass.filter((r) => !r.verified).map((r) => `mass terminate of ${r.connections}: not every block completed with SUCCESS`)];
      if (bad.length) throw new Error(bad.join('; '));
    } catch (err) {
      failure = err;
    }
  }

  const loadAfter = loadavg();
  const pressureAfter = cpuPressure();
  const summaries: Summary[] = summarize(samples);
  if (summaries.length) process.stdout.write(`\n${table(summaries)}\n`);
  if (latency.length || mass.length) process.stdout.write(`\n${terminateTable(latency, mass)}\n`);
  const file = join(REPO, 'results', `bench-${started.toISOString().replace(/[:.]/g, '-')}.json`);
  mkdirSync(join(REPO, 'results'), { recursive: true });
  writeFileSync(file, `${JSON.stringify({
    started: started.toISOString(), host: hostname(), cpus: cpus().length, cpuModel: cpus()[0]?.model, kernel: release(), node: process.version,
    bytes, runs, baselineVethOffloads: offloads, loadavgBefore: loadBefore, loadavgAfter: loadAfter, cpuPressureAvg10Before: pressureBefore, cpuPressureAvg10After: pressureAfter, summaries, samples,
    terminate: only.has('terminate') ? { samplesPerSize: terminates, latency, mass } : undefined, error: failure === undefined ? undefined : String((failure as Error).stack ?? failure),
  }, null, 2)}\n`);
  process.stdout.write(`results: ${file}\n`);
  if (failure !== undefined) {
    process.stderr.write(`bench: failed: ${(failure as Error).message ?? String(failure)}\n`);
    return 1;
  }
  return 0;
}

main().then((code) => {
  process.exitCode = code;
}, (err: unknown) => {
  process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
