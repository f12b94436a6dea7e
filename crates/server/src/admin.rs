//! The one service through which the broker's state changes: clients, their settings
//! and secrets, signing keys, revocations; and where the audit trail and usage are
//! read.
//!
//! Every caller goes through [`Admin`]: the CLI, `serve --demo`, the revocation
//! endpoint, the admin API and the console. Validation lives here, so no caller can
//! store what another would refuse; and every change is written in one transaction
//! with its audit event (who, what, which fields from what to what; never a secret
//! nor its hash), so a change that is not audited does not happen. The store itself
//! is private to this crate.

use crate::SigningAlg;
use crate::clock::Clock;
use crate::keys::{KeyError, SigningKey};
use crate::secret;
use crate::store::{
    AuditQuery, AuditRow, ClientQuery, ClientRecord, KeyRecord, NewEvent, Store, StoreError,
    Timestamp, Written,
};
use auth_broker_proto::admin::AuthMethod;
use auth_broker_proto::admin::{
    AuditEvent, AuditPage, Client, ClientPage, ClientSettings, FieldError, Key, KeyState,
    REGISTERED_CLAIMS, Usage, UsagePoint, merge_patch,
};
use auth_broker_proto::{ClientSecret, scope};
use serde_json::{Map, Value, json};
use std::fmt;
use std::sync::Arc;

/// Who asks for a change, with what the audit trail keeps about the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub who: Who,
    /// The request's id (`X-Request-Id`), for a change over HTTP.
    pub request_id: Option<String>,
    /// The peer address, for a change over HTTP.
    pub peer: Option<String>,
}

/// The kinds of [`Actor`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Who {
    /// An operator at a shell on a host that can open the store (`cli:USER@HOST`).
    Cli { user: String, host: String },
    /// A client of this broker, over HTTP (`client:ID`).
    Client { id: String },
    /// The broker itself: `serve --demo`, automatic key rotation (`broker`).
    Broker,
}

impl Actor {
    /// The operator running this process: `$USER` (or `$LOGNAME`) at the host name.
    pub fn cli() -> Self {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".into());
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "localhost".into());
        Self::of(Who::Cli { user, host })
    }

    /// The broker itself.
    pub fn broker() -> Self {
        Self::of(Who::Broker)
    }

    /// A client of this broker, in the request `request_id` from `peer`.
    pub fn client(id: &str, request_id: Option<String>, peer: Option<String>) -> Self {
        Self {
            who: Who::Client { id: id.to_owned() },
            request_id,
            peer,
        }
    }

    fn of(who: Who) -> Self {
        Self {
            who,
            request_id: None,
            peer: None,
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.who {
            Who::Cli { user, host } => write!(f, "cli:{user}@{host}"),
            Who::Client { id } => write!(f, "client:{id}"),
            Who::Broker => f.write_str("broker"),
        }
    }
}

/// A new client's name, scopes and audience: the common case of [`ClientSettings`].
#[derive(Debug, Clone, Default)]
pub struct NewClient {
    pub name: String,
    /// Space separated.
    pub scope: String,
    pub audience: Option<String>,
}

impl From<&NewClient> for ClientSettings {
    fn from(n: &NewClient) -> Self {
        Self {
            client_name: n.name.clone(),
            scope: n.scope.clone(),
            audience: n.audience.iter().cloned().collect(),
            enabled: true,
            ..Self::default()
        }
    }
}

impl From<NewClient> for ClientSettings {
    fn from(n: NewClient) -> Self {
        (&n).into()
    }
}

/// A new secret, shown once: only its hash is stored.
#[derive(Debug)]
pub struct RotatedSecret {
    pub client_id: String,
    pub secret: ClientSecret,
    /// When the new secret stops working; 0: never.
    pub expires_at: Timestamp,
    /// Until when the previous secret keeps working; `None`: it stopped at once.
    pub previous_valid_until: Option<Timestamp>,
}

/// A token to revoke, as the revocation endpoint read it (RFC 7009 §2.1).
#[derive(Debug)]
pub(crate) enum Revocable {
    /// A JWT: its `jti` is kept as revoked until its `exp`.
    Jwt {
        jti: String,
        client_id: String,
        exp: Timestamp,
    },
    /// An opaque token, by the hash it is stored under: deleted.
    Opaque { hash: String, client_id: String },
}

/// Why a change or a read was refused. Each maps to one answer of the admin API (RFC
/// 9457) and one message of the CLI.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Bad input: every field at fault, each with what is wrong.
    #[error("{}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error("no client with id '{0}'; `auth-broker client list` shows them")]
    NoSuchClient(String),
    #[error("a client named '{0}' already exists; choose another name")]
    DuplicateName(String),
    /// The change was based on an older version than the stored one (`If-Match`).
    #[error(
        "the client changed since version {expected} was read (it is at version {current}); read it again and redo the change on top"
    )]
    Stale { expected: i64, current: i64 },
    /// A secret operation on a client that authenticates without one.
    #[error(
        "client '{0}' authenticates with private_key_jwt and has no secret: rotate its key in jwks or at jwks_uri instead (or set token_endpoint_auth_method to client_secret_basic first)"
    )]
    NoSecret(String),
    /// RFC 7009 §2.1: a client may revoke only its own tokens.
    #[error("this token was issued to another client; a client may revoke only its own tokens")]
    NotOwner,
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::DuplicateName(name) => Self::DuplicateName(name),
            other => Self::Store(other),
        }
    }
}

