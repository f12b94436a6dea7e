//! `auth-broker proxy`: a local HTTP proxy that signs everything it forwards.

use super::call::usage;
use super::{ClientArgs, TokenRequestArgs};
use anyhow::Context;
use auth_broker_client::{BearerMiddleware, TokenError};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use clap::Args;
use futures_util::TryStreamExt;
use http::{HeaderMap, HeaderName, StatusCode, header};
use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

/// Bodies up to this size with a known length are buffered, so a request can be
/// replayed after a 401; longer or chunked bodies are streamed and not replayed.
/// Requests without a body are always replayed.
const REPLAYABLE_BODY: u64 = 64 * 1024;

#[derive(Debug, Args)]
#[command(after_help = "\
Example:
  auth-broker proxy --listen 127.0.0.1:9000 --upstream https://api.example.com
  curl http://127.0.0.1:9000/invoices?page=2     # reaches https://api.example.com/invoices?page=2, signed

Every method, path, query, header and body is forwarded (bodies streamed); an incoming
Authorization header is dropped and replaced by the managed token, which is refreshed
ahead of expiry (with --dpop: Authorization: DPoP and a fresh DPoP proof per request,
one replay when the upstream asks for a nonce). A 401 from the upstream triggers one refresh and a replay (requests
without a body, or with one of up to 64 KiB and a Content-Length; not chunked or larger
ones). A path that would leave the upstream's path prefix (..) is refused with 400.
Without a usable token a request gets 503 with Retry-After within 2 s and is not
forwarded. Stop with Ctrl-C or SIGTERM: in-flight requests finish first.")]
pub struct ProxyArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub request: TokenRequestArgs,
    /// Address to listen on; port 0 picks a free one (printed on start).
    #[arg(long, default_value = "127.0.0.1:9000", value_name = "ADDR")]
    pub listen: String,
    /// The API every request goes to, e.g. https://api.example.com (a path prefix is kept).
    #[arg(long, value_name = "URL")]
    pub upstream: String,
}

/// How long a request waits for a token when there is no usable one: past it the
/// answer is `503` + `Retry-After` (RFC 9110 §15.6.4) while the token request goes on,
/// instead of holding the caller for as long as the token endpoint hangs.
const TOKEN_WAIT: Duration = Duration::from_secs(2);

struct Proxy {
    upstream: reqwest::Url,
    /// `--upstream`'s path without its trailing `/`: no request may leave it.
    prefix: String,
    http: reqwest_middleware::ClientWithMiddleware,
}

pub async fn run(args: ProxyArgs) -> anyhow::Result<()> {
    let upstream = reqwest::Url::parse(&args.upstream)
        .map_err(|e| usage(format!("--upstream '{}' is not a URL: {e}", args.upstream)))?;
    let manager = args.client.manager(&args.request)?;
    let http = reqwest_middleware::ClientBuilder::new(args.client.http_client(
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()),
        manager.config().tls_identity.as_ref(),
    )?)
    .with(BearerMiddleware::new(manager.clone()).max_wait(TOKEN_WAIT))
    .build();
    let prefix = upstream.path().trim_end_matches('/').to_owned();
    let state = Arc::new(Proxy {
        upstream,
        prefix,
        http,
    });
    let app = axum::Router::new().fallback(forward).with_state(state);
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    // Listen at once: requests that come before a token get a prompt 503.
    let server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(crate::settings::shutdown_signal())
            .into_future(),
    );
    out!("proxy listening on http://{addr} -> {}", args.upstream);
    // Refused credentials or an untrusted certificate stop the proxy: no request can
    // succeed. A token endpoint that is down, slow or asking to wait is no reason to
    // stop: requests get 503 until it answers.
    match manager.token_within(TOKEN_WAIT).await {
        Ok(_) => {}
        Err(e) if e.is_transient() && auth_broker_client::certificate_problem(&e).is_none() => {
            eprintln!(
                "warning: no token yet ({e}); requests get 503 with Retry-After until the token endpoint answers"
            )
        }
        Err(e) => {
            server.abort();
            return Err(super::with_tls_hint(anyhow::Error::new(e).context(
                "cannot get a token; run `auth-broker doctor` to see why",
            )));
        }
    }
    server.await??;
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
    )
}

