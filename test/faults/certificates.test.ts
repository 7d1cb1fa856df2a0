/**
 * Fault injection on the serving certificate of a running gateway: rotated valid → valid
 * (atomically through a mounted Secret, and by a writer that puts the certificate and the
 * key down one after the other), removed, replaced with garbage, or paired with the wrong
 * key. New connections must always complete a handshake with the last good pair, the
 * refusal must be counted and logged, and a good pair must be taken up afterwards.
 *
 * /readyz reports policy loads only; a refused certificate shows in the logs and in
 * imagegate_reloads_total{kind="certificate",result="refused"}.
 */
import { X509Certificate } from 'node:crypto';
import { mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { Agent } from 'node:https';
import { join } from 'node:path';
import { connect } from 'node:tls';
import test from 'ava';
import { type CertificatePair, createCa, issueCertificate } from '../../src/tls/certs.ts';
import { loadJsonObject } from '../helpers/fixtures.ts';
import {
  errorCode,
  poll,
  postJson,
  record,
  startTestGateway,
  type Teardown,
  type TestGateway,
  tempDir,
} from '../helpers/gateway.ts';
import { reloads, sleep } from '../helpers/reload-traffic.ts';

const INTERVAL_MS = 50;
const REFUSED_MSG = 'serving certificate reload refused; the previous one stays';
const REVIEW = loadJsonObject('imagereview', 'imagereview-trusted');

interface Pki {
  readonly ca: CertificatePair;
  /** Serving pairs for localhost/127.0.0.1, all from `ca`. */
  readonly a: CertificatePair;
  readonly b: CertificatePair;
  readonly c: CertificatePair;
}

let pki: Pki | undefined;
function certificates(): Pki {
  if (pki === undefined) {
    const ca = createCa('imagegate faults CA');
    const serving = (commonName: string) =>
      issueCertificate(ca, { commonName, usage: 'server', altNames: ['localhost', '127.0.0.1'] });
    pki = { ca, a: serving('imagegate-a'), b: serving('imagegate-b'), c: serving('imagegate-c') };
  }
  return pki;
}

/** The base64 lines of a PEM key, each long and random enough to be unmistakable. */
const keyBody = (pem: string) =>
  pem.split(/\r?\n/).filter((line) => /^[A-Za-z0-9+/]{40,}={0,2}$/.test(line));

const serialOf = (pem: string) => new X509Certificate(pem).serialNumber;

/** A bare TLS handshake verified against `ca`: the serving certificate's serial. */
function handshake(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca, servername: 'localhost' });
    socket.on('secureConnect', () => {
      const serial = socket.getPeerCertificate().serialNumber;
      socket.end();
      resolve(serial);
    });
    socket.on('error', reject);
  });
}

/** Reviews on fresh connections until stopped (bounded: 10 000 or 50 s); each must answer. */
class Traffic {
  readonly failures: string[] = [];
  readonly serials = new Set<string>();
  answered = 0;
  #stop = false;
  readonly #done: Promise<void>;

  constructor(gw: TestGateway) {
    const deadline = Date.now() + 50_000;
    this.#done = (async () => {
      for (let i = 0; i < 10_000 && !this.#stop && Date.now() < deadline; i++) {
        try {
          const result = await gw.post('/v1/imagereview', REVIEW);
          const status = record(record(result.body, 'answer').status, 'status');
          if (result.status !== 200 || status.allowed !== true) {
            this.failures.push(`${result.status} ${result.text}`);
          } else {
            this.answered += 1;
            this.serials.add(result.serialNumber);
          }
        } catch (error) {
          this.failures.push(errorCode(error));
        }
        await sleep(5);
      }
    })();
  }

  async stop(): Promise<void> {
    this.#stop = true;
    await this.#done;
  }
}

interface Layout {
  readonly cert: string;
  readonly key: string;
  /** Puts a pair (or any two texts) in place as its writer would. */
  install(cert: string, key: string): Promise<void>;
}