impl From<secret::RandomError> for AdminError {
    fn from(e: secret::RandomError) -> Self {
        Self::Key(e.into())
    }
}

impl AdminError {
    fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError {
            field: field.to_owned(),
            message: message.into(),
        }])
    }
}

/// The most clients or audit events one page holds.
pub const MAX_PAGE: i64 = 200;
/// A page's size when the caller names none.
pub const DEFAULT_PAGE: i64 = 50;
/// How far back usage can be asked for (and is kept).
pub const USAGE_DAYS: i64 = 30;

/// The service. Cheap to clone: a store handle and a clock.
#[derive(Clone, Debug)]
pub struct Admin {
    store: Store,
    clock: Arc<dyn Clock>,
}

impl Admin {
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// Opens the store a URL names (applying pending migrations) with the system clock.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Ok(Self::new(
            Store::open(url).await?,
            Arc::new(crate::clock::SystemClock),
        ))
    }

    /// The store this service changes (to hand to a [`crate::Server`]).
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn event(&self, actor: &Actor, action: &'static str, target: &str, changes: Value) -> NewEvent {
        NewEvent {
            at_ms: self.clock.now_nanos().div_euclid(1_000_000),
            actor: actor.to_string(),
            action,
            target: target.to_owned(),
            changes: changes.to_string(),
            request_id: actor.request_id.clone(),
            peer: actor.peer.clone(),
        }
    }

    /// Registers a client with a generated id and secret. The secret is returned once;
    /// only its hash is stored.
    pub async fn create_client(
        &self,
        actor: &Actor,
        settings: impl Into<ClientSettings>,
    ) -> Result<(Client, ClientSecret), AdminError> {
        let settings = validate(settings.into())?;
        let now = self.clock.now_secs();
        let secret = secret::generate_secret()?;
        let mut record = ClientRecord::new(
            secret::generate_client_id()?,
            String::new(),
            secret::hash_secret(&secret),
            now,
        );
        apply(&mut record, &settings)?;
        let changes = diff(&Value::Null, &to_value(&settings));
        let event = self.event(actor, "client.create", &record.id, changes);
        self.store.insert_client(&record, Some(&event)).await?;
        tracing::info!(%actor, client_id = %record.id, name = %record.name, "client created");
        Ok((client_of(&record), secret))
    }

    /// Every client, oldest first.
    pub async fn list_clients(&self) -> Result<Vec<Client>, AdminError> {
        Ok(self
            .store
            .list_clients()
            .await?
            .iter()
            .map(client_of)
            .collect())
    }

    /// One page of clients, oldest first: `q` a case-insensitive part of the name, id
    /// or description; `after` the cursor of the previous page.
    pub async fn find_clients(
        &self,
        q: Option<&str>,
        enabled: Option<bool>,
        after: Option<&str>,
        limit: Option<i64>,
    ) -> Result<ClientPage, AdminError> {
        let limit = page_size(limit)?;
        let after = after.map(decode_client_cursor).transpose()?;
        let mut rows = self
            .store
            .find_clients(&ClientQuery {
                q: q.filter(|q| !q.is_empty()).map(str::to_owned),
                enabled,
                after,
                limit: limit + 1,
            })
            .await?;
        let next = if rows.len() as i64 > limit {
            rows.truncate(limit as usize);
            rows.last().map(|c| client_cursor(c.created_at, &c.id))
        } else {
            None
        };
        Ok(ClientPage {
            clients: rows.iter().map(client_of).collect(),
            next,
        })
    }

    pub async fn client(&self, id: &str) -> Result<Client, AdminError> {
        Ok(client_of(&self.record(id).await?))
    }

    async fn record(&self, id: &str) -> Result<ClientRecord, AdminError> {
        self.store
            .get_client(id)
            .await?
            .ok_or_else(|| AdminError::NoSuchClient(id.to_owned()))
    }

    pub async fn client_by_name(&self, name: &str) -> Result<Option<Client>, AdminError> {
        Ok(self
            .store
            .get_client_by_name(name)
            .await?
            .map(|c| client_of(&c)))
    }

    /// Changes a client's settings with an RFC 7396 JSON merge patch, if its version
    /// is still `if_match` (when given: a stale one is [`AdminError::Stale`], so two
    /// operators editing at once never silently overwrite each other). Without
    /// `if_match`, the patch is applied to the latest version, retried if another
    /// change lands in between.
    pub async fn update_client(
        &self,
        actor: &Actor,
        id: &str,
        patch: &Value,
        if_match: Option<i64>,
    ) -> Result<Client, AdminError> {
        if !patch.is_object() {
            return Err(AdminError::field(
                "(body)",
                "a JSON merge patch (RFC 7396) is a JSON object of the settings to change",
            ));
        }
        if let Some(obj) = patch.as_object() {
            // Before any version check: a patch that can never apply is a bad request
            // whatever the version.
            let known = to_value(&ClientSettings::default());
            let faults: Vec<FieldError> = obj
                .keys()
                .filter_map(|k| {
                    let message = if READ_ONLY.contains(&k.as_str()) {
                        "read-only: it cannot be changed with a patch"
                    } else if known.get(k).is_none() {
                        "not a client setting (INTERFACE §5 lists them)"
                    } else {
                        return None;
                    };
                    Some(FieldError {
                        field: k.clone(),
                        message: message.into(),
                    })
                })
                .collect();
            if !faults.is_empty() {
                return Err(AdminError::Invalid(faults));
            }
        }
        let patch = &one_key_source(patch);
        self.change(actor, id, if_match, "client.update", |record, _| {
            let mut value = to_value(&settings_of(record));
            merge_patch(&mut value, patch);
            let settings: ClientSettings =
                serde_json::from_value(value).map_err(|e| settings_error(&e))?;
            let settings = validate(settings)?;
            apply(record, &settings)
        })
        .await
    }

    /// Enables or disables a client; its token requests are refused (or served again)
    /// from the next request on, on every replica.
    pub async fn set_enabled(
        &self,
        actor: &Actor,
        id: &str,
        enabled: bool,
    ) -> Result<Client, AdminError> {
        self.update_client(actor, id, &json!({ "enabled": enabled }), None)
            .await
    }

    /// Every token issued to the client so far is inactive from now on, for
    /// introspection, `token-info` and guards in introspection mode.
    pub async fn revoke_tokens(
        &self,
        actor: &Actor,
        id: &str,
        if_match: Option<i64>,
    ) -> Result<Client, AdminError> {
        self.change(
            actor,
            id,
            if_match,
            "client.tokens.revoke",
            |record, now| {
                record.tokens_revoked_before = Some(now);
                Ok(())
            },
        )
        .await
    }

    /// Gives a client a new secret; the old one keeps working for `grace_secs` (0: it
    /// stops at once; never past its own expiry). A secret that expires gives the new
    /// one the same lifetime.
    pub async fn rotate_secret(
        &self,
        actor: &Actor,
        id: &str,
        grace_secs: u64,
    ) -> Result<RotatedSecret, AdminError> {
        if grace_secs > auth_broker_proto::admin::MAX_GRACE_SECONDS {
            return Err(AdminError::field(
                "grace_seconds",
                "at most 7776000 (90 days): rotate again later rather than keep an old secret that long",
            ));
        }
        let secret = secret::generate_secret()?;
        let hash = secret::hash_secret(&secret);
        let client = self
            .change(actor, id, None, "client.secret.rotate", |record, now| {
                if !record
                    .auth_method
                    .parse::<AuthMethod>()
                    .is_ok_and(AuthMethod::uses_secret)
                {
                    return Err(AdminError::NoSecret(record.id.clone()));
                }
                let grace = i64::try_from(grace_secs).unwrap_or(i64::MAX);
                let until = (grace > 0).then(|| {
                    let until = now.saturating_add(grace);
                    match record.secret_expires_at {
                        0 => until,
                        old => until.min(old),
                    }
                });
                if record.secret_expires_at != 0 {
                    let lifetime = record
                        .secret_expires_at
                        .saturating_sub(record.secret_issued_at)
                        .max(1);
                    record.secret_expires_at = now.saturating_add(lifetime);
                }
                let old = std::mem::replace(&mut record.secret_hash, hash.clone());
                record.previous_secret_hash = until.map(|_| old);
                record.previous_secret_expires_at = until;
                record.secret_issued_at = now;
                Ok(())
            })
            .await?;
        Ok(RotatedSecret {
            client_id: client.client_id,
            secret,
            expires_at: client.settings.client_secret_expires_at,
            previous_valid_until: client.previous_secret_expires_at,
        })
    }

    /// Read, change, write if unchanged meanwhile, with the audit event of what
    /// changed; retried (without `if_match`) when another change landed in between.
    async fn change(
        &self,
        actor: &Actor,
        id: &str,
        if_match: Option<i64>,
        action: &'static str,
        f: impl Fn(&mut ClientRecord, Timestamp) -> Result<(), AdminError>,
    ) -> Result<Client, AdminError> {
        for _ in 0..5 {
            let before = self.record(id).await?;
            let now = self.clock.now_secs();
            let mut after = before.clone();
            // The change first: one that can never apply is refused as such, whatever
            // the version it was based on.
            f(&mut after, now)?;
            after.updated_at = now;
            if let Some(expected) = if_match
                && expected != before.version
            {
                return Err(AdminError::Stale {
                    expected,
                    current: before.version,
                });
            }
            let changes = diff(&audited(&before), &audited(&after));
            let event = self.event(actor, action, id, changes);
            match self.store.update_client(&after, Some(&event)).await? {
                Written::Done => {
                    after.version += 1;
                    tracing::info!(%actor, client_id = %id, action, "client changed");
                    return Ok(client_of(&after));
                }
                Written::Missing => return Err(AdminError::NoSuchClient(id.to_owned())),
                Written::Stale if if_match.is_some() => {
                    let current = self.record(id).await?.version;
                    return Err(AdminError::Stale {
                        expected: before.version,
                        current,
                    });
                }
                Written::Stale => continue,
            }
        }
        Err(AdminError::Store(StoreError::Unavailable(
            "the client kept changing under this change; try again".into(),
        )))
    }

    /// Deletes a client (if its version is still `if_match`, when given); its secrets
    /// stop working at once and its tokens are refused by introspection and
    /// `token-info` from the next request on.
    pub async fn delete_client(
        &self,
        actor: &Actor,
        id: &str,
        if_match: Option<i64>,
    ) -> Result<(), AdminError> {
        let before = self.record(id).await?;
        let changes = json!({ "client_name": [before.name, Value::Null] });
        let event = self.event(actor, "client.delete", id, changes);
        match self.store.delete_client(id, if_match, Some(&event)).await? {
            Written::Done => {
                tracing::info!(%actor, client_id = %id, "client deleted");
                Ok(())
            }
            Written::Missing => Err(AdminError::NoSuchClient(id.to_owned())),
            Written::Stale => Err(AdminError::Stale {
                expected: if_match.unwrap_or_default(),
                current: self.record(id).await?.version,
            }),
        }
    }

    /// Every stored signing key, newest first.
    pub async fn keys(&self) -> Result<Vec<Key>, AdminError> {
        Ok(self.store.list_keys().await?.iter().map(key_of).collect())
    }

    /// Makes a new key of `alg` the active one and retires the old one; running
    /// brokers switch within their key poll interval.
    pub async fn rotate_key(&self, actor: &Actor, alg: SigningAlg) -> Result<Key, AdminError> {
        let now = self.clock.now_secs();
        let rec = tokio::task::spawn_blocking(move || SigningKey::generate(alg, now))
            .await
            .map_err(|e| KeyError::Task(e.to_string()))??;
        let event = self.event(actor, "key.rotate", &rec.kid, Value::Null);
        self.store.rotate_key(&rec, now, Some(&event)).await?;
        tracing::info!(%actor, kid = %rec.kid, %alg, "signing key rotated");
        Ok(key_of(&rec))
    }

    /// Rotates the key of `alg` when the active one was created `every` or longer
    /// ago, deciding under the store's key lock, so replicas with the same interval
    /// rotate once, not once each. `None` when it was not due.
    pub(crate) async fn rotate_key_if_due(
        &self,
        alg: SigningAlg,
        every: std::time::Duration,
    ) -> Result<Option<Key>, AdminError> {
        let now = self.clock.now_secs();
        let age = i64::try_from(every.as_secs()).unwrap_or(i64::MAX);
        let event = self.event(&Actor::broker(), "key.rotate", "", Value::Null);
        let rotated = self
            .store
            .rotate_key_if_older(
                alg.as_str(),
                now.saturating_sub(age),
                now,
                move || SigningKey::generate(alg, now),
                Some(&event),
            )
            .await?;
        if let Some(k) = &rotated {
            tracing::info!(actor = "broker", kid = %k.kid, "signing key rotated (--key-rotation-interval)");
        }
        Ok(rotated.as_ref().map(key_of))
    }

    /// Revokes a token on behalf of `caller` (RFC 7009 §2.1: its own tokens only). A
    /// JWT's `jti` is kept as revoked until the token would have expired anyway; an
    /// opaque token is deleted.
    pub(crate) async fn revoke(&self, caller: &Actor, token: Revocable) -> Result<(), AdminError> {
        let (Who::Client { id: caller_id }, owner) = (
            &caller.who,
            match &token {
                Revocable::Jwt { client_id, .. } | Revocable::Opaque { client_id, .. } => client_id,
            },
        ) else {
            return Err(AdminError::NotOwner);
        };
        if owner != caller_id {
            return Err(AdminError::NotOwner);
        }
        match &token {
            Revocable::Jwt {
                jti,
                client_id,
                exp,
            } => {
                let event = self.event(
                    caller,
                    "token.revoke",
                    client_id,
                    json!({ "jti": [Value::Null, jti] }),
                );
                self.store
                    .revoke(jti, client_id, *exp, self.clock.now_secs(), Some(&event))
                    .await?;
            }
            Revocable::Opaque { hash, client_id } => {
                let event = self.event(caller, "token.revoke", client_id, json!({}));
                self.store.delete_opaque(hash, Some(&event)).await?;
            }
        }
        tracing::info!(actor = %caller, "token revoked");
        Ok(())
    }

    /// The audit trail, newest first: optionally only one client's (or key's) events,
    /// one action, since a time (Unix milliseconds).
    pub async fn audit(
        &self,
        target: Option<&str>,
        action: Option<&str>,
        since_ms: Option<i64>,
        after: Option<&str>,
        limit: Option<i64>,
    ) -> Result<AuditPage, AdminError> {
        let limit = page_size(limit)?;
        let before = after.map(decode_audit_cursor).transpose()?;
        let mut rows = self
            .store
            .audit_events(&AuditQuery {
                target: target.map(str::to_owned),
                action: action.map(str::to_owned),
                since_ms,
                before,
                limit: limit + 1,
            })
            .await?;
        let next = if rows.len() as i64 > limit {
            rows.truncate(limit as usize);
            rows.last().map(|e| e.id.to_string())
        } else {
            None
        };
        Ok(AuditPage {
            events: rows.iter().map(audit_event_of).collect(),
            next,
        })
    }

    /// A client's use per minute, from `from` to `to` (Unix seconds; default the last
    /// 24 hours), summed over replicas (as flushed so far: each replica writes its
    /// counts every few seconds).
    pub async fn usage(
        &self,
        id: &str,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
    ) -> Result<Usage, AdminError> {
        let now = self.clock.now_secs();
        let to = to.unwrap_or(now);
        // Usage is kept USAGE_DAYS: an earlier `from` has nothing more to show.
        let from = from
            .unwrap_or(to.saturating_sub(24 * 3600))
            .max(to.saturating_sub(USAGE_DAYS * 86_400));
        self.record(id).await?;
        let (from_m, to_m) = (from.div_euclid(60) * 60, to.div_euclid(60) * 60);
        let rows = self.store.usage(id, from_m, to_m).await?;
        Ok(Usage {
            client_id: id.to_owned(),
            from: rfc3339(from_m),
            to: rfc3339(to_m),
            minutes: rows
                .into_iter()
                .map(|r| UsagePoint {
                    t: rfc3339(r.minute),
                    issued: u64::try_from(r.issued).unwrap_or(0),
                    failed: u64::try_from(r.failed).unwrap_or(0),
                    limited: u64::try_from(r.limited).unwrap_or(0),
                })
                .collect(),
        })
    }
}

