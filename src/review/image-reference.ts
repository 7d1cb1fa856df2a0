/**
 * Container image references, parsed the way the container runtime reads them
 * (github.com/distribution/reference: Parse plus ParseNormalizedNamed), so that policies
 * judge the registry and repository that will actually be pulled, never the raw string.
 */

export interface ImageReference {
  readonly domain: string;
  readonly path: string;
  readonly name: string;
  readonly tag: string;
  readonly digest: string;
  readonly normalized: string;
  readonly familiar: string;
}

export type ParseResult =
  | { readonly ok: true; readonly reference: ImageReference }
  | { readonly ok: false; readonly error: string };

/** Serialisable shape used in the policy input (docs/policy-input.md `reference`). */
export interface PolicyReference {
  valid: boolean;
  error: string;
  domain: string;
  path: string;
  name: string;
  tag: string;
  digest: string;
  normalized: string;
  familiar: string;
}

const DEFAULT_DOMAIN = 'docker.io';
const OFFICIAL_PREFIX = 'library/';
const NAME_MAX = 255;
// No registered algorithm is longer than sha512; the cap (checked first) guarantees that a normalized reference,
// which can be longer than what was written ("a" → "docker.io/library/a"), fits INPUT_MAX.
const DIGEST_MAX = 1024;
// Checked before any pattern runs, so hostile input costs one bounded linear scan at most.
const INPUT_MAX = 2048;

// Every pattern below is anchored and has no nested repetition that can match the same text two
// ways (a separator is required between repeated runs), so backtracking stays linear.
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const HOST_LABEL = /^[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?$/;
const IPV6 = /^\[[a-fA-F0-9:]+\]$/;
const PORT = /^[0-9]+$/;
const TAG = /^\w[\w.-]{0,127}$/;
const ALGORITHM = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*$/;
const LOWER_HEX = /^[0-9a-f]*$/;
const IDENTIFIER = /^[0-9a-f]{64}$/;
// The algorithms the OCI image spec registers (descriptor.md), each with its exact encoded length
// in lower-case hex. Anything else names no content a registry serves or a runtime pulls: the
// kubelet refuses the pod (InvalidImageName), so a policy must not count it as a digest.
const REGISTERED_DIGESTS: ReadonlyMap<string, number> = new Map([
  ['sha256', 64],
  ['sha512', 128],
]);

// Offending parts are echoed in errors; cap them so a 2 KB input does not become a 2 KB reason.
const show = (s: string): string => JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s);

const fail = (error: string): ParseResult => ({ ok: false, error });

