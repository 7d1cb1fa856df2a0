/**
 * Which objects carry pod specs, and where. The gateway checks pod templates itself: a
 * Deployment with a bad image must be refused at apply time, not when its ReplicaSet
 * fails to create pods minutes later.
 */

export type ObjectClass = 'pod' | 'workload' | 'volume-claim';

export interface CoveredKind {
  readonly kind: string;
  readonly groups: readonly string[];
  readonly resource: string;
  readonly class: ObjectClass;
  /** JSON pointers to the pod specs inside the object. */
  readonly podSpecPaths: readonly string[];
}

const TEMPLATE = '/spec/template/spec';

export const COVERED_KINDS: readonly CoveredKind[] = [
  { kind: 'Pod', groups: [''], resource: 'pods', class: 'pod', podSpecPaths: ['/spec'] },
  {
    kind: 'Deployment',
    groups: ['apps', 'extensions'],
    resource: 'deployments',
    class: 'workload',
    podSpecPaths: [TEMPLATE],
  },
  {
    kind: 'ReplicaSet',
    groups: ['apps', 'extensions'],
    resource: 'replicasets',
    class: 'workload',
    podSpecPaths: [TEMPLATE],
  },
  {
    kind: 'StatefulSet',
    groups: ['apps'],
    resource: 'statefulsets',
    class: 'workload',
    podSpecPaths: [TEMPLATE],
  },
  {
    kind: 'DaemonSet',
    groups: ['apps', 'extensions'],
    resource: 'daemonsets',
    class: 'workload',
    podSpecPaths: [TEMPLATE],
  },
  { kind: 'Job', groups: ['batch'], resource: 'jobs', class: 'workload', podSpecPaths: [TEMPLATE] },
  {
    kind: 'CronJob',
    groups: ['batch'],
    resource: 'cronjobs',
    class: 'workload',
    podSpecPaths: ['/spec/jobTemplate/spec/template/spec'],
  },
  {
    kind: 'ReplicationController',
    groups: [''],
    resource: 'replicationcontrollers',
    class: 'workload',
    podSpecPaths: [TEMPLATE],
  },
  {
    kind: 'PersistentVolumeClaim',
    groups: [''],
    resource: 'persistentvolumeclaims',
    class: 'volume-claim',
    podSpecPaths: [],
  },
];

/** The container lists of a pod spec, in the order the policy input lists them. */
export const CONTAINER_LISTS = ['containers', 'initContainers', 'ephemeralContainers'] as const;
export type ContainerList = (typeof CONTAINER_LISTS)[number];

/**
 * Where else a kubelet pulls images from: image volumes (`volumes[].image.reference`, with
 * their `pullPolicy`), beta and on by default since Kubernetes 1.35. Listed after the
 * container lists.
 */
export const IMAGE_VOLUMES = 'volumes';
export type ImageList = ContainerList | typeof IMAGE_VOLUMES;

export function coveredKind(group: string, kind: string): CoveredKind | undefined {
  return COVERED_KINDS.find((k) => k.kind === kind && k.groups.includes(group));
}

/** Splits an object's `apiVersion` ("apps/v1", "v1") into group and version. */
export function splitApiVersion(apiVersion: string): { group: string; version: string } {
  const slash = apiVersion.indexOf('/');
  return slash === -1
    ? { group: '', version: apiVersion }
    : { group: apiVersion.slice(0, slash), version: apiVersion.slice(slash + 1) };
}
