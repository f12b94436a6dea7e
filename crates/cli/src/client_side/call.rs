//! `auth-broker call`: one signed request, like curl.

use super::{ClientArgs, TokenRequestArgs};
use anyhow::Context;
use auth_broker_client::{BearerMiddleware, Unauthorized};
use clap::Args;
use futures_util::StreamExt;
use std::io::{Read, Write};

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  auth-broker call https://api.example.com/invoices
  auth-broker call -X POST -H 'Content-Type: application/json' -d '{\"n\":1}' https://api.example.com/invoices
  auth-broker call -d a=1 -d b=2 https://api.example.com/form        # body a=1&b=2
  auth-broker call --data-binary @report.pdf -o answer.json https://api.example.com/upload
  auth-broker call --dpop https://api.example.com/invoices     # DPoP: a fresh proof per request

The body is written to stdout (or -o FILE) as it arrives. Exit codes: 0 for an answer
below 400; 1 for an HTTP error status (400 and up, the status on stderr), no token, a
request that could not be sent (the cause on stderr) or output that could not be
written; 2 for bad usage. A 401 after one refresh and replay prints what to try next.")]
pub struct CallArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub request: TokenRequestArgs,
    /// HTTP method. [default: GET, or POST with -d/--data-binary]
    #[arg(short = 'X', long = "request", value_name = "METHOD")]
    pub method: Option<String>,
    /// A request header, 'Name: value'. Repeatable. An Authorization header is replaced.
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    pub headers: Vec<String>,
    /// Request body, as curl's -d: repeated values are joined with '&'; @FILE reads a
    /// file and @- standard input, without their carriage returns and newlines.
    /// Content-Type defaults to application/x-www-form-urlencoded.
    #[arg(short = 'd', long = "data", value_name = "BODY")]
    pub data: Vec<String>,
    /// Request body sent exactly as given, as curl's --data-binary (@FILE and @- read
    /// the bytes as they are). Joined with '&' after any -d values.
    #[arg(long = "data-binary", value_name = "DATA")]
    pub data_binary: Vec<String>,
    /// Write the response's status line and headers before its body, as curl -i.
    #[arg(short = 'i', long = "include")]
    pub include: bool,
    /// Write the body to FILE instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    /// Print nothing on stderr (the exit code still tells), as curl -s.
    #[arg(short = 's', long = "silent")]
    pub silent: bool,
    /// The URL to call.
    pub url: String,
}

pub async fn run(args: CallArgs) -> anyhow::Result<()> {
    let silent = args.silent;
    let result = call(args).await;
    match result {
        Err(e) if silent && e.downcast_ref::<UsageError>().is_none() => {
            Err(anyhow::Error::new(Quiet))
        }
        other => other,
    }
}

async fn call(args: CallArgs) -> anyhow::Result<()> {
    let body = body(&args.data, &args.data_binary)?;
    let method = match &args.method {
        Some(m) => http::Method::from_bytes(m.to_ascii_uppercase().as_bytes())
            .map_err(|_| usage(format!("'{m}' is not an HTTP method")))?,
        None if body.is_some() => http::Method::POST,
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
    if body.is_some() && !headers.contains_key(http::header::CONTENT_TYPE) {
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
    }
    let mut out: Box<dyn Write + Send> = match &args.output {
        Some(path) => Box::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot write {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout()),
    };
    let manager = args.client.manager(&args.request)?;
    let http = reqwest_middleware::ClientBuilder::new(args.client.http_client(
        reqwest::Client::builder(),
        manager.config().tls_identity.as_ref(),
    )?)
    .with(BearerMiddleware::new(manager))
    .build();
    let mut req = http.request(method, url).headers(headers);
    if let Some(b) = body {
        req = req.body(b);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| super::with_tls_hint_from(&e, anyhow::anyhow!("{}", cause_chain(&e))))?;
    let status = resp.status();
    let hint = resp.extensions().get::<Unauthorized>().copied();
    let write = |out: &mut Box<dyn Write + Send>, bytes: &[u8]| -> anyhow::Result<()> {
        match out.write_all(bytes).and_then(|()| out.flush()) {
            Ok(()) => Ok(()),
            // The reader went away (`call ... | head`): stop quietly, as curl does.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(anyhow::Error::new(Quiet)),
            Err(e) => Err(anyhow::Error::new(e).context("cannot write the response")),
        }
    };
    if args.include {
        let mut head = format!("{:?} {status}\r\n", resp.version());
        for (k, v) in resp.headers() {
            head.push_str(&format!(
                "{k}: {}\r\n",
                String::from_utf8_lossy(v.as_bytes())
            ));
        }
        head.push_str("\r\n");
        write(&mut out, head.as_bytes())?;
    }
    // Written as it arrives: server-sent events show up live, large downloads are not
    // held in memory.
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| anyhow::anyhow!("reading the response: {}", cause_chain(&e)))?;
        write(&mut out, &chunk)?;
    }
    if status.is_client_error() || status.is_server_error() {
        if let Some(h) = hint {
            eprintln!("hint: {}", h.hint);
        }
        anyhow::bail!("HTTP {status}");
    }
    Ok(())
}

/// The request body from `-d` and `--data-binary` values, as curl builds it: the parts
/// joined with `&`; `@FILE` and `@-` read a file and standard input, `-d` dropping
/// their carriage returns and newlines.
fn body(data: &[String], binary: &[String]) -> anyhow::Result<Option<Vec<u8>>> {
    if data.is_empty() && binary.is_empty() {
        return Ok(None);
    }
    let read = |v: &str| -> anyhow::Result<Vec<u8>> {
        match v.strip_prefix('@') {
            Some("-") => {
                let mut b = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut b)
                    .context("cannot read standard input")?;
                Ok(b)
            }
            Some(path) => std::fs::read(path).with_context(|| format!("cannot read {path}")),
            None => Ok(v.as_bytes().to_vec()),
        }
    };
    let mut parts = Vec::with_capacity(data.len() + binary.len());
    for d in data {
        let mut b = read(d)?;
        if d.starts_with('@') {
            b.retain(|c| *c != b'\r' && *c != b'\n');
        }
        parts.push(b);
    }
    for d in binary {
        parts.push(read(d)?);
    }
    Ok(Some(parts.join(&b'&')))
}

pub use auth_broker_client::error::causes as cause_chain;

/// The command failed and has said so already, or was asked to say nothing (`-s`):
/// exit 1 without a message.
#[derive(Debug)]
pub struct Quiet;

impl std::fmt::Display for Quiet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("failed")
    }
}

impl std::error::Error for Quiet {}

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
