//! The admin API (`/admin/v1`, INTERFACE §6): clients, their secrets and tokens, keys,
//! the audit trail and usage, over JSON, on top of [`crate::admin::Admin`] (the same
//! service the CLI uses, so both validate and audit alike).
//!
//! Callers send a token of this broker (`Authorization: Bearer`) with the scope
//! `admin:read` (reads) or `admin:write` (changes, and reads) and the issuer as
//! audience (`super::admin_auth`). Errors are RFC 9457 problem details naming each
//! bad field. Every change is audited with the caller (`client:ID`), the request id
//! and the peer. Changes to a client honour `If-Match` with its `ETag` (`412` when
//! stale: two operators editing at once never silently overwrite each other). Lists
//! are paginated by an opaque cursor over a stable order, so a page boundary does not
//! move when clients are added meanwhile.

use super::admin_auth::{AdminCaller, Need, authorize};
use crate::AppState;
use crate::admin::AdminError;
use auth_broker_proto::admin::{
    AuditPage, Client, ClientPage, ClientSettings, CreatedClient, FieldError, Key, KeyList,
    PROBLEM_JSON, Problem, RotateKey, RotateSecret, RotatedSecret, Usage,
};
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::net::SocketAddr;
use std::sync::Arc;

/// The most a request body may be.
const MAX_BODY: usize = 64 * 1024;

/// Why an admin request is refused, mapped to its answer in one place.
#[derive(Debug)]
pub enum AdminApiError {
    /// The guard's refusal (RFC 6750 §3.1): no token, a token that is not valid
    /// here (`401`), too little scope (`403`), or no verdict now (`503`). `detail`
    /// is the problem's text; the challenge is the guard's.
    Refused {
        rejection: Box<auth_broker_guard::Rejection>,
        detail: String,
    },
    /// Too many failed attempts from this address or with this client's tokens.
    TooManyFailures { retry_after_secs: u64 },
    /// The change or read itself was refused.
    Admin(AdminError),
    /// The body is not the JSON the operation takes.
    BadBody(String),
    /// The body is not JSON at all (by its `Content-Type`).
    UnsupportedMediaType(String),
    /// The body is over `MAX_BODY`.
    TooLarge,
    /// A query parameter does not parse.
    BadQuery(FieldError),
    /// The change would lock the caller out (`409`).
    Lockout(String),
}

/// A change the caller would lock itself out with: its own client disabled, deleted,
/// or its tokens revoked (this very token among them). Refused, so an operator at the
/// console cannot cut the branch they sit on; another admin client can do it.
fn lockout(caller: &AdminCaller, id: &str, what: &str) -> Result<(), AdminApiError> {
    if caller.client_id == id {
        return Err(AdminApiError::Lockout(format!(
            "this is the client of the token making the request: {what} it would lock the caller out; do it with another admin client (or the CLI)"
        )));
    }
    Ok(())
}

impl From<AdminError> for AdminApiError {
    fn from(e: AdminError) -> Self {
        Self::Admin(e)
    }
}

