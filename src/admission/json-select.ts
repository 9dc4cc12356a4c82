/**
 * A streaming JSON checker that keeps only selected values.
 *
 * It reads a body chunk by chunk, checks all of it against the JSON grammar (as strict as
 * JSON.parse: no trailing commas, no leading zeros, no raw control characters in strings,
 * only the JSON escapes), and builds JavaScript values for the paths a `Selection` names,
 * nothing else. Everything outside the selection (a Secret's `data`, `stringData`,
 * `managedFields`, …) is skipped byte by byte and never becomes a string, so memory per body
 * is bounded by the selection and the limits below, not by the body's size.
 */

/**
 * A field to keep: `true` keeps a scalar (containers become EMPTY_OBJECT / EMPTY_ARRAY), a
 * number keeps a scalar whose string may be at most that many bytes (raw, as sent; the
 * default is SelectLimits.maxStringBytes).
 */
export interface Selection {
  readonly [field: string]: Selection | true | number;
}

export interface SelectLimits {
  /** Deepest nesting accepted (Go's encoding/json, used by the API server, allows 10 000). */
  readonly maxDepth: number;
  /** Most JSON values (scalars and containers, keys not counted) in one body. */
  readonly maxValues: number;
  /** A kept string longer than this many bytes (raw, as sent) becomes LONG_STRING. */
  readonly maxStringBytes: number;
}

/** Stands for a kept string that was longer than `maxStringBytes`. */
export const LONG_STRING: unique symbol = Symbol('string longer than the limit');
/** Stand for a container found where a selection keeps a scalar (its content is not kept). */
export const EMPTY_OBJECT: Readonly<Record<string, never>> = Object.freeze({});
export const EMPTY_ARRAY: readonly never[] = Object.freeze([]);

export type SelectOutcome =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly problem: SelectProblem };

export type SelectProblem = 'empty' | 'invalid' | 'too-deep' | 'too-many-values';

/** A kept scalar: the most raw bytes its string may have (undefined: maxStringBytes). */
interface KeptScalar {
  readonly maxBytes: number | undefined;
}

type CompiledField = CompiledSelection | KeptScalar;

interface CompiledSelection {
  readonly fields: ReadonlyMap<string, CompiledField>;
  /** Field names as bytes by length: most keys are rejected without building a string. */
  readonly byLength: ReadonlyMap<number, readonly (readonly [Uint8Array, string])[]>;
  /** Longest raw key that can still decode to a field name (each char as a 6-byte escape). */
  readonly maxRawKey: number;
}

export function compileSelection(selection: Selection): CompiledSelection {
  const fields = new Map<string, CompiledField>();
  const byLength = new Map<number, [Uint8Array, string][]>();
  let longest = 0;
  for (const [name, child] of Object.entries(selection)) {
    if (typeof child === 'object') fields.set(name, compileSelection(child));
    else fields.set(name, { maxBytes: child === true ? undefined : child });
    const bytes = Buffer.from(name, 'utf8');
    byLength.set(bytes.length, [...(byLength.get(bytes.length) ?? []), [bytes, name]]);
    longest = Math.max(longest, bytes.length);
  }
  return { fields, byLength, maxRawKey: longest * 6 };
}

interface Frame {
  readonly selection: CompiledSelection;
  readonly record: Record<string, unknown>;
  /** The field named by the last key read in this object, until its value starts. */
  field: CompiledField | undefined;
  name: string;
}

// Parser states.
const VALUE = 0; // a value must come
const VALUE_OR_END = 1; // after '['
const AFTER_VALUE = 2; // ',' or the container's end (or the end of the body at the top)
const KEY_OR_END = 3; // after '{'
const KEY = 4; // after ',' in an object
const COLON = 5;
const STRING = 6;
const ESCAPE = 7;
const UNICODE = 8;
const NUMBER = 9;
const LITERAL = 10;

// What a string is read for.
const SKIP = 0;
const KEY_CAPTURE = 1;
const VALUE_CAPTURE = 2;

// Number grammar states (RFC 8259 §6).
const N_MINUS = 0;
const N_ZERO = 1;
const N_INT = 2;
const N_DOT = 3;
const N_FRAC = 4;
const N_E = 5;
const N_E_SIGN = 6;
const N_EXP = 7;

