/**
 * Keys that attack the reader rather than the policy. `__proto__`, `constructor` and
 * `prototype` members in every object must change nothing: no pollution of the gateway's
 * process (which is this one), the same decision as without them. Duplicate keys must not
 * smuggle an image past the policy: JSON.parse keeps the last, as Go's encoding/json (and
 * so the API server and the kubelet) does, so the image judged is the image that runs.
 */
import test, { type ExecutionContext } from 'ava';
import type { JsonObject } from '../../src/shared/json.ts';
import { type HttpResult, record } from '../helpers/gateway.ts';
import type { Endpoint } from './answers.ts';
import {
  allowed,
  type Case,
  denied,
  fileTarget,
  imageReviewed,
  registerCases,
  reviewed,
} from './corpus.ts';
import {
  duplicateKey,
  imageReview,
  podReview,
  TRUSTED,
  UID,
  UNTRUSTED,
  withPrototypeKeys,
} from './hostile-json.ts';

const gw = fileTarget();

const objectPrototype = Object.getOwnPropertyNames(Object.prototype).sort();
const arrayPrototype = Object.getOwnPropertyNames(Array.prototype).sort();

function notPolluted(t: ExecutionContext): void {
  const probe: Record<string, unknown> = {};
  t.is(probe.polluted, undefined, '({}).polluted');
  t.is(probe.image, undefined, '({}).image');
  t.is(probe.allowed, undefined, '({}).allowed');
  t.deepEqual(Object.getOwnPropertyNames(Object.prototype).sort(), objectPrototype);
  t.deepEqual(Object.getOwnPropertyNames(Array.prototype).sort(), arrayPrototype);
  t.is(Object.getPrototypeOf({}), Object.prototype);
}

/** What a decision says, without what may legitimately differ between two requests. */
function decision(result: HttpResult): unknown {
  const body = record(result.body, 'answer');
  return record(body.response ?? body.status, 'decision');
}

const reviews: ReadonlyArray<readonly [title: string, path: Endpoint, review: JsonObject]> = [
  [
    'a Pod with a trusted and an untrusted container',
    '/v1/validate',
    podReview([
      { name: 'web', image: TRUSTED },
      { name: 'miner', image: UNTRUSTED },
    ]),
  ],
  [
    'a Pod without pull policies (mutate)',
    '/v1/mutate',
    podReview([], {
      object: {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'web', annotations: { 'a.image-policy.k8s.io/x': 'y' } },
        spec: { containers: [{ name: 'web', image: TRUSTED }], initContainers: [] },
      },
    }),
  ],
  [
    'a Deployment template with an untrusted image',
    '/v1/validate',
    podReview([], {
      kind: { group: 'apps', version: 'v1', kind: 'Deployment' },
      object: {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'web', labels: { app: 'web' } },
        spec: {
          template: {
            metadata: { annotations: { 'a.image-policy.k8s.io/x': 'y' } },
            spec: { containers: [{ name: 'web', image: UNTRUSTED, imagePullPolicy: 'Always' }] },
          },
        },
      },
    }),
  ],
  [
    // A naive merge would give it the image from "__proto__": it must stay image-less.
    'a Pod whose container has no image',
    '/v1/validate',
    podReview([], {
      object: {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'web' },
        spec: { containers: [{ name: 'web', imagePullPolicy: 'Always' }] },
      },
    }),
  ],
  ['an ImageReview', '/v1/imagereview', imageReview([TRUSTED, UNTRUSTED])],
];

for (const [title, path, review] of reviews) {
  test(`__proto__, constructor and prototype keys everywhere change nothing: ${title}`, async (t) => {
    const g = await gw();
    const baseline = await g.send({ path, body: () => JSON.stringify(review) });
    const hostile = await g.send({ path, body: () => withPrototypeKeys(review) });
    t.is(hostile.status, 200, hostile.text.slice(0, 300));
    t.deepEqual(decision(hostile), decision(baseline));
    notPolluted(t);
  });
}

