//! The store interface, the same on SQLite and PostgreSQL.

use crate::{expect_error, on_both_stores};
use auth_broker_proto::admin::KeyState;
use auth_broker_server::admin::{Actor, Admin, AdminError, NewClient};
use auth_broker_server::clock::ManualClock;
use auth_broker_server::testing::{Raw, SigningKey};
use auth_broker_server::{Config, Server, SigningAlg, Store};
use auth_broker_testkit::{Backend, CuttableProxy, FreshStore};
use std::sync::Arc;
use std::time::Duration;

on_both_stores!(
    retired_keys_are_pruned_by_their_stored_lifetime,
    clients_round_trip,
    keys_are_created_once_and_rotate,
    migrations_are_idempotent
);

/// The service on a fresh store, at a clock the test moves.
async fn service(backend: Backend) -> (FreshStore, Admin, ManualClock) {
    let fresh = FreshStore::new(backend).await;
    let clock = ManualClock::at_nanos(100 * 1_000_000_000);
    let admin = Admin::new(fresh.open().await, Arc::new(clock.clone()));
    (fresh, admin, clock)
}

async fn clients_round_trip(backend: Backend) {
    let (_fresh, admin, clock) = service(backend).await;
    let raw = Raw(admin.store());
    let me = Actor::cli();
    let new = NewClient {
        name: "billing".into(),
        scope: "a b a".into(),
        audience: Some("urn:api".into()),
    };
    let (c, secret) = admin.create_client(&me, &new).await.unwrap();
    let stored = raw.get_client(&c.client_id).await.unwrap().unwrap();
    assert!(!stored.secret_hash.contains(secret.expose_secret()));
    assert_eq!(admin.client(&c.client_id).await.unwrap(), c);
    assert_eq!(c.settings.scope, "a b");
    assert_eq!(c.created_at, 100);
    assert_eq!(
        admin
            .client_by_name("billing")
            .await
            .unwrap()
            .unwrap()
            .client_id,
        c.client_id
    );
    assert!(
        matches!(admin.create_client(&me, &new).await, Err(AdminError::DuplicateName(n)) if n == "billing")
    );
    let bad = NewClient {
        name: "x".into(),
        scope: "bad\\scope".into(),
        audience: None,
    };
    assert!(matches!(
        admin.create_client(&me, &bad).await,
        Err(AdminError::Invalid(e)) if e.len() == 1 && e[0].field == "scope"
    ));
    assert_eq!(admin.list_clients().await.unwrap().len(), 1);
    clock.advance_secs(2);
    admin.set_enabled(&me, &c.client_id, false).await.unwrap();
    let off = admin.client(&c.client_id).await.unwrap();
    assert!(!off.settings.enabled);
    assert_eq!(off.updated_at, 102);
    assert!(matches!(
        admin.set_enabled(&me, "nope", false).await,
        Err(AdminError::NoSuchClient(_))
    ));
    let rotated = admin.rotate_secret(&me, &c.client_id, 400).await.unwrap();
    assert_eq!(rotated.previous_valid_until, Some(502));
    let got = raw.get_client(&c.client_id).await.unwrap().unwrap();
    assert_eq!(
        got.previous_secret_hash.as_deref(),
        Some(stored.secret_hash.as_str())
    );
    assert_eq!(got.previous_secret_expires_at, Some(502));
    assert!(matches!(
        admin.rotate_secret(&me, "nope", 0).await,
        Err(AdminError::NoSuchClient(_))
    ));
    admin.delete_client(&me, &c.client_id, None).await.unwrap();
    assert!(matches!(
        admin.delete_client(&me, &c.client_id, None).await,
        Err(AdminError::NoSuchClient(_))
    ));
    assert!(raw.get_client(&c.client_id).await.unwrap().is_none());
}

