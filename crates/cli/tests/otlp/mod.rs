//! `serve --otlp-endpoint` (issue 18): the real binary exports its request spans to
//! a small OTLP/HTTP receiver started here, which decodes them with the OpenTelemetry
//! protobuf definitions. What must hold: one server span per request, named by its
//! route, with the request id as `request_id`, the status code, and the caller's
//! `traceparent` as its parent; spans still queued at SIGTERM are sent before the
//! process exits; nothing secret is in them; and a collector that is down changes
//! nothing for the broker's callers.

use crate::common::{Serve, cli_json, token_status};
use axum::body::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind, status::StatusCode};
use prost::Message;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A collector's OTLP/HTTP traces endpoint that keeps every body it is sent.
async fn receiver() -> (String, Arc<Mutex<Vec<Bytes>>>) {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let kept = bodies.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: Bytes| {
            let kept = kept.clone();
            async move {
                assert_eq!(headers["content-type"], "application/x-protobuf");
                kept.lock().unwrap().push(body);
                // An empty ExportTraceServiceResponse: everything accepted.
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (at, bodies)
}

fn attributes(span: &Span) -> HashMap<String, AnyValue> {
    span.attributes
        .iter()
        .filter_map(|kv| Some((kv.key.clone(), kv.value.clone()?.value?)))
        .collect()
}

fn text(v: Option<&AnyValue>) -> Option<&str> {
    match v {
        Some(AnyValue::StringValue(s)) => Some(s),
        _ => None,
    }
}

fn int(v: Option<&AnyValue>) -> Option<i64> {
    match v {
        Some(AnyValue::IntValue(i)) => Some(*i),
        _ => None,
    }
}

/// Runs the blocking `Serve` helpers off the runtime, which must keep answering the
/// exports meanwhile.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_exports_a_server_span_per_request_to_an_otlp_collector() {
    let (collector, bodies) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let created = blocking(move || {
        cli_json(
            &path,
            "sqlite://auth-broker.db",
            &["client", "create", "--name", "traced", "--json"],
        )
    })
    .await;
    let id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    let path = dir.path().to_owned();
    let endpoint = collector.clone();
    let serve = blocking(move || {
        Serve::start(
            &path,
            // Batches stay queued until the process stops (the schedule is far off),
            // so the test also proves that SIGTERM sends what is queued.
            &[("OTEL_BSP_SCHEDULE_DELAY", "600000")],
            &["--otlp-endpoint", &endpoint],
        )
    })
    .await;
    assert!(
        serve
            .lines
            .iter()
            .any(|l| l.trim() == format!("traces: {collector}/v1/traces (OTLP/HTTP)")),
        "the banner names where traces go: {:?}",
        serve.lines
    );

    let http = reqwest::Client::new();
    let url = format!("{}/auth-broker/request-token", serve.base);
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let issued = http
        .post(&url)
        .basic_auth(&id, Some(&secret))
        .header("x-request-id", "otlp-issued")
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(issued.status(), 200);
    let token: serde_json::Value = issued.json().await.unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();
    let refused = http
        .post(&url)
        .basic_auth(&id, Some("abs_not-the-secret"))
        .header("x-request-id", "otlp-refused")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let missing = http
        .get(format!("{}/no/such/path", serve.base))
        .header("x-request-id", "otlp-missing")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert!(
        bodies.lock().unwrap().is_empty(),
        "nothing is sent before the batch is due"
    );

    assert_eq!(blocking(move || serve.stop()).await, 0);
    let bodies = bodies.lock().unwrap().clone();
    assert!(!bodies.is_empty(), "SIGTERM sends the queued spans");
    let mut spans = HashMap::new();
    for body in &bodies {
        for (what, needle) in [("secret", &secret), ("token", &token)] {
            assert!(
                !body.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "the {what} was exported"
            );
        }
        let request = ExportTraceServiceRequest::decode(body.as_ref()).unwrap();
        for resource in request.resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.clone()?.value);
            assert_eq!(text(service.as_ref()), Some("auth-broker"));
            for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
                let attrs = attributes(&span);
                if let Some(rid) = text(attrs.get("request_id")) {
                    spans.insert(rid.to_owned(), (span.clone(), attrs.clone()));
                }
            }
        }
    }

    let (span, attrs) = &spans["otlp-issued"];
    assert_eq!(span.name, "POST /auth-broker/request-token");
    assert_eq!(span.kind, SpanKind::Server as i32);
    assert_eq!(hex(&span.trace_id), trace_id, "the caller's trace");
    assert_eq!(hex(&span.parent_span_id), caller_span, "the caller's span");
    assert_eq!(text(attrs.get("http.request.method")), Some("POST"));
    assert_eq!(
        text(attrs.get("http.route")),
        Some("/auth-broker/request-token")
    );
    assert_eq!(int(attrs.get("http.response.status_code")), Some(200));
    assert!(span.end_time_unix_nano > span.start_time_unix_nano);

    let (span, attrs) = &spans["otlp-refused"];
    assert_eq!(int(attrs.get("http.response.status_code")), Some(401));
    assert_ne!(
        hex(&span.trace_id),
        trace_id,
        "no traceparent: a trace of its own"
    );
    assert!(span.parent_span_id.is_empty());
    let status = span.status.clone().unwrap_or_default().code;
    assert_ne!(
        status,
        StatusCode::Error as i32,
        "a 4xx is the caller's error"
    );
    // The request's INFO events ride along, as in the log: here, why it was refused.
    let failed = span
        .events
        .iter()
        .find(|e| e.name == "client authentication failed")
        .expect("the refusal's event");
    let reason = failed.attributes.iter().find(|kv| kv.key == "reason");
    let reason = reason.and_then(|kv| kv.value.clone()?.value);
    assert_eq!(text(reason.as_ref()), Some("wrong_secret"));

    let (span, attrs) = &spans["otlp-missing"];
    assert_eq!(
        span.name, "GET",
        "no route: the method alone, never the raw path"
    );
    assert_eq!(text(attrs.get("url.path")), Some("/no/such/path"));
    assert_eq!(int(attrs.get("http.response.status_code")), Some(404));
}

/// A collector that is down (nothing listens) costs the broker's callers nothing:
/// tokens are issued, and the process still stops at once and cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_is_down_changes_nothing_for_callers() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let dir = tempfile::tempdir().unwrap();
    let outcome = blocking(move || {
        let created = cli_json(
            dir.path(),
            "sqlite://auth-broker.db",
            &["client", "create", "--name", "traced", "--json"],
        );
        let serve = Serve::start(
            dir.path(),
            &[("OTEL_BSP_SCHEDULE_DELAY", "50")],
            &["--otlp-endpoint", &closed],
        );
        let id = created["client_id"].as_str().unwrap();
        let secret = created["client_secret"].as_str().unwrap();
        let mut statuses = Vec::new();
        for _ in 0..20 {
            statuses.push(token_status(&serve.base, id, secret).0);
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let started = std::time::Instant::now();
        let code = serve.stop();
        (statuses, code, started.elapsed())
    })
    .await;
    let (statuses, code, stopping) = outcome;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(code, 0);
    assert!(stopping < std::time::Duration::from_secs(5), "{stopping:?}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
