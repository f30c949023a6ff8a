//! Test harness: start the real `tessera` binary on a free port with its own
//! key directory and config, and talk to it over HTTP; and what the tests
//! share besides: token decoding, form bodies, concurrent refreshes and
//! verification of a JWS with ring alone.

pub mod redis;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

/// A confidential client with every permission.
pub const BACKEND_ID: &str = "login-backend";
pub const BACKEND_SECRET: &str = "backend-secret-0123456789abcdefghijklmnopqrstuvwxyz";
/// A confidential client without permissions.
pub const SERVICE_ID: &str = "reports-service";
pub const SERVICE_SECRET: &str = "service-secret-0123456789abcdefghijklmnopqrstuvwxyz";

/// An HTTP Basic `Authorization` header value.
pub fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

/// An `application/x-www-form-urlencoded` body.
pub fn form_body<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

/// Part `index` (0 header, 1 claims) of a compact JWS, decoded without
/// verifying anything.
fn jws_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).unwrap_or_else(|| panic!("not a compact JWS: {token}"));
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// The `jti` claim of a token, unverified.
pub fn jti_of(token: &str) -> String {
    jws_part(token, 1)["jti"].as_str().expect("a jti").to_string()
}

/// The `kid` of a token's header, unverified.
pub fn kid_of(token: &str) -> String {
    jws_part(token, 0)["kid"].as_str().expect("a kid").to_string()
}

pub fn sha256_hex(text: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The standard test configuration: a login backend, a plain service, and a
/// public web client with audiences and scopes. The revocation feed is
/// public, so the tests' verifiers follow it without credentials.
pub fn default_config() -> String {
    config_with_feed("public = true")
}

/// The standard test configuration with these `[feed]` settings.
pub fn config_with_feed(feed: &str) -> String {
    format!(
        r#"
[keys]
reload_interval = "200ms"

[feed]
{feed}

[[clients]]
id = "{BACKEND_ID}"
secret_sha256 = "{}"
permissions = ["sessions", "introspect", "revoke_sessions", "read_revocations"]
audiences = ["backend-api"]

[[clients]]
id = "{SERVICE_ID}"
secret_sha256 = "{}"
audiences = ["orders-api", "billing-api"]
scopes = ["orders:read", "orders:write"]

[[clients]]
id = "web"
public = true
audiences = ["orders-api"]
scopes = ["read", "write"]

[[clients]]
id = "mobile"
public = true
max_sessions_per_subject = 2
"#,
        sha256_hex(BACKEND_SECRET),
        sha256_hex(SERVICE_SECRET)
    )
}

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tessera"))
}