const pod = (image: string) => podReview([{ name: 'web', image }]);
const untrustedNamed = denied(new RegExp(UNTRUSTED.replaceAll('.', '\\.')));

const CASES: readonly Case[] = [
  {
    title: 'duplicate "image", untrusted last → the untrusted one is judged and denied',
    body: () => duplicateKey(pod(TRUSTED), 'image', TRUSTED, JSON.stringify(UNTRUSTED)),
    expect: reviewed(untrustedNamed),
  },
  {
    title: 'duplicate "image", trusted last → the trusted one is judged',
    body: () => duplicateKey(pod(UNTRUSTED), 'image', UNTRUSTED, JSON.stringify(TRUSTED)),
    expect: reviewed(allowed),
  },
  {
    title: 'duplicate "image" in an ImageReview, untrusted last → denied',
    path: '/v1/imagereview',
    body: () => duplicateKey(imageReview([TRUSTED]), 'image', TRUSTED, JSON.stringify(UNTRUSTED)),
    expect: imageReviewed((t, status) => {
      t.false(status.allowed);
      t.true(String(status.reason).includes(UNTRUSTED));
    }),
  },
  {
    title: 'duplicate "containers", the last list is judged',
    body: () =>
      duplicateKey(
        pod(TRUSTED),
        'containers',
        [{ imagePullPolicy: 'Always', name: 'web', image: TRUSTED }],
        JSON.stringify([{ imagePullPolicy: 'Always', name: 'web', image: UNTRUSTED }]),
      ),
    expect: reviewed(untrustedNamed),
  },
  {
    title: 'duplicate "operation", DELETE then CREATE → judged as CREATE',
    body: () =>
      duplicateKey(
        podReview([{ name: 'web', image: UNTRUSTED }], { operation: 'DELETE' }),
        'operation',
        'DELETE',
        '"CREATE"',
      ),
    expect: reviewed(untrustedNamed),
  },
  {
    title: 'duplicate "namespace", kube-system then shop → judged in shop',
    body: () =>
      duplicateKey(
        podReview([{ name: 'web', image: UNTRUSTED }], { namespace: 'kube-system' }),
        'namespace',
        'kube-system',
        '"shop"',
      ),
    expect: reviewed(untrustedNamed),
  },
  {
    title: 'duplicate "imagePullPolicy", Always then Never (mutate) → patched to Always',
    path: '/v1/mutate',
    body: () => duplicateKey(pod(TRUSTED), 'imagePullPolicy', 'Always', '"Never"'),
    expect: reviewed((t, response) => {
      const patch = Buffer.from(String(response.patch), 'base64').toString();
      t.regex(patch, /"path":"\/spec\/containers\/0\/imagePullPolicy","value":"Always"/);
    }),
  },
  {
    title: 'duplicate "uid" → the last uid is echoed',
    body: () => duplicateKey(pod(TRUSTED), 'uid', UID, '"second-uid"'),
    expect: reviewed(allowed, 'second-uid'),
  },
  {
    title: 'duplicate "request" → the last request is judged',
    body: () =>
      duplicateKey(
        pod(TRUSTED),
        'request',
        record(pod(TRUSTED).request, 'request'),
        JSON.stringify(record(pod(UNTRUSTED).request, 'request')),
      ),
    expect: reviewed(untrustedNamed),
  },
  {
    // Kubernetes decodes case-sensitively (sigs.k8s.io/json), so "Image" is an unknown
    // field the kubelet never sees, and the API server drops it before calling webhooks.
    title: '"image" and "Image" → only "image" is judged',
    body: () => duplicateKey(pod(TRUSTED), 'image', TRUSTED, JSON.stringify(UNTRUSTED), 'Image'),
    expect: reviewed(allowed),
  },
];

registerCases(CASES, gw);

test.after('nothing was polluted by the whole file', (t) => {
  notPolluted(t);
});
