//! Faults, nothing lost: `kill -9` the real `serve` process in the middle of a load of
//! token requests, revocations and CLI writes (and kill CLI writes mid-flight), restart
//! it on the same store, and prove that everything acknowledged before the kill is
//! still there: clients with their latest secrets (old ones refused unless in grace),
//! disabled clients refused, rotated keys published, every `200` token still valid
//! unless revoked, every acknowledged revocation still revoked; and that the store is
//! not corrupt. On SQLite and on PostgreSQL, several kill/restart cycles on one store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use auth_broker_testkit::{Backend, FreshStore};
use common::{BIN, Serve, cli_json};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Kill/restart cycles per backend; each adds load on top of what earlier ones left.
const CYCLES: usize = 3;
/// Concurrent token-requesting tasks.
const LOADERS: usize = 6;

/// What a client is known to be, from acknowledged writes only.
#[derive(Debug, Clone)]
struct ClientFacts {
    secret: String,
    /// The secret replaced by the last rotation, and whether it got a grace period.
    previous: Option<(String, bool)>,
    /// Secrets replaced earlier than that: refused.
    dead: Vec<String>,
    disabled: bool,
}

/// Everything acknowledged (CLI exit 0, HTTP 200) before the kill.
#[derive(Debug, Default)]
struct Ledger {
    clients: HashMap<String, ClientFacts>,
    /// Key ids of acknowledged `keys rotate`, with when the command started and
    /// ended (concurrent rotations may commit in either order).
    kids: Vec<(String, Instant, Instant)>,
    /// Tokens answered `200`, with the client they were issued to.
    tokens: Vec<(String, String)>,
    /// Tokens whose revocation was answered `200`.
    revoked: HashSet<String>,
    /// Tokens whose revocation was sent but not answered (the kill came first): they
    /// may be revoked or not.
    revoking: HashSet<String>,
    /// Names of `client create` calls killed mid-flight (outcome unknown).
    victims: Vec<String>,
    /// `keys rotate` calls killed mid-flight.
    killed_key_rotations: usize,
    /// Commands meant to be killed that finished first (acknowledged).
    finished_victims: usize,
    acked_writes: usize,
}

struct Store {
    db: String,
    sqlite_file: Option<PathBuf>,
    dir: tempfile::TempDir,
}

fn ok_json(dir: &Path, db: &str, args: &[&str]) -> Value {
    cli_json(dir, db, args)
}

/// The CLI writer: creates clients, rotates their secrets with and without grace,
/// disables some, rotates the signing key; records each write once it is acknowledged.
fn writer(st: &Store, cycle: usize, ledger: &Mutex<Ledger>, stop: &AtomicBool) {
    let (dir, db) = (st.dir.path(), st.db.as_str());
    let mut last: Option<String> = None;
    let mut i = 0usize;
    while !stop.load(Ordering::SeqCst) {
        match (i % 5, last.clone()) {
            (0, _) | (_, None) => {
                let v = ok_json(
                    dir,
                    db,
                    &[
                        "client",
                        "create",
                        "--name",
                        &format!("w{cycle}-{i}"),
                        "--json",
                    ],
                );
                let id = v["client_id"].as_str().unwrap().to_owned();
                let facts = ClientFacts {
                    secret: v["client_secret"].as_str().unwrap().to_owned(),
                    previous: None,
                    dead: vec![],
                    disabled: false,
                };
                let mut l = ledger.lock().unwrap();
                l.clients.insert(id.clone(), facts);
                l.acked_writes += 1;
                last = Some(id);
            }
            (step @ (1 | 2), Some(id)) => {
                let grace = step == 2;
                let mut args = vec!["client", "rotate-secret", id.as_str(), "--json"];
                if grace {
                    args.extend(["--grace", "3600"]);
                }
                let v = ok_json(dir, db, &args);
                let new = v["client_secret"].as_str().unwrap().to_owned();
                let mut l = ledger.lock().unwrap();
                let f = l.clients.get_mut(&id).unwrap();
                let old = std::mem::replace(&mut f.secret, new);
                if let Some((p, _)) = f.previous.take() {
                    f.dead.push(p);
                }
                f.previous = Some((old, grace));
                l.acked_writes += 1;
            }
            (3, Some(id)) => {
                // Every other client is disabled; the rest keep working.
                if (i / 5) % 2 == 1 {
                    ok_json(dir, db, &["client", "disable", &id, "--json"]);
                    let mut l = ledger.lock().unwrap();
                    l.clients.get_mut(&id).unwrap().disabled = true;
                    l.acked_writes += 1;
                }
            }
            _ => {
                let started = Instant::now();
                let v = ok_json(dir, db, &["keys", "rotate", "--json"]);
                let mut l = ledger.lock().unwrap();
                let kid = v["kid"].as_str().unwrap().to_owned();
                l.kids.push((kid, started, Instant::now()));
                l.acked_writes += 1;
            }
        }
        i += 1;
    }
}

