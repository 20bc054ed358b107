/**
 * A small declarative binary schema. Every codec encodes, decodes and validates one value, and
 * carries the facts (`info`) that `describe.ts` turns into the protocol document, so the types, the
 * codec and the document all come from one definition.
 *
 * Wire conventions: integers little-endian; byte arrays and strings u32 length + data; arrays u32
 * count + elements; optionals u8 0/1 + value; unions u8 variant index + variant.
 *
 * Decoding throws `IpcSchemaError` internally; `codec.ts` turns it into a result value at the edge.
 */

export type SchemaErrorCode =
  | 'truncated' | 'trailing' | 'range' | 'enum' | 'length' | 'limit' | 'depth' | 'invalid' | 'utf8';

export class IpcSchemaError extends Error {
  constructor(
    readonly code: SchemaErrorCode,
    readonly problem: string,
    /** Dotted path of the offending field, e.g. `blocks[0].state.const.sndWindScale`. */
    public path = '',
  ) {
    super(path === '' ? problem : `${path}: ${problem}`);
    this.name = 'IpcSchemaError';
  }

  /** Prefix the path with an enclosing field name or index (errors bubble outwards). */
  within(segment: string): this {
    if (this.path === '') this.path = segment;
    else this.path = segment + (this.path.startsWith('[') ? '' : '.') + this.path;
    this.message = `${this.path}: ${this.problem}`;
    return this;
  }
}

function fail(code: SchemaErrorCode, problem: string): never {
  throw new IpcSchemaError(code, problem);
}

// ------------------------------------------------------------------------------ writer / reader

/** A plain Uint8Array over unzeroed memory (Node's allocUnsafeSlow: not from the shared pool). */
function allocUninitialised(n: number): Uint8Array {
  const b = Buffer.allocUnsafeSlow(n);
  return new Uint8Array(b.buffer, b.byteOffset, n);
}

export class Writer {
  buf: Uint8Array;
  private view: DataView;
  pos = 0;
  /** Nesting depth of `nest` codecs being encoded. */
  depth = 0;

  constructor(initialBytes = 256) {
    this.buf = allocUninitialised(initialBytes);
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
  }

  ensure(n: number): void {
    const need = this.pos + n;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    // Every byte below pos is copied and everything above is written before it is read: skip the zero fill.
    const next = allocUninitialised(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer, next.byteOffset, next.byteLength);
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v;
  }

  u16(v: number): void {
    this.ensure(2);
    this.view.setUint16(this.pos, v, true);
    this.pos += 2;
  }

  u32(v: number): void {
    this.ensure(4);
    this.view.setUint32(this.pos, v, true);
    this.pos += 4;
  }

  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  patchU32(at: number, v: number): void {
    this.view.setUint32(at, v, true);
  }

  /** Forget everything written after `pos` (used to roll back a message that failed to encode). */
  truncate(pos: number): void {
    this.pos = pos;
  }

  /** The bytes written so far (a view; the writer must not be reused afterwards). */
  finish(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }
}

export class Reader {
  private readonly view: DataView;
  pos: number;
  depth = 0;

  constructor(readonly buf: Uint8Array, start = 0, readonly end = buf.length) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.pos = start;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  need(n: number): void {
    if (this.end - this.pos < n) fail('truncated', `needs ${n} more byte(s), ${this.end - this.pos} left`);
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }

  u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  /** A view of the next n bytes (zero copy; a plain Uint8Array even over a Buffer). */
  bytes(n: number): Uint8Array {
    this.need(n);
    const v = new Uint8Array(this.buf.buffer, this.buf.byteOffset + this.pos, n);
    this.pos += n;
    return v;
  }
}

// ------------------------------------------------------------------------------ codec model

export type IntWire = 'u8' | 'u16' | 'u32';
const WIRE_MAX: Record<IntWire, number> = { u8: 0xff, u16: 0xffff, u32: 0xffffffff };
const WIRE_SIZE: Record<IntWire, number> = { u8: 1, u16: 2, u32: 4 };

