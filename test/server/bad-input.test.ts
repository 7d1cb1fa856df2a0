/**
 * The client's own mistakes over the real HTTPS server: each gets a 4xx with a JSON
 * `{error}` saying what was wrong, never a 5xx, never a crash. And fail closed: when the
 * policy itself throws, the review is denied with a 500 inside and the error logged.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { MUTATE_ENTRYPOINT, VALIDATE_ENTRYPOINT } from '../../src/policy/engine.ts';
import type { JsonObject } from '../../src/shared/json.ts';
import { buildBundle } from '../helpers/bundles.ts';
import { loadJsonObject } from '../helpers/fixtures.ts';
import {
  admissionAnswer,
  type HttpResult,
  type HttpsOptions,
  https,
  record,
  startTestGateway,
  Teardowns,
  type TestGateway,
  tempDir,
} from '../helpers/gateway.ts';

const LIMIT = 1024;

const shared = new Teardowns();
test.after.always(() => shared.run());
let small: Promise<TestGateway> | undefined;

/** Every case runs against one gateway with a 1 KiB body limit. */
function gateway(): Promise<TestGateway> {
  small ??= startTestGateway(shared, { maxBodyBytes: LIMIT });
  return small;
}

const JSON_TYPE = { 'Content-Type': 'application/json' };

/** A small valid AdmissionReview (the fixtures are larger than the 1 KiB limit). */
function smallReview(overrides: JsonObject = {}, request: JsonObject = {}): JsonObject {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: '0b6d7b52-5f0e-4b7a-9d0e-3f4c2a1b0c9d',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      operation: 'CREATE',
      namespace: 'shop',
      name: 'web',
      object: {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'web', namespace: 'shop' },
        spec: {
          containers: [
            { name: 'web', image: 'registry.example.com/web:1.0', imagePullPolicy: 'Always' },
          ],
        },
      },
      ...request,
    },
    ...overrides,
  };
}

interface BadCase {
  readonly title: string;
  readonly path?: string;
  readonly method?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: HttpsOptions['body'];
  readonly status: number;
  readonly message: RegExp;
}

const json = (value: unknown): string => JSON.stringify(value);
const oversized = json(smallReview({}, { padding: 'x'.repeat(2 * LIMIT) }));

const CASES: readonly BadCase[] = [
  { title: 'non-JSON body', body: '{"apiVersion": ', status: 400, message: /not valid JSON/ },
  {
    title: 'invalid UTF-8 bytes',
    body: Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]),
    status: 400,
    message: /not valid UTF-8/,
  },
  { title: 'empty body', body: '', status: 400, message: /empty/ },
  {
    title: 'text/plain',
    headers: { 'Content-Type': 'text/plain' },
    body: json(smallReview()),
    status: 415,
    message: /text\/plain.*application\/json/,
  },
  {
    title: 'no content type',
    headers: {},
    body: json(smallReview()),
    status: 415,
    message: /Content-Type is missing/,
  },
  {
    title: 'a charset other than UTF-8',
    headers: { 'Content-Type': 'application/json; charset=latin1' },
    body: json(smallReview()),
    status: 415,
    message: /latin1/,
  },
  {
    title: 'gzip content encoding',
    headers: { ...JSON_TYPE, 'Content-Encoding': 'gzip' },
    body: json(smallReview()),
    status: 415,
    message: /Content-Encoding gzip/,
  },
  {
    title: 'body over the limit, with Content-Length',
    body: oversized,
    status: 413,
    message: new RegExp(`at most ${LIMIT}`),
  },
  {
    title: 'body over the limit, chunked',
    body: [oversized.slice(0, 600), oversized.slice(600, 1500), oversized.slice(1500)],
    status: 413,
    message: new RegExp(`larger than ${LIMIT}`),
  },
  {
    title: 'unknown apiVersion',
    body: json(smallReview({ apiVersion: 'admission.k8s.io/v2' })),
    status: 400,
    message: /apiVersion "admission\.k8s\.io\/v2".*admission\.k8s\.io\/v1/,
  },
  {
    title: 'unknown kind',
    body: json(smallReview({ kind: 'AdmissionRequest' })),
    status: 400,
    message: /kind "AdmissionRequest".*AdmissionReview/,
  },
  {
    title: 'AdmissionReview without request',
    body: json({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }),
    status: 400,
    message: /no request/,
  },
  {
    title: 'request without uid',
    body: json(smallReview({}, { uid: undefined })),
    status: 400,
    message: /uid/,
  },
  {
    title: 'JSON array body',
    body: json([smallReview()]),
    status: 400,
    message: /not a JSON object/,
  },
  {
    title: 'ImageReview without spec',
    path: '/v1/imagereview',
    body: json({ apiVersion: 'imagepolicy.k8s.io/v1alpha1', kind: 'ImageReview' }),
    status: 400,
    message: /no spec/,
  },
  {
    title: 'an AdmissionReview sent to /v1/imagereview',
    path: '/v1/imagereview',
    body: json(smallReview()),
    status: 400,
    message: /apiVersion.*imagepolicy\.k8s\.io\/v1alpha1/,
  },
  {
    title: 'an ImageReview sent to /v1/mutate',
    path: '/v1/mutate',
    body: json({ apiVersion: 'imagepolicy.k8s.io/v1alpha1', kind: 'ImageReview', spec: {} }),
    status: 400,
    message: /apiVersion.*admission\.k8s\.io/,
  },
];

