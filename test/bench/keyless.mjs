/**
 * Keyless verification (issue 25, item 8): a private Sigstore from `make sigstore-tools`
 * (Rekor v2, Fulcio, the timestamp authority, an OIDC issuer) and the real distribution
 * registry on loopback; images signed by cosign 3 with its defaults, keyless (a GitHub
 * Actions identity: Rekor v2 entry + RFC 3161 timestamp) and, for comparison, with a key
 * (Rekor v2 entry). In-process, through the gateway's own FactSource and registry client
 * over kept-alive connections, each row the median of `rounds`:
 *
 *   cold      a fresh fact cache: the signature found (legacy tag, referrers, fallback tag,
 *             manifest, bundle blob) and verified — per image
 *   warm      the same lookups again on the same cache: the registry requests they make
 *             (none, or the warm path is broken) and what they cost
 *   8 × 5     kyverno#16657's shape: a pod of 8 containers of one image under an entry of
 *             5 identities (the fifth matches): registry requests and time, cold and warm
 *   verify    the cryptography alone: one found keyless bundle judged against the entry
 *             (no I/O), the bulk of a cold lookup's CPU
 *
 * Nothing here contacts a transparency log or a timestamp authority: verification is
 * offline, against the trusted root.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { log, percentile, ROOT } from './lib.mjs';

const dist = (path) => import(join(ROOT, 'dist', path));
const RELEASE = { repository: 'acme/app', ref: 'refs/tags/v1.0.0' };

const median = (values) =>
  percentile(
    [...values].sort((a, b) => a - b),
    50,
  );

export async function runKeyless({ tmp, quick }) {
  const { Teardowns } = await dist('test/helpers/teardown.js');
  const { startRegistry, pushImage, generateKeyPair } = await dist('test/helpers/registry.js');
  const { startSigstoreBed } = await dist('test/helpers/sigstore.js');
  const { cosignSign } = await dist('test/helpers/sigstore-sign.js');
  const { githubActionsClaims, githubActionsIdentity } = await dist(
    'test/helpers/sigstore-fulcio-config.js',
  );
  const { addressPolicy } = await dist('src/registry/addresses.js');
  const { RegistryClient } = await dist('src/registry/client.js');
  const { RegistryHttp } = await dist('src/registry/http.js');
  const { FactSource } = await dist('src/registry/facts.js');
  const { findArtifacts, judgeFound } = await dist('src/registry/cosign.js');
  const { loadKey } = await dist('src/registry/keys.js');
  const { loadTrustRoot } = await dist('src/registry/trust-roots.js');
  const { buildVerification } = await dist('src/registry/sigstore/verification.js');

  const teardowns = new Teardowns();
  const dir = join(tmp, 'keyless-bench');
  mkdirSync(dir, { recursive: true });
  try {
    log('keyless: a Sigstore bed and the distribution registry; cosign 3 signs');
    const bed = await startSigstoreBed(teardowns, { fulcio: true });
    const registry = await startRegistry(teardowns, { auth: 'none' });
    const keyless = await pushImage(registry, 'acme/keyless', 'v1');
    const token = await bed.oidc.mint('github-actions', githubActionsClaims(RELEASE));
    await cosignSign(bed, registry, keyless.reference, { identityToken: token });
    const keyed = await pushImage(registry, 'acme/keyed', 'v1');
    const pair = await generateKeyPair(dir);
    await cosignSign(bed, registry, keyed.reference, { key: pair });

    const root = await loadTrustRoot('bed', bed.trustedRoot);
    const roots = new Map([['bed', root]]);
    const key = await loadKey(pair.publicKey);
    const keys = new Map([[key.name, key]]);
    const issuer = bed.oidc.url('github-actions');
    const release = { issuer, subject: githubActionsIdentity(RELEASE) };
    const others = Array.from({ length: 4 }, (_, i) => ({
      issuer,
      subject: `https://github.com/acme/other-${i}/.github/workflows/release.yml@refs/tags/*`,
    }));
    const base = { keys: [], identities: [], attestations: [], trustRoot: 'bed' };
    const entries = new Map(
      Object.entries({
        keyless: buildVerification('keyless', { ...base, identities: [release] }, keys, roots),
        five: buildVerification('five', { ...base, identities: [...others, release] }, keys, roots),
        keyed: buildVerification('keyed', { ...base, keys: [key.name] }, keys, roots),
      }),
    );

    const policy = addressPolicy([registry.host]);
    const http = new RegistryHttp({
      policy: () => policy,
      ca: [registry.ca],
      requestTimeoutMs: 2000,
    });
    let requests = 0;
    const client = new RegistryClient({
      http,
      credentials: () => new Map(),
      observe: () => {
        requests++;
      },
    });
    const factSource = () =>
      new FactSource({ client, policy: () => policy, verification: (id) => entries.get(id) });
    const request = (image, verification, index = 0) => ({
      index,
      registry: registry.host,
      repository: image.repository.slice(registry.host.length + 1),
      tag: 'v1',
      digest: image.digest,
      verification,
    });
    const measure = async (facts, batch) => {
      const before = requests;
      const started = performance.now();
      const gathered = await facts.gather(batch, 10_000);
      const ms = performance.now() - started;
      for (const f of gathered.values()) {
        if (f.signature?.verified !== true) throw new Error(`not verified: ${JSON.stringify(f)}`);
      }
      return { ms, requests: requests - before };
    };

    const rounds = quick ? 5 : 50;
    const rows = {};
    for (const [name, batch] of Object.entries({
      'keyless, one image': [request(keyless, 'keyless')],
      'key + Rekor v2, one image': [request(keyed, 'keyed')],
      '8 containers × 5 identities': Array.from({ length: 8 }, (_, i) =>
        request(keyless, 'five', i),
      ),
    })) {
      log(`keyless: ${name}, ${rounds} rounds cold and warm`);
      const cold = [];
      const warm = [];
      for (let i = 0; i < rounds; i++) {
        const facts = factSource();
        cold.push(await measure(facts, batch));
        warm.push(await measure(facts, batch));
      }
      rows[name] = {
        coldMs: median(cold.map((c) => c.ms)),
        coldRequests: median(cold.map((c) => c.requests)),
        warmMs: median(warm.map((w) => w.ms)),
        warmRequests: Math.max(...warm.map((w) => w.requests)),
      };
    }

    log('keyless: the verification alone, no I/O');
    const found = await findArtifacts(
      client,
      registry.host,
      'acme/keyless',
      keyless.digest,
      { signal: AbortSignal.timeout(5000) },
      { attestations: false },
    );
    const iterations = quick ? 50 : 1000;
    const verify = {};
    for (const id of ['keyless', 'five']) {
      const entry = entries.get(id);
      judgeFound(found, keyless.digest, entry);
      const started = performance.now();
      for (let i = 0; i < iterations; i++) judgeFound(found, keyless.digest, entry);
      verify[id] = ((performance.now() - started) / iterations) * 1000;
    }
    await http.close();
    const result = { rounds, iterations, rows, verifyUs: verify };
    writeFileSync(join(dir, 'keyless.json'), JSON.stringify(result, null, 2));
    return result;
  } finally {
    await teardowns.run();
  }
}
