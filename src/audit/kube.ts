/**
 * The little of the Kubernetes API the audit needs, on @kubernetes/client-node's
 * KubeConfig (in-cluster service account or a kubeconfig file: certificates, tokens, exec
 * plugins) and its Watch: paged lists, watches from a resourceVersion, server-side apply
 * and delete of PolicyReports, and Leases for leader election. Objects stay plain JSON
 * (the typed models would copy every pod once more).
 */
import { HttpMethod, KubeConfig, RequestContext, Watch } from '@kubernetes/client-node';
import { fetch } from 'undici';
import { isRecord, type JsonObject } from '../shared/json.ts';

export class KubeError extends Error {
  readonly status: number;
  constructor(message: string, status: number) {
    super(message);
    this.name = 'KubeError';
    this.status = status;
  }
}

export interface ListPage {
  readonly items: JsonObject[];
  readonly resourceVersion: string;
  readonly continue: string;
}

export type WatchEvent = { type: string; object: JsonObject };

export function loadKubeConfig(kubeconfig: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  if (kubeconfig === undefined) kc.loadFromCluster();
  else kc.loadFromFile(kubeconfig);
  return kc;
}

export class Kube {
  readonly #kc: KubeConfig;
  readonly #server: string;

  constructor(kc: KubeConfig) {
    this.#kc = kc;
    const cluster = kc.getCurrentCluster();
    if (cluster === null) throw new KubeError('the kubeconfig names no current cluster', 0);
    this.#server = cluster.server.replace(/\/$/, '');
  }

  async request(
    method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
    path: string,
    options: { query?: Record<string, string>; body?: unknown; contentType?: string } = {},
  ): Promise<{ status: number; json: unknown }> {
    const url = new URL(this.#server + path);
    for (const [key, value] of Object.entries(options.query ?? {}))
      url.searchParams.set(key, value);
    const ctx = new RequestContext(url.toString(), HttpMethod[method]);
    await this.#kc.applySecurityAuthentication(ctx);
    const headers: Record<string, string> = { ...ctx.getHeaders(), accept: 'application/json' };
    if (options.body !== undefined)
      headers['content-type'] = options.contentType ?? 'application/json';
    const dispatcher = ctx.getDispatcher();
    const response = await fetch(url, {
      method,
      headers,
      ...(dispatcher === undefined ? {} : { dispatcher }),
      ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await response.text();
    let json: unknown;
    try {
      json = text === '' ? undefined : (JSON.parse(text) as unknown);
    } catch {
      json = undefined;
    }
    return { status: response.status, json };
  }

  /** One page of a list (limit objects), kind and apiVersion set on every item. */
  async list(
    path: string,
    apiVersion: string,
    kind: string,
    limit: number,
    cont: string,
  ): Promise<ListPage> {
    const query: Record<string, string> = { limit: String(limit) };
    if (cont !== '') query.continue = cont;
    const { status, json } = await this.request('GET', path, { query });
    if (status !== 200 || !isRecord(json)) throw this.#error('list', path, status, json);
    const metadata = isRecord(json.metadata) ? json.metadata : {};
    const items = Array.isArray(json.items) ? json.items.filter(isRecord) : [];
    for (const item of items) {
      item.apiVersion = apiVersion;
      item.kind = kind;
    }
    return {
      items,
      resourceVersion: typeof metadata.resourceVersion === 'string' ? metadata.resourceVersion : '',
      continue: typeof metadata.continue === 'string' ? metadata.continue : '',
    };
  }

  /**
   * Watches from resourceVersion; `done` is told when the watch ends (the server closes
   * it every few minutes, or an error). Returns what stops it.
   */
  async watch(
    path: string,
    resourceVersion: string,
    onEvent: (event: WatchEvent) => void,
    done: (error: unknown) => void,
  ): Promise<() => void> {
    const controller = await new Watch(this.#kc).watch(
      path,
      { resourceVersion, allowWatchBookmarks: true, timeoutSeconds: 300 },
      (type, object) => {
        if (isRecord(object)) onEvent({ type, object });
      },
      done,
    );
    return () => controller.abort();
  }

  /** Server-side apply (the audit owns its reports' fields). */
  async apply(path: string, object: JsonObject, fieldManager: string): Promise<void> {
    const { status, json } = await this.request('PATCH', path, {
      query: { fieldManager, force: 'true' },
      body: object,
      contentType: 'application/apply-patch+yaml',
    });
    if (status !== 200 && status !== 201) throw this.#error('apply', path, status, json);
  }

  async delete(path: string): Promise<void> {
    const { status, json } = await this.request('DELETE', path);
    if (status !== 200 && status !== 202 && status !== 404)
      throw this.#error('delete', path, status, json);
  }

  async get(path: string): Promise<JsonObject | undefined> {
    const { status, json } = await this.request('GET', path);
    if (status === 404) return undefined;
    if (status !== 200 || !isRecord(json)) throw this.#error('get', path, status, json);
    return json;
  }

  #error(what: string, path: string, status: number, json: unknown): KubeError {
    const message =
      isRecord(json) && typeof json.message === 'string' ? json.message : `HTTP ${status}`;
    return new KubeError(`${what} ${path}: ${message}`, status);
  }
}
