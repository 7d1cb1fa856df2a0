/** The soak's arithmetic and its report: RSS samples, a least-squares slope, percentiles. */

export interface Sample {
  /** Seconds since traffic started. */
  readonly t: number;
  readonly rssMiB: number;
}

/** VmRSS of a process in MiB, from /proc/<pid>/status (Linux). */
export function rssFromStatus(status: string): number | undefined {
  const kib = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status)?.[1];
  return kib === undefined ? undefined : Number(kib) / 1024;
}

/** Slope of the least-squares line through the samples, in MiB per minute. */
export function slopePerMinute(samples: readonly Sample[]): number {
  const n = samples.length;
  if (n < 2) return 0;
  const meanT = samples.reduce((sum, s) => sum + s.t, 0) / n;
  const meanR = samples.reduce((sum, s) => sum + s.rssMiB, 0) / n;
  let num = 0;
  let den = 0;
  for (const s of samples) {
    num += (s.t - meanT) * (s.rssMiB - meanR);
    den += (s.t - meanT) ** 2;
  }
  return den === 0 ? 0 : (num / den) * 60;
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, index)] ?? 0;
}

export interface RssSummary {
  readonly first: number;
  readonly min: number;
  readonly max: number;
  readonly last: number;
  /** Over the second half of the run: the first half is warm-up (JIT, caches, pools). */
  readonly slope: number;
  readonly samples: number;
}

export function summarizeRss(samples: readonly Sample[]): RssSummary {
  const values = samples.map((s) => s.rssMiB);
  const half = samples.length === 0 ? 0 : (samples.at(-1)?.t ?? 0) / 2;
  return {
    first: values[0] ?? 0,
    min: Math.min(...values),
    max: Math.max(...values),
    last: values.at(-1) ?? 0,
    slope: slopePerMinute(samples.filter((s) => s.t >= half)),
    samples: samples.length,
  };
}

export interface Report {
  readonly date: string;
  readonly seconds: number;
  readonly concurrency: number;
  readonly swapSeconds: number;
  readonly machine: string;
  readonly counts: ReadonlyMap<string, number>;
  readonly latencies: ReadonlyMap<string, number[]>;
  readonly failures: readonly string[];
  readonly failed: number;
  readonly swaps: Readonly<Record<string, number>>;
  readonly reloads: Readonly<Record<string, number>>;
  readonly revisions: readonly string[];
  readonly logs: ReadonlyMap<string, number>;
  /** Distinct error lines other than decisions (refused reloads and their reasons). */
  readonly refusals: readonly string[];
  readonly rss: RssSummary;
  /** About twenty samples across the run, for the report. */
  readonly series: readonly Sample[];
  readonly maxSlope: number;
  readonly exit: string;
  readonly verdict: readonly string[];
}

const mib = (n: number) => n.toFixed(1);

const ms1 = (n: number) => n.toFixed(1);

export function markdown(report: Report): string {
  const lines: string[] = [];
  const total = [...report.counts.values()].reduce((a, b) => a + b, 0);
  const verdict = report.verdict.length === 0 ? 'PASS' : 'FAIL';
  lines.push(`## ${report.date}: ${report.seconds} s soak — ${verdict}`, '');
  lines.push(
    `${report.machine}; ${report.concurrency} concurrent clients; ` +
      `a bundle or configuration swap every ${report.swapSeconds} s.`,
    '',
  );
  const rate = (total / report.seconds).toFixed(0);
  lines.push(`Requests: ${total} (${rate}/s), failed: **${report.failed}**.`, '');
  lines.push('| endpoint | outcome | requests | p50 ms | p99 ms | max ms |');
  lines.push('|---|---|---:|---:|---:|---:|');
  for (const [key, count] of [...report.counts].sort(([a], [b]) => a.localeCompare(b))) {
    const [endpoint = '', outcome = ''] = key.split('|');
    const ms = [...(report.latencies.get(key) ?? [])].sort((a, b) => a - b);
    const p50 = ms1(percentile(ms, 50));
    const p99 = ms1(percentile(ms, 99));
    lines.push(
      `| ${endpoint} | ${outcome} | ${count} | ${p50} | ${p99} | ${ms1(ms.at(-1) ?? 0)} |`,
    );
  }
  lines.push('');
  const swaps = Object.entries(report.swaps).map(([k, v]) => `${k} ${v}`);
  const reloads = Object.entries(report.reloads).map(([k, v]) => `${k} ${v}`);
  lines.push(`Swaps written: ${swaps.join(', ')}.`);
  lines.push(`Reloads (imagegate_reloads_total, policy): ${reloads.join(', ')}.`);
  lines.push(`Revisions seen serving: ${report.revisions.join(', ')}.`);
  const logs = [...report.logs].map(([k, v]) => `${k} ${v}`).join('; ');
  lines.push(`Log lines (level message count): ${logs}.`);
  for (const refusal of report.refusals.slice(0, 6)) lines.push(`- logged: ${refusal}`);
  lines.push('');
  const r = report.rss;
  lines.push(
    `RSS (MiB, ${r.samples} samples): first ${mib(r.first)}, min ${mib(r.min)}, ` +
      `max ${mib(r.max)}, last ${mib(r.last)}; slope over the second half ` +
      `**${r.slope.toFixed(2)} MiB/min** (limit ${report.maxSlope}).`,
  );
  const series = report.series.map((s) => `${s.t.toFixed(0)}: ${s.rssMiB.toFixed(0)}`);
  lines.push(`RSS over time (s: MiB): ${series.join(', ')}.`);
  lines.push(`Gateway exit: ${report.exit}.`);
  if (report.failures.length > 0) {
    lines.push('', 'First failures:');
    for (const failure of report.failures.slice(0, 20)) lines.push(`- ${failure}`);
  }
  if (report.verdict.length > 0) lines.push('', `Verdict: ${report.verdict.join('; ')}.`);
  lines.push('');
  return lines.join('\n');
}