/// CLI writes killed mid-flight: `client create` and `keys rotate` get SIGKILL at
/// 50–110 % of the time such a command takes (measured on the first, which is let
/// finish), so some die before touching the store, some mid-write, some after it.
/// One that finished first counts as acknowledged.
fn victims(st: &Store, cycle: usize, ledger: &Mutex<Ledger>, stop: &AtomicBool) {
    let mut typical: Option<Duration> = None;
    let mut k = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let name = format!("v{cycle}-{k}");
        let rotate_key = k % 3 == 2;
        let args: Vec<&str> = if rotate_key {
            vec!["keys", "rotate", "--json"]
        } else {
            vec!["client", "create", "--name", &name, "--json"]
        };
        let started = Instant::now();
        let mut child = Command::new(BIN)
            .current_dir(st.dir.path())
            .env("AUTH_BROKER_DATABASE_URL", &st.db)
            .env_remove("AUTH_BROKER_LOG")
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(d) = typical {
            // A spread of delays without a random-number dependency.
            let frac = (k as f64 * 0.618_034).fract();
            std::thread::sleep(d.mul_f64(0.5 + 0.6 * frac));
            let _ = child.kill();
        }
        let out = child.wait_with_output().unwrap();
        typical.get_or_insert(started.elapsed());
        let mut l = ledger.lock().unwrap();
        if out.status.success() {
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            if rotate_key {
                let kid = v["kid"].as_str().unwrap().to_owned();
                l.kids.push((kid, started, Instant::now()));
            } else {
                l.clients.insert(
                    v["client_id"].as_str().unwrap().to_owned(),
                    ClientFacts {
                        secret: v["client_secret"].as_str().unwrap().to_owned(),
                        previous: None,
                        dead: vec![],
                        disabled: false,
                    },
                );
            }
            l.acked_writes += 1;
            l.finished_victims += 1;
        } else if rotate_key {
            l.killed_key_rotations += 1;
        } else {
            l.victims.push(name);
        }
        k += 1;
    }
}

