/**
 * The health port, metrics, decision logs (one line per review, no secrets), and graceful
 * shutdown: the real CLI as a subprocess gets SIGTERM with a request in flight.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import { connect } from 'node:tls';
import test from 'ava';
import { getPointer, isRecord, type JsonObject } from '../../src/shared/json.ts';
import { ROOT } from '../helpers/cli.ts';
import { fixtureNames, loadJsonObject } from '../helpers/fixtures.ts';
import {
  admissionAnswer,
  errorCode,
  freePort,
  httpGet,
  list,
  poll,
  postJson,
  record,
  startTestGateway,
  Teardowns,
  type TestGateway,
  tempDir,
} from '../helpers/gateway.ts';

const shared = new Teardowns();
test.after.always(() => shared.run());

const ADMISSION = fixtureNames('admission');
const IMAGE_REVIEWS = fixtureNames('imagereview');

interface Served {
  readonly gw: TestGateway;
  /** validate answers by uid */
  readonly allowed: ReadonlyMap<string, boolean>;
}

let served: Promise<Served> | undefined;

/** One gateway that has answered every fixture once on each endpoint that takes it. */
function servedEverything(): Promise<Served> {
  served ??= (async () => {
    // The gateway's own CA in its state dir, as `imagegate serve` makes it.
    const gw = await startTestGateway(shared, { devCertificates: true });
    const allowed = new Map<string, boolean>();
    for (const name of ADMISSION) {
      const review = loadJsonObject('admission', name);
      const answer = admissionAnswer(await gw.post('/v1/validate', review));
      allowed.set(String(answer.response.uid), answer.response.allowed === true);
      admissionAnswer(await gw.post('/v1/mutate', review));
    }
    for (const name of IMAGE_REVIEWS) {
      const result = await gw.post('/v1/imagereview', loadJsonObject('imagereview', name));
      if (result.status !== 200) throw new Error(result.text);
    }
    return { gw, allowed };
  })();
  return served;
}

test('/healthz answers 200', async (t) => {
  const { gw } = await servedEverything();
  const result = await gw.health('/healthz');
  t.is(result.status, 200);
  t.is(result.text.trim(), 'ok');
});

test('/readyz answers 200 with the serving revision', async (t) => {
  const { gw } = await servedEverything();
  const result = await gw.health('/readyz');
  t.is(result.status, 200);
  const body = record(result.body, '/readyz');
  t.true(body.ready);
  t.false(body.shuttingDown);
  t.regex(String(body.revision), /^[0-9a-f]{12}$/);
  t.is(body.revision, gw.gateway.policy.engine?.revision);
  t.regex(String(body.bundleDigest), /^[0-9a-f]{64}$/);
  t.true(record(body.lastLoad, 'lastLoad').ok);
});

test('/metrics: requests, durations and the bundle revision', async (t) => {
  const { gw, allowed } = await servedEverything();
  const result = await gw.health('/metrics');
  t.is(result.status, 200);
  t.regex(String(result.headers['content-type']), /^text\/plain/);
  const metrics = result.text;
  const denied = [...allowed.values()].filter((a) => !a).length;
  t.true(denied > 0);
  t.true(
    metrics.includes(`imagegate_requests_total{endpoint="validate",outcome="denied"} ${denied}`),
  );
  t.true(
    metrics.includes(
      `imagegate_requests_total{endpoint="validate",outcome="allowed"} ${allowed.size - denied}`,
    ),
  );
  const count = (metric: string, label: string) =>
    Number(new RegExp(`^imagegate_${metric}_count\\{${label}\\} (\\d+)$`, 'm').exec(metrics)?.[1]);
  t.is(count('request_duration_seconds', 'endpoint="mutate"'), ADMISSION.length);
  t.regex(
    metrics,
    /^imagegate_request_duration_seconds_bucket\{le="[^"]+",endpoint="validate"\} /m,
  );
  t.is(
    count('evaluation_duration_seconds', 'entrypoint="validate"'),
    ADMISSION.length + IMAGE_REVIEWS.length,
  );
  t.is(count('evaluation_duration_seconds', 'entrypoint="mutate"'), ADMISSION.length);
  const revision = gw.gateway.policy.engine?.revision ?? 'none';
  t.regex(
    metrics,
    new RegExp(`^imagegate_bundle_info\\{revision="${revision}",digest="[0-9a-f]{64}"\\} 1$`, 'm'),
  );
});

