/** What the scenarios share: the per-file environment, manifests, and refusal checks. */
import type { ExecutionContext, TestFn } from 'ava';
import { isRecord, type JsonObject, stringField } from '../../../src/shared/json.ts';
import { committedBundleBytes } from '../../helpers/bundles.ts';
import { policyBundle, TRUSTED } from './cluster-files.ts';
import { type E2e, type E2eOptions, startE2e } from './environment.ts';
import { type KubectlResult, podWith } from './kubectl.ts';
import { eventually } from './poll.ts';

/** How the validating webhook's denials reach the user. */
export const WEBHOOK_DENIED =
  'admission webhook "validate.imagegate.imagegate-system.svc" denied the request: ';

/** How ImagePolicyWebhook's denials reach the user (after `pods "NAME" is forbidden: `). */
export const IMAGE_POLICY_DENIED = 'image policy webhook backend denied one or more images: ';

export const BREAK_GLASS = 'break-glass.image-policy.k8s.io/reason';

export const LATEST = 'tag "latest" is not allowed; pin a version tag or a digest';
export const UNTAGGED = 'no tag or digest (implicit "latest"); pin a version tag or a digest';

export const notTrusted = (registry: string) =>
  `registry ${registry} is not trusted (trusted: ${TRUSTED})`;

/** One violation as an AdmissionReview answer words it: container, its slot, image. */
export const inContainer = (container: string, slot: string, image: string, problem: string) =>
  `container "${container}" (${slot}) image "${image}": ${problem}`;

/** One violation as an ImageReview answer words it (it names no containers). */
export const inImage = (image: string, problem: string) => `image "${image}": ${problem}`;

/** kubectl's prefix for a refused `create -f -`. */
export const errorCreating = (reason: string) =>
  `Error from server (${reason}): error when creating "STDIN": `;

/** A sha256 digest for pinned references (the image is never pulled: no kubelet here). */
export const DIGEST = `sha256:${'0123456789abcdef'.repeat(4)}`;

/**
 * Starts the environment before the file's tests (then runs `prepare`, if given) and stops
 * it after them; the files stay (the path is logged) when a test failed. Returns the
 * accessor the tests use.
 */
export function useE2e(
  test: TestFn,
  options: E2eOptions,
  prepare?: (e2e: E2e) => Promise<void>,
): () => E2e {
  let e2e: E2e | undefined;
  let failed = false;
  test.before(async (t) => {
    e2e = await startE2e(options);
    t.log(`Kubernetes ${e2e.version}`);
    try {
      await prepare?.(e2e);
    } catch (error) {
      failed = true; // keep the files: what prepare left is the evidence
      throw error;
    }
  });
  test.afterEach.always((t) => {
    if (!t.passed) failed = true;
  });
  test.after.always(async (t) => {
    const kept = await e2e?.close(failed);
    if (kept !== undefined) t.log(`e2e files and logs kept in ${kept}`);
  });
  return () => {
    if (e2e === undefined) throw new Error('the e2e environment did not start');
    return e2e;
  };
}

/** Kind, namespace and name of a manifest, for reading it back. */
function identity(object: JsonObject): { kind: string; namespace: string; name: string } {
  const metadata = isRecord(object.metadata) ? object.metadata : {};
  const id = {
    kind: stringField(object, 'kind'),
    namespace: stringField(metadata, 'namespace'),
    name: stringField(metadata, 'name'),
  };
  if (id.kind === '' || id.namespace === '' || id.name === '') {
    throw new TypeError('a scenario manifest needs kind, metadata.namespace and metadata.name');
  }
  return id;
}

/** `kubectl create -f -` was refused with exactly this message and nothing was stored. */
export async function refusedOnCreate(
  t: ExecutionContext,
  e2e: E2e,
  object: JsonObject,
  message: string,
  reason = 'Forbidden',
): Promise<void> {
  const { kind, namespace, name } = identity(object);
  const result = await e2e.kubectl.create(object);
  t.is(result.code, 1, result.stdout);
  t.is(result.stderr.trim(), errorCreating(reason) + message);
  t.is(await e2e.kubectl.get(kind, namespace, name), undefined, `${kind} ${name} was stored`);
}

/** `kubectl create -f -` succeeded: what kubectl printed and the object as stored. */
export async function createdAndStored(
  t: ExecutionContext,
  e2e: E2e,
  object: JsonObject,
): Promise<{ result: KubectlResult; stored: JsonObject }> {
  const { kind, namespace, name } = identity(object);
  const result = await e2e.kubectl.create(object);
  t.is(result.code, 0, result.stderr);
  const found = await e2e.kubectl.get(kind, namespace, name);
  if (found === undefined) throw new Error(`${kind} ${namespace}/${name} was not stored`);
  return { result, stored: found };
}

/**
 * A server-side dry-run create: true when admitted, false when refused with `refusal` in
 * the message; any other answer (AlreadyExists, an unreachable webhook) fails the test.
 */
export async function admits(e2e: E2e, object: JsonObject, refusal: string): Promise<boolean> {
  const result = await e2e.kubectl.create(object, '--dry-run=server');
  if (result.code === 0) return true;
  if (result.stderr.includes(refusal)) return false;
  throw new Error(`unexpected answer from the API server: ${result.stderr}`);
}

/**
 * A bundle that allows :latest (the repo's Rego, denyLatest false in its data.json) is
 * swapped into the watched ConfigMap directory, then the committed one again: the API
 * server's decisions follow both ways while the same gateway process keeps running.
 */
export async function bundleSwapScenario(
  t: ExecutionContext,
  e2e: E2e,
  namespace: string,
  refusal: string,
): Promise<void> {
  const image = 'registry.example.com/app:latest';
  const probe = podWith(namespace, 'swap-probe', image);
  t.false(await admits(e2e, probe, refusal));

  await e2e.swapBundle(await policyBundle({ denyLatest: false }));
  await eventually('the API server to admit :latest', () => admits(e2e, probe, refusal));
  await createdAndStored(t, e2e, podWith(namespace, 'swap-stored', image));

  await e2e.swapBundle(await committedBundleBytes());
  await eventually('the API server to refuse :latest again', async () => {
    return !(await admits(e2e, probe, refusal));
  });

  t.true(e2e.gateway.running());
  const reloaded = () => e2e.gateway.messages('policy reloaded').map((line) => line.revision);
  await eventually('the gateway to log both reloads', async () => reloaded().length >= 2);
  const loaded = e2e.gateway.messages('policy loaded').map((line) => line.revision);
  t.is(loaded.length, 1);
  t.deepEqual(reloaded(), ['test', loaded[0]]);
}
