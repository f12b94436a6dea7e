//! The broker's store: clients and signing keys, on SQLite or PostgreSQL.
//!
//! One interface, two backends, selected by the database URL. The enum (rather than a
//! trait object) keeps the hot path free of boxing and lets each backend use its native
//! driver: rusqlite answers a primary-key read in a few microseconds without leaving
//! the thread, and tokio-postgres pipelines queries over a pooled connection.
//!
//! A change made by the CLI or by another replica (disable, enable, delete, a new
//! secret) is seen by the very next request. On PostgreSQL every read goes to the
//! database. On SQLite the client a token request reads is cached in the process
//! and served only while SQLite's own change signal (the WAL-index header) is the
//! one seen when it was read, so the very next request after any commit reads the row
//! again (`client_cache`).

/// The client columns in the order both backends' `client_from_row` read them; a
/// macro so the queries are built at compile time (`concat!`), not formatted on
/// every request. Defined before the backend modules so both see it.
macro_rules! client_columns {
    () => {
        "id, name, secret_hash, previous_secret_hash, previous_secret_expires_at, scopes, audience, enabled, created_at, updated_at, \
         audiences, access_token_ttl, extra_claims, tokens_per_minute, token_endpoint_auth_method, client_secret_expires_at, \
         contacts, description, version, tokens_revoked_before, secret_issued_at, \
         jwks, jwks_uri, tls_client_auth_subject_dn, dpop_bound_access_tokens"
    };
}

/// The number of [`client_columns`], for the placeholders of a full-row write.
const CLIENT_COLUMNS: usize = 25;

mod client_cache;
mod migrations;
mod postgres;
mod sqlite;

use std::time::Duration;

pub use client_cache::CacheStats;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Unix seconds.
pub type Timestamp = i64;

/// A registered client as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientRecord {
    pub id: String,
    pub name: String,
    /// Hash of the current secret (see `crate::secret`).
    pub secret_hash: String,
    /// Hash of the previous secret, valid until `previous_secret_expires_at`.
    pub previous_secret_hash: Option<String>,
    pub previous_secret_expires_at: Option<Timestamp>,
    /// The scopes the client may request, in the order they were given.
    pub scopes: Vec<String>,
    /// The `aud` values its tokens may carry, the default first; empty: the issuer.
    /// (Stored in `audiences`, with the first also in `audience`, the column older
    /// versions read, so that a replica not yet upgraded keeps the default audience.)
    pub audiences: Vec<String>,
    pub enabled: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Its tokens' lifetime in seconds; `None`: the broker's default.
    pub access_token_ttl: Option<i64>,
    /// Static claims for its JWTs: a JSON object's text, validated when set (no
    /// registered claim names), spliced into the claims as it is.
    pub extra_claims: Option<String>,
    /// A cap on successful token requests per minute.
    pub tokens_per_minute: Option<u32>,
    /// `token_endpoint_auth_method` (RFC 7591), as its name.
    pub auth_method: String,
    /// When the current secret stops working; 0: never (RFC 7591 §3.2.1).
    pub secret_expires_at: Timestamp,
    pub contacts: Vec<String>,
    pub description: String,
    /// Raised by every change: the `ETag` of the admin API, and what an update
    /// checks so that two concurrent changes never silently overwrite each other.
    pub version: i64,
    /// Tokens issued to it up to this second are inactive (revoke-tokens).
    pub tokens_revoked_before: Option<Timestamp>,
    /// When the current secret was made: with `secret_expires_at`, the lifetime a
    /// rotation gives the next secret.
    pub secret_issued_at: Timestamp,
    /// Its public keys, a JWK Set's text (RFC 7591 §2), validated when set.
    pub jwks: Option<String>,
    /// Where it publishes them instead (RFC 7591 §2).
    pub jwks_uri: Option<String>,
    /// For `tls_client_auth`: the subject DN its certificate must carry (RFC 8705 §2.1.2).
    pub tls_client_auth_subject_dn: Option<String>,
    /// Its tokens must be DPoP-bound (RFC 9449 §5.2).
    pub dpop_bound_access_tokens: bool,
}

