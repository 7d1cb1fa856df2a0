/**
 * Wrong types everywhere: each field a number, null, a list, an object or a string where
 * it should be something else. The answer is a 400 when the review cannot be read, a review
 * refusing it (400 inside) when the uid is known, or a decision; never a 5xx, and never
 * "allowed" for a spec whose images the gateway could not read.
 */
import test from 'ava';
import type { JsonObject } from '../../src/shared/json.ts';
import {
  type Case,
  denied,
  fileTarget,
  imageReviewed,
  malformed,
  refused,
  registerCases,
  reviewed,
  target,
} from './corpus.ts';
import { imageReview, podReview, TRUSTED, UNTRUSTED } from './hostile-json.ts';

const gw = fileTarget();

const good = () => podReview([{ name: 'web', image: TRUSTED }]);
const json = (value: unknown) => () => JSON.stringify(value);

/** The good review with `fields` set at `at` (a path of keys from the review). */
function set(at: readonly string[], fields: JsonObject): () => string {
  const review: JsonObject = good();
  let node: JsonObject = review;
  for (const key of at) {
    const next = node[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) {
      throw new Error(`set: ${at.join('.')} is not an object in the review`);
    }
    node = next as JsonObject;
  }
  Object.assign(node, fields);
  return json(review);
}

const request = (fields: JsonObject) => set(['request'], fields);
const pod = (fields: JsonObject) => set(['request', 'object'], fields);
const container = (fields: JsonObject) =>
  json(podReview([{ name: 'web', image: TRUSTED, ...fields }]));

const podSpec = (spec: unknown) => pod({ spec });
const workload = (group: string, kind: string, spec: unknown): JsonObject =>
  podReview([], {
    kind: { group, version: 'v1', kind },
    object: { apiVersion: `${group}/v1`, kind, metadata: { name: 'web' }, spec },
  });

const HIDDEN = { name: 'miner', image: UNTRUSTED, imagePullPolicy: 'Always' };

// SPEC rule 1: every image must come from a trusted source, so a spec whose images cannot
// be read must never be allowed. Regression (imagegate ≤ b3e213d): the admission path read
// a container list or pod spec of the wrong type as "no containers" and allowed the object.
// Still open: when something above the pod spec has the wrong type (a Deployment's
// spec.template a string), getPointer finds no pod spec at all, which reads as absent.

const notAllowed = (message: RegExp) =>
  reviewed((t, response) => {
    t.false(response.allowed, 'a spec the gateway cannot read is never allowed');
    t.regex(JSON.stringify(response.status ?? {}), message);
  });