const OBJECT = 1;
const ARRAY = 2;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

const LITERALS: Readonly<Record<number, readonly [Uint8Array, unknown]>> = {
  0x74: [Buffer.from('true'), true],
  0x66: [Buffer.from('false'), false],
  0x6e: [Buffer.from('null'), null],
};
const BOM = Buffer.from([0xef, 0xbb, 0xbf]);
/** The scratch buffer before any escaped key needs one (never written: it has no room). */
const NO_BYTES = Buffer.alloc(0);
/** Bytes a string run stops at: the quote, the backslash and the 32 control bytes. */
const SPECIAL_BYTES = [QUOTE, BACKSLASH, ...Array.from({ length: 0x20 }, (_, byte) => byte)];
/** Runs shorter than this are checked byte by byte (cheaper than 34 lookups). */
const SHORT_RUN = 1024;
/** 1 for the bytes a string run stops at (SPECIAL_BYTES), 0 for plain string bytes. */
const STOPS_STRING = new Uint8Array(256);
for (const byte of SPECIAL_BYTES) STOPS_STRING[byte] = 1;
/** 1 for the four bytes JSON allows between tokens. */
const WHITESPACE = new Uint8Array(256);
for (const byte of [0x20, 0x0a, 0x0d, 0x09]) WHITESPACE[byte] = 1;
/** Captures shorter than this are copied byte by byte (cheaper than a native call). */
const SHORT_COPY = 64;

/** Where the next of each special byte is in one chunk, found with indexOf and cached. */
class SpecialPositions {
  #chunk: Buffer | undefined;
  readonly #next = new Int32Array(SPECIAL_BYTES.length);

  /** Drops the chunk: its bytes (Secret data among them) must not outlive `write()`. */
  forget(): void {
    this.#chunk = undefined;
  }

  /** Position of the first special byte at or after `from` (chunk.length when none). */
  first(chunk: Buffer, from: number): number {
    if (chunk !== this.#chunk) {
      this.#chunk = chunk;
      this.#next.fill(-1);
    }
    let first = chunk.length;
    for (let slot = 0; slot < SPECIAL_BYTES.length; slot += 1) {
      let position = this.#next[slot] ?? -1;
      if (position < from) {
        position = chunk.indexOf(SPECIAL_BYTES[slot] ?? 0, from);
        if (position < 0) position = chunk.length;
        this.#next[slot] = position;
      }
      if (position < first) first = position;
    }
    return first;
  }
}

/** Bytes allowed after a backslash: " \ / b f n r t (u is handled apart). */
const SIMPLE_ESCAPES = new Set([0x22, 0x5c, 0x2f, 0x62, 0x66, 0x6e, 0x72, 0x74]);
/** The byte each simple escape stands for. */
const UNESCAPED: Readonly<Record<number, number>> = {
  0x22: 0x22,
  0x5c: 0x5c,
  0x2f: 0x2f,
  0x62: 0x08,
  0x66: 0x0c,
  0x6e: 0x0a,
  0x72: 0x0d,
  0x74: 0x09,
};

function hexDigit(byte: number): number {
  if (isDigit(byte)) return byte - 0x30;
  return (byte | 0x20) - 0x61 + 10;
}

/** The code unit of the four hex digits at `at` (already checked by the grammar). */
function hexQuad(bytes: Uint8Array, at: number): number {
  let value = 0;
  for (let index = at; index < at + 4; index += 1) value = value * 16 + hexDigit(bytes[index] ?? 0);
  return value;
}

/**
 * Writes the UTF-8 bytes of the `\uXXXX` escape at `at` (and of the low surrogate escape
 * after a high one) to `out` at `to`. Returns (raw bytes read - 1) << 8 | bytes written, or -1
 * for a lone surrogate.
 */
