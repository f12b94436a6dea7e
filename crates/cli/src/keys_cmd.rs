//! `auth-broker keys ...`.

use crate::cli::KeysCommand;
use anyhow::Context;
use auth_broker_server::admin;
use auth_broker_server::clock::{Clock, SystemClock};
use auth_broker_server::keys::SigningAlg;
use auth_broker_server::store::{KeyRecord, Store, redact_url};
use serde_json::json;

fn state(k: &KeyRecord) -> &'static str {
    if k.retired_at.is_none() {
        "active"
    } else {
        "retired"
    }
}

/// `file_alg`: the settings file's `signing_alg`, under `--signing-alg` and its variable.
pub async fn run(cmd: KeysCommand, database: &str, file_alg: Option<String>) -> anyhow::Result<()> {
    let store = Store::open(database)
        .await
        .with_context(|| format!("cannot open the store {}", redact_url(database)))?;
    match cmd {
        KeysCommand::List { json } => {
            let keys = store.list_keys().await?;
            if json {
                let v: Vec<_> = keys
                    .iter()
                    .map(|k| json!({"kid": k.kid, "alg": k.alg, "state": state(k), "created_at": k.created_at, "retired_at": k.retired_at}))
                    .collect();
                out!("{}", serde_json::to_string_pretty(&v)?);
            } else if keys.is_empty() {
                out!("No signing keys yet; `auth-broker serve` creates one on first start.");
            } else {
                out!("{:<45} {:<6} {:<8} CREATED", "KID", "ALG", "STATE");
                for k in &keys {
                    out!(
                        "{:<45} {:<6} {:<8} {}",
                        k.kid,
                        k.alg,
                        state(k),
                        k.created_at
                    );
                }
            }
        }
        KeysCommand::Rotate { signing_alg, json } => {
            let alg: SigningAlg = signing_alg
                .as_ref()
                .or(file_alg.as_ref())
                .map(|a| a.parse())
                .transpose()
                .map_err(anyhow::Error::msg)?
                .unwrap_or_default();
            let rec = admin::rotate_key(&store, alg, SystemClock.now_secs()).await?;
            if json {
                out!(
                    "{}",
                    serde_json::to_string_pretty(
                        &json!({"kid": rec.kid, "alg": rec.alg, "state": "active"})
                    )?
                );
            } else {
                out!("New active {} key: {}", rec.alg, rec.kid);
                out!(
                    "Running brokers sign with it within seconds; the old key stays in the JWKS until its tokens expire."
                );
            }
        }
    }
    Ok(())
}
