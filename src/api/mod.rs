//! The REST API (axum): routes, auth, JSON errors, streams, OpenAPI, metrics.
//! `router(state)` is testable with `oneshot`; every route is declared once, through its
//! `#[utoipa::path]` annotation, so the router and the OpenAPI document cannot drift apart.

mod auth;
pub mod dto;
pub mod error;
mod gateways;
mod groups;
mod posts;
pub mod server;
pub mod stream;
mod tokens;
mod web;

pub use auth::Scope;

use crate::engine::Engine;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use dto::Health;
use error::{ApiError, Json};
use secrecy::SecretString;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(Clone)]
pub struct ApiState {
    pub(crate) engine: Arc<Engine>,
    pub(crate) tokens: Arc<auth::Tokens>,
    pub(crate) api_addr: SocketAddr,
    pub(crate) limits: ApiLimits,
    pub(crate) cancel: CancellationToken,
    pub(crate) metrics_auth: bool,
    pub(crate) gateways: Option<Arc<crate::gateways::Gateways>>,
    openapi: Arc<str>,
}

/// Request-level limits (the connection-level ones are in [`server::ServerLimits`]).
#[derive(Debug, Clone, Copy)]
pub struct ApiLimits {
    /// Body of `POST /api/v1/groups/{id}/posts`.
    pub post_body_bytes: usize,
    /// Body of `POST /hooks/{link_id}`.
    pub hook_body_bytes: usize,
    /// Body of every other route.
    pub other_body_bytes: usize,
    /// From the headers to the response head (streams only need their start within it).
    pub request_timeout: Duration,
    /// Largest WebSocket message (and frame) a client may send.
    pub ws_max_message_bytes: usize,
    /// A WebSocket that sends nothing (not even a pong to the server's pings) for this long is
    /// closed.
    pub ws_idle_timeout: Duration,
    /// Byte budget of one page (posts, blocks) and of one stream catch-up batch.
    pub page_bytes: usize,
}

impl ApiLimits {
    /// The request-level limits `api.*` configures.
    pub fn from_config(a: &crate::config::ApiConfig) -> Self {
        Self {
            post_body_bytes: a.max_body_bytes,
            hook_body_bytes: a.max_hook_body_bytes,
            other_body_bytes: a.max_other_body_bytes,
            request_timeout: Duration::from_millis(a.request_timeout_ms),
            ws_max_message_bytes: a.ws_max_message_bytes,
            ws_idle_timeout: Duration::from_millis(a.ws_idle_timeout_ms),
            page_bytes: a.page_bytes,
        }
    }
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            post_body_bytes: 1024 * 1024,
            hook_body_bytes: 1024 * 1024,
            other_body_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(75),
            ws_max_message_bytes: 1024 * 1024,
            ws_idle_timeout: Duration::from_secs(60),
            page_bytes: 4 * 1024 * 1024,
        }
    }
}

impl ApiLimits {
    /// The body limit of a route (`route` as matched, e.g. `/hooks/{link_id}`).
    fn body_limit(&self, method: &Method, route: &str) -> usize {
        match route {
            "/hooks/{link_id}" => self.hook_body_bytes,
            "/api/v1/groups/{group_id}/posts" if method == Method::POST => self.post_body_bytes,
            _ => self.other_body_bytes,
        }
    }
}

impl ApiState {
    /// `max_body_bytes` limits posts; the other limits are [`ApiLimits::default`] until
    /// [`ApiState::with_limits`].
    pub fn new(
        engine: Arc<Engine>,
        token: SecretString,
        api_addr: SocketAddr,
        max_body_bytes: usize,
    ) -> Self {
        Self {
            engine,
            tokens: Arc::new(auth::Tokens::new(token)),
            api_addr,
            limits: ApiLimits {
                post_body_bytes: max_body_bytes,
                ..ApiLimits::default()
            },
            cancel: CancellationToken::new(),
            metrics_auth: true,
            gateways: None,
            openapi: Arc::from(""),
        }
    }

    /// Streams end when this token is cancelled (node shutdown).
    pub fn with_cancel(mut self, cancel: CancellationToken) -> Self {
        self.cancel = cancel;
        self
    }

    pub fn with_limits(mut self, limits: ApiLimits) -> Self {
        self.limits = limits;
        self
    }

    pub fn with_gateways(mut self, gateways: Arc<crate::gateways::Gateways>) -> Self {
        self.gateways = Some(gateways);
        self
    }

    pub fn with_metrics_auth(mut self, required: bool) -> Self {
        self.metrics_auth = required;
        self
    }

