//! Client and key administration, shared by the CLI, `serve --demo` and tests.

use crate::keys::{SigningAlg, SigningKey};
use crate::secret;
use crate::store::{ClientRecord, KeyRecord, Store, StoreError, Timestamp};
use auth_broker_proto::{ClientSecret, scope};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
    #[error("no client with id '{0}'; `auth-broker client list` shows them")]
    NoSuchClient(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a new client needs.
#[derive(Debug, Clone, Default)]
pub struct NewClient {
    pub name: String,
    /// Space separated.
    pub scope: String,
    pub audience: Option<String>,
}

/// Registers a client with a generated id and secret. The secret is returned once
/// and only its hash is stored.
pub async fn create_client(
    store: &Store,
    new: &NewClient,
    now: Timestamp,
) -> Result<(ClientRecord, ClientSecret), AdminError> {
    let name = new.name.trim();
    if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(AdminError::Invalid(
            "the client name must be 1 to 200 characters without control characters".into(),
        ));
    }
    let scopes = scope::parse(&new.scope)
        .map_err(|bad| {
            AdminError::Invalid(format!(
                "'{}' is not a valid scope (RFC 6749 §3.3: printable ASCII without spaces, '\"' or '\\\\')",
                bad.escape_default()
            ))
        })?
        .into_iter()
        .map(str::to_owned)
        .collect();
    let audience = new
        .audience
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty());
    if audience.is_some_and(|a| a.chars().any(char::is_control)) {
        return Err(AdminError::Invalid(
            "the audience must not contain control characters".into(),
        ));
    }
    let secret = secret::generate_secret();
    let record = ClientRecord {
        id: secret::generate_client_id(),
        name: name.to_owned(),
        secret_hash: secret::hash_secret(&secret),
        previous_secret_hash: None,
        previous_secret_expires_at: None,
        scopes,
        audience: audience.map(str::to_owned),
        enabled: true,
        created_at: now,
        updated_at: now,
    };
    store.insert_client(&record).await?;
    Ok((record, secret))
}

/// Gives a client a new secret; the old one keeps working for `grace_secs` (0: stops now).
pub async fn rotate_secret(
    store: &Store,
    id: &str,
    grace_secs: u64,
    now: Timestamp,
) -> Result<ClientSecret, AdminError> {
    let secret = secret::generate_secret();
    let until =
        (grace_secs > 0).then(|| now.saturating_add(i64::try_from(grace_secs).unwrap_or(i64::MAX)));
    if !store
        .set_client_secret(id, &secret::hash_secret(&secret), until, now)
        .await?
    {
        return Err(AdminError::NoSuchClient(id.to_owned()));
    }
    Ok(secret)
}

/// Makes a new key of `alg` the active one.
pub async fn rotate_key(
    store: &Store,
    alg: SigningAlg,
    now: Timestamp,
) -> Result<KeyRecord, AdminError> {
    let rec = tokio::task::spawn_blocking(move || SigningKey::generate(alg, now))
        .await
        .map_err(|e| AdminError::Invalid(e.to_string()))??;
    store.rotate_key(&rec, now).await?;
    Ok(rec)
}
