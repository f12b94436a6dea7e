//! Resolving settings: flags, then `AUTH_BROKER_*` environment (both through clap),
//! then the TOML file, then defaults.

use anyhow::Context;
use serde::Deserialize;
use std::path::Path;

pub const DEFAULT_DATABASE: &str = "sqlite://auth-broker.db";
const DEFAULT_FILE: &str = "auth-broker.toml";

/// The settings file. Keys are the long flag names with `_` for `-`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub database: Option<String>,
    pub log_format: Option<LogFormat>,
    pub listen: Option<String>,
    pub issuer: Option<String>,
    pub token_ttl: Option<i64>,
    pub signing_alg: Option<String>,
    pub token_format: Option<String>,
    pub key_rotation_interval: Option<String>,
    pub tls_cert: Option<std::path::PathBuf>,
    pub tls_key: Option<std::path::PathBuf>,
    pub auth_failures_per_minute: Option<u32>,
    // The client commands (`token`, `call`, `proxy`, `doctor`).
    pub token_url: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub scope: Option<String>,
    pub audience: Option<String>,
    pub client_auth: Option<crate::client_side::AuthMethod>,
    pub ca_file: Option<std::path::PathBuf>,
    pub token_timeout: Option<String>,
}

/// `Debug` with the database password (if the URL has one) and the client secret
/// redacted.
impl std::fmt::Debug for FileSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSettings")
            .field(
                "database",
                &self
                    .database
                    .as_deref()
                    .map(auth_broker_server::store::redact_url),
            )
            .field("log_format", &self.log_format)
            .field("listen", &self.listen)
            .field("issuer", &self.issuer)
            .field("token_ttl", &self.token_ttl)
            .field("signing_alg", &self.signing_alg)
            .field("token_format", &self.token_format)
            .field("key_rotation_interval", &self.key_rotation_interval)
            .field("auth_failures_per_minute", &self.auth_failures_per_minute)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("scope", &self.scope)
            .field("audience", &self.audience)
            .field("client_auth", &self.client_auth)
            .field("ca_file", &self.ca_file)
            .field("token_timeout", &self.token_timeout)
            .finish()
    }
}

impl FileSettings {
    /// Reads `path`, or `./auth-broker.toml` when no path is given and it exists.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let (path, required) = match path {
            Some(p) => (p, true),
            None => (Path::new(DEFAULT_FILE), false),
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                return Ok(Self::default());
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot read the settings file {}", path.display()));
            }
        };
        toml::from_str(&text).with_context(|| format!("invalid settings file {}", path.display()))
    }
}

pub fn database_url(flag: Option<&str>, file: &FileSettings) -> String {
    flag.map(str::to_owned)
        .or_else(|| file.database.clone())
        .unwrap_or_else(|| DEFAULT_DATABASE.to_owned())
}

/// How log lines are written (`--log-format`, `AUTH_BROKER_LOG_FORMAT`, `log_format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One line of text per event, coloured on a terminal.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message`, the event's
    /// fields, and `span` with the request's fields (`id` is the request id) when
    /// there is one.
    Json,
}

/// Logs go to stderr; the level comes from `AUTH_BROKER_LOG`, then `RUST_LOG`.
///
/// Colour only when stderr is a terminal and `NO_COLOR` is unset or empty
/// (no-color.org): escape codes in a file or a log collector are noise. Secrets stay
/// out either way: the `Authorization` values are marked sensitive and never logged as
/// fields.
pub fn init_logging(default: &str, format: LogFormat) {
    use std::io::IsTerminal;
    let filter = std::env::var("AUTH_BROKER_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| default.to_owned());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => {
            let colour = std::io::stderr().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            builder.with_ansi(colour).try_init()
        }
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

/// Completes on Ctrl-C or SIGTERM (never, if neither can be listened for).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
