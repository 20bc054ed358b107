import { describe, expect, it } from 'vitest';
import { SackScoreboard, type NextSegment } from '../../src/tcp/sack-scoreboard.js';

const TWO_32 = 2 ** 32;
const add = (a: number, n: number) => (a + n) >>> 0;
const MSS = 100;
const D = 3;

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / TWO_32;
  };
}

/**
 * Per-octet reference written directly from RFC 6675 section 4, over offsets relative to a base.
 * HighRxt is exclusive (one past the highest retransmitted octet), as in the implementation.
 */
class Reference {
  sacked = new Set<number>();
  private above: { bytes: number[]; runs: number[] } | undefined;
  /** Call after changing `sacked`. */
  changed(): void {
    this.above = undefined;
  }
  isLost(s: number, mss: number, d: number): boolean {
    // bytes[s] / runs[s]: SACKed octets / discontiguous SACKed sequences with octets above s.
    if (this.above === undefined) {
      const top = Math.max(0, ...this.sacked) + 2;
      const bytes = new Array<number>(top + 1).fill(0);
      const runs = new Array<number>(top + 1).fill(0);
      for (let o = top - 1; o >= 0; o--) {
        const next = o + 1;
        const h = this.sacked.has(next);
        bytes[o] = bytes[next]! + (h ? 1 : 0);
        runs[o] = runs[next]! + (h && !this.sacked.has(next + 1) ? 1 : 0);
      }
      this.above = { bytes, runs };
    }
    const i = Math.min(s, this.above.bytes.length - 1);
    return this.above.runs[i]! >= d || this.above.bytes[i]! > (d - 1) * mss;
  }
  pipe(una: number, highData: number, highRxt: number, mss: number, d: number): number {
    let p = 0;
    for (let s = una; s < highData; s++) {
      if (this.sacked.has(s)) continue;
      if (!this.isLost(s, mss, d)) p++;
      if (s < highRxt) p++;
    }
    return p;
  }
  nextSeg(a: { una: number; highData: number; highRxt: number; mss: number; d: number; unsent: number; wndEnd: number }): NextSegment | null {
    const highest = this.sacked.size ? Math.max(...this.sacked) + 1 : -1;
    const seg = (s: number): NextSegment => {
      let len = 0;
      while (len < a.mss && s + len < a.highData && !this.sacked.has(s + len)) len++;
      return { seq: s, len, retransmit: true };
    };
    const start = Math.max(a.highRxt, a.una);
    for (let s = start; s < a.highData && s < highest; s++) {
      if (!this.sacked.has(s) && this.isLost(s, a.mss, a.d)) return seg(s); // rule 1
    }
    if (a.unsent > 0 && a.highData + Math.min(a.mss, a.unsent) <= a.wndEnd) {
      return { seq: a.highData, len: Math.min(a.mss, a.unsent), retransmit: false }; // rule 2
    }
    for (let s = start; s < a.highData && s < highest; s++) if (!this.sacked.has(s)) return seg(s); // rule 3
    return null;
  }
}

