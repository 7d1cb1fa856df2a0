/**
 * One evaluation when facts are warm (issue 24): the facts step gathers what a review of
 * the same shape needed last time, evaluates the decision with them, and keeps it only
 * when that evaluation asks for exactly those lookups. A wrong guess costs a second
 * evaluation, never a decision made on facts it did not ask for; a bundle without the
 * decided entrypoint is judged as before (the lookups, then the decision).
 */
import test from 'ava';
import { readBundleArchive } from '../../src/policy/bundle.ts';
import {
  decisionWith,
  PolicyEngine as Engine,
  type PolicyEngine,
} from '../../src/policy/engine.ts';
import type { FactRequest, ImageFacts } from '../../src/registry/facts.ts';
import { parseAdmissionReview } from '../../src/review/admission-review.ts';
import { toMutateDecision, toValidateDecision } from '../../src/review/decision.ts';
import { admissionInput, type PolicyInput } from '../../src/review/policy-input.ts';
import { factsStep, LookupMemo, lookupKey, shapeOf } from '../../src/server/facts-step.ts';
import { EngineError } from '../../src/shared/engine-error.ts';
import { LimitError } from '../../src/shared/input-error.ts';
import { isRecord } from '../../src/shared/json.ts';
import {
  buildBundle,
  committedBundle,
  REPO_ENTRYPOINTS,
  repoPolicyBundle,
} from '../helpers/bundles.ts';
import { loadJsonObject, podWithImages } from '../helpers/fixtures.ts';

const DIGEST = `sha256:${'ab'.repeat(32)}`;
const CONFIG = { trustedRegistries: ['registry.example.com'], pinDigests: 'pods' } as const;

/** The policy input of a review, as the gateway builds it (parsed, then translated). */
function parsedInput(review: unknown): PolicyInput {
  const parsed = parseAdmissionReview(review);
  return admissionInput(parsed.apiVersion, parsed.request);
}

function inputOf(images: readonly string[], namespace = 'shop'): PolicyInput {
  return parsedInput(podWithImages(images, { namespace }));
}

/**
 * Counts the engine's evaluations and the step's gathers; answers every tag with DIGEST.
 * `gathers` are registry lookups; a cache-only read answers what they (or `cache`) hold.
 */
function instrument(engine: PolicyEngine) {
  const counts = {
    decided: 0,
    /** Evaluations of the decision entrypoint alone (a trusted warm shape). */
    decision: 0,
    needed: 0,
    gathers: [] as FactRequest[][],
    cacheReads: 0,
    /** How long a cache-only read says its facts stay cached (0: not past this moment). */
    cachedForMs: 0,
  };
  const cache = new Set<string>();
  const decided = engine.decided.bind(engine);
  const decision = engine.decision.bind(engine);
  const needed = engine.factsNeeded.bind(engine);
  Object.assign(engine, {
    decided: (...args: Parameters<PolicyEngine['decided']>) => {
      counts.decided += 1;
      return decided(...args);
    },
    decision: (...args: Parameters<PolicyEngine['decision']>) => {
      counts.decision += 1;
      return decision(...args);
    },
    factsNeeded: (...args: Parameters<PolicyEngine['factsNeeded']>) => {
      counts.needed += 1;
      return needed(...args);
    },
  });
  const answer = (requests: readonly FactRequest[]) =>
    new Map<number, ImageFacts>(requests.map((r) => [r.index, { digest: DIGEST }]));
  const gather = async (
    requests: readonly FactRequest[],
    _namespace: string,
    _decision: string,
    cachedOnly = false,
  ) => {
    if (cachedOnly) {
      counts.cacheReads += 1;
      return requests.every((r) => cache.has(lookupKey(r)))
        ? { facts: answer(requests), until: Date.now() + counts.cachedForMs }
        : undefined;
    }
    counts.gathers.push([...requests]);
    for (const r of requests) cache.add(lookupKey(r));
    return { facts: answer(requests) };
  };
  return { counts, gather, cache };
}

const committedEngine = async () => Engine.create(await committedBundle(), CONFIG);

/**
 * The repo's policies built without rego/.manifest: a bundle that does not say its lookups
 * follow from the shape, so each warm review has them computed again and compared.
 */
let unsaid: Promise<Buffer> | undefined;
const checkingEngine = async () => {
  unsaid ??= repoPolicyBundle({});
  const engine = await Engine.create(
    await readBundleArchive(await unsaid, 'unsaid.tar.gz'),
    CONFIG,
  );
  if (engine.lookupsByShape) throw new Error('a bundle without the manifest flag trusts shapes');
  return engine;
};

