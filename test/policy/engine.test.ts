import test from 'ava';
import { readBundleArchive } from '../../src/policy/bundle.ts';
import { BundleError } from '../../src/policy/bundle-error.ts';
import {
  DECIDED_ENTRYPOINT,
  DEFAULT_MAX_IMAGES,
  FACTS_ENTRYPOINT,
  MAX_MEMORY_BYTES,
  MUTATE_ENTRYPOINT,
  mergeData,
  PolicyEngine,
  passesReview,
  VALIDATE_ENTRYPOINT,
} from '../../src/policy/engine.ts';
import { admissionInput } from '../../src/review/policy-input.ts';
import { EngineError } from '../../src/shared/engine-error.ts';
import { buildBundle, committedBundle, packBundle } from '../helpers/bundles.ts';

function podInput(images: string[], namespace = 'shop') {
  return admissionInput('admission.k8s.io/v1', {
    uid: 'e0b1c2d3-0000-4000-8000-000000000001',
    kind: { group: '', version: 'v1', kind: 'Pod' },
    resource: { group: '', version: 'v1', resource: 'pods' },
    subResource: '',
    operation: 'CREATE',
    namespace,
    name: 'web',
    dryRun: false,
    object: {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'web', namespace },
      spec: {
        containers: images.map((image, i) => ({
          name: `c${i}`,
          image,
          imagePullPolicy: 'IfNotPresent',
        })),
      },
    },
    oldObject: null,
    raw: {},
  });
}

test('the committed bundle loads, with its four entrypoints and a revision', async (t) => {
  const bundle = await committedBundle();
  const engine = await PolicyEngine.create(bundle);
  t.deepEqual(
    [...engine.entrypoints].sort(),
    [DECIDED_ENTRYPOINT, FACTS_ENTRYPOINT, MUTATE_ENTRYPOINT, VALIDATE_ENTRYPOINT].sort(),
  );
  t.regex(engine.revision, /^[0-9a-f]{12}$/);
  t.is(engine.revision, bundle.revision);
  t.regex(engine.bundleDigest, /^[0-9a-f]{64}$/);
});

test('untagged nginx from Docker Hub: denied for both reasons, by the compiled wasm', async (t) => {
  const engine = await PolicyEngine.create(await committedBundle());
  const decision = engine.validate(podInput(['nginx']));
  t.false(decision.allowed);
  t.deepEqual(decision.violations.map((v) => v.rule).sort(), [
    'latest-tag',
    'pull-policy',
    'trusted-registry',
  ]);
  t.is(decision.reasons.length, 3);
  for (const reason of decision.reasons) t.true(reason.includes('"nginx"'), reason);
});

test('a trusted, pinned image pulled Always is allowed', async (t) => {
  const engine = await PolicyEngine.create(await committedBundle());
  const input = podInput(['registry.example.com/team/api:2.3.1']);
  const first = input.images[0];
  if (first === undefined) throw new Error('fixture has an image');
  first.pullPolicy = 'Always';
  const decision = engine.validate(input);
  t.true(decision.allowed);
  t.deepEqual(decision.reasons, []);
});

test('configuration replaces the bundle defaults key by key', async (t) => {
  const bundle = await committedBundle();
  const engine = await PolicyEngine.create(bundle, {
    trustedRegistries: ['docker.io/library'],
    denyLatest: false,
    pullPolicy: null,
  });
  t.true(engine.validate(podInput(['nginx'])).allowed);
  t.false(engine.validate(podInput(['docker.io/bitnami/nginx:1'])).allowed);
  t.deepEqual(engine.mutate(podInput(['nginx'])).patch, []);
});

test('mergeData keeps the rest of the bundle data and unnamed defaults', (t) => {
  const merged = mergeData(
    { other: { x: 1 }, imagegate: { config: { a: 1, b: 2 }, extra: true } },
    { b: 3 },
  );
  t.deepEqual(merged, { other: { x: 1 }, imagegate: { config: { a: 1, b: 3 }, extra: true } });
});

test('the mutate entrypoint forces Always with a patch for every container', async (t) => {
  const engine = await PolicyEngine.create(await committedBundle());
  const decision = engine.mutate(
    podInput(['registry.example.com/a:1', 'registry.example.com/b:2']),
  );
  t.deepEqual(decision.patch, [
    { op: 'add', path: '/spec/containers/0/imagePullPolicy', value: 'Always' },
    { op: 'add', path: '/spec/containers/1/imagePullPolicy', value: 'Always' },
  ]);
  t.is(decision.messages.length, 2);
});

test('maxImages in force: the configuration, else the bundle, else the built-in default', async (t) => {
  const bundle = await committedBundle();
  t.is((await PolicyEngine.create(bundle)).config.maxImages, 32_768, 'rego/data.json');
  t.is((await PolicyEngine.create(bundle, { maxImages: 10 })).config.maxImages, 10);
  // Data the file schema would refuse (a bundle's own data.json is not schema-checked).
  const odd = await PolicyEngine.create(bundle, { maxImages: 'many' });
  t.is(odd.config.maxImages, DEFAULT_MAX_IMAGES);
});

test('an input of many containers fits the reserved wasm memory and still decides', async (t) => {
  const engine = await PolicyEngine.create(await committedBundle());
  const images = Array.from({ length: 2000 }, (_, i) => `registry.example.com/app${i}:1.0`);
  const decision = engine.validate(podInput(images));
  t.is(decision.violations.length, 2000); // every container lacks imagePullPolicy: Always
});

