/**
 * Every endpoint over the real HTTPS server, fed random and mutated reviews and random
 * bodies: the answer is a well-formed review (uid echoed, a decision, never a policy
 * failure) or a 4xx with JSON {error}; never a 5xx; and the gateway still answers a good
 * review after each batch.
 */
import { Agent } from 'node:https';
import test, { type ExecutionContext } from 'ava';
import * as fc from 'fast-check';
import type { JsonObject } from '../../src/shared/json.ts';
import { loadJsonObject } from '../helpers/fixtures.ts';
import {
  admissionAnswer,
  type HttpResult,
  https,
  record,
  startTestGateway,
  Teardowns,
} from '../helpers/gateway.ts';
import { answerProblems, type Endpoint, failureWatch } from './answers.ts';
import { type Sent, sent } from './json-edits.ts';
import { holds } from './property.ts';
import {
  anyJson,
  loneSurrogateReview,
  mutatedAdmissionReview,
  mutatedImageReview,
  randomAdmissionReview,
  randomImageReview,
} from './review-arbitraries.ts';

const RUNS = 400;

const shared = new Teardowns();
test.after.always(() => shared.run());

interface Client {
  /** Error-level lines logged since the last call. */
  failures(): JsonObject[];
  post(path: Endpoint, body: string | Buffer, contentType?: string): Promise<HttpResult>;
}

let client: Promise<Client> | undefined;

/** One gateway for the file, reached over kept-alive connections to keep runs cheap. */
function connect(): Promise<Client> {
  client ??= (async () => {
    const gw = await startTestGateway(shared);
    const agent = new Agent({ keepAlive: true, maxSockets: 4, ca: gw.ca });
    shared.teardown(() => agent.destroy());
    return {
      failures: failureWatch(gw.logs),
      post: (path, body, contentType = 'application/json') =>
        https({
          port: gw.port,
          ca: gw.ca,
          path,
          agent,
          headers: { 'Content-Type': contentType },
          body,
        }),
    };
  })();
  return client;
}

async function check(endpoint: Endpoint, body: Sent): Promise<true> {
  const { post, failures: logged } = await connect();
  const result = await post(endpoint, body.text);
  const problems = answerProblems(endpoint, body.parsed, result);
  const failures = logged();
  if (failures.length > 0) problems.push(`error logged: ${JSON.stringify(failures[0])}`);
  if (problems.length === 0) return true;
  const shown = body.text.length > 2000 ? `${body.text.slice(0, 2000)}…` : body.text;
  throw new Error(`${endpoint} → ${result.status}: ${problems.join('; ')}\nsent: ${shown}`);
}

/** A known review still gets its known answer: the batch left the gateway healthy. */
async function stillAnswers(t: ExecutionContext): Promise<void> {
  const { post } = await connect();
  const review = loadJsonObject('admission', 'pod-create-v1');
  const answer = admissionAnswer(await post('/v1/validate', JSON.stringify(review)));
  t.is(answer.response.uid, record(review.request, 'request').uid);
  t.false(answer.response.allowed);
  t.is(record(answer.response.status, 'status').code, 403);
  const trusted = JSON.stringify(loadJsonObject('imagereview', 'imagereview-trusted'));
  const imageReview = await post('/v1/imagereview', trusted);
  t.is(record(record(imageReview.body, 'answer').status, 'status').allowed, true);
}

type Sources = readonly (readonly [what: string, arbitrary: fc.Arbitrary<Sent>])[];

const ENDPOINTS: Readonly<Record<Endpoint, Sources>> = {
  '/v1/validate': [
    ['mutated fixtures', mutatedAdmissionReview],
    ['random reviews', randomAdmissionReview],
  ],
  '/v1/mutate': [
    ['mutated fixtures', mutatedAdmissionReview],
    ['random reviews', randomAdmissionReview],
  ],
  '/v1/imagereview': [
    ['mutated fixtures', mutatedImageReview],
    ['random reviews', randomImageReview],
  ],
};

// Serial: the failure-log check is per gateway, so one property's failure must not be
// blamed on another's run.
for (const [endpoint, sources] of Object.entries(ENDPOINTS) as [Endpoint, Sources][]) {
  for (const [what, arbitrary] of sources) {
    test.serial(`${endpoint}: ${what} get a well-formed review or a 4xx`, async (t) => {
      await holds(
        t,
        fc.asyncProperty(arbitrary, (body) => check(endpoint, body)),
        { runs: RUNS, timeLimitMs: 25_000 },
      );
      await stillAnswers(t);
    });
  }
}

const ALL: readonly Endpoint[] = ['/v1/validate', '/v1/mutate', '/v1/imagereview'];

test.serial('every endpoint: any JSON at all gets a 400 or a review', async (t) => {
  await holds(
    t,
    fc.asyncProperty(fc.constantFrom(...ALL), anyJson, (endpoint, value) =>
      check(endpoint, sent(value)),
    ),
    { runs: RUNS },
  );
  await stillAnswers(t);
});

test.serial('every endpoint: random bytes get a 4xx', async (t) => {
  const { post, failures } = await connect();
  await holds(
    t,
    fc.asyncProperty(
      fc.constantFrom(...ALL),
      fc.uint8Array({ minLength: 1, maxLength: 512 }),
      async (endpoint, bytes) => {
        const result = await post(endpoint, Buffer.from(bytes));
        let parsed: unknown = Symbol('not JSON');
        try {
          parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
        } catch {}
        const problems = answerProblems(endpoint, parsed, result);
        if (failures().length > 0) problems.push('error logged');
        if (problems.length > 0) throw new Error(`${endpoint}: ${problems.join('; ')}`);
      },
    ),
    { runs: RUNS },
  );
  await stillAnswers(t);
});

// Regression (imagegate ≤ b3e213d): a lone UTF-16 surrogate in any string that reached the
// policy input made the wasm SDK fail ("illegal string escape character"), a 500 inside the
// review for the client's malformed string. See content-and-encoding.test.ts for single cases.
test.serial('/v1/validate: strings with lone surrogates are not a policy failure', async (t) => {
  await holds(
    t,
    fc.asyncProperty(loneSurrogateReview, (body) => check('/v1/validate', body)),
    { runs: 50 },
  );
});