async fn keys_are_created_once_and_rotate(backend: Backend) {
    let fresh = FreshStore::new(backend).await;
    let (a, b) = (fresh.open().await, fresh.open().await);
    // Two "replicas" asking at once agree on one key.
    let (ra, rb) = (Raw(&a), Raw(&b));
    let (ka, kb) = tokio::join!(
        ra.ensure_active_key(SigningAlg::Es256, 1),
        rb.ensure_active_key(SigningAlg::Es256, 1),
    );
    let old = ka.unwrap().kid;
    assert_eq!(kb.unwrap().kid, old);
    assert_eq!(Raw(&a).list_keys().await.unwrap().len(), 1);
    let clock = ManualClock::at_nanos(50 * 1_000_000_000);
    let admin = Admin::new(a, Arc::new(clock));
    let new = admin
        .rotate_key(&Actor::cli(), SigningAlg::Es256)
        .await
        .unwrap();
    assert_eq!(new.state, KeyState::Active);
    let keys = Admin::new(b.clone(), Arc::new(ManualClock::default()))
        .keys()
        .await
        .unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(
        keys.iter()
            .find(|k| k.state == KeyState::Active)
            .unwrap()
            .kid,
        new.kid
    );
    let retired = keys.iter().find(|k| k.kid == old).unwrap();
    assert_eq!(retired.retired_at, Some(50));
    assert_eq!(retired.state, KeyState::Retired);
    let record = Raw(&b).list_keys().await.unwrap();
    let record = record.iter().find(|k| k.kid == old).unwrap();
    assert!(
        format!("{record:?}").contains("[redacted]"),
        "Debug hides the private key"
    );
}

async fn migrations_are_idempotent(backend: Backend) {
    let fresh = FreshStore::new(backend).await;
    let s = fresh.open().await;
    s.migrate().await.unwrap();
    let again = Store::open(&fresh.url).await.unwrap();
    again.ping().await.unwrap();
}

/// How long a request may take while the store is unreachable: the store's 3 s bound
/// plus slack for a loaded test machine. A hang would blow far past it.
const OUTAGE_BOUND: Duration = Duration::from_secs(7);

/// Past the PostgreSQL client cache's lease (1.5 s), with slack.
const CACHE_LEASE_RUNS_OUT: Duration = Duration::from_millis(2200);

/// A broker on a fresh PostgreSQL database that it reaches through a proxy the test
/// can cut, stall and restore, with one client.
struct BrokerBehindProxy {
    proxy: CuttableProxy,
    base: String,
    client: auth_broker_proto::admin::Client,
    secret: auth_broker_proto::ClientSecret,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// The broker's own store handle (it shares the broker's client cache).
    served: Store,
    _fresh: FreshStore,
}

