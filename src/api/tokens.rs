//! Scoped API tokens: create (the secret is shown once), list, revoke. Admin only.

use super::auth::{hash_token, Scope};
use super::dto::{CreateToken, TokenInfo, TokenList};
use super::error::{ApiError, ApiResult, ErrorBody, Json, Path};
use super::ApiState;
use crate::crypto::random_bytes;
use crate::store::TokenRecord;
use crate::util::now_ms;
use axum::extract::State;
use axum::http::StatusCode;

fn info(r: &TokenRecord, token: Option<String>) -> TokenInfo {
    TokenInfo {
        id: r.id.clone(),
        name: r.name.clone(),
        scopes: r.scopes.clone(),
        created_at: r.created_at,
        revoked_at: r.revoked_at,
        token,
    }
}

/// Creates a token with the given scopes; the answer is the only time the token is shown.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = CreateToken,
    responses((status = 201, body = TokenInfo), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(st): State<ApiState>,
    Json(req): Json<CreateToken>,
) -> ApiResult<(StatusCode, Json<TokenInfo>)> {
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(ApiError::bad_request(
            "invalid_request",
            "name must be 1 to 64 characters",
        ));
    }
    if req.scopes.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_scope",
            "give at least one scope",
        ));
    }
    let mut scopes = Vec::new();
    for s in &req.scopes {
        let scope = Scope::parse(s).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_scope",
                format!("{s:?} is not a scope (admin, read, post, post:<group_id>)"),
            )
        })?;
        scopes.push(scope.to_string());
    }
    let token = format!("rgt_{}", hex::encode(random_bytes::<24>()));
    let record = TokenRecord {
        id: format!("tok_{}", hex::encode(random_bytes::<8>())),
        name: name.to_string(),
        hash: hash_token(&token),
        scopes,
        created_at: now_ms(),
        revoked_at: None,
    };
    st.engine.store().insert_token(record.clone()).await?;
    st.tokens.insert(&record);
    tracing::info!(token = %record.id, scopes = ?record.scopes, "created API token");
    Ok((StatusCode::CREATED, Json(info(&record, Some(token)))))
}

/// Every token (active and revoked), without secrets.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens",
    responses((status = 200, body = TokenList)), security(("bearer" = [])))]
pub async fn list(State(st): State<ApiState>) -> ApiResult<Json<TokenList>> {
    let tokens = st.engine.store().load_tokens().await?;
    Ok(Json(TokenList {
        tokens: tokens.iter().map(|r| info(r, None)).collect(),
    }))
}

/// Revokes a token; it is refused from now on.
#[utoipa::path(delete, path = "/api/v1/tokens/{token_id}", tag = "tokens",
    params(("token_id" = String, Path, description = "token id (tok_…)")),
    responses((status = 200, body = TokenInfo), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn revoke(
    State(st): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<Json<TokenInfo>> {
    let revoked = st.engine.store().revoke_token(id.clone(), now_ms()).await?;
    st.tokens.remove(&id);
    let record = st
        .engine
        .store()
        .load_tokens()
        .await?
        .into_iter()
        .find(|r| r.id == id);
    match (revoked, record) {
        (true, Some(r)) => {
            tracing::info!(token = %id, "revoked API token");
            Ok(Json(info(&r, None)))
        }
        _ => Err(ApiError::not_found(
            "unknown_token",
            format!("no active token {id}"),
        )),
    }
}
