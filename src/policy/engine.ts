/**
 * The one module that knows the wasm SDK (@open-policy-agent/opa-wasm). It loads a bundle,
 * merges the configuration over the bundle's data, smoke-evaluates its entrypoints and
 * only then hands out an engine: a reload builds a whole new engine and swaps one reference.
 *
 * SDK quirks handled here (FACTS.md): the ESM build exports only `loadPolicy`; it throws
 * strings and plain objects; falsy input is dropped; an instance is not re-entrant and its
 * memory never shrinks, so it gets a maximum.
 */
import { createHash } from 'node:crypto';
import { loadPolicy } from '@open-policy-agent/opa-wasm';
import type { RegistrySettings } from '../registry/addresses.ts';
import type { FactRequest } from '../registry/facts.ts';
import type { PublicKeyRef } from '../registry/keys.ts';
import type { Verification } from '../registry/sigstore/verification.ts';
import type { LoadedTrustRoot } from '../registry/trust-roots.ts';
import {
  type MutateDecision,
  toMutateDecision,
  toValidateDecision,
  type ValidateDecision,
} from '../review/decision.ts';
import type { PolicyInput } from '../review/policy-input.ts';
import { describeThrown } from '../shared/describe-thrown.ts';
import { EngineError } from '../shared/engine-error.ts';
import { canonicalJson, isRecord, type JsonObject } from '../shared/json.ts';
import type { Bundle } from './bundle.ts';
import { BundleError } from './bundle-error.ts';
import type { PolicyConfig } from './config.ts';
import { configWarnings } from './image-globs.ts';
import { registryNames, registrySettings } from './registry-names.ts';
import { SMOKE_INPUT } from './smoke-input.ts';

export const VALIDATE_ENTRYPOINT = 'imagegate/validate/decision';
export const MUTATE_ENTRYPOINT = 'imagegate/mutate/decision';
/** Optional: a bundle without it never needs registry facts. */
export const FACTS_ENTRYPOINT = 'imagegate/facts/needed';
/**
 * Optional: the decision with the lookups it needs, in one evaluation. Without it a review
 * that uses registry facts always costs two (the lookups, then the decision).
 */
export const DECIDED_ENTRYPOINT = 'imagegate/facts/decided';

/** One evaluation of the decided entrypoint: the decision, as its own entrypoint gives it. */
export interface Decided {
  /** The decision entrypoint's result, for toValidateDecision / toMutateDecision. */
  readonly decision: unknown;
  readonly lookups: readonly FactRequest[];
  readonly maxLookups: number;
}

/** The registry lookups one decision needs (the facts entrypoint's answer). */
export interface FactsNeeded {
  readonly mutate: readonly FactRequest[];
  readonly validate: readonly FactRequest[];
  /** Distinct lookups one review may ask for in its namespace (maxLookups). */
  readonly maxLookups: number;
}

/**
 * Puts the registry facts a decision needs on the input: the gateway's step (registry
 * facts gathered on the event loop), check's (the same, or offline), the audit's.
 */
export type FactsStep = (
  engine: PolicyEngine,
  input: PolicyInput,
  decision: 'mutate' | 'validate',
) => Promise<WithFacts>;

/** The input with its facts, and the decision when the step already evaluated it. */
export interface WithFacts {
  readonly input: PolicyInput;
  /** The decision entrypoint's result for exactly `input`, when the step made it. */
  readonly decided?: unknown;
  /** Seconds the step spent evaluating that decision (the evaluation histogram). */
  readonly evaluationSeconds?: number;
}

/** The decision for what a facts step gave: the one it made, or one made now. */
export function decisionWith(
  engine: PolicyEngine,
  withFacts: WithFacts,
  decision: 'mutate' | 'validate',
): unknown {
  return withFacts.decided !== undefined
    ? withFacts.decided
    : engine.decision(withFacts.input, decision);
}

/** maxLookups when the bundle's facts entrypoint names none (docs/registries.md). */
export const DEFAULT_MAX_LOOKUPS = 256;

const NO_FACTS: FactsNeeded = { mutate: [], validate: [], maxLookups: DEFAULT_MAX_LOOKUPS };

