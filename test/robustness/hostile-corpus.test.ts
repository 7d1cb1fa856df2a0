/**
 * Hostile bodies over the real HTTPS server: nesting 100,000 deep, 5,000 containers, bodies
 * around the 4 MiB limit (content types and encodings: content-and-encoding.test.ts). Each
 * gets a 4xx or a review, never a 5xx, and the gateway answers the next good review.
 */
import test from 'ava';
import { MAX_TEXT_BYTES } from '../../src/review/responses.ts';
import { DEFAULT_MAX_BODY_BYTES } from '../../src/server/app.ts';
import { record } from '../helpers/gateway.ts';
import {
  allowed,
  type Case,
  clientMistake,
  denied,
  fileTarget,
  imageReviewed,
  refused,
  registerCases,
  reviewed,
} from './corpus.ts';
import {
  imageReview,
  nested,
  podReview,
  RAW,
  TRUSTED,
  UNTRUSTED,
  withMember,
  withRaw,
} from './hostile-json.ts';

const gw = fileTarget();

const DEEP = 100_000;
const json = (value: unknown) => () => JSON.stringify(value);
const good = podReview([{ name: 'web', image: TRUSTED }]);
const deepInRequest = podReview([{ name: 'web', image: TRUSTED }], { deep: RAW });
// imagePullSecrets entries reach the policy input as sent, whatever else the engine leaves out.
const deepInSecrets = podReview([{ name: 'web', image: TRUSTED }], {
  object: {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web' },
    spec: {
      containers: [{ name: 'web', image: TRUSTED, imagePullPolicy: 'Always' }],
      imagePullSecrets: [{ name: 'regcred' }, RAW],
    },
  },
});
const goodText = JSON.stringify(good);

// Regression (imagegate ≤ b3e213d): nesting in any part of a review that reached the policy
// input (imagePullSecrets entries were copied as sent) reached the wasm SDK, whose
// JSON.stringify recursed and overflowed the stack at a few thousand levels: the review was
// denied as a policy failure (500). The API server never sends that (Go's encoding/json
// stops at 10,000 levels, typed Pod fields far sooner); a client calling directly can.

const fiveThousand = Array.from({ length: 5000 }, (_, i) => ({
  name: `c${i}`,
  image: i % 2 === 1 ? `${UNTRUSTED}-${i}` : TRUSTED,
}));

/** A review padded to exactly `size` bytes with a field nothing reads. */
function padded(size: number): string {
  const empty = withMember(good, 'padding', '""');
  return withMember(good, 'padding', JSON.stringify('x'.repeat(size - empty.length)));
}

const LIMIT = DEFAULT_MAX_BODY_BYTES;
const overLimit = padded(LIMIT + 1);