describe('SackScoreboard: update', () => {
  it('RFC 2018: records SACKed ranges, merges overlaps and neighbours, returns newly SACKed bytes', () => {
    const sb = new SackScoreboard();
    expect(sb.highestSacked).toBeUndefined();
    expect(sb.update(1000, 2000, [{ left: 1200, right: 1300 }])).toBe(100);
    expect(sb.update(1000, 2000, [{ left: 1500, right: 1600 }, { left: 1200, right: 1300 }])).toBe(100);
    expect(sb.update(1000, 2000, [{ left: 1250, right: 1350 }])).toBe(50);
    expect(sb.update(1000, 2000, [{ left: 1350, right: 1500 }])).toBe(150); // bridges the gap
    expect(sb.ranges()).toEqual([{ left: 1200, right: 1600 }]);
    expect(sb.sackedBytes).toBe(400);
    expect(sb.highestSacked).toBe(1600);
    expect(sb.update(1000, 2000, [{ left: 1100, right: 1700 }])).toBe(200);
    expect(sb.ranges()).toEqual([{ left: 1100, right: 1700 }]);
  });

  it('RFC 2883: ignores D-SACK blocks at or below SND.UNA, blocks beyond SND.MAX and inverted blocks', () => {
    const sb = new SackScoreboard();
    expect(sb.update(1000, 2000, [{ left: 900, right: 1000 }])).toBe(0); // D-SACK
    expect(sb.update(1000, 2000, [{ left: 1900, right: 2100 }])).toBe(0); // beyond SND.MAX
    expect(sb.update(1000, 2000, [{ left: 1500, right: 1400 }])).toBe(0); // inverted
    expect(sb.update(1000, 2000, [{ left: 1500, right: 1500 }])).toBe(0); // empty
    expect(sb.sackedBytes).toBe(0);
    // A block straddling SND.UNA counts only above it.
    expect(sb.update(1000, 2000, [{ left: 950, right: 1050 }])).toBe(50);
    expect(sb.ranges()).toEqual([{ left: 1000, right: 1050 }]);
    // D-SACK inside an already SACKed range adds nothing.
    expect(sb.update(1000, 2000, [{ left: 1010, right: 1020 }])).toBe(0);
  });

  it('the cumulative ACK trims and drops ranges below SND.UNA', () => {
    const sb = new SackScoreboard();
    sb.update(1000, 3000, [{ left: 1200, right: 1300 }, { left: 1500, right: 1600 }, { left: 2000, right: 2500 }]);
    expect(sb.sackedBytes).toBe(700);
    expect(sb.update(1550, 3000, [])).toBe(0);
    expect(sb.ranges()).toEqual([{ left: 1550, right: 1600 }, { left: 2000, right: 2500 }]);
    expect(sb.sackedBytes).toBe(550);
    expect(sb.isSacked(1549)).toBe(false);
    expect(sb.isSacked(1550)).toBe(true);
    expect(sb.isSacked(1600)).toBe(false);
    sb.update(2500, 3000, []);
    expect(sb.ranges()).toEqual([]);
    expect(sb.sackedBytes).toBe(0);
    expect(sb.highestSacked).toBeUndefined();
  });

  it('sackedRangeEnd / nextSackedAtOrAfter / ranges() copies / clear()', () => {
    const sb = new SackScoreboard();
    sb.update(0, 1000, [{ left: 200, right: 300 }, { left: 500, right: 600 }]);
    expect(sb.sackedRangeEnd(250)).toBe(300);
    expect(sb.sackedRangeEnd(300)).toBeUndefined();
    expect(sb.nextSackedAtOrAfter(0)).toBe(200);
    expect(sb.nextSackedAtOrAfter(250)).toBe(250);
    expect(sb.nextSackedAtOrAfter(300)).toBe(500);
    expect(sb.nextSackedAtOrAfter(600)).toBeUndefined();
    const copy = sb.ranges();
    copy[0]!.left = 0;
    expect(sb.ranges()[0]).toEqual({ left: 200, right: 300 });
    sb.clear();
    expect(sb.ranges()).toEqual([]);
    expect(sb.sackedBytes).toBe(0);
    expect(sb.pipe(0, 1000, 0, MSS, D)).toBe(1000);
  });

  it('works across the 2^32 wrap', () => {
    const sb = new SackScoreboard();
    const una = TWO_32 - 250;
    expect(sb.update(una, add(una, 1000), [{ left: add(una, 200), right: add(una, 400) }])).toBe(200);
    expect(sb.ranges()).toEqual([{ left: TWO_32 - 50, right: 150 }]);
    expect(sb.isSacked(TWO_32 - 1)).toBe(true);
    expect(sb.isSacked(0)).toBe(true);
    expect(sb.isSacked(150)).toBe(false);
    expect(sb.highestSacked).toBe(150);
    expect(sb.update(add(una, 300), add(una, 1000), [])).toBe(0);
    expect(sb.ranges()).toEqual([{ left: 50, right: 150 }]);
  });
});

