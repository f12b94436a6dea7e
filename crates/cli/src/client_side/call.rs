//! `auth-broker call`: one signed request, like curl.

use super::ClientArgs;
use anyhow::Context;
use auth_broker_client::{BearerMiddleware, Unauthorized};
use clap::Args;
use std::io::Write;

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  auth-broker call https://api.example.com/invoices
  auth-broker call -X POST -H 'Content-Type: application/json' -d '{\"n\":1}' https://api.example.com/invoices

The body is printed to stdout. An HTTP error status exits 1 with the status on stderr.")]
pub struct CallArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// HTTP method. [default: GET, or POST with -d]
    #[arg(short = 'X', long = "request", value_name = "METHOD")]
    pub method: Option<String>,
    /// A request header, 'Name: value'. Repeatable. An Authorization header is replaced.
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    pub headers: Vec<String>,
    /// Request body; @FILE reads a file.
    #[arg(short = 'd', long = "data", value_name = "BODY")]
    pub data: Option<String>,
    /// The URL to call.
    pub url: String,
}

pub async fn run(args: CallArgs) -> anyhow::Result<()> {
    let method = match &args.method {
        Some(m) => http::Method::from_bytes(m.to_ascii_uppercase().as_bytes())
            .map_err(|_| usage(format!("'{m}' is not an HTTP method")))?,
        None if args.data.is_some() => http::Method::POST,
        None => http::Method::GET,
    };
    let url = reqwest::Url::parse(&args.url)
        .map_err(|e| usage(format!("'{}' is not a URL: {e}", args.url)))?;
    let mut headers = http::HeaderMap::new();
    for h in &args.headers {
        let (k, v) = h
            .split_once(':')
            .ok_or_else(|| usage(format!("header '{h}' is not 'Name: value'")))?;
        let name = http::HeaderName::from_bytes(k.trim().as_bytes())
            .map_err(|_| usage(format!("'{}' is not a header name", k.trim())))?;
        let value = http::HeaderValue::from_str(v.trim())
            .map_err(|_| usage(format!("the value of header '{}' is not valid", k.trim())))?;
        headers.append(name, value);
    }
    let body = match &args.data {
        Some(d) => match d.strip_prefix('@') {
            Some(path) => Some(std::fs::read(path).with_context(|| format!("cannot read {path}"))?),
            None => Some(d.clone().into_bytes()),
        },
        None => None,
    };
    if body.is_some() && !headers.contains_key(http::header::CONTENT_TYPE) {
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
    }
    let manager = args.client.manager()?;
    let http = reqwest_middleware::ClientBuilder::new(
        args.client.http_client(reqwest::Client::builder())?,
    )
    .with(BearerMiddleware::new(manager))
    .build();
    let mut req = http.request(method, url).headers(headers);
    if let Some(b) = body {
        req = req.body(b);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| super::with_tls_hint_from(&e, anyhow::anyhow!("{e:#}")))?;
    let status = resp.status();
    let hint = resp.extensions().get::<Unauthorized>().copied();
    let bytes = resp.bytes().await.context("reading the response body")?;
    let mut out = std::io::stdout().lock();
    out.write_all(&bytes)?;
    out.flush()?;
    if status.is_client_error() || status.is_server_error() {
        if let Some(h) = hint {
            eprintln!("hint: {}", h.hint);
        }
        anyhow::bail!("HTTP {status}");
    }
    Ok(())
}

/// A usage error: exit code 2.
pub fn usage(msg: String) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg))
}

#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}
