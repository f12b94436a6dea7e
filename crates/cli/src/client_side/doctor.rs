//! `auth-broker doctor`: walk the troubleshooting checklist against a real endpoint.

use super::diagnosis::{self, AssertionSent, ProofSent};
use super::{ClientArgs, TokenRequestArgs};
use auth_broker_client::dpop::{self, DPOP, DPOP_NONCE, USE_DPOP_NONCE};
use auth_broker_client::{ClientAuth, Credential, TokenConfig, TokenScheme, fetch};
use auth_broker_proto::FORM_CONTENT_TYPE;
use clap::Args;
use std::time::{Duration, SystemTime};

#[derive(Debug, Args)]
#[command(after_help = "\
Example:
  auth-broker doctor --token-url https://auth.example.com/auth-broker/request-token \\
      --client-id billing --api https://api.example.com/invoices

Steps: the URL; the credential (secret, private key, client certificate, DPoP key);
DNS; TCP; TLS (and whether the server wants a client certificate); the endpoint
answers; a token request with the exact headers and body (the client assertion and the
DPoP proof decoded; one retry when the server wants a DPoP nonce), the status and the
server's error, and which cause fits (expired assertion, clock skew, aud, signature or
unknown key, jti reused, proof htu/htm, nonce); the clocks compared; the token decoded
if it is a JWT (expiry, scopes, its binding to the DPoP key); the broker's token-info;
with --api, a signed call and, on 401, whether the token, the proof or the header is at
fault. Each step prints ok, warn or FAIL and what to do. Exit 0 when no step failed.")]
pub struct DoctorArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub request: TokenRequestArgs,
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
    let failed = match args.client.config(&args.request) {
        Ok(config) => {
            let mut d = Doctor {
                r: Report::default(),
                client: &args.client,
                config,
                skew: None,
            };
            let _ = d.check(args.api.as_deref()).await;
            d.r.failed
        }
        Err(e) => {
            Report::default().fail(
                "credential",
                format!("{e:#}"),
                "pass a readable key file: PEM (PKCS#8, EC or RSA) or a private JWK; and a client certificate with its own key",
            );
            1
        }
    };
    out!();
    if failed > 0 {
        anyhow::bail!("{failed} step(s) failed");
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
    /// How far the token endpoint's clock is ahead of this machine's (its `Date`).
    skew: Option<i64>,
}

/// What came back from the token request.
struct Answer {
    status: u16,
    content_type: String,
    retry_after: Option<String>,
    location: Option<String>,
    /// `Date`, and the local time the answer came: the clocks compared.
    date: Option<String>,
    received: SystemTime,
    /// A `DPoP-Nonce` other than the one the proof carried.
    new_nonce: bool,
    /// A DPoP proof went with the request.
    proof_sent: bool,
    body: bytes::Bytes,
}

