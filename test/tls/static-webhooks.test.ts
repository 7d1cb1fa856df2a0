/**
 * KEP-5793 static manifests from `imagegate certs`: what kube-apiserver 1.37 requires of
 * them (names ending in .static.k8s.io, clientConfig.url, never a service reference, one
 * kind per plugin folder), the same webhooks as deploy/base's, and an AdmissionConfiguration
 * of its own — the one for 1.35, which has no such field, is left without it.
 */
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { parse } from 'yaml';
import { isRecord, type JsonObject } from '../../src/shared/json.ts';
import { imagegate, ROOT } from '../helpers/cli.ts';

const record = (value: unknown): JsonObject => {
  if (!isRecord(value)) throw new TypeError(`not an object: ${JSON.stringify(value)}`);
  return value;
};
const first = (value: unknown): JsonObject => record(Array.isArray(value) ? value[0] : undefined);

async function certs(...extra: string[]) {
  const out = await mkdtemp(join(tmpdir(), 'imagegate-static-'));
  const result = await imagegate(['certs', '--out', out, ...extra]);
  return {
    out,
    result,
    yaml: async (name: string) => record(parse(await readFile(join(out, name), 'utf8'))),
  };
}

/** What a webhook says besides where it is: must equal deploy/base's. */
function behaviour(webhook: JsonObject): JsonObject {
  const { name: _n, clientConfig: _c, ...rest } = webhook;
  return rest;
}

test('static webhook manifests: named *.static.k8s.io, by URL, as deploy/base decides', async (t) => {
  const { result, yaml, out } = await certs(
    '--webhook-url=https://10.0.0.5:8443',
    '--control-plane-dir=/etc/kubernetes/imagegate',
  );
  t.is(result.code, 0, result.stderr);
  const ca = Buffer.from(await readFile(join(out, 'ca.crt'), 'utf8')).toString('base64');
  for (const [kind, folder, path] of [
    ['ValidatingWebhookConfiguration', 'validating', '/v1/validate'],
    ['MutatingWebhookConfiguration', 'mutating', '/v1/mutate'],
  ] as const) {
    const manifest = await yaml(`static/${folder}/imagegate.static.k8s.io.yaml`);
    t.is(manifest.kind, kind);
    t.is(record(manifest.metadata).name, 'imagegate.static.k8s.io');
    const webhook = first(manifest.webhooks);
    t.regex(String(webhook.name), /\.static\.k8s\.io$/);
    t.deepEqual(record(webhook.clientConfig), {
      url: `https://10.0.0.5:8443${path}`,
      caBundle: ca,
    });
    const base = record(
      parse(
        await readFile(
          join(
            ROOT,
            'deploy',
            'base',
            `${kind.replace('WebhookConfiguration', '').toLowerCase()}webhookconfiguration.yaml`,
          ),
          'utf8',
        ),
      ),
    );
    t.deepEqual(behaviour(webhook), behaviour(first(base.webhooks)), `${kind}: as deploy/base`);
  }

  const admission = await yaml('admission-configuration-static.yaml');
  const plugins = (admission.plugins as unknown[]).map(record);
  t.deepEqual(
    plugins.map((p) => [p.name, record(p.configuration).staticManifestsDir]),
    [
      ['ImagePolicyWebhook', undefined],
      ['ValidatingAdmissionWebhook', '/etc/kubernetes/imagegate/static/validating'],
      ['MutatingAdmissionWebhook', '/etc/kubernetes/imagegate/static/mutating'],
    ],
  );
  const plain = await yaml('admission-configuration.yaml');
  t.false(JSON.stringify(plain).includes('staticManifestsDir'), "1.35's file has no such field");
});

test('static manifests default to the Service; --webhook-url must be https with no path', async (t) => {
  const { result, yaml } = await certs('--service=gate', '--namespace=policy');
  t.is(result.code, 0, result.stderr);
  const webhook = first((await yaml('static/validating/imagegate.static.k8s.io.yaml')).webhooks);
  t.is(record(webhook.clientConfig).url, 'https://gate.policy.svc:443/v1/validate');
  for (const bad of ['http://10.0.0.5', 'https://10.0.0.5/v1/validate', 'not a url']) {
    const refused = await certs(`--webhook-url=${bad}`);
    t.is(refused.result.code, 2, bad);
    t.regex(refused.result.stderr, /--webhook-url must be an https:\/\/ URL with no path/);
  }
});
