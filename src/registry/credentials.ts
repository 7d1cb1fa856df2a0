/**
 * Registry credentials from a `kubernetes.io/dockerconfigjson` Secret's `.dockerconfigjson`
 * (`--registry-credentials`): `auths` keyed by registry (or its old URL form), each with
 * `auth` (base64 user:password) or `username` and `password`. Never logged: only which
 * registries have credentials is ever said.
 */
import { isRecord } from '../shared/json.ts';
import { RegistryError } from './registry-error.ts';

export interface Credential {
  readonly username: string;
  readonly password: string;
}

/** Docker Hub's many names, as `docker login` and the kubelet write them. */
const HUB = new Set([
  'docker.io',
  'index.docker.io',
  'registry-1.docker.io',
  'registry.hub.docker.com',
]);

/** `https://index.docker.io/v1/`, `Registry.Example.com/` → the registry as references name it. */
export function registryKey(key: string): string {
  const host = key
    .replace(/^[a-z]+:\/\//i, '')
    .replace(/\/.*$/, '')
    .toLowerCase();
  return HUB.has(host) ? 'docker.io' : host;
}

export type Credentials = ReadonlyMap<string, Credential>;

/** Parses the file; a malformed one is refused with what is wrong (never its content). */
export function parseDockerConfig(text: string, source: string): Credentials {
  let json: unknown;
  try {
    json = JSON.parse(text) as unknown;
  } catch {
    throw new RegistryError(`${source} is not JSON (a .dockerconfigjson is expected)`);
  }
  const auths = isRecord(json) ? json.auths : undefined;
  if (!isRecord(auths)) throw new RegistryError(`${source} has no "auths" map`);
  const out = new Map<string, Credential>();
  for (const [key, entry] of Object.entries(auths)) {
    if (!isRecord(entry))
      throw new RegistryError(`${source}: auths[${JSON.stringify(key)}] is not an object`);
    let username = typeof entry.username === 'string' ? entry.username : undefined;
    let password = typeof entry.password === 'string' ? entry.password : undefined;
    if (typeof entry.auth === 'string' && entry.auth !== '') {
      const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon < 0) {
        throw new RegistryError(
          `${source}: auths[${JSON.stringify(key)}].auth is not base64 of user:password`,
        );
      }
      username = decoded.slice(0, colon);
      password = decoded.slice(colon + 1);
    }
    if (username === undefined || password === undefined) {
      const token =
        typeof entry.identitytoken === 'string' ? ' (identitytoken is not supported)' : '';
      throw new RegistryError(
        `${source}: auths[${JSON.stringify(key)}] has no username and password${token}`,
      );
    }
    out.set(registryKey(key), { username, password });
  }
  return out;
}