/// Fields a patch may not touch.
const READ_ONLY: [&str; 7] = [
    "client_id",
    "created_at",
    "updated_at",
    "version",
    "previous_secret_expires_at",
    "tokens_revoked_before",
    "client_secret",
];

fn to_value(s: &ClientSettings) -> Value {
    serde_json::to_value(s).unwrap_or(Value::Null)
}

/// What the audit trail records of a client: its settings and the facts a change can
/// move, never a secret nor its hash.
fn audited(c: &ClientRecord) -> Value {
    let mut v = to_value(&settings_of(c));
    if let Value::Object(m) = &mut v {
        m.insert(
            "previous_secret_expires_at".into(),
            json!(c.previous_secret_expires_at),
        );
        m.insert(
            "tokens_revoked_before".into(),
            json!(c.tokens_revoked_before),
        );
        m.insert("secret_issued_at".into(), json!(c.secret_issued_at));
    }
    v
}

/// `{"field": [old, new]}` for each member that differs.
fn diff(before: &Value, after: &Value) -> Value {
    let empty = Map::new();
    let b = before.as_object().unwrap_or(&empty);
    let a = after.as_object().unwrap_or(&empty);
    let mut out = Map::new();
    for key in b.keys().chain(a.keys()) {
        let (old, new) = (
            b.get(key).cloned().unwrap_or(Value::Null),
            a.get(key).cloned().unwrap_or(Value::Null),
        );
        if old != new && !out.contains_key(key) {
            out.insert(key.clone(), json!([old, new]));
        }
    }
    Value::Object(out)
}