test('warm: the second review of a shape is one evaluation, of the decision alone, with the same decision', async (t) => {
  const engine = await committedEngine();
  t.true(engine.decidesWithLookups);
  t.true(engine.lookupsByShape, 'the default bundle says its lookups follow from the shape');
  const { counts, gather } = instrument(engine);
  const step = factsStep(gather);
  const images = ['registry.example.com/shop/app:1.0', `registry.example.com/shop/web@${DIGEST}`];

  const cold = await step(engine, inputOf(images), 'mutate');
  t.is(counts.decided, 2, 'a new shape: the lookups, then the decision with their facts');
  t.deepEqual(
    counts.gathers.map((g) => g.map((r) => r.index)),
    [[0]],
  );
  t.is(counts.cacheReads, 0, 'nothing remembered yet');
  const warm = await step(engine, inputOf(images), 'mutate');
  t.is(counts.decided, 2, 'the same shape again: the lookups are not computed again');
  t.is(counts.decision, 1, 'one evaluation, of the decision entrypoint');
  t.is(counts.needed, 0);
  t.is(counts.cacheReads, 1, 'the remembered lookups read from the caches');
  t.is(counts.gathers.length, 1, 'and no registry lookup');
  const patchOf = (withFacts: typeof cold) =>
    toMutateDecision(decisionWith(engine, withFacts, 'mutate')).patch;
  t.deepEqual(patchOf(warm), patchOf(cold));
  t.true(
    JSON.stringify(patchOf(warm)).includes(`registry.example.com/shop/app:1.0@${DIGEST}`),
    'the tag is pinned with the fact gathered',
  );
  t.true(typeof warm.evaluationSeconds === 'number');
});

test('a bundle that does not say its lookups follow the shape has them computed with every decision', async (t) => {
  const engine = await checkingEngine();
  const { counts, gather } = instrument(engine);
  const step = factsStep(gather);
  const images = ['registry.example.com/shop/app:1.0', `registry.example.com/shop/web@${DIGEST}`];
  const cold = await step(engine, inputOf(images), 'mutate');
  t.is(counts.decided, 2);
  const warm = await step(engine, inputOf(images), 'mutate');
  t.is(counts.decided, 3, 'one evaluation, which says its lookups again');
  t.is(counts.decision, 0);
  t.deepEqual(
    toMutateDecision(decisionWith(engine, warm, 'mutate')).patch,
    toMutateDecision(decisionWith(engine, cold, 'mutate')).patch,
  );
});

test('a shape that needs no lookups is remembered: next time the decision alone', async (t) => {
  const engine = await committedEngine();
  const { counts, gather } = instrument(engine);
  const step = factsStep(gather);
  // Pinned already: nothing for pinDigests to resolve, and no signatures configured.
  const input = () => inputOf([`registry.example.com/shop/web@${DIGEST}`]);
  await step(engine, input(), 'mutate');
  t.is(counts.decided, 1, 'a new shape: one evaluation says it needs nothing');
  await step(engine, input(), 'mutate');
  t.is(counts.decided, 1);
  t.is(counts.decision, 1);
  t.is(counts.gathers.length + counts.cacheReads, 0, 'the event loop was never asked');
});

/**
 * Everything in a review the shape leaves out, changed: names, uids, labels, annotations
 * (the break-glass one too), the requester, dry run, container names, env, pull secrets,
 * the service account.
 */
function unshaped(review: Record<string, unknown>): [string, Record<string, unknown>][] {
  const variant = (what: string, change: (request: Record<string, unknown>) => void) => {
    const copy = structuredClone(review);
    change(copy.request as Record<string, unknown>);
    return [what, copy] as [string, Record<string, unknown>];
  };
  const metadata = (request: Record<string, unknown>) =>
    (request.object as { metadata: Record<string, unknown> }).metadata;
  const specs = (request: Record<string, unknown>) => {
    const object = request.object as { spec?: Record<string, unknown> };
    const template = object.spec?.template as { spec?: Record<string, unknown> } | undefined;
    return [object.spec, template?.spec].filter((x): x is Record<string, unknown> => isRecord(x));
  };
  const containers = (request: Record<string, unknown>) =>
    specs(request).flatMap((spec) =>
      ['containers', 'initContainers', 'ephemeralContainers'].flatMap((list) =>
        Array.isArray(spec[list]) ? (spec[list] as Record<string, unknown>[]) : [],
      ),
    );
  return [
    variant('uid', (r) => (r.uid = '0b7a2c1e-9d3f-4e6a-8b5c-1f2e3d4c5b6a')),
    variant('name', (r) => {
      r.name = 'other';
      metadata(r).name = 'other';
    }),
    variant('labels', (r) => (metadata(r).labels = { app: 'x', 'team.example.com/cost': 'y' })),
    variant('annotations', (r) => {
      metadata(r).annotations = {
        'break-glass.image-policy.k8s.io/reason': 'INC-1 outage',
        'image-policy.k8s.io/anything': 'z',
      };
    }),
    variant('requester', (r) => (r.userInfo = { username: 'system:serviceaccount:ci:deployer' })),
    variant('dry run', (r) => (r.dryRun = true)),
    variant('container names', (r) => {
      for (const [i, c] of containers(r).entries()) c.name = `renamed-${i}`;
    }),
    variant('env', (r) => {
      for (const c of containers(r)) c.env = [{ name: 'TOKEN', value: 's3cr3t' }];
    }),
    variant('pull secrets and service account', (r) => {
      for (const spec of specs(r)) {
        spec.imagePullSecrets = [{ name: 'other' }];
        spec.serviceAccountName = 'builder';
      }
    }),
  ];
}

