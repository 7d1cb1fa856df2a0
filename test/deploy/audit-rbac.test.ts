/**
 * The audit's RBAC names exactly the reports it writes: the PolicyReport names a
 * namespace's results may spill into (src/audit/reports.ts) and the ClusterPolicyReport,
 * in the kustomize component and the chart alike (server-side apply is authorized as a
 * create with the name, so even create is by name); nothing may update, get, create or
 * delete another object of those kinds.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { parseAllDocuments } from 'yaml';
import { REPORT_NAME, REPORT_NAMES } from '../../src/audit/reports.ts';
import { isRecord } from '../../src/shared/json.ts';
import { ROOT } from '../helpers/cli.ts';

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

async function clusterRoleRules(): Promise<Rule[]> {
  const text = await readFile(join(ROOT, 'deploy', 'components', 'audit', 'rbac.yaml'), 'utf8');
  const role = parseAllDocuments(text)
    .map((d) => d.toJS() as unknown)
    .find((o) => isRecord(o) && o.kind === 'ClusterRole');
  return (isRecord(role) ? role.rules : []) as Rule[];
}

test('write access to PolicyReports is by name: the names reports.ts spills into', async (t) => {
  const reports = (await clusterRoleRules()).filter((r) => r.apiGroups.includes('wgpolicyk8s.io'));
  const byName = reports.filter((r) => r.resourceNames !== undefined);
  const unnamed = reports.filter((r) => r.resourceNames === undefined);
  t.deepEqual(
    byName.map((r) => [r.resources, r.resourceNames, r.verbs]),
    [
      [['policyreports'], [...REPORT_NAMES], ['create', 'patch', 'delete']],
      [['clusterpolicyreports'], [REPORT_NAME], ['create', 'patch']],
    ],
  );
  // What RBAC cannot narrow to a label (list), and nothing else.
  t.deepEqual(
    unnamed.map((r) => [r.resources, r.verbs]),
    [[['policyreports'], ['list']]],
  );
});
