/**
 * `imagegate serve` as a real subprocess (src/cli.ts through tsx) on loopback ports the OS
 * picks, its JSON log kept in a file and in memory. A detached watchdog ends it when the
 * test process is gone, so a crashed run leaves no gateway behind.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { isRecord, type JsonObject } from '../../../src/shared/json.ts';
import { ROOT } from '../../helpers/cli.ts';

export interface GatewayProcess {
  readonly pid: number;
  readonly port: number;
  readonly logFile: string;
  /** Parsed log lines with this `msg`. */
  messages(msg: string): JsonObject[];
  running(): boolean;
  /** SIGTERM, as kubelet stops it; resolves with the exit code. */
  stop(): Promise<number | null>;
}

const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 15_000;

export function exited(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

export function ownerWatchdog(gatewayPid: number): ChildProcess {
  const watchdog = spawn(
    'bash',
    [
      '-c',
      'while kill -0 "$1" 2>/dev/null; do sleep 1; done; kill -TERM "$2" 2>/dev/null',
      'imagegate-e2e-gateway-watchdog',
      String(process.pid),
      String(gatewayPid),
    ],
    { detached: true, stdio: 'ignore' },
  );
  watchdog.unref();
  return watchdog;
}

/**
 * Parses a child's JSON log (one object per line) into `lines` as it arrives; lines that
 * are not JSON objects are skipped. `tee` sees every chunk too.
 */
export function collectJsonLines(
  stream: Readable | null,
  lines: JsonObject[],
  tee?: (chunk: string) => void,
): void {
  let pending = '';
  stream?.setEncoding('utf8').on('data', (chunk: string) => {
    tee?.(chunk);
    pending += chunk;
    const complete = pending.split('\n');
    pending = complete.pop() ?? '';
    for (const line of complete) {
      try {
        const parsed: unknown = JSON.parse(line);
        if (isRecord(parsed)) lines.push(parsed);
      } catch {
        // not a log line
      }
    }
  });
}

/** `imagegate COMMAND` through tsx, its JSON log parsed into `lines` and kept in `logFile`. */
export function spawnImagegate(
  command: string,
  args: readonly string[],
  logFile: string,
): { child: ChildProcess; watchdog: ChildProcess; lines: JsonObject[]; log: WriteStream } {
  const log = createWriteStream(logFile);
  const child = spawn(
    process.execPath,
    ['--import=tsx/esm', join(ROOT, 'src', 'cli.ts'), command, '--host=127.0.0.1', ...args],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  if (child.pid === undefined) throw new Error(`imagegate ${command} did not start`);
  const watchdog = ownerWatchdog(child.pid);
  const lines: JsonObject[] = [];
  collectJsonLines(child.stdout, lines, (chunk) => log.write(chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => log.write(chunk));
  return { child, watchdog, lines, log };
}

export async function startGatewayProcess(
  args: readonly string[],
  logDir: string,
): Promise<GatewayProcess> {
  const logFile = join(logDir, 'gateway.log');
  const { child, watchdog, lines, log } = spawnImagegate(
    'serve',
    ['--port=0', '--health-port=0', ...args],
    logFile,
  );
  const pid = child.pid ?? 0;

  const messages = (msg: string) => lines.filter((line) => line.msg === msg);
  const stop = async (): Promise<number | null> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      if (!(await exited(child, STOP_TIMEOUT_MS))) {
        child.kill('SIGKILL');
        await exited(child, STOP_TIMEOUT_MS);
      }
    }
    if (watchdog.pid !== undefined && watchdog.exitCode === null) watchdog.kill('SIGTERM');
    await new Promise<void>((resolve) => log.end(resolve));
    return child.exitCode;
  };

  const deadline = Date.now() + START_TIMEOUT_MS;
  while (messages('imagegate serving').length === 0) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`imagegate serve did not come up; see ${logFile}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const port = messages('imagegate serving')[0]?.port;
  if (typeof port !== 'number') throw new Error(`imagegate serve logged no port; see ${logFile}`);
  return {
    pid,
    port,
    logFile,
    messages,
    running: () => child.exitCode === null && child.signalCode === null,
    stop,
  };
}
