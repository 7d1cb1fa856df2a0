/**
 * TLS on the real HTTPS port: protocol versions, client certificates (--client-ca) and
 * serving-certificate rotation without restart, with a bad rotation refused.
 */
import { X509Certificate } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { Agent } from 'node:https';
import { join } from 'node:path';
import { connect, type SecureVersion } from 'node:tls';
import test from 'ava';
import { type CertificatePair, createCa, issueCertificate } from '../../src/tls/certs.ts';
import { loadJsonObject } from '../helpers/fixtures.ts';
import {
  errorCode,
  https,
  poll,
  postJson,
  record,
  startTestGateway,
  Teardowns,
  type TestGateway,
  tempDir,
} from '../helpers/gateway.ts';
import { reloadCount } from '../helpers/reload-traffic.ts';

const REVIEW = loadJsonObject('imagereview', 'imagereview-trusted');

const shared = new Teardowns();
test.after.always(() => shared.run());
let plain: Promise<TestGateway> | undefined;

function serving(ca: CertificatePair, commonName = 'localhost'): CertificatePair {
  return issueCertificate(ca, {
    commonName,
    usage: 'server',
    altNames: ['localhost', '127.0.0.1'],
  });
}

function serialOf(pem: string): string {
  return new X509Certificate(pem).serialNumber;
}

interface Handshake {
  readonly protocol: string | null;
  readonly serialNumber: string;
}

/** A bare TLS handshake: the protocol and the serving certificate's serial, or the error. */
function handshake(
  port: number,
  ca: string,
  options: { minVersion?: SecureVersion; maxVersion?: SecureVersion; ciphers?: string } = {},
): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca, ...options });
    socket.on('secureConnect', () => {
      const result = {
        protocol: socket.getProtocol(),
        serialNumber: socket.getPeerCertificate().serialNumber,
      };
      socket.end();
      resolve(result);
    });
    socket.on('error', reject);
  });
}

