/**
 * Faults inside the wasm instance of a running gateway: a policy (built by the real OPA
 * CLI) that throws for some inputs — a built-in the SDK lacks, a complete rule with two
 * values — and reviews that exhaust the engine's memory ceiling (256 MiB, then the large
 * lane's 768 MiB). Those reviews must fail closed (denied, 500 inside, logged, counted) and the SAME engine must go on
 * deciding the next review correctly. A bundle that throws or runs out of memory on the
 * smoke input must be refused at reload while the last good one keeps serving.
 */
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import type { PolicyEngine } from '../../src/policy/engine.ts';
import {
  MAX_MEMORY_BYTES,
  MUTATE_ENTRYPOINT,
  VALIDATE_ENTRYPOINT,
} from '../../src/policy/engine.ts';
import type { JsonObject } from '../../src/shared/json.ts';
import { buildBundle, committedBundleBytes } from '../helpers/bundles.ts';
import {
  admissionAnswer,
  poll,
  record,
  startTestGateway,
  type Teardown,
  Teardowns,
  type TestGateway,
  tempDir,
} from '../helpers/gateway.ts';

const INTERVAL_MS = 50;
const REFUSED_MSG = 'policy reload refused; the previous policy keeps serving';
const ALLOWED = `{"allowed": true, "enforcement": "deny", "exempt": false, "breakGlass": false,
	"violations": [], "reasons": [], "warnings": [], "auditAnnotations": {}}`;

/** Allocates about 2 GiB of strings: past a thread's 256 MiB and the large lane's 768 MiB. */
const ALLOCATE = `kib := concat("", [s | some _ in numbers.range(1, 1024); s := "x"])

mib := concat("", [kib | some _ in numbers.range(1, 1024)])

big := [concat("", [mib, format_int(i, 10)]) | some i in numbers.range(1, 2000)]
`;

/**
 * Decides normally (allowed, or denied for "deny-me"), but throws for some names and runs
 * out of memory for "oom".
 */
const THROWING_REGO = {
  'v.rego': `package imagegate.validate

${ALLOCATE}
default n := 1

# Two values for one complete rule: the wasm aborts with "var assignment conflict".
n := 1 if input.name == "conflict"

n := 2 if input.name == "conflict"

broken if input.name == "boom"

broken if input.namespace == "boom"

denied if input.name == "deny-me"

oom if input.name == "oom"

decision := ${ALLOWED} if {
	not broken
	not denied
	not oom
	n == 1
}

decision := {"allowed": count(big) > 0} if oom

decision := {"allowed": false, "enforcement": "deny", "exempt": false, "breakGlass": false,
	"violations": [{"rule": "test"}], "reasons": ["deny-me is denied"], "warnings": [],
	"auditAnnotations": {}} if denied

# semver.is_valid is not in the JavaScript SDK: the call throws a plain object.
decision := {"allowed": semver.is_valid("1.0.0")} if broken
`,
  'm.rego': `package imagegate.mutate

decision := {"patch": [], "messages": []} if input.name != "boom"

decision := {"patch": [], "messages": [], "valid": semver.is_valid("1.0.0")} if input.name == "boom"
`,
};

/** Throws on every input, the smoke input included. */
const SMOKE_THROWS_REGO = {
  'v.rego': 'package imagegate.validate\n\ndecision := {"allowed": semver.is_valid("1.0.0")}\n',
  'm.rego': 'package imagegate.mutate\n\ndecision := {"patch": [], "messages": []}\n',
};

/** Runs out of memory on every input, the smoke input included. */
const SMOKE_OOM_REGO = {
  'v.rego': `package imagegate.validate

${ALLOCATE}
decision := ${ALLOWED} if count(big) > 0
`,
  'm.rego': 'package imagegate.mutate\n\ndecision := {"patch": [], "messages": []}\n',
};

const ENTRYPOINTS = [VALIDATE_ENTRYPOINT, MUTATE_ENTRYPOINT];