/** What a codec puts on the wire, for the generated document. */
export type TypeInfo =
  | { kind: 'int'; wire: IntWire; min: number; max: number; mask?: number }
  | { kind: 'timer' }
  | { kind: 'bool' }
  | { kind: 'bytes'; min: number; max: number }
  | { kind: 'string'; max: number }
  | { kind: 'fixed'; length: number }
  | { kind: 'addr' }
  | { kind: 'enum'; name: string; wire: IntWire; values: ReadonlyArray<readonly [wire: number, name: string]> }
  | { kind: 'lit'; value: string | number }
  | { kind: 'opt'; inner: Codec<unknown> }
  | { kind: 'array'; of: Codec<unknown>; min: number; max: number }
  | { kind: 'struct'; name: string; doc: string; fields: ReadonlyArray<FieldInfo> }
  | { kind: 'union'; name: string; doc: string; variants: ReadonlyArray<{ label: string; codec: Codec<unknown> }> }
  | { kind: 'lazy'; name: string; get: () => Codec<unknown> };

export interface FieldInfo {
  name: string;
  codec: Codec<unknown>;
  doc: string;
  spec: string;
}

/**
 * Encodes and decodes T. `encode` and `decode` are properties (not methods) so that TypeScript
 * checks them strictly: `Codec<A>` is assignable to `Codec<B>` only when A and B are mutually
 * assignable, which is how the schema is checked against the model types in `chimney/state.ts`.
 */
export interface Codec<T> {
  readonly info: TypeInfo;
  /** Validation rules beyond the field types, in words (for the document). */
  readonly rules: readonly string[];
  /** Fewest bytes a value can take (guards array counts against the bytes left). */
  readonly minSize: number;
  readonly encode: (w: Writer, v: T) => void;
  readonly decode: (r: Reader) => T;
}

export interface OptionalCodec<T> extends Codec<T | undefined> {
  readonly optional: true;
}

export type CodecType<C> = C extends Codec<infer T> ? T : never;

function codec<T>(info: TypeInfo, minSize: number, encode: (w: Writer, v: T) => void, decode: (r: Reader) => T, rules: readonly string[] = []): Codec<T> {
  return { info, rules, minSize, encode, decode };
}

// ------------------------------------------------------------------------------ scalars

/** An unsigned integer of `wire` width restricted to [min, max]. */
export function uint(wire: IntWire, min = 0, max = WIRE_MAX[wire]): Codec<number> {
  const check = (v: number): void => {
    if (!Number.isInteger(v) || v < min || v > max) fail('range', `${String(v)} is not an integer in ${min}..${max}`);
  };
  const put = wire === 'u8' ? (w: Writer, v: number) => w.u8(v) : wire === 'u16' ? (w: Writer, v: number) => w.u16(v) : (w: Writer, v: number) => w.u32(v);
  const get = wire === 'u8' ? (r: Reader) => r.u8() : wire === 'u16' ? (r: Reader) => r.u16() : (r: Reader) => r.u32();
  const full = min === 0 && max === WIRE_MAX[wire];
  return codec<number>(
    { kind: 'int', wire, min, max },
    WIRE_SIZE[wire],
    (w, v) => {
      check(v);
      put(w, v);
    },
    full
      ? get
      : (r) => {
          const v = get(r);
          if (v < min || v > max) fail('range', `${v} is outside ${min}..${max}`);
          return v;
        },
  );
}

export const u8 = uint('u8');
export const u16 = uint('u16');
export const u32 = uint('u32');