impl ClientRecord {
    /// A record with the settings' defaults, for a new client.
    pub fn new(id: String, name: String, secret_hash: String, now: Timestamp) -> Self {
        Self {
            id,
            name,
            secret_hash,
            previous_secret_hash: None,
            previous_secret_expires_at: None,
            scopes: Vec::new(),
            audiences: Vec::new(),
            enabled: true,
            created_at: now,
            updated_at: now,
            access_token_ttl: None,
            extra_claims: None,
            tokens_per_minute: None,
            auth_method: "client_secret_basic".into(),
            secret_expires_at: 0,
            contacts: Vec::new(),
            description: String::new(),
            version: 1,
            tokens_revoked_before: None,
            secret_issued_at: now,
            jwks: None,
            jwks_uri: None,
            tls_client_auth_subject_dn: None,
            dpop_bound_access_tokens: false,
        }
    }
}

impl std::fmt::Debug for ClientRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRecord")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("secret_hash", &"[redacted]")
            .field("scopes", &self.scopes)
            .field("audiences", &self.audiences)
            .field("enabled", &self.enabled)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// An audit event, appended in the same transaction as the change it records (a
/// change that is not audited did not happen). Never a secret nor its hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// Unix milliseconds.
    pub at_ms: i64,
    pub actor: String,
    pub action: &'static str,
    pub target: String,
    /// A JSON object: each changed field's `[old, new]`.
    pub changes: String,
    pub request_id: Option<String>,
    pub peer: Option<String>,
}

/// An audit event as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRow {
    pub id: i64,
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub changes: String,
    pub request_id: Option<String>,
    pub peer: Option<String>,
}

/// Which audit events to read: newest first, before the event id `before`.
#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    pub target: Option<String>,
    pub action: Option<String>,
    pub since_ms: Option<i64>,
    pub before: Option<i64>,
    pub limit: i64,
}

/// Which clients to read: oldest first, after the `(created_at, id)` cursor, so a
/// page boundary stays where it was when clients are added meanwhile.
#[derive(Clone, Debug, Default)]
pub struct ClientQuery {
    /// A case-insensitive substring of the name, id or description.
    pub q: Option<String>,
    pub enabled: Option<bool>,
    pub after: Option<(Timestamp, String)>,
    pub limit: i64,
}

/// One client's use in one minute, as counted by one replica (added up in the store).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UsageRow {
    pub client_id: String,
    /// Unix seconds of the minute's start.
    pub minute: Timestamp,
    pub issued: i64,
    pub failed: i64,
    pub limited: i64,
}

/// What a conditional write found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    Done,
    /// The row's version was not the one expected: someone changed it meanwhile.
    Stale,
    /// No such row.
    Missing,
}

/// Escapes `%`, `_` and the escape character itself for a `LIKE ... ESCAPE '\'`.
pub(crate) fn like_pattern(q: &str) -> String {
    let mut out = String::with_capacity(q.len() + 2);
    out.push('%');
    for c in q.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

pub(crate) fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

pub(crate) fn parse_json_list(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_default()
}

/// A signing key as stored. `private_key` is PKCS#8 DER and never leaves the process.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub kid: String,
    pub alg: String,
    pub private_key: Vec<u8>,
    /// The public JWK, as JSON.
    pub public_jwk: String,
    pub created_at: Timestamp,
    /// When it stopped signing; `None` while it is the active key for its algorithm.
    pub retired_at: Option<Timestamp>,
    /// The longest lifetime, in seconds, of any token this key can have signed: every
    /// broker raises it to its own lifetime before it signs with the key
    /// (`Store::cover_key_ttl`), so a retired key is kept until
    /// `retired_at + max_token_ttl` (+ leeway) whichever replica prunes. `None` for a
    /// key stored by a version that did not record it: kept for the longest lifetime
    /// any broker allows ([`crate::MAX_TOKEN_TTL_SECS`]).
    pub max_token_ttl: Option<i64>,
}

impl KeyRecord {
    /// Until when verifiers may need this key: for a retired key, the expiry of the
    /// last token it can have signed plus `leeway` (the JWKS publishes it, and pruning
    /// keeps it, until then; the prune queries compute the same sum); `None` while it
    /// is active.
    pub fn needed_until(&self, leeway: i64) -> Option<Timestamp> {
        self.retired_at.map(|t| {
            t.saturating_add(self.max_token_ttl.unwrap_or(crate::MAX_TOKEN_TTL_SECS))
                .saturating_add(leeway)
        })
    }
}

impl std::fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRecord")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("private_key", &"[redacted]")
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .field("max_token_ttl", &self.max_token_ttl)
            .finish()
    }
}

/// An opaque access token as stored: only a hash of the token itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpaqueRecord {
    /// SHA-256 of the token, base64url.
    pub token_hash: String,
    pub jti: String,
    pub client_id: String,
    /// Space separated.
    pub scope: String,
    pub audience: String,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
    /// The key it is bound to (RFC 7800 `cnf`) as JSON text; `None` for a bearer token.
    pub cnf: Option<String>,
}

