//! The one place that knows the concrete adapter crates: validates configs, builds instances,
//! verifies inbound hooks.

use super::inbound::HookError;
use super::Account;
use crate::store::{AccountRecord, LinkRecord};
use rumgate_gateway::{DynGateway, InboundEvent};
use secrecy::ExposeSecret;
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
        "mixin" => {
            let cfg = mixin_config(&config)?;
            // Reads keystore_file and checks the key: a bad account is refused now, not at start.
            cfg.validate().map_err(|e| e.to_string())?;
            serde_json::to_value(&cfg).map_err(|e| format!("mixin: {e}"))
        }
        "telegram" => {
            let cfg = telegram_config(&config)?;
            // Reads token_file and checks every setting: a bad account is refused now.
            cfg.validate().map_err(|e| format!("telegram: {e}"))?;
            cfg.resolve_token().map_err(|e| format!("telegram: {e}"))?;
            Ok(config)
        }
        other => Err(format!(
            "unknown gateway kind {other:?} (known: {})",
            KINDS.join(", ")
        )),
    }
}

/// The shared adapter instance of an account (None for webhooks, which are per link).
pub fn account_gateway(record: &AccountRecord) -> Result<Option<DynGateway>, String> {
    match record.kind.as_str() {
        "webhook" => Ok(None),
        "mixin" => {
            let gw = rumgate_mixin::MixinGateway::new(&mixin_config(&record.config)?)
                .map_err(|e| e.to_string())?;
            Ok(Some(std::sync::Arc::new(gw)))
        }
        "telegram" => {
            let gw = rumgate_telegram::TelegramGateway::new(telegram_config(&record.config)?)
                .map_err(|e| e.to_string())?;
            Ok(Some(std::sync::Arc::new(gw)))
        }
        other => Err(unavailable(other)),
    }
}

/// The Telegram account settings; serde's messages never quote a value, so no token leaks here.
fn telegram_config(config: &Value) -> Result<rumgate_telegram::TelegramConfig, String> {
    serde_json::from_value(config.clone()).map_err(|e| {
        format!(
            "telegram: {e} (expected `token` or `token_file`, optional `api_url`, \
             `poll_timeout_secs`, `max_file_bytes`, `webhook_secret`, `webhook_url`, `pacing_scale`)"
        )
    })
}

/// The Mixin account settings; serde's messages never quote a value, so no secret leaks here.
fn mixin_config(config: &Value) -> Result<rumgate_mixin::MixinConfig, String> {
    serde_json::from_value(config.clone()).map_err(|e| {
        format!("mixin: {e} (expected `keystore` or `keystore_file`, optional `api_url`, `blaze_url`, `max_image_bytes`)")
    })
}

fn webhook_config(options: &Value) -> Result<rumgate_webhook::LinkConfig, String> {
    serde_json::from_value(options.clone()).map_err(|e| format!("webhook: {e}"))
}

