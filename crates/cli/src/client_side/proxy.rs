//! `auth-broker proxy`: a local HTTP proxy that signs everything it forwards.

use super::ClientArgs;
use super::call::usage;
use anyhow::Context;
use auth_broker_client::{BearerMiddleware, TokenError};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use clap::Args;
use futures_util::TryStreamExt;
use http::{HeaderMap, HeaderName, StatusCode, header};
use std::sync::Arc;

/// Bodies up to this size with a known length are buffered, so a request can be
/// replayed after a 401; longer or chunked bodies are streamed and not replayed.
const REPLAYABLE_BODY: u64 = 64 * 1024;

#[derive(Debug, Args)]
#[command(after_help = "\
Example:
  auth-broker proxy --listen 127.0.0.1:9000 --upstream https://api.example.com
  curl http://127.0.0.1:9000/invoices?page=2     # reaches https://api.example.com/invoices?page=2, signed

Every method, path, query, header and body is forwarded (bodies streamed); an incoming
Authorization header is dropped and replaced by the managed token, which is refreshed
ahead of expiry. A 401 from the upstream triggers one refresh and a replay (bodies up
to 64 KiB). Stop with Ctrl-C or SIGTERM: in-flight requests finish first.")]
pub struct ProxyArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Address to listen on; port 0 picks a free one (printed on start).
    #[arg(long, default_value = "127.0.0.1:9000", value_name = "ADDR")]
    pub listen: String,
    /// The API every request goes to, e.g. https://api.example.com (a path prefix is kept).
    #[arg(long, value_name = "URL")]
    pub upstream: String,
}

struct Proxy {
    upstream: reqwest::Url,
    http: reqwest_middleware::ClientWithMiddleware,
}

pub async fn run(args: ProxyArgs) -> anyhow::Result<()> {
    let upstream = reqwest::Url::parse(&args.upstream)
        .map_err(|e| usage(format!("--upstream '{}' is not a URL: {e}", args.upstream)))?;
    let manager = args.client.manager()?;
    // Fail fast on bad credentials or an untrusted certificate, before accepting
    // traffic. A token endpoint that is down for now is no reason not to start:
    // requests get a 503 until it is back.
    match manager.token().await {
        Ok(_) => {}
        Err(e) if e.is_transient() && auth_broker_client::certificate_problem(&e).is_none() => {
            eprintln!(
                "warning: cannot get a token yet ({e}); starting anyway: requests get 503 until the token endpoint answers"
            )
        }
        Err(e) => {
            return Err(super::with_tls_hint(anyhow::Error::new(e).context(
                "cannot get a token; run `auth-broker doctor` to see why",
            )));
        }
    }
    let http = reqwest_middleware::ClientBuilder::new(
        args.client
            .http_client(reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()))?,
    )
    .with(BearerMiddleware::new(manager))
    .build();
    let state = Arc::new(Proxy { upstream, http });
    let app = axum::Router::new().fallback(forward).with_state(state);
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    out!("proxy listening on http://{addr} -> {}", args.upstream);
    axum::serve(listener, app)
        .with_graceful_shutdown(crate::settings::shutdown_signal())
        .await?;
    Ok(())
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) and the ones the proxy sets itself.
fn skip(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "authorization"
            | "content-length"
    )
}

fn copy_headers(from: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(from.len());
    for (k, v) in from {
        if !skip(k) {
            out.append(k.clone(), v.clone());
        }
    }
    out
}

async fn forward(State(p): State<Arc<Proxy>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let mut url = p.upstream.clone();
    let base = p.upstream.path().trim_end_matches('/');
    url.set_path(&format!("{base}{}", parts.uri.path()));
    url.set_query(parts.uri.query());
    let length = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body = match length {
        Some(n) if n <= REPLAYABLE_BODY => match axum::body::to_bytes(body, n as usize).await {
            Ok(b) => reqwest::Body::from(b),
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("reading the request body: {e}"),
                );
            }
        },
        _ => reqwest::Body::wrap_stream(body.into_data_stream()),
    };
    let mut headers = copy_headers(&parts.headers);
    if let Some(n) = length {
        headers.insert(header::CONTENT_LENGTH, n.into());
    }
    let resp = p
        .http
        .request(parts.method, url)
        .headers(headers)
        .body(body)
        .send()
        .await;
    match resp {
        Ok(r) => {
            let mut out = Response::builder().status(r.status());
            if let Some(h) = out.headers_mut() {
                *h = copy_headers(r.headers());
                if let Some(n) = r.content_length() {
                    h.insert(header::CONTENT_LENGTH, n.into());
                }
            }
            let stream = r.bytes_stream().map_err(std::io::Error::other);
            out.body(Body::from_stream(stream))
                .unwrap_or_else(|e| error(StatusCode::BAD_GATEWAY, e.to_string()))
        }
        Err(e) => {
            if let Some(te) = token_error(&e) {
                return no_token(te);
            }
            tracing::warn!(error = %format!("{e:#}"), "upstream request failed");
            error(StatusCode::BAD_GATEWAY, format!("auth-broker proxy: {e:#}"))
        }
    }
}

fn token_error(e: &reqwest_middleware::Error) -> Option<&TokenError> {
    match e {
        reqwest_middleware::Error::Middleware(m) => m.downcast_ref::<TokenError>(),
        reqwest_middleware::Error::Reqwest(_) => None,
    }
}

/// No token to sign with: the request is not forwarded. A transient failure (the
/// token endpoint down, slow or answering garbage with a 5xx) is `503` with
/// `Retry-After` (RFC 9110 §15.6.4), the caller may retry; a permanent one (such as
/// `invalid_client`) is `502`, the proxy's own configuration needs fixing.
fn no_token(e: &TokenError) -> Response {
    tracing::warn!(error = %e, "no token to sign the request with");
    let msg = format!("auth-broker proxy: cannot get a token, the request was not forwarded: {e}");
    if e.is_transient() {
        let secs = e.retry_after().map_or(1, |d| d.as_secs().clamp(1, 60));
        let mut r = error(StatusCode::SERVICE_UNAVAILABLE, msg);
        r.headers_mut().insert(header::RETRY_AFTER, secs.into());
        r
    } else {
        error(StatusCode::BAD_GATEWAY, msg)
    }
}

fn error(status: StatusCode, msg: String) -> Response {
    (status, format!("{msg}\n")).into_response()
}
