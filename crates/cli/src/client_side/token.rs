//! `auth-broker token`: print a token.

use super::{ClientArgs, TokenRequestArgs};
use clap::Args;

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  export AUTH_BROKER_TOKEN_URL=http://127.0.0.1:8080/auth-broker/request-token
  export AUTH_BROKER_CLIENT_ID=... AUTH_BROKER_CLIENT_SECRET=...
  auth-broker token
  curl -H \"Authorization: Bearer $(auth-broker token)\" https://api.example.com/
  auth-broker token --scope invoices:read --json
  auth-broker token --private-key client-key.pem --key-id 2026-01     # private_key_jwt
  auth-broker token --dpop-key dpop-key.pem --json                     # a DPoP-bound token
  auth-broker token --tls-client-cert client.pem --tls-client-key client-key.pem  # mutual TLS")]
pub struct TokenArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub request: TokenRequestArgs,
    /// Print the whole token response as JSON, every member as the server sent it,
    /// instead of the bare token.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: TokenArgs) -> anyhow::Result<()> {
    let manager = args.client.manager(&args.request)?;
    let token = manager
        .token()
        .await
        .map_err(|e| super::with_tls_hint(e.into()))?;
    if let Some(key) = &manager.config().dpop {
        match token.scheme() {
            auth_broker_client::TokenScheme::Dpop if args.client.dpop_key.is_none() => eprintln!(
                "note: the token is bound to a DPoP key made for this run (jkt {}), which is gone when this command ends: it is usable only with proofs signed by that key. Use --dpop-key FILE for a key you keep, or `auth-broker call --dpop` / `proxy --dpop`",
                key.thumbprint()
            ),
            auth_broker_client::TokenScheme::Dpop => {}
            auth_broker_client::TokenScheme::Bearer => eprintln!(
                "note: a DPoP proof was sent but the token endpoint answered token_type bearer: the token is not bound to the key (`auth-broker doctor --dpop` says more)"
            ),
        }
    }
    if args.json {
        // Every member as the server sent it (refresh_token, id_token, extensions).
        out!("{}", serde_json::to_string_pretty(token.members())?);
    } else {
        out!("{}", token.access_token().expose_secret());
    }
    Ok(())
}
