/**
 * JSON exactly as Go's encoding/json reads it and OPA's hash.go writes it, for bundle
 * signatures (src/bundle-signature.ts).
 */
// node's JSON.parse would lose number lexemes (`1.0`), replace invalid UTF-8 differently and
// sort keys by UTF-16 units, and each of those would change a digest.

/** A number kept as written: json.Decoder.UseNumber (v1/util/json.go NewJSONDecoder). */
export class GoNumber {
  constructor(readonly literal: string) {}
}

/** Object members in document order, duplicates included. */
export class GoObject {
  constructor(readonly entries: ReadonlyArray<readonly [string, GoValue]>) {}
}

export type GoValue = null | boolean | string | GoNumber | GoValue[] | GoObject;

export interface Builder<T> {
  string(value: string): T;
  number(literal: string): T;
  literal(value: boolean | null): T;
  array(items: T[]): T;
  object(entries: Array<[string, T]>): T;
}

export const goTree: Builder<GoValue> = {
  string: (value) => value,
  number: (literal) => new GoNumber(literal),
  literal: (value) => value,
  array: (items) => items,
  object: (entries) => new GoObject(entries),
};

/**
 * hash.go walk: objects with keys sorted by bytes (a Go map, so the last duplicate wins),
 * no whitespace, strings as json.Encoder with SetEscapeHTML(false), numbers as written.
 */
export const goCanonical: Builder<string> = {
  string: (value) => goQuote(value),
  number: (literal) => literal,
  literal: (value) => String(value),
  array: (items) => `[${items.join(',')}]`,
  object: (entries) => {
    const members = [...new Map(entries)].map(([key, value]) => ({
      bytes: Buffer.from(key, 'utf8'),
      text: `${goQuote(key)}:${value}`,
    }));
    members.sort((a, b) => Buffer.compare(a.bytes, b.bytes));
    return `{${members.map((m) => m.text).join(',')}}`;
  },
};

const SHORT_ESCAPES: Readonly<Record<string, string>> = {
  '"': '\\"',
  '\\': '\\\\',
  '\b': '\\b',
  '\f': '\\f',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
};

/**
 * encoding/json appendString without HTML escaping: `<>&` stay, control characters and
 * U+2028/U+2029 are escaped. Decoded strings are valid Unicode, so no \ufffd case.
 */
