/**
 * The serving certificate in use and how it rotates: the pair (and client CA) are read at
 * start-up, then watched; rotated material goes into service for new connections only
 * once it is known to work, otherwise the previous certificate keeps serving.
 */
import type { Server as HttpsServer } from 'node:https';
import { describeThrown } from '../shared/describe-thrown.ts';
import { fingerprint, type Watch, watchContent } from '../shared/file-watch.ts';
import type { Logger } from '../shared/logger.ts';
import type { Metrics } from '../shared/metrics.ts';
import { clientCaProblem, notAfter, validityProblem } from '../tls/certificate-checks.ts';
import {
  readServingMaterial,
  rotationProblem,
  type ServingFiles,
  type ServingMaterial,
  watchedServingFiles,
} from '../tls/serving-files.ts';
import type { TlsStatus } from './health.ts';

export interface ServingTls {
  readonly files: ServingFiles;
  readonly initial: ServingMaterial;
  /** The certificate's state for /readyz and the cluster primary. */
  status(): TlsStatus | undefined;
  /** Watches the files and swaps `https`'s context when they rotate. */
  watch(https: HttpsServer): Promise<Watch>;
  /**
   * Reads the files once and puts them in service if they work (what the watch does on
   * every change). Material identical to what already serves is no rotation: it is neither
   * counted nor logged, so a poll that lands mid-rotation and reads the finished pair does
   * not count it twice.
   */
  reload(https: Pick<HttpsServer, 'setSecureContext'>): Promise<void>;
}

export interface ServingTlsDeps {
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly intervalMs: number;
  /** Told after every rotation or refusal (not the first load: the caller has the handle). */
  readonly changed: () => void;
}

export async function loadServingTls(
  files: ServingFiles,
  deps: ServingTlsDeps,
): Promise<ServingTls> {
  const { metrics, logger } = deps;
  let status: TlsStatus | undefined;
  /** Records a TLS load: `served` is the certificate now in use when it changed. */
  const loaded = (served: Buffer | undefined, problem?: string, initial = false) => {
    const at = new Date().toISOString();
    status = {
      cert: files.cert,
      clientCa: files.clientCa ?? null,
      notAfter: served === undefined ? (status?.notAfter ?? '') : notAfter(served),
      lastLoad:
        problem === undefined
          ? { source: files.cert, at, ok: true }
          : { source: files.cert, at, ok: false, error: problem },
    };
    const expires = Date.parse(status.notAfter);
    if (Number.isFinite(expires)) metrics.certificateExpiry.set(expires / 1000);
    if (!initial) deps.changed();
  };

  // Fingerprinted before they are read: a rotation that lands meanwhile is picked up.
  const watched = watchedServingFiles(files);
  const readFrom = await fingerprint(watched);
  const initial = await readServingMaterial(files);
  // A client CA that holds no certificate would refuse every client: a configuration error.
  if ('ca' in initial) {
    const problem = clientCaProblem(initial.ca);
    if (problem !== undefined) throw new Error(`--client-ca ${files.clientCa}: ${problem}`);
  }
  const initialProblem = validityProblem(initial.cert);
  // Serving anyway lets a rotation fix it without a restart; say so loudly.
  if (initialProblem !== undefined) logger.error({ cert: files.cert }, initialProblem);
  loaded(initial.cert, initialProblem, true);
  let serving: ServingMaterial = initial;

  const reload = async (https: Pick<HttpsServer, 'setSecureContext'>) => {
    try {
      const material = await readServingMaterial(files);
      if (status?.lastLoad.ok === true && sameMaterial(material, serving)) return;
      const problem = rotationProblem(material);
      if (problem !== undefined) throw new Error(problem);
      https.setSecureContext({ ...material, minVersion: 'TLSv1.2' });
      serving = material;
      metrics.reloads.inc({ kind: 'certificate', result: 'ok' });
      logger.info({ cert: files.cert, clientCa: files.clientCa }, 'serving certificate reloaded');
      loaded(material.cert);
    } catch (error) {
      metrics.reloads.inc({ kind: 'certificate', result: 'refused' });
      logger.error(
        { error: describeThrown(error) },
        'serving certificate reload refused; the previous one stays',
      );
      loaded(undefined, describeThrown(error));
    }
  };

  return {
    files,
    initial,
    status: () => status,
    async watch(https) {
      return watchContent(
        async () => watched,
        readFrom,
        deps.intervalMs,
        () => reload(https),
      );
    },
    reload,
  };
}

function sameMaterial(a: ServingMaterial, b: ServingMaterial): boolean {
  const caA = 'ca' in a ? a.ca : undefined;
  const caB = 'ca' in b ? b.ca : undefined;
  return (
    a.cert.equals(b.cert) &&
    a.key.equals(b.key) &&
    (caA === undefined ? caB === undefined : caB !== undefined && caA.equals(caB))
  );
}
