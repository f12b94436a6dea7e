//! The embedded SQLite store (WAL mode).
//!
//! Reads run inline on the calling task: a primary-key lookup through a cached
//! prepared statement takes microseconds, far less than handing it to a thread
//! would. In WAL mode readers never wait for the writer. Writes are rare (CLI, key
//! rotation) and may wait on another process's lock, so they run on the blocking pool.

use super::client_cache::{CacheStats, ClientCache, Lookup};
use super::{
    AuditQuery, AuditRow, ClientQuery, ClientRecord, KeyRecord, NewEvent, OpaqueRecord, Pruned,
    StoreError, Timestamp, UsageRow, Written, default_audience, join_scopes, json_list,
    like_pattern, migrations, parse_json_list, split_scopes,
};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

const READERS: usize = 4;

#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    readers: Vec<Mutex<Connection>>,
    writer: Mutex<Connection>,
    next: AtomicUsize,
    clients: ClientCache,
    /// Client assertion `jti`s waiting for the next group commit.
    jtis: Mutex<JtiBatch>,
}

/// One `jti` to record, and who waits for whether it was new.
type PendingJti = (
    String,
    String,
    Timestamp,
    tokio::sync::oneshot::Sender<Result<bool, StoreError>>,
);

/// Group commit of client assertion `jti`s. Each `private_key_jwt` token request
/// records one, durably (`synchronous=FULL`), and one commit per request would make
/// the disk's flush time the token endpoint's pace: the requests that arrive while a
/// commit is under way wait for the next one, which writes all of them in one
/// transaction and one flush.
#[derive(Default)]
struct JtiBatch {
    pending: Vec<PendingJti>,
    /// A writer task is taking batches; a new one is started only when none is.
    writing: bool,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish()
    }
}

fn open_conn(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(|e| {
        StoreError::Config(format!(
            "cannot open SQLite database {}: {e}",
            path.display()
        ))
    })?;
    // WAL: readers never block on the writer. synchronous=FULL: a write acknowledged to
    // the CLI survives a power cut too (writes are rare, so its cost does not matter).
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;",
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// Makes sure the database file is readable by its owner only: it holds the signing
/// keys, and whoever reads it can mint tokens.
///
/// A missing file is created here, mode 0600, before SQLite opens it; SQLite then
/// gives the WAL and shared-memory files it creates the database file's mode
/// (`findCreateFileMode` in its Unix VFS), so they are 0600 as well whatever the
/// umask. An existing file, WAL or shared-memory file that others may read is left
/// as it is (it is the operator's) but warned about, with the command that fixes it.
#[cfg(unix)]
fn owner_only(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let name = path.to_string_lossy();
    if name.starts_with("file:") || name == ":memory:" {
        return Ok(()); // an SQLite URI or memory: SQLite resolves it, not a plain path
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => return Ok(()),
        // Another process created it first, or it was there: check it below.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(StoreError::Config(format!(
                "cannot create SQLite database {}: {e}",
                path.display()
            )));
        }
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let file = PathBuf::from(file);
        if let Ok(meta) = std::fs::metadata(&file) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    file = %file.display(),
                    mode = format_args!("{mode:04o}"),
                    "the store file is readable or writable by other users, and it holds the signing keys: anyone who can read it can mint tokens; run chmod 600 {}*",
                    path.display()
                );
            }
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn owner_only(_: &Path) -> Result<(), StoreError> {
    Ok(())
}

