/** `imagegate serve`'s fleet flags: a bad source or collector setting is bad input (exit 2) before anything starts. */
import test from 'ava';
import { imagegate } from '../helpers/cli.ts';

for (const [args, why] of [
  [['--bundle', 'oci://policy/imagegate:1'], /write the registry host/],
  [['--bundle', 'http://bundles.example.com/b.tar.gz'], /https only/],
  [
    ['--bundle', 'oci://registry.example.com/p/i:1', '--bundle-poll-interval-ms', '0'],
    /--bundle-poll-interval-ms/,
  ],
  [
    ['--bundle', 'oci://registry.example.com/p/i:1', '--bundle-cosign-trust-root', 'root.json'],
    /needs --bundle-cosign-key/,
  ],
  [['--decision-logs'], /need --collector-url/],
  [
    ['--collector-url', 'ftp://collector.example.com', '--status'],
    /not an https:\/\/ \(or http:\/\/\) URL/,
  ],
  [['--collector-url', 'https://collector.example.com'], /say what to send it/],
  [
    ['--collector-url', 'https://collector.example.com', '--status', '--label', 'cluster'],
    /write KEY=VALUE/,
  ],
] as const) {
  test(`serve ${args.join(' ')}: exit 2`, async (t) => {
    const result = await imagegate(['serve', ...args]);
    t.is(result.code, 2, result.stderr);
    t.regex(result.stderr, why);
  });
}
