//! The integrator's commands: `token`, `call`, `proxy`, `doctor`. They work against any
//! OAuth 2.0 client-credentials endpoint, through the `auth-broker-client` crate.

pub mod call;
pub mod diagnosis;
pub mod doctor;
pub mod proxy;
pub mod token;

use anyhow::Context;
use auth_broker_client::{
    ClientAuth, ClientIdentity, Credential, DpopKey, PrivateKeyJwt, SigningKey, TokenConfig,
    TokenManager,
};
use auth_broker_proto::ClientSecret;
use clap::{Args, ValueEnum};
use std::path::PathBuf;

/// Where to get tokens and as whom. Each value comes from its flag, else its
/// `AUTH_BROKER_*` environment variable (so the secret can stay out of shell history),
/// else the settings file (`auth-broker.toml` or `--config FILE`; keys are the flag
/// names with `_`: `token_url`, `client_id`, `client_secret`, `private_key`, `key_id`,
/// `dpop`, `dpop_key`, `tls_client_cert`, `tls_client_key`, `client_auth`, `ca_file`,
/// `token_timeout`): the same struct is read from both and layered
/// (`crate::settings::layered`), then [`ClientArgs::required`] checks it.
///
/// The client authenticates with one of: a secret (`client_secret_basic`/`_post`), a
/// private key (`private_key_jwt`, RFC 7523), or a TLS client certificate alone
/// (`tls_client_auth`, RFC 8705). DPoP (RFC 9449) goes with any of them.
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
    /// Authenticate with this private key instead of a secret (private_key_jwt, RFC
    /// 7523): a PEM file (PKCS#8, 'EC PRIVATE KEY' or 'RSA PRIVATE KEY') or a private JWK
    /// (JSON). A P-256 key signs ES256, Ed25519 EdDSA, RSA RS256 (PS256 when the JWK
    /// says "alg": "PS256"). Each token request carries a new assertion valid for 60 s.
    /// [file: private_key]
    #[arg(
        long,
        global = true,
        env = "AUTH_BROKER_PRIVATE_KEY",
        value_name = "FILE"
    )]
    pub private_key: Option<PathBuf>,
    /// The `kid` to send in the assertions' header: the id the authorization server
    /// knows the key by. [default: the JWK's kid, else none: the server tries each of
    /// the client's keys]
    #[arg(long, global = true, env = "AUTH_BROKER_KEY_ID", value_name = "KID")]
    pub key_id: Option<String>,
    /// Bind tokens to a key with DPoP (RFC 9449): a key made at start (ES256), a proof
    /// with the token request and a fresh one with every API request, and the server's
    /// nonces (one retry on use_dpop_nonce). [file: dpop = true]
    #[arg(long, global = true, env = "AUTH_BROKER_DPOP", value_parser = clap::builder::FalseyValueParser::new())]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dpop: bool,
    /// Use the DPoP key in this file (PEM or private JWK, as --private-key) instead of
    /// one made at start; implies --dpop. For tokens used outside this process: `token
    /// --dpop` prints a token bound to a key, usable only with proofs signed by it.
    #[arg(long, global = true, env = "AUTH_BROKER_DPOP_KEY", value_name = "FILE")]
    pub dpop_key: Option<PathBuf>,
    /// Present this client certificate (PEM, then intermediates) at the TLS layer, to
    /// the token endpoint and to the API (mutual TLS, RFC 8705). Without a secret or
    /// private key it is the credential (tls_client_auth). Goes with --tls-client-key.
    #[arg(
        long,
        global = true,
        env = "AUTH_BROKER_TLS_CLIENT_CERT",
        value_name = "FILE"
    )]
    pub tls_client_cert: Option<PathBuf>,
    /// The private key of --tls-client-cert (PEM: PKCS#8, SEC1 or PKCS#1).
    #[arg(
        long,
        global = true,
        env = "AUTH_BROKER_TLS_CLIENT_KEY",
        value_name = "FILE"
    )]
    pub tls_client_key: Option<PathBuf>,
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
            .field("private_key", &self.private_key)
            .field("key_id", &self.key_id)
            .field("dpop", &self.dpop)
            .field("dpop_key", &self.dpop_key)
            .field("tls_client_cert", &self.tls_client_cert)
            .field("tls_client_key", &self.tls_client_key)
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
    /// Checks that the endpoint and the credentials are known and fit together, once
    /// flags, environment and file are layered; what is missing or contradictory is bad
    /// usage, named with its three sources.
    pub fn required(self) -> anyhow::Result<Self> {
        self.require(true)
    }

    /// As [`Self::required`], for the admin API (`--admin-url`): the token URL may be
    /// left out, it is then read from the broker's metadata.
    pub fn required_for_admin(self) -> anyhow::Result<Self> {
        self.require(false)
    }

    fn require(self, token_url: bool) -> anyhow::Result<Self> {
        let has_secret = self.client_secret.is_some();
        let has_key = self.private_key.is_some();
        let has_cert = self.tls_client_cert.is_some();
        if has_secret && has_key {
            return Err(call::usage(
                "--private-key and --client-secret are mutually exclusive: a client authenticates either with a secret or with a private key (private_key_jwt). Set one of AUTH_BROKER_CLIENT_SECRET / AUTH_BROKER_PRIVATE_KEY (or client_secret / private_key in auth-broker.toml), not both".into(),
            ));
        }
        if has_cert != self.tls_client_key.is_some() {
            return Err(call::usage(
                "--tls-client-cert and --tls-client-key go together (AUTH_BROKER_TLS_CLIENT_CERT / AUTH_BROKER_TLS_CLIENT_KEY, tls_client_cert / tls_client_key in auth-broker.toml): set both or neither".into(),
            ));
        }
        if self.key_id.is_some() && !has_key {
            return Err(call::usage(
                "--key-id names the key of --private-key, and no --private-key is set".into(),
            ));
        }
        if self.auth.is_some() && !has_secret {
            return Err(call::usage(
                "--auth chooses how a client secret is sent; without --client-secret it has no use (a private key sends an assertion, a client certificate alone its client_id)".into(),
            ));
        }
        let missing: Vec<&str> = [
            ("token_url", token_url && self.token_url.is_none()),
            ("client_id", self.client_id.is_none()),
            ("client_secret", !(has_secret || has_key || has_cert)),
        ]
        .into_iter()
        .filter_map(|(k, missing)| missing.then_some(k))
        .collect();
        if !missing.is_empty() {
            let how: Vec<String> = missing
                .iter()
                .map(|k| {
                    let alternatives = if *k == "client_secret" {
                        " (or a private key: --private-key FILE; or a client certificate alone: --tls-client-cert FILE --tls-client-key FILE)"
                    } else {
                        ""
                    };
                    format!(
                        "--{} / AUTH_BROKER_{} / {k} in auth-broker.toml{alternatives}",
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
    /// has passed: the required values are there): the credential, with the private key
    /// read; the DPoP key, read or made; the client certificate, read and checked
    /// against its key.
    pub fn config(&self, request: &TokenRequestArgs) -> anyhow::Result<TokenConfig> {
        let credential = match (&self.private_key, &self.client_secret) {
            (Some(path), _) => {
                let mut key = SigningKey::from_file(path).context("--private-key")?;
                if let Some(kid) = &self.key_id {
                    key = key.with_kid(kid.clone());
                }
                Credential::PrivateKey(PrivateKeyJwt::new(key))
            }
            (None, Some(secret)) => Credential::Secret(ClientSecret::new(secret.clone())),
            (None, None) => Credential::TlsClientCertificate,
        };
        let mut c = TokenConfig::with_credential(
            self.token_url.clone().unwrap_or_default(),
            self.client_id.clone().unwrap_or_default(),
            credential,
        )
        .auth(self.auth.unwrap_or(AuthMethod::Basic).into());
        c.request_timeout = self.token_timeout.unwrap_or(DEFAULT_TOKEN_TIMEOUT);
        if let Some(s) = &request.scope {
            c = c.scope(s.clone());
        }
        if let Some(a) = &request.audience {
            c = c.audience(a.clone());
        }
        if let Some(path) = &self.dpop_key {
            let key = SigningKey::from_file(path).context("--dpop-key")?;
            c = c.dpop(DpopKey::new(key)?);
        } else if self.dpop {
            c = c.dpop(DpopKey::generate().context("cannot make a DPoP key")?);
        }
        if let Some(id) = self.identity()? {
            c = c.tls_identity(id);
        }
        Ok(c)
    }

    /// The client certificate of `--tls-client-cert`/`--tls-client-key`, if set.
    pub fn identity(&self) -> anyhow::Result<Option<ClientIdentity>> {
        match (&self.tls_client_cert, &self.tls_client_key) {
            (Some(cert), Some(key)) => Ok(Some(ClientIdentity::from_pem_files(cert, key)?)),
            _ => Ok(None),
        }
    }

    /// A manager whose token requests follow no redirect (the credentials never go to
    /// another address; see `TokenError::Redirect`).
    pub fn manager(&self, request: &TokenRequestArgs) -> anyhow::Result<TokenManager> {
        let config = self.config(request)?;
        let http = self.http_client(
            reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()),
            config.tls_identity.as_ref(),
        )?;
        Ok(TokenManager::with_parts(
            config,
            http,
            std::sync::Arc::new(auth_broker_client::SystemClock),
        ))
    }

    /// `builder` trusting the system's roots and the `--ca-file` CAs, presenting
    /// `identity` (the manager's client certificate, for the API too: RFC 8705 §3
    /// certificate-bound tokens), built with aws-lc-rs as the TLS provider.
    pub fn http_client(
        &self,
        mut builder: reqwest::ClientBuilder,
        identity: Option<&ClientIdentity>,
    ) -> anyhow::Result<reqwest::Client> {
        if let Some(path) = &self.ca_file {
            builder = builder.tls_certs_merge(ca_certificates(path)?);
        }
        if let Some(id) = identity {
            builder = id.apply(builder);
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