function pod(name: string, images: readonly string[], namespace = 'shop'): JsonObject {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: `uid-${name}-${images.length}`,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace,
      operation: 'CREATE',
      name,
      object: {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace },
        spec: {
          containers: images.map((image, i) => ({
            name: `c${i}`,
            image,
            imagePullPolicy: 'Always',
          })),
        },
      },
    },
  };
}

const TRUSTED = ['registry.example.com/shop/api:2.3.1'];
const UNTRUSTED = ['nginx:1.27'];

interface Answer {
  readonly allowed: boolean;
  readonly code: unknown;
  readonly message: string;
}

async function decide(gw: TestGateway, path: string, review: JsonObject): Promise<Answer> {
  const { response } = admissionAnswer(await gw.post(path, review));
  if (typeof response.allowed !== 'boolean') throw new TypeError('no boolean allowed');
  const status = response.status === undefined ? {} : record(response.status, 'status');
  return { allowed: response.allowed, code: status.code, message: String(status.message) };
}

async function metric(gw: TestGateway, pattern: string): Promise<number> {
  const metrics = (await gw.health('/metrics')).text;
  return Number(new RegExp(`^${pattern} (\\d+)$`, 'm').exec(metrics)?.[1] ?? 0);
}

const reloads = (gw: TestGateway, result: 'ok' | 'refused') =>
  metric(gw, `imagegate_reloads_total\\{kind="policy",result="${result}"\\}`);

const errors = (gw: TestGateway, endpoint: string) =>
  metric(gw, `imagegate_requests_total\\{endpoint="${endpoint}",outcome="error"\\}`);

interface Setup {
  readonly gw: TestGateway;
  install(bytes: Buffer): Promise<void>;
}

/** A gateway on the committed bundle, in a file replaced atomically on `install`. */
async function setUp(t: Teardown, config?: string): Promise<Setup> {
  const path = join(await tempDir(t, 'imagegate-fault-wasm-'), 'imagegate.tar.gz');
  await writeFile(path, await committedBundleBytes());
  const gw = await startTestGateway(t, {
    bundle: path,
    watchIntervalMs: INTERVAL_MS,
    ...(config === undefined ? {} : { config }),
  });
  return {
    gw,
    async install(bytes) {
      await writeFile(`${path}.tmp`, bytes);
      await rename(`${path}.tmp`, path);
    },
  };
}

test('a policy that throws for some inputs: those fail closed, the rest are decided', async (t) => {
  const { gw, install } = await setUp(t);
  await install(await buildBundle(THROWING_REGO, ENTRYPOINTS));
  await poll(
    async () => ((await reloads(gw, 'ok')) === 1 ? true : undefined),
    'the throwing bundle (its smoke input does not throw) to load',
  );
  const engine = gw.gateway.policy.engine;
  t.is(engine?.revision, 'test');

  const rounds = 10;
  for (let i = 0; i < rounds; i++) {
    const boom = await decide(gw, '/v1/validate', pod('boom', TRUSTED));
    t.false(boom.allowed);
    t.is(boom.code, 500);
    t.regex(boom.message, /semver\.is_valid/);
    const conflict = await decide(gw, '/v1/validate', pod('conflict', TRUSTED));
    t.false(conflict.allowed);
    t.is(conflict.code, 500);
    t.regex(conflict.message, /var assignment conflict/);
    const mutate = await decide(gw, '/v1/mutate', pod('boom', TRUSTED));
    t.false(mutate.allowed);
    t.is(mutate.code, 500);
    const image = await gw.post('/v1/imagereview', {
      apiVersion: 'imagepolicy.k8s.io/v1alpha1',
      kind: 'ImageReview',
      spec: { containers: [{ image: TRUSTED[0] }], namespace: 'boom' },
    });
    t.false(record(record(image.body, 'answer').status, 'status').allowed);
    // The same instance, right after each throw:
    t.true((await decide(gw, '/v1/validate', pod('fine', TRUSTED))).allowed);
    const denied = await decide(gw, '/v1/validate', pod('deny-me', TRUSTED));
    t.false(denied.allowed);
    t.is(denied.code, 403);
    t.regex(denied.message, /deny-me is denied/);
  }
  t.is(gw.gateway.policy.engine, engine, 'no reload, no new engine: the instance survived');
  t.is(await errors(gw, 'validate'), rounds * 2);
  t.is(await errors(gw, 'mutate'), rounds);
  t.is(await errors(gw, 'imagereview'), rounds);
  const failed = gw.logs.messages('decision').filter((line) => line.level === 50);
  t.is(failed.length, rounds * 4);
  t.true(failed.every((line) => typeof line.error === 'string' && line.error !== ''));
  const ready = await gw.health('/readyz');
  t.is(ready.status, 200);
  t.true(record(record(ready.body, '/readyz').lastLoad, 'lastLoad').ok);
});

