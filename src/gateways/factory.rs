//! The one place that knows the concrete adapter crates: validates configs, builds instances,
//! verifies inbound hooks.

use super::inbound::HookError;
use super::Account;
use crate::store::{AccountRecord, LinkRecord};
use rumgate_gateway::{DynGateway, InboundEvent};
use serde_json::Value;

pub const KINDS: &[&str] = &["telegram", "mixin", "webhook"];

fn unavailable(kind: &str) -> String {
    format!("the {kind} adapter is not available in this build")
}

/// Checks an account's configuration and returns what to store.
pub fn validate_account(kind: &str, config: Value) -> Result<Value, String> {
    match kind {
        "webhook" => match config {
            Value::Object(m) if m.is_empty() => Ok(Value::Object(m)),
            Value::Object(m) => Err(format!(
                "a webhook gateway takes no settings (got {}); per-link settings go in the link's `webhook` object",
                m.keys().cloned().collect::<Vec<_>>().join(", ")
            )),
            _ => Err("config must be an object".into()),
        },
        "telegram" | "mixin" => Err(unavailable(kind)),
        other => Err(format!("unknown gateway kind {other:?} (known: {})", KINDS.join(", "))),
    }
}

/// The shared adapter instance of an account (None for webhooks, which are per link).
pub fn account_gateway(record: &AccountRecord) -> Result<Option<DynGateway>, String> {
    match record.kind.as_str() {
        "webhook" => Ok(None),
        other => Err(unavailable(other)),
    }
}

/// Checks a link's options for its gateway kind and returns what to store.
pub fn validate_link(
    kind: &str,
    direction: &str,
    chat: &str,
    options: Value,
) -> Result<Value, String> {
    let _ = (direction, chat);
    match kind {
        "webhook" => Err(unavailable(kind)),
        _ => Ok(options),
    }
}

/// The adapter that delivers a link's outbound messages.
pub fn link_gateway(account: &Account, link: &LinkRecord) -> Result<DynGateway, String> {
    let _ = link;
    match &account.gateway {
        Some(g) => Ok(g.clone()),
        None => Err(unavailable(&account.record.kind)),
    }
}

/// Verifies an inbound webhook for a link: (remote message id, event, hops).
pub fn verify_hook(
    link: &LinkRecord,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Result<(String, InboundEvent, u64), HookError> {
    let _ = (link, headers, body);
    Err(HookError {
        status: 501,
        code: "unavailable",
        message: unavailable("webhook"),
    })
}

/// The group of a rumgate item event (`{"type":"item.*","data":{"group_id":…}}`), if the body is one.
pub fn echo_group(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    if !v["type"].as_str()?.starts_with("item.") {
        return None;
    }
    Some(v["data"]["group_id"].as_str()?.to_string())
}
