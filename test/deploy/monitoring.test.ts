/**
 * What an operator watches: the alerting rules pass `promtool test rules` (Debian's
 * promtool), every alert has a unit test, and every imagegate_* metric the rules and the
 * Grafana dashboard read is one the gateway or the audit exports — a renamed metric fails
 * here, not silently on a dashboard.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { createAuditMetrics } from '../../src/audit/metrics.ts';
import { isRecord } from '../../src/shared/json.ts';
import { createMetrics } from '../../src/shared/metrics.ts';
import { packageRoot } from '../../src/shared/paths.ts';
import { debianTest } from '../helpers/debian-test.ts';
import { findDebianTools } from '../helpers/nginx.ts';

const test = await debianTest('monitoring');
const run = promisify(execFile);
const FILES = join(packageRoot(), 'deploy', 'helm', 'imagegate', 'files');
const RULES = join(FILES, 'imagegate.rules.yaml');

/** Every series name the gateway and the audit export, histograms' and summaries' parts included. */
async function exported(): Promise<Set<string>> {
  const names = new Set<string>();
  for (const registry of [createMetrics().registry, createAuditMetrics().registry]) {
    for (const metric of await registry.getMetricsAsJSON()) {
      names.add(metric.name);
      for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${metric.name}${suffix}`);
    }
  }
  return names;
}

const used = (text: string) => new Set(text.match(/\bimagegate_[a-z0-9_]+\b/g) ?? []);

function expressions(value: unknown, found: string[] = []): string[] {
  if (Array.isArray(value)) for (const item of value) expressions(item, found);
  else if (isRecord(value)) {
    for (const [key, item] of Object.entries(value)) {
      if ((key === 'expr' || key === 'query') && typeof item === 'string') found.push(item);
      else expressions(item, found);
    }
  }
  return found;
}

test('promtool: the rules are valid and their unit tests pass', async (t) => {
  const tools = await findDebianTools();
  if (typeof tools === 'string') return t.fail(tools);
  const checked = await run(tools.promtool, ['check', 'rules', RULES]);
  t.regex(checked.stdout, /SUCCESS: \d+ rules found/);
  const tested = await run(tools.promtool, ['test', 'rules', 'imagegate.rules.test.yaml'], {
    cwd: FILES,
  });
  t.regex(tested.stdout, /SUCCESS/);
});

test('every alert has a unit test', async (t) => {
  const rules: unknown = parse(await readFile(RULES, 'utf8'));
  const alerts = alertNames(rules);
  const tests = await readFile(join(FILES, 'imagegate.rules.test.yaml'), 'utf8');
  t.true(alerts.length >= 10);
  for (const alert of alerts) t.true(tests.includes(`alertname: ${alert}`), alert);
});

test('the rules and the dashboard read only metrics that exist', async (t) => {
  const names = await exported();
  const rulesText = await readFile(RULES, 'utf8');
  const dashboard: unknown = JSON.parse(
    await readFile(join(FILES, 'imagegate-dashboard.json'), 'utf8'),
  );
  const dashboardExprs = expressions(dashboard);
  t.true(dashboardExprs.length >= 20, 'the dashboard has its panels');
  for (const [what, text] of [
    ['rules', rulesText],
    ['dashboard', dashboardExprs.join('\n')],
  ] as const) {
    const missing = [...used(text)].filter((name) => !names.has(name));
    t.deepEqual(missing, [], `${what} read metrics nobody exports`);
  }
  // And the dashboard shows what a fleet operator asks first.
  for (const name of [
    'imagegate_bundle_info',
    'imagegate_bundle_source_info',
    'imagegate_requests_total',
    'imagegate_decision_logs_dropped_total',
  ]) {
    t.true(used(dashboardExprs.join('\n')).has(name), name);
  }
});

function alertNames(rules: unknown): string[] {
  const groups = isRecord(rules) && Array.isArray(rules.groups) ? rules.groups : [];
  return groups.flatMap((group) =>
    isRecord(group) && Array.isArray(group.rules)
      ? group.rules.flatMap((rule) =>
          isRecord(rule) && typeof rule.alert === 'string' ? [rule.alert] : [],
        )
      : [],
  );
}
