/**
 * Policy configuration (SPEC "Configuration"): YAML or JSON, validated here so a typo is
 * a clear error at load time instead of a policy that silently does something else.
 */
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { parse as parseYaml } from 'yaml';
import { classify } from '../registry/addresses.ts';
import { FULCIO_EXTENSIONS, wholePattern } from '../registry/sigstore/identities.ts';
import { REQUIREMENTS } from '../registry/sigstore/requirements.ts';
import { describeThrown } from '../shared/describe-thrown.ts';
import { isRecord, type JsonObject } from '../shared/json.ts';
import { ConfigError } from './config-error.ts';
import { globProblem } from './image-globs.ts';

export type PolicyConfig = JsonObject;

type Check = (value: unknown, at: string) => void;

const HOST =
  /^(?:localhost|\[[0-9a-fA-F:.]+\]|[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*)(?::[0-9]{1,5})?$/;
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DNS_SUBDOMAIN = /^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$/;
const NAMESPACE_GLOB = /^[a-z0-9*?](?:[-a-z0-9*?]*)$/;

function fail(at: string, message: string): never {
  throw new ConfigError(`${at}: ${message}`);
}

/** A trusted source: a registry host, optionally followed by a repository prefix. */
export function sourceProblem(source: string): string | undefined {
  const [host = '', ...path] = source.replace(/\/$/, '').split('/');
  const hostLike = host === 'localhost' || host.includes('.') || host.includes(':');
  if (!hostLike || !HOST.test(host)) {
    return `${JSON.stringify(source)} does not start with a registry host (like registry.example.com or localhost:5000)`;
  }
  const bad = path.find((component) => !PATH_COMPONENT.test(component));
  if (bad !== undefined) {
    return `${JSON.stringify(source)} has an invalid repository path component ${JSON.stringify(bad)}`;
  }
  return undefined;
}

const isString: Check = (v, at) => {
  if (typeof v !== 'string' || v === '') fail(at, 'must be a non-empty string');
};
const isBoolean: Check = (v, at) => {
  if (typeof v !== 'boolean') fail(at, 'must be true or false');
};
const nullable =
  (check: Check): Check =>
  (v, at) => {
    if (v !== null) check(v, at);
  };
const oneOf =
  (...allowed: string[]): Check =>
  (v, at) => {
    if (typeof v !== 'string' || !allowed.includes(v))
      fail(at, `must be one of ${allowed.join(', ')}`);
  };
const listOf =
  (check: Check): Check =>
  (v, at) => {
    if (!Array.isArray(v)) fail(at, 'must be a list');
    for (const [i, item] of v.entries()) check(item, `${at}[${i}]`);
  };
const positiveInteger =
  (max: number): Check =>
  (v, at) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) {
      fail(at, `must be a whole number from 1 to ${max}`);
    }
  };
const registrySource: Check = (v, at) => {
  isString(v, at);
  const problem = sourceProblem(v as string);
  if (problem !== undefined) fail(at, problem);
};
const sourceMap: Check = (v, at) => {
  if (!isRecord(v))
    fail(at, 'must be a map of source to target (registry, optionally with a path)');
  for (const [source, target] of Object.entries(v)) {
    const where = `${at}[${JSON.stringify(source)}]`;
    registrySource(source, where);
    registrySource(target, where);
  }
};
const TAG = /^[\w][\w.-]{0,127}$/;
const tag: Check = (v, at) => {
  if (typeof v !== 'string' || !TAG.test(v)) fail(at, `${JSON.stringify(v)} is not an image tag`);
};
/**
 * An exemption glob on the normalized reference. Its registry (before the first "/") is
 * literal, so an exemption names whose images it lets through: "*.example.com/…" or "*"
 * would also match look-alike and unknown registries.
 */
const exemptionGlob: Check = (v, at) => {
  isString(v, at);
  const glob = v as string;
  const [host = ''] = glob.split('/');
  if (!glob.includes('/') || /[*?[\]{}]/.test(host) || sourceProblem(host) !== undefined) {
    fail(
      at,
      `${JSON.stringify(glob)} must start with a registry host written out (like registry.example.com/tools/*)`,
    );
  }
  const problem = globProblem(glob);
  if (problem !== undefined) fail(at, problem);
};
const dnsName: Check = (v, at) => {
  if (typeof v !== 'string' || v.length > 253 || !DNS_SUBDOMAIN.test(v)) {
    fail(at, 'must be a lower-case DNS subdomain name');
  }
};
const namespacePattern: Check = (v, at) => {
  if (typeof v !== 'string' || v.length > 63 || !NAMESPACE_GLOB.test(v)) {
    fail(at, 'must be a namespace name or a glob of one (letters, digits, -, * and ?)');
  }
};

