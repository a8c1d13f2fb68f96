//! Node and group routes: info, create, list, join, leave, seed.

use super::dto::*;
use super::error::{ApiResult, ErrorBody, Json, Path, Query};
use super::ApiState;
use crate::chain::GroupKind;
use crate::engine::network::PeerList;
use crate::engine::Joined;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

/// This node: identity, version, addresses.
#[utoipa::path(get, path = "/api/v1/node", tag = "node",
    responses((status = 200, body = NodeInfo)), security(("bearer" = [])))]
pub async fn node_info(State(st): State<ApiState>) -> Json<NodeInfo> {
    let key = hex::encode(st.engine.public_key());
    let net = st.engine.network();
    Json(NodeInfo {
        node_id: key.clone(),
        public_key: key,
        peer_id: net.map(|n| n.peer_id()),
        version: env!("CARGO_PKG_VERSION").into(),
        api_listen: st.api_addr.to_string(),
        listen_addrs: net.map(|n| n.listen_addrs()).unwrap_or_default(),
        peer_count: net.map_or(0, |n| n.peer_count()),
        groups: st.engine.groups().len(),
    })
}

/// Connected peers (with the groups they carry, gossip score and penalties) and banned peers.
#[utoipa::path(get, path = "/api/v1/peers", tag = "node",
    responses((status = 200, body = PeerList)), security(("bearer" = [])))]
pub async fn peers(State(st): State<ApiState>) -> ApiResult<Json<PeerList>> {
    let Some(net) = st.engine.network() else {
        return Ok(Json(PeerList::default()));
    };
    let list = net
        .peers()
        .await
        .map_err(|_| crate::engine::error::NodeError::ShuttingDown)?;
    Ok(Json(list))
}

/// Joined groups.
#[utoipa::path(get, path = "/api/v1/groups", tag = "groups",
    responses((status = 200, body = GroupList)), security(("bearer" = [])))]
pub async fn list(State(st): State<ApiState>) -> Json<GroupList> {
    let groups = st
        .engine
        .groups()
        .iter()
        .map(|g| GroupInfo::new(&st.engine, g))
        .collect();
    Json(GroupList { groups })
}

/// Creates a group owned and produced by this node.
#[utoipa::path(post, path = "/api/v1/groups", tag = "groups", request_body = CreateGroup,
    responses((status = 201, body = GroupInfo), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(st): State<ApiState>,
    Json(req): Json<CreateGroup>,
) -> ApiResult<(StatusCode, Json<GroupInfo>)> {
    let kind = match req.kind.unwrap_or(KindParam::Public) {
        KindParam::Public => GroupKind::Public,
        KindParam::Private => GroupKind::Private,
    };
    let entry = st.engine.create_group(&req.name, kind).await?;
    Ok((
        StatusCode::CREATED,
        Json(GroupInfo::new(&st.engine, &entry)),
    ))
}

/// One group: kind, owner, height, producers, role, sync state.
#[utoipa::path(get, path = "/api/v1/groups/{group_id}", tag = "groups",
    params(("group_id" = String, Path, description = "group id (hex)")),
    responses((status = 200, body = GroupInfo), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn info(
    State(st): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<Json<GroupInfo>> {
    let entry = st.engine.group(&parse_group_id(&id)?)?;
    Ok(Json(GroupInfo::new(&st.engine, &entry)))
}

/// The group's seed URL (with the key only for public groups).
#[utoipa::path(get, path = "/api/v1/groups/{group_id}/seed", tag = "groups",
    params(("group_id" = String, Path, description = "group id (hex)")),
    responses((status = 200, body = SeedInfo), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn seed(State(st): State<ApiState>, Path(id): Path<String>) -> ApiResult<Json<SeedInfo>> {
    let entry = st.engine.group(&parse_group_id(&id)?)?;
    Ok(Json(SeedInfo {
        group_id: entry.id().to_hex(),
        seed: st.engine.seed(&entry).to_url(),
    }))
}

/// Joins a group from its seed after verifying it (201), or 200 if already joined.
#[utoipa::path(post, path = "/api/v1/groups/join", tag = "groups", request_body = JoinGroup,
    responses((status = 201, body = GroupInfo), (status = 200, body = GroupInfo), (status = 400, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn join(
    State(st): State<ApiState>,
    Json(req): Json<JoinGroup>,
) -> ApiResult<(StatusCode, Json<GroupInfo>)> {
    Ok(match st.engine.join(&req.seed).await? {
        Joined::Created(g) => (StatusCode::CREATED, Json(GroupInfo::new(&st.engine, &g))),
        Joined::Existing(g) => (StatusCode::OK, Json(GroupInfo::new(&st.engine, &g))),
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct LeaveParams {
    /// Also delete the group's blocks and trx.
    #[serde(default)]
    purge: bool,
}

/// Leaves a group.
#[utoipa::path(delete, path = "/api/v1/groups/{group_id}", tag = "groups",
    params(("group_id" = String, Path, description = "group id (hex)"), LeaveParams),
    responses((status = 200, body = LeftGroup), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn leave(
    State(st): State<ApiState>,
    Path(id): Path<String>,
    Query(p): Query<LeaveParams>,
) -> ApiResult<Json<LeftGroup>> {
    let gid = parse_group_id(&id)?;
    st.engine.leave(&gid, p.purge).await?;
    Ok(Json(LeftGroup {
        group_id: gid.to_hex(),
        left: true,
        purged: p.purge,
    }))
}
