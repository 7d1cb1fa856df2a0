/**
 * An independent oracle for src/image-reference.ts: the reference grammar as
 * github.com/distribution/reference states it (regexp.go: the patterns; normalize.go:
 * ParseNormalizedNamed and splitDockerDomain; reference.go: Parse), written afresh from
 * those files rather than from the parser under test, plus the few places where the parser
 * is deliberately stricter or more lenient, each marked DELIBERATE below.
 *
 * Only acceptance is modelled, not the parts: the parser's normalization (lower-cased host,
 * index.docker.io alias) is checked by the round-trip property instead.
 */

// regexp.go, piece by piece. JavaScript and Go (RE2) agree on these: no look-around, no
// backreferences, and `\w` is ASCII [0-9A-Za-z_] in both without the `u` flag.
const ALPHANUMERIC = '[a-z0-9]+';
const SEPARATOR = '(?:[._]|__|[-]+)';
const PATH_COMPONENT = `${ALPHANUMERIC}(?:${SEPARATOR}${ALPHANUMERIC})*`;
const REMOTE_NAME = `${PATH_COMPONENT}(?:/${PATH_COMPONENT})*`;
const DOMAIN_NAME_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN_NAME = `${DOMAIN_NAME_COMPONENT}(?:\\.${DOMAIN_NAME_COMPONENT})*`;
const IPV6_ADDRESS = '\\[(?:[a-fA-F0-9:]+)\\]';
const HOST = `(?:${DOMAIN_NAME}|${IPV6_ADDRESS})`;
const DOMAIN_AND_PORT = `${HOST}(?::[0-9]+)?`;
const TAG = '[\\w][\\w.-]{0,127}';
const DIGEST = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}';
const NAME = `(?:${DOMAIN_AND_PORT}/)?${REMOTE_NAME}`;

/** Groups: 1 name, 2 tag, 3 digest. */
const REFERENCE = new RegExp(`^(${NAME})(?::(${TAG}))?(?:@(${DIGEST}))?$`);
/** Groups: 1 domain (may be unmatched), 2 path. */
const ANCHORED_NAME = new RegExp(`^(?:(${DOMAIN_AND_PORT})/)?(${REMOTE_NAME})$`);
const ANCHORED_DOMAIN = new RegExp(`^${DOMAIN_AND_PORT}$`);
const ANCHORED_REMOTE_NAME = new RegExp(`^${REMOTE_NAME}$`);
const ANCHORED_TAG = new RegExp(`^${TAG}$`);
const IDENTIFIER = /^[a-f0-9]{64}$/;

/** reference.go: RepositoryNameTotalLengthMax. */
const NAME_MAX = 255;
/**
 * What go-digest registers (crypto/sha256, crypto/sha512): fixed length, lower-case hex.
 * DELIBERATE (stricter): sha384 left out, as the OCI image spec registers only sha256 and
 * sha512; no registry serves content by any other.
 */
const REGISTERED_DIGESTS: ReadonlyMap<string, number> = new Map([
  ['sha256', 64],
  ['sha512', 128],
]);
// DELIBERATE (stricter): the parser bounds its input and digests before any pattern runs.
const INPUT_MAX = 2048;
const DIGEST_MAX = 1024;

export const grammar = {
  domain: ANCHORED_DOMAIN,
  remoteName: ANCHORED_REMOTE_NAME,
  tag: ANCHORED_TAG,
} as const;

interface Split {
  readonly domain: string;
  readonly remainder: string;
  /** The first component was taken as a registry host. */
  readonly explicit: boolean;
}

/** normalize.go splitDockerDomain, on the whole string as upstream does. */
function splitDockerDomain(s: string): Split {
  const slash = s.indexOf('/');
  if (slash === -1) return { domain: 'docker.io', remainder: `library/${s}`, explicit: false };
  const first = s.slice(0, slash);
  const rest = s.slice(slash + 1);
  let split: Split;
  if (first === 'localhost') split = { domain: first, remainder: rest, explicit: true };
  else if (first === 'index.docker.io')
    split = { domain: 'docker.io', remainder: rest, explicit: true };
  else if (/[.:]/.test(first)) split = { domain: first, remainder: rest, explicit: true };
  else if (first.toLowerCase() !== first)
    split = { domain: first, remainder: rest, explicit: true };
  else split = { domain: 'docker.io', remainder: s, explicit: false };
  if (split.domain === 'docker.io' && !split.remainder.includes('/')) {
    return { ...split, remainder: `library/${split.remainder}` };
  }
  return split;
}

/** The repository name as the parser normalizes it: host lower-cased, Docker Hub aliased. */
function normalizedName(domain: string, path: string): string {
  const lower = domain.toLowerCase();
  const host = lower === 'index.docker.io' ? 'docker.io' : lower;
  const full = host === 'docker.io' && !path.includes('/') ? `library/${path}` : path;
  return `${host}/${full}`;
}

function digestAccepted(digest: string): boolean {
  // DELIBERATE (stricter): no registered algorithm needs more; see DIGEST_MAX in the parser.
  if (digest.length > DIGEST_MAX) return false;
  const colon = digest.indexOf(':');
  const algorithm = digest.slice(0, colon);
  const encoded = digest.slice(colon + 1);
  const length = REGISTERED_DIGESTS.get(algorithm);
  // go-digest refuses an algorithm nobody registered (ErrDigestUnsupported), and so does the
  // kubelet (InvalidImageName): a digest that pins nothing must not satisfy requireDigest.
  if (length === undefined) return false;
  return encoded.length === length && /^[a-f0-9]+$/.test(encoded);
}

/**
 * True when ParseNormalizedNamed would accept `s`, adjusted by the DELIBERATE differences.
 * Also answers for strings the parser must refuse, so it can judge any generated input.
 */
export function upstreamAccepts(s: string): boolean {
  if (s === '') return false;
  if (s.length > INPUT_MAX) return false; // DELIBERATE (stricter), see INPUT_MAX
  if (IDENTIFIER.test(s)) return false;
  const { domain, remainder, explicit } = splitDockerDomain(s);
  if (explicit) {
    const first = s.slice(0, s.indexOf('/'));
    // DELIBERATE (stricter): upstream takes an upper-case first component without "." or
    // ":" ("MyReg/app") as a host; lower-cased it would read as a Docker Hub namespace, so
    // the parser refuses it instead of normalizing it into something that means otherwise.
    if (!/[.:]/.test(first) && first.toLowerCase() !== 'localhost') return false;
    // DELIBERATE (stricter): when splitDockerDomain picked a host that is not a valid domain
    // ("registry_example.com/app"), upstream's Parse falls back to reading it as a path
    // component and returns a reference with an empty domain. The parser refuses the host.
    if (!ANCHORED_DOMAIN.test(domain)) return false;
  }
  // ParseNormalizedNamed's lower-case check on the remote name is implied by the grammar.
  const match = REFERENCE.exec(`${domain}/${remainder}`);
  if (match === null) return false;
  const [, name = '', , digest] = match;
  const path = ANCHORED_NAME.exec(name)?.[2] ?? name;
  if (path.length > NAME_MAX) return false;
  // DELIBERATE (stricter): the parser applies 255 to the whole normalized name, as earlier
  // upstream releases did, so whatever it accepts passes under either rule.
  if (normalizedName(domain, path).length > NAME_MAX) return false;
  return digest === undefined || digestAccepted(digest);
}
