/**
 * Answers stay bounded: the texts an answer carries (message, reason, audit annotations)
 * are cut at MAX_TEXT_BYTES with a note of what was left out (warnings: warnings.test.ts).
 */
import test from 'ava';
import type { ValidateDecision } from '../../src/review/decision.ts';
import {
  imageReviewResponse,
  joinReasons,
  MAX_TEXT_BYTES,
  validationResponse,
} from '../../src/review/responses.ts';

const bytes = (text: string) => Buffer.byteLength(text);
const reasons = (
  n: number,
  text = (i: number) =>
    `container "c${i}" image "evil.io/x:${i}": registry evil.io/x is not trusted`,
) => Array.from({ length: n }, (_, i) => text(i));

test('reasons that fit are joined whole', (t) => {
  t.is(joinReasons(['a', 'b; c', 'd']), 'a; b; c; d');
  const fits = reasons(10);
  t.is(joinReasons(fits), fits.join('; '));
});

test('reasons over the limit: the leading ones whole, then how many more', (t) => {
  const all = reasons(2000);
  const message = joinReasons(all);
  t.true(bytes(message) <= MAX_TEXT_BYTES, `${bytes(message)} bytes`);
  const [shownText, note] = message.split('; … and ');
  const shown = shownText?.split('; ') ?? [];
  t.deepEqual(shown, all.slice(0, shown.length), 'a prefix of the reasons, none cut');
  t.is(note, `${2000 - shown.length} more (2000 in all)`);
  t.true(bytes(message) > MAX_TEXT_BYTES - 400, 'the budget is used, not wasted');
});

test("the policy's own count of what it left out is replaced by the total", (t) => {
  // The policy gives the first 512 reasons and "… and N more violations" (validate.rego).
  const given = [...reasons(512), '… and 1488 more violations'];
  const message = joinReasons(given, MAX_TEXT_BYTES, 2000);
  const [shownText, note] = message.split('; … and ');
  const shown = shownText?.split('; ') ?? [];
  t.deepEqual(shown, given.slice(0, shown.length));
  t.is(note, `${2000 - shown.length} more (2000 in all)`);
  // Few enough to fit: the policy's note stays as it is.
  const small = ['a', 'b', '… and 3 more violations'];
  t.is(joinReasons(small, MAX_TEXT_BYTES, 5), 'a; b; … and 3 more violations');
});

test('multi-byte text is never split inside a character', (t) => {
  const wide = 'é'.repeat(MAX_TEXT_BYTES); // 2 bytes each: one reason twice the limit
  const message = joinReasons([wide, 'second']);
  t.true(bytes(message) <= MAX_TEXT_BYTES);
  t.false(message.includes('\uFFFD'));
  t.regex(message, /^é+…; … and 1 more \(2 in all\)$/);
  const emoji = joinReasons(['😀'.repeat(MAX_TEXT_BYTES / 2)], 1000);
  t.true(bytes(emoji) <= 1000);
  t.regex(emoji, /^(?:😀)+…; … and 0 more/u);
});

function decision(over: Partial<ValidateDecision>): ValidateDecision {
  return {
    allowed: false,
    reasons: [],
    warnings: [],
    auditAnnotations: {},
    enforcement: 'deny',
    exempt: false,
    breakGlass: false,
    violations: [],
    ...over,
  };
}

test('audit annotations are cut at a violation boundary, in both protocols', (t) => {
  const all = reasons(2000);
  const d = decision({
    reasons: all,
    auditAnnotations: { violations: all.join('; '), 'break-glass': 'INC-1' },
  });
  const admission = validationResponse('admission.k8s.io/v1', 'uid-1', d).response;
  const image = imageReviewResponse(d).status;
  for (const annotations of [admission.auditAnnotations, image.auditAnnotations]) {
    const violations = annotations?.violations ?? '';
    t.true(bytes(violations) <= MAX_TEXT_BYTES);
    const [head] = violations.split('; … (cut at');
    t.true(all.join('; ').startsWith(`${head}; `), 'whole violations only');
    t.regex(violations, /; … \(cut at 16384 bytes\)$/);
    t.is(annotations?.['break-glass'], 'INC-1', 'short annotations untouched');
  }
  t.true(bytes(admission.status?.message ?? '') <= MAX_TEXT_BYTES);
  t.true(bytes(image.reason ?? '') <= MAX_TEXT_BYTES);
});
