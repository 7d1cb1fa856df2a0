/**
 * A TLS proxy in front of kube-apiserver, on loopback, that fails on demand: requests whose
 * path (with its query) matches are answered with a 500 Status, or have their connection
 * reset — watches already streaming included. Everything else is passed through as is,
 * streaming, with the client's own Authorization header (so clients use tokens: the proxy
 * presents no client certificate of its own).
 */
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, request as httpsRequest, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';

export type Fault = 'none' | '500' | 'reset';

export interface ApiProxy {
  readonly url: string;
  /** From now on, requests matching `paths` (default: all) fail this way. */
  fail(fault: Fault, paths?: RegExp): void;
  /** Requests each fault answered (resets: connections), and how many were passed through. */
  readonly counts: Record<Fault, number>;
  close(): Promise<void>;
}

const STATUS_500 = JSON.stringify({
  kind: 'Status',
  apiVersion: 'v1',
  status: 'Failure',
  message: 'injected by the e2e proxy',
  reason: 'InternalError',
  code: 500,
});

export async function startApiProxy(options: {
  /** https://127.0.0.1:PORT of the API server. */
  readonly upstream: string;
  /** The CA the API server's certificate is signed by (PEM file). */
  readonly ca: string;
  /** A certificate and key for 127.0.0.1 the clients trust (the API server's will do). */
  readonly cert: string;
  readonly key: string;
}): Promise<ApiProxy> {
  const upstream = new URL(options.upstream);
  const ca = await readFile(options.ca);
  let fault: Fault = 'none';
  let matching: RegExp = /./;
  const counts: Record<Fault, number> = { none: 0, '500': 0, reset: 0 };
  /**
   * Open client connections by their port: the TCP socket under the TLS one (only that
   * one can be reset), and the request each carries now (a watch, say).
   */
  const open = new Map<number, { socket: Socket; path: string }>();
  const reset = (port: number | undefined) => {
    const connection = port === undefined ? undefined : open.get(port);
    if (connection === undefined) return;
    connection.socket.resetAndDestroy();
    counts.reset++;
  };

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const path = req.url ?? '/';
    const port = req.socket.remotePort;
    const connection = port === undefined ? undefined : open.get(port);
    if (connection !== undefined) connection.path = path;
    res.on('close', () => {
      if (connection !== undefined) connection.path = '';
    });
    const now: Fault = matching.test(path) ? fault : 'none';
    if (now !== 'reset') counts[now]++;
    if (now === 'reset') {
      reset(port);
      return;
    }
    if (now === '500') {
      res.writeHead(500, { 'content-type': 'application/json' }).end(STATUS_500);
      return;
    }
    const forwarded = httpsRequest(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path,
        headers: { ...req.headers, host: upstream.host },
        ca,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        // As the API server does for a watch: the headers now, the events as they come.
        res.flushHeaders();
        answer.pipe(res);
      },
    );
    forwarded.on('error', () => req.socket.destroy());
    res.on('close', () => forwarded.destroy());
    req.pipe(forwarded);
  };

  const server: Server = createServer(
    { cert: await readFile(options.cert), key: await readFile(options.key) },
    handle,
  );
  server.on('connection', (socket: Socket) => {
    const port = socket.remotePort;
    if (port === undefined) return;
    open.set(port, { socket, path: '' });
    socket.on('close', () => open.delete(port));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return {
    url: `https://127.0.0.1:${port}`,
    counts,
    fail(next, paths = /./) {
      fault = next;
      matching = paths;
      if (next !== 'reset') return;
      // Connections carrying a matching request now (a watch) are reset too.
      for (const [port, { path }] of open) {
        if (path !== '' && paths.test(path)) reset(port);
      }
    },
    async close() {
      for (const { socket } of open.values()) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