function writeEscapedUnit(raw: Uint8Array, at: number, out: Buffer, to: number): number {
  const unit = hexQuad(raw, at + 2);
  if (unit < 0x80) {
    out[to] = unit;
    return (5 << 8) | 1;
  }
  if (unit < 0xd800 || unit > 0xdfff) {
    return (5 << 8) | out.write(String.fromCharCode(unit), to, 'utf8');
  }
  const low = raw[at + 6] === BACKSLASH && raw[at + 7] === 0x75 ? hexQuad(raw, at + 8) : -1;
  if (unit > 0xdbff || low < 0xdc00 || low > 0xdfff) return -1;
  return (11 << 8) | out.write(String.fromCharCode(unit, low), to, 'utf8');
}

/** Whether `name` equals the bytes of `bytes` from `from` (names are short: a plain loop). */
function spells(name: Uint8Array, bytes: Uint8Array, from: number): boolean {
  for (let at = 0; at < name.length; at += 1) if (name[at] !== bytes[from + at]) return false;
  return true;
}

/** The field name `length` bytes of `bytes` from `from` spell, compared as bytes (no string built). */
function fieldNamed(
  selection: CompiledSelection,
  bytes: Uint8Array,
  from: number,
  length: number,
): string | undefined {
  const candidates = selection.byLength.get(length);
  if (candidates === undefined) return undefined;
  for (const [spelled, name] of candidates) if (spells(spelled, bytes, from)) return name;
  return undefined;
}

function isDigit(byte: number): boolean {
  return byte >= 0x30 && byte <= 0x39;
}

function isHex(byte: number): boolean {
  return isDigit(byte) || (byte >= 0x41 && byte <= 0x46) || (byte >= 0x61 && byte <= 0x66);
}

/** Bytes of the valid escape at `at` (a backslash) when all of it is in `bytes`, else 0. */
function escapeLength(bytes: Uint8Array, at: number): number {
  const next = bytes[at + 1] ?? -1;
  if (SIMPLE_ESCAPES.has(next)) return 2;
  if (next !== 0x75) return 0;
  for (let hex = at + 2; hex < at + 6; hex += 1) if (!isHex(bytes[hex] ?? -1)) return 0;
  return 6;
}

/** Byte classes of the number grammar: 0, 1-9, '.', 'e'/'E', '+'/'-', anything else. */
function numberClass(byte: number): number {
  if (byte === 0x30) return 0;
  if (isDigit(byte)) return 1;
  if (byte === 0x2e) return 2;
  if (byte === 0x65 || byte === 0x45) return 3;
  return byte === 0x2b || byte === 0x2d ? 4 : 5;
}

const END = -1; // the number ended before this byte (which the structure then reads)
const BAD = -2;
/** RFC 8259 §6 as a transition table: [state][class] → next state, END or BAD. */
const NUMBER_TABLE: readonly (readonly number[])[] = [
  /* N_MINUS */ [N_ZERO, N_INT, BAD, BAD, BAD, BAD],
  /* N_ZERO */ [BAD, BAD, N_DOT, N_E, END, END],
  /* N_INT */ [N_INT, N_INT, N_DOT, N_E, END, END],
  /* N_DOT */ [N_FRAC, N_FRAC, BAD, BAD, BAD, BAD],
  /* N_FRAC */ [N_FRAC, N_FRAC, END, N_E, END, END],
  /* N_E */ [N_EXP, N_EXP, BAD, BAD, N_E_SIGN, BAD],
  /* N_E_SIGN */ [N_EXP, N_EXP, BAD, BAD, BAD, BAD],
  /* N_EXP */ [N_EXP, N_EXP, END, END, END, END],
];

/** The next number-grammar state after `byte`: a state, END or BAD. */
function numberStep(state: number, byte: number): number {
  return NUMBER_TABLE[state]?.[numberClass(byte)] ?? BAD;
}

/** The parser object, its frames and small fields. */
const PARSER_BYTES = 1024;
const VALUE_BYTES = 16;
const RECORD_BYTES = 64;

/** What a kept value costs in the heap, estimated from above (kept trees are small). */
function keptBytes(value: unknown): number {
  if (typeof value === 'string') return VALUE_BYTES + 2 * value.length;
  if (typeof value !== 'object' || value === null || value === EMPTY_OBJECT) return VALUE_BYTES;
  let bytes = RECORD_BYTES;
  for (const child of Object.values(value)) bytes += VALUE_BYTES + keptBytes(child);
  return bytes;
}