/// The token and how it is presented.
struct Access {
    token: String,
    scheme: TokenScheme,
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
        self.credential();
        let addrs = self.dns(&url).await?;
        self.tcp(&addrs).await?;
        let http = self.http_client()?;
        self.endpoint(&http, &url).await?;
        let answer = self.token_request_with_nonce(&http, &url).await?;
        self.clock(&answer);
        let access = self.token_response(&http, &url, &answer).await?;
        let claims = self.token(&access);
        let accepted = self.token_info(&http, &access).await;
        if let Some(api) = api {
            self.api_call(&http, api, &access, claims.as_ref(), accepted)
                .await;
        }
        Some(())
    }

    /// Whether assertions or proofs go out: their times are judged by the server's
    /// clock.
    fn key_bound(&self) -> bool {
        matches!(self.config.credential, Credential::PrivateKey(_)) || self.config.dpop.is_some()
    }

    /// Step 2: what the client authenticates with, and the keys it signs with (public
    /// parts only).
    fn credential(&mut self) {
        match &self.config.credential {
            Credential::PrivateKey(p) => {
                let key = p.key();
                self.r.ok(
                    "credential",
                    format!(
                        "private_key_jwt: {} key, {}, thumbprint {}; assertions: iss = sub = {}, aud {}, valid {} s",
                        key.alg(),
                        key.kid()
                            .map_or("no kid".to_owned(), |k| format!("kid '{k}'")),
                        key.thumbprint(),
                        self.config.client_id,
                        p.audience.as_deref().unwrap_or(&self.config.token_url),
                        p.assertion_lifetime().as_secs()
                    ),
                );
            }
            Credential::TlsClientCertificate => self.r.ok(
                "credential",
                "tls_client_auth: the client certificate is the credential (client_id in the body)",
            ),
            _ => {}
        }
        if let Some(id) = &self.config.tls_identity {
            self.r.ok(
                "client certificate",
                format!("presented at the TLS layer (x5t#S256 {})", id.x5t_s256()),
            );
        }
        if let Some(k) = &self.config.dpop {
            let whose = if self.client.dpop_key.is_some() {
                "from --dpop-key"
            } else {
                "made for this run"
            };
            self.r.ok(
                "DPoP",
                format!("{} key {whose}, jkt {}", k.alg(), k.thumbprint()),
            );
        }
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
        match self
            .client
            .http_client(builder, self.config.tls_identity.as_ref())
        {
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
        let mut attempt = 1;
        let resp = loop {
            match http.get(url.clone()).send().await {
                Ok(resp) => break resp,
                // TLS 1.3 (RFC 8446 §4.4.2.4): a server that wants a client
                // certificate says so with an alert *after* the client has finished
                // the handshake. When the alert wins the race against the request,
                // hyper only reports a connection that closed before the request went
                // out, and the alert, the actual reason, is lost. Asking again on a
                // new connection lets the request go first (nothing was sent, so
                // nothing is repeated), and the alert comes back as the answer.
                Err(e) if attempt < 5 && closed_before_sending(&e) => attempt += 1,
                Err(e) => {
                    self.transport_failure("endpoint", url, &e);
                    return None;
                }
            }
        };
        if url.scheme() == "https" {
            let roots = match &self.client.ca_file {
                Some(f) => format!("the system roots and --ca-file {}", f.display()),
                None => "the system roots".to_owned(),
            };
            let mutual = match &self.config.tls_identity {
                Some(_) => "; client certificate presented",
                None => "",
            };
            self.r.ok(
                "TLS",
                format!(
                    "handshake and certificate verification succeeded (trusting {roots}){mutual}"
                ),
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
}

/// Whether `e` is a connection that closed before the request was written (hyper's
/// "canceled"): nothing reached the server, so asking again is safe.
fn closed_before_sending(e: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(h) = err.downcast_ref::<hyper::Error>() {
            return h.is_canceled();
        }
        source = err.source();
    }
    false
}

impl Doctor<'_> {
    /// A request that got no answer: a refused certificate, a timeout, or a server that
    /// does not speak HTTP (or TLS) on this port, each said as what it is.
    fn transport_failure(&mut self, step: &str, url: &reqwest::Url, e: &reqwest::Error) {
        use auth_broker_client::ClientCertificateProblem as C;
        if let Some(p) = auth_broker_client::certificate_problem(e) {
            self.r.fail(
                "TLS",
                format!("{p} ({})", super::call::cause_chain(e)),
                super::tls_todo(&p),
            );
        } else if let Some(p) = auth_broker_client::client_certificate_problem(e) {
            let presented = self.config.tls_identity.is_some();
            let todo = match (&p, presented) {
                (C::Required, _) | (C::HandshakeFailure, false) => {
                    "the server wants mutual TLS: pass --tls-client-cert FILE --tls-client-key FILE with the certificate registered for this client"
                }
                _ => {
                    "the server refused the certificate of --tls-client-cert: it must be issued by a CA the server trusts for clients (broker: serve --tls-client-ca), be valid now, and be registered for this client"
                }
            };
            self.r.fail(
                "TLS",
                format!("{p} ({})", super::call::cause_chain(e)),
                todo,
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

    /// Step 6: the token request; once more, with a fresh proof, when the server wants
    /// the DPoP nonce it has just sent (RFC 9449 §8).
    async fn token_request_with_nonce(
        &mut self,
        http: &reqwest::Client,
        url: &reqwest::Url,
    ) -> Option<Answer> {
        let first = self.token_request(http, url).await?;
        if !(first.proof_sent && first.new_nonce && wants_nonce(&first)) {
            return Some(first);
        }
        self.r.ok(
            "DPoP nonce",
            "the token endpoint requires a nonce in DPoP proofs (400 use_dpop_nonce with a DPoP-Nonce header, RFC 9449 §8): asking again with it, as the client does",
        );
        self.token_request(http, url).await
    }

    /// The token request, exactly as the client sends it.
    async fn token_request(
        &mut self,
        http: &reqwest::Client,
        url: &reqwest::Url,
    ) -> Option<Answer> {
        let config = &self.config;
        let parts = match fetch::request_parts(config, SystemTime::now()) {
            Ok(p) => p,
            Err(e) => {
                self.r.fail(
                    "token request",
                    super::call::cause_chain(&e),
                    "check the client id and secret for characters that cannot go in a header, and the key files",
                );
                return None;
            }
        };
        out!("{}", shown_request(config, url, &parts));
        let mut req = http
            .post(url.clone())
            .header("content-type", FORM_CONTENT_TYPE)
            .header("accept", "application/json")
            .body(parts.body);
        if let Some(a) = parts.authorization {
            req = req.header("authorization", a);
        }
        let proof_sent = parts.dpop.is_some();
        if let Some(p) = parts.dpop {
            req = req.header(DPOP, p);
        }
        let resp = match req.send().await {
            Ok(x) => x,
            Err(e) => {
                self.transport_failure("token request", url, &e);
                return None;
            }
        };
        let header = |name| fetch::header_text(resp.headers(), name);
        let new_nonce = config
            .dpop
            .as_ref()
            .is_some_and(|k| k.remember_nonce(url, resp.headers()));
        let mut answer = Answer {
            status: resp.status().as_u16(),
            content_type: header(http::header::CONTENT_TYPE).unwrap_or_default(),
            retry_after: header(http::header::RETRY_AFTER),
            location: header(http::header::LOCATION),
            date: header(http::header::DATE),
            received: SystemTime::now(),
            new_nonce,
            proof_sent,
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

    /// Step 7: the server's clock against this machine's, by its `Date` header: said
    /// when assertions or proofs go out (their times are judged by the server's clock),
    /// and whenever the clocks are far apart.
    fn clock(&mut self, a: &Answer) {
        self.skew = diagnosis::skew(a.date.as_deref(), a.received);
        match self.skew {
            Some(s) if s.abs() >= diagnosis::NOTICEABLE_SKEW => self.r.warn(
                "clock",
                format!("{} (by its Date header)", diagnosis::skew_words(s)),
                "assertions (valid 60 s) and DPoP proofs (iat) are judged by the server's clock, and token expiry by both: fix the clock that is wrong (NTP)",
            ),
            Some(s) if self.key_bound() => self.r.ok(
                "clock",
                format!("{} (by its Date header)", diagnosis::skew_words(s)),
            ),
            _ => {}
        }
    }

    /// Step 6, read: the token, or the cause of the refusal.
    async fn token_response(
        &mut self,
        http: &reqwest::Client,
        url: &reqwest::Url,
        a: &Answer,
    ) -> Option<Access> {
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
        let parsed = match fetch::read_token_answer(a.status, &a.body, retry_after, a.proof_sent) {
            Ok(t) => t,
            Err(e) => {
                let (detail, cause) = self.refusal(http, url, a, &e).await;
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
        match (a.proof_sent, parsed.scheme) {
            (true, TokenScheme::Dpop) => self.r.ok(
                "DPoP",
                "token_type DPoP: the token is bound to the DPoP key; API requests carry Authorization: DPoP and a proof",
            ),
            (true, TokenScheme::Bearer) => self.r.warn(
                "DPoP",
                format!(
                    "a DPoP proof was sent but the token endpoint answered token_type '{}': it does not bind tokens to the key (no DPoP support, or not for this client); the client uses the token as a Bearer token",
                    t.token_type
                ),
                "if tokens must be DPoP-bound, turn DPoP on for this client on the server (RFC 9449 §5; broker: dpop_bound_access_tokens); otherwise drop --dpop",
            ),
            _ => {}
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
        Some(Access {
            token: t.access_token.expose_secret().to_owned(),
            scheme: parsed.scheme,
        })
    }

    /// Why the token request was refused, as (what came back, the cause and what to do).
    /// The server's own description appears once, in the first.
    async fn refusal(
        &self,
        http: &reqwest::Client,
        url: &reqwest::Url,
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
        if let Some(cause) = self.key_bound_refusal(http, url, a, server).await {
            return (detail, cause);
        }
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

    /// The cause of a refusal that concerns what key-bound clients send: the nonce, the
    /// proof, the assertion, the client certificate, or DPoP the client does not use.
    async fn key_bound_refusal(
        &self,
        http: &reqwest::Client,
        url: &reqwest::Url,
        a: &Answer,
        server: &auth_broker_proto::ErrorResponse,
    ) -> Option<String> {
        let desc = server.error_description.as_deref().unwrap_or_default();
        let code = server.error.as_str();
        if code == USE_DPOP_NONCE {
            if !a.proof_sent {
                return Some("cause: the server wants DPoP proofs with a nonce, and none was sent: pass --dpop".into());
            }
            return Some(diagnosis::nonce_cause(a.new_nonce || self.nonce_known(url)));
        }
        if code == "invalid_dpop_proof" {
            return Some(diagnosis::proof_cause(desc, &self.proof_sent("POST", url)));
        }
        if self.config.dpop.is_none()
            && matches!(
                code,
                "invalid_client" | "invalid_request" | "unauthorized_client"
            )
            && diagnosis::mentions(desc, &["dpop", "proof"])
        {
            return Some("cause: the server wants DPoP for this client (RFC 9449 §5, dpop_bound_access_tokens) and no proof was sent: pass --dpop".into());
        }
        if code != "invalid_client" {
            return None;
        }
        match &self.config.credential {
            Credential::PrivateKey(p) => {
                let key = p.key();
                let needs_metadata = diagnosis::mentions(desc, &["aud", "audience"]);
                let (issuer, token_endpoint) = if needs_metadata {
                    metadata(http, url).await
                } else {
                    (None, None)
                };
                let sent = AssertionSent {
                    client_id: self.config.client_id.clone(),
                    aud: p
                        .audience
                        .clone()
                        .unwrap_or_else(|| self.config.token_url.clone()),
                    alg: key.alg().to_string(),
                    kid: key.kid().map(str::to_owned),
                    thumbprint: key.thumbprint().to_owned(),
                    public_jwk: set_members(&key.public_jwk()),
                    lifetime_s: p.assertion_lifetime().as_secs(),
                    issuer,
                    token_endpoint,
                    skew: self.skew,
                };
                Some(diagnosis::assertion_cause(desc, &sent))
            }
            Credential::TlsClientCertificate => Some(format!(
                "cause: the server did not take the client certificate (x5t#S256 {}) as client '{}''s: for tls_client_auth its subject must be the one registered (tls_client_auth_subject_dn), for self_signed_tls_client_auth the certificate must be in the client's jwks",
                self.config
                    .tls_identity
                    .as_ref()
                    .map_or("(none)", |i| i.x5t_s256()),
                self.config.client_id
            )),
            _ => None,
        }
    }

    /// Whether the DPoP key holds a nonce for `url`'s origin.
    fn nonce_known(&self, url: &reqwest::Url) -> bool {
        self.config
            .dpop
            .as_ref()
            .is_some_and(|k| k.nonce(url).is_some())
    }

    /// What a proof for `method` on `url` named.
    fn proof_sent(&self, method: &str, url: &reqwest::Url) -> ProofSent {
        ProofSent {
            htm: method.to_owned(),
            htu: dpop::htu(url),
            alg: self
                .config
                .dpop
                .as_ref()
                .map(|k| k.alg().to_string())
                .unwrap_or_default(),
            jkt: self
                .config
                .dpop
                .as_ref()
                .map(|k| k.thumbprint().to_owned())
                .unwrap_or_default(),
            skew: self.skew,
        }
    }

    /// `req` with `Authorization` for `access` and, for a DPoP-bound token, a proof for
    /// `method` on `url`.
    fn authorize(
        &self,
        req: reqwest::RequestBuilder,
        method: &http::Method,
        url: &reqwest::Url,
        access: &Access,
    ) -> reqwest::RequestBuilder {
        let req = req.header(
            http::header::AUTHORIZATION,
            format!("{} {}", access.scheme.as_str(), access.token),
        );
        match (&self.config.dpop, access.scheme) {
            (Some(k), TokenScheme::Dpop) => {
                match k.proof(method, url, SystemTime::now(), Some(&access.token)) {
                    Ok(p) => req.header(DPOP, p),
                    Err(_) => req,
                }
            }
            _ => req,
        }
    }

    /// A `GET` of `url` with the token; once more with a fresh proof when a resource
    /// server asks for the DPoP nonce it sent (RFC 9449 §9), said in the report.
    async fn signed_get(
        &mut self,
        http: &reqwest::Client,
        step: &str,
        url: &reqwest::Url,
        access: &Access,
    ) -> reqwest::Result<reqwest::Response> {
        let send = |d: &Self| {
            d.authorize(http.get(url.clone()), &http::Method::GET, url, access)
                .send()
        };
        let resp = send(self).await?;
        let key = self.config.dpop.as_ref();
        let new_nonce = key.is_some_and(|k| k.remember_nonce(url, resp.headers()));
        if resp.status() == reqwest::StatusCode::UNAUTHORIZED
            && access.scheme == TokenScheme::Dpop
            && dpop::asks_for_nonce(resp.headers())
            && new_nonce
        {
            self.r.ok(
                step,
                "the server requires a nonce in DPoP proofs (401 use_dpop_nonce with a DPoP-Nonce header, RFC 9449 §9): asking again with it, as the client does",
            );
            return send(self).await;
        }
        Ok(resp)
    }

    /// Step 8: the token itself, decoded when it is a JWT (`auth_broker_jwt::parse`:
    /// no signature check here, only what it says), and its binding (`cnf`).
    fn token(&mut self, access: &Access) -> Option<serde_json::Value> {
        let claims = self.token_claims(&access.token)?;
        self.binding(access, &claims);
        Some(claims)
    }

    /// The token's `cnf` (RFC 7800) against the DPoP key (`jkt`, RFC 9449 §6) and the
    /// client certificate (`x5t#S256`, RFC 8705 §3.1).
    fn binding(&mut self, access: &Access, claims: &serde_json::Value) {
        let cnf = &claims["cnf"];
        if let Some(jkt) = cnf["jkt"].as_str() {
            match (&self.config.dpop, access.scheme) {
                (Some(k), TokenScheme::Dpop) if k.thumbprint() == jkt => {
                    self.r.ok("binding", format!("cnf.jkt {jkt} is the DPoP key's"))
                }
                (Some(k), _) => self.r.fail(
                    "binding",
                    format!(
                        "the token is bound to the key {jkt} (cnf.jkt), the DPoP key is {}",
                        k.thumbprint()
                    ),
                    "the token endpoint bound the token to another key than the proof's: the server is at fault",
                ),
                (None, _) => self.r.warn(
                    "binding",
                    format!("the token is DPoP-bound (cnf.jkt {jkt}) though no proof was sent"),
                    "APIs will want a proof from a key this client does not have",
                ),
            }
            if access.scheme == TokenScheme::Bearer && self.config.dpop.is_some() {
                self.r.warn(
                    "binding",
                    "the token is DPoP-bound (cnf.jkt) but the token endpoint said token_type bearer, so the client sends it as a Bearer token, which an API checking the binding refuses",
                    "the token endpoint should answer token_type DPoP for a bound token (RFC 9449 §5)",
                );
            }
        }
        if let Some(x5t) = cnf["x5t#S256"].as_str() {
            match &self.config.tls_identity {
                Some(id) if id.x5t_s256() == x5t => self.r.ok(
                    "binding",
                    format!("cnf.x5t#S256 {x5t} is the client certificate's"),
                ),
                _ => self.r.warn(
                    "binding",
                    format!(
                        "the token is bound to a certificate (cnf.x5t#S256 {x5t}) that is not --tls-client-cert's"
                    ),
                    "APIs checking the binding refuse it unless the same certificate is presented: pass it with --tls-client-cert/--tls-client-key",
                ),
            }
        }
    }

    /// The claims of a JWT token, with its expiry judged; `None` for an opaque token.
    fn token_claims(&mut self, access: &str) -> Option<serde_json::Value> {
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

    /// Step 9: the broker's token-info, when the token URL is an auth-broker's.
    /// `Some(true)` when the broker accepts its token.
    async fn token_info(&mut self, http: &reqwest::Client, access: &Access) -> Option<bool> {
        let info = self
            .config
            .token_url
            .strip_suffix("/auth-broker/request-token")
            .and_then(|b| reqwest::Url::parse(&format!("{b}/auth-broker/token-info")).ok())?;
        match self.signed_get(http, "token-info", &info, access).await {
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

    /// Step 10: a signed call to the API and, on `401`, whether the token or the header
    /// is at fault.
    async fn api_call(
        &mut self,
        http: &reqwest::Client,
        api: &str,
        access: &Access,
        claims: Option<&serde_json::Value>,
        accepted: Option<bool>,
    ) {
        let url = match reqwest::Url::parse(api) {
            Ok(u) => u,
            Err(e) => {
                self.r.fail(
                    "API call",
                    format!("'{api}' is not a URL: {e}"),
                    "pass --api URL",
                );
                return;
            }
        };
        let resp = match self.signed_get(http, "API call", &url, access).await {
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
        let scheme = access.scheme.as_str();
        if status.is_success() || status.is_redirection() {
            self.r.ok(
                "API call",
                format!("GET {api} with the token ({scheme}) -> {status}"),
            );
        } else if status == reqwest::StatusCode::UNAUTHORIZED {
            let www = resp
                .headers()
                .get_all("www-authenticate")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect::<Vec<_>>()
                .join(", ");
            let nonce_header = resp.headers().contains_key(DPOP_NONCE);
            let body = resp.text().await.unwrap_or_default();
            let desc = diagnosis::challenge_description(&www).unwrap_or(&body);
            let bound = claims.is_some_and(|c| c["cnf"]["jkt"].is_string());
            let wants_dpop = www.trim_start().to_ascii_lowercase().starts_with("dpop")
                || diagnosis::mentions(desc, &["dpop", "bound"]);
            let fault = if www.contains(USE_DPOP_NONCE) {
                diagnosis::nonce_cause(nonce_header)
            } else if www.contains("invalid_dpop_proof") {
                diagnosis::proof_cause(desc, &self.proof_sent("GET", &url))
            } else if access.scheme == TokenScheme::Bearer && (bound || wants_dpop) {
                if bound || self.config.dpop.is_some() {
                    "cause: a DPoP-bound token refused as Bearer: a DPoP proof went with the token request but the token endpoint answered token_type bearer, so the token went out as 'Authorization: Bearer'; the API wants 'Authorization: DPoP' with a proof (RFC 9449 §7.1): the token endpoint must answer token_type DPoP for a bound token".into()
                } else {
                    "cause: the API wants DPoP-bound tokens (its challenge is DPoP) and this token is a Bearer token: pass --dpop".into()
                }
            } else if www.contains("invalid_token") || body.contains("invalid_token") {
                "the API says the token is invalid (its error above says why); check that the API trusts this issuer and its JWKS, and expects this audience".into()
            } else if accepted == Some(true) {
                format!(
                    "the header is right (Authorization: {scheme} <token>, exactly as sent here) and the broker accepts the token, so the API refuses this token: check the audience, scopes and issuer the API expects"
                )
            } else {
                format!(
                    "the API refused 'Authorization: {scheme} <token>'; if it expects another scheme or header (e.g. X-Api-Key) that is the fault, otherwise the token's audience or scopes"
                )
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

/// Whether the answer is `use_dpop_nonce`.
fn wants_nonce(a: &Answer) -> bool {
    (a.status == 400 || a.status == 401)
        && serde_json::from_slice::<auth_broker_proto::ErrorResponse>(&a.body)
            .is_ok_and(|e| e.error.as_str() == USE_DPOP_NONCE)
}

/// The token request as `doctor` shows it: the headers and body, the secret and the
/// assertion's signature left out, the assertion and the DPoP proof decoded.
fn shown_request(
    config: &TokenConfig,
    url: &reqwest::Url,
    parts: &fetch::TokenRequestParts,
) -> String {
    let mut body = parts.body.clone();
    let mut extra = String::new();
    let authorization = match &config.credential {
        Credential::Secret(secret) => {
            if config.auth == ClientAuth::Post {
                body = body.replace(
                    &auth_broker_proto::form::encode(secret.expose_secret()),
                    "[redacted]",
                );
            }
            match &parts.authorization {
                Some(_) => format!(
                    "Basic base64(client_id:client_secret) [{}]",
                    config.auth.as_str()
                ),
                None => "(none: client_secret_post)".into(),
            }
        }
        Credential::PrivateKey(_) => {
            if let Some(assertion) = body
                .split('&')
                .find_map(|p| p.strip_prefix("client_assertion="))
                .map(str::to_owned)
            {
                extra.push_str(&format!(
                    "\n        client_assertion: {}",
                    decoded(&assertion)
                ));
                body = body.replace(&assertion, "[below]");
            }
            "(none: private_key_jwt, the assertion is in the body)".into()
        }
        _ => "(none: tls_client_auth, the client certificate is the credential)".into(),
    };
    if let (Some(p), Some(key)) = (
        parts.dpop.as_ref().and_then(|p| p.to_str().ok()),
        &config.dpop,
    ) {
        extra.push_str(&format!(
            "\n        DPoP: {} (jwk: the public key, jkt {})",
            decoded(p),
            key.thumbprint()
        ));
    }
    format!(
        "      request: POST {url}\n        Content-Type: {FORM_CONTENT_TYPE}\n        Authorization: {authorization}\n        body: {body}{extra}"
    )
}

/// A JWS's header (the members the jwt crate reads, those set) and claims as JSON,
/// without its signature.
fn decoded(jws: &str) -> String {
    match auth_broker_jwt::parse(jws) {
        Ok(j) => format!("header {} claims {}", set_members(&j.header), j.claims),
        Err(e) => format!("(does not parse: {e})"),
    }
}

/// `value` as a JSON object without its null and empty-string members.
fn set_members(value: &impl serde::Serialize) -> String {
    let mut v = serde_json::to_value(value).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.retain(|_, m| !(m.is_null() || m.as_str() == Some("")));
    }
    v.to_string()
}

/// The `issuer` and `token_endpoint` of the server's RFC 8414 metadata, when it
/// publishes them at the token URL's origin.
async fn metadata(http: &reqwest::Client, url: &reqwest::Url) -> (Option<String>, Option<String>) {
    let Ok(at) = url.join("/.well-known/oauth-authorization-server") else {
        return (None, None);
    };
    let Ok(resp) = http.get(at).send().await else {
        return (None, None);
    };
    let Ok(v) = resp.json::<serde_json::Value>().await else {
        return (None, None);
    };
    let text = |k: &str| v[k].as_str().map(str::to_owned);
    (text("issuer"), text("token_endpoint"))
}

/// Lifetimes below this are warned about: the client cannot keep such a token long
/// enough to spare the token endpoint (a token is not handed out in its last 10 %).
const SHORTEST_CACHEABLE: Duration = Duration::from_secs(60);

/// The client authentication method other than the configured one that the server
/// accepts with the same credentials, if any: a success pins a `401` on the encoding
/// (RFC 6749 §2.3.1 form-encoding inside Basic, or Basic against `client_secret_post`).
/// Only a secret has encodings to try.
async fn other_encoding_that_works(
    http: &reqwest::Client,
    config: &TokenConfig,
) -> Option<ClientAuth> {
    if !matches!(config.credential, Credential::Secret(_)) {
        return None;
    }
    for alt in [ClientAuth::Basic, ClientAuth::BasicRaw, ClientAuth::Post] {
        if alt == config.auth {
            continue;
        }
        let c = config.clone().auth(alt);
        let Ok(p) = fetch::request_parts(&c, SystemTime::now()) else {
            continue;
        };
        let mut req = http
            .post(&c.token_url)
            .header("content-type", FORM_CONTENT_TYPE)
            .body(p.body);
        if let Some(a) = p.authorization {
            req = req.header("authorization", a);
        }
        if let Some(d) = p.dpop {
            req = req.header(DPOP, d);
        }
        if req.send().await.is_ok_and(|r| r.status().is_success()) {
            return Some(alt);
        }
    }
    None
}
