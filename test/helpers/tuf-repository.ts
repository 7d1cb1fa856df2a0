/**
 * A TUF repository made in the test, laid out and signed as Sigstore's is (consistent
 * snapshots: `N.root.json`, `timestamp.json`, `N.snapshot.json`, `N.targets.json`,
 * `targets/<sha256>.<name>`; one ed25519 key per role), with @tufjs/models — the metadata
 * classes of the TUF project's JavaScript implementation — signing. go-tuf's CLI (v0.x)
 * could write it too, but only with expiry in whole days: the tests need metadata that
 * expires in seconds, keys that are not the root's, and targets that do not match.
 *
 * Served over HTTPS on 127.0.0.1 (the fake registry's CA) by `serve`, which can also be
 * told to answer too much, to go down, or to hand out other bytes for a path.
 */
import { createHash, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  Key,
  Metadata,
  MetaFile,
  Root,
  Signature,
  Snapshot,
  TargetFile,
  Targets,
  Timestamp,
} from '@tufjs/models';
import { canonicalJson } from '../../src/shared/json.ts';
import { type Fake, fake } from './fake-registry.ts';
import { type Teardown, tempDir } from './teardown.ts';

const ROLES = ['root', 'timestamp', 'snapshot', 'targets'] as const;
type Role = (typeof ROLES)[number];

export interface Signer {
  readonly key: Key;
  readonly privateKey: KeyObject;
}

export function signer(): Signer {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const raw = publicKey.export({ type: 'spki', format: 'der' }).subarray(-32).toString('hex');
  const fields = { keytype: 'ed25519', scheme: 'ed25519', keyval: { public: raw } };
  const keyID = createHash('sha256').update(canonicalJson(fields)).digest('hex');
  const key = new Key({ keyID, keyType: 'ed25519', scheme: 'ed25519', keyVal: { public: raw } });
  return { key, privateKey };
}

const inSeconds = (s: number) =>
  new Date(Date.now() + s * 1000).toISOString().replace(/\.\d+Z$/, 'Z');

export interface Expiry {
  readonly root?: number;
  readonly timestamp?: number;
  readonly snapshot?: number;
  readonly targets?: number;
}

export class TufRepository {
  /** What is served: the repository's files, by path. */
  readonly dir: string;
  /** The root.json a client pins (version 1). */
  readonly pinned: string;
  readonly signers: Record<Role, Signer>;
  #version = 0;
  #rootVersion = 1;

  private constructor(dir: string, pinned: string, signers: Record<Role, Signer>) {
    this.dir = dir;
    this.pinned = pinned;
    this.signers = signers;
  }

  static async create(t: Teardown, rootExpiresInS = 365 * 86_400): Promise<TufRepository> {
    const base = await tempDir(t, 'imagegate-tuf-repo-');
    const dir = join(base, 'repository');
    await mkdir(join(dir, 'targets'), { recursive: true });
    const signers = {
      root: signer(),
      timestamp: signer(),
      snapshot: signer(),
      targets: signer(),
    };
    const repo = new TufRepository(dir, join(base, 'pinned-root.json'), signers);
    const root = repo.rootMetadata(1, rootExpiresInS);
    await writeFile(join(dir, '1.root.json'), root);
    await writeFile(repo.pinned, root);
    return repo;
  }

  /** Root metadata of this version, naming the role keys, signed by the root key. */
  rootMetadata(version: number, expiresInS: number, by: Signer = this.signers.root): string {
    const root = new Root({
      version,
      specVersion: '1.0.31',
      expires: inSeconds(expiresInS),
      consistentSnapshot: true,
    });
    for (const role of ROLES) root.addKey(this.signers[role].key, role);
    return this.#signed(new Metadata(root), [by]);
  }

