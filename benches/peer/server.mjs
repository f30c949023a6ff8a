// The peer of the side-by-side bench (benches/peer.rs): node-oidc-provider
// configured as close to tessera's defaults as it allows, on 127.0.0.1.
//
//   PORT=0 node server.mjs   ->   "peer listening on http://127.0.0.1:PORT"
//
// Configuration, and why:
// - Storage: the provider's own in-memory adapter (MemoryAdapter, no
//   persistence), the counterpart of tessera's `store.kind = "memory"`,
//   on an LRU of 100 000 entries instead of the 1000 its default factory
//   gives it: at 1000, a refresh chain that waits its turn while a few
//   hundred others rotate finds its live token evicted ("refresh token not
//   found"; it happened in roughly one 5 s run in four). An entry now
//   lives at least 100 000 writes (~40 000 rotations); the store holds at
//   most 200 000. Both are imported from the package's lib/ (9.13.3 has no
//   exports map; the exact version is pinned). A grant's index of its
//   tokens grows with every rotation, so the bench mints fresh chains for
//   each run.
// - Keys: one ES256 (P-256) signing key generated at start, the only key in
//   the JWKS, like tessera's default key directory.
// - Client `bench`: confidential (client_secret_basic), grant types
//   client_credentials and refresh_token, scope `api:read`, no redirect URIs
//   or response types (no login flow is served).
// - Access tokens: RFC 9068 JWTs (`typ: at+jwt`, ES256) for the resource
//   server `https://api.bench.test` through features.resourceIndicators: a
//   request naming no resource gets that one (defaultResource), and
//   getResourceServerInfo answers `accessTokenFormat: 'jwt'`,
//   `jwt.sign.alg: 'ES256'`. Lifetimes as tessera's defaults: access 10 min,
//   refresh 14 days (idle), grant 90 days.
// - Refresh: `rotateRefreshToken: true`; a consumed token presented again
//   is refused and revokes its whole grant (tessera does the same after its
//   10 s retry grace; the provider has no grace).
// - Introspection: oidc-provider refuses to introspect any JWT-shaped token
//   (lib/shared/reject_structured_tokens.js answers
//   `unsupported_token_type`, whatever the format configuration), so a JWT
//   access token can never be introspected `active: true`. The only
//   introspectable access tokens are opaque ones, looked up in the adapter.
//   The second resource server `https://opaque.bench.test` therefore issues
//   `accessTokenFormat: 'opaque'` tokens; the introspection workload asks
//   for a client_credentials token with `resource=https://opaque.bench.test`
//   and introspects that. tessera introspects its JWT (signature check and
//   revocation list); the peer does a map lookup instead.
// - Setup route `POST /bench/refresh-tokens?n=N` (N <= 1024; a koa
//   middleware in front of the provider, which like the whole server
//   listens on 127.0.0.1 only): a refresh token needs an interactive login
//   here, so this mints N grants and refresh tokens for subjects
//   `user-0..N-1` through the provider's own Grant and RefreshToken models
//   (as an authorization_code exchange would) and answers them as a JSON
//   array; the load then rotates them through the real /token endpoint.
// - Production-like: NODE_ENV=production, no devInteractions, no request
//   logging; the provider's advisory "you SHOULD change" notices are avoided
//   by configuring the functions they concern. On Node 20 one start-up
//   warning remains on stderr: the provider supports Node 22 LTS and later
//   (it runs on 20).

import { generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';
import Provider from 'oidc-provider';
import MemoryAdapter from 'oidc-provider/lib/adapters/memory_adapter.js';
import LRU from 'oidc-provider/lib/helpers/lru.js';

process.env.NODE_ENV = 'production';

const CLIENT_ID = 'bench';
const CLIENT_SECRET = process.env.PEER_CLIENT_SECRET ?? 'bench-secret-0123456789abcdefghijklmnopqrstuvwxyz';
const JWT_RESOURCE = 'https://api.bench.test';
const OPAQUE_RESOURCE = 'https://opaque.bench.test';
const SCOPE = 'api:read';
const MAX_MINTED = 1024;
// The provider's default, which its own adapter factory passes on too.
const CLOCK_TOLERANCE = 15;
const store = new LRU({ maxSize: 100_000 });

const port = Number(process.env.PORT ?? 0);
const server = createServer();
await new Promise((resolve) => { server.listen(port, '127.0.0.1', resolve); });
const issuer = `http://127.0.0.1:${server.address().port}`;

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'bench-es256', alg: 'ES256', use: 'sig' };

const resourceServers = {
  [JWT_RESOURCE]: { scope: SCOPE, audience: JWT_RESOURCE, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } } },
  [OPAQUE_RESOURCE]: { scope: SCOPE, audience: OPAQUE_RESOURCE, accessTokenFormat: 'opaque' },
};

const provider = new Provider(issuer, {
  clients: [{
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['client_credentials', 'refresh_token'],
    response_types: [],
    redirect_uris: [],
    scope: SCOPE,
  }],
  adapter: (model) => new MemoryAdapter(model, store, CLOCK_TOLERANCE),
  clockTolerance: CLOCK_TOLERANCE,
  clientDefaults: { id_token_signed_response_alg: 'ES256' },
  jwks: { keys: [signingKey] },
  // offline_access is what enables the refresh_token grant type.
  scopes: ['openid', 'offline_access', SCOPE],
  rotateRefreshToken: true,
  ttl: {
    AccessToken: 600,
    ClientCredentials: 600,
    RefreshToken: 14 * 24 * 3600,
    Grant: 90 * 24 * 3600,
  },
  findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: {
      enabled: true,
      // Confidential clients only (the client authenticated already).
      allowedPolicy: async (_ctx, client) => client.clientAuthMethod !== 'none',
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (_ctx, _client, oneOf) => oneOf ?? JWT_RESOURCE,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resource) => {
        const info = resourceServers[resource];
        if (!info) throw new Provider.errors.InvalidTarget();
        return info;
      },
    },
  },
});

// Mints `n` grants, each with one refresh token, for the refresh workload.
async function mintRefreshTokens(n) {
  const client = await provider.Client.find(CLIENT_ID);
  const tokens = [];
  for (let i = 0; i < n; i += 1) {
    const grant = new provider.Grant({ accountId: `user-${i}`, clientId: CLIENT_ID });
    grant.addResourceScope(JWT_RESOURCE, SCOPE);
    const grantId = await grant.save();
    const refreshToken = new provider.RefreshToken({
      accountId: `user-${i}`,
      client,
      grantId,
      gty: 'authorization_code',
      expiresWithSession: false,
      resource: JWT_RESOURCE,
      scope: SCOPE,
      authTime: Math.floor(Date.now() / 1000),
    });
    tokens.push(await refreshToken.save());
  }
  return tokens;
}

provider.use(async (ctx, next) => {
  if (ctx.path !== '/bench/refresh-tokens') return next();
  if (ctx.method !== 'POST') {
    ctx.status = 405;
    return undefined;
  }
  const n = Number(ctx.query.n ?? 64);
  if (!Number.isInteger(n) || n < 1 || n > MAX_MINTED) {
    ctx.status = 400;
    ctx.body = { error: `n must be an integer from 1 to ${MAX_MINTED}` };
    return undefined;
  }
  ctx.body = await mintRefreshTokens(n);
  return undefined;
});

server.on('request', provider.callback());
console.log(`peer listening on ${issuer}`);
