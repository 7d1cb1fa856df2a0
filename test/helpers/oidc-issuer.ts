/**
 * A tiny OpenID Connect issuer for the Sigstore bed. Fulcio checks an identity token against
 * its issuer's discovery document and JWKS (go-oidc: `iss` must equal the URL the discovery
 * was fetched under, `aud` must hold the configured client id, `sigstore`), so that is all it
 * serves, on 127.0.0.1 over plain HTTP:
 *
 * - `GET <issuer>/.well-known/openid-configuration`, `GET <issuer>/jwks` (one ES256 key);
 * - `POST <issuer>/token` with a JSON object of claims (at least `sub`) → `{id_token,
 *   token_type, expires_in}`: the token endpoint for tools outside this process;
 * - `mint()` does the same in-process.
 *
 * One server answers as several issuers, one per path (`/github-actions`, `/email`), because
 * Fulcio treats each issuer URL as one kind of identity: see sigstore-fulcio-config.ts.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { isRecord, type JsonObject } from '../../src/shared/json.ts';
import type { Teardown } from './teardown.ts';

export const ISSUER_PATHS = ['github-actions', 'email'] as const;
export type IssuerPath = (typeof ISSUER_PATHS)[number];

export interface OidcIssuer {
  /** `http://127.0.0.1:PORT/<path>`: the `iss` of its tokens, Fulcio's issuer URL. */
  url(path: IssuerPath): string;
  /** An ES256 ID token from that issuer; `aud` defaults to `sigstore`, lifetime 10 min. */
  mint(path: IssuerPath, claims: Claims, options?: { expiresInSeconds?: number }): Promise<string>;
}

export type Claims = { readonly sub: string } & JsonObject;

export async function startOidcIssuer(t: Teardown): Promise<OidcIssuer> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'imagegate-test', alg: 'ES256', use: 'sig' };
  let origin = '';
  const url = (path: IssuerPath) => `${origin}/${path}`;
  const mint: OidcIssuer['mint'] = (path, claims, options = {}) => {
    const { aud = 'sigstore', ...rest } = claims;
    return new SignJWT(rest)
      .setProtectedHeader({ alg: 'ES256', kid: jwk.kid, typ: 'JWT' })
      .setIssuer(url(path))
      .setAudience(typeof aud === 'string' ? aud : 'sigstore')
      .setIssuedAt()
      .setNotBefore('0s')
      .setExpirationTime(`${options.expiresInSeconds ?? 600}s`)
      .sign(privateKey);
  };

  const server = createServer((req, res) => {
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
    };
    const [, first = '', ...rest] = (req.url ?? '').split('?')[0]?.split('/') ?? [];
    const path = ISSUER_PATHS.find((p) => p === first);
    const route = `${req.method} /${rest.join('/')}`;
    if (path === undefined) return reply(404, { error: 'no such issuer' });
    if (route === 'GET /.well-known/openid-configuration') {
      return reply(200, {
        issuer: url(path),
        jwks_uri: `${url(path)}/jwks`,
        token_endpoint: `${url(path)}/token`,
        response_types_supported: ['id_token'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: ['ES256'],
      });
    }
    if (route === 'GET /jwks') return reply(200, { keys: [jwk] });
    if (route !== 'POST /token') return reply(404, { error: `no route ${route}` });
    void readJson(req).then(
      async (claims) => {
        if (!isRecord(claims) || typeof claims.sub !== 'string') {
          return reply(400, { error: 'the body must be a JSON object of claims with a "sub"' });
        }
        const token = await mint(path, { ...claims, sub: claims.sub });
        reply(200, { id_token: token, token_type: 'Bearer', expires_in: 600 });
      },
      (error: unknown) => reply(400, { error: String(error) }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  t.teardown(async () => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
  });
  return { url, mint };
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  let body = '';
  for await (const chunk of req.setEncoding('utf8')) body += String(chunk);
  return JSON.parse(body);
}
