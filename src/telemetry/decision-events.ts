/**
 * A gateway's decision line → an event in OPA's decision-log format (`decision_id`,
 * `labels`, `bundles`, `path`, `input`, `result`, `timestamp`, `metrics`). Built from an
 * allowlist of the line's fields: identifiers, images and registry facts go to `input`,
 * the verdict to `result`; anything else a line may carry is left out, so no object,
 * environment variable, pull secret or credential ever reaches a collector — whatever is
 * added to the log line later.
 */

/** The decision line app.ts logs (`decision`): identifiers, images, verdict; never the object. */
export type DecisionLine = Readonly<Record<string, unknown>>;

export interface DecisionEvent {
  readonly labels: Readonly<Record<string, string>>;
  readonly decision_id: string;
  readonly bundles: { readonly imagegate: { readonly revision: string } };
  readonly path: string;
  readonly input: Record<string, unknown>;
  readonly result: Record<string, unknown>;
  readonly requested_by: string;
  readonly timestamp: string;
  readonly metrics: { readonly timer_server_handler_ns?: number };
}

const INPUT_FIELDS = [
  'endpoint',
  'uid',
  'kind',
  'namespace',
  'name',
  'operation',
  'subResource',
  'images',
] as const;

const RESULT_FIELDS = [
  'allowed',
  'reasons',
  'warnings',
  'auditAnnotations',
  'enforcement',
  'exempt',
  'breakGlass',
  'mutations',
  'facts',
  'error',
] as const;

/** The entrypoint each endpoint evaluates: OPA's `path` of the decision. */
const PATHS: Readonly<Record<string, string>> = {
  validate: 'imagegate/validate/decision',
  imagereview: 'imagegate/validate/decision',
  mutate: 'imagegate/mutate/decision',
};

function pick(line: DecisionLine, fields: readonly string[]): Record<string, unknown> {
  const picked: Record<string, unknown> = {};
  for (const field of fields) {
    if (Object.hasOwn(line, field) && line[field] !== undefined) picked[field] = line[field];
  }
  return picked;
}

export function decisionEvent(
  line: DecisionLine,
  labels: Readonly<Record<string, string>>,
  now: Date = new Date(),
): DecisionEvent {
  const text = (key: string) => (typeof line[key] === 'string' ? line[key] : '');
  const duration = typeof line.durationMs === 'number' ? line.durationMs : undefined;
  return {
    labels,
    decision_id: text('decisionId'),
    bundles: { imagegate: { revision: text('revision') } },
    path: PATHS[text('endpoint')] ?? text('endpoint'),
    input: pick(line, INPUT_FIELDS),
    result: pick(line, RESULT_FIELDS),
    requested_by: '',
    timestamp: now.toISOString(),
    metrics: duration === undefined ? {} : { timer_server_handler_ns: Math.round(duration * 1e6) },
  };
}
