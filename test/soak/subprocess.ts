/**
 * The gateway under soak as a child process (`imagegate serve` through tsx, as `make run`
 * would start it from dist/): its ports from the "imagegate serving" log line, its log
 * lines counted by level and message, and how it exited.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { isRecord } from '../../src/shared/json.ts';

export interface Gateway {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly port: number;
  readonly healthPort: number;
  readonly logs: Map<string, number>;
  readonly errors: string[];
  readonly exited: Promise<string>;
}

export async function startGateway(root: string, args: string[]): Promise<Gateway> {
  const child = spawn(
    process.execPath,
    ['--import=tsx/esm', join(root, 'src', 'cli.ts'), 'serve', ...args],
    {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const pid = child.pid;
  if (pid === undefined) throw new Error('the gateway did not start');
  process.once('exit', () => child.kill('SIGKILL'));
  const logs = new Map<string, number>();
  const errors: string[] = [];
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  const exited = new Promise<string>((resolve) =>
    child.once('exit', (code, signal) =>
      resolve(signal === null ? `exit code ${code}` : `signal ${signal}`),
    ),
  );
  const stdout = child.stdout;
  if (stdout === null) throw new Error('no pipe from the gateway');
  const ports = new Promise<[number, number]>((resolve, reject) => {
    const lines = createInterface({ input: stdout });
    lines.on('line', (line) => {
      let entry: unknown;
      try {
        entry = JSON.parse(line);
      } catch {
        entry = { level: 0, msg: `not JSON: ${line.slice(0, 100)}` };
      }
      const fields = isRecord(entry) ? entry : {};
      const msg = String(fields.msg);
      const key = `${String(fields.level)} ${msg}`;
      logs.set(key, (logs.get(key) ?? 0) + 1);
      if (
        typeof fields.level === 'number' &&
        fields.level >= 50 &&
        msg !== 'decision' &&
        errors.length < 20
      ) {
        errors.push(`${msg}: ${String(fields.error)}`);
      }
      if (msg === 'imagegate serving') resolve([Number(fields.port), Number(fields.healthPort)]);
    });
    void exited.then((how) => reject(new Error(`the gateway stopped (${how}): ${stderr}`)));
    setTimeout(
      () => reject(new Error(`the gateway did not listen in 60 s: ${stderr}`)),
      60_000,
    ).unref();
  });
  const [port, healthPort] = await ports;
  return { child, pid, port, healthPort, logs, errors, exited };
}
