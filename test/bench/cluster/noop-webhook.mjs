/**
 * The floor of any webhook, for `make bench-cluster`'s `noop` backend: an admission
 * webhook that judges nothing. The same stack as the gateway (node:https, Koa,
 * @koa/router, TLS 1.2+, idle connections kept 120 s as the gateway keeps them) doing
 * only what every webhook must: read the whole body, parse the review, and answer
 * "allowed" with the request's uid (the API server rejects an answer whose uid differs).
 * No policy, no patch, no logging. test/bench/noop-server.mjs answers fixed bytes instead:
 * fine for a load generator, but the API server needs its uid back.
 *
 *   node test/bench/cluster/noop-webhook.mjs --port 0 --cert C --key K
 *
 * POST /v1/validate and /v1/mutate answer reviews; GET /requests says how many each has
 * answered (so the bench can tell that the API server really calls it). Prints
 * `listening PORT`.
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
  },
});
if (values.cert === undefined || values.key === undefined) {
  throw new Error('--cert and --key are required');
}

const PATHS = ['/v1/validate', '/v1/mutate'];
const answered = Object.fromEntries(PATHS.map((p) => [p, 0]));

const app = new Koa();
app.silent = true;
const router = new Router();
for (const path of PATHS) {
  router.post(path, async (ctx) => {
    const chunks = [];
    for await (const chunk of ctx.req) chunks.push(chunk);
    let review;
    try {
      review = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      ctx.status = 400;
      ctx.body = { error: 'the body is not JSON' };
      return;
    }
    answered[path]++;
    ctx.type = 'application/json';
    ctx.body = JSON.stringify({
      apiVersion: review?.apiVersion ?? 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      response: { uid: review?.request?.uid ?? '', allowed: true },
    });
  });
}
router.get('/requests', (ctx) => {
  ctx.body = answered;
});
app.use(router.routes());
app.use(router.allowedMethods());

const server = createServer(
  { cert: readFileSync(values.cert), key: readFileSync(values.key), minVersion: 'TLSv1.2' },
  app.callback(),
);
// Longer than the API server's 90 s idle connections, as the gateway (src/server/gateway.ts):
// a server that closes first races the client into "EOF" webhook failures.
server.keepAliveTimeout = 120_000;
server.listen(Number(values.port), values.host);
await once(server, 'listening');
process.stdout.write(`listening ${server.address().port}\n`);
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