const CASES: readonly Case[] = [
  // Unreadable: a bare 400
  { title: 'the body is a string → 400', body: json('review'), expect: refused(400, /object/) },
  { title: 'the body is a number → 400', body: json(42), expect: refused(400, /object/) },
  { title: 'the body is null → 400', body: json(null), expect: refused(400, /object/) },
  {
    title: 'apiVersion a number → 400',
    body: set([], { apiVersion: 1 }),
    expect: refused(400, /apiVersion/),
  },
  { title: 'kind null → 400', body: set([], { kind: null }), expect: refused(400, /kind/) },
  {
    title: 'request an array → 400',
    body: set([], { request: [] }),
    expect: refused(400, /no request/),
  },
  {
    title: 'request a string → 400',
    body: set([], { request: 'x' }),
    expect: refused(400, /no request/),
  },
  {
    title: 'request null → 400',
    body: set([], { request: null }),
    expect: refused(400, /no request/),
  },
  { title: 'uid a number → 400', body: request({ uid: 7 }), expect: refused(400, /uid/) },
  { title: 'uid null → 400', body: request({ uid: null }), expect: refused(400, /uid/) },
  {
    title: 'uid an object → 400',
    body: request({ uid: { id: 'x' } }),
    expect: refused(400, /uid/),
  },
  // Refused inside a review
  {
    title: 'operation a number → 400 inside the review',
    body: request({ operation: 1 }),
    expect: reviewed(malformed(/operation/)),
  },
  {
    title: 'operation null → 400 inside the review',
    body: request({ operation: null }),
    expect: reviewed(malformed(/operation/)),
  },
  {
    title: 'request.kind a string → 400 inside the review',
    body: request({ kind: 'Pod' }),
    expect: reviewed(malformed(/request\.kind/)),
  },
  {
    title: 'request.kind.kind a number → 400 inside the review',
    body: request({ kind: { group: '', version: 'v1', kind: 1 } }),
    expect: reviewed(malformed(/request\.kind/)),
  },
  {
    title: 'object an array on CREATE → 400 inside the review',
    body: request({ object: [] }),
    expect: reviewed(malformed(/request\.object/)),
  },
  {
    title: 'object a string on UPDATE → 400 inside the review',
    body: request({ operation: 'UPDATE', object: 'pod' }),
    expect: reviewed(malformed(/request\.object/)),
  },
  // Denied: an image that is not a string is not a reference
  ...(
    [
      ['a number', 42],
      ['null', null],
      ['a list', [TRUSTED]],
      ['an object', { name: TRUSTED }],
      ['a boolean', true],
    ] as const
  ).map(
    ([what, image]): Case => ({
      title: `image ${what} → denied as not a string`,
      body: container({ image }),
      expect: reviewed(denied(/image reference must be a string/)),
    }),
  ),
  {
    title: 'imagePullPolicy a number → denied, must be Always',
    body: container({ imagePullPolicy: 1 }),
    expect: reviewed(denied(/imagePullPolicy/)),
  },
  // Decided as usual: fields nothing needs, of the wrong type
  ...(
    [
      ['metadata a string', pod({ metadata: 'x' })],
      ['annotations a list', set(['request', 'object', 'metadata'], { annotations: ['a'] })],
      [
        'annotation values numbers',
        set(['request', 'object', 'metadata'], { annotations: { a: 1 } }),
      ],
      ['name a number', request({ name: 5 })],
      ['namespace null', request({ namespace: null })],
      ['dryRun the string "true"', request({ dryRun: 'true' })],
      ['resource a string', request({ resource: 'pods' })],
      ['subResource a number', request({ subResource: 3 })],
      ['userInfo a string', request({ userInfo: 'root' })],
      ['oldObject a string on UPDATE', request({ operation: 'UPDATE', oldObject: 'x' })],
      ['imagePullSecrets an object', podSpec({ containers: [HIDDEN], imagePullSecrets: {} })],
      ['container name a number', container({ name: 9 })],
    ] as const
  ).map(([what, body]): Case => ({ title: `${what} → a decision`, body, expect: reviewed() })),
  // Never allowed: images the gateway cannot see
  ...(
    [
      ['containers an object holding an untrusted image', podSpec({ containers: { 0: HIDDEN } })],
      ['containers a string', podSpec({ containers: UNTRUSTED })],
      [
        'initContainers an object holding an untrusted image',
        podSpec({ containers: [], initContainers: { 0: HIDDEN } }),
      ],
      ['the Pod spec a string', podSpec(UNTRUSTED)],
      [
        'volumes an object holding an untrusted image volume',
        podSpec({ containers: [], volumes: { 0: { name: 'v', image: { reference: UNTRUSTED } } } }),
      ],
      [
        'an image volume whose image is a string',
        podSpec({ containers: [], volumes: [{ name: 'v', image: UNTRUSTED }] }),
      ],
      [
        'an image volume whose reference is a number',
        podSpec({ containers: [], volumes: [{ name: 'v', image: { reference: 7 } }] }),
      ],
      [
        'a Deployment template spec whose containers are an object',
        json(workload('apps', 'Deployment', { template: { spec: { containers: { 0: HIDDEN } } } })),
      ],
    ] as const
  ).map(
    ([what, body]): Case => ({ title: `${what} → not allowed`, body, expect: notAllowed(/./) }),
  ),
  ...(
    [
      ['a Deployment template a string', workload('apps', 'Deployment', { template: UNTRUSTED })],
      ['a Deployment spec a string', workload('apps', 'Deployment', UNTRUSTED)],
      ['a CronJob jobTemplate a string', workload('batch', 'CronJob', { jobTemplate: UNTRUSTED })],
    ] as const
  ).map(
    ([what, review]): Case => ({
      title: `${what} → not allowed`,
      body: json(review),
      expect: notAllowed(/./),
    }),
  ),
  // ImageReview
  ...(
    [
      ['spec a list', { spec: [] }, /no spec/],
      ['containers an object', { spec: { containers: { 0: { image: UNTRUSTED } } } }, /list/],
      ['containers null', { spec: { containers: null } }, /list/],
      ['a container a string', { spec: { containers: [UNTRUSTED] } }, /containers\[0\]/],
      ['an annotation value a number', { spec: { annotations: { a: 1 } } }, /annotations/],
    ] as const
  ).map(
    ([what, fields, message]): Case => ({
      title: `ImageReview ${what} → 400`,
      path: '/v1/imagereview',
      body: json({ ...imageReview([TRUSTED]), ...fields }),
      expect: refused(400, message),
    }),
  ),
  {
    title: 'ImageReview image a number → denied',
    path: '/v1/imagereview',
    body: json(imageReview([42])),
    expect: imageReviewed((t, status) => t.false(status.allowed)),
  },
  {
    title: 'ImageReview namespace a number and annotations a list → a decision',
    path: '/v1/imagereview',
    body: json(imageReview([TRUSTED], { namespace: 3, annotations: ['a'] })),
    expect: imageReviewed((t, status) => t.is(typeof status.allowed, 'boolean')),
  },
];

registerCases(CASES, gw);

// A client's malformed pod spec is a bad request, not a policy error: an alert on policy
// errors must not fire for clients' mistakes.
test('a pod spec of the wrong type counts as a bad request, not a policy error', async (t) => {
  const { gw, send } = await target(t); // its own gateway: the metrics count this test alone
  const result = await send({ body: podSpec({ containers: { 0: HIDDEN } }) });
  reviewed(malformed(/containers/))(t, result);
  const decisions = gw.logs.messages('decision');
  t.true(
    decisions.every((line) => typeof line.level === 'number' && line.level < 50),
    'logged below error level',
  );
  const metrics = (await gw.health('/metrics')).text;
  t.notRegex(metrics, /imagegate_requests_total\{endpoint="validate",outcome="error"\}/);
  t.regex(metrics, /imagegate_requests_total\{endpoint="validate",outcome="bad_request"\} 1/);
});
