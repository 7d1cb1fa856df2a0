/**
 * A real registry behind a fault-injecting proxy (test/helpers/fault-proxy.ts), the real
 * gateway in front: every fault a registry can show — slow answers, resets, 5xx, 429 with
 * Retry-After, a redirect loop, an oversized body — ends in a bounded, fail-closed answer
 * whose reason names the image and the registry, and the same image is allowed again,
 * without a restart, once the registry behaves.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isRecord } from '../../src/shared/json.ts';
import { type Fault, startFaultProxy } from '../helpers/fault-proxy.ts';
import { podWithImages } from '../helpers/fixtures.ts';
import {
  admissionAnswer,
  poll,
  startTestGateway,
  Teardowns,
  tempDir,
  writeConfig,
} from '../helpers/gateway.ts';
import {
  generateKeyPair,
  pushImage,
  signImage,
  startRegistry,
  type TestRegistry,
} from '../helpers/registry.ts';
import { registryTest } from '../helpers/registry-test.ts';

const test = await registryTest('test/registry/faults');

const BUDGET_MS = 1500;
const REQUEST_TIMEOUT_MS = 700;

const teardowns = new Teardowns();
test.after.always(() => teardowns.run());
let shared: Promise<{ registry: TestRegistry; key: string; keys: string }> | undefined;

/** One registry and one key for the file; each test pushes and signs its own image. */
function bed() {
  shared ??= (async () => {
    const registry = await startRegistry(teardowns, { auth: 'none' });
    const keys = await tempDir(teardowns, 'imagegate-fault-keys-');
    const key = await generateKeyPair(keys);
    return { registry, key: key.publicKey, keys: key.privateKey };
  })();
  return shared;
}

const literal = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const faulty = test.macro<[Fault, (proxy: string) => RegExp, number?]>({
  async exec(t, fault, reason, recoverMs = 10_000) {
    const { registry, key, keys } = await bed();
    // Its own image, so no other test's cache answers for it.
    const repo = `prod/${fault.kind}`;
    const image = await pushImage(registry, repo, 'v1');
    await signImage(registry, image.reference, { privateKey: keys }, { cosign: 'v3' });
    const proxy = await startFaultProxy(t, registry);
    const dir = await tempDir(t, 'imagegate-fault-ca-');
    await writeFile(join(dir, 'proxy-ca.crt'), proxy.ca);
    const config = await writeConfig(
      t,
      [
        `trustedRegistries: ["${proxy.host}"]`,
        'signatures:',
        `  - images: ["${proxy.host}/prod"]`,
        `    keys: [${key}]`,
      ].join('\n'),
    );
    const gateway = await startTestGateway(t, {
      config,
      registry: {
        ca: [join(dir, 'proxy-ca.crt')],
        budgetMs: BUDGET_MS,
        requestTimeoutMs: REQUEST_TIMEOUT_MS,
      },
    });
    const raw = `${proxy.host}/${repo}:v1`;
    const review = async () => {
      const { response } = admissionAnswer(
        await gateway.post('/v1/validate', podWithImages([raw], { names: ['app'] })),
      );
      const status = isRecord(response.status) ? response.status : {};
      return { allowed: response.allowed === true, message: String(status.message ?? '') };
    };

    proxy.set(fault);
    const started = performance.now();
    const denied = await review();
    const tookMs = performance.now() - started;
    t.false(denied.allowed);
    t.true(
      denied.message.startsWith(
        `container "app" (containers[0]) image "${raw}": signature required (${proxy.host}/prod): `,
      ),
      denied.message,
    );
    t.regex(denied.message, reason(literal(proxy.host)));
    // Bounded: never past the budget by more than one request's timeout and the answer.
    t.true(tookMs < BUDGET_MS + REQUEST_TIMEOUT_MS + 2000, `${tookMs} ms`);
    t.true(proxy.received.some((r) => r.fault === fault.kind));

    proxy.set({ kind: 'none' });
    await poll(async () => (await review()).allowed || undefined, `${raw} allowed again`, {
      tries: Math.ceil(recoverMs / 100),
      everyMs: 100,
    });
    t.pass();
  },
  title: (_provided, fault) => `a registry fault (${fault.kind}): refused with why, then recovered`,
});

test(
  faulty,
  { kind: 'slow', delayMs: 10_000 },
  (host) =>
    new RegExp(
      `registry ${host} (did not answer within the review's ${BUDGET_MS} ms budget|unreachable: no answer within ${REQUEST_TIMEOUT_MS} ms)$`,
    ),
);
test(
  faulty,
  { kind: 'reset' },
  (host) =>
    new RegExp(`registry ${host} unreachable: .*(ECONNRESET|other side closed|socket)`, 'i'),
);
test(
  faulty,
  { kind: 'status', status: 503 },
  (host) => new RegExp(`${host} answered 503 for prod/status:v1$`),
);
test(
  faulty,
  { kind: 'rate-limit', retryAfterS: 1 },
  (host) => new RegExp(`${host} is rate limiting \\(429\\): not asked again for 1 s$`),
  5000,
);
test(
  faulty,
  { kind: 'redirect-loop' },
  (host) =>
    new RegExp(
      `${host} redirected to ${host} beyond the \\d redirects imagegate follows for /v2/prod/`,
    ),
);
test(
  faulty,
  { kind: 'oversized', bytes: 6 * 1024 * 1024 },
  (host) => new RegExp(`${host} sent more than \\d+ bytes for /v2/prod/oversized/`),
);
