/** The serving certificate's expiry as a metric: what the certificate alerts read. */
import test from 'ava';
import { record, startTestGateway } from '../helpers/gateway.ts';

test('imagegate_tls_certificate_expiry_timestamp_seconds is the notAfter /readyz shows', async (t) => {
  const gateway = await startTestGateway(t);
  const tls = record(record((await gateway.health('/readyz')).body, '/readyz').tls, 'tls');
  const notAfter = Date.parse(String(tls.notAfter)) / 1000;
  t.true(Number.isFinite(notAfter) && notAfter > Date.now() / 1000);
  const metrics = (await gateway.health('/metrics')).text;
  const line = /^imagegate_tls_certificate_expiry_timestamp_seconds (\S+)$/m.exec(metrics);
  t.is(Number(line?.[1]), notAfter);
});
