//! The span of each request: what the logs carry, and, when the process exports
//! traces (`Config::trace_export`, `serve --otlp-endpoint`), an OpenTelemetry HTTP
//! server span.
//!
//! The logs' fields stay as they are with or without export (`id` is the request id,
//! `method`, `path`), so a log line and a trace can be matched by the request id.
//! Export adds what trace backends group and search by, after OpenTelemetry's
//! semantic conventions for HTTP servers: the span is named `METHOD ROUTE` (the
//! route pattern, never the raw path, so names stay few), is of kind server, and
//! carries `request_id`, `http.request.method`, `url.path`, `http.route` and
//! `http.response.status_code`; a 5xx answer marks it as an error (a 4xx is the
//! caller's, not the server's). A `traceparent` header (W3C Trace Context) makes the
//! span a child of the caller's, so a client's trace runs through the broker.
//!
//! Without export none of that is built: the extra fields, the header parsing and
//! the span names cost nothing on the hot path of a deployment that does not trace.

use axum::extract::MatchedPath;
use axum::http::{Request, StatusCode};
use opentelemetry::trace::Status;
use opentelemetry_http::HeaderExtractor;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The span for `req`, whose request id is `id`; `export`: also as an OpenTelemetry
/// server span.
pub(super) fn request_span<B>(req: &Request<B>, id: &str, export: bool) -> Span {
    let method = req.method();
    let path = req.uri().path();
    if !export {
        return tracing::info_span!("request", id, method = %method, path = %path);
    }
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let name = match route {
        Some(route) => format!("{method} {route}"),
        None => method.to_string(),
    };
    let span = tracing::info_span!(
        "request",
        id,
        method = %method,
        path = %path,
        otel.name = name,
        otel.kind = "server",
    );
    // The parent first: the attributes below start the span, after which it cannot
    // be re-parented.
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(req.headers()))
    });
    // Fails only when no OpenTelemetry layer is installed (nothing to export to).
    let _ = span.set_parent(parent);
    span.set_attribute("request_id", id.to_owned());
    span.set_attribute("http.request.method", method.as_str().to_owned());
    span.set_attribute("url.path", path.to_owned());
    if let Some(route) = route {
        span.set_attribute("http.route", route.to_owned());
    }
    span
}

/// The answer's status code on an exported span; a 5xx marks it as an error.
pub(super) fn export_status(span: &Span, status: StatusCode) {
    span.set_attribute("http.response.status_code", i64::from(status.as_u16()));
    if status.is_server_error() {
        span.set_status(Status::error(status.to_string()));
    }
}