const POD_SPECS: Record<string, string> = {
  Pod: '/spec',
  CronJob: '/spec/jobTemplate/spec/template/spec',
};

/** The images of the reviewed object, in the input's order (containers, init, ephemeral). */
function imagesOf(request: JsonObject): string[] {
  const kind = String(record(request.kind, 'kind').kind);
  if (kind === 'PersistentVolumeClaim') return [];
  const spec = getPointer(request.object, POD_SPECS[kind] ?? '/spec/template/spec');
  if (!isRecord(spec)) return [];
  const containers = ['containers', 'initContainers', 'ephemeralContainers'].flatMap((name) =>
    spec[name] === undefined
      ? []
      : list(spec[name], name).map((c) => String(record(c, name).image)),
  );
  // Image volumes are pulled too, and listed after the containers.
  const volumes = (spec.volumes === undefined ? [] : list(spec.volumes, 'volumes'))
    .map((v) => record(v, 'volume').image)
    .filter(isRecord)
    .map((source) => String(source.reference));
  return [...containers, ...volumes];
}

const decisionLine = test.macro({
  async exec(t, name: string) {
    const { gw, allowed } = await servedEverything();
    const request = record(loadJsonObject('admission', name).request, 'request');
    const uid = String(request.uid);
    const lines = gw.logs.messages('decision').filter((line) => line.uid === uid);
    t.deepEqual(
      lines.map((line) => line.endpoint).sort(),
      ['mutate', 'validate'],
      'exactly one decision line per review',
    );
    const revision = gw.gateway.policy.engine?.revision;
    for (const line of lines) {
      t.regex(String(line.decisionId), /^[0-9a-f-]{36}$/);
      t.is(line.kind, record(request.kind, 'kind').kind);
      t.is(line.namespace, request.namespace);
      t.is(line.operation, request.operation);
      t.deepEqual(line.images, imagesOf(request));
      t.is(line.revision, revision);
      t.is(typeof line.durationMs, 'number');
      t.true(Number(line.durationMs) >= 0);
      t.is(line.level, 30);
    }
    const validate = lines.find((line) => line.endpoint === 'validate');
    t.is(validate?.allowed, allowed.get(uid));
    t.true(Array.isArray(validate?.reasons));
    t.is(list(validate?.reasons, 'reasons').length === 0, allowed.get(uid) === true);
  },
  title: (_ = '', name: string) => `decision log: ${name}`,
});

for (const name of ADMISSION) test(decisionLine, name);

test('decision log: one line per ImageReview, with images and reasons', async (t) => {
  const { gw } = await servedEverything();
  const lines = gw.logs.messages('decision').filter((line) => line.endpoint === 'imagereview');
  t.is(lines.length, IMAGE_REVIEWS.length);
  for (const name of IMAGE_REVIEWS) {
    const spec = record(loadJsonObject('imagereview', name).spec, 'spec');
    const images = list(spec.containers, 'containers').map((c) => record(c, 'c').image);
    const line = lines.find((l) => JSON.stringify(l.images) === JSON.stringify(images));
    t.truthy(line, `no decision line for ${name}`);
    t.is(line?.namespace, spec.namespace);
    t.true(Array.isArray(line?.reasons));
    t.is(typeof line?.allowed, 'boolean');
  }
  const ids = gw.logs.messages('decision').map((line) => line.decisionId);
  t.is(new Set(ids).size, ids.length, 'decision ids are unique');
});

