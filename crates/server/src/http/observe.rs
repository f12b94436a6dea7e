//! What every request gets on its way in and out, in one layer: its `Authorization`
//! marked sensitive, its request id, its span (and log lines), its metrics.
//!
//! These were five tower layers (tower-http's sensitive-headers, set- and
//! propagate-request-id and trace layers, and the metrics layer), each with its own
//! service and future wrapping the next, two clock reads for the same latency, the
//! id looked up in the headers three times and the response body re-wrapped by the
//! trace layer (which axum then boxed again). One layer does the same work once.
//! What each did is kept, and tested where it was:
//!
//! - `Authorization` values are marked sensitive, so a `Debug` of the headers (a
//!   log, a panic message) prints `Sensitive` instead of the credentials.
//! - `X-Request-Id`: a caller's id is adopted when it is one value of a safe shape
//!   ([`super::hygiene::adoptable`]), otherwise the broker makes one
//!   (`<random prefix>-<counter>`); it is in the request's headers for the
//!   handlers (the audit trail), in the span's `id` field, and in the answer.
//! - The span of [`super::trace::request_span`] (with `--otlp-endpoint`, an
//!   OpenTelemetry server span), entered while the handler runs; the log lines of
//!   tower-http's defaults: `started processing request` and `finished processing
//!   request` (with `latency` and `status`) at DEBUG, `response failed` at ERROR for
//!   a 5xx answer.
//! - `auth_broker_http_requests_total{route,status}` and
//!   `auth_broker_http_request_duration_seconds{route}` (see
//!   [`crate::metrics::RouteMetrics`]). axum applies a router's layer to each route
//!   separately, after routing, so each route's service keeps its own metric handles
//!   and the matched path (`MatchedPath`) is known: the label is that route
//!   template, never the raw path; requests no route matched are `route="unmatched"`.

use super::REQUEST_ID;
use crate::metrics::RouteMetrics;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tracing::Span;

/// Makes request ids: a random prefix per process and a counter (cheap, and still
/// unique across replicas).
#[derive(Clone, Debug)]
pub(super) struct Ids {
    prefix: Arc<str>,
    next: Arc<AtomicU64>,
}

impl Ids {
    pub(super) fn new() -> Self {
        Self {
            // Without the random source (then nothing can be issued anyway) the
            // process id still tells replicas' ids apart on one host.
            prefix: crate::secret::random_id::<6>()
                .unwrap_or_else(|_| format!("pid{}", std::process::id()))
                .into(),
            next: Arc::new(AtomicU64::new(1)),
        }
    }

    fn make(&self) -> Option<HeaderValue> {
        use std::fmt::Write;
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        // Written into a string of the right size and handed over without a copy.
        let mut id = String::with_capacity(self.prefix.len() + 21);
        id.push_str(&self.prefix);
        let _ = write!(id, "-{n}");
        HeaderValue::try_from(id).ok()
    }
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub(super) struct ObserveLayer {
    pub(super) ids: Ids,
    /// Whether spans are also exported as OpenTelemetry spans.
    pub(super) export: bool,
}

impl<S> tower::Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            inner,
            ids: self.ids.clone(),
            export: self.export,
            route: Arc::new(OnceLock::new()),
        }
    }
}

/// See [`ObserveLayer`].
#[derive(Clone)]
pub(super) struct Observe<S> {
    inner: S,
    ids: Ids,
    export: bool,
    /// This route's metric handles, made on its first request.
    route: Arc<OnceLock<Arc<RouteMetrics>>>,
}

impl<S> std::fmt::Debug for Observe<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observe")
            .field("route", &self.route.get().map(|m| m.route()))
            .finish_non_exhaustive()
    }
}

/// The caller's request id if it is to be adopted: one value, of a safe shape.
fn adopted(req: &Request) -> Option<HeaderValue> {
    let mut ids = req.headers().get_all(&REQUEST_ID).iter();
    match (ids.next(), ids.next()) {
        (Some(one), None) if super::hygiene::adoptable(one.as_bytes()) => Some(one.clone()),
        _ => None,
    }
}

