/**
 * POST /v1/imagereview over the real HTTPS server, as the in-tree ImagePolicyWebhook calls
 * it: status.allowed, a reason naming each offending image (and only those), and
 * break-glass and warn answers recorded in auditAnnotations.
 */
import test, { type ExecutionContext } from 'ava';
import type { JsonObject } from '../../src/shared/json.ts';
import { fixtureNames, loadJsonObject } from '../helpers/fixtures.ts';
import { gatewaysByConfig, type HttpResult, record, stringMap } from '../helpers/gateway.ts';

const WORKER =
  'ghcr.io/acme/worker@sha256:e63f7cd23fd0a746efbe0bfd303bad00b8bfc9f0a89aaef1de2d146e3bd96204';

interface Expected {
  readonly offending: readonly string[];
  readonly clean: readonly string[];
}

/** The default policy (SPEC): trusted registry.example.com, ghcr.io/acme, localhost:5000. */
const EXPECTED: Record<string, Expected> = {
  'imagereview-break-glass': { offending: ['nginx:1.27'], clean: [] },
  'imagereview-mixed': {
    offending: [
      'nginx:1.27',
      'busybox:latest',
      'quay.io/prometheus/node-exporter:v1.8.2',
      // Upper case is not allowed in a repository path: an invalid reference.
      'ghcr.io/acme/Worker:1.0',
      // The trusted host as a prefix of another host is another host.
      'registry.example.com.evil.io/team/api:2.3.1',
    ],
    clean: ['registry.example.com/team/api:2.3.1', WORKER],
  },
  'imagereview-trusted': {
    offending: [],
    clean: ['registry.example.com/team/api:2.3.1', WORKER, 'localhost:5000/tools/migrate:7'],
  },
  'imagereview-untrusted': { offending: ['nginx', 'busybox:latest'], clean: [] },
};

/** One gateway per configuration for the whole file (starting one costs a bundle load). */
const gateway = gatewaysByConfig();

/** The ImageReview answer's status, after checking the envelope. */
function statusOf(t: ExecutionContext, result: HttpResult): JsonObject {
  t.is(result.status, 200, result.text);
  const body = record(result.body, 'answer');
  t.is(body.apiVersion, 'imagepolicy.k8s.io/v1alpha1');
  t.is(body.kind, 'ImageReview');
  return record(body.status, 'status');
}

/** Names each offending image, quoted, and none of the clean ones. */
function assertNames(t: ExecutionContext, text: string, { offending, clean }: Expected): void {
  for (const image of offending) t.true(text.includes(`"${image}"`), `${image} not in: ${text}`);
  for (const image of clean) t.false(text.includes(`"${image}"`), `${image} named in: ${text}`);
}

const reviewed = test.macro({
  async exec(t, name: string) {
    const want = EXPECTED[name];
    if (want === undefined) throw new Error(`no expectation for fixture ${name}: add one`);
    const status = statusOf(
      t,
      await (await gateway()).post('/v1/imagereview', loadJsonObject('imagereview', name)),
    );
    if (want.offending.length === 0) {
      t.true(status.allowed);
      t.false('reason' in status);
      return;
    }
    t.false(status.allowed);
    t.is(typeof status.reason, 'string');
    assertNames(t, String(status.reason), want);
  },
  title: (_ = '', name: string) => name,
});

for (const name of fixtureNames('imagereview')) test(reviewed, name);

test('break-glass with breakGlass: true: allowed, the reason and violations audited', async (t) => {
  const review = loadJsonObject('imagereview', 'imagereview-break-glass');
  const gw = await gateway('breakGlass: true\n');
  const status = statusOf(t, await gw.post('/v1/imagereview', review));
  t.true(status.allowed);
  t.false('reason' in status);
  const audit = stringMap(status.auditAnnotations, 'auditAnnotations');
  t.is(audit['break-glass'], 'INC-4711 registry outage');
  assertNames(t, audit.violations ?? '', { offending: ['nginx:1.27'], clean: [] });
});

test('break-glass with breakGlass false (default): denied despite the annotation', async (t) => {
  const review = loadJsonObject('imagereview', 'imagereview-break-glass');
  const status = statusOf(t, await (await gateway()).post('/v1/imagereview', review));
  t.false(status.allowed);
  assertNames(t, String(status.reason), { offending: ['nginx:1.27'], clean: [] });
  const audit = stringMap(status.auditAnnotations, 'auditAnnotations');
  t.false('break-glass' in audit);
  t.is(audit['break-glass-ignored'], 'true');
});

/** The break-glass review with its reason under another annotation key. */
function withBreakGlassKey(key: string): JsonObject {
  const review = structuredClone(loadJsonObject('imagereview', 'imagereview-break-glass'));
  const spec = record(review.spec, 'spec');
  spec.annotations = { [key]: 'INC-4711 registry outage' };
  return review;
}

const ignoredKey = test.macro({
  async exec(t, key: string) {
    const gw = await gateway('breakGlass: true\n');
    const status = statusOf(t, await gw.post('/v1/imagereview', withBreakGlassKey(key)));
    t.false(status.allowed);
    t.false('break-glass' in stringMap(status.auditAnnotations, 'auditAnnotations'));
  },
  title: (_ = '', key: string) => `annotation ${key} is not break-glass`,
});

test(ignoredKey, 'break-glass.image-policy.k8s.io.evil.com/reason');
test(ignoredKey, 'image-policy.k8s.io/reason');
test(ignoredKey, 'break-glass.example.com/reason');

test('the genuine key in the same variant is honoured (control)', async (t) => {
  const gw = await gateway('breakGlass: true\n');
  const review = withBreakGlassKey('break-glass.image-policy.k8s.io/reason');
  t.true(statusOf(t, await gw.post('/v1/imagereview', review)).allowed);
});

test('enforcement warn: allowed, the violations recorded in auditAnnotations', async (t) => {
  const review = loadJsonObject('imagereview', 'imagereview-untrusted');
  const status = statusOf(
    t,
    await (await gateway('enforcement: warn\n')).post('/v1/imagereview', review),
  );
  t.true(status.allowed);
  t.false('reason' in status);
  const audit = stringMap(status.auditAnnotations, 'auditAnnotations');
  assertNames(t, audit.violations ?? '', { offending: ['nginx', 'busybox:latest'], clean: [] });
});
