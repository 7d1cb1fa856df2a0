/**
 * Keyless identities: who a Fulcio certificate says signed. A configured identity names the
 * OIDC issuer (exact, or an anchored regular expression), the subject — the certificate's
 * SAN: a workflow URI, an email — exact, as a glob (`*` within a `/`-separated segment,
 * `**` across them, as everywhere else in the configuration), or as an anchored regular
 * expression, and optionally values of the extensions Fulcio writes (repository, workflow
 * ref, trigger…), each compared exactly.
 *
 * Regular expressions are always matched whole (`^(?:…)$`): @sigstore/verify and cosign
 * test a SAN pattern unanchored, so `github\.com/acme/` there admits
 * `https://github.com/acme-evil/…/github.com/acme/`; here it admits nothing but what it spells.
 */
import type { TrustMaterial } from '@sigstore/verify';

/** Fulcio's certificate extensions (OID 1.3.6.1.4.1.57264.1.N), by sigstore-go's names. */
export const FULCIO_EXTENSIONS: Readonly<Record<string, number>> = {
  githubWorkflowTrigger: 2,
  githubWorkflowSHA: 3,
  githubWorkflowName: 4,
  githubWorkflowRepository: 5,
  githubWorkflowRef: 6,
  buildSignerURI: 9,
  buildSignerDigest: 10,
  runnerEnvironment: 11,
  sourceRepositoryURI: 12,
  sourceRepositoryDigest: 13,
  sourceRepositoryRef: 14,
  sourceRepositoryIdentifier: 15,
  sourceRepositoryOwnerURI: 16,
  sourceRepositoryOwnerIdentifier: 17,
  buildConfigURI: 18,
  buildConfigDigest: 19,
  buildTrigger: 20,
  runInvocationURI: 21,
  sourceRepositoryVisibilityAtSigning: 22,
  deploymentEnvironment: 23,
};

const FULCIO_ARC = '1.3.6.1.4.1.57264.1.';
/** Extensions .1–.7 hold raw text; from .8 on Fulcio writes a DER UTF8String. */
const FIRST_DER_EXTENSION = 8;

/** An identity as the configuration writes it (validated by policy/config.ts). */
export interface IdentityConfig {
  readonly issuer?: string;
  readonly issuerRegExp?: string;
  readonly subject?: string;
  readonly subjectRegExp?: string;
  readonly extensions?: Readonly<Record<string, string>>;
  /** The trust root its certificates chain to (default: the entry's). */
  readonly trustRoot?: string;
}

/** What a verified certificate says of its signer. */
export interface CertificateIdentity {
  readonly issuer: string;
  readonly subject: string;
  /** Fulcio's extensions present in the certificate, by name. */
  readonly extensions: Readonly<Record<string, string>>;
}

export interface Identity {
  /** For messages and the facts: `subject` as written, and the issuer. */
  readonly description: string;
  readonly trustRoot: string;
  matches(identity: CertificateIdentity): boolean;
}

const escapeRegExp = (text: string) => text.replace(/[.+^${}()|[\]\\]/g, '\\$&');

/** `*` any run within a `/`-separated segment, `**` any run, `?` one character but `/`. */
export function globPattern(glob: string): RegExp {
  let source = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob.charAt(i);
    if (c === '*' && glob.charAt(i + 1) === '*') {
      source += '.*';
      i++;
    } else if (c === '*') source += '[^/]*';
    else if (c === '?') source += '[^/]';
    else source += escapeRegExp(c);
  }
  return new RegExp(`^(?:${source})$`, 'u');
}

/** A regular expression matched against the whole text. Throws SyntaxError when invalid. */
export const wholePattern = (expression: string) => new RegExp(`^(?:${expression})$`, 'u');

const isGlob = (text: string) => /[*?]/.test(text);

function textMatcher(exact: string | undefined, expression: string | undefined) {
  if (expression !== undefined) {
    const pattern = wholePattern(expression);
    return (text: string) => pattern.test(text);
  }
  if (exact !== undefined && isGlob(exact)) {
    const pattern = globPattern(exact);
    return (text: string) => pattern.test(text);
  }
  return (text: string) => text === exact;
}

export function compileIdentity(config: IdentityConfig, defaultRoot: string): Identity {
  // The issuer is never a glob: an issuer URL is one party, named exactly or by a pattern.
  const issuer =
    config.issuerRegExp === undefined
      ? (text: string) => text === config.issuer
      : textMatcher(undefined, config.issuerRegExp);
  const subject = textMatcher(config.subject, config.subjectRegExp);
  const extensions = Object.entries(config.extensions ?? {});
  const who = config.subject ?? `/${config.subjectRegExp ?? ''}/`;
  const by = config.issuer ?? `/${config.issuerRegExp ?? ''}/`;
  return {
    description: `${who} (${by})`,
    trustRoot: config.trustRoot ?? defaultRoot,
    matches: (identity) =>
      issuer(identity.issuer) &&
      subject(identity.subject) &&
      extensions.every(([name, value]) => identity.extensions[name] === value),
  };
}

/** The text of an extension value: raw for .1–.7, a DER UTF8String from .8 on. */
function extensionText(last: number, value: Buffer): string | undefined {
  if (last < FIRST_DER_EXTENSION) return value.toString('utf8');
  // UTF8String (0x0c) with a short or long-form length.
  if (value[0] !== 0x0c || value.length < 2) return undefined;
  const first = value[1] ?? 0;
  let offset = 2;
  let length = first;
  if (first & 0x80) {
    const octets = first & 0x7f;
    if (octets < 1 || octets > 3) return undefined;
    length = 0;
    for (let i = 0; i < octets; i++) length = length * 256 + (value[2 + i] ?? 0);
    offset = 2 + octets;
  }
  if (offset + length !== value.length) return undefined;
  return value.subarray(offset).toString('utf8');
}

/** A certificate as @sigstore/verify parses it (@sigstore/core's X509Certificate). */
export type Certificate = TrustMaterial['certificateAuthorities'][number]['certChain'][number];

/**
 * What a certificate says of its signer: its SAN, the OIDC issuer (extension .8, or the
 * older .1) and Fulcio's other extensions — read as @sigstore/verify reads them for its own
 * policy check. A claim until the certificate is verified.
 */
export function certificateIdentity(certificate: Certificate): CertificateIdentity {
  const extensions: Record<string, string> = {};
  const byNumber = new Map(Object.entries(FULCIO_EXTENSIONS).map(([name, n]) => [n, name]));
  let issuer = '';
  let legacyIssuer = '';
  for (const extension of certificate.extensions) {
    const [first] = extension.subs;
    const last = extension.subs.at(-1);
    if (first === undefined || last === undefined) continue;
    const id = first.toOID();
    if (!id.startsWith(FULCIO_ARC)) continue;
    const number = Number(id.slice(FULCIO_ARC.length));
    const text = extensionText(number, last.value);
    if (text === undefined) continue;
    if (number === 8) issuer = text;
    else if (number === 1) legacyIssuer = text;
    const name = byNumber.get(number);
    if (name !== undefined) extensions[name] = text;
  }
  return {
    issuer: issuer || legacyIssuer,
    subject: certificate.subjectAltName ?? '',
    extensions,
  };
}
