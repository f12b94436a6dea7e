//! The PostgreSQL store, for several broker replicas sharing one database.

use super::{
    ClientRecord, KeyRecord, OpaqueRecord, Pruned, STORE_TIMEOUT, StoreError, Timestamp,
    join_scopes, migrations, split_scopes,
};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use tokio_postgres::{NoTls, Row};

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
        audience: r.try_get(6)?,
        enabled: r.try_get(7)?,
        created_at: r.try_get(8)?,
        updated_at: r.try_get(9)?,
    })
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

impl PgStore {
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let redacted = super::redact_url(url);
        let mut cfg = tokio_postgres::Config::from_str(url)
            .map_err(|e| StoreError::Config(format!("invalid PostgreSQL URL {redacted}: {e}")))?;
        cfg.connect_timeout(STORE_TIMEOUT);
        cfg.application_name("auth-broker");
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
        let store = Self {
            pool,
            shared: Arc::default(),
            url: redacted,
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
            for (version, description, sql) in migrations::POSTGRES.iter().filter(|m| m.0 > current) {
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
                     SELECT $1, '', $2, NULL, NULL, '', NULL, FALSE, 0::BIGINT, 0::BIGINT, FALSE \
                     WHERE NOT EXISTS (SELECT 1 FROM clients WHERE id = $1)"
                ))
                .await?;
            let row = conn
                .query_one(&stmt, &[&id, &Sensitive(dummy_hash)])
                .await?;
            let rec = client_from_row(&row)?;
            Ok((row.try_get::<_, bool>(10)? && !unstorable).then(|| Arc::new(rec)))
        })
        .await;
        if let Err(StoreError::Unavailable(_)) = read {
            self.forget_shared(&shared);
        }
        read
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
                        " FROM clients ORDER BY created_at, name"
                    ),
                    &[],
                )
                .await?;
            Ok(rows.iter().map(client_from_row).collect::<Result<_, _>>()?)
        })
        .await
    }

    pub async fn insert_client(&self, c: &ClientRecord) -> Result<(), StoreError> {
        let r = bounded(async {
            let conn = self.conn().await?;
            conn.execute(
                concat!(
                    "INSERT INTO clients (",
                    client_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                ),
                &[
                    &c.id,
                    &c.name,
                    &Sensitive(&c.secret_hash),
                    &Sensitive(&c.previous_secret_hash),
                    &c.previous_secret_expires_at,
                    &join_scopes(&c.scopes),
                    &c.audience,
                    &c.enabled,
                    &c.created_at,
                    &c.updated_at,
                ],
            )
            .await?;
            Ok(())
        })
        .await;
        match r {
            Err(StoreError::DuplicateName(_)) => Err(StoreError::DuplicateName(c.name.clone())),
            r => r,
        }
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

    pub async fn set_client_enabled(
        &self,
        id: &str,
        enabled: bool,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        Ok(self
            .execute(
                "UPDATE clients SET enabled = $2, updated_at = $3 WHERE id = $1",
                &[&id, &enabled, &now],
            )
            .await?
            == 1)
    }

    pub async fn set_client_secret(
        &self,
        id: &str,
        secret_hash: &str,
        previous_expires_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        Ok(self
            .execute(
                "UPDATE clients SET
                    previous_secret_hash = CASE WHEN $3::BIGINT IS NULL THEN NULL ELSE secret_hash END,
                    previous_secret_expires_at = $3,
                    secret_hash = $2,
                    updated_at = $4
                 WHERE id = $1",
                &[&id, &Sensitive(secret_hash), &previous_expires_at, &now],
            )
            .await?
            == 1)
    }

    pub async fn delete_client(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self
            .execute("DELETE FROM clients WHERE id = $1", &[&id])
            .await?
            == 1)
    }

    pub async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        bounded(async {
            let conn = self.conn().await?;
            let stmt = conn
                .prepare_cached(&format!(
                    "SELECT {KEY_COLUMNS} FROM signing_keys ORDER BY created_at DESC, kid"
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

    pub async fn rotate_key(&self, new: &KeyRecord, now: Timestamp) -> Result<(), StoreError> {
        bounded(async {
            let mut conn = self.conn().await?;
            let tx = conn.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&KEY_LOCK])
                .await?;
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
    ) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO revocations (jti, client_id, expires_at, revoked_at) VALUES ($1, $2, $3, $4) ON CONFLICT (jti) DO NOTHING",
            &[&jti, &client_id, &expires_at, &now],
        )
        .await?;
        Ok(())
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
                    "INSERT INTO opaque_tokens (token_hash, jti, client_id, scope, audience, issued_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .await?;
            conn.execute(
                &stmt,
                &[&Sensitive(&t.token_hash), &t.jti, &t.client_id, &t.scope, &t.audience, &t.issued_at, &t.expires_at],
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
                    "SELECT token_hash, jti, client_id, scope, audience, issued_at, expires_at FROM opaque_tokens WHERE token_hash = $1",
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
                })),
            }
        })
        .await
    }

    pub async fn delete_opaque(&self, token_hash: &str) -> Result<bool, StoreError> {
        Ok(self
            .execute(
                "DELETE FROM opaque_tokens WHERE token_hash = $1",
                &[&Sensitive(token_hash)],
            )
            .await?
            == 1)
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
            tx.commit().await?;
            Ok(Pruned {
                revocations,
                opaque_tokens,
                keys,
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
