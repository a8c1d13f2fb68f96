//! `rumgate group …`, `rumgate post` and `rumgate posts`.

use super::client::{ApiArgs, ApiClient};
use super::tail::render_item;
use crate::api::dto::{Accepted, GroupInfo, GroupList, PostList};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Create a group owned by this node.
    Create {
        #[command(flatten)]
        api: ApiArgs,
        name: String,
        /// Private group: the key stays with the owner instead of travelling in the seed.
        #[arg(long)]
        private: bool,
    },
    /// List joined groups (a syncing group shows a progress bar).
    List {
        #[command(flatten)]
        api: ApiArgs,
        #[arg(long)]
        json: bool,
        /// Refresh every second until no group is syncing.
        #[arg(long)]
        watch: bool,
    },
    /// Join a group from its seed URL.
    Join {
        #[command(flatten)]
        api: ApiArgs,
        seed: String,
    },
    /// Leave a group (`--purge` also deletes its data).
    Leave {
        #[command(flatten)]
        api: ApiArgs,
        group: String,
        #[arg(long)]
        purge: bool,
    },
    /// Print a group's seed URL.
    Seed {
        #[command(flatten)]
        api: ApiArgs,
        group: String,
    },
}

fn print_group(g: &GroupInfo) {
    let sync = if g.sync.state == "syncing" {
        format!(
            "syncing {} {}/{}",
            progress_bar(g.sync.progress, 20),
            g.sync.local_height,
            g.sync.remote_height
        )
    } else {
        g.sync.state.clone()
    };
    println!(
        "{}  {:<24} {:<8} {:<10} height {:<8} {}",
        g.group_id, g.name, g.kind, g.role, g.height, sync
    );
}

/// `[#########-----------]  45%`: a fixed-width text bar (no terminal control codes, so it
/// also reads well in logs and pipes).
pub fn progress_bar(fraction: f64, width: usize) -> String {
    let f = if fraction.is_finite() {
        fraction.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let filled = ((f * width as f64).floor() as usize).min(width);
    format!(
        "[{}{}] {:>3}%",
        "#".repeat(filled),
        "-".repeat(width - filled),
        (f * 100.0).floor() as u32
    )
}

pub async fn group_command(cmd: GroupCommand) -> anyhow::Result<()> {
    match cmd {
        GroupCommand::Create { api, name, private } => {
            let c = ApiClient::from_args(&api)?;
            let kind = if private { "private" } else { "public" };
            let g: GroupInfo = c
                .post(
                    "/api/v1/groups",
                    &serde_json::json!({"name": name, "kind": kind}),
                )
                .await?;
            println!("created group {} ({kind})", g.group_id);
            println!("seed: {}", g.seed);
        }
        GroupCommand::List { api, json, watch } => {
            let c = ApiClient::from_args(&api)?;
            loop {
                let list: serde_json::Value = c.get("/api/v1/groups").await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&list)?);
                    break;
                }
                let list: GroupList = serde_json::from_value(list)?;
                if list.groups.is_empty() {
                    println!(
                        "no groups yet: `rumgate group create NAME` or `rumgate group join SEED`"
                    );
                }
                for g in &list.groups {
                    print_group(g);
                }
                let syncing = list.groups.iter().any(|g| g.sync.state == "syncing");
                if !watch || !syncing {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                println!();
            }
        }
        GroupCommand::Join { api, seed } => {
            let c = ApiClient::from_args(&api)?;
            let g: GroupInfo = c
                .post("/api/v1/groups/join", &serde_json::json!({"seed": seed}))
                .await?;
            println!("joined {} ({}) as {}", g.group_id, g.name, g.role);
        }
        GroupCommand::Leave { api, group, purge } => {
            let c = ApiClient::from_args(&api)?;
            let id = c.resolve_group(&group).await?;
            let _: serde_json::Value = c
                .delete(&format!("/api/v1/groups/{id}?purge={purge}"))
                .await?;
            println!(
                "left {id}{}",
                if purge { " and deleted its data" } else { "" }
            );
        }
        GroupCommand::Seed { api, group } => {
            let c = ApiClient::from_args(&api)?;
            let id = c.resolve_group(&group).await?;
            let v: serde_json::Value = c.get(&format!("/api/v1/groups/{id}/seed")).await?;
            println!("{}", v["seed"].as_str().unwrap_or_default());
        }
    }
    Ok(())
}

pub async fn post_command(api: ApiArgs, group: String, text: String) -> anyhow::Result<()> {
    let c = ApiClient::from_args(&api)?;
    let id = c.resolve_group(&group).await?;
    let a: Accepted = c
        .post(
            &format!("/api/v1/groups/{id}/posts"),
            &serde_json::json!({"content": text}),
        )
        .await?;
    println!("{} {}", a.trx_id, a.status);
    Ok(())
}

pub async fn posts_command(
    api: ApiArgs,
    group: String,
    after: Option<String>,
    limit: usize,
    json: bool,
) -> anyhow::Result<()> {
    let c = ApiClient::from_args(&api)?;
    let id = c.resolve_group(&group).await?;
    let mut path = format!("/api/v1/groups/{id}/posts?limit={limit}");
    if let Some(a) = after {
        path.push_str(&format!("&after={a}"));
    }
    let list: serde_json::Value = c.get(&path).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    let list: PostList = serde_json::from_value(list)?;
    for post in &list.items {
        let mut line = render_item(&post.item);
        if post.deleted {
            line.push_str(" (deleted)");
        } else if post.edits > 0 {
            line.push_str(" (edited)");
        }
        println!("{line}");
    }
    eprintln!("next cursor: {}", list.next_cursor);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn progress_bar_is_fixed_width_and_clamped() {
        assert_eq!(super::progress_bar(0.0, 10), "[----------]   0%");
        assert_eq!(super::progress_bar(0.456, 10), "[####------]  45%");
        assert_eq!(super::progress_bar(1.0, 10), "[##########] 100%");
        assert_eq!(super::progress_bar(7.0, 4), "[####] 100%");
        assert_eq!(super::progress_bar(f64::NAN, 4), "[----]   0%");
    }
}