/** A bit set of `wire` width in which only the bits of `mask` may be set. */
export function flags(wire: IntWire, mask: number): Codec<number> {
  const base = uint(wire);
  const check = (v: number): void => {
    if ((v & ~mask) !== 0) fail('invalid', `flag bits 0x${(v & ~mask >>> 0).toString(16)} are not defined (allowed mask 0x${mask.toString(16)})`);
  };
  return codec<number>(
    { kind: 'int', wire, min: 0, max: WIRE_MAX[wire], mask },
    base.minSize,
    (w, v) => {
      base.encode(w, v);
      check(v);
    },
    (r) => {
      const v = base.decode(r);
      check(v);
      return v;
    },
  );
}

const TIMER_OFF = 0xffffffff;

/** A tick count where the model's -1 ("timer not running") is 0xFFFFFFFF on the wire. */
export const timer: Codec<number> = codec<number>(
  { kind: 'timer' },
  4,
  (w, v) => {
    if (v === -1) return w.u32(TIMER_OFF);
    if (!Number.isInteger(v) || v < 0 || v >= TIMER_OFF) fail('range', `${String(v)} is neither -1 (not running) nor a tick count in 0..${TIMER_OFF - 1}`);
    w.u32(v);
  },
  (r) => {
    const v = r.u32();
    return v === TIMER_OFF ? -1 : v;
  },
);

export const bool: Codec<boolean> = codec<boolean>(
  { kind: 'bool' },
  1,
  (w, v) => {
    if (typeof v !== 'boolean') fail('invalid', `${String(v)} is not a boolean`);
    w.u8(v ? 1 : 0);
  },
  (r) => {
    const v = r.u8();
    if (v > 1) fail('enum', `boolean byte ${v} is neither 0 nor 1`);
    return v === 1;
  },
);

function isBytes(v: unknown): v is Uint8Array {
  return v instanceof Uint8Array;
}

/** u32 length + bytes, length within [min, max]. Decoded values are views into the frame. */
export function bytes(max: number, min = 0): Codec<Uint8Array> {
  return codec<Uint8Array>(
    { kind: 'bytes', min, max },
    4 + min,
    (w, v) => {
      if (!isBytes(v)) fail('invalid', 'is not a Uint8Array');
      if (v.length < min || v.length > max) fail('length', `length ${v.length} is outside ${min}..${max}`);
      w.u32(v.length);
      w.bytes(v);
    },
    (r) => {
      const n = r.u32();
      if (n < min || n > max) fail('length', `length ${n} is outside ${min}..${max}`);
      return r.bytes(n);
    },
  );
}

/** Exactly `length` bytes, no prefix (MAC addresses). */
export function fixedBytes(length: number): Codec<Uint8Array> {
  return codec<Uint8Array>(
    { kind: 'fixed', length },
    length,
    (w, v) => {
      if (!isBytes(v)) fail('invalid', 'is not a Uint8Array');
      if (v.length !== length) fail('length', `length ${v.length} is not ${length}`);
      w.bytes(v);
    },
    (r) => r.bytes(length),
  );
}

export const mac = fixedBytes(6);

/** u8 length (4 or 16) + an IPv4 or IPv6 address in network byte order. */
export const addr: Codec<Uint8Array> = codec<Uint8Array>(
  { kind: 'addr' },
  5,
  (w, v) => {
    if (!isBytes(v)) fail('invalid', 'is not a Uint8Array');
    if (v.length !== 4 && v.length !== 16) fail('length', `address length ${v.length} is neither 4 nor 16`);
    w.u8(v.length);
    w.bytes(v);
  },
  (r) => {
    const n = r.u8();
    if (n !== 4 && n !== 16) fail('length', `address length ${n} is neither 4 nor 16`);
    return r.bytes(n);
  },
);

const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();