fn problem(status: StatusCode, title: &str, detail: String, errors: Vec<FieldError>) -> Response {
    let body = Problem {
        type_: "about:blank".into(),
        title: title.into(),
        status: status.as_u16(),
        detail,
        errors,
    };
    let mut r = (
        status,
        serde_json::to_string(&body).unwrap_or_else(|_| "{}".into()),
    )
        .into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

impl IntoResponse for AdminApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Refused { rejection, detail } => {
                let status = rejection.error.status();
                let title = status.canonical_reason().unwrap_or("Unauthorized");
                let mut r = problem(status, title, detail, vec![]);
                if let Ok(v) = HeaderValue::from_str(&rejection.challenge()) {
                    r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                }
                if status == StatusCode::SERVICE_UNAVAILABLE {
                    r.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                }
                r
            }
            Self::TooManyFailures { retry_after_secs } => {
                let mut r = problem(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too Many Requests",
                    format!(
                        "too many refused admin requests from this address or with this client's tokens; fix the token and retry after {retry_after_secs} s"
                    ),
                    vec![],
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
                r
            }
            Self::BadBody(detail) => problem(
                StatusCode::BAD_REQUEST,
                "Bad Request",
                detail.clone(),
                vec![FieldError {
                    field: "(body)".into(),
                    message: detail,
                }],
            ),
            Self::UnsupportedMediaType(found) => problem(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Unsupported Media Type",
                format!(
                    "the body is '{}'; send JSON (Content-Type: application/json, or application/merge-patch+json for a PATCH)",
                    auth_broker_proto::escaped(&found)
                ),
                vec![],
            ),
            Self::TooLarge => problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Content Too Large",
                format!("the body is over {} KiB", MAX_BODY / 1024),
                vec![],
            ),
            Self::Lockout(detail) => problem(StatusCode::CONFLICT, "Conflict", detail, vec![]),
            Self::BadQuery(e) => problem(
                StatusCode::BAD_REQUEST,
                "Bad Request",
                format!("{}: {}", e.field, e.message),
                vec![e],
            ),
            Self::Admin(e) => match e {
                // The detail names every field with what is wrong with it, as the
                // CLI says it against the database: the remote CLI prints the detail.
                AdminError::Invalid(ref errors) => problem(
                    StatusCode::BAD_REQUEST,
                    "Bad Request",
                    e.to_string(),
                    errors.clone(),
                ),
                AdminError::NoSuchClient(_) => {
                    problem(StatusCode::NOT_FOUND, "Not Found", e.to_string(), vec![])
                }
                AdminError::NoSecret(_) => {
                    problem(StatusCode::CONFLICT, "Conflict", e.to_string(), vec![])
                }
                AdminError::DuplicateName(_) => problem(
                    StatusCode::CONFLICT,
                    "Conflict",
                    e.to_string(),
                    vec![FieldError {
                        field: "client_name".into(),
                        message: e.to_string(),
                    }],
                ),
                AdminError::Stale { current, .. } => {
                    let mut r = problem(
                        StatusCode::PRECONDITION_FAILED,
                        "Precondition Failed",
                        e.to_string(),
                        vec![],
                    );
                    if let Ok(v) = HeaderValue::from_str(&etag(current)) {
                        r.headers_mut().insert(header::ETAG, v);
                    }
                    r
                }
                AdminError::NotOwner => {
                    problem(StatusCode::FORBIDDEN, "Forbidden", e.to_string(), vec![])
                }
                AdminError::Store(s) if s.is_transient() => {
                    tracing::warn!(error = %s, "admin API: store unavailable");
                    let mut r = problem(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Service Unavailable",
                        "the store cannot be reached; retry shortly".into(),
                        vec![],
                    );
                    r.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                    r
                }
                AdminError::Key(k) if k.is_transient() => {
                    tracing::error!(error = %k, "admin API: cannot make a key or secret now");
                    let mut r = problem(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Service Unavailable",
                        "cannot make a key or secret now; retry shortly".into(),
                        vec![],
                    );
                    r.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                    r
                }
                other => {
                    tracing::error!(error = %other, "admin API: unexpected error");
                    problem(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Internal Server Error",
                        "an unexpected error; it is logged with this request's id".into(),
                        vec![],
                    )
                }
            },
        }
    }
}

/// A client's `ETag` (RFC 9110 §8.8.3): its version, quoted.
fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// `If-Match` (RFC 9110 §13.1.1): `None` when absent or `*`; else the version it
/// names. Anything that is not one of this broker's tags (a weak tag, which strong
/// comparison never matches, or a value it did not make) matches no version: the
/// change is refused with `412`, as for a stale tag, never applied.
fn if_match(headers: &HeaderMap) -> Option<i64> {
    let v = headers.get(header::IF_MATCH)?.to_str().unwrap_or("").trim();
    if v == "*" {
        return None;
    }
    const NEVER: i64 = -1;
    Some(
        v.split(',')
            .map(str::trim)
            .filter_map(|t| t.strip_prefix('"')?.strip_suffix('"')?.parse::<i64>().ok())
            .next()
            .unwrap_or(NEVER),
    )
}