fn settings_of(c: &ClientRecord) -> ClientSettings {
    ClientSettings {
        client_name: c.name.clone(),
        scope: c.scopes.join(" "),
        audience: c.audiences.clone(),
        access_token_ttl: c.access_token_ttl.and_then(|t| u64::try_from(t).ok()),
        extra_claims: c
            .extra_claims
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default(),
        tokens_per_minute: c.tokens_per_minute,
        token_endpoint_auth_method: c.auth_method.parse().unwrap_or_default(),
        jwks: c.jwks.as_deref().and_then(|t| serde_json::from_str(t).ok()),
        jwks_uri: c.jwks_uri.clone(),
        tls_client_auth_subject_dn: c.tls_client_auth_subject_dn.clone(),
        dpop_bound_access_tokens: c.dpop_bound_access_tokens,
        client_secret_expires_at: c.secret_expires_at,
        enabled: c.enabled,
        contacts: c.contacts.clone(),
        description: c.description.clone(),
    }
}

pub(crate) fn client_of(c: &ClientRecord) -> Client {
    Client {
        client_id: c.id.clone(),
        settings: settings_of(c),
        created_at: c.created_at,
        updated_at: c.updated_at,
        previous_secret_expires_at: c.previous_secret_expires_at,
        tokens_revoked_before: c.tokens_revoked_before,
        version: c.version,
    }
}

