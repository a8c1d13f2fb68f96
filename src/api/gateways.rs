//! Gateway accounts, links and inbound webhooks.

use super::dto::parse_group_id;
use super::error::{ApiError, ApiResult, ErrorBody, Json, Path, RawBody};
use super::ApiState;
use crate::gateways::{redact, Gateways, LinkStatus, NewLink};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

fn service(st: &ApiState) -> ApiResult<&Arc<Gateways>> {
    st.gateways.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "gateways are not running",
        )
    })
}

/// A gateway account: `kind` and `name`, plus the adapter's settings (secrets write-only).
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateGateway {
    /// `telegram`, `mixin` or `webhook`.
    pub kind: String,
    pub name: String,
    /// Adapter settings, e.g. `token`/`token_file`/`api_url` (telegram), `keystore`/`keystore_file` (mixin).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub config: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GatewayInfo {
    pub id: String,
    pub kind: String,
    pub name: String,
    pub created_at: u64,
    /// Settings with secrets shown as `***`.
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GatewayList {
    pub gateways: Vec<GatewayInfo>,
}

fn info(r: &crate::store::AccountRecord) -> GatewayInfo {
    GatewayInfo {
        id: r.id.clone(),
        kind: r.kind.clone(),
        name: r.name.clone(),
        created_at: r.created_at,
        config: redact(&r.config),
    }
}

/// Adds a gateway account.
#[utoipa::path(post, path = "/api/v1/gateways", tag = "gateways", request_body = CreateGateway,
    responses((status = 201, body = GatewayInfo), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_gateway(
    State(st): State<ApiState>,
    Json(req): Json<CreateGateway>,
) -> ApiResult<(StatusCode, Json<GatewayInfo>)> {
    let record = service(&st)?
        .create_account(&req.kind, &req.name, serde_json::Value::Object(req.config))
        .await?;
    Ok((StatusCode::CREATED, Json(info(&record))))
}

/// Gateway accounts (secrets never shown).
#[utoipa::path(get, path = "/api/v1/gateways", tag = "gateways",
    responses((status = 200, body = GatewayList)), security(("bearer" = [])))]
pub async fn list_gateways(State(st): State<ApiState>) -> ApiResult<Json<GatewayList>> {
    Ok(Json(GatewayList {
        gateways: service(&st)?.accounts().iter().map(info).collect(),
    }))
}

/// Removes a gateway account that no link uses.
#[utoipa::path(delete, path = "/api/v1/gateways/{gateway_id}", tag = "gateways",
    params(("gateway_id" = String, Path, description = "gateway id or name")),
    responses((status = 200, body = GatewayList), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_gateway(
    State(st): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<Json<GatewayList>> {
    let gw = service(&st)?;
    gw.delete_account(&id).await?;
    Ok(Json(GatewayList {
        gateways: gw.accounts().iter().map(info).collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLink {
    pub group_id: String,
    /// Gateway id or name.
    pub gateway_id: String,
    /// Telegram chat id, Mixin conversation id, or the outbound webhook URL.
    #[serde(default)]
    pub chat: String,
    /// `in`, `out` or `both`.
    pub direction: String,
    /// Deliver the last N posts first (out links).
    #[serde(default)]
    pub backfill: u64,
    /// Prefix per message, with `{name}` and `{id}` (default `"{name}: "`).
    pub nick_format: Option<String>,
    /// Webhook links: `{"format": "standard"|"github"|"plain"|"slack"|"discord", "secret": "whsec_…",
    /// "allow_private_target": false}`.
    #[schema(value_type = Option<Object>)]
    pub webhook: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LinkList {
    pub links: Vec<LinkStatus>,
}

/// Links a group with a chat of a gateway.
#[utoipa::path(post, path = "/api/v1/links", tag = "gateways", request_body = CreateLink,
    responses((status = 201, body = LinkStatus), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_link(
    State(st): State<ApiState>,
    Json(req): Json<CreateLink>,
) -> ApiResult<(StatusCode, Json<LinkStatus>)> {
    let status = service(&st)?
        .create_link(NewLink {
            group_id: parse_group_id(&req.group_id)?,
            gateway: req.gateway_id,
            chat: req.chat,
            direction: req.direction,
            backfill: req.backfill,
            nick_format: req.nick_format,
            options: req
                .webhook
                .unwrap_or(serde_json::Value::Object(Default::default())),
        })
        .await?;
    Ok((StatusCode::CREATED, Json(status)))
}

/// Every link with its status.
#[utoipa::path(get, path = "/api/v1/links", tag = "gateways",
    responses((status = 200, body = LinkList)), security(("bearer" = [])))]
pub async fn list_links(State(st): State<ApiState>) -> ApiResult<Json<LinkList>> {
    Ok(Json(LinkList {
        links: service(&st)?.list_links().await?,
    }))
}

/// A link's status: health, last error, outbox depth, oldest pending age, delivered cursor, dead letters.
#[utoipa::path(get, path = "/api/v1/links/{link_id}", tag = "gateways",
    params(("link_id" = String, Path, description = "link id")),
    responses((status = 200, body = LinkStatus), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn link(
    State(st): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<Json<LinkStatus>> {
    Ok(Json(service(&st)?.link_status(&id).await?))
}

/// Removes a link (its ID map and dead letters too).
#[utoipa::path(delete, path = "/api/v1/links/{link_id}", tag = "gateways",
    params(("link_id" = String, Path, description = "link id")),
    responses((status = 200, body = LinkList), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn delete_link(
    State(st): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<Json<LinkList>> {
    let gw = service(&st)?;
    gw.delete_link(&id).await?;
    Ok(Json(LinkList {
        links: gw.list_links().await?,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Retrying {
    pub retrying: usize,
}

/// Delivers the link's dead letters again.
#[utoipa::path(post, path = "/api/v1/links/{link_id}/retry", tag = "gateways",
    params(("link_id" = String, Path, description = "link id")),
    responses((status = 200, body = Retrying), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn retry_link(
    State(st): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Retrying>> {
    Ok(Json(Retrying {
        retrying: service(&st)?.retry(&id).await?,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HookAnswer {
    /// `stored`, `duplicate` or `ignored`.
    pub status: String,
    pub trx_id: Option<String>,
    pub reason: Option<String>,
}

/// Inbound webhook of a link, verified by the link's scheme (no bearer token).
#[utoipa::path(post, path = "/hooks/{link_id}", tag = "gateways",
    params(("link_id" = String, Path, description = "link id")),
    request_body(content = Object, description = "`{\"content\": \"text\"}`, an ActivityStreams Note, or a GitHub event"),
    responses((status = 200, body = HookAnswer), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 413, body = ErrorBody)))]
pub async fn hook(
    State(st): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Json<HookAnswer>> {
    let out = service(&st)?
        .hook(&id, &headers, &body)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
                e.code,
                e.message,
            )
        })?;
    Ok(Json(HookAnswer {
        status: out.status.into(),
        trx_id: out.trx_id,
        reason: out.reason,
    }))
}
