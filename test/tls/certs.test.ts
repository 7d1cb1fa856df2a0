import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { parse } from 'yaml';
import { createCa, issueCertificate, randomSerial } from '../../src/tls/certs.ts';
import { ttlProblem } from '../../src/tls/control-plane.ts';
import { imagegate } from '../helpers/cli.ts';

async function generated(extra: string[] = []) {
  const out = await mkdtemp(join(tmpdir(), 'imagegate-certs-'));
  const result = await imagegate(['certs', '--out', out, ...extra]);
  const read = (name: string) => readFile(join(out, name), 'utf8');
  return { out, result, read };
}

test('serving certificate: signed by the CA, every Service name and the extra IPs', async (t) => {
  const { result, read } = await generated([
    '--service',
    'gate',
    '-n',
    'policy',
    '--ip',
    '10.96.0.10',
  ]);
  t.is(result.code, 0, result.stderr);
  const ca = new X509Certificate(await read('ca.crt'));
  const serving = new X509Certificate(await read('tls.crt'));
  t.true(serving.checkIssued(ca));
  t.true(serving.verify(ca.publicKey));
  t.true(ca.ca);
  t.false(serving.ca);
  t.is(
    serving.subjectAltName,
    'DNS:gate, DNS:policy, DNS:gate.policy.svc, DNS:gate.policy.svc.cluster.local, IP Address:10.96.0.10'.replace(
      'DNS:policy',
      'DNS:gate.policy',
    ),
  );
  t.truthy(serving.checkHost('gate.policy.svc'));
  t.is(serving.checkHost('gate.other.svc'), undefined);
  t.truthy(serving.checkIP('10.96.0.10'));
  t.deepEqual(serving.keyUsage, ['1.3.6.1.5.5.7.3.1']); // serverAuth only
});

test('client certificate for the API server: clientAuth only, same CA', async (t) => {
  const { read } = await generated();
  const ca = new X509Certificate(await read('ca.crt'));
  const client = new X509Certificate(await read('client.crt'));
  t.true(client.verify(ca.publicKey));
  t.deepEqual(client.keyUsage, ['1.3.6.1.5.5.7.3.2']);
  t.regex(client.subject, /CN=kube-apiserver-imagegate-client/);
});

test('private keys and kubeconfigs are written owner-only', async (t) => {
  const { out } = await generated();
  for (const name of [
    'ca.key',
    'tls.key',
    'client.key',
    'tls-secret.yaml',
    'imagepolicy-kubeconfig.yaml',
    'webhook-kubeconfig.yaml',
  ]) {
    t.is((await stat(join(out, name))).mode & 0o777, 0o600, name);
  }
  t.is((await stat(join(out, 'ca.crt'))).mode & 0o777, 0o644);
});

test('the TLS Secret and caBundle carry the generated PEMs', async (t) => {
  const { read } = await generated(['-n', 'team-a', '--secret-name', 'gate-tls']);
  const secret = parse(await read('tls-secret.yaml')) as {
    kind: string;
    type: string;
    metadata: { name: string; namespace: string };
    data: Record<string, string>;
  };
  t.is(secret.kind, 'Secret');
  t.is(secret.type, 'kubernetes.io/tls');
  t.deepEqual(secret.metadata, { ...secret.metadata, name: 'gate-tls', namespace: 'team-a' });
  const decode = (key: string) => Buffer.from(secret.data[key] ?? '', 'base64').toString('utf8');
  t.is(decode('tls.crt'), await read('tls.crt'));
  t.is(decode('tls.key'), await read('tls.key'));
  t.is(decode('ca.crt'), await read('ca.crt'));
  t.is(
    Buffer.from((await read('ca-bundle.txt')).trim(), 'base64').toString('utf8'),
    await read('ca.crt'),
  );
});

