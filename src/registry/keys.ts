/**
 * The public keys `signatures` entries name: inline PEM or a file path (read when the
 * configuration loads, and again whenever it reloads). Each gets a name for messages and
 * audit: the file's name, or `inline:<first 12 hex of the key's SHA-256>`.
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { describeThrown } from '../shared/describe-thrown.ts';
import { RegistryError } from './registry-error.ts';

export interface PublicKeyRef {
  readonly name: string;
  readonly key: KeyObject;
}

const isPem = (ref: string) => ref.trimStart().startsWith('-----BEGIN');

export async function loadKey(ref: string): Promise<PublicKeyRef> {
  let pem: string;
  let name: string;
  if (isPem(ref)) {
    pem = ref;
    name = '';
  } else {
    try {
      pem = await readFile(ref, 'utf8');
    } catch (error) {
      throw new RegistryError(`signature key ${ref}: ${describeThrown(error)}`, { cause: error });
    }
    name = basename(ref);
  }
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (error) {
    throw new RegistryError(
      `signature key ${name || 'inline'} is not a PEM public key: ${describeThrown(error)}`,
    );
  }
  if (name === '') {
    const spki = key.export({ type: 'spki', format: 'der' });
    name = `inline:${createHash('sha256').update(spki).digest('hex').slice(0, 12)}`;
  }
  return { name, key };
}

/** The key files among refs (watched with the configuration). */
export const keyFiles = (refs: readonly string[]) => refs.filter((ref) => !isPem(ref));
