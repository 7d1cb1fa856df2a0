/**
 * The address classifier, case by case: every form an address can take is reduced to what
 * it reaches before it is judged (SECURITY.md, registry threats). And what the policy
 * built on it allows each registry: global unicast for any named registry, private
 * networks only where the configuration allows them, loopback and link-local only for a
 * registry written as such an address, the rest never. Credentials go only to the
 * registry's own host and the auth hosts named for it.
 */
import test from 'ava';
import { type AddressClass, addressPolicy, classify } from '../../src/registry/addresses.ts';

const CASES: readonly [string, AddressClass, string][] = [
  ['8.8.8.8', 'public', 'global IPv4'],
  ['2606:4700::1111', 'public', 'global IPv6 (2000::/3)'],
  ['127.0.0.1', 'loopback', 'IPv4 loopback'],
  ['127.255.0.9', 'loopback', 'all of 127/8'],
  ['::1', 'loopback', 'IPv6 loopback'],
  ['[::1]', 'loopback', 'bracketed, as URLs write it'],
  ['10.1.2.3', 'private', 'RFC 1918 10/8'],
  ['172.16.0.1', 'private', 'RFC 1918 172.16/12'],
  ['192.168.1.1', 'private', 'RFC 1918 192.168/16'],
  ['100.64.0.1', 'private', 'carrier-grade NAT 100.64/10'],
  ['fd00::5', 'private', 'unique local fc00::/7'],
  ['169.254.169.254', 'link-local', 'the cloud metadata service'],
  ['fe80::1', 'link-local', 'IPv6 link-local'],
  ['fe80::1%eth0', 'link-local', 'with a zone id'],
  ['0.0.0.0', 'unspecified', 'IPv4 unspecified'],
  ['::', 'unspecified', 'IPv6 unspecified'],
  ['::ffff:127.0.0.1', 'loopback', 'IPv4-mapped, dotted'],
  ['::ffff:7f00:1', 'loopback', 'IPv4-mapped, as the URL parser rewrites [::ffff:127.0.0.1]'],
  ['[::ffff:7f00:1]', 'loopback', 'IPv4-mapped, bracketed'],
  ['::ffff:a9fe:a9fe', 'link-local', 'IPv4-mapped metadata address'],
  ['::ffff:8.8.8.8', 'public', 'IPv4-mapped global'],
  ['::ffff:0:7f00:1', 'loopback', 'SIIT (RFC 6145) IPv4-translated'],
  ['::7f00:1', 'loopback', 'IPv4-compatible (deprecated ::/96)'],
  ['::a9fe:a9fe', 'link-local', 'IPv4-compatible metadata address'],
  ['64:ff9b::7f00:1', 'loopback', 'NAT64 well-known prefix to loopback'],
  ['64:ff9b::a00:1', 'private', 'NAT64 to 10.0.0.1'],
  ['64:ff9b::808:808', 'public', 'NAT64 to a global address'],
  ['64:ff9b:1::a00:1', 'reserved', 'NAT64 local-use prefix (RFC 8215)'],
  ['2002:7f00:1::', 'loopback', '6to4 carrying 127.0.0.1'],
  ['2002:a9fe:a9fe::1', 'link-local', '6to4 carrying the metadata address'],
  ['2002:808:808::1', 'public', '6to4 carrying a global address'],
  ['2001:0:4136:e378:8000:63bf:80ff:fffe', 'loopback', 'Teredo whose client is 127.0.0.1'],
  ['2001:0:808:808:8000:63bf:f7f7:f7f7', 'public', 'Teredo, global server and client'],
  ['fec0::1', 'reserved', 'site-local (deprecated fec0::/10)'],
  ['ff02::1', 'reserved', 'IPv6 multicast'],
  ['224.0.0.1', 'reserved', 'IPv4 multicast'],
  ['255.255.255.255', 'reserved', 'broadcast'],
  ['240.0.0.1', 'reserved', 'future use 240/4'],
  ['192.0.2.1', 'reserved', 'documentation'],
  ['198.18.0.1', 'reserved', 'benchmarking'],
  ['2001:db8::1', 'reserved', 'IPv6 documentation'],
  ['100::1', 'reserved', 'IPv6 discard'],
  ['3fff::1', 'reserved', 'IPv6 documentation (RFC 9637)'],
  ['not-an-address', 'reserved', 'garbage'],
];

for (const [address, expected, what] of CASES) {
  test(`classify ${address} (${what}) → ${expected}`, (t) => {
    t.is(classify(address), expected);
  });
}