const refusedAtLoad = test.macro({
  async exec(t, sources: Record<string, string>, error: RegExp) {
    const { gw, install } = await setUp(t);
    const serving = gw.gateway.policy.engine;
    await install(await buildBundle(sources, ENTRYPOINTS));
    const ready = await poll(async () => {
      const body = record((await gw.health('/readyz')).body, '/readyz');
      return record(body.lastLoad, 'lastLoad').ok === false ? body : undefined;
    }, 'the bundle to be refused');
    t.true(ready.ready);
    t.regex(String(record(ready.lastLoad, 'lastLoad').error), error);
    t.is(gw.gateway.policy.engine, serving);
    t.is(await reloads(gw, 'refused'), 1);
    t.regex(String(gw.logs.messages(REFUSED_MSG)[0]?.error), error);
    // The committed policy still decides: nginx denied, the trusted image allowed.
    t.false((await decide(gw, '/v1/validate', pod('web', UNTRUSTED))).allowed);
    t.true((await decide(gw, '/v1/validate', pod('api', TRUSTED))).allowed);

    await install(await committedBundleBytes());
    await poll(
      async () => ((await reloads(gw, 'ok')) === 1 ? true : undefined),
      'the committed bundle again',
    );
  },
  title: (title = '') => `a bundle that ${title} on the smoke input is refused at reload`,
});

test('throws', refusedAtLoad, SMOKE_THROWS_REGO, /fails its smoke evaluation: .*semver\.is_valid/);

test(
  'runs out of wasm memory',
  refusedAtLoad,
  SMOKE_OOM_REGO,
  /fails its smoke evaluation: .*opa_malloc: failed/,
);