/** tls.crt and tls.key as kubelet mounts a Secret, swapped in one rename of `..data`. */
async function secretMount(t: Teardown): Promise<Layout> {
  const mount = await tempDir(t, 'imagegate-fault-secret-');
  let generation = 0;
  const install = async (cert: string, key: string) => {
    generation += 1;
    const dir = `..2026_11_24_${generation}`;
    await mkdir(join(mount, dir));
    await writeFile(join(mount, dir, 'tls.crt'), cert);
    await writeFile(join(mount, dir, 'tls.key'), key);
    await rm(join(mount, '..data_tmp'), { force: true });
    await symlink(dir, join(mount, '..data_tmp'));
    await rename(join(mount, '..data_tmp'), join(mount, '..data'));
  };
  const { a } = certificates();
  await install(a.cert, a.key);
  await symlink('..data/tls.crt', join(mount, 'tls.crt'));
  await symlink('..data/tls.key', join(mount, 'tls.key'));
  return { cert: join(mount, 'tls.crt'), key: join(mount, 'tls.key'), install };
}

/** Plain files, each replaced in one rename: the pair changes in two steps. */
async function plainFiles(t: Teardown): Promise<Layout> {
  const dir = await tempDir(t, 'imagegate-fault-tls-');
  const cert = join(dir, 'tls.crt');
  const key = join(dir, 'tls.key');
  const replace = async (path: string, text: string) => {
    await writeFile(`${path}.tmp`, text);
    await rename(`${path}.tmp`, path);
  };
  const { a } = certificates();
  await replace(cert, a.cert);
  await replace(key, a.key);
  return {
    cert,
    key,
    async install(certText, keyText) {
      await replace(key, keyText);
      await replace(cert, certText);
    },
  };
}

async function start(t: Teardown, layout: Layout): Promise<TestGateway> {
  return startTestGateway(t, {
    tlsCert: layout.cert,
    tlsKey: layout.key,
    ca: certificates().ca.cert,
    watchIntervalMs: INTERVAL_MS,
  });
}

/** Waits until new connections are served `pair`. */
async function servedBy(gw: TestGateway, pair: CertificatePair, what: string): Promise<void> {
  const want = serialOf(pair.cert);
  await poll(async () => ((await handshake(gw.port, gw.ca)) === want ? true : undefined), what);
}

test('a Secret rotated valid → valid: new connections get it, open ones carry on', async (t) => {
  const { a, b } = certificates();
  const layout = await secretMount(t);
  const gw = await start(t, layout);
  const keepAlive = new Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => keepAlive.destroy());
  const target = { port: gw.port, ca: gw.ca, path: '/v1/imagereview' };
  const before = await postJson(target, REVIEW, { agent: keepAlive });
  t.is(before.serialNumber, serialOf(a.cert));
  const traffic = new Traffic(gw);
  t.teardown(() => traffic.stop());

  await layout.install(b.cert, b.key);
  await servedBy(gw, b, 'certificate B');
  const during = await postJson(target, REVIEW, { agent: keepAlive });
  t.true(during.reusedSocket);
  t.is(during.serialNumber, serialOf(a.cert));
  t.is(await reloads(gw, 'certificate', 'ok'), 1);
  t.is(await reloads(gw, 'certificate', 'refused'), 0);
  t.is(gw.logs.messages('serving certificate reloaded').length, 1);

  await traffic.stop();
  t.deepEqual(traffic.failures, []);
  t.true(traffic.serials.has(serialOf(b.cert)));
});

test('certificate and key written one after the other: no handshake fails meanwhile', async (t) => {
  const { a, b } = certificates();
  const layout = await plainFiles(t);
  const gw = await start(t, layout);
  const traffic = new Traffic(gw);
  t.teardown(() => traffic.stop());

  // A writer that puts the certificate down, stalls for three poll intervals, then the key:
  // the gateway sees B's certificate with A's key in between and must not serve that.
  await writeFile(layout.cert, b.cert);
  await sleep(INTERVAL_MS * 3);
  t.is(await handshake(gw.port, gw.ca), serialOf(a.cert), 'A serves while the pair is split');
  await writeFile(layout.key, b.key);
  await servedBy(gw, b, 'certificate B');

  const refused = gw.logs.messages(REFUSED_MSG);
  t.true(refused.length <= 1);
  for (const line of refused) t.regex(String(line.error), /key values mismatch/);
  t.log(`split pair refused ${refused.length} time(s)`);
  await traffic.stop();
  t.deepEqual(traffic.failures, []);
  t.true(traffic.answered > 0);
});

interface Fault {
  readonly layout: (t: Teardown) => Promise<Layout>;
  inject(layout: Layout, pki: Pki): Promise<void>;
  readonly error: RegExp;
}

