//! The PostgreSQL store, for several broker replicas sharing one database.

use super::client_cache::{CacheStats, ClientCache, Epoch, Lookup, Ticket};
use super::{
    AuditQuery, AuditRow, ClientQuery, ClientRecord, KeyRecord, NewEvent, OpaqueRecord, Pruned,
    STORE_TIMEOUT, StoreError, Timestamp, UsageRow, Written, default_audience, join_scopes,
    json_list, like_pattern, migrations, parse_json_list, split_scopes,
};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::{AsyncMessage, NoTls, Row};

/// Advisory lock ids: one serialises migrations, one the creation of signing keys,
/// so replicas starting together neither race a schema change nor mint two keys.
const MIGRATION_LOCK: i64 = 0x6175_7468_6d69_6772; // "authmigr"
const KEY_LOCK: i64 = 0x6175_7468_6b65_7973; // "authkeys"

#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    /// The connection every token request's client read shares (see [`Self::shared`]).
    shared: Arc<std::sync::Mutex<Option<Arc<SharedConn>>>>,
    url: String,
    /// What the change listener connects with.
    cfg: Arc<tokio_postgres::Config>,
    /// Raised on every client change heard; live while the listener listens.
    epoch: Arc<Epoch>,
    /// Clients read for token requests, kept while `epoch` is live and unchanged.
    clients: Arc<ClientCache>,
    /// Woken on every signing key change heard (a rotation, a retirement, a prune),
    /// and whenever the listener (re)connects, when changes may have been missed.
    keys_changed: Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry the database password.
        f.debug_struct("PgStore")
            .field("url", &super::redact_url(&self.url))
            .finish()
    }
}

const KEY_COLUMNS: &str =
    "kid, alg, private_key, public_jwk, created_at, retired_at, max_token_ttl";

/// A statement parameter that must never be written to a log: a private key, a secret
/// hash, a token hash.
///
/// tokio-postgres logs every statement's parameters with their `Debug` at the `log`
/// crate's debug level ("executing statement s4 with parameters: [...]"), and any
/// subscriber that forwards `log` records at debug or trace (`RUST_LOG=debug`) would
/// write a signing key's PKCS#8 bytes or a secret's hash to the log. Binding through
/// this wrapper makes that `Debug` print `[redacted]` whatever the log setup, also
/// for programs that embed the store with their own subscriber. The value is encoded
/// exactly as the wrapped one (`ToSql` delegates).
struct Sensitive<T>(T);

impl<T> std::fmt::Debug for Sensitive<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T: tokio_postgres::types::ToSql> tokio_postgres::types::ToSql for Sensitive<T> {
    fn to_sql(
        &self,
        ty: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        self.0.to_sql(ty, out)
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        T::accepts(ty)
    }

    tokio_postgres::types::to_sql_checked!();
}

fn client_from_row(r: &Row) -> Result<ClientRecord, tokio_postgres::Error> {
    Ok(ClientRecord {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        secret_hash: r.try_get(2)?,
        previous_secret_hash: r.try_get(3)?,
        previous_secret_expires_at: r.try_get(4)?,
        scopes: split_scopes(r.try_get::<_, &str>(5)?),
        // 6: `audience`, the default audience older versions read; `audiences` has it.
        enabled: r.try_get(7)?,
        created_at: r.try_get(8)?,
        updated_at: r.try_get(9)?,
        audiences: split_scopes(r.try_get::<_, &str>(10)?),
        access_token_ttl: r.try_get(11)?,
        extra_claims: r.try_get(12)?,
        tokens_per_minute: r
            .try_get::<_, Option<i64>>(13)?
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        auth_method: r.try_get(14)?,
        secret_expires_at: r.try_get(15)?,
        contacts: parse_json_list(r.try_get::<_, &str>(16)?),
        description: r.try_get(17)?,
        version: r.try_get(18)?,
        tokens_revoked_before: r.try_get(19)?,
        secret_issued_at: r.try_get(20)?,
        jwks: r.try_get(21)?,
        jwks_uri: r.try_get(22)?,
        tls_client_auth_subject_dn: r.try_get(23)?,
        dpop_bound_access_tokens: r.try_get(24)?,
    })
}

/// The values of every client column, in [`client_columns`] order, the secret
/// hashes wrapped so that no log shows them.
struct ClientValues<'a> {
    c: &'a ClientRecord,
    secret_hash: Sensitive<&'a String>,
    previous_secret_hash: Sensitive<&'a Option<String>>,
    scopes: String,
    audience: Option<String>,
    audiences: String,
    tokens_per_minute: Option<i64>,
    contacts: String,
}

impl<'a> ClientValues<'a> {
    fn of(c: &'a ClientRecord) -> Self {
        Self {
            c,
            secret_hash: Sensitive(&c.secret_hash),
            previous_secret_hash: Sensitive(&c.previous_secret_hash),
            scopes: join_scopes(&c.scopes),
            audience: default_audience(c).map(str::to_owned),
            audiences: join_scopes(&c.audiences),
            tokens_per_minute: c.tokens_per_minute.map(i64::from),
            contacts: json_list(&c.contacts),
        }
    }

    fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); super::CLIENT_COLUMNS] {
        let c = self.c;
        [
            &c.id,
            &c.name,
            &self.secret_hash,
            &self.previous_secret_hash,
            &c.previous_secret_expires_at,
            &self.scopes,
            &self.audience,
            &c.enabled,
            &c.created_at,
            &c.updated_at,
            &self.audiences,
            &c.access_token_ttl,
            &c.extra_claims,
            &self.tokens_per_minute,
            &c.auth_method,
            &c.secret_expires_at,
            &self.contacts,
            &c.description,
            &c.version,
            &c.tokens_revoked_before,
            &c.secret_issued_at,
            &c.jwks,
            &c.jwks_uri,
            &c.tls_client_auth_subject_dn,
            &c.dpop_bound_access_tokens,
        ]
    }
}

async fn insert_event(
    tx: &deadpool_postgres::Transaction<'_>,
    e: &NewEvent,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO audit_events (at, actor, action, target, changes, request_id, peer) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[&e.at_ms, &e.actor, &e.action, &e.target, &e.changes, &e.request_id, &e.peer],
    )
    .await?;
    Ok(())
}

/// A key rotation's audit event: the new kid, and the active kid before and after.
async fn insert_key_event(
    tx: &deadpool_postgres::Transaction<'_>,
    e: &NewEvent,
    alg: &str,
    new_kid: &str,
) -> Result<(), StoreError> {
    let old: Option<String> = tx
        .query_opt(
            "SELECT kid FROM signing_keys WHERE alg = $1 AND retired_at IS NULL ORDER BY created_at DESC, kid LIMIT 1",
            &[&alg],
        )
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    insert_event(
        tx,
        &NewEvent {
            target: new_kid.to_owned(),
            changes: serde_json::json!({ "active_kid": [old, new_kid] }).to_string(),
            ..e.clone()
        },
    )
    .await
}

fn key_from_row(r: &Row) -> Result<KeyRecord, tokio_postgres::Error> {
    Ok(KeyRecord {
        kid: r.try_get(0)?,
        alg: r.try_get(1)?,
        private_key: r.try_get(2)?,
        public_jwk: r.try_get(3)?,
        created_at: r.try_get(4)?,
        retired_at: r.try_get(5)?,
        max_token_ttl: r.try_get(6)?,
    })
}

/// A pooled connection shared by concurrent readers. One that failed or timed out
/// is marked broken: it leaves the shared slot at once and, when its last reader is
/// done, is closed instead of going back to the pool, where a half-dead socket (a
/// network cut that never sent a reset) would otherwise be handed out again.
struct SharedConn {
    conn: Option<deadpool_postgres::Object>,
    broken: std::sync::atomic::AtomicBool,
}

impl SharedConn {
    /// The connection, while it is usable (`None` once closed).
    fn open(&self) -> Option<&deadpool_postgres::Object> {
        self.conn.as_ref().filter(|c| !c.is_closed())
    }
}

impl Drop for SharedConn {
    fn drop(&mut self) {
        if self.broken.load(std::sync::atomic::Ordering::Relaxed)
            && let Some(conn) = self.conn.take()
        {
            drop(deadpool_postgres::Object::take(conn));
        }
    }
}

/// Bounds a store call, so an unreachable database gives a prompt error, not a hang.
async fn bounded<T>(f: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    tokio::time::timeout(STORE_TIMEOUT, f)
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable(format!(
                "no answer from PostgreSQL within {} s",
                STORE_TIMEOUT.as_secs()
            )))
        })
}

/// The channel the `clients` triggers notify (migration 6; since migration 8 with the
/// changed client's id as payload).
const CHANGES: &str = "auth_broker_clients";

/// The channel the `signing_keys` trigger notifies (migration 7).
const KEY_CHANGES: &str = "auth_broker_keys";

/// How long a client change waits after its commit before it returns, so that every
/// listening replica has heard it (see `PgStore::changed`).
pub const CHANGE_SETTLE: Duration = Duration::from_millis(50);

/// How often the change listener checks that its connection still answers; each
/// answer renews the cache's lease ([`super::client_cache::LEASE`], three of these).
pub const HEARTBEAT: Duration = Duration::from_millis(500);

