//! `auth-broker serve`.

use crate::cli::ServeArgs;
use anyhow::{Context, bail};
use auth_broker_server::admin::{Actor, Admin, NewClient};
use auth_broker_server::tls::{TlsFiles, TlsHandle};
use auth_broker_server::{Config, Server, Store, redact_url};
use std::net::SocketAddr;

/// The server's configuration from the layered settings (flags, environment, file).
fn config(args: &ServeArgs) -> anyhow::Result<Config> {
    let mut c = Config::default();
    if let Some(listen) = args.listen.as_ref() {
        c.listen = listen.parse::<SocketAddr>().with_context(|| {
            format!("--listen '{listen}' is not an address; use IP:PORT such as 127.0.0.1:8080 or 0.0.0.0:8080")
        })?;
    }
    if let Some(issuer) = args.issuer.as_ref() {
        let uri: http::Uri = issuer
            .parse()
            .with_context(|| format!("--issuer '{issuer}' is not a URL"))?;
        let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
        if !scheme_ok || uri.host().is_none() || uri.query().is_some() {
            bail!(
                "--issuer must be an absolute http(s) URL without query or fragment (RFC 8414 §2), e.g. https://auth.example.com"
            );
        }
        c.issuer = Some(issuer.clone());
    }
    if let Some(ttl) = args.token_ttl {
        if !(1..=auth_broker_server::MAX_TOKEN_TTL_SECS).contains(&ttl) {
            bail!(
                "--token-ttl must be between 1 and {} seconds (31 days); got {ttl}",
                auth_broker_server::MAX_TOKEN_TTL_SECS
            );
        }
        c.token_ttl_secs = ttl;
    }
    if let Some(alg) = args.signing_alg.as_ref() {
        c.signing_alg = alg.parse().map_err(anyhow::Error::msg)?;
    }
    if let Some(format) = args.token_format.as_ref() {
        c.token_format = format.parse().map_err(anyhow::Error::msg)?;
    }
    if let Some(every) = args.key_rotation_interval.as_ref() {
        let d = humantime::parse_duration(every).with_context(|| {
            format!("--key-rotation-interval '{every}' is not a duration; use e.g. 30d, 12h or 90m")
        })?;
        if d < std::time::Duration::from_secs(60) {
            bail!("--key-rotation-interval must be at least 60s; got {every}");
        }
        c.key_rotation_interval = Some(d);
    }
    let cert = args.tls_cert.as_ref();
    let key = args.tls_key.as_ref();
    c.tls = match (cert, key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        (None, None) => None,
        _ => bail!(
            "--tls-cert and --tls-key go together: give both (the certificate chain and its private key) or neither"
        ),
    };
    c.tls_client_ca.clone_from(&args.tls_client_ca);
    if let Some(n) = args.auth_failures_per_minute {
        c.auth_failures_per_minute = std::num::NonZeroU32::new(n)
            .context("--auth-failures-per-minute must be at least 1")?;
    }
    if let Some(d) = args.assertion_max_lifetime.as_ref() {
        let d = humantime::parse_duration(d).with_context(|| {
            format!("--assertion-max-lifetime '{d}' is not a duration; use e.g. 60s or 5m")
        })?;
        if d.is_zero() || d > std::time::Duration::from_secs(3600) {
            bail!(
                "--assertion-max-lifetime must be between 1s and 1h (an assertion is made for one request)"
            );
        }
        c.assertion_max_lifetime = d;
    }
    c.dpop_nonce = args.dpop_nonce;
    c.trace_export = args.otlp_endpoint.is_some();
    if let Some(at) = args.metrics_listen.as_ref() {
        c.metrics_listen = Some(at.parse::<SocketAddr>().with_context(|| {
            format!("--metrics-listen '{at}' is not an address; use IP:PORT such as 127.0.0.1:9090")
        })?);
    }
    Ok(c)
}

