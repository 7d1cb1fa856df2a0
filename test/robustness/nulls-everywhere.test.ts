/**
 * Nulls everywhere, exhaustively: every field of real fixtures, one at a time, set to null
 * (and, for the ImageReview, deleted). Every answer keeps the contract of answers.ts: a
 * well-formed review or a 4xx, never a 5xx, never a policy failure.
 */
import test from 'ava';
import { type FixtureDir, loadJsonObject } from '../helpers/fixtures.ts';
import { answerProblems, type Endpoint, failureWatch } from './answers.ts';
import { fileTarget } from './corpus.ts';
import { type Action, apply, paths, sent } from './json-edits.ts';

const gw = fileTarget();

const NULL: Action = { kind: 'replace', value: null };
const DELETE: Action = { kind: 'delete' };

// Each request costs a few milliseconds of the one CPU the client and the gateway share,
// so the big fixtures get nulls only; deletions are also among the property's mutations.
const FIXTURES: ReadonlyArray<
  readonly [FixtureDir, string, readonly Endpoint[], readonly (readonly [string, Action])[]]
> = [
  ['admission', 'pod-create-v1', ['/v1/validate', '/v1/mutate'], [['null', NULL]]],
  ['admission', 'deployment-create-v1', ['/v1/validate'], [['null', NULL]]],
  ['admission', 'pod-update-new-image-v1', ['/v1/validate'], [['null', NULL]]],
  [
    'imagereview',
    'imagereview-mixed',
    ['/v1/imagereview'],
    [
      ['null', NULL],
      ['deleted', DELETE],
    ],
  ],
];

for (const [dir, name, endpoints, actions] of FIXTURES) {
  for (const endpoint of endpoints) {
    for (const [what, action] of actions) {
      test(`${name} on ${endpoint}: every field ${what} in turn`, async (t) => {
        const g = await gw();
        const failures = failureWatch(g.gw.logs);
        const fixture = loadJsonObject(dir, name);
        const all = paths(fixture);
        const problems: string[] = [];
        for (const path of all) {
          const review = structuredClone(fixture);
          apply(review, path, action);
          const body = sent(review);
          const result = await g.send({ path: endpoint, body: () => body.text });
          const found = answerProblems(endpoint, body.parsed, result);
          if (found.length > 0) problems.push(`${path.join('.')}: ${found.join('; ')}`);
        }
        t.deepEqual(problems, []);
        t.deepEqual(failures(), [], 'no error-level log line');
        t.log(`${all.length} fields`);
      });
    }
  }
}