/** u32 byte length + UTF-8 text, at most `max` bytes. */
export function string(max: number): Codec<string> {
  return codec<string>(
    { kind: 'string', max },
    4,
    (w, v) => {
      if (typeof v !== 'string') fail('invalid', 'is not a string');
      const b = utf8Encoder.encode(v);
      if (b.length > max) fail('length', `UTF-8 length ${b.length} exceeds ${max}`);
      w.u32(b.length);
      w.bytes(b);
    },
    (r) => {
      const n = r.u32();
      if (n > max) fail('length', `string length ${n} exceeds ${max}`);
      const b = r.bytes(n);
      try {
        return utf8Decoder.decode(b);
      } catch {
        return fail('utf8', 'is not valid UTF-8');
      }
    },
  );
}

function numericEnum(name: string, values: Record<string, string | number>, wire: IntWire): Codec<number> {
  const pairs = Object.entries(values)
    .filter((e): e is [string, number] => typeof e[1] === 'number')
    .map(([k, v]) => [v, k] as const);
  const allowed = new Set(pairs.map((p) => p[0]));
  const base = uint(wire);
  return codec<number>(
    { kind: 'enum', name, wire, values: pairs },
    base.minSize,
    (w, v) => {
      if (!allowed.has(v)) fail('enum', `${String(v)} is not a ${name} value`);
      base.encode(w, v);
    },
    (r) => {
      const v = base.decode(r);
      if (!allowed.has(v)) fail('enum', `${v} (0x${v.toString(16)}) is not a ${name} value`);
      return v;
    },
  );
}

/**
 * A numeric enum (a TypeScript `enum` object), carried as its numeric value in `wire` width; any
 * other value is rejected.
 */
export function enumOf<E extends Record<string, string | number>>(name: string, values: E, wire: IntWire): Codec<E[keyof E] & number> {
  return numericEnum(name, values, wire) as unknown as Codec<E[keyof E] & number>;
}

/** Like `enumOf` for a `{NAME: value}` table whose model field is a plain `number` (status codes). */
export function codeSet(name: string, values: Record<string, number>, wire: IntWire): Codec<number> {
  return numericEnum(name, values, wire);
}

/** One of a fixed list of strings, carried as its u8 index in the list. */
export function strEnum<const V extends readonly string[]>(name: string, values: V): Codec<V[number]> {
  const index = new Map<string, number>(values.map((v, i) => [v, i]));
  return codec<V[number]>(
    { kind: 'enum', name, wire: 'u8', values: values.map((v, i) => [i, v] as const) },
    1,
    (w, v) => {
      const i = index.get(v);
      if (i === undefined) fail('enum', `${String(v)} is not one of ${values.join(', ')}`);
      w.u8(i);
    },
    (r) => {
      const i = r.u8();
      if (i >= values.length) fail('enum', `${i} is not a ${name} index (0..${values.length - 1})`);
      return values[i]!;
    },
  );
}

/** One of a fixed list of numbers, carried as itself in `wire` width. */
export function numChoice<const V extends readonly number[]>(name: string, values: V, wire: IntWire): Codec<V[number]> {
  const allowed = new Set<number>(values);
  const base = uint(wire);
  return codec<V[number]>(
    { kind: 'enum', name, wire, values: values.map((v) => [v, String(v)] as const) },
    base.minSize,
    (w, v) => {
      if (!allowed.has(v)) fail('enum', `${String(v)} is not one of ${values.join(', ')}`);
      base.encode(w, v);
    },
    (r) => {
      const v = base.decode(r);
      if (!allowed.has(v)) fail('enum', `${v} is not one of ${values.join(', ')}`);
      return v as V[number];
    },
  );
}

/** A constant that takes no bytes (the discriminants of union variants). */
export function lit<const V extends string | number>(value: V): Codec<V> {
  return codec<V>(
    { kind: 'lit', value },
    0,
    (_w, v) => {
      if (v !== value) fail('invalid', `${String(v)} is not ${String(value)}`);
    },
    () => value,
  );
}

// ------------------------------------------------------------------------------ combinators

