/**
 * Which addresses the gateway may connect to for registry facts. A pod spec chooses the
 * images, so it would choose the hosts: the gateway calls only registries the
 * configuration names, on global unicast addresses. A registry reaches a private network
 * (RFC 1918, ULA, CGNAT: an in-cluster Harbor, a VPC endpoint) only where the
 * configuration says so for it (`registries.<name>.network: private`) or names it by
 * such an address; loopback and link-local (the cloud metadata service) only where the
 * registry itself is written as such an address; unspecified, multicast, broadcast and
 * reserved addresses never. The same rules hold for token realms and redirects, which the
 * registry chooses.
 *
 * Every form an address can take is reduced to what it reaches before it is judged
 * (ipaddr.js parses and names the ranges): IPv4-mapped, -compatible and SIIT IPv6, NAT64,
 * 6to4 and Teredo carry an IPv4 address, which is judged instead.
 */
import ipaddr from 'ipaddr.js';

export type AddressClass =
  | 'public'
  | 'private'
  | 'loopback'
  | 'link-local'
  | 'unspecified'
  | 'reserved';

/** How strict a class is: of two addresses one form reaches, the stricter decides. */
const STRICTNESS: Record<AddressClass, number> = {
  public: 0,
  private: 1,
  loopback: 2,
  'link-local': 3,
  unspecified: 4,
  reserved: 5,
};

const V4_CLASSES: Record<string, AddressClass> = {
  unicast: 'public',
  private: 'private',
  carrierGradeNat: 'private',
  loopback: 'loopback',
  linkLocal: 'link-local',
  unspecified: 'unspecified',
};

const V6_CLASSES: Record<string, AddressClass> = {
  uniqueLocal: 'private',
  loopback: 'loopback',
  linkLocal: 'link-local',
  unspecified: 'unspecified',
};

const v4Of = (bytes: readonly number[]) => ipaddr.fromByteArray(bytes.slice(-4)) as ipaddr.IPv4;

function classifyV4(address: ipaddr.IPv4): AddressClass {
  // Broadcast, multicast, the documentation, benchmarking and future-use ranges: reserved.
  return V4_CLASSES[address.range()] ?? 'reserved';
}

/** The IPv4 addresses an IPv6 address carries and reaches, if it is such a form. */
function embeddedV4(address: ipaddr.IPv6): ipaddr.IPv4[] | undefined {
  const bytes = address.toByteArray();
  const parts = address.parts;
  const range = address.range();
  if (range === 'ipv4Mapped' || range === 'rfc6145') return [v4Of(bytes)];
  // NAT64's well-known prefix 64:ff9b::/96 (the local-use 64:ff9b:1::/48 is not global).
  if (parts[0] === 0x64 && parts[1] === 0xff9b && parts.slice(2, 6).every((p) => p === 0)) {
    return [v4Of(bytes)];
  }
  // IPv4-compatible (::a.b.c.d, deprecated but still parsed by stacks); not :: or ::1.
  if (parts.slice(0, 6).every((p) => p === 0) && (parts[6] ?? 0) !== 0) return [v4Of(bytes)];
  if (range === '6to4') return [ipaddr.fromByteArray(bytes.slice(2, 6)) as ipaddr.IPv4];
  if (range === 'teredo') {
    // The server (bits 32–63) and the client, stored inverted (bits 96–127).
    const client = bytes.slice(12, 16).map((b) => b ^ 0xff);
    return [
      ipaddr.fromByteArray(bytes.slice(4, 8)) as ipaddr.IPv4,
      ipaddr.fromByteArray(client) as ipaddr.IPv4,
    ];
  }
  return undefined;
}

function classifyV6(address: ipaddr.IPv6): AddressClass {
  const carried = embeddedV4(address);
  if (carried !== undefined) {
    return carried.map(classifyV4).reduce((a, b) => (STRICTNESS[a] >= STRICTNESS[b] ? a : b));
  }
  const known = V6_CLASSES[address.range()];
  if (known !== undefined) return known;
  // Global unicast is 2000::/3; ipaddr.js calls everything it has no name for "unicast".
  if (address.range() === 'unicast' && ((address.parts[0] ?? 0) & 0xe000) === 0x2000) {
    return 'public';
  }
  // Multicast, site-local (fec0::/10), documentation, discard, ORCHID, the rest of ::/8.
  return 'reserved';
}

