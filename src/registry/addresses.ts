/**
 * Which addresses the gateway may connect to for registry facts. A pod spec chooses the
 * images, so it would choose the hosts: the gateway calls only registries the
 * configuration names, and never link-local addresses (the cloud metadata service,
 * 169.254.169.254), loopback or private ones unless a configured registry itself is one.
 * The same rules hold for token realms and redirects, which the registry chooses.
 */
import { isIP } from 'node:net';

export type AddressClass = 'loopback' | 'link-local' | 'private' | 'unspecified' | 'public';

function v4(address: string): number[] | undefined {
  const parts = address.split('.').map(Number);
  return parts.length === 4 && parts.every((p) => Number.isInteger(p) && p >= 0 && p <= 255)
    ? parts
    : undefined;
}

/** The class of an IP address (v4, v6, v4-mapped v6). */
export function classify(address: string): AddressClass {
  const bare = address.replace(/^\[|\]$/g, '').toLowerCase();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(bare)?.[1];
  const parts = v4(mapped ?? bare);
  if (parts !== undefined) {
    const [a = 0, b = 0] = parts;
    if (a === 127) return 'loopback';
    if (a === 0) return 'unspecified';
    if (a === 169 && b === 254) return 'link-local';
    if (a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168)) return 'private';
    if (a === 100 && b >= 64 && b <= 127) return 'private'; // carrier-grade NAT
    return 'public';
  }
  if (bare === '::1') return 'loopback';
  if (bare === '::') return 'unspecified';
  if (/^fe[89ab]/.test(bare)) return 'link-local';
  if (/^f[cd]/.test(bare)) return 'private';
  return 'public';
}

/** host[:port] → the host alone, brackets kept for IPv6 ("[::1]:5000" → "[::1]"). */
export function hostOf(registry: string): string {
  if (registry.startsWith('[')) return registry.slice(0, registry.indexOf(']') + 1);
  return registry.replace(/:\d+$/, '');
}

const bareIp = (host: string) => host.replace(/^\[|\]$/g, '');

/** The class a configured registry host is of: by its literal address, or by name. */
function classOfHost(host: string): AddressClass {
  const ip = bareIp(host);
  if (isIP(ip) !== 0) return classify(ip);
  return host === 'localhost' || host.endsWith('.localhost') ? 'loopback' : 'public';
}

export interface AddressPolicy {
  /** The registry may be contacted at all: the configuration names it. */
  allowsRegistry(registry: string): boolean;
  /**
   * Whether `address` (what a name resolved to, or a literal) may be connected to on
   * behalf of `registry`: its own host, a token realm or a redirect it sent.
   */
  allowsAddress(registry: string, address: string): boolean;
  /** Why a URL it sent (realm, redirect) may not be followed; undefined when it may. */
  refusesUrl(registry: string, url: URL): string | undefined;
}

/**
 * `registries`: host[:port] of every registry the configuration names (normalized lower
 * case). Addresses of the classes a configured registry is of are allowed for that
 * registry (a test or air-gapped registry on 127.0.0.1 or 10.0.0.5 works); link-local
 * only when a configured registry is literally link-local.
 */
export function addressPolicy(registries: Iterable<string>): AddressPolicy {
  const named = new Set([...registries].map((r) => r.toLowerCase()));
  const classes = new Map<string, AddressClass>();
  for (const registry of named) classes.set(registry, classOfHost(hostOf(registry)));
  const allowsClass = (registry: string, cls: AddressClass) => {
    if (cls === 'public') return true;
    if (cls === 'unspecified') return false;
    const own = classes.get(registry.toLowerCase());
    if (cls === 'link-local') return own === 'link-local';
    // A loopback or private registry may send the gateway to another such address (a
    // token server beside it); a public one may not.
    return own === cls || (own === 'loopback' && cls === 'private');
  };
  return {
    allowsRegistry: (registry) => named.has(registry.toLowerCase()),
    allowsAddress: (registry, address) =>
      named.has(registry.toLowerCase()) && allowsClass(registry, classify(address)),
    refusesUrl(registry, url) {
      if (url.protocol !== 'https:') return `${url.protocol} is not https`;
      const ip = bareIp(url.hostname);
      if (isIP(ip) !== 0 && !allowsClass(registry, classify(ip))) {
        return `${url.hostname} is a ${classify(ip)} address`;
      }
      if (isIP(ip) === 0 && classOfHost(url.hostname) === 'loopback') {
        if (!allowsClass(registry, 'loopback')) return `${url.hostname} is loopback`;
      }
      return undefined;
    },
  };
}
