//! `auth-broker keys ...`.

use crate::admin_backend::Backend;
use crate::cli::KeysCommand;
use auth_broker_proto::admin::Key;
use auth_broker_server::SigningAlg;

fn state(k: &Key) -> &'static str {
    k.state.as_str()
}

/// `file_alg`: the settings file's `signing_alg`, under `--signing-alg` and its variable.
pub async fn run(
    cmd: KeysCommand,
    backend: &Backend,
    file_alg: Option<String>,
) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::List { json } => {
            let keys = backend.keys().await?;
            if json {
                out!("{}", serde_json::to_string_pretty(&keys)?);
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
            let alg: Option<SigningAlg> = signing_alg
                .as_ref()
                .or(file_alg.as_ref())
                .map(|a| a.parse())
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let rec = backend.rotate_key(alg).await?;
            if json {
                out!("{}", serde_json::to_string_pretty(&rec)?);
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
