//! `rumgate gateway …` and `rumgate link …`.

use super::client::{ApiArgs, ApiClient};
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum GatewayCommand {
    /// Add an account: `webhook NAME`, `telegram NAME --token-file F`, `mixin NAME --keystore-file F`.
    Add {
        #[command(flatten)]
        api: ApiArgs,
        /// telegram | mixin | webhook
        kind: String,
        name: String,
        /// Telegram bot token (prefer --token-file: command lines are visible to other users).
        #[arg(long)]
        token: Option<String>,
        /// File with the Telegram bot token.
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// Mixin bot keystore JSON file.
        #[arg(long)]
        keystore_file: Option<PathBuf>,
        /// Bot API base URL (self-hosted Telegram Bot API server, or Mixin API host).
        #[arg(long)]
        api_url: Option<String>,
        /// Mixin Blaze websocket URL (default wss://blaze.mixin.one/).
        #[arg(long)]
        blaze_url: Option<String>,
    },
    /// List accounts (secrets are never shown).
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Remove an account no link uses.
    Remove {
        #[command(flatten)]
        api: ApiArgs,
        gateway: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum LinkCommand {
    /// Link a group with a chat: `--group G --gateway GW --chat C --direction both`.
    Add {
        #[command(flatten)]
        api: ApiArgs,
        /// Group id or unique name.
        #[arg(long)]
        group: String,
        /// Gateway id or name.
        #[arg(long)]
        gateway: String,
        /// Telegram chat id, Mixin conversation id, or the outbound webhook URL.
        #[arg(long, default_value = "")]
        chat: String,
        /// in | out | both
        #[arg(long, default_value = "both")]
        direction: String,
        /// Deliver the last N posts first.
        #[arg(long, default_value_t = 0)]
        backfill: u64,
        /// Prefix per message ({name}, {id}).
        #[arg(long)]
        nick_format: Option<String>,
        /// Webhook links: standard | github | plain | slack | discord.
        #[arg(long)]
        webhook_format: Option<String>,
        /// Webhook links: the signing/verification secret (whsec_… for standard).
        #[arg(long)]
        webhook_secret: Option<String>,
        /// Webhook links: allow loopback/private targets (tests, LAN receivers).
        #[arg(long)]
        allow_private_target: bool,
    },
    /// List links with their health.
    List {
        #[command(flatten)]
        api: ApiArgs,
        #[arg(long)]
        json: bool,
    },
    /// One link's full status.
    Show {
        #[command(flatten)]
        api: ApiArgs,
        id: String,
    },
    /// Remove a link.
    Remove {
        #[command(flatten)]
        api: ApiArgs,
        id: String,
    },
    /// Deliver a link's dead letters again.
    Retry {
        #[command(flatten)]
        api: ApiArgs,
        id: String,
    },
}

pub async fn gateway_command(cmd: GatewayCommand) -> anyhow::Result<()> {
    match cmd {
        GatewayCommand::Add {
            api,
            kind,
            name,
            token,
            token_file,
            keystore_file,
            api_url,
            blaze_url,
        } => {
            let c = ApiClient::from_args(&api)?;
            let mut body = serde_json::json!({"kind": kind, "name": name});
            if let Some(t) = token {
                body["token"] = t.into();
            }
            if let Some(f) = token_file {
                body["token_file"] = f.display().to_string().into();
            }
            if let Some(f) = keystore_file {
                body["keystore_file"] = f.display().to_string().into();
            }
            if let Some(u) = api_url {
                body["api_url"] = u.into();
            }
            if let Some(u) = blaze_url {
                body["blaze_url"] = u.into();
            }
            let v: serde_json::Value = c.post("/api/v1/gateways", &body).await?;
            println!(
                "added {} gateway {} ({})",
                v["kind"].as_str().unwrap_or_default(),
                v["name"].as_str().unwrap_or_default(),
                v["id"].as_str().unwrap_or_default()
            );
        }
        GatewayCommand::List { api } => {
            let c = ApiClient::from_args(&api)?;
            let v: serde_json::Value = c.get("/api/v1/gateways").await?;
            for g in v["gateways"].as_array().cloned().unwrap_or_default() {
                println!(
                    "{}  {:<10} {}",
                    g["id"].as_str().unwrap_or_default(),
                    g["kind"].as_str().unwrap_or_default(),
                    g["name"].as_str().unwrap_or_default()
                );
            }
        }
        GatewayCommand::Remove { api, gateway } => {
            let c = ApiClient::from_args(&api)?;
            let _: serde_json::Value = c.delete(&format!("/api/v1/gateways/{gateway}")).await?;
            println!("removed {gateway}");
        }
    }
    Ok(())
}

fn print_link(l: &serde_json::Value) {
    let s = |k: &str| l[k].as_str().unwrap_or_default().to_string();
    println!(
        "{}  {:<8} {:<4} {:<9} depth {:<6} delivered {:<8} {}{}",
        s("id"),
        s("kind"),
        s("direction"),
        s("health"),
        l["outbox_depth"],
        s("delivered_cursor"),
        s("chat"),
        l["last_error"]
            .as_str()
            .map(|e| format!("  ({e})"))
            .unwrap_or_default()
    );
}

pub async fn link_command(cmd: LinkCommand) -> anyhow::Result<()> {
    match cmd {
        LinkCommand::Add {
            api,
            group,
            gateway,
            chat,
            direction,
            backfill,
            nick_format,
            webhook_format,
            webhook_secret,
            allow_private_target,
        } => {
            let c = ApiClient::from_args(&api)?;
            let gid = c.resolve_group(&group).await?;
            let mut body = serde_json::json!({
                "group_id": gid, "gateway_id": gateway, "chat": chat,
                "direction": direction, "backfill": backfill,
            });
            if let Some(n) = nick_format {
                body["nick_format"] = n.into();
            }
            if webhook_format.is_some() || webhook_secret.is_some() || allow_private_target {
                let mut w = serde_json::json!({"format": webhook_format.unwrap_or_else(|| "standard".into())});
                if let Some(sec) = webhook_secret {
                    w["secret"] = sec.into();
                }
                if allow_private_target {
                    w["allow_private_target"] = true.into();
                }
                body["webhook"] = w;
            }
            let l: serde_json::Value = c.post("/api/v1/links", &body).await?;
            println!("added link {}", l["id"].as_str().unwrap_or_default());
            if let Some(url) = l["inbound_url"].as_str() {
                println!("inbound webhook URL: {}{url}", c.base);
            }
        }
        LinkCommand::List { api, json } => {
            let c = ApiClient::from_args(&api)?;
            let v: serde_json::Value = c.get("/api/v1/links").await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                for l in v["links"].as_array().cloned().unwrap_or_default() {
                    print_link(&l);
                }
            }
        }
        LinkCommand::Show { api, id } => {
            let c = ApiClient::from_args(&api)?;
            let v: serde_json::Value = c.get(&format!("/api/v1/links/{id}")).await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        LinkCommand::Remove { api, id } => {
            let c = ApiClient::from_args(&api)?;
            let _: serde_json::Value = c.delete(&format!("/api/v1/links/{id}")).await?;
            println!("removed link {id}");
        }
        LinkCommand::Retry { api, id } => {
            let c = ApiClient::from_args(&api)?;
            let v: serde_json::Value = c
                .post(&format!("/api/v1/links/{id}/retry"), &serde_json::json!({}))
                .await?;
            println!("retrying {} dead letter(s)", v["retrying"]);
        }
    }
    Ok(())
}
