//! The one service through which the broker's state changes: clients, their secrets,
//! signing keys and revocations.
//!
//! Every caller goes through [`Admin`]: the CLI, `serve --demo`, the revocation
//! endpoint, and next the admin API and the console. Validation lives here, so no
//! caller can store what another would refuse, and every change is made, and logged,
//! in one place with who asked for it ([`Actor`]) — the place the audit trail will
//! hang on. The store itself is private to this crate.

use crate::clock::Clock;
use crate::keys::{KeyError, SigningAlg, SigningKey};
use crate::secret;
use crate::store::{ClientRecord, KeyRecord, Store, StoreError, Timestamp};
use auth_broker_proto::{ClientSecret, scope};
use std::fmt;
use std::sync::Arc;

/// Who asks for a change: written with it to the log (and, next, to the audit trail).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
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
        Self::Cli { user, host }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cli { user, host } => write!(f, "cli:{user}@{host}"),
            Self::Client { id } => write!(f, "client:{id}"),
            Self::Broker => f.write_str("broker"),
        }
    }
}

/// A registered client as the service shows it: its settings, never its secret nor
/// the secret's hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    pub client_id: String,
    pub name: String,
    /// The scopes it may request, in the order they were given.
    pub scopes: Vec<String>,
    /// The `aud` of its tokens; `None` means the issuer.
    pub audience: Option<String>,
    pub enabled: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// While a rotated-out secret still works (rotation with grace), until when.
    pub previous_secret_expires_at: Option<Timestamp>,
}

impl From<&ClientRecord> for Client {
    fn from(c: &ClientRecord) -> Self {
        Self {
            client_id: c.id.clone(),
            name: c.name.clone(),
            scopes: c.scopes.clone(),
            audience: c.audience.clone(),
            enabled: c.enabled,
            created_at: c.created_at,
            updated_at: c.updated_at,
            previous_secret_expires_at: c.previous_secret_expires_at,
        }
    }
}

/// What a new client needs.
#[derive(Debug, Clone, Default)]
pub struct NewClient {
    pub name: String,
    /// Space separated.
    pub scope: String,
    pub audience: Option<String>,
}

/// A new secret, shown once: only its hash is stored.
#[derive(Debug)]
pub struct RotatedSecret {
    pub client_id: String,
    pub secret: ClientSecret,
    /// Until when the previous secret keeps working; `None`: it stopped at once.
    pub previous_valid_until: Option<Timestamp>,
}

/// Whether a key signs new tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyState {
    /// Signs new tokens (one per algorithm).
    Active,
    /// Rotated out: still published while tokens it signed may be valid.
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Retired => "retired",
        }
    }
}

/// A signing key's public facts (its private half never leaves the store).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    pub kid: String,
    pub alg: String,
    pub state: KeyState,
    pub created_at: Timestamp,
    pub retired_at: Option<Timestamp>,
    /// For a retired key, until when verifiers may need it (its last token's expiry
    /// plus leeway); the JWKS publishes it until then.
    pub published_until: Option<Timestamp>,
}