/** Env values, pull secret names and kubectl's last-applied copy found in the fixtures. */
function secretMaterial(): string[] {
  const found = new Set<string>(['last-applied-configuration']);
  const walk = (value: unknown, key: string): void => {
    if (Array.isArray(value)) {
      for (const item of value) {
        if (key === 'env' && isRecord(item) && typeof item.value === 'string') {
          found.add(item.value);
        }
        if (key === 'imagePullSecrets' && isRecord(item) && typeof item.name === 'string') {
          found.add(item.name);
        }
        walk(item, key);
      }
    } else if (isRecord(value)) {
      for (const [k, v] of Object.entries(value)) walk(v, k);
    }
  };
  for (const name of ADMISSION) walk(loadJsonObject('admission', name), '');
  // Short values ("info") would match innocent words; the interesting ones are long.
  return [...found].filter((value) => value.length >= 6);
}

test('logs carry no env values, pull secret names or last-applied-configuration', async (t) => {
  const { gw } = await servedEverything();
  const material = secretMaterial();
  t.true(material.includes('Tr0ub4dor&3-prod'), 'the fixture has a DB_PASSWORD to look for');
  t.true(material.includes('regcred'));
  const text = gw.logs.text;
  t.true(gw.logs.messages('decision').length >= ADMISSION.length * 2);
  for (const value of material) t.false(text.includes(value), `${value} is in the logs`);
});

test('a malformed body is never quoted in the answer or the logs', async (t) => {
  const gw = await startTestGateway(t);
  const body = '{"apiVersion": "admission.k8s.io/v1", "password": hunter2-secret}';
  const target = { port: gw.port, ca: gw.ca, path: '/v1/validate' };
  const result = await postJson(target, null, { body });
  t.is(result.status, 400);
  t.regex(
    String(record(result.body, 'error body').error),
    /^the body is not valid JSON( at byte \d+)?$/,
  );
  t.false(gw.logs.text.includes('hunter2'), 'the body text is not in the logs');
  t.false(result.text.includes('hunter2'), 'nor in the answer');
});

/** A port that was free a moment ago (the CLI does not report port 0's choice). */

interface SlowRequest {
  /** Resolves once the headers and the first half of the body are on the wire. */
  readonly started: Promise<void>;
  readonly finish: () => void;
  readonly response: Promise<{ status: number; headers: IncomingHttpHeaders; body: unknown }>;
}

/** POSTs `body` in two halves: the second only when `finish` is called. */
function slowPost(
  port: number,
  ca: string,
  path: string,
  body: Buffer,
  agent?: Agent,
): SlowRequest {
  const half = Math.floor(body.length / 2);
  let finish = (): void => undefined;
  let started: Promise<void> = Promise.resolve();
  const response = new Promise<{ status: number; headers: IncomingHttpHeaders; body: unknown }>(
    (resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          path,
          method: 'POST',
          ca,
          agent: agent ?? false,
          headers: { 'Content-Type': 'application/json', 'Content-Length': String(body.length) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(text) });
          });
        },
      );
      req.on('error', reject);
      started = new Promise((done) => req.write(body.subarray(0, half), () => done()));
      finish = () => req.end(body.subarray(half));
    },
  );
  return { started, finish: () => finish(), response };
}

function refusedOrNot(port: number, ca: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, ca });
    socket.on('secureConnect', () => {
      socket.end();
      resolve('connected');
    });
    socket.on('error', (error) => resolve(errorCode(error)));
  });
}

/** Lets the gateway's event loop go round (it has read what was already sent). */
async function roundTrips(healthPort: number): Promise<void> {
  for (let i = 0; i < 3; i++) await httpGet(healthPort, '/healthz');
}

