//! What a token or a request carries reaches a log line, a JSON body or a
//! `WWW-Authenticate` header only escaped and bounded: a `kid` with a newline, a
//! carriage return, ESC or NUL cannot forge a log line, and an 11,000-character one
//! is not echoed whole.

use crate::broker_with_client;
use auth_broker_testkit::{Backend, TestBroker};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use std::io::Write;
use std::sync::{Mutex, OnceLock};

/// Everything the broker logs in this test binary (debug level and up), once a test
/// asked for it.
static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Capture;

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing subscriber (once per test binary) and returns the log's
/// lines so far.
fn capture() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(|| Capture)
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
    });
}

fn log_lines() -> Vec<String> {
    String::from_utf8_lossy(&LOG.lock().unwrap())
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A key id that would start a forged log line, clear the terminal line, end a C
/// string, and then run on for 11,000 characters.
fn hostile_kid(marker: &str) -> String {
    format!(
        "k\n2026-01-01T00:00:00.000000Z  INFO {marker} forged\r\u{1b}[2K\0{}",
        "x".repeat(11_000)
    )
}

/// `token` with its header replaced by one naming `kid`.
fn with_kid(token: &str, kid: &str) -> String {
    let header = json!({"alg": "ES256", "kid": kid, "typ": "at+jwt"});
    let header = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap());
    let rest = token.split_once('.').unwrap().1;
    format!("{header}.{rest}")
}

fn assert_bounded_and_one_line(what: &str, s: &str) {
    assert!(s.len() < 700, "{what}: {} bytes", s.len());
    assert!(
        !s.chars().any(|c| c.is_control()),
        "{what}: a control character in {s:?}"
    );
}

async fn token_info(b: &TestBroker, token: &str, query: &str) -> (u16, String, String) {
    let a = b.token_info(Some(&format!("Bearer {token}")), query).await;
    (a.status, a.description().to_owned(), a.challenge.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_info_bounds_and_escapes_what_it_echoes() {
    let (b, id, secret) = broker_with_client(Backend::Sqlite).await;
    let t = b.token(&id, &secret).await;
    let (status, description, challenge) =
        token_info(&b, &with_kid(&t, &hostile_kid("TI")), "").await;
    assert_eq!(status, 401);
    assert!(
        description.contains(
            r"signed by key 'k\n2026-01-01T00:00:00.000000Z  INFO TI forged\r\u{1b}[2K\0xxx"
        ),
        "{description}"
    );
    assert_bounded_and_one_line("body", &description);
    assert_bounded_and_one_line("WWW-Authenticate", &challenge);
    assert!(
        challenge.contains(r"signed by key 'k%5Cn2026"),
        "{challenge}"
    );

    // The audience the caller asks about comes from the request too.
    let query = format!(
        "?{}",
        auth_broker_proto::form::serialize([("audience", hostile_kid("AUD").as_str())])
    );
    let (status, description, challenge) = token_info(&b, &t, &query).await;
    assert_eq!(status, 401);
    assert!(description.contains("not 'k\\n2026"), "{description}");
    assert_bounded_and_one_line("body", &description);
    assert_bounded_and_one_line("WWW-Authenticate", &challenge);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inactive_introspection_logs_one_escaped_line() {
    capture();
    let (b, id, secret) = broker_with_client(Backend::Sqlite).await;
    let t = b.token(&id, &secret).await;
    let marker = "INTROSPECTION-LOG-FORGERY";
    let r = b
        .http
        .post(b.url("/auth-broker/introspect"))
        .basic_auth(&id, Some(secret.expose_secret()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(auth_broker_proto::form::serialize([(
            "token",
            with_kid(&t, &hostile_kid(marker)).as_str(),
        )]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), r#"{"active":false}"#);

    let lines = log_lines();
    let mine: Vec<&String> = lines.iter().filter(|l| l.contains(marker)).collect();
    assert_eq!(mine.len(), 1, "one log line names the kid: {mine:#?}");
    let line = mine[0];
    assert!(line.contains("introspection: inactive"), "{line}");
    assert!(
        line.contains(&format!(
            r"'k\n2026-01-01T00:00:00.000000Z  INFO {marker} forged\r\u{{1b}}[2K\0xxx"
        )),
        "{line}"
    );
    assert_bounded_and_one_line("the log line", line);
}