function goQuote(value: string): string {
  const escaped = value.replace(
    // biome-ignore lint/suspicious/noControlCharactersInRegex: Go escapes exactly these.
    /["\\\u0000-\u001f\u2028\u2029]/g,
    (c) => SHORT_ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  return `"${escaped}"`;
}

/** The one-letter escapes encoding/json reads (scanner.go stateInStringEsc). */
const JSON_ESCAPES: Readonly<Record<string, string>> = {
  '"': '"',
  '\\': '\\',
  '/': '/',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
};

/** encoding/json scanner maxNestingDepth. */
const MAX_DEPTH = 10_000;

type Frame<T> = { items: T[] } | { entries: Array<[string, T]>; key: string };

/**
 * Go's JSON grammar without recursion (nesting goes to MAX_DEPTH). `whole` is
 * json.Unmarshal (nothing may follow the value); `prefix` is json.Decoder.Decode (the
 * first value is read, whatever follows is left unread).
 */
export function parseGoJson<T>(bytes: Buffer, build: Builder<T>, mode: 'whole' | 'prefix'): T {
  let pos = 0;
  const fail = (what: string): never => {
    throw new SyntaxError(`${what} at byte ${pos}`);
  };
  const space = () => {
    for (let c = bytes[pos]; c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d; c = bytes[pos]) {
      pos += 1;
    }
  };
  const expect = (char: string) => {
    space();
    if (bytes[pos] !== char.charCodeAt(0)) fail(`expected '${char}'`);
    pos += 1;
  };
  const objectKey = (): string => {
    space();
    if (bytes[pos] !== 0x22) fail('expected a string key');
    const key = readString();
    expect(':');
    return key;
  };
  const readString = (): string => {
    pos += 1;
    let out = '';
    let start = pos;
    for (;;) {
      const c = bytes[pos];
      if (c === undefined) return fail('unterminated string');
      if (c === 0x22) {
        out += bytes.toString('utf8', start, pos);
        pos += 1;
        return out;
      }
      if (c < 0x20) fail('control character in string');
      if (c === 0x5c) {
        out += bytes.toString('utf8', start, pos);
        out += readEscape();
        start = pos;
      } else if (c < 0x80) {
        pos += 1;
      } else {
        const size = runeSize(bytes, pos);
        if (size > 0) {
          pos += size;
        } else {
          // decode.go unquote: each byte of invalid UTF-8 becomes U+FFFD.
          out += `${bytes.toString('utf8', start, pos)}\ufffd`;
          pos += 1;
          start = pos;
        }
      }
    }
  };
  const hex4 = (at: number): number => {
    const text = bytes.toString('latin1', at, at + 4);
    return /^[0-9a-fA-F]{4}$/.test(text) ? Number.parseInt(text, 16) : -1;
  };
  const readEscape = (): string => {
    const e = String.fromCharCode(bytes[pos + 1] ?? 0);
    const simple = Object.hasOwn(JSON_ESCAPES, e) ? JSON_ESCAPES[e] : undefined;
    if (simple !== undefined) {
      pos += 2;
      return simple;
    }
    if (e !== 'u') return fail('invalid escape');
    const unit = hex4(pos + 2);
    if (unit < 0) fail('invalid \\u escape');
    pos += 6;
    if (unit < 0xd800 || unit > 0xdfff) return String.fromCharCode(unit);
    // decode.go: a surrogate pair is joined; any other surrogate becomes U+FFFD.
    const low = bytes[pos] === 0x5c && bytes[pos + 1] === 0x75 ? hex4(pos + 2) : -1;
    if (unit < 0xdc00 && low >= 0xdc00 && low <= 0xdfff) {
      pos += 6;
      return String.fromCharCode(unit, low);
    }
    return '\ufffd';
  };
  const readNumber = (): string => {
    const start = pos;
    const digits = () => {
      const from = pos;
      while ((bytes[pos] ?? 0) >= 0x30 && (bytes[pos] ?? 0) <= 0x39) pos += 1;
      if (pos === from) fail('expected a digit');
    };
    if (bytes[pos] === 0x2d) pos += 1;
    if (bytes[pos] === 0x30) pos += 1;
    else digits();
    if (bytes[pos] === 0x2e) {
      pos += 1;
      digits();
    }
    if (bytes[pos] === 0x65 || bytes[pos] === 0x45) {
      pos += 1;
      if (bytes[pos] === 0x2b || bytes[pos] === 0x2d) pos += 1;
      digits();
    }
    return bytes.toString('latin1', start, pos);
  };
  const readLiteral = (): boolean | null => {
    for (const [text, value] of [
      ['true', true],
      ['false', false],
      ['null', null],
    ] as const) {
      if (bytes.toString('latin1', pos, pos + text.length) === text) {
        pos += text.length;
        return value;
      }
    }
    return fail('invalid character');
  };

  const stack: Array<Frame<T>> = [];
  for (;;) {
    space();
    const c = bytes[pos];
    let value: T;
    if (c === 0x7b || c === 0x5b) {
      if (stack.length >= MAX_DEPTH) fail('exceeded max depth');
      pos += 1;
      space();
      if (c === 0x7b && bytes[pos] === 0x7d) {
        pos += 1;
        value = build.object([]);
      } else if (c === 0x5b && bytes[pos] === 0x5d) {
        pos += 1;
        value = build.array([]);
      } else {
        stack.push(c === 0x7b ? { entries: [], key: objectKey() } : { items: [] });
        continue;
      }
    } else if (c === 0x22) {
      value = build.string(readString());
    } else if (c === 0x2d || (c !== undefined && c >= 0x30 && c <= 0x39)) {
      value = build.number(readNumber());
    } else {
      value = build.literal(readLiteral());
    }
    // Hand the value to its container, closing every container that ends here.
    for (;;) {
      const top = stack.at(-1);
      if (top === undefined) {
        if (mode === 'whole') {
          space();
          if (pos !== bytes.length) fail('invalid character after top-level value');
        }
        return value;
      }
      if ('items' in top) top.items.push(value);
      else top.entries.push([top.key, value]);
      space();
      const next = bytes[pos];
      pos += 1;
      if (next === 0x2c) {
        if (!('items' in top)) top.key = objectKey();
        break;
      }
      if (next !== ('items' in top ? 0x5d : 0x7d)) fail("expected ',' or a closing bracket");
      stack.pop();
      value = 'items' in top ? build.array(top.items) : build.object(top.entries);
    }
  }
}

/** Length of the valid UTF-8 sequence at `at`, or 0 (Go's utf8.DecodeRune acceptance). */
function runeSize(bytes: Buffer, at: number): number {
  const first = bytes[at] ?? 0;
  let lo = 0x80;
  let hi = 0xbf;
  let size: number;
  if (first >= 0xc2 && first <= 0xdf) size = 2;
  else if (first >= 0xe0 && first <= 0xef) size = 3;
  else if (first >= 0xf0 && first <= 0xf4) size = 4;
  else return 0;
  if (first === 0xe0) lo = 0xa0;
  if (first === 0xed) hi = 0x9f; // no UTF-16 surrogates
  if (first === 0xf0) lo = 0x90;
  if (first === 0xf4) hi = 0x8f; // nothing above U+10FFFF
  const second = bytes[at + 1] ?? 0;
  if (second < lo || second > hi) return 0;
  for (let i = 2; i < size; i += 1) {
    const next = bytes[at + i] ?? 0;
    if (next < 0x80 || next > 0xbf) return 0;
  }
  return size;
}
