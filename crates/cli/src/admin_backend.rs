//! Where `client`, `keys` and `audit` commands make their changes: the broker's
//! change service on a store this host can open, or (with `--admin-url`) the admin API
//! of a running broker. Both answer with the admin API's types, so the commands print
//! the same either way.

use crate::client_side::ClientArgs;
use crate::client_side::call::usage;
use crate::remote::AdminApi;
use anyhow::Context;
use auth_broker_proto::admin::{
    AuditEvent, AuditPage, Client, ClientPage, ClientSettings, CreatedClient, Key, KeyList,
    RotatedSecret,
};
use auth_broker_server::SigningAlg;
use auth_broker_server::admin::{Actor, Admin, AdminError};
use reqwest::Method;
use serde_json::{Value, json};

/// The most clients or audit events one page of the admin API holds
/// (`auth_broker_server::admin::MAX_PAGE`): the commands read whole lists, so they ask
/// for the largest pages.
const PAGE: usize = auth_broker_server::admin::MAX_PAGE as usize;

/// `--admin-url` and who to be there: the settings of `client`, `keys` and `audit`
/// that send them through a running broker's admin API instead of the store.
/// Global, so they may follow the subcommand (`auth-broker client list --admin-url
/// URL`). The credentials are the client side's own flags ([`ClientArgs`]), a group
/// of their own in the settings file (so `#[serde(skip)]` here: see
/// [`crate::settings::FileSettings`]).
#[derive(clap::Args, Clone, Debug, Default, serde::Deserialize, serde::Serialize)]
#[serde(default)]
pub struct RemoteArgs {
    /// Go through the admin API of the broker at this base URL (e.g.
    /// http://127.0.0.1:8080; a trailing / or /admin/v1 is fine) instead of opening the
    /// store, as the client --client-id with --client-secret: its token needs the
    /// scope admin:write for changes, admin:read for reads. The token endpoint is read
    /// from the broker's metadata unless --token-url is given. Not together with
    /// --database. [file: admin_url]
    #[arg(long, global = true, env = "AUTH_BROKER_ADMIN_URL", value_name = "URL")]
    pub admin_url: Option<String>,
    #[command(flatten, next_help_heading = "With --admin-url")]
    #[serde(skip)]
    pub client: ClientArgs,
}

/// The commands' way to the broker's state.
#[derive(Debug)]
pub enum Backend {
    /// The store, opened here; changes are audited as `cli:USER@HOST`.
    Local { admin: Admin, actor: Actor },
    /// A running broker's admin API (`--admin-url`); changes are audited as
    /// `client:ID`, with the request id and this host's address.
    Remote(AdminApi),
}

