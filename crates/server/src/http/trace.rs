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
use axum::http::{Request, Response};
use opentelemetry::trace::Status;
use opentelemetry_http::HeaderExtractor;
use std::time::Duration;
use tower_http::request_id::RequestId;
use tower_http::trace::{DefaultOnResponse, OnResponse};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The span for `req`; `export`: also as an OpenTelemetry server span.
pub(super) fn request_span<B>(req: &Request<B>, export: bool) -> Span {
    let id = req
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or("-");
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

/// The end of a request: tower-http's own line (at DEBUG, with the latency), and
/// with `export` the status code on the span.
pub(super) fn on_response<B>(res: &Response<B>, latency: Duration, span: &Span, export: bool) {
    DefaultOnResponse::default().on_response(res, latency, span);
    if export {
        let status = res.status();
        span.set_attribute("http.response.status_code", i64::from(status.as_u16()));
        if status.is_server_error() {
            span.set_status(Status::error(status.to_string()));
        }
    }
}