/**
 * Push parser: `write` each chunk, then `end`. After the first problem the rest of the body
 * is ignored (the caller may keep draining it) and `end` reports the problem.
 */
export class SelectingJsonParser {
  readonly #root: CompiledSelection;
  readonly #limits: SelectLimits;
  #state = VALUE;
  #depth = 0;
  #stack = new Uint8Array(32);
  readonly #frames: Frame[] = [];
  #values = 0;
  #bytes = 0;
  #problem: SelectProblem | undefined;
  #result: unknown = undefined;
  /** keptBytes of #result, kept up to date by #assign (not recounted on every chunk). */
  #keptBytes = 0;
  /** Made on the first long string run (most reviews have none). */
  #specials: SpecialPositions | undefined;

  // The value being read and where it goes once complete.
  #target: Frame | undefined;
  #targetIsRoot = false;
  #targetName = '';
  #targetChild: CompiledField | undefined;

  // Strings and numbers that are kept are collected raw here (quotes and escapes included).
  #mode = SKIP;
  #stringIsKey = false;
  #capture: Buffer | undefined;
  #captureLength = 0;
  #captureOverflow = false;
  #captureLimit = 0;
  #stringHasEscape = false;
  /** Where escaped keys are decoded (reused: at most the longest raw key of a selection). */
  #scratch: Buffer = NO_BYTES;
  #hexLeft = 0;
  #number = N_MINUS;
  #literal: Uint8Array = BOM;
  #literalIndex = 0;
  #literalValue: unknown = undefined;
  #afterLiteral = VALUE;

  constructor(selection: CompiledSelection, limits: SelectLimits) {
    this.#root = selection;
    this.#limits = limits;
  }