/// The headers to forward: not hop-by-hop, and not named in `Connection` (RFC 9110
/// §7.6.1: those are hop-by-hop too). `Content-Length` is kept: it is the framing the
/// sender chose (and a `HEAD` answer's length of the body it did not send).
fn copy_headers(from: &HeaderMap) -> HeaderMap {
    let named: Vec<String> = from
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .collect();
    let mut out = HeaderMap::with_capacity(from.len());
    for (k, v) in from {
        if !skip(k) && !named.iter().any(|n| n == k.as_str()) {
            out.append(k.clone(), v.clone());
        }
    }
    out
}

impl Proxy {
    /// The upstream URL for `uri`, or `None` when its path would leave `--upstream`'s
    /// path prefix: the URL parser resolves `..` and `%2e%2e` segments (RFC 3986
    /// §5.2.4), so `/../admin` under `https://api/v1` would reach `https://api/admin`,
    /// signed.
    fn target(&self, uri: &http::Uri) -> Option<reqwest::Url> {
        let mut url = self.upstream.clone();
        url.set_path(&format!("{}{}", self.prefix, uri.path()));
        url.set_query(uri.query());
        let path = url.path();
        let inside = self.prefix.is_empty()
            || path == self.prefix
            || path
                .strip_prefix(self.prefix.as_str())
                .is_some_and(|rest| rest.starts_with('/'));
        inside.then_some(url)
    }
}

async fn forward(State(p): State<Arc<Proxy>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Some(url) = p.target(&parts.uri) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "auth-broker proxy: the path {} leaves the upstream's prefix {}/",
                parts.uri.path(),
                p.prefix
            ),
        );
    };
    let length = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let chunked = parts.headers.contains_key(header::TRANSFER_ENCODING);
    // The client's framing is kept: no body when it sent none (so the request can be
    // replayed after a 401 and no `Transfer-Encoding` is invented), a buffered body up
    // to REPLAYABLE_BODY (replayable), a stream otherwise (sent once).
    let body = match (length, chunked) {
        (_, true) => Some(reqwest::Body::wrap_stream(body.into_data_stream())),
        (Some(n), false) if n <= REPLAYABLE_BODY => {
            match axum::body::to_bytes(body, n as usize).await {
                Ok(b) => Some(reqwest::Body::from(b)),
                Err(e) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!("reading the request body: {e}"),
                    );
                }
            }
        }
        (Some(_), false) => Some(reqwest::Body::wrap_stream(body.into_data_stream())),
        (None, false) => None,
    };
    let mut headers = copy_headers(&parts.headers);
    if chunked {
        // Said out loud: hyper would otherwise send a GET's streamed body as no body.
        headers.insert(
            header::TRANSFER_ENCODING,
            http::HeaderValue::from_static("chunked"),
        );
    }
    let mut req = p.http.request(parts.method.clone(), url).headers(headers);
    if let Some(b) = body {
        req = req.body(b);
    }
    match req.send().await {
        Ok(r) => {
            let mut out = Response::builder().status(r.status());
            if let Some(h) = out.headers_mut() {
                *h = copy_headers(r.headers());
            }
            let body = if parts.method == http::Method::HEAD {
                Body::empty()
            } else {
                Body::from_stream(r.bytes_stream().map_err(std::io::Error::other))
            };
            out.body(body)
                .unwrap_or_else(|e| error(StatusCode::BAD_GATEWAY, e.to_string()))
        }
        Err(e) => {
            if let Some(te) = token_error(&e) {
                return no_token(te);
            }
            tracing::warn!(error = %super::call::cause_chain(&e), "upstream request failed");
            error(
                StatusCode::BAD_GATEWAY,
                format!("auth-broker proxy: {}", super::call::cause_chain(&e)),
            )
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
/// token endpoint down, slow or answering garbage with a 5xx, or no answer within
/// [`TOKEN_WAIT`]) is `503` with `Retry-After` (RFC 9110 §15.6.4), the caller may
/// retry; a permanent one (such as `invalid_client`) is `502`, the proxy's own
/// configuration needs fixing.
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
