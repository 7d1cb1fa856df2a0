/**
 * Reload under load (issue §4): imagegate serves a bundle directory (a mounted ConfigMap)
 * while test/bench/load.mjs keeps 64 connections busy on /v1/validate; the bundle file is
 * replaced N times, alternating two bundles built from rego/ with different revisions, by
 * an atomic rename (a dot-file is ignored by the gateway until renamed). For each swap:
 * the time from the rename until /readyz reports the new revision. Requirement: not one
 * failed request (connection error, timeout, reset or non-2xx) over the whole run.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { load, startImagegate, writeBodies } from './http.mjs';
import { httpJson, log, OPA, ROOT, sleep } from './lib.mjs';

const run = promisify(execFile);
const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);

/** The gateway polls watched files every 2 s and acts on a change seen twice in a row. */
export const WATCH_INTERVAL_MS = 2000;

async function buildBundle(out, revision) {
  const started = performance.now();
  await run(
    OPA,
    [
      'build',
      '-t',
      'wasm',
      '-b',
      'rego',
      '-e',
      'imagegate/validate/decision',
      '-e',
      'imagegate/mutate/decision',
      '-e',
      'imagegate/facts/needed',
      '-e',
      'imagegate/facts/decided',
      '--revision',
      revision,
      '--ignore',
      '*_test.rego',
      '-o',
      out,
    ],
    { cwd: ROOT },
  );
  return performance.now() - started;
}

export async function runReload({ tmp, tls, quick }) {
  const swaps = quick ? 1 : 6;
  const bundles = { a: join(tmp, 'bench-a.tar.gz'), b: join(tmp, 'bench-b.tar.gz') };
  const buildMs = {
    a: await buildBundle(bundles.a, 'bench-a'),
    b: await buildBundle(bundles.b, 'bench-b'),
  };
  const dir = join(tmp, 'bundle-dir');
  mkdirSync(dir, { recursive: true });
  const target = join(dir, 'imagegate.tar.gz');
  copyFileSync(bundles.a, target);

  const bodies = writeBodies(tmp);
  const gateway = await startImagegate('imagegate-reload', {
    tmp,
    cert: tls.certFile,
    key: tls.keyFile,
    logLevel: 'warn',
    bundle: dir,
  });
  const revision = async () => (await httpJson(`${gateway.health}/readyz`)).json?.revision;
  try {
    const initial = await revision();
    if (initial !== 'bench-a') throw new Error(`reload: serving ${initial}, expected bench-a`);
    // Long enough for every swap (two watch intervals each, plus slack) to happen under load.
    const duration = swaps * ((2 * WATCH_INTERVAL_MS) / 1000 + 2) + 4;
    const loading = load({
      url: gateway.url('validate'),
      body: bodies.forEndpoint('validate'),
      connections: 64,
      warmup: 1,
      duration,
      pids: [gateway.pid],
      quiet: false,
    });
    // The load process starts, warms up for 1 s, then measures; swap only after that. Each
    // swap is checked against the load's measured window afterwards (`underLoad`).
    await sleep(2500);
    const results = [];
    for (let i = 0; i < swaps; i++) {
      const next = i % 2 === 0 ? 'b' : 'a';
      const staging = join(dir, '.imagegate.tar.gz.next');
      copyFileSync(bundles[next], staging);
      const swappedAt = performance.now();
      renameSync(staging, target);
      let seen;
      while (performance.now() - swappedAt < 20_000) {
        seen = await revision();
        if (seen === `bench-${next}`) break;
        await sleep(25);
      }
      const effectMs = performance.now() - swappedAt;
      results.push({
        to: `bench-${next}`,
        effectMs,
        ok: seen === `bench-${next}`,
        // CLOCK_MONOTONIC µs, as the load process reports its window.
        window: [monotonicUs() - effectMs * 1000, monotonicUs()],
      });
      log(`reload: swap ${i + 1}/${swaps} → bench-${next} in ${effectMs.toFixed(0)} ms`);
      await sleep(500);
    }
    const result = await loading;
    const failed = result.errors + result.timeouts + result.non2xx + result.resets;
    const [from, to] = result.monotonicWindowUs;
    return {
      swaps: results.map(({ window, ...swap }) => ({
        ...swap,
        underLoad: window[0] >= from && window[1] <= to,
      })),
      buildMs,
      watchIntervalMs: WATCH_INTERVAL_MS,
      load: result,
      failed,
    };
  } finally {
    await gateway.kill();
  }
}
