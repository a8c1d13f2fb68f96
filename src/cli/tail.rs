//! `rumgate tail`: follows a group's stream, reconnecting and resuming from its cursor.

use super::client::{ApiArgs, ApiClient};
use crate::api::dto::GroupInfo;
use crate::engine::feed::ItemView;
use anyhow::bail;

/// One line per item: `[cursor] #height sender: text`.
pub fn render_item(item: &ItemView) -> String {
    let text = match &item.object {
        None => "<encrypted>".to_string(),
        Some(o) => match o.get("type").and_then(|t| t.as_str()) {
            Some("Note") => o["content"].as_str().unwrap_or_default().to_string(),
            Some("Image") => format!("[image] {}", o["content"].as_str().unwrap_or_default()),
            Some("Like") => format!("likes {}", o["object"].as_str().unwrap_or_default()),
            Some("Delete") => format!("deleted {}", o["object"].as_str().unwrap_or_default()),
            Some("Update") => format!(
                "edited {}: {}",
                o["object"]["id"].as_str().unwrap_or_default(),
                o["object"]["content"].as_str().unwrap_or_default()
            ),
            _ => o.to_string(),
        },
    };
    let sender = item.sender.get(..8).unwrap_or(&item.sender);
    format!("[{}] #{} {}: {}", item.cursor, item.height, sender, text)
}

/// Follows the SSE stream, reconnecting with `Last-Event-ID` so nothing is missed or repeated.
pub async fn tail_command(
    api: ApiArgs,
    group: String,
    after: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    use futures::StreamExt;
    let c = ApiClient::from_args(&api)?;
    let id = c.resolve_group(&group).await?;
    let mut cursor = match after {
        Some(a) => a,
        // Only new items: start at the group's current end.
        None => {
            c.get::<GroupInfo>(&format!("/api/v1/groups/{id}"))
                .await?
                .cursor
        }
    };
    let http = reqwest::Client::builder().build()?;
    let mut backoff = std::time::Duration::from_millis(500);
    loop {
        let mut req = http
            .get(format!("{}/api/v1/groups/{id}/stream", c.base))
            .bearer_auth(&c.token);
        if !cursor.is_empty() {
            req = req.header("Last-Event-ID", &cursor);
        }
        match req.send().await {
            Ok(resp) if resp.status().is_success() => {
                backoff = std::time::Duration::from_millis(500);
                let mut events = eventsource_stream::Eventsource::eventsource(resp.bytes_stream());
                while let Some(ev) = events.next().await {
                    let Ok(ev) = ev else { break };
                    match ev.event.as_str() {
                        "resume" => {
                            let v: serde_json::Value =
                                serde_json::from_str(&ev.data).unwrap_or_default();
                            if let Some(a) = v["after"].as_str() {
                                cursor = a.to_string();
                            }
                            eprintln!("(server asked to resume from {cursor}; reconnecting)");
                            break;
                        }
                        "error" => eprintln!("stream error: {}", ev.data),
                        _ => {
                            if json {
                                println!("{}", ev.data);
                            } else if let Ok(item) = serde_json::from_str::<ItemView>(&ev.data) {
                                println!("{}", render_item(&item));
                            }
                            if !ev.id.is_empty() {
                                cursor = ev.id;
                            }
                        }
                    }
                }
            }
            Ok(resp) => {
                let status = resp.status();
                let body = resp.text().await.unwrap_or_default();
                if status.is_client_error() {
                    bail!("{status}: {body}");
                }
                eprintln!("(stream answered {status}; retrying)");
            }
            Err(e) => eprintln!("(cannot reach the node: {e}; retrying)"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(std::time::Duration::from_secs(30));
    }
}