fn with_etag(mut r: Response, version: i64) -> Response {
    if let Ok(v) = HeaderValue::from_str(&etag(version)) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

fn json<T: serde::Serialize>(status: StatusCode, v: &T) -> Response {
    let mut r = (
        status,
        serde_json::to_string(v).unwrap_or_else(|_| "{}".into()),
    )
        .into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn client_response(status: StatusCode, c: &Client) -> Response {
    with_etag(json(status, c), c.version)
}

/// Reads a JSON body: its media type, its size, its syntax.
async fn body_json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    optional: bool,
) -> Result<Option<T>, AdminApiError> {
    let bytes: Bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| AdminApiError::TooLarge)?;
    if bytes.iter().all(u8::is_ascii_whitespace) && optional {
        return Ok(None);
    }
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let essence = ctype
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence != "application/json" && !essence.ends_with("+json") {
        return Err(AdminApiError::UnsupportedMediaType(if ctype.is_empty() {
            "(no Content-Type)".into()
        } else {
            ctype
        }));
    }
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        AdminApiError::BadBody(format!(
            "the body is not the JSON this operation takes: {e}"
        ))
    })
}

fn caller_actor(
    caller: &AdminCaller,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> crate::admin::Actor {
    crate::admin::Actor::client(
        &caller.client_id,
        super::request_id(headers),
        Some(peer.ip().to_string()),
    )
}

/// `GET /admin/v1/clients` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// A case-insensitive part of the name, id or description.
    q: Option<String>,
    /// Only enabled (`true`) or disabled (`false`) clients.
    enabled: Option<bool>,
    /// At most this many (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// The `next` of the previous page.
    #[param(pattern = r"^[0-9]{1,18}\.([0-9a-f]{2})*$")]
    after: Option<String>,
}

/// An empty query value is none.
fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|v| !v.is_empty())
}

/// A `date-time` query value (RFC 3339), as Unix seconds (an empty one is not a time).
fn time_param(field: &str, v: &Option<String>) -> Result<Option<i64>, AdminApiError> {
    v.as_deref()
        .map(|t| {
            crate::admin::parse_rfc3339(t).ok_or_else(|| {
                AdminApiError::BadQuery(FieldError {
                    field: field.into(),
                    message: "an RFC 3339 time such as 2026-12-02T10:00:00Z".into(),
                })
            })
        })
        .transpose()
}

