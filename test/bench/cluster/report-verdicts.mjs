/**
 * The parts of docs/BENCHMARKS-CLUSTER.md that say whether the numbers can be trusted: the
 * verdict check (which pods each backend judges differently from the policy, and why) and
 * the busy-machine banner. report.mjs renders the rest.
 */
import { fixed, table } from '../lib.mjs';

/** Text for a table cell: one line, no pipes, at most `max` characters. */
export const cell = (text, max) => text.replace(/\s+/g, ' ').replaceAll('|', '\\|').slice(0, max);
export const yes = (allowed) => (allowed ? 'allowed' : 'refused');

/** The pods a backend judged differently from the policy, by group. */
export function differing(b) {
  const wrong = (c) =>
    c.allowed !== c.expected || (c.allowed && !c.pullPolicies.every((p) => p === 'Always'));
  return {
    policy: b.cases.filter((c) => c.group === 'policy' && wrong(c)),
    edge: b.cases.filter((c) => c.group === 'edge' && wrong(c)),
  };
}

/** Whether a backend that judges nothing (none, noop) left every pod as written. */
function admitsAsWritten(b) {
  const changed = b.cases.filter(
    (c) => !c.allowed || c.pullPolicies.some((p) => p !== 'IfNotPresent'),
  );
  const calls = b.verdictRequests
    ? ` (it answered ${Object.entries(b.verdictRequests)
        .map(([path, n]) => `${n} on ${path}`)
        .join(', ')})`
    : '';
  const what =
    b.name === 'none'
      ? 'Without webhooks'
      : `The \`${b.name}\` webhook, registered as imagegate is but judging nothing${calls}:`;
  return changed.length === 0
    ? `${what} all ${b.cases.length} pods are created as written.`
    : `**${what} ${changed.length} pods were not created as written**: ${changed.map((c) => `\`${c.name}\` ${c.allowed ? `pull ${c.pullPolicies.join('/')}` : cell(c.message, 200)}`).join('; ')}.`;
}

export function verdictSection(backends) {
  const ran = backends.filter((b) => b.cases);
  if (ran.length === 0) return 'No backend ran.';
  const judging = ran.filter((b) => b.judges !== false && b.name !== 'none');
  const names = judging.map((b) => b.name);
  const byCase = ran[0].cases.map((c, i) => ({
    ...c,
    answers: Object.fromEntries(ran.map((b) => [b.name, b.cases[i]])),
  }));
  const rows = (group) =>
    byCase
      .filter((c) => c.group === group)
      .map((c) => [
        `\`${c.name}\``,
        c.why,
        yes(c.expected),
        ...names.map((n) => {
          const a = c.answers[n];
          const always = a.allowed
            ? a.pullPolicies.every((p) => p === 'Always')
              ? ', Always'
              : `, pull ${a.pullPolicies.join('/')}`
            : '';
          return `${a.allowed === c.expected ? '' : '**≠** '}${yes(a.allowed)}${always}`;
        }),
      ]);
  const differences = judging.flatMap((b) => {
    const d = differing(b);
    return [...d.policy, ...d.edge].map((a) => {
      const why = b.explain?.[a.name];
      return `- \`${a.name}\` on ${b.name}: ${yes(a.allowed)}${a.allowed ? ` (pull policies ${a.pullPolicies.join(', ')})` : `: ${cell(a.message, 300)}`} — the policy says ${yes(a.expected)} (${a.why}). ${why ? `Why: ${why}` : '(Not explained by the backend.)'}`;
    });
  });
  const unstable = ran.filter((b) => b.verdictsDiffer).map((b) => b.name);
  const header = ['pod', 'what it tests', 'policy', ...names];
  return [
    `The ${byCase.filter((c) => c.group === 'policy').length} pods every backend was written against:`,
    '',
    table(header, rows('policy')),
    '',
    'Edge cases: where the reference must be read as the runtime reads it, and images outside containers:',
    '',
    table(header, rows('edge')),
    '',
    unstable.length > 0
      ? `**Verdicts changed between rounds** for ${unstable.join(', ')} (the tables show round 1).\n`
      : '',
    ...ran.filter((b) => b.judges === false || b.name === 'none').map(admitsAsWritten),
    '',
    differences.length === 0
      ? "**No differences**: every backend gives every pod the policy's verdict, and every created pod pulls `Always`."
      : ['**Differences:**', '', ...differences].join('\n'),
  ].join('\n');
}

/** The warning a busy run opens with (busy.mjs); empty for a quiet one. */
export function busyBanner(busy) {
  if (!busy?.marked) return '';
  const start = busy.start;
  const parts = [];
  if (!start.quiet) {
    parts.push(
      `other processes used ${fixed(start.othersCores, 2)} cores when it began (${start.top.join(', ') || 'short-lived processes'}), after ${fixed(start.waitedS, 0)} s of waiting for a quiet machine; BENCH_ALLOW_BUSY=1 let it run`,
    );
  }
  if (busy.steps.length > 0) {
    // Who, by command name (pids and per-window figures are in the raw results).
    const who = [
      ...new Set(busy.steps.flatMap((s) => s.who.map((w) => w.replace(/(\[\d+\])? [\d.]+$/, '')))),
    ];
    parts.push(
      `${busy.steps.length} load step(s) ran while others used more than that (marked ⚠ below, with the figures): ${busy.steps
        .map((s) => `${s.backend} at ${s.concurrency}${s.round > 1 ? ` (round ${s.round})` : ''}`)
        .join(', ')}; busy were ${who.join(', ')}`,
    );
  }
  return `\n> **Measured on a busy machine.** The busy threshold is ${busy.thresholdCores} cores used by processes other than the bench's own; ${parts.join('. Also, ')}. Ratios between backends measured one after another do not hold then (a run begun right after a build gave Gatekeeper 0.97× imagegate's added p50 where a quiet one gave 1.69×): do not quote these numbers.\n`;
}
