/**
 * The hand-over moments of an event log: the target's pino JSON lines 'connection offloaded' and
 * 'connection uploaded' (fields `time` in epoch ms and `flow` "local:port>remote:port"), so a
 * capture's report and graph can show when each connection changed hands. Other lines are ignored;
 * lines that are not JSON are counted, not fatal (a log may mix in readable text).
 */
export interface HandoverEvent {
  timeMs: number;
  kind: 'offload' | 'terminate';
  /** "local:port>remote:port" as the target logs it. */
  flow: string;
}

export interface HandoverLog {
  events: HandoverEvent[];
  /** Lines that were not JSON objects. */
  unreadable: number;
}

const KINDS: Record<string, HandoverEvent['kind']> = { 'connection offloaded': 'offload', 'connection uploaded': 'terminate' };

export function parseHandoverLog(text: string): HandoverLog {
  const events: HandoverEvent[] = [];
  let unreadable = 0;
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    let o: unknown;
    try {
      o = JSON.parse(line);
    } catch {
      unreadable++;
      continue;
    }
    if (typeof o !== 'object' || o === null) {
      unreadable++;
      continue;
    }
    const r = o as Record<string, unknown>;
    const kind = typeof r.msg === 'string' ? KINDS[r.msg] : undefined;
    if (kind && typeof r.time === 'number' && typeof r.flow === 'string') events.push({ timeMs: r.time, kind, flow: r.flow });
  }
  events.sort((a, b) => a.timeMs - b.timeMs);
  return { events, unreadable };
}

/** The events of the connection between endpoints `a` and `b` ("ip:port"), either way round. */
export function handoversOf(events: readonly HandoverEvent[], a: string, b: string): HandoverEvent[] {
  return events.filter((e) => e.flow === `${a}>${b}` || e.flow === `${b}>${a}`);
}