/// Takes batches of pending `jti`s until none is left, each in one transaction.
fn write_jti_batches(inner: &Inner) {
    loop {
        let batch = {
            let mut b = inner
                .jtis
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if b.pending.is_empty() {
                b.writing = false;
                return;
            }
            std::mem::take(&mut b.pending)
        };
        let mut conn = lock(&inner.writer);
        let written = (|| -> Result<Vec<bool>, StoreError> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut fresh = Vec::with_capacity(batch.len());
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO client_assertions (client_id, jti, expires_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                )?;
                for (client_id, jti, expires_at, _) in &batch {
                    fresh.push(stmt.execute(params![client_id, jti, expires_at])? == 1);
                }
            }
            tx.commit()?;
            Ok(fresh)
        })();
        drop(conn);
        match written {
            Ok(fresh) => {
                for ((.., tx), new) in batch.into_iter().zip(fresh) {
                    let _ = tx.send(Ok(new));
                }
            }
            Err(e) => {
                let message = e.to_string();
                for (.., tx) in batch {
                    let _ = tx.send(Err(StoreError::Unavailable(message.clone())));
                }
            }
        }
    }
}

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic while holding a connection leaves nothing half-done that SQLite itself
    // has not rolled back, so a poisoned lock is safe to keep using.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn client_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ClientRecord> {
    Ok(ClientRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        secret_hash: r.get(2)?,
        previous_secret_hash: r.get(3)?,
        previous_secret_expires_at: r.get(4)?,
        scopes: split_scopes(&r.get::<_, String>(5)?),
        // 6: `audience`, the default audience older versions read; `audiences` has it.
        enabled: r.get(7)?,
        created_at: r.get(8)?,
        updated_at: r.get(9)?,
        audiences: split_scopes(&r.get::<_, String>(10)?),
        access_token_ttl: r.get(11)?,
        extra_claims: r.get(12)?,
        tokens_per_minute: r.get(13)?,
        auth_method: r.get(14)?,
        secret_expires_at: r.get(15)?,
        contacts: parse_json_list(&r.get::<_, String>(16)?),
        description: r.get(17)?,
        version: r.get(18)?,
        tokens_revoked_before: r.get(19)?,
        secret_issued_at: r.get(20)?,
        jwks: r.get(21)?,
        jwks_uri: r.get(22)?,
        tls_client_auth_subject_dn: r.get(23)?,
        dpop_bound_access_tokens: r.get(24)?,
    })
}

/// Every column of `c`, in [`client_columns`] order (the version as given).
fn client_params(c: &ClientRecord) -> [Box<dyn rusqlite::ToSql>; super::CLIENT_COLUMNS] {
    [
        Box::new(c.id.clone()),
        Box::new(c.name.clone()),
        Box::new(c.secret_hash.clone()),
        Box::new(c.previous_secret_hash.clone()),
        Box::new(c.previous_secret_expires_at),
        Box::new(join_scopes(&c.scopes)),
        Box::new(default_audience(c).map(str::to_owned)),
        Box::new(c.enabled),
        Box::new(c.created_at),
        Box::new(c.updated_at),
        Box::new(join_scopes(&c.audiences)),
        Box::new(c.access_token_ttl),
        Box::new(c.extra_claims.clone()),
        Box::new(c.tokens_per_minute),
        Box::new(c.auth_method.clone()),
        Box::new(c.secret_expires_at),
        Box::new(json_list(&c.contacts)),
        Box::new(c.description.clone()),
        Box::new(c.version),
        Box::new(c.tokens_revoked_before),
        Box::new(c.secret_issued_at),
        Box::new(c.jwks.clone()),
        Box::new(c.jwks_uri.clone()),
        Box::new(c.tls_client_auth_subject_dn.clone()),
        Box::new(c.dpop_bound_access_tokens),
    ]
}

fn insert_event(conn: &Connection, e: &NewEvent) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO audit_events (at, actor, action, target, changes, request_id, peer) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        e.at_ms,
        e.actor,
        e.action,
        e.target,
        e.changes,
        e.request_id,
        e.peer
    ])?;
    Ok(())
}

/// The active kid of `alg` inside a write transaction, for a rotation's audit event.
fn active_kid_in(conn: &Connection, alg: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row(
        "SELECT kid FROM signing_keys WHERE alg = ?1 AND retired_at IS NULL ORDER BY created_at DESC, kid LIMIT 1",
        [alg],
        |r| r.get(0),
    )
    .optional()
}

