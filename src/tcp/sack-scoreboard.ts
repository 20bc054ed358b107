/**
 * The sender's SACK scoreboard (RFC 6675): which bytes above SND.UNA the receiver reported holding,
 * and the loss-recovery helpers IsLost, SetPipe and NextSeg. Sequence numbers mod 2^32.
 *
 * Implementation pending (see issue 2): this file fixes the interface the engine uses.
 */
import type { SackBlock } from '../wire/tcp-segment.js';

export interface NextSegment {
  seq: number;
  len: number;
  /** true when this is a retransmission of previously sent data (rules 1 and 3). */
  retransmit: boolean;
}

export interface SackScoreboardApi {
  /** Forget everything (e.g. after RTO per RFC 6675 section 5.1 the scoreboard is kept, but a reneging or import clears it). */
  clear(): void;
  /**
   * Apply the cumulative ACK and the SACK blocks of one ACK. Blocks outside (sndUna, sndMax] are
   * ignored (D-SACK and stale blocks). Returns the number of bytes newly marked SACKed.
   */
  update(sndUna: number, sndMax: number, blocks: readonly SackBlock[]): number;
  /** Whether byte `seq` has been SACKed. */
  isSacked(seq: number): boolean;
  /** Total SACKed bytes above sndUna. */
  readonly sackedBytes: number;
  /** Highest SACKed sequence number (the right edge of the highest block), or undefined. */
  readonly highestSacked: number | undefined;
  /** RFC 6675 IsLost(seq): DupThresh discontiguous SACKed sequences, or more than (DupThresh-1)*mss bytes SACKed, above seq. */
  isLost(seq: number, mss: number, dupThresh: number): boolean;
  /** RFC 6675 SetPipe over [sndUna, highData), given HighRxt: bytes estimated in the network. */
  pipe(sndUna: number, highData: number, highRxt: number, mss: number, dupThresh: number): number;
  /**
   * RFC 6675 NextSeg rules 1-3 over [sndUna, highData) given HighRxt. Rule 1: first unSACKed, lost
   * segment above HighRxt; rule 2: new data (seq = highData) when `unsentBytes` > 0 and the window
   * allows (`sendWindowEnd`); rule 3: first unSACKed segment above HighRxt that is not lost, only
   * when `rescueAllowed`... The engine handles rule 4 (rescue retransmission) itself. Returns null
   * when nothing may be sent. len is at most mss and never crosses a SACKed byte or highData.
   */
  nextSeg(args: {
    sndUna: number;
    highData: number;
    highRxt: number;
    mss: number;
    dupThresh: number;
    unsentBytes: number;
    sendWindowEnd: number;
  }): NextSegment | null;
}
