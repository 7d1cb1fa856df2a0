/**
 * Debian's nginx (test/e2e/build-debian-tools.sh), run by a test as a bundle server: static
 * files with nginx's own ETags and If-None-Match → 304, over TLS from a throwaway CA, on
 * 127.0.0.1 with a free port; `/bundles/` open, `/secure/` behind a bearer token, `/mtls/`
 * behind a client certificate. `stop()` and `start()` make an outage on the same port and
 * files. Its access log (request, status, If-None-Match) is what tests count.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, utimes, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { dirname, join } from 'node:path';
import { createCa, issueCertificate } from '../../src/tls/certs.ts';
import { ROOT } from './cli.ts';
import { freePort, poll, type Teardown, tempDir } from './teardown.ts';

const SCRIPT = join(ROOT, 'test', 'e2e', 'build-debian-tools.sh');

export interface DebianTools {
  readonly nginx: string;
  readonly promtool: string;
}

let found: Promise<DebianTools | string> | undefined;

/** The tools, or why they can't be used (not fetched: `make debian-tools`). */
export function findDebianTools(): Promise<DebianTools | string> {
  found ??= new Promise((resolve) => {
    execFile('bash', [SCRIPT, '--check'], (error, stdout, stderr) => {
      if (error !== null) return resolve(stderr.trim() || error.message);
      const value = (key: string) => new RegExp(`^${key}=(.*)$`, 'm').exec(stdout)?.[1] ?? '';
      resolve({ nginx: value('NGINX'), promtool: value('PROMTOOL') });
    });
  });
  return found;
}

export interface TestNginx {
  /** `https://127.0.0.1:PORT` */
  readonly origin: string;
  readonly ca: string;
  readonly caFile: string;
  /** The bearer token `/secure/` wants, in a file. */
  readonly token: string;
  readonly tokenFile: string;
  /** A client certificate and key `/mtls/` accepts. */
  readonly clientCert: string;
  readonly clientKey: string;
  /** Writes a file under the served root (atomically, with its own mtime so its ETag is new). */
  publish(path: string, bytes: Buffer): Promise<void>;
  /** Access-log lines so far: `<method> <uri> <status> <if-none-match>`. */
  accessLog(): Promise<string[]>;
  stop(): Promise<void>;
  start(): Promise<void>;
}

const WATCHDOG =
  'exec 3<&0; "$@" & child=$!; { read -r _ <&3; kill "$child"; } >/dev/null 2>&1 & wait "$child"';

let mtimes = Math.floor(Date.now() / 1000);

export async function startNginx(t: Teardown): Promise<TestNginx> {
  const tools = await findDebianTools();
  if (typeof tools === 'string') throw new Error(tools);
  const dir = await tempDir(t, 'imagegate-nginx-');
  const port = await freePort();
  const ca = createCa('imagegate test nginx CA');
  const serving = issueCertificate(ca, {
    commonName: '127.0.0.1',
    usage: 'server',
    altNames: ['127.0.0.1'],
  });
  const client = issueCertificate(ca, { commonName: 'imagegate', usage: 'client' });
  const file = (name: string) => join(dir, name);
  const token = randomBytes(16).toString('hex');
  await writeFile(file('ca.crt'), ca.cert);
  await writeFile(file('tls.crt'), serving.cert);
  await writeFile(file('tls.key'), serving.key, { mode: 0o600 });
  await writeFile(file('client.crt'), client.cert);
  await writeFile(file('client.key'), client.key, { mode: 0o600 });
  await writeFile(file('token'), `${token}\n`);
  await mkdir(file('www'), { recursive: true });
  await mkdir(file('temp'), { recursive: true });
  const temp = (name: string) => `${name}_temp_path ${file(`temp/${name}`)};`;
  // Runs as root in the test's own directory: `user root` keeps the worker able to read it.
  await writeFile(
    file('nginx.conf'),
    `user root;
daemon off;
worker_processes 1;
pid ${file('nginx.pid')};
error_log stderr notice;
events { worker_connections 64; }
http {
  log_format bundles '$request_method $request_uri $status "$http_if_none_match"';
  access_log ${file('access.log')} bundles;
  ${['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(temp).join('\n  ')}
  types { application/gzip gz; }
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate ${file('tls.crt')};
    ssl_certificate_key ${file('tls.key')};
    ssl_client_certificate ${file('ca.crt')};
    ssl_verify_client optional;
    root ${file('www')};
    location /secure/ {
      if ($http_authorization != "Bearer ${token}") { return 401; }
    }
    location /mtls/ {
      if ($ssl_client_verify != SUCCESS) { return 403; }
    }
  }
}
`,
  );
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let output = '';
  const stop = async () => {
    const running = child;
    if (running === undefined) return;
    child = undefined;
    running.stdin?.end();
    await exited;
  };
  const start = async () => {
    if (child !== undefined) return;
    const command = [tools.nginx, '-p', dir, '-e', 'stderr', '-c', file('nginx.conf')];
    const running = spawn('bash', ['-c', WATCHDOG, 'nginx', ...command], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    child = running;
    let gone = false;
    exited = new Promise((resolve) => running.once('exit', () => resolve()));
    void exited.then(() => {
      gone = true;
    });
    running.stderr?.setEncoding('utf8').on('data', (d: string) => {
      output += d;
    });
    await poll(async () => {
      if (gone) throw new Error(`nginx exited before serving:\n${output}`);
      return (await status(port, ca.cert)) ?? undefined;
    }, `nginx on 127.0.0.1:${port}`);
  };
  t.teardown(stop);
  await start();
  return {
    origin: `https://127.0.0.1:${port}`,
    ca: ca.cert,
    caFile: file('ca.crt'),
    token,
    tokenFile: file('token'),
    clientCert: file('client.crt'),
    clientKey: file('client.key'),
    async publish(path, bytes) {
      const target = join(file('www'), path);
      await mkdir(dirname(target), { recursive: true });
      await writeFile(`${target}.tmp`, bytes);
      // nginx's ETag is mtime and size: each publication gets a later mtime of its own.
      mtimes += 10;
      await utimes(`${target}.tmp`, mtimes, mtimes);
      await rename(`${target}.tmp`, target);
    },
    async accessLog() {
      const text = await readFile(file('access.log'), 'utf8').catch(() => '');
      return text.split('\n').filter((line) => line !== '');
    },
    stop,
    start,
  };
}

function status(port: number, ca: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/', ca, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('error', () => resolve(undefined));
    req.end();
  });
}