impl From<&KeyRecord> for KeyInfo {
    fn from(k: &KeyRecord) -> Self {
        Self {
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

/// Why a change was refused. `Invalid` names the field at fault, for the admin
/// API's problem details (RFC 9457) as much as for the CLI's message.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("no client with id '{0}'; `auth-broker client list` shows them")]
    NoSuchClient(String),
    #[error("a client named '{0}' already exists; choose another name")]
    DuplicateName(String),
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

impl AdminError {
    fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }
}

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

    /// Registers a client with a generated id and secret. The secret is returned once;
    /// only its hash is stored.
    pub async fn create_client(
        &self,
        actor: &Actor,
        new: &NewClient,
    ) -> Result<(Client, ClientSecret), AdminError> {
        let now = self.clock.now_secs();
        let secret = secret::generate_secret().map_err(KeyError::from)?;
        let record = ClientRecord {
            id: secret::generate_client_id().map_err(KeyError::from)?,
            name: valid_name(&new.name)?,
            secret_hash: secret::hash_secret(&secret),
            previous_secret_hash: None,
            previous_secret_expires_at: None,
            scopes: valid_scopes(&new.scope)?,
            audience: valid_audience(new.audience.as_deref())?,
            enabled: true,
            created_at: now,
            updated_at: now,
        };
        self.store.insert_client(&record).await?;
        tracing::info!(%actor, client_id = %record.id, name = %record.name, "client created");
        Ok((Client::from(&record), secret))
    }

    /// Every client, oldest first.
    pub async fn list_clients(&self) -> Result<Vec<Client>, AdminError> {
        Ok(self
            .store
            .list_clients()
            .await?
            .iter()
            .map(Client::from)
            .collect())
    }

    pub async fn client(&self, id: &str) -> Result<Client, AdminError> {
        self.store
            .get_client(id)
            .await?
            .map(|c| Client::from(&c))
            .ok_or_else(|| AdminError::NoSuchClient(id.to_owned()))
    }

    pub async fn client_by_name(&self, name: &str) -> Result<Option<Client>, AdminError> {
        Ok(self
            .store
            .get_client_by_name(name)
            .await?
            .map(|c| Client::from(&c)))
    }

    /// Enables or disables a client; its token requests are refused (or served again)
    /// from the next request on, on every replica.
    pub async fn set_enabled(
        &self,
        actor: &Actor,
        id: &str,
        enabled: bool,
    ) -> Result<(), AdminError> {
        if !self
            .store
            .set_client_enabled(id, enabled, self.clock.now_secs())
            .await?
        {
            return Err(AdminError::NoSuchClient(id.to_owned()));
        }
        tracing::info!(%actor, client_id = %id, enabled, "client enabled or disabled");
        Ok(())
    }

    /// Deletes a client; its secrets stop working at once and its tokens are
    /// refused by introspection and `token-info` from the next request on.
    pub async fn delete_client(&self, actor: &Actor, id: &str) -> Result<(), AdminError> {
        if !self.store.delete_client(id).await? {
            return Err(AdminError::NoSuchClient(id.to_owned()));
        }
        tracing::info!(%actor, client_id = %id, "client deleted");
        Ok(())
    }

    /// Gives a client a new secret; the old one keeps working for `grace_secs`
    /// (0: it stops at once).
    pub async fn rotate_secret(
        &self,
        actor: &Actor,
        id: &str,
        grace_secs: u64,
    ) -> Result<RotatedSecret, AdminError> {
        let now = self.clock.now_secs();
        let secret = secret::generate_secret().map_err(KeyError::from)?;
        let until = (grace_secs > 0)
            .then(|| now.saturating_add(i64::try_from(grace_secs).unwrap_or(i64::MAX)));
        if !self
            .store
            .set_client_secret(id, &secret::hash_secret(&secret), until, now)
            .await?
        {
            return Err(AdminError::NoSuchClient(id.to_owned()));
        }
        tracing::info!(%actor, client_id = %id, grace_secs, "client secret rotated");
        Ok(RotatedSecret {
            client_id: id.to_owned(),
            secret,
            previous_valid_until: until,
        })
    }

    /// Every stored signing key, newest first.
    pub async fn keys(&self) -> Result<Vec<KeyInfo>, AdminError> {
        Ok(self
            .store
            .list_keys()
            .await?
            .iter()
            .map(KeyInfo::from)
            .collect())
    }

    /// Makes a new key of `alg` the active one and retires the old one; running
    /// brokers switch within their key poll interval.
    pub async fn rotate_key(&self, actor: &Actor, alg: SigningAlg) -> Result<KeyInfo, AdminError> {
        let now = self.clock.now_secs();
        let rec = tokio::task::spawn_blocking(move || SigningKey::generate(alg, now))
            .await
            .map_err(|e| KeyError::Task(e.to_string()))??;
        self.store.rotate_key(&rec, now).await?;
        tracing::info!(%actor, kid = %rec.kid, %alg, "signing key rotated");
        Ok(KeyInfo::from(&rec))
    }

    /// Rotates the key of `alg` when the active one was created `every` or longer
    /// ago, deciding under the store's key lock, so replicas with the same interval
    /// rotate once, not once each. `None` when it was not due.
    pub(crate) async fn rotate_key_if_due(
        &self,
        alg: SigningAlg,
        every: std::time::Duration,
    ) -> Result<Option<KeyInfo>, AdminError> {
        let now = self.clock.now_secs();
        let age = i64::try_from(every.as_secs()).unwrap_or(i64::MAX);
        let rotated = self
            .store
            .rotate_key_if_older(alg.as_str(), now.saturating_sub(age), now, move || {
                SigningKey::generate(alg, now)
            })
            .await?;
        if let Some(k) = &rotated {
            tracing::info!(actor = %Actor::Broker, kid = %k.kid, "signing key rotated (--key-rotation-interval)");
        }
        Ok(rotated.as_ref().map(KeyInfo::from))
    }

    /// Revokes a token on behalf of `caller` (RFC 7009 §2.1: its own tokens only). A
    /// JWT's `jti` is kept as revoked until the token would have expired anyway; an
    /// opaque token is deleted.
    pub(crate) async fn revoke(&self, caller: &str, token: Revocable) -> Result<(), AdminError> {
        let owner = match &token {
            Revocable::Jwt { client_id, .. } | Revocable::Opaque { client_id, .. } => client_id,
        };
        if owner != caller {
            return Err(AdminError::NotOwner);
        }
        match &token {
            Revocable::Jwt {
                jti,
                client_id,
                exp,
            } => {
                self.store
                    .revoke(jti, client_id, *exp, self.clock.now_secs())
                    .await?;
            }
            Revocable::Opaque { hash, .. } => {
                self.store.delete_opaque(hash).await?;
            }
        }
        let actor = Actor::Client {
            id: caller.to_owned(),
        };
        tracing::info!(%actor, "token revoked");
        Ok(())
    }
}

fn valid_name(name: &str) -> Result<String, AdminError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(AdminError::invalid(
            "name",
            "the client name must be 1 to 200 characters without control characters",
        ));
    }
    Ok(name.to_owned())
}

fn valid_scopes(s: &str) -> Result<Vec<String>, AdminError> {
    scope::parse(s)
        .map(|v| v.into_iter().map(str::to_owned).collect())
        .map_err(|bad| {
            AdminError::invalid(
                "scope",
                format!(
                    "'{}' is not a valid scope (RFC 6749 §3.3: printable ASCII without spaces, '\"' or '\\\\')",
                    bad.escape_default()
                ),
            )
        })
}

fn valid_audience(aud: Option<&str>) -> Result<Option<String>, AdminError> {
    let Some(aud) = aud.map(str::trim).filter(|a| !a.is_empty()) else {
        return Ok(None);
    };
    if aud.chars().any(char::is_control) || aud.len() > 2000 {
        return Err(AdminError::invalid(
            "audience",
            "the audience must be at most 2000 characters without control characters",
        ));
    }
    Ok(Some(aud.to_owned()))
}
