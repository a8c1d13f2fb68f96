//! Node and group routes: info, create, list, join, leave, seed.

use super::dto::{parse_group_id, CreateGroup, GroupInfo, GroupList, JoinGroup, KindParam};
use super::error::{ApiResult, Json, Path, Query};
use super::ApiState;
use crate::chain::GroupKind;
use crate::node::Joined;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

pub async fn node_info(State(st): State<ApiState>) -> Json<Value> {
    let key = hex::encode(st.engine.public_key());
    let net = st.engine.network();
    let listen_addrs: Vec<String> = net
        .map(|n| n.listen_addrs().iter().map(ToString::to_string).collect())
        .unwrap_or_default();
    Json(json!({
        "node_id": key,
        "public_key": key,
        "peer_id": net.map(|n| n.peer_id().to_string()),
        "version": env!("CARGO_PKG_VERSION"),
        "api_listen": st.api_addr.to_string(),
        "listen_addrs": listen_addrs,
        "peer_count": net.map_or(0, |n| n.peer_count()),
        "groups": st.engine.groups().len(),
    }))
}

/// Connected peers (with the groups they carry, gossip score and penalties) and banned peers.
pub async fn peers(State(st): State<ApiState>) -> ApiResult<Json<crate::p2p::PeerList>> {
    let Some(net) = st.engine.network() else {
        return Ok(Json(crate::p2p::PeerList {
            peers: Vec::new(),
            banned: Vec::new(),
        }));
    };
    let list = net
        .peers()
        .await
        .map_err(|_| crate::error::NodeError::ShuttingDown)?;
    Ok(Json(list))
}

pub async fn list(State(st): State<ApiState>) -> Json<GroupList> {
    let groups = st
        .engine
        .groups()
        .iter()
        .map(|g| GroupInfo::new(&st.engine, g))
        .collect();
    Json(GroupList { groups })
}

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

pub async fn info(
    State(st): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<Json<GroupInfo>> {
    let entry = st.engine.group(&parse_group_id(&id)?)?;
    Ok(Json(GroupInfo::new(&st.engine, &entry)))
}

pub async fn seed(State(st): State<ApiState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let entry = st.engine.group(&parse_group_id(&id)?)?;
    Ok(Json(json!({
        "group_id": entry.id().to_hex(),
        "seed": st.engine.seed(&entry).to_url(),
    })))
}

pub async fn join(
    State(st): State<ApiState>,
    Json(req): Json<JoinGroup>,
) -> ApiResult<(StatusCode, Json<GroupInfo>)> {
    Ok(match st.engine.join(&req.seed).await? {
        Joined::Created(g) => (StatusCode::CREATED, Json(GroupInfo::new(&st.engine, &g))),
        Joined::Existing(g) => (StatusCode::OK, Json(GroupInfo::new(&st.engine, &g))),
    })
}

#[derive(Debug, Deserialize)]
pub struct LeaveParams {
    #[serde(default)]
    purge: bool,
}

pub async fn leave(
    State(st): State<ApiState>,
    Path(id): Path<String>,
    Query(p): Query<LeaveParams>,
) -> ApiResult<Json<Value>> {
    let gid = parse_group_id(&id)?;
    st.engine.leave(&gid, p.purge).await?;
    Ok(Json(
        json!({"group_id": gid.to_hex(), "left": true, "purged": p.purge}),
    ))
}