const refusedAndRestored = test.macro({
  async exec(t, fault: Fault) {
    const certs = certificates();
    const layout = await fault.layout(t);
    const gw = await start(t, layout);
    const traffic = new Traffic(gw);
    t.teardown(() => traffic.stop());
    await layout.install(certs.b.cert, certs.b.key);
    await servedBy(gw, certs.b, 'certificate B (the last good)');
    // Plain files change in two steps: a poll between them may already have refused a split
    // pair, so what follows counts from here.
    const refusedBefore = await reloads(gw, 'certificate', 'refused');
    const loggedBefore = gw.logs.messages(REFUSED_MSG).length;
    const okBefore = await reloads(gw, 'certificate', 'ok');

    await fault.inject(layout, certs);
    await poll(
      async () =>
        (await reloads(gw, 'certificate', 'refused')) === refusedBefore + 1 ? true : undefined,
      'the faulty pair to be refused',
    );
    t.is(await handshake(gw.port, gw.ca), serialOf(certs.b.cert), 'B keeps serving');
    const ready = await gw.health('/readyz');
    t.is(ready.status, 200);
    t.true(record(ready.body, '/readyz').ready);
    // The refusal shows where probes and operators look, with the certificate still in use.
    const tls = record(record(ready.body, '/readyz').tls, 'tls');
    t.like(tls, { cert: layout.cert, clientCa: null, lastLoad: { ok: false } });
    t.regex(String(record(tls.lastLoad, 'lastLoad').error), fault.error);
    t.is(tls.notAfter, new X509Certificate(certs.b.cert).validTo);
    const logged = gw.logs.messages(REFUSED_MSG).slice(loggedBefore);
    t.is(logged.length, 1);
    t.is(logged[0]?.level, 50);
    t.regex(String(logged[0]?.error), fault.error);
    await sleep(INTERVAL_MS * 6);
    t.is(
      await reloads(gw, 'certificate', 'refused'),
      refusedBefore + 1,
      'a pair that stays broken is refused once',
    );

    await layout.install(certs.c.cert, certs.c.key);
    await servedBy(gw, certs.c, 'certificate C (restored)');
    // Once, however the polls fall across the two steps of a plain-files install.
    t.is(await reloads(gw, 'certificate', 'ok'), okBefore + 1);
    const restored = record(record((await gw.health('/readyz')).body, '/readyz').tls, 'tls');
    t.like(restored, {
      lastLoad: { ok: true },
      notAfter: new X509Certificate(certs.c.cert).validTo,
    });

    await traffic.stop();
    t.deepEqual(traffic.failures, []);
    t.true(traffic.answered > 0);
    // A refusal logs OpenSSL's reason, never the files: no key material, whichever key.
    const keyLines = [certs.a, certs.b, certs.c].flatMap((pair) => keyBody(pair.key));
    t.true(keyLines.length >= 3 * 20, 'RSA 2048 keys have 25 base64 lines each');
    t.false(gw.logs.text.includes('PRIVATE KEY'), 'no PEM header in the logs');
    t.deepEqual(
      keyLines.filter((line) => gw.logs.text.includes(line)),
      [],
      'no line of any key in the logs',
    );
  },
  title: (title = '') => `certificate ${title}: refused, the last good pair keeps serving`,
});

test('and key removed (the Secret ..data link gone)', refusedAndRestored, {
  layout: secretMount,
  async inject(layout) {
    await rm(join(layout.cert, '..', '..data'));
  },
  error: /ENOENT/,
});

test('file removed', refusedAndRestored, {
  layout: plainFiles,
  inject: (layout) => rm(layout.cert),
  error: /ENOENT/,
});

test('key file removed', refusedAndRestored, {
  layout: plainFiles,
  inject: (layout) => rm(layout.key),
  error: /ENOENT/,
});

test('replaced with garbage', refusedAndRestored, {
  layout: secretMount,
  inject: (layout, { b }) => layout.install('-----BEGIN CERTIFICATE-----\ngarbage\n', b.key),
  error: /PEM|certificate|ASN1|asn1|header|no start line/i,
});

test('key replaced with garbage', refusedAndRestored, {
  layout: secretMount,
  inject: (layout, { b }) => layout.install(b.cert, 'not a key\n'),
  error: /DECODER routines::unsupported|PEM|no start line/i,
});

test('paired with another key (mismatch)', refusedAndRestored, {
  layout: secretMount,
  inject: (layout, { a, c }) => layout.install(c.cert, a.key),
  error: /key values mismatch/,
});

