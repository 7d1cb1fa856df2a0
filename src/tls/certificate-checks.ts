/**
 * Whether PEM material can serve: checked before a certificate or client CA goes into
 * service, at start-up and on every rotation, so a bad file never replaces a good one.
 */
import { X509Certificate } from 'node:crypto';
import { describeThrown } from '../shared/describe-thrown.ts';

/** Why a certificate cannot serve now (expired, not yet valid, unparseable), if it cannot. */
export function validityProblem(pem: Buffer | string, now = Date.now()): string | undefined {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pem);
  } catch (error) {
    return `the certificate does not parse: ${describeThrown(error)}`;
  }
  if (Date.parse(cert.validTo) <= now) return `the certificate expired at ${cert.validTo}`;
  if (Date.parse(cert.validFrom) > now)
    return `the certificate is not valid before ${cert.validFrom}`;
  return undefined;
}

/** The certificate's notAfter as X509Certificate prints it; '' when it does not parse. */
export function notAfter(pem: Buffer): string {
  try {
    return new X509Certificate(pem).validTo;
  } catch {
    return '';
  }
}

/** Why a client CA bundle cannot verify anyone: no certificate in it, or one that does not parse. */
export function clientCaProblem(pem: Buffer | string): string | undefined {
  const blocks =
    pem.toString().match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) return 'the client CA file holds no PEM certificate';
  for (const [index, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch (error) {
      return `certificate ${index + 1} of the client CA file does not parse: ${describeThrown(error)}`;
    }
  }
  return undefined;
}
