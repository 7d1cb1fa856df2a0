/**
 * Flags, read the same way by every command: `--name value` (or `--name=value`), else
 * IMAGEGATE_<NAME> from the environment; a value that is not what the flag takes is an
 * InputError naming the flag. The flag sets several commands share live here too.
 */
import { type ParseArgsOptionsConfig, parseArgs } from 'node:util';
import type { VerificationSettings } from '../policy/loader.ts';
import type { RemoteSourceOptions } from '../server/bundle-source.ts';
import type { CollectorSettings } from '../server/collector.ts';
import type { RegistryOptions } from '../server/registry-facts.ts';
import { DEFAULT_TUF_REFRESH_MS, type TufRootsOptions } from '../server/tuf-roots.ts';
import { InputError } from '../shared/input-error.ts';
import { LOG_LEVELS } from '../shared/logger.ts';

export type FlagTable = ParseArgsOptionsConfig;

type Env = Readonly<Record<string, string | undefined>>;
type LogLevel = (typeof LOG_LEVELS)[number];

export class Flags {
  readonly positionals: readonly string[];
  readonly #values: Readonly<Record<string, unknown>>;
  readonly #env: Env;

  constructor(values: Record<string, unknown>, positionals: readonly string[], env: Env) {
    this.#values = values;
    this.positionals = positionals;
    this.#env = env;
  }

  #fromEnv(name: string): string | undefined {
    const value = this.#env[`IMAGEGATE_${name.toUpperCase().replaceAll('-', '_')}`];
    return value === undefined || value === '' ? undefined : value;
  }

  /** The flag's value, else IMAGEGATE_<NAME>. */
  string(name: string): string | undefined {
    const flag = this.#values[name];
    return typeof flag === 'string' ? flag : this.#fromEnv(name);
  }

  /** Set by the flag, or by IMAGEGATE_<NAME>=true. */
  boolean(name: string): boolean {
    return this.#values[name] === true || this.#fromEnv(name) === 'true';
  }

  /** A repeatable flag's values, else IMAGEGATE_<NAME> split on commas. */
  list(name: string): string[] {
    const flag = this.#values[name];
    if (Array.isArray(flag) && flag.length > 0) return flag.map(String);
    return this.#fromEnv(name)?.split(',') ?? [];
  }

  /** A whole number within [min, max]. */
  integer(name: string, fallback: number, min = -Infinity, max = Infinity): number {
    const value = this.string(name);
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) {
      const range =
        min === -Infinity
          ? ''
          : max === Infinity
            ? ` of at least ${min}`
            : ` from ${min} to ${max}`;
      throw new InputError(
        `--${name} must be a whole number${range}, not ${JSON.stringify(value)}`,
      );
    }
    return n;
  }

  port(name: string, fallback: number): number {
    const value = this.string(name);
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0 || n > 65535) {
      throw new InputError(`--${name} must be a port number, not ${JSON.stringify(value)}`);
    }
    return n;
  }

  choice<T extends string>(name: string, allowed: readonly T[], fallback: T): T {
    const value = this.string(name) ?? fallback;
    if (!(allowed as readonly string[]).includes(value)) {
      throw new InputError(
        `--${name} must be ${allowed.join(' or ')}, not ${JSON.stringify(value)}`,
      );
    }
    return value as T;
  }

  logLevel(fallback: LogLevel): LogLevel {
    return this.choice('log-level', LOG_LEVELS, fallback);
  }
}

/** Parses `args` against the command's table; an unknown or malformed flag is an InputError. */
export function parseFlags(
  command: string,
  args: readonly string[],
  table: FlagTable,
  env: Env,
  options: { positionals?: boolean } = {},
): Flags {
  try {
    const { values, positionals } = parseArgs({
      args: [...args],
      options: table,
      strict: true,
      allowPositionals: options.positionals === true,
    });
    return new Flags(values, positionals, env);
  } catch (error) {
    if (
      error instanceof TypeError &&
      'code' in error &&
      String(error.code).startsWith('ERR_PARSE_ARGS')
    ) {
      throw new InputError(`${error.message} (imagegate ${command} --help lists its flags)`, {
        cause: error,
      });
    }
    throw error;
  }
}

export const VERIFICATION_FLAGS = {
  'verification-key': { type: 'string' },
  'verification-key-id': { type: 'string' },
  'verification-scope': { type: 'string' },
  'verification-alg': { type: 'string' },
} as const satisfies FlagTable;

/** --verification-key and friends, as the loader wants them; undefined without a key. */
export function verificationSettings(flags: Flags): VerificationSettings | undefined {
  const keyFile = flags.string('verification-key');
  const extra = {
    keyId: flags.string('verification-key-id'),
    scope: flags.string('verification-scope'),
    algorithm: flags.string('verification-alg'),
  };
  if (keyFile === undefined) {
    if (Object.values(extra).some((v) => v !== undefined))
      throw new InputError('--verification-key-id, -scope and -alg need --verification-key');
    return undefined;
  }
  return {
    keyFile,
    ...(extra.keyId === undefined ? {} : { keyId: extra.keyId }),
    ...(extra.scope === undefined ? {} : { scope: extra.scope }),
    ...(extra.algorithm === undefined ? {} : { algorithm: extra.algorithm }),
  };
}

export const REGISTRY_FLAGS = {
  'registry-credentials': { type: 'string' },
  'registry-ca': { type: 'string', multiple: true },
  'registry-timeout-ms': { type: 'string' },
  'registry-budget-ms': { type: 'string' },
} as const satisfies FlagTable;

