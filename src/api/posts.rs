//! Posting and reading: posts (idempotent, optionally waiting for inclusion), trx, blocks.

use super::dto::*;
use super::error::{ApiError, ApiResult, ErrorBody, Json, Path, Query};
use super::ApiState;
use crate::chain::object::{is_content_type, RefKind};
use crate::chain::{TrxId, TrxKind};
use crate::engine::feed::{open_post, ItemView};
use crate::engine::PostOptions;
use crate::store::{IdempotencyKey, IncludedTrx, TrxStatus};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::Duration;

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 500;
/// What an item adds to its payload in a page's JSON (ids, sender, cursor, field names).
const ITEM_OVERHEAD: usize = 512;
const DEFAULT_WAIT_MS: u64 = 10_000;
const MAX_WAIT_MS: u64 = 60_000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PostParams {
    /// Answer only once the trx is included (201), or after `timeout_ms` (202, still pending).
    #[serde(default)]
    wait: bool,
    /// How long `wait=true` waits, in ms (default 10000, at most 60000).
    timeout_ms: Option<u64>,
}

fn idempotency_key(
    headers: &HeaderMap,
    body: &serde_json::Value,
) -> ApiResult<Option<IdempotencyKey>> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = v
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.chars().all(|c| c.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_idempotency_key",
                "Idempotency-Key must be 1-255 visible ASCII characters",
            )
        })?;
    Ok(Some(IdempotencyKey {
        key: key.to_string(),
        request_hash: Sha256::digest(serde_json::to_vec(body).unwrap_or_default()).into(),
    }))
}

/// Posts an ActivityStreams object (or `{"content": "text"}`) signed by this node.
#[utoipa::path(
    post,
    path = "/api/v1/groups/{group_id}/posts",
    tag = "posts",
    params(("group_id" = String, Path, description = "group id (hex)"), PostParams,
           ("Idempotency-Key" = Option<String>, Header,
            description = "same key within 24 h → same trx_id, nothing new stored")),
    request_body(content = Object, description = "Note, Image, Like, Update, Delete, or {\"content\": \"text\"}"),
    responses(
        (status = 202, description = "durably stored, pending inclusion", body = Accepted),
        (status = 201, description = "included (with `wait=true`)", body = Accepted),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    State(st): State<ApiState>,
    Path(id): Path<String>,
    Query(p): Query<PostParams>,
    headers: HeaderMap,
    Json(object): Json<serde_json::Value>,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    let gid = parse_group_id(&id)?;
    let idempotency = idempotency_key(&headers, &object)?;
    let posted = st
        .engine
        .post(
            &gid,
            object,
            PostOptions {
                idempotency,
                ..PostOptions::default()
            },
        )
        .await?;
    let trx_id = posted.trx_id;
    let inclusion = if p.wait {
        let ms = p.timeout_ms.unwrap_or(DEFAULT_WAIT_MS).min(MAX_WAIT_MS);
        st.engine
            .wait_included(trx_id, Duration::from_millis(ms))
            .await
    } else if posted.replayed {
        match st.engine.store().trx_status(trx_id).await? {
            Some(TrxStatus::Included(r)) => Some(crate::engine::Inclusion {
                height: r.height,
                cursor: r.seq,
            }),
            _ => None,
        }
    } else {
        None
    };
    let (status, body) = match inclusion {
        Some(inc) => (
            if p.wait {
                StatusCode::CREATED
            } else {
                StatusCode::ACCEPTED
            },
            Accepted {
                trx_id: trx_id.to_hex(),
                status: "included".into(),
                height: Some(inc.height),
                cursor: Some(inc.cursor.to_string()),
                replayed: posted.replayed,
            },
        ),
        None => (
            StatusCode::ACCEPTED,
            Accepted {
                trx_id: trx_id.to_hex(),
                status: "pending".into(),
                height: None,
                cursor: None,
                replayed: posted.replayed,
            },
        ),
    };
    Ok((status, Json(body)))
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Chain order, oldest first.
    #[default]
    Asc,
    /// Newest first.
    Desc,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Items after this cursor (exclusive).
    after: Option<String>,
    /// Alias of `after`.
    cursor: Option<String>,
    /// Items before this cursor (exclusive), newest first (implies `order=desc`); continue with
    /// `before=<next_cursor>`.
    before: Option<String>,
    /// `asc` (chain order, the default) or `desc` (newest first; without `before` it starts at
    /// the newest item).
    #[param(inline)]
    order: Option<Order>,
    /// 1–500, default 50.
    limit: Option<usize>,
    /// Include each item's earlier versions.
    #[serde(default)]
    history: bool,
    /// Every activity (Like, Update, Delete too) instead of the timeline of Notes and Images.
    #[serde(default)]
    activities: bool,
}