const PAGE = 64 * 1024;
/**
 * 256 MiB: the most a thread's instance may use. A review that needs more (some 10,000
 * images with violations each; no real pod comes near) goes to the pool's large lane, or
 * fails closed where there is none, instead of taking the process down; the Deployment's
 * memory limit is sized with it (docs/sizing.md). All of it is
 * reserved up front: an instance that grows a few pages at a time makes V8 collect garbage
 * at every grow, which held the event loop for seconds on a large pod. Reserved pages are
 * not resident until written, so this costs address space until a large review comes;
 * then they stay (wasm memory never shrinks).
 */
export const MAX_MEMORY_BYTES = 256 * 1024 * 1024;

/**
 * 768 MiB: the memory of the one instance, at most, that judges a review the others ran
 * out of memory for (the pool's large lane, server/pool/). Sized from measurement: the
 * largest review the limits accept needs about 615 MiB (docs/sizing.md), and a quarter
 * more is room.
 */
export const LARGE_MEMORY_BYTES = 768 * 1024 * 1024;

export interface EngineOptions {
  /** This instance's wasm memory (MAX_MEMORY_BYTES unless it is the large lane's). */
  readonly memoryBytes?: number;
  /**
   * Reviews with more images than this are not tried here but handed to the large lane at
   * once (EngineMemoryError before anything is built): about 24 KB of memory per image for
   * `validate` (docs/sizing.md), so past LANE_IMAGES a 256 MiB instance may run out, and a
   * doomed try would leave its memory touched for good. None: every review is tried.
   */
  readonly largeAbove?: number;
}

/** The pool's threads hand reviews with more images than this to the large lane. */
export const LANE_IMAGES = 8192;

/** The policy ran out of this instance's wasm memory: a larger instance may judge it. */
export class EngineMemoryError extends EngineError {}

/**
 * Whether to copy `input.review` (the original request: often most of the input's bytes,
 * and carrying env values no image rule needs) into the policy. A bundle opts out in its
 * manifest with `metadata.imagegate.inputReview: false`, as the default bundle does
 * (rego/.manifest); every other bundle gets it. Reading the Rego sources cannot decide
 * this: `opa build -t wasm` strips the entrypoint rules from the sources it ships.
 */
export function passesReview(manifest: JsonObject): boolean {
  return manifestFlags(manifest).inputReview !== false;
}

/**
 * Whether the bundle says its lookups (`imagegate/facts/decided`) follow from a review's
 * shape alone (server/facts-step.ts `shapeOf`: decision, protocol, namespace, kind,
 * operation, subresource, whether a controller owns it, and each image's string, list and
 * newness), whatever else the object says: `metadata.imagegate.lookupsByShape: true`, as the
 * default bundle's manifest does. Then a warm review of a shape seen before is decided by
 * the decision entrypoint alone, with the facts that shape needed; every other bundle has
 * its lookups computed again with each decision and compared (docs/policy-input.md).
 */
export function lookupsByShape(manifest: JsonObject): boolean {
  return manifestFlags(manifest).lookupsByShape === true;
}

function manifestFlags(manifest: JsonObject): JsonObject {
  const metadata = isRecord(manifest.metadata) ? manifest.metadata : {};
  return isRecord(metadata.imagegate) ? metadata.imagegate : {};
}

/**
 * The configuration in force, as the policy sees it (`data.imagegate.config`, the bundle's
 * defaults with the configuration file over them). /readyz and `imagegate_config_info`
 * show it, so a permissive configuration rolled out by mistake is visible, not only logged.
 */
export interface ConfigInForce {
  /** SHA-256 of the canonical JSON: equal configurations, equal digests. */
  readonly digest: string;
  readonly enforcement: string;
  readonly breakGlass: boolean;
  /** The most images one review may carry before it is even translated (maxImages). */
  readonly maxImages: number;
  /** What loads but is rarely meant (a `signatures` glob that leaves deeper repositories out). */
  readonly warnings: readonly string[];
}

/**
 * maxImages when neither the bundle nor the configuration sets one. The largest Pod
 * kube-apiserver 1.37 stores holds about 26,000 containers (etcd's 1.5 MiB; measured
 * with one-letter names and images), and a review within the 4 MiB body limit about
 * 22,500 image volumes or 14,700 containers: 32,768 leaves room above all of them.
 * docs/sizing.md has the arithmetic, and what one such review costs.
 */
