//! The integrator's commands: `token`, `call`, `proxy`, `doctor`. They work against any
//! OAuth 2.0 client-credentials endpoint, through the `auth-broker-client` crate.

pub mod call;
pub mod doctor;
pub mod proxy;
pub mod token;

use anyhow::Context;
use auth_broker_client::{ClientAuth, TokenConfig, TokenManager};
use auth_broker_proto::ClientSecret;
use clap::{Args, ValueEnum};
use std::path::PathBuf;

/// Where to get tokens and as whom. Each value comes from its flag, else its
/// `AUTH_BROKER_*` environment variable (so the secret can stay out of shell history),
/// else the settings file (`auth-broker.toml` or `--config FILE`; keys are the flag
/// names with `_`: `token_url`, `client_id`, `client_secret`, `client_auth`, `ca_file`,
/// `token_timeout`): the same struct is read from both and layered
/// (`crate::settings::layered`), then [`ClientArgs::required`] checks it.
///
/// The client-side commands (`token`, `call`, `proxy`, `doctor`) take these with
/// [`TokenRequestArgs`]; `client`, `keys` and `audit` take them for `--admin-url`
/// (`crate::admin_backend::RemoteArgs`), where `--scope` and `--audience` are the
/// client's settings instead. The flags are global so that they may follow the
/// subcommand there (`auth-broker client list --client-id ops`); the client-side
/// commands have no subcommands, so it changes nothing for them.
#[derive(Args, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(default)]
pub struct ClientArgs {
    /// The token endpoint, e.g. https://auth.example.com/auth-broker/request-token.
    /// [file: token_url]
    #[arg(long, global = true, env = "AUTH_BROKER_TOKEN_URL", value_name = "URL")]
    pub token_url: Option<String>,
    /// The client id. [file: client_id]
    #[arg(long, global = true, env = "AUTH_BROKER_CLIENT_ID", value_name = "ID")]
    pub client_id: Option<String>,
    /// The client secret. Prefer the environment variable: a flag ends up in shell
    /// history. [file: client_secret]
    #[arg(
        long,
        global = true,
        env = "AUTH_BROKER_CLIENT_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub client_secret: Option<String>,
    /// Client authentication: `basic` (client_secret_basic, id and secret
    /// form-encoded per RFC 6749 §2.3.1), `basic-raw` (base64(id:secret) as is, for
    /// servers that skip §2.3.1) or `post` (client_secret_post). [default: basic;
    /// file: client_auth]
    #[arg(long, global = true, value_enum, env = "AUTH_BROKER_CLIENT_AUTH")]
    #[serde(rename = "client_auth")]
    pub auth: Option<AuthMethod>,
    /// Also trust the CA certificate(s) in this PEM file, for servers whose
    /// certificate comes from a private CA. [default: the system's roots only]
    #[arg(long, global = true, env = "AUTH_BROKER_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// How long one token request may take, e.g. 10s or 500ms: an endpoint that
    /// accepts the connection but does not answer in time counts as down.
    /// [default: 10s]
    #[arg(long, global = true, env = "AUTH_BROKER_TOKEN_TIMEOUT", value_name = "DURATION", value_parser = parse_timeout)]
    #[serde(with = "crate::settings::duration_setting")]
    pub token_timeout: Option<std::time::Duration>,
}

/// Which token the client-side commands ask for. Not in [`ClientArgs`]: `client
/// create` and `client update` have `--scope` and `--audience` flags of their own (the
/// client's settings), and the admin commands choose their token themselves. A group
/// of its own in the settings file too (keys `scope`, `audience`), beside
/// [`ClientArgs`] rather than inside it: serde cannot tell the file's unknown keys
/// from those of a group flattened within a flattened group.
#[derive(Args, Clone, Debug, Default, serde::Deserialize, serde::Serialize)]
#[serde(default)]
pub struct TokenRequestArgs {
    /// Scopes to request, space separated. [default: none, the server's default]
    #[arg(long, env = "AUTH_BROKER_SCOPE", value_name = "SCOPES")]
    pub scope: Option<String>,
    /// The `audience` parameter to send, for servers that take one.
    #[arg(long, env = "AUTH_BROKER_AUDIENCE", value_name = "AUD")]
    pub audience: Option<String>,
}

/// The token request timeout when neither a flag, the environment nor the file sets it.
const DEFAULT_TOKEN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A positive duration such as `10s` or `500ms`.
pub fn parse_timeout(s: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("must be more than zero".into()),
        Err(e) => Err(format!("{e}; use e.g. 10s or 500ms")),
    }
}

/// `Debug` without the secret.
impl std::fmt::Debug for ClientArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientArgs")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("auth", &self.auth)
            .field("ca_file", &self.ca_file)
            .field("token_timeout", &self.token_timeout)
            .finish()
    }
}

