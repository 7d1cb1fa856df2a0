/**
 * A client for the bench control plane's API server with the kubeconfig's client
 * certificate (the e2e admin): kept-alive HTTPS, one POST per pod creation, timed.
 * Only loopback API servers: this is a load generator.
 */
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { parse } from 'yaml';

export function kubeClient(kubeconfigFile, { maxSockets = 8 } = {}) {
  const kc = parse(readFileSync(kubeconfigFile, 'utf8'));
  const cluster = kc.clusters[0].cluster;
  const user = kc.users[0].user;
  const bytes = (data, file) => (data ? Buffer.from(data, 'base64') : readFileSync(file));
  const server = new URL(cluster.server);
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(server.hostname)) {
    throw new Error(`refusing to load ${server.hostname}: only loopback API servers`);
  }
  const agent = new Agent({
    keepAlive: true,
    maxSockets,
    ca: bytes(cluster['certificate-authority-data'], cluster['certificate-authority']),
    cert: bytes(user['client-certificate-data'], user['client-certificate']),
    key: bytes(user['client-key-data'], user['client-key']),
  });
  /** POSTs the pod; resolves {status (0: no answer), us, body} — never rejects. */
  function createPod(pod) {
    const body = JSON.stringify(pod);
    return new Promise((resolve) => {
      const started = process.hrtime.bigint();
      const elapsed = () => Number(process.hrtime.bigint() - started) / 1000;
      const req = request(
        {
          host: server.hostname,
          port: server.port,
          method: 'POST',
          path: `/api/v1/namespaces/${pod.metadata.namespace}/pods`,
          agent,
          headers: {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
          },
        },
        (res) => {
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () =>
            resolve({
              status: res.statusCode,
              us: elapsed(),
              body: Buffer.concat(chunks).toString('utf8'),
            }),
          );
        },
      );
      req.on('error', (error) => resolve({ status: 0, us: elapsed(), body: String(error) }));
      req.end(body);
    });
  }
  return { createPod, close: () => agent.destroy() };
}