/// One session of the change listener: connects, listens, goes live, and raises the
/// epoch at every client notification (wakes `keys` at every key notification) until
/// the connection ends or stops answering. `Ok` when it was live at some point (the
/// caller retries soon), `Err` when it never got that far.
async fn listen(
    cfg: &tokio_postgres::Config,
    epoch: &Arc<Epoch>,
    keys: &Arc<tokio::sync::Notify>,
) -> Result<(), String> {
    let (client, mut conn) = cfg.connect(NoTls).await.map_err(|e| e.to_string())?;
    let heard = epoch.clone();
    let rekey = keys.clone();
    // The connection's messages: notifications raise the epoch or wake the key
    // refresh; the task ends with the connection.
    let mut driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| conn.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) if n.channel() == KEY_CHANGES => {
                    rekey.notify_one();
                }
                // The payload names the client (migration 8); empty: any client.
                Some(Ok(AsyncMessage::Notification(n))) => {
                    heard.changed(Some(n.payload()).filter(|id| !id.is_empty()));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return e.to_string(),
                None => return "the connection closed".to_owned(),
            }
        }
    });
    let listening = tokio::time::timeout(
        STORE_TIMEOUT,
        client.batch_execute(&format!("LISTEN {CHANGES}; LISTEN {KEY_CHANGES}")),
    )
    .await;
    if !matches!(listening, Ok(Ok(()))) {
        driver.abort();
        return Err("LISTEN failed or timed out".into());
    }
    epoch.go_live();
    // A key may have changed while nobody listened.
    keys.notify_one();
    tracing::debug!("client change listener: listening; client cache on");
    let why = loop {
        tokio::select! {
            ended = &mut driver => break ended.unwrap_or_else(|e| e.to_string()),
            () = tokio::time::sleep(HEARTBEAT) => {
                match tokio::time::timeout(super::client_cache::LEASE, client.simple_query("SELECT 1")).await {
                    Ok(Ok(_)) => epoch.renew(),
                    Ok(Err(e)) => break e.to_string(),
                    Err(_) => break "no answer to the heartbeat".to_owned(),
                }
            }
        }
    };
    epoch.go_dead();
    driver.abort();
    tracing::warn!(reason = %why, "client change listener: connection lost; client cache off until it is back");
    Ok(())
}

impl PgStore {
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let redacted = super::redact_url(url);
        let mut cfg = tokio_postgres::Config::from_str(url)
            .map_err(|e| StoreError::Config(format!("invalid PostgreSQL URL {redacted}: {e}")))?;
        cfg.connect_timeout(STORE_TIMEOUT);
        cfg.application_name("auth-broker");
        let cfg_for_listener = cfg.clone();
        let mgr = Manager::from_config(
            cfg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(16)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(STORE_TIMEOUT))
            .create_timeout(Some(STORE_TIMEOUT))
            .recycle_timeout(Some(STORE_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Config(e.to_string()))?;
        let epoch = Arc::new(Epoch::default());
        let store = Self {
            pool,
            shared: Arc::default(),
            url: redacted,
            cfg: Arc::new(cfg_for_listener),
            clients: Arc::new(ClientCache::notified(epoch.clone())),
            epoch,
            keys_changed: Arc::default(),
        };
        store.ping().await.map_err(|e| {
            StoreError::Unavailable(format!("cannot reach PostgreSQL at {}: {e}", store.url))
        })?;
        Ok(store)
    }

