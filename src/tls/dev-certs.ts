/**
 * `imagegate serve` with no --tls-cert: a local CA kept in the state folder (made once,
 * reused so clients can keep trusting it) and a fresh serving certificate for localhost.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type CertificatePair, createCa, issueCertificate } from './certs.ts';

export interface DevCertificates {
  readonly caPath: string;
  readonly certPath: string;
  readonly keyPath: string;
  readonly createdCa: boolean;
}

export async function ensureDevCertificates(stateDir: string): Promise<DevCertificates> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const caPath = join(stateDir, 'ca.crt');
  const caKeyPath = join(stateDir, 'ca.key');
  let ca: CertificatePair;
  const createdCa = !(existsSync(caPath) && existsSync(caKeyPath));
  if (createdCa) {
    ca = createCa('imagegate local CA');
    await writeFile(caKeyPath, ca.key, { mode: 0o600 });
    await writeFile(caPath, ca.cert);
  } else {
    ca = { cert: await readFile(caPath, 'utf8'), key: await readFile(caKeyPath, 'utf8') };
  }
  const serving = issueCertificate(ca, {
    commonName: 'localhost',
    usage: 'server',
    altNames: ['localhost', '127.0.0.1', '::1'],
    validityDays: 30,
  });
  const certPath = join(stateDir, 'serving.crt');
  const keyPath = join(stateDir, 'serving.key');
  await writeFile(keyPath, serving.key, { mode: 0o600 });
  await writeFile(certPath, serving.cert);
  return { caPath, certPath, keyPath, createdCa };
}
