//! Where `client`, `keys` and `audit` commands make their changes: the broker's
//! change service on a store this host can open, or (with `--admin-url`) the admin API
//! of a running broker. Both answer with the admin API's types, so the commands print
//! the same either way.

use anyhow::Context;
use auth_broker_proto::admin::{
    AuditEvent, Client, ClientSettings, CreatedClient, Key, RotatedSecret,
};
use auth_broker_server::SigningAlg;
use auth_broker_server::admin::{Actor, Admin};
use serde_json::Value;

/// The commands' way to the broker's state.
#[derive(Debug)]
pub enum Backend {
    /// The store, opened here; changes are audited as `cli:USER@HOST`.
    Local { admin: Admin, actor: Actor },
}

impl Backend {
    /// The store at `database`.
    pub async fn local(database: &str) -> anyhow::Result<Self> {
        let admin = Admin::open(database).await.with_context(|| {
            format!(
                "cannot open the store {}",
                auth_broker_server::redact_url(database)
            )
        })?;
        Ok(Self::Local {
            admin,
            actor: Actor::cli(),
        })
    }

    pub async fn create(&self, settings: ClientSettings) -> anyhow::Result<CreatedClient> {
        match self {
            Self::Local { admin, actor } => {
                let (client, secret) = admin.create_client(actor, settings).await?;
                Ok(CreatedClient {
                    client,
                    client_secret: secret.expose_secret().to_owned(),
                })
            }
        }
    }

    pub async fn list(&self) -> anyhow::Result<Vec<Client>> {
        match self {
            Self::Local { admin, .. } => Ok(admin.list_clients().await?),
        }
    }

    pub async fn show(&self, id: &str) -> anyhow::Result<Client> {
        match self {
            Self::Local { admin, .. } => Ok(admin.client(id).await?),
        }
    }

    pub async fn update(&self, id: &str, patch: Value) -> anyhow::Result<Client> {
        match self {
            Self::Local { admin, actor } => {
                Ok(admin.update_client(actor, id, &patch, None).await?)
            }
        }
    }

    pub async fn delete(&self, id: &str) -> anyhow::Result<()> {
        match self {
            Self::Local { admin, actor } => Ok(admin.delete_client(actor, id, None).await?),
        }
    }

    pub async fn rotate_secret(&self, id: &str, grace: u64) -> anyhow::Result<RotatedSecret> {
        match self {
            Self::Local { admin, actor } => {
                let r = admin.rotate_secret(actor, id, grace).await?;
                Ok(RotatedSecret {
                    client_id: r.client_id,
                    client_secret: r.secret.expose_secret().to_owned(),
                    client_secret_expires_at: r.expires_at,
                    previous_secret_expires_at: r.previous_valid_until,
                })
            }
        }
    }

    pub async fn revoke_tokens(&self, id: &str) -> anyhow::Result<Client> {
        match self {
            Self::Local { admin, actor } => Ok(admin.revoke_tokens(actor, id, None).await?),
        }
    }

    pub async fn keys(&self) -> anyhow::Result<Vec<Key>> {
        match self {
            Self::Local { admin, .. } => Ok(admin.keys().await?),
        }
    }

    pub async fn rotate_key(&self, alg: SigningAlg) -> anyhow::Result<Key> {
        match self {
            Self::Local { admin, actor } => Ok(admin.rotate_key(actor, alg).await?),
        }
    }

    /// Up to `limit` events, newest first.
    pub async fn audit(
        &self,
        client: Option<&str>,
        action: Option<&str>,
        since: Option<&str>,
        limit: usize,
    ) -> anyhow::Result<Vec<AuditEvent>> {
        let since_ms = since
            .map(|s| auth_broker_server::admin::parse_time("--since", s))
            .transpose()?
            .map(|t| t.saturating_mul(1000));
        match self {
            Self::Local { admin, .. } => {
                let mut out = Vec::new();
                let mut after: Option<String> = None;
                while out.len() < limit {
                    let want = i64::try_from((limit - out.len()).min(200)).unwrap_or(200);
                    let page = admin
                        .audit(client, action, since_ms, after.as_deref(), Some(want))
                        .await?;
                    out.extend(page.events);
                    match page.next {
                        Some(n) => after = Some(n),
                        None => break,
                    }
                }
                Ok(out)
            }
        }
    }
}
