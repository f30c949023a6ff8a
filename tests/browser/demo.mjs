// Drives the --dev demo page in Debian's headless Chromium: sign in with a
// one-time code + PKCE + DPoP, see the claims, refresh through the HttpOnly
// cookie (which script cannot read), see both tokens bound to a key the
// page cannot export, call the protected API, show that the cookie and the
// access token copied to a client without the key are useless, replay the
// previous refresh token and watch the session end, log out and see the
// cookie gone, and a cross-origin page fail to use the cookie.
// Usage: node demo.mjs BASE_URL SCREENSHOT_DIR MANAGEMENT_URL
import { chromium } from "playwright-core";
import http from "node:http";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";

const [base, shots, management] = process.argv.slice(2);
mkdirSync(shots, { recursive: true });
const step = (text) => console.log(`browser: ${text}`);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const context = await browser.newContext();
const page = await context.newPage();
const shot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
const refreshCookie = async () => (await context.cookies(`${base}/oauth2/token`)).find((c) => c.name.endsWith("tessera-refresh-demo"));
const rotatedCount = async () => {
  const text = await (await fetch(`${management}/metrics`)).text();
  return Number(/tessera_refresh_total\{outcome="rotated"\} (\d+)/.exec(text)[1]);
};
// A request from outside any browser, with whatever headers a thief likes.
const raw = (method, url, headers, body) =>
  new Promise((resolve, reject) => {
    const request = http.request(url, { method, headers }, (response) => {
      let text = "";
      response.on("data", (chunk) => (text += chunk));
      response.on("end", () => resolve({ status: response.statusCode, headers: response.headers, body: text ? JSON.parse(text) : null }));
    });
    request.on("error", reject);
    request.end(body);
  });
const b64url = (bytes) => Buffer.from(bytes).toString("base64url");
// The thief's own DPoP key: it can sign proofs, just not with the page's key.
const thiefKey = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"]);
const thiefProof = async (htm, htu, accessToken) => {
  const { kty, crv, x, y } = await crypto.subtle.exportKey("jwk", thiefKey.publicKey);
  const claims = { jti: crypto.randomUUID(), htm, htu, iat: Math.floor(Date.now() / 1000) };
  if (accessToken) claims.ath = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(accessToken)));
  const input = `${b64url(JSON.stringify({ typ: "dpop+jwt", alg: "ES256", jwk: { kty, crv, x, y } }))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${b64url(await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, thiefKey.privateKey, new TextEncoder().encode(input)))}`;
};

const signIn = async (sub) => {
  await page.fill("#sub", sub);
  await page.click("#login");
  await page.waitForSelector("#signed-in", { state: "visible" });
};