/**
 * A `signatures` source: as trusted sources are, with globs allowed in the repository
 * path; the registry is written out, since it is also a host the gateway will contact.
 */
const signatureSource: Check = (v, at) => {
  isString(v, at);
  const [host = '', ...path] = (v as string).replace(/\/$/, '').split('/');
  if (/[*?[\]{}]/.test(host) || sourceProblem(host) !== undefined) {
    fail(
      at,
      `${JSON.stringify(v)} must start with a registry host written out (like registry.example.com/prod)`,
    );
  }
  const problem = globProblem(v as string);
  if (problem !== undefined) fail(at, problem);
  const bad = path.find((component) => !/^[a-z0-9._*?-]+$/.test(component));
  if (bad !== undefined)
    fail(
      at,
      `${JSON.stringify(v)} has an invalid repository path component ${JSON.stringify(bad)}`,
    );
};
/** A key: inline PEM, or an absolute path (read, and watched, with the configuration). */
const signatureKey: Check = (v, at) => {
  isString(v, at);
  const key = (v as string).trim();
  if (key.startsWith('-----BEGIN')) {
    if (!/^-----BEGIN PUBLIC KEY-----[\s\S]+-----END PUBLIC KEY-----$/.test(key)) {
      fail(at, 'an inline key must be one PEM "PUBLIC KEY" block');
    }
  } else if (!key.startsWith('/')) {
    fail(
      at,
      `${JSON.stringify(v)} must be an absolute path to a PEM public key, or the PEM itself`,
    );
  }
};
/** A trust root's name: what `signatures` entries call it by. */
const trustRootName: Check = (v, at) => {
  if (typeof v !== 'string' || !/^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$/.test(v)) {
    fail(at, 'must be a trust root name (lower-case letters, digits and -)');
  }
};

/** Why a TUF mirror's URL is not one imagegate asks, if it is not. */
export function mirrorProblem(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return `${JSON.stringify(url)} is not a URL`;
  }
  const host = parsed.hostname.replace(/^\[|\]$/g, '');
  const loopback = host === 'localhost' || (isIP(host) !== 0 && classify(host) === 'loopback');
  if (parsed.protocol !== 'https:' && !(parsed.protocol === 'http:' && loopback)) {
    return `${JSON.stringify(url)} must be https:// (http:// only on a loopback address)`;
  }
  if (
    parsed.username !== '' ||
    parsed.password !== '' ||
    parsed.search !== '' ||
    parsed.hash !== ''
  ) {
    return `${JSON.stringify(url)} must carry no credentials, query or fragment`;
  }
  return undefined;
}

/** A trust root kept in a TUF repository: its mirror, the pinned root.json, the target. */
const tufRoot: Check = (v, at) => {
  checkKeys(
    v,
    {
      mirror: (url, where) => {
        isString(url, where);
        const problem = mirrorProblem(url as string);
        if (problem !== undefined) fail(where, problem);
      },
      root: (path, where) => {
        if (typeof path !== 'string' || !path.startsWith('/')) {
          fail(where, 'must be the absolute path of the TUF root.json trusted first (pinned)');
        }
      },
      target: (name, where) => {
        if (
          typeof name !== 'string' ||
          !/^[A-Za-z0-9._-]+(?:\/[A-Za-z0-9._-]+)*$/.test(name) ||
          name.split('/').some((part) => part === '.' || part === '..')
        ) {
          fail(where, 'must be a TUF target name (like trusted_root.json)');
        }
      },
    },
    at,
  );
  for (const required of ['mirror', 'root']) {
    if ((v as JsonObject)[required] === undefined) fail(at, `needs ${required}`);
  }
};

/**
 * `trustRoots`: name → absolute path of a Sigstore trusted_root.json (read, and watched),
 * or a TUF repository that keeps one (`{mirror, root, target}`).
 */