test('only the classes a registry is allowed, for that registry and no other', (t) => {
  const policy = addressPolicy(
    [
      'registry.example.com',
      'harbor.corp.example',
      '127.0.0.1:5000',
      '169.254.10.10:5000',
      '10.0.0.5',
    ],
    new Map([['harbor.corp.example', { network: 'private' }]]),
  );
  const allowed = (registry: string, address: string) => policy.allowsAddress(registry, address);
  // A public name: global only.
  t.true(allowed('registry.example.com', '8.8.8.8'));
  for (const address of [
    '10.0.0.1',
    'fd00::1',
    '100.64.0.1',
    '127.0.0.1',
    '::ffff:7f00:1',
    '169.254.169.254',
    '0.0.0.0',
    'ff02::1',
    '64:ff9b::a00:1',
  ]) {
    t.false(allowed('registry.example.com', address), address);
  }
  // Allowed a private network: private addresses, still no loopback or metadata service.
  for (const address of ['10.0.0.1', '172.20.0.3', 'fd00::1', '100.64.0.1', '::ffff:a00:1']) {
    t.true(allowed('harbor.corp.example', address), address);
  }
  for (const address of [
    '127.0.0.1',
    '169.254.169.254',
    '::ffff:a9fe:a9fe',
    '0.0.0.0',
    '224.0.0.1',
  ]) {
    t.false(allowed('harbor.corp.example', address), address);
  }
  // Written as a loopback address: loopback, but not private or link-local.
  t.true(allowed('127.0.0.1:5000', '127.0.0.1'));
  t.false(allowed('127.0.0.1:5000', '10.0.0.1'));
  t.false(allowed('127.0.0.1:5000', '169.254.169.254'));
  // Written as a private address: private; written as link-local: link-local.
  t.true(allowed('10.0.0.5', '10.0.0.5'));
  t.true(allowed('169.254.10.10:5000', '169.254.10.10'));
  t.false(allowed('169.254.10.10:5000', '127.0.0.1'));
  // A registry the configuration does not name: nothing.
  t.false(allowed('other.example.com', '8.8.8.8'));
});

test('realms and redirects: https only, literal addresses judged as for the registry', (t) => {
  const policy = addressPolicy(['registry.example.com']);
  const refused = (url: string) => policy.refusesUrl('registry.example.com', new URL(url));
  t.is(refused('https://auth.example.com/token'), undefined);
  t.is(refused('http://auth.example.com/token'), 'http: is not https');
  t.is(refused('https://[::ffff:127.0.0.1]:8443/token'), '[::ffff:7f00:1] is a loopback address');
  t.is(refused('https://2130706433/token'), '127.0.0.1 is a loopback address');
  t.is(refused('https://[64:ff9b::a9fe:a9fe]/'), '[64:ff9b::a9fe:a9fe] is a link-local address');
  t.is(refused('https://localhost:9000/'), 'localhost is a loopback address');
  t.is(refused('https://0.0.0.0/'), '0.0.0.0 is an unspecified address');
  t.is(refused('https://[ff02::1]/'), '[ff02::1] is a reserved address');
});

test('credentials: the registry host, Docker Hub auth, and named auth hosts only', (t) => {
  const policy = addressPolicy(
    ['registry.example.com', 'docker.io', 'gitlab.example.com:5050', '127.0.0.1:5000'],
    new Map([
      ['gitlab.example.com:5050', { authHosts: ['gitlab.example.com', 'sso.example.com:8443'] }],
    ]),
  );
  const may = (registry: string, url: string) =>
    policy.mayReceiveCredentials(registry, new URL(url));
  t.true(may('registry.example.com', 'https://registry.example.com/token'));
  t.true(may('registry.example.com', 'https://REGISTRY.example.com:8443/token'));
  t.false(may('registry.example.com', 'https://auth.example.com/token'));
  t.false(may('registry.example.com', 'http://registry.example.com/token'));
  t.false(may('registry.example.com', 'https://registry.example.com.evil.io/token'));
  t.true(may('docker.io', 'https://auth.docker.io/token'));
  t.true(may('docker.io', 'https://registry-1.docker.io/token'));
  t.false(may('docker.io', 'https://docker.io.evil.io/token'));
  t.true(may('gitlab.example.com:5050', 'https://gitlab.example.com/jwt/auth'));
  t.true(may('gitlab.example.com:5050', 'https://sso.example.com:8443/token'));
  t.false(may('gitlab.example.com:5050', 'https://sso.example.com/token'));
  t.true(may('127.0.0.1:5000', 'https://127.0.0.1:5001/token'));
  t.false(may('127.0.0.1:5000', 'https://localhost:5001/token'));
  t.false(may('unnamed.example.com', 'https://unnamed.example.com/token'));
});
