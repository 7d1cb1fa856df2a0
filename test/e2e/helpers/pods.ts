/**
 * Pods on the bed's real node: what the kubelet reports about them (phase, the container's
 * waiting reason, the image it runs and its digest), waiting for the outcomes scenarios
 * assert, and images built on the bed's busybox so that they run.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { getPointer, type JsonObject } from '../../../src/shared/json.ts';
import { tarBytes } from '../../helpers/bundles.ts';
import type { TestRegistry } from '../../helpers/registry.ts';
import { runTool } from '../../helpers/registry-tools.ts';
import { type Teardown, tempDir } from '../../helpers/teardown.ts';
import type { Kubectl } from './kubectl.ts';
import { eventually } from './poll.ts';

export interface PodState {
  readonly phase: string;
  /** The first container's waiting reason (ErrImagePull, ImagePullBackOff …) or "". */
  readonly waiting: string;
  readonly waitingMessage: string;
  /** The first container's image and imageID as the kubelet reports them. */
  readonly image: string;
  readonly imageID: string;
  readonly ready: boolean;
  /** The first container's termination message (what it wrote to /dev/termination-log). */
  readonly terminated: string;
  readonly exitCode: number | undefined;
}

const text = (object: unknown, pointer: string): string => {
  const value = getPointer(object, pointer);
  return typeof value === 'string' ? value : '';
};

export async function podState(
  kubectl: Kubectl,
  namespace: string,
  name: string,
): Promise<PodState> {
  const pod = await kubectl.get('pod', namespace, name);
  if (pod === undefined) throw new Error(`pod ${namespace}/${name} does not exist`);
  const status = '/status/containerStatuses/0';
  const exitCode = getPointer(pod, `${status}/state/terminated/exitCode`);
  return {
    phase: text(pod, '/status/phase'),
    waiting: text(pod, `${status}/state/waiting/reason`),
    waitingMessage: text(pod, `${status}/state/waiting/message`),
    image: text(pod, `${status}/image`),
    imageID: text(pod, `${status}/imageID`),
    ready: getPointer(pod, `${status}/ready`) === true,
    terminated: text(pod, `${status}/state/terminated/message`),
    exitCode: typeof exitCode === 'number' ? exitCode : undefined,
  };
}

/** Waits until the pod's phase is one of `phases`; fails early on a pull refusal. */
export async function podReaches(
  kubectl: Kubectl,
  namespace: string,
  name: string,
  phases: readonly string[] = ['Running'],
  timeoutMs = 90_000,
): Promise<PodState> {
  let state: PodState | undefined;
  await eventually(
    `pod ${namespace}/${name} to be ${phases.join(' or ')}`,
    async () => {
      state = await podState(kubectl, namespace, name);
      if (state.waiting === 'ErrImagePull' || state.waiting === 'ImagePullBackOff') {
        throw new Error(`pod ${namespace}/${name}: ${state.waiting}: ${state.waitingMessage}`);
      }
      return phases.includes(state.phase);
    },
    { timeoutMs, everyMs: 250 },
  );
  if (state === undefined) throw new Error('unreachable');
  return state;
}

/** Waits until the kubelet refuses the pod's image (ErrImagePull or ImagePullBackOff). */
export async function pullRefused(
  kubectl: Kubectl,
  namespace: string,
  name: string,
  timeoutMs = 90_000,
): Promise<PodState> {
  let state: PodState | undefined;
  await eventually(
    `the kubelet to refuse pod ${namespace}/${name}'s image`,
    async () => {
      state = await podState(kubectl, namespace, name);
      if (state.phase === 'Running' || state.phase === 'Succeeded') {
        throw new Error(`pod ${namespace}/${name} is ${state.phase}: its image was used`);
      }
      return state.waiting === 'ErrImagePull' || state.waiting === 'ImagePullBackOff';
    },
    { timeoutMs, everyMs: 250 },
  );
  if (state === undefined) throw new Error('unreachable');
  return state;
}

export interface RunOptions {
  readonly pullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  readonly pullSecret?: string;
  readonly command?: readonly string[];
  readonly volumes?: readonly JsonObject[];
  readonly volumeMounts?: readonly JsonObject[];
  readonly restartPolicy?: 'Always' | 'Never';
}

/** A pod with one container `app` that sleeps (or runs `command`); deleted at once. */
export function runPod(
  namespace: string,
  name: string,
  image: string,
  options: RunOptions = {},
): JsonObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels: { app: name } },
    spec: {
      terminationGracePeriodSeconds: 0,
      restartPolicy: options.restartPolicy ?? 'Always',
      containers: [
        {
          name: 'app',
          image,
          command: [...(options.command ?? ['sleep', '3600'])],
          ...(options.pullPolicy === undefined ? {} : { imagePullPolicy: options.pullPolicy }),
          ...(options.volumeMounts === undefined
            ? {}
            : { volumeMounts: [...options.volumeMounts] }),
        },
      ],
      ...(options.pullSecret === undefined
        ? {}
        : { imagePullSecrets: [{ name: options.pullSecret }] }),
      ...(options.volumes === undefined ? {} : { volumes: [...options.volumes] }),
    },
  };
}

/**
 * `repo:tag` in the registry: the bed's busybox with one more layer (a file naming the
 * image), so that it runs and its digest is its own. Returns `host/repo:tag` and the digest.
 */
export async function pushRunnable(
  t: Teardown,
  registry: Pick<TestRegistry, 'host' | 'env' | 'tools'>,
  base: string,
  repo: string,
  tag: string,
): Promise<{ reference: string; digest: string }> {
  const dir = await tempDir(t, 'imagegate-runnable-');
  const layer = join(dir, 'layer.tar');
  const reference = `${registry.host}/${repo}:${tag}`;
  await writeFile(
    layer,
    await tarBytes([{ name: 'image.txt', content: `${reference}\n`, mtime: new Date(0) }]),
  );
  // --insecure: the base comes from the bed's plain-HTTP registry on loopback.
  const out = await runTool(
    registry.tools.crane,
    ['append', '--insecure', '-b', base, '-f', layer, '-t', reference],
    registry.env,
  );
  const digest = /@(sha256:[0-9a-f]{64})\s*$/.exec(out.stdout.trim())?.[1];
  if (digest === undefined) throw new Error(`crane append printed no digest: ${out.stdout}`);
  return { reference, digest };
}

/** Manifest requests (GET or HEAD) for `repo` in a distribution registry's access log. */
export function manifestRequests(log: string, repo: string): number {
  const pattern = new RegExp(`"(GET|HEAD) /v2/${repo}/manifests/`, 'g');
  return [...log.matchAll(pattern)].length;
}
