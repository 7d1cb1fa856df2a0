/**
 * Warnings survive kube-apiserver. The recorder below follows k8s.io/apiserver
 * pkg/endpoints/filters/warning.go (v0.34–v0.37) step by step: it is the oracle, written
 * from the Go, so a change to our budget that the API server would cut or drop fails here.
 */
import test from 'ava';
import type { ValidateDecision } from '../../src/review/decision.ts';
import { validationResponse } from '../../src/review/responses.ts';
import { apiServerWarnings, WARNING_RUNES } from '../../src/review/warnings.ts';

const TOTAL = 4 * 1024;
const ITEM = 256;
const runeCount = (s: string) => [...s].length;

/** What kubectl receives when the API server records these warnings in this order. */
function apiServer(warnings: readonly string[]): string[] {
  let written = 0;
  let truncating = false;
  const recorded = new Set<string>();
  const ordered: string[] = [];
  let headers: string[] = [];
  for (const original of warnings) {
    if (original.length === 0) continue;
    if (written >= TOTAL && truncating) continue;
    if (recorded.has(original)) continue;
    recorded.add(original);
    ordered.push(original);
    let text = original;
    if (truncating && runeCount(text) > ITEM) text = [...text].slice(0, ITEM).join('');
    // net.NewWarningHeader refuses control characters: the warning is silently lost.
    // biome-ignore lint/suspicious/noControlCharactersInRegex: what the API server refuses
    if (/[\u0000-\u001f\u007f-\u009f]/.test(text)) continue;
    if (written + runeCount(text) <= TOTAL || truncating) {
      written += runeCount(text);
      headers.push(text);
      continue;
    }
    truncating = true;
    written = 0;
    headers = [];
    for (const w of ordered) {
      const cut = runeCount(w) > ITEM ? [...w].slice(0, ITEM).join('') : w;
      written += runeCount(cut);
      headers.push(cut);
    }
  }
  return headers;
}

const UID = '705ab4f5-6393-11e8-b7cc-42010a800002';
/** The messages 60 nginx containers break in warn mode: untrusted, no tag, pull policy. */
const nginx = (containers: number) =>
  Array.from({ length: containers }, (_, i) => [
    `container "web-${i}" (containers[${i}]) image "nginx": registry docker.io/library/nginx is not trusted (trusted: registry.example.com, ghcr.io/acme, localhost:5000)`,
    `container "web-${i}" (containers[${i}]) image "nginx": no tag or digest (implicit "latest"); pin a version tag or a digest`,
    `container "web-${i}" (containers[${i}]) image "nginx": imagePullPolicy is "IfNotPresent", must be "Always"`,
  ]).flat();

test('warnings that fit are sent as they are', (t) => {
  const few = nginx(3);
  t.deepEqual(apiServerWarnings(few, UID), few);
  t.deepEqual(apiServer(apiServerWarnings(few, UID)), few);
});

test('60 nginx containers: every warning sent reaches kubectl whole, the last counts the rest', (t) => {
  const all = nginx(60);
  const sent = apiServerWarnings(all, UID);
  t.deepEqual(apiServer(sent), sent, 'nothing cut, nothing dropped');
  const shown = sent.slice(0, -1);
  t.deepEqual(shown, all.slice(0, shown.length), 'a prefix of the warnings, in order');
  t.true(shown.length >= 20, `${shown.length} shown: the budget is used`);
  t.is(
    sent.at(-1),
    `… and ${all.length - shown.length} more image policy warnings (${all.length} in all): every one is in the gateway's decision log (uid ${UID}) and the "<webhook>/violations" audit annotation`,
  );
  t.true(runeCount(sent.at(-1) ?? '') <= WARNING_RUNES);
});

test('room is left for other warnings on the same request', (t) => {
  const sent = apiServerWarnings(nginx(200), UID);
  // A deprecation warning and another webhook's, before and after ours.
  const other = [
    'policy/v1beta1 PodSecurityPolicy is deprecated in v1.21+, unavailable in v1.25+',
    'x'.repeat(300),
  ];
  const received = apiServer([other[0] ?? '', ...sent, other[1] ?? '']);
  for (const warning of sent) t.true(received.includes(warning), `kept whole: ${warning}`);
});

test('one long warning is cut to what the API server keeps, never dropped', (t) => {
  const long = `container "c" (containers[0]) image "${'a'.repeat(400)}": invalid image reference`;
  const [sent] = apiServerWarnings([long], UID);
  t.is(runeCount(sent ?? ''), WARNING_RUNES);
  t.true(sent?.endsWith('…'));
  t.true(long.startsWith(sent?.slice(0, -1) ?? '?'));
  const many = apiServerWarnings(
    Array.from({ length: 40 }, (_, i) => `${i}:${long}`),
    UID,
  );
  t.deepEqual(apiServer(many), many);
});

test('characters are counted as the API server counts them: runes', (t) => {
  const wide = Array.from({ length: 40 }, (_, i) => `${i} ${'😀'.repeat(100)}`);
  const sent = apiServerWarnings(wide, UID);
  t.deepEqual(apiServer(sent), sent);
  t.false(
    sent.some((w) => w.includes('\uFFFD')),
    'no surrogate split',
  );
});

test('a control character in an image is escaped, not left to drop the warning', (t) => {
  const hostile =
    'container "c" (containers[0]) image "evil\n.io/x\u0007": invalid image reference';
  const [sent] = apiServerWarnings([hostile], UID);
  t.is(
    sent,
    'container "c" (containers[0]) image "evil\\u000a.io/x\\u0007": invalid image reference',
  );
  t.deepEqual(apiServer([sent ?? '']), [sent]);
  t.deepEqual(apiServer([hostile]), [], 'sent as is, the API server would lose it');
});

test('the validating answer carries the bounded warnings', (t) => {
  const decision: ValidateDecision = {
    allowed: true,
    enforcement: 'warn',
    exempt: false,
    breakGlass: false,
    violations: [],
    reasons: [],
    warnings: nginx(60),
    auditAnnotations: {},
  };
  const { response } = validationResponse('admission.k8s.io/v1', UID, decision);
  t.deepEqual(response.warnings, apiServerWarnings(nginx(60), UID));
});
