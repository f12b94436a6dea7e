//! `auth-broker doctor`: walk the troubleshooting checklist against a real endpoint.

use super::ClientArgs;
use auth_broker_client::{ClientAuth, TokenConfig, fetch};
use auth_broker_proto::FORM_CONTENT_TYPE;
use clap::Args;
use std::time::Duration;

#[derive(Debug, Args)]
#[command(after_help = "\
Example:
  auth-broker doctor --token-url https://auth.example.com/auth-broker/request-token \\
      --client-id billing --api https://api.example.com/invoices

Steps: the URL; DNS; TCP; TLS; the endpoint answers; a token request with the exact
Basic header, content type and body (status and the server's error, and which cause
fits); the token decoded if it is a JWT (expiry, scopes); the broker's token-info; with
--api, a signed call and, on 401, whether the token or the header is at fault.
Each step prints ok, warn or FAIL and what to do. Exit 0 when no step failed.")]
pub struct DoctorArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// An API URL to call with the token (GET).
    #[arg(long, value_name = "URL")]
    pub api: Option<String>,
}

#[derive(Default)]
struct Report {
    failed: usize,
}

impl Report {
    fn ok(&mut self, step: &str, detail: impl AsRef<str>) {
        out!("ok    {step}: {}", detail.as_ref());
    }
    fn warn(&mut self, step: &str, detail: impl AsRef<str>, todo: impl AsRef<str>) {
        out!(
            "warn  {step}: {}\n      -> {}",
            detail.as_ref(),
            todo.as_ref()
        );
    }
    fn fail(&mut self, step: &str, detail: impl AsRef<str>, todo: impl AsRef<str>) {
        self.failed += 1;
        out!(
            "FAIL  {step}: {}\n      -> {}",
            detail.as_ref(),
            todo.as_ref()
        );
    }
}

pub async fn run(args: DoctorArgs) -> anyhow::Result<()> {
    let mut d = Doctor {
        r: Report::default(),
        client: &args.client,
        config: args.client.config(),
    };
    let _ = d.check(args.api.as_deref()).await;
    out!();
    if d.r.failed > 0 {
        anyhow::bail!("{} step(s) failed", d.r.failed);
    }
    out!("all checks passed");
    Ok(())
}

/// The checklist, one method per step. A step that fails says so in the report and
/// returns `None`, which ends the walk: the later steps cannot tell anything more.
struct Doctor<'a> {
    r: Report,
    client: &'a ClientArgs,
    config: TokenConfig,
}

/// What came back from the token request.
struct Answer {
    status: u16,
    content_type: String,
    retry_after: Option<String>,
    location: Option<String>,
    body: bytes::Bytes,
}

impl Answer {
    /// Status, content type and the first bytes: what a person needs to see when the
    /// answer fits no known cause.
    fn shown(&self) -> String {
        let text = String::from_utf8_lossy(&self.body[..self.body.len().min(200)]).into_owned();
        format!(
            "{} ({}): {}",
            self.status,
            if self.content_type.is_empty() {
                "no content type"
            } else {
                &self.content_type
            },
            if text.trim().is_empty() {
                "(empty body)".to_owned()
            } else {
                text
            }
        )
    }
}

