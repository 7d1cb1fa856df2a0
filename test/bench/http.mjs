/**
 * HTTPS end to end (issue §2): imagegate (compiled dist/, --log-level warn and info), the
 * OPA server on the same Rego (test/bench/opa/webhook.rego), and a no-op Koa server, all
 * with TLS, all running at once, loaded in turn by test/bench/load.mjs in its own process
 * with the same bodies. Before any load, every server's answer is fetched with a client
 * that verifies the bench CA and compared with imagegate's, so all three do the same job.
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  CLI,
  childPids,
  FIXTURE,
  freePort,
  httpJson,
  httpsJson,
  imageReviewFor,
  log,
  OPA,
  ROOT,
  sameJson,
  settle,
  startProcess,
  statusBytes,
  waitFor,
} from './lib.mjs';

const run = promisify(execFile);
export const ENDPOINTS = ['validate', 'mutate', 'imagereview'];

/**
 * Where OPA's time goes, by `opa bench` (topdown, one core, no HTTP) on the validate body:
 * the whole webhook rule, the Rego input translation alone, and imagegate's validate
 * decision on the input src/review/policy-input.ts builds.
 */
async function opaSplit(tmp, body) {
  const { parseAdmissionReview } = await import(
    join(ROOT, 'dist', 'src', 'review', 'admission-review.js')
  );
  const { admissionInput } = await import(join(ROOT, 'dist', 'src', 'review', 'policy-input.js'));
  const review = parseAdmissionReview(JSON.parse(readFileSync(body, 'utf8')));
  const inputFile = join(tmp, 'policy-input.json');
  writeFileSync(inputFile, JSON.stringify(admissionInput(review.apiVersion, review.request)));
  const queries = [
    ['webhook validate (translation + policy + response)', 'data.bench.webhook.validate', body],
    ['input translation only', 'data.bench.webhook.admission_input', body],
    [
      'imagegate validate decision on a precomputed input',
      'data.imagegate.validate.decision',
      inputFile,
    ],
  ];
  const split = [];
  for (const [what, query, input] of queries) {
    const { stdout } = await run(
      OPA,
      [
        'bench',
        '--format',
        'json',
        '--ignore',
        '*_test.rego',
        '-d',
        join(ROOT, 'rego'),
        '-d',
        join(ROOT, 'test', 'bench', 'opa'),
        '-i',
        input,
        query,
      ],
      { cwd: ROOT, maxBuffer: 1 << 20 },
    );
    const extra = JSON.parse(stdout).Extra;
    split.push({
      what,
      query,
      medianUs: extra.histogram_timer_rego_query_eval_ns_median / 1000,
      p99Us: extra['histogram_timer_rego_query_eval_ns_99%'] / 1000,
    });
  }
  return split;
}

/**
 * The OPA side's translation, checked beyond the benchmark body: every review fixture in
 * test/fixtures, imagegate's answer against OPA's. Reported, not enforced: the Rego parser
 * words invalid-reference errors differently by design.
 */
async function compareOnFixtures(imagegate, opa, ca) {
  const cases = [];
  for (const dir of ['admission', 'imagereview']) {
    const path = join(ROOT, 'test', 'fixtures', dir);
    for (const file of readdirSync(path)
      .filter((f) => f.endsWith('.json'))
      .sort()) {
      const endpoints = dir === 'admission' ? ['validate', 'mutate'] : ['imagereview'];
      for (const endpoint of endpoints)
        cases.push({ file: join(path, file), name: file, endpoint });
    }
  }
  const differing = [];
  for (const { file, name, endpoint } of cases) {
    const body = readFileSync(file);
    const ours = await httpsJson(imagegate.url(endpoint), { ca, method: 'POST', body });
    const theirs = await httpsJson(opa.url(endpoint), { ca, method: 'POST', body });
    if (!sameJson(ours.json, theirs.json)) differing.push(`${endpoint} ${name}`);
  }
  return { cases: cases.length, differing };
}

/**
 * Starts `imagegate serve` from dist/ (or another build's `cli`) and waits for /readyz;
 * with `workers`, also for every worker, whose pids join the primary's for CPU accounting.
 */
export async function startImagegate(
  name,
  { tmp, cert, key, logLevel, bundle, nodeArgs = [], cli = CLI, workers = 1, args = [] },
) {
  const port = await freePort();
  const healthPort = await freePort();
  const proc = startProcess(
    name,
    process.execPath,
    [
      ...nodeArgs,
      cli,
      'serve',
      ...(workers === 1 ? [] : ['--workers', String(workers)]),
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      '--health-port',
      String(healthPort),
      '--tls-cert',
      cert,
      '--tls-key',
      key,
      '--state-dir',
      join(tmp, `${name}-state`),
      '--log-level',
      logLevel,
      ...(bundle === undefined ? [] : ['--bundle', bundle]),
      ...args,
    ],
    { logDir: tmp },
  );
  const health = `http://127.0.0.1:${healthPort}`;
  await waitFor(
    `${name} readiness`,
    async () => (await httpJson(`${health}/readyz`)).status === 200,
    { proc },
  );
  let pids = [proc.pid];
  if (workers > 1) {
    await waitFor(`${name} workers`, () => childPids(proc.pid).length === workers, { proc });
    pids = [proc.pid, ...childPids(proc.pid)];
  }
  return {
    ...proc,
    pids,
    base: `https://127.0.0.1:${port}`,
    health,
    url: (endpoint) => `https://127.0.0.1:${port}/v1/${endpoint}`,
  };
}