test("the default bundle's lookups follow from the shape: nothing else in the object changes them", async (t) => {
  const config = {
    ...CONFIG,
    trustedRegistries: ['registry.example.com', 'quay.io', 'docker.io', 'localhost:5000'],
    signatures: [{ images: ['registry.example.com', 'quay.io'], keys: ['k.pub'], id: 'v-1' }],
    exemptImages: ['registry.example.com/shop/models*'],
  };
  const engine = await Engine.create(await committedBundle(), config);
  t.true(engine.lookupsByShape);
  let looked = 0;
  for (const fixture of [
    'pod-create-v1',
    'pod-create-break-glass-v1',
    'pod-create-image-volumes-v1',
    'pod-update-new-image-v1',
    'pod-ephemeralcontainers-v1',
    'pod-create-owned-v1',
    'deployment-create-v1',
  ]) {
    const review = loadJsonObject('admission', fixture);
    const input = parsedInput;
    for (const decision of ['mutate', 'validate'] as const) {
      const lookups = (r: Record<string, unknown>) =>
        engine.decided(input(r), decision).lookups.map(lookupKey);
      const base = lookups(review);
      looked += base.length;
      for (const [what, variant] of unshaped(review)) {
        t.is(
          shapeOf(input(variant), decision),
          shapeOf(input(review), decision),
          `${fixture} ${what}`,
        );
        t.deepEqual(lookups(variant), base, `${fixture}, ${decision}: ${what}`);
      }
    }
  }
  t.true(looked > 10, `the fixtures need lookups (${looked})`);
});

test('what the lookups follow from is in the shape', (t) => {
  const review = loadJsonObject('admission', 'deployment-create-v1');
  const input = parsedInput;
  const changed = (change: (request: Record<string, unknown>) => void) => {
    const copy = structuredClone(review);
    change(copy.request as Record<string, unknown>);
    return shapeOf(input(copy), 'mutate');
  };
  const base = shapeOf(input(review), 'mutate');
  const template = (r: Record<string, unknown>) =>
    (r.object as { spec: { template: { spec: Record<string, unknown[]> } } }).spec.template.spec;
  for (const [what, change] of [
    ['namespace', (r: Record<string, unknown>) => (r.namespace = 'ci-1')],
    ['operation', (r: Record<string, unknown>) => (r.operation = 'UPDATE')],
    [
      'kind',
      (r: Record<string, unknown>) => ((r.kind as Record<string, string>).kind = 'StatefulSet'),
    ],
    ['sub-resource', (r: Record<string, unknown>) => (r.subResource = 'status')],
    [
      'owner',
      (r: Record<string, unknown>) =>
        ((r.object as { metadata: Record<string, unknown> }).metadata.ownerReferences = [
          { apiVersion: 'apps/v1', kind: 'X', name: 'x', uid: 'u', controller: true },
        ]),
    ],
    [
      'image',
      (r: Record<string, unknown>) =>
        ((template(r).containers?.[0] as { image: string }).image = 'nginx:2'),
    ],
    [
      // The same images in the same order, the last in another list.
      'list',
      (r: Record<string, unknown>) => {
        const spec = template(r);
        spec.containers = [...(spec.containers ?? []), ...(spec.initContainers ?? [])];
        delete spec.initContainers;
      },
    ],
  ] as const) {
    t.not(changed(change), base, what);
  }
});

