/**
 * One rotation is one reload: a poll that lands between the two steps of a plain-files
 * rotation reads the finished pair, and the poll after it sees the same pair again. The
 * second read changes nothing and must neither count nor log (CI saw ok=4 for two rotations).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { SecureContextOptions } from 'node:tls';
import test from 'ava';
import { loadServingTls } from '../../src/server/tls-reload.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { createMetrics } from '../../src/shared/metrics.ts';
import { createCa, issueCertificate } from '../../src/tls/certs.ts';
import { LogCapture, tempDir } from '../helpers/gateway.ts';
import { reloadCount } from '../helpers/reload-traffic.ts';

const RELOADED = 'serving certificate reloaded';

test('reading the pair that already serves is no rotation; a refusal then a fix is', async (t) => {
  const ca = createCa('imagegate tls-reload test');
  const pair = () => issueCertificate(ca, { commonName: 'localhost', usage: 'server' });
  const [b, c] = [pair(), pair()];
  const dir = await tempDir(t);
  const files = { cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key'), clientCa: undefined };
  await writeFile(files.cert, b.cert);
  await writeFile(files.key, b.key);
  const metrics = createMetrics({ processMetrics: false });
  const logs = new LogCapture();
  const tls = await loadServingTls(files, {
    metrics,
    logger: createLogger('info', logs),
    intervalMs: 1000,
    changed: () => {},
  });
  const contexts: SecureContextOptions[] = [];
  const https = { setSecureContext: (options: SecureContextOptions) => contexts.push(options) };
  const count = async (result: 'ok' | 'refused') =>
    reloadCount(await metrics.registry.metrics(), 'certificate', result);

  await tls.reload(https);
  t.is(await count('ok'), 0, 'the initial pair read again');
  t.is(contexts.length, 0);

  await writeFile(files.cert, c.cert);
  await writeFile(files.key, c.key);
  await tls.reload(https);
  await tls.reload(https);
  t.is(await count('ok'), 1, 'one rotation, read twice');
  t.is(contexts.length, 1);
  t.is(logs.messages(RELOADED).length, 1);

  // A broken pair is refused, and putting the serving pair back is a reload again: the
  // status must leave the refusal behind.
  await writeFile(files.key, b.key);
  await tls.reload(https);
  t.is(await count('refused'), 1);
  t.is(tls.status()?.lastLoad.ok, false);
  await writeFile(files.key, c.key);
  await tls.reload(https);
  t.is(await count('ok'), 2);
  t.is(tls.status()?.lastLoad.ok, true);
});