export const DEFAULT_MAX_IMAGES = 32_768;

function configInForce(data: JsonObject): ConfigInForce {
  const imagegate = isRecord(data.imagegate) ? data.imagegate : {};
  const config = isRecord(imagegate.config) ? imagegate.config : {};
  const maxImages = config.maxImages;
  return {
    digest: createHash('sha256').update(canonicalJson(config)).digest('hex'),
    enforcement: typeof config.enforcement === 'string' ? config.enforcement : '',
    breakGlass: config.breakGlass === true,
    maxImages:
      typeof maxImages === 'number' && Number.isInteger(maxImages) && maxImages > 0
        ? maxImages
        : DEFAULT_MAX_IMAGES,
    warnings: configWarnings(config),
  };
}

/**
 * Built-ins the SDK lacks, keyed by their Rego name (the SDK's own convention). The time
 * built-ins are for policies over attestations ("a scan no older than seven days",
 * docs/examples/policies); nanoseconds as a number, millisecond precision.
 */
export const CUSTOM_BUILTINS: Readonly<Record<string, (...args: unknown[]) => unknown>> = {
  'time.now_ns': () => Date.now() * 1_000_000,
  'time.parse_rfc3339_ns': (value: unknown) => {
    const rfc3339 =
      typeof value === 'string' &&
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)$/i.test(value);
    const ms = rfc3339 ? Date.parse(value) : Number.NaN;
    // A throw fails the evaluation (closed), as OPA's own built-in errors do.
    if (!Number.isFinite(ms)) throw new EngineError(`time.parse_rfc3339_ns: ${String(value)}`);
    return ms * 1_000_000;
  },
};

interface LoadedPolicy {
  evaluate(input: unknown, entrypoint: string): unknown;
  setData(data: object): void;
  entrypoints: unknown;
  mem?: { readonly buffer: ArrayBuffer };
}

export class PolicyEngine {
  readonly revision: string;
  readonly entrypoints: readonly string[];
  readonly bundleDigest: string;
  readonly config: ConfigInForce;
  /** False when the bundle says its policies never read input.review: it is not copied. */
  readonly passesReview: boolean;
  /** The bundle says its lookups follow from a review's shape (`lookupsByShape`). */
  readonly lookupsByShape: boolean;
  /**
   * The registries the configuration names (hosts, Docker Hub as docker.io): the only ones
   * the gateway contacts. Empty when nothing needs registry facts (no pinDigests, no
   * signatures, or a bundle without the facts entrypoint): then none is ever contacted.
   */
  readonly registries: ReadonlySet<string>;
  /** What the configuration's `registries` says of some of them (network, auth hosts). */
  readonly registrySettings: ReadonlyMap<string, RegistrySettings>;
  /** The public keys `signatures` entries name, by reference (path or inline PEM). */
  readonly keys: ReadonlyMap<string, PublicKeyRef>;
  /** The Sigstore trust roots `trustRoots` names, by name. */
  readonly trustRoots: ReadonlyMap<string, LoadedTrustRoot>;
  /** The `signatures` entries, compiled, by the id the policy names them by. */
  readonly verifications: ReadonlyMap<string, Verification>;
  readonly #policy: LoadedPolicy;
  /** EngineOptions.largeAbove. */
  readonly largeAbove: number;

  private constructor(
    policy: LoadedPolicy,
    bundle: Bundle,
    entrypoints: readonly string[],
    config: ConfigInForce,
    facts: {
      registries: ReadonlySet<string>;
      registrySettings: ReadonlyMap<string, RegistrySettings>;
      keys: ReadonlyMap<string, PublicKeyRef>;
      trustRoots: ReadonlyMap<string, LoadedTrustRoot>;
      verifications: ReadonlyMap<string, Verification>;
    },
    largeAbove: number,
  ) {
    this.#policy = policy;
    this.largeAbove = largeAbove;
    this.registries = facts.registries;
    this.registrySettings = facts.registrySettings;
    this.keys = facts.keys;
    this.trustRoots = facts.trustRoots;
    this.verifications = facts.verifications;
    this.revision = bundle.revision;
    this.bundleDigest = bundle.digest;
    this.config = config;
    this.entrypoints = entrypoints;
    this.passesReview = passesReview(bundle.manifest);
    this.lookupsByShape = lookupsByShape(bundle.manifest);
  }