impl BrokerBehindProxy {
    async fn start() -> Self {
        let fresh = FreshStore::new(Backend::Postgres).await;
        let proxy = CuttableProxy::start(auth_broker_testkit::pg_server_addr()).await;
        let store = Store::open(&fresh.url_via(proxy.addr)).await.unwrap();
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..Config::default()
        };
        let served = store.clone();
        let server = Server::bind_default_clock(config, store).await.unwrap();
        let base = format!("http://{}", server.local_addr().unwrap());
        let new = NewClient {
            name: "c".into(),
            ..Default::default()
        };
        let (client, secret) = Admin::open(&fresh.url)
            .await
            .unwrap()
            .create_client(&Actor::cli(), &new)
            .await
            .unwrap();
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        Self {
            proxy,
            base,
            client,
            secret,
            stop,
            task,
            served,
            _fresh: fresh,
        }
    }

    /// A token request as the client.
    fn token_request(&self, http: &reqwest::Client) -> reqwest::RequestBuilder {
        http.post(format!("{}/auth-broker/request-token", self.base))
            .basic_auth(&self.client.client_id, Some(self.secret.expose_secret()))
            .form(&[("grant_type", "client_credentials")])
    }

    /// The status of a token request as `id` with `secret`.
    async fn status_of(&self, http: &reqwest::Client, id: &str, secret: &str) -> u16 {
        http.post(format!("{}/auth-broker/request-token", self.base))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

/// With the database cut away (connections refused) and then blackholed (accepted,
/// never answered), readiness fails and token requests get a prompt
/// `503 temporarily_unavailable` with `Retry-After`; each time the database comes back
/// the broker recovers by itself, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_gives_503_and_recovers() {
    let b = BrokerBehindProxy::start().await;
    let proxy = &b.proxy;
    // A generous client-side timeout: the broker, not the test, must bound the wait.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let token = || b.token_request(&http).send();
    let readyz = || http.get(format!("{}/readyz", b.base)).send();
    assert_eq!(token().await.unwrap().status(), 200);
    assert_eq!(readyz().await.unwrap().status(), 200);

    for (fault, break_store) in [
        ("refused", CuttableProxy::cut as fn(&CuttableProxy)),
        ("blackholed", CuttableProxy::stall),
    ] {
        break_store(proxy);
        // A closed connection turns the client cache off at once; a silent one when
        // its lease runs out (1.5 s). Until then a cached client is served.
        tokio::time::sleep(CACHE_LEASE_RUNS_OUT).await;
        let started = std::time::Instant::now();
        let r = readyz().await.unwrap();
        assert_eq!(r.status(), 503, "{fault}: readyz");
        assert_eq!(r.headers()["retry-after"], "1", "{fault}: readyz");
        assert!(
            started.elapsed() < OUTAGE_BOUND,
            "{fault}: readyz took {:?}",
            started.elapsed()
        );
        // Several callers at once, more than the pool holds: none hangs.
        let started = std::time::Instant::now();
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..20 {
            calls.spawn(token());
        }
        let answers = calls.join_all().await;
        let elapsed = started.elapsed();
        for r in answers {
            let r = r.unwrap();
            assert_eq!(r.headers()["retry-after"], "1", "{fault}");
            let why = expect_error(r, 503, "temporarily_unavailable").await;
            assert!(!why.is_empty(), "{fault}: a description says what is wrong");
        }
        assert!(
            elapsed < OUTAGE_BOUND,
            "{fault}: 20 token requests took {elapsed:?}, no hang allowed"
        );
        eprintln!("{fault}: 20 concurrent token requests answered 503 in {elapsed:?}");

        proxy.restore();
        let started = std::time::Instant::now();
        let mut ok = false;
        while started.elapsed() < Duration::from_secs(15) {
            if token().await.unwrap().status() == 200 {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            ok,
            "{fault}: recovered after the store came back, without a restart"
        );
        eprintln!(
            "{fault}: tokens again {:?} after the store came back",
            started.elapsed()
        );
        assert_eq!(readyz().await.unwrap().status(), 200, "{fault}: readyz");
        // And stays recovered: every request succeeds, none hits a dead pooled connection.
        for _ in 0..20 {
            assert_eq!(token().await.unwrap().status(), 200, "{fault}");
        }
    }
    b.stop().await;
}

/// A connection that went silent for good (the network dropped it without a reset)
/// is given up after one timed-out read: token requests recover once new connections
/// get through, instead of waiting on the dead one until TCP gives up (minutes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_dead_connection_is_given_up() {
    let b = BrokerBehindProxy::start().await;
    let proxy = &b.proxy;
    let http = reqwest::Client::new();
    let token = || async { b.token_request(&http).send().await.unwrap().status() };
    assert_eq!(token().await, 200);
    proxy.stall();
    tokio::time::sleep(CACHE_LEASE_RUNS_OUT).await;
    assert_eq!(token().await, 503, "the shared connection is silent");
    proxy.restore_keeping_dead();
    // Every connection opened before the stall stays silent; each costs at most one
    // timed-out request, then new connections carry the reads.
    let started = std::time::Instant::now();
    let mut statuses = Vec::new();
    while started.elapsed() < Duration::from_secs(40) {
        let s = token().await;
        statuses.push(s.as_u16());
        if s == 200 {
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&200), "recovered: {statuses:?}");
    for _ in 0..20 {
        assert_eq!(token().await, 200, "stays recovered");
    }
    eprintln!(
        "tokens again after {:?} ({} requests: {statuses:?})",
        started.elapsed(),
        statuses.len()
    );
    b.stop().await;
}

impl BrokerBehindProxy {
    /// What this broker's client cache did so far. Read from its store handle, not
    /// from `/metrics`: every in-process broker of this test binary shares one
    /// recorder, so a scrape may show another broker's counts.
    fn cache(&self) -> auth_broker_server::testing::CacheStats {
        Raw(&self.served).client_cache_stats().unwrap()
    }