fn query<T: DeserializeOwned>(
    q: Result<Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<T, AdminApiError> {
    q.map(|Query(q)| q).map_err(|e| {
        let text = e.body_text();
        AdminApiError::BadQuery(FieldError {
            field: text.split('`').nth(1).unwrap_or("(query)").to_owned(),
            message: text,
        })
    })
}

/// List clients, oldest first, a page at a time.
#[utoipa::path(
    get,
    path = "/admin/v1/clients",
    tag = "admin",
    operation_id = "admin_list_clients",
    params(ListParams),
    security(("bearer" = ["admin:read"])),
    responses(
        (status = 200, description = "One page", body = ClientPage),
        AdminErrors,
    )
)]
pub async fn list_clients(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    q: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, AdminApiError> {
    authorize(&app, &headers, peer, Need::Read).await?;
    let q = query(q)?;
    let page = app
        .admin
        .find_clients(given(&q.q), q.enabled, q.after.as_deref(), q.limit)
        .await?;
    Ok(json(StatusCode::OK, &page))
}

/// Register a client; the answer carries its secret, this once.
#[utoipa::path(
    post,
    path = "/admin/v1/clients",
    tag = "admin",
    operation_id = "admin_create_client",
    request_body(content = auth_broker_proto::admin::NewClientBody, content_type = "application/json"),
    security(("bearer" = ["admin:write"])),
    responses(
        (status = 201, description = "Created; only this answer shows the secret", body = CreatedClient,
            headers(
                ("Location" = String, description = "The client's URL"),
                ("ETag" = String, description = "Its version")
            ),
            links(
                ("get" = (operation_id = "admin_get_client", parameters(("client_id" = "$response.body#/client_id")))),
                ("update" = (operation_id = "admin_update_client", parameters(("client_id" = "$response.body#/client_id")))),
                ("rotate_secret" = (operation_id = "admin_rotate_secret", parameters(("client_id" = "$response.body#/client_id")))),
                ("revoke_tokens" = (operation_id = "admin_revoke_tokens", parameters(("client_id" = "$response.body#/client_id")))),
                ("usage" = (operation_id = "admin_client_usage", parameters(("client_id" = "$response.body#/client_id")))),
                ("delete" = (operation_id = "admin_delete_client", parameters(("client_id" = "$response.body#/client_id"))))
            )),
        AdminErrors,
    )
)]
pub async fn create_client(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AdminApiError> {
    let caller = authorize(&app, &headers, peer, Need::Write).await?;
    let settings: serde_json::Value = body_json(&headers, body, false)
        .await?
        .ok_or_else(|| AdminApiError::BadBody("the body is empty".into()))?;
    let settings: ClientSettings = serde_json::from_value(settings)
        .map_err(|e| AdminApiError::Admin(crate::admin::settings_error(&e)))?;
    let actor = caller_actor(&caller, &headers, peer);
    let (client, secret) = app.admin.create_client(&actor, settings).await?;
    let location = format!("/admin/v1/clients/{}", client.client_id);
    let created = CreatedClient::new(client, secret.expose_secret());
    let mut r = with_etag(json(StatusCode::CREATED, &created), created.client.version);
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

/// One client, every setting (never its secret nor the secret's hash).
#[utoipa::path(
    get,
    path = "/admin/v1/clients/{client_id}",
    tag = "admin",
    operation_id = "admin_get_client",
    params(("client_id" = String, Path, description = "The client's id")),
    security(("bearer" = ["admin:read"])),
    responses(
        (status = 200, description = "The client", body = Client,
            headers(("ETag" = String, description = "Its version, for If-Match"))),
        AdminErrors,
    )
)]
pub async fn get_client(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, AdminApiError> {
    authorize(&app, &headers, peer, Need::Read).await?;
    let c = app.admin.client(&id).await?;
    Ok(client_response(StatusCode::OK, &c))
}

/// Change settings with a JSON merge patch (RFC 7396): members given are set,
/// `null` resets one to its default, absent ones stay. With `If-Match`, only if the
/// client is still at that version (`412` otherwise).
#[utoipa::path(
    patch,
    path = "/admin/v1/clients/{client_id}",
    tag = "admin",
    operation_id = "admin_update_client",
    params(
        ("client_id" = String, Path, description = "The client's id"),
        ("If-Match" = Option<String>, Header, description = "The ETag the change is based on")
    ),
    request_body(content = auth_broker_proto::admin::ClientPatch, content_type = "application/merge-patch+json"),
    security(("bearer" = ["admin:write"])),
    responses(
        (status = 200, description = "The changed client", body = Client,
            headers(("ETag" = String, description = "Its new version"))),
        AdminErrors,
    )
)]
pub async fn update_client(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, AdminApiError> {
    let caller = authorize(&app, &headers, peer, Need::Write).await?;
    let expected = if_match(&headers);
    let patch: serde_json::Value = body_json(&headers, body, false)
        .await?
        .ok_or_else(|| AdminApiError::BadBody("the body is empty".into()))?;
    if patch.get("enabled") == Some(&serde_json::Value::Bool(false)) {
        lockout(&caller, &id, "disabling")?;
    }
    let actor = caller_actor(&caller, &headers, peer);
    let c = app
        .admin
        .update_client(&actor, &id, &patch, expected)
        .await?;
    Ok(client_response(StatusCode::OK, &c))
}

/// Delete a client for good; with `If-Match`, only if it is still at that version.
#[utoipa::path(
    delete,
    path = "/admin/v1/clients/{client_id}",
    tag = "admin",
    operation_id = "admin_delete_client",
    params(
        ("client_id" = String, Path, description = "The client's id"),
        ("If-Match" = Option<String>, Header, description = "The ETag the deletion is based on")
    ),
    security(("bearer" = ["admin:write"])),
    responses(
        (status = 204, description = "Deleted"),
        AdminErrors,
    )
)]
pub async fn delete_client(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, AdminApiError> {
    let caller = authorize(&app, &headers, peer, Need::Write).await?;
    let expected = if_match(&headers);
    lockout(&caller, &id, "deleting")?;
    let actor = caller_actor(&caller, &headers, peer);
    app.admin.delete_client(&actor, &id, expected).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Give the client a new secret (shown this once); the old one keeps working for
/// `grace_seconds`.
#[utoipa::path(
    post,
    path = "/admin/v1/clients/{client_id}/secret",
    tag = "admin",
    operation_id = "admin_rotate_secret",
    params(("client_id" = String, Path, description = "The client's id")),
    request_body(content = Option<RotateSecret>, content_type = "application/json",
        description = "Optional; without it the old secret stops at once"),
    security(("bearer" = ["admin:write"])),
    responses(
        (status = 200, description = "The new secret, shown only here", body = RotatedSecret),
        AdminErrors,
    )
)]
pub async fn rotate_secret(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, AdminApiError> {
    let caller = authorize(&app, &headers, peer, Need::Write).await?;
    let req: RotateSecret = body_json::<Option<RotateSecret>>(&headers, body, true)
        .await?
        .flatten()
        .unwrap_or_default();
    let actor = caller_actor(&caller, &headers, peer);
    let r = app
        .admin
        .rotate_secret(&actor, &id, req.grace_seconds)
        .await?;
    Ok(json(
        StatusCode::OK,
        &RotatedSecret {
            client_id: r.client_id,
            client_secret: r.secret.expose_secret().to_owned(),
            client_secret_expires_at: r.expires_at,
            previous_secret_expires_at: r.previous_valid_until,
        },
    ))
}

/// Every token issued to the client so far is inactive from now on (introspection,
/// token-info, guards in introspection mode; JWT-mode guards until the tokens expire).
#[utoipa::path(
    post,
    path = "/admin/v1/clients/{client_id}/revoke-tokens",
    tag = "admin",
    operation_id = "admin_revoke_tokens",
    params(("client_id" = String, Path, description = "The client's id")),
    security(("bearer" = ["admin:write"])),
    responses(
        (status = 200, description = "The client, with tokens_revoked_before", body = Client),
        AdminErrors,
    )
)]
pub async fn revoke_tokens(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, AdminApiError> {
    let caller = authorize(&app, &headers, peer, Need::Write).await?;
    let expected = if_match(&headers);
    lockout(&caller, &id, "revoking its tokens")?;
    let actor = caller_actor(&caller, &headers, peer);
    let c = app.admin.revoke_tokens(&actor, &id, expected).await?;
    Ok(client_response(StatusCode::OK, &c))
}

/// `GET .../usage` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageParams {
    /// From (RFC 3339); default 24 hours before `to`. Usage is kept 30 days.
    #[param(format = DateTime)]
    from: Option<String>,
    /// To (RFC 3339); default now.
    #[param(format = DateTime)]
    to: Option<String>,
}

