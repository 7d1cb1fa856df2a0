/**
 * A bundle server written to OPA's bundle service protocol where nginx has nothing to say:
 * long polling. GET answers the current bundle with an ETag and
 * `Content-Type: application/vnd.openpolicyagent.bundles` (which tells a client it may long
 * poll); a request whose If-None-Match is current and that says `Prefer: ...wait=N` is held
 * until `publish()` or N seconds, then answered (200 with the new bundle, or 304). HTTPS
 * from a throwaway CA on 127.0.0.1; every request's headers are recorded.
 */
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createCa, issueCertificate } from '../../src/tls/certs.ts';
import type { Teardown } from './teardown.ts';

export const BUNDLES_TYPE = 'application/vnd.openpolicyagent.bundles';

export interface LongPollServer {
  readonly url: string;
  readonly ca: string;
  readonly requests: IncomingHttpHeaders[];
  publish(bundle: Buffer): void;
}

export async function startLongPollServer(t: Teardown, first: Buffer): Promise<LongPollServer> {
  const ca = createCa('imagegate test bundle server CA');
  const serving = issueCertificate(ca, {
    commonName: '127.0.0.1',
    usage: 'server',
    altNames: ['127.0.0.1'],
  });
  let bundle = first;
  let etag = tagOf(first);
  const waiting = new Set<() => void>();
  const requests: IncomingHttpHeaders[] = [];
  const send = (res: ServerResponse) => {
    res.writeHead(200, { etag, 'content-type': BUNDLES_TYPE });
    res.end(bundle);
  };
  const server = createServer({ cert: serving.cert, key: serving.key }, (req, res) => {
    requests.push(req.headers);
    if (req.headers['if-none-match'] !== etag) return send(res);
    const wait = /wait=(\d+)/.exec(String(req.headers.prefer ?? ''))?.[1];
    if (wait === undefined) {
      res.writeHead(304, { etag });
      return res.end();
    }
    const answer = () => {
      clearTimeout(timer);
      waiting.delete(answer);
      if (req.headers['if-none-match'] !== etag) return send(res);
      res.writeHead(304, { etag, 'content-type': BUNDLES_TYPE });
      res.end();
    };
    const timer = setTimeout(answer, Number(wait) * 1000);
    waiting.add(answer);
    res.on('close', () => {
      clearTimeout(timer);
      waiting.delete(answer);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return {
    url: `https://127.0.0.1:${port}/bundles/imagegate.tar.gz`,
    ca: ca.cert,
    requests,
    publish(next) {
      bundle = next;
      etag = tagOf(next);
      for (const answer of [...waiting]) answer();
    },
  };
}

function tagOf(bytes: Buffer): string {
  return `"${createHash('sha256').update(bytes).digest('hex').slice(0, 16)}"`;
}
