/**
 * Generators for image references built from the grammar's pieces (hosts with and without
 * ports, path components and separators, tags, digests), and near-valid ones: the same with
 * a few edits that break one rule (upper case, illegal characters, doubled separators...).
 */
import * as fc from 'fast-check';

const chars = (alphabet: string): fc.Arbitrary<string> => fc.constantFrom(...alphabet);
const word = (alphabet: string, maxLength: number): fc.Arbitrary<string> =>
  fc.string({ unit: chars(alphabet), minLength: 1, maxLength });

const LOWER = 'abcdefghijklmnopqrstuvwxyz0123456789';
const MIXED = `${LOWER}ABCDEFGHIJKLMNOPQRSTUVWXYZ`;
const HEX = '0123456789abcdef';

const alphanumeric = fc.oneof(word('abz09', 4), word(LOWER, 8));
const separator = fc.constantFrom('.', '_', '__', '-', '--', '---');

export const pathComponent: fc.Arbitrary<string> = fc
  .tuple(alphanumeric, fc.array(fc.tuple(separator, alphanumeric), { maxLength: 3 }))
  .map(([head, tail]) => head + tail.map(([sep, part]) => sep + part).join(''));

export const path: fc.Arbitrary<string> = fc
  .array(pathComponent, { minLength: 1, maxLength: 4 })
  .map((parts) => parts.join('/'));

const label = fc.oneof(
  word(MIXED, 6),
  fc.tuple(word(MIXED, 4), word(`${MIXED}-`, 4), word(MIXED, 4)).map((p) => p.join('')),
);
const dnsName = fc.array(label, { minLength: 2, maxLength: 4 }).map((parts) => parts.join('.'));
const ipv4 = fc
  .array(fc.integer({ min: 0, max: 255 }), { minLength: 4, maxLength: 4 })
  .map((parts) => parts.join('.'));
const ipv6 = fc.constantFrom('[::1]', '[2001:db8::1]', '[FE80::A:1]', '[::]');
const port = fc.oneof(
  { weight: 6, arbitrary: fc.constant('') },
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 99_999 }).map((n) => `:${n}`) },
  { weight: 1, arbitrary: fc.constantFrom(':', ':http', ':-1', ':5000:6000', ':0x50') },
);
/** Hosts one rule away from valid: edge dashes, empty labels, zones, IPv4-mapped IPv6. */
const brokenHost = fc.constantFrom(
  '-registry.io',
  'registry-.io',
  'registry.-io',
  'a..b',
  '.a.io',
  'a.io.',
  'a_b.io',
  '[::ffff:127.0.0.1]',
  '[fe80::1%eth0]',
  '[::1',
  '[]',
  '[::g]',
  '[::1]x',
);

export const host: fc.Arbitrary<string> = fc
  .tuple(
    fc.oneof(
      { weight: 4, arbitrary: dnsName },
      { weight: 2, arbitrary: ipv4 },
      { weight: 1, arbitrary: ipv6 },
      {
        weight: 2,
        arbitrary: fc.constantFrom(
          'localhost',
          'LocalHost',
          'docker.io',
          'index.docker.io',
          'INDEX.docker.IO',
          'registry-1.docker.io',
          'registry.example.com',
          'ghcr.io',
        ),
      },
      // A single label: a Docker Hub namespace when lower-case and portless, else a host.
      { weight: 2, arbitrary: label },
      { weight: 1, arbitrary: brokenHost },
    ),
    port,
  )
  .map(([name, p]) => name + p);

export const tag: fc.Arbitrary<string> = fc.oneof(
  { weight: 5, arbitrary: fc.constantFrom('latest', 'v1.2.3', '1.0', '_x', 'Latest-RC.1') },
  {
    weight: 5,
    arbitrary: fc
      .tuple(chars(`${MIXED}_`), fc.string({ unit: chars(`${MIXED}_.-`), maxLength: 20 }))
      .map(([head, tail]) => head + tail),
  },
  // Around the 128-character limit.
  { weight: 1, arbitrary: fc.integer({ min: 126, max: 130 }).map((n) => `v${'1'.repeat(n - 1)}`) },
);

const hex = (length: number): fc.Arbitrary<string> =>
  fc.string({ unit: chars(HEX), minLength: length, maxLength: length });

