/**
 * Where `--bundle` says the policy comes from: a file or a directory holding one (a
 * mounted ConfigMap), an OCI artifact (`oci://registry/repo:tag` or `@sha256:…`, OPA's OCI
 * bundle layout), or an OPA bundle service (`https://…`). Parsed once at start, so a typo
 * is a bad flag (exit 2), not a gateway that polls nothing.
 */
import { parseImageReference } from '../review/image-reference.ts';
import { InputError } from '../shared/input-error.ts';

export type BundleLocation =
  | { readonly kind: 'file'; readonly path: string }
  | {
      readonly kind: 'oci';
      /** host[:port], as the registry client names registries. */
      readonly registry: string;
      readonly repository: string;
      /** "" when pinned by digest alone. */
      readonly tag: string;
      /** "" when named by tag: then every poll resolves the tag. */
      readonly digest: string;
      /** What logs, /readyz and metrics show: `oci://registry/repo:tag`. */
      readonly display: string;
    }
  | { readonly kind: 'http'; readonly url: URL; readonly display: string };

export type RemoteLocation = Exclude<BundleLocation, { kind: 'file' }>;

const OCI = 'oci://';

export function parseBundleLocation(value: string): BundleLocation {
  if (value.startsWith(OCI)) return ociLocation(value);
  if (/^https?:\/\//i.test(value)) return httpLocation(value);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
    throw new InputError(
      `--bundle ${JSON.stringify(value)}: only oci:// and https:// are remote sources; anything else is a path`,
    );
  }
  return { kind: 'file', path: value };
}

function ociLocation(value: string): BundleLocation {
  const written = value.slice(OCI.length);
  const parsed = parseImageReference(written);
  if (!parsed.ok) throw new InputError(`--bundle ${value}: ${parsed.error}`);
  const { domain, path, tag, digest } = parsed.reference;
  // The registry must be written out: oci://policy/bundle is not Docker Hub by accident.
  const first = written.split('/')[0] ?? '';
  if (!written.includes('/') || first.toLowerCase() !== domain) {
    throw new InputError(
      `--bundle ${value}: write the registry host (oci://registry.example.com/${written})`,
    );
  }
  if (tag === '' && digest === '') {
    throw new InputError(`--bundle ${value}: name a tag or a digest (oci://…/repo:1.4)`);
  }
  return {
    kind: 'oci',
    registry: domain,
    repository: path,
    tag,
    digest,
    display: `${OCI}${domain}/${path}${tag === '' ? '' : `:${tag}`}${digest === '' ? '' : `@${digest}`}`,
  };
}

function httpLocation(value: string): BundleLocation {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InputError(`--bundle ${JSON.stringify(value)} is not a URL`);
  }
  // A policy fetched in clear text could be swapped by anyone on the path.
  if (url.protocol !== 'https:') {
    throw new InputError(`--bundle ${value}: a bundle service is reached over https only`);
  }
  if (url.username !== '' || url.password !== '') {
    throw new InputError(
      `--bundle ${url.origin}${url.pathname}: credentials do not belong in the URL; use --bundle-token-file`,
    );
  }
  return { kind: 'http', url, display: url.href };
}