/// Checks a link's options for its gateway kind and returns what to store.
pub fn validate_link(
    kind: &str,
    direction: &str,
    chat: &str,
    options: Value,
) -> Result<Value, String> {
    if kind == "mixin" {
        if !rumgate_mixin::config::is_uuid(chat) {
            return Err(format!(
                "a Mixin link's `chat` is a conversation id (a UUID such as \
                 3f6e9a2b-1c4d-4e8f-9a7b-6c5d4e3f2a1b), got {chat:?}"
            ));
        }
        if chat.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(format!(
                "write the Mixin conversation id in lower case: {}",
                chat.to_ascii_lowercase()
            ));
        }
        return match options {
            Value::Null => Ok(Value::Object(Default::default())),
            Value::Object(m) if m.is_empty() => Ok(Value::Object(m)),
            _ => Err("`webhook` options do not apply to a Mixin link".into()),
        };
    }
    if kind == "telegram" {
        chat.parse::<rumgate_telegram::ChatTarget>()?;
        return match options {
            Value::Null => Ok(Value::Object(Default::default())),
            Value::Object(m) if m.is_empty() => Ok(Value::Object(m)),
            _ => Err("`webhook` options do not apply to a Telegram link".into()),
        };
    }
    if kind != "webhook" {
        if chat.is_empty() {
            return Err("`chat` is required".into());
        }
        return Ok(options);
    }
    let cfg = webhook_config(&options)?;
    if cfg.format == rumgate_webhook::Format::Standard {
        if let Some(problem) = cfg
            .secret
            .as_ref()
            .and_then(|s| rumgate_webhook::sign::standard_secret_problem(s.expose_secret()))
        {
            return Err(format!("`webhook.secret`: {problem}"));
        }
    }
    if direction != "in" {
        if chat.is_empty() {
            return Err("an outbound webhook link needs `chat`: the target URL".into());
        }
        rumgate_webhook::check_target(chat, cfg.allow_private_target).map_err(|e| e.to_string())?;
    }
    if direction != "out" {
        if matches!(
            cfg.format,
            rumgate_webhook::Format::Slack | rumgate_webhook::Format::Discord
        ) {
            return Err("slack and discord formats are outbound only".into());
        }
        if cfg.secret.is_none() {
            return Err(
                "an inbound webhook link needs `webhook.secret` (whsec_… for standard, \
                        the shared secret for github and plain)"
                    .into(),
            );
        }
    }
    Ok(options)
}

/// A link's chat as the API shows it. Slack and Discord webhook URLs are credentials (the path
/// holds the token) and any URL's query may be: those parts are masked.
pub fn display_chat(kind: &str, link: &LinkRecord) -> String {
    if kind != "webhook" {
        return link.chat.clone();
    }
    let Ok(mut url) = url::Url::parse(&link.chat) else {
        return link.chat.clone();
    };
    let secret_path = webhook_config(&link.options).is_ok_and(|c| {
        matches!(
            c.format,
            rumgate_webhook::Format::Slack | rumgate_webhook::Format::Discord
        )
    });
    if secret_path && url.path() != "/" {
        url.set_path("/***");
    }
    if url.query().is_some() {
        url.set_query(Some("***"));
    }
    let _ = url.set_password(url.password().map(|_| "***"));
    url.to_string()
}

/// The adapter that delivers a link's outbound messages.
pub fn link_gateway(account: &Account, link: &LinkRecord) -> Result<DynGateway, String> {
    if account.record.kind == "webhook" {
        let gw = rumgate_webhook::WebhookGateway::new(webhook_config(&link.options)?)
            .map_err(|e| e.to_string())?;
        return Ok(std::sync::Arc::new(gw));
    }
    match &account.gateway {
        Some(g) => Ok(g.clone()),
        None => Err(account
            .start_error
            .clone()
            .unwrap_or_else(|| unavailable(&account.record.kind))),
    }
}

/// Verifies an inbound webhook for a link: (remote message id, event if any, hops so far).
pub fn verify_hook(
    link: &LinkRecord,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Result<(String, Option<InboundEvent>, u64), HookError> {
    let cfg = webhook_config(&link.options).map_err(|m| HookError {
        status: 500,
        code: "link_misconfigured",
        message: m,
    })?;
    let inbound =
        rumgate_webhook::verify_inbound(&cfg, headers, body, std::time::SystemTime::now())
            .map_err(|e| HookError {
                status: e.status(),
                code: e.code(),
                message: e.to_string(),
            })?;
    Ok((inbound.message_id, inbound.event, inbound.hops + 1))
}

/// The group of a rumgate item event (`{"type":"item.*","data":{"group_id":…}}`), if the body is one.
pub fn echo_group(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    if !v["type"].as_str()?.starts_with("item.") {
        return None;
    }
    Some(v["data"]["group_id"].as_str()?.to_string())
}