  /** The instance's linear memory, in bytes (reserved up front, so constant). */
  get memoryBytes(): number {
    return this.#policy.mem?.buffer.byteLength ?? 0;
  }

  /** Loads, sets data and smoke-evaluates; any failure is a BundleError and nothing leaks. */
  static async create(
    bundle: Bundle,
    config: PolicyConfig = {},
    keys: ReadonlyMap<string, PublicKeyRef> = new Map(),
    trustRoots: ReadonlyMap<string, LoadedTrustRoot> = new Map(),
    verifications: ReadonlyMap<string, Verification> = new Map(),
    options: EngineOptions = {},
  ): Promise<PolicyEngine> {
    const pages = Math.ceil((options.memoryBytes ?? MAX_MEMORY_BYTES) / PAGE);
    let policy: LoadedPolicy;
    try {
      policy = (await loadPolicy(
        bundle.wasm,
        { initial: pages, maximum: pages },
        CUSTOM_BUILTINS,
      )) as LoadedPolicy;
    } catch (error) {
      throw new BundleError(
        `bundle ${bundle.source}: policy.wasm does not load: ${describeThrown(error)}`,
        {
          cause: error,
        },
      );
    }
    const entrypoints = isRecord(policy.entrypoints) ? Object.keys(policy.entrypoints) : [];
    for (const required of [VALIDATE_ENTRYPOINT, MUTATE_ENTRYPOINT]) {
      if (!entrypoints.includes(required)) {
        throw new BundleError(
          `bundle ${bundle.source} has no entrypoint ${required} (it has: ${entrypoints.join(', ') || 'none'})`,
        );
      }
    }
    const data = mergeData(bundle.data, config);
    try {
      policy.setData(data);
    } catch (error) {
      throw new BundleError(
        `bundle ${bundle.source}: data does not load: ${describeThrown(error)}`,
        {
          cause: error,
        },
      );
    }
    const imagegate = isRecord(data.imagegate) ? data.imagegate : {};
    const merged = isRecord(imagegate.config) ? imagegate.config : {};
    const registries = entrypoints.includes(FACTS_ENTRYPOINT)
      ? registryNames(merged)
      : new Set<string>();
    const engine = new PolicyEngine(
      policy,
      bundle,
      entrypoints,
      configInForce(data),
      {
        registries,
        registrySettings: registrySettings(merged),
        keys,
        trustRoots,
        verifications,
      },
      options.largeAbove ?? Number.POSITIVE_INFINITY,
    );
    try {
      engine.validate(SMOKE_INPUT);
      engine.mutate(SMOKE_INPUT);
      engine.factsNeeded(SMOKE_INPUT);
      if (engine.decidesWithLookups) {
        engine.decided(SMOKE_INPUT, 'validate');
        engine.decided(SMOKE_INPUT, 'mutate');
      }
    } catch (error) {
      throw new BundleError(
        `bundle ${bundle.source} fails its smoke evaluation: ${describeThrown(error)}`,
        {
          cause: error,
        },
      );
    }
    return engine;
  }

  validate(input: PolicyInput): ValidateDecision {
    return toValidateDecision(this.decision(input, 'validate'));
  }

  mutate(input: PolicyInput): MutateDecision {
    return toMutateDecision(this.decision(input, 'mutate'));
  }

  /** A decision entrypoint's result as it comes (toValidateDecision / toMutateDecision). */
  decision(input: PolicyInput, decision: 'mutate' | 'validate'): unknown {
    return this.#evaluate(input, decision === 'mutate' ? MUTATE_ENTRYPOINT : VALIDATE_ENTRYPOINT);
  }

  /** Whether `decided` can be used: registry facts are on and the bundle has the entrypoint. */
  get decidesWithLookups(): boolean {
    return this.registries.size > 0 && this.entrypoints.includes(DECIDED_ENTRYPOINT);
  }