impl Backend {
    /// The admin API when `remote` names one (flags, environment, then `file`'s
    /// `admin_url` and client settings), else the store at `database`.
    /// `database_given`: `--database` or `AUTH_BROKER_DATABASE_URL` is set, which
    /// with an admin URL is bad usage (which one was meant?); the settings file's
    /// `database` is `serve`'s too, so it does not count.
    pub async fn open(
        mut remote: RemoteArgs,
        file: &crate::settings::FileSettings,
        database_given: bool,
        database: &str,
    ) -> anyhow::Result<Self> {
        let client = std::mem::take(&mut remote.client);
        let client = crate::settings::layered(client, file.client.clone())?;
        let remote = crate::settings::layered(remote, file.remote.clone())?;
        let Some(admin_url) = remote.admin_url else {
            return Self::local(database).await;
        };
        if database_given {
            return Err(usage(
                "both --admin-url (AUTH_BROKER_ADMIN_URL) and --database (AUTH_BROKER_DATABASE_URL) are set: a command goes through the admin API or to the store, so give one"
                    .into(),
            ));
        }
        let client = client.required_for_admin()?;
        Ok(Self::Remote(AdminApi::connect(&admin_url, &client).await?))
    }

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
                Ok(CreatedClient::new(client, secret.expose_secret()))
            }
            Self::Remote(api) => {
                let body = serde_json::to_value(&settings)?;
                api.request(Method::POST, api.url(&["clients"]), Some((JSON, &body)))
                    .await
            }
        }
    }

    pub async fn list(&self) -> anyhow::Result<Vec<Client>> {
        match self {
            Self::Local { admin, .. } => Ok(admin.list_clients().await?),
            Self::Remote(api) => {
                pages(usize::MAX, async |after, want| {
                    let url = page_url(api, "clients", want, after, &[]);
                    let page: ClientPage = api.request(Method::GET, url, None).await?;
                    Ok((page.clients, page.next))
                })
                .await
            }
        }
    }

    pub async fn show(&self, id: &str) -> anyhow::Result<Client> {
        match self {
            Self::Local { admin, .. } => Ok(admin.client(id).await?),
            Self::Remote(api) => {
                api.request(Method::GET, client_url(api, id, &[])?, None)
                    .await
            }
        }
    }

    pub async fn update(&self, id: &str, patch: Value) -> anyhow::Result<Client> {
        match self {
            Self::Local { admin, actor } => {
                Ok(admin.update_client(actor, id, &patch, None).await?)
            }
            // No If-Match, as on the store: the patch applies to the latest version.
            Self::Remote(api) => {
                api.request(
                    Method::PATCH,
                    client_url(api, id, &[])?,
                    Some((MERGE_PATCH, &patch)),
                )
                .await
            }
        }
    }

    pub async fn delete(&self, id: &str) -> anyhow::Result<()> {
        match self {
            Self::Local { admin, actor } => Ok(admin.delete_client(actor, id, None).await?),
            Self::Remote(api) => api.delete(client_url(api, id, &[])?).await,
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
            Self::Remote(api) => {
                api.request(
                    Method::POST,
                    client_url(api, id, &["secret"])?,
                    Some((JSON, &json!({ "grace_seconds": grace }))),
                )
                .await
            }
        }
    }

    pub async fn revoke_tokens(&self, id: &str) -> anyhow::Result<Client> {
        match self {
            Self::Local { admin, actor } => Ok(admin.revoke_tokens(actor, id, None).await?),
            Self::Remote(api) => {
                api.request(Method::POST, client_url(api, id, &["revoke-tokens"])?, None)
                    .await
            }
        }
    }

    pub async fn keys(&self) -> anyhow::Result<Vec<Key>> {
        match self {
            Self::Local { admin, .. } => Ok(admin.keys().await?),
            Self::Remote(api) => {
                let list: KeyList = api.request(Method::GET, api.url(&["keys"]), None).await?;
                Ok(list.keys)
            }
        }
    }

    /// A new active key of `alg`; `None`: against the store ES256 (the CLI cannot know
    /// what the brokers sign with), through the admin API the broker's own algorithm.
    pub async fn rotate_key(&self, alg: Option<SigningAlg>) -> anyhow::Result<Key> {
        match self {
            Self::Local { admin, actor } => {
                Ok(admin.rotate_key(actor, alg.unwrap_or_default()).await?)
            }
            Self::Remote(api) => {
                let body = alg.map(|a| json!({ "alg": a.as_str() }));
                api.request(
                    Method::POST,
                    api.url(&["keys", "rotate"]),
                    body.as_ref().map(|b| (JSON, b)),
                )
                .await
            }
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
        let since = since
            .map(|s| auth_broker_server::admin::parse_time("--since", s))
            .transpose()?;
        match self {
            Self::Local { admin, .. } => {
                let since_ms = since.map(|t| t.saturating_mul(1000));
                pages(limit, async |after, want| {
                    let want = i64::try_from(want).unwrap_or(i64::MAX);
                    let page = admin
                        .audit(client, action, since_ms, after.as_deref(), Some(want))
                        .await?;
                    Ok((page.events, page.next))
                })
                .await
            }
            Self::Remote(api) => {
                pages(limit, async |after, want| {
                    // The API takes RFC 3339 (its published `date-time`).
                    let since = since.map(auth_broker_server::admin::rfc3339);
                    let filters = [
                        ("client_id", client),
                        ("action", action),
                        ("since", since.as_deref()),
                    ];
                    let url = page_url(api, "audit", want, after, &filters);
                    let page: AuditPage = api.request(Method::GET, url, None).await?;
                    Ok((page.events, page.next))
                })
                .await
            }
        }
    }
}

/// Up to `limit` items of a paginated list: `page(after, want)` reads the page after
/// the cursor `after` (the first when `None`) with at most `want` items and returns
/// them with the next page's cursor (`None` on the last page).
async fn pages<T>(
    limit: usize,
    mut page: impl AsyncFnMut(Option<String>, usize) -> anyhow::Result<(Vec<T>, Option<String>)>,
) -> anyhow::Result<Vec<T>> {
    let mut out = Vec::new();
    let mut after = None;
    while out.len() < limit {
        let (items, next) = page(after, (limit - out.len()).min(PAGE)).await?;
        out.extend(items);
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    Ok(out)
}

/// The URL of one page of the list `/admin/v1/{list}`: at most `want` items, after
/// the cursor `after`, with the `filters` that are set.
fn page_url(
    api: &AdminApi,
    list: &str,
    want: usize,
    after: Option<String>,
    filters: &[(&str, Option<&str>)],
) -> reqwest::Url {
    let mut url = api.url(&[list]);
    let mut q = url.query_pairs_mut();
    q.append_pair("limit", &want.to_string());
    for (k, v) in filters {
        if let Some(v) = v {
            q.append_pair(k, v);
        }
    }
    if let Some(a) = &after {
        q.append_pair("after", a);
    }
    drop(q);
    url
}

/// The media type of the JSON bodies sent.
const JSON: &str = "application/json";
/// The media type of a JSON merge patch (RFC 7396 §3), as `PATCH` takes it.
const MERGE_PATCH: &str = "application/merge-patch+json";

/// The URL of a client (and of `rest` under it). An id that cannot be one path
/// segment ('', '.', '..': URLs resolve the dots away) names no client, which is
/// what the store says of it too.
fn client_url(api: &AdminApi, id: &str, rest: &[&str]) -> Result<reqwest::Url, AdminError> {
    if matches!(id, "" | "." | "..") {
        return Err(AdminError::NoSuchClient(id.to_owned()));
    }
    let mut segments = vec!["clients", id];
    segments.extend_from_slice(rest);
    Ok(api.url(&segments))
}
