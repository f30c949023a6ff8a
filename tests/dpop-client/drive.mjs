// A third-party DPoP client against a real tessera: openid-client 6 does
// the code exchange and the refreshes with its own DPoP handle, panva's
// jose checks what comes back and forges the proofs tessera must refuse.
// Nothing here is tessera code.
//
// node drive.mjs <issuer> <login-backend-id> <login-backend-secret> [--nonce]
//
// With --nonce the server requires DPoP nonces: openid-client must pick
// them up from use_dpop_nonce answers by itself. Prints one "ok: ..." line
// per step and exits non-zero on the first failure.

import * as client from 'openid-client';
import * as jose from 'jose';

const [issuer, backendId, backendSecret, ...flags] = process.argv.slice(2);
const nonceRequired = flags.includes('--nonce');
const tokenEndpoint = `${issuer}/oauth2/token`;

function ok(step) {
  console.log(`ok: ${step}`);
}

function check(condition, message, detail) {
  if (!condition) {
    throw new Error(`${message}${detail === undefined ? '' : `: ${JSON.stringify(detail)}`}`);
  }
}

/// The error an openid-client call fails with, or a failure if it succeeds.
async function refused(promise) {
  try {
    const result = await promise;
    throw new Error(`expected a refusal, got ${JSON.stringify(result)}`);
  } catch (error) {
    if (error.message?.startsWith('expected a refusal')) throw error;
    return error;
  }
}

const config = await client.discovery(new URL(issuer), 'web', undefined, client.None(), {
  execute: [client.allowInsecureRequests],
});
const metadata = config.serverMetadata();
check(metadata.dpop_signing_alg_values_supported?.includes('ES256'), 'metadata lists DPoP algorithms', metadata);
ok(`discovered ${metadata.issuer}: dpop_signing_alg_values_supported ${metadata.dpop_signing_alg_values_supported.join(' ')}`);

// The SPA's key, and its thumbprint for the login backend's dpop_jkt.
const keyPair = await client.randomDPoPKeyPair('ES256');
const dpop = client.getDPoPHandle(config, keyPair);
const jkt = await jose.calculateJwkThumbprint(await jose.exportJWK(keyPair.publicKey));

// The login backend authenticates the person and binds the one-time code to
// the page's PKCE challenge and DPoP key.
async function handoffCode(challenge) {
  const created = await fetch(`${issuer}/v1/sessions`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${backendId}:${backendSecret}`).toString('base64')}`,
      'content-type': 'application/json',
    },
    body: JSON.stringify({ sub: 'alice', client_id: 'web', code_challenge: challenge, code_challenge_method: 'S256', dpop_jkt: jkt }),
  });
  const handoff = await created.json();
  check(created.status === 201 && handoff.code, 'POST /v1/sessions answers a code', handoff);
  return handoff.code;
}
const verifier = client.randomPKCECodeVerifier();
const code = await handoffCode(await client.calculatePKCECodeChallenge(verifier));
ok('the login backend got a one-time code bound to the key thumbprint');

// Another key cannot redeem such a code, even with the PKCE verifier.
const stranger = client.getDPoPHandle(config, await client.randomDPoPKeyPair('ES256'));
const otherVerifier = client.randomPKCECodeVerifier();
const otherCode = await handoffCode(await client.calculatePKCECodeChallenge(otherVerifier));
const wrongKey = await refused(
  client.authorizationCodeGrant(config, new URL(`${issuer}/callback?code=${otherCode}`), { pkceCodeVerifier: otherVerifier }, undefined, {
    DPoP: stranger,
  }),
);
check(wrongKey.error === 'invalid_dpop_proof', 'a code bound to one key refuses a proof by another', wrongKey.error ?? wrongKey.message);
ok('a proof by another key cannot redeem a bound code (invalid_dpop_proof)');

