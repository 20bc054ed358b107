import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Status } from '../../src/chimney/status.js';
import { describeProtocol } from '../../src/ipc/describe.js';
import { MESSAGE_LIST, PROTOCOL_VERSION } from '../../src/ipc/messages.js';

const DOC = new URL('../../docs/ipc-protocol.md', import.meta.url);
const BEGIN = '<!-- BEGIN GENERATED: src/ipc/describe.ts -->\n';
const END = '<!-- END GENERATED -->';

describe('docs/ipc-protocol.md', () => {
  it('its reference part is exactly what the schema generates', () => {
    const text = readFileSync(DOC, 'utf8');
    const a = text.indexOf(BEGIN);
    const b = text.indexOf(END);
    expect(a, 'begin marker').toBeGreaterThan(0);
    expect(b, 'end marker').toBeGreaterThan(a);
    const generated = describeProtocol();
    if (process.env.UPDATE_IPC_DOC === '1') {
      writeFileSync(DOC, text.slice(0, a + BEGIN.length) + generated + text.slice(b));
      return;
    }
    expect(text.slice(a + BEGIN.length, b)).toBe(generated);
  });

  it('names the protocol version, every message with its code, and every status code', () => {
    const text = readFileSync(DOC, 'utf8');
    expect(text).toContain(`# The chimney IPC protocol (host <-> target), version ${PROTOCOL_VERSION}`);
    for (const m of MESSAGE_LIST) expect(text).toContain(`#### 0x${m.code.toString(16).toUpperCase().padStart(4, '0')} ${m.name}`);
    for (const [name, v] of Object.entries(Status)) expect(text).toContain(`| ${name} | 0x${v.toString(16).toUpperCase().padStart(8, '0')} |`);
  });

  it('every field of every message and record has a meaning', () => {
    const generated = describeProtocol();
    const rows = generated.split('\n').filter((l) => l.startsWith('| `'));
    expect(rows.length).toBeGreaterThan(150);
    for (const r of rows) {
      const cells = r.split(' | ');
      expect(cells[3]?.trim().length, r).toBeGreaterThan(0);
    }
  });
});
