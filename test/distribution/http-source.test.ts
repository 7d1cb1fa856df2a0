/**
 * `--bundle https://…`, OPA's bundle service protocol, against Debian's real nginx serving
 * bundle files (its own ETags and 304s), a bearer token and a client certificate checked by
 * nginx, an outage with a revision published during it; and long polling against a server
 * written to OPA's protocol (nginx has none).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RemoteSourceOptions } from '../../src/server/bundle-source.ts';
import { BUNDLES_TYPE, startLongPollServer } from '../helpers/bundle-server.ts';
import { debianTest } from '../helpers/debian-test.ts';
import { podReview, variantBundle } from '../helpers/fleet.ts';
import {
  admissionAnswer,
  poll,
  record,
  startTestGateway,
  type Teardown,
  type TestGateway,
  tempDir,
} from '../helpers/gateway.ts';
import { startNginx } from '../helpers/nginx.ts';

const test = await debianTest('bundle service source');

function remoteOptions(
  service: Partial<RemoteSourceOptions['service']> = {},
  timing = { intervalMs: 150, maxBackoffMs: 400 },
): RemoteSourceOptions {
  return {
    timing,
    service: { timeoutMs: 2_000, longPollSeconds: 0, caFiles: [], ...service },
    artifactKeys: [],
  };
}

async function allowed(gateway: TestGateway, image: string): Promise<boolean> {
  return (
    admissionAnswer(await gateway.post('/v1/validate', podReview(image))).response.allowed === true
  );
}

async function readyz(gateway: TestGateway) {
  const result = await gateway.health('/readyz');
  return { status: result.status, body: record(result.body, '/readyz') };
}

const source = (body: Record<string, unknown>) => record(body.bundleSource, 'bundleSource');

function until(
  gateway: TestGateway,
  check: (body: Record<string, unknown>) => boolean,
  what: string,
) {
  return poll(
    async () => {
      const { body } = await readyz(gateway);
      return check(body) ? body : undefined;
    },
    what,
    { tries: 300, everyMs: 50 },
  );
}

async function caFile(t: Teardown, pem: string): Promise<string> {
  const path = join(await tempDir(t, 'imagegate-ca-'), 'ca.crt');
  await writeFile(path, pem);
  return path;
}

test('nginx: served with its ETag, polled with If-None-Match (304), a new file picked up', async (t) => {
  const nginx = await startNginx(t);
  await nginx.publish('bundles/imagegate.tar.gz', await variantBundle('fleet-a', 'a.example.com'));
  const gateway = await startTestGateway(t, {
    bundle: `${nginx.origin}/bundles/imagegate.tar.gz`,
    remote: remoteOptions({ caFiles: [nginx.caFile] }),
  });
  await until(gateway, (body) => body.revision === 'fleet-a', 'fleet-a');
  const first = await readyz(gateway);
  t.like(source(first.body), { kind: 'http', origin: 'remote' });
  const etag = String(source(first.body).version);
  t.regex(etag, /^"[0-9a-f]+-[0-9a-f]+"$/, "nginx's ETag");
  t.true(await allowed(gateway, 'a.example.com/app:1'));

  await poll(
    async () =>
      (await nginx.accessLog()).filter((l) => l.endsWith(`304 "${etag.replaceAll('"', '\\x22')}"`))
        .length >= 3 || undefined,
    'three 304s to If-None-Match',
  );
  const log = await nginx.accessLog();
  t.is(log.filter((l) => / 200 /.test(l)).length, 1, 'downloaded once');

  await nginx.publish('bundles/imagegate.tar.gz', await variantBundle('fleet-b', 'b.example.com'));
  await until(gateway, (body) => body.revision === 'fleet-b', 'fleet-b');
  t.true(await allowed(gateway, 'b.example.com/app:1'));
  t.false(await allowed(gateway, 'a.example.com/app:1'));
});

test('nginx down: the last good policy serves; a bundle published meanwhile is picked up after', async (t) => {
  const nginx = await startNginx(t);
  await nginx.publish('bundles/imagegate.tar.gz', await variantBundle('fleet-a', 'a.example.com'));
  const gateway = await startTestGateway(t, {
    bundle: `${nginx.origin}/bundles/imagegate.tar.gz`,
    remote: remoteOptions({ caFiles: [nginx.caFile] }),
  });
  await until(gateway, (body) => body.revision === 'fleet-a', 'fleet-a');
  await nginx.stop();
  const down = await until(gateway, (b) => Number(source(b).consecutiveFailures) >= 3, 'failures');
  t.is(down.ready, true);
  t.is(down.revision, 'fleet-a');
  t.regex(String(source(down).lastError), /unreachable/);
  t.true(await allowed(gateway, 'a.example.com/app:1'));

  await nginx.publish('bundles/imagegate.tar.gz', await variantBundle('fleet-b', 'b.example.com'));
  await nginx.start();
  const after = await until(
    gateway,
    (body) => body.revision === 'fleet-b',
    'fleet-b after the outage',
  );
  t.is(source(after).consecutiveFailures, 0);
});

test('nginx: a bearer token from a file and a TLS client certificate', async (t) => {
  const nginx = await startNginx(t);
  const bundle = await variantBundle('fleet-a', 'a.example.com');
  await nginx.publish('secure/imagegate.tar.gz', bundle);
  await nginx.publish('mtls/imagegate.tar.gz', bundle);

  const refused = await startTestGateway(t, {
    bundle: `${nginx.origin}/secure/imagegate.tar.gz`,
    remote: remoteOptions({ caFiles: [nginx.caFile] }),
  });
  const without = await readyz(refused);
  t.is(without.status, 503, 'no token: nothing loads');
  t.regex(String(source(without.body).lastError), /answered 401/);

  const bearer = await startTestGateway(t, {
    bundle: `${nginx.origin}/secure/imagegate.tar.gz`,
    remote: remoteOptions({ caFiles: [nginx.caFile], tokenFile: nginx.tokenFile }),
  });
  await until(bearer, (body) => body.revision === 'fleet-a', 'fleet-a');
  t.true((await nginx.accessLog()).some((l) => l.startsWith('GET /secure/imagegate.tar.gz 200')));

  const mtls = await startTestGateway(t, {
    bundle: `${nginx.origin}/mtls/imagegate.tar.gz`,
    remote: remoteOptions({
      caFiles: [nginx.caFile],
      clientCert: nginx.clientCert,
      clientKey: nginx.clientKey,
    }),
  });
  await until(mtls, (body) => body.revision === 'fleet-a', 'fleet-a');
});

test('long polling: the server holds the request and a new bundle arrives at once', async (t) => {
  const server = await startLongPollServer(t, await variantBundle('fleet-a', 'a.example.com'));
  // A minute between polls: only long polling can bring the next bundle within the test.
  const gateway = await startTestGateway(t, {
    bundle: server.url,
    remote: remoteOptions(
      { caFiles: [await caFile(t, server.ca)], longPollSeconds: 30 },
      { intervalMs: 60_000, maxBackoffMs: 60_000 },
    ),
  });
  await until(gateway, (body) => body.revision === 'fleet-a', 'fleet-a');
  await poll(
    async () =>
      server.requests.some((h) => h.prefer === 'modes=snapshot;wait=30') ? true : undefined,
    'a long poll',
  );
  t.is(source((await readyz(gateway)).body).longPolling, true);
  const published = Date.now();
  server.publish(await variantBundle('fleet-b', 'b.example.com'));
  await until(gateway, (body) => body.revision === 'fleet-b', 'fleet-b through the long poll');
  t.true(Date.now() - published < 5_000, 'well before the next interval');
  t.is(server.requests[0]?.prefer, undefined, 'the first request does not ask to wait');
  t.regex(String(server.requests[0]?.accept), new RegExp(BUNDLES_TYPE.replaceAll('.', '\\.')));
});
