//! The REST API (axum): routes, auth, JSON errors. `router(state)` is testable with `oneshot`.

mod auth;
pub mod dto;
pub mod error;
mod groups;
mod posts;

use crate::node::Engine;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use error::{ApiError, Json};
use secrecy::SecretString;
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Clone)]
pub struct ApiState {
    pub(crate) engine: Arc<Engine>,
    pub(crate) token: Arc<SecretString>,
    pub(crate) api_addr: SocketAddr,
    pub(crate) max_body_bytes: usize,
}

impl ApiState {
    pub fn new(
        engine: Arc<Engine>,
        token: SecretString,
        api_addr: SocketAddr,
        max_body_bytes: usize,
    ) -> Self {
        Self {
            engine,
            token: Arc::new(token),
            api_addr,
            max_body_bytes,
        }
    }
}

pub fn router(state: ApiState) -> Router {
    let api = Router::new()
        .route("/api/v1/node", get(groups::node_info))
        .route("/api/v1/peers", get(groups::peers))
        .route("/api/v1/groups", get(groups::list).post(groups::create))
        .route("/api/v1/groups/join", post(groups::join))
        .route(
            "/api/v1/groups/{group_id}",
            get(groups::info).delete(groups::leave),
        )
        .route("/api/v1/groups/{group_id}/seed", get(groups::seed))
        .route(
            "/api/v1/groups/{group_id}/posts",
            get(posts::list).post(posts::create),
        )
        .route("/api/v1/groups/{group_id}/blocks", get(posts::blocks))
        .route(
            "/api/v1/groups/{group_id}/blocks/{height}",
            get(posts::block),
        )
        .route("/api/v1/trx/{trx_id}", get(posts::trx))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/health", get(health))
        .merge(api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

async fn not_found() -> ApiError {
    ApiError::not_found("not_found", "no such route; the API lives under /api/v1")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
}