    /// Waits until token requests are served from the client cache (its change
    /// listener listens).
    async fn wait_for_cache(&self, http: &reqwest::Client) {
        let started = std::time::Instant::now();
        loop {
            let before = self.cache().hits;
            let _ = self.token_request(http).send().await.unwrap();
            let _ = self.token_request(http).send().await.unwrap();
            if self.cache().hits > before {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "the client cache never came on"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// On PostgreSQL a token request at steady state reads nothing from the store: the
/// client comes from the cache. A change made by another process (the CLI, another
/// replica: here an `Admin` on its own connection, not through the broker) reaches
/// the broker by `NOTIFY`; the time from its commit to the first request that sees
/// it is measured, for disable, enable, a new secret and a deletion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_client_cache_hears_every_change() {
    let b = BrokerBehindProxy::start().await;
    let http = reqwest::Client::new();
    let other = Admin::open(&b._fresh.url).await.unwrap();
    b.wait_for_cache(&http).await;
    let before = b.cache();
    for _ in 0..200 {
        assert_eq!(b.token_request(&http).send().await.unwrap().status(), 200);
    }
    let after = b.cache();
    let (hits, misses, bypassed) = (
        after.hits - before.hits,
        after.misses - before.misses,
        after.bypassed - before.bypassed,
    );
    // With the cache on, nothing is read again: no change was made. A heartbeat late
    // on a loaded machine turns the cache off for a moment (those reads bypass it, as
    // they must), but most requests are hits.
    assert_eq!(
        (hits + bypassed, misses),
        (200, 0),
        "200 token requests: {hits} hits, {misses} misses, {bypassed} with the cache off"
    );
    assert!(
        hits >= 150,
        "200 token requests, only {hits} from the cache ({bypassed} with the cache off)"
    );

    let id = b.client.client_id.clone();
    let status = |secret: auth_broker_proto::ClientSecret| {
        let (b, http, id) = (&b, &http, &id);
        async move { b.status_of(http, id, secret.expose_secret()).await }
    };
    // Polls until the answer is `want`: how long that took after the change, and how
    // many requests before got the old answer.
    let seen = |secret: auth_broker_proto::ClientSecret, want: u16| {
        let status = &status;
        async move {
            let started = std::time::Instant::now();
            let mut stale = 0;
            loop {
                if status(secret.clone()).await == want {
                    return (started.elapsed(), stale);
                }
                stale += 1;
                assert!(
                    started.elapsed() < Duration::from_secs(2),
                    "a change was not heard within 2 s"
                );
            }
        }
    };
    let mut heard = Vec::new();
    other.set_enabled(&Actor::cli(), &id, false).await.unwrap();
    heard.push(("disable", seen(b.secret.clone(), 401).await));
    other.set_enabled(&Actor::cli(), &id, true).await.unwrap();
    heard.push(("enable", seen(b.secret.clone(), 200).await));
    let new_secret = other
        .rotate_secret(&Actor::cli(), &id, 0)
        .await
        .unwrap()
        .secret;
    heard.push(("new secret, old refused", seen(b.secret.clone(), 401).await));
    assert_eq!(status(new_secret.clone()).await, 200);
    other.delete_client(&Actor::cli(), &id, None).await.unwrap();
    heard.push(("delete", seen(new_secret, 401).await));
    eprintln!(
        "time from a change's commit to the first request that saw it, and requests answered as before: {heard:?}"
    );
    b.stop().await;
}

/// A notification names the client that changed (migration 8): the replica drops that
/// client's entry alone, and keeps serving every other client from its cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_change_drops_only_that_client_from_the_cache() {
    let b = BrokerBehindProxy::start().await;
    let http = reqwest::Client::new();
    let other = Admin::open(&b._fresh.url).await.unwrap();
    let new = NewClient {
        name: "changed".into(),
        ..Default::default()
    };
    let (changed, changed_secret) = other.create_client(&Actor::cli(), &new).await.unwrap();
    b.wait_for_cache(&http).await;
    let ask = |id: String, secret: String| {
        let (b, http) = (&b, &http);
        async move { b.status_of(http, &id, &secret).await }
    };
    let (kept, kept_secret) = (
        b.client.client_id.clone(),
        b.secret.expose_secret().to_owned(),
    );
    let changed_secret = changed_secret.expose_secret().to_owned();
    assert_eq!(
        ask(changed.client_id.clone(), changed_secret.clone()).await,
        200
    );
    assert_eq!(ask(kept.clone(), kept_secret.clone()).await, 200);

    other
        .set_enabled(&Actor::cli(), &changed.client_id, false)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    while ask(changed.client_id.clone(), changed_secret.clone()).await != 401 {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the change was not heard"
        );
    }
    // Misses count reads with the cache on; a late heartbeat on a loaded machine
    // may turn it off for a moment, and those reads are counted apart (bypassed).
    let misses = b.cache().misses;
    for _ in 0..20 {
        assert_eq!(ask(kept.clone(), kept_secret.clone()).await, 200);
    }
    assert_eq!(
        b.cache().misses,
        misses,
        "the unchanged client was read again"
    );
    b.stop().await;
}

/// While the change listener's connection is cut, the client cache is off and every
/// request reads the store: a client disabled meanwhile (by another process, on its
/// own connection) is never served, whether the store is reachable yet or not; once
/// the listener is back, the cache is on again. A silent connection (packets dropped)
/// turns the cache off when its lease runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_client_cache_is_off_while_the_listener_is_cut() {
    let b = BrokerBehindProxy::start().await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let other = Admin::open(&b._fresh.url).await.unwrap();
    let id = b.client.client_id.clone();
    let token = || async {
        b.token_request(&http)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };

