//! Prometheus metrics.
//!
//! Names: `auth_broker_http_requests_total{route,status}`,
//! `auth_broker_http_request_duration_seconds{route}` (histogram),
//! `auth_broker_tokens_issued_total`, `auth_broker_auth_failures_total{reason}`,
//! `auth_broker_connections_rejected_total`, and
//! `auth_broker_client_cache_hits_total` / `auth_broker_client_cache_misses_total` /
//! `auth_broker_client_cache_bypassed_total` (token requests whose client came from
//! the cache / from the database after a change or at first sight / from the
//! database because the cache was off).
//!
//! Two renderings of one registry. `GET /metrics` on the broker's own listener is
//! unauthenticated, so it must not tell an unknown client id from a wrong secret or
//! a disabled client (the token endpoint's answers are identical for all three; one
//! failed request between two scrapes would otherwise reveal whether an id exists):
//! there the three are one `reason="invalid_client"`. The precise causes are counted
//! in [`PRIVATE_FAMILIES`], which only the operator's listener
//! (`serve --metrics-listen`, [`render`] with `private`) shows, beside everything else.

use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

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
                "refused requests at the form endpoints by reason (unknown client, wrong secret and disabled client are one reason, invalid_client)"
            );
            metrics::describe_counter!(
                AUTH_FAILURES_BY_CAUSE,
                "refused requests at the form endpoints by precise reason (only on --metrics-listen)"
            );
            metrics::describe_counter!(
                "auth_broker_connections_rejected_total",
                "connections answered 503 and closed because max_connections were open"
            );
            metrics::describe_counter!(
                "auth_broker_client_cache_hits_total",
                "client reads served from the client cache (SQLite: database unchanged; PostgreSQL: no change notified while the listener listens)"
            );
            metrics::describe_counter!(
                "auth_broker_client_cache_misses_total",
                "client reads that went to the database with the cache on (first sight, or after a change of that client)"
            );
            metrics::describe_counter!(
                "auth_broker_client_cache_bypassed_total",
                "client reads that went to the database because the cache was off (PostgreSQL: the change listener reconnecting, or its heartbeat late)"
            );
            Some(handle)
        })
        .as_ref()
}

/// Refusals by their precise cause (`unknown_client`, `wrong_secret`,
/// `disabled_client`, ...).
pub const AUTH_FAILURES_BY_CAUSE: &str = "auth_broker_auth_failures_by_cause_total";

/// Families shown only on the operator's metrics listener.
pub const PRIVATE_FAMILIES: [&str; 1] = [AUTH_FAILURES_BY_CAUSE];

/// Counts a refused request at a form endpoint: under its public reason (the three
/// causes of a failed authentication merged, see the module doc) and its precise one.
pub fn auth_failure(reason: &'static str) {
    let public = match reason {
        "unknown_client" | "wrong_secret" | "disabled_client" | "secret_not_allowed" => {
            "invalid_client"
        }
        r if r.starts_with("assertion_") || r.starts_with("certificate_") => "invalid_client",
        other => other,
    };
    metrics::counter!("auth_broker_auth_failures_total", "reason" => public).increment(1);
    metrics::counter!(AUTH_FAILURES_BY_CAUSE, "reason" => reason).increment(1);
}

/// The Prometheus text of every metric; without `private`, leaving out
/// [`PRIVATE_FAMILIES`] (their `# HELP`, `# TYPE` and sample lines).
pub fn render(private: bool) -> String {
    let Some(text) = handle().map(PrometheusHandle::render) else {
        return String::new();
    };
    if private {
        return text;
    }
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let name = match line.strip_prefix('#') {
            Some(comment) => comment.split_whitespace().nth(1).unwrap_or(""),
            None => line.split(['{', ' ']).next().unwrap_or(""),
        };
        // Histograms and summaries add suffixes to their samples' names.
        let private_line = PRIVATE_FAMILIES.iter().any(|f| {
            name.strip_prefix(f)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('_'))
        });
        if !private_line {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Drains recorded histogram samples into their buckets. The exporter keeps raw
/// samples until a scrape or this call, so without it memory grows with every
/// request when nobody scrapes `/metrics`; the server calls it every few seconds.
pub fn upkeep() {
    if let Some(h) = handle() {
        h.run_upkeep();
    }
}

/// The statuses whose counters a route keeps at hand; others are looked up by name.
const STATUSES: [u16; 13] = [
    200, 400, 401, 403, 404, 405, 408, 413, 415, 429, 431, 500, 503,
];

/// One route's request counters and latency histogram.
///
/// Resolved once per route, on its first request: recording is then an atomic add
/// on a handle, where `metrics::counter!` with labels would build the labels (two
/// `String`s), hash them and look them up in the registry on every request (a
/// token request's middleware cost halved, measured with callgrind).
pub(crate) struct RouteMetrics {
    route: String,
    duration: Histogram,
    by_status: [OnceLock<Counter>; STATUSES.len()],
}

impl RouteMetrics {
    pub(crate) fn new(route: &str) -> Self {
        // Handles made before the recorder is installed would record nowhere.
        let _ = handle();
        Self {
            route: route.to_owned(),
            duration: metrics::histogram!(
                "auth_broker_http_request_duration_seconds",
                "route" => route.to_owned()
            ),
            by_status: Default::default(),
        }
    }

    /// The route template these handles are labelled with.
    pub(crate) fn route(&self) -> &str {
        &self.route
    }

    /// Counts an answer of `status` that took `elapsed` seconds.
    pub(crate) fn record(&self, status: u16, elapsed: f64) {
        let counter = |status: u16| {
            metrics::counter!(
                "auth_broker_http_requests_total",
                "route" => self.route.clone(),
                "status" => status.to_string()
            )
        };
        match STATUSES.iter().position(|&s| s == status) {
            Some(i) => self.by_status[i]
                .get_or_init(|| counter(status))
                .increment(1),
            None => counter(status).increment(1),
        }
        self.duration.record(elapsed);
    }
}
