//! `auth-broker doctor`: walk the troubleshooting checklist against a real endpoint.

use super::ClientArgs;
use auth_broker_client::{ClientAuth, TokenConfig, fetch};
use auth_broker_proto::FORM_CONTENT_TYPE;
use base64::Engine;
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

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

pub async fn run(args: DoctorArgs) -> anyhow::Result<()> {
    let mut r = Report::default();
    let config = args.client.config();
    let done = check(&mut r, &args.client, &config, args.api.as_deref()).await;
    let _ = done;
    out!();
    if r.failed > 0 {
        anyhow::bail!("{} step(s) failed", r.failed);
    }
    out!("all checks passed");
    Ok(())
}

async fn check(
    r: &mut Report,
    client: &ClientArgs,
    config: &TokenConfig,
    api: Option<&str>,
) -> Option<()> {
    // 1. The URL.
    let url = match reqwest::Url::parse(&config.token_url) {
        Ok(u) => u,
        Err(e) => {
            r.fail(
                "token URL",
                format!("'{}' does not parse: {e}", config.token_url),
                "pass the full URL, e.g. https://auth.example.com/auth-broker/request-token",
            );
            return None;
        }
    };
    match url.scheme() {
        "https" => r.ok("token URL", format!("{url} (https)")),
        "http" => r.warn(
            "token URL",
            format!(
                "{url} is plain http://: the client secret and tokens cross the network unencrypted"
            ),
            "use https:// outside local development",
        ),
        s => {
            r.fail(
                "token URL",
                format!("scheme '{s}' is not http or https"),
                "use an https:// URL",
            );
            return None;
        }
    }
    let host = url.host_str().unwrap_or_default().to_owned();
    let port = url.port_or_known_default().unwrap_or(443);
    // 2. DNS.
    let addrs: Vec<_> = match tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::lookup_host((host.as_str(), port)),
    )
    .await
    {
        Ok(Ok(a)) => a.collect(),
        Ok(Err(e)) => {
            r.fail(
                "DNS",
                format!("{host} does not resolve: {e}"),
                "check the host name for typos and this machine's DNS settings",
            );
            return None;
        }
        Err(_) => {
            r.fail(
                "DNS",
                format!("resolving {host} timed out"),
                "check this machine's DNS settings",
            );
            return None;
        }
    };
    let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    r.ok("DNS", format!("{host} -> {}", list.join(", ")));
    // 3. TCP.
    let Some(first) = addrs.first() else {
        r.fail("DNS", "no addresses", "check the host name");
        return None;
    };
    match tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect(first),
    )
    .await
    {
        Ok(Ok(_)) => r.ok("TCP", format!("connected to {first}")),
        Ok(Err(e)) => {
            r.fail(
                "TCP",
                format!("cannot connect to {first}: {e}"),
                "is the server running and listening on that port? a firewall or proxy in the way?",
            );
            return None;
        }
        Err(_) => {
            r.fail(
                "TCP",
                format!("connecting to {first} timed out"),
                "a firewall may be dropping packets; check the port",
            );
            return None;
        }
    }
    // 4/5. TLS and an answer.
    let http = match client.http_client(
        reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .redirect(reqwest::redirect::Policy::none()),
    ) {
        Ok(h) => h,
        Err(e) if client.ca_file.is_some() => {
            r.fail(
                "CA file",
                format!("{e:#}"),
                "pass a PEM file of CA certificates",
            );
            return None;
        }
        Err(e) => {
            r.fail("HTTP client", format!("{e:#}"), "report this as a bug");
            return None;
        }
    };
    match http.get(url.clone()).send().await {
        Ok(resp) => {
            if url.scheme() == "https" {
                let roots = match &client.ca_file {
                    Some(f) => format!("the system roots and --ca-file {}", f.display()),
                    None => "the system roots".to_owned(),
                };
                r.ok(
                    "TLS",
                    format!("handshake and certificate verification succeeded (trusting {roots})"),
                );
            }
            let s = resp.status();
            if s == reqwest::StatusCode::NOT_FOUND {
                r.warn(
                    "endpoint",
                    format!("GET answers {s}"),
                    "check the path; an auth-broker's token endpoint is /auth-broker/request-token",
                );
            } else {
                r.ok(
                    "endpoint",
                    format!("answers (GET -> {s}; the token request is a POST)"),
                );
            }
        }
        Err(e) => {
            if let Some(p) = auth_broker_client::certificate_problem(&e) {
                r.fail("TLS", format!("{p} ({})", chain(&e)), super::tls_todo(&p));
                return None;
            }
            let what = if url.scheme() == "https" {
                "TLS/HTTP"
            } else {
                "HTTP"
            };
            r.fail(what, chain(&e), "for TLS errors check the certificate (expired? issued for this host name? a private CA?); otherwise the server is not speaking HTTP on this port");
            return None;
        }
    }
    // 6. The token request, exactly as the client sends it.
    let parts = match fetch::request_parts(config) {
        Ok(p) => p,
        Err(e) => {
            r.fail(
                "token request",
                e.to_string(),
                "check the client id and secret for characters that cannot go in a header",
            );
            return None;
        }
    };
    let shown_body = if config.auth == ClientAuth::Post {
        parts.body.replace(
            &auth_broker_proto::form::encode(config.client_secret.expose_secret()),
            "[redacted]",
        )
    } else {
        parts.body.clone()
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
            r.fail(
                "token request",
                chain(&e),
                "the endpoint answered a GET but not this POST; check proxies and body size limits",
            );
            return None;
        }
    };
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .map(Duration::from_secs);
    let body = resp.bytes().await.unwrap_or_default();
    let token = match fetch::parse_response(status, &body, retry_after) {
        Ok(t) => {
            r.ok(
                "token request",
                format!(
                    "200, token_type {}, expires_in {}, scope '{}'",
                    t.token_type,
                    t.expires_in.map_or("(absent)".into(), |e| e.to_string()),
                    t.scope.as_deref().unwrap_or("(absent)")
                ),
            );
            if t.expires_in.is_none() {
                r.warn(
                    "expires_in",
                    "the response has no expires_in",
                    "the client assumes 300 s; ask the server to send expires_in",
                );
            }
            t
        }
        Err(e) => {
            let cause = diagnose(&http, config, &e).await;
            r.fail("token request", e.to_string(), cause);
            return None;
        }
    };
    let access = token.access_token.expose_secret().to_owned();
    // 7. The token itself.
    let claims = decode_jwt(&access);
    match &claims {
        Some(c) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            let exp = c.get("exp").and_then(serde_json::Value::as_i64);
            let scope = c.get("scope").and_then(|v| v.as_str()).unwrap_or("(none)");
            let aud = c
                .get("aud")
                .map(ToString::to_string)
                .unwrap_or_else(|| "(none)".into());
            let iss = c.get("iss").and_then(|v| v.as_str()).unwrap_or("(none)");
            match exp {
                Some(exp) if exp > now => r.ok("token", format!("JWT: iss {iss}, aud {aud}, scope '{scope}', expires in {} s (exp {exp})", exp - now)),
                Some(exp) => r.fail("token", format!("JWT expired {} s ago by this machine's clock (exp {exp})", now - exp), "check the clocks of this machine and the server (NTP); a fresh token should not be expired"),
                None => r.warn("token", format!("JWT without exp: iss {iss}, aud {aud}, scope '{scope}'"), "resource servers may reject a token without exp"),
            }
        }
        None => r.ok("token", "opaque (not a JWT): only the issuer can read it"),
    }
    // 8. The broker's token-info, when the token URL is an auth-broker.
    let info_url = config
        .token_url
        .strip_suffix("/auth-broker/request-token")
        .map(|b| format!("{b}/auth-broker/token-info"));
    let mut token_ok_per_broker = None;
    if let Some(info) = &info_url {
        match http.get(info).bearer_auth(&access).send().await {
            Ok(resp) if resp.status().is_success() => {
                token_ok_per_broker = Some(true);
                r.ok("token-info", "the broker accepts the token");
            }
            Ok(resp) => {
                token_ok_per_broker = Some(false);
                let s = resp.status();
                let t = resp.text().await.unwrap_or_default();
                r.fail(
                    "token-info",
                    format!("the broker refuses its own token: {s} {t}"),
                    "check the broker's clock and key rotation",
                );
            }
            Err(e) => r.warn(
                "token-info",
                chain(&e),
                "the token URL looks like an auth-broker's but token-info did not answer",
            ),
        }
    }
    // 9. A signed API call.
    if let Some(api) = api {
        match http.get(api).bearer_auth(&access).send().await {
            Ok(resp) if resp.status().is_success() || resp.status().is_redirection() => r.ok("API call", format!("GET {api} with the token -> {}", resp.status())),
            Ok(resp) if resp.status() == reqwest::StatusCode::UNAUTHORIZED => {
                let www = resp.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                let body = resp.text().await.unwrap_or_default();
                let fault = if www.contains("invalid_token") || body.contains("invalid_token") {
                    "the API says the token is invalid (its error above says why); check that the API trusts this issuer and its JWKS, and expects this audience"
                } else if token_ok_per_broker == Some(true) {
                    "the header is right (Authorization: Bearer <token>, exactly as sent here) and the broker accepts the token, so the API refuses this token: check the audience, scopes and issuer the API expects"
                } else {
                    "the API refused 'Authorization: Bearer <token>'; if it expects another scheme or header (e.g. X-Api-Key) that is the fault, otherwise the token's audience or scopes"
                };
                let aud = claims.as_ref().and_then(|c| c.get("aud")).map(ToString::to_string).unwrap_or_default();
                r.fail("API call", format!("GET {api} -> 401 {www} {}{}", body.chars().take(300).collect::<String>(), if aud.is_empty() { String::new() } else { format!(" (token aud {aud})") }), fault);
            }
            Ok(resp) if resp.status() == reqwest::StatusCode::FORBIDDEN => r.fail("API call", format!("GET {api} -> 403"), "the token is accepted but lacks a scope or permission; request the scope the API needs (--scope)"),
            Ok(resp) => r.warn("API call", format!("GET {api} -> {}", resp.status()), "not an authentication problem"),
            Err(e) => r.fail("API call", chain(&e), "the API is not reachable"),
        }
    }
    Some(())
}

