/**
 * What the decision log keeps of an image's registry facts: attestations by type and digest
 * only. Their statements are policy input, not log lines: a provenance names repositories
 * and parameters, a scan every finding, and one decision line per review would carry them
 * all. Kept apart from facts.ts so the evaluation threads that write decision lines load
 * nothing of the registry client.
 */
import { isRecord, type JsonObject } from '../shared/json.ts';

export function loggedFacts(facts: JsonObject): JsonObject {
  if (!Array.isArray(facts.attestations)) return facts;
  return {
    ...facts,
    attestations: facts.attestations.map((a: unknown) =>
      isRecord(a) ? { type: a.type, digest: a.digest } : a,
    ),
  };
}