  /** The decision and the lookups it needs, in one evaluation (DECIDED_ENTRYPOINT). */
  decided(input: PolicyInput, decision: 'mutate' | 'validate'): Decided {
    const result = this.#evaluate({ ...input, factsFor: decision }, DECIDED_ENTRYPOINT);
    if (!isRecord(result) || !Object.hasOwn(result, 'decision')) {
      throw new EngineError(`evaluating ${DECIDED_ENTRYPOINT}: not a decision with its lookups`);
    }
    return {
      decision: result.decision,
      lookups: factRequests(result.lookups, 'lookups', DECIDED_ENTRYPOINT),
      maxLookups: maxLookupsOf(result.maxLookups),
    };
  }

  /**
   * The registry lookups each decision needs for this input (none without the
   * entrypoint); with `decision`, only that one's are computed (the other's are empty).
   */
  factsNeeded(input: PolicyInput, decision?: 'mutate' | 'validate'): FactsNeeded {
    if (this.registries.size === 0) return NO_FACTS;
    const result = this.#evaluate(
      decision === undefined ? input : { ...input, factsFor: decision },
      FACTS_ENTRYPOINT,
    );
    if (!isRecord(result)) throw new EngineError(`evaluating ${FACTS_ENTRYPOINT}: not an object`);
    return {
      mutate: factRequests(result.mutate, 'mutate'),
      validate: factRequests(result.validate, 'validate'),
      maxLookups: maxLookupsOf(result.maxLookups),
    };
  }

  #evaluate(input: PolicyInput, entrypoint: string): unknown {
    let resultSet: unknown;
    try {
      resultSet = this.#policy.evaluate(
        this.passesReview ? input : withoutReview(input),
        entrypoint,
      );
    } catch (error) {
      if (describeThrown(error).includes('opa_malloc: failed')) {
        throw new EngineMemoryError(
          `evaluating ${entrypoint}: the review needs more than the policy's ${this.memoryBytes / 2 ** 20} MiB of memory (opa_malloc: failed)`,
          { cause: error },
        );
      }
      throw EngineError.from(error, `evaluating ${entrypoint}`);
    }
    if (!Array.isArray(resultSet) || resultSet.length !== 1) {
      throw new EngineError(`evaluating ${entrypoint}: the policy returned no decision`);
    }
    const [first] = resultSet as unknown[];
    if (!isRecord(first) || !Object.hasOwn(first, 'result')) {
      throw new EngineError(`evaluating ${entrypoint}: malformed result set`);
    }
    return first.result;
  }
}

/**
 * The configuration replaces the bundle's defaults key by key under
 * `data.imagegate.config`; the rest of the bundle's data is kept as built.
 */
export function mergeData(data: JsonObject, config: PolicyConfig): JsonObject {
  const imagegate = isRecord(data.imagegate) ? data.imagegate : {};
  const defaults = isRecord(imagegate.config) ? imagegate.config : {};
  return { ...data, imagegate: { ...imagegate, config: { ...defaults, ...config } } };
}

const maxLookupsOf = (max: unknown): number =>
  typeof max === 'number' && Number.isInteger(max) && max > 0 ? max : DEFAULT_MAX_LOOKUPS;

function factRequests(value: unknown, name: string, entrypoint = FACTS_ENTRYPOINT): FactRequest[] {
  if (value === undefined) return [];
  if (!Array.isArray(value))
    throw new EngineError(`evaluating ${entrypoint}: ${name} is not a list`);
  return value.map((entry): FactRequest => {
    const text = (key: string) =>
      isRecord(entry) && typeof entry[key] === 'string' ? entry[key] : undefined;
    const index = isRecord(entry) ? entry.index : undefined;
    const verification = isRecord(entry) ? (entry.verification ?? '') : undefined;
    const [registry, repository, tag, digest] = [
      text('registry'),
      text('repository'),
      text('tag'),
      text('digest'),
    ];
    if (
      typeof index !== 'number' ||
      !Number.isInteger(index) ||
      registry === undefined ||
      repository === undefined ||
      tag === undefined ||
      digest === undefined ||
      typeof verification !== 'string'
    ) {
      throw new EngineError(`evaluating ${entrypoint}: malformed request ${JSON.stringify(entry)}`);
    }
    return { index, registry, repository, tag, digest, verification };
  });
}

function withoutReview(input: PolicyInput): Omit<PolicyInput, 'review'> {
  const { review: _review, ...rest } = input;
  return rest;
}