test('ImagePolicyWebhook: AdmissionConfiguration fails closed, kubeconfig presents the client cert', async (t) => {
  // "--allow-ttl=-1": a separate "-1" would read as a flag.
  const flags = ['--control-plane-dir', '/srv/k8s/ig', '--allow-ttl=-1', '--deny-ttl', '30'];
  const { result, read } = await generated(flags);
  t.is(result.code, 0, result.stderr);
  const admission = parse(await read('admission-configuration.yaml')) as {
    kind: string;
    plugins: { name: string; configuration: Record<string, unknown> }[];
  };
  t.is(admission.kind, 'AdmissionConfiguration');
  t.deepEqual(
    admission.plugins.map((p) => p.name),
    ['ImagePolicyWebhook', 'ValidatingAdmissionWebhook', 'MutatingAdmissionWebhook'],
  );
  t.deepEqual(admission.plugins[0]?.configuration, {
    imagePolicy: {
      kubeConfigFile: '/srv/k8s/ig/imagepolicy-kubeconfig.yaml',
      allowTTL: -1,
      denyTTL: 30,
      retryBackoff: 500,
      defaultAllow: false,
    },
  });
  const kubeconfig = parse(await read('imagepolicy-kubeconfig.yaml')) as {
    clusters: { cluster: Record<string, string> }[];
    users: { user: Record<string, string> }[];
  };
  t.is(
    kubeconfig.clusters[0]?.cluster.server,
    'https://imagegate.imagegate-system.svc:443/v1/imagereview',
  );
  const data = (v: string | undefined) => Buffer.from(v ?? '', 'base64').toString('utf8');
  t.is(data(kubeconfig.clusters[0]?.cluster['certificate-authority-data']), await read('ca.crt'));
  t.is(data(kubeconfig.users[0]?.user['client-certificate-data']), await read('client.crt'));
  t.is(data(kubeconfig.users[0]?.user['client-key-data']), await read('client.key'));
  const webhooks = parse(await read('webhook-kubeconfig.yaml')) as { users: { name: string }[] };
  t.deepEqual(
    webhooks.users.map((u) => u.name),
    ['imagegate.imagegate-system.svc', 'imagegate.imagegate-system.svc:443'],
  );
});

test('serials come from the CSPRNG: positive, 128 bits, never repeated', (t) => {
  const serials = new Set(Array.from({ length: 200 }, () => randomSerial()));
  t.is(serials.size, 200);
  for (const serial of serials) {
    t.regex(serial, /^[0-7][0-9a-f]{31}$/);
  }
  const ca = createCa('test CA', 1);
  const a = new X509Certificate(issueCertificate(ca, { commonName: 'a', usage: 'server' }).cert);
  const b = new X509Certificate(issueCertificate(ca, { commonName: 'a', usage: 'server' }).cert);
  t.not(a.serialNumber, b.serialNumber);
});

test('ImagePolicyWebhook TTL rules: 0, -1, or 2..1800', (t) => {
  for (const ok of [0, -1, 2, 50, 1800]) t.is(ttlProblem(ok), undefined, String(ok));
  for (const bad of [1, -2, 1801, 2.5]) t.truthy(ttlProblem(bad), String(bad));
});

const refuses = test.macro(async (t, args: string[], message: RegExp) => {
  const out = await mkdtemp(join(tmpdir(), 'imagegate-certs-'));
  const result = await imagegate(['certs', '--out', out, ...args]);
  t.is(result.code, 2);
  t.regex(result.stderr, message);
});

test(
  'refuses a bad service name',
  refuses,
  ['--service', 'Gate_1'],
  /--service "Gate_1" is not a valid DNS label/,
);
test('refuses a bad IP', refuses, ['--ip', '10.0.0.300'], /--ip "10.0.0.300" is not an IP address/);
test('refuses a TTL of 1', refuses, ['--allow-ttl', '1'], /--allow-ttl must be 0 \(default\), -1/);
test(
  'refuses days out of range',
  refuses,
  ['--days', '0'],
  /--days must be a whole number from 1 to 3650/,
);

test('--imagepolicy-server points the ImagePolicyWebhook kubeconfig elsewhere', async (t) => {
  const { result, read } = await generated([
    '--imagepolicy-server',
    'https://10.0.0.5:30443/v1/imagereview',
  ]);
  t.is(result.code, 0, result.stderr);
  const kubeconfig = parse(await read('imagepolicy-kubeconfig.yaml')) as {
    clusters: { cluster: { server: string } }[];
  };
  t.is(kubeconfig.clusters[0]?.cluster.server, 'https://10.0.0.5:30443/v1/imagereview');
});

test(
  'refuses a non-https ImagePolicyWebhook URL',
  refuses,
  ['--imagepolicy-server', 'http://x/v1/imagereview'],
  /--imagepolicy-server must be an https:\/\/ URL/,
);

test(
  'refuses an IPv4-mapped IPv6 address, saying which IPv4 address to write',
  refuses,
  ['--ip', '::ffff:10.0.0.1'],
  /--ip "::ffff:10.0.0.1" is an IPv4-mapped IPv6 address: write the IPv4 address \(10.0.0.1\) instead/,
);
test(
  'refuses an IPv6 address with a zone',
  refuses,
  ['--ip', 'fe80::1%eth0'],
  /--ip "fe80::1%eth0" has a zone \(%eth0\), which a certificate cannot carry/,
);

test('IPv6 SANs carry the address written, a dotted IPv4 tail included', async (t) => {
  const { result, read } = await generated(['--ip', 'fd00::1', '--ip', '64:ff9b::10.0.0.1']);
  t.is(result.code, 0, result.stderr);
  const serving = new X509Certificate(await read('tls.crt'));
  t.truthy(serving.checkIP('fd00::1'));
  t.truthy(serving.checkIP('64:ff9b::a00:1'));
  t.regex(serving.subjectAltName ?? '', /IP Address:64:FF9B:0:0:0:0:A00:1/);
});
