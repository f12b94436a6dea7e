//! An example API guarded by auth-broker tokens, in either mode.
//!
//! Run it against a local broker:
//!
//! ```text
//! # terminal 1: a broker on http://127.0.0.1:8080 with a demo client (scopes demo:read demo:write)
//! cargo run -p auth-broker -- serve --demo
//! # a client allowed to read invoices (prints its id and secret)
//! cargo run -p auth-broker -- client create --name billing --scope "invoices:read"
//!
//! # terminal 2: this API on http://127.0.0.1:3000, JWT mode (JWKS from the broker's metadata)
//! cargo run -p auth-broker-guard --example api -- http://127.0.0.1:8080
//!
//! # terminal 3
//! TOKEN=$(curl -s -u "$ID:$SECRET" -d grant_type=client_credentials \
//!   http://127.0.0.1:8080/auth-broker/request-token | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
//! curl -i http://127.0.0.1:3000/public                                   # 200, no token needed
//! curl -i http://127.0.0.1:3000/invoices                                 # 401, WWW-Authenticate: Bearer realm=...
//! curl -i -H "Authorization: Bearer $TOKEN" http://127.0.0.1:3000/me       # 200, the token's claims
//! curl -i -H "Authorization: Bearer $TOKEN" http://127.0.0.1:3000/invoices # 200 for billing, 403 insufficient_scope for demo
//! ```
//!
//! Arguments (or environment): `ISSUER` (`AB_ISSUER`, default `http://127.0.0.1:8080`),
//! `AUDIENCE` (`AB_AUDIENCE`, default the issuer). `AB_LISTEN` sets the address
//! (default `127.0.0.1:3000`); `AB_DISCOVERY_BASE` reaches the issuer at another URL.
//!
//! Introspection mode (RFC 7662, for opaque tokens, `serve --token-format opaque`):
//! give this API its own client and set `AB_INTROSPECT_CLIENT_ID` and
//! `AB_INTROSPECT_CLIENT_SECRET`; every new token is then checked with the broker's
//! `introspection_endpoint` and the answer cached for up to 30 s.

use auth_broker_guard::{Authenticated, ClientSecret, Guard, GuardLayer};
use axum::Router;
use axum::response::IntoResponse;
use axum::routing::get;

fn setting(arg: Option<String>, env: &str, default: Option<&str>) -> Option<String> {
    arg.or_else(|| std::env::var(env).ok())
        .or(default.map(str::to_owned))
}

async fn me(who: Authenticated) -> impl IntoResponse {
    axum::Json(serde_json::json!({
        "client_id": who.client_id,
        "scope": who.scope(),
        "aud": who.aud,
        "expires_at": who.exp,
    }))
}

async fn invoices(who: Authenticated) -> impl IntoResponse {
    axum::Json(serde_json::json!({
        "for": who.client_id,
        "invoices": [{"id": 1, "total": "12.50"}, {"id": 2, "total": "99.00"}],
    }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,auth_broker_guard=debug".into()),
        )
        .init();
    let mut args = std::env::args().skip(1);
    let issuer =
        setting(args.next(), "AB_ISSUER", Some("http://127.0.0.1:8080")).unwrap_or_default();
    let audience = setting(args.next(), "AB_AUDIENCE", None);
    let listen = setting(None, "AB_LISTEN", Some("127.0.0.1:3000")).unwrap_or_default();

    let mut builder = Guard::builder(&issuer);
    if let Some(a) = &audience {
        builder = builder.audience(a);
    }
    if let Some(base) = setting(None, "AB_DISCOVERY_BASE", None) {
        builder = builder.discovery_base(base);
    }
    if let (Some(id), Some(secret)) = (
        setting(None, "AB_INTROSPECT_CLIENT_ID", None),
        setting(None, "AB_INTROSPECT_CLIENT_SECRET", None),
    ) {
        builder = builder.introspection(id, ClientSecret::new(secret));
    }
    let guard = builder.build().await?;

    let app = Router::new()
        .route("/me", get(me))
        .route_layer(GuardLayer::new(guard.clone()))
        .merge(
            Router::new()
                .route("/invoices", get(invoices))
                .route_layer(GuardLayer::new(guard.clone()).require_scope("invoices:read")),
        )
        .route("/public", get(|| async { "anyone may read this\n" }));

    let listener = tokio::net::TcpListener::bind(&listen).await?;
    tracing::info!(
        "example API on http://{} ({:?} mode, issuer {issuer}, audience {})",
        listener.local_addr()?,
        guard.mode(),
        guard.audience()
    );
    axum::serve(listener, app).await?;
    Ok(())
}
