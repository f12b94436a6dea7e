//! The OpenAPI 3.1 document of the broker, generated from the code: the wire types
//! derive their schemas (`auth-broker-proto`'s `openapi` feature), every handler
//! carries a `#[utoipa::path]`, and the reusable error responses below describe what
//! [`super::error::ApiError`] sends. `GET /openapi.json` serves it; the repository
//! keeps a copy (`openapi.json`) that a test compares with this.
//!
//! There is no `servers` entry: the document is valid at whatever address the broker
//! is reached (OpenAPI 3.1 §4.8.1: an absent `servers` means `/`).

use auth_broker_proto::{
    AuthorizationServerMetadata, ErrorCode, ErrorResponse, Jwk, Jwks, TokenResponse,
};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use std::sync::LazyLock;
use utoipa::openapi::security::{
    ClientCredentials, Flow, Http, HttpAuthScheme, OAuth2, Scopes, SecurityScheme,
};
use utoipa::{IntoResponses, Modify, OpenApi, ToResponse, ToSchema};

// The names of the security schemes. `#[utoipa::path(security(...))]` takes only
// literals, so the handlers spell them out; a test checks they match.

/// The security scheme of `client_secret_basic` (RFC 6749 §2.3.1).
pub const CLIENT_SECRET_BASIC: &str = "client_secret_basic";
/// The security scheme of a bearer access token (RFC 6750 §2.1).
pub const BEARER: &str = "bearer";
/// The OAuth 2.0 client credentials flow (RFC 6749 §4.4) that issues those tokens.
pub const CLIENT_CREDENTIALS: &str = "client_credentials";

/// The form body of a token request (RFC 6749 §4.4.2), sent as
/// `application/x-www-form-urlencoded`. Unknown parameters are ignored (§3.2).
/// `client_id` and `client_secret` are `client_secret_post` (§2.3.1): use them instead
/// of the Basic header, not beside it (a `client_id` equal to the Basic one is accepted).
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // describes the wire format; the handler reads the strict `Form`
pub struct TokenRequest {
    // No doc comment here: utoipa would wrap the inlined enum in an `allOf` with an
    // `object` beside it; the enum's own doc is the description.
    #[schema(inline)]
    grant_type: GrantType,
    /// The scopes wanted, space separated (RFC 6749 §3.3); without it the client gets
    /// all its scopes.
    #[schema(value_type = String, required = false)]
    scope: Option<String>,
    /// The audience wanted; must be the client's own (RFC 8707 §2).
    #[schema(value_type = String, required = false)]
    audience: Option<String>,
    /// RFC 8707 §2: the resource (API) the token is for; as `audience`, it must be the
    /// client's own (`invalid_target` otherwise).
    #[schema(value_type = String, required = false)]
    resource: Option<String>,
    /// `client_secret_post`: the client id.
    #[schema(value_type = String, required = false)]
    client_id: Option<String>,
    /// `client_secret_post`: the client secret.
    #[schema(value_type = String, format = Password, required = false)]
    client_secret: Option<String>,
}

/// Always `client_credentials` (RFC 6749 §4.4.2).
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
enum GrantType {
    ClientCredentials,
}

/// The form body of an introspection (RFC 7662 §2.1) or revocation (RFC 7009 §2.1)
/// request. The caller authenticates as a client, like at the token endpoint
/// (Basic, or `client_id` and `client_secret` in the body).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct TokenParam {
    /// The token.
    #[schema(min_length = 1)]
    token: String,
    /// `access_token` or `refresh_token`; accepted and not needed (the broker tells
    /// its token formats apart).
    #[schema(value_type = String, required = false)]
    token_type_hint: Option<String>,
}

/// The process answers HTTP.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct Health {
    /// `ok`.
    status: String,
}

/// Whether the store answers.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct Readiness {
    /// `ready` or `unavailable`.
    status: String,
    /// `sqlite` or `postgres`.
    store: String,
    /// Why the broker is not ready.
    #[schema(value_type = String, required = false)]
    error: Option<String>,
}

/// `400`: RFC 6749 §5.2 (`invalid_request`, `unsupported_grant_type`,
/// `invalid_scope`, `invalid_target`, `unauthorized_client`); the description says what
/// to fix.
#[derive(Debug, ToResponse)]
#[allow(dead_code)]
pub struct BadRequest(ErrorResponse);

/// `401 invalid_client`: client authentication failed or is missing (RFC 6749 §5.2).
/// The same answer for an unknown client, a wrong secret and a disabled client.
#[derive(Debug, ToResponse)]
#[response(headers(
    ("WWW-Authenticate" = String, description = "`Basic realm=\"auth-broker\"`")
))]
#[allow(dead_code)]
pub struct InvalidClient(ErrorResponse);

/// `401`: the bearer token is missing or not valid (RFC 6750 §3); the body and the
/// challenge say why.
#[derive(Debug, ToResponse)]
#[response(headers(
    ("WWW-Authenticate" = String, description = "`Bearer realm=\"auth-broker\", error=\"invalid_token\", error_description=\"...\"` (RFC 6750 §3)")
))]
#[allow(dead_code)]
pub struct InvalidToken(ErrorResponse);

/// `408`: the request body did not arrive in time.
#[derive(Debug, ToResponse)]
#[allow(dead_code)]
pub struct RequestTimeout(ErrorResponse);

/// `413`: the request body is over 64 KiB.
#[derive(Debug, ToResponse)]
#[allow(dead_code)]
pub struct PayloadTooLarge(ErrorResponse);

/// `429`: too many failed client authentications from this client id or address;
/// requests with the right credentials are never limited.
#[derive(Debug, ToResponse)]
#[response(headers(("Retry-After" = u64, description = "Seconds to wait")))]
#[allow(dead_code)]
pub struct TooManyFailures(ErrorResponse);

