/**
 * Properties of the reference parser: total (never throws, whatever it is given), stable
 * (parse → format → parse is a fixed point) and exactly as strict as the upstream grammar
 * (reference-grammar.ts), on generated near-valid references where the two could disagree.
 */
import { isDeepStrictEqual } from 'node:util';
import test from 'ava';
import * as fc from 'fast-check';
import {
  formatImageReference,
  type ParseResult,
  parseImageReference,
} from '../../src/review/image-reference.ts';
import { holds } from './property.ts';
import { grammarSoup, longName, nearValid, reference } from './reference-arbitraries.ts';
import { grammar, upstreamAccepts } from './reference-grammar.ts';

const RUNS = 1000;

/** A well-formed result: ok with a reference, or not ok with a short, non-empty reason. */
function wellFormed(result: ParseResult): boolean {
  if (result.ok) return typeof result.reference.normalized === 'string';
  return typeof result.error === 'string' && result.error.length > 0 && result.error.length < 400;
}

const totalOn = test.macro({
  async exec(t, arbitrary: fc.Arbitrary<unknown>, _what: string) {
    await holds(
      t,
      fc.property(arbitrary, (value) => wellFormed(parseImageReference(value))),
      { runs: RUNS },
    );
  },
  title: (_, __, what: string) => `never throws, always a result or a reason: ${what}`,
});

test(totalOn, fc.string(), 'fc.string');
test(totalOn, fc.string({ unit: 'binary' }), 'full Unicode');
test(
  totalOn,
  fc.string({
    unit: fc.oneof(
      fc.constantFrom('\ud800', '\udbff', '\udc00', '\udfff'),
      fc.string({ minLength: 1, maxLength: 1 }),
    ),
  }),
  'lone UTF-16 surrogates',
);
test(totalOn, fc.string({ unit: 'grapheme' }), 'graphemes');
test(totalOn, fc.anything({ withBigInt: true, withMap: true, withSet: true }), 'anything');
test(totalOn, nearValid, 'near-valid references');
test(
  totalOn,
  fc.string({ minLength: 2000, maxLength: 2100, unit: fc.constantFrom('a', '-', '.', '/') }),
  'strings around the input limit',
);

const roundTrip = test.macro({
  async exec(t, arbitrary: fc.Arbitrary<string>, _what: string) {
    let accepted = 0;
    await holds(
      t,
      fc.property(arbitrary, (raw) => {
        const first = parseImageReference(raw);
        if (!first.ok) return true;
        accepted++;
        const formatted = formatImageReference(first.reference);
        const second = parseImageReference(formatted);
        if (!isDeepStrictEqual(second, first) || formatted !== first.reference.normalized) {
          throw new Error(`${JSON.stringify(raw)} → ${formatted} → ${JSON.stringify(second)}`);
        }
        return true;
      }),
      { runs: RUNS },
    );
    // The generators must reach the interesting side, or the property says nothing.
    t.true(accepted > RUNS / 10, `only ${accepted} of ${RUNS} inputs were accepted`);
  },
  title: (_, __, what: string) => `parse(format(parse(x))) deep-equals parse(x): ${what}`,
});

test(roundTrip, reference, 'grammar-built references');
test(roundTrip, nearValid, 'near-valid references');

const agreesWithOracle = test.macro({
  async exec(t, arbitrary: fc.Arbitrary<string>, _what: string) {
    const seen = { accepted: 0, refused: 0 };
    await holds(
      t,
      fc.property(arbitrary, (raw) => {
        const result = parseImageReference(raw);
        const expected = upstreamAccepts(raw);
        if (result.ok) seen.accepted++;
        else seen.refused++;
        if (result.ok === expected) return true;
        const said = result.ok ? `accepted as ${result.reference.normalized}` : result.error;
        throw new Error(`${JSON.stringify(raw)}: oracle says ${expected}, parser ${said}`);
      }),
      { runs: RUNS },
    );
    t.true(seen.accepted > RUNS / 50 && seen.refused > RUNS / 50, JSON.stringify(seen));
  },
  title: (_, __, what: string) => `accepts exactly what the upstream grammar accepts: ${what}`,
});

test(agreesWithOracle, reference, 'grammar-built references');
test(agreesWithOracle, nearValid, 'near-valid references');
test(agreesWithOracle, longName, 'names around 255 characters');
test(agreesWithOracle, grammarSoup, "short strings over the grammar's alphabet");

test('every part of an accepted reference matches its production', async (t) => {
  await holds(
    t,
    fc.property(nearValid, (raw) => {
      const result = parseImageReference(raw);
      if (!result.ok) return true;
      const { domain, path, tag, normalized } = result.reference;
      return (
        grammar.domain.test(domain) &&
        domain === domain.toLowerCase() &&
        grammar.remoteName.test(path) &&
        (tag === '' || grammar.tag.test(tag)) &&
        upstreamAccepts(normalized)
      );
    }),
    { runs: RUNS },
  );
});

// Not properties, but they pin the DELIBERATE differences the oracle encodes, so that a
// change to either side shows up here by name rather than as a shrunk counterexample.
const HEX = 'e63f7cd23fd0a746efbe0bfd303bad00b8bfc9f0a89aaef1de2d146e3bd96204';
const pinned: ReadonlyArray<readonly [input: string, accepted: boolean, why: string]> = [
  ['MyReg/app', false, 'upper-case host without "." or ":"'],
  ['LocalHost/app', true, 'localhost in any case is a host'],
  ['registry_example.com/app', false, 'a host that upstream re-reads as a path component'],
  [`${'a'.repeat(238)}`, false, 'docker.io/library/ counts toward 255'],
  [`${'a'.repeat(238)}/b`, true, 'a nested Docker Hub path gets no library/ prefix'],
  [`a@blake3:${HEX}`, false, 'an algorithm the OCI image spec does not register'],
  [`a@sha384:${HEX}${HEX.slice(0, 32)}`, false, 'sha384, which go-digest has but OCI does not'],
  [`a@sha512:${HEX}${HEX}`, true, 'sha512 with 128 hex digits'],
  [`a@sha256:${HEX.toUpperCase()}`, false, 'sha256 wants lower-case hex'],
  [HEX, false, 'a 64-hex image ID'],
];

for (const [input, accepted, why] of pinned) {
  test(`oracle and parser agree on ${why}`, (t) => {
    t.is(upstreamAccepts(input), accepted, 'oracle');
    t.is(parseImageReference(input).ok, accepted, 'parser');
  });
}