test('SIGTERM: in-flight review completes, not ready, connections refused, exit 0', async (t) => {
  const [port, healthPort] = [await freePort(), await freePort()];
  const stateDir = await tempDir(t, 'imagegate-sigterm-');
  const child: ChildProcess = spawn(
    process.execPath,
    [
      '--import=tsx/esm',
      join(ROOT, 'src', 'cli.ts'),
      'serve',
      ...['--port', String(port), '--health-port', String(healthPort), '--host', '127.0.0.1'],
      ...['--state-dir', stateDir, '--log-level', 'info'],
    ],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    output += d;
  });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    output += d;
  });
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }));
  });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });

  await poll(
    async () => {
      const ready = await httpGet(healthPort, '/readyz').catch(() => undefined);
      return ready?.status === 200 ? true : undefined;
    },
    'the CLI to become ready',
    { tries: 600, everyMs: 50 },
  );
  const ca = await readFile(join(stateDir, 'ca.crt'), 'utf8');
  const fixture = loadJsonObject('admission', 'pod-create-v1');
  const slow = slowPost(port, ca, '/v1/validate', Buffer.from(JSON.stringify(fixture)));
  await slow.started;
  await roundTrips(healthPort);

  t.true(child.kill('SIGTERM'));
  const readiness = await poll(async () => {
    const ready = await httpGet(healthPort, '/readyz').catch(() => undefined);
    if (ready === undefined) return 'closed';
    return ready.status === 503 ? '503' : undefined;
  }, '/readyz to drop');
  t.true(readiness === '503' || readiness === 'closed');
  const refused = await poll(async () => {
    const outcome = await refusedOrNot(port, ca);
    return outcome === 'connected' ? undefined : outcome;
  }, 'new connections to be refused');
  t.is(refused, 'ECONNREFUSED');

  slow.finish();
  const { status, body } = await slow.response;
  t.is(status, 200);
  const review = record(body, 'answer');
  t.is(review.kind, 'AdmissionReview');
  const response = record(review.response, 'response');
  t.is(response.uid, record(fixture.request, 'request').uid);
  t.false(response.allowed);
  t.is(record(response.status, 'status').code, 403);

  const { code, signal } = await exited;
  t.is(signal, null);
  t.is(code, 0, output);
  t.regex(output, /"msg":"shutting down/);
  t.regex(output, /"msg":"stopped"/);
});

// The API server keeps connections alive: shutdown must not wait out the grace period.
test('shutdown: a kept-alive connection with a request in flight is closed', async (t) => {
  const gw = await startTestGateway(t);
  const agent = new Agent({ keepAlive: true });
  t.teardown(() => agent.destroy());
  const fixture = loadJsonObject('admission', 'pod-create-v1');
  const body = Buffer.from(JSON.stringify(fixture));
  const slow = slowPost(gw.port, gw.ca, '/v1/validate', body, agent);
  await slow.started;
  await roundTrips(gw.healthPort);
  const closing = gw.gateway.close(30_000);
  t.teardown(() => {
    agent.destroy();
    return closing;
  });
  t.is((await gw.health('/readyz').catch(() => undefined))?.status ?? 503, 503);
  slow.finish();
  const { status, headers } = await slow.response;
  t.is(status, 200);
  t.is(headers.connection, 'close');
});

// kube-apiserver's webhook client keeps an idle connection 90 s and never retries a POST
// on one the server closed: the gateway must be the one that holds on longer.
test('an idle kept-alive connection outlives the API server client (90 s), then serves', async (t) => {
  t.timeout(180_000);
  const gw = await startTestGateway(t);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const review = loadJsonObject('admission', 'pod-create-v1');
  const target = { port: gw.port, ca: gw.ca, path: '/v1/validate' };
  const first = await postJson(target, review, { agent });
  t.is(first.status, 200);
  // Longer than Go's IdleConnTimeout, and than the headers and request timeouts.
  await new Promise((resolve) => setTimeout(resolve, 95_000));
  const second = await postJson(target, review, { agent });
  t.is(second.status, 200);
  t.true(second.reusedSocket, 'the same connection, still open after 95 s idle');
  t.deepEqual(second.body, first.body);
});
