/**
 * A small, real-shaped review that every bundle must answer before it may serve: a Pod
 * with one container and one init container, created in the default namespace.
 */
import { admissionInput } from '../review/policy-input.ts';

export const SMOKE_INPUT = admissionInput('admission.k8s.io/v1', {
  uid: '00000000-0000-0000-0000-000000000000',
  kind: { group: '', version: 'v1', kind: 'Pod' },
  resource: { group: '', version: 'v1', resource: 'pods' },
  subResource: '',
  operation: 'CREATE',
  namespace: 'default',
  name: 'imagegate-smoke',
  dryRun: true,
  object: {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'imagegate-smoke', namespace: 'default' },
    spec: {
      initContainers: [{ name: 'init', image: 'busybox:1.36', imagePullPolicy: 'IfNotPresent' }],
      containers: [{ name: 'app', image: `registry.example.com/app@sha256:${'a'.repeat(64)}` }],
    },
  },
  oldObject: null,
  raw: {},
});