/** The class of an IP address, in any form (brackets, zone ids, embedded IPv4). */
export function classify(address: string): AddressClass {
  const bare = address.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  if (!ipaddr.isValid(bare)) return 'reserved';
  const parsed = ipaddr.parse(bare);
  return parsed.kind() === 'ipv4'
    ? classifyV4(parsed as ipaddr.IPv4)
    : classifyV6(parsed as ipaddr.IPv6);
}

const isIpLiteral = (host: string) => ipaddr.isValid(host.replace(/^\[|\]$/g, ''));

/** host[:port] → the host alone, brackets kept for IPv6 ("[::1]:5000" → "[::1]"). */
export function hostOf(registry: string): string {
  if (registry.startsWith('[')) return registry.slice(0, registry.indexOf(']') + 1);
  return registry.replace(/:\d+$/, '');
}

/** Where a registry named in an image reference answers the API. */
export function endpoint(registry: string): string {
  return registry === 'docker.io' ? 'registry-1.docker.io' : registry;
}

/**
 * Auth hosts some registries use without being told: Docker Hub's token service lives on
 * auth.docker.io. Any other registry's token realm on another host gets credentials only
 * when the configuration names that host (`registries.<name>.authHosts`).
 */
const KNOWN_AUTH_HOSTS: Readonly<Record<string, readonly string[]>> = {
  'docker.io': ['auth.docker.io'],
};

/** The class a configured registry host is of, when written as an address; else undefined. */
function literalClass(host: string): AddressClass | undefined {
  if (isIpLiteral(host)) return classify(host);
  return host === 'localhost' || host.endsWith('.localhost') ? 'loopback' : undefined;
}

/** What the configuration says of one registry (`registries.<name>`). */
export interface RegistrySettings {
  /** `private`: the registry's names may resolve to private addresses. */
  readonly network?: 'public' | 'private';
  /** Hosts beside the registry's own that may receive its credentials (token realms). */
  readonly authHosts?: readonly string[];
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
  /** Whether the registry's credentials (Basic, tokens) may be sent to this URL's host. */
  mayReceiveCredentials(registry: string, url: URL): boolean;
  /** The registry's own host name, where its API answers (lower case, no port). */
  hostnameOf(registry: string): string;
}

const hostnameOfUrl = (url: URL) => url.hostname.toLowerCase();

/**
 * `registries`: host[:port] of every registry the configuration names; `settings`: what
 * `registries.<name>` says of some of them (keys normalized like the names).
 */
export function addressPolicy(
  registries: Iterable<string>,
  settings: ReadonlyMap<string, RegistrySettings> = new Map(),
): AddressPolicy {
  const named = new Set([...registries].map((r) => r.toLowerCase()));
  const own = new Map<string, AddressClass | undefined>();
  for (const registry of named) own.set(registry, literalClass(hostOf(registry)));
  const settingsOf = (registry: string) => settings.get(registry.toLowerCase()) ?? {};
  const allowsClass = (registry: string, cls: AddressClass) => {
    const literal = own.get(registry.toLowerCase());
    switch (cls) {
      case 'public':
        return true;
      case 'private':
        return settingsOf(registry).network === 'private' || literal === 'private';
      case 'loopback':
      case 'link-local':
        return literal === cls;
      default:
        return false;
    }
  };
  const hostnameOf = (registry: string) =>
    new URL(`https://${endpoint(registry.toLowerCase())}`).hostname;
  return {
    allowsRegistry: (registry) => named.has(registry.toLowerCase()),
    allowsAddress: (registry, address) =>
      named.has(registry.toLowerCase()) && allowsClass(registry, classify(address)),
    refusesUrl(registry, url) {
      if (url.protocol !== 'https:') return `${url.protocol} is not https`;
      const host = url.hostname;
      const cls = literalClass(host);
      if (cls !== undefined && !allowsClass(registry, cls)) {
        return `${host} is ${cls === 'unspecified' ? 'an unspecified' : `a ${cls}`} address`;
      }
      return undefined;
    },
    mayReceiveCredentials(registry, url) {
      const key = registry.toLowerCase();
      if (!named.has(key) || url.protocol !== 'https:') return false;
      const host = hostnameOfUrl(url);
      if (host === hostnameOf(key)) return true;
      const allowed = [...(KNOWN_AUTH_HOSTS[key] ?? []), ...(settingsOf(key).authHosts ?? [])];
      return allowed.some((entry) => {
        const wanted = new URL(`https://${entry.toLowerCase()}`);
        // An auth host written with a port must match it too.
        return /:\d+$/.test(entry) ? wanted.host === url.host : wanted.hostname === host;
      });
    },
    hostnameOf,
  };
}