export async function startOpa(name, { tmp, cert, key, ca }) {
  const port = await freePort();
  const proc = startProcess(
    name,
    OPA,
    [
      'run',
      '--server',
      '--addr',
      `127.0.0.1:${port}`,
      '--tls-cert-file',
      cert,
      '--tls-private-key-file',
      key,
      '--ignore',
      '*_test.rego',
      '--log-level',
      'error',
      join(ROOT, 'rego'),
      join(ROOT, 'test', 'bench', 'opa'),
    ],
    { logDir: tmp },
  );
  const base = `https://127.0.0.1:${port}`;
  await waitFor(
    `${name} readiness`,
    async () => (await httpsJson(`${base}/health`, { ca })).status === 200,
    { proc },
  );
  return { ...proc, base, url: (endpoint) => `${base}/v0/data/bench/webhook/${endpoint}` };
}

export async function startNoop(name, { tmp, cert, key, ca, responses, nodeArgs = [] }) {
  const port = await freePort();
  const file = join(tmp, `${name}-responses.json`);
  writeFileSync(file, JSON.stringify(responses));
  const proc = startProcess(
    name,
    process.execPath,
    [
      ...nodeArgs,
      join(ROOT, 'test', 'bench', 'noop-server.mjs'),
      '--port',
      String(port),
      '--cert',
      cert,
      '--key',
      key,
      '--responses',
      file,
    ],
    { logDir: tmp },
  );
  const base = `https://127.0.0.1:${port}`;
  await waitFor(
    `${name} readiness`,
    async () => (await httpsJson(`${base}/`, { ca })).status === 404,
    { proc },
  );
  return { ...proc, base, url: (endpoint) => `${base}/v1/${endpoint}` };
}

/** One load run in its own process; resolves with load.mjs's JSON. */
export async function load(options) {
  const { url, body, connections, warmup, duration, pids, rate, ca } = options;
  // `quiet: false` starts at once (the reload bench times its swaps against the load).
  const background = options.quiet === false ? undefined : await settle();
  const args = [
    join(ROOT, 'test', 'bench', 'load.mjs'),
    '--url',
    url,
    '--body',
    body,
    '--connections',
    String(connections),
    '--warmup',
    String(warmup),
    '--duration',
    String(duration),
    ...pids.flatMap((pid) => ['--pid', String(pid)]),
    ...(rate === undefined ? [] : ['--rate', String(Math.round(rate))]),
    ...(ca === undefined ? [] : ['--ca', ca]),
  ];
  const { stdout } = await run(process.execPath, args, {
    cwd: ROOT,
    timeout: (warmup + duration + 60) * 1000,
    maxBuffer: 1 << 20,
  });
  return { ...JSON.parse(stdout.trim().split('\n').at(-1)), background };
}

export const vmRss = (pid) => statusBytes(pid, 'VmRSS');

/**
 * Writes the request bodies: the fixture pod compacted, as the API server sends it (Go's
 * encoding/json), and the ImageReview the API server would send for the same pod.
 */
export function writeBodies(tmp) {
  const review = JSON.parse(readFileSync(FIXTURE, 'utf8'));
  const admission = JSON.stringify(review);
  const imageReview = JSON.stringify(imageReviewFor(review));
  const files = {
    admission: join(tmp, 'admission-body.json'),
    imagereview: join(tmp, 'imagereview-body.json'),
  };
  writeFileSync(files.admission, admission);
  writeFileSync(files.imagereview, imageReview);
  return {
    files,
    bytes: { admission: Buffer.byteLength(admission), imagereview: Buffer.byteLength(imageReview) },
    forEndpoint: (endpoint) => (endpoint === 'imagereview' ? files.imagereview : files.admission),
  };
}

/** Servers in the order their rows appear; `before` runs only with a baseline build. */
export const SERVER_ORDER = ['warn', 'workers', 'before', 'info', 'opa', 'noop'];

