//! The integrator's commands: `token`, `call`, `proxy`, `doctor`. They work against any
//! OAuth 2.0 client-credentials endpoint, through the `auth-broker-client` crate.

pub mod call;
pub mod doctor;
pub mod proxy;
pub mod token;

use auth_broker_client::{ClientAuth, TokenConfig, TokenManager};
use auth_broker_proto::ClientSecret;
use clap::{Args, ValueEnum};

/// Where to get tokens and as whom. Every value may come from the environment, so the
/// secret stays out of shell history.
#[derive(Args)]
pub struct ClientArgs {
    /// The token endpoint, e.g. https://auth.example.com/auth-broker/request-token.
    #[arg(long, env = "AUTH_BROKER_TOKEN_URL", value_name = "URL")]
    pub token_url: String,
    /// The client id.
    #[arg(long, env = "AUTH_BROKER_CLIENT_ID", value_name = "ID")]
    pub client_id: String,
    /// The client secret. Prefer the environment variable: a flag ends up in shell history.
    #[arg(
        long,
        env = "AUTH_BROKER_CLIENT_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub client_secret: String,
    /// Scopes to request, space separated. [default: none, the server's default]
    #[arg(long, env = "AUTH_BROKER_SCOPE", value_name = "SCOPES")]
    pub scope: Option<String>,
    /// The `audience` parameter to send, for servers that take one.
    #[arg(long, env = "AUTH_BROKER_AUDIENCE", value_name = "AUD")]
    pub audience: Option<String>,
    /// Client authentication: `basic` (client_secret_basic, id and secret
    /// form-encoded per RFC 6749 §2.3.1), `basic-raw` (base64(id:secret) as is, for
    /// servers that skip §2.3.1) or `post` (client_secret_post).
    #[arg(long, value_enum, default_value_t = AuthMethod::Basic, env = "AUTH_BROKER_CLIENT_AUTH")]
    pub auth: AuthMethod,
}

/// `Debug` without the secret.
impl std::fmt::Debug for ClientArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientArgs")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("scope", &self.scope)
            .field("audience", &self.audience)
            .field("auth", &self.auth)
            .finish()
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum AuthMethod {
    Basic,
    BasicRaw,
    Post,
}

impl From<AuthMethod> for ClientAuth {
    fn from(a: AuthMethod) -> Self {
        match a {
            AuthMethod::Basic => ClientAuth::Basic,
            AuthMethod::BasicRaw => ClientAuth::BasicRaw,
            AuthMethod::Post => ClientAuth::Post,
        }
    }
}

impl ClientArgs {
    pub fn config(&self) -> TokenConfig {
        let mut c = TokenConfig::new(
            self.token_url.clone(),
            self.client_id.clone(),
            ClientSecret::new(self.client_secret.clone()),
        )
        .auth(self.auth.into());
        if let Some(s) = &self.scope {
            c = c.scope(s.clone());
        }
        if let Some(a) = &self.audience {
            c = c.audience(a.clone());
        }
        c
    }

    pub fn manager(&self) -> anyhow::Result<TokenManager> {
        Ok(TokenManager::new(self.config())?)
    }
}
