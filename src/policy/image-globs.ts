/**
 * The one glob language of `signatures` sources and `exemptImages` (README "Globs"): `*`
 * is any characters within one path component, `?` one character within a component,
 * `**` (a whole component) one or more whole components, or as a whole tag (`:**`) the
 * same as `:*`; everything else is literal and the registry is written out. The policy
 * matches them with glob.match and "/" as the only delimiter, which reads exactly that.
 *
 * A `signatures` glob matches whole repositories, where a source without one covers
 * everything below it too: `registry.example.com/prod/*` covers prod/app but not
 * prod/team/app, which then needs no signature. That is what the language says, but it
 * is rarely what was meant, so such a configuration loads with a warning.
 */
import { isRecord, type JsonObject } from '../shared/json.ts';

export function isGlob(pattern: string): boolean {
  return /[*?]/.test(pattern);
}

/** Why a glob is not in the language; undefined when it is. */
export function globProblem(pattern: string): string | undefined {
  const other = /[[\]{}\\!]/.exec(pattern);
  if (other !== null) {
    return `${JSON.stringify(pattern)} has ${JSON.stringify(other[0])}: globs here have only *, ** and ?`;
  }
  // A whole component, or a whole tag ("…/debug:**", which is what "…/debug:*" is).
  const split = pattern
    .split('/')
    .slice(1)
    .find((c) => c.includes('**') && c !== '**' && !/^[^*]*:\*\*$/.test(c));
  if (split !== undefined) {
    return `${JSON.stringify(pattern)}: ** stands for whole path components ("registry.example.com/prod/**"), not part of ${JSON.stringify(split)}`;
  }
  return undefined;
}

function components(source: string): string[] {
  return source.trim().replace(/\/$/, '').toLowerCase().split('/');
}

/** `other` requires a signature of every repository below a match of `glob`. */
function coversBelow(other: string, glob: string): boolean {
  const mine = components(glob);
  if (!isGlob(other)) {
    const literal = mine.slice(
      0,
      mine.findIndex((c) => isGlob(c)),
    );
    const theirs = components(other);
    return theirs.length <= literal.length && theirs.every((c, i) => c === literal[i]);
  }
  return components(other).join('/') === `${mine.join('/')}/**`;
}

/** A warning for each `signatures` glob that leaves repositories below its matches uncovered. */
function uncovered(entries: unknown, at: string): string[] {
  if (!Array.isArray(entries)) return [];
  const sources = entries.flatMap((entry, i) =>
    isRecord(entry) && Array.isArray(entry.images)
      ? entry.images.flatMap((s, j) =>
          typeof s === 'string' ? [{ source: s, at: `${at}[${i}].images[${j}]` }] : [],
        )
      : [],
  );
  return sources.flatMap(({ source, at: where }) => {
    const parts = components(source);
    if (!isGlob(source) || parts.at(-1) === '**') return [];
    if (sources.some((o) => o.source !== source && coversBelow(o.source, source))) return [];
    const example = [...parts.map((c) => (isGlob(c) ? 'x' : c)), 'y'].join('/');
    return [
      `${where}: ${JSON.stringify(source)} matches whole repositories only: deeper ones such as ${example} need no signature; add "${parts.join('/')}/**" to require it of them too`,
    ];
  });
}

/** What the configuration in force should be told about (data.imagegate.config). */
export function configWarnings(config: JsonObject): string[] {
  const namespaces = isRecord(config.namespaces) ? config.namespaces : {};
  return [
    ...uncovered(config.signatures, 'signatures'),
    ...Object.entries(namespaces).flatMap(([pattern, override]) =>
      isRecord(override)
        ? uncovered(override.signatures, `namespaces[${JSON.stringify(pattern)}].signatures`)
        : [],
    ),
  ];
}
