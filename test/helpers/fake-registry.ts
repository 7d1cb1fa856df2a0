/**
 * Hand-made HTTPS servers that play a registry badly on purpose (redirects to where they
 * should not, challenges from storage, slow answers, hostile descriptors), because a real
 * registry does none of these things. Each counts its connections and records what it was
 * asked, so "no network call" and "no credentials" are observed, not assumed. On 127.0.0.1
 * only; torn down with the test. The client and fact source come with the address policy
 * under test.
 */
import { createHash, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import type { LookupAddress } from 'node:dns';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { AddressPolicy } from '../../src/registry/addresses.ts';
import { type ClientDeps, RegistryClient } from '../../src/registry/client.ts';
import type { Credentials } from '../../src/registry/credentials.ts';
import {
  DEFAULT_TTLS,
  type FactSource,
  FactSource as Facts,
  type FactTtls,
} from '../../src/registry/facts.ts';
import { RegistryHttp } from '../../src/registry/http.ts';
import type { PublicKeyRef } from '../../src/registry/keys.ts';
import { keysOnly } from '../../src/registry/sigstore/verification.ts';
import { createCa, issueCertificate } from '../../src/tls/certs.ts';
import type { Teardown } from './teardown.ts';

export const ca = createCa('imagegate fake registry CA');
const serving = issueCertificate(ca, {
  commonName: '127.0.0.1',
  usage: 'server',
  altNames: ['127.0.0.1', 'localhost', 'registry.example.com', 'harbor.corp.example'],
});

export interface Seen {
  readonly method: string;
  readonly url: string;
  readonly authorization: string | undefined;
}

export interface Fake {
  readonly host: string;
  readonly port: number;
  readonly seen: Seen[];
  connections: number;
}

export interface FakeAnswer {
  readonly status: number;
  readonly headers?: Record<string, string>;
  readonly body?: Buffer | string;
  /** Answer after this many ms. */
  readonly delayMs?: number;
}

export type Handler = (
  req: { method: string; url: string; headers: Record<string, unknown> },
  fake: Fake,
) => FakeAnswer | 'hang';

export async function fake(t: Teardown, handler: Handler): Promise<Fake> {
  const state: Fake = { host: '', port: 0, seen: [], connections: 0 };
  const server: Server = createServer({ cert: serving.cert, key: serving.key }, (req, res) => {
    const answer = handler(
      { method: req.method ?? '', url: req.url ?? '', headers: req.headers },
      state,
    );
    state.seen.push({
      method: req.method ?? '',
      url: req.url ?? '',
      authorization: req.headers.authorization,
    });
    if (answer === 'hang') return;
    const send = () => {
      if (res.destroyed) return;
      res.writeHead(answer.status, answer.headers ?? {});
      res.end(req.method === 'HEAD' ? undefined : answer.body);
    };
    if (answer.delayMs === undefined) send();
    else setTimeout(send, answer.delayMs);
  });
  server.on('secureConnection', () => state.connections++);
  server.on('connection', () => state.connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  Object.assign(state, { host: `127.0.0.1:${port}`, port });
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return state;
}

/** A resolver that gives names the addresses a test needs (node:dns lookup's shape). */
export function resolver(addressOf: (host: string) => string): ClientHttpLookup {
  return ((
    hostname: string,
    _options: unknown,
    callback: (e: Error | null, a: LookupAddress[]) => void,
  ) => {
    const address = addressOf(hostname);
    callback(null, [{ address, family: address.includes(':') ? 6 : 4 }]);
  }) as never;
}

type ClientHttpLookup = NonNullable<ConstructorParameters<typeof RegistryHttp>[0]['lookup']>;

export interface ClientOptions {
  readonly lookup?: ClientHttpLookup;
  readonly credentials?: Credentials;
  readonly requestTimeoutMs?: number;
  readonly client?: Omit<Partial<ClientDeps>, 'http' | 'credentials'>;
}

export function client(policy: AddressPolicy, options: ClientOptions = {}): RegistryClient {
  const http = new RegistryHttp({
    policy: () => policy,
    ca: [ca.cert],
    // Generous: a loaded machine's TLS handshakes must not pass for the fault under test.
    requestTimeoutMs: options.requestTimeoutMs ?? 5000,
    ...(options.lookup === undefined ? {} : { lookup: options.lookup }),
  });
  return new RegistryClient({
    http,
    credentials: () => options.credentials ?? new Map(),
    ...options.client,
  });
}

export function facts(
  policy: AddressPolicy,
  c = client(policy),
  options: { keys?: readonly PublicKeyRef[]; ttls?: Partial<FactTtls>; maxEntries?: number } = {},
): FactSource {
  return new Facts({
    client: c,
    policy: () => policy,
    // Every request names the one entry these keys make (keys only, no trust root).
    verification: (id) => keysOnly(id, options.keys ?? []),
    ttls: { ...DEFAULT_TTLS, ...options.ttls },
    ...(options.maxEntries === undefined ? {} : { maxEntries: options.maxEntries }),
  });
}

export const digest = (body: Buffer | string) =>
  `sha256:${createHash('sha256').update(body).digest('hex')}`;

export const MANIFEST = JSON.stringify({
  schemaVersion: 2,
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
});

/**
 * A cosign 2 (legacy) signature made by hand, as cosign makes it: an ECDSA P-256 key, the
 * simple-signing payload naming the digest, its signature (base64) in the layer's
 * annotation, and the `.sig` manifest holding it.
 */
export interface LegacySignature {
  readonly key: PublicKeyRef;
  readonly payload: Buffer;
  readonly manifest: string;
}

export function legacySignature(imageDigest: string, name = 'release.pub'): LegacySignature {
  const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const payload = Buffer.from(
    JSON.stringify({
      critical: {
        identity: { 'docker-reference': 'registry.example.com/team/app' },
        image: { 'docker-manifest-digest': imageDigest },
        type: 'cosign container image signature',
      },
      optional: null,
    }),
  );
  const signature = sign('sha256', payload, pair.privateKey).toString('base64');
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: {
      mediaType: 'application/vnd.oci.image.config.v1+json',
      digest: digest('{}'),
      size: 2,
    },
    layers: [
      {
        mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json',
        digest: digest(payload),
        size: payload.length,
        annotations: { 'dev.cosignproject.cosign/signature': signature },
      },
    ],
  });
  return { key: { name, key: pair.publicKey as KeyObject }, payload, manifest };
}