/** --registry-* as the gateway, check and the audit want them. */
export function registryOptions(flags: Flags): RegistryOptions {
  const budget = flags.integer('registry-budget-ms', 3000, 100, 25_000);
  const timeout = flags.integer('registry-timeout-ms', 2000);
  if (timeout < 100 || timeout > budget) {
    throw new InputError('--registry-timeout-ms must be from 100 to --registry-budget-ms');
  }
  return {
    credentials: flags.string('registry-credentials'),
    ca: flags.list('registry-ca'),
    requestTimeoutMs: timeout,
    budgetMs: budget,
  };
}

export const TUF_FLAGS = {
  'tuf-cache-dir': { type: 'string' },
  'tuf-refresh-interval-ms': { type: 'string' },
} as const satisfies FlagTable;

/** Where roots kept in TUF repositories are cached and how often their mirrors are asked. */
export function tufOptions(flags: Flags, offline = false): TufRootsOptions {
  return {
    cacheDir: flags.string('tuf-cache-dir'),
    refreshIntervalMs: flags.integer(
      'tuf-refresh-interval-ms',
      DEFAULT_TUF_REFRESH_MS,
      1_000,
      7 * 86_400_000,
    ),
    offline,
  };
}

export const BUNDLE_SOURCE_FLAGS = {
  'bundle-persist-dir': { type: 'string' },
  'bundle-poll-interval-ms': { type: 'string' },
  'bundle-max-backoff-ms': { type: 'string' },
  'bundle-timeout-ms': { type: 'string' },
  'bundle-long-poll-s': { type: 'string' },
  'bundle-token-file': { type: 'string' },
  'bundle-client-cert': { type: 'string' },
  'bundle-client-key': { type: 'string' },
  'bundle-ca': { type: 'string', multiple: true },
  'bundle-cosign-key': { type: 'string', multiple: true },
  'bundle-cosign-trust-root': { type: 'string' },
} as const satisfies FlagTable;

/** How a remote --bundle (oci://, https://) is polled, kept and authenticated to. */
export function bundleSourceOptions(flags: Flags): RemoteSourceOptions {
  const intervalMs = flags.integer('bundle-poll-interval-ms', 60_000, 10, 86_400_000);
  const maxBackoffMs = flags.integer('bundle-max-backoff-ms', 120_000, 10, 86_400_000);
  const trustRoot = flags.string('bundle-cosign-trust-root');
  const keys = flags.list('bundle-cosign-key');
  if (trustRoot !== undefined && keys.length === 0) {
    throw new InputError('--bundle-cosign-trust-root needs --bundle-cosign-key');
  }
  return {
    timing: { intervalMs, maxBackoffMs: Math.max(maxBackoffMs, intervalMs) },
    persistDir: flags.string('bundle-persist-dir'),
    service: {
      timeoutMs: flags.integer('bundle-timeout-ms', 10_000, 100, 300_000),
      longPollSeconds: flags.integer('bundle-long-poll-s', 0, 0, 3_600),
      tokenFile: flags.string('bundle-token-file'),
      clientCert: flags.string('bundle-client-cert'),
      clientKey: flags.string('bundle-client-key'),
      caFiles: flags.list('bundle-ca'),
    },
    artifactKeys: keys,
    artifactTrustRoot: trustRoot,
  };
}

export const COLLECTOR_FLAGS = {
  'collector-url': { type: 'string' },
  'collector-token-file': { type: 'string' },
  'collector-ca': { type: 'string', multiple: true },
  'collector-client-cert': { type: 'string' },
  'collector-client-key': { type: 'string' },
  'decision-logs': { type: 'boolean' },
  'decision-log-interval-ms': { type: 'string' },
  'decision-log-buffer': { type: 'string' },
  status: { type: 'boolean' },
  'status-interval-ms': { type: 'string' },
  label: { type: 'string', multiple: true },
} as const satisfies FlagTable;

/** --collector-url and what is sent there; undefined when nothing is. */
export function collectorSettings(flags: Flags): CollectorSettings | undefined {
  const url = flags.string('collector-url');
  const logs = flags.boolean('decision-logs');
  const status = flags.boolean('status');
  if (url === undefined) {
    if (logs || status) throw new InputError('--decision-logs and --status need --collector-url');
    return undefined;
  }
  if (!logs && !status) {
    throw new InputError('--collector-url: say what to send it (--decision-logs, --status)');
  }
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  if (parsed?.protocol !== 'https:' && parsed?.protocol !== 'http:') {
    throw new InputError(
      `--collector-url ${JSON.stringify(url)} is not an https:// (or http://) URL`,
    );
  }
  const labels: Record<string, string> = {};
  for (const label of flags.list('label')) {
    const at = label.indexOf('=');
    if (at < 1) throw new InputError(`--label ${JSON.stringify(label)}: write KEY=VALUE`);
    labels[label.slice(0, at)] = label.slice(at + 1);
  }
  return {
    url,
    tokenFile: flags.string('collector-token-file'),
    caFiles: flags.list('collector-ca'),
    clientCert: flags.string('collector-client-cert'),
    clientKey: flags.string('collector-client-key'),
    timeoutMs: 10_000,
    labels,
    decisionLogs: logs
      ? {
          intervalMs: flags.integer('decision-log-interval-ms', 10_000, 10, 3_600_000),
          maxBackoffMs: 120_000,
          maxBufferedEvents: flags.integer('decision-log-buffer', 10_000, 1, 1_000_000),
          maxBatchBytes: 1024 * 1024,
        }
      : undefined,
    statusIntervalMs: status
      ? flags.integer('status-interval-ms', 60_000, 100, 3_600_000)
      : undefined,
  };
}