export function opt<T>(inner: Codec<T>): OptionalCodec<T> {
  return {
    optional: true,
    info: { kind: 'opt', inner: inner as Codec<unknown> },
    rules: [],
    minSize: 1,
    encode: (w, v) => {
      if (v === undefined) return w.u8(0);
      w.u8(1);
      inner.encode(w, v);
    },
    decode: (r) => {
      const p = r.u8();
      if (p === 0) return undefined;
      if (p !== 1) fail('enum', `presence byte ${p} is neither 0 nor 1`);
      return inner.decode(r);
    },
  };
}

export interface ArrayLimits {
  max: number;
  min?: number;
}

/** u32 count + elements; the count is checked against `max` and against the bytes left. */
export function array<T>(of: Codec<T>, limits: ArrayLimits): Codec<T[]> {
  const { max } = limits;
  const min = limits.min ?? 0;
  return codec<T[]>(
    { kind: 'array', of: of as Codec<unknown>, min, max },
    4 + min * of.minSize,
    (w, v) => {
      if (!Array.isArray(v)) fail('invalid', 'is not an array');
      if (v.length > max) fail('limit', `count ${v.length} exceeds the maximum ${max}`);
      if (v.length < min) fail('invalid', `count ${v.length} is below the minimum ${min}`);
      w.u32(v.length);
      for (let i = 0; i < v.length; i++) {
        try {
          of.encode(w, v[i] as T);
        } catch (e) {
          throw rethrow(e, `[${i}]`);
        }
      }
    },
    (r) => {
      const n = r.u32();
      if (n > max) fail('limit', `count ${n} exceeds the maximum ${max}`);
      if (n < min) fail('invalid', `count ${n} is below the minimum ${min}`);
      if (n * of.minSize > r.remaining) fail('truncated', `count ${n} needs at least ${n * of.minSize} bytes, ${r.remaining} left`);
      const out = new Array<T>(n);
      for (let i = 0; i < n; i++) {
        try {
          out[i] = of.decode(r);
        } catch (e) {
          throw rethrow(e, `[${i}]`);
        }
      }
      return out;
    },
  );
}

function rethrow(e: unknown, segment: string): unknown {
  return e instanceof IpcSchemaError ? e.within(segment) : e;
}

// `any` here only lets the type-level helpers accept every codec type; values stay typed.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyCodec = Codec<any>;

export interface Field<C extends AnyCodec> {
  readonly codec: C;
  readonly doc: string;
  readonly spec: string;
}

/** A struct field: its codec, what it means, and the spec section it comes from. */
export function f<C extends AnyCodec>(codec: C, doc: string, spec = ''): Field<C> {
  return { codec, doc, spec };
}

type Fields = Record<string, Field<AnyCodec>>;
type OptKeys<F extends Fields> = { [K in keyof F]: F[K]['codec'] extends { readonly optional: true } ? K : never }[keyof F];
type ReqKeys<F extends Fields> = Exclude<keyof F, OptKeys<F>>;
export type Simplify<T> = { [K in keyof T]: T[K] } & {};
export type StructType<F extends Fields> = Simplify<
  { [K in ReqKeys<F>]: CodecType<F[K]['codec']> } & { [K in OptKeys<F>]?: Exclude<CodecType<F[K]['codec']>, undefined> }
>;

/**
 * Fields in declaration order. Absent optional fields are left out of decoded objects; properties
 * the schema does not know are ignored on encode.
 */
