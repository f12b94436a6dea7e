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
  auth-broker token --scope invoices:read --json")]
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
    let token = args
        .client
        .manager(&args.request)?
        .token()
        .await
        .map_err(|e| super::with_tls_hint(e.into()))?;
    if args.json {
        // Every member as the server sent it (refresh_token, id_token, extensions).
        out!("{}", serde_json::to_string_pretty(token.members())?);
    } else {
        out!("{}", token.access_token().expose_secret());
    }
    Ok(())
}
