/**
 * `imagegate certs`: a CA, a serving certificate for the Service, a client certificate for
 * the API server, and every file deploy/ and the control plane need, written to one folder.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { dirname, join } from 'node:path';
import { InputError } from '../shared/input-error.ts';
import { canonicalIp, createCa, issueCertificate } from '../tls/certs.ts';
import {
  type ClusterNames,
  controlPlaneFiles,
  serviceDnsNames,
  tlsSecret,
  ttlProblem,
} from '../tls/control-plane.ts';
import { staticWebhookFiles } from '../tls/static-webhooks.ts';
import type { Command } from './command.ts';
import { parseFlags } from './flags.ts';

const USAGE = `usage: imagegate certs [flags]

Writes a CA, a serving certificate for the gateway's Service, a client certificate for
the API server, and what deploy/ and the control plane need: the TLS Secret, the
webhooks' caBundle, the ImagePolicyWebhook AdmissionConfiguration and kubeconfigs.

flags:
  --out DIR             where to write them (default ./imagegate-certs)
  --service NAME        the gateway's Service (default imagegate)
  -n, --namespace NAME  its namespace (default imagegate-system)
  --secret-name NAME    the TLS Secret's name (default imagegate-tls)
  --ip ADDR             an extra IP SAN, IPv4 or IPv6 (repeatable)
  --days N              certificate validity, 1 to 3650 (default 365; the CA gets twice that)
  --control-plane-dir DIR   where kube-apiserver reads the kubeconfigs
                        (default /etc/kubernetes/imagegate)
  --allow-ttl N, --deny-ttl N   ImagePolicyWebhook cache TTLs in seconds: 0 (its
                        default), -1 (no cache) or 2 to 1800 (default 50; write
                        --allow-ttl=-1 for "no cache")
  --imagepolicy-server URL   the ImagePolicyWebhook backend the API server calls
                        (default https://SERVICE.NAMESPACE.svc:443/v1/imagereview)
  --webhook-url URL     where the static webhook manifests send reviews (URL/v1/validate,
                        URL/v1/mutate; default https://SERVICE.NAMESPACE.svc:443)

Also written: static/validating/ and static/mutating/ (webhook configurations named
imagegate.static.k8s.io) and admission-configuration-static.yaml naming them as each
plugin's staticManifestsDir: Kubernetes 1.37+ loads them at API server start (KEP-5793,
feature gate ManifestBasedAdmissionControlConfig, on by default from 1.37; absent in 1.35).
  -h, --help            this text

Every flag can also be given as IMAGEGATE_<FLAG> (IMAGEGATE_OUT=...).
Exit codes: 0 written, 2 bad input.
`;

const FLAGS = {
  out: { type: 'string' },
  service: { type: 'string' },
  namespace: { type: 'string', short: 'n' },
  ip: { type: 'string', multiple: true },
  days: { type: 'string' },
  'secret-name': { type: 'string' },
  'control-plane-dir': { type: 'string' },
  'allow-ttl': { type: 'string' },
  'deny-ttl': { type: 'string' },
  'imagepolicy-server': { type: 'string' },
  'webhook-url': { type: 'string' },
} as const;

interface CertsOptions extends ClusterNames {
  readonly out: string;
  readonly webhookUrl?: string | undefined;
  readonly ips: readonly string[];
  readonly days: number;
}

const DNS_LABEL = /^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$/;

/** Why an --ip value cannot be a certificate's IP SAN; undefined when it can. */
function ipProblem(ip: string): string | undefined {
  if (ip.includes('%')) {
    return `--ip ${JSON.stringify(ip)} has a zone (${ip.slice(ip.indexOf('%'))}), which a certificate cannot carry`;
  }
  if (isIP(ip) === 0) return `--ip ${JSON.stringify(ip)} is not an IP address`;
  // Clients compare an IPv4 destination with 4-byte SANs: a mapped address (16 bytes)
  // would not match it for most of them.
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip) ?? /^::ffff:/i.exec(canonicalIp(ip));
  if (mapped !== null) {
    const v4 = mapped[1] ?? 'its IPv4 form';
    return `--ip ${JSON.stringify(ip)} is an IPv4-mapped IPv6 address: write the IPv4 address (${v4}) instead`;
  }
  return undefined;
}

