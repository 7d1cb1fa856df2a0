/**
 * The real gateway in-process for server tests: `startGateway` on port 0 with a temp state
 * dir and a captured pino logger, torn down with `close(100)`; plus plain node:https and
 * node:http clients that return status, headers and the parsed body.
 */
import { rmSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { type Agent, request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SecureVersion, TLSSocket } from 'node:tls';
import test from 'ava';
import type { VerificationSettings } from '../../src/policy/loader.ts';
import type { RemoteSourceOptions } from '../../src/server/bundle-source.ts';
import type { CollectorSettings } from '../../src/server/collector.ts';
import { type Gateway, startGateway } from '../../src/server/gateway.ts';
import type { RegistryOptions } from '../../src/server/registry-facts.ts';
import type { TufRootsOptions } from '../../src/server/tuf-roots.ts';
import { isRecord, type JsonObject } from '../../src/shared/json.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { defaultBundlePath } from '../../src/shared/paths.ts';
import { createCa, issueCertificate } from '../../src/tls/certs.ts';
import { type Teardown, Teardowns, tempDir } from './teardown.ts';

export { freePort, poll, type Teardown, Teardowns, tempDir } from './teardown.ts';

/** A pino destination that keeps every line, parsed, so tests can assert on logs. */
export class LogCapture {
  readonly raw: string[] = [];

  write(line: string): void {
    this.raw.push(line);
  }

  get text(): string {
    return this.raw.join('');
  }

  get lines(): JsonObject[] {
    return this.raw.map((line) => record(JSON.parse(line), 'log line'));
  }

  /** Lines with this message (`msg`), e.g. 'decision'. */
  messages(msg: string): JsonObject[] {
    return this.lines.filter((line) => line.msg === msg);
  }
}

export function record(value: unknown, what: string): JsonObject {
  if (!isRecord(value)) throw new TypeError(`${what} is not an object: ${JSON.stringify(value)}`);
  return value;
}

export function list(value: unknown, what: string): unknown[] {
  if (!Array.isArray(value)) throw new TypeError(`${what} is not an array`);
  return value;
}

export function strings(value: unknown, what: string): string[] {
  return list(value, what).map((item) => {
    if (typeof item !== 'string') throw new TypeError(`${what} holds a non-string`);
    return item;
  });
}

/** Writes a policy configuration (YAML) to a temp file and returns its path. */
/**
 * One gateway per configuration (YAML, '' for none) for a whole test file, each started by
 * the first test that asks and all stopped after the last: `const gateway = gatewaysByConfig();`.
 */
export function gatewaysByConfig(): (config?: string) => Promise<TestGateway> {
  const shared = new Teardowns();
  test.after.always(() => shared.run());
  const gateways = new Map<string, Promise<TestGateway>>();
  return (config = '') => {
    let started = gateways.get(config);
    if (started === undefined) {
      started = (async () =>
        startTestGateway(
          shared,
          config === '' ? {} : { config: await writeConfig(shared, config) },
        ))();
      gateways.set(config, started);
    }
    return started;
  };
}

export async function writeConfig(t: Teardown, yaml: string): Promise<string> {
  const path = join(await tempDir(t, 'imagegate-config-'), 'config.yaml');
  await writeFile(path, yaml);
  return path;
}

export interface TlsFiles {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

let shared: Promise<TlsFiles> | undefined;

/**
 * One CA and localhost serving certificate per test process: RSA key generation is the
 * slow part of starting a gateway, and most tests only need some trusted certificate.
 */
export function sharedTls(): Promise<TlsFiles> {
  shared ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'imagegate-tls-'));
    const ca = createCa('imagegate test CA');
    const serving = issueCertificate(ca, {
      commonName: 'localhost',
      usage: 'server',
      altNames: ['localhost', '127.0.0.1'],
    });
    const files = {
      ca: join(dir, 'ca.crt'),
      cert: join(dir, 'tls.crt'),
      key: join(dir, 'tls.key'),
    };
    await writeFile(files.ca, ca.cert);
    await writeFile(files.cert, serving.cert);
    await writeFile(files.key, serving.key);
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    return files;
  })();
  return shared;
}

