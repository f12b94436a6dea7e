//! Resolving settings: flags, then `AUTH_BROKER_*` environment (both through clap),
//! then the TOML file, then defaults. One struct per group of settings serves the
//! flags and the file alike.

use crate::admin_backend::RemoteArgs;
use crate::client_side::call::usage;
use crate::client_side::{ClientArgs, TokenRequestArgs};
use anyhow::Context;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const DEFAULT_DATABASE: &str = "sqlite://auth-broker.db";
const DEFAULT_FILE: &str = "auth-broker.toml";

/// The settings file: the same structs as the flags ([`crate::cli::Global`],
/// [`crate::cli::ServeArgs`], [`ClientArgs`], [`TokenRequestArgs`], [`RemoteArgs`]),
/// so each setting is declared once with its flag, its `AUTH_BROKER_*` variable and
/// its file key (the long flag name with `_` for `-`; `client_auth` for `--auth`).
/// [`layered`] puts flags and environment over the file (INTERFACE §3).
///
/// Every group is flattened here directly, none within another: a group flattened
/// inside a flattened group would leave its keys among the `unknown` ones too (serde
/// hands a nested flattened struct the keys without taking them).
#[derive(Default, Deserialize)]
pub struct FileSettings {
    #[serde(flatten)]
    pub global: crate::cli::Global,
    #[serde(flatten)]
    pub serve: crate::cli::ServeArgs,
    #[serde(flatten)]
    pub client: ClientArgs,
    #[serde(flatten)]
    pub request: TokenRequestArgs,
    #[serde(flatten)]
    pub remote: RemoteArgs,
    /// Keys none of the above took: refused, so a typo does not pass silently.
    #[serde(flatten)]
    unknown: std::collections::BTreeMap<String, toml::Value>,
}

/// `Debug` through the groups' own (redacting) `Debug`; unknown keys by name only, as
/// one of them may be a misspelled secret.
impl std::fmt::Debug for FileSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSettings")
            .field("global", &self.global)
            .field("serve", &self.serve)
            .field("client", &self.client)
            .field("request", &self.request)
            .field("remote", &self.remote)
            .field("unknown", &self.unknown.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl FileSettings {
    /// Reads `path`, or `./auth-broker.toml` when no path is given and it exists. A file
    /// that does not parse, or has a key no setting has, is bad usage (exit 2).
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
        let file: Self = toml::from_str(&text).map_err(|e| {
            usage(format!(
                "invalid settings file {}: {}",
                path.display(),
                e.message()
            ))
        })?;
        if let Some(key) = file.unknown.keys().next() {
            return Err(usage(format!(
                "unknown key '{key}' in the settings file {}: the keys are the long flag names with _ for -, e.g. token_url",
                path.display()
            )));
        }
        Ok(file)
    }
}

/// `flags` (flags and environment, as clap read them) over `file`: every setting the
/// flags leave unset comes from the file. One generic step for every settings struct,
/// through their serde forms, instead of a line per setting.
pub fn layered<T: Serialize + DeserializeOwned>(flags: T, file: T) -> anyhow::Result<T> {
    let mut merged = serde_json::to_value(file)?;
    if let (Some(m), serde_json::Value::Object(f)) =
        (merged.as_object_mut(), serde_json::to_value(flags)?)
    {
        m.extend(f.into_iter().filter(|(_, v)| !v.is_null()));
    }
    Ok(serde_json::from_value(merged)?)
}

/// A duration setting, written as in the flags (`10s`, `500ms`, humantime) in the file
/// too. For `Option<Duration>` fields with `#[serde(with = "duration_setting")]`.
pub mod duration_setting {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(text) => crate::client_side::parse_timeout(&text)
                .map(Some)
                .map_err(|e| serde::de::Error::custom(format!("token_timeout '{text}': {e}"))),
            None => Ok(None),
        }
    }
}

/// The store URL: `--database` / `AUTH_BROKER_DATABASE_URL` / `database`, else SQLite
/// in the working directory.
pub fn database_url(global: &crate::cli::Global) -> String {
    global
        .database
        .clone()
        .unwrap_or_else(|| DEFAULT_DATABASE.to_owned())
}

/// How log lines are written (`--log-format`, `AUTH_BROKER_LOG_FORMAT`, `log_format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Deserialize, Serialize)]
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
///
/// With `traces` (`serve --otlp-endpoint`), spans are also exported, filtered on their
/// own at INFO: the log level does not decide what is traced, and DEBUG events do not
/// swell every span.
pub fn init_logging(default: &str, format: LogFormat, traces: Option<&crate::telemetry::Traces>) {
    use std::io::IsTerminal;
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = std::env::var("AUTH_BROKER_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| default.to_owned());
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let lines = match format {
        LogFormat::Text => {
            let colour = std::io::stderr().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            lines.with_ansi(colour).boxed()
        }
        LogFormat::Json => lines
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
    };
    let logs = tracing_subscriber::registry()
        .with(lines.with_filter(tracing_subscriber::EnvFilter::new(filter)));
    let _ = match traces {
        Some(traces) => logs
            .with(
                traces
                    .layer()
                    .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
            )
            .try_init(),
        None => logs.try_init(),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Each group takes its own keys from the file, so none of them is refused as
    /// unknown (as they would be from a group flattened inside another), and a typo is.
    #[test]
    fn every_groups_keys_are_known_and_a_typo_is_not() {
        let text = "database = \"sqlite://x.db\"\nlisten = \"127.0.0.1:1\"\n\
                    token_url = \"http://x/t\"\nclient_id = \"a\"\nclient_auth = \"post\"\n\
                    token_timeout = \"5s\"\nscope = \"s\"\naudience = \"aud\"\n\
                    admin_url = \"http://broker/\"\nscopes = \"typo\"\n";
        let file: FileSettings = toml::from_str(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(file.unknown.keys().collect::<Vec<_>>(), ["scopes"]);
        assert_eq!(file.request.audience.as_deref(), Some("aud"));
        assert_eq!(file.remote.admin_url.as_deref(), Some("http://broker/"));
        assert_eq!(file.client.client_id.as_deref(), Some("a"));
        assert_eq!(file.serve.listen.as_deref(), Some("127.0.0.1:1"));
    }
}
