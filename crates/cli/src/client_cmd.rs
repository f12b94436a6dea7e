//! `auth-broker client ...` and `auth-broker audit`: through the broker's change
//! service, with one set of setting names (INTERFACE §5) and the admin API's JSON.

use crate::admin_backend::Backend;
use anyhow::Context;
use auth_broker_proto::admin::{AuditEvent, AuthMethod, Client, ClientSettings};
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

/// `client ...`: the subcommand, and the admin API to go through when one is named.
#[derive(Debug, Args)]
pub struct ClientCommandArgs {
    #[command(flatten)]
    pub remote: crate::admin_backend::RemoteArgs,
    #[command(subcommand)]
    pub command: ClientCommand,
}

/// `client ...`.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client; prints its id and secret (the secret only this once).
    #[command(after_help = "\
Examples:
  auth-broker client create --name billing --scope \"invoices:read invoices:write\"
  auth-broker client create --name portal --audience https://api.example.com \\
      --audience https://files.example.com --token-ttl 900 --tokens-per-minute 60 \\
      --claim tenant='\"acme\"' --contact ops@example.com --secret-expires-in 90d

Only a hash of the secret is stored: copy it now.")]
    Create {
        /// A unique, human-readable name.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        settings: SettingFlags,
        #[arg(long)]
        json: bool,
    },
    /// List clients.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one client, every setting.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Change a client's settings; only the flags given change.
    #[command(after_help = "\
Examples:
  auth-broker client update ID --scope \"invoices:read\" --tokens-per-minute 120
  auth-broker client update ID --claim tenant=null       (remove one extra claim)
  auth-broker client update ID --token-ttl default --tokens-per-minute none