fn key_of(k: &KeyRecord) -> Key {
    Key {
        kid: k.kid.clone(),
        alg: k.alg.clone(),
        state: if k.retired_at.is_none() {
            KeyState::Active
        } else {
            KeyState::Retired
        },
        created_at: k.created_at,
        retired_at: k.retired_at,
        published_until: k.needed_until(crate::RETIRED_KEY_LEEWAY_SECS),
    }
}

fn audit_event_of(r: &AuditRow) -> AuditEvent {
    AuditEvent {
        id: r.id,
        at: rfc3339_ms(r.at_ms),
        actor: r.actor.clone(),
        action: r.action.clone(),
        target: r.target.clone(),
        changes: serde_json::from_str(&r.changes).unwrap_or_default(),
        request_id: r.request_id.clone(),
        peer: r.peer.clone(),
    }
}

/// Writes validated settings into a record.
fn apply(record: &mut ClientRecord, s: &ClientSettings) -> Result<(), AdminError> {
    record.name.clone_from(&s.client_name);
    record.scopes = scope::parse(&s.scope)
        .map(|v| v.into_iter().map(str::to_owned).collect())
        .unwrap_or_default();
    record.audiences.clone_from(&s.audience);
    record.access_token_ttl = s.access_token_ttl.and_then(|t| i64::try_from(t).ok());
    record.extra_claims = (!s.extra_claims.is_empty())
        .then(|| serde_json::to_string(&s.extra_claims))
        .transpose()
        .map_err(|e| AdminError::field("extra_claims", e.to_string()))?;
    record.tokens_per_minute = s.tokens_per_minute;
    record.auth_method = s.token_endpoint_auth_method.as_str().to_owned();
    record.jwks = s
        .jwks
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| AdminError::field("jwks", e.to_string()))?;
    record.jwks_uri.clone_from(&s.jwks_uri);
    record
        .tls_client_auth_subject_dn
        .clone_from(&s.tls_client_auth_subject_dn);
    record.dpop_bound_access_tokens = s.dpop_bound_access_tokens;
    record.secret_expires_at = s.client_secret_expires_at;
    record.enabled = s.enabled;
    record.contacts.clone_from(&s.contacts);
    record.description.clone_from(&s.description);
    Ok(())
}