  /**
   * Bytes this parser holds right now, for the caller's memory accounting: its buffers (the
   * capture, the nesting stack, the key scratch) and the values kept so far, estimated as V8
   * stores them (two bytes per character at most, plus object and property headers).
   */
  get heldBytes(): number {
    const buffers = (this.#capture?.length ?? 0) + this.#stack.length + this.#scratch.length;
    return PARSER_BYTES + buffers + this.#keptBytes;
  }

  write(bytes: Uint8Array): void {
    if (this.#problem !== undefined || bytes.length === 0) return;
    const chunk = Buffer.isBuffer(bytes)
      ? bytes
      : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let index = 0;
    if (this.#bytes === 0 && chunk[0] === 0xef) {
      // Like Fastify's JSON parser: a UTF-8 byte order mark at the start is ignored.
      this.#startLiteral(BOM, undefined, VALUE);
      index = 1;
    }
    this.#bytes += chunk.length;
    const length = chunk.length;
    // #fail returns a position past any chunk, which ends the loop.
    while (index < length) index = this.#step(chunk, index);
    this.#specials?.forget();
  }

  end(): SelectOutcome {
    if (this.#problem === undefined && this.#bytes === 0) this.#problem = 'empty';
    if (this.#problem === undefined && this.#state === NUMBER && this.#depth === 0) {
      if (numberStep(this.#number, 0x20) === END) this.#finishNumber();
    }
    if (this.#problem === undefined && (this.#state !== AFTER_VALUE || this.#depth !== 0)) {
      this.#problem = 'invalid';
    }
    if (this.#problem !== undefined) return { ok: false, problem: this.#problem };
    return { ok: true, value: this.#result };
  }

  #fail(problem: SelectProblem = 'invalid'): number {
    this.#problem = problem;
    return Number.MAX_SAFE_INTEGER;
  }

  #step(chunk: Buffer, index: number): number {
    switch (this.#state) {
      case STRING:
        return this.#string(chunk, index);
      case ESCAPE:
        return this.#escape(chunk, index);
      case UNICODE:
        return this.#unicode(chunk, index);
      case NUMBER:
        return this.#numberByte(chunk, index);
      case LITERAL:
        return this.#literalByte(chunk, index);
      default:
        return this.#structural(chunk, index);
    }
  }

  #structural(chunk: Buffer, index: number): number {
    let at = index;
    const length = chunk.length;
    while (at < length && WHITESPACE[chunk[at] ?? 0] === 1) at += 1;
    if (at === length) return at;
    const byte = chunk[at] ?? -1;
    switch (this.#state) {
      case VALUE:
        return this.#value(chunk, byte, at);
      case VALUE_OR_END:
        return byte === 0x5d ? this.#close(ARRAY, at) : this.#value(chunk, byte, at);
      case AFTER_VALUE:
        return this.#afterValue(byte, at);
      case COLON:
        if (byte !== 0x3a) return this.#fail();
        this.#state = VALUE;
        return at + 1;
      default:
        return this.#key(chunk, byte, at);
    }
  }

  /** KEY_OR_END (after '{') or KEY (after ','). */
  #key(chunk: Buffer, byte: number, at: number): number {
    if (byte === 0x7d && this.#state === KEY_OR_END) return this.#close(OBJECT, at);
    return byte === QUOTE ? this.#startKey(chunk, at) : this.#fail();
  }

  #afterValue(byte: number, at: number): number {
    if (this.#depth === 0) return this.#fail();
    const container = this.#stack[this.#depth - 1];
    if (byte === 0x2c) {
      this.#state = container === OBJECT ? KEY : VALUE;
      return at + 1;
    }
    if (byte === 0x7d) return this.#close(OBJECT, at);
    return byte === 0x5d ? this.#close(ARRAY, at) : this.#fail();
  }

  /** A value starts at `at` with `byte`: work out where it goes, then read it. */
  #value(chunk: Buffer, byte: number, at: number): number {
    this.#values += 1;
    if (this.#values > this.#limits.maxValues) return this.#fail('too-many-values');
    this.#chooseTarget();
    if (byte === 0x7b) return this.#open(OBJECT, at);
    if (byte === 0x5b) return this.#open(ARRAY, at);
    if (byte === QUOTE) return this.#startValueString(chunk, at);
    return this.#scalar(byte, at);
  }

  #scalar(byte: number, at: number): number {
    const literal = LITERALS[byte];
    if (literal !== undefined) {
      this.#startLiteral(literal[0], literal[1], AFTER_VALUE);
      return at + 1;
    }
    if (byte !== 0x2d && !isDigit(byte)) return this.#fail();
    this.#number = byte === 0x2d ? N_MINUS : byte === 0x30 ? N_ZERO : N_INT;
    this.#state = NUMBER;
    this.#beginCapture(this.#targetChild !== undefined, 64);
    if (this.#mode === VALUE_CAPTURE) this.#append(byte);
    return at + 1;
  }

  #chooseTarget(): void {
    this.#target = undefined;
    this.#targetIsRoot = false;
    this.#targetChild = undefined;
    if (this.#depth === 0) {
      this.#targetIsRoot = true;
      this.#targetChild = this.#root;
      return;
    }
    if (this.#depth !== this.#frames.length) return;
    const frame = this.#frames[this.#depth - 1];
    if (frame?.field === undefined) return;
    this.#target = frame;
    this.#targetName = frame.name;
    this.#targetChild = frame.field;
    frame.field = undefined;
  }

  #assign(value: unknown): void {
    if (this.#targetIsRoot) {
      this.#result = value;
      this.#keptBytes = keptBytes(value);
    } else if (this.#target !== undefined) {
      const record = this.#target.record;
      const name = this.#targetName;
      // A repeated key replaces its value: what it held is no longer held.
      if (Object.hasOwn(record, name)) this.#keptBytes -= VALUE_BYTES + keptBytes(record[name]);
      record[name] = value;
      this.#keptBytes += VALUE_BYTES + keptBytes(value);
    }
    this.#target = undefined;
    this.#targetIsRoot = false;
    this.#targetChild = undefined;
  }

  #open(container: number, at: number): number {
    if (this.#depth >= this.#limits.maxDepth) return this.#fail('too-deep');
    if (this.#depth === this.#stack.length) {
      const grown = new Uint8Array(Math.min(this.#stack.length * 2, this.#limits.maxDepth));
      grown.set(this.#stack);
      this.#stack = grown;
    }
    const child = this.#targetChild;
    if (container === OBJECT && child !== undefined && 'fields' in child) {
      const record: Record<string, unknown> = {};
      this.#assign(record);
      this.#frames.push({ selection: child, record, field: undefined, name: '' });
    } else if (child !== undefined) {
      this.#assign(container === OBJECT ? EMPTY_OBJECT : EMPTY_ARRAY);
    }
    this.#stack[this.#depth] = container;
    this.#depth += 1;
    this.#state = container === OBJECT ? KEY_OR_END : VALUE_OR_END;
    return at + 1;
  }

  #close(container: number, at: number): number {
    if (this.#depth === 0 || this.#stack[this.#depth - 1] !== container) return this.#fail();
    if (this.#frames.length === this.#depth) this.#frames.pop();
    this.#depth -= 1;
    this.#state = AFTER_VALUE;
    return at + 1;
  }

  #startKey(chunk: Buffer, at: number): number {
    const tracked = this.#depth === this.#frames.length;
    this.#startString(tracked ? KEY_CAPTURE : SKIP, true);
    if (!tracked) return at + 1;
    const end = this.#wholeKeyEnd(chunk, at + 1);
    if (end < 0) {
      this.#stringHasEscape = false;
      return at + 1;
    }
    this.#state = COLON;
    this.#resolveKeyIn(chunk, at + 1, end);
    return end + 1;
  }

  /** A kept string value starts at `at`: read in place when it ends in this chunk unescaped. */
  #startValueString(chunk: Buffer, at: number): number {
    this.#startString(this.#targetChild === undefined ? SKIP : VALUE_CAPTURE, false);
    if (this.#mode === SKIP) return at + 1;
    const end = this.#wholeStringEnd(chunk, at + 1);
    if (end < 0) {
      this.#append(QUOTE);
      return at + 1;
    }
    this.#state = AFTER_VALUE;
    // Raw length with both quotes, as the capture would count it.
    const long = end - at + 1 > this.#captureLimit;
    this.#assign(long ? LONG_STRING : chunk.toString('utf8', at + 1, end));
    return end + 1;
  }

  /**
   * Where the key whose content starts at `from` ends (its closing quote), when that is in this
   * chunk and its escapes are all valid; else -1 (the key is then read as it comes).
   */
  #wholeKeyEnd(chunk: Buffer, from: number): number {
    const length = chunk.length;
    let at = this.#plainRunEnd(chunk, from);
    while (at < length && chunk[at] === BACKSLASH) {
      const escape = escapeLength(chunk, at);
      if (escape === 0) return -1;
      this.#stringHasEscape = true;
      at = this.#plainRunEnd(chunk, at + escape);
    }
    return at < length && chunk[at] === QUOTE ? at : -1;
  }

  /**
   * Where the string whose content starts at `from` ends (its closing quote), when that is in
   * this chunk and no escape comes before it; else -1 (the string is then read as it comes).
   */
  #wholeStringEnd(chunk: Buffer, from: number): number {
    const end = this.#plainRunEnd(chunk, from);
    return end < chunk.length && chunk[end] === QUOTE ? end : -1;
  }

  /** Raw bytes the string value being started may have (its field's limit, else the default). */
  #stringLimit(): number {
    const child = this.#targetChild;
    const own = child !== undefined && 'maxBytes' in child ? child.maxBytes : undefined;
    return own ?? this.#limits.maxStringBytes;
  }

  #startString(mode: number, isKey: boolean): void {
    this.#state = STRING;
    this.#stringIsKey = isKey;
    this.#stringHasEscape = false;
    const frame = this.#frames[this.#frames.length - 1];
    const limit =
      mode === KEY_CAPTURE ? (frame?.selection.maxRawKey ?? 0) : this.#stringLimit() + 2;
    this.#beginCapture(mode !== SKIP, limit);
    if (mode === KEY_CAPTURE) this.#mode = KEY_CAPTURE;
  }

  #beginCapture(capture: boolean, limit: number): void {
    this.#mode = capture ? VALUE_CAPTURE : SKIP;
    this.#captureLength = 0;
    this.#captureOverflow = false;
    this.#captureLimit = limit;
  }

  #append(byte: number): void {
    if (this.#captureLength >= this.#captureLimit) {
      this.#captureOverflow = true;
      return;
    }
    this.#ensureCapacity(this.#captureLength + 1)[this.#captureLength] = byte;
    this.#captureLength += 1;
  }