/// A running tessera process; killed on drop.
pub struct TestServer {
    child: Child,
    pub base: String,
    /// The management listener (`/metrics`, `/readyz`, `/healthz`).
    pub management: String,
    dir: tempfile::TempDir,
    stderr: Arc<Mutex<String>>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(&default_config(), &[]).await
    }

    /// The server's working directory (config, `keys/`, `data/`).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    pub async fn start_with(config: &str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(dir, config, env).await
    }

    /// Start with extra `serve` flags (e.g. `--dev`).
    pub async fn start_with_flags(config: &str, env: &[(&str, &str)], flags: &[&str]) -> Self {
        Self::launch(tempfile::tempdir().expect("temp dir"), config, env, flags).await
    }

    /// Start in an existing directory (to restart on the same keys).
    pub async fn start_in(dir: tempfile::TempDir, config: &str, env: &[(&str, &str)]) -> Self {
        Self::launch(dir, config, env, &[]).await
    }

    /// Start in an existing directory with extra `serve` flags.
    pub async fn start_in_with_flags(dir: tempfile::TempDir, config: &str, env: &[(&str, &str)], flags: &[&str]) -> Self {
        Self::launch(dir, config, env, flags).await
    }

    async fn launch(dir: tempfile::TempDir, config: &str, env: &[(&str, &str)], flags: &[&str]) -> Self {
        std::fs::write(dir.path().join("tessera.toml"), config).expect("write config");
        let mut command = Command::new(binary());
        command
            .arg("serve")
            .args(flags)
            .current_dir(dir.path())
            .env("TESSERA_LISTEN", "127.0.0.1:0")
            .env("TESSERA_MANAGEMENT_LISTEN", "127.0.0.1:0")
            .env("TESSERA_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn tessera");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut all = sink.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("tessera listening on ") {
                    let _ = tx.send(addr.trim().to_string());
                }
                if let Some(rest) = line.strip_prefix("management on ") {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or_default().to_string());
                }
            }
        });
        let mut addresses = Vec::new();
        while addresses.len() < 2 {
            match rx.recv_timeout(Duration::from_secs(20)) {
                Ok(address) => addresses.push(address),
                Err(_) => {
                    let _ = child.kill();
                    panic!("tessera did not start; stderr:\n{}", stderr.lock().unwrap());
                }
            }
        }
        let (base, management) = (addresses.remove(0), addresses.remove(0));
        let mut server = Self { child, base, management, dir, stderr };
        // The first request proves it is ready.
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if client.get(server.url("/healthz")).send().await.is_ok_and(|r| r.status() == 200) {
                break;
            }
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("tessera exited before answering /healthz ({status}); stderr:\n{}", server.logs());
            }
            assert!(Instant::now() < deadline, "tessera never answered /healthz; stderr:\n{}", server.logs());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        server
    }

    /// The server's process id (for its memory use in /proc).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `host:port`, for raw TCP.
    pub fn addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    pub async fn jwks(&self) -> Value {
        reqwest::get(self.url("/.well-known/jwks.json")).await.unwrap().json().await.unwrap()
    }

    /// A URL on the management listener.
    pub fn management_url(&self, path: &str) -> String {
        format!("{}{path}", self.management)
    }

    /// The Prometheus text of `/metrics` (on the management listener).
    pub async fn metrics(&self) -> String {
        reqwest::get(self.management_url("/metrics")).await.unwrap().text().await.unwrap()
    }

    pub fn logs(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Wait (up to 10 s) until the logs contain `text` `count` times; returns the logs.
    pub async fn wait_for_log(&self, text: &str, count: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let logs = self.logs();
            if logs.matches(text).count() >= count {
                return logs;
            }
            assert!(Instant::now() < deadline, "no {count}× {text:?} in the logs:\n{logs}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Send a signal (`HUP`, `TERM`, …) to the server.
    pub fn signal(&self, name: &str) {
        send_signal(self.child.id(), name);
    }

    /// Run a `tessera` CLI command in the server's directory.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(binary()).args(args).current_dir(self.dir()).output().expect("run tessera cli")
    }

    /// Send SIGTERM and wait for the exit status.
    pub fn terminate(mut self) -> (std::process::ExitStatus, Duration) {
        let started = Instant::now();
        send_signal(self.child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, started.elapsed());
            }
            assert!(Instant::now() < deadline, "tessera did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Refresh as the public client `client_id`; returns status and body.
    pub async fn refresh(&self, client_id: &str, refresh_token: &str) -> (u16, Value) {
        let response =
            self.token(None, &[("grant_type", "refresh_token"), ("client_id", client_id), ("refresh_token", refresh_token)]).await;
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }

    /// Logout of session `sid` by the login backend; returns the status.
    pub async fn logout(&self, sid: &str) -> u16 {
        let url = self.url(&format!("/v1/sessions/{sid}"));
        reqwest::Client::new().delete(url).basic_auth(BACKEND_ID, Some(BACKEND_SECRET)).send().await.unwrap().status().as_u16()
    }

    /// Logout everywhere of `sub` by the login backend; returns the status.
    pub async fn logout_everywhere(&self, sub: &str) -> u16 {
        let url = self.url(&format!("/v1/subjects/{sub}/revoke"));
        reqwest::Client::new().post(url).basic_auth(BACKEND_ID, Some(BACKEND_SECRET)).send().await.unwrap().status().as_u16()
    }

    /// RFC 7662 introspection as the login backend; returns `active`.
    pub async fn active(&self, token: &str) -> bool {
        let response = self.form("/oauth2/introspect", Some((BACKEND_ID, BACKEND_SECRET)), &[("token", token)]).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["active"].as_bool().expect("active is a boolean")
    }

    /// Stop the process with SIGTERM, wait for it, and hand back its
    /// directory (to read what it left behind).
    pub fn terminate_keep_dir(mut self) -> tempfile::TempDir {
        send_signal(self.child.id(), "TERM");
        let _ = self.child.wait();
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }

    /// Stop the process with SIGKILL (no chance to flush anything) and hand
    /// back its directory (for restarts).
    pub fn stop_keep_dir(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }

    pub async fn create_session(&self, body: Value) -> reqwest::Response {
        reqwest::Client::new().post(self.url("/v1/sessions")).basic_auth(BACKEND_ID, Some(BACKEND_SECRET)).json(&body).send().await.unwrap()
    }

    /// A session created by the login backend; asserts 201 and returns the body.
    pub async fn session(&self, body: Value) -> Value {
        let response = self.create_session(body.clone()).await;
        assert_eq!(response.status(), 201, "creating the session {body}");
        response.json().await.unwrap()
    }

    /// A session of `sub` for the public client `web`.
    pub async fn web_session(&self, sub: &str) -> Value {
        self.session(json!({"sub": sub, "client_id": "web"})).await
    }

    /// The access token of a new session.
    pub async fn access_token(&self, body: Value) -> String {
        self.session(body).await["access_token"].as_str().expect("an access token").to_string()
    }

    pub async fn token(&self, auth: Option<(&str, &str)>, form: &[(&str, &str)]) -> reqwest::Response {
        self.form("/oauth2/token", auth, form).await
    }

    /// POST a form to an OAuth endpoint, with optional HTTP Basic.
    pub async fn form(&self, path: &str, auth: Option<(&str, &str)>, form: &[(&str, &str)]) -> reqwest::Response {
        let mut request = reqwest::Client::new()
            .post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_body(form.iter().copied()));
        if let Some((id, secret)) = auth {
            request = request.basic_auth(id, Some(secret));
        }
        request.send().await.unwrap()
    }
}

fn send_signal(pid: u32, signal: &str) {
    Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status().expect("kill");
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fire one refresh of `token` (as the public client `web`) at each of
/// `urls`, all at once; returns each answer's status and body.
pub async fn refresh_concurrently(urls: Vec<String>, token: &str) -> Vec<(u16, Value)> {
    let client = reqwest::Client::new();
    let body = form_body([("grant_type", "refresh_token"), ("client_id", "web"), ("refresh_token", token)]);
    let tasks: Vec<_> = urls
        .into_iter()
        .map(|url| {
            let request = client.post(url).header("content-type", "application/x-www-form-urlencoded").body(body.clone());
            tokio::spawn(async move {
                let response = request.send().await.unwrap();
                (response.status().as_u16(), response.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

/// Verify a compact JWS against a JWKS with ring alone — an independent
/// path from tessera's signing code and from jsonwebtoken. Returns the
/// header and claims.
pub fn verify_with_ring(token: &str, jwks: &Value) -> (Value, Value) {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "compact JWS has three parts");
    let header: Value = serde_json::from_slice(&B64.decode(parts[0]).unwrap()).unwrap();
    let claims: Value = serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
    let signature = B64.decode(parts[2]).unwrap();
    let kid = header["kid"].as_str().expect("kid");
    let jwk = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid).unwrap_or_else(|| panic!("kid {kid} not in JWKS"));
    let signed = format!("{}.{}", parts[0], parts[1]);
    let field = |name: &str| B64.decode(jwk[name].as_str().unwrap()).unwrap();
    // The algorithm comes from the JWK, never from the token.
    let result = match jwk["alg"].as_str().unwrap() {
        "ES256" | "ES384" => {
            let mut point = vec![4u8];
            point.extend(field("x"));
            point.extend(field("y"));
            let alg: &dyn ring::signature::VerificationAlgorithm =
                if jwk["alg"] == "ES256" { &ring::signature::ECDSA_P256_SHA256_FIXED } else { &ring::signature::ECDSA_P384_SHA384_FIXED };
            ring::signature::UnparsedPublicKey::new(alg, point).verify(signed.as_bytes(), &signature)
        }
        "EdDSA" => ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, field("x")).verify(signed.as_bytes(), &signature),
        "RS256" | "PS256" => {
            let params = if jwk["alg"] == "RS256" {
                &ring::signature::RSA_PKCS1_2048_8192_SHA256
            } else {
                &ring::signature::RSA_PSS_2048_8192_SHA256
            };
            ring::signature::RsaPublicKeyComponents { n: field("n"), e: field("e") }.verify(params, signed.as_bytes(), &signature)
        }
        other => panic!("unexpected alg {other}"),
    };
    assert!(result.is_ok(), "signature does not verify with ring from the JWKS");
    assert_eq!(header["alg"], jwk["alg"], "header alg matches the key");
    (header, claims)
}
