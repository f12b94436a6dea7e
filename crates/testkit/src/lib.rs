//! Starts a real auth-broker on `127.0.0.1:0` with a fresh store, for tests.
//!
//! SQLite stores live in a temporary directory; PostgreSQL stores are a fresh
//! database per broker (`CREATE DATABASE`), dropped when the [`TestBroker`] is.
//! The PostgreSQL server is the one at `AUTH_BROKER_TEST_PG_URL`, else the one at
//! `127.0.0.1:5432`, else a throwaway cluster the kit starts for the test process and
//! stops when it exits ([`pg`] says exactly when and how). When there is none of
//! these the test fails, naming what to install; it is never skipped.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a failure here is a test failure

pub mod flaky;
pub mod keybound;
pub mod pg;
pub mod tls;

use auth_broker_proto::ClientSecret;
use auth_broker_server::Store;
use auth_broker_server::admin::{Actor, Admin, NewClient};
use auth_broker_server::clock::{Clock, ManualClock, SystemClock};
use auth_broker_server::testing::Raw;
use auth_broker_server::{Config, Server, testing};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// `GET url` with `http` and its JSON body, whatever the status: a JWKS, the
/// metadata, any JSON a test reads (through a client of its own: one that trusts a
/// test CA, or a broker it started as a process).
pub async fn get_json<T: serde::de::DeserializeOwned>(http: &reqwest::Client, url: &str) -> T {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

/// What `GET /auth-broker/token-info` answered.
#[derive(Debug)]
pub struct TokenInfoAnswer {
    pub status: u16,
    /// `WWW-Authenticate`, when there is one.
    pub challenge: Option<String>,
    pub body: serde_json::Value,
}

impl TokenInfoAnswer {
    /// The body's `error_description` (empty when there is none).
    pub fn description(&self) -> &str {
        self.body["error_description"].as_str().unwrap_or_default()
    }
}

/// Which store a test broker uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The server PostgreSQL tests create their databases on, chosen (and, if need be,
/// started) the first time a test asks: see [`pg`].
pub fn pg_admin_url() -> String {
    pg::admin_url()
}

/// That server's TCP address, for a proxy in front of it.
pub fn pg_server_addr() -> SocketAddr {
    pg::server_addr()
}

fn with_db(admin_url: &str, db: &str) -> String {
    let (base, _) = admin_url
        .rsplit_once('/')
        .expect("the PostgreSQL URL has a /database part");
    format!("{base}/{db}")
}

/// A fresh, empty store: a SQLite file in a temp dir or a new PostgreSQL database.
#[derive(Debug)]
pub struct FreshStore {
    pub url: String,
    pub backend: Backend,
    _dir: Option<tempfile::TempDir>,
    pg_db: Option<String>,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

impl FreshStore {
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("broker.db").display());
                Self {
                    url,
                    backend,
                    _dir: Some(dir),
                    pg_db: None,
                }
            }
            Backend::Postgres => {
                let db = format!(
                    "ab_test_{}_{}_{}",
                    std::process::id(),
                    SEQ.fetch_add(1, Ordering::Relaxed),
                    testing::generate_client_id()
                        .unwrap()
                        .get(..8)
                        .unwrap_or("x")
                );
                let admin = pg_admin_url();
                let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("PostgreSQL must be reachable at {admin} for these tests: {e}")
                    });
                tokio::spawn(conn);
                client
                    .batch_execute(&format!("CREATE DATABASE {db}"))
                    .await
                    .unwrap();
                Self {
                    url: with_db(&admin, &db),
                    backend,
                    _dir: None,
                    pg_db: Some(db),
                }
            }
        }
    }

    pub async fn open(&self) -> Store {
        Store::open(&self.url).await.unwrap()
    }
}