/// A client's use per minute: tokens issued, failed authentications, quota refusals.
#[utoipa::path(
    get,
    path = "/admin/v1/clients/{client_id}/usage",
    tag = "admin",
    operation_id = "admin_client_usage",
    params(("client_id" = String, Path, description = "The client's id"), UsageParams),
    security(("bearer" = ["admin:read"])),
    responses(
        (status = 200, description = "Per minute, summed over replicas", body = Usage),
        AdminErrors,
    )
)]
pub async fn usage(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    q: Result<Query<UsageParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, AdminApiError> {
    authorize(&app, &headers, peer, Need::Read).await?;
    let q = query(q)?;
    let from = time_param("from", &q.from)?;
    let to = time_param("to", &q.to)?;
    let u = app.admin.usage(&id, from, to).await?;
    Ok(json(StatusCode::OK, &u))
}

/// The signing keys and their states.
#[utoipa::path(
    get,
    path = "/admin/v1/keys",
    tag = "admin",
    operation_id = "admin_list_keys",
    security(("bearer" = ["admin:read"])),
    responses(
        (status = 200, description = "Newest first", body = KeyList),
        AdminErrors,
    )
)]
pub async fn list_keys(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, AdminApiError> {
    authorize(&app, &headers, peer, Need::Read).await?;
    let keys = app.admin.keys().await?;
    Ok(json(StatusCode::OK, &KeyList { keys }))
}

/// Make a new signing key active (of the broker's algorithm, or the one the body
/// names); every replica switches within seconds, and the old key stays published
/// until its tokens expire.
#[utoipa::path(
    post,
    path = "/admin/v1/keys/rotate",
    tag = "admin",
    operation_id = "admin_rotate_key",
    request_body(content = Option<RotateKey>, content_type = "application/json",
        description = "Optional; without it the new key has the algorithm this broker signs with"),
    security(("bearer" = ["admin:write"])),
    responses(
        (status = 201, description = "The new active key", body = Key),
        AdminErrors,
    )
)]
pub async fn rotate_key(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AdminApiError> {
    let caller = authorize(&app, &headers, peer, Need::Write).await?;
    let req: RotateKey = body_json::<Option<RotateKey>>(&headers, body, true)
        .await?
        .flatten()
        .unwrap_or_default();
    // The names exactly as JWA spells them (RFC 7518 §3.1), as the schema publishes.
    let alg = match req.alg {
        Some(a) if !crate::SigningAlg::ALL.iter().any(|k| k.as_str() == a) => {
            return Err(AdminApiError::Admin(AdminError::Invalid(vec![
                FieldError {
                    field: "alg".into(),
                    message: format!(
                        "'{}' is not ES256, EdDSA or RS256 (as RFC 7518 spells them)",
                        auth_broker_proto::escaped(&a)
                    ),
                },
            ])));
        }
        Some(a) => a.parse().map_err(|message: String| {
            AdminError::Invalid(vec![FieldError {
                field: "alg".into(),
                message,
            }])
        })?,
        None => app.config.signing_alg,
    };
    let actor = caller_actor(&caller, &headers, peer);
    let key = app.admin.rotate_key(&actor, alg).await?;
    Ok(json(StatusCode::CREATED, &key))
}

/// `GET /admin/v1/audit` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only this client's (or key's) events.
    client_id: Option<String>,
    /// Only this action (`client.create`, `client.update`, `client.delete`,
    /// `client.secret.rotate`, `client.tokens.revoke`, `token.revoke`, `key.rotate`).
    action: Option<String>,
    /// Only events since then (RFC 3339).
    #[param(format = DateTime)]
    since: Option<String>,
    /// At most this many (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// The `next` of the previous page.
    #[param(pattern = r"^[0-9]{1,18}$")]
    after: Option<String>,
}