    for (fault, break_store, grace) in [
        (
            "cut",
            CuttableProxy::cut as fn(&CuttableProxy),
            Duration::from_millis(100),
        ),
        ("stalled", CuttableProxy::stall, CACHE_LEASE_RUNS_OUT),
    ] {
        b.wait_for_cache(&http).await;
        break_store(&b.proxy);
        // A cut connection is noticed at once; a stalled one when the lease ends.
        tokio::time::sleep(grace).await;
        other.set_enabled(&Actor::cli(), &id, false).await.unwrap();
        for _ in 0..5 {
            let s = token().await;
            assert!(s == 503 || s == 401, "{fault}: the disabled client got {s}");
        }
        b.proxy.restore();
        let started = std::time::Instant::now();
        let mut statuses = Vec::new();
        loop {
            let s = token().await;
            assert_ne!(
                s, 200,
                "{fault}: the disabled client was served: {statuses:?}"
            );
            statuses.push(s);
            if s == 401 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{fault}: never recovered: {statuses:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        other.set_enabled(&Actor::cli(), &id, true).await.unwrap();
        let started = std::time::Instant::now();
        while token().await != 200 {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{fault}: enable not seen"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    b.wait_for_cache(&http).await;
    b.stop().await;
}

/// The SQLite client cache never serves a client as it was before a commit made
/// through another handle (as by the CLI or another replica): a random sequence of
/// changes, each followed by a read through the cached handle compared with the
/// truth read by the writer. Also checks that the cache is really used (hits).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_client_cache_sees_every_commit() {
    use auth_broker_server::testing::ClientRecord;
    use proptest::prelude::Rng;
    use proptest::test_runner::{RngAlgorithm, TestRng};

    let fresh = FreshStore::new(Backend::Sqlite).await;
    let (served, cli) = (fresh.open().await, fresh.open().await);
    let (served, cli) = (Raw(&served), Raw(&cli));
    assert!(
        matches!(
            served.client_cache_stats(),
            Some(auth_broker_server::testing::CacheStats {
                on: true,
                hits: 0,
                misses: 0,
                bypassed: 0
            })
        ),
        "the cache is on for a file database: {:?}",
        served.client_cache_stats()
    );
    let ids = ["c0", "c1", "c2", "unknown"];
    let record = |id: &str, n: i64| {
        let mut c = ClientRecord::new(id.to_owned(), format!("{id}-{n}"), format!("hash-{n}"), n);
        c.scopes = vec!["read".into()];
        c
    };
    for id in &ids[..3] {
        cli.insert_client(&record(id, 0)).await.unwrap();
    }
    let mut rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]);
    for step in 1..=400_i64 {
        let id = ids[(rng.next_u32() % 4) as usize];
        match rng.next_u32() % 6 {
            0 => {
                let _ = cli.change_client(id, |c| c.enabled = false).await.unwrap();
            }
            1 => {
                let _ = cli.change_client(id, |c| c.enabled = true).await.unwrap();
            }
            2 => {
                let hash = format!("hash-{step}");
                let _ = cli
                    .change_client(id, |c| c.secret_hash.clone_from(&hash))
                    .await
                    .unwrap();
            }
            3 => {
                let _ = cli.delete_client(id).await.unwrap();
            }
            4 if cli.get_client(id).await.unwrap().is_none() => {
                cli.insert_client(&record(id, step)).await.unwrap();
            }
            _ => {} // no change: the next reads may be hits
        }
        for id in ids {
            let truth = cli.get_client(id).await.unwrap();
            for _ in 0..2 {
                let seen = served.get_client_for_auth(id).await.unwrap();
                assert_eq!(seen.as_deref(), truth.as_ref(), "step {step}, client {id}");
            }
        }
    }
    let auth_broker_server::testing::CacheStats { hits, misses, .. } =
        served.client_cache_stats().unwrap();
    assert!(
        hits >= 1600,
        "every second read is a hit: {hits} hits, {misses} misses"
    );
    assert!(
        misses >= 100,
        "changes are misses: {hits} hits, {misses} misses"
    );
}

/// The SQLite store holds the signing keys: its files are the owner's alone (0600),
/// the database and the WAL and shared-memory files SQLite creates beside it, whatever
/// the umask. Run as root, another user (`nobody`) is shown to be unable to read them
/// through a directory anyone may enter.
#[cfg(unix)]
#[tokio::test]
async fn sqlite_files_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // Only the files' own modes may protect them: the directory is open to all.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let db = dir.path().join("broker.db");
    let store = Store::open(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    // A write, so the WAL and its index exist.
    Admin::new(store.clone(), Arc::new(ManualClock::default()))
        .create_client(
            &Actor::cli(),
            &NewClient {
                name: "x".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let files: Vec<_> = ["broker.db", "broker.db-wal", "broker.db-shm"]
        .iter()
        .map(|f| dir.path().join(f))
        .collect();
    for f in &files {
        let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} is {mode:o}", f.display());
    }
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    let runuser = std::path::Path::new("/usr/sbin/runuser").exists()
        || std::path::Path::new("/sbin/runuser").exists();
    if root && runuser {
        for f in &files {
            let out = std::process::Command::new("runuser")
                .args(["-u", "nobody", "--", "head", "-c", "16"])
                .arg(f)
                .output()
                .unwrap();
            assert!(
                !out.status.success(),
                "nobody read {}: {:?}",
                f.display(),
                out
            );
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
                "{out:?}"
            );
        }
        // The check itself works: a file nobody may read is read.
        let open = dir.path().join("open");
        std::fs::write(&open, "readable").unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = std::process::Command::new("runuser")
            .args(["-u", "nobody", "--", "cat"])
            .arg(&open)
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"readable", "{out:?}");
    }
    drop(store);
}

