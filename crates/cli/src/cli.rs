//! Command-line arguments. Raw flags live here; [`crate::settings`] resolves them
//! (flags, then `AUTH_BROKER_*` environment, then `auth-broker.toml`) into typed settings.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

const ABOUT: &str = "An OAuth 2.0 client-credentials token broker: it trades a client_id and client_secret for a short-lived bearer token (RFC 6749 §4.4, RFC 9068 JWTs).";

const AFTER_HELP: &str = "\
Getting started:
  auth-broker serve --demo          start a broker on ./auth-broker.db with a demo client
  auth-broker client create --name billing --scope \"invoices:read\"
  auth-broker client list
  auth-broker client list --admin-url http://127.0.0.1:8080 --client-id ID
                                    (through a running broker; secret in
                                    AUTH_BROKER_CLIENT_SECRET; the client needs admin:read)
  auth-broker token --token-url URL --client-id ID   (secret in AUTH_BROKER_CLIENT_SECRET)
  auth-broker doctor --token-url URL --client-id ID --api URL

Settings come from flags, then AUTH_BROKER_* environment variables, then
auth-broker.toml in the working directory (or --config FILE).
Exit codes: 0 ok, 1 the operation failed, 2 bad usage.";

#[derive(Debug, Parser)]
#[command(name = "auth-broker", version, about = ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(default)]
pub struct Global {
    /// The store: sqlite://FILE (default sqlite://auth-broker.db, created when missing)
    /// or postgres://USER@HOST/DB for several replicas sharing one store.
    #[arg(
        long,
        global = true,
        env = "AUTH_BROKER_DATABASE_URL",
        value_name = "URL"
    )]
    pub database: Option<String>,
    /// A TOML file of settings (keys as the long flags, e.g. listen = "0.0.0.0:8080").
    /// Default: auth-broker.toml in the working directory, when present.
    #[arg(long, global = true, env = "AUTH_BROKER_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Log lines as text (coloured on a terminal unless NO_COLOR is set) or json (one
    /// object per line). [default: text; file: log_format]
    #[arg(
        long,
        global = true,
        env = "AUTH_BROKER_LOG_FORMAT",
        value_enum,
        value_name = "FORMAT"
    )]
    pub log_format: Option<crate::settings::LogFormat>,
}

/// `Debug` with the database password (if the URL has one) redacted.
impl std::fmt::Debug for Global {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Global")
            .field(
                "database",
                &self.database.as_deref().map(auth_broker_server::redact_url),
            )
            .field("config", &self.config)
            .field("log_format", &self.log_format)
            .finish()
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the broker.
    Serve(ServeArgs),
    /// Manage clients: create, list, show, update, disable, enable, delete,
    /// rotate-secret, revoke-tokens.
    Client(crate::client_cmd::ClientCommandArgs),
    /// Manage signing keys.
    Keys(KeysArgs),
    /// Read the audit trail: every change to clients and keys, newest first.
    Audit(crate::client_cmd::AuditArgs),
    /// Client side: fetch a token and print it (bare, or the whole response with --json).
    Token(crate::client_side::token::TokenArgs),
    /// Client side: make one request signed with a managed token, like curl.
    Call(crate::client_side::call::CallArgs),
    /// Client side: a local proxy that forwards every request to --upstream, signed.
    Proxy(crate::client_side::proxy::ProxyArgs),
    /// Client side: walk the troubleshooting checklist against a token endpoint (and API).
    Doctor(crate::client_side::doctor::DoctorArgs),
}

#[derive(Clone, Debug, Default, Args, serde::Deserialize, serde::Serialize)]
#[serde(default)]
#[command(after_help = "\
Examples:
  auth-broker serve --listen 0.0.0.0:8080 --issuer https://auth.example.com
  auth-broker serve --listen 0.0.0.0:8443 --tls-cert cert.pem --tls-key key.pem