    async fn conn(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    /// One pooled connection shared by the hot read of every token request.
    ///
    /// tokio-postgres pipelines the queries of concurrent callers on one connection:
    /// its connection task writes every query waiting in its queue with one `write`,
    /// and PostgreSQL answers them in order. With a connection per request, 32
    /// requests in flight are 32 sockets, each query its own write, read and wake-up
    /// of a backend process on each side; shared, they are a handful (about 1.3x the
    /// token requests per second, `bench/load.sh`). Every request still reads the
    /// database, so a change by the CLI or another replica is seen by the next one. A
    /// closed connection (PostgreSQL restarted, the network cut) is dropped and the
    /// next call takes a fresh one from the pool.
    async fn shared(&self) -> Result<Arc<SharedConn>, StoreError> {
        let slot = || {
            self.shared
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some(c) = slot().as_ref().filter(|c| c.open().is_some()) {
            return Ok(c.clone());
        }
        let fresh = Arc::new(SharedConn {
            conn: Some(self.conn().await?),
            broken: false.into(),
        });
        let mut slot = slot();
        match slot.as_ref().filter(|c| c.open().is_some()) {
            Some(c) => Ok(c.clone()),
            None => {
                *slot = Some(fresh.clone());
                Ok(fresh)
            }
        }
    }

    /// After a failed or timed-out read on `conn`: no request uses it again.
    fn forget_shared(&self, conn: &Arc<SharedConn>) {
        conn.broken
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let mut slot = self
            .shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
            *slot = None;
        }
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.migrate_to(i64::MAX).await
    }

    /// Applies the pending migrations up to `target` (tests of upgrades stop early).
    pub async fn migrate_to(&self, target: i64) -> Result<(), StoreError> {
        bounded(async {
            let mut conn = self.conn().await?;
            let tx = conn.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
            tx.batch_execute(migrations::CREATE_TABLE).await?;
            let current: i64 = tx
                .query_one("SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations", &[])
                .await?
                .try_get(0)?;
            let newest = migrations::POSTGRES.last().map_or(0, |m| m.0);
            if current > newest {
                return Err(StoreError::SchemaTooNew {
                    found: current,
                    known: newest,
                });
            }
            for (version, description, sql) in migrations::POSTGRES.iter().filter(|m| m.0 > current && m.0 <= target) {
                tx.batch_execute(sql).await?;
                tx.execute(
                    "INSERT INTO schema_migrations (version, description, applied_at) VALUES ($1, $2, EXTRACT(EPOCH FROM now())::BIGINT)",
                    &[version, description],
                )
                .await?;
                tracing::info!(version, description, "applied PostgreSQL migration");
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        bounded(async {
            self.conn().await?.simple_query("SELECT 1").await?;
            Ok(())
        })
        .await
    }

    async fn query_opt_client(
        &self,
        sql: &str,
        arg: &str,
    ) -> Result<Option<ClientRecord>, StoreError> {
        bounded(async {
            let conn = self.conn().await?;
            let stmt = conn.prepare_cached(sql).await?;
            match conn.query_opt(&stmt, &[&arg]).await? {
                Some(row) => Ok(Some(client_from_row(&row)?)),
                None => Ok(None),
            }
        })
        .await
    }

    pub async fn get_client(&self, id: &str) -> Result<Option<ClientRecord>, StoreError> {
        self.query_opt_client(
            concat!("SELECT ", client_columns!(), " FROM clients WHERE id = $1"),
            id,
        )
        .await
    }

    /// [`super::Store::get_client_for_auth`]: one row whatever happens, decoded the
    /// same way, after the same two index probes.
    pub async fn get_client_for_auth(
        &self,
        id: &str,
        dummy_hash: &str,
    ) -> Result<Option<Arc<ClientRecord>>, StoreError> {
        // PostgreSQL's text cannot hold a NUL (binding one is an error, which would be
        // a 500 and escape the failure limit). No client has such an id, so it is an
        // unknown client: the same query runs on a stand-in (U+FFFD for each NUL) and
        // its answer is dropped, so the work and the answer are an unknown id's.
        match self.clients.lookup(id) {
            Lookup::Hit(entry) => Ok(entry),
            // Boxed: the read's future (a connection, a prepared statement, two
            // timeouts) is large, and without the box every token request's future
            // would carry it even when the cache answers.
            Lookup::Miss(ticket) => {
                Box::pin(self.read_client_for_auth(ticket, id, dummy_hash)).await
            }
        }
    }

    /// The read behind a cache miss of [`Self::get_client_for_auth`].
    async fn read_client_for_auth(
        &self,
        ticket: Ticket,
        id: &str,
        dummy_hash: &str,
    ) -> Result<Option<Arc<ClientRecord>>, StoreError> {
        let unstorable = id.contains('\0');
        let stand_in;
        let id = if unstorable {
            stand_in = id.replace('\0', "\u{FFFD}");
            stand_in.as_str()
        } else {
            id
        };
        let shared = bounded(self.shared()).await?;
        let read = bounded(async {
            let conn = shared.open().ok_or_else(|| {
                StoreError::Unavailable("the PostgreSQL connection closed".into())
            })?;
            let stmt = conn
                .prepare_cached(concat!(
                    "SELECT ",
                    client_columns!(),
                    ", TRUE FROM clients WHERE id = $1 \
                     UNION ALL \
                     SELECT $1, '', $2, NULL, NULL, '', NULL, FALSE, 0::BIGINT, 0::BIGINT, \
                            '', NULL::BIGINT, NULL, NULL::BIGINT, '', 0::BIGINT, '[]', '', 0::BIGINT, NULL::BIGINT, 0::BIGINT, \
                            NULL, NULL, NULL, FALSE, FALSE \
                     WHERE NOT EXISTS (SELECT 1 FROM clients WHERE id = $1)"
                ))
                .await?;
            let row = conn
                .query_one(&stmt, &[&id, &Sensitive(dummy_hash)])
                .await?;
            let rec = client_from_row(&row)?;
            Ok((row.try_get::<_, bool>(super::CLIENT_COLUMNS)? && !unstorable).then(|| Arc::new(rec)))
        })
        .await;
        match &read {
            Err(StoreError::Unavailable(_)) => self.forget_shared(&shared),
            Err(_) => {}
            // A NUL id is an unknown one, but not cached under its stand-in.
            Ok(entry) if !unstorable => self.clients.fill(ticket, id, entry),
            Ok(_) => {}
        }
        read
    }

    /// What the client cache did, and whether it is on now.
    pub fn client_cache_stats(&self) -> CacheStats {
        self.clients.stats()
    }

    /// Completes when a signing key changed (see [`Self::listen_for_changes`]).
    pub async fn key_changed(&self) {
        self.keys_changed.notified().await;
    }

    /// Starts the task that hears client changes (`LISTEN auth_broker_clients`, sent
    /// by the `clients` trigger of migration 6 at every commit that changes a client)
    /// and keeps the client cache valid by them (see `client_cache`), and key changes
    /// (`LISTEN auth_broker_keys`, migration 7), which complete [`Self::key_changed`]
    /// so that a rotation on one replica is signed with by every replica at once, not
    /// at their next key poll. Until it listens, and whenever its connection is lost,
    /// the cache is off and every
    /// request reads the database; it reconnects by itself (100 ms, doubling to 5 s)
    /// and checks its connection every [`HEARTBEAT`], each answer renewing the cache's
    /// lease, so a connection that hangs rather than closes turns the cache off when
    /// the lease runs out (1.5 s). Only `serve` starts it: a CLI command reads the
    /// database.
    pub fn listen_for_changes(&self) -> tokio::task::JoinHandle<()> {
        let cfg = self.cfg.clone();
        let epoch = self.epoch.clone();
        let keys = self.keys_changed.clone();
        let url = self.url.clone();
        tokio::spawn(async move {
            let mut wait = Duration::from_millis(100);
            loop {
                match listen(&cfg, &epoch, &keys).await {
                    Ok(()) => wait = Duration::from_millis(100),
                    Err(e) => {
                        tracing::warn!(url = %url, error = %e, "client change listener: no connection; every token request reads the database until it is back")
                    }
                }
                epoch.go_dead();
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        })
    }

    pub async fn get_client_by_name(&self, name: &str) -> Result<Option<ClientRecord>, StoreError> {
        self.query_opt_client(
            concat!(
                "SELECT ",
                client_columns!(),
                " FROM clients WHERE name = $1"
            ),
            name,
        )
        .await
    }

    pub async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        bounded(async {
            let conn = self.conn().await?;
            let rows = conn
                .query(
                    concat!(
                        "SELECT ",
                        client_columns!(),
                        " FROM clients ORDER BY created_at, id"
                    ),
                    &[],
                )
                .await?;
            Ok(rows.iter().map(client_from_row).collect::<Result<_, _>>()?)
        })
        .await
    }

    #[cfg(feature = "testing")]
    pub async fn execute_batch(&self, sql: &str) -> Result<(), StoreError> {
        bounded(async {
            self.conn().await?.batch_execute(sql).await?;
            Ok(())
        })
        .await
    }

    pub async fn find_clients(&self, q: &ClientQuery) -> Result<Vec<ClientRecord>, StoreError> {
        let pattern = q.q.as_deref().map(like_pattern);
        let (after_t, after_id) = q.after.clone().unzip();
        bounded(async {
            let conn = self.conn().await?;
            let stmt = conn
                .prepare_cached(concat!(
                    "SELECT ",
                    client_columns!(),
                    " FROM clients WHERE ($1::TEXT IS NULL OR name ILIKE $1 OR id ILIKE $1 OR description ILIKE $1) \
                     AND ($2::BOOLEAN IS NULL OR enabled = $2) \
                     AND ($3::BIGINT IS NULL OR (created_at, id) > ($3, $4::TEXT)) \
                     ORDER BY created_at, id LIMIT $5"
                ))
                .await?;
            let rows = conn
                .query(&stmt, &[&pattern, &q.enabled, &after_t, &after_id, &q.limit])
                .await?;
            Ok(rows.iter().map(client_from_row).collect::<Result<_, _>>()?)
        })
        .await
    }

    pub async fn insert_client(
        &self,
        c: &ClientRecord,
        event: Option<&NewEvent>,
    ) -> Result<(), StoreError> {
        let r = bounded(async {
            let mut conn = self.conn().await?;
            let tx = conn.transaction().await?;
            let values = ClientValues::of(c);
            tx.execute(
                concat!(
                    "INSERT INTO clients (",
                    client_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25)"
                ),
                &values.params(),
            )
            .await?;
            if let Some(e) = event {
                insert_event(&tx, e).await?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await;
        if r.is_ok() {
            self.changed(&c.id).await;
        }
        match r {
            Err(StoreError::DuplicateName(_)) => Err(StoreError::DuplicateName(c.name.clone())),
            r => r,
        }
    }

    /// After a change of client `id` has committed: this process's cache forgets it at
    /// once, and the call returns only after [`CHANGE_SETTLE`], by when every listening
    /// replica has heard the `NOTIFY` (delivered at commit; measured at a few
    /// milliseconds at most from commit to the first request that sees it, with none
    /// answered as before, `postgres_client_cache_hears_every_change`). So a request
    /// sent after a `client` command, an admin API call or a console change has
    /// returned is answered by the changed client on every replica, as the contract
    /// says ("from the next request on"). Changes are rare; the wait is theirs alone.
    async fn changed(&self, id: &str) {
        self.epoch.changed(Some(id));
        tokio::time::sleep(CHANGE_SETTLE).await;
    }

    pub async fn update_client(
        &self,
        c: &ClientRecord,
        event: Option<&NewEvent>,
    ) -> Result<Written, StoreError> {
        let r = bounded(async {
            let mut conn = self.conn().await?;
            let tx = conn.transaction().await?;
            let values = ClientValues::of(c);
            // Every column but created_at (the 9th), which never changes; the version
            // is checked ($18) and raised.
            let params: Vec<_> = values
                .params()
                .into_iter()
                .enumerate()
                .filter(|(i, _)| *i != 8)
                .map(|(_, p)| p)
                .collect();
            let n = tx
                .execute(
                    "UPDATE clients SET name = $2, secret_hash = $3, previous_secret_hash = $4, \
                     previous_secret_expires_at = $5, scopes = $6, audience = $7, enabled = $8, \
                     updated_at = $9, audiences = $10, access_token_ttl = $11, extra_claims = $12, \
                     tokens_per_minute = $13, token_endpoint_auth_method = $14, \
                     client_secret_expires_at = $15, contacts = $16, description = $17, \
                     version = version + 1, tokens_revoked_before = $19, secret_issued_at = $20, \
                     jwks = $21, jwks_uri = $22, tls_client_auth_subject_dn = $23, \
                     dpop_bound_access_tokens = $24 \
                     WHERE id = $1 AND version = $18",
                    &params,
                )
                .await?;
            if n == 0 {
                let exists = tx
                    .query_opt("SELECT 1 FROM clients WHERE id = $1", &[&c.id])
                    .await?
                    .is_some();
                return Ok(if exists {
                    Written::Stale
                } else {
                    Written::Missing
                });
            }
            if let Some(e) = event {
                insert_event(&tx, e).await?;
            }
            tx.commit().await?;
            Ok(Written::Done)
        })
        .await;
        if matches!(r, Ok(Written::Done)) {
            self.changed(&c.id).await;
        }
        match r {
            Err(StoreError::DuplicateName(_)) => Err(StoreError::DuplicateName(c.name.clone())),
            r => r,
        }
    }

    pub async fn delete_client(
        &self,
        id: &str,
        version: Option<i64>,
        event: Option<&NewEvent>,
    ) -> Result<Written, StoreError> {
        let r = bounded(async {
            let mut conn = self.conn().await?;
            let tx = conn.transaction().await?;
            let n = tx
                .execute(
                    "DELETE FROM clients WHERE id = $1 AND ($2::BIGINT IS NULL OR version = $2)",
                    &[&id, &version],
                )
                .await?;
            if n == 0 {
                let exists = tx
                    .query_opt("SELECT 1 FROM clients WHERE id = $1", &[&id])
                    .await?
                    .is_some();
                return Ok(if exists {
                    Written::Stale
                } else {
                    Written::Missing
                });
            }
            if let Some(e) = event {
                insert_event(&tx, e).await?;
            }
            tx.commit().await?;
            Ok(Written::Done)
        })
        .await;
        if matches!(r, Ok(Written::Done)) {
            self.changed(id).await;
        }
        r
    }

    pub async fn audit_events(&self, q: &AuditQuery) -> Result<Vec<AuditRow>, StoreError> {
        bounded(async {
            let conn = self.conn().await?;
            let stmt = conn
                .prepare_cached(
                    "SELECT id, at, actor, action, target, changes, request_id, peer FROM audit_events \
                     WHERE ($1::TEXT IS NULL OR target = $1) AND ($2::TEXT IS NULL OR action = $2) \
                     AND ($3::BIGINT IS NULL OR at >= $3) AND ($4::BIGINT IS NULL OR id < $4) \
                     ORDER BY id DESC LIMIT $5",
                )
                .await?;
            let rows = conn
                .query(
                    &stmt,
                    &[&q.target, &q.action, &q.since_ms, &q.before, &q.limit],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(AuditRow {
                        id: r.try_get(0)?,
                        at_ms: r.try_get(1)?,
                        actor: r.try_get(2)?,
                        action: r.try_get(3)?,
                        target: r.try_get(4)?,
                        changes: r.try_get(5)?,
                        request_id: r.try_get(6)?,
                        peer: r.try_get(7)?,
                    })
                })
                .collect()
        })
        .await
    }

    pub async fn add_usage(&self, rows: &[UsageRow]) -> Result<(), StoreError> {
        bounded(async {
            let mut conn = self.conn().await?;
            let tx = conn.transaction().await?;
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO usage (client_id, minute, issued, failed, limited) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (client_id, minute) DO UPDATE SET issued = usage.issued + excluded.issued, \
                     failed = usage.failed + excluded.failed, limited = usage.limited + excluded.limited",
                )
                .await?;
            for r in rows {
                tx.execute(
                    &stmt,
                    &[&r.client_id, &r.minute, &r.issued, &r.failed, &r.limited],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    pub async fn usage(
        &self,
        client_id: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<UsageRow>, StoreError> {
        bounded(async {
            let conn = self.conn().await?;
            let stmt = conn
                .prepare_cached(
                    "SELECT client_id, minute, issued, failed, limited FROM usage \
                     WHERE client_id = $1 AND minute >= $2 AND minute <= $3 ORDER BY minute",
                )
                .await?;
            let rows = conn.query(&stmt, &[&client_id, &from, &to]).await?;
            rows.iter()
                .map(|r| {
                    Ok(UsageRow {
                        client_id: r.try_get(0)?,
                        minute: r.try_get(1)?,
                        issued: r.try_get(2)?,
                        failed: r.try_get(3)?,
                        limited: r.try_get(4)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn execute(
        &self,
        sql: &str,
        args: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        bounded(async {
            let conn = self.conn().await?;
            Ok(conn.execute(sql, args).await?)
        })
        .await
    }

    pub async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        bounded(async {
            let conn = self.conn().await?;
            let stmt = conn
                .prepare_cached(&format!(
                    "SELECT {KEY_COLUMNS} FROM signing_keys ORDER BY retired_at IS NULL DESC, COALESCE(retired_at, created_at) DESC, created_at DESC, kid"
                ))
                .await?;
            let rows = conn.query(&stmt, &[]).await?;
            Ok(rows.iter().map(key_from_row).collect::<Result<_, _>>()?)
        })
        .await
    }

    pub async fn active_kid(&self, alg: &str) -> Result<Option<String>, StoreError> {
        bounded(async {
            let conn = self.conn().await?;
            let stmt = conn
                .prepare_cached(
                    "SELECT kid FROM signing_keys WHERE alg = $1 AND retired_at IS NULL ORDER BY created_at DESC, kid LIMIT 1",
                )
                .await?;
            Ok(conn.query_opt(&stmt, &[&alg]).await?.map(|r| r.try_get(0)).transpose()?)
        })
        .await
    }

    pub async fn ensure_active_key(
        &self,
        alg: &str,
        make: impl FnOnce() -> Result<KeyRecord, crate::keys::KeyError> + Send + 'static,
    ) -> Result<KeyRecord, StoreError> {
        bounded(async {
            let mut conn = self.conn().await?;
            let tx = conn.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&KEY_LOCK]).await?;
            let existing = tx
                .query_opt(
                    &format!(
                        "SELECT {KEY_COLUMNS} FROM signing_keys WHERE alg = $1 AND retired_at IS NULL ORDER BY created_at DESC, kid LIMIT 1"
                    ),
                    &[&alg],
                )
                .await?;
            let key = match existing {
                Some(row) => key_from_row(&row)?,
                None => {
                    let k = tokio::task::spawn_blocking(make)
                        .await
                        .map_err(|e| StoreError::Task(e.to_string()))??;
                    insert_key(&tx, &k).await?;
                    k
                }
            };
            tx.commit().await?;
            Ok(key)
        })
        .await
    }

    pub async fn rotate_key(
        &self,
        new: &KeyRecord,
        now: Timestamp,
        event: Option<&NewEvent>,
    ) -> Result<(), StoreError> {
        bounded(async {
            let mut conn = self.conn().await?;
            let tx = conn.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&KEY_LOCK])
                .await?;
            if let Some(e) = event {
                insert_key_event(&tx, e, &new.alg, &new.kid).await?;
            }
            tx.execute(
                "UPDATE signing_keys SET retired_at = $2 WHERE alg = $1 AND retired_at IS NULL",
                &[&new.alg, &now],
            )
            .await?;
            insert_key(&tx, new).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }
    pub async fn rotate_key_if_older(
        &self,
        alg: &str,
        created_before: Timestamp,
        now: Timestamp,
        make: impl FnOnce() -> Result<KeyRecord, crate::keys::KeyError> + Send + 'static,
        event: Option<&NewEvent>,
    ) -> Result<Option<KeyRecord>, StoreError> {
        bounded(async {
            let mut conn = self.conn().await?;
            let tx = conn.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&KEY_LOCK]).await?;
            let newest: Option<i64> = tx
                .query_one(
                    "SELECT MAX(created_at) FROM signing_keys WHERE alg = $1 AND retired_at IS NULL",
                    &[&alg],
                )
                .await?
                .try_get(0)?;
            if newest.is_some_and(|t| t > created_before) {
                return Ok(None);
            }
            let new = tokio::task::spawn_blocking(make)
                .await
                .map_err(|e| StoreError::Task(e.to_string()))??;
            if let Some(e) = event {
                insert_key_event(&tx, e, &new.alg, &new.kid).await?;
            }
            tx.execute(
                "UPDATE signing_keys SET retired_at = $2 WHERE alg = $1 AND retired_at IS NULL",
                &[&new.alg, &now],
            )
            .await?;
            insert_key(&tx, &new).await?;
            tx.commit().await?;
            Ok(Some(new))
        })
        .await
    }

    pub async fn revoke(
        &self,
        jti: &str,
        client_id: &str,
        expires_at: Timestamp,
        now: Timestamp,
        event: Option<&NewEvent>,
    ) -> Result<(), StoreError> {
        bounded(async {
            let mut conn = self.conn().await?;
            let tx = conn.transaction().await?;
            tx.execute(
                "INSERT INTO revocations (jti, client_id, expires_at, revoked_at) VALUES ($1, $2, $3, $4) ON CONFLICT (jti) DO NOTHING",
                &[&jti, &client_id, &expires_at, &now],
            )
            .await?;
            if let Some(e) = event {
                insert_event(&tx, e).await?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    pub async fn use_assertion_jti(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        bounded(async {
            let conn = self.conn().await?;
            let stmt = conn
                .prepare_cached(
                    "INSERT INTO client_assertions (client_id, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                )
                .await?;
            Ok(conn.execute(&stmt, &[&client_id, &jti, &expires_at]).await? == 1)
        })
        .await
    }

    pub async fn is_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        bounded(async {
            let conn = self.conn().await?;
            let stmt = conn
                .prepare_cached("SELECT 1 FROM revocations WHERE jti = $1")
                .await?;
            Ok(conn.query_opt(&stmt, &[&jti]).await?.is_some())
        })
        .await
    }

    pub async fn insert_opaque(&self, t: &OpaqueRecord) -> Result<(), StoreError> {
        bounded(async {
            let conn = self.conn().await?;
            let stmt = conn
                .prepare_cached(
                    "INSERT INTO opaque_tokens (token_hash, jti, client_id, scope, audience, issued_at, expires_at, cnf) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .await?;
            conn.execute(
                &stmt,
                &[&Sensitive(&t.token_hash), &t.jti, &t.client_id, &t.scope, &t.audience, &t.issued_at, &t.expires_at, &t.cnf],
            )
            .await?;
            Ok(())
        })
        .await
    }

    pub async fn get_opaque(&self, token_hash: &str) -> Result<Option<OpaqueRecord>, StoreError> {
        bounded(async {
            let conn = self.conn().await?;
            let stmt = conn
                .prepare_cached(
                    "SELECT token_hash, jti, client_id, scope, audience, issued_at, expires_at, cnf FROM opaque_tokens WHERE token_hash = $1",
                )
                .await?;
            match conn.query_opt(&stmt, &[&Sensitive(token_hash)]).await? {
                None => Ok(None),
                Some(r) => Ok(Some(OpaqueRecord {
                    token_hash: r.try_get(0)?,
                    jti: r.try_get(1)?,
                    client_id: r.try_get(2)?,
                    scope: r.try_get(3)?,
                    audience: r.try_get(4)?,
                    issued_at: r.try_get(5)?,
                    expires_at: r.try_get(6)?,
                    cnf: r.try_get(7)?,
                })),
            }
        })
        .await
    }

    pub async fn delete_opaque(
        &self,
        token_hash: &str,
        event: Option<&NewEvent>,
    ) -> Result<bool, StoreError> {
        bounded(async {
            let mut conn = self.conn().await?;
            let tx = conn.transaction().await?;
            let deleted = tx
                .execute(
                    "DELETE FROM opaque_tokens WHERE token_hash = $1",
                    &[&Sensitive(token_hash)],
                )
                .await?
                == 1;
            if deleted && let Some(e) = event {
                insert_event(&tx, e).await?;
            }
            tx.commit().await?;
            Ok(deleted)
        })
        .await
    }

    pub async fn cover_key_ttl(&self, kid: &str, ttl: i64) -> Result<bool, StoreError> {
        Ok(self
            .execute(
                "UPDATE signing_keys SET max_token_ttl = GREATEST(COALESCE(max_token_ttl, 0), $2) WHERE kid = $1",
                &[&kid, &ttl],
            )
            .await?
            == 1)
    }

    pub async fn prune(&self, now: Timestamp, leeway: i64) -> Result<Pruned, StoreError> {
        bounded(async {
            let mut conn = self.conn().await?;
            let tx = conn.transaction().await?;
            let revocations = tx
                .execute("DELETE FROM revocations WHERE expires_at <= $1", &[&now])
                .await?;
            let opaque_tokens = tx
                .execute("DELETE FROM opaque_tokens WHERE expires_at <= $1", &[&now])
                .await?;
            let keys = tx
                .execute(
                    "DELETE FROM signing_keys WHERE retired_at IS NOT NULL \
                     AND retired_at + COALESCE(max_token_ttl, $3) + $2 < $1",
                    &[&now, &leeway, &crate::MAX_TOKEN_TTL_SECS],
                )
                .await?;
            let assertions = tx
                .execute(
                    "DELETE FROM client_assertions WHERE expires_at <= $1",
                    &[&now],
                )
                .await?;
            tx.commit().await?;
            Ok(Pruned {
                revocations,
                opaque_tokens,
                keys,
                assertions,
            })
        })
        .await
    }
}

async fn insert_key(
    tx: &deadpool_postgres::Transaction<'_>,
    k: &KeyRecord,
) -> Result<(), StoreError> {
    tx.execute(
        &format!("INSERT INTO signing_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"),
        &[
            &k.kid,
            &k.alg,
            &Sensitive(&k.private_key),
            &k.public_jwk,
            &k.created_at,
            &k.retired_at,
            &k.max_token_ttl,
        ],
    )
    .await?;
    Ok(())
}
