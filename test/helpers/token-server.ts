/**
 * A token server for the distribution registry's `auth.token`, as the Docker registry token
 * specification describes it: `GET <realm>?service=…&scope=repository:<name>:pull,push`
 * with Basic credentials answers `{token, access_token, expires_in, issued_at}`, the token a
 * JWT the registry verifies (distribution v3.1.2, registry/auth/token/token.go):
 *
 * - signature: the first JOSE header's `x5c` chain must lead to a certificate in the
 *   registry's `rootcertbundle` (any extended key usage); without x5c, a `jwk` or a `kid`
 *   naming a trusted key is looked up instead. Algorithms: RS/PS/ES 256–512, HS*, EdDSA.
 *   Here: RS256, x5c = [the signer's certificate], issued by a CA of its own that is the
 *   registry's rootcertbundle.
 * - claims: `iss` = the configured issuer, `aud` (a string or a list) containing the
 *   service, `exp` and `nbf` checked with 60 s leeway (so a token lives a minute past its
 *   `exp`), `access: [{type, name, actions}]` must cover every access the request needs
 *   ("*" is every action). `sub` becomes the user; `iat` and `jti` are not checked.
 *
 * Also the OAuth2 form (`POST`, grant_type=password or refresh_token), which clients use
 * when they hold an identity token. Every request is recorded, so tests can count them.
 */
import { createPrivateKey, randomBytes, X509Certificate } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { SignJWT } from 'jose';
import { type CertificatePair, createCa, issueCertificate } from '../../src/tls/certs.ts';
import type { Teardown } from './teardown.ts';

export interface TokenServerOptions {
  /** The registry's `auth.token.service`: the audience. */
  readonly service: string;
  /** Serving certificate for 127.0.0.1 (the registry's test CA signed it). */
  readonly tls: CertificatePair;
  /** username → password; every user may do every action unless `allow` says otherwise. */
  readonly users: Readonly<Record<string, string>>;
  /** Which of the requested actions a user (undefined: anonymous) gets on a resource. */
  readonly allow?: (user: string | undefined, type: string, name: string) => readonly string[];
  /** Seconds; the answer's `expires_in` and the token's `exp` (default 300). */
  readonly expiresIn?: number;
  /** Issue pull-only tokens to requests without credentials (default: 401 them). */
  readonly anonymous?: boolean;
}

export interface TokenRequest {
  readonly method: string;
  /** The authenticated user; undefined for anonymous requests and refused ones. */
  readonly user: string | undefined;
  readonly scopes: readonly string[];
  readonly status: number;
  /** What the token grants (empty when refused). */
  readonly access: readonly Access[];
}

export interface Access {
  readonly type: string;
  readonly name: string;
  readonly actions: readonly string[];
}

export interface TokenServer {
  /**
   * `https://localhost:PORT/token`, the registry's `auth.token.realm` (the server listens on
   * 127.0.0.1). Not an IP literal: go-containerregistry ≥ 0.22 (crane) refuses a realm on a
   * loopback or private IP unless it is the registry's own host:port (SSRF hardening,
   * google/go-containerregistry#2258), and a name is out of that check's scope.
   */
  readonly realm: string;
  readonly service: string;
  readonly issuer: string;
  /** PEM: the CA that issued the signing certificate (the registry's rootcertbundle). */
  readonly rootCertBundle: string;
  readonly requests: readonly TokenRequest[];
  /** When set, every request is answered with this status and no token. */
  failWith: number | undefined;
}

export const ISSUER = 'imagegate-test-token-server';

/** "repository:team/app:pull,push" → access; the name may itself hold colons (ports). */
export function parseScope(scope: string): Access | undefined {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first <= 0 || last === first) return undefined;
  const actions = scope
    .slice(last + 1)
    .split(',')
    .filter(Boolean);
  return { type: scope.slice(0, first), name: scope.slice(first + 1, last), actions };
}