test('a review that runs the policy out of memory fails closed; the engine goes on', async (t) => {
  const { gw, install } = await setUp(t);
  await install(await buildBundle(THROWING_REGO, ENTRYPOINTS));
  await poll(
    async () => ((await reloads(gw, 'ok')) === 1 ? true : undefined),
    'the bundle that runs out of memory for "oom" to load',
  );
  const engine = gw.gateway.policy.engine;
  const many = Array.from({ length: 500 }, (_, i) => `registry.example.com/app${i}:1`);
  for (let i = 0; i < 3; i++) {
    const oom = await decide(gw, '/v1/validate', pod('oom', TRUSTED));
    t.false(oom.allowed);
    t.is(oom.code, 500);
    t.regex(oom.message, /needs more than the policy's 768 MiB of memory \(opa_malloc: failed\)/);
    // The same instance, its memory now at the ceiling, decides the next reviews.
    t.true((await decide(gw, '/v1/validate', pod('fine', TRUSTED))).allowed);
    t.true((await decide(gw, '/v1/validate', pod('fine', many))).allowed);
    const denied = await decide(gw, '/v1/validate', pod('deny-me', TRUSTED));
    t.false(denied.allowed);
    t.is(denied.code, 403);
  }
  t.is(gw.gateway.policy.engine, engine);
  t.is(await errors(gw, 'validate'), 3);
  const failed = gw.logs.messages('decision').filter((line) => line.level === 50);
  t.is(failed.length, 3);
  t.regex(String(failed[0]?.error), /opa_malloc: failed/);
  t.is((await gw.health('/readyz')).status, 200);
});

interface HugeRun {
  readonly bytes: number;
  readonly validate: Answer;
  readonly mutate: JsonObject;
  readonly after: readonly Answer[];
  readonly errors: number;
  readonly sameEngine: boolean;
  readonly engine: PolicyEngine | undefined;
  readonly memoryBefore: number;
}

/**
 * The largest review the default limits accept, as docs/sizing.md measures it: maxImages
 * (32,768) containers of untrusted 100-character images, 3.5 MiB of JSON (the body limit is
 * 4 MiB). Its validate needs about 615 MiB of wasm memory: a thread's engine (256 MiB) runs
 * out, and the pool's large lane (768 MiB) judges it. Run once, shared by the tests below.
 */
let hugeRun: Promise<HugeRun> | undefined;
function runHuge(t: Teardown): Promise<HugeRun> {
  hugeRun ??= (async () => {
    const { gw } = await setUp(t);
    const engine = gw.gateway.policy.engine;
    const memoryBefore = engine?.memoryBytes ?? 0;
    const review = pod('huge', []);
    const object = record(record(review.request, 'request').object, 'object');
    object.spec = {
      containers: Array.from({ length: 32_768 }, (_, i) => ({
        name: `c${i}`,
        image: `evil.example.net/${String(i).padStart(5, '0')}/${'a'.repeat(70)}:1.0`,
      })),
    };
    const validate = await decide(gw, '/v1/validate', review);
    const mutate = record(admissionAnswer(await gw.post('/v1/mutate', review)).response, 'mutate');
    const after = [
      await decide(gw, '/v1/validate', pod('api', TRUSTED)),
      await decide(gw, '/v1/validate', pod('web', UNTRUSTED)),
    ];
    return {
      bytes: Buffer.byteLength(JSON.stringify(review)),
      validate,
      mutate,
      after,
      errors: (await errors(gw, 'validate')) + (await errors(gw, 'mutate')),
      sameEngine: gw.gateway.policy.engine === engine,
      engine,
      memoryBefore,
    };
  })();
  return hugeRun;
}

const shared = new Teardowns();
test.after.always(() => shared.run());

// Before the large lane, this review (and every one needing more than 256 MiB) was answered
// with a 500 inside the review: "needs more than the policy's 256 MiB of memory".
test('the largest review the limits accept is judged, not failed: the large lane decides it', async (t) => {
  const run = await runHuge(shared);
  t.true(run.bytes < 4 * 2 ** 20, `${run.bytes} bytes`);
  t.false(run.validate.allowed);
  t.is(run.validate.code, 403);
  t.regex(run.validate.message, /evil\.example\.net\/00000\//);
  t.regex(run.validate.message, /and \d+ more/);
  t.true(run.mutate.allowed);
  t.is(run.mutate.patchType, 'JSONPatch');
  t.is(run.errors, 0);
  t.true(run.after[0]?.allowed);
  t.false(run.after[1]?.allowed);
  t.is(run.after[1]?.code, 403);
  t.true(run.sameEngine);
});

// A fresh instance used to grow its memory a few pages at a time, and every grow made V8
// collect garbage: a 750 KB pod held the whole process (every review, /healthz) for 9 s.
// The engine reserves its ceiling up front (reserved pages are not resident), so a huge
// review never grows memory. Asserted on the memory size, not on a wall clock.
test('a huge review never grows the engine memory: the ceiling is reserved up front', async (t) => {
  const run = await runHuge(shared);
  const engine = run.engine;
  t.is(run.memoryBefore, MAX_MEMORY_BYTES);
  t.is(engine?.memoryBytes, run.memoryBefore);
});