impl<S> tower::Service<Request> for Observe<S>
where
    S: tower::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ObserveFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let start = Instant::now();
        if let header::Entry::Occupied(mut values) = req.headers_mut().entry(header::AUTHORIZATION)
        {
            for value in values.iter_mut() {
                value.set_sensitive(true);
            }
        }
        let id = match adopted(&req) {
            Some(id) => Some(id),
            None => {
                // Any id the caller sent is dropped: not one safe value.
                let made = self.ids.make();
                match &made {
                    Some(id) => req.headers_mut().insert(REQUEST_ID, id.clone()),
                    None => req.headers_mut().remove(REQUEST_ID),
                };
                made
            }
        };
        let span = super::trace::request_span(
            &req,
            id.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("-"),
            self.export,
        );
        tracing::debug!(parent: &span, "started processing request");
        let path = req
            .extensions()
            .get::<MatchedPath>()
            .map_or("unmatched", MatchedPath::as_str);
        let known = self.route.get_or_init(|| Arc::new(RouteMetrics::new(path)));
        // One route, one path; should a service ever see another, it still gets its
        // own labels (the slow way).
        let metrics = if known.route() == path {
            known.clone()
        } else {
            Arc::new(RouteMetrics::new(path))
        };
        let inner = {
            let _entered = span.enter();
            self.inner.call(req)
        };
        ObserveFuture {
            inner,
            span,
            start,
            id,
            metrics,
            export: self.export,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Observe`]: polls the handler inside the request's
    /// span, then stamps, logs and counts the answer.
    pub(super) struct ObserveFuture<F> {
        #[pin]
        inner: F,
        span: Span,
        start: Instant,
        id: Option<HeaderValue>,
        metrics: Arc<RouteMetrics>,
        export: bool,
    }
}

impl<F, E> Future for ObserveFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let mut out = std::task::ready!(this.inner.poll(cx));
        if let Ok(res) = &mut out {
            let latency = this.start.elapsed();
            if let Some(id) = this.id.take() {
                // A handler's own id (none sets one today) is left as it is.
                res.headers_mut().entry(REQUEST_ID).or_insert(id);
            }
            this.metrics
                .record(res.status().as_u16(), latency.as_secs_f64());
            finished(res, latency, this.span, *this.export);
        }
        Poll::Ready(out)
    }
}

/// The end of a request: tower-http's default lines, and with `export` the status
/// code on the span.
fn finished(res: &Response, latency: Duration, span: &Span, export: bool) {
    let status = res.status();
    let latency_ms = latency.as_secs_f64() * 1000.0;
    tracing::debug!(
        latency = format_args!("{latency_ms:.3} ms"),
        status = status.as_u16(),
        "finished processing request"
    );
    if status.is_server_error() {
        tracing::error!(
            classification = format_args!("Status code: {status}"),
            latency = format_args!("{latency_ms:.3} ms"),
            "response failed"
        );
    }
    if export {
        super::trace::export_status(span, status);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::body::Body;
    use std::sync::Mutex;
    use tower::{Layer, ServiceExt};

    /// Runs one request through the layer; what the handler saw (its `Authorization`
    /// marked sensitive, its `X-Request-Id`) and the answer's `X-Request-Id`.
    async fn through(ids: &[&str]) -> (bool, Option<String>, Option<String>) {
        let seen = Arc::new(Mutex::new((false, None)));
        let handler = {
            let seen = seen.clone();
            tower::service_fn(move |req: Request| {
                let auth = req.headers()[header::AUTHORIZATION].is_sensitive();
                let id = req
                    .headers()
                    .get(&REQUEST_ID)
                    .map(|v| v.to_str().unwrap().to_owned());
                *seen.lock().unwrap() = (auth, id);
                async { Ok::<_, std::convert::Infallible>(Response::new(Body::empty())) }
            })
        };
        let layer = ObserveLayer {
            ids: Ids::new(),
            export: false,
        };
        let mut req = Request::builder()
            .uri("/x")
            .header(header::AUTHORIZATION, "Basic eDp5");
        for id in ids {
            req = req.header(&REQUEST_ID, *id);
        }
        let res = layer
            .layer(handler)
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let answered = res
            .headers()
            .get(&REQUEST_ID)
            .map(|v| v.to_str().unwrap().to_owned());
        let (auth, id) = seen.lock().unwrap().clone();
        (auth, id, answered)
    }

    #[tokio::test]
    async fn marks_credentials_sensitive_and_adopts_or_makes_the_request_id() {
        let (sensitive, id, answered) = through(&["trace-7f8e0c2a"]).await;
        assert!(sensitive, "Authorization is marked sensitive");
        assert_eq!(
            id.as_deref(),
            Some("trace-7f8e0c2a"),
            "a safe id is adopted"
        );
        assert_eq!(answered, id, "and answered");

        for unsafe_ids in [&["a b"][..], &["a\"b"], &["one", "two"]] {
            let (_, id, answered) = through(unsafe_ids).await;
            let id = id.unwrap();
            assert!(
                !unsafe_ids.contains(&id.as_str()) && id.contains('-'),
                "{unsafe_ids:?}: replaced by a made id, got {id}"
            );
            assert_eq!(answered.as_deref(), Some(id.as_str()));
        }
        let (_, first, _) = through(&[]).await;
        let (_, second, _) = through(&[]).await;
        assert!(first.is_some() && second.is_some());
    }
}