  #appendRange(chunk: Uint8Array, from: number, to: number): void {
    const room = this.#captureLimit - this.#captureLength;
    const count = Math.min(to - from, room);
    if (count < to - from) this.#captureOverflow = true;
    if (count <= 0) return;
    const target = this.#ensureCapacity(this.#captureLength + count);
    if (count < SHORT_COPY) {
      let to = this.#captureLength;
      for (let at = from; at < from + count; at += 1) target[to++] = chunk[at] ?? 0;
    } else {
      target.set(chunk.subarray(from, from + count), this.#captureLength);
    }
    this.#captureLength += count;
  }

  #ensureCapacity(size: number): Buffer {
    const current = this.#capture;
    if (current !== undefined && current.length >= size) return current;
    const grown = Buffer.allocUnsafe(Math.max(size, (current?.length ?? 32) * 2));
    current?.copy(grown, 0, 0, this.#captureLength);
    this.#capture = grown;
    return grown;
  }

  /**
   * Inside a string: plain bytes are skipped (or copied) in one go. Short runs are checked
   * byte by byte; a long run (base64 Secret data) jumps to the next quote, backslash or
   * control byte found with Buffer#indexOf, which is many times faster than a loop.
   */
  #string(chunk: Buffer, index: number): number {
    const length = chunk.length;
    const at = this.#plainRunEnd(chunk, index);
    if (this.#mode !== SKIP) this.#appendRange(chunk, index, at);
    if (at === length) return at;
    const byte = chunk[at] ?? -1;
    if (byte === QUOTE) {
      this.#endString();
      return at + 1;
    }
    if (byte !== BACKSLASH) return this.#fail();
    if (this.#mode !== SKIP) this.#append(byte);
    this.#stringHasEscape = true;
    this.#state = ESCAPE;
    return at + 1;
  }

  /** Where the run of plain string bytes starting at `index` ends. */
  #plainRunEnd(chunk: Buffer, index: number): number {
    const length = chunk.length;
    const stop = Math.min(length, index + SHORT_RUN);
    for (let at = index; at < stop; at += 1) {
      if (STOPS_STRING[chunk[at] ?? 0] === 1) return at;
    }
    if (stop === length) return stop;
    this.#specials ??= new SpecialPositions();
    return this.#specials.first(chunk, stop);
  }

