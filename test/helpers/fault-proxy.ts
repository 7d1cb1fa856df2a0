/**
 * A fault-injecting HTTPS proxy in front of a real registry (test/helpers/registry.ts): it
 * forwards every request as it came, until a test sets a fault — slow answers, connection
 * resets, 5xx, 429 with Retry-After, a redirect loop, an oversized body — and forwards
 * again once the fault is cleared, so recovery without a restart is observed. Its own
 * serving certificate from the registry's CA, so whoever trusts the registry trusts it;
 * on 127.0.0.1 with a free port; torn down with the test.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Agent, createServer, request, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createCa, issueCertificate } from '../../src/tls/certs.ts';
import type { TestRegistry } from './registry.ts';
import type { Teardown } from './teardown.ts';

export type Fault =
  | { readonly kind: 'none' }
  /** Every answer delayed this long (the request still reaches the registry). */
  | { readonly kind: 'slow'; readonly delayMs: number }
  /** The connection is dropped as soon as the request arrives, no answer at all. */
  | { readonly kind: 'reset' }
  | { readonly kind: 'status'; readonly status: number }
  | { readonly kind: 'rate-limit'; readonly retryAfterS: number }
  /** 307 to the same URL, forever. */
  | { readonly kind: 'redirect-loop' }
  /** 200 with this many bytes of junk, for every GET. */
  | { readonly kind: 'oversized'; readonly bytes: number };

export interface FaultProxy {
  /** `127.0.0.1:PORT`: name images by this host to go through the proxy. */
  readonly host: string;
  /** PEM of the CA the proxy's certificate chains to (trust it like the registry's). */
  readonly ca: string;
  /** Requests it received, by path, while each fault was in force. */
  readonly received: { readonly fault: Fault['kind']; readonly path: string }[];
  set(fault: Fault): void;
}

export async function startFaultProxy(t: Teardown, upstream: TestRegistry): Promise<FaultProxy> {
  const ca = createCa('imagegate fault proxy CA');
  const serving = issueCertificate(ca, {
    commonName: '127.0.0.1',
    usage: 'server',
    altNames: ['127.0.0.1'],
  });
  let fault: Fault = { kind: 'none' };
  const received: FaultProxy['received'] = [];
  const [upstreamHost, upstreamPort] = upstream.host.split(':');
  // Connections to the registry are kept: a TLS handshake per forwarded request, at the
  // tenants benchmark's hundreds a second, took CPU from the gateway it measures.
  const agent = new Agent({ keepAlive: true, ca: upstream.ca });

  const forward = (req: IncomingMessage, res: ServerResponse) => {
    const out = request(
      {
        host: upstreamHost,
        port: upstreamPort,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: upstream.host },
        agent,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    out.on('error', () => res.destroy());
    req.pipe(out);
  };

  const server: Server = createServer({ cert: serving.cert, key: serving.key }, (req, res) => {
    const now = fault;
    received.push({ fault: now.kind, path: req.url ?? '' });
    switch (now.kind) {
      case 'none':
        return forward(req, res);
      case 'slow': {
        const timer = setTimeout(() => forward(req, res), now.delayMs);
        res.on('close', () => clearTimeout(timer));
        return;
      }
      case 'reset':
        req.socket.destroy();
        return;
      case 'status':
        res.writeHead(now.status, { 'content-type': 'text/plain' });
        res.end(`injected ${now.status}\n`);
        return;
      case 'rate-limit':
        res.writeHead(429, { 'retry-after': String(now.retryAfterS) });
        res.end();
        return;
      case 'redirect-loop':
        res.writeHead(307, { location: `https://${proxyHost}${req.url ?? '/'}` });
        res.end();
        return;
      case 'oversized': {
        if (req.method === 'HEAD') return forward(req, res);
        res.writeHead(200, {
          'content-type': 'application/vnd.oci.image.manifest.v1+json',
          'content-length': String(now.bytes),
        });
        // Written in pieces: a client that stops reading must not make this buffer it all.
        const chunk = Buffer.alloc(64 * 1024, 0x20);
        let left = now.bytes;
        const pump = () => {
          while (left > 0) {
            const piece = chunk.subarray(0, Math.min(chunk.length, left));
            left -= piece.length;
            if (!res.write(piece)) return void res.once('drain', pump);
          }
          res.end();
        };
        res.on('error', () => undefined);
        pump();
        return;
      }
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const proxyHost = `127.0.0.1:${port}`;
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        agent.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return {
    host: proxyHost,
    ca: ca.cert,
    received,
    set(next) {
      fault = next;
    },
  };
}
