/**
 * The policy every backend in `make bench-cluster` implements, and the pods each one must
 * judge the same way before anything is timed. In the `bench` namespace:
 *
 *   1. every image (containers, initContainers, image volumes; ephemeral containers are
 *      added by a subresource the load never uses) comes from registry.example.com or
 *      mirror.example.com — the registry host exactly (in any case), Docker Hub's implicit
 *      `docker.io` included (`nginx` is docker.io/library/nginx, untrusted);
 *   2. no `latest` tag, and no image without a tag or a digest (an implicit latest);
 *      a digest pins the image, alone or after any tag;
 *   3. every container's imagePullPolicy becomes Always (mutation), and so does every
 *      image volume's pullPolicy;
 *   4. an image that is no valid reference (the runtime could never pull it) is refused
 *      when the pod is created, not left to fail on the node.
 *
 * `allowed` is what the policy says; each backend's answer is compared with it, and with
 * imagegate's, and the report lists every difference. CASES are the 16 pods every backend
 * was first written against; EDGE_CASES add the places where reading the reference as the
 * runtime does matters beyond them (host case, a tag beside a digest, references that are
 * not valid at all) and images outside containers (image volumes, pulled by the kubelet
 * like container images since 1.35).
 */
export const NAMESPACE = 'bench';
export const TRUSTED = ['registry.example.com', 'mirror.example.com'];

const DIGEST = `sha256:${'0123456789abcdef'.repeat(4)}`;

/**
 * A pod of these containers (name → image), pull policy IfNotPresent so mutation shows;
 * `volumes` (name → image) become image volumes, pull policy IfNotPresent too.
 */
export function podOf(name, images, { init = {}, volumes = {} } = {}) {
  const container = ([cname, image]) => ({ name: cname, image, imagePullPolicy: 'IfNotPresent' });
  const volume = ([vname, reference]) => ({
    name: vname,
    image: { reference, pullPolicy: 'IfNotPresent' },
  });
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: NAMESPACE, labels: { app: 'bench' } },
    spec: {
      ...(Object.keys(init).length > 0
        ? { initContainers: Object.entries(init).map(container) }
        : {}),
      containers: Object.entries(images).map(container),
      ...(Object.keys(volumes).length > 0 ? { volumes: Object.entries(volumes).map(volume) } : {}),
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

/**
 * Beyond the 16: where a backend must read the reference as the runtime does, or look
 * past containers. Same shape as CASES; the report keeps them apart.
 */
export const EDGE_CASES = [
  [
    'upper-case-host',
    podOf('upper-case-host', { app: 'REGISTRY.EXAMPLE.COM/team/app:1.0' }),
    true,
    'a trusted host in capitals: host names ignore case',
  ],
  [
    'latest-pinned',
    podOf('latest-pinned', { app: `registry.example.com/team/app:latest@${DIGEST}` }),
    true,
    'tag latest beside a digest: the digest decides what is pulled',
  ],
  [
    'upper-case-path',
    podOf('upper-case-path', { app: 'registry.example.com/Team/app:1.0' }),
    false,
    'a repository in capitals: no reference the runtime can pull',
  ],
  [
    'short-digest',
    podOf('short-digest', { app: 'registry.example.com/team/app@sha256:0123456789abcdef' }),
    false,
    'a sha256 digest of 16 hex digits: no reference the runtime can pull',
  ],
  [
    'volume-trusted',
    podOf(
      'volume-trusted',
      { app: 'registry.example.com/team/app:1.0' },
      { volumes: { data: 'registry.example.com/team/data:1.0' } },
    ),
    true,
    'a trusted image volume (its pullPolicy becomes Always too)',
  ],
  [
    'volume-untrusted',
    podOf(
      'volume-untrusted',
      { app: 'registry.example.com/team/app:1.0' },
      { volumes: { data: 'busybox:1.36' } },
    ),
    false,
    'an image volume from Docker Hub',
  ],
];

/** The pod the load client creates: two trusted containers, allowed by every backend. */
export const LOAD_IMAGE = 'registry.example.com/team/app:1.0';
