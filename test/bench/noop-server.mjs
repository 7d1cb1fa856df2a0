/**
 * The ceiling: the same stack as the gateway (node:https, Koa, @koa/router) minus the
 * work. It reads the whole body, as the gateway must, and answers a fixed, pre-serialised
 * review per path — the very bytes the gateway answers for the benchmark's body, so
 * response sizes match. No parsing, no policy, no logging.
 *
 *   node test/bench/noop-server.mjs --port 0 --cert C --key K --responses FILE
 *
 * FILE maps a path to its response ({"/v1/validate": {...}}). Prints `listening PORT`.
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { parseArgs } from 'node:util';
import Router from '@koa/router';
import Koa from 'koa';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
    cert: { type: 'string' },
    key: { type: 'string' },
    responses: { type: 'string' },
  },
});
if (values.cert === undefined || values.key === undefined || values.responses === undefined) {
  throw new Error('--cert, --key and --responses are required');
}
const responses = JSON.parse(readFileSync(values.responses, 'utf8'));

const app = new Koa();
app.silent = true;
const router = new Router();
for (const [path, response] of Object.entries(responses)) {
  const bytes = JSON.stringify(response);
  router.post(path, async (ctx) => {
    for await (const _chunk of ctx.req) {
      // drain: the gateway has to read every byte too
    }
    ctx.type = 'application/json';
    ctx.body = bytes;
  });
}
app.use(router.routes());
app.use(router.allowedMethods());

const server = createServer(
  { cert: readFileSync(values.cert), key: readFileSync(values.key), minVersion: 'TLSv1.2' },
  app.callback(),
);
server.keepAliveTimeout = 60_000;
server.listen(Number(values.port), values.host);
await once(server, 'listening');
process.stdout.write(`listening ${server.address().port}\n`);
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