describe('SackScoreboard: RFC 6675 IsLost, SetPipe, NextSeg', () => {
  // Ten segments [1000, 2000) sent; segments 2, 4 and 6 (1100, 1300, 1500) SACKed.
  function scenario(base: number): SackScoreboard {
    const sb = new SackScoreboard();
    sb.update(base, add(base, 1000), [
      { left: add(base, 500), right: add(base, 600) },
      { left: add(base, 300), right: add(base, 400) },
      { left: add(base, 100), right: add(base, 200) },
    ]);
    return sb;
  }

  for (const base of [1000, TWO_32 - 350]) {
    describe(`base ${base}`, () => {
      it('RFC 6675 IsLost: DupThresh discontiguous SACKed sequences above the octet mean lost', () => {
        const sb = scenario(base);
        expect(sb.isLost(base, MSS, D)).toBe(true); // three ranges above
        expect(sb.isLost(add(base, 99), MSS, D)).toBe(true);
        expect(sb.isLost(add(base, 200), MSS, D)).toBe(false); // two ranges, 200 bytes: not more than 2*SMSS
        expect(sb.isLost(add(base, 400), MSS, D)).toBe(false);
        expect(sb.isLost(add(base, 700), MSS, D)).toBe(false);
      });

      it('RFC 6675 IsLost: more than (DupThresh-1)*SMSS SACKed bytes above the octet mean lost', () => {
        const sb = new SackScoreboard();
        sb.update(base, add(base, 1000), [{ left: add(base, 100), right: add(base, 300) }]);
        expect(sb.isLost(base, MSS, D)).toBe(false); // exactly 2*SMSS
        sb.update(base, add(base, 1000), [{ left: add(base, 300), right: add(base, 301) }]);
        expect(sb.isLost(base, MSS, D)).toBe(true); // 201 bytes
        expect(sb.isLost(add(base, 99), MSS, D)).toBe(true);
      });

      it('RFC 6675 SetPipe: counts unSACKed octets not lost, plus retransmitted ones again', () => {
        const sb = scenario(base);
        // Lost: [base, base+100). Not lost, unSACKed: [200,300) [400,500) [600,1000) = 600.
        expect(sb.pipe(base, add(base, 1000), base, MSS, D)).toBe(600);
        // After retransmitting the lost segment (HighRxt one past it) it is in flight again.
        expect(sb.pipe(base, add(base, 1000), add(base, 100), MSS, D)).toBe(700);
        // After also retransmitting [200,300): counted twice (not lost, and retransmitted).
        expect(sb.pipe(base, add(base, 1000), add(base, 300), MSS, D)).toBe(800);
        expect(sb.pipe(base, base, base, MSS, D)).toBe(0);
      });

      it('RFC 6675 NextSeg rule 1: the first lost unSACKed segment above HighRxt', () => {
        const sb = scenario(base);
        const args = { sndUna: base, highData: add(base, 1000), highRxt: base, mss: MSS, dupThresh: D, unsentBytes: 5000, sendWindowEnd: add(base, 65535) };
        expect(sb.nextSeg(args)).toEqual({ seq: base, len: 100, retransmit: true });
      });

      it('RFC 6675 NextSeg rule 2: new data when nothing is lost and the window allows', () => {
        const sb = scenario(base);
        const args = { sndUna: base, highData: add(base, 1000), highRxt: add(base, 100), mss: MSS, dupThresh: D, unsentBytes: 5000, sendWindowEnd: add(base, 65535) };
        expect(sb.nextSeg(args)).toEqual({ seq: add(base, 1000), len: 100, retransmit: false });
        expect(sb.nextSeg({ ...args, unsentBytes: 30 })).toEqual({ seq: add(base, 1000), len: 30, retransmit: false });
      });

      it('RFC 6675 NextSeg rule 3: an unSACKed, not lost segment below the highest SACK when no new data may go', () => {
        const sb = scenario(base);
        const args = { sndUna: base, highData: add(base, 1000), highRxt: add(base, 100), mss: MSS, dupThresh: D, unsentBytes: 0, sendWindowEnd: add(base, 65535) };
        expect(sb.nextSeg(args)).toEqual({ seq: add(base, 200), len: 100, retransmit: true });
        // The window does not allow a full new segment: rule 3 again.
        expect(sb.nextSeg({ ...args, unsentBytes: 5000, sendWindowEnd: add(base, 1050) })).toEqual({ seq: add(base, 200), len: 100, retransmit: true });
        // Everything below the highest SACKed octet already retransmitted: nothing to send.
        expect(sb.nextSeg({ ...args, highRxt: add(base, 600) })).toBeNull();
        expect(sb.nextSeg({ ...args, highRxt: add(base, 500) })).toBeNull(); // only [600,1000) is left: above all SACKs
        expect(sb.nextSeg({ ...args, highRxt: add(base, 400) })).toEqual({ seq: add(base, 400), len: 100, retransmit: true });
      });

      it('NextSeg never crosses a SACKed byte or HighData and respects SMSS', () => {
        const sb = scenario(base);
        const args = { sndUna: base, highData: add(base, 1000), highRxt: base, mss: 1000, dupThresh: D, unsentBytes: 0, sendWindowEnd: add(base, 65535) };
        expect(sb.nextSeg(args)).toEqual({ seq: base, len: 100, retransmit: true });
        const sb2 = new SackScoreboard();
        sb2.update(base, add(base, 150), [{ left: add(base, 100), right: add(base, 101) }]);
        // highData right after the unSACKed hole bounds the rule 3 segment
        expect(sb2.nextSeg({ ...args, highData: add(base, 150), dupThresh: 1, mss: 1000 })).toEqual({ seq: base, len: 100, retransmit: true });
      });
    });
  }

  it('without SACK information nothing is lost and NextSeg only offers new data', () => {
    const sb = new SackScoreboard();
    expect(sb.isLost(0, MSS, D)).toBe(false);
    expect(sb.pipe(0, 1000, 0, MSS, D)).toBe(1000);
    const args = { sndUna: 0, highData: 1000, highRxt: 0, mss: MSS, dupThresh: D, unsentBytes: 0, sendWindowEnd: 5000 };
    expect(sb.nextSeg(args)).toBeNull();
    expect(sb.nextSeg({ ...args, unsentBytes: 1 })).toEqual({ seq: 1000, len: 1, retransmit: false });
  });

  it('matches a per-octet RFC 6675 reference under random SACK patterns (incl. wrap)', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const r = rng(seed);
      const base = seed % 2 ? (TWO_32 - Math.floor(r() * 3000)) >>> 0 : Math.floor(r() * 1e6);
      const mss = [1, 7, 50, 100][Math.floor(r() * 4)]!;
      const d = 1 + Math.floor(r() * 4);
      const highData = 50 + Math.floor(r() * 1500);
      let una = 0;
      const sb = new SackScoreboard();
      const ref = new Reference();
      for (let step = 0; step < 6; step++) {
        if (r() < 0.3) una = Math.min(highData, una + Math.floor(r() * 200));
        for (const o of [...ref.sacked]) if (o < una) ref.sacked.delete(o);
        ref.changed();
        const trimmedSize = ref.sacked.size;
        const blocks = [];
        const nb = Math.floor(r() * 5);
        for (let i = 0; i < nb; i++) {
          const left = Math.floor(r() * (highData + 100)) - 50;
          const right = left + Math.floor(r() * 120) - 10;
          blocks.push({ left: add(base, left), right: add(base, right) });
          if (left < right && right <= highData && right > una) {
            for (let o = Math.max(left, una); o < right; o++) ref.sacked.add(o);
          }
        }
        ref.changed();
        const newly = sb.update(add(base, una), add(base, highData), blocks);
        expect(sb.sackedBytes).toBe(ref.sacked.size);
        expect(newly).toBe(ref.sacked.size - trimmedSize);
        // Ranges are the maximal runs of SACKed octets.
        const runs: { left: number; right: number }[] = [];
        for (const o of [...ref.sacked].sort((a, b) => a - b)) {
          const last = runs[runs.length - 1];
          if (last && last.right === add(base, o)) last.right = add(base, o + 1);
          else runs.push({ left: add(base, o), right: add(base, o + 1) });
        }
        expect(sb.ranges()).toEqual(runs);
        // Plain comparisons in the per-octet loop (expect() per octet is slow); one assertion after.
        const mismatches: string[] = [];
        for (let s = una; s < highData; s++) {
          if (sb.isSacked(add(base, s)) !== ref.sacked.has(s)) mismatches.push(`isSacked(${s})`);
          if (sb.isLost(add(base, s), mss, d) !== ref.isLost(s, mss, d)) mismatches.push(`isLost(${s})`);
        }
        expect(mismatches, `seed ${seed} step ${step}`).toEqual([]);
        for (let k = 0; k < 4; k++) {
          const highRxt = una + Math.floor(r() * (highData - una + 20)) - 10;
          expect(sb.pipe(add(base, una), add(base, highData), add(base, highRxt), mss, d)).toBe(ref.pipe(una, highData, highRxt, mss, d));
          const unsent = r() < 0.5 ? 0 : Math.floor(r() * 300);
          const wndEnd = highData + Math.floor(r() * 300) - 50;
          const got = sb.nextSeg({ sndUna: add(base, una), highData: add(base, highData), highRxt: add(base, highRxt), mss, dupThresh: d, unsentBytes: unsent, sendWindowEnd: add(base, wndEnd) });
          const want = ref.nextSeg({ una, highData, highRxt, mss, d, unsent, wndEnd });
          expect(got).toEqual(want && { ...want, seq: add(base, want.seq) });
        }
      }
    }
  });

  it('newly SACKed counts match the reference exactly', () => {
    for (let seed = 1; seed <= 50; seed++) {
      const r = rng(seed * 7919);
      const sb = new SackScoreboard();
      const ref = new Set<number>();
      for (let step = 0; step < 20; step++) {
        const left = Math.floor(r() * 900);
        const right = left + 1 + Math.floor(r() * 100);
        let fresh = 0;
        for (let o = left; o < right; o++) {
          if (!ref.has(o)) {
            ref.add(o);
            fresh++;
          }
        }
        expect(sb.update(0, 1000, [{ left, right }])).toBe(fresh);
      }
    }
  });

  it('stays fast with MB windows and thousands of ranges (no per-octet work)', () => {
    const mss = 1460;
    const segs = 8 * 1024; // ~12 MB in flight
    const sb = new SackScoreboard();
    const una = TWO_32 - 5_000_000;
    const highData = add(una, segs * mss);
    const blocks = [];
    for (let i = 1; i < segs; i += 2) blocks.push({ left: add(una, i * mss), right: add(una, (i + 1) * mss) });
    const t0 = performance.now();
    // Feed SACK blocks as ACKs would: three at a time.
    for (let i = 0; i < blocks.length; i += 3) sb.update(una, highData, blocks.slice(i, i + 3));
    expect(sb.sackedBytes).toBe((segs / 2) * mss);
    // Recovery: every odd hole is lost except the top ones; retransmit one by one.
    let highRxt = una;
    let sent = 0;
    let pipeSum = 0;
    for (;;) {
      const pipe = sb.pipe(una, highData, highRxt, mss, D);
      pipeSum += pipe;
      const next = sb.nextSeg({ sndUna: una, highData, highRxt, mss, dupThresh: D, unsentBytes: 0, sendWindowEnd: highData });
      if (next === null) break;
      expect(next.len).toBe(mss);
      highRxt = add(next.seq, next.len);
      sent++;
    }
    const ms = performance.now() - t0;
    expect(sent).toBe(segs / 2);
    // Holes are the even segments; all but the top two are lost (3 ranges or > 2*SMSS above).
    // With k holes retransmitted: pipe = 2 not-lost holes + k retransmitted holes, k = 0..4096.
    let want = 0;
    for (let k = 0; k <= segs / 2; k++) want += (2 + k) * mss;
    expect(pipeSum).toBe(want);
    expect(ms).toBeLessThan(1500);
  });
});