/// The audit trail, newest first.
#[utoipa::path(
    get,
    path = "/admin/v1/audit",
    tag = "admin",
    operation_id = "admin_audit",
    params(AuditParams),
    security(("bearer" = ["admin:read"])),
    responses(
        (status = 200, description = "One page, newest first", body = AuditPage),
        AdminErrors,
    )
)]
pub async fn audit(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    q: Result<Query<AuditParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, AdminApiError> {
    authorize(&app, &headers, peer, Need::Read).await?;
    let q = query(q)?;
    let since_ms = time_param("since", &q.since)?.map(|s| s.saturating_mul(1000));
    let page = app
        .admin
        .audit(
            given(&q.client_id),
            given(&q.action),
            since_ms,
            q.after.as_deref(),
            q.limit,
        )
        .await?;
    Ok(json(StatusCode::OK, &page))
}

/// What every admin operation may answer besides its success (RFC 9457 problems).
#[derive(Debug, utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum AdminErrors {
    /// A bad field (each named in `errors`), query parameter or body.
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(#[to_schema] Problem),
    /// No token, or one that is not valid here (RFC 6750 challenge).
    #[response(status = 401, content_type = "application/problem+json",
        headers(("WWW-Authenticate" = String, description = "RFC 6750 §3")))]
    Unauthorized(Problem),
    /// The token lacks the scope (`insufficient_scope`).
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// No such client.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    /// A client of that name exists.
    #[response(status = 409, content_type = "application/problem+json")]
    Conflict(Problem),
    /// `If-Match` names an older version.
    #[response(status = 412, content_type = "application/problem+json")]
    PreconditionFailed(Problem),
    /// The body is over 64 KiB.
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem),
    /// The body is not JSON.
    #[response(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(Problem),
    /// Too many refused attempts.
    #[response(status = 429, content_type = "application/problem+json",
        headers(("Retry-After" = u64, description = "Seconds to wait")))]
    TooManyRequests(Problem),
    /// Unexpected.
    #[response(status = 500, content_type = "application/problem+json")]
    ServerError(Problem),
    /// The store cannot be reached.
    #[response(status = 503, content_type = "application/problem+json",
        headers(("Retry-After" = u64, description = "Seconds to wait")))]
    Unavailable(Problem),
}