Stop it with Ctrl-C or SIGTERM: in-flight requests finish first.
After renewing the certificate files: kill -HUP <pid> reloads them.
Log level: AUTH_BROKER_LOG (or RUST_LOG), e.g. AUTH_BROKER_LOG=debug.")]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free one (the chosen address is printed).
    /// [default: 127.0.0.1:8080]
    #[arg(long, env = "AUTH_BROKER_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// The issuer URL: the `iss` of every token and the base of every metadata URL.
    /// Set it to the public URL clients use. [default: http://LISTEN-ADDRESS]
    #[arg(long, env = "AUTH_BROKER_ISSUER", value_name = "URL")]
    pub issuer: Option<String>,
    /// Access token lifetime in seconds. [default: 3600]
    #[arg(long, env = "AUTH_BROKER_TOKEN_TTL", value_name = "SECONDS")]
    pub token_ttl: Option<i64>,
    /// JWS algorithm for new tokens: ES256, EdDSA or RS256. [default: ES256]
    #[arg(long, env = "AUTH_BROKER_SIGNING_ALG", value_name = "ALG")]
    pub signing_alg: Option<String>,
    /// Access token format: jwt (RFC 9068, verified offline from the JWKS) or opaque
    /// (random strings, valid only through introspection). [default: jwt]
    #[arg(long, env = "AUTH_BROKER_TOKEN_FORMAT", value_name = "FORMAT")]
    pub token_format: Option<String>,
    /// Rotate the signing key automatically when it is this old, e.g. 30d or 12h.
    /// Replicas coordinate through the store: one rotates, all follow within seconds.
    #[arg(
        long,
        env = "AUTH_BROKER_KEY_ROTATION_INTERVAL",
        value_name = "DURATION"
    )]
    pub key_rotation_interval: Option<String>,
    /// Serve https:// with this certificate chain (PEM, the server's certificate
    /// first, then intermediates). Goes with --tls-key. Reloaded on SIGHUP: new
    /// connections get the new certificate, open ones keep going.
    #[arg(
        long,
        env = "AUTH_BROKER_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(
        long,
        env = "AUTH_BROKER_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// Mutual TLS (RFC 8705): ask TLS clients for a certificate (optional, so other
    /// clients connect as before). FILE holds the PEM certificate(s) of the CA that
    /// issues tls_client_auth clients' certificates; self_signed_tls_client_auth
    /// clients register theirs in their jwks instead. Tokens requested over mutual TLS
    /// are bound to the certificate (cnf.x5t#S256). Needs --tls-cert/--tls-key.
    #[arg(
        long,
        env = "AUTH_BROKER_TLS_CLIENT_CA",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_client_ca: Option<PathBuf>,
    /// Failed client authentications allowed per minute, per client id and per peer
    /// address, before further failures get 429 (successes are never limited).
    /// [default: 20]
    #[arg(long, env = "AUTH_BROKER_AUTH_FAILURES_PER_MINUTE", value_name = "N")]
    pub auth_failures_per_minute: Option<u32>,
    /// How far ahead a private_key_jwt client assertion's exp may be (RFC 7523 §3),
    /// e.g. 5m. Each assertion's jti is remembered until its exp, so it can be used
    /// once. [default: 5m]
    #[arg(
        long,
        env = "AUTH_BROKER_ASSERTION_MAX_LIFETIME",
        value_name = "DURATION"
    )]
    pub assertion_max_lifetime: Option<String>,
    /// Make DPoP proofs at the token endpoint carry a nonce of the broker's (RFC 9449
    /// §8): a proof without one, or with one older than about two minutes, gets 400
    /// use_dpop_nonce and a fresh nonce in the DPoP-Nonce header, which DPoP clients
    /// (auth-broker --dpop, openid-client) follow with one retry. Stops proofs made
    /// ahead of time from being used later. Nonces need no store and are good at
    /// every replica.
    #[arg(long, env = "AUTH_BROKER_DPOP_NONCE")]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dpop_nonce: bool,
    /// Also serve GET /metrics on this address (plain HTTP), with what the public
    /// /metrics leaves out: failed authentications by precise cause (unknown client,
    /// wrong secret, disabled client), which the public one merges so that nobody can
    /// learn whether a client id exists. Bind it where only your monitoring reaches,
    /// e.g. 127.0.0.1:9090.
    #[arg(long, env = "AUTH_BROKER_METRICS_LISTEN", value_name = "IP:PORT")]
    pub metrics_listen: Option<String>,
    /// Export traces to an OpenTelemetry collector over OTLP/HTTP (protobuf), e.g.
    /// http://127.0.0.1:4318 (/v1/traces is appended, as for
    /// OTEL_EXPORTER_OTLP_ENDPOINT). One server span per request, named by its route,
    /// with the request id (x-request-id) as the request_id attribute and the caller's
    /// traceparent as its parent. The OTEL_* variables apply, e.g.
    /// OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.01 to
    /// keep 1% under heavy load, OTEL_EXPORTER_OTLP_HEADERS for an API key.
    #[arg(long, env = "AUTH_BROKER_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// Make sure a client named `demo` exists, give it a fresh secret and print
    /// ready-to-paste curl commands. For trying the broker out, not for production.
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub demo: bool,
}

