/**
 * The pinned kubectl against the e2e control plane. Every scenario drives the API server
 * through it, as a user would, and asserts on what kubectl prints or the server stored.
 */
import { spawn } from 'node:child_process';
import { isRecord, type JsonObject } from '../../../src/shared/json.ts';

export interface KubectlResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export class Kubectl {
  readonly #binary: string;
  readonly #flags: readonly string[];

  constructor(binary: string, kubeconfig: string, cacheDir: string) {
    this.#binary = binary;
    // Never the user's ~/.kube: its own kubeconfig and discovery cache.
    this.#flags = [
      `--kubeconfig=${kubeconfig}`,
      `--cache-dir=${cacheDir}`,
      '--request-timeout=30s',
    ];
  }

  run(args: readonly string[], stdin = ''): Promise<KubectlResult> {
    return new Promise((resolve, reject) => {
      const child = spawn(this.#binary, [...this.#flags, ...args]);
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        stdout += d;
      });
      child.stderr.setEncoding('utf8').on('data', (d: string) => {
        stderr += d;
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
      child.stdin.end(stdin);
    });
  }

  /** Runs and fails loudly unless kubectl exits 0. */
  async must(args: readonly string[], stdin = ''): Promise<KubectlResult> {
    const result = await this.run(args, stdin);
    if (result.code !== 0) {
      throw new Error(`kubectl ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
    }
    return result;
  }

  /** `kubectl create -f -` with the object as JSON (plus flags such as --dry-run=server). */
  create(object: JsonObject, ...flags: string[]): Promise<KubectlResult> {
    return this.run(['create', '-f', '-', ...flags], JSON.stringify(object));
  }

  /** The stored object, or undefined when the API server has none by that name. */
  async get(resource: string, namespace: string, name: string): Promise<JsonObject | undefined> {
    const result = await this.run(['get', resource, name, '-n', namespace, '-o', 'json']);
    if (result.code !== 0 && result.stderr.includes('(NotFound)')) return undefined;
    if (result.code !== 0) throw new Error(`kubectl get ${resource} ${name}: ${result.stderr}`);
    const object: unknown = JSON.parse(result.stdout);
    if (!isRecord(object)) throw new TypeError(`kubectl get ${resource} ${name}: not an object`);
    return object;
  }
}

export interface ContainerSpec {
  readonly name: string;
  readonly image: string;
  readonly imagePullPolicy?: string;
}

export interface PodOptions {
  readonly containers: readonly ContainerSpec[];
  readonly initContainers?: readonly ContainerSpec[];
  readonly annotations?: Readonly<Record<string, string>>;
}

export function pod(namespace: string, name: string, options: PodOptions): JsonObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace,
      ...(options.annotations === undefined ? {} : { annotations: { ...options.annotations } }),
    },
    spec: {
      containers: options.containers.map((c) => ({ ...c })),
      ...(options.initContainers === undefined
        ? {}
        : { initContainers: options.initContainers.map((c) => ({ ...c })) }),
    },
  };
}

/** A pod with one container, `web`, running `image`. */
export function podWith(namespace: string, name: string, image: string): JsonObject {
  return pod(namespace, name, { containers: [{ name: 'web', image }] });
}