impl Doctor<'_> {
    async fn check(&mut self, api: Option<&str>) -> Option<()> {
        let url = self.token_url()?;
        let addrs = self.dns(&url).await?;
        self.tcp(&addrs).await?;
        let http = self.http_client()?;
        self.endpoint(&http, &url).await?;
        let answer = self.token_request(&http, &url).await?;
        let access = self.token_response(&http, &answer).await?;
        let claims = self.token(&access);
        let accepted = self.token_info(&http, &access).await;
        if let Some(api) = api {
            self.api_call(&http, api, &access, claims.as_ref(), accepted)
                .await;
        }
        Some(())
    }

    /// The token request's timeout (`--token-timeout`), for every network step.
    fn timeout(&self) -> Duration {
        self.config.request_timeout
    }

    /// Step 1: the URL parses and is http(s).
    fn token_url(&mut self) -> Option<reqwest::Url> {
        let url = match reqwest::Url::parse(&self.config.token_url) {
            Ok(u) => u,
            Err(e) => {
                self.r.fail(
                    "token URL",
                    format!("'{}' does not parse: {e}", self.config.token_url),
                    "pass the full URL, e.g. https://auth.example.com/auth-broker/request-token",
                );
                return None;
            }
        };
        match url.scheme() {
            "https" => self.r.ok("token URL", format!("{url} (https)")),
            "http" => self.r.warn(
                "token URL",
                format!(
                    "{url} is plain http://: the client secret and tokens cross the network unencrypted"
                ),
                "use https:// outside local development",
            ),
            s => {
                self.r.fail(
                    "token URL",
                    format!("scheme '{s}' is not http or https"),
                    "use an https:// URL",
                );
                return None;
            }
        }
        Some(url)
    }

    /// Step 2: the host name resolves.
    async fn dns(&mut self, url: &reqwest::Url) -> Option<Vec<std::net::SocketAddr>> {
        let host = url.host_str().unwrap_or_default().to_owned();
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs: Vec<_> = match tokio::time::timeout(
            self.timeout(),
            tokio::net::lookup_host((host.as_str(), port)),
        )
        .await
        {
            Ok(Ok(a)) => a.collect(),
            Ok(Err(e)) => {
                self.r.fail(
                    "DNS",
                    format!("{host} does not resolve: {e}"),
                    "check the host name for typos and this machine's DNS settings",
                );
                return None;
            }
            Err(_) => {
                self.r.fail(
                    "DNS",
                    format!("resolving {host} took longer than {:?}", self.timeout()),
                    "check this machine's DNS settings",
                );
                return None;
            }
        };
        if addrs.is_empty() {
            self.r.fail(
                "DNS",
                format!("{host}: no addresses"),
                "check the host name",
            );
            return None;
        }
        let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        self.r.ok("DNS", format!("{host} -> {}", list.join(", ")));
        Some(addrs)
    }

    /// Step 3: a TCP connection to the first address.
    async fn tcp(&mut self, addrs: &[std::net::SocketAddr]) -> Option<()> {
        let first = addrs.first()?;
        match tokio::time::timeout(self.timeout(), tokio::net::TcpStream::connect(first)).await {
            Ok(Ok(_)) => {
                self.r.ok("TCP", format!("connected to {first}"));
                Some(())
            }
            Ok(Err(e)) => {
                self.r.fail(
                    "TCP",
                    format!("cannot connect to {first}: {e}"),
                    "is the server running and listening on that port? a firewall or proxy in the way?",
                );
                None
            }
            Err(_) => {
                self.r.fail(
                    "TCP",
                    format!(
                        "connecting to {first} took longer than {:?}",
                        self.timeout()
                    ),
                    "a firewall may be dropping packets; check the port",
                );
                None
            }
        }
    }

    /// The HTTP client of the later steps: the `--ca-file` CAs, no redirects followed
    /// (a redirect is reported, never followed with the credentials), the token timeout.
    fn http_client(&mut self) -> Option<reqwest::Client> {
        let builder = reqwest::Client::builder()
            .timeout(self.timeout())
            .redirect(reqwest::redirect::Policy::none());
        match self.client.http_client(builder) {
            Ok(h) => Some(h),
            Err(e) if self.client.ca_file.is_some() => {
                self.r.fail(
                    "CA file",
                    format!("{e:#}"),
                    "pass a PEM file of CA certificates",
                );
                None
            }
            Err(e) => {
                self.r
                    .fail("HTTP client", format!("{e:#}"), "report this as a bug");
                None
            }
        }
    }

    /// Steps 4 and 5: TLS, and an HTTP answer to a plain GET.
    async fn endpoint(&mut self, http: &reqwest::Client, url: &reqwest::Url) -> Option<()> {
        let resp = match http.get(url.clone()).send().await {
            Ok(resp) => resp,
            Err(e) => {
                self.transport_failure("endpoint", url, &e);
                return None;
            }
        };
        if url.scheme() == "https" {
            let roots = match &self.client.ca_file {
                Some(f) => format!("the system roots and --ca-file {}", f.display()),
                None => "the system roots".to_owned(),
            };
            self.r.ok(
                "TLS",
                format!("handshake and certificate verification succeeded (trusting {roots})"),
            );
        }
        let s = resp.status();
        if s == reqwest::StatusCode::NOT_FOUND {
            self.r.warn(
                "endpoint",
                format!("GET answers {s}"),
                "check the path; an auth-broker's token endpoint is /auth-broker/request-token",
            );
        } else {
            self.r.ok(
                "endpoint",
                format!("answers (GET -> {s}; the token request is a POST)"),
            );
        }
        Some(())
    }

    /// A request that got no answer: a refused certificate, a timeout, or a server that
    /// does not speak HTTP (or TLS) on this port, each said as what it is.
    fn transport_failure(&mut self, step: &str, url: &reqwest::Url, e: &reqwest::Error) {
        if let Some(p) = auth_broker_client::certificate_problem(e) {
            self.r.fail(
                "TLS",
                format!("{p} ({})", super::call::cause_chain(e)),
                super::tls_todo(&p),
            );
        } else if e.is_timeout() {
            self.r.fail(
                step,
                format!(
                    "the server accepted the connection but did not answer within {:?} (--token-timeout)",
                    self.timeout()
                ),
                "it is hung or overloaded, or something on this port never answers HTTP; check the server, or allow more time with --token-timeout",
            );
        } else if url.scheme() == "https" {
            self.r.fail(
                step,
                super::call::cause_chain(e),
                "the TLS handshake or the HTTP exchange failed: is this port serving https (not plain http)?",
            );
        } else {
            self.r.fail(
                step,
                super::call::cause_chain(e),
                "the server closed the connection or does not speak HTTP on this port (is it https?)",
            );
        }
    }

    /// Step 6: the token request, exactly as the client sends it.
    async fn token_request(
        &mut self,
        http: &reqwest::Client,
        url: &reqwest::Url,
    ) -> Option<Answer> {
        let config = &self.config;
        let parts = match fetch::request_parts(config, std::time::SystemTime::now()) {
            Ok(p) => p,
            Err(e) => {
                self.r.fail(
                    "token request",
                    e.to_string(),
                    "check the client id and secret for characters that cannot go in a header",
                );
                return None;
            }
        };
        let shown_body = match &config.credential {
            auth_broker_client::Credential::Secret(secret) if config.auth == ClientAuth::Post => {
                parts.body.replace(
                    &auth_broker_proto::form::encode(secret.expose_secret()),
                    "[redacted]",
                )
            }
            _ => parts.body.clone(),
        };
        out!(
            "      request: POST {url}\n        Content-Type: {FORM_CONTENT_TYPE}\n        Authorization: {}\n        body: {shown_body}",
            match &parts.authorization {
                Some(_) => format!(
                    "Basic base64(client_id:client_secret) [{}]",
                    config.auth.as_str()
                ),
                None => "(none: client_secret_post)".into(),
            }
        );
        let mut req = http
            .post(url.clone())
            .header("content-type", FORM_CONTENT_TYPE)
            .header("accept", "application/json")
            .body(parts.body);
        if let Some(a) = parts.authorization {
            req = req.header("authorization", a);
        }
        let resp = match req.send().await {
            Ok(x) => x,
            Err(e) => {
                self.transport_failure("token request", url, &e);
                return None;
            }
        };
        let header = |name| fetch::header_text(resp.headers(), name);
        let mut answer = Answer {
            status: resp.status().as_u16(),
            content_type: header(http::header::CONTENT_TYPE).unwrap_or_default(),
            retry_after: header(http::header::RETRY_AFTER),
            location: header(http::header::LOCATION),
            body: bytes::Bytes::new(),
        };
        match resp.bytes().await {
            Ok(b) => answer.body = b,
            Err(e) => {
                self.transport_failure("token request", url, &e);
                return None;
            }
        }
        Some(answer)
    }

    /// Step 6, read: the token, or the cause of the refusal.
    async fn token_response(&mut self, http: &reqwest::Client, a: &Answer) -> Option<String> {
        if (300..400).contains(&a.status) {
            let to = a.location.as_deref().unwrap_or("(no Location header)");
            self.r.fail(
                "token request",
                format!("the token endpoint answered {} redirecting to {to}", a.status),
                format!(
                    "a token request does not follow redirects (the credentials would go to another address): use the final URL as the token URL (--token-url {to})"
                ),
            );
            return None;
        }
        let retry_after = a
            .retry_after
            .as_deref()
            .and_then(|v| fetch::parse_retry_after(v, std::time::SystemTime::now()));
        let parsed = match fetch::parse_token_answer(a.status, &a.body, retry_after) {
            Ok(t) => t,
            Err(e) => {
                let (detail, cause) = self.refusal(http, a, &e).await;
                self.r.fail("token request", detail, cause);
                return None;
            }
        };
        let t = &parsed.response;
        self.r.ok(
            "token request",
            format!(
                "200, token_type {}, expires_in {}, scope '{}'",
                t.token_type,
                t.expires_in.map_or("(absent)".into(), |e| e.to_string()),
                t.scope.as_deref().unwrap_or("(absent)")
            ),
        );
        for l in &parsed.leniencies {
            self.r.warn(
                "token response",
                l.to_string(),
                "read all the same, as common libraries do; strict clients may refuse it, so ask the server to follow RFC 6749 §5.1",
            );
        }
        let policy = self.config.refresh;
        match t.expires_in {
            None => self.r.warn(
                "expires_in",
                "the response has no expires_in",
                format!(
                    "the client assumes {} s; ask the server to send expires_in",
                    policy.default_lifetime.as_secs()
                ),
            ),
            Some(n) if n < SHORTEST_CACHEABLE.as_secs() => self.r.warn(
                "expires_in",
                format!("{n} s: too short to cache"),
                "callers need a token request every few seconds (at 0, one per call): ask for a longer token lifetime",
            ),
            Some(n) if Duration::from_secs(n) > policy.max_lifetime => self.r.warn(
                "expires_in",
                format!(
                    "{n} s is longer than the longest lifetime believed ({} s)",
                    policy.max_lifetime.as_secs()
                ),
                "the client caches the token for that long at most; check what the server means",
            ),
            Some(_) => {}
        }
        Some(t.access_token.expose_secret().to_owned())
    }

    /// Why the token request was refused, as (what came back, the cause and what to do).
    /// The server's own description appears once, in the first.
    async fn refusal(
        &self,
        http: &reqwest::Client,
        a: &Answer,
        e: &auth_broker_client::TokenError,
    ) -> (String, String) {
        let config = &self.config;
        let Some(server) = e.server_error() else {
            let cause = match (a.status, e) {
                (
                    200,
                    auth_broker_client::TokenError::UnexpectedResponse {
                        reason: Some(r), ..
                    },
                ) if r.starts_with("token_type") => {
                    format!(
                        "{r}: the server issues another kind of token (DPoP, MAC); this client sends bearer tokens"
                    )
                }
                (200, _) => format!(
                    "the answer is not a token response: is the URL the token endpoint (not a login page)? It answered {}",
                    a.shown()
                ),
                (404, _) => format!(
                    "wrong path; an auth-broker's token endpoint is /auth-broker/request-token. It answered {}",
                    a.shown()
                ),
                (405, _) => "the endpoint refuses POST: is this the token endpoint?".into(),
                (s, _) if s >= 500 => {
                    "the server failed; try again later and check the server's logs".into()
                }
                _ => format!("the server answered {}", a.shown()),
            };
            return (e.to_string(), cause);
        };
        let detail = format!("the token endpoint answered {}: {server}", a.status);
        let desc = server.error_description.as_deref().unwrap_or_default();
        let lower = desc.to_ascii_lowercase();
        let cause = match (a.status, server.error.as_str()) {
            (401 | 400, "invalid_client") | (401, _) => {
                if let Some(alt) = other_encoding_that_works(http, config).await {
                    let flag = match alt {
                        ClientAuth::Basic => "basic",
                        ClientAuth::BasicRaw => "basic-raw",
                        ClientAuth::Post => "post",
                    };
                    format!(
                        "cause: client authentication encoding. The same credentials work with {}: use --auth {flag}",
                        alt.as_str()
                    )
                } else {
                    "cause: wrong credentials (client id or secret wrong, secret rotated, client disabled or deleted). Check AUTH_BROKER_CLIENT_ID/AUTH_BROKER_CLIENT_SECRET for stray whitespace or quotes, and `auth-broker client show ID` on the broker".into()
                }
            }
            (400, "invalid_request") if lower.contains("json") => format!(
                "cause: the server wants a JSON body, and RFC 6749 §4.4.2 token requests are form-encoded ({FORM_CONTENT_TYPE}, as sent): this URL is not an OAuth 2.0 token endpoint, or one set up for another kind of client; check the token URL"
            ),
            (400, "invalid_request") if lower.contains("content-type") || lower.contains("content type") => format!(
                "cause: the server refuses the content type that was sent ({FORM_CONTENT_TYPE}, as RFC 6749 §4.4.2 requires): check that the URL is the token endpoint and that no proxy rewrites the request"
            ),
            (400, "invalid_request")
                if desc.contains("Authorization") || desc.contains("base64") || desc.contains("Basic") =>
            {
                "cause: the Basic header: try --auth basic-raw (no form-encoding) or --auth post".into()
            }
            (400, "invalid_scope") => {
                "cause: scope. Request only scopes the client has (--scope), or none".into()
            }
            (400, "unsupported_grant_type") => {
                "cause: grant type: the server does not offer client_credentials to this client".into()
            }
            (400, "unauthorized_client") => {
                "cause: the client may not use the client credentials grant; ask the server's operators".into()
            }
            (429, _) => format!(
                "cause: rate limited{}; wait, and if the credentials are wrong fix them first (failures are what is limited)",
                a.retry_after
                    .as_deref()
                    .map(|v| format!(
                        " (Retry-After: {v}{})",
                        e.retry_after().map(|d| format!(", in {} s", d.as_secs())).unwrap_or_default()
                    ))
                    .unwrap_or_default()
            ),
            (s, _) if s >= 500 => {
                "cause: the server failed; try again later and check the server's logs".into()
            }
            _ => format!("the server answered {}", a.shown()),
        };
        (detail, cause)
    }

    /// Step 7: the token itself, decoded when it is a JWT (`auth_broker_jwt::parse`:
    /// no signature check here, only what it says).
    fn token(&mut self, access: &str) -> Option<serde_json::Value> {
        let Ok(jwt) = auth_broker_jwt::parse(access) else {
            self.r
                .ok("token", "opaque (not a JWT): only the issuer can read it");
            return None;
        };
        let c = jwt.claims;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let scope = c.get("scope").and_then(|v| v.as_str()).unwrap_or("(none)");
        let aud = c
            .get("aud")
            .map_or_else(|| "(none)".into(), ToString::to_string);
        let iss = c.get("iss").and_then(|v| v.as_str()).unwrap_or("(none)");
        match c.get("exp").and_then(serde_json::Value::as_i64) {
            Some(exp) if exp > now => self.r.ok(
                "token",
                format!(
                    "JWT: iss {iss}, aud {aud}, scope '{scope}', expires in {} s (exp {exp})",
                    exp.saturating_sub(now)
                ),
            ),
            Some(exp) => self.r.fail(
                "token",
                format!(
                    "JWT expired {} s ago by this machine's clock (exp {exp})",
                    now.saturating_sub(exp)
                ),
                "check the clocks of this machine and the server (NTP); a fresh token should not be expired",
            ),
            None => self.r.warn(
                "token",
                format!("JWT without exp: iss {iss}, aud {aud}, scope '{scope}'"),
                "resource servers may reject a token without exp",
            ),
        }
        Some(c)
    }

    /// Step 8: the broker's token-info, when the token URL is an auth-broker's.
    /// `Some(true)` when the broker accepts its token.
    async fn token_info(&mut self, http: &reqwest::Client, access: &str) -> Option<bool> {
        let info = self
            .config
            .token_url
            .strip_suffix("/auth-broker/request-token")
            .map(|b| format!("{b}/auth-broker/token-info"))?;
        match http.get(&info).bearer_auth(access).send().await {
            Ok(resp) if resp.status().is_success() => {
                self.r.ok("token-info", "the broker accepts the token");
                Some(true)
            }
            Ok(resp) => {
                let s = resp.status();
                let t = resp.text().await.unwrap_or_default();
                self.r.fail(
                    "token-info",
                    format!("the broker refuses its own token: {s} {t}"),
                    "check the broker's clock and key rotation",
                );
                Some(false)
            }
            Err(e) => {
                self.r.warn(
                    "token-info",
                    super::call::cause_chain(&e),
                    "the token URL looks like an auth-broker's but token-info did not answer",
                );
                None
            }
        }
    }

    /// Step 9: a signed call to the API and, on `401`, whether the token or the header
    /// is at fault.
    async fn api_call(
        &mut self,
        http: &reqwest::Client,
        api: &str,
        access: &str,
        claims: Option<&serde_json::Value>,
        accepted: Option<bool>,
    ) {
        let resp = match http.get(api).bearer_auth(access).send().await {
            Ok(r) => r,
            Err(e) => {
                self.r.fail(
                    "API call",
                    super::call::cause_chain(&e),
                    "the API is not reachable",
                );
                return;
            }
        };
        let status = resp.status();
        if status.is_success() || status.is_redirection() {
            self.r
                .ok("API call", format!("GET {api} with the token -> {status}"));
        } else if status == reqwest::StatusCode::UNAUTHORIZED {
            let www = resp
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let body = resp.text().await.unwrap_or_default();
            let fault = if www.contains("invalid_token") || body.contains("invalid_token") {
                "the API says the token is invalid (its error above says why); check that the API trusts this issuer and its JWKS, and expects this audience"
            } else if accepted == Some(true) {
                "the header is right (Authorization: Bearer <token>, exactly as sent here) and the broker accepts the token, so the API refuses this token: check the audience, scopes and issuer the API expects"
            } else {
                "the API refused 'Authorization: Bearer <token>'; if it expects another scheme or header (e.g. X-Api-Key) that is the fault, otherwise the token's audience or scopes"
            };
            let aud = claims
                .and_then(|c| c.get("aud"))
                .map(|a| format!(" (token aud {a})"))
                .unwrap_or_default();
            self.r.fail(
                "API call",
                format!(
                    "GET {api} -> 401 {www} {}{aud}",
                    body.chars().take(300).collect::<String>()
                ),
                fault,
            );
        } else if status == reqwest::StatusCode::FORBIDDEN {
            self.r.fail(
                "API call",
                format!("GET {api} -> 403"),
                "the token is accepted but lacks a scope or permission; request the scope the API needs (--scope)",
            );
        } else {
            self.r.warn(
                "API call",
                format!("GET {api} -> {status}"),
                "not an authentication problem",
            );
        }
    }
}

/// Lifetimes below this are warned about: the client cannot keep such a token long
/// enough to spare the token endpoint (a token is not handed out in its last 10 %).
const SHORTEST_CACHEABLE: Duration = Duration::from_secs(60);

/// The client authentication method other than the configured one that the server
/// accepts with the same credentials, if any: a success pins a `401` on the encoding
/// (RFC 6749 §2.3.1 form-encoding inside Basic, or Basic against `client_secret_post`).
async fn other_encoding_that_works(
    http: &reqwest::Client,
    config: &TokenConfig,
) -> Option<ClientAuth> {
    for alt in [ClientAuth::Basic, ClientAuth::BasicRaw, ClientAuth::Post] {
        if alt == config.auth {
            continue;
        }
        let c = config.clone().auth(alt);
        let Ok(p) = fetch::request_parts(&c, std::time::SystemTime::now()) else {
            continue;
        };
        let mut req = http
            .post(&c.token_url)
            .header("content-type", FORM_CONTENT_TYPE)
            .body(p.body);
        if let Some(a) = p.authorization {
            req = req.header("authorization", a);
        }
        if req.send().await.is_ok_and(|r| r.status().is_success()) {
            return Some(alt);
        }
    }
    None
}