/// What a periodic clean-up removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub revocations: u64,
    pub opaque_tokens: u64,
    pub keys: u64,
    pub assertions: u64,
}

/// Store failures. `Unavailable` is the one a caller may retry: the broker answers
/// it with `503 temporarily_unavailable` and `Retry-After`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store is unreachable: {0}")]
    Unavailable(String),
    #[error("a client named '{0}' already exists")]
    DuplicateName(String),
    #[error("SQLite: {0}")]
    Sqlite(#[source] rusqlite::Error),
    #[error("PostgreSQL: {0}")]
    Postgres(#[source] tokio_postgres::Error),
    /// A signing key to be stored under the store's key lock could not be made.
    #[error(transparent)]
    Key(#[from] crate::keys::KeyError),
    /// The store's settings (its URL, its file) are not usable.
    #[error("{0}")]
    Config(String),
    /// The database was written by a newer version.
    #[error(
        "the database schema is at version {found}, newer than this binary knows ({known}); upgrade auth-broker"
    )]
    SchemaTooNew { found: i64, known: i64 },
    #[error("a store task failed: {0}")]
    Task(String),
}

impl StoreError {
    /// Whether a retry later may succeed (the broker answers `503` with `Retry-After`).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unavailable(_) | Self::Task(_) => true,
            Self::Key(k) => k.is_transient(),
            _ => false,
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match &e {
            rusqlite::Error::SqliteFailure(f, _)
                if matches!(
                    f.code,
                    rusqlite::ErrorCode::DatabaseBusy
                        | rusqlite::ErrorCode::DatabaseLocked
                        | rusqlite::ErrorCode::CannotOpen
                        | rusqlite::ErrorCode::SystemIoFailure
                ) =>
            {
                Self::Unavailable(e.to_string())
            }
            _ => Self::Sqlite(e),
        }
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        if let Some(db) = e.as_db_error() {
            if db.code() == &tokio_postgres::error::SqlState::UNIQUE_VIOLATION {
                return Self::DuplicateName(db.detail().unwrap_or_default().to_owned());
            }
            return Self::Postgres(e);
        }
        // No database error: the connection failed or closed.
        Self::Unavailable(e.to_string())
    }
}

/// How long a store call may take before the request gets a `503`.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(3);

/// The store, on one of its backends.
#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Store::Sqlite($s) => $e,
            Store::Postgres($s) => $e,
        }
    };
}