/// Which of the troubleshooting list's causes fits a failed token request.
async fn diagnose(
    http: &reqwest::Client,
    config: &TokenConfig,
    e: &auth_broker_client::TokenError,
) -> String {
    let desc = e
        .server_error()
        .and_then(|s| s.error_description.clone())
        .unwrap_or_default();
    let code = e
        .server_error()
        .map(|s| s.error.as_str().to_owned())
        .unwrap_or_default();
    match (e.status(), code.as_str()) {
        (Some(401), "invalid_client") | (Some(400), "invalid_client") | (Some(401), _) => {
            // Try the other encodings: a success pins the cause on the encoding.
            for alt in [ClientAuth::Basic, ClientAuth::BasicRaw, ClientAuth::Post] {
                if alt == config.auth {
                    continue;
                }
                let c = config.clone().auth(alt);
                if let Ok(p) = fetch::request_parts(&c) {
                    let mut req = http.post(&c.token_url).header("content-type", FORM_CONTENT_TYPE).body(p.body);
                    if let Some(a) = p.authorization {
                        req = req.header("authorization", a);
                    }
                    if let Ok(resp) = req.send().await
                        && resp.status().is_success()
                    {
                        {
                            let flag = match alt { ClientAuth::Basic => "basic", ClientAuth::BasicRaw => "basic-raw", ClientAuth::Post => "post" };
                            return format!("cause: client authentication encoding. The same credentials work with {}: use --auth {flag}", alt.as_str());
                        }
                    }
                }
            }
            format!("cause: wrong credentials (client id or secret wrong, secret rotated, client disabled or deleted); {desc}. Check AUTH_BROKER_CLIENT_ID/AUTH_BROKER_CLIENT_SECRET for stray whitespace or quotes, and `auth-broker client show ID` on the broker")
        }
        (Some(400), "invalid_request") if desc.to_ascii_lowercase().contains("content-type") || desc.contains("JSON") || desc.contains("form") => {
            format!("cause: wrong content type or body: {desc}. Send Content-Type: {FORM_CONTENT_TYPE} with grant_type=client_credentials")
        }
        (Some(400), "invalid_request") if desc.contains("Authorization") || desc.contains("base64") || desc.contains("Basic") => {
            format!("cause: bad Basic encoding: {desc}")
        }
        (Some(400), "invalid_scope") => format!("cause: scope: {desc}. Request only scopes the client has (--scope), or none"),
        (Some(400), "unsupported_grant_type") => format!("cause: grant type: {desc}. Send grant_type=client_credentials"),
        (Some(400), "unauthorized_client") => format!("cause: the client may not use this grant: {desc}"),
        (Some(429), _) => format!("cause: rate limited after failed attempts{}; wait and fix the credentials", e.retry_after().map(|d| format!(" (Retry-After {} s)", d.as_secs())).unwrap_or_default()),
        (Some(404), _) => "cause: wrong path; an auth-broker's token endpoint is /auth-broker/request-token".into(),
        (Some(405), _) => "cause: the endpoint refuses POST: is this the token endpoint?".into(),
        (Some(s), _) if s >= 500 => "cause: the server failed; try again later and check the server's logs".into(),
        (Some(200), _) => "cause: the answer is not a token response: is the URL the token endpoint (not a login page)?".into(),
        _ => format!("see the server's error: {desc}"),
    }
}

fn decode_jwt(token: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let mut parts = token.split('.');
    let (_h, p, _s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(p.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}