  /** A new root version, signed by the old root key (and the new one, the same here). */
  async rotateRoot(expiresInS = 365 * 86_400): Promise<void> {
    this.#rootVersion++;
    await writeFile(
      join(this.dir, `${this.#rootVersion}.root.json`),
      this.rootMetadata(this.#rootVersion, expiresInS),
    );
  }

  /**
   * Publishes `content` as target `name`: new targets, snapshot and timestamp versions,
   * each signed by its role's key unless `by` says otherwise.
   */
  async publish(
    name: string,
    content: Buffer | string,
    options: { expires?: Expiry; by?: Partial<Record<Role, Signer>> } = {},
  ): Promise<void> {
    const bytes = Buffer.from(content);
    const version = ++this.#version;
    const expires = (role: keyof Expiry) => inSeconds(options.expires?.[role] ?? 30 * 86_400);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    await writeFile(join(this.dir, 'targets', `${sha256}.${name}`), bytes);
    const targets = new Targets({
      version,
      specVersion: '1.0.31',
      expires: expires('targets'),
      targets: { [name]: new TargetFile({ path: name, length: bytes.length, hashes: { sha256 } }) },
    });
    const targetsText = this.#signed(new Metadata(targets), [
      options.by?.targets ?? this.signers.targets,
    ]);
    await writeFile(join(this.dir, `${version}.targets.json`), targetsText);
    const snapshot = new Snapshot({
      version,
      specVersion: '1.0.31',
      expires: expires('snapshot'),
      meta: { 'targets.json': new MetaFile({ version }) },
    });
    const snapshotText = this.#signed(new Metadata(snapshot), [
      options.by?.snapshot ?? this.signers.snapshot,
    ]);
    await writeFile(join(this.dir, `${version}.snapshot.json`), snapshotText);
    const timestamp = new Timestamp({
      version,
      specVersion: '1.0.31',
      expires: expires('timestamp'),
      snapshotMeta: new MetaFile({
        version,
        length: Buffer.byteLength(snapshotText),
        hashes: { sha256: createHash('sha256').update(snapshotText).digest('hex') },
      }),
    });
    await writeFile(
      join(this.dir, 'timestamp.json'),
      this.#signed(new Metadata(timestamp), [options.by?.timestamp ?? this.signers.timestamp]),
    );
  }

  /** The bytes served for a target name: another file with the recorded hash's name. */
  async tamper(name: string, content: Buffer | string): Promise<void> {
    const timestamp = JSON.parse(await readFile(join(this.dir, 'timestamp.json'), 'utf8')) as {
      signed: { version: number };
    };
    const targets = JSON.parse(
      await readFile(join(this.dir, `${timestamp.signed.version}.targets.json`), 'utf8'),
    ) as { signed: { targets: Record<string, { hashes: { sha256: string } }> } };
    const sha256 = targets.signed.targets[name]?.hashes.sha256 ?? '';
    await writeFile(join(this.dir, 'targets', `${sha256}.${name}`), content);
  }

  #signed(
    metadata: Metadata<Root | Timestamp | Snapshot | Targets>,
    by: readonly Signer[],
  ): string {
    for (const s of by) {
      metadata.sign(
        (data) =>
          new Signature({
            keyID: s.key.keyID,
            sig: sign(null, data, s.privateKey).toString('hex'),
          }),
        true,
      );
    }
    return JSON.stringify(metadata.toJSON(), null, 2);
  }
}

export interface Mirror {
  readonly url: string;
  readonly fake: Fake;
  /** Paths asked for, in order. */
  readonly asked: string[];
  /** When set, the answer for this path is this many bytes of padding (oversized). */
  oversize: { readonly path: string; readonly bytes: number } | undefined;
  /** When true, every request gets a 503. */
  down: boolean;
}

/** Serves `repo` over HTTPS on 127.0.0.1 (the fake registry CA's certificate). */
export async function serve(t: Teardown, repo: TufRepository): Promise<Mirror> {
  const state: Omit<Mirror, 'url' | 'fake'> = { asked: [], oversize: undefined, down: false };
  const server = await fake(t, (req) => {
    const path = decodeURIComponent(new URL(req.url, 'https://mirror').pathname);
    state.asked.push(path);
    if (state.down) return { status: 503, body: 'down' };
    if (state.oversize?.path === path) {
      return { status: 200, body: Buffer.alloc(state.oversize.bytes, 0x20) };
    }
    const file = join(repo.dir, path);
    if (!file.startsWith(repo.dir) || !existsSync(file)) return { status: 404, body: 'not found' };
    return {
      status: 200,
      headers: { 'content-type': 'application/json' },
      body: readFileSync(file),
    };
  });
  return Object.assign(state, { url: `https://${server.host}/`, fake: server });
}