  #escape(chunk: Uint8Array, index: number): number {
    const byte = chunk[index] ?? -1;
    if (this.#mode !== SKIP) this.#append(byte);
    if (byte === 0x75) {
      this.#hexLeft = 4;
      this.#state = UNICODE;
      return index + 1;
    }
    if (!SIMPLE_ESCAPES.has(byte)) return this.#fail();
    this.#state = STRING;
    return index + 1;
  }

  #unicode(chunk: Uint8Array, index: number): number {
    const byte = chunk[index] ?? -1;
    if (!isHex(byte)) return this.#fail();
    if (this.#mode !== SKIP) this.#append(byte);
    this.#hexLeft -= 1;
    if (this.#hexLeft === 0) this.#state = STRING;
    return index + 1;
  }

  #endString(): void {
    if (this.#stringIsKey) {
      this.#state = COLON;
      if (this.#mode === KEY_CAPTURE) this.#resolveKey();
      return;
    }
    this.#state = AFTER_VALUE;
    if (this.#mode !== VALUE_CAPTURE) return;
    this.#append(QUOTE);
    if (this.#captureOverflow) {
      this.#assign(LONG_STRING);
      return;
    }
    // The bytes were checked above; JSON.parse only decodes escapes (and UTF-8) here.
    if (!this.#stringHasEscape) {
      this.#assign((this.#capture ?? BOM).toString('utf8', 1, this.#captureLength - 1));
    } else {
      this.#assign(JSON.parse(this.#captured()));
    }
  }

  #captured(): string {
    return (this.#capture ?? Buffer.alloc(0)).toString('utf8', 0, this.#captureLength);
  }

  #resolveKey(): void {
    const frame = this.#frames[this.#frames.length - 1];
    if (frame === undefined) return;
    frame.field = undefined;
    if (this.#captureOverflow) return;
    const captured = this.#capture;
    if (captured === undefined) return;
    // A view of this key only: the buffer may hold bytes of a longer earlier capture after it.
    const length = this.#stringHasEscape
      ? this.#unescapeKey(captured.subarray(0, this.#captureLength))
      : this.#captureLength;
    const bytes = this.#stringHasEscape ? this.#scratch : captured;
    this.#selectField(frame, fieldNamed(frame.selection, bytes, 0, length));
  }

  /** The key between `from` and `to` of one chunk (its escapes checked), read in place. */
  #resolveKeyIn(chunk: Buffer, from: number, to: number): void {
    const frame = this.#frames[this.#frames.length - 1];
    if (frame === undefined) return;
    frame.field = undefined;
    if (to - from > this.#captureLimit) return;
    if (!this.#stringHasEscape) {
      this.#selectField(frame, fieldNamed(frame.selection, chunk, from, to - from));
      return;
    }
    const length = this.#unescapeKey(chunk.subarray(from, to));
    this.#selectField(frame, fieldNamed(frame.selection, this.#scratch, 0, length));
  }

  #selectField(frame: Frame, name: string | undefined): void {
    if (name === undefined) return;
    const field = frame.selection.fields.get(name);
    if (field === undefined) return;
    frame.field = field;
    frame.name = name;
  }

  /**
   * Decodes the escapes of the captured key into the scratch buffer as UTF-8, by hand: a
   * hostile body of half a million escaped keys cost ~0.5 s when each went through JSON.parse.
   * Returns the decoded length (never more than the raw one), or -1 for a lone surrogate,
   * which no field name holds.
   */
  #unescapeKey(captured: Uint8Array): number {
    const length = captured.length;
    if (this.#scratch.length < length) this.#scratch = Buffer.alloc(length);
    const scratch = this.#scratch;
    let out = 0;
    for (let at = 0; at < length; at += 1) {
      const byte = captured[at] ?? -1;
      if (byte !== BACKSLASH) {
        scratch[out] = byte;
        out += 1;
      } else if (captured[at + 1] !== 0x75) {
        scratch[out] = UNESCAPED[captured[at + 1] ?? -1] ?? 0;
        out += 1;
        at += 1;
      } else {
        const written = writeEscapedUnit(captured, at, scratch, out);
        if (written < 0) return -1;
        out += written & 0xff;
        at += written >> 8;
      }
    }
    return out;
  }

  #numberByte(chunk: Uint8Array, index: number): number {
    const length = chunk.length;
    let at = index;
    while (at < length) {
      const next = numberStep(this.#number, chunk[at] ?? -1);
      if (next === BAD) return this.#fail();
      if (next === END) break;
      this.#number = next;
      at += 1;
    }
    if (this.#mode !== SKIP) this.#appendRange(chunk, index, at);
    if (at === length) return at;
    this.#finishNumber();
    return at;
  }

  #finishNumber(): void {
    this.#state = AFTER_VALUE;
    if (this.#mode === VALUE_CAPTURE) {
      this.#assign(this.#captureOverflow ? Number.NaN : Number(this.#captured()));
    }
  }

  #startLiteral(bytes: Uint8Array, value: unknown, after: number): void {
    this.#state = LITERAL;
    this.#literal = bytes;
    this.#literalIndex = 1;
    this.#literalValue = value;
    this.#afterLiteral = after;
  }

  #literalByte(chunk: Uint8Array, index: number): number {
    if (chunk[index] !== this.#literal[this.#literalIndex]) return this.#fail();
    this.#literalIndex += 1;
    if (this.#literalIndex === this.#literal.length) {
      this.#state = this.#afterLiteral;
      if (this.#afterLiteral === AFTER_VALUE && this.#targetChild !== undefined) {
        this.#assign(this.#literalValue);
      }
    }
    return index + 1;
  }
}
