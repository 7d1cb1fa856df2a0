/**
 * The registries a configuration names: the only hosts the gateway contacts for registry
 * facts (SPEC "Registries"). A pod spec chooses its images, and so would choose the hosts
 * the gateway calls (the cloud metadata address, the API server, a kubelet, a loopback
 * port); the configuration's sources are what an operator chose.
 */
import type { RegistrySettings } from '../registry/addresses.ts';
import { isRecord, type JsonObject } from '../shared/json.ts';

/** Docker Hub's names, folded to the one references use. */
const HUB = new Set([
  'docker.io',
  'index.docker.io',
  'registry-1.docker.io',
  'registry.hub.docker.com',
]);

/** The registry of a source ("Registry.Example.com/prod" → "registry.example.com"). */
export function registryOfSource(source: string): string | undefined {
  const host = source.trim().split('/')[0]?.toLowerCase() ?? '';
  if (host === '' || /[*?[\]{}]/.test(host)) return undefined;
  return HUB.has(host) ? 'docker.io' : host;
}

function sourcesOf(config: JsonObject): string[] {
  const strings = (value: unknown) =>
    Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
  const sources = [...strings(config.trustedRegistries)];
  if (isRecord(config.mirrors)) {
    for (const [source, target] of Object.entries(config.mirrors)) {
      sources.push(source);
      if (typeof target === 'string') sources.push(target);
    }
  }
  if (typeof config.rewriteRegistry === 'string') sources.push(config.rewriteRegistry);
  if (Array.isArray(config.signatures)) {
    for (const entry of config.signatures)
      if (isRecord(entry)) sources.push(...strings(entry.images));
  }
  return sources;
}

const needsFacts = (config: JsonObject) =>
  config.pinDigests === 'pods' ||
  config.pinDigests === 'all' ||
  (Array.isArray(config.signatures) && config.signatures.length > 0);

/**
 * The registries of every source in the configuration in force and its namespace
 * overrides, when anything needs registry facts; empty otherwise (nothing is contacted).
 */
export function registryNames(config: JsonObject): ReadonlySet<string> {
  const overrides = isRecord(config.namespaces)
    ? Object.values(config.namespaces).filter(isRecord)
    : [];
  const all = [config, ...overrides];
  if (!all.some(needsFacts)) return new Set();
  const names = new Set<string>();
  for (const part of all) {
    for (const source of sourcesOf(part)) {
      const registry = registryOfSource(source);
      if (registry !== undefined) names.add(registry);
    }
  }
  return names;
}

/**
 * What `registries` says of each registry (its network, its auth hosts), keyed as image
 * references name registries (lower case, Docker Hub as docker.io).
 */
export function registrySettings(config: JsonObject): ReadonlyMap<string, RegistrySettings> {
  const settings = new Map<string, RegistrySettings>();
  if (!isRecord(config.registries)) return settings;
  for (const [name, value] of Object.entries(config.registries)) {
    const registry = registryOfSource(name);
    if (registry === undefined || !isRecord(value)) continue;
    const authHosts = Array.isArray(value.authHosts)
      ? value.authHosts.filter((h): h is string => typeof h === 'string')
      : [];
    settings.set(registry, {
      network: value.network === 'private' ? 'private' : 'public',
      authHosts,
    });
  }
  return settings;
}