/// A settings document that does not deserialize, as the field at fault.
pub(crate) fn settings_error(e: &serde_json::Error) -> AdminError {
    let text = e.to_string();
    // serde names the field in backquotes: "unknown field `nmae`, expected one of ..."
    let field = text
        .split('`')
        .nth(1)
        .filter(|_| text.starts_with("unknown field") || text.starts_with("missing field"))
        .unwrap_or("(body)");
    let message = text
        .rsplit_once(" at line ")
        .map_or(text.as_str(), |(m, _)| m);
    AdminError::field(field, message)
}

/// Checks every setting and reports every fault at once; normalizes (trims names,
/// dedupes audiences) on the way.
pub(crate) fn validate(mut s: ClientSettings) -> Result<ClientSettings, AdminError> {
    let mut errors = Vec::new();
    let mut bad = |field: String, message: &str| {
        errors.push(FieldError {
            field,
            message: message.to_owned(),
        })
    };
    s.client_name = s.client_name.trim().to_owned();
    if s.client_name.is_empty()
        || s.client_name.chars().count() > 200
        || s.client_name.chars().any(char::is_control)
    {
        bad(
            "client_name".into(),
            "1 to 200 characters without control characters",
        );
    }
    if let Err(token) = scope::parse(&s.scope) {
        bad(
            "scope".into(),
            &format!(
                "'{}' is not a valid scope (RFC 6749 §3.3: printable ASCII without spaces, '\"' or '\\\\')",
                token.escape_default()
            ),
        );
    }
    let mut seen = std::collections::HashSet::new();
    for (i, a) in s.audience.iter().enumerate() {
        if a.is_empty()
            || a.chars().count() > 2000
            || a.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            bad(
                format!("audience[{i}]"),
                "1 to 2000 characters without spaces or control characters",
            );
        }
    }
    // The same audience twice is one: the first place counts.
    s.audience.retain(|a| seen.insert(a.clone()));
    if s.audience.len() > 50 {
        bad("audience".into(), "at most 50 audiences");
    }
    if let Some(ttl) = s.access_token_ttl
        && !(1..=u64::try_from(crate::MAX_TOKEN_TTL_SECS).unwrap_or(u64::MAX)).contains(&ttl)
    {
        bad(
            "access_token_ttl".into(),
            "between 1 and 2678400 seconds (31 days), or null for the broker's default",
        );
    }
    for name in s.extra_claims.keys() {
        if REGISTERED_CLAIMS.contains(&name.as_str()) {
            bad(
                format!("extra_claims.{name}"),
                "a registered claim the broker sets itself (iss sub aud exp nbf iat jti client_id scope cnf); choose another name",
            );
        }
    }
    if serde_json::to_string(&s.extra_claims).map_or(0, |t| t.len()) > 4096 {
        bad(
            "extra_claims".into(),
            "at most 4 KiB of JSON (they travel in every token)",
        );
    }
    if s.tokens_per_minute
        .is_some_and(|n| !(1..=1_000_000).contains(&n))
    {
        bad(
            "tokens_per_minute".into(),
            "1 to 1000000, or null for no cap",
        );
    }
    // A client of private_key_jwt or self_signed_tls_client_auth without keys yet,
    // or of tls_client_auth without a subject DN, is fine: it is refused, saying
    // what to set ("no registered key", "not among the certificates", "no
    // tls_client_auth_subject_dn registered"), until it is set.
    validate_keys(&s, &mut bad);
    if s.client_secret_expires_at < 0 {
        bad(
            "client_secret_expires_at".into(),
            "a Unix time, or 0 for never (a time already past expires the secret now)",
        );
    }
    if s.contacts.len() > 20 {
        bad("contacts".into(), "at most 20 contacts");
    }
    for (i, c) in s.contacts.iter().enumerate() {
        if c.trim().is_empty() || c.chars().count() > 200 || c.chars().any(char::is_control) {
            bad(
                format!("contacts[{i}]"),
                "1 to 200 characters without control characters",
            );
        }
    }
    if s.description.chars().count() > 2000
        || s.description
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        bad(
            "description".into(),
            "at most 2000 characters; line breaks and tabs are the only control characters allowed",
        );
    }
    if errors.is_empty() {
        Ok(s)
    } else {
        Err(AdminError::Invalid(errors))
    }
}

/// `jwks` and `jwks_uri` are one setting in two forms (RFC 7591 §2: never both): a
/// patch that gives one replaces the other, so a client moves its keys from the
/// registration to a URL (or back) in one change.
fn one_key_source(patch: &Value) -> Value {
    let mut patch = patch.clone();
    if let Some(obj) = patch.as_object_mut() {
        for (given, other) in [("jwks", "jwks_uri"), ("jwks_uri", "jwks")] {
            if obj.get(given).is_some_and(|v| !v.is_null()) && !obj.contains_key(other) {
                obj.insert(other.into(), Value::Null);
            }
        }
    }
    patch
}