try {
  await page.goto(`${base}/demo`);
  await shot("01-signed-out");

  // Sign in: code + PKCE, then the claims are on the page.
  await signIn("alice");
  const claims = JSON.parse(await page.textContent("#claims"));
  assert.equal(claims.sub, "alice");
  assert.equal(claims.client_id, "demo");
  step(`signed in; access token jti ${claims.jti}`);
  await shot("02-signed-in");

  // The refresh token is in an HttpOnly cookie that script cannot see.
  const cookie = await refreshCookie();
  assert.ok(cookie, "the refresh cookie is set");
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.path, "/oauth2");
  assert.equal(cookie.sameSite, "Strict");
  const visible = await page.evaluate(() => document.cookie);
  assert.ok(!visible.includes("rt1.") && !visible.includes("tessera-refresh"), `document.cookie shows: ${visible}`);
  step("document.cookie cannot see the refresh token");

  // Refresh through the cookie: a new access token and a rotated cookie.
  await page.click("#refresh");
  await page.waitForFunction(() => document.querySelector("#status").textContent.startsWith("refreshed"));
  const refreshed = JSON.parse(await page.textContent("#claims"));
  assert.notEqual(refreshed.jti, claims.jti);
  assert.notEqual((await refreshCookie()).value, cookie.value, "the cookie rotated");
  step("refreshed via the cookie; the cookie rotated");
  await shot("03-refreshed");

  // DPoP: both tokens are bound to a key the page holds but cannot export.
  const key = await page.evaluate(async () => {
    const { pair, jkt } = await dpopKey();
    const stored = await keyStore("readonly", (store) => store.get("dpop"));
    let exported = "refused";
    try { await crypto.subtle.exportKey("jwk", pair.privateKey); exported = "exported"; } catch { /* non-extractable */ }
    return { jkt, extractable: pair.privateKey.extractable, exported, stored: stored !== undefined };
  });
  assert.deepEqual([key.extractable, key.exported, key.stored], [false, "refused", true], JSON.stringify(key));
  assert.equal(refreshed.cnf?.jkt, key.jkt, "the access token is bound to the page's key");
  step(`the tokens are bound (cnf.jkt ${key.jkt}) to a non-extractable key kept in IndexedDB`);

  // The page calls the protected API with its token and a proof.
  await page.click("#call-api");
  await page.waitForFunction(() => document.querySelector("#status").textContent.startsWith("the protected API answered"));
  assert.equal(JSON.parse((await page.textContent("#api")).split("\n").slice(1).join("\n")).sub, "alice");
  step("the page called the protected API with its DPoP-bound token");

  // A thief copies the refresh cookie and the access token to a client of its own.
  const stolenAccess = await page.evaluate(() => access);
  const stolenCookie = await refreshCookie();
  const api = `${base}/demo/api/profile`;
  const asBearer = await raw("GET", api, { authorization: `Bearer ${stolenAccess}` });
  assert.equal(asBearer.status, 401);
  assert.match(asBearer.headers["www-authenticate"], /^DPoP .*error="invalid_token"/);
  const ownKey = await raw("GET", api, { authorization: `DPoP ${stolenAccess}`, dpop: await thiefProof("GET", api, stolenAccess) });
  assert.equal(ownKey.status, 401);
  assert.match(ownKey.headers["www-authenticate"], /error="invalid_token"/);
  const rotatedBefore = await rotatedCount();
  const refreshAs = async (proof) => raw("POST", `${base}/oauth2/token`, {
    "content-type": "application/x-www-form-urlencoded",
    cookie: `${stolenCookie.name}=${stolenCookie.value}`,
    origin: base,
    "x-tessera-request": "1",
    ...(proof ? { dpop: proof } : {}),
  }, new URLSearchParams({ grant_type: "refresh_token", client_id: "demo" }).toString());
  for (const attempt of [await refreshAs(null), await refreshAs(await thiefProof("POST", `${base}/oauth2/token`))]) {
    assert.equal(attempt.status, 400, JSON.stringify(attempt.body));
    assert.equal(attempt.body.error, "invalid_dpop_proof");
  }
  assert.equal(await rotatedCount(), rotatedBefore, "the stolen cookie refreshed nothing");
  step("the cookie and the access token, copied to a client without the key, are useless");
  // Nothing was consumed: the page itself refreshes as before.
  await page.click("#refresh");
  await page.waitForFunction((jti) => document.querySelector("#status").textContent.startsWith("refreshed") && JSON.parse(document.querySelector("#claims").textContent).jti !== jti, refreshed.jti);
  await shot("03b-stolen-tokens-useless");

  // A page of another origin tries to use the cookie.
  const before = await rotatedCount();
  const foreign = http.createServer((_, response) => {
    response.setHeader("content-type", "text/html");
    response.end(`<!doctype html><title>foreign</title><p id="result">pending</p><script>
      (async () => {
        let cors;
        try {
          await fetch(${JSON.stringify(base)} + "/oauth2/token", { method: "POST", credentials: "include", headers: { "X-Tessera-Request": "1" },
            body: new URLSearchParams({ grant_type: "refresh_token", client_id: "demo" }) });
          cors = "allowed";
        } catch (e) { cors = "blocked"; }
        // A simple request needs no preflight: the browser sends it, cookie and all.
        await fetch(${JSON.stringify(base)} + "/oauth2/token", { method: "POST", mode: "no-cors", credentials: "include",
          body: new URLSearchParams({ grant_type: "refresh_token", client_id: "demo" }) }).catch(() => {});
        document.getElementById("result").textContent = cors;
      })();
    </script>`);
  });
  await new Promise((resolve) => foreign.listen(0, "127.0.0.1", resolve));
  const attacker = await context.newPage();
  await attacker.goto(`http://127.0.0.1:${foreign.address().port}/`);
  await attacker.waitForFunction(() => document.getElementById("result").textContent !== "pending");
  assert.equal(await attacker.textContent("#result"), "blocked", "the cross-origin fetch must be refused");
  await attacker.screenshot({ path: `${shots}/04-cross-origin-refused.png` });
  await attacker.close();
  foreign.close();
  assert.equal(await rotatedCount(), before, "no refresh happened from the foreign origin");
  step("a cross-origin page could not refresh with the cookie");

  // Theft: replay the previous refresh token after the grace window.
  await page.waitForTimeout(1500);
  await page.click("#replay");
  await page.waitForSelector("#signed-out", { state: "visible" });
  const status = await page.textContent("#status");
  assert.match(status, /session ended/);
  step(`replay detected: "${status}"`);
  await shot("05-theft-detected");

  // Log out: the session ends and the cookie is gone.
  await signIn("bob");
  assert.ok(await refreshCookie());
  await page.click("#logout");
  await page.waitForSelector("#signed-out", { state: "visible" });
  assert.equal(await refreshCookie(), undefined, "logout clears the cookie");
  step("logged out; the cookie is gone");
  await shot("06-logged-out");

  // Log out everywhere ends this session too.
  await signIn("carol");
  await page.click("#logout-everywhere");
  await page.waitForSelector("#signed-out", { state: "visible" });
  assert.match(await page.textContent("#status"), /session ended/);
  step("logout everywhere ended the session");
  await shot("07-logged-out-everywhere");
  console.log(`browser: screenshots in ${shots}`);
} catch (error) {
  await shot("failure").catch(() => {});
  console.error(error);
  process.exitCode = 1;
} finally {
  await browser.close();
}
