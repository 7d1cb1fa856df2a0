/**
 * The Sigstore servers of the bed, one process each on 127.0.0.1 with free ports, each owned
 * by the test (service.ts), plain HTTP (cosign and sigstore-go accept http:// service URLs):
 *
 * - Rekor v2 (rekor-tiles 2.3.0, cmd/rekor-server/posix): the log's tiles in a temp dir, its
 *   own checkpoint key (made here, PKCS#8 PEM). `--hostname` is the checkpoint origin and
 *   must equal the host of the log URL in the trusted root (sigstore-go takes the origin
 *   from the URL's hostname), else signing fails with "note has no verifiable signatures".
 *   Checkpoints every 100 ms (Tessera's default is 10 s: each upload waits for the next).
 *   HTTP, gRPC and metrics each need a port (service.ts picks them); all bind to 127.0.0.1.
 * - The timestamp authority (test/tools/timestamp-server, timestamp-authority 2.1.3): an
 *   in-memory signer (`--timestamp-signer memory`) whose chain it serves at
 *   /api/v1/timestamp/certchain; no NTP monitoring, no metrics listener.
 * - Fulcio 1.8.8: `--ca ephemeralca` (an in-memory CA, its chain at /api/v1/rootCert),
 *   `--ct-log-url ""` (no CT log, so certificates carry no SCT: verifiers need cosign's
 *   `--insecure-ignore-sct` or sigstore-js's `ctlogThreshold: 0`), issuers from
 *   sigstore-fulcio-config.ts (the OIDC issuer must answer first: Fulcio fetches discovery
 *   at start). HTTP and gRPC on two ports: with one port (its "duplex" server) 1.8.8 panics
 *   registering gRPC metrics twice. The legacy gRPC unix socket, by default the abstract
 *   name @fulcio-legacy-grpc-socket shared by every Fulcio on the machine, goes to the temp
 *   dir. The metrics listener has no host flag: it binds every interface, on a free port.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { OidcIssuer } from './oidc-issuer.ts';
import { httpGet, type Service, startService } from './service.ts';
import { fulcioConfig } from './sigstore-fulcio-config.ts';
import type { SigstoreTools } from './sigstore-tools.ts';
import type { Teardown } from './teardown.ts';

export interface Rekor extends Service {
  /** `http://127.0.0.1:PORT`: the signing config's and the trusted root's URL. */
  readonly url: string;
  /** The checkpoint origin (`--hostname`): the URL's host. */
  readonly origin: string;
  /** PEM (PUBLIC KEY) of the checkpoint key, and its file. */
  readonly publicKey: string;
  readonly publicKeyFile: string;
}

export interface CertificateService extends Service {
  /** Fulcio: `http://127.0.0.1:PORT`; the TSA: `http://127.0.0.1:PORT/api/v1/timestamp`. */
  readonly url: string;
  /** PEM chain, leaf or intermediates first and the root last (what cosign reads). */
  readonly chain: string;
  readonly chainFile: string;
}

export type RekorKeyType = 'ecdsa-p256' | 'ed25519';

const env = (dir: string): NodeJS.ProcessEnv => ({ PATH: process.env.PATH ?? '/bin', HOME: dir });

export async function startRekor(
  t: Teardown,
  tools: Pick<SigstoreTools, 'rekor'>,
  dir: string,
  keyType: RekorKeyType = 'ecdsa-p256',
): Promise<Rekor> {
  await mkdir(join(dir, 'log'), { recursive: true });
  const pair =
    keyType === 'ed25519'
      ? generateKeyPairSync('ed25519')
      : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const keyFile = join(dir, 'rekor.key');
  const publicKeyFile = join(dir, 'rekor.pub');
  const publicKey = pair.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  await writeFile(keyFile, pair.privateKey.export({ type: 'pkcs8', format: 'pem' }), {
    mode: 0o600,
  });
  await writeFile(publicKeyFile, publicKey);
  const origin = '127.0.0.1';
  const service = await startService(t, {
    name: 'rekor',
    ports: 3,
    command: ([http, grpc, metrics]) => [
      tools.rekor,
      'serve',
      `--http-address=${origin}`,
      `--http-port=${http}`,
      `--grpc-address=${origin}`,
      `--grpc-port=${grpc}`,
      `--http-metrics-port=${metrics}`,
      `--hostname=${origin}`,
      `--storage-dir=${join(dir, 'log')}`,
      `--signer-filepath=${keyFile}`,
      '--checkpoint-interval=100ms',
      '--batch-max-age=50ms',
    ],
    env: env(dir),
    ready: async ([http]) =>
      (await httpGet(`http://${origin}:${http}/healthz`))?.body.includes('SERVING') === true,
  });
  const url = `http://${origin}:${service.ports[0]}`;
  return { ...service, url, origin, publicKey, publicKeyFile };
}

export async function startTimestampAuthority(
  t: Teardown,
  tools: Pick<SigstoreTools, 'tsa'>,
  dir: string,
): Promise<CertificateService> {
  const service = await startService(t, {
    name: 'timestamp-authority',
    ports: 1,
    command: ([port]) => [
      tools.tsa,
      '--host=127.0.0.1',
      `--port=${port}`,
      '--timestamp-signer=memory',
      '--disable-ntp-monitoring',
      '--log-type=prod',
    ],
    env: env(dir),
    ready: async ([port]) => (await httpGet(`http://127.0.0.1:${port}/ping`))?.status === 200,
  });
  const base = `http://127.0.0.1:${service.ports[0]}`;
  const chain = await fetchPem(`${base}/api/v1/timestamp/certchain`);
  const chainFile = join(dir, 'tsa-chain.pem');
  await writeFile(chainFile, chain);
  return { ...service, url: `${base}/api/v1/timestamp`, chain, chainFile };
}

export async function startFulcio(
  t: Teardown,
  tools: Pick<SigstoreTools, 'fulcio'>,
  dir: string,
  oidc: OidcIssuer,
): Promise<CertificateService> {
  const config = join(dir, 'fulcio-config.yaml');
  await writeFile(config, stringify(fulcioConfig(oidc)));
  const rootCert = (port: number | undefined) => `http://127.0.0.1:${port}/api/v1/rootCert`;
  const service = await startService(t, {
    name: 'fulcio',
    ports: 3,
    command: ([port, grpc, metrics]) => [
      tools.fulcio,
      'serve',
      '--ca=ephemeralca',
      '--ct-log-url=',
      `--config-path=${config}`,
      '--host=127.0.0.1',
      `--port=${port}`,
      '--grpc-host=127.0.0.1',
      `--grpc-port=${grpc}`,
      `--metrics-port=${metrics}`,
      // One per attempt: a socket file left by a failed start would fail the next one.
      `--legacy-unix-domain-socket=${join(dir, `fulcio-legacy-${port}.sock`)}`,
      '--log_type=prod',
    ],
    env: env(dir),
    ready: async ([port]) =>
      (await httpGet(rootCert(port)))?.body.includes('-----BEGIN CERTIFICATE-----') === true,
  });
  const url = `http://127.0.0.1:${service.ports[0]}`;
  const chain = await fetchPem(`${url}/api/v1/rootCert`);
  const chainFile = join(dir, 'fulcio-chain.pem');
  await writeFile(chainFile, chain);
  return { ...service, url, chain, chainFile };
}

async function fetchPem(url: string): Promise<string> {
  const res = await httpGet(url);
  if (res?.status !== 200 || !res.body.includes('-----BEGIN CERTIFICATE-----')) {
    throw new Error(`GET ${url}: ${res?.status ?? 'no answer'} ${res?.body ?? ''}`);
  }
  return res.body;
}
