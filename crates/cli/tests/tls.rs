//! TLS end to end with the real binary: `serve --tls-cert --tls-key`, certificate
//! reload on SIGHUP, and the client commands' `--ca-file`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use auth_broker_testkit::tls::{RawTls, TlsDir};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

mod common;

use common::{BIN, run};

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_owned()).collect()
}

fn lines(r: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// `serve` over TLS with the files of `t`; stopped with SIGKILL on drop.
struct Serve {
    child: Child,
    addr: SocketAddr,
    base: String,
    stderr: Receiver<String>,
}

impl Serve {
    fn start(t: &TlsDir, db: &str) -> Self {
        let mut child = Command::new(BIN)
            .current_dir(t.dir.path())
            .env("AUTH_BROKER_LOG", "info")
            .args(["serve", "--listen", "127.0.0.1:0", "--database", db])
            .arg("--tls-cert")
            .arg(&t.files.cert)
            .arg("--tls-key")
            .arg(&t.files.key)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = lines(child.stdout.take().unwrap());
        let stderr = lines(child.stderr.take().unwrap());
        let mut banner = Vec::new();
        loop {
            let line = stdout
                .recv_timeout(Duration::from_secs(20))
                .expect("serve printed its banner");
            banner.push(line.clone());
            if line.contains("SIGHUP reloads it") {
                break;
            }
        }
        let base = banner[0]
            .strip_prefix("auth-broker listening on ")
            .expect("first line names the address")
            .to_owned();
        assert!(base.starts_with("https://"), "{banner:?}");
        assert!(
            banner.iter().any(|l| l.contains("issuer: https://")),
            "{banner:?}"
        );
        let addr = base.trim_start_matches("https://").parse().unwrap();
        Self {
            child,
            addr,
            base,
            stderr,
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits for a log line containing `what`.
    async fn log_line(&self, what: &str) -> String {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            while let Ok(line) = self.stderr.try_recv() {
                if line.contains(what) {
                    return line;
                }
            }
            assert!(Instant::now() < until, "no log line with '{what}'");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sqlite(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("broker.db").display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_without_dropping_connections() {
    let t = TlsDir::new();
    let mut serve = Serve::start(&t, &sqlite(t.dir.path()));

    let mut old = RawTls::connect(serve.addr, &t.ca.der).await.unwrap();
    assert_eq!(old.peer_cert(), t.leaf.der);
    assert_eq!(old.get("/healthz").await.unwrap().0, 200);

    // Renew the files, then SIGHUP.
    let renewed = t.ca.leaf("renewed");
    renewed.write(&t.files);
    serve.signal("-HUP");
    serve.log_line("TLS certificate reloaded").await;

    let mut new = RawTls::connect(serve.addr, &t.ca.der).await.unwrap();
    assert_eq!(
        new.peer_cert(),
        renewed.der,
        "new connections get the new certificate"
    );
    assert_eq!(new.get("/healthz").await.unwrap().0, 200);
    // The connection from before the reload: the same one, still served.
    assert_eq!(old.peer_cert(), t.leaf.der);
    assert_eq!(old.get("/healthz").await.unwrap().0, 200);

    // A broken file: the reload fails, is logged, and the broker keeps serving the
    // certificate it had.
    std::fs::write(&t.files.key, "-----BEGIN PRIVATE KEY-----\nnot base64!\n").unwrap();
    serve.signal("-HUP");
    let line = serve.log_line("reload failed").await;
    assert!(line.contains("key.pem"), "{line}");
    assert!(
        serve.child.try_wait().unwrap().is_none(),
        "serve is still running"
    );
    let mut after = RawTls::connect(serve.addr, &t.ca.der).await.unwrap();
    assert_eq!(after.peer_cert(), renewed.der);
    assert_eq!(after.get("/healthz").await.unwrap().0, 200);
    assert_eq!(old.get("/healthz").await.unwrap().0, 200);

    drop(old);
    drop(new);
    drop(after);
    serve.signal("-TERM");
    let status = tokio::task::block_in_place(|| serve.child.wait().unwrap());
    assert_eq!(status.code(), Some(0));
    let _ = &serve.base;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_commands_trust_the_ca_file_and_say_so_when_it_is_missing() {
    let t = TlsDir::new();
    let db = sqlite(t.dir.path());
    let (code, out, err) = run(
        vec![("AUTH_BROKER_DATABASE_URL", db.clone())],
        args(&["client", "create", "--name", "app", "--json"]),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = v["client_id"].as_str().unwrap().to_owned();
    let secret = v["client_secret"].as_str().unwrap().to_owned();
    let serve = Serve::start(&t, &db);
    let token_url = format!("{}/auth-broker/request-token", serve.base);
    let ca = t.ca_file.display().to_string();
    let creds = || {
        vec![
            ("AUTH_BROKER_TOKEN_URL", token_url.clone()),
            ("AUTH_BROKER_CLIENT_ID", id.clone()),
            ("AUTH_BROKER_CLIENT_SECRET", secret.clone()),
        ]
    };

    // token, with --ca-file and with AUTH_BROKER_CA_FILE.
    let (code, out, err) = run(creds(), args(&["token", "--ca-file", &ca])).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.trim().starts_with("ey"), "{out}");
    let mut env = creds();
    env.push(("AUTH_BROKER_CA_FILE", ca.clone()));
    let (code, _, err) = run(env, args(&["token", "--json"])).await;
    assert_eq!(code, 0, "{err}");

    // Without it: exit 1 and what to do.
    let (code, out, err) = run(creds(), args(&["token"])).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains("certificate not trusted") && err.contains("pass --ca-file"),
        "{err}"
    );

    // call, signed, over https to the broker's own token-info.
    let info = format!("{}/auth-broker/token-info", serve.base);
    let (code, out, err) = run(creds(), args(&["call", "--ca-file", &ca, &info])).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&id), "{out}");
    let (code, _, err) = run(creds(), args(&["call", &info])).await;
    assert_eq!(code, 1);
    assert!(err.contains("pass --ca-file"), "{err}");

    // doctor: the TLS step fails with the fix, and passes with the CA.
    let (code, out, _) = run(creds(), args(&["doctor"])).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL  TLS: certificate not trusted") && out.contains("pass --ca-file"),
        "{out}"
    );
    let (code, out, err) = run(creds(), args(&["doctor", "--ca-file", &ca])).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ok    TLS: handshake"), "{out}");

    // A --ca-file that is not there, or holds no certificate.
    let (code, _, err) = run(
        creds(),
        args(&["token", "--ca-file", "/nonexistent/ca.pem"]),
    )
    .await;
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot read --ca-file /nonexistent/ca.pem"),
        "{err}"
    );
    let key = t.files.key.display().to_string();
    let (code, _, err) = run(creds(), args(&["token", "--ca-file", &key])).await;
    assert_eq!(code, 1);
    assert!(err.contains("holds no certificate"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_settings_come_in_pairs_and_bad_files_stop_serve() {
    let t = TlsDir::new();
    let db = sqlite(t.dir.path());
    let cert = t.files.cert.display().to_string();
    let key = t.files.key.display().to_string();
    let serve = |extra: &[&str]| {
        let mut a = args(&["serve", "--listen", "127.0.0.1:0", "--database", &db]);
        a.extend(args(extra));
        a
    };
    // Flags: clap refuses one without the other (exit 2).
    let (code, _, err) = run(vec![], serve(&["--tls-cert", &cert])).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--tls-key"), "{err}");
    // Environment: the same.
    let (code, _, err) = run(vec![("AUTH_BROKER_TLS_KEY", key.clone())], serve(&[])).await;
    assert_eq!(code, 2, "{err}");
    // The settings file: checked after merging.
    let toml = t.dir.path().join("auth-broker.toml");
    std::fs::write(&toml, format!("tls_cert = {cert:?}\n")).unwrap();
    let mut a = serve(&[]);
    a.extend(args(&["--config", &toml.display().to_string()]));
    let (code, _, err) = run(vec![], a).await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("--tls-cert and --tls-key go together"),
        "{err}"
    );
    // A missing certificate file.
    let (code, _, err) = run(
        vec![],
        serve(&["--tls-cert", "/nonexistent/cert.pem", "--tls-key", &key]),
    )
    .await;
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot read the TLS certificate file /nonexistent/cert.pem"),
        "{err}"
    );
}