/// A key rotation's audit event: the new kid, and the active kid before and after.
fn key_event(e: &NewEvent, old: Option<String>, new: &str) -> NewEvent {
    NewEvent {
        target: new.to_owned(),
        changes: serde_json::json!({ "active_kid": [old, new] }).to_string(),
        ..e.clone()
    }
}

const KEY_COLUMNS: &str =
    "kid, alg, private_key, public_jwk, created_at, retired_at, max_token_ttl";

fn key_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<KeyRecord> {
    Ok(KeyRecord {
        kid: r.get(0)?,
        alg: r.get(1)?,
        private_key: r.get(2)?,
        public_jwk: r.get(3)?,
        created_at: r.get(4)?,
        retired_at: r.get(5)?,
        max_token_ttl: r.get(6)?,
    })
}

fn insert_key(conn: &Connection, k: &KeyRecord) -> rusqlite::Result<()> {
    conn.execute(
        &format!("INSERT INTO signing_keys ({KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
        params![
            k.kid,
            k.alg,
            k.private_key,
            k.public_jwk,
            k.created_at,
            k.retired_at,
            k.max_token_ttl
        ],
    )?;
    Ok(())
}

impl SqliteStore {
    /// Opens (creating when missing) the database file.
    pub async fn open(path: &str) -> Result<Self, StoreError> {
        let path = PathBuf::from(path);
        tokio::task::spawn_blocking(move || {
            owner_only(&path)?;
            let writer = open_conn(&path)?;
            let readers = (0..READERS)
                .map(|_| open_conn(&path).map(Mutex::new))
                .collect::<Result<Vec<_>, _>>()?;
            let clients = ClientCache::new(&path);
            Ok(Self {
                inner: Arc::new(Inner {
                    path,
                    readers,
                    writer: Mutex::new(writer),
                    next: AtomicUsize::new(0),
                    clients,
                    jtis: Mutex::default(),
                }),
            })
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let n = self.inner.readers.len();
        let start = self.inner.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            if let Ok(conn) = self.inner.readers[(start + i) % n].try_lock() {
                return Ok(f(&conn)?);
            }
        }
        let conn = lock(&self.inner.readers[start % n]);
        Ok(f(&conn)?)
    }

    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = lock(&inner.writer);
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.migrate_to(i64::MAX).await
    }

    /// Applies the pending migrations up to `target` (tests of upgrades stop early).
    pub async fn migrate_to(&self, target: i64) -> Result<(), StoreError> {
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(migrations::CREATE_TABLE, [])?;
            let current: i64 = tx.query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                [],
                |r| r.get(0),
            )?;
            let newest = migrations::SQLITE.last().map_or(0, |m| m.0);
            if current > newest {
                return Err(StoreError::SchemaTooNew {
                    found: current,
                    known: newest,
                });
            }
            for (version, description, sql) in migrations::SQLITE.iter().filter(|m| m.0 > current && m.0 <= target) {
                tx.execute_batch(sql)?;
                tx.execute(
                    "INSERT INTO schema_migrations (version, description, applied_at) VALUES (?1, ?2, strftime('%s','now'))",
                    params![version, description],
                )?;
                tracing::info!(version, description, "applied SQLite migration");
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.read(|c| {
            c.query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| {
                r.get::<_, i64>(0)
            })
        })?;
        Ok(())
    }

    pub async fn get_client(&self, id: &str) -> Result<Option<ClientRecord>, StoreError> {
        self.read(|c| {
            c.prepare_cached(concat!(
                "SELECT ",
                client_columns!(),
                " FROM clients WHERE id = ?1"
            ))?
            .query_row([id], client_from_row)
            .optional()
        })
    }

    /// [`super::Store::get_client_for_auth`], served from the client cache while the
    /// database is unchanged (see `client_cache`); a miss reads one row whatever
    /// happens, decoded the same way, after the same two index probes.
    pub async fn get_client_for_auth(
        &self,
        id: &str,
        dummy_hash: &str,
    ) -> Result<Option<Arc<ClientRecord>>, StoreError> {
        let ticket = match self.inner.clients.lookup(id) {
            Lookup::Hit(entry) => return Ok(entry),
            Lookup::Miss(ticket) => ticket,
        };
        let entry = self
            .read(|c| {
                c.prepare_cached(concat!(
                    "SELECT ",
                    client_columns!(),
                    ", 1 FROM clients WHERE id = ?1 \
                     UNION ALL \
                     SELECT ?1, '', ?2, NULL, NULL, '', NULL, 0, 0, 0, \
                            '', NULL, NULL, NULL, '', 0, '[]', '', 0, NULL, 0, NULL, NULL, NULL, 0, 0 \
                     WHERE NOT EXISTS (SELECT 1 FROM clients WHERE id = ?1)"
                ))?
                .query_row([id, dummy_hash], |r| {
                    let rec = client_from_row(r)?;
                    Ok(r.get::<_, bool>(super::CLIENT_COLUMNS)?.then_some(rec))
                })
            })?
            .map(Arc::new);
        self.inner.clients.fill(ticket, id, &entry);
        Ok(entry)
    }

    /// What the client cache did, and whether it is on.
    pub fn client_cache_stats(&self) -> CacheStats {
        self.inner.clients.stats()
    }

    pub async fn get_client_by_name(&self, name: &str) -> Result<Option<ClientRecord>, StoreError> {
        self.read(|c| {
            c.prepare_cached(concat!(
                "SELECT ",
                client_columns!(),
                " FROM clients WHERE name = ?1"
            ))?
            .query_row([name], client_from_row)
            .optional()
        })
    }

    pub async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        self.read(|c| {
            c.prepare(concat!(
                "SELECT ",
                client_columns!(),
                " FROM clients ORDER BY created_at, id"
            ))?
            .query_map([], client_from_row)?
            .collect()
        })
    }

    #[cfg(feature = "testing")]
    pub async fn execute_batch(&self, sql: &str) -> Result<(), StoreError> {
        let sql = sql.to_owned();
        self.write(move |c| Ok(c.execute_batch(&sql)?)).await
    }

    pub async fn find_clients(&self, q: &ClientQuery) -> Result<Vec<ClientRecord>, StoreError> {
        let pattern = q.q.as_deref().map(like_pattern);
        let (after_t, after_id) = q.after.clone().unzip();
        self.read(|c| {
            c.prepare_cached(concat!(
                "SELECT ",
                client_columns!(),
                " FROM clients WHERE (?1 IS NULL OR name LIKE ?1 ESCAPE '\\' OR id LIKE ?1 ESCAPE '\\' OR description LIKE ?1 ESCAPE '\\') \
                 AND (?2 IS NULL OR enabled = ?2) \
                 AND (?3 IS NULL OR (created_at, id) > (?3, ?4)) \
                 ORDER BY created_at, id LIMIT ?5"
            ))?
            .query_map(
                params![pattern, q.enabled, after_t, after_id, q.limit],
                client_from_row,
            )?
            .collect()
        })
    }

    pub async fn insert_client(
        &self,
        client: &ClientRecord,
        event: Option<&NewEvent>,
    ) -> Result<(), StoreError> {
        let (c, event) = (client.clone(), event.cloned());
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let r = tx.execute(
                concat!(
                    "INSERT INTO clients (",
                    client_columns!(),
                    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25)"
                ),
                rusqlite::params_from_iter(client_params(&c)),
            );
            match r {
                Err(rusqlite::Error::SqliteFailure(f, _))
                    if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
                {
                    return Err(StoreError::DuplicateName(c.name));
                }
                r => r?,
            };
            if let Some(e) = &event {
                insert_event(&tx, e)?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub async fn update_client(
        &self,
        client: &ClientRecord,
        event: Option<&NewEvent>,
    ) -> Result<Written, StoreError> {
        let (c, event) = (client.clone(), event.cloned());
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Every column but id and created_at; the version is checked (?19) and
            // raised.
            let r = tx.execute(
                "UPDATE clients SET name = ?2, secret_hash = ?3, previous_secret_hash = ?4, \
                 previous_secret_expires_at = ?5, scopes = ?6, audience = ?7, enabled = ?8, \
                 updated_at = ?10, audiences = ?11, access_token_ttl = ?12, extra_claims = ?13, \
                 tokens_per_minute = ?14, token_endpoint_auth_method = ?15, \
                 client_secret_expires_at = ?16, contacts = ?17, description = ?18, \
                 version = version + 1, tokens_revoked_before = ?20, secret_issued_at = ?21, \
                 jwks = ?22, jwks_uri = ?23, tls_client_auth_subject_dn = ?24, \
                 dpop_bound_access_tokens = ?25 \
                 WHERE id = ?1 AND version = ?19",
                rusqlite::params_from_iter(client_params(&c)),
            );
            let n = match r {
                Err(rusqlite::Error::SqliteFailure(f, _))
                    if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
                {
                    return Err(StoreError::DuplicateName(c.name));
                }
                r => r?,
            };
            if n == 0 {
                let exists = tx
                    .query_row("SELECT 1 FROM clients WHERE id = ?1", [&c.id], |_| Ok(()))
                    .optional()?
                    .is_some();
                return Ok(if exists {
                    Written::Stale
                } else {
                    Written::Missing
                });
            }
            if let Some(e) = &event {
                insert_event(&tx, e)?;
            }
            tx.commit()?;
            Ok(Written::Done)
        })
        .await
    }

    pub async fn delete_client(
        &self,
        id: &str,
        version: Option<i64>,
        event: Option<&NewEvent>,
    ) -> Result<Written, StoreError> {
        let (id, event) = (id.to_owned(), event.cloned());
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = tx.execute(
                "DELETE FROM clients WHERE id = ?1 AND (?2 IS NULL OR version = ?2)",
                params![id, version],
            )?;
            if n == 0 {
                let exists = tx
                    .query_row("SELECT 1 FROM clients WHERE id = ?1", [&id], |_| Ok(()))
                    .optional()?
                    .is_some();
                return Ok(if exists {
                    Written::Stale
                } else {
                    Written::Missing
                });
            }
            if let Some(e) = &event {
                insert_event(&tx, e)?;
            }
            tx.commit()?;
            Ok(Written::Done)
        })
        .await
    }

    pub async fn audit_events(&self, q: &AuditQuery) -> Result<Vec<AuditRow>, StoreError> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT id, at, actor, action, target, changes, request_id, peer FROM audit_events \
                 WHERE (?1 IS NULL OR target = ?1) AND (?2 IS NULL OR action = ?2) \
                 AND (?3 IS NULL OR at >= ?3) AND (?4 IS NULL OR id < ?4) \
                 ORDER BY id DESC LIMIT ?5",
            )?
            .query_map(
                params![q.target, q.action, q.since_ms, q.before, q.limit],
                |r| {
                    Ok(AuditRow {
                        id: r.get(0)?,
                        at_ms: r.get(1)?,
                        actor: r.get(2)?,
                        action: r.get(3)?,
                        target: r.get(4)?,
                        changes: r.get(5)?,
                        request_id: r.get(6)?,
                        peer: r.get(7)?,
                    })
                },
            )?
            .collect()
        })
    }

    pub async fn add_usage(&self, rows: &[UsageRow]) -> Result<(), StoreError> {
        let rows = rows.to_vec();
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut st = tx.prepare_cached(
                    "INSERT INTO usage (client_id, minute, issued, failed, limited) VALUES (?1, ?2, ?3, ?4, ?5) \
                     ON CONFLICT (client_id, minute) DO UPDATE SET issued = issued + excluded.issued, \
                     failed = failed + excluded.failed, limited = limited + excluded.limited",
                )?;
                for r in &rows {
                    st.execute(params![r.client_id, r.minute, r.issued, r.failed, r.limited])?;
                }
            }
            tx.commit()?;
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
        self.read(|c| {
            c.prepare_cached(
                "SELECT client_id, minute, issued, failed, limited FROM usage \
                 WHERE client_id = ?1 AND minute >= ?2 AND minute <= ?3 ORDER BY minute",
            )?
            .query_map(params![client_id, from, to], |r| {
                Ok(UsageRow {
                    client_id: r.get(0)?,
                    minute: r.get(1)?,
                    issued: r.get(2)?,
                    failed: r.get(3)?,
                    limited: r.get(4)?,
                })
            })?
            .collect()
        })
    }

    pub async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {KEY_COLUMNS} FROM signing_keys ORDER BY retired_at IS NULL DESC, COALESCE(retired_at, created_at) DESC, created_at DESC, kid"
            ))?
            .query_map([], key_from_row)?
            .collect()
        })
    }

    pub async fn active_kid(&self, alg: &str) -> Result<Option<String>, StoreError> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT kid FROM signing_keys WHERE alg = ?1 AND retired_at IS NULL ORDER BY created_at DESC, kid LIMIT 1",
            )?
            .query_row([alg], |r| r.get(0))
            .optional()
        })
    }

    pub async fn ensure_active_key(
        &self,
        alg: &str,
        make: impl FnOnce() -> Result<KeyRecord, crate::keys::KeyError> + Send + 'static,
    ) -> Result<KeyRecord, StoreError> {
        let alg = alg.to_owned();
        self.write(move |conn| {
            // IMMEDIATE takes the write lock first, so two processes starting at once
            // cannot both see "no key" and both create one.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let existing = tx
                .query_row(
                    &format!(
                        "SELECT {KEY_COLUMNS} FROM signing_keys WHERE alg = ?1 AND retired_at IS NULL ORDER BY created_at DESC, kid LIMIT 1"
                    ),
                    [&alg],
                    key_from_row,
                )
                .optional()?;
            let key = match existing {
                Some(k) => k,
                None => {
                    let k = make()?;
                    insert_key(&tx, &k)?;
                    k
                }
            };
            tx.commit()?;
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
        let (new, event) = (new.clone(), event.cloned());
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if let Some(e) = &event {
                let old = active_kid_in(&tx, &new.alg)?;
                insert_event(&tx, &key_event(e, old, &new.kid))?;
            }
            tx.execute(
                "UPDATE signing_keys SET retired_at = ?2 WHERE alg = ?1 AND retired_at IS NULL",
                params![new.alg, now],
            )?;
            insert_key(&tx, &new)?;
            tx.commit()?;
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
        let (alg, event) = (alg.to_owned(), event.cloned());
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let newest: Option<Timestamp> = tx.query_row(
                "SELECT MAX(created_at) FROM signing_keys WHERE alg = ?1 AND retired_at IS NULL",
                [&alg],
                |r| r.get(0),
            )?;
            if newest.is_some_and(|t| t > created_before) {
                return Ok(None);
            }
            let new = make()?;
            if let Some(e) = &event {
                let old = active_kid_in(&tx, &new.alg)?;
                insert_event(&tx, &key_event(e, old, &new.kid))?;
            }
            tx.execute(
                "UPDATE signing_keys SET retired_at = ?2 WHERE alg = ?1 AND retired_at IS NULL",
                params![new.alg, now],
            )?;
            insert_key(&tx, &new)?;
            tx.commit()?;
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
        let (jti, client_id, event) = (jti.to_owned(), client_id.to_owned(), event.cloned());
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT OR IGNORE INTO revocations (jti, client_id, expires_at, revoked_at) VALUES (?1, ?2, ?3, ?4)",
                params![jti, client_id, expires_at, now],
            )?;
            if let Some(e) = &event {
                insert_event(&tx, e)?;
            }
            tx.commit()?;
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
        let (tx, rx) = tokio::sync::oneshot::channel();
        let start = {
            let mut b = self
                .inner
                .jtis
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            b.pending
                .push((client_id.to_owned(), jti.to_owned(), expires_at, tx));
            !std::mem::replace(&mut b.writing, true)
        };
        if start {
            let inner = self.inner.clone();
            tokio::task::spawn_blocking(move || write_jti_batches(&inner));
        }
        rx.await
            .map_err(|_| StoreError::Task("the jti writer stopped".into()))?
    }

    pub async fn is_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        self.read(|c| {
            c.prepare_cached("SELECT 1 FROM revocations WHERE jti = ?1")?
                .query_row([jti], |_| Ok(()))
                .optional()
                .map(|r| r.is_some())
        })
    }

    pub async fn insert_opaque(&self, t: &OpaqueRecord) -> Result<(), StoreError> {
        let t = t.clone();
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO opaque_tokens (token_hash, jti, client_id, scope, audience, issued_at, expires_at, cnf) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![t.token_hash, t.jti, t.client_id, t.scope, t.audience, t.issued_at, t.expires_at, t.cnf])?;
            Ok(())
        })
        .await
    }

    pub async fn get_opaque(&self, token_hash: &str) -> Result<Option<OpaqueRecord>, StoreError> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT token_hash, jti, client_id, scope, audience, issued_at, expires_at, cnf FROM opaque_tokens WHERE token_hash = ?1",
            )?
            .query_row([token_hash], |r| {
                Ok(OpaqueRecord {
                    token_hash: r.get(0)?,
                    jti: r.get(1)?,
                    client_id: r.get(2)?,
                    scope: r.get(3)?,
                    audience: r.get(4)?,
                    issued_at: r.get(5)?,
                    expires_at: r.get(6)?,
                    cnf: r.get(7)?,
                })
            })
            .optional()
        })
    }

    pub async fn delete_opaque(
        &self,
        token_hash: &str,
        event: Option<&NewEvent>,
    ) -> Result<bool, StoreError> {
        let (h, event) = (token_hash.to_owned(), event.cloned());
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let deleted = tx.execute("DELETE FROM opaque_tokens WHERE token_hash = ?1", [h])? == 1;
            if deleted && let Some(e) = &event {
                insert_event(&tx, e)?;
            }
            tx.commit()?;
            Ok(deleted)
        })
        .await
    }

    pub async fn cover_key_ttl(&self, kid: &str, ttl: i64) -> Result<bool, StoreError> {
        let kid = kid.to_owned();
        self.write(move |c| {
            Ok(c.execute(
                "UPDATE signing_keys SET max_token_ttl = MAX(COALESCE(max_token_ttl, 0), ?2) WHERE kid = ?1",
                params![kid, ttl],
            )? == 1)
        })
        .await
    }

    pub async fn prune(&self, now: Timestamp, leeway: i64) -> Result<Pruned, StoreError> {
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let revocations =
                tx.execute("DELETE FROM revocations WHERE expires_at <= ?1", [now])?;
            let opaque_tokens =
                tx.execute("DELETE FROM opaque_tokens WHERE expires_at <= ?1", [now])?;
            let keys = tx.execute(
                "DELETE FROM signing_keys WHERE retired_at IS NOT NULL \
                 AND retired_at + COALESCE(max_token_ttl, ?3) + ?2 < ?1",
                [now, leeway, crate::MAX_TOKEN_TTL_SECS],
            )?;
            let assertions = tx.execute(
                "DELETE FROM client_assertions WHERE expires_at <= ?1",
                [now],
            )?;
            tx.commit()?;
            Ok(Pruned {
                revocations: revocations as u64,
                opaque_tokens: opaque_tokens as u64,
                keys: keys as u64,
                assertions: assertions as u64,
            })
        })
        .await
    }
}