function checkCertsOptions(options: CertsOptions): void {
  for (const [flag, value] of [
    ['--service', options.service],
    ['--namespace', options.namespace],
    ['--secret-name', options.secretName],
  ] as const) {
    if (!DNS_LABEL.test(value))
      throw new InputError(`${flag} ${JSON.stringify(value)} is not a valid DNS label`);
  }
  if (options.imagePolicyServer !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(options.imagePolicyServer);
    } catch {
      url = undefined;
    }
    if (url?.protocol !== 'https:') {
      throw new InputError(
        '--imagepolicy-server must be an https:// URL (e.g. https://10.0.0.5:443/v1/imagereview)',
      );
    }
  }
  if (options.webhookUrl !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(options.webhookUrl);
    } catch {
      url = undefined;
    }
    if (url?.protocol !== 'https:' || url.pathname !== '/' || url.search !== '') {
      throw new InputError(
        '--webhook-url must be an https:// URL with no path (e.g. https://10.0.0.5:443)',
      );
    }
  }
  for (const ip of options.ips) {
    const problem = ipProblem(ip);
    if (problem !== undefined) throw new InputError(problem);
  }
  if (!Number.isInteger(options.days) || options.days < 1 || options.days > 3650) {
    throw new InputError('--days must be a whole number from 1 to 3650');
  }
  for (const [flag, ttl] of [
    ['--allow-ttl', options.allowTtl],
    ['--deny-ttl', options.denyTtl],
  ] as const) {
    const problem = ttlProblem(ttl);
    if (problem !== undefined) throw new InputError(`${flag} ${problem}`);
  }
}

/** Returns the files written, relative to `out`. */
async function runCerts(options: CertsOptions): Promise<string[]> {
  checkCertsOptions(options);
  const ca = createCa(`imagegate CA (${options.namespace})`, options.days * 2);
  const serving = issueCertificate(ca, {
    commonName: `${options.service}.${options.namespace}.svc`,
    usage: 'server',
    altNames: [...serviceDnsNames(options.service, options.namespace), ...options.ips],
    validityDays: options.days,
  });
  // The API server presents this to the gateway (ImagePolicyWebhook, and the admission
  // webhooks when the gateway runs with --client-ca).
  const client = issueCertificate(ca, {
    commonName: 'kube-apiserver-imagegate-client',
    usage: 'client',
    validityDays: options.days,
  });
  const files: Record<string, { text: string; secret?: boolean }> = {
    'ca.crt': { text: ca.cert },
    'ca.key': { text: ca.key, secret: true },
    'tls.crt': { text: serving.cert },
    'tls.key': { text: serving.key, secret: true },
    'client.crt': { text: client.cert },
    'client.key': { text: client.key, secret: true },
    'ca-bundle.txt': { text: `${Buffer.from(ca.cert).toString('base64')}\n` },
    'tls-secret.yaml': { text: tlsSecret(options, ca, serving), secret: true },
  };
  for (const [name, text] of Object.entries(controlPlaneFiles(options, ca, client))) {
    files[name] = { text, secret: name.endsWith('kubeconfig.yaml') };
  }
  for (const [name, text] of Object.entries(staticWebhookFiles(options, ca, options.webhookUrl))) {
    files[name] = { text };
  }
  await mkdir(options.out, { recursive: true, mode: 0o700 });
  for (const [name, file] of Object.entries(files)) {
    await mkdir(dirname(join(options.out, name)), { recursive: true, mode: 0o700 });
    await writeFile(join(options.out, name), file.text, { mode: file.secret ? 0o600 : 0o644 });
  }
  return Object.keys(files);
}

export const command: Command = {
  usage: USAGE,
  flags: FLAGS,
  async run(args, context) {
    const flags = parseFlags('certs', args, FLAGS, context.env);
    const out = flags.string('out') ?? 'imagegate-certs';
    const imagePolicyServer = flags.string('imagepolicy-server');
    const written = await runCerts({
      out,
      service: flags.string('service') ?? 'imagegate',
      namespace: flags.string('namespace') ?? 'imagegate-system',
      secretName: flags.string('secret-name') ?? 'imagegate-tls',
      ips: flags.list('ip'),
      days: flags.integer('days', 365, 1, 3650),
      controlPlaneDir: flags.string('control-plane-dir') ?? '/etc/kubernetes/imagegate',
      allowTtl: flags.integer('allow-ttl', 50),
      denyTtl: flags.integer('deny-ttl', 50),
      ...(imagePolicyServer === undefined ? {} : { imagePolicyServer }),
      webhookUrl: flags.string('webhook-url'),
    });
    context.write(`wrote ${written.map((f) => join(out, f)).join('\n      ')}\n`);
    return 0;
  },
};
