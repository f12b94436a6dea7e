//! `auth-broker keys ...`.

use crate::cli::KeysCommand;
use crate::settings::FileSettings;
use anyhow::Context;
use auth_broker_server::admin::{Actor, Admin, KeyInfo};
use auth_broker_server::{SigningAlg, redact_url};
use serde_json::json;

fn state(k: &KeyInfo) -> &'static str {
    k.state.as_str()
}

pub async fn run(cmd: KeysCommand, database: &str, file: &FileSettings) -> anyhow::Result<()> {
    let admin = Admin::open(database)
        .await
        .with_context(|| format!("cannot open the store {}", redact_url(database)))?;
    match cmd {
        KeysCommand::List { json } => {
            let keys = admin.keys().await?;
            if json {
                let v: Vec<_> = keys
                    .iter()
                    .map(|k| json!({"kid": k.kid, "alg": k.alg, "state": state(k), "created_at": k.created_at, "retired_at": k.retired_at, "published_until": k.published_until}))
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
                .or(file.signing_alg.as_ref())
                .map(|a| a.parse())
                .transpose()
                .map_err(anyhow::Error::msg)?
                .unwrap_or_default();
            let rec = admin.rotate_key(&Actor::cli(), alg).await?;
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
