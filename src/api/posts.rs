//! Posting and reading: posts, trx status, blocks.

use super::dto::*;
use super::error::{ApiError, ApiResult, Json, Path, Query};
use super::ApiState;
use crate::chain::object::PostPayload;
use crate::chain::TrxKind;
use crate::store::{IncludedTrx, TrxStatus};
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 500;

pub async fn create(
    State(st): State<ApiState>,
    Path(id): Path<String>,
    Json(object): Json<serde_json::Value>,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    let gid = parse_group_id(&id)?;
    let trx_id = st.engine.post(&gid, object).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            trx_id: trx_id.to_hex(),
            status: "pending".into(),
        }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    after: Option<String>,
    /// Alias of `after`.
    cursor: Option<String>,
    limit: Option<usize>,
}

fn parse_cursor(s: Option<&str>) -> ApiResult<i64> {
    match s {
        None | Some("") => Ok(0),
        Some(c) => c.parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_cursor",
                format!("{c:?} is not a cursor (use the `cursor` of an item or `next_cursor`)"),
            )
        }),
    }
}

fn parse_limit(limit: Option<usize>) -> ApiResult<usize> {
    match limit.unwrap_or(DEFAULT_LIMIT) {
        0 => Err(ApiError::bad_request(
            "invalid_limit",
            "limit must be at least 1",
        )),
        n => Ok(n.min(MAX_LIMIT)),
    }
}

pub async fn list(
    State(st): State<ApiState>,
    Path(id): Path<String>,
    Query(p): Query<ListParams>,
) -> ApiResult<Json<PostList>> {
    let gid = parse_group_id(&id)?;
    let entry = st.engine.group(&gid)?;
    let after = parse_cursor(p.after.as_deref().or(p.cursor.as_deref()))?;
    let limit = parse_limit(p.limit)?;
    let rows = st.engine.store().list_trx(gid, after, limit).await?;
    let next_cursor = rows.last().map_or(after, |r| r.seq).to_string();
    let items = rows
        .into_iter()
        .filter(|r| r.trx.body.kind == TrxKind::Post)
        .map(|r| post_item(r, entry.key.as_ref()))
        .collect();
    Ok(Json(PostList { items, next_cursor }))
}

fn post_item(r: IncludedTrx, key: Option<&crate::crypto::GroupKey>) -> PostItem {
    let payload: Option<PostPayload> = key
        .and_then(|k| r.trx.open_payload(k).ok())
        .and_then(|p| serde_json::from_slice(&p).ok());
    let (object, origin) = match payload {
        Some(p) => (Some(p.object), p.origin),
        None => (None, None),
    };
    PostItem {
        cursor: r.seq.to_string(),
        trx_id: r.trx.trx_id().to_hex(),
        height: r.height,
        sender: hex::encode(r.trx.body.sender),
        timestamp: r.trx.body.timestamp,
        object,
        origin,
    }
}

pub async fn trx(State(st): State<ApiState>, Path(id): Path<String>) -> ApiResult<Json<TrxInfo>> {
    let trx_id = parse_trx_id(&id)?;
    let status = st
        .engine
        .store()
        .trx_status(trx_id)
        .await?
        .ok_or_else(|| ApiError::not_found("unknown_trx", format!("no trx {id}")))?;
    let base = |gid: crate::chain::GroupId, status: &str| TrxInfo {
        trx_id: trx_id.to_hex(),
        group_id: gid.to_hex(),
        status: status.into(),
        kind: None,
        sender: None,
        timestamp: None,
        height: None,
        cursor: None,
        reason: None,
    };
    Ok(Json(match status {
        TrxStatus::Pending { trx, .. } => TrxInfo {
            kind: Some(trx.body.kind.as_str().into()),
            sender: Some(hex::encode(trx.body.sender)),
            timestamp: Some(trx.body.timestamp),
            ..base(trx.body.group_id, "pending")
        },
        TrxStatus::Included(r) => TrxInfo {
            kind: Some(r.trx.body.kind.as_str().into()),
            sender: Some(hex::encode(r.trx.body.sender)),
            timestamp: Some(r.trx.body.timestamp),
            height: Some(r.height),
            cursor: Some(r.seq.to_string()),
            ..base(r.trx.body.group_id, "included")
        },
        TrxStatus::Rejected { group_id, reason } => TrxInfo {
            reason: Some(reason),
            ..base(group_id, "rejected")
        },
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockParams {
    from: Option<u64>,
    limit: Option<usize>,
}

pub async fn blocks(
    State(st): State<ApiState>,
    Path(id): Path<String>,
    Query(p): Query<BlockParams>,
) -> ApiResult<Json<BlockList>> {
    let gid = parse_group_id(&id)?;
    st.engine.group(&gid)?;
    let limit = parse_limit(p.limit)?.min(200);
    let blocks = st
        .engine
        .store()
        .list_blocks(gid, p.from.unwrap_or(1), limit)
        .await?;
    Ok(Json(BlockList {
        blocks: blocks.into_iter().map(BlockInfo::from).collect(),
    }))
}

pub async fn block(
    State(st): State<ApiState>,
    Path((id, height)): Path<(String, u64)>,
) -> ApiResult<Json<BlockInfo>> {
    let gid = parse_group_id(&id)?;
    st.engine.group(&gid)?;
    let mut blocks = st.engine.store().list_blocks(gid, height, 1).await?;
    match blocks.pop() {
        Some(b) if b.height == height => Ok(Json(b.into())),
        _ => Err(ApiError::not_found(
            "unknown_block",
            format!("group {gid} has no block at height {height}"),
        )),
    }
}
