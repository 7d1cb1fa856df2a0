/**
 * The committed conformance fixtures (test/fixtures/sigstore, made by
 * test/tools/sigstore-fixtures.ts with the real cosign 2 and 3 against a Sigstore bed),
 * served by replaying registries on 127.0.0.1, and a FactSource over them whose
 * `signatures` entries a test writes as the configuration would (VerificationConfig).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { addressPolicy } from '../../src/registry/addresses.ts';
import {
  DEFAULT_TTLS,
  type FactRequest,
  FactSource,
  type ImageFacts,
} from '../../src/registry/facts.ts';
import { loadKey, type PublicKeyRef } from '../../src/registry/keys.ts';
import {
  buildVerification,
  type Verification,
  type VerificationConfig,
} from '../../src/registry/sigstore/verification.ts';
import { type LoadedTrustRoot, loadTrustRoot } from '../../src/registry/trust-roots.ts';
import { isRecord, type JsonObject } from '../../src/shared/json.ts';
import { ROOT } from './cli.ts';
import { client, type Fake } from './fake-registry.ts';
import { recordedRegistry, replay } from './recorded-registry.ts';
import type { Teardown } from './teardown.ts';

export const FIXTURES = join(ROOT, 'test', 'fixtures', 'sigstore');

export interface FixtureCase {
  readonly registry: 'fallback' | 'referrers' | 'raw';
  readonly repository: string;
  readonly tag: string;
  readonly digest: string;
  readonly platformDigests: Readonly<Record<string, string>>;
  readonly made: string;
}

export interface Fixtures {
  readonly cases: Readonly<Record<string, FixtureCase>>;
  readonly identities: {
    readonly release: {
      readonly issuer: string;
      readonly subject: string;
      readonly tsaOnlyIssuer: string;
      readonly otherIssuer: string;
    };
    readonly mallory: { readonly subject: string };
    readonly email: { readonly issuer: string; readonly subject: string };
  };
  /** The SLSA provenance predicate the attestation cases carry. */
  readonly provenance: JsonObject;
}

export const fixtures = (): Fixtures => {
  const json: unknown = JSON.parse(readFileSync(join(FIXTURES, 'cases.json'), 'utf8'));
  if (!isRecord(json) || !isRecord(json.cases)) throw new TypeError('cases.json');
  return json as unknown as Fixtures;
};

/** Trust roots by the names tests give them: bed, tsa-only, other. */
export async function fixtureRoots(): Promise<Map<string, LoadedTrustRoot>> {
  const roots = new Map<string, LoadedTrustRoot>();
  for (const name of ['bed', 'tsa-only', 'other']) {
    roots.set(name, await loadTrustRoot(name, join(FIXTURES, 'roots', `${name}.json`)));
  }
  return roots;
}

/** Keys by reference: release.pub, other.pub (names as the facts give them). */
export async function fixtureKeys(): Promise<Map<string, PublicKeyRef>> {
  const keys = new Map<string, PublicKeyRef>();
  for (const name of ['release.pub', 'other.pub']) {
    keys.set(name, await loadKey(join(FIXTURES, 'keys', name)));
  }
  return keys;
}

export interface Conformance {
  readonly fixtures: Fixtures;
  readonly roots: Map<string, LoadedTrustRoot>;
  readonly keys: Map<string, PublicKeyRef>;
  /** The replaying registries, by the case's kind. */
  readonly registries: Readonly<Record<FixtureCase['registry'], Fake>>;
  /** A FactSource over the replays; entries are registered by `entry()`. */
  readonly facts: FactSource;
  /** Registers an entry (its keys named as in `keys`), returning its id. */
  entry(config: Partial<VerificationConfig>): string;
  /** The facts request for a case (its digest, or a platform's, with the tag kept). */
  request(
    name: string,
    verification: string,
    options?: { platform?: string; index?: number },
  ): FactRequest;
  /** Facts for one request, within a generous budget. */
  one(request: FactRequest): Promise<ImageFacts>;
}

export async function conformance(t: Teardown): Promise<Conformance> {
  const recorded = JSON.parse(readFileSync(join(FIXTURES, 'registries.json'), 'utf8')) as Record<
    string,
    unknown
  >;
  const registries = {
    fallback: await replay(t, recordedRegistry(recorded.fallback)),
    referrers: await replay(t, recordedRegistry(recorded.referrers)),
    raw: await replay(t, recordedRegistry(recorded.raw)),
  };
  const policy = addressPolicy(Object.values(registries).map((r) => r.host));
  const roots = await fixtureRoots();
  const keys = await fixtureKeys();
  const entries = new Map<string, Verification>();
  const facts = new FactSource({
    client: client(policy),
    policy: () => policy,
    verification: (id) => {
      const found = entries.get(id);
      if (found === undefined) throw new Error(`no entry ${id}`);
      return found;
    },
    ttls: DEFAULT_TTLS,
  });
  const cases = fixtures().cases;
  return {
    fixtures: fixtures(),
    roots,
    keys,
    registries,
    facts,
    entry(config) {
      const id = `e${entries.size}`;
      entries.set(
        id,
        buildVerification(
          id,
          { keys: [], identities: [], attestations: [], ...config },
          keys,
          roots,
        ),
      );
      return id;
    },
    request(name, verification, options = {}) {
      const c = cases[name];
      if (c === undefined) throw new Error(`no case ${name}`);
      return {
        index: options.index ?? 0,
        registry: registries[c.registry].host,
        repository: c.repository,
        tag: c.tag,
        digest:
          options.platform === undefined ? c.digest : (c.platformDigests[options.platform] ?? ''),
        verification,
      };
    },
    async one(request) {
      const gathered = await facts.gather([request], 20_000);
      return gathered.get(request.index) ?? {};
    },
  };
}