impl Drop for FreshStore {
    fn drop(&mut self) {
        if let Some(db) = self.pg_db.take() {
            // Drop runs outside async; a short-lived runtime on its own thread does it.
            let admin = pg_admin_url();
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    if let Ok((client, conn)) =
                        tokio_postgres::connect(&admin, tokio_postgres::NoTls).await
                    {
                        tokio::spawn(conn);
                        let _ = client
                            .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

/// A running broker.
#[derive(Debug)]
pub struct TestBroker {
    pub addr: SocketAddr,
    /// The operator's metrics listener, when `config.metrics_listen` asked for one.
    pub metrics_addr: Option<SocketAddr>,
    pub base: String,
    pub issuer: String,
    /// A separate handle on the same store, as the CLI or another replica would have.
    pub store: Store,
    /// The broker's own handle (shares its client cache, for its statistics).
    pub served: Store,
    state: Arc<auth_broker_server::AppState>,
    pub fresh: Arc<FreshStore>,
    pub http: reqwest::Client,
    /// Reloads the certificate, when the broker was started with `config.tls`.
    pub tls: Option<auth_broker_server::tls::TlsHandle>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

/// How to start a test broker.
#[derive(Debug, Default)]
pub struct Options {
    pub config: Config,
    pub clock: Option<ManualClock>,
    /// Reuse an existing store (for several replicas on one database).
    pub store: Option<Arc<FreshStore>>,
}

impl TestBroker {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, Options::default()).await
    }

    /// A broker with these settings (the listen address is always 127.0.0.1:0).
    pub async fn start_config(backend: Backend, config: Config) -> Self {
        Self::start_with(
            backend,
            Options {
                config,
                ..Options::default()
            },
        )
        .await
    }

    /// A broker whose clock is `clock` (a test moves it; a guard may share it).
    pub async fn start_at(backend: Backend, clock: ManualClock) -> Self {
        Self::start_with(
            backend,
            Options {
                clock: Some(clock),
                ..Options::default()
            },
        )
        .await
    }

    /// `GET path` and its JSON body, whatever the status.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        get_json(&self.http, &self.url(path)).await
    }

    /// `GET /auth-broker/token-info{query}` with this `Authorization` value (or
    /// none), and what it answered.
    pub async fn token_info(&self, authorization: Option<&str>, query: &str) -> TokenInfoAnswer {
        let mut rb = self
            .http
            .get(self.url(&format!("/auth-broker/token-info{query}")));
        if let Some(a) = authorization {
            rb = rb.header("authorization", a);
        }
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        let challenge = r
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        TokenInfoAnswer {
            status,
            challenge,
            body: r.json().await.unwrap(),
        }
    }

    pub async fn start_with(backend: Backend, opts: Options) -> Self {
        let fresh = match opts.store {
            Some(s) => s,
            None => Arc::new(FreshStore::new(backend).await),
        };
        let mut config = opts.config;
        config.listen = "127.0.0.1:0".parse().unwrap();
        let clock: Arc<dyn Clock> = match opts.clock {
            Some(c) => Arc::new(c),
            None => Arc::new(SystemClock),
        };
        let server_store = fresh.open().await;
        let served = server_store.clone();
        let server = Server::bind(config, server_store, clock).await.unwrap();
        let addr = server.local_addr().unwrap();
        let metrics_addr = server.metrics_addr();
        let state = server.state().clone();
        let issuer = server.issuer().to_owned();
        let tls = server.tls_handle();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        let store = fresh.open().await;
        Self {
            addr,
            metrics_addr,
            base: format!("{}://{addr}", if tls.is_some() { "https" } else { "http" }),
            issuer,
            store,
            served,
            state,
            fresh,
            http: reqwest::Client::new(),
            tls,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// The running broker's own state (test support: flush usage, sign directly).
    pub fn served_state(&self) -> &auth_broker_server::AppState {
        &self.state
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn token_url(&self) -> String {
        self.url("/auth-broker/request-token")
    }

    /// The change service on a separate store handle, as the CLI or another replica
    /// would have it (the broker sees its changes from the next request on).
    pub fn admin(&self) -> Admin {
        Admin::new(self.store.clone(), Arc::new(SystemClock))
    }

    /// The store's own operations on the separate handle (test support).
    pub fn raw(&self) -> Raw<'_> {
        Raw(&self.store)
    }

    /// Registers a client through the same service the CLI uses.
    pub async fn create_client(
        &self,
        name: &str,
        scope: &str,
        audience: Option<&str>,
    ) -> (String, ClientSecret) {
        let (c, s) = self
            .admin()
            .create_client(
                &Actor::cli(),
                &NewClient {
                    name: name.into(),
                    scope: scope.into(),
                    audience: audience.map(str::to_owned),
                },
            )
            .await
            .unwrap();
        (c.client_id, s)
    }

    /// Registers a client with a chosen id and secret (for encoding edge cases).
    pub async fn insert_client(&self, id: &str, secret: &str, scope: &str) {
        self.raw()
            .insert_client_with_secret(id, secret, scope)
            .await
            .unwrap();
    }

    /// A token request with Basic credentials and the contract's body.
    pub async fn request_token(&self, id: &str, secret: &ClientSecret) -> reqwest::Response {
        self.http
            .post(self.token_url())
            .basic_auth(id, Some(secret.expose_secret()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .await
            .unwrap()
    }

    /// Fetches a token and returns it, failing the test on anything but `200`.
    pub async fn token(&self, id: &str, secret: &ClientSecret) -> String {
        let r = self.request_token(id, secret).await;
        assert_eq!(r.status(), 200, "token request failed");
        let v: serde_json::Value = r.json().await.unwrap();
        v["access_token"].as_str().unwrap().to_owned()
    }

    /// Stops the broker gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A TCP proxy that a test can cut, stall and restore, to play an unreachable store.
#[derive(Debug)]
pub struct CuttableProxy {
    pub addr: SocketAddr,
    state: Arc<std::sync::Mutex<ProxyState>>,
    /// `true` while the proxy blackholes traffic (see [`CuttableProxy::stall`]).
    stalled: tokio::sync::watch::Sender<bool>,
    accept: JoinHandle<()>,
}

#[derive(Debug, Default)]
struct ProxyState {
    cut: bool,
    conns: Vec<tokio::task::AbortHandle>,
}

impl CuttableProxy {
    /// Forwards every connection to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state: Arc<std::sync::Mutex<ProxyState>> = Arc::default();
        let (stalled, _) = tokio::sync::watch::channel(false);
        let st = state.clone();
        let stall = stalled.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if st.lock().unwrap().cut {
                    drop(inbound);
                    continue;
                }
                let mut stall = stall.subscribe();
                let task = tokio::spawn(async move {
                    if *stall.borrow_and_update() {
                        // Accept, then never answer: the socket stays open and silent.
                        std::future::pending::<()>().await;
                    }
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let stalled = tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => false,
                            r = stall.wait_for(|s| *s) => r.is_ok(),
                        };
                        if stalled {
                            // Stop forwarding but keep both sockets open: packets vanish.
                            std::future::pending::<()>().await;
                        }
                    }
                });
                st.lock().unwrap().conns.push(task.abort_handle());
            }
        });
        Self {
            addr,
            state,
            stalled,
            accept,
        }
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        let mut st = self.state.lock().unwrap();
        st.cut = true;
        for c in st.conns.drain(..) {
            c.abort();
        }
    }

    /// Blackholes the store: open connections stop forwarding but stay open, new ones
    /// are accepted and never answered (a dead host behind a firewall that drops
    /// packets, rather than one that refuses them).
    pub fn stall(&self) {
        self.stalled.send_replace(true);
    }

    /// Forwards again. Connections that were stalled are dropped (as a NAT or firewall
    /// would have forgotten them); new ones are forwarded.
    pub fn restore(&self) {
        let mut st = self.state.lock().unwrap();
        if self.stalled.send_replace(false) {
            for c in st.conns.drain(..) {
                c.abort();
            }
        }
        st.cut = false;
    }
}

impl CuttableProxy {
    /// Forwards new connections again but leaves the stalled ones open and silent
    /// forever, as a NAT or firewall that forgot them without telling either end: a
    /// client recovers only if it stops using such a connection by itself.
    pub fn restore_keeping_dead(&self) {
        self.stalled.send_replace(false);
        self.state.lock().unwrap().cut = false;
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

impl FreshStore {
    /// The same PostgreSQL database reached through another port (a proxy's).
    pub fn url_via(&self, addr: SocketAddr) -> String {
        let (scheme_user, rest) = self
            .url
            .split_once('@')
            .expect("a postgres URL with user@host");
        let (_, db) = rest.split_once('/').expect("a /database part");
        format!("{scheme_user}@{addr}/{db}")
    }
}