const trustRoots: Check = (v, at) => {
  if (!isRecord(v)) {
    fail(at, 'must be a map of name to the path of a trusted_root.json (or a TUF mirror)');
  }
  for (const [name, root] of Object.entries(v)) {
    const where = `${at}[${JSON.stringify(name)}]`;
    trustRootName(name, where);
    if (isRecord(root)) {
      tufRoot(root, where);
    } else if (typeof root !== 'string' || !root.startsWith('/')) {
      fail(
        where,
        'must be the absolute path of a trusted_root.json, or a TUF mirror ({mirror, root, target})',
      );
    }
  }
};

/**
 * A keyless identity: the OIDC issuer (exact or `issuerRegExp`), the certificate's subject
 * (exact, a glob with `*`/`**`, or `subjectRegExp`, always matched whole), optionally
 * Fulcio's extensions by name, and the trust root its certificates chain to.
 */
const identity: Check = (v, at) => {
  if (!isRecord(v)) fail(at, 'must be a map with issuer and subject');
  const known = ['issuer', 'issuerRegExp', 'subject', 'subjectRegExp', 'extensions', 'trustRoot'];
  for (const key of Object.keys(v)) {
    if (!known.includes(key))
      fail(at, `unknown key ${JSON.stringify(key)} (known: ${known.join(', ')})`);
  }
  for (const [exact, pattern] of [
    ['issuer', 'issuerRegExp'],
    ['subject', 'subjectRegExp'],
  ] as const) {
    if ((v[exact] === undefined) === (v[pattern] === undefined)) {
      fail(at, `needs exactly one of ${exact} and ${pattern}`);
    }
    if (v[exact] !== undefined) isString(v[exact], `${at}.${exact}`);
    if (v[pattern] !== undefined) {
      isString(v[pattern], `${at}.${pattern}`);
      try {
        wholePattern(v[pattern] as string);
      } catch (error) {
        fail(`${at}.${pattern}`, `not a regular expression: ${describeThrown(error)}`);
      }
    }
  }
  if (v.trustRoot !== undefined) trustRootName(v.trustRoot, `${at}.trustRoot`);
  if (v.extensions !== undefined) {
    if (!isRecord(v.extensions)) fail(`${at}.extensions`, 'must be a map of extension to value');
    for (const [name, value] of Object.entries(v.extensions)) {
      if (!Object.hasOwn(FULCIO_EXTENSIONS, name)) {
        fail(
          `${at}.extensions`,
          `unknown Fulcio extension ${JSON.stringify(name)} (known: ${Object.keys(FULCIO_EXTENSIONS).join(', ')})`,
        );
      }
      isString(value, `${at}.extensions.${name}`);
    }
  }
};

/** An attestation type to read: a predicate type URI or cosign's short name, optionally not required. */
const attestation: Check = (v, at) => {
  if (typeof v === 'string') return isString(v, at);
  if (!isRecord(v)) fail(at, 'must be a predicate type, or a map with type and required');
  checkKeys(v, { type: isString, required: isBoolean }, at);
  if (v.type === undefined) fail(at, 'needs a type');
};

const SIGNATURE_KEYS: Record<string, Check> = {
  images: listOf(signatureSource),
  keys: listOf(signatureKey),
  identities: listOf(identity),
  trustRoot: trustRootName,
  threshold: positiveInteger(100),
  require: oneOf(...REQUIREMENTS),
  sct: isBoolean,
  attestations: listOf(attestation),
  acceptIndexSignature: isBoolean,
};

const signatureEntry: Check = (v, at) => {
  if (!isRecord(v)) fail(at, 'must be a map with images and keys or identities');
  checkKeys(v, SIGNATURE_KEYS, at);
  if (!Array.isArray(v.images) || v.images.length === 0)
    fail(`${at}.images`, 'must be a non-empty list');
  const keys = Array.isArray(v.keys) ? v.keys.length : 0;
  const identities = Array.isArray(v.identities) ? v.identities : [];
  if (keys + identities.length === 0) {
    fail(at, 'needs keys or identities (a signature by whom?)');
  }
  for (const [i, item] of identities.entries()) {
    if (isRecord(item) && item.trustRoot === undefined && v.trustRoot === undefined) {
      fail(
        `${at}.identities[${i}]`,
        "needs a trust root (its own trustRoot, or the entry's) for its certificates to chain to",
      );
    }
  }
  if (typeof v.threshold === 'number' && v.threshold > keys + identities.length) {
    fail(
      `${at}.threshold`,
      `${v.threshold} signers cannot sign: the entry has ${keys + identities.length}`,
    );
  }
};

