/**
 * The soak's request mix: every admission fixture on /v1/validate and /v1/mutate, every
 * ImageReview fixture, canaries whose answer must not depend on which policy is serving
 * (an always-denied and an always-allowed pod: a reload must never fail open or deny good
 * work), a pod that flips between the two bundles, deliberate bad input that must stay
 * 4xx, and the health port. Each answer is classified; anything unexpected is a failure.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { type Agent as HttpAgent, request as httpRequest } from 'node:http';
import { type Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { isRecord, type JsonObject } from '../../src/shared/json.ts';

export type Outcome = 'allowed' | 'denied' | 'patched' | 'ok' | 'expected-4xx' | 'failed';

export interface Result {
  readonly endpoint: string;
  readonly outcome: Outcome;
  readonly ms: number;
  /** Why it failed, for the report. */
  readonly detail?: string;
}

interface Reply {
  readonly status: number;
  readonly text: string;
  readonly body: unknown;
}

export interface Target {
  readonly port: number;
  readonly healthPort: number;
  readonly ca: string;
  readonly agent: HttpsAgent;
  readonly healthAgent: HttpAgent;
}

const TIMEOUT_MS = 10_000;

function parse(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

interface Send {
  readonly method?: string;
  readonly path: string;
  readonly body?: string;
  readonly headers?: Record<string, string>;
  /** A fresh connection (and TLS handshake) instead of a kept-alive one. */
  readonly fresh?: boolean;
}

function https(target: Target, send: Send): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port: target.port,
        servername: 'localhost',
        ca: target.ca,
        method: send.method ?? 'POST',
        path: send.path,
        agent: send.fresh === true ? false : target.agent,
        headers: { 'Content-Type': 'application/json', ...send.headers },
        timeout: TIMEOUT_MS,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, text, body: parse(text) });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer in ${TIMEOUT_MS} ms`)));
    req.on('error', reject);
    req.end(send.body);
  });
}

function health(target: Target, path: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port: target.healthPort, path, agent: target.healthAgent },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, text, body: parse(text) });
        });
      },
    );
    req.setTimeout(TIMEOUT_MS, () => req.destroy(new Error(`no answer in ${TIMEOUT_MS} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** 413 from the declared length alone: the body is never sent. */