pub fn parse_cursor(s: Option<&str>) -> ApiResult<i64> {
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

/// Items with their current state (edits applied, deletes as tombstones): in chain order after
/// `after`, or newest first with `before` / `order=desc`.
#[utoipa::path(
    get,
    path = "/api/v1/groups/{group_id}/posts",
    tag = "posts",
    params(("group_id" = String, Path, description = "group id (hex)"), ListParams),
    responses((status = 200, body = PostList), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list(
    State(st): State<ApiState>,
    Path(id): Path<String>,
    Query(p): Query<ListParams>,
) -> ApiResult<Json<PostList>> {
    let gid = parse_group_id(&id)?;
    let entry = st.engine.group(&gid)?;
    let mut after = parse_cursor(p.after.as_deref().or(p.cursor.as_deref()))?;
    let before = match p.before.as_deref() {
        Some(b) => Some(parse_cursor(Some(b))?),
        None => None,
    };
    let limit = parse_limit(p.limit)?;
    let desc = before.is_some() || p.order == Some(Order::Desc);
    let store = st.engine.store();
    let mut picked: Vec<(IncludedTrx, ItemView)> = Vec::new();
    let wanted = |r: &IncludedTrx| -> Option<ItemView> {
        if r.trx.body.kind != TrxKind::Post {
            return None;
        }
        let payload = open_post(&r.trx, entry.key.as_ref());
        let content = payload.as_ref().is_some_and(|p| is_content_type(&p.object));
        (p.activities || content || payload.is_none())
            .then(|| ItemView::new(r.seq, r.height, &r.trx, payload))
    };
    let budget = st.limits.page_bytes;
    let mut picked_bytes = 0usize;
    // Newest first scans backward from `before` (or the newest) down to `after`; oldest first
    // scans forward from `after`. Either stops when `limit` items qualify, the page reaches its
    // byte budget (each item counted by its payload, about its JSON size) or the range ends;
    // `next_cursor` is the last row examined.
    let mut upper = before.unwrap_or(i64::MAX);
    let batch = if desc {
        limit.clamp(DEFAULT_LIMIT, MAX_LIMIT)
    } else {
        MAX_LIMIT
    };
    'scan: loop {
        let page = if desc {
            store
                .list_trx_desc_within(gid, upper, after, batch, budget)
                .await?
        } else {
            store.list_trx_within(gid, after, batch, budget).await?
        };
        for r in page.rows {
            if desc {
                upper = r.seq;
            } else {
                after = r.seq;
            }
            if let Some(view) = wanted(&r) {
                picked_bytes =
                    picked_bytes.saturating_add(r.trx.body.payload.len() + ITEM_OVERHEAD);
                picked.push((r, view));
                if picked.len() == limit || picked_bytes >= budget {
                    break 'scan;
                }
            }
        }
        if !page.more {
            break;
        }
    }
    let next_cursor = match (desc, upper) {
        // Nothing older: the cursor sent (or "0" when none was).
        (true, i64::MAX) => before.unwrap_or(0),
        (true, _) => upper,
        (false, _) => after,
    }
    .to_string();
    let ids: Vec<TrxId> = picked
        .iter()
        .filter(|(_, v)| v.object.as_ref().is_some_and(is_content_type))
        .map(|(r, _)| r.trx.trx_id())
        .collect();
    let refs = store.refs_to(ids).await?;
    let mut by_target: HashMap<TrxId, Vec<&crate::store::RefRow>> = HashMap::new();
    for r in &refs {
        by_target.entry(r.target).or_default().push(r);
    }
    let mut items = Vec::with_capacity(picked.len());
    for (row, mut view) in picked {
        let sender = row.trx.body.sender;
        let related = by_target.remove(&row.trx.trx_id()).unwrap_or_default();
        let mut state = PostState::default();
        let mut versions = Vec::new();
        if p.history {
            versions.push(Version {
                trx_id: view.trx_id.clone(),
                timestamp: view.timestamp,
                object: view.object.clone(),
            });
        }
        for r in &related {
            match r.kind {
                RefKind::Like => state.likes += 1,
                RefKind::Reply => state.replies += 1,
                RefKind::Delete if r.sender == sender || r.sender == entry.rules.owner => {
                    state.deleted = true
                }
                RefKind::Update if r.sender == sender => {
                    if let Some(TrxStatus::Included(u)) = store.trx_status(r.trx_id).await? {
                        let updated = open_post(&u.trx, entry.key.as_ref())
                            .and_then(|p| p.object.get("object").cloned());
                        if let Some(mut obj) = updated {
                            if let Some(o) = obj.as_object_mut() {
                                o.remove("id");
                                if let Some(reply) =
                                    view.object.as_ref().and_then(|orig| orig.get("inReplyTo"))
                                {
                                    o.insert("inReplyTo".into(), reply.clone());
                                }
                            }
                            state.edits += 1;
                            state.updated_at = Some(u.trx.body.timestamp);
                            if p.history {
                                versions.push(Version {
                                    trx_id: u.trx.trx_id().to_hex(),
                                    timestamp: u.trx.body.timestamp,
                                    object: Some(obj.clone()),
                                });
                            }
                            view.object = Some(obj);
                        }
                    }
                }
                _ => {}
            }
        }
        if state.deleted {
            view.object = None;
            versions.clear();
        }
        items.push(PostView {
            item: view,
            deleted: state.deleted,
            updated_at: state.updated_at,
            edits: state.edits,
            likes: state.likes,
            replies: state.replies,
            history: p.history.then_some(versions),
        });
    }
    Ok(Json(PostList { items, next_cursor }))
}

#[derive(Default)]
struct PostState {
    deleted: bool,
    updated_at: Option<u64>,
    edits: usize,
    likes: usize,
    replies: usize,
}

/// Where a trx stands: pending, included (height, cursor) or rejected (reason).
#[utoipa::path(
    get,
    path = "/api/v1/trx/{trx_id}",
    tag = "posts",
    params(("trx_id" = String, Path, description = "trx id (hex)")),
    responses((status = 200, body = TrxInfo), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
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

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct BlockParams {
    /// First height (default 1).
    from: Option<u64>,
    /// 1–200, default 50.
    limit: Option<usize>,
}

/// Block headers with their trx ids, from `from` upwards.
#[utoipa::path(
    get,
    path = "/api/v1/groups/{group_id}/blocks",
    tag = "chain",
    params(("group_id" = String, Path, description = "group id (hex)"), BlockParams),
    responses((status = 200, body = BlockList), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn blocks(
    State(st): State<ApiState>,
    Path(id): Path<String>,
    Query(p): Query<BlockParams>,
) -> ApiResult<Json<BlockList>> {
    let gid = parse_group_id(&id)?;
    st.engine.group(&gid)?;
    let limit = parse_limit(p.limit)?.min(200);
    let from = p.from.unwrap_or(1);
    let blocks = st
        .engine
        .store()
        .list_blocks_within(gid, from, limit, st.limits.page_bytes)
        .await?;
    let next_from = blocks.last().map_or(from, |b| b.height + 1);
    Ok(Json(BlockList {
        blocks: blocks.into_iter().map(BlockInfo::from).collect(),
        next_from,
    }))
}

/// One block.
#[utoipa::path(
    get,
    path = "/api/v1/groups/{group_id}/blocks/{height}",
    tag = "chain",
    params(("group_id" = String, Path, description = "group id (hex)"),
           ("height" = u64, Path, description = "block height (1 = first block)")),
    responses((status = 200, body = BlockInfo), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
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
