/**
 * Plain HTTPS requests to a test registry, for assertions that must not go through a
 * client under test: status, headers, raw body. `authorization(registry, scope)` logs in
 * as the registry's user: Basic for htpasswd, a token from its token server for token auth.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { request } from 'node:https';
import type { TestRegistry } from './registry.ts';

export interface RegistryResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  /** The body parsed as JSON; undefined when it is not JSON. */
  readonly json: unknown;
}

export const MEDIA_TYPES = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
} as const;

export const ACCEPT_MANIFESTS = Object.values(MEDIA_TYPES).join(', ');

export function https(
  target: { readonly host: string; readonly ca: string },
  path: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<RegistryResponse> {
  const [hostname, port] = target.host.split(':');
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: hostname,
        port,
        path,
        method: options.method ?? 'GET',
        headers: options.headers,
        ca: target.ca,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          let json: unknown;
          try {
            json = JSON.parse(body.toString('utf8')) as unknown;
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json });
        });
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

const basic = (username: string, password: string) =>
  `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;

/** A token from the registry's token server, as a client gets one (GET with Basic). */
export async function fetchToken(
  registry: Pick<TestRegistry, 'tokenServer' | 'ca'>,
  scopes: readonly string[],
  credentials: { username: string; password: string } | undefined,
): Promise<RegistryResponse> {
  const server = registry.tokenServer;
  if (server === undefined) throw new TypeError('fetchToken: the registry has no token server');
  const realm = new URL(server.realm);
  realm.searchParams.set('service', server.service);
  for (const scope of scopes) realm.searchParams.append('scope', scope);
  return https({ host: realm.host, ca: registry.ca }, `${realm.pathname}${realm.search}`, {
    headers:
      credentials === undefined
        ? {}
        : { Authorization: basic(credentials.username, credentials.password) },
  });
}

/** The Authorization header the registry's user sends for `scope` (none without auth). */
export async function authorization(
  registry: Pick<TestRegistry, 'auth' | 'username' | 'password' | 'tokenServer' | 'ca'>,
  scope: string,
): Promise<Record<string, string>> {
  const { username, password } = registry;
  if (registry.auth === 'none' || username === undefined || password === undefined) return {};
  if (registry.auth === 'htpasswd') return { Authorization: basic(username, password) };
  const answer = await fetchToken(registry, [scope], { username, password });
  const token = (answer.json as { token?: unknown } | undefined)?.token;
  if (answer.status !== 200 || typeof token !== 'string') {
    throw new Error(`token server: ${answer.status} ${answer.body.toString()}`);
  }
  return { Authorization: `Bearer ${token}` };
}

/** GET with the user's credentials for `repository:<repo>:pull`. */
export async function pull(
  registry: Pick<TestRegistry, 'host' | 'ca' | 'auth' | 'username' | 'password' | 'tokenServer'>,
  repo: string,
  path: string,
  accept = ACCEPT_MANIFESTS,
): Promise<RegistryResponse> {
  const auth = await authorization(registry, `repository:${repo}:pull`);
  return https(registry, `/v2/${repo}/${path}`, { headers: { Accept: accept, ...auth } });
}