export async function runHttp({ tmp, tls, quick, baseline }) {
  const { ca, certFile: cert, keyFile: key } = tls;
  const plan = quick
    ? { c64: { warmup: 0.5, duration: 1 }, c1: { warmup: 0.3, duration: 0.7 }, rateShare: 0.25 }
    : { c64: { warmup: 3, duration: 8 }, c1: { warmup: 1, duration: 3 }, rateShare: 0.25 };
  const bodies = writeBodies(tmp);

  log('http: starting imagegate (warn, --workers 2, info, baseline), OPA server');
  const servers = {};
  servers.warn = await startImagegate('imagegate-warn', { tmp, cert, key, logLevel: 'warn' });
  servers.workers = await startImagegate('imagegate-workers', {
    tmp,
    cert,
    key,
    logLevel: 'warn',
    workers: 2,
  });
  if (baseline !== undefined) {
    // The baseline build serves the bundle this build ships: only the code differs.
    servers.before = await startImagegate('imagegate-before', {
      tmp,
      cert,
      key,
      logLevel: 'warn',
      cli: baseline.cli,
      bundle: join(ROOT, 'bundles', 'imagegate.tar.gz'),
    });
  }
  servers.info = await startImagegate('imagegate-info', { tmp, cert, key, logLevel: 'info' });
  servers.opa = await startOpa('opa', { tmp, cert, key, ca });
  try {
    const reference = {};
    const responses = {};
    for (const endpoint of ENDPOINTS) {
      const body = readFileSync(bodies.forEndpoint(endpoint));
      const answer = await httpsJson(servers.warn.url(endpoint), { ca, method: 'POST', body });
      if (answer.status !== 200 || answer.json === undefined) {
        throw new Error(`imagegate ${endpoint}: ${answer.status} ${answer.text}`);
      }
      reference[endpoint] = answer.json;
      responses[`/v1/${endpoint}`] = answer.json;
    }
    servers.noop = await startNoop('noop', { tmp, cert, key, ca, responses });

    // Same job everywhere: every server's answer equals imagegate's (JSON, key order aside).
    const equivalence = {};
    for (const [id, server] of Object.entries(servers)) {
      for (const endpoint of ENDPOINTS) {
        const body = readFileSync(bodies.forEndpoint(endpoint));
        const answer = await httpsJson(server.url(endpoint), { ca, method: 'POST', body });
        equivalence[`${id}/${endpoint}`] = {
          status: answer.status,
          same: answer.status === 200 && sameJson(answer.json, reference[endpoint]),
          bytes: Buffer.byteLength(answer.text),
        };
      }
    }
    const different = Object.entries(equivalence).filter(([, v]) => !v.same);
    if (different.length > 0) {
      throw new Error(`answers differ from imagegate's: ${JSON.stringify(different)}`);
    }
    const fixtures = await compareOnFixtures(servers.warn, servers.opa, ca);

    const order = SERVER_ORDER.filter((id) => servers[id] !== undefined);
    const rows = [];
    for (const connections of [64, 1]) {
      const { warmup, duration } = connections === 64 ? plan.c64 : plan.c1;
      for (const [e, endpoint] of ENDPOINTS.entries()) {
        // Rotate the order per endpoint so drift in background load is spread over targets.
        const rotated = [...order.slice(e % order.length), ...order.slice(0, e % order.length)];
        for (const id of rotated) {
          const server = servers[id];
          const result = await load({
            url: server.url(endpoint),
            body: bodies.forEndpoint(endpoint),
            connections,
            warmup,
            duration,
            pids: server.pids ?? [server.pid],
          });
          log(
            `http: ${id} ${endpoint} c=${connections}: ${result.rps.toFixed(0)} req/s, ` +
              `p99 ${(result.latencyUs.p99 / 1000).toFixed(2)} ms`,
          );
          rows.push({ target: id, endpoint, connections, ...result });
        }
      }
    }
    // The same 64 connections at a fixed offered rate below capacity: latency without the
    // queue a saturating closed loop builds (Little: 64 connections / throughput).
    const fixedRate = [];
    for (const endpoint of ENDPOINTS) {
      const capacity = rows.find(
        (r) => r.target === 'warn' && r.endpoint === endpoint && r.connections === 64,
      ).rps;
      const result = await load({
        url: servers.warn.url(endpoint),
        body: bodies.forEndpoint(endpoint),
        connections: 64,
        ...plan.c64,
        pids: [servers.warn.pid],
        rate: capacity * plan.rateShare,
        ca: tls.caFile,
      });
      log(
        `http: warn ${endpoint} c=64 at ${result.rate} req/s offered: ` +
          `p99 ${(result.latencyUs.p99 / 1000).toFixed(2)} ms`,
      );
      fixedRate.push({ target: 'warn', endpoint, connections: 64, ...result });
    }
    const rss = Object.fromEntries(
      Object.entries(servers).map(([id, s]) => [
        id,
        (s.pids ?? [s.pid]).reduce((sum, pid) => sum + vmRss(pid), 0),
      ]),
    );
    const infoLog = statSync(servers.info.logs.out).size;
    const infoLines = readFileSync(servers.info.logs.out, 'utf8').split('\n').length - 1;
    const warnLog = statSync(servers.warn.logs.out).size;
    const opaVersion = (await run(OPA, ['version'])).stdout;
    const opaBench = await opaSplit(tmp, bodies.files.admission);
    return {
      plan,
      baseline: baseline === undefined ? null : { revision: baseline.revision },
      bodies: bodies.bytes,
      equivalence,
      fixtures,
      rows,
      fixedRate,
      rss,
      logs: { infoBytes: infoLog, infoLines, warnBytes: warnLog },
      opaVersion,
      opaBench,
    };
  } finally {
    for (const server of Object.values(servers)) await server.kill();
  }
}