impl Store {
    /// Opens the store a URL names (`sqlite://path`, `sqlite::memory:` is not offered:
    /// a broker's keys must survive a restart) and applies pending migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let store = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Store::Postgres(PgStore::connect(url).await?)
        } else if let Some(path) = url
            .strip_prefix("sqlite://")
            .or(url.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err(StoreError::Config(
                    "the sqlite URL has no file path; use sqlite://auth-broker.db".into(),
                ));
            }
            Store::Sqlite(SqliteStore::open(path).await?)
        } else {
            return Err(StoreError::Config(format!(
                "unsupported database URL scheme in '{}'; use sqlite://FILE or postgres://USER@HOST/DB",
                redact_url(url)
            )));
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Which backend this is, for logs and metrics.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        dispatch!(self, s => s.migrate().await)
    }

    /// Applies pending migrations up to `target` only (tests of upgrades).
    #[cfg(feature = "testing")]
    pub(crate) async fn migrate_to(&self, target: i64) -> Result<(), StoreError> {
        dispatch!(self, s => s.migrate_to(target).await)
    }

    /// Opens without migrating.
    #[cfg(feature = "testing")]
    pub(crate) async fn open_unmigrated(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Store::Postgres(PgStore::connect(url).await?))
        } else {
            let path = url
                .strip_prefix("sqlite://")
                .ok_or_else(|| StoreError::Config("a sqlite:// URL".into()))?;
            Ok(Store::Sqlite(SqliteStore::open(path).await?))
        }
    }

    /// Runs SQL statements as they are (tests that set up an old schema's rows).
    #[cfg(feature = "testing")]
    pub(crate) async fn execute_batch(&self, sql: &str) -> Result<(), StoreError> {
        dispatch!(self, s => s.execute_batch(sql).await)
    }

    /// A cheap round trip, for `/readyz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, s => s.ping().await)
    }

    pub(crate) async fn get_client(&self, id: &str) -> Result<Option<ClientRecord>, StoreError> {
        dispatch!(self, s => s.get_client(id).await)
    }

    /// The client to authenticate, read so that a miss costs what a hit does: the
    /// query always returns one row (a stand-in with `dummy_hash` when the id is
    /// unknown) and decodes it into a record, so the time of a failed authentication
    /// does not tell whether the client id exists (no enumeration by timing). On
    /// SQLite, unknown ids are cached like known ones, for the same reason.
    pub(crate) async fn get_client_for_auth(
        &self,
        id: &str,
        dummy_hash: &str,
    ) -> Result<Option<std::sync::Arc<ClientRecord>>, StoreError> {
        dispatch!(self, s => s.get_client_for_auth(id, dummy_hash).await)
    }

    /// What the client cache did, and whether it is on now.
    pub(crate) fn client_cache_stats(&self) -> Option<CacheStats> {
        match self {
            Store::Sqlite(s) => Some(s.client_cache_stats()),
            Store::Postgres(s) => Some(s.client_cache_stats()),
        }
    }

    /// Starts hearing changes made by other processes where the store needs to
    /// (PostgreSQL: `PgStore::listen_for_changes`); SQLite reads its change signal
    /// on every lookup and needs no task.
    pub(crate) fn listen_for_changes(&self) -> Option<tokio::task::JoinHandle<()>> {
        match self {
            Store::Sqlite(_) => None,
            Store::Postgres(s) => Some(s.listen_for_changes()),
        }
    }

    /// Completes when another process may have changed the signing keys: on
    /// PostgreSQL when the listener hears it; never on SQLite, whose brokers share a
    /// host and pick rotations up at their key poll.
    pub(crate) async fn key_changed(&self) {
        match self {
            Store::Sqlite(_) => std::future::pending().await,
            Store::Postgres(s) => s.key_changed().await,
        }
    }

    pub(crate) async fn get_client_by_name(
        &self,
        name: &str,
    ) -> Result<Option<ClientRecord>, StoreError> {
        dispatch!(self, s => s.get_client_by_name(name).await)
    }

    /// Every client, oldest first.
    pub(crate) async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        dispatch!(self, s => s.list_clients().await)
    }

    /// One page of clients, oldest first (see [`ClientQuery`]).
    pub(crate) async fn find_clients(
        &self,
        q: &ClientQuery,
    ) -> Result<Vec<ClientRecord>, StoreError> {
        dispatch!(self, s => s.find_clients(q).await)
    }

    /// Registers a client, with its audit event, in one transaction.
    pub(crate) async fn insert_client(
        &self,
        c: &ClientRecord,
        event: Option<&NewEvent>,
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.insert_client(c, event).await)
    }

    /// Writes `c` over the stored row if that row's version is still `c.version`,
    /// raising it by one, and appends the audit event, in one transaction.
    pub(crate) async fn update_client(
        &self,
        c: &ClientRecord,
        event: Option<&NewEvent>,
    ) -> Result<Written, StoreError> {
        dispatch!(self, s => s.update_client(c, event).await)
    }

    /// Deletes a client (if its version is `version`, when given), with its audit event.
    pub(crate) async fn delete_client(
        &self,
        id: &str,
        version: Option<i64>,
        event: Option<&NewEvent>,
    ) -> Result<Written, StoreError> {
        dispatch!(self, s => s.delete_client(id, version, event).await)
    }

    /// Audit events, newest first.
    pub(crate) async fn audit_events(&self, q: &AuditQuery) -> Result<Vec<AuditRow>, StoreError> {
        dispatch!(self, s => s.audit_events(q).await)
    }

    /// Adds a batch of per-minute counts (from one replica's memory) to the stored
    /// ones, in one transaction.
    pub(crate) async fn add_usage(&self, rows: &[UsageRow]) -> Result<(), StoreError> {
        dispatch!(self, s => s.add_usage(rows).await)
    }

    /// One client's per-minute counts from `from` to `to` (minutes' starts, Unix
    /// seconds, inclusive), summed over replicas.
    pub(crate) async fn usage(
        &self,
        client_id: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<UsageRow>, StoreError> {
        dispatch!(self, s => s.usage(client_id, from, to).await)
    }

    /// Every stored key: the active ones first, then the retired ones, most recently
    /// retired first.
    pub(crate) async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        dispatch!(self, s => s.list_keys().await)
    }

    /// The active key for `alg`, created with `make` when there is none. Atomic across
    /// processes, so replicas starting together agree on one key.
    pub(crate) async fn ensure_active_key(
        &self,
        alg: &str,
        make: impl FnOnce() -> Result<KeyRecord, crate::keys::KeyError> + Send + 'static,
    ) -> Result<KeyRecord, StoreError> {
        dispatch!(self, s => s.ensure_active_key(alg, make).await)
    }

    /// Makes `new` the active key for its algorithm and retires the old one, atomically,
    /// with the audit event (its `target` and `changes` are filled in here: the new
    /// kid, and the active kid before and after).
    pub(crate) async fn rotate_key(
        &self,
        new: &KeyRecord,
        now: Timestamp,
        event: Option<&NewEvent>,
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.rotate_key(new, now, event).await)
    }

    /// Rotates only when the active key for `alg` was created at or before
    /// `created_before`, deciding under the same lock replicas use, so an automatic
    /// rotation interval on several replicas rotates once, not once per replica.
    pub(crate) async fn rotate_key_if_older(
        &self,
        alg: &str,
        created_before: Timestamp,
        now: Timestamp,
        make: impl FnOnce() -> Result<KeyRecord, crate::keys::KeyError> + Send + 'static,
        event: Option<&NewEvent>,
    ) -> Result<Option<KeyRecord>, StoreError> {
        dispatch!(self, s => s.rotate_key_if_older(alg, created_before, now, make, event).await)
    }

    /// Raises the key's [`KeyRecord::max_token_ttl`] to at least `ttl`; a broker calls
    /// it before it signs with the key. `false` when there is no such key.
    pub(crate) async fn cover_key_ttl(&self, kid: &str, ttl: i64) -> Result<bool, StoreError> {
        dispatch!(self, s => s.cover_key_ttl(kid, ttl).await)
    }

    /// Records that the token `jti` of `client_id` is revoked until it expires anyway.
    pub(crate) async fn revoke(
        &self,
        jti: &str,
        client_id: &str,
        expires_at: Timestamp,
        now: Timestamp,
        event: Option<&NewEvent>,
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.revoke(jti, client_id, expires_at, now, event).await)
    }

    /// Records the `jti` of a client assertion (RFC 7523 §3 item 7: used once), kept
    /// until `expires_at`; `false` when the client had used it already. One insert
    /// that the primary key decides, so two replicas racing with the same assertion
    /// cannot both succeed.
    pub(crate) async fn use_assertion_jti(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.use_assertion_jti(client_id, jti, expires_at).await)
    }

    pub(crate) async fn is_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        dispatch!(self, s => s.is_revoked(jti).await)
    }

    pub(crate) async fn insert_opaque(&self, t: &OpaqueRecord) -> Result<(), StoreError> {
        dispatch!(self, s => s.insert_opaque(t).await)
    }

    pub(crate) async fn get_opaque(
        &self,
        token_hash: &str,
    ) -> Result<Option<OpaqueRecord>, StoreError> {
        dispatch!(self, s => s.get_opaque(token_hash).await)
    }

    /// Removes an opaque token (its revocation), with the audit event; `false` when
    /// there was none.
    pub(crate) async fn delete_opaque(
        &self,
        token_hash: &str,
        event: Option<&NewEvent>,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.delete_opaque(token_hash, event).await)
    }

    /// Deletes revocations, opaque tokens and client assertion `jti`s that have
    /// expired, and retired keys
    /// whose last token has expired more than `leeway` seconds ago (reckoned from the
    /// key's stored [`KeyRecord::max_token_ttl`]).
    pub(crate) async fn prune(&self, now: Timestamp, leeway: i64) -> Result<Pruned, StoreError> {
        dispatch!(self, s => s.prune(now, leeway).await)
    }

    /// The kid of the active key for `alg`, for the cheap poll that notices rotations.
    pub(crate) async fn active_kid(&self, alg: &str) -> Result<Option<String>, StoreError> {
        dispatch!(self, s => s.active_kid(alg).await)
    }
}

/// A database URL with any password removed, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => {
                    format!("{}://{}:[redacted]@{}", &url[..s], user, &url[at + 1..])
                }
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

pub(crate) fn join_scopes(scopes: &[String]) -> String {
    scopes.join(" ")
}

/// The old `audience` column: the default audience (see [`ClientRecord::audiences`]).
pub(crate) fn default_audience(c: &ClientRecord) -> Option<&str> {
    c.audiences.first().map(String::as_str)
}

pub(crate) fn split_scopes(s: &str) -> Vec<String> {
    s.split(' ')
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://u:pw@h/db"),
            "postgres://u:[redacted]@h/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
    }
}