export interface GatewayOptions {
  readonly config?: string;
  readonly bundle?: string;
  readonly maxBodyBytes?: number;
  readonly watchIntervalMs?: number;
  /** Serving certificate and key paths; with neither, a shared test certificate. */
  readonly tlsCert?: string;
  readonly tlsKey?: string;
  readonly clientCa?: string;
  /** PEM the clients trust; required with tlsCert. */
  readonly ca?: string;
  /** Let the gateway make its own CA in the state dir, as `imagegate serve` does. */
  readonly devCertificates?: boolean;
  readonly logLevel?: string;
  /** Registry access (pinDigests, signatures): credentials, CAs, timeouts. */
  readonly registry?: RegistryOptions;
  /** Evaluation threads (default: the gateway's); 0 evaluates on the event loop. */
  readonly evaluationThreads?: number;
  /** How a remote `bundle` (oci://, https://) is polled and kept. */
  readonly remote?: RemoteSourceOptions;
  /** Bundle signature verification (--verification-key). */
  readonly verification?: VerificationSettings;
  /** Decision logs and status to a collector. */
  readonly collector?: CollectorSettings;
  /** Trust roots kept in TUF repositories: cache, refresh interval. */
  readonly tuf?: TufRootsOptions;
}

export interface TestGateway {
  readonly gateway: Gateway;
  readonly port: number;
  readonly healthPort: number;
  /** PEM of the CA that signed the serving certificate. */
  readonly ca: string;
  readonly stateDir: string;
  readonly logs: LogCapture;
  /** POSTs JSON to the HTTPS port. */
  post(path: string, body: unknown): Promise<HttpsResult>;
  /** GETs from the plain-HTTP health port. */
  health(path: string): Promise<HttpResult>;
}

export async function startTestGateway(
  t: Teardown,
  options: GatewayOptions = {},
): Promise<TestGateway> {
  const stateDir = await tempDir(t, 'imagegate-state-');
  const logs = new LogCapture();
  let tls: { tlsCert: string | undefined; tlsKey: string | undefined; ca: string | undefined };
  if (options.devCertificates === true) {
    tls = { tlsCert: undefined, tlsKey: undefined, ca: undefined };
  } else if (options.tlsCert !== undefined) {
    tls = { tlsCert: options.tlsCert, tlsKey: options.tlsKey, ca: options.ca };
  } else {
    const files = await sharedTls();
    tls = { tlsCert: files.cert, tlsKey: files.key, ca: await readText(files.ca) };
  }
  const gateway = await startGateway(
    {
      port: 0,
      healthPort: 0,
      host: '127.0.0.1',
      bundle: options.bundle ?? defaultBundlePath(),
      config: options.config,
      tlsCert: tls.tlsCert,
      tlsKey: tls.tlsKey,
      clientCa: options.clientCa,
      stateDir,
      ...(options.maxBodyBytes === undefined ? {} : { maxBodyBytes: options.maxBodyBytes }),
      watchIntervalMs: options.watchIntervalMs ?? 60_000,
      ...(options.registry === undefined ? {} : { registry: options.registry }),
      ...(options.evaluationThreads === undefined
        ? {}
        : { evaluationThreads: options.evaluationThreads }),
      ...(options.remote === undefined ? {} : { remote: options.remote }),
      ...(options.verification === undefined ? {} : { verification: options.verification }),
      ...(options.collector === undefined ? {} : { collector: options.collector }),
      ...(options.tuf === undefined ? {} : { tuf: options.tuf }),
    },
    createLogger(options.logLevel ?? 'info', logs),
  );
  t.teardown(() => gateway.close(100));
  let ca = tls.ca;
  if (ca === undefined && gateway.caPath !== undefined) ca = await readText(gateway.caPath);
  if (ca === undefined) throw new Error('startTestGateway: pass `ca` with tlsCert');
  const trusted = ca;
  const healthPort = gateway.healthPort;
  if (healthPort === null) throw new Error('startTestGateway: the gateway has no health port');
  return {
    gateway,
    port: gateway.port,
    healthPort,
    ca: trusted,
    stateDir,
    logs,
    post: (path, body) => postJson({ port: gateway.port, ca: trusted, path }, body),
    health: (path) => httpGet(healthPort, path),
  };
}

