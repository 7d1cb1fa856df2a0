/**
 * A long-running server process owned by a test: started in its own process group behind a
 * watchdog that kills it when our stdin pipe closes — the test's teardown, or the test
 * process dying — so no server outlives its test (the same shape as registry.ts's). Ready
 * when `ready()` says so; an exit before that fails with everything the process printed.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { request } from 'node:http';
import { poll, type Teardown } from './teardown.ts';

export interface Service {
  /** What the process printed on stdout and stderr so far. */
  logs(): string;
  stop(): Promise<void>;
}

export interface ServiceOptions {
  /** For messages: "rekor", "fulcio". */
  readonly name: string;
  readonly command: readonly string[];
  readonly env: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** Resolves true once the server answers. */
  readonly ready: () => Promise<boolean>;
}

// Runs "$@" until stdin closes, then kills it (no orphans).
const WATCHDOG =
  'exec 3<&0; "$@" & child=$!; { read -r _ <&3; kill "$child"; } >/dev/null 2>&1 & wait "$child"';

export async function startService(t: Teardown, options: ServiceOptions): Promise<Service> {
  let output = '';
  const child = spawn('bash', ['-c', WATCHDOG, options.name, ...options.command], {
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
    return (await options.ready()) ? true : undefined;
  };
  try {
    await poll(probe, `${options.name} to serve`, { tries: 600, everyMs: 50 });
  } catch (error) {
    await stop();
    const command = options.command.join(' ');
    throw new Error(`${String(error)}\n${command}\n${output}`, { cause: error });
  }
  return { logs: () => output, stop };
}

function killGroup(child: ChildProcess): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
  } catch {
    // already gone
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
