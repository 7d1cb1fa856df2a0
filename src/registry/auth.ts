/**
 * The distribution API's authentication: a 401 names its scheme in WWW-Authenticate.
 * Basic gets the credentials; Bearer sends us to a token realm for a token scoped to one
 * repository, kept until it expires (a margin early) so that reviews reuse it.
 */
import { isRecord } from '../shared/json.ts';
import type { Credential } from './credentials.ts';
import { RegistryError } from './registry-error.ts';

export interface Challenge {
  readonly scheme: 'basic' | 'bearer';
  readonly params: Readonly<Record<string, string>>;
}

/** `Bearer realm="https://…",service="…",scope="…"` → its scheme and parameters. */
export function parseChallenge(header: string | undefined): Challenge | undefined {
  if (header === undefined) return undefined;
  const match = /^\s*(basic|bearer)\b\s*(.*)$/i.exec(header);
  if (match === null) return undefined;
  const params: Record<string, string> = {};
  for (const param of (match[2] ?? '').matchAll(
    /([a-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/gi,
  )) {
    const key = param[1]?.toLowerCase();
    if (key !== undefined) params[key] = (param[2] ?? param[3] ?? '').replace(/\\(.)/g, '$1');
  }
  return { scheme: match[1]?.toLowerCase() === 'basic' ? 'basic' : 'bearer', params };
}

export const basic = (credential: Credential) =>
  `Basic ${Buffer.from(`${credential.username}:${credential.password}`).toString('base64')}`;

export interface Token {
  readonly value: string;
  /** Epoch ms after which it is not used. */
  readonly expiresAt: number;
}

/**
 * A token response (`{token}` or `{access_token}`, `expires_in` seconds, default 60 as
 * the token specification says), kept until 10 s before it expires.
 */
export function parseToken(body: Buffer, now: number): Token {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8')) as unknown;
  } catch {
    throw new RegistryError('the token service answered something that is not JSON');
  }
  const value = isRecord(json) ? (json.token ?? json.access_token) : undefined;
  if (typeof value !== 'string' || value === '')
    throw new RegistryError('the token service sent no token');
  const seconds = isRecord(json) && typeof json.expires_in === 'number' ? json.expires_in : 60;
  return { value, expiresAt: now + Math.max(0, seconds - 10) * 1000 };
}