export async function startTokenServer(
  t: Teardown,
  options: TokenServerOptions,
): Promise<TokenServer> {
  const signingCa = createCa('imagegate test token CA');
  const signer = issueCertificate(signingCa, {
    commonName: 'imagegate test token signer',
    usage: 'client',
  });
  const key = createPrivateKey(signer.key);
  const x5c = [new X509Certificate(signer.cert).raw.toString('base64')];
  const expiresIn = options.expiresIn ?? 300;
  const allow = options.allow ?? ((user) => (user === undefined ? ['pull'] : ['*']));
  const refreshTokens = new Map<string, string>();
  const requests: TokenRequest[] = [];

  // Credentials → the user, undefined for anonymous, or null when refused.
  const authenticate = (username: string | undefined, password: string | undefined) => {
    if (username === undefined) return options.anonymous === true ? undefined : null;
    return options.users[username] === password ? username : null;
  };

  const grant = (user: string | undefined, scopes: readonly string[]): Access[] =>
    scopes.flatMap((scope) => {
      const wanted = parseScope(scope);
      if (wanted === undefined) return [];
      const allowed = allow(user, wanted.type, wanted.name);
      const actions = wanted.actions.filter((a) => allowed.includes('*') || allowed.includes(a));
      return actions.length === 0 ? [] : [{ ...wanted, actions }];
    });

  const sign = (user: string | undefined, access: readonly Access[]) => {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ access })
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', x5c })
      .setIssuer(ISSUER)
      .setSubject(user ?? '')
      .setAudience(options.service)
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + expiresIn)
      .setJti(randomBytes(8).toString('hex'))
      .sign(key);
  };

  const server: Server = createServer(
    { cert: options.tls.cert, key: options.tls.key },
    (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        void (async () => {
          const url = new URL(req.url ?? '/', 'https://127.0.0.1');
          const form = new URLSearchParams(
            req.method === 'POST' ? Buffer.concat(chunks).toString() : '',
          );
          const params = req.method === 'POST' ? form : url.searchParams;
          // GET: scopes as repeated parameters (some clients join them with spaces); POST: one, space-separated.
          const scopes = params
            .getAll('scope')
            .flatMap((s) => s.split(' '))
            .filter(Boolean);
          const answer = (status: number, body: unknown, user?: string, access: Access[] = []) => {
            requests.push({ method: req.method ?? '', user, scopes, status, access });
            res.writeHead(status, {
              'Content-Type': 'application/json',
              ...(status === 401
                ? { 'WWW-Authenticate': 'Basic realm="imagegate-test-token"' }
                : {}),
            });
            res.end(JSON.stringify(body));
          };
          const error = (status: number, code: string, message: string) =>
            answer(status, { errors: [{ code, message }] });
          if (tokens.failWith !== undefined)
            return error(tokens.failWith, 'UNAVAILABLE', 'told to fail');
          if (url.pathname !== '/token') return error(404, 'NOT_FOUND', url.pathname);
          if (params.get('service') !== options.service)
            return error(400, 'DENIED', 'unknown service');
          let user: string | undefined | null;
          if (req.method === 'POST') {
            const grantType = form.get('grant_type');
            if (grantType === 'refresh_token')
              user = refreshTokens.get(form.get('refresh_token') ?? '') ?? null;
            else if (grantType === 'password')
              user = authenticate(form.get('username') ?? '', form.get('password') ?? '');
            else return error(400, 'UNSUPPORTED', `grant_type ${grantType}`);
          } else if (req.method === 'GET') {
            const basic = /^Basic (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
            const [name, ...rest] =
              basic === undefined ? [] : Buffer.from(basic, 'base64').toString().split(':');
            user = authenticate(name, rest.join(':'));
          } else return error(405, 'UNSUPPORTED', req.method ?? '');
          if (user === null) return error(401, 'UNAUTHORIZED', 'bad credentials');
          const access = grant(user, scopes);
          const token = await sign(user, access);
          const refresh = req.method === 'POST' && form.get('access_type') === 'offline';
          const refreshToken = refresh ? randomBytes(16).toString('hex') : undefined;
          if (refreshToken !== undefined && user !== undefined)
            refreshTokens.set(refreshToken, user);
          return answer(
            200,
            {
              token,
              access_token: token,
              expires_in: expiresIn,
              issued_at: new Date().toISOString(),
              ...(refreshToken === undefined ? {} : { refresh_token: refreshToken }),
            },
            user,
            access,
          );
        })().catch((e: unknown) => {
          res.writeHead(500);
          res.end(String(e));
        });
      });
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections(); // clients keep connections alive
      }),
  );
  const { port } = server.address() as AddressInfo;
  const tokens: TokenServer = {
    realm: `https://localhost:${port}/token`,
    service: options.service,
    issuer: ISSUER,
    rootCertBundle: signingCa.cert,
    requests,
    failWith: undefined,
  };
  return tokens;
}