const CASES: readonly Case[] = [
  // Nesting
  {
    title: 'arrays nested 100,000 deep as the whole body → 400',
    body: () => nested(DEEP, 'array'),
    expect: refused(400, /nests deeper than 100 levels/),
  },
  {
    title: 'objects nested 100,000 deep as the whole body → 400',
    body: () => nested(DEEP, 'object'),
    expect: refused(400, /nests deeper than 100 levels/),
  },
  {
    title: 'arrays nested 100,000 deep sent to /v1/imagereview → 400',
    path: '/v1/imagereview',
    body: () => nested(DEEP, 'array'),
    expect: refused(400, /nests deeper than 100 levels/),
  },
  // Regression (imagegate ≤ cd2ade7): the lone-surrogate repair walked the parsed body
  // recursively and overflowed the stack: a 500 for the client's own body.
  {
    title: 'a lone surrogate escape and arrays nested 5,000 deep → 400, not 500',
    body: () => `{"s":"\\ud800","x":${nested(5000, 'array')}}`,
    expect: refused(400, /nests deeper than 100 levels/),
  },
  {
    // The body is level 1, request 2: the value inside it brings the rest.
    title: 'nesting exactly at the bound (100 levels) is read as usual',
    body: () => withRaw(deepInRequest, nested(100 - 2, 'array')),
    expect: reviewed(allowed),
  },
  {
    title: 'nesting one level past the bound inside the request → 400',
    body: () => withRaw(deepInRequest, nested(100 - 1, 'array')),
    expect: refused(400, /nests deeper than 100 levels/),
  },
  {
    title: 'unclosed arrays 100,000 deep → 400',
    body: () => '['.repeat(DEEP),
    expect: refused(400, /not valid JSON/),
  },
  {
    title: 'arrays nested 1,000 deep inside request → 400',
    body: () => withRaw(deepInRequest, nested(1000, 'array')),
    expect: refused(400, /nests deeper than 100 levels/),
  },
  {
    title:
      'arrays nested 100,000 deep in an imagePullSecrets entry (validate): not a policy failure',
    body: () => withRaw(deepInSecrets, nested(DEEP, 'array')),
    expect: clientMistake(),
  },
  {
    title:
      'objects nested 100,000 deep in an imagePullSecrets entry (mutate): not a policy failure',
    path: '/v1/mutate',
    body: () => withRaw(deepInSecrets, nested(DEEP, 'object')),
    expect: clientMistake(),
  },
  {
    title: 'arrays nested 5,000 deep in an imagePullSecrets entry (validate): not a policy failure',
    body: () => withRaw(deepInSecrets, nested(5000, 'array')),
    expect: clientMistake(),
  },
  // Size
  {
    title: '5,000 containers in one pod → denied; the answer names the first, counts the rest',
    body: json(podReview(fiveThousand)),
    expect: reviewed((t, response) => {
      denied(/^container "c1" \(containers\[1\]\) image "evil\.io\/miner\/xmrig:6\.21-1"/)(
        t,
        response,
      );
      // 2,500 violations would be ~450 KB in kubectl's error and in every audit event.
      const message = String(record(response.status, 'status').message);
      t.true(Buffer.byteLength(message) <= MAX_TEXT_BYTES, `${Buffer.byteLength(message)} bytes`);
      const note = /; … and (\d+) more \((\d+) in all\)$/.exec(message);
      const shown = message.match(/container "c\d+" \(containers\[\d+\]\)/g)?.length ?? 0;
      t.is(Number(note?.[2]), 2500, 'every odd container is untrusted');
      t.is(shown + Number(note?.[1]), 2500, 'shown + left out = all');
      t.true(shown > 10, `${shown} shown`);
      const audit = String(record(response.auditAnnotations, 'auditAnnotations').violations);
      t.true(
        Buffer.byteLength(audit) <= MAX_TEXT_BYTES,
        `audit: ${Buffer.byteLength(audit)} bytes`,
      );
      t.regex(audit, /^container "c1" .*; … \(cut at 16384 bytes\)$/s);
    }),
  },
  {
    title: '5,000 containers without a pull policy (mutate) → 5,000 patch operations',
    path: '/v1/mutate',
    body: json(
      podReview([], {
        object: {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: 'web' },
          spec: { containers: fiveThousand.map(({ name }) => ({ name, image: TRUSTED })) },
        },
      }),
    ),
    expect: reviewed((t, response) => {
      const patch: unknown = JSON.parse(Buffer.from(String(response.patch), 'base64').toString());
      t.true(Array.isArray(patch) && patch.length === 5000);
    }),
  },
  {
    title: '5,000 images in one ImageReview → denied; the reason names the first, counts the rest',
    path: '/v1/imagereview',
    body: json(imageReview(fiveThousand.map((c) => c.image))),
    expect: imageReviewed((t, status) => {
      t.false(status.allowed);
      const reason = String(status.reason);
      t.true(Buffer.byteLength(reason) <= MAX_TEXT_BYTES, `${Buffer.byteLength(reason)} bytes`);
      const untrusted = fiveThousand.filter((c) => c.image !== TRUSTED).map((c) => c.image);
      const named = untrusted.filter((image) => reason.includes(`"${image}"`));
      t.deepEqual(named, untrusted.slice(0, named.length), 'the first ones, in order');
      t.true(named.length > 10, `${named.length} named`);
      t.true(reason.endsWith(`… and ${2500 - named.length} more (2500 in all)`));
    }),
  },
  {
    title: 'a body of exactly 4 MiB is read',
    body: () => padded(LIMIT),
    expect: reviewed(allowed),
  },
  {
    title: 'a body one byte over 4 MiB, with Content-Length → 413',
    body: () => overLimit,
    expect: refused(413, new RegExp(`${LIMIT + 1} bytes; at most ${LIMIT}`)),
  },
  {
    title: 'a body one byte over 4 MiB, chunked without Content-Length → 413',
    body: () => [
      overLimit.slice(0, 1 << 20),
      overLimit.slice(1 << 20, 3 << 20),
      overLimit.slice(3 << 20),
    ],
    expect: refused(413, new RegExp(`larger than ${LIMIT}`)),
  },
  {
    title: 'a good review in many 20-byte chunks is read',
    body: () => goodText.match(/[\s\S]{1,20}/g) ?? [],
    expect: reviewed(allowed),
  },
];

registerCases(CASES, gw);

test('the 5,000-container review is answered within the webhook timeout (5 s)', async (t) => {
  const g = await gw();
  const started = performance.now();
  const result = await g.send({ body: json(podReview(fiveThousand)) });
  const elapsed = performance.now() - started;
  t.is(result.status, 200);
  t.true(elapsed < 5000, `${Math.round(elapsed)} ms`);
});
