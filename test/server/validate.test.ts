/**
 * POST /v1/validate over the real HTTPS server, for every AdmissionReview fixture: the
 * review comes back with the request's apiVersion and uid, a denial names every reason,
 * and enforcement modes, break-glass, UPDATE and DELETE behave as SPEC says.
 */
import test, { type ExecutionContext } from 'ava';
import type { JsonObject } from '../../src/shared/json.ts';
import { fixtureNames, loadJsonObject, sentString } from '../helpers/fixtures.ts';
import {
  admissionAnswer,
  gatewaysByConfig,
  list,
  record,
  stringMap,
  strings,
  type TestGateway,
} from '../helpers/gateway.ts';

type Rule = 'trusted' | 'latest' | 'pull';

const RULE_TEXT: Record<Rule, RegExp> = {
  trusted: /is not trusted/,
  latest: /latest/,
  pull: /imagePullPolicy is .*must be "Always"/,
};

interface Expected {
  /** Every (image, rule) the default policy reports; empty: allowed. */
  readonly violations: readonly (readonly [string, Rule])[];
  /** Images in the object that must not be named (trusted, or unchanged by an UPDATE). */
  readonly clean: readonly string[];
}

const WORKER =
  'ghcr.io/acme/worker@sha256:e63f7cd23fd0a746efbe0bfd303bad00b8bfc9f0a89aaef1de2d146e3bd96204';

/** What SPEC's default policy says about each fixture (trusted: registry.example.com,
 * ghcr.io/acme, localhost:5000; no latest; Pods must pull Always). */
const EXPECTED: Record<string, Expected> = {
  'cronjob-create-v1': {
    violations: [
      ['busybox:latest', 'trusted'],
      ['busybox:latest', 'latest'],
    ],
    clean: [],
  },
  'daemonset-create-v1': {
    violations: [
      ['quay.io/prometheus/node-exporter:v1.8.2', 'trusted'],
      ['quay.io/prometheus/node-exporter:v1.8.2', 'pull'],
    ],
    clean: [],
  },
  // A template nobody controls is held to the pull policy, as a Pod is: sent to the
  // validating webhook alone (as here, without the mutating one), IfNotPresent is refused.
  'deployment-create-v1': {
    violations: [
      ['registry.example.com/team/api:2.3.1', 'pull'],
      ['nginx', 'trusted'],
      ['nginx', 'latest'],
      ['localhost:5000/tools/migrate:7', 'pull'],
    ],
    clean: [],
  },
  'job-create-from-cronjob-v1': {
    violations: [],
    clean: ['registry.example.com/shop/backup:3.0.1'],
  },
  'job-create-v1': { violations: [['localhost:5000/tools/migrate:7', 'pull']], clean: [] },
  // Only a finalizer went: nothing new to judge.
  'job-update-finalizers-v1': { violations: [], clean: ['registry.example.com/shop/migrate:7'] },
  'pod-create-break-glass-v1': {
    violations: [
      ['nginx:1.27', 'trusted'],
      ['nginx:1.27', 'pull'],
    ],
    clean: [],
  },
  // Image volumes are pulled like containers: every rule applies to them.
  'pod-create-image-volumes-v1': {
    violations: [
      ['registry.example.com/shop/inference:2.1.0', 'pull'],
      ['registry.example.com/shop/models:2026-11', 'pull'],
      ['quay.io/evil/miner:latest', 'trusted'],
      ['quay.io/evil/miner:latest', 'latest'],
      ['quay.io/evil/miner:latest', 'pull'],
    ],
    clean: [],
  },
  // A pod its ReplicaSet created is judged like any other.
  'pod-create-owned-v1': {
    violations: [['registry.example.com/shop/web:1.4.2', 'pull']],
    clean: [],
  },
  'pod-create-v1': {
    violations: [
      ['registry.example.com/team/api:2.3.1', 'pull'],
      ['nginx:1.27', 'trusted'],
      ['nginx:1.27', 'pull'],
      ['localhost:5000/tools/migrate:7', 'pull'],
      ['busybox:latest', 'trusted'],
      ['busybox:latest', 'latest'],
    ],
    clean: [],
  },
  'pod-create-v1beta1': {
    violations: [
      [WORKER, 'pull'],
      ['nginx', 'trusted'],
      ['nginx', 'latest'],
    ],
    clean: [],
  },
  'pod-delete-v1': { violations: [], clean: [] },
  'pod-ephemeralcontainers-v1': {
    violations: [
      ['busybox:latest', 'trusted'],
      ['busybox:latest', 'latest'],
    ],
    // The running container is untrusted and not pulled Always, but it is not new.
    clean: ['nginx:1.27'],
  },
  'pod-update-labels-only-v1': { violations: [], clean: [] },
  'pod-update-new-image-v1': {
    violations: [['nginx:1.27', 'trusted']],
    // Unchanged untrusted images must not block the update.
    clean: ['quay.io/prometheus/node-exporter:v1.8.2', 'busybox:latest'],
  },
  'pvc-create-empty-class-v1': { violations: [], clean: [] },
  'pvc-create-v1': { violations: [], clean: [] },
  'replicaset-create-v1': { violations: [['nginx:1.27', 'trusted']], clean: [] },
  // The Deployment controller scaling its ReplicaSet: no new image, nothing to judge.
  'replicaset-update-scale-v1': { violations: [], clean: ['registry.example.com/shop/web:1.4.2'] },
  'replicationcontroller-create-v1': {
    violations: [
      ['nginx', 'trusted'],
      ['nginx', 'latest'],
    ],
    clean: [],
  },
  'statefulset-create-v1': {
    violations: [
      [WORKER, 'pull'],
      ['busybox:latest', 'trusted'],
      ['busybox:latest', 'latest'],
    ],
    clean: [],
  },
};