test('emptied (zero-byte files)', refusedAndRestored, {
  layout: secretMount,
  inject: (layout) => layout.install('', ''),
  error: /PEM|no start line|key|certificate/i,
});

// An expired certificate put back by mistake would fail every new connection (the API
// server's): admission would fail closed cluster-wide although a good pair was serving.
test('an expired certificate is refused; the last good pair keeps serving', async (t) => {
  const certs = certificates();
  const expired = issueCertificate(certs.ca, {
    commonName: 'imagegate-expired',
    usage: 'server',
    altNames: ['localhost', '127.0.0.1'],
    validityDays: -1,
  });
  const layout = await secretMount(t);
  const gw = await start(t, layout);
  await layout.install(expired.cert, expired.key);
  await poll(async () => {
    const seen =
      (await reloads(gw, 'certificate', 'ok')) + (await reloads(gw, 'certificate', 'refused'));
    return seen > 0 ? true : undefined;
  }, 'the expired pair to be looked at');
  t.is(await reloads(gw, 'certificate', 'refused'), 1);
  t.is(await handshake(gw.port, gw.ca), serialOf(certs.a.cert));
});

// --client-ca rotates with the pair: the API server's client certificate can move to a new
// CA without a restart, and a CA file without a certificate is refused like a bad pair.
test('the client CA rotates without a restart; a CA file with no certificate is refused', async (t) => {
  const certs = certificates();
  const dir = await tempDir(t, 'imagegate-fault-client-ca-');
  const files = { cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key'), ca: join(dir, 'ca.crt') };
  const replace = async (path: string, text: string) => {
    await writeFile(`${path}.tmp`, text);
    await rename(`${path}.tmp`, path);
  };
  const oldCa = createCa('apiserver clients, old');
  const newCa = createCa('apiserver clients, new');
  const client = (ca: typeof oldCa) =>
    issueCertificate(ca, { commonName: 'kube-apiserver', usage: 'client' });
  const [oldClient, newClient] = [client(oldCa), client(newCa)];
  await replace(files.cert, certs.a.cert);
  await replace(files.key, certs.a.key);
  await replace(files.ca, oldCa.cert);
  const gw = await startTestGateway(t, {
    tlsCert: files.cert,
    tlsKey: files.key,
    clientCa: files.ca,
    ca: certs.ca.cert,
    watchIntervalMs: INTERVAL_MS,
  });
  const target = { port: gw.port, ca: gw.ca, path: '/v1/imagereview' };
  const accepted = async (identity: CertificatePair) => {
    try {
      const result = await postJson(target, REVIEW, { cert: identity.cert, key: identity.key });
      return result.status === 200;
    } catch {
      return false; // refused in the handshake
    }
  };
  t.true(await accepted(oldClient));
  t.false(await accepted(newClient));

  await replace(files.ca, newCa.cert);
  await poll(async () => ((await accepted(newClient)) ? true : undefined), 'the new client CA');
  t.false(await accepted(oldClient), 'the old CA no longer verifies anyone');

  await replace(files.ca, 'not a certificate\n');
  await poll(
    async () => ((await reloads(gw, 'certificate', 'refused')) === 1 ? true : undefined),
    'the empty CA file to be refused',
  );
  t.true(await accepted(newClient), 'the last good client CA keeps verifying');
  const tls = record(record((await gw.health('/readyz')).body, '/readyz').tls, 'tls');
  t.like(tls, { clientCa: files.ca, lastLoad: { ok: false } });
  t.regex(
    String(record(tls.lastLoad, 'lastLoad').error),
    /client CA file holds no PEM certificate/,
  );
});

test('serve does not start with a client CA file that holds no certificate', async (t) => {
  const certs = certificates();
  const dir = await tempDir(t, 'imagegate-fault-client-ca-');
  const files = { cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key'), ca: join(dir, 'ca.crt') };
  await writeFile(files.cert, certs.a.cert);
  await writeFile(files.key, certs.a.key);
  await writeFile(files.ca, certs.a.key); // a key where the CA should be: a classic mix-up
  const error = await t.throwsAsync(
    startTestGateway(t, {
      tlsCert: files.cert,
      tlsKey: files.key,
      clientCa: files.ca,
      ca: certs.ca.cert,
    }),
  );
  t.is(error?.message, `--client-ca ${files.ca}: the client CA file holds no PEM certificate`);
});