test('an UPDATE whose old object already pulls an image needs other lookups: newness is in the shape', async (t) => {
  const engine = await committedEngine();
  const review = loadJsonObject('admission', 'pod-update-new-image-v1');
  // The same object, with an old object that already has every image: none is new.
  const settled = structuredClone(review);
  const request = settled.request as Record<string, unknown>;
  request.oldObject = structuredClone(request.object);
  const keys = (input: PolicyInput) => engine.decided(input, 'mutate').lookups.map(lookupKey);
  t.true(keys(parsedInput(review)).length > 0, 'the new image is pinned');
  t.notDeepEqual(keys(parsedInput(settled)), keys(parsedInput(review)));
  t.not(shapeOf(parsedInput(settled), 'mutate'), shapeOf(parsedInput(review), 'mutate'));
});

test('a trusted shape is still bounded by maxLookups', async (t) => {
  const engine = await committedEngine();
  const { counts, gather, cache } = instrument(engine);
  const memo = new LookupMemo();
  const input = inputOf(['registry.example.com/a:1', 'registry.example.com/b:1']);
  const lookups = engine.decided(input, 'mutate').lookups;
  for (const r of lookups) cache.add(lookupKey(r));
  // As the step would remember it under a bound of 1 (it never does: it bounds first).
  memo.set(engine, shapeOf(input, 'mutate'), lookups, { maxLookups: 1 });
  const before = counts.decision;
  await t.throwsAsync(factsStep(gather, memo)(engine, input, 'mutate'), { instanceOf: LimitError });
  t.is(counts.decision, before, 'refused before the decision');
});

test('remembered facts are used again without asking while they stay in the caches, not after', async (t) => {
  const engine = await committedEngine();
  const { counts, gather } = instrument(engine);
  const step = factsStep(gather);
  const input = () => inputOf(['registry.example.com/shop/app:1.0']);
  await step(engine, input(), 'mutate');
  counts.cachedForMs = 60_000;
  await step(engine, input(), 'mutate');
  t.is(counts.cacheReads, 1, 'read from the caches once, with how long they stay');
  const third = await step(engine, input(), 'mutate');
  t.is(counts.cacheReads, 1, 'then used as read: no message to the event loop');
  t.is(counts.decided + counts.decision, 4, 'one evaluation each');
  t.deepEqual(third.input.images[0]?.facts, { digest: DIGEST });

  // Facts read when they were about to leave the caches are read again the next time.
  const other = factsStep(gather);
  const before = counts.cacheReads;
  await other(engine, inputOf(['registry.example.com/shop/db:1']), 'mutate');
  counts.cachedForMs = 0;
  await other(engine, inputOf(['registry.example.com/shop/db:1']), 'mutate');
  await other(engine, inputOf(['registry.example.com/shop/db:1']), 'mutate');
  t.is(counts.cacheReads - before, 2, 'each time: they may have left the caches');
  t.is(counts.gathers.length, 2, 'and never a registry lookup for a shape already seen');
});

test('a wrong guess costs a second evaluation, and the decision is the one a fresh step makes', async (t) => {
  const engine = await committedEngine();
  const { counts, gather, cache } = instrument(engine);
  const memo = new LookupMemo();
  const input = inputOf(['registry.example.com/shop/app:1.0', 'registry.example.com/shop/db:2']);
  // Remembered for this shape: a lookup the policy does not ask for, and one of two it does.
  const wrong: FactRequest = {
    index: 1,
    registry: 'registry.example.com',
    repository: 'other/thing',
    tag: '9',
    digest: '',
    verification: '',
  };
  memo.set(engine, shapeOf(input, 'validate'), [wrong]);
  cache.add(lookupKey(wrong));
  const guessed = await factsStep(gather, memo)(engine, input, 'validate');
  t.is(counts.decided, 2);
  t.is(counts.cacheReads, 1, 'the guess was read from the caches');
  t.is(counts.gathers.length, 1, 'one registry gather, of what the decision asked for');
  t.deepEqual(counts.gathers[0]?.map((r) => `${r.index} ${r.repository}:${r.tag}`).sort(), [
    '0 shop/app:1.0',
    '1 shop/db:2',
  ]);
  t.deepEqual(
    guessed.input.images.map((i) => i.facts),
    [{ digest: DIGEST }, { digest: DIGEST }],
    'the facts the decision asked for, no other',
  );
  const fresh = await factsStep(gather)(engine, input, 'validate');
  t.deepEqual(
    toValidateDecision(decisionWith(engine, guessed, 'validate')),
    toValidateDecision(decisionWith(engine, fresh, 'validate')),
  );
  t.deepEqual(
    new Set(memo.get(engine, shapeOf(input, 'validate'))),
    new Set(counts.gathers[0]),
    'corrected',
  );
});

