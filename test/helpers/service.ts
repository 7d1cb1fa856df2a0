/**
 * A long-running server process owned by a test: started in its own process group behind a
 * watchdog that kills it when our stdin pipe closes — the test's teardown, or the test
 * process dying — so no server outlives its test (the same shape as registry.ts's). Ready
 * when `ready()` says so; an exit before that fails with everything the process printed.
 *
 * Ports: a server is told its ports on the command line, so they are picked before it binds
 * them, and something else may bind one in between. freePort() picks from the kernel's
 * ephemeral range, where every outgoing connection (cosign makes many) and every other
 * test's freePort() also pick; a bed needs up to seven ports. So these come at random from
 * below that range (20000–32767), checked free, and a server that still loses one ("address
 * already in use" before it was ready) is started again on new ports, up to three times.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { poll, type Teardown } from './teardown.ts';

export interface Service {
  /** The ports it was started with, in the order asked for. */
  readonly ports: readonly number[];
  /** What the process printed on stdout and stderr so far. */
  logs(): string;
  stop(): Promise<void>;
}

export interface ServiceOptions {
  /** For messages: "rekor", "fulcio". */
  readonly name: string;
  /** How many loopback ports the server needs. */
  readonly ports: number;
  readonly command: (ports: readonly number[]) => readonly string[];
  readonly env: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** Resolves true once the server answers. */
  readonly ready: (ports: readonly number[]) => Promise<boolean>;
}

// Runs "$@" until stdin closes, then kills it (no orphans).
const WATCHDOG =
  'exec 3<&0; "$@" & child=$!; { read -r _ <&3; kill "$child"; } >/dev/null 2>&1 & wait "$child"';

const ATTEMPTS = 3;

export async function startService(t: Teardown, options: ServiceOptions): Promise<Service> {
  for (let attempt = 1; ; attempt++) {
    const ports: number[] = [];
    while (ports.length < options.ports) {
      const port = await quietPort();
      if (!ports.includes(port)) ports.push(port);
    }
    try {
      return await startOnce(t, options, ports);
    } catch (error) {
      const lostPort = error instanceof ServiceError && /address already in use/.test(error.output);
      if (!lostPort || attempt === ATTEMPTS) throw error;
    }
  }
}

class ServiceError extends Error {
  constructor(
    message: string,
    readonly output: string,
    options?: ErrorOptions,
  ) {
    super(`${message}\n${output}`, options);
  }
}

async function startOnce(t: Teardown, options: ServiceOptions, ports: readonly number[]) {
  let output = '';
  const command = options.command(ports);
  const child = spawn('bash', ['-c', WATCHDOG, options.name, ...command], {
    env: options.env,
    cwd: options.cwd,
    detached: true, // its own process group, for killGroup
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let gone = false;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => {
    gone = true;
  });
  for (const stream of [child.stdout, child.stderr]) {
    stream?.setEncoding('utf8').on('data', (d: string) => {
      output += d;
    });
  }
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    child.stdin?.end();
    const timer = setTimeout(() => killGroup(child), 10_000);
    await exited;
    clearTimeout(timer);
  };
  t.teardown(stop);
  const probe = async () => {
    if (gone) throw new Error(`${options.name} exited before serving`);
    return (await options.ready(ports)) ? true : undefined;
  };
  try {
    await poll(probe, `${options.name} to serve`, { tries: 600, everyMs: 50 });
  } catch (error) {
    await stop();
    throw new ServiceError(`${String(error)}\n${command.join(' ')}`, output, { cause: error });
  }
  return { ports, logs: () => output, stop };
}

function killGroup(child: ChildProcess): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** A loopback port below the ephemeral range (see above), free right now. */
async function quietPort(): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_768);
    const free = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    });
    if (free) return port;
  }
}

/** GET url over plain HTTP → the status and body, or undefined while nothing listens. */
export function httpGet(url: string): Promise<{ status: number; body: string } | undefined> {
  return new Promise((resolve) => {
    const req = request(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', () => resolve(undefined));
    });
    req.on('error', () => resolve(undefined));
    req.setTimeout(5_000, () => req.destroy());
    req.end();
  });
}