    /// Loads the created (scoped) tokens from the store.
    pub async fn load_tokens(self) -> Result<Self, crate::store::StoreError> {
        self.tokens.load(self.engine.store()).await?;
        Ok(self)
    }
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "rumgate",
        description = "Personal gateway and full node of a RUM-style group network. \
            Errors are `{\"error\": {\"code\", \"message\"}}`; see docs/API.md."
    ),
    modifiers(&BearerAuth),
    components(schemas(error::ErrorBody)),
    tags(
        (name = "node"), (name = "groups"), (name = "posts"), (name = "stream"),
        (name = "chain"), (name = "tokens"), (name = "gateways"), (name = "ops"), (name = "web")
    )
)]
struct ApiDoc;

/// Every route, documented: the public ones and those behind the token check.
fn routes(state: &ApiState) -> OpenApiRouter<ApiState> {
    let public = OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(metrics))
        .routes(routes!(openapi_json))
        .routes(routes!(web::page))
        .routes(routes!(web::script))
        .routes(routes!(web::api_module))
        .routes(routes!(web::render_module))
        .routes(routes!(web::timeline_module))
        .routes(routes!(web::gateways_module))
        .routes(routes!(web::status_module))
        .routes(routes!(web::style))
        .routes(routes!(gateways::hook));
    let authed = OpenApiRouter::new()
        .routes(routes!(groups::node_info))
        .routes(routes!(groups::peers))
        .routes(routes!(groups::list, groups::create))
        .routes(routes!(groups::join))
        .routes(routes!(groups::info, groups::leave))
        .routes(routes!(groups::seed))
        .routes(routes!(posts::list, posts::create))
        .routes(routes!(stream::sse))
        .routes(routes!(stream::ws))
        .routes(routes!(posts::blocks))
        .routes(routes!(posts::block))
        .routes(routes!(posts::trx))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::revoke))
        .routes(routes!(gateways::list_gateways, gateways::create_gateway))
        .routes(routes!(gateways::delete_gateway))
        .routes(routes!(gateways::list_links, gateways::create_link))
        .routes(routes!(gateways::link, gateways::delete_link))
        .routes(routes!(gateways::retry_link))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(public)
        .merge(authed)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            record_latency,
        ))
}

/// The OpenAPI document of this API.
pub fn openapi(state: &ApiState) -> utoipa::openapi::OpenApi {
    routes(state).split_for_parts().1
}

pub fn router(mut state: ApiState) -> Router {
    let (router, doc) = routes(&state).split_for_parts();
    state.openapi = doc.to_json().unwrap_or_default().into();
    router
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limit_request,
        ))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // The per-route limit below replaces axum's single default.
        .layer(DefaultBodyLimit::disable())
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// The body limit of the route (refused at once when `Content-Length` says it is over, else cut
/// off while reading: 413 either way) and the whole-request timeout (408).
async fn limit_request(State(st): State<ApiState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_default();
    let limit = st.limits.body_limit(req.method(), &route);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return error::too_large(limit).into_response();
    }
    let req = req.map(|body| axum::body::Body::new(http_body_util::Limited::new(body, limit)));
    match tokio::time::timeout(st.limits.request_timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!(
                "the request did not complete within {} ms (api.request_timeout_ms)",
                st.limits.request_timeout.as_millis()
            ),
        )
        .into_response(),
    }
}

async fn record_latency(State(st): State<ApiState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_default();
    let resp = next.run(req).await;
    st.engine
        .metrics()
        .api_latency
        .get_or_create(&crate::metrics::RouteLabels {
            method,
            route,
            status: resp.status().as_u16(),
        })
        .observe(start.elapsed().as_secs_f64());
    resp
}

/// Liveness: `{"status":"ok"}`, no token.
#[utoipa::path(get, path = "/health", tag = "ops", responses((status = 200, body = Health)))]
async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Prometheus metrics (OpenMetrics text). Needs a `read` token unless `api.metrics_auth = false`,
/// in which case only loopback clients are served.
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text", body = String),
              (status = 401, body = error::ErrorBody), (status = 403, body = error::ErrorBody)))]
async fn metrics(State(st): State<ApiState>, req: Request) -> Response {
    if st.metrics_auth {
        if !auth::can_read(&st, req.headers()) {
            return auth::unauthorized("/metrics needs a token with the `read` scope");
        }
    } else {
        let loopback = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .is_some_and(|c| c.0.ip().is_loopback());
        if !loopback {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "/metrics without a token is served to loopback clients only",
            )
            .into_response();
        }
    }
    // Link gauges (outbox depth, health) are computed from the store on demand.
    if let Some(gw) = &st.gateways {
        if let Err(e) = gw.list_links().await {
            tracing::warn!(error = %e, "cannot refresh link metrics");
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        st.engine.metrics().render(),
    )
        .into_response()
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "ops",
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object)))]
async fn openapi_json(State(st): State<ApiState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        st.openapi.to_string(),
    )
        .into_response()
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