function tooLarge(target: Target): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({
      host: '127.0.0.1',
      port: target.port,
      servername: 'localhost',
      ca: target.ca,
      method: 'POST',
      path: '/v1/validate',
      agent: false,
      headers: { 'Content-Type': 'application/json', 'Content-Length': String(5 * 1024 * 1024) },
      timeout: TIMEOUT_MS,
    });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, text: '', body: undefined });
        req.destroy();
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer in ${TIMEOUT_MS} ms`)));
    req.on('error', reject);
    req.flushHeaders();
  });
}

const obj = (value: unknown): JsonObject => (isRecord(value) ? value : {});

type Check = (reply: Reply, uid: string) => { outcome: Outcome; detail?: string };

const fail = (detail: string) => ({ outcome: 'failed' as const, detail });

/** An AdmissionReview answer: uid echoed, a boolean verdict, 403 for a policy denial. */
function admission(must?: 'allowed' | 'denied'): Check {
  return (reply, uid) => {
    if (reply.status !== 200) return fail(`HTTP ${reply.status}: ${reply.text.slice(0, 200)}`);
    const response = obj(obj(reply.body).response);
    if (response.uid !== uid) return fail(`uid ${String(response.uid)} is not ${uid}`);
    if (typeof response.allowed !== 'boolean') return fail(`no verdict: ${reply.text}`);
    const status = obj(response.status);
    if (!response.allowed && status.code !== 403) {
      return fail(`denied with code ${String(status.code)}: ${String(status.message)}`);
    }
    const outcome = response.allowed
      ? response.patch === undefined
        ? 'allowed'
        : 'patched'
      : 'denied';
    if (must === 'allowed' && !response.allowed)
      return fail(`canary denied: ${String(status.message)}`);
    if (must === 'denied' && response.allowed)
      return fail('canary allowed: the policy failed open');
    return { outcome };
  };
}

function imageReview(must?: 'allowed' | 'denied'): Check {
  return (reply) => {
    if (reply.status !== 200) return fail(`HTTP ${reply.status}: ${reply.text.slice(0, 200)}`);
    const status = obj(obj(reply.body).status);
    if (typeof status.allowed !== 'boolean') return fail(`no verdict: ${reply.text}`);
    if (typeof status.reason === 'string' && status.reason.startsWith('imagegate: ')) {
      return fail(`fail-closed error: ${status.reason}`);
    }
    if (must === 'allowed' && !status.allowed)
      return fail(`canary denied: ${String(status.reason)}`);
    if (must === 'denied' && status.allowed) return fail('canary allowed: the policy failed open');
    return { outcome: status.allowed ? 'allowed' : 'denied' };
  };
}

/** A 4xx the client asked for, with a JSON {error}. */
function status(code: number, json = true): Check {
  return (reply) => {
    if (reply.status !== code) return fail(`HTTP ${reply.status}, expected ${code}`);
    if (json && typeof obj(reply.body).error !== 'string') return fail('no JSON {error}');
    return { outcome: 'expected-4xx' };
  };
}

/** A review whose request is malformed: a denying review with code 400 inside. */
const malformed: Check = (reply, uid) => {
  if (reply.status !== 200) return fail(`HTTP ${reply.status}: ${reply.text.slice(0, 200)}`);
  const response = obj(obj(reply.body).response);
  const code = obj(response.status).code;
  if (response.uid !== uid || response.allowed !== false || code !== 400) {
    return fail(`expected a 400 inside the review: ${reply.text.slice(0, 200)}`);
  }
  return { outcome: 'expected-4xx' };
};

export interface Probe {
  readonly endpoint: string;
  run(target: Target, n: number): Promise<Result>;
}

function withUid(review: JsonObject, uid: string): JsonObject {
  const request = obj(review.request);
  return { ...review, request: { ...request, uid } };
}

function reviewProbe(endpoint: string, path: string, review: JsonObject, check: Check): Probe {
  return {
    endpoint,
    async run(target, n) {
      const uid = `soak-${n}`;
      const started = performance.now();
      const body = JSON.stringify(isRecord(review.request) ? withUid(review, uid) : review);
      // One request in 50 on a fresh connection: handshakes under reload too.
      const reply = await https(target, { path, body, fresh: n % 50 === 0 });
      return { endpoint, ms: performance.now() - started, ...check(reply, uid) };
    },
  };
}

function pod(name: string, image: string): JsonObject {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: 'replaced',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'shop',
      operation: 'CREATE',
      name,
      object: {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace: 'shop' },
        spec: { containers: [{ name, image, imagePullPolicy: 'Always' }] },
      },
    },
  };
}

function fixtures(root: string, dir: string): [string, JsonObject][] {
  return readdirSync(join(root, dir))
    .filter((file) => file.endsWith('.json'))
    .sort()
    .map((file) => [file, obj(JSON.parse(readFileSync(join(root, dir, file), 'utf8')))]);
}

function plain(endpoint: string, send: Send, check: Check): Probe {
  return {
    endpoint,
    async run(target) {
      const started = performance.now();
      const reply = await https(target, send);
      return { endpoint, ms: performance.now() - started, ...check(reply, '') };
    },
  };
}

function healthProbe(path: string, check: (reply: Reply) => string | undefined): Probe {
  return {
    endpoint: path,
    async run(target) {
      const started = performance.now();
      const reply = await health(target, path);
      const problem = check(reply);
      const ms = performance.now() - started;
      return problem === undefined
        ? { endpoint: path, ms, outcome: 'ok' }
        : { endpoint: path, ms, outcome: 'failed', detail: problem };
    },
  };
}

/** One round of the mix; workers draw from it in turn. */
export function probes(fixtureRoot: string): Probe[] {
  const list: Probe[] = [];
  for (const [, review] of fixtures(fixtureRoot, 'admission')) {
    list.push(reviewProbe('validate', '/v1/validate', review, admission()));
    list.push(reviewProbe('mutate', '/v1/mutate', review, admission('allowed')));
  }
  for (const [file, review] of fixtures(fixtureRoot, 'imagereview')) {
    const must = file.includes('untrusted')
      ? 'denied'
      : file.includes('trusted')
        ? 'allowed'
        : undefined;
    list.push(reviewProbe('imagereview', '/v1/imagereview', review, imageReview(must)));
  }
  const canary = (name: string, image: string, must: 'allowed' | 'denied') =>
    reviewProbe('validate canary', '/v1/validate', pod(name, image), admission(must));
  for (let i = 0; i < 3; i++) {
    list.push(canary('evil', 'quay.io/evil/miner:latest', 'denied'));
    list.push(canary('good', 'registry.example.com/shop/api:2.3.1', 'allowed'));
    // Allowed by one bundle, denied by the other: shows the swaps take effect.
    const flip = pod('flip', 'nginx:1.27');
    list.push(reviewProbe('validate flip', '/v1/validate', flip, admission()));
  }
  const review = JSON.stringify(pod('x', 'nginx:1.27'));
  list.push(
    plain(
      'validate',
      { path: '/v1/validate', body: review, headers: { 'Content-Type': 'text/plain' } },
      status(415),
    ),
    plain(
      'validate',
      { path: '/v1/validate', body: '{"apiVersion": "admission.k8s.io/v1",' },
      status(400),
    ),
    plain(
      'mutate',
      { path: '/v1/mutate', body: '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}' },
      status(400),
    ),
    plain(
      'imagereview',
      {
        path: '/v1/imagereview',
        body: '{"apiVersion":"imagepolicy.k8s.io/v1alpha1","kind":"ImageReview"}',
      },
      status(400),
    ),
    plain('validate', { method: 'GET', path: '/v1/validate' }, status(405)),
    plain('other', { path: '/v1/nothing-here', body: '{}' }, status(404)),
    {
      endpoint: 'validate',
      async run(target, n) {
        const uid = `soak-${n}`;
        const bad = pod('x', 'nginx:1.27');
        const request = { ...obj(bad.request), uid, operation: 'PATCH' };
        const started = performance.now();
        const reply = await https(target, {
          path: '/v1/validate',
          body: JSON.stringify({ ...bad, request }),
        });
        return { endpoint: 'validate', ms: performance.now() - started, ...malformed(reply, uid) };
      },
    },
    {
      endpoint: 'validate',
      async run(target) {
        const started = performance.now();
        const reply = await tooLarge(target);
        return {
          endpoint: 'validate',
          ms: performance.now() - started,
          ...status(413, false)(reply, ''),
        };
      },
    },
    healthProbe('/healthz', (r) => (r.status === 200 ? undefined : `HTTP ${r.status}`)),
    healthProbe('/readyz', (r) =>
      r.status === 200 && obj(r.body).ready === true ? undefined : `HTTP ${r.status} ${r.text}`,
    ),
    healthProbe('/metrics', (r) =>
      r.status === 200 && r.text.includes('imagegate_requests_total')
        ? undefined
        : `HTTP ${r.status}`,
    ),
  );
  return list;
}

export async function metricsText(target: Target): Promise<string> {
  return (await health(target, '/metrics')).text;
}