/** Keys a namespace override may set. */
const OVERRIDABLE: Record<string, Check> = {
  trustedRegistries: listOf(registrySource),
  denyLatest: isBoolean,
  pullPolicy: nullable(oneOf('Always', 'IfNotPresent', 'Never')),
  // A target may carry a path: Harbor proxy-cache projects, Artifactory virtual repositories.
  rewriteRegistry: nullable(registrySource),
  rewriteMode: oneOf('replace', 'prepend'),
  rewriteIgnore: listOf(registrySource),
  mirrors: sourceMap,
  imagePullSecret: nullable(dnsName),
  imagePullSecretMode: oneOf('replace', 'append'),
  defaultStorageClass: nullable(dnsName),
  enforcement: oneOf('deny', 'warn', 'dryrun'),
  breakGlass: isBoolean,
  // A namespace may lower it (a policy rule); the top-level value bounds every review.
  maxImages: positiveInteger(1_000_000),
  // Distinct registry lookups one review may ask for (docs/registries.md).
  maxLookups: positiveInteger(100_000),
  disallowedTags: listOf(tag),
  requireDigest: isBoolean,
  exemptImages: listOf(exemptionGlob),
  pinDigests: (v, at) => {
    if (v !== false && v !== 'pods' && v !== 'all') fail(at, 'must be false, pods or all');
  },
  signatures: listOf(signatureEntry),
};

/**
 * `registries`: what the operator says of some registries — which networks they live on,
 * which other hosts may receive their credentials. Top level only: which addresses the
 * gateway may reach is the cluster's decision, not a namespace's.
 */
const registrySettings: Check = (v, at) => {
  if (!isRecord(v)) fail(at, 'must be a map of registry to its settings (network, authHosts)');
  for (const [registry, settings] of Object.entries(v)) {
    const where = `${at}[${JSON.stringify(registry)}]`;
    if (registry.includes('/') || !HOST.test(registry) || sourceProblem(registry) !== undefined) {
      fail(where, 'must be a registry host, like harbor.corp.example or registry.local:5000');
    }
    checkKeys(
      settings,
      {
        network: oneOf('public', 'private'),
        authHosts: listOf((host, hostAt) => {
          if (typeof host !== 'string' || !HOST.test(host)) {
            fail(hostAt, `${JSON.stringify(host)} is not a host (like auth.example.com)`);
          }
        }),
      },
      where,
    );
  }
};

const TOP_LEVEL: Record<string, Check> = {
  ...OVERRIDABLE,
  registries: registrySettings,
  trustRoots,
  excludeNamespaces: listOf(namespacePattern),
  namespaces: (v, at) => {
    if (!isRecord(v)) fail(at, 'must be a map of namespace name or glob to overrides');
    for (const [pattern, override] of Object.entries(v)) {
      const where = `${at}[${JSON.stringify(pattern)}]`;
      namespacePattern(pattern, where);
      checkKeys(override, OVERRIDABLE, where);
    }
  },
};

function checkKeys(value: unknown, checks: Record<string, Check>, at: string): void {
  if (!isRecord(value)) fail(at || 'configuration', 'must be a map');
  for (const [key, item] of Object.entries(value)) {
    const check = Object.hasOwn(checks, key) ? checks[key] : undefined;
    if (check === undefined) {
      fail(
        at || 'configuration',
        `unknown key ${JSON.stringify(key)} (known: ${Object.keys(checks).join(', ')})`,
      );
    }
    check(item, at === '' ? key : `${at}.${key}`);
  }
}

/** Parses and validates a configuration document (YAML, of which JSON is a subset). */
export function parseConfig(text: string, source: string): PolicyConfig {
  let parsed: unknown;
  try {
    parsed = parseYaml(text, { uniqueKeys: true, maxAliasCount: 100 });
  } catch (error) {
    throw new ConfigError(`${source}: not valid YAML or JSON: ${describeThrown(error)}`, {
      cause: error,
    });
  }
  if (parsed === null || parsed === undefined) return {};
  if (!isRecord(parsed)) throw new ConfigError(`${source}: the configuration must be a map`);
  try {
    checkKeys(parsed, TOP_LEVEL, '');
  } catch (error) {
    if (error instanceof ConfigError) throw new ConfigError(`${source}: ${error.message}`);
    throw error;
  }
  return parsed;
}

export async function loadConfigFile(path: string): Promise<PolicyConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read configuration ${path}: ${describeThrown(error)}`, {
      cause: error,
    });
  }
  return parseConfig(text, path);
}
