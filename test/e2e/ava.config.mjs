// `make e2e`: the gateway behind a real kube-apiserver. Not part of `npx ava` (package.json's
// glob is test/**/*.test.ts, and ava only reads this file when given --config).
// Each file starts its own control plane: run them one at a time.
export default {
  files: ['test/e2e/**/*.e2e.ts'],
  extensions: { ts: 'module' },
  nodeArguments: ['--import=tsx/esm'],
  workerThreads: false,
  concurrency: 1,
  // Starting a control plane is the slow part, more so on a busy machine: ava's timeout is
  // for silence between results, and a file's before hook starts one.
  timeout: '300s',
};
