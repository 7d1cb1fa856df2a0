// `make e2e`: the gateway behind a real kube-apiserver. Not part of `npx ava` (package.json's
// glob is test/**/*.test.ts, and ava only reads this file when given --config).
// Each file starts its own control plane: run them one at a time.
export default {
  files: ['test/e2e/**/*.e2e.ts'],
  extensions: { ts: 'module' },
  nodeArguments: ['--import=tsx/esm'],
  workerThreads: false,
  concurrency: 1,
  timeout: '120s',
};
