/**
 * The policy every backend in `make bench-cluster` implements, and the pods each one must
 * judge the same way before anything is timed. In the `bench` namespace:
 *
 *   1. every image (containers, initContainers; ephemeral containers are added by
 *      a subresource the load never uses) comes from registry.example.com or
 *      mirror.example.com — the registry host exactly, Docker Hub's implicit `docker.io`
 *      included (`nginx` is docker.io/library/nginx, untrusted);
 *   2. no `latest` tag, and no image without a tag or a digest (an implicit latest);
 *      a digest alone is fine;
 *   3. every container's imagePullPolicy becomes Always (mutation).
 *
 * `allowed` is what the policy says; each backend's answer is compared with it, and with
 * imagegate's, and the report lists every difference.
 */
export const NAMESPACE = 'bench';
export const TRUSTED = ['registry.example.com', 'mirror.example.com'];

const DIGEST = `sha256:${'0123456789abcdef'.repeat(4)}`;

/** A pod of these containers (name → image), pull policy IfNotPresent so mutation shows. */
export function podOf(name, images, { init = {} } = {}) {
  const container = ([cname, image]) => ({ name: cname, image, imagePullPolicy: 'IfNotPresent' });
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: NAMESPACE, labels: { app: 'bench' } },
    spec: {
      ...(Object.keys(init).length > 0
        ? { initContainers: Object.entries(init).map(container) }
        : {}),
      containers: Object.entries(images).map(container),
    },
  };
}

/** [name, pod, allowed, why] — `why` says what the policy sees. */
export const CASES = [
  [
    'trusted-tag',
    podOf('trusted-tag', { app: 'registry.example.com/team/app:1.0' }),
    true,
    'trusted registry, version tag',
  ],
  [
    'mirror-tag',
    podOf('mirror-tag', { app: 'mirror.example.com/library/nginx:1.27' }),
    true,
    'the second trusted registry',
  ],
  [
    'trusted-digest',
    podOf('trusted-digest', { app: `registry.example.com/team/app@${DIGEST}` }),
    true,
    'a digest alone pins the image',
  ],
  [
    'trusted-tag-digest',
    podOf('trusted-tag-digest', { app: `registry.example.com/team/app:1.0@${DIGEST}` }),
    true,
    'tag and digest',
  ],
  [
    'two-containers',
    podOf('two-containers', {
      app: 'registry.example.com/team/app:1.0',
      sidecar: 'mirror.example.com/proxy:2.1',
    }),
    true,
    'every container trusted',
  ],
  ['untrusted', podOf('untrusted', { app: 'quay.io/evil/miner:1.0' }), false, 'untrusted registry'],
  [
    'docker-hub-implicit',
    podOf('docker-hub-implicit', { app: 'nginx:1.27' }),
    false,
    'nginx is docker.io/library/nginx',
  ],
  [
    'docker-hub-explicit',
    podOf('docker-hub-explicit', { app: 'docker.io/library/nginx:1.27' }),
    false,
    'docker.io is not trusted',
  ],
  [
    'look-alike-host',
    podOf('look-alike-host', { app: 'registry.example.com.evil.io/team/app:1.0' }),
    false,
    'a host that only starts with a trusted one',
  ],
  [
    'trusted-as-path',
    podOf('trusted-as-path', { app: 'evil.io/registry.example.com/app:1.0' }),
    false,
    'the trusted name as a repository path',
  ],
  [
    'ported-host',
    podOf('ported-host', { app: 'registry.example.com:5000/team/app:1.0' }),
    false,
    'another registry: host and port',
  ],
  ['latest', podOf('latest', { app: 'registry.example.com/team/app:latest' }), false, 'tag latest'],
  [
    'untagged',
    podOf('untagged', { app: 'registry.example.com/team/app' }),
    false,
    'no tag: an implicit latest',
  ],
  [
    'untagged-mirror',
    podOf('untagged-mirror', { app: 'mirror.example.com/team/app' }),
    false,
    'no tag (second registry)',
  ],
  [
    'untrusted-init',
    podOf(
      'untrusted-init',
      { app: 'registry.example.com/team/app:1.0' },
      { init: { setup: 'busybox:1.36' } },
    ),
    false,
    'an init container from Docker Hub',
  ],
  [
    'untrusted-sidecar',
    podOf('untrusted-sidecar', {
      app: 'registry.example.com/team/app:1.0',
      sidecar: 'ghcr.io/other/proxy:1',
    }),
    false,
    'one untrusted container of two',
  ],
];

/** The pod the load client creates: two trusted containers, allowed by every backend. */
export const LOAD_IMAGE = 'registry.example.com/team/app:1.0';