use auth_broker_proto::admin::{PRIVATE_JWK_MEMBERS, PUBLIC_JWK_LISTS, PUBLIC_JWK_MEMBERS};

/// `jwks`, `jwks_uri` and `tls_client_auth_subject_dn` (RFC 7591 §2, RFC 8705 §2.1.2):
/// their shapes. Which method needs which is checked with the method.
fn validate_keys(s: &ClientSettings, bad: &mut impl FnMut(String, &str)) {
    if s.jwks.is_some() && s.jwks_uri.is_some() {
        bad(
            "jwks_uri".into(),
            "give jwks or jwks_uri, not both (RFC 7591 §2)",
        );
    }
    if let Some(jwks) = &s.jwks {
        match jwks.get("keys").and_then(Value::as_array) {
            Some(keys) if !keys.is_empty() && keys.len() <= 20 => {
                for (i, k) in keys.iter().enumerate() {
                    let Some(k) = k.as_object() else {
                        bad(format!("jwks.keys[{i}]"), "a JWK object (RFC 7517 §4)");
                        continue;
                    };
                    for (name, value) in k {
                        let list = PUBLIC_JWK_LISTS.contains(&name.as_str());
                        let fault = if PRIVATE_JWK_MEMBERS.contains(&name.as_str()) {
                            "a private key member: register the public key only (the private key stays with the client)"
                        } else if !list && !PUBLIC_JWK_MEMBERS.contains(&name.as_str()) {
                            "not a member of a public JWK (RFC 7517 §4, RFC 7518 §6, RFC 8037 §2)"
                        } else if list
                            && !value
                                .as_array()
                                .is_some_and(|a| a.iter().all(Value::is_string))
                        {
                            "an array of strings"
                        } else if !list && !value.is_string() {
                            "a string"
                        } else {
                            continue;
                        };
                        bad(format!("jwks.keys[{i}].{name}"), fault);
                    }
                    if !k.get("kty").is_some_and(Value::is_string) {
                        bad(
                            format!("jwks.keys[{i}].kty"),
                            "a JWK needs its kty (EC, OKP or RSA)",
                        );
                    }
                }
            }
            _ => bad(
                "jwks".into(),
                "a JWK Set: an object whose keys member is an array of 1 to 20 public JWKs (RFC 7517 §5)",
            ),
        }
        if serde_json::to_string(jwks).map_or(0, |t| t.len()) > 64 * 1024 {
            bad("jwks".into(), "at most 64 KiB of JSON");
        }
    }
    if let Some(uri) = &s.jwks_uri {
        let prefixed = [
            "https://",
            "http://127.0.0.1:",
            "http://[::1]:",
            "http://localhost:",
        ]
        .iter()
        .any(|p| uri.len() > p.len() && uri.starts_with(p));
        if !prefixed
            || uri.chars().count() > 2000
            || uri.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            bad(
                "jwks_uri".into(),
                "an https URL of at most 2000 characters (plain http only on the loopback interface, for tests)",
            );
        }
    }
    if let Some(dn) = &s.tls_client_auth_subject_dn
        && (dn.trim().is_empty() || dn.chars().count() > 2000 || dn.chars().any(char::is_control))
    {
        bad(
            "tls_client_auth_subject_dn".into(),
            "an RFC 4514 distinguished name such as CN=client.example.com,O=Example, at most 2000 characters",
        );
    }
}

fn page_size(limit: Option<i64>) -> Result<i64, AdminError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(AdminError::field(
            "limit",
            format!("between 1 and {MAX_PAGE}"),
        )),
    }
}

/// Cursors are opaque to callers (their form may change between versions), but have
/// a published pattern ([`CLIENT_CURSOR_PATTERN`], [`AUDIT_CURSOR_PATTERN`]) inside
/// which every value is a position: a client cursor is the last client's creation
/// second and its id in hex, an audit cursor the last event's id.
fn client_cursor(created_at: Timestamp, id: &str) -> String {
    let hex: String = id.bytes().map(|b| format!("{b:02x}")).collect();
    format!("{created_at}.{hex}")
}

/// The pattern of a clients page cursor.
pub const CLIENT_CURSOR_PATTERN: &str = r"^[0-9]{1,18}\.([0-9a-f]{2})*$";
/// The pattern of an audit page cursor.
pub const AUDIT_CURSOR_PATTERN: &str = r"^[0-9]{1,18}$";

fn bad_cursor() -> AdminError {
    AdminError::field(
        "after",
        "not a cursor this broker made; use the 'next' of the previous page",
    )
}

fn decode_client_cursor(cursor: &str) -> Result<(Timestamp, String), AdminError> {
    let (t, hex) = cursor.split_once('.').ok_or_else(bad_cursor)?;
    let t: Timestamp = t.parse().map_err(|_| bad_cursor())?;
    if hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad_cursor());
    }
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    // Any bytes are a position between two ids; one not from this broker just starts
    // where it sorts.
    Ok((t, String::from_utf8_lossy(&bytes).into_owned()))
}

fn decode_audit_cursor(cursor: &str) -> Result<i64, AdminError> {
    cursor.parse().map_err(|_| bad_cursor())
}