pub async fn run(
    args: ServeArgs,
    database: &str,
    traces: Option<&crate::telemetry::Traces>,
) -> anyhow::Result<()> {
    let config = config(&args)?;
    let store = Store::open(database)
        .await
        .with_context(|| format!("cannot open the store {}", redact_url(database)))?;
    let server = Server::bind_default_clock(config, store).await?;
    let addr = server.local_addr()?;
    let issuer = server.issuer().to_owned();
    let tls = server.tls_handle();
    let scheme = if tls.is_some() { "https" } else { "http" };
    out!("auth-broker listening on {scheme}://{addr}");
    out!("  issuer: {issuer}");
    out!("  store:  {}", redact_url(database));
    if let Some(at) = server.metrics_addr() {
        out!("  operator metrics: http://{at}/metrics");
    }
    if let Some(traces) = traces {
        out!("  traces: {} (OTLP/HTTP)", traces.url());
    }
    out!("  token endpoint: {issuer}/auth-broker/request-token");
    if let Some(tls) = tls {
        out!(
            "  TLS certificate: {} (SHA-256 {}); SIGHUP reloads it",
            tls.files().cert.display(),
            tls.current().fingerprint
        );
        reload_on_sighup(tls)?;
    }
    if args.demo {
        demo(server.admin(), &issuer).await?;
        if scheme == "https" {
            out!("(A certificate from a private CA? Add --cacert CA.pem to the curl commands.)");
            out!();
        }
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    server.run(crate::settings::shutdown_signal()).await?;
    Ok(())
}

/// Reloads the certificate on every SIGHUP, the usual signal for "read your files
/// again" and what certificate renewal hooks (certbot `--deploy-hook`, ...) send.
/// A reload that fails is logged and the previous certificate stays in use.
#[cfg(unix)]
fn reload_on_sighup(tls: TlsHandle) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let t = tls.clone();
            // Reading two small files; still off the async threads.
            match tokio::task::spawn_blocking(move || t.reload()).await {
                Ok(Ok(loaded)) => tracing::info!(
                    sha256 = %loaded.fingerprint,
                    chain = loaded.chain_len,
                    "SIGHUP: TLS certificate reloaded; new connections use it"
                ),
                Ok(Err(e)) => tracing::error!(
                    error = %e,
                    "SIGHUP: TLS certificate reload failed; still serving the previous certificate"
                ),
                Err(e) => tracing::error!(error = %e, "SIGHUP: TLS certificate reload failed"),
            }
        }
    });
    Ok(())
}

#[cfg(not(unix))]
fn reload_on_sighup(_: TlsHandle) -> anyhow::Result<()> {
    Ok(())
}

async fn demo(admin: &Admin, issuer: &str) -> anyhow::Result<()> {
    let actor = Actor::broker();
    let (id, secret) = match admin.client_by_name("demo").await? {
        Some(c) => {
            let rotated = admin.rotate_secret(&actor, &c.client_id, 0).await?;
            if !c.settings.enabled {
                admin.set_enabled(&actor, &c.client_id, true).await?;
            }
            (c.client_id, rotated.secret)
        }
        None => {
            let (c, s) = admin
                .create_client(
                    &actor,
                    &NewClient {
                        name: "demo".into(),
                        scope: "demo:read demo:write".into(),
                        audience: None,
                    },
                )
                .await?;
            (c.client_id, s)
        }
    };
    let secret = secret.expose_secret();
    let token_url = format!("{issuer}/auth-broker/request-token");
    let fetch = format!("curl -s -u '{id}:{secret}' -d grant_type=client_credentials {token_url}");
    out!();
    out!(
        "Demo client 'demo' (its secret is renewed each time serve --demo starts; only a hash is stored):"
    );
    out!("  client_id:     {id}");
    out!("  client_secret: {secret}");
    out!();
    out!("Fetch a token:");
    out!("  {fetch}");
    out!();
    out!("Fetch one and ask the broker what it thinks of it:");
    out!(
        "  curl -s -H \"Authorization: Bearer $({fetch} | sed -E 's/.*\"access_token\":\"([^\"]+)\".*/\\1/')\" {issuer}/auth-broker/token-info"
    );
    out!();
    Ok(())
}