async fn post_token(http: &reqwest::Client, base: &str, id: &str, secret: &str) -> Option<u16> {
    http.post(format!("{base}/auth-broker/request-token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

/// One token-requesting task: fetches tokens as one load client, revokes every fourth;
/// records each `200`.
async fn loader(
    base: String,
    id: String,
    secret: String,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut n = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let r = http
            .post(format!("{base}/auth-broker/request-token"))
            .basic_auth(&id, Some(&secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await;
        let Ok(r) = r else {
            // The broker is gone (killed): nothing more to acknowledge.
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        if r.status() != 200 {
            continue;
        }
        let Ok(v) = r.json::<Value>().await else {
            continue;
        };
        let token = v["access_token"].as_str().unwrap().to_owned();
        ledger
            .lock()
            .unwrap()
            .tokens
            .push((token.clone(), id.clone()));
        n += 1;
        if n.is_multiple_of(4) {
            ledger.lock().unwrap().revoking.insert(token.clone());
            let r = http
                .post(format!("{base}/auth-broker/revoke"))
                .basic_auth(&id, Some(&secret))
                .form(&[("token", token.as_str())])
                .send()
                .await;
            if r.is_ok_and(|r| r.status() == 200) {
                let mut l = ledger.lock().unwrap();
                l.revoking.remove(&token);
                l.revoked.insert(token);
            }
        }
    }
}

fn sqlite_integrity(file: &Path) {
    let conn = rusqlite::Connection::open(file).unwrap();
    let check: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(check, ["ok"], "PRAGMA integrity_check");
    let dangling = conn
        .prepare("PRAGMA foreign_key_check")
        .unwrap()
        .query_map([], |_| Ok(()))
        .unwrap()
        .count();
    assert_eq!(dangling, 0, "PRAGMA foreign_key_check");
}

/// Is this secret refused? `429` counts as refused: only failed authentications are
/// rate limited, a right secret never gets it.
fn refused(status: Option<u16>) -> bool {
    matches!(status, Some(401 | 429))
}

/// A token to check, and whether it must be revoked (`None`: either way).
type TokenCheck = (String, Option<bool>);

/// Proves the ledger against a freshly restarted broker.
async fn verify(st: &Store, base: &str, ledger: &Ledger) {
    let http = reqwest::Client::new();
    let (dir, db) = (st.dir.path(), st.db.as_str());

    // Clients: all there, enabled as acknowledged.
    let listed = ok_json(dir, db, &["client", "list", "--json"]);
    let listed: HashMap<String, Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["client_id"].as_str().unwrap().to_owned(), c.clone()))
        .collect();
    let mut names = HashSet::new();
    for c in listed.values() {
        assert!(
            names.insert(c["client_name"].as_str().unwrap().to_owned()),
            "duplicate client name {c}"
        );
    }
    for (id, f) in &ledger.clients {
        let c = listed
            .get(id)
            .unwrap_or_else(|| panic!("acknowledged client {id} is gone"));
        assert_eq!(c["enabled"], !f.disabled, "{id}: enabled flag");
        let now = post_token(&http, base, id, &f.secret).await;
        if f.disabled {
            assert!(refused(now), "{id}: disabled, yet {now:?}");
        } else {
            assert_eq!(now, Some(200), "{id}: the latest acknowledged secret");
        }
        if let Some((old, grace)) = &f.previous {
            let r = post_token(&http, base, id, old).await;
            if *grace && !f.disabled {
                assert_eq!(r, Some(200), "{id}: the previous secret is in its grace");
            } else {
                assert!(refused(r), "{id}: the previous secret, no grace: {r:?}");
            }
        }
        if let Some(dead) = f.dead.last() {
            let r = post_token(&http, base, id, dead).await;
            assert!(refused(r), "{id}: a secret replaced twice: {r:?}");
        }
    }
    // Clients created by killed commands: there whole (listed, shown) or not at all.
    let mut landed = 0;
    for name in &ledger.victims {
        if let Some(c) = listed.values().find(|c| c["client_name"] == name.as_str()) {
            let id = c["client_id"].as_str().unwrap();
            let shown = ok_json(dir, db, &["client", "show", id, "--json"]);
            assert_eq!(shown["client_name"], name.as_str());
            landed += 1;
        }
    }
    eprintln!(
        "  {landed} of {} killed client creations had committed before the kill",
        ledger.victims.len()
    );

    // Keys: every acknowledged one listed and published; one active key.
    let keys = ok_json(dir, db, &["keys", "list", "--json"]);
    let keys = keys.as_array().unwrap();
    let active: Vec<&str> = keys
        .iter()
        .filter(|k| k["state"] == "active" && k["alg"] == "ES256")
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(active.len(), 1, "exactly one active ES256 key: {keys:?}");
    let jwks: Value =
        auth_broker_testkit::get_json(&http, &format!("{base}/.well-known/jwks.json")).await;
    let published: HashSet<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    for (kid, _, _) in &ledger.kids {
        assert!(
            keys.iter().any(|k| k["kid"] == kid.as_str()),
            "acknowledged key {kid} is gone from the store"
        );
        assert!(
            published.contains(kid.as_str()),
            "acknowledged key {kid} is not in the JWKS (its tokens could not be verified)"
        );
    }
    // An acknowledged key is no longer active once a later rotation was acknowledged
    // (one that started after it had ended): no rotation is undone by the crash.
    if let Some((_, _, ended)) = ledger.kids.iter().find(|(k, _, _)| k == active[0]) {
        let later = ledger.kids.iter().find(|(_, started, _)| started > ended);
        assert!(
            later.is_none(),
            "key {} is active again although {later:?} replaced it",
            active[0]
        );
    }

    // Tokens: every 200 still valid unless revoked; every revocation still in force.
    let checked = Arc::new(AtomicUsize::new(0));
    let work: Arc<Mutex<Vec<TokenCheck>>> = Arc::new(Mutex::new(
        ledger
            .tokens
            .iter()
            .map(|(t, _)| {
                let revoked = if ledger.revoked.contains(t) {
                    Some(true)
                } else if ledger.revoking.contains(t) {
                    None // revocation not acknowledged: either outcome is right
                } else {
                    Some(false)
                };
                (t.clone(), revoked)
            })
            .collect(),
    ));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (work, http, base, checked) =
            (work.clone(), http.clone(), base.to_owned(), checked.clone());
        tasks.spawn(async move {
            loop {
                let Some((t, revoked)) = work.lock().unwrap().pop() else {
                    return;
                };
                let r = http
                    .get(format!("{base}/auth-broker/token-info"))
                    .bearer_auth(&t)
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let body = r.text().await.unwrap();
                match revoked {
                    Some(true) => {
                        assert_eq!(status, 401, "a revoked token is accepted again: {body}");
                        if !t.starts_with("abo_") {
                            assert!(body.contains("revoked"), "{body}");
                        }
                    }
                    Some(false) => {
                        assert_eq!(
                            status, 200,
                            "a token answered 200 no longer verifies: {body}"
                        )
                    }
                    None => assert!(status == 200 || status == 401, "{status}: {body}"),
                }
                checked.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    assert_eq!(checked.load(Ordering::Relaxed), ledger.tokens.len());
}

async fn crash_cycles(backend: Backend) {
    let fresh = FreshStore::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let (db, sqlite_file) = match backend {
        Backend::Sqlite => {
            let f = dir.path().join("broker.db");
            (format!("sqlite://{}", f.display()), Some(f))
        }
        Backend::Postgres => (fresh.url.clone(), None),
    };
    let st = Arc::new(Store {
        db,
        sqlite_file,
        dir,
    });
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    // The load clients: created (and acknowledged) before the first start.
    let mut load = Vec::new();
    for i in 0..LOADERS {
        let v = ok_json(
            st.dir.path(),
            &st.db,
            &["client", "create", "--name", &format!("load-{i}"), "--json"],
        );
        let (id, secret) = (
            v["client_id"].as_str().unwrap().to_owned(),
            v["client_secret"].as_str().unwrap().to_owned(),
        );
        ledger.lock().unwrap().clients.insert(
            id.clone(),
            ClientFacts {
                secret: secret.clone(),
                previous: None,
                dead: vec![],
                disabled: false,
            },
        );
        load.push((id, secret));
    }
    let envs = |format: &'static str| {
        vec![
            ("AUTH_BROKER_DATABASE_URL", st.db.clone()),
            ("AUTH_BROKER_TOKEN_FORMAT", format.to_owned()),
            // A fixed issuer: the restarted broker listens on another port.
            ("AUTH_BROKER_ISSUER", "https://auth.example.com".to_owned()),
        ]
    };
    let start = |format: &'static str| {
        let st = st.clone();
        let e = envs(format);
        tokio::task::spawn_blocking(move || {
            let e: Vec<(&str, &str)> = e.iter().map(|(k, v)| (*k, v.as_str())).collect();
            Serve::start(st.dir.path(), &e, &[])
        })
    };
    for cycle in 0..CYCLES {
        // JWTs (nothing stored per token) and opaque tokens (one row per token, written
        // before the 200) take turns.
        let format = if cycle % 2 == 0 { "jwt" } else { "opaque" };
        let serve = start(format).await.unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let mut loaders = Vec::new();
        for (id, secret) in &load {
            loaders.push(tokio::spawn(loader(
                serve.base.clone(),
                id.clone(),
                secret.clone(),
                ledger.clone(),
                stop.clone(),
            )));
        }
        let cli_stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = [
            writer as fn(&Store, usize, &Mutex<Ledger>, &AtomicBool),
            victims,
        ]
        .into_iter()
        .map(|f| {
            let (st, ledger, stop) = (st.clone(), ledger.clone(), cli_stop.clone());
            std::thread::spawn(move || f(&st, cycle, &ledger, &stop))
        })
        .collect();
        // Let the load build up: tokens, revocations and CLI writes all acknowledged.
        let before = {
            let l = ledger.lock().unwrap();
            (l.tokens.len(), l.revoked.len(), l.acked_writes)
        };
        let t0 = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let l = ledger.lock().unwrap();
            let busy = l.tokens.len() >= before.0 + 200
                && l.revoked.len() >= before.1 + 20
                && l.acked_writes >= before.2 + 8;
            if busy || t0.elapsed() > Duration::from_secs(30) {
                break;
            }
        }
        tokio::task::spawn_blocking(move || serve.kill9())
            .await
            .unwrap();
        let killed_at = Instant::now();
        // The CLI writers go on a moment against the store the broker left behind.
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, Ordering::SeqCst);
        cli_stop.store(true, Ordering::SeqCst);
        for l in loaders {
            l.await.unwrap();
        }
        for t in threads {
            t.join().unwrap();
        }
        if let Some(f) = &st.sqlite_file {
            sqlite_integrity(f);
        }
        let serve = start(format).await.unwrap();
        {
            let l = ledger.lock().unwrap();
            eprintln!(
                "{backend:?} cycle {cycle} ({format}): killed after {:?} of load; acknowledged so far: {} tokens, {} revocations ({} more unanswered), {} clients, {} key rotations, {} CLI writes; {} client creations and {} key rotations killed mid-flight, {} finished first",
                killed_at - t0,
                l.tokens.len(),
                l.revoked.len(),
                l.revoking.len(),
                l.clients.len(),
                l.kids.len(),
                l.acked_writes,
                l.victims.len(),
                l.killed_key_rotations,
                l.finished_victims,
            );
            assert!(
                l.tokens.len() > before.0 && l.revoked.len() > before.1,
                "the load ran before the kill"
            );
        }
        let l = std::mem::take(&mut *ledger.lock().unwrap());
        verify(&st, &serve.base, &l).await;
        *ledger.lock().unwrap() = l;
        let code = tokio::task::spawn_blocking(move || serve.stop())
            .await
            .unwrap();
        assert_eq!(code, 0, "the restarted broker stops cleanly");
    }
    if let Some(f) = &st.sqlite_file {
        sqlite_integrity(f);
    }
    drop(fresh);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_nothing_acknowledged_on_sqlite() {
    crash_cycles(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_nothing_acknowledged_on_postgres() {
    crash_cycles(Backend::Postgres).await;
}
