/**
 * Table-driven hostile input: a case is a title (the test's title), a request and what the
 * answer must be. Every case also asserts the two things that hold for any input: no 5xx,
 * and a good review right after still gets its answer.
 */
import { Agent } from 'node:https';
import test, { type ExecutionContext } from 'ava';
import { isRecord, type JsonObject } from '../../src/shared/json.ts';
import {
  admissionAnswer,
  type HttpResult,
  https,
  record,
  startTestGateway,
  type Teardown,
  Teardowns,
  type TestGateway,
} from '../helpers/gateway.ts';
import { type Endpoint, echoes } from './answers.ts';
import { podReview, TRUSTED, UID } from './hostile-json.ts';

export interface Case {
  readonly title: string;
  readonly path?: Endpoint;
  /** null: no Content-Type header at all. */
  readonly contentType?: string | null;
  readonly headers?: Readonly<Record<string, string>>;
  /** Several pieces are sent chunked, without Content-Length. */
  readonly body: () => string | Buffer | readonly (string | Buffer)[];
  readonly expect: (t: ExecutionContext, result: HttpResult) => void;
  /** The src bug that makes this case fail today; the test is `test.failing` until fixed. */
  readonly bug?: string;
}

export interface Target {
  readonly gw: TestGateway;
  send(c: Omit<Case, 'title' | 'expect'>): Promise<HttpResult>;
}

/** A gateway plus a kept-alive client for it. */
export async function target(t: Teardown): Promise<Target> {
  const gw = await startTestGateway(t);
  const agent = new Agent({ keepAlive: true, maxSockets: 8, ca: gw.ca });
  t.teardown(() => agent.destroy());
  return {
    gw,
    send: (c) => {
      const type = c.contentType === undefined ? 'application/json' : c.contentType;
      return https({
        port: gw.port,
        ca: gw.ca,
        path: c.path ?? '/v1/validate',
        agent,
        headers: { ...(type === null ? {} : { 'Content-Type': type }), ...c.headers },
        body: c.body(),
      });
    },
  };
}

/**
 * One gateway for a whole test file, started by the first test that asks and stopped after
 * the last: `const gw = fileTarget();` at the top of the file.
 */
export function fileTarget(): () => Promise<Target> {
  const shared = new Teardowns();
  test.after.always(() => shared.run());
  let gateway: Promise<Target> | undefined;
  return () => {
    gateway ??= target(shared);
    return gateway;
  };
}

/** The gateway still answers a good review as before. */
export async function stillAnswers(t: ExecutionContext, gw: Target): Promise<void> {
  const review = podReview([{ name: 'web', image: TRUSTED }]);
  const result = await gw.send({ body: () => JSON.stringify(review) });
  const answer = admissionAnswer(result);
  t.is(answer.response.uid, UID, 'a good review after this one is answered');
  t.true(answer.response.allowed, 'a good review after this one is allowed');
}

export function registerCases(cases: readonly Case[], gateway: () => Promise<Target>): void {
  const run = test.macro({
    async exec(t, c: Case) {
      const gw = await gateway();
      const result = await gw.send(c);
      t.true(result.status < 500, `no 5xx: ${result.status} ${result.text.slice(0, 300)}`);
      c.expect(t, result);
      await stillAnswers(t, gw);
    },
    title: (_, c: Case) => c.title,
  });
  for (const c of cases) {
    if (c.bug === undefined) test(run, c);
    else test.failing(run, c);
  }
}

/** A 4xx with `{"error": "..."}` matching `message`. */
export const refused =
  (status: number, message: RegExp) =>
  (t: ExecutionContext, result: HttpResult): void => {
    t.is(result.status, status, result.text.slice(0, 300));
    const body = record(result.body, 'error body');
    t.deepEqual(Object.keys(body), ['error']);
    t.regex(String(body.error), message);
  };

/**
 * A 200 AdmissionReview answering `uid`, whose denial (if any) is not a policy failure
 * (code 500); `check` asserts the rest.
 */
export const reviewed =
  (check: (t: ExecutionContext, response: JsonObject) => void = () => {}, uid = UID) =>
  (t: ExecutionContext, result: HttpResult): void => {
    const answer = admissionAnswer(result);
    t.true(echoes(uid, answer.response.uid), `uid ${JSON.stringify(answer.response.uid)}`);
    const status = answer.response.status;
    if (isRecord(status)) t.not(status.code, 500, `policy failure: ${String(status.message)}`);
    check(t, answer.response);
  };

/** A 200 ImageReview; `check` gets its status. */
export const imageReviewed =
  (check: (t: ExecutionContext, status: JsonObject) => void) =>
  (t: ExecutionContext, result: HttpResult): void => {
    t.is(result.status, 200, result.text.slice(0, 300));
    const body = record(result.body, 'answer');
    t.is(body.kind, 'ImageReview');
    check(t, record(body.status, 'answer.status'));
  };

/** Denied by the policy (403) with a message matching every pattern. */
export const denied =
  (...patterns: RegExp[]) =>
  (t: ExecutionContext, response: JsonObject): void => {
    t.false(response.allowed);
    const status = record(response.status, 'status');
    t.is(status.code, 403, String(status.message));
    for (const pattern of patterns) t.regex(String(status.message), pattern);
  };

/** Refused as malformed inside a review (400 inside, uid echoed). */
export const malformed =
  (message: RegExp) =>
  (t: ExecutionContext, response: JsonObject): void => {
    t.false(response.allowed);
    const status = record(response.status, 'status');
    t.is(status.code, 400);
    t.regex(String(status.message), message);
  };

export const allowed = (t: ExecutionContext, response: JsonObject): void => {
  t.true(response.allowed, JSON.stringify(response.status));
};

/**
 * The client's mistake, answered as such: a bare 400, or a review that is not a policy
 * failure (code 500); `check` asserts the rest of such a review.
 */
export const clientMistake =
  (check: (t: ExecutionContext, response: JsonObject) => void = () => {}, uid = UID) =>
  (t: ExecutionContext, result: HttpResult): void => {
    if (result.status === 400) refused(400, /./)(t, result);
    else reviewed(check, uid)(t, result);
  };

/** As clientMistake, for an ImageReview: a bare 400, or a reason that is not `failure`. */
export const imageClientMistake =
  (failure: RegExp) =>
  (t: ExecutionContext, result: HttpResult): void => {
    if (result.status === 400) refused(400, /./)(t, result);
    else imageReviewed((tt, status) => tt.notRegex(String(status.reason), failure))(t, result);
  };
