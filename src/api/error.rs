//! One `ApiError` with a single mapping to status + `{"error":{"code","message"}}`, and
//! extractor wrappers whose rejections use it (so bad input never gets a plain-text body).

use crate::engine::error::NodeError;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::FromRequest;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }
}

/// 413 for a body over the route's `limit`.
pub fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("the request body is larger than this route's limit of {limit} bytes"),
    )
}

/// The error body every 4xx/5xx carries.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable, snake_case.
    pub code: String,
    /// What is wrong, for humans.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        use crate::chain::ChainError;
        let msg = e.to_string();
        match e {
            NodeError::UnknownGroup(_) => Self::not_found("unknown_group", msg),
            NodeError::InvalidObject(_) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_object", msg)
            }
            NodeError::InvalidSeed(_) => Self::bad_request("invalid_seed", msg),
            NodeError::Rejected(ChainError::TooLarge { .. }) => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", msg)
            }
            NodeError::Rejected(_) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "rejected", msg),
            NodeError::NoGroupKey(_) => Self::new(StatusCode::FORBIDDEN, "no_group_key", msg),
            NodeError::Duplicate(_) => Self::new(StatusCode::CONFLICT, "duplicate", msg),
            NodeError::Invalid(_) => Self::bad_request("invalid_request", msg),
            NodeError::UnknownReference { .. } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown_reference", msg)
            }
            NodeError::Forbidden(_) => Self::new(StatusCode::FORBIDDEN, "forbidden", msg),
            NodeError::NotFound(code, _) => Self::not_found(code, msg),
            NodeError::IdempotencyMismatch(_) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                msg,
            ),
            NodeError::ShuttingDown => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", msg)
            }
            NodeError::Store(crate::store::StoreError::Conflict(m)) => {
                Self::new(StatusCode::CONFLICT, "conflict", m)
            }
            NodeError::Store(crate::store::StoreError::PreviouslyRejected { .. }) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "rejected", msg)
            }
            NodeError::Store(inner) => {
                tracing::error!(error = %inner, "storage error while serving a request");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "storage error; see the node log",
                )
            }
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        NodeError::from(e).into()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let code = match &r {
            JsonRejection::JsonDataError(_) => "invalid_body",
            JsonRejection::JsonSyntaxError(_) => "invalid_json",
            JsonRejection::MissingJsonContentType(_) => "unsupported_media_type",
            _ if r.status() == StatusCode::PAYLOAD_TOO_LARGE => "too_large",
            _ => "invalid_body",
        };
        Self::new(r.status(), code, r.body_text())
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::new(r.status(), "too_large", r.body_text())
        } else {
            Self::new(r.status(), "invalid_body", r.body_text())
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::bad_request("invalid_query", r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        Self::bad_request("invalid_path", r.body_text())
    }
}

/// `axum::Json` whose rejection is an `ApiError`; also used for responses.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// The raw body (`axum::body::Bytes`) whose rejection is an `ApiError`.
pub struct RawBody(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        axum::body::Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(ApiError::from)
    }
}

/// `axum::extract::Query` whose rejection is an `ApiError`.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// `axum::extract::Path` whose rejection is an `ApiError`.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

use axum::extract::FromRequestParts;

pub type ApiResult<T> = Result<T, ApiError>;