/// `keys ...`: the subcommand, and the admin API to go through when one is named.
#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(flatten)]
    pub remote: crate::admin_backend::RemoteArgs,
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List signing keys and their state.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Make a new key active; the old one keeps verifying until its tokens expire.
    /// Running brokers switch within seconds.
    Rotate {
        /// Algorithm of the new key: ES256, EdDSA or RS256. [default: ES256]
        #[arg(long, env = "AUTH_BROKER_SIGNING_ALG", value_name = "ALG")]
        signing_alg: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let file = crate::settings::FileSettings::load(cli.global.config.as_deref())?;
    let database_given = cli.global.database.is_some();
    let global = crate::settings::layered(cli.global, file.global.clone())?;
    let database = crate::settings::database_url(&global);
    let format = global.log_format.unwrap_or_default();
    let logs = |default: &str| crate::settings::init_logging(default, format, None);
    let client = |args: crate::client_side::ClientArgs| {
        crate::settings::layered(args, file.client.clone())?.required()
    };
    let request = |args: crate::client_side::TokenRequestArgs| {
        crate::settings::layered(args, file.request.clone())
    };
    let backend = |remote: crate::admin_backend::RemoteArgs| {
        crate::admin_backend::Backend::open(remote, &file, database_given, &database)
    };
    match cli.command {
        Command::Serve(args) => {
            let args = crate::settings::layered(args, file.serve.clone())?;
            let traces = args
                .otlp_endpoint
                .as_deref()
                .map(crate::telemetry::Traces::otlp)
                .transpose()?;
            crate::settings::init_logging("info", format, traces.as_ref());
            let served = crate::serve_cmd::run(args, &database, traces.as_ref()).await;
            if let Some(traces) = traces {
                traces.shutdown().await;
            }
            served
        }
        Command::Client(args) => {
            logs("warn");
            let backend = backend(args.remote).await?;
            crate::client_cmd::run(args.command, &backend).await
        }
        Command::Keys(args) => {
            logs("warn");
            let backend = backend(args.remote).await?;
            crate::keys_cmd::run(args.command, &backend, file.serve.signing_alg.clone()).await
        }
        Command::Audit(mut args) => {
            logs("warn");
            let backend = backend(std::mem::take(&mut args.remote)).await?;
            crate::client_cmd::audit(args, &backend).await
        }
        Command::Token(mut args) => {
            args.client = client(args.client)?;
            args.request = request(args.request)?;
            logs("warn");
            crate::client_side::token::run(args).await
        }
        Command::Call(mut args) => {
            args.client = client(args.client)?;
            args.request = request(args.request)?;
            // `call` prints the 401 hint itself, once; the middleware's line would repeat
            // it. `-s`: nothing at all on stderr, unless AUTH_BROKER_LOG asks.
            logs(if args.silent {
                "off"
            } else {
                "warn,auth_broker_client::middleware=error"
            });
            crate::client_side::call::run(args).await
        }
        Command::Proxy(mut args) => {
            args.client = client(args.client)?;
            args.request = request(args.request)?;
            logs("info");
            crate::client_side::proxy::run(args).await
        }
        Command::Doctor(mut args) => {
            args.client = client(args.client)?;
            args.request = request(args.request)?;
            logs("error");
            crate::client_side::doctor::run(args).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parsed settings end up in `{:?}` (a debug log, a panic): the client secret
    /// and the database password must not.
    #[test]
    fn debug_of_the_parsed_command_line_hides_secrets() {
        let secret = "abs_cli-secret-value-0123456789";
        let password = "db-pa55word";
        let db = format!("postgres://broker:{password}@db.example/auth");
        for cmd in [
            vec!["token", "--token-url", "http://x/t", "--client-id", "app"],
            vec![
                "call",
                "--token-url",
                "http://x/t",
                "--client-id",
                "app",
                "http://api/",
            ],
            vec![
                "proxy",
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                "http://u/",
                "--token-url",
                "http://x/t",
                "--client-id",
                "app",
            ],
            vec!["doctor", "--token-url", "http://x/t", "--client-id", "app"],
            vec![
                "client",
                "list",
                "--admin-url",
                "http://broker/",
                "--client-id",
                "app",
            ],
            vec![
                "audit",
                "--admin-url",
                "http://broker/",
                "--client-id",
                "app",
            ],
        ] {
            let args = [
                "auth-broker",
                "--database",
                &db,
                cmd[0],
                "--client-secret",
                secret,
            ]
            .into_iter()
            .chain(cmd[1..].iter().copied());
            let cli = Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
            let d = format!("{cli:?} {cli:#?}");
            assert!(d.contains("app") && d.contains("db.example"), "{d}");
            for s in [secret, &secret[4..], password] {
                assert!(!d.contains(s), "{cmd:?}: {d}");
            }
        }
        let file: crate::settings::FileSettings = toml::from_str(&format!(
            "database = \"{db}\"\nclient_id = \"app\"\nclient_secret = \"{secret}\"\nclient_secrett = \"{secret}\"\nscope = \"a\"\nadmin_url = \"http://broker/\""
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(file.global.database.is_some() && file.client.client_secret.is_some());
        assert!(file.request.scope.is_some() && file.remote.admin_url.is_some());
        let d = format!("{file:?}");
        assert!(d.contains("app"), "{d}");
        for s in [secret, &secret[4..], password] {
            assert!(!d.contains(s), "{d}");
        }
    }
}
