import test from 'ava';
import { parseManifests } from '../../src/check/manifests.ts';
import { InputError } from '../../src/shared/input-error.ts';

test('multi-document YAML: every document, empty ones skipped, origins numbered', (t) => {
  const manifests = parseManifests(
    `apiVersion: v1
kind: Pod
metadata: {name: a, namespace: team-a}
spec: {containers: [{name: c, image: nginx}]}
---
---
apiVersion: apps/v1
kind: Deployment
metadata: {generateName: web-}
`,
    'x.yaml',
  );
  t.deepEqual(
    manifests.map((m) => [m.origin, m.kind, m.name, m.namespace]),
    [
      ['x.yaml#1', 'Pod', 'a', 'team-a'],
      ['x.yaml#3', 'Deployment', 'web-', ''],
    ],
  );
});

test('JSON and kind: List are expanded', (t) => {
  const list = JSON.stringify({
    apiVersion: 'v1',
    kind: 'List',
    items: [
      { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' } },
      {
        apiVersion: 'v1',
        kind: 'PodList',
        items: [{ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'q' } }],
      },
    ],
  });
  t.deepEqual(
    parseManifests(list, 'l.json').map((m) => [m.origin, m.name]),
    [
      ['l.json#1.items[0]', 'p'],
      ['l.json#1.items[1].items[0]', 'q'],
    ],
  );
});

test('no documents at all is an empty list, not an error', (t) => {
  t.deepEqual(parseManifests('', 'e.yaml'), []);
  t.deepEqual(parseManifests('# nothing\n', 'e.yaml'), []);
});

const rejects = test.macro<[string, RegExp]>({
  exec(t, text, message) {
    const error = t.throws(() => parseManifests(text, 'in.yaml'), { instanceOf: InputError });
    t.regex(error?.message ?? '', message);
  },
  title: (_, text) => `rejects ${JSON.stringify(text)}`,
});

test(rejects, 'kind: Pod\nmetadata: {name: x', /in\.yaml#1: not valid YAML or JSON/);
test(rejects, 'apiVersion: v1\nkind: Pod\n---\n- a', /in\.yaml#2: a manifest must be a map/);
test(rejects, 'kind: Pod', /in\.yaml#1: a manifest needs apiVersion and kind/);
test(rejects, 'apiVersion: v1\nkind: List', /List has no items list/);
test(rejects, 'apiVersion: v1\nkind: Pod\nkind: Pod', /not valid YAML or JSON/);
test(rejects, '{"apiVersion": "v1", "kind": "Pod"', /not valid YAML or JSON/);

test(
  rejects,
  'apiVersion: v1\nkind: Pod\nmetadata:\n  labels: *labels\n',
  /in\.yaml#1: not valid YAML/,
);