const NAMES = fixtureNames('admission');
const DENIED = NAMES.filter((name) => (EXPECTED[name]?.violations.length ?? 0) > 0);

/** One gateway per configuration for the whole file (starting one costs a bundle load). */
const gateway = gatewaysByConfig();

function expected(name: string): Expected {
  const entry = EXPECTED[name];
  if (entry === undefined) throw new Error(`no expectation for fixture ${name}: add one`);
  return entry;
}

/** Joined messages, split again: each one starts by naming its container, volume or image. */
function splitMessages(joined: string): string[] {
  return joined.split(/; (?=container "|volume "|image ")/);
}

function requestOf(review: JsonObject): JsonObject {
  return record(review.request, 'fixture request');
}

/** Each message names its image as `image "<raw>"`; match every expected pair to one. */
function assertMessages(
  t: ExecutionContext,
  messages: readonly string[],
  { violations, clean }: Expected,
): void {
  t.is(messages.length, violations.length, messages.join('\n'));
  for (const [image, rule] of violations) {
    t.true(
      messages.some((m) => m.includes(`image "${image}"`) && RULE_TEXT[rule].test(m)),
      `no ${rule} message for ${image} in:\n${messages.join('\n')}`,
    );
  }
  for (const image of clean) {
    t.false(
      messages.some((m) => m.includes(`image "${image}"`)),
      `${image} must not be named:\n${messages.join('\n')}`,
    );
  }
}

async function validate(gw: TestGateway, review: JsonObject) {
  return admissionAnswer(await gw.post('/v1/validate', review));
}

const defaultPolicy = test.macro({
  async exec(t, name: string) {
    const review = loadJsonObject('admission', name);
    const want = expected(name);
    const answer = await validate(await gateway(), review);
    t.is(answer.apiVersion, sentString(review, 'apiVersion'));
    t.is(answer.kind, 'AdmissionReview');
    const { response } = answer;
    t.is(response.uid, requestOf(review).uid);
    if (want.violations.length === 0) {
      t.true(response.allowed);
      t.false('status' in response);
      t.false('warnings' in response);
      return;
    }
    t.false(response.allowed);
    const status = record(response.status, 'status');
    t.is(status.code, 403);
    t.is(typeof status.message, 'string');
    const message = String(status.message);
    // Every reason, joined on one line (kubectl shows it after "denied the request: ").
    assertMessages(t, splitMessages(message), want);
    t.false('warnings' in response);
    t.is(stringMap(response.auditAnnotations, 'auditAnnotations').violations, message);
  },
  title: (_ = '', name: string) => name,
});

for (const name of NAMES) test(defaultPolicy, name);

const warnMode = test.macro({
  async exec(t, name: string) {
    const review = loadJsonObject('admission', name);
    const { response } = await validate(await gateway('enforcement: warn\n'), review);
    t.is(response.uid, requestOf(review).uid);
    t.true(response.allowed);
    t.false('status' in response);
    const warnings = strings(response.warnings, 'warnings');
    assertMessages(t, warnings, expected(name));
    t.is(stringMap(response.auditAnnotations, 'auditAnnotations').violations, warnings.join('; '));
  },
  title: (_ = '', name: string) => `enforcement warn: ${name}`,
});

for (const name of DENIED) test(warnMode, name);

test('enforcement dryrun: allowed, no warnings, violations in auditAnnotations', async (t) => {
  const review = loadJsonObject('admission', 'pod-create-v1');
  const { response } = await validate(await gateway('enforcement: dryrun\n'), review);
  t.true(response.allowed);
  t.false('status' in response);
  t.false('warnings' in response);
  const audit = stringMap(response.auditAnnotations, 'auditAnnotations');
  t.is(audit.enforcement, 'dryrun');
  assertMessages(t, splitMessages(audit.violations ?? ''), expected('pod-create-v1'));
});

test('break-glass with breakGlass: true: allowed, warned, audited with the reason', async (t) => {
  const review = loadJsonObject('admission', 'pod-create-break-glass-v1');
  const { response } = await validate(await gateway('breakGlass: true\n'), review);
  t.true(response.allowed);
  t.false('status' in response);
  assertMessages(t, strings(response.warnings, 'warnings'), expected('pod-create-break-glass-v1'));
  const audit = stringMap(response.auditAnnotations, 'auditAnnotations');
  t.is(audit['break-glass'], 'INC-4711 registry outage');
  t.regex(audit.violations ?? '', /nginx:1\.27/);
});

test('break-glass without breakGlass: true: denied, and the attempt is audited', async (t) => {
  const review = loadJsonObject('admission', 'pod-create-break-glass-v1');
  const { response } = await validate(await gateway(), review);
  t.false(response.allowed);
  t.is(record(response.status, 'status').code, 403);
  const audit = stringMap(response.auditAnnotations, 'auditAnnotations');
  t.is(audit['break-glass-ignored'], 'true');
  t.false('break-glass' in audit);
});

test('break-glass: look-alike annotation keys are not honoured', async (t) => {
  const review = structuredClone(loadJsonObject('admission', 'pod-create-break-glass-v1'));
  const metadata = record(record(requestOf(review).object, 'object').metadata, 'metadata');
  const annotations = record(metadata.annotations, 'annotations');
  t.truthy(annotations['break-glass.image-policy.k8s.io.evil.com/reason']);
  t.truthy(annotations['image-policy.k8s.io/reason']);
  delete annotations['break-glass.image-policy.k8s.io/reason'];
  const { response } = await validate(await gateway('breakGlass: true\n'), review);
  t.false(response.allowed);
  t.false('break-glass' in stringMap(response.auditAnnotations, 'auditAnnotations'));
});

/** The labels-only UPDATE with every image (old and new alike) swapped for an untrusted one. */
function untrustedLabelsOnlyUpdate(operation: 'UPDATE' | 'CREATE'): JsonObject {
  const review = structuredClone(loadJsonObject('admission', 'pod-update-labels-only-v1'));
  const request = requestOf(review);
  request.operation = operation;
  if (operation === 'CREATE') request.oldObject = null;
  for (const key of ['object', 'oldObject']) {
    if (request[key] === null) continue;
    const spec = record(record(request[key], key).spec, `${key}.spec`);
    for (const listName of ['containers', 'initContainers']) {
      for (const container of list(spec[listName], listName)) {
        record(container, 'container').image = 'quay.io/untrusted/app:latest';
      }
    }
  }
  return review;
}

test('UPDATE of labels only: allowed although the running images are untrusted', async (t) => {
  const gw = await gateway();
  const update = await validate(gw, untrustedLabelsOnlyUpdate('UPDATE'));
  t.true(update.response.allowed, JSON.stringify(update.response));
  // Control: the same pod as a CREATE is denied, so the images really are untrusted.
  const create = await validate(gw, untrustedLabelsOnlyUpdate('CREATE'));
  t.false(create.response.allowed);
  t.regex(String(record(create.response.status, 'status').message), /quay\.io\/untrusted\/app/);
});

test('an excluded namespace (kube-system) is not checked', async (t) => {
  const review = structuredClone(loadJsonObject('admission', 'pod-create-v1'));
  const request = requestOf(review);
  request.namespace = 'kube-system';
  record(record(request.object, 'object').metadata, 'metadata').namespace = 'kube-system';
  const { response } = await validate(await gateway(), review);
  t.true(response.allowed);
  t.false('status' in response);
});
