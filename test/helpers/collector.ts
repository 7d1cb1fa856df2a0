/**
 * A collector written to OPA's documented APIs (docs: "Decision Logs", "Status"): POST
 * `/logs` with `Content-Encoding: gzip` and a JSON array of events, POST `/status` with one
 * JSON report. It checks what OPA's docs require of each request, keeps every body as
 * received (raw, for "no secret ever arrives" checks) and parsed, and can fail on purpose:
 * answer 500, or drop connections, until told otherwise. Plain HTTP on 127.0.0.1.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { isRecord, type JsonObject } from '../../src/shared/json.ts';
import type { Teardown } from './teardown.ts';

export type CollectorFault = 'none' | '500' | 'reset';

export interface TestCollector {
  readonly url: string;
  /** Every decision event accepted, in arrival order. */
  readonly events: JsonObject[];
  /** Every status report accepted. */
  readonly reports: JsonObject[];
  /** Every request body as it arrived on the wire, decompressed (accepted or not). */
  readonly raw: string[];
  /** Requests refused for not following the API (wrong method, encoding, shape). */
  readonly violations: string[];
  /** Authorization headers seen. */
  readonly authorizations: (string | undefined)[];
  fault: CollectorFault;
}

export async function startCollector(t: Teardown): Promise<TestCollector> {
  const state: TestCollector = {
    url: '',
    events: [],
    reports: [],
    raw: [],
    violations: [],
    authorizations: [],
    fault: 'none',
  };
  const server = createServer((req, res) => {
    void body(req).then((bytes) => {
      if (state.fault === 'reset') return req.socket.destroy();
      state.authorizations.push(req.headers.authorization);
      let text: string;
      try {
        text = (req.headers['content-encoding'] === 'gzip' ? gunzipSync(bytes) : bytes).toString(
          'utf8',
        );
      } catch {
        state.violations.push(`${req.url}: not gzip`);
        res.writeHead(400).end();
        return;
      }
      state.raw.push(text);
      if (state.fault === '500') return res.writeHead(500).end();
      const refuse = (why: string) => {
        state.violations.push(`${req.method} ${req.url}: ${why}`);
        res.writeHead(400).end();
      };
      if (req.method !== 'POST') return refuse('not a POST');
      if (req.headers['content-type'] !== 'application/json') return refuse('not JSON');
      const parsed: unknown = JSON.parse(text);
      if (req.url === '/logs') {
        if (req.headers['content-encoding'] !== 'gzip') return refuse('decision logs are gzipped');
        if (!Array.isArray(parsed) || !parsed.every(isRecord)) return refuse('not an array');
        state.events.push(...parsed);
      } else if (req.url === '/status') {
        if (!isRecord(parsed)) return refuse('not an object');
        state.reports.push(parsed);
      } else {
        return refuse('no such API');
      }
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  Object.assign(state, { url: `http://127.0.0.1:${port}` });
  return state;
}

async function body(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
