/**
 * RemoteBundle's decisions, with a scripted source: a refused bundle is not fetched again
 * until the source changes, a kept bundle is served when the first poll fails and counts as
 * the source's once the source confirms it, a long-polling source is asked again at once.
 */
import test from 'ava';
import { saveBundle } from '../../src/distribution/bundle-store.ts';
import {
  type Activate,
  type Fetched,
  type Fetcher,
  RemoteBundle,
} from '../../src/distribution/remote-bundle.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { poll, tempDir } from '../helpers/teardown.ts';

const location = {
  kind: 'http' as const,
  url: new URL('https://bundles.example.com/b.tar.gz'),
  display: 'https://bundles.example.com/b.tar.gz',
};
const logger = createLogger('silent');

/** A source answering from a script (the last answer repeats); records what it was asked. */
function scripted(answers: (Fetched | Error)[]): { fetch: Fetcher; asked: (string | undefined)[] } {
  const asked: (string | undefined)[] = [];
  return {
    asked,
    fetch: async (current) => {
      asked.push(current);
      const next = answers.length > 1 ? answers.shift() : answers[0];
      if (next === undefined || next instanceof Error) throw next ?? new Error('no answer');
      return next;
    },
  };
}

const archive = (text: string) => Buffer.from(text);

test('a refused bundle is not fetched again; the next version is', async (t) => {
  const { fetch, asked } = scripted([
    { changed: true, version: 'v1', archive: archive('bad') },
    { changed: false, version: 'v1' },
    { changed: false, version: 'v1' },
    { changed: true, version: 'v2', archive: archive('good') },
    { changed: false, version: 'v2' },
  ]);
  const activated: string[] = [];
  const activate: Activate = async (bytes) => {
    activated.push(bytes.toString());
    return bytes.toString() === 'good' ? { ok: true, revision: 'r2' } : { ok: false };
  };
  const remote = new RemoteBundle({
    location,
    fetch,
    timing: { intervalMs: 10, maxBackoffMs: 20 },
    pollBudgetMs: 1_000,
    logger,
  });
  t.teardown(() => remote.stop());
  t.false(await remote.start(activate), 'nothing serves after a refusal');
  await poll(async () => (remote.status.version === 'v2' ? true : undefined), 'v2');
  t.deepEqual(activated, ['bad', 'good'], 'v1 was activated once');
  t.is(asked[1], 'v1', 'the refused version is what the source is compared with');
  t.like(remote.status, { origin: 'remote', version: 'v2', consecutiveFailures: 0 });
  t.is(remote.serving?.toString(), 'good');
});

test('the first poll fails: the kept bundle serves, and is the source’s once it confirms it', async (t) => {
  const dir = await tempDir(t, 'imagegate-remote-');
  await saveBundle(dir, archive('kept'), {
    source: location.display,
    revision: 'r1',
    version: '"etag-1"',
    fetchedAt: '2026-12-07T10:00:00.000Z',
    activatedAt: '2026-12-07T10:00:01.000Z',
  });
  const { fetch, asked } = scripted([
    new Error('connection refused'),
    new Error('connection refused'),
    { changed: false, version: '"etag-1"' },
  ]);
  const origins: (string | undefined)[] = [];
  const remote: RemoteBundle = new RemoteBundle({
    location,
    fetch,
    timing: { intervalMs: 10, maxBackoffMs: 20 },
    pollBudgetMs: 1_000,
    persistDir: dir,
    logger,
    changed: () => origins.push(remote.status.origin),
  });
  t.teardown(() => remote.stop());
  t.true(await remote.start(async () => ({ ok: true, revision: 'r1' })));
  t.like(remote.status, { origin: 'persisted', version: '"etag-1"', consecutiveFailures: 1 });
  await poll(async () => (remote.status.origin === 'remote' ? true : undefined), 'confirmed');
  t.is(asked.at(-1), '"etag-1"', 'asked whether the kept version is still current');
  t.true(origins.includes('persisted'));
});

test('a long-polling source is asked again at once, but never in a busy loop', async (t) => {
  const count = async (longPoll: boolean) => {
    const { fetch, asked } = scripted([
      { changed: true, version: 'v1', archive: archive('a'), longPoll },
      { changed: false, version: 'v1', longPoll },
    ]);
    const remote = new RemoteBundle({
      location,
      fetch,
      timing: { intervalMs: 60_000, maxBackoffMs: 60_000 },
      pollBudgetMs: 1_000,
      logger,
    });
    await remote.start(async () => ({ ok: true, revision: 'r' }));
    await new Promise((resolve) => setTimeout(resolve, 200));
    remote.stop();
    return asked.length;
  };
  // A new bundle through a long poll: asked again at once; an "unchanged" the server did not
  // hold: the interval, as for a plain source.
  t.is(await count(true), 2);
  t.is(await count(false), 1, 'asked once, the next poll a minute away');
});
