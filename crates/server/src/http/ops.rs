//! Health, readiness and metrics endpoints.

use crate::AppState;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The process is up and serving HTTP.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "ops",
    operation_id = "healthz",
    responses((status = 200, description = "Up", body = super::openapi::Health))
)]
pub async fn healthz() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"ok"}"#,
    )
        .into_response()
}

/// The store answers; a load balancer should stop sending traffic while it does not.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "ops",
    operation_id = "readyz",
    responses(
        (status = 200, description = "Ready", body = super::openapi::Readiness),
        (status = 503, description = "The store is unreachable", body = super::openapi::Readiness,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn readyz(State(app): State<Arc<AppState>>) -> Response {
    match app.store.ping().await {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            format!(r#"{{"status":"ready","store":"{}"}}"#, app.store.backend()),
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            let mut r = (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::CONTENT_TYPE, "application/json")],
                format!(
                    r#"{{"status":"unavailable","store":"{}","error":"the store is unreachable"}}"#,
                    app.store.backend()
                ),
            )
                .into_response();
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
    }
}

/// Prometheus text exposition format.
///
/// Unauthenticated: nothing here tells whether a client id exists (see
/// [`crate::metrics`]); the operator's listener (`serve --metrics-listen`) adds the
/// precise causes of failed authentications.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "ops",
    operation_id = "metrics",
    responses((status = 200, description = "Prometheus text format 0.0.4", body = String,
        content_type = "text/plain; version=0.0.4; charset=utf-8"))
)]
pub async fn metrics(State(app): State<Arc<AppState>>) -> Response {
    render_metrics(&app, false)
}

/// `GET /metrics` on the operator's listener: everything, with the precise causes.
pub async fn private_metrics(State(app): State<Arc<AppState>>) -> Response {
    render_metrics(&app, true)
}

fn render_metrics(app: &AppState, private: bool) -> Response {
    // The client cache counts in the store; exported as of this scrape.
    if let Some(stats) = app.store.client_cache_stats() {
        metrics::counter!("auth_broker_client_cache_hits_total").absolute(stats.hits);
        metrics::counter!("auth_broker_client_cache_misses_total").absolute(stats.misses);
        metrics::counter!("auth_broker_client_cache_bypassed_total").absolute(stats.bypassed);
    }
    let body = crate::metrics::render(private);
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