function readText(path: string): Promise<string> {
  return readFile(path, 'utf8');
}

export interface HttpResult {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly text: string;
  /** The body parsed as JSON; undefined when it is not JSON. */
  readonly body: unknown;
}

export interface HttpsResult extends HttpResult {
  /** The request went over a kept-alive connection opened earlier. */
  readonly reusedSocket: boolean;
  /** Serial number of the certificate the server presented on this connection. */
  readonly serialNumber: string;
}

export interface HttpsOptions {
  readonly port: number;
  readonly ca: string | Buffer;
  readonly path: string;
  readonly method?: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** One piece is sent with Content-Length; several with chunked transfer encoding. */
  readonly body?: string | Buffer | readonly (string | Buffer)[];
  readonly cert?: string;
  readonly key?: string;
  readonly minVersion?: SecureVersion;
  readonly maxVersion?: SecureVersion;
  readonly ciphers?: string;
  /** Defaults to a fresh connection per request (no keep-alive). */
  readonly agent?: Agent;
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

export function https(options: HttpsOptions): Promise<HttpsResult> {
  const pieces = options.body === undefined ? [] : [options.body].flat();
  const chunked = pieces.length > 1;
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port: options.port,
        path: options.path,
        method: options.method ?? 'POST',
        ca: options.ca,
        headers: {
          ...options.headers,
          ...(chunked ? { 'Transfer-Encoding': 'chunked' } : {}),
        },
        ...(options.cert === undefined ? {} : { cert: options.cert }),
        ...(options.key === undefined ? {} : { key: options.key }),
        ...(options.minVersion === undefined ? {} : { minVersion: options.minVersion }),
        ...(options.maxVersion === undefined ? {} : { maxVersion: options.maxVersion }),
        ...(options.ciphers === undefined ? {} : { ciphers: options.ciphers }),
        agent: options.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        const serialNumber = (res.socket as TLSSocket).getPeerCertificate().serialNumber;
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text,
            body: parse(text),
            reusedSocket: req.reusedSocket,
            serialNumber,
          });
        });
      },
    );
    req.on('error', reject);
    // A server that answers early (413) may reset the socket while pieces are still going.
    for (const piece of pieces.slice(0, -1)) req.write(piece);
    req.end(pieces.at(-1));
  });
}

export function postJson(
  target: { readonly port: number; readonly ca: string | Buffer; readonly path: string },
  value: unknown,
  extra: Partial<HttpsOptions> = {},
): Promise<HttpsResult> {
  return https({
    ...target,
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(value),
    ...extra,
  });
}

export function httpGet(port: number, path: string): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body: parse(text) });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

export interface AdmissionAnswer {
  readonly apiVersion: string;
  readonly kind: string;
  readonly response: JsonObject;
}

/** A 200 answer that is an AdmissionReview with a response object. */
export function admissionAnswer(result: HttpResult): AdmissionAnswer {
  if (result.status !== 200) throw new Error(`HTTP ${result.status}: ${result.text}`);
  const body = record(result.body, 'answer');
  const { apiVersion, kind } = body;
  if (typeof apiVersion !== 'string' || typeof kind !== 'string') {
    throw new TypeError(`answer without apiVersion/kind: ${result.text}`);
  }
  return { apiVersion, kind, response: record(body.response, 'answer.response') };
}

/** A string → string map such as auditAnnotations; {} when absent. */
export function stringMap(value: unknown, what: string): Record<string, string> {
  if (value === undefined) return {};
  const map: Record<string, string> = {};
  for (const [key, item] of Object.entries(record(value, what))) {
    if (typeof item !== 'string') throw new TypeError(`${what}[${key}] is not a string`);
    map[key] = item;
  }
  return map;
}

/** The `code` of a Node error (ECONNREFUSED, ERR_SSL_…), or its message. */
export function errorCode(error: unknown): string {
  if (error instanceof Error) {
    return 'code' in error && typeof error.code === 'string' ? error.code : error.message;
  }
  return String(error);
}