/// `503 temporarily_unavailable`: the store cannot be reached.
#[derive(Debug, ToResponse)]
#[response(headers(("Retry-After" = u64, description = "Seconds to wait")))]
#[allow(dead_code)]
pub struct Unavailable(ErrorResponse);

/// `500 server_error`: an unexpected error, logged with the request's id.
#[derive(Debug, ToResponse)]
#[allow(dead_code)]
pub struct ServerError(ErrorResponse);

/// What every form endpoint (token, introspection, revocation) may answer besides
/// its success: the answers of reading the form and authenticating the client
/// (`client_auth`), in one place so the three operations cannot disagree.
#[derive(Debug, IntoResponses)]
#[allow(dead_code)]
pub enum FormEndpointErrors {
    #[response(status = 400)]
    BadRequest(#[ref_response] BadRequest),
    #[response(status = 401)]
    InvalidClient(#[ref_response] InvalidClient),
    #[response(status = 408)]
    RequestTimeout(#[ref_response] RequestTimeout),
    #[response(status = 413)]
    PayloadTooLarge(#[ref_response] PayloadTooLarge),
    #[response(status = 429)]
    TooManyFailures(#[ref_response] TooManyFailures),
    #[response(status = 500)]
    ServerError(#[ref_response] ServerError),
    #[response(status = 503)]
    Unavailable(#[ref_response] Unavailable),
}

/// The security schemes (OpenAPI 3.1 §4.8.27).
struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            CLIENT_SECRET_BASIC,
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "client_secret_basic (RFC 6749 §2.3.1): base64(client_id \":\" client_secret), each form-urlencoded first. client_secret_post (the two in the form body) works too.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from this broker (RFC 6750 §2.1): an RFC 9068 JWT, or an opaque token when the broker issues those.",
                    ))
                    .build(),
            ),
        );
        // No operation requires this one; it says where the bearer tokens come from,
        // and its tokenUrl tells clients (and schemathesis) which operation issues
        // credentials, so a 400 there for a scope the client may not have is expected.
        components.add_security_scheme(
            CLIENT_CREDENTIALS,
            SecurityScheme::OAuth2(OAuth2::with_description(
                [Flow::ClientCredentials(ClientCredentials::new(
                    "/auth-broker/request-token",
                    Scopes::new(),
                ))],
                "The client credentials grant (RFC 6749 §4.4) this broker serves; its tokens are the bearer tokens above.",
            )),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "auth-broker",
        description = "OAuth 2.0 client credentials token broker (RFC 6749 §4.4) with RFC 7662 introspection, RFC 7009 revocation, RFC 8414 metadata and a JWKS. Errors are RFC 6749 §5.2 JSON bodies with Cache-Control: no-store. A method an endpoint does not take gets 405 with Allow; an unknown path gets 404.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    paths(
        super::token::request_token,
        super::introspect::introspect,
        super::introspect::revoke,
        super::token_info::token_info,
        super::wellknown::jwks,
        super::wellknown::authorization_server,
        super::ops::healthz,
        super::ops::readyz,
        super::ops::metrics,
        openapi_json,
        super::admin_api::list_clients,
        super::admin_api::create_client,
        super::admin_api::get_client,
        super::admin_api::update_client,
        super::admin_api::delete_client,
        super::admin_api::rotate_secret,
        super::admin_api::revoke_tokens,
        super::admin_api::usage,
        super::admin_api::list_keys,
        super::admin_api::rotate_key,
        super::admin_api::audit,
    ),
    components(
        schemas(ErrorCode, ErrorResponse, TokenResponse, AuthorizationServerMetadata, Jwk, Jwks,
            auth_broker_proto::admin::Client, auth_broker_proto::admin::ClientSettings,
            auth_broker_proto::admin::CreatedClient, auth_broker_proto::admin::ClientPage,
            auth_broker_proto::admin::RotateSecret, auth_broker_proto::admin::RotatedSecret,
            auth_broker_proto::admin::RotateKey,
            auth_broker_proto::admin::Key, auth_broker_proto::admin::KeyList,
            auth_broker_proto::admin::KeyState, auth_broker_proto::admin::AuditEvent,
            auth_broker_proto::admin::AuditPage, auth_broker_proto::admin::Usage,
            auth_broker_proto::admin::UsagePoint, auth_broker_proto::admin::Problem,
            auth_broker_proto::admin::FieldError, auth_broker_proto::admin::AuthMethod),
        responses(
            BadRequest,
            InvalidClient,
            InvalidToken,
            RequestTimeout,
            PayloadTooLarge,
            TooManyFailures,
            Unavailable,
            ServerError
        )
    ),
    modifiers(&Security),
    tags(
        (name = "oauth", description = "Tokens: issue, introspect, revoke, explain"),
        (name = "discovery", description = "RFC 8414 metadata and the JWKS"),
        (name = "ops", description = "Health, readiness, metrics and this document"),
        (name = "admin", description = "The admin API: clients, secrets, keys, the audit trail and usage, for tokens of this broker with admin:read or admin:write (RFC 9457 problem details on errors)")
    )
)]
struct ApiDoc;

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as the repository keeps it: pretty-printed, ending in a newline.
pub fn pretty_json() -> String {
    // Serializing a tree of strings, maps and numbers cannot fail.
    let mut s = document().to_pretty_json().unwrap_or_default();
    s.push('\n');
    s
}

static DOCUMENT: LazyLock<Bytes> = LazyLock::new(|| Bytes::from(pretty_json()));

/// This document (OpenAPI 3.1).
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "ops",
    operation_id = "openapi",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object)
    )
)]
pub async fn openapi_json() -> Response {
    let mut r = DOCUMENT.clone().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}