function describe(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

function checkCharacters(raw: string): string | undefined {
  for (let i = 0; i < raw.length; i++) {
    const code = raw.charCodeAt(i);
    if (code > 0x20 && code < 0x7f) continue;
    const point = raw.codePointAt(i) ?? code;
    const hex = `U+${point.toString(16).toUpperCase().padStart(4, '0')}`;
    // Non-ASCII is named separately: a look-alike ("regіstry", Cyrillic і) is the usual cause.
    return code < 0x7f
      ? `image reference contains whitespace or a control character (${hex}) at index ${i}`
      : `image reference contains a non-ASCII character ${show(String.fromCodePoint(point))} ` +
          `(${hex}) at index ${i}`;
  }
  return undefined;
}

function checkHost(host: string): string | undefined {
  let hostname = host;
  let port: string | undefined;
  if (host.startsWith('[')) {
    const close = host.indexOf(']');
    hostname = close === -1 ? host : host.slice(0, close + 1);
    const after = close === -1 ? '' : host.slice(close + 1);
    if (!IPV6.test(hostname)) return `registry host ${show(hostname)} is not a valid IPv6 address`;
    if (after !== '' && !after.startsWith(':')) {
      return `registry host ${show(host)} has characters after the IPv6 address`;
    }
    if (after !== '') port = after.slice(1);
  } else {
    const colon = host.indexOf(':');
    if (colon !== -1) {
      hostname = host.slice(0, colon);
      port = host.slice(colon + 1);
    }
    if (!hostname.split('.').every((label) => HOST_LABEL.test(label))) {
      return (
        `registry host ${show(hostname)} is not a valid host name: dot-separated labels of ` +
        'letters, digits and inner "-"'
      );
    }
  }
  if (port !== undefined && !PORT.test(port)) {
    return `registry port ${show(port)} in ${show(host)} is not valid: a port must be digits`;
  }
  return undefined;
}

/** Splits off the registry host exactly where docker does (splitDockerDomain in normalize.go). */
function splitDomain(name: string): { domain: string; remote: string } | string {
  const slash = name.indexOf('/');
  if (slash === -1) return { domain: DEFAULT_DOMAIN, remote: name };
  const first = name.slice(0, slash);
  const remote = name.slice(slash + 1);
  const lower = first.toLowerCase();
  const hostLike = first.includes('.') || first.includes(':') || lower === 'localhost';
  // Upstream also takes a first component with an upper-case letter as a host, since repository
  // paths are lower-case. We follow it, so "MyReg/app" is never read as Docker Hub's "myreg/app";
  // but a dotless, portless host other than localhost would, once lower-cased, read back as a
  // Docker Hub namespace, so it cannot be normalized and is refused.
  if (!hostLike && lower === first) return { domain: DEFAULT_DOMAIN, remote: name };
  if (!hostLike) {
    return (
      `first component ${show(first)} has upper-case letters, so it names a registry host, ` +
      'but a host without "." or ":" (other than localhost) cannot be written in lower case'
    );
  }
  const hostError = checkHost(first);
  if (hostError !== undefined) return hostError;
  // Only index.docker.io is an alias upstream. registry-1.docker.io and registry.hub.docker.com
  // stay distinct: runtimes contact them as written (bypassing docker.io mirror and auth
  // configuration), so a policy must see them as the hosts they are.
  return { domain: lower === 'index.docker.io' ? DEFAULT_DOMAIN : lower, remote };
}

function checkPath(remote: string): string | undefined {
  if (remote !== remote.toLowerCase()) {
    return `repository path ${show(remote)} is not valid: it must be lower-case`;
  }
  for (const component of remote.split('/')) {
    if (component === '') {
      return `repository path ${show(remote)} has an empty component (leading, trailing or "//")`;
    }
    if (!PATH_COMPONENT.test(component)) {
      return (
        `repository path component ${show(component)} is not valid: lower-case letters and ` +
        'digits, separated inside by ".", "_", "__" or dashes'
      );
    }
  }
  return undefined;
}

function checkDigest(digest: string): string | undefined {
  if (digest.length > DIGEST_MAX) {
    return `digest is ${digest.length} characters long; at most ${DIGEST_MAX} are allowed`;
  }
  const colon = digest.indexOf(':');
  const algorithm = colon === -1 ? digest : digest.slice(0, colon);
  const hex = colon === -1 ? '' : digest.slice(colon + 1);
  if (colon === -1 || !ALGORITHM.test(algorithm)) {
    return `digest ${show(digest)} is not valid: expected <algorithm>:<hex>, e.g. sha256:<64 hex>`;
  }
  const length = REGISTERED_DIGESTS.get(algorithm);
  if (length === undefined) {
    return (
      `digest ${show(digest)} is not valid: algorithm ${show(algorithm)} is not registered; ` +
      'a digest is sha256:<64 hex> or sha512:<128 hex>'
    );
  }
  if (hex.length !== length || !LOWER_HEX.test(hex)) {
    return `digest ${show(digest)} is not valid: ${algorithm} takes ${length} lower-case hex digits`;
  }
  return undefined;
}

function compose(name: string, tag: string, digest: string): string {
  return name + (tag === '' ? '' : `:${tag}`) + (digest === '' ? '' : `@${digest}`);
}

// As docker's FamiliarString: Docker Hub names lose "docker.io/", official images "library/".
function familiarName(domain: string, path: string): string {
  if (domain !== DEFAULT_DOMAIN) return `${domain}/${path}`;
  const short = path.startsWith(OFFICIAL_PREFIX) ? path.slice(OFFICIAL_PREFIX.length) : path;
  return short.includes('/') ? path : short;
}

export function parseImageReference(raw: unknown): ParseResult {
  if (typeof raw !== 'string') {
    return fail(`image reference must be a string, not ${describe(raw)}`);
  }
  if (raw === '') return fail('image reference is empty');
  if (raw.length > INPUT_MAX) {
    return fail(`image reference is ${raw.length} characters long; at most ${INPUT_MAX} allowed`);
  }
  const charError = checkCharacters(raw);
  if (charError !== undefined) return fail(charError);
  const scheme = raw.indexOf('://');
  if (scheme !== -1) {
    return fail(
      `image reference ${show(raw)} is not valid: it must not have a URL scheme ` +
        `(${show(raw.slice(0, scheme + 3))}); write host/repository[:tag][@digest]`,
    );
  }
  // Upstream refuses these so that an image ID is never mistaken for a Docker Hub repository.
  if (IDENTIFIER.test(raw)) {
    return fail(`image reference ${show(raw)} is a 64-hex image ID, not a repository name`);
  }

  const at = raw.indexOf('@');
  const rest = at === -1 ? raw : raw.slice(0, at);
  const digest = at === -1 ? '' : raw.slice(at + 1);
  // The tag is after the last "/", so the ":" of a registry port is never taken for one.
  const colon = rest.indexOf(':', rest.lastIndexOf('/') + 1);
  const written = colon === -1 ? rest : rest.slice(0, colon);
  const tag = colon === -1 ? '' : rest.slice(colon + 1);

  if (written === '') return fail(`image reference ${show(raw)} has no repository name`);
  const split = splitDomain(written);
  if (typeof split === 'string') return fail(split);
  const { domain, remote } = split;
  const path =
    domain === DEFAULT_DOMAIN && !remote.includes('/') ? OFFICIAL_PREFIX + remote : remote;
  const name = `${domain}/${path}`;
  // Current upstream limits only the path; earlier releases limited the whole name. The stricter
  // rule is kept so that whatever passes here passes under either.
  if (name.length > NAME_MAX) {
    return fail(`repository name is ${name.length} characters long; at most ${NAME_MAX} allowed`);
  }
  const pathError = checkPath(remote);
  if (pathError !== undefined) return fail(pathError);

  if (colon !== -1 && !TAG.test(tag)) {
    return fail(
      tag === ''
        ? `tag is empty in ${show(raw)}: remove the trailing ":" or name a tag`
        : `tag ${show(tag)} is not valid: up to 128 of letters, digits, "_", "." and "-", ` +
            'not starting with "." or "-"',
    );
  }
  if (at !== -1) {
    const digestError = checkDigest(digest);
    if (digestError !== undefined) return fail(digestError);
  }

  const reference: ImageReference = Object.freeze({
    domain,
    path,
    name,
    tag,
    digest,
    normalized: compose(name, tag, digest),
    familiar: compose(familiarName(domain, path), tag, digest),
  });
  return { ok: true, reference };
}

export function formatImageReference(ref: ImageReference): string {
  return compose(`${ref.domain}/${ref.path}`, ref.tag, ref.digest);
}

export function toPolicyReference(result: ParseResult): PolicyReference {
  // Fields are listed, not spread, so the policy input never carries anything but this shape.
  const ref = result.ok ? result.reference : undefined;
  return {
    valid: result.ok,
    error: result.ok ? '' : result.error,
    domain: ref?.domain ?? '',
    path: ref?.path ?? '',
    name: ref?.name ?? '',
    tag: ref?.tag ?? '',
    digest: ref?.digest ?? '',
    normalized: ref?.normalized ?? '',
    familiar: ref?.familiar ?? '',
  };
}
