/**
 * What the reload and fault tests share: the review they swap policies under, traffic that
 * keeps a gateway busy meanwhile, and the reload counters they read back.
 */
import type { JsonObject } from '../../src/shared/json.ts';
import { admissionAnswer, errorCode, record, type TestGateway } from './gateway.ts';

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A Pod CREATE running nginx:1.27 pulled Always: denied by the committed bundle (Docker Hub
 * is not trusted), allowed once docker.io/library is.
 */
export function nginxPodReview(uid: string): JsonObject {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'shop',
      operation: 'CREATE',
      object: {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'web', namespace: 'shop' },
        spec: { containers: [{ name: 'web', image: 'nginx:1.27', imagePullPolicy: 'Always' }] },
      },
    },
  };
}

/**
 * Sequential validate reviews until stopped (bounded: 10 000 requests or 50 s). Anything
 * but a decided review — an error, no `allowed`, a policy failure (500) — is a failure.
 */
export class ValidateTraffic {
  readonly failures: string[] = [];
  answered = 0;
  #stop = false;
  readonly #done: Promise<void>;

  constructor(gw: TestGateway) {
    const deadline = Date.now() + 50_000;
    this.#done = (async () => {
      for (let i = 0; i < 10_000 && !this.#stop && Date.now() < deadline; i++) {
        try {
          const { response } = admissionAnswer(
            await gw.post('/v1/validate', nginxPodReview(`bg-${i}`)),
          );
          const status = response.status === undefined ? {} : record(response.status, 'status');
          if (typeof response.allowed !== 'boolean' || status.code === 500) {
            this.failures.push(JSON.stringify(response));
          } else {
            this.answered += 1;
          }
        } catch (error) {
          this.failures.push(errorCode(error));
        }
        await sleep(5);
      }
    })();
  }

  async stop(): Promise<void> {
    this.#stop = true;
    await this.#done;
  }
}

/** `imagegate_reloads_total{kind,result}` from a /metrics text; 0 before the first. */
export function reloadCount(
  metrics: string,
  kind: 'policy' | 'certificate',
  result: 'ok' | 'refused',
): number {
  const line = new RegExp(
    `^imagegate_reloads_total\\{kind="${kind}",result="${result}"\\} (\\d+)$`,
    'm',
  ).exec(metrics);
  return Number(line?.[1] ?? 0);
}

/** The same, read from a running gateway's health port. */
export async function reloads(
  gw: TestGateway,
  kind: 'policy' | 'certificate',
  result: 'ok' | 'refused',
): Promise<number> {
  return reloadCount((await gw.health('/metrics')).text, kind, result);
}