export function struct<F extends Fields>(name: string, doc: string, fields: F): Codec<StructType<F>> {
  const entries = Object.entries(fields).map(([k, fd]) => [k, fd.codec as Codec<unknown>, (fd.codec as Partial<OptionalCodec<unknown>>).optional === true] as const);
  const infos: FieldInfo[] = Object.entries(fields).map(([k, fd]) => ({ name: k, codec: fd.codec as Codec<unknown>, doc: fd.doc, spec: fd.spec }));
  const minSize = entries.reduce((s, e) => s + e[1].minSize, 0);
  type T = StructType<F>;
  return codec<T>(
    { kind: 'struct', name, doc, fields: infos },
    minSize,
    (w, v) => {
      if (typeof v !== 'object' || v === null) fail('invalid', `${name} is not an object`);
      const o = v as Record<string, unknown>;
      for (const [k, c] of entries) {
        try {
          c.encode(w, o[k]);
        } catch (e) {
          throw rethrow(e, k);
        }
      }
    },
    (r) => {
      const o: Record<string, unknown> = {};
      for (const [k, c, optional] of entries) {
        let v: unknown;
        try {
          v = c.decode(r);
        } catch (e) {
          throw rethrow(e, k);
        }
        if (!optional || v !== undefined) o[k] = v;
      }
      return o as T;
    },
  );
}

export interface Variant<C extends AnyCodec> {
  readonly label: string;
  readonly codec: C;
}

/** u8 variant index + the variant; `select` names the variant index of a value to encode. */
export function union<const V extends readonly Variant<AnyCodec>[]>(
  name: string,
  doc: string,
  select: (v: CodecType<V[number]['codec']>) => number,
  variants: V,
): Codec<CodecType<V[number]['codec']>> {
  type T = CodecType<V[number]['codec']>;
  let minSize = Infinity;
  for (const v of variants) minSize = Math.min(minSize, v.codec.minSize);
  return codec<T>(
    { kind: 'union', name, doc, variants: variants.map((v) => ({ label: v.label, codec: v.codec as Codec<unknown> })) },
    1 + minSize,
    (w, v) => {
      if (typeof v !== 'object' || v === null) fail('invalid', `${name} is not an object`);
      const i = select(v);
      const variant = variants[i];
      if (variant === undefined) fail('invalid', `no ${name} variant fits this value`);
      w.u8(i);
      variant.codec.encode(w, v);
    },
    (r) => {
      const i = r.u8();
      const variant = variants[i];
      if (variant === undefined) fail('enum', `${name} variant ${i} does not exist (0..${variants.length - 1})`);
      return variant.codec.decode(r) as T;
    },
  );
}

/** A codec defined later (recursive structures); `minSize` must be given since it cannot be asked yet. */
export function lazy<T>(name: string, get: () => Codec<T>, minSize: number): Codec<T> {
  return codec<T>(
    { kind: 'lazy', name, get: get as () => Codec<unknown> },
    minSize,
    (w, v) => get().encode(w, v),
    (r) => get().decode(r),
  );
}

/** Counts nesting: a value nested more than `max` deep is rejected before it is walked further. */
export function nest<T>(inner: Codec<T>, max: number, what: string): Codec<T> {
  return {
    ...inner,
    encode: (w, v) => {
      w.depth++;
      try {
        if (w.depth > max) fail('depth', `${what} nesting exceeds ${max}`);
        inner.encode(w, v);
      } finally {
        w.depth--;
      }
    },
    decode: (r) => {
      r.depth++;
      try {
        if (r.depth > max) fail('depth', `${what} nesting exceeds ${max}`);
        return inner.decode(r);
      } finally {
        r.depth--;
      }
    },
  };
}

/**
 * Adds a rule: `check` returns a problem in words or undefined. Checked on encode (the caller
 * discards the partly written frame) and after decoding, so neither side can send or accept a value
 * that breaks it.
 */
export function refine<T>(inner: Codec<T>, rule: string, check: (v: T) => string | undefined): Codec<T> {
  return {
    ...inner,
    rules: [...inner.rules, rule],
    encode: (w, v) => {
      inner.encode(w, v); // first, so that `check` sees a value of the right shape
      const problem = check(v);
      if (problem !== undefined) fail('invalid', problem);
    },
    decode: (r) => {
      const v = inner.decode(r);
      const problem = check(v);
      if (problem !== undefined) fail('invalid', problem);
      return v;
    },
  };
}