/// RFC 3339, UTC, whole seconds.
pub fn rfc3339(secs: Timestamp) -> String {
    u64::try_from(secs)
        .ok()
        .map(|s| {
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(s),
            )
            .to_string()
        })
        .unwrap_or_else(|| secs.to_string())
}

/// RFC 3339, UTC, milliseconds.
fn rfc3339_ms(ms: i64) -> String {
    u64::try_from(ms)
        .ok()
        .map(|ms| {
            humantime::format_rfc3339_millis(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
            )
            .to_string()
        })
        .unwrap_or_else(|| ms.to_string())
}

/// A time a caller gave: Unix seconds, or RFC 3339 (`2026-12-02T10:00:00Z`, any
/// offset, any fraction).
pub fn parse_time(field: &str, s: &str) -> Result<Timestamp, AdminError> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    parse_rfc3339(s).ok_or_else(|| {
        AdminError::field(
            field,
            "a Unix time in seconds or an RFC 3339 time such as 2026-12-02T10:00:00Z",
        )
    })
}

/// RFC 3339 §5.6 `date-time` to Unix seconds (the fraction dropped), or `None`.
/// Written out because the one parser in the tree (humantime's) takes only `Z` and no
/// year before 1970, and an API that publishes `format: date-time` must take every
/// date-time.
pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap(year) => 29,
        2 => 28,
        _ => return None,
    };
    if !(1..=days_in_month).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let offset = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let (h, m) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if h > 23 || m > 59 {
                return None;
            }
            let o = h * 3600 + m * 60;
            if *sign == b'+' { o } else { -o }
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm), proleptic Gregorian.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(v: Value) -> ClientSettings {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn every_bad_field_is_named() {
        let s = settings(json!({
            "client_name": "",
            "scope": "a \"b\"",
            "audience": ["https://api", "two words", ""],
            "access_token_ttl": 0,
            "extra_claims": {"sub": "x", "tenant": "t"},
            "tokens_per_minute": 0,
            "client_secret_expires_at": -5,
            "contacts": ["\u{7}"],
            "description": "a\u{1b}b",
        }));
        let Err(AdminError::Invalid(errors)) = validate(s) else {
            panic!("invalid")
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "client_name",
                "scope",
                "audience[1]",
                "audience[2]",
                "access_token_ttl",
                "extra_claims.sub",
                "tokens_per_minute",
                "client_secret_expires_at",
                "contacts[0]",
                "description"
            ]
        );
    }

    #[test]
    fn diff_names_what_changed() {
        let d = diff(&json!({"a": 1, "b": 2}), &json!({"a": 1, "b": 3, "c": 4}));
        assert_eq!(d, json!({"b": [2, 3], "c": [null, 4]}));
    }

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let c = client_cursor(17, "abc/é");
        assert_eq!(decode_client_cursor(&c).ok(), Some((17, "abc/é".into())));
        for bad in ["!!", "17", "17.abc", "x.00", "17.0"] {
            assert!(decode_client_cursor(bad).is_err(), "{bad}");
        }
        assert!(
            decode_client_cursor("17.ff").is_ok(),
            "any bytes are a position"
        );
        assert!(decode_audit_cursor("17.ab").is_err());
        assert_eq!(decode_audit_cursor("9").ok(), Some(9));
    }

    #[test]
    fn rfc_3339_times_with_any_offset_and_year() {
        for (text, want) in [
            ("1970-01-01T00:00:00Z", 0),
            ("2027-01-15T08:00:00Z", 1_800_000_000),
            ("2027-01-15T09:30:00.123456+01:30", 1_800_000_000),
            ("2027-01-15t08:00:00z", 1_800_000_000),
            ("0001-01-01T00:00:00Z", -62_135_596_800),
            ("2024-02-29T12:00:00-00:00", 1_709_208_000),
            ("9999-12-31T23:59:60Z", 253_402_300_799),
        ] {
            assert_eq!(parse_rfc3339(text), Some(want), "{text}");
        }
        for bad in [
            "2023-02-29T00:00:00Z",
            "2027-02-32T00:00:00Z",
            "2027-01-15 08:00:00Z",
            "2027-13-01T00:00:00Z",
            "2027-01-15T24:00:00Z",
            "2027-01-15T08:00:00",
            "2027-01-15T08:00:00+1:00",
            "2027-01-15T08:00:00.Z",
            "2027-01-15",
            "x027-01-15T08:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    proptest::proptest! {
        /// Agrees with humantime wherever humantime can say (UTC, 1970 on).
        #[test]
        fn agrees_with_humantime(secs in 0u64..253_402_300_799) {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
            let text = humantime::format_rfc3339_seconds(t).to_string();
            proptest::prop_assert_eq!(parse_rfc3339(&text), i64::try_from(secs).ok());
        }

        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            let _ = parse_rfc3339(&s);
        }
    }

    #[test]
    fn times_parse_both_ways() {
        assert_eq!(parse_time("t", "1800000000").ok(), Some(1_800_000_000));
        assert_eq!(
            parse_time("t", "2027-01-15T08:00:00Z").ok(),
            Some(1_800_000_000)
        );
        assert!(parse_time("t", "yesterday").is_err());
        assert_eq!(rfc3339(1_800_000_000), "2027-01-15T08:00:00Z");
    }
}