A list flag (--audience, --contact) replaces the whole list; give it once with ''
to empty the list. The change applies from the next token request on, on every
replica.")]
    Update {
        id: String,
        /// A new unique name.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        settings: SettingFlags,
        #[arg(long)]
        json: bool,
    },
    /// Refuse the client's token requests from the next request on.
    Disable {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Accept the client's token requests again.
    Enable {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove the client for good.
    Delete {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Give the client a new secret (printed once). With --grace, the old secret
    /// keeps working for that many seconds so deployments can switch over.
    RotateSecret {
        id: String,
        /// Seconds the old secret stays valid. [default: 0, it stops at once]
        #[arg(long, default_value_t = 0, value_name = "SECONDS")]
        grace: u64,
        #[arg(long)]
        json: bool,
    },
    /// Make every token issued to the client so far inactive, from the next request on
    /// (introspection, token-info, guards in introspection mode; JWT-mode guards only
    /// see it when the tokens expire).
    RevokeTokens {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

/// The settings `client create` and `client update` take (INTERFACE §5).
#[derive(Debug, Default, Args)]
pub struct SettingFlags {
    /// The scopes the client may request, space separated. A token request without
    /// `scope` is granted all of them.
    #[arg(long)]
    pub scope: Option<String>,
    /// An `aud` its tokens may carry (repeatable); the first is the default, a token
    /// request picks another with audience= or resource=. [default: the issuer]
    #[arg(long = "audience", value_name = "AUD")]
    pub audience: Vec<String>,
    /// Its tokens' lifetime in seconds ('default': the broker's --token-ttl).
    #[arg(long, value_name = "SECONDS")]
    pub token_ttl: Option<String>,
    /// A static claim for its JWTs, NAME=JSON (repeatable), e.g. tenant='"acme"' or
    /// tier=2; NAME=null removes one (update). Registered names are refused.
    #[arg(long = "claim", value_name = "NAME=JSON")]
    pub claim: Vec<String>,
    /// A cap on successful token requests per minute ('none': no cap).
    #[arg(long, value_name = "N")]
    pub tokens_per_minute: Option<String>,
    /// How it authenticates (RFC 7591 token_endpoint_auth_method): client_secret_basic
    /// (default; client_secret_post is accepted too), private_key_jwt (needs --jwks or
    /// --jwks-uri), tls_client_auth (needs --tls-subject-dn), self_signed_tls_client_auth
    /// (needs --jwks with the certificate).
    #[arg(long, value_name = "METHOD")]
    pub auth_method: Option<String>,
    /// Its public keys: a file holding a JWK Set (RFC 7517 §5), or a single public
    /// JWK; '' removes them (update).
    #[arg(long, value_name = "FILE", conflicts_with = "jwks_uri")]
    pub jwks: Option<std::path::PathBuf>,
    /// Where it publishes its public keys instead: an https URL; '' removes it (update).
    #[arg(long, value_name = "URL")]
    pub jwks_uri: Option<String>,
    /// For tls_client_auth: its certificate's subject DN, e.g.
    /// 'CN=erp.acme.example,O=Acme' (RFC 4514); '' removes it (update).
    #[arg(long = "tls-subject-dn", value_name = "DN")]
    pub tls_subject_dn: Option<String>,
    /// Its tokens must be DPoP-bound (RFC 9449): token requests without a DPoP proof are
    /// refused. 'false' lifts it (update).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub require_dpop: Option<bool>,
    /// The secret stops working this long after it is issued, e.g. 90d ('never').
    #[arg(long, value_name = "DURATION")]
    pub secret_expires_in: Option<String>,
    /// Who to ask about this client (repeatable).
    #[arg(long = "contact", value_name = "EMAIL")]
    pub contact: Vec<String>,
    /// Free text for operators.
    #[arg(long)]
    pub description: Option<String>,
}

impl SettingFlags {
    /// The flags given, as an RFC 7396 merge patch of the client's settings.
    fn patch(&self) -> anyhow::Result<Map<String, Value>> {
        let mut p = Map::new();
        if let Some(s) = &self.scope {
            p.insert("scope".into(), s.clone().into());
        }
        if !self.audience.is_empty() {
            p.insert("audience".into(), list(&self.audience));
        }
        if let Some(t) = &self.token_ttl {
            let v = match t.as_str() {
                "default" | "none" => Value::Null,
                n => n
                    .parse::<u64>()
                    .with_context(|| {
                        format!("--token-ttl '{n}' is not a number of seconds (or 'default')")
                    })?
                    .into(),
            };
            p.insert("access_token_ttl".into(), v);
        }
        if !self.claim.is_empty() {
            let mut claims = Map::new();
            for c in &self.claim {
                let (name, value) = c.split_once('=').with_context(|| {
                    format!("--claim '{c}' is not NAME=JSON; e.g. --claim tenant='\"acme\"'")
                })?;
                let value: Value = serde_json::from_str(value).with_context(|| {
                    format!("--claim {name}: '{value}' is not JSON; a string needs quotes: {name}='\"{value}\"'")
                })?;
                claims.insert(name.to_owned(), value);
            }
            p.insert("extra_claims".into(), Value::Object(claims));
        }
        if let Some(n) = &self.tokens_per_minute {
            let v = match n.as_str() {
                "none" | "default" => Value::Null,
                n => n
                    .parse::<u32>()
                    .with_context(|| {
                        format!("--tokens-per-minute '{n}' is not a number (or 'none')")
                    })?
                    .into(),
            };
            p.insert("tokens_per_minute".into(), v);
        }
        if let Some(m) = &self.auth_method {
            let m: AuthMethod = m.parse().map_err(anyhow::Error::msg)?;
            p.insert("token_endpoint_auth_method".into(), m.as_str().into());
        }
        if let Some(path) = &self.jwks {
            let v = if path.as_os_str().is_empty() {
                Value::Null
            } else {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read --jwks {}", path.display()))?;
                let v: Value = serde_json::from_str(&text).with_context(|| {
                    format!("--jwks {}: not JSON (a JWK Set or a JWK)", path.display())
                })?;
                // A single JWK is a set of one.
                if v.get("keys").is_none() && v.get("kty").is_some() {
                    serde_json::json!({ "keys": [v] })
                } else {
                    v
                }
            };
            p.insert("jwks".into(), v);
        }
        if let Some(u) = &self.jwks_uri {
            let v = if u.is_empty() {
                Value::Null
            } else {
                u.clone().into()
            };
            p.insert("jwks_uri".into(), v);
        }
        if let Some(dn) = &self.tls_subject_dn {
            let v = if dn.is_empty() {
                Value::Null
            } else {
                dn.clone().into()
            };
            p.insert("tls_client_auth_subject_dn".into(), v);
        }
        if let Some(b) = self.require_dpop {
            p.insert("dpop_bound_access_tokens".into(), b.into());
        }
        if let Some(d) = &self.secret_expires_in {
            let at = match d.as_str() {
                "never" | "0" => 0,
                d => {
                    let d = humantime::parse_duration(d).with_context(|| {
                        format!("--secret-expires-in '{d}' is not a duration; e.g. 90d, 12h (or 'never')")
                    })?;
                    now().saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                }
            };
            p.insert("client_secret_expires_at".into(), at.into());
        }
        if !self.contact.is_empty() {
            p.insert("contacts".into(), list(&self.contact));
        }
        if let Some(d) = &self.description {
            p.insert("description".into(), d.clone().into());
        }
        Ok(p)
    }
}

/// A repeatable flag as a list; a single '' empties it.
fn list(values: &[String]) -> Value {
    Value::Array(
        values
            .iter()
            .filter(|v| !v.is_empty())
            .map(|v| Value::String(v.clone()))
            .collect(),
    )
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

pub fn when(ts: i64) -> String {
    u64::try_from(ts)
        .ok()
        .map(|s| {
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(s),
            )
            .to_string()
        })
        .unwrap_or_else(|| ts.to_string())
}

fn or_none(s: &str) -> &str {
    if s.is_empty() { "(none)" } else { s }
}

fn print_client(c: &Client) {
    let s = &c.settings;
    out!("client_id:    {}", c.client_id);
    out!("name:         {}", s.client_name);
    out!("scope:        {}", or_none(&s.scope));
    out!(
        "audience:     {}",
        if s.audience.is_empty() {
            "(the issuer)".to_owned()
        } else {
            s.audience.join(" ")
        }
    );
    out!(
        "enabled:      {}",
        if s.enabled {
            "yes"
        } else {
            "no (token requests are refused)"
        }
    );
    out!(
        "token ttl:    {}",
        s.access_token_ttl
            .map_or("(the broker's --token-ttl)".to_owned(), |t| format!(
                "{t} s"
            ))
    );
    out!(
        "tokens/min:   {}",
        s.tokens_per_minute
            .map_or("(no cap)".to_owned(), |n| n.to_string())
    );
    if !s.extra_claims.is_empty() {
        out!(
            "claims:       {}",
            serde_json::to_string(&s.extra_claims).unwrap_or_default()
        );
    }
    out!("auth method:  {}", s.token_endpoint_auth_method);
    if let Some(jwks) = &s.jwks {
        let n = jwks
            .get("keys")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        out!("jwks:         {n} public key(s)");
    }
    if let Some(u) = &s.jwks_uri {
        out!("jwks_uri:     {u}");
    }
    if let Some(dn) = &s.tls_client_auth_subject_dn {
        out!("subject DN:   {dn}");
    }
    if s.dpop_bound_access_tokens {
        out!("DPoP:         required (tokens are DPoP-bound)");
    }
    out!(
        "secret:       {}",
        match s.client_secret_expires_at {
            0 => "never expires".to_owned(),
            t => format!("expires {}", when(t)),
        }
    );
    if let Some(t) = c.previous_secret_expires_at {
        out!("old secret:   valid until {}", when(t));
    }
    if let Some(t) = c.tokens_revoked_before {
        out!("revoked:      every token issued up to {}", when(t));
    }
    if !s.contacts.is_empty() {
        out!("contacts:     {}", s.contacts.join(", "));
    }
    if !s.description.is_empty() {
        out!("description:  {}", s.description);
    }
    out!("created:      {}", when(c.created_at));
    out!("updated:      {}", when(c.updated_at));
    out!("version:      {}", c.version);
}

fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    out!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub async fn run(cmd: ClientCommand, backend: &Backend) -> anyhow::Result<()> {
    match cmd {
        ClientCommand::Create {
            name,
            settings,
            json,
        } => {
            let mut patch = settings.patch()?;
            patch.insert("client_name".into(), name.into());
            let settings: ClientSettings = serde_json::from_value(Value::Object(patch))
                .context("the settings do not fit together")?;
            let created = backend.create(settings).await?;
            if json {
                print_json(&created)?;
            } else {
                print_client(&created.client);
                match &created.client_secret {
                    Some(secret) => {
                        out!("client_secret: {secret}");
                        out!();
                        out!(
                            "The secret is shown only now (only a hash is stored): copy it to your secret store."
                        );
                    }
                    None => {
                        out!();
                        out!(
                            "No secret: this client authenticates with a client assertion signed by its private key (auth-broker token --client-id {} --private-key KEY.pem).",
                            created.client.client_id
                        );
                    }
                }
            }
        }
        ClientCommand::List { json } => {
            let clients = backend.list().await?;
            if json {
                print_json(&clients)?;
            } else if clients.is_empty() {
                out!(
                    "No clients yet. Create one: auth-broker client create --name NAME [--scope \"a b\"]"
                );
            } else {
                out!("{:<34} {:<8} {:<24} SCOPE", "CLIENT_ID", "ENABLED", "NAME");
                for c in &clients {
                    out!(
                        "{:<34} {:<8} {:<24} {}",
                        c.client_id,
                        if c.settings.enabled { "yes" } else { "no" },
                        c.settings.client_name,
                        c.settings.scope
                    );
                }
            }
        }
        ClientCommand::Show { id, json } => {
            let c = backend.show(&id).await?;
            if json {
                print_json(&c)?;
            } else {
                print_client(&c);
            }
        }
        ClientCommand::Update {
            id,
            name,
            settings,
            json,
        } => {
            let mut patch = settings.patch()?;
            if let Some(n) = name {
                patch.insert("client_name".into(), n.into());
            }
            if patch.is_empty() {
                return Err(crate::client_side::call::UsageError(
                    "nothing to change: give at least one setting flag (see --help)".into(),
                )
                .into());
            }
            let c = backend.update(&id, Value::Object(patch)).await?;
            if json {
                print_json(&c)?;
            } else {
                print_client(&c);
            }
        }
        ClientCommand::Disable { id, json } => {
            let c = backend.update(&id, json!({"enabled": false})).await?;
            if json {
                print_json(&c)?;
            } else {
                out!("Disabled client {id}; its token requests are refused from now on.");
            }
        }
        ClientCommand::Enable { id, json } => {
            let c = backend.update(&id, json!({"enabled": true})).await?;
            if json {
                print_json(&c)?;
            } else {
                out!("Enabled client {id}.");
            }
        }
        ClientCommand::Delete { id, json } => {
            backend.delete(&id).await?;
            if json {
                print_json(&json!({"client_id": id, "deleted": true}))?;
            } else {
                out!("Deleted client {id}; its token requests are refused from now on.");
            }
        }
        ClientCommand::RotateSecret { id, grace, json } => {
            let rotated = backend.rotate_secret(&id, grace).await?;
            if json {
                print_json(&rotated)?;
            } else {
                out!("client_id:     {id}");
                out!("client_secret: {}", rotated.client_secret);
                match rotated.previous_secret_expires_at {
                    Some(until) => out!(
                        "The old secret keeps working for {grace} s (until {}).",
                        when(until)
                    ),
                    None => out!("The old secret no longer works."),
                }
                if rotated.client_secret_expires_at != 0 {
                    out!(
                        "The new secret expires {}.",
                        when(rotated.client_secret_expires_at)
                    );
                }
                out!("The new secret is shown only now: copy it to your secret store.");
            }
        }
        ClientCommand::RevokeTokens { id, json } => {
            let c = backend.revoke_tokens(&id).await?;
            if json {
                print_json(&c)?;
            } else {
                out!(
                    "Every token issued to {id} up to {} is inactive from now on (introspection, token-info, introspecting guards).",
                    c.tokens_revoked_before.map(when).unwrap_or_default()
                );
                out!(
                    "Guards that verify JWTs offline accept them until they expire; use short token lifetimes (--token-ttl) or introspection where that matters."
                );
            }
        }
    }
    Ok(())
}

/// `audit`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  auth-broker audit --client 1f0c... --since 2026-12-01T00:00:00Z
  auth-broker audit --action client.secret.rotate --json")]
pub struct AuditArgs {
    /// Only the events of this client (or key id).
    #[arg(long = "client", value_name = "ID")]
    pub client: Option<String>,
    /// Only events of this action (client.create, client.update, client.delete,
    /// client.secret.rotate, client.tokens.revoke, token.revoke, key.rotate).
    #[arg(long)]
    pub action: Option<String>,
    /// Only events since then: RFC 3339 (2026-12-01T00:00:00Z) or Unix seconds.
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// At most this many events, newest first. [default: 100]
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub remote: crate::admin_backend::RemoteArgs,
}

fn print_event(e: &AuditEvent) {
    let changes: Vec<String> = e
        .changes
        .iter()
        .map(|(k, v)| match v.as_array().map(Vec::as_slice) {
            Some([old, new]) => format!("{k}: {old} -> {new}"),
            _ => format!("{k}: {v}"),
        })
        .collect();
    out!(
        "{}  {:<24} {:<22} {}  {}",
        e.at,
        e.actor,
        e.action,
        e.target,
        changes.join("; ")
    );
}

pub async fn audit(args: AuditArgs, backend: &Backend) -> anyhow::Result<()> {
    let events = backend
        .audit(
            args.client.as_deref(),
            args.action.as_deref(),
            args.since.as_deref(),
            args.limit,
        )
        .await?;
    if args.json {
        print_json(&events)?;
    } else if events.is_empty() {
        out!("No audit events match.");
    } else {
        for e in &events {
            print_event(e);
        }
    }
    Ok(())
}