const refuses = test.macro(async (t, make: () => Promise<Buffer>, message: RegExp) => {
  const error = await t.throwsAsync(
    async () => PolicyEngine.create(await readBundleArchive(await make(), 'bad.tar.gz')),
    {
      instanceOf: BundleError,
    },
  );
  t.regex(error?.message ?? '', message);
});

test(
  'refuses bytes that are not gzip',
  refuses,
  async () => Buffer.from('not a bundle'),
  /not a readable gzip archive/,
);

test(
  'refuses a truncated archive',
  refuses,
  async () => {
    const bytes = await packBundle((await committedBundle()).files);
    return bytes.subarray(0, Math.floor(bytes.length / 2));
  },
  /not a readable (gzip|tar) archive/,
);

test(
  'refuses a bundle without policy.wasm',
  refuses,
  async () => {
    const files = new Map((await committedBundle()).files);
    files.delete('policy.wasm');
    return packBundle(files);
  },
  /has no \/policy\.wasm/,
);

test(
  'refuses wasm that does not load',
  refuses,
  async () => {
    const files = new Map((await committedBundle()).files);
    files.set('policy.wasm', Buffer.from('\0asm garbage'));
    return packBundle(files);
  },
  /policy\.wasm does not load/,
);

test(
  'refuses a bundle whose data.json is not JSON',
  refuses,
  async () => {
    const files = new Map((await committedBundle()).files);
    files.set('data.json', Buffer.from('{"imagegate": '));
    return packBundle(files);
  },
  /data\.json is not valid JSON/,
);

test(
  'refuses a bundle without the imagegate entrypoints (built by real OPA)',
  refuses,
  () => buildBundle({ 'p.rego': 'package other\n\nallow := true\n' }, ['other/allow']),
  /has no entrypoint imagegate\/validate\/decision \(it has: other\/allow\)/,
);

test(
  'refuses a bundle whose decisions have the wrong shape (smoke evaluation)',
  refuses,
  () =>
    buildBundle(
      {
        'v.rego': 'package imagegate.validate\n\ndecision := {"allowed": "yes"}\n',
        'm.rego': 'package imagegate.mutate\n\ndecision := {"patch": []}\n',
      },
      [VALIDATE_ENTRYPOINT, MUTATE_ENTRYPOINT],
    ),
  /fails its smoke evaluation: policy result: validate decision has no boolean "allowed"/,
);

test('a built-in the SDK lacks: its plain-object throw becomes an EngineError', async (t) => {
  const bytes = await buildBundle(
    {
      'v.rego': `package imagegate.validate

decision := {"allowed": true, "enforcement": "deny", "violations": [], "reasons": [], "warnings": [], "auditAnnotations": {}} if {
	input.name != "boom"
}

decision := {"allowed": semver.is_valid("1.0.0")} if input.name == "boom"
`,
      'm.rego': 'package imagegate.mutate\n\ndecision := {"patch": [], "messages": []}\n',
    },
    [VALIDATE_ENTRYPOINT, MUTATE_ENTRYPOINT],
  );
  const engine = await PolicyEngine.create(await readBundleArchive(bytes));
  const input = podInput(['registry.example.com/a:1']);
  input.name = 'boom';
  const error = t.throws(() => engine.validate(input), { instanceOf: EngineError });
  t.regex(error?.message ?? '', /evaluating imagegate\/validate\/decision: .*semver\.is_valid/);
  // The instance survives the throw: the next evaluation answers normally.
  input.name = 'fine';
  t.true(engine.validate(input).allowed);
});

test('input.review is left out only when the bundle manifest opts out', (t) => {
  t.true(passesReview({}));
  t.true(passesReview({ metadata: { imagegate: {} } }));
  t.true(passesReview({ metadata: { imagegate: { inputReview: 'no' } } }), 'only false opts out');
  t.false(passesReview({ metadata: { imagegate: { inputReview: false } } }));
});

test('the committed bundle opts out of input.review, so it is not copied into wasm', async (t) => {
  const engine = await PolicyEngine.create(await committedBundle());
  t.false(engine.passesReview);
  t.is(engine.memoryBytes, MAX_MEMORY_BYTES, 'the memory ceiling is reserved up front');
});

test('a bundle that does not opt out gets input.review', async (t) => {
  const bytes = await buildBundle(
    {
      'v.rego': `package imagegate.validate

decision := {"allowed": input.review.dryRun == false, "enforcement": "deny", "violations": [], "reasons": [], "warnings": [], "auditAnnotations": {}} if {
	input.review.dryRun == false
} else := {"allowed": true, "enforcement": "deny", "violations": [], "reasons": [], "warnings": [], "auditAnnotations": {"review": "missing"}}
`,
      'm.rego': 'package imagegate.mutate\n\ndecision := {"patch": [], "messages": []}\n',
    },
    [VALIDATE_ENTRYPOINT, MUTATE_ENTRYPOINT],
  );
  const engine = await PolicyEngine.create(await readBundleArchive(bytes));
  t.true(engine.passesReview);
  const input = podInput(['registry.example.com/a:1']);
  input.review = { dryRun: false };
  t.deepEqual(engine.validate(input).auditAnnotations, {});
});
