/**
 * Assertions on what cosign 3 attaches when it signs against the bed (ava; shared by the bed's
 * test files). Field by field, because that is what a verifier reads:
 *
 * - the image has exactly one Sigstore bundle v0.3 referrer;
 * - its one tlog entry is Rekor v2's: `kindVersion` hashedrekord 0.0.2 (cosign 3 logs the
 *   DSSE signature as a hashedrekord whose digest is SHA-256 of the envelope's
 *   pre-authentication encoding, not as a `dsse` entry), an inclusion proof with a
 *   checkpoint signed by the bed's log (origin 127.0.0.1, the log ID's first 4 bytes as key
 *   hint), no inclusion promise, no integrated time, and a log ID that is the trusted root's
 *   (`checkpointKeyId` when set, else `logId`).
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { ExecutionContext } from 'ava';
import { isRecord, type JsonObject } from '../../src/shared/json.ts';
import type { TestRegistry } from './registry.ts';
import type { SigstoreBed } from './sigstore.ts';
import {
  type AttachedBundle,
  attachedBundles,
  BUNDLE_V03,
  tlogEntries,
} from './sigstore-bundles.ts';

export const object = (value: unknown, what: string): JsonObject => {
  if (!isRecord(value)) {
    throw new TypeError(`${what} is not a JSON object: ${JSON.stringify(value)}`);
  }
  return value;
};

/** Nothing but loopback was reached: the sandbox's dead proxy or a public host would show. */
export function offline(t: ExecutionContext, stderr: string): void {
  t.notRegex(stderr, /proxyconnect|127\.0\.0\.1:9\b|\btuf\b|sigstore\.dev/i, stderr);
}

/** DSSE's pre-authentication encoding: what a DSSE signature covers. */
export function pae(envelope: JsonObject): Buffer {
  const type = String(envelope.payloadType);
  const payload = Buffer.from(String(envelope.payload), 'base64');
  return Buffer.concat([Buffer.from(`DSSEv1 ${type.length} ${type} ${payload.length} `), payload]);
}

/** The one bundle attached to `digest`, its Rekor v2 entry checked against the bed. */
export async function oneBundle(
  t: ExecutionContext,
  registry: TestRegistry,
  repo: string,
  digest: string,
  bed: Pick<SigstoreBed, 'trustedRoot'>,
): Promise<AttachedBundle> {
  const [attached, ...more] = await attachedBundles(registry, repo, digest);
  t.is(more.length, 0);
  if (attached === undefined) throw new Error(`no bundle attached to ${digest}`);
  t.is(attached.artifactType, BUNDLE_V03);
  t.is(attached.bundle.mediaType, BUNDLE_V03);
  const [entry, ...others] = tlogEntries(attached.bundle);
  t.is(others.length, 0);
  if (entry === undefined) throw new Error('no tlog entry');

  t.deepEqual(entry.kindVersion, { kind: 'hashedrekord', version: '0.0.2' });
  const body = object(
    JSON.parse(Buffer.from(String(entry.canonicalizedBody), 'base64').toString()),
    'canonicalizedBody',
  );
  const spec = object(object(body.spec, 'spec').hashedRekordV002, 'hashedRekordV002');
  const signed = pae(object(attached.bundle.dsseEnvelope, 'dsseEnvelope'));
  t.deepEqual(object(spec.data, 'data'), {
    algorithm: 'SHA2_256',
    digest: createHash('sha256').update(signed).digest('base64'),
  });
  t.is(entry.inclusionPromise, undefined);
  t.true(entry.integratedTime === undefined || entry.integratedTime === '0');

  const proof = object(entry.inclusionProof, 'inclusionProof');
  // proto3 JSON leaves out zero values: no `hashes` in a one-entry tree, no index 0.
  t.true(Number(proof.treeSize) >= 1 && typeof proof.rootHash === 'string');
  t.true(proof.hashes === undefined || Array.isArray(proof.hashes));
  const checkpoint = String(object(proof.checkpoint, 'checkpoint').envelope);
  const [note, signature] = checkpoint.split('\n\n');
  t.is(note, `127.0.0.1\n${String(proof.treeSize)}\n${String(proof.rootHash)}`);
  const keyId = String(object(entry.logId, 'logId').keyId);
  const hint = Buffer.from(keyId, 'base64').subarray(0, 4);
  const line = /^\u2014 127\.0\.0\.1 ([A-Za-z0-9+/=]+)\n$/.exec(signature ?? '');
  t.deepEqual(Buffer.from(line?.[1] ?? '', 'base64').subarray(0, 4), hint, checkpoint);

  const root = object(JSON.parse(await readFile(bed.trustedRoot, 'utf8')), 'trusted root');
  const [tlog] = Array.isArray(root.tlogs) ? root.tlogs.map((l) => object(l, 'tlog')) : [];
  t.is(object(tlog?.checkpointKeyId ?? tlog?.logId, 'trusted log id').keyId, keyId);
  return attached;
}
