/**
 * Warnings as kube-apiserver passes them on. It keeps warnings whole while they total at
 * most 4096 characters; past that it cuts every warning to 256 and drops the rest, and it
 * drops a warning holding a control character outright (k8s.io/apiserver
 * pkg/endpoints/filters/warning.go, k8s.io/apimachinery net.NewWarningHeader; FACTS.md).
 * Characters there are runes: code points, not UTF-16 units.
 *
 * So each warning is at most WARNING_RUNES and all of ours together at most
 * WARNINGS_RUNES, which leaves the rest of the 4096 to whatever else warns on the same
 * request (another webhook, a deprecated API): even then none of ours is cut. When there
 * are more, the last one says how many and where they all are.
 */

/** The longest warning the API server never cuts. */
export const WARNING_RUNES = 256;
/** Ours together: 4096 minus room for the API server's and other webhooks' warnings. */
export const WARNINGS_RUNES = 3584;

const runes = (text: string) => {
  let n = 0;
  for (const _ of text) n++;
  return n;
};

/** At most `limit` runes, with "…" as the last one when something was cut. */
function cutRunes(text: string, limit: number): string {
  if (runes(text) <= limit) return text;
  let kept = '';
  let n = 0;
  for (const char of text) {
    if (++n >= limit) break;
    kept += char;
  }
  return `${kept}…`;
}

/** Control characters (an image string may hold any) would get the warning dropped. */
function printable(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: these are what is replaced
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => {
    return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
  });
}

function leftOut(hidden: number, total: number, uid: string): string {
  return (
    `… and ${hidden} more image policy warning${hidden === 1 ? '' : 's'} (${total} in all): ` +
    `every one is in the gateway's decision log (uid ${printable(uid)}) and the ` +
    `"<webhook>/violations" audit annotation`
  );
}

/** The warnings to send for request `uid`: each whole to the user, or said to be left out. */
export function apiServerWarnings(warnings: readonly string[], uid: string): string[] {
  const all = warnings.map((w) => cutRunes(printable(w), WARNING_RUNES));
  const total = all.reduce((sum, w) => sum + runes(w), 0);
  if (total <= WARNINGS_RUNES) return all;
  const budget = WARNINGS_RUNES - runes(leftOut(all.length, all.length, uid));
  const kept: string[] = [];
  let used = 0;
  for (const warning of all) {
    const size = runes(warning);
    if (used + size > budget) break;
    kept.push(warning);
    used += size;
  }
  return [...kept, cutRunes(leftOut(all.length - kept.length, all.length, uid), WARNING_RUNES)];
}
