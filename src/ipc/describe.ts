/**
 * Generates the reference part of docs/ipc-protocol.md from the schema itself (messages, records,
 * enumerations, status codes), so the document cannot drift from the codec. A test compares the
 * document with this output.
 */
import { Status } from '../chimney/status.js';
import { MESSAGE_LIST } from './messages.js';
import type { Codec, TypeInfo } from './schema.js';

const anchor = (s: string): string => s.toLowerCase().replace(/[^a-z0-9 -]/g, '').replace(/ /g, '-');
const recordLink = (name: string): string => `[${name}](#${anchor(name)})`;
const enumLink = (name: string): string => `[${name}](#${anchor(`enum ${name}`)})`;
const hex = (v: number, digits: number): string => `0x${v.toString(16).toUpperCase().padStart(digits, '0')}`;
const cell = (s: string): string => s.replace(/\|/g, '\\|');

function typeText(c: Codec<unknown>): string {
  const i: TypeInfo = c.info;
  switch (i.kind) {
    case 'int': {
      if (i.mask !== undefined) return `${i.wire} flags, mask ${hex(i.mask, 2)}`;
      const full = i.min === 0 && i.max === { u8: 0xff, u16: 0xffff, u32: 0xffffffff }[i.wire];
      return full ? i.wire : `${i.wire}, ${i.min}..${i.max}`;
    }
    case 'timer': return 'u32 timer (0xFFFFFFFF = not running)';
    case 'bool': return 'bool (u8 0/1)';
    case 'bytes': return `bytes (u32 length + data), length ${i.min}..${i.max}`;
    case 'string': return `string (u32 length + UTF-8), at most ${i.max} bytes`;
    case 'fixed': return `${i.length} bytes`;
    case 'addr': return 'address: u8 length (4 or 16) + bytes, network order';
    case 'enum': return i.name === 'Status' ? `${i.wire} [status code](#status-codes)` : `${i.wire} ${enumLink(i.name)}`;
    case 'lit': return `(no bytes) always "${i.value}"`;
    case 'opt': return `optional (u8 0 = absent, 1 = present, then) ${typeText(i.inner)}`;
    case 'array': return `array (u32 count ${i.min}..${i.max}) of ${typeText(i.of)}`;
    case 'struct':
    case 'union':
    case 'lazy': return recordLink(i.name);
  }
}

function widthText(c: Codec<unknown>): string {
  const i = c.info;
  switch (i.kind) {
    case 'int': return String({ u8: 1, u16: 2, u32: 4 }[i.wire]);
    case 'enum': return String({ u8: 1, u16: 2, u32: 4 }[i.wire]);
    case 'timer': return '4';
    case 'bool': return '1';
    case 'fixed': return String(i.length);
    case 'lit': return '0';
    default: return 'var';
  }
}

interface Collected {
  records: Map<string, Codec<unknown>>;
  enums: Map<string, ReadonlyArray<readonly [number, string]>>;
}

function collect(c: Codec<unknown>, out: Collected, top = false): void {
  const i = c.info;
  switch (i.kind) {
    case 'enum':
      // Status codes get their own table with origins.
      if (i.name !== 'Status') out.enums.set(i.name, i.values);
      return;
    case 'opt':
      return collect(i.inner, out);
    case 'array':
      return collect(i.of, out);
    case 'lazy':
      return collect(i.get(), out);
    case 'struct':
    case 'union': {
      if (!top) {
        if (out.records.has(i.name)) return;
        out.records.set(i.name, c);
      }
      if (i.kind === 'struct') for (const fld of i.fields) collect(fld.codec, out);
      else for (const v of i.variants) collect(v.codec, out);
      return;
    }
    default:
      return;
  }
}

function fieldTable(c: Codec<unknown>): string[] {
  const i = c.info;
  const lines: string[] = [];
  if (i.kind === 'struct') {
    if (i.fields.length === 0) lines.push('(no fields)');
    else {
      lines.push('| field | type | bytes | meaning | spec |', '|---|---|---|---|---|');
      for (const fld of i.fields) lines.push(`| \`${fld.name}\` | ${cell(typeText(fld.codec))} | ${widthText(fld.codec)} | ${cell(fld.doc)} | ${fld.spec} |`);
    }
  } else if (i.kind === 'union') {
    lines.push('u8 variant index, then the variant:', '', '| index | variant | encoding |', '|---|---|---|');
    i.variants.forEach((v, n) => lines.push(`| ${n} | ${v.label} | ${typeText(v.codec)} |`));
  }
  if (c.rules.length > 0) {
    lines.push('', 'Rules (checked when encoding and when decoding):');
    for (const r of c.rules) lines.push(`- ${r}`);
  }
  return lines;
}

/** The generated reference: messages, records, enumerations, status codes. */
export function describeProtocol(): string {
  const out: Collected = { records: new Map(), enums: new Map() };
  const lines: string[] = ['### Message index', '', '| code | message | direction | spec | purpose |', '|---|---|---|---|---|'];
  for (const m of MESSAGE_LIST) {
    lines.push(`| ${hex(m.code, 4)} | [${m.name}](#${anchor(`${hex(m.code, 4)} ${m.name}`)}) | ${m.dir} | ${m.spec} | ${cell(m.doc)} |`);
    collect(m.codec, out, true);
  }
  lines.push('', '### Messages', '');
  for (const m of MESSAGE_LIST) {
    const i = m.codec.info;
    lines.push(`#### ${hex(m.code, 4)} ${m.name}`, '', `${m.dir}; spec ${m.spec}. ${i.kind === 'struct' ? i.doc : ''}`.trimEnd(), '');
    lines.push(...fieldTable(m.codec), '');
  }
  lines.push('### Records', '');
  for (const [name, c] of [...out.records].sort((a, b) => a[0].localeCompare(b[0]))) {
    const i = c.info;
    lines.push(`#### ${name}`, '', i.kind === 'struct' || i.kind === 'union' ? i.doc : '', '', ...fieldTable(c), '');
  }
  lines.push('### Enumerations', '');
  for (const [name, values] of [...out.enums].sort((a, b) => a[0].localeCompare(b[0]))) {
    lines.push(`#### enum ${name}`, '', '| value | name |', '|---|---|');
    for (const [v, n] of values) lines.push(`| ${v} | ${n} |`);
    lines.push('');
  }
  lines.push('### Status codes', '', '| name | value (u32) | origin |', '|---|---|---|');
  for (const [name, v] of Object.entries(Status)) {
    const origin = name.startsWith('IPC_') ? 'ours: IPC-level error' : v >= 0xe0231f00 ? 'ours: NDIS names it without a value (spec 9 item 2)' : 'NDIS';
    lines.push(`| ${name} | ${hex(v, 8)} | ${origin} |`);
  }
  return `${lines.join('\n').replace(/\n{3,}/g, '\n\n').trimEnd()}\n`;
}
