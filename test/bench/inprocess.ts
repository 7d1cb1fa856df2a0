/**
 * In-process evaluation (docs/BENCHMARKS.md, issue §1): no HTTP, the gateway's own
 * protocol objects (src/server/protocols.ts) on the committed bundle. Prints one JSON
 * document; test/bench/run.mjs turns it into tables.
 *
 *   node --expose-gc dist/test/bench/inprocess.js [--quick]
 *
 * - latency: µs per review (narrow the review, build the input, evaluate, build the
 *   answer) for 1, 10 and 50 containers, each iteration timed with hrtime;
 * - phases: the same path split into its steps for the HTTP benchmark's body;
 * - memory per engine, engine build time (what a reload costs before its swap);
 * - growth over 1M validate reviews (RSS and heap after a forced GC every 100k).
 */
import { readFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import { readBundleFile } from '../../src/policy/bundle.ts';
import { PolicyEngine } from '../../src/policy/engine.ts';
import { validationResponse } from '../../src/review/responses.ts';
import {
  imageReviewProtocol,
  mutateProtocol,
  type Protocol,
  validateProtocol,
} from '../../src/server/protocols.ts';
import type { JsonObject } from '../../src/shared/json.ts';
import { defaultBundlePath } from '../../src/shared/paths.ts';
import { FIXTURE, imageReviewOf, podReview } from './pods.ts';

const QUICK = process.argv.includes('--quick') || process.env.BENCH_QUICK === '1';

// The engine hides its wasm instance, so every Memory the SDK creates is recorded here.
interface SizedMemory {
  readonly buffer: ArrayBuffer;
}
const memories: SizedMemory[] = [];
const wasmNamespace = Reflect.get(globalThis, 'WebAssembly') as object;
const NativeMemory = Reflect.get(wasmNamespace, 'Memory') as new (
  descriptor: unknown,
) => SizedMemory;
Reflect.set(
  wasmNamespace,
  'Memory',
  class RecordedMemory extends NativeMemory {
    constructor(descriptor: unknown) {
      super(descriptor);
      memories.push(this);
    }
  },
);

const gcFunction: unknown = Reflect.get(globalThis, 'gc');
function gc(): void {
  if (typeof gcFunction !== 'function') throw new Error('run with node --expose-gc');
  gcFunction();
  gcFunction();
}

const now = (): bigint => process.hrtime.bigint();

interface Stats {
  iterations: number;
  medianUs: number;
  p99Us: number;
  meanUs: number;
}

/** Times `fn` once per iteration after a warm-up; bounded by count and by time. */
function measure(fn: () => unknown, maxIterations: number, budgetMs: number): Stats {
  const warmEnd = Date.now() + Math.min(300, budgetMs / 5);
  for (let i = 0; i < 200 || Date.now() < warmEnd; i++) fn();
  const samples = new Float64Array(maxIterations);
  const deadline = Date.now() + budgetMs;
  let n = 0;
  while (n < maxIterations && (n < 50 || Date.now() < deadline)) {
    const start = now();
    fn();
    samples[n++] = Number(now() - start) / 1000;
  }
  const sorted = samples.subarray(0, n).sort();
  const at = (p: number) => sorted[Math.min(n - 1, Math.ceil((p / 100) * n) - 1)] ?? Number.NaN;
  return {
    iterations: n,
    medianUs: at(50),
    p99Us: at(99),
    meanUs: sorted.reduce((a, b) => a + b, 0) / n,
  };
}

function review<R>(protocol: Protocol<R>, engine: PolicyEngine, body: unknown) {
  const parsed = protocol.parse(body);
  const input = protocol.input(parsed);
  return protocol.respond(parsed, engine.decision(input, protocol.facts));
}

const bundle = await readBundleFile(defaultBundlePath());

// --- engine build time and memory per engine ---
const builds: number[] = [];
for (let i = 0; i < (QUICK ? 3 : 10); i++) {
  const start = now();
  await PolicyEngine.create(await readBundleFile(defaultBundlePath()));
  builds.push(Number(now() - start) / 1e6);
}
gc();
const engineCount = QUICK ? 5 : 20;
const before = process.memoryUsage();
const firstMemory = memories.length;
const engines: PolicyEngine[] = [];
for (let i = 0; i < engineCount; i++) engines.push(await PolicyEngine.create(bundle));
gc();
const after = process.memoryUsage();
const perEngine = (key: keyof NodeJS.MemoryUsage) => (after[key] - before[key]) / engineCount;
const wasmBytes = memories.slice(firstMemory).map((m) => m.buffer.byteLength);
engines.length = 0;
memories.length = 0; // let the measured engines' memories go before the growth run

// --- latency per review ---
const engine = await PolicyEngine.create(bundle);
const engineMemory = memories.at(-1);
/**
 * Before/after for leaving input.review out: the same bundle without the manifest's
 * opt-out, so this engine copies the whole request into the policy, as every engine did
 * before the opt-out existed.
 */
const { imagegate: _optOut, ...otherMetadata } = (bundle.manifest.metadata ?? {}) as JsonObject;
const engineWithReview = await PolicyEngine.create({
  ...bundle,
  manifest: { ...bundle.manifest, metadata: otherMetadata },
});
if (!engineWithReview.passesReview) throw new Error('the what-if engine should pass input.review');
const sizes = [1, 10, 50];
const latency: JsonObject[] = [];
for (const containers of sizes) {
  const pod = podReview(containers);
  const imageReview = imageReviewOf(pod);
  const bodyBytes = {
    admission: Buffer.byteLength(JSON.stringify(pod)),
    imagereview: Buffer.byteLength(JSON.stringify(imageReview)),
  };
  const maxIterations = QUICK ? 2000 : 20000;
  const budget = QUICK ? 250 : 2000;
  const inputOf = validateProtocol.input(validateProtocol.parse(pod));
  // The comparison only holds if passing input.review changes nothing the policy decides.
  const sameDecision = isDeepStrictEqual(
    engine.validate(inputOf),
    engineWithReview.validate(inputOf),
  );
  latency.push({
    containers,
    bodyBytes,
    inputBytes: Buffer.byteLength(JSON.stringify(inputOf)),
    validate: measure(() => review(validateProtocol, engine, pod), maxIterations, budget),
    mutate: measure(() => review(mutateProtocol, engine, pod), maxIterations, budget),
    imagereview: measure(
      () => review(imageReviewProtocol, engine, imageReview),
      maxIterations,
      budget,
    ),
    evaluate: measure(() => engine.validate(inputOf), maxIterations, budget),
    evaluateWithReview: measure(() => engineWithReview.validate(inputOf), maxIterations, budget),
    sameDecisionWithReview: sameDecision,
  });
}

// --- the HTTP body's path, step by step (validate); compact, as the API server sends it ---
const raw = Buffer.from(JSON.stringify(JSON.parse(readFileSync(FIXTURE, 'utf8'))));
const text = raw.toString('utf8');
const body: unknown = JSON.parse(text);
const parsed = validateProtocol.parse(body);
const input = validateProtocol.input(parsed);
const answer = validateProtocol.respond(parsed, engine.decision(input, 'validate'));
const decision = engine.validate(input);
const encoder = new TextEncoder();
const stepIterations = QUICK ? 2000 : 20000;
const stepBudget = QUICK ? 300 : 1500;
const step = (fn: () => unknown) => measure(fn, stepIterations, stepBudget);
const phases: Record<string, Stats> = {
  'body bytes → string (TextDecoder, fatal)': step(() =>
    new TextDecoder('utf-8', { fatal: true }).decode(raw),
  ),
  'JSON.parse(body)': step(() => JSON.parse(text)),
  'parseAdmissionReview (narrowing)': step(() => validateProtocol.parse(body)),
  'admissionInput (walk + parseImageReference)': step(() => validateProtocol.input(parsed)),
  'SDK copy-in: JSON.stringify + TextEncoder.encode of what the engine passes': step(() =>
    encoder.encode(JSON.stringify(engine.passesReview ? input : { ...input, review: undefined })),
  ),
  'SDK copy-in with input.review (before the opt-out)': step(() =>
    encoder.encode(JSON.stringify(input)),
  ),
  'engine.validate(input) (stringify, copy, opa_eval, dump, JSON.parse, narrow)': step(() =>
    engine.validate(input),
  ),
  'engine.validate(input), input.review passed (before the opt-out)': step(() =>
    engineWithReview.validate(input),
  ),
  'validationResponse (decision → AdmissionReview)': step(() =>
    validationResponse(parsed.apiVersion, parsed.request.uid, decision),
  ),
  'JSON.stringify(answer) (Koa response body)': step(() => JSON.stringify(answer.body)),
};

// --- growth over many validate reviews ---
const total = QUICK ? 20_000 : 1_000_000;
const every = total / 10;
const small = podReview(1);
const samples: JsonObject[] = [];
const sample = (evaluations: number, elapsedMs: number) => {
  gc();
  const m = process.memoryUsage();
  samples.push({
    evaluations,
    elapsedMs,
    rss: m.rss,
    heapTotal: m.heapTotal,
    heapUsed: m.heapUsed,
    external: m.external,
    arrayBuffers: m.arrayBuffers,
    wasmMemory: engineMemory?.buffer.byteLength ?? Number.NaN,
  });
};
const growthStart = Date.now();
sample(0, 0);
for (let i = 1; i <= total; i++) {
  review(validateProtocol, engine, small);
  if (i % every === 0) sample(i, Date.now() - growthStart);
}

process.stdout.write(
  `${JSON.stringify({
    quick: QUICK,
    // Whether the engine copies input.review into the policy (the bundle may opt out).
    passesReview: engine.passesReview,
    cpuS: (process.cpuUsage().user + process.cpuUsage().system) / 1e6,
    bundle: { revision: bundle.revision, wasmBytes: bundle.wasm.byteLength },
    engineBuildMs: builds,
    memoryPerEngine: {
      engines: engineCount,
      rss: perEngine('rss'),
      heapUsed: perEngine('heapUsed'),
      external: perEngine('external'),
      arrayBuffers: perEngine('arrayBuffers'),
      wasmMemoryBytes: wasmBytes,
    },
    latency,
    phases: {
      bodyBytes: raw.length,
      inputBytes: Buffer.byteLength(JSON.stringify(input)),
      inputBytesWithoutReview: Buffer.byteLength(JSON.stringify({ ...input, review: undefined })),
      resultBytes: Buffer.byteLength(JSON.stringify(answer.body)),
      steps: phases,
    },
    growth: { evaluations: total, pod: '1 container', samples },
  })}\n`,
);