/// Pruning reads each key's recorded lifetime: raised (never lowered) by every broker
/// that signs with it; a key stored before lifetimes were recorded is kept for the
/// longest lifetime any broker allows.
async fn retired_keys_are_pruned_by_their_stored_lifetime(backend: Backend) {
    let fresh = FreshStore::new(backend).await;
    let store = fresh.open().await;
    let store = Raw(&store);
    let mut legacy = SigningKey::generate(SigningAlg::Es256, 0).unwrap();
    legacy.max_token_ttl = None;
    store.rotate_key(&legacy, 0).await.unwrap();
    let covered = SigningKey::generate(SigningAlg::Es256, 10).unwrap();
    store.rotate_key(&covered, 10).await.unwrap(); // retires `legacy` at 10
    assert!(store.cover_key_ttl(&covered.kid, 600).await.unwrap());
    assert!(store.cover_key_ttl(&covered.kid, 60).await.unwrap());
    assert!(!store.cover_key_ttl("no-such-kid", 60).await.unwrap());
    let newest = SigningKey::generate(SigningAlg::Es256, 20).unwrap();
    store.rotate_key(&newest, 20).await.unwrap(); // retires `covered` at 20
    let kids = || async { store.list_keys().await.unwrap() };
    let find = |keys: &[auth_broker_server::testing::KeyRecord], kid: &str| {
        keys.iter().find(|k| k.kid == kid).cloned()
    };
    let keys = kids().await;
    let c = find(&keys, &covered.kid).unwrap();
    assert_eq!(c.max_token_ttl, Some(600), "raised to 600, never lowered");
    assert_eq!(c.needed_until(60), Some(20 + 600 + 60));
    // 680 is the last second `covered` is needed; the legacy key is needed for 31 days.
    assert_eq!(store.prune(680, 60).await.unwrap().keys, 0);
    assert_eq!(store.prune(681, 60).await.unwrap().keys, 1);
    let keys = kids().await;
    assert!(find(&keys, &covered.kid).is_none());
    let l = find(&keys, &legacy.kid).unwrap();
    let until = 10 + auth_broker_server::MAX_TOKEN_TTL_SECS + 60;
    assert_eq!(l.needed_until(60), Some(until));
    assert_eq!(store.prune(until, 60).await.unwrap().keys, 0);
    assert_eq!(store.prune(until + 1, 60).await.unwrap().keys, 1);
    assert_eq!(kids().await.len(), 1, "the active key is never pruned");
}