function send(gw: TestGateway, c: BadCase): Promise<HttpResult> {
  return https({
    port: gw.port,
    ca: gw.ca,
    path: c.path ?? '/v1/validate',
    method: c.method ?? 'POST',
    headers: c.headers ?? JSON_TYPE,
    ...(c.body === undefined ? {} : { body: c.body }),
  });
}

function assertError(t: ExecutionContext, result: HttpResult, c: BadCase): void {
  t.is(result.status, c.status, result.text);
  t.regex(String(result.headers['content-type']), /^application\/json/);
  const body = record(result.body, 'error body');
  t.deepEqual(Object.keys(body), ['error']);
  t.is(typeof body.error, 'string');
  t.regex(String(body.error), c.message);
}

const rejected = test.macro({
  async exec(t, c: BadCase) {
    assertError(t, await send(await gateway(), c), c);
  },
  title: (_ = '', c: BadCase) => `${c.title} → ${c.status}`,
});

for (const c of CASES) test(rejected, c);

test('GET /v1/validate → 405, Allow: POST', async (t) => {
  const gw = await gateway();
  const result = await https({ port: gw.port, ca: gw.ca, path: '/v1/validate', method: 'GET' });
  t.is(result.status, 405);
  t.is(result.headers.allow, 'POST');
});

const UNKNOWN_PATH: BadCase = {
  title: 'unknown path',
  path: '/v1/nope',
  body: json(smallReview()),
  status: 404,
  message: /\/v1\/nope/,
};

test('unknown path → 404', async (t) => {
  t.is((await send(await gateway(), UNKNOWN_PATH)).status, 404);
});

test('the 405 body is JSON {error} naming the allowed method', async (t) => {
  const gw = await gateway();
  const result = await https({ port: gw.port, ca: gw.ca, path: '/v1/validate', method: 'GET' });
  assertError(t, result, { title: 'GET', status: 405, message: /POST/ });
});

test('the 404 body is JSON {error} naming the path', async (t) => {
  const gw = await gateway();
  assertError(t, await send(gw, UNKNOWN_PATH), UNKNOWN_PATH);
});

test('after every bad input in a row, the server still answers a good review', async (t) => {
  const gw = await gateway();
  for (const c of CASES) t.is((await send(gw, c)).status, c.status, c.title);
  const review = smallReview();
  const answer = admissionAnswer(await gw.post('/v1/validate', review));
  t.is(answer.response.uid, record(review.request, 'request').uid);
  t.true(answer.response.allowed);
  const metrics = await gw.health('/metrics');
  t.regex(
    metrics.text,
    /imagegate_requests_total\{endpoint="validate",outcome="bad_request"\} \d+/,
  );
  t.notRegex(metrics.text, /outcome="error"/);
});

const answeredMalformed = test.macro({
  async exec(t, endpoint: string, request: JsonObject, message: RegExp) {
    const gw = await gateway();
    const review = smallReview({}, request);
    const result = await gw.post(endpoint, review);
    t.is(result.status, 200, 'a review with a uid is answered with a review');
    const answer = admissionAnswer(result);
    t.is(answer.response.uid, record(review.request, 'request').uid);
    t.false(answer.response.allowed);
    const status = record(answer.response.status, 'status');
    t.is(status.code, 400);
    t.regex(String(status.message), message);
  },
  title: (_, endpoint: string, request: JsonObject) =>
    `${endpoint}: a malformed request with a uid is denied in a review (400 inside): ${JSON.stringify(request)}`,
});

for (const endpoint of ['/v1/validate', '/v1/mutate']) {
  test(
    answeredMalformed,
    endpoint,
    { object: null },
    /request\.object is missing or not an object on CREATE/,
  );
  test(answeredMalformed, endpoint, { operation: 'PATCH' }, /request\.operation "PATCH"/);
  test(answeredMalformed, endpoint, { kind: {} }, /request\.kind is missing/);
}