export const digest: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: hex(64).map((h) => `sha256:${h}`) },
  { weight: 1, arbitrary: hex(128).map((h) => `sha512:${h}`) },
  // Registered algorithm, wrong length or case.
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.constantFrom('sha256', 'sha512'), fc.integer({ min: 30, max: 130 }))
      .chain(([alg, n]) => hex(n).map((h) => `${alg}:${h}`)),
  },
  { weight: 1, arbitrary: hex(64).map((h) => `sha256:${h.toUpperCase()}`) },
  // Unregistered algorithms (refused, however well formed).
  {
    weight: 2,
    arbitrary: fc
      .tuple(
        fc.constantFrom(
          'blake3',
          'sha384',
          'md5',
          'my.alg+v2',
          'Sha256',
          'x1-y_z',
          '1sha',
          'sha256+',
          'a..b',
        ),
        fc.integer({ min: 30, max: 70 }),
      )
      .chain(([alg, n]) => fc.mixedCase(hex(n)).map((h) => `${alg}:${h}`)),
  },
);

/** Grammar-shaped references: mostly valid, invalid only where a piece is (tag, digest). */
export const reference: fc.Arbitrary<string> = fc
  .tuple(
    fc.option(host, { nil: undefined }),
    path,
    fc.option(tag, { nil: undefined }),
    fc.option(digest, { nil: undefined, freq: 3 }),
  )
  .map(
    ([h, p, t, d]) =>
      (h === undefined ? '' : `${h}/`) +
      p +
      (t === undefined ? '' : `:${t}`) +
      (d === undefined ? '' : `@${d}`),
  );

/** Names around the 255-character limit, which counts "docker.io/library/" when implied. */
export const longName: fc.Arbitrary<string> = fc
  .tuple(
    fc.constantFrom('', 'docker.io/', 'registry.example.com/', 'a.io:5000/', 'REGISTRY.io/'),
    fc.integer({ min: 200, max: 260 }),
    fc.constantFrom('', 'x/', 'library/'),
  )
  .map(([prefix, n, middle]) => `${prefix}${middle}${'a'.repeat(Math.max(1, n - prefix.length))}`);

const INSERTS = [
  'A',
  'Z',
  '/',
  '//',
  ':',
  '::',
  '@',
  '.',
  '..',
  '_',
  '___',
  '-',
  '[',
  ']',
  '!',
  '#',
  '%',
  '+',
  ' ',
  '\t',
  'é',
  '\u0443',
  '://',
  'sha256:',
];

type Edit =
  | { readonly kind: 'insert'; readonly at: number; readonly text: string }
  | { readonly kind: 'delete' | 'double' | 'upper'; readonly at: number };

const edit: fc.Arbitrary<Edit> = fc.oneof(
  fc.record({
    kind: fc.constant('insert' as const),
    at: fc.nat(),
    text: fc.constantFrom(...INSERTS),
  }),
  fc.record({ kind: fc.constantFrom('delete' as const, 'double' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('upper' as const), at: fc.nat() }),
);

function applyEdit(s: string, e: Edit): string {
  const at = s.length === 0 ? 0 : e.at % (s.length + 1);
  const before = s.slice(0, at);
  const after = s.slice(at);
  switch (e.kind) {
    case 'insert':
      return before + e.text + after;
    case 'delete':
      return before + after.slice(1);
    case 'double':
      return before + after.slice(0, 1) + after;
    case 'upper':
      return before + after.slice(0, 1).toUpperCase() + after.slice(1);
  }
}

/** References with up to three edits; about a quarter are left untouched. */
export const nearValid: fc.Arbitrary<string> = fc
  .tuple(
    fc.oneof({ weight: 6, arbitrary: reference }, { weight: 1, arbitrary: longName }),
    fc.array(edit, { maxLength: 3 }),
  )
  .map(([s, edits]) => edits.reduce(applyEdit, s));

/** Short strings over the grammar's own alphabet: odd combinations of legal characters. */
export const grammarSoup: fc.Arbitrary<string> = fc.string({
  unit: fc.oneof(
    { weight: 8, arbitrary: chars('aZ09._-/:@[]') },
    { weight: 1, arbitrary: fc.constantFrom('sha256:', 'localhost', 'docker.io', 'f'.repeat(64)) },
  ),
  maxLength: 16,
});