const jwks = jose.createRemoteJWKSet(new URL(metadata.jwks_uri));
async function checkAccessToken(tokens, what) {
  check(tokens.token_type === 'dpop', `${what}: token_type DPoP`, tokens.token_type);
  const { payload, protectedHeader } = await jose.jwtVerify(tokens.access_token, jwks, { issuer, typ: 'at+jwt' });
  check(payload.cnf?.jkt === jkt, `${what}: cnf.jkt is the key's thumbprint`, payload.cnf);
  check(protectedHeader.kid && payload.sid, `${what}: a signed session token`, payload);
  return payload;
}

const tokens = await client.authorizationCodeGrant(
  config,
  new URL(`${issuer}/callback?code=${code}`),
  { pkceCodeVerifier: verifier },
  undefined,
  { DPoP: dpop },
);
const first = await checkAccessToken(tokens, 'code exchange');
ok(`code exchanged with openid-client's DPoP proof: token_type DPoP, cnf.jkt ${first.cnf.jkt}`);

const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP: dpop });
const second = await checkAccessToken(refreshed, 'refresh');
check(refreshed.refresh_token !== tokens.refresh_token && second.sid === first.sid, 'rotation within the session', second);
ok('refreshed with a proof by the same key: rotated, still bound');

// The newest refresh token without the key: no proof, then another key's proof.
const noProof = await refused(client.refreshTokenGrant(config, refreshed.refresh_token));
check(noProof.error === 'invalid_dpop_proof', 'a bound refresh token without a proof is refused', noProof.error ?? noProof.message);
const otherKey = await refused(client.refreshTokenGrant(config, refreshed.refresh_token, undefined, { DPoP: stranger }));
check(otherKey.error === 'invalid_dpop_proof', 'a bound refresh token with another key is refused', otherKey.error ?? otherKey.message);
ok('the refresh token alone is useless: no proof and another key are both refused');

// Hand-made proofs (jose), each wrong in one way, with the right key.
const jwk = await jose.exportJWK(keyPair.publicKey);
async function rawRefresh(proof, refreshToken) {
  const response = await fetch(tokenEndpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: proof },
    body: new URLSearchParams({ grant_type: 'refresh_token', client_id: 'web', refresh_token: refreshToken }),
  });
  return { status: response.status, body: await response.json(), nonce: response.headers.get('dpop-nonce') };
}
async function proof(claims) {
  return new jose.SignJWT({ jti: crypto.randomUUID(), htm: 'POST', htu: tokenEndpoint, ...claims })
    .setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk })
    .setIssuedAt(claims.iat)
    .sign(keyPair.privateKey);
}
let nonce;
if (nonceRequired) {
  const asked = await rawRefresh(await proof({}), refreshed.refresh_token);
  check(asked.status === 400 && asked.body.error === 'use_dpop_nonce' && asked.nonce, 'use_dpop_nonce with a DPoP-Nonce', asked);
  nonce = asked.nonce;
  ok('a proof without the nonce gets use_dpop_nonce and a DPoP-Nonce header');
}
for (const [what, claims] of [
  ['GET instead of POST', { htm: 'GET' }],
  ['another endpoint', { htu: `${issuer}/oauth2/revoke` }],
  ['made ten minutes ago', { iat: Math.floor(Date.now() / 1000) - 600 }],
]) {
  const answer = await rawRefresh(await proof({ nonce, ...claims }), refreshed.refresh_token);
  check(answer.status === 400 && answer.body.error === 'invalid_dpop_proof', `a proof ${what} is refused`, answer);
}
ok('proofs for another method, another endpoint or from the past are refused');

// A valid hand-made proof works once; the same proof again is a replay.
const once = await proof({ nonce });
const used = await rawRefresh(once, refreshed.refresh_token);
check(used.status === 200 && used.body.token_type === 'DPoP', 'a valid jose-made proof is accepted', used);
const replayed = await rawRefresh(once, used.body.refresh_token);
check(replayed.status === 400 && replayed.body.error === 'invalid_dpop_proof', 'a replayed proof is refused', replayed);
ok('a proof made with jose is accepted once and refused when replayed');

console.log('dpop client: all steps passed');