/** Decisions that throw (semver.is_valid is not in the wasm SDK) for name or namespace "boom". */
const BOOM_REGO = {
  'v.rego': `package imagegate.validate

boom if input.name == "boom"

boom if input.namespace == "boom"

decision := {"allowed": true, "enforcement": "deny", "exempt": false, "breakGlass": false,
	"violations": [], "reasons": [], "warnings": [], "auditAnnotations": {}} if not boom

decision := {"allowed": semver.is_valid("1.0.0")} if boom
`,
  'm.rego': `package imagegate.mutate

decision := {"patch": [], "messages": []} if input.name != "boom"

decision := {"patch": [], "messages": [], "valid": semver.is_valid("1.0.0")} if input.name == "boom"
`,
};

let boomBundle: Promise<string> | undefined;
const boom = new Map<string, Promise<TestGateway>>();

function boomGateway(logLevel = 'info'): Promise<TestGateway> {
  boomBundle ??= (async () => {
    const bytes = await buildBundle(BOOM_REGO, [VALIDATE_ENTRYPOINT, MUTATE_ENTRYPOINT]);
    const path = join(await tempDir(shared, 'imagegate-boom-'), 'boom.tar.gz');
    await writeFile(path, bytes);
    return path;
  })();
  const bundle = boomBundle;
  let gateway = boom.get(logLevel);
  if (gateway === undefined) {
    gateway = (async () => startTestGateway(shared, { bundle: await bundle, logLevel }))();
    boom.set(logLevel, gateway);
  }
  return gateway;
}

const failsClosed = test.macro({
  async exec(t, endpoint: '/v1/validate' | '/v1/mutate') {
    const gw = await boomGateway();
    const review = structuredClone(loadJsonObject('admission', 'pod-create-v1'));
    const request = record(review.request, 'request');
    request.name = 'boom';
    const uid = `fail-closed-${endpoint}`;
    request.uid = uid;
    const answer = admissionAnswer(await gw.post(endpoint, review));
    t.is(answer.apiVersion, 'admission.k8s.io/v1');
    t.is(answer.response.uid, uid);
    t.false(answer.response.allowed);
    t.false('patch' in answer.response);
    const status = record(answer.response.status, 'status');
    t.is(status.code, 500);
    t.regex(String(status.message), /semver\.is_valid/);
    const logged = gw.logs.messages('decision').filter((line) => line.uid === uid);
    t.is(logged.length, 1);
    t.is(logged[0]?.level, 50);
    t.false(logged[0]?.allowed);
    t.regex(String(logged[0]?.error), /semver\.is_valid/);
    // The same engine still answers a review that does not hit the broken rule.
    request.name = 'fine';
    t.true(admissionAnswer(await gw.post(endpoint, review)).response.allowed);
  },
  title: (_ = '', endpoint: string) => `fail closed on ${endpoint}: denied, 500 inside, logged`,
});

test(failsClosed, '/v1/validate');
test(failsClosed, '/v1/mutate');

test('at --log-level warn a decision is not logged, a failure still is, with its fields', async (t) => {
  const gw = await boomGateway('warn');
  const review = structuredClone(loadJsonObject('admission', 'pod-create-v1'));
  const request = record(review.request, 'request');
  request.uid = 'warn-fine';
  t.true(admissionAnswer(await gw.post('/v1/validate', review)).response.allowed);
  request.uid = 'warn-boom';
  request.name = 'boom';
  t.false(admissionAnswer(await gw.post('/v1/validate', review)).response.allowed);
  const logged = gw.logs.messages('decision');
  t.deepEqual(
    logged.map((line) => line.uid),
    ['warn-boom'],
    'only the failure',
  );
  t.like(logged[0], { level: 50, kind: 'Pod', namespace: 'shop', allowed: false });
  t.regex(String(logged[0]?.error), /semver\.is_valid/);
  t.true(Array.isArray(logged[0]?.images) && logged[0].images.length > 0, 'with its images');
});

test('fail closed on /v1/imagereview: denied with a reason, logged', async (t) => {
  const gw = await boomGateway();
  const review = structuredClone(loadJsonObject('imagereview', 'imagereview-trusted'));
  record(review.spec, 'spec').namespace = 'boom';
  const result = await gw.post('/v1/imagereview', review);
  t.is(result.status, 200);
  const status = record(record(result.body, 'answer').status, 'status');
  t.false(status.allowed);
  t.regex(String(status.reason), /^imagegate: .*semver\.is_valid/);
  const logged = gw.logs
    .messages('decision')
    .filter((line) => line.endpoint === 'imagereview' && line.namespace === 'boom');
  t.is(logged.length, 1);
  t.is(logged[0]?.level, 50);
});
