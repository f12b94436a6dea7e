//! Prometheus metrics.
//!
//! Names: `auth_broker_http_requests_total{route,status}`,
//! `auth_broker_http_request_duration_seconds{route}` (histogram),
//! `auth_broker_tokens_issued_total`, `auth_broker_auth_failures_total{reason}`,
//! `auth_broker_connections_rejected_total`.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Instant;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process-wide recorder (installed on first use; several in-process servers,
/// as in tests, share it).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("duration_seconds".into()),
                    &[
                        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                        0.25, 1.0, 5.0,
                    ],
                )
                .ok()?;
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            metrics::describe_counter!(
                "auth_broker_http_requests_total",
                "HTTP requests by route and status"
            );
            metrics::describe_histogram!(
                "auth_broker_http_request_duration_seconds",
                "HTTP request latency by route"
            );
            metrics::describe_counter!("auth_broker_tokens_issued_total", "access tokens issued");
            metrics::describe_counter!(
                "auth_broker_auth_failures_total",
                "refused token requests by reason"
            );
            metrics::describe_counter!(
                "auth_broker_connections_rejected_total",
                "connections answered 503 and closed because max_connections were open"
            );
            Some(handle)
        })
        .as_ref()
}

/// Drains recorded histogram samples into their buckets. The exporter keeps raw
/// samples until a scrape or this call, so without it memory grows with every
/// request when nobody scrapes `/metrics`; the server calls it every few seconds.
pub fn upkeep() {
    if let Some(h) = handle() {
        h.run_upkeep();
    }
}

/// Counts and times every request by its route template (never the raw path, so the
/// label set stays bounded).
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let start = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!("auth_broker_http_requests_total", "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!("auth_broker_http_request_duration_seconds", "route" => route)
        .record(start.elapsed().as_secs_f64());
    resp
}