test('a remembered lookup not in the caches is never looked up: the review pays one budget', async (t) => {
  const engine = await committedEngine();
  const { counts, gather } = instrument(engine);
  const memo = new LookupMemo();
  const input = inputOf(['registry.example.com/shop/app:1.0']);
  // What another review of this shape might have left (a tag only it used, not cached).
  const stranger: FactRequest = {
    index: 0,
    registry: 'registry.example.com',
    repository: 'someone/else',
    tag: '1',
    digest: '',
    verification: '',
  };
  memo.set(engine, shapeOf(input, 'mutate'), [stranger]);
  const result = await factsStep(gather, memo)(engine, input, 'mutate');
  t.is(counts.cacheReads, 1);
  t.deepEqual(
    counts.gathers.map((g) => g.map((r) => r.repository)),
    [['shop/app']],
    'only what the decision asked for went to the registry',
  );
  t.is(counts.decided, 2);
  t.deepEqual(result.input.images[0]?.facts, { digest: DIGEST });
});

test('maxLookups bounds a remembered shape too', async (t) => {
  const engine = await Engine.create(await committedBundle(), {
    ...CONFIG,
    namespaces: { 'ci-*': { maxLookups: 1 } },
  });
  const { counts, gather } = instrument(engine);
  const memo = new LookupMemo();
  const step = factsStep(gather, memo);
  const images = ['registry.example.com/a:1', 'registry.example.com/b:1'];
  await step(engine, inputOf(images), 'mutate');
  // The same images where the bound is 1: refused before any lookup, and with a
  // (wrongly) remembered guess for that namespace, after the evaluation that tells.
  const error = await t.throwsAsync(step(engine, inputOf(images, 'ci-7'), 'mutate'));
  t.true(error instanceof LimitError);
  const gathered = counts.gathers.length;
  memo.set(engine, shapeOf(inputOf(images, 'ci-7'), 'mutate'), counts.gathers[0] ?? []);
  await t.throwsAsync(step(engine, inputOf(images, 'ci-7'), 'mutate'), { instanceOf: LimitError });
  t.is(counts.gathers.length, gathered, 'the remembered lookups were read from the caches only');
  t.is(counts.cacheReads, 1);
});

test('a bundle without the decided entrypoint: the lookups, then the decision, as before', async (t) => {
  // The repo's policies as before the decided entrypoint: without the rule.
  const older = await repoPolicyBundle(
    {},
    {
      entrypoints: REPO_ENTRYPOINTS.filter((e) => e !== 'imagegate/facts/decided'),
      edit: (_file, text) =>
        text.replace(
          /# METADATA\n# title: Decision with[\s\S]*?input\.factsFor == "mutate"\n}\n/,
          '',
        ),
    },
  );
  const engine = await Engine.create(await readBundleArchive(older, 'older.tar.gz'), CONFIG);
  t.false(engine.decidesWithLookups);
  const { counts, gather } = instrument(engine);
  const step = factsStep(gather);
  const input = inputOf(['registry.example.com/shop/app:1.0']);
  const first = await step(engine, input, 'mutate');
  const second = await step(engine, input, 'mutate');
  t.is(counts.decided, 0);
  t.is(counts.needed, 2);
  t.is(first.decided, undefined, 'the caller evaluates the decision');
  t.deepEqual(second.input.images[0]?.facts, { digest: DIGEST });
});

test('a policy whose lookups change with the facts given fails closed', async (t) => {
  const engine = await Engine.create(
    await readBundleArchive(
      await buildBundle(
        {
          'p.rego': `package imagegate.validate
decision := {"allowed": true, "enforcement": "deny", "exempt": false, "breakGlass": false,
	"violations": [], "reasons": [], "warnings": [], "auditAnnotations": {}}
`,
          'm.rego': `package imagegate.mutate
decision := {"patch": [], "messages": []}
`,
          'f.rego': `package imagegate.facts
lookups := [] if input.images[0].facts
else := [{"index": 0, "registry": "registry.example.com", "repository": "a", "tag": "1", "digest": "", "verification": ""}]
needed := {"mutate": lookups, "validate": lookups}
decided := {"decision": data.imagegate.validate.decision, "lookups": lookups}
`,
        },
        [
          'imagegate/validate/decision',
          'imagegate/mutate/decision',
          'imagegate/facts/needed',
          'imagegate/facts/decided',
        ],
      ),
      'fickle.tar.gz',
    ),
    CONFIG,
  );
  const { gather } = instrument(engine);
  await t.throwsAsync(
    factsStep(gather)(engine, inputOf(['registry.example.com/a:1']), 'validate'),
    {
      instanceOf: EngineError,
      message: /other registry lookups once given the facts/,
    },
  );
});
