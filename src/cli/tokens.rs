//! `rumgate token create|list|revoke`.

use super::client::{ApiArgs, ApiClient};
use crate::api::dto::{TokenInfo, TokenList};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; it is printed once.
    Create {
        #[command(flatten)]
        api: ApiArgs,
        name: String,
        /// admin | read | post | post:<group_id> (repeatable).
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
    },
    /// List tokens (never their secrets).
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Revoke a token by id.
    Revoke {
        #[command(flatten)]
        api: ApiArgs,
        id: String,
    },
}

pub async fn token_command(cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create { api, name, scopes } => {
            let c = ApiClient::from_args(&api)?;
            let t: TokenInfo = c
                .post(
                    "/api/v1/tokens",
                    &serde_json::json!({"name": name, "scopes": scopes}),
                )
                .await?;
            println!("{}", t.token.unwrap_or_default());
            eprintln!(
                "token {} ({}) with scopes {}: store it now, it is not shown again",
                t.id,
                t.name,
                t.scopes.join(", ")
            );
        }
        TokenCommand::List { api } => {
            let c = ApiClient::from_args(&api)?;
            let list: TokenList = c.get("/api/v1/tokens").await?;
            for t in list.tokens {
                let state = if t.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!(
                    "{}  {:<20} {:<8} {}",
                    t.id,
                    t.name,
                    state,
                    t.scopes.join(",")
                );
            }
        }
        TokenCommand::Revoke { api, id } => {
            let c = ApiClient::from_args(&api)?;
            let t: TokenInfo = c.delete(&format!("/api/v1/tokens/{id}")).await?;
            println!("revoked {}", t.id);
        }
    }
    Ok(())
}
