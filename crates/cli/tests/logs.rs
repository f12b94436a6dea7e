//! Secrets never reach the log (issues 7 and 12): the real `serve` process runs at
//! the most verbose levels (`RUST_LOG=debug` and `RUST_LOG=trace`), on SQLite and on
//! PostgreSQL, while every endpoint is called with good and bad input, a signing key
//! is created (first start), rotated by the CLI and rotated automatically, and
//! clients are created by the CLI (whose logs are captured too); the whole output
//! must then hold no client secret, no secret hash, no access token (nor its
//! signature), no Basic header value and no private key material in any encoding,
//! including the decimal byte list that tokio-postgres prints for a `bytea`
//! parameter at debug level.
//!
//! `client create` prints secrets on stdout by design; of the CLI only stderr (its
//! log) is captured.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use auth_broker_server::testing::{Raw, SigningKey};
use auth_broker_server::{SigningAlg, Store};
use auth_broker_testkit::{Backend, FreshStore};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_auth-broker");
const FORM: &str = "application/x-www-form-urlencoded";

/// Runs a CLI command at log level `level`; returns its stdout and appends its
/// stderr (the log) to `log`.
fn cli(
    dir: &std::path::Path,
    db: &str,
    level: &str,
    log: &Mutex<String>,
    args: &[&str],
) -> Vec<u8> {
    let out = Command::new(BIN)
        .current_dir(dir)
        .env("AUTH_BROKER_DATABASE_URL", db)
        .env_remove("AUTH_BROKER_LOG")
        .env("RUST_LOG", level)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    log.lock()
        .unwrap()
        .push_str(&String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn create_client(
    dir: &std::path::Path,
    db: &str,
    level: &str,
    log: &Mutex<String>,
    name: &str,
    scope: &str,
) -> (String, String) {
    let stdout = cli(
        dir,
        db,
        level,
        log,
        &[
            "client", "create", "--name", name, "--scope", scope, "--json",
        ],
    );
    let v: Value = serde_json::from_slice(&stdout).unwrap();
    (
        v["client_id"].as_str().unwrap().to_owned(),
        v["client_secret"].as_str().unwrap().to_owned(),
    )
}

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

/// What must never be in the log, with a name for the failure message.
#[derive(Default)]
struct Forbidden(Vec<(String, String)>);

impl Forbidden {
    fn add(&mut self, what: impl Into<String>, value: impl Into<String>) {
        let value = value.into();
        assert!(value.len() >= 12, "too short to search for: {value}");
        self.0.push((what.into(), value));
    }

    /// A client secret: whole, without its `abs_` prefix, and every 16-character
    /// piece of its random part (a partial echo is a leak too).
    fn secret(&mut self, what: &str, secret: &str) {
        self.add(what, secret);
        let random = secret.strip_prefix("abs_").unwrap();
        self.add(format!("{what} without prefix"), random);
        for i in 0..=random.len() - 16 {
            self.add(format!("{what}[{i}..]"), &random[i..i + 16]);
        }
    }

    /// An access token: whole, and its signature.
    fn token(&mut self, what: &str, token: &str) {
        self.add(what, token);
        self.add(
            format!("{what} signature"),
            token.rsplit('.').next().unwrap(),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_at_trace_level_logs_no_secret() {
    full_run(Backend::Sqlite, "trace").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_at_debug_level_logs_no_secret() {
    full_run(Backend::Sqlite, "debug").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_at_trace_level_logs_no_secret() {
    full_run(Backend::Postgres, "trace").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_at_debug_level_logs_no_secret() {
    full_run(Backend::Postgres, "debug").await;
}

async fn full_run(backend: Backend, level: &str) {
    let dir = tempfile::tempdir().unwrap();
    let fresh = FreshStore::new(backend).await;
    let db = match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("broker.db").display()),
        Backend::Postgres => fresh.url.clone(),
    };
    let log = Arc::new(Mutex::new(String::new()));
    let (a_id, a_secret) = create_client(dir.path(), &db, level, &log, "a", "read write");
    let (b_id, b_secret) = create_client(dir.path(), &db, level, &log, "b", "");
    // A signing key created an hour ago, so that `serve --key-rotation-interval 60s`
    // rotates on its first tick: the automatic rotation writes a new key too.
    let store = Store::open(&db).await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let old = SigningKey::generate(SigningAlg::Es256, now - 3600).unwrap();
    Raw(&store).rotate_key(&old, now - 3600).await.unwrap();
    drop(store);

    // serve, with both streams captured in full.
    let mut child = Command::new(BIN)
        .current_dir(dir.path())
        .env("AUTH_BROKER_DATABASE_URL", &db)
        .env_remove("AUTH_BROKER_LOG")
        .env("RUST_LOG", level)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--key-rotation-interval",
            "60s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let out_reader = {
        let log = log.clone();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line.clone());
                let mut l = log.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        })
    };
    let err_reader = {
        let log = log.clone();
        let mut stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                log.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    let first = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    let base = first
        .strip_prefix("auth-broker listening on ")
        .expect("the banner names the address")
        .to_owned();
    let addr = base.trim_start_matches("http://").to_owned();
    let token_url = format!("{base}/auth-broker/request-token");
    let http = reqwest::Client::new();
    let mut forbidden = Forbidden::default();
    forbidden.secret("client a's secret", &a_secret);
    forbidden.secret("client b's secret", &b_secret);
    let mut request_ids = Vec::new();

    let post = |auth: Option<String>, ctype: Option<&str>, body: String| {
        let mut r = http.post(&token_url).body(body);
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        if let Some(c) = ctype {
            r = r.header("content-type", c);
        }
        r.send()
    };
    let gt = || "grant_type=client_credentials".to_owned();

    // The token endpoint, good and bad.
    let mut tokens = Vec::new();
    let cases: Vec<(Option<String>, Option<&str>, String, u16)> = vec![
        (Some(basic(&a_id, &a_secret)), Some(FORM), gt(), 200),
        (
            Some(basic(&a_id, &a_secret)),
            Some(FORM),
            format!("{}&scope=read", gt()),
            200,
        ),
        (
            None,
            Some(FORM),
            format!("{}&client_id={b_id}&client_secret={b_secret}", gt()),
            200,
        ),
        (
            Some(basic(&a_id, &a_secret)),
            Some(FORM),
            format!("{}&scope=admin", gt()),
            400,
        ),
        (
            Some(basic(&a_id, "abs_wrong-secret-wrong-secret")),
            Some(FORM),
            gt(),
            401,
        ),
        (
            Some(basic("no-such-client", &a_secret)),
            Some(FORM),
            gt(),
            401,
        ),
        (
            None,
            Some(FORM),
            format!("{}&client_id=no-such-client&client_secret={b_secret}", gt()),
            401,
        ),
        // Malformed Basic: the credentials without base64, without the scheme,
        // the bare secret, base64 that does not decode.
        (
            Some(format!("Basic {a_id}:{a_secret}")),
            Some(FORM),
            gt(),
            400,
        ),
        (
            Some(STANDARD.encode(format!("{a_id}:{a_secret}"))),
            Some(FORM),
            gt(),
            401,
        ),
        (Some(a_secret.clone()), Some(FORM), gt(), 401),
        (
            Some(format!(
                "Basic {}!",
                STANDARD.encode(format!("{a_id}:{a_secret}"))
            )),
            Some(FORM),
            gt(),
            400,
        ),
        (Some(format!("Bearer {a_secret}")), Some(FORM), gt(), 401),
        // Bad forms and content types, with the secret in the body.
        (
            None,
            Some(FORM),
            format!(
                "grant_type=client_credentials&client_id={a_id}&client_secret={a_secret}&client_secret={a_secret}"
            ),
            400,
        ),
        (
            None,
            Some(FORM),
            format!("grant_type=client_credentials&client_id={a_id}&client_secret={a_secret}%zz"),
            400,
        ),
        (
            Some(basic(&a_id, &a_secret)),
            Some(FORM),
            format!("{}&client_secret={a_secret}", gt()),
            400,
        ),
        (
            Some(basic(&a_id, &a_secret)),
            Some("application/json"),
            format!(r#"{{"grant_type":"client_credentials","client_secret":"{a_secret}"}}"#),
            400,
        ),
        (
            Some(basic(&a_id, &a_secret)),
            Some(FORM),
            format!(r#"{{"client_secret":"{a_secret}"}}"#),
            400,
        ),
        (Some(basic(&a_id, &a_secret)), Some("text/plain"), gt(), 400),
        (Some(basic(&a_id, &a_secret)), None, gt(), 400),
        (
            Some(basic(&a_id, &a_secret)),
            Some(FORM),
            "grant_type=password".into(),
            400,
        ),
        (
            Some(basic(&a_id, &a_secret)),
            Some(FORM),
            String::new(),
            400,
        ),
        (
            Some(basic(&a_id, &a_secret)),
            Some(FORM),
            format!("{}&pad={}", gt(), "x".repeat(70 * 1024)),
            413,
        ),
    ];
    for (i, (auth, ctype, body, status)) in cases.into_iter().enumerate() {
        if let Some(a) = &auth {
            forbidden.add(format!("Authorization header of case {i}"), a);
            if let Some(v) = a.strip_prefix("Basic ") {
                forbidden.add(format!("Basic credentials of case {i}"), v);
            }
        }
        let r = post(auth, ctype, body).await.unwrap();
        assert_eq!(r.status().as_u16(), status, "token case {i}");
        request_ids.push(r.headers()["x-request-id"].to_str().unwrap().to_owned());
        let v: Value = r.json().await.unwrap();
        if status == 200 {
            let t = v["access_token"].as_str().unwrap().to_owned();
            forbidden.token(&format!("token of case {i}"), &t);
            tokens.push(t);
        }
    }
    let r = http.get(&token_url).send().await.unwrap();
    assert_eq!(r.status(), 405);

    // Introspection and revocation, authenticated and not.
    let introspect = format!("{base}/auth-broker/introspect");
    let revoke = format!("{base}/auth-broker/revoke");
    for (auth, token, status) in [
        (basic(&a_id, &a_secret), tokens[0].clone(), 200),
        (
            basic(&a_id, &a_secret),
            "garbage-token-value".to_owned(),
            200,
        ),
        (basic(&a_id, &a_secret), tokens[2].clone(), 200),
        (
            basic(&a_id, "abs_wrong-secret-wrong-secret"),
            tokens[0].clone(),
            401,
        ),
    ] {
        let r = http
            .post(&introspect)
            .header("authorization", auth)
            .header("content-type", FORM)
            .body(format!("token={token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status);
    }
    for (auth, status) in [
        (basic(&a_id, "abs_wrong-secret-wrong-secret"), 401),
        (basic(&a_id, &a_secret), 200),
    ] {
        let r = http
            .post(&revoke)
            .header("authorization", auth)
            .header("content-type", FORM)
            .body(format!("token={}&token_type_hint=access_token", tokens[1]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status);
    }

    // token-info: good, revoked, tampered, foreign, garbage, wrong scheme, quoted.
    let info = format!("{base}/auth-broker/token-info");
    let t = &tokens[0];
    let (head, rest) = t.split_once('.').unwrap();
    let (payload, sig) = rest.split_once('.').unwrap();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["exp"] = Value::from(1_000_000_000); // long expired
    let expired = format!(
        "{head}.{}.{sig}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap())
    );
    let mut flipped = sig.as_bytes().to_vec();
    flipped[5] = if flipped[5] == b'A' { b'B' } else { b'A' };
    let bad_sig = format!("{head}.{payload}.{}", String::from_utf8(flipped).unwrap());
    forbidden.token("tampered token", &bad_sig);
    forbidden.token("token with a changed exp", &expired);
    for (h, status) in [
        (format!("Bearer {t}"), Some(200)),
        (format!("Bearer {}", tokens[1]), Some(401)),
        (format!("Bearer {bad_sig}"), Some(401)),
        (format!("Bearer {expired}"), Some(401)),
        ("Bearer not-a-jwt-at-all-0123456789".to_owned(), Some(401)),
        (format!("Basic {t}"), Some(401)),
        (format!("Bearer \"{t}\""), Some(401)),
        (format!("bearer  {t} "), None),
        (t.clone(), Some(401)),
    ] {
        let r = http
            .get(&info)
            .header("authorization", h)
            .send()
            .await
            .unwrap();
        if let Some(status) = status {
            assert_eq!(r.status().as_u16(), status, "token-info");
        }
        request_ids.push(r.headers()["x-request-id"].to_str().unwrap().to_owned());
    }
    let r = http.get(&info).send().await.unwrap();
    assert_eq!(r.status(), 401);

    // The rest of the surface.
    for path in [
        "/.well-known/jwks.json",
        "/.well-known/oauth-authorization-server",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/no-such-path",
    ] {
        http.get(format!("{base}{path}"))
            .header("authorization", basic(&b_id, &b_secret))
            .send()
            .await
            .unwrap();
    }

    // Raw sockets: a head that never ends, a body that never comes, a head too big.
    for raw in [
        format!(
            "POST /auth-broker/request-token HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n",
            basic(&a_id, &a_secret)
        ),
        format!(
            "POST /auth-broker/request-token HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: {FORM}\r\nContent-Length: 100\r\n\r\ngrant_type=client_credentials&client_secret={a_secret}",
            basic(&a_id, &a_secret)
        ),
        format!(
            "GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nCookie: {}\r\n\r\n",
            basic(&a_id, &a_secret),
            "c".repeat(20_000)
        ),
        format!(
            "POST /auth-broker/request-token HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: 10000000\r\n\r\n",
            basic(&a_id, &a_secret)
        ),
    ] {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let _ = s.write_all(raw.as_bytes()).await;
        let mut buf = [0u8; 1024];
        let _ = tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf)).await;
    }

    // A wrong-secret flood until 429.
    let mut limited = false;
    for _ in 0..25 {
        let r = post(
            Some(basic(&b_id, "abs_flood-flood-flood-flood")),
            Some(FORM),
            gt(),
        )
        .await
        .unwrap();
        limited |= r.status() == 429;
    }
    assert!(limited, "the flood was rate limited");

    // A key rotated by the CLI while serve runs, and the automatic rotation (the
    // key from an hour ago is rotated on serve's first tick, within 2 s of start).
    cli(dir.path(), &db, level, &log, &["keys", "rotate"]);
    let store = Store::open(&db).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let keys = Raw(&store).list_keys().await.unwrap();
        // the old one, the one rotated automatically, the CLI's
        if keys.len() >= 3 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no automatic rotation: {keys:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(store);
    // Serve's key poll (every 2 s) loads the CLI's key; then the JWKS has every key.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let jwks: Value = loop {
        let jwks: Value = http
            .get(format!("{base}/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if jwks["keys"].as_array().unwrap().len() >= 3 {
            break jwks;
        }
        assert!(std::time::Instant::now() < deadline, "{jwks}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // Stop serve and collect everything it wrote.
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    out_reader.join().unwrap();
    err_reader.join().unwrap();
    let log = log.lock().unwrap().clone();

    // The private key, in every form it could be printed: hex and both base64
    // alphabets of each 12-byte window (so PEM, DER, a JWK `d` are all covered),
    // except windows of the public point and of the generic PKCS#8 prefix.
    let store = Store::open(&db).await.unwrap();
    let keys = Raw(&store).list_keys().await.unwrap();
    assert!(!keys.is_empty());
    for k in &keys {
        let der = &k.private_key;
        let jwk = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["kid"] == k.kid.as_str())
            .unwrap();
        let mut point = vec![4u8];
        point.extend(URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap());
        point.extend(URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap());
        let public_at = der
            .windows(point.len())
            .position(|w| w == point.as_slice())
            .map_or(der.len(), |p| p);
        let mut windows = 0;
        for i in 36..public_at.saturating_sub(11) {
            let w = &der[i..i + 12];
            forbidden.add(
                format!("key {} bytes {i}.. hex", k.kid),
                w.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            );
            forbidden.add(
                format!("key {} bytes {i}.. base64", k.kid),
                STANDARD.encode(w),
            );
            forbidden.add(
                format!("key {} bytes {i}.. base64url", k.kid),
                URL_SAFE_NO_PAD.encode(w),
            );
            // `{:?}` of a byte slice, as tokio-postgres logs a `bytea` parameter.
            forbidden.add(
                format!("key {} bytes {i}.. as a Debug list", k.kid),
                format!("{w:?}").trim_matches(['[', ']']).to_owned(),
            );
            windows += 1;
        }
        assert!(
            windows >= 20,
            "the private scalar is covered ({windows} windows)"
        );
        forbidden.add(format!("key {} whole, base64", k.kid), STANDARD.encode(der));
    }

    assert!(
        keys.len() >= 3,
        "created, rotated by the CLI, rotated automatically"
    );
    // The secrets' hashes as stored (whole, and their digest alone).
    for c in Raw(&store).list_clients().await.unwrap() {
        for h in std::iter::once(&c.secret_hash).chain(c.previous_secret_hash.as_ref()) {
            forbidden.add(format!("secret hash of {}", c.name), h);
            forbidden.add(
                format!("secret digest of {}", c.name),
                h.trim_start_matches("sha256:"),
            );
        }
    }

    if let Ok(path) = std::env::var("AUTH_BROKER_TEST_KEEP_LOG") {
        std::fs::write(path, &log).unwrap();
    }
    // The capture works: trace-level lines, every request's id, the refusals.
    assert!(log.len() > 10_000, "a trace-level log: {} bytes", log.len());
    // (No dependency emits TRACE events here: hyper's `tracing` feature is off. The
    // DEBUG lines, one per request and per response, show the filter is open.)
    assert!(log.contains("DEBUG"), "the most verbose level is on");
    if backend == Backend::Postgres {
        // The statements and their (redacted) parameters are in the log: the test
        // would find a key or a hash that got through.
        assert!(
            log.contains("executing statement"),
            "tokio-postgres logs statements"
        );
        assert!(
            log.contains("[redacted]"),
            "and the sensitive parameters redacted"
        );
    }
    assert!(log.contains("/auth-broker/request-token"));
    for id in &request_ids {
        assert!(log.contains(id.as_str()), "request {id} is in the log");
    }
    for reason in [
        "unknown_client",
        "wrong_secret",
        "rate_limited",
        "client authentication failed",
    ] {
        assert!(log.contains(reason), "{reason} is logged");
    }
    // The search itself works: the broker's own banner is found.
    assert!(log.contains(&base));

    let leaks: Vec<&str> = forbidden
        .0
        .iter()
        .filter(|(_, v)| log.contains(v.as_str()))
        .map(|(what, _)| what.as_str())
        .collect();
    if !leaks.is_empty() {
        let path = std::env::temp_dir().join(format!("auth-broker-leaky-{level}.log"));
        std::fs::write(&path, &log).unwrap();
        panic!(
            "the log ({} bytes, saved to {}) contains: {leaks:?}",
            log.len(),
            path.display()
        );
    }
    println!(
        "{} bytes of trace log from {} requests; {} forbidden strings, none found",
        log.len(),
        request_ids.len(),
        forbidden.0.len()
    );
}
