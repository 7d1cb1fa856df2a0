/**
 * HTTP/1.1 over a bare TLS socket, for what node:https will not send: lying or missing
 * Content-Length, headers or bodies trickled byte by byte, connections left half-open.
 */
import { connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTls, type TLSSocket } from 'node:tls';

export interface RawTarget {
  readonly port: number;
  readonly ca: string;
}

/** Resolves once the TLS handshake is done. */
export function openTls(target: RawTarget): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = connectTls({
      host: '127.0.0.1',
      port: target.port,
      ca: target.ca,
      servername: 'localhost',
    });
    socket.once('secureConnect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** A TCP connection to the TLS port that never starts the handshake. */
export function openTcp(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connectTcp({ host: '127.0.0.1', port });
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** What came back on a raw socket, and when the server hung up (if it did). */
export class Received {
  text = '';
  closedAt: number | undefined;
  readonly openedAt = performance.now();

  constructor(socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.text += chunk;
    });
    // Resets after an early answer are expected; what matters is what arrived.
    socket.on('error', () => {});
    socket.once('close', () => {
      this.closedAt = performance.now();
    });
  }

  /** Status of the first response, if one arrived. */
  get status(): number | undefined {
    const match = /^HTTP\/1\.1 (\d{3})/.exec(this.text);
    return match?.[1] === undefined ? undefined : Number(match[1]);
  }

  /** Body of the first response (after the blank line), undecoded. */
  get body(): string {
    const start = this.text.indexOf('\r\n\r\n');
    return start === -1 ? '' : this.text.slice(start + 4);
  }

  /** Milliseconds from opening to the server closing; undefined while open. */
  get closedAfterMs(): number | undefined {
    return this.closedAt === undefined ? undefined : this.closedAt - this.openedAt;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Sends raw bytes and collects what comes back until the server closes or `waitMs` pass. */
export async function exchange(
  target: RawTarget,
  bytes: string | Buffer,
  waitMs = 3000,
): Promise<Received> {
  const socket = await openTls(target);
  const received = new Received(socket);
  socket.write(bytes);
  const deadline = performance.now() + waitMs;
  while (received.closedAt === undefined && performance.now() < deadline) {
    if (received.status !== undefined && /\r\n\r\n/.test(received.text)) {
      // A complete head: give the body a moment, then stop waiting for a close.
      await sleep(100);
      break;
    }
    await sleep(10);
  }
  socket.destroy();
  return received;
}

/** A request head for the gateway: Host and Content-Type set, Connection: close. */
export function head(path: string, headers: Readonly<Record<string, string>>): string {
  const lines = [
    `POST ${path} HTTP/1.1`,
    'Host: localhost',
    'Connection: close',
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
  ];
  return `${lines.join('\r\n')}\r\n\r\n`;
}

/**
 * Writes `bytes` one at a time, `everyMs` apart, until they run out, the server closes, or
 * `stop()` is called.
 */
export class Trickle {
  readonly received: Received;
  readonly done: Promise<void>;
  #stopped = false;

  constructor(
    readonly socket: Socket,
    bytes: Buffer,
    everyMs: number,
  ) {
    this.received = new Received(socket);
    this.done = this.#pump(bytes, everyMs);
  }

  async #pump(bytes: Buffer, everyMs: number): Promise<void> {
    for (const byte of bytes) {
      if (this.#stopped || !this.open || this.socket.destroyed) return;
      this.socket.write(Buffer.from([byte]));
      await sleep(everyMs);
    }
  }

  get open(): boolean {
    return this.received.closedAt === undefined;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.done;
    this.socket.destroy();
  }
}