#[derive(Clone, Copy, Debug, ValueEnum, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
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
    /// Checks that the endpoint and the credentials are known, once flags, environment
    /// and file are layered; what is missing is bad usage, named with its three sources.
    pub fn required(self) -> anyhow::Result<Self> {
        self.require(true)
    }

    /// As [`Self::required`], for the admin API (`--admin-url`): the token URL may be
    /// left out, it is then read from the broker's metadata.
    pub fn required_for_admin(self) -> anyhow::Result<Self> {
        self.require(false)
    }

    fn require(self, token_url: bool) -> anyhow::Result<Self> {
        let missing: Vec<&str> = [
            ("token_url", token_url && self.token_url.is_none()),
            ("client_id", self.client_id.is_none()),
            ("client_secret", self.client_secret.is_none()),
        ]
        .into_iter()
        .filter_map(|(k, missing)| missing.then_some(k))
        .collect();
        if !missing.is_empty() {
            let how: Vec<String> = missing
                .iter()
                .map(|k| {
                    format!(
                        "--{} / AUTH_BROKER_{} / {k} in auth-broker.toml",
                        k.replace('_', "-"),
                        k.to_uppercase()
                    )
                })
                .collect();
            return Err(call::usage(format!(
                "missing {}: set {}",
                missing.join(", "),
                how.join("; ")
            )));
        }
        Ok(self)
    }

    /// The token manager's settings for a token as `request` asks ([`Self::required`]
    /// has passed: the required values are there).
    pub fn config(&self, request: &TokenRequestArgs) -> TokenConfig {
        let mut c = TokenConfig::new(
            self.token_url.clone().unwrap_or_default(),
            self.client_id.clone().unwrap_or_default(),
            ClientSecret::new(self.client_secret.clone().unwrap_or_default()),
        )
        .auth(self.auth.unwrap_or(AuthMethod::Basic).into());
        c.request_timeout = self.token_timeout.unwrap_or(DEFAULT_TOKEN_TIMEOUT);
        if let Some(s) = &request.scope {
            c = c.scope(s.clone());
        }
        if let Some(a) = &request.audience {
            c = c.audience(a.clone());
        }
        c
    }

    /// A manager whose token requests follow no redirect (the credentials never go to
    /// another address; see `TokenError::Redirect`).
    pub fn manager(&self, request: &TokenRequestArgs) -> anyhow::Result<TokenManager> {
        let http = self
            .http_client(reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()))?;
        Ok(TokenManager::with_parts(
            self.config(request),
            http,
            std::sync::Arc::new(auth_broker_client::SystemClock),
        ))
    }

    /// `builder` trusting the system's roots and the `--ca-file` CAs, built with
    /// aws-lc-rs as the TLS provider.
    pub fn http_client(
        &self,
        mut builder: reqwest::ClientBuilder,
    ) -> anyhow::Result<reqwest::Client> {
        if let Some(path) = &self.ca_file {
            builder = builder.tls_certs_merge(ca_certificates(path)?);
        }
        Ok(auth_broker_client::install_crypto_provider_then(builder)?)
    }
}

/// The CA certificates of a `--ca-file`: at least one, or a clear error.
fn ca_certificates(path: &std::path::Path) -> anyhow::Result<Vec<reqwest::Certificate>> {
    let pem =
        std::fs::read(path).with_context(|| format!("cannot read --ca-file {}", path.display()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .with_context(|| format!("--ca-file {} is not a PEM certificate file", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!(
            "--ca-file {} holds no certificate: expected PEM blocks '-----BEGIN CERTIFICATE-----'",
            path.display()
        );
    }
    Ok(certs)
}

/// `e` with, when a refused server certificate caused it, what to do about it.
pub fn with_tls_hint(e: anyhow::Error) -> anyhow::Error {
    let problem = auth_broker_client::certificate_problem(e.as_ref());
    hint(problem, e)
}

/// `e` with, when a refused server certificate caused `cause`, what to do about it.
pub fn with_tls_hint_from(
    cause: &(dyn std::error::Error + 'static),
    e: anyhow::Error,
) -> anyhow::Error {
    hint(auth_broker_client::certificate_problem(cause), e)
}

fn hint(
    problem: Option<auth_broker_client::CertificateProblem>,
    e: anyhow::Error,
) -> anyhow::Error {
    match problem {
        Some(p) => {
            let todo = tls_todo(&p);
            e.context(format!("{p}: {todo}"))
        }
        None => e,
    }
}

/// What to do about a refused server certificate.
pub fn tls_todo(p: &auth_broker_client::CertificateProblem) -> &'static str {
    use auth_broker_client::CertificateProblem as P;
    match p {
        P::Untrusted => {
            "pass --ca-file FILE (or AUTH_BROKER_CA_FILE) with the CA certificate that signed the server's certificate"
        }
        P::Expired => "the server must renew its certificate (or this machine's clock is wrong)",
        P::WrongName => {
            "use the host name the certificate was issued for, or have the server's certificate include this one"
        }
        _ => "check the server's certificate chain",
    }
}