const versions = test.macro({
  async exec(t, min: SecureVersion, max: SecureVersion, accepted: boolean) {
    plain ??= startTestGateway(shared);
    const gw = await plain;
    // SECLEVEL=0 lets this client really offer TLS 1.0/1.1: the refusal must be the server's.
    const options = { minVersion: min, maxVersion: max, ciphers: 'DEFAULT:@SECLEVEL=0' };
    if (!accepted) {
      const error = await t.throwsAsync(handshake(gw.port, gw.ca, options));
      t.is(errorCode(error), 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION');
      return;
    }
    t.is((await handshake(gw.port, gw.ca, options)).protocol, max);
    const target = { port: gw.port, ca: gw.ca, path: '/v1/imagereview' };
    const result = await postJson(target, REVIEW, options);
    t.is(result.status, 200);
    t.true(record(record(result.body, 'answer').status, 'status').allowed);
  },
  title: (_ = '', _min: SecureVersion, max: SecureVersion, accepted: boolean) =>
    `${max} client ${accepted ? 'accepted' : 'refused'}`,
});

test(versions, 'TLSv1', 'TLSv1.1', false);
test(versions, 'TLSv1.2', 'TLSv1.2', true);
test(versions, 'TLSv1.3', 'TLSv1.3', true);

interface MutualTls {
  readonly gw: TestGateway;
  readonly client: CertificatePair;
  /** Right CA, but issued for serverAuth only. */
  readonly serverOnly: CertificatePair;
  readonly stranger: CertificatePair;
}

let mutual: Promise<MutualTls> | undefined;

/** A gateway with --client-ca, a client certificate from that CA and one from another CA. */
function mutualTls(): Promise<MutualTls> {
  mutual ??= (async () => {
    const dir = await tempDir(shared, 'imagegate-mtls-');
    const ca = createCa('imagegate test CA');
    const other = createCa('someone else');
    const server = serving(ca);
    const files = {
      cert: join(dir, 'tls.crt'),
      key: join(dir, 'tls.key'),
      ca: join(dir, 'ca.crt'),
    };
    await writeFile(files.cert, server.cert);
    await writeFile(files.key, server.key);
    await writeFile(files.ca, ca.cert);
    const gw = await startTestGateway(shared, {
      tlsCert: files.cert,
      tlsKey: files.key,
      clientCa: files.ca,
      ca: ca.cert,
    });
    const client = issueCertificate(ca, { commonName: 'kube-apiserver', usage: 'client' });
    const stranger = issueCertificate(other, { commonName: 'kube-apiserver', usage: 'client' });
    const serverOnly = issueCertificate(ca, { commonName: 'kube-apiserver', usage: 'server' });
    return { gw, client, serverOnly, stranger };
  })();
  return mutual;
}

test('client CA: a client certificate from that CA is accepted', async (t) => {
  const { gw, client } = await mutualTls();
  const target = { port: gw.port, ca: gw.ca, path: '/v1/imagereview' };
  const result = await postJson(target, REVIEW, { cert: client.cert, key: client.key });
  t.is(result.status, 200);
  t.true(record(record(result.body, 'answer').status, 'status').allowed);
});

type Presented = 'none' | 'stranger' | 'serverOnly';

const PRESENTED: Record<Presented, string> = {
  none: 'no client certificate',
  stranger: 'a certificate from another CA',
  serverOnly: 'a certificate from that CA for serverAuth only',
};

const refusedClient = test.macro({
  async exec(t, which: Presented, code: RegExp) {
    const tls = await mutualTls();
    const { gw } = tls;
    const target = { port: gw.port, ca: gw.ca, path: '/v1/imagereview' };
    const identity = which === 'none' ? {} : { cert: tls[which].cert, key: tls[which].key };
    const review = structuredClone(REVIEW);
    record(review.spec, 'spec').namespace = `refused-${which}`;
    const error = await t.throwsAsync(postJson(target, review, identity));
    t.regex(errorCode(error), code);
    const reviewed = gw.logs.messages('decision').filter((l) => l.namespace === `refused-${which}`);
    t.deepEqual(reviewed, [], 'nothing was reviewed');
  },
  title: (_ = '', which: Presented) => `client CA: ${PRESENTED[which]} → refused`,
});

test(refusedClient, 'none', /CERTIFICATE_REQUIRED|ECONNRESET|EPROTO/);
test(refusedClient, 'stranger', /UNKNOWN_CA|ECONNRESET|EPROTO/);
test(refusedClient, 'serverOnly', /UNSUPPORTED_CERTIFICATE|ECONNRESET|EPROTO/);

test('rotation: new connections get the new certificate, a broken one is refused', async (t) => {
  const dir = await tempDir(t, 'imagegate-rotate-');
  const ca = createCa('imagegate rotation CA');
  const a = serving(ca, 'imagegate-a');
  const b = serving(ca, 'imagegate-b');
  const c = serving(ca, 'imagegate-c');
  const cert = join(dir, 'tls.crt');
  const key = join(dir, 'tls.key');
  await writeFile(cert, a.cert);
  await writeFile(key, a.key);
  const gw = await startTestGateway(t, {
    tlsCert: cert,
    tlsKey: key,
    ca: ca.cert,
    watchIntervalMs: 100,
  });
  const target = { port: gw.port, ca: gw.ca, path: '/v1/imagereview' };
  const keepAlive = new Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => keepAlive.destroy());

  const before = await postJson(target, REVIEW, { agent: keepAlive });
  t.is(before.status, 200);
  t.is(before.serialNumber, serialOf(a.cert));

  await writeFile(key, b.key);
  await writeFile(cert, b.cert);
  const seen = await poll(async () => {
    const { serialNumber } = await handshake(gw.port, gw.ca);
    return serialNumber === serialOf(a.cert) ? undefined : serialNumber;
  }, 'a new connection to see certificate B');
  t.is(seen, serialOf(b.cert));
  t.is(reloadCount((await gw.health('/metrics')).text, 'certificate', 'ok'), 1);

  // The connection opened before the rotation keeps working, still on certificate A.
  const during = await postJson(target, REVIEW, { agent: keepAlive });
  t.is(during.status, 200);
  t.true(during.reusedSocket);
  t.is(during.serialNumber, serialOf(a.cert));

  // Garbage, then a certificate with someone else's key: both refused, B keeps serving.
  await writeFile(cert, 'not a certificate\n');
  await poll(async () => {
    const metrics = (await gw.health('/metrics')).text;
    return reloadCount(metrics, 'certificate', 'refused') === 1 ? true : undefined;
  }, 'the garbage certificate to be refused');
  t.is((await handshake(gw.port, gw.ca)).serialNumber, serialOf(b.cert));
  await writeFile(cert, c.cert);
  await poll(async () => {
    const metrics = (await gw.health('/metrics')).text;
    return reloadCount(metrics, 'certificate', 'refused') === 2 ? true : undefined;
  }, 'the mismatched key to be refused');
  t.is((await handshake(gw.port, gw.ca)).serialNumber, serialOf(b.cert));
  const metrics = (await gw.health('/metrics')).text;
  t.is(reloadCount(metrics, 'certificate', 'ok'), 1);
  t.is(gw.logs.messages('serving certificate reload refused; the previous one stays').length, 2);
  t.is((await https({ ...target, method: 'GET', path: '/v1/validate' })).status, 405);
});
