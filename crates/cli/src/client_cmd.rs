//! `auth-broker client ...`.

use crate::cli::ClientCommand;
use anyhow::Context;
use auth_broker_server::admin::{Actor, Admin, Client, NewClient};
use auth_broker_server::redact_url;
use serde_json::json;

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

fn client_json(c: &Client) -> serde_json::Value {
    json!({
        "client_id": c.client_id,
        "name": c.name,
        "scope": c.scopes.join(" "),
        "audience": c.audience,
        "enabled": c.enabled,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
        "previous_secret_expires_at": c.previous_secret_expires_at,
    })
}

fn print_client(c: &Client) {
    out!("client_id:  {}", c.client_id);
    out!("name:       {}", c.name);
    out!(
        "scope:      {}",
        if c.scopes.is_empty() {
            "(none)".to_owned()
        } else {
            c.scopes.join(" ")
        }
    );
    out!(
        "audience:   {}",
        c.audience.as_deref().unwrap_or("(the issuer)")
    );
    out!(
        "enabled:    {}",
        if c.enabled {
            "yes"
        } else {
            "no (token requests are refused)"
        }
    );
    out!("created:    {}", when(c.created_at));
    if let Some(t) = c.previous_secret_expires_at {
        out!("old secret: valid until {}", when(t));
    }
}

fn print_json(v: &serde_json::Value) -> anyhow::Result<()> {
    out!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub async fn run(cmd: ClientCommand, database: &str) -> anyhow::Result<()> {
    let admin = Admin::open(database)
        .await
        .with_context(|| format!("cannot open the store {}", redact_url(database)))?;
    let actor = Actor::cli();
    match cmd {
        ClientCommand::Create {
            name,
            scope,
            audience,
            json,
        } => {
            let (c, secret) = admin
                .create_client(
                    &actor,
                    &NewClient {
                        name,
                        scope,
                        audience,
                    },
                )
                .await?;
            if json {
                let mut v = client_json(&c);
                v["client_secret"] = secret.expose_secret().into();
                print_json(&v)?;
            } else {
                print_client(&c);
                out!("client_secret: {}", secret.expose_secret());
                out!();
                out!(
                    "The secret is shown only now (only a hash is stored): copy it to your secret store."
                );
            }
        }
        ClientCommand::List { json } => {
            let clients = admin.list_clients().await?;
            if json {
                print_json(&serde_json::Value::Array(
                    clients.iter().map(client_json).collect(),
                ))?;
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
                        if c.enabled { "yes" } else { "no" },
                        c.name,
                        c.scopes.join(" ")
                    );
                }
            }
        }
        ClientCommand::Show { id, json } => {
            let c = admin.client(&id).await?;
            if json {
                print_json(&client_json(&c))?;
            } else {
                print_client(&c);
            }
        }
        ClientCommand::Disable { id, json } => {
            set_enabled(&admin, &actor, &id, false, json).await?
        }
        ClientCommand::Enable { id, json } => set_enabled(&admin, &actor, &id, true, json).await?,
        ClientCommand::Delete { id, json } => {
            admin.delete_client(&actor, &id).await?;
            if json {
                print_json(&json!({"client_id": id, "deleted": true}))?;
            } else {
                out!("Deleted client {id}; its token requests are refused from now on.");
            }
        }
        ClientCommand::RotateSecret { id, grace, json } => {
            let rotated = admin.rotate_secret(&actor, &id, grace).await?;
            if json {
                print_json(&json!({
                    "client_id": id,
                    "client_secret": rotated.secret.expose_secret(),
                    "previous_secret_valid_until": rotated.previous_valid_until,
                }))?;
            } else {
                out!("client_id:     {id}");
                out!("client_secret: {}", rotated.secret.expose_secret());
                match rotated.previous_valid_until {
                    Some(until) => out!(
                        "The old secret keeps working for {grace} s (until {}).",
                        when(until)
                    ),
                    None => out!("The old secret no longer works."),
                }
                out!("The new secret is shown only now: copy it to your secret store.");
            }
        }
    }
    Ok(())
}

async fn set_enabled(
    admin: &Admin,
    actor: &Actor,
    id: &str,
    enabled: bool,
    json: bool,
) -> anyhow::Result<()> {
    admin.set_enabled(actor, id, enabled).await?;
    if json {
        print_json(&json!({"client_id": id, "enabled": enabled}))?;
    } else if enabled {
        out!("Enabled client {id}.");
    } else {
        out!("Disabled client {id}; its token requests are refused from now on.");
    }
    Ok(())
}
