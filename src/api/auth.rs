//! Bearer-token authentication and scope-based authorization.
//!
//! Scopes: `admin` (everything), `read` (every GET, streams, metrics), `post` (post to any group),
//! `post:<group_id>` (post to one group). The first-run admin token compares in constant time;
//! created tokens are stored as SHA-256 hashes and looked up by hash.

use super::error::ApiError;
use super::ApiState;
use crate::chain::GroupId;
use crate::store::{Store, TokenRecord};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Admin,
    Read,
    Post,
    PostGroup(GroupId),
}

impl Scope {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "admin" => Self::Admin,
            "read" => Self::Read,
            "post" => Self::Post,
            _ => Self::PostGroup(GroupId::from_hex(s.strip_prefix("post:")?)?),
        })
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Admin => f.write_str("admin"),
            Self::Read => f.write_str("read"),
            Self::Post => f.write_str("post"),
            Self::PostGroup(g) => write!(f, "post:{g}"),
        }
    }
}

/// Who is calling, as established by the token.
#[derive(Debug, Clone)]
pub struct Principal {
    pub token_id: Option<String>,
    pub scopes: Vec<Scope>,
    /// Cancelled when the token is revoked: the streams it opened end.
    pub revoked: CancellationToken,
}

impl Principal {
    fn has(&self, need: &Need) -> bool {
        self.scopes.iter().any(|s| match (s, need) {
            (Scope::Admin, _) => true,
            (Scope::Read, Need::Read) => true,
            (Scope::Post, Need::Post(_)) => true,
            (Scope::PostGroup(g), Need::Post(Some(want))) => g == want,
            _ => false,
        })
    }
}

#[derive(Debug)]
enum Need {
    Admin,
    Read,
    /// Posting into a group (the id from the path, when it parses).
    Post(Option<GroupId>),
}

/// What a request needs, decided in one place from its method and route.
fn need(method: &Method, route: &str, path: &str) -> Need {
    if route.starts_with("/api/v1/tokens") {
        return Need::Admin;
    }
    if route == "/api/v1/groups/{group_id}/posts" && method == Method::POST {
        let gid = path.split('/').nth(4).and_then(GroupId::from_hex);
        return Need::Post(gid);
    }
    if method == Method::GET || method == Method::HEAD {
        Need::Read
    } else {
        Need::Admin
    }
}

/// The admin token plus every active created token, by hash.
pub struct Tokens {
    admin: SecretString,
    by_hash: RwLock<HashMap<[u8; 32], Arc<Principal>>>,
}

pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Tokens {
    pub fn new(admin: SecretString) -> Self {
        Self {
            admin,
            by_hash: RwLock::new(HashMap::new()),
        }
    }

    pub async fn load(&self, store: &Store) -> Result<(), crate::store::StoreError> {
        let records = store.load_tokens().await?;
        let mut map = self.by_hash.write().unwrap_or_else(|p| p.into_inner());
        for r in records.into_iter().filter(|r| r.revoked_at.is_none()) {
            map.insert(r.hash, Arc::new(principal_of(&r)));
        }
        Ok(())
    }

    pub fn insert(&self, r: &TokenRecord) {
        self.by_hash
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(r.hash, Arc::new(principal_of(r)));
    }

    /// Forgets token `id` and ends every stream it opened.
    pub fn remove(&self, id: &str) {
        self.by_hash
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, p| {
                let keep = p.token_id.as_deref() != Some(id);
                if !keep {
                    p.revoked.cancel();
                }
                keep
            });
    }

    pub fn authenticate(&self, presented: &str) -> Option<Arc<Principal>> {
        let admin = self.admin.expose_secret().as_bytes();
        if bool::from(presented.as_bytes().ct_eq(admin)) {
            return Some(Arc::new(Principal {
                token_id: None,
                scopes: vec![Scope::Admin],
                revoked: CancellationToken::new(),
            }));
        }
        let h = hash_token(presented);
        self.by_hash
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&h)
            .cloned()
    }
}

fn principal_of(r: &TokenRecord) -> Principal {
    Principal {
        token_id: Some(r.id.clone()),
        scopes: r.scopes.iter().filter_map(|s| Scope::parse(s)).collect(),
        revoked: CancellationToken::new(),
    }
}

pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Route-layer middleware: authenticate, then authorize against the matched route.
pub async fn require_token(
    State(state): State<ApiState>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(presented) = bearer(req.headers()) else {
        return unauthorized("missing bearer token: send `Authorization: Bearer <token>`");
    };
    let Some(principal) = state.tokens.authenticate(presented) else {
        return unauthorized("invalid or revoked token");
    };
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_default();
    let need = need(req.method(), &route, req.uri().path());
    if !principal.has(&need) {
        let what = match need {
            Need::Admin => "the `admin` scope".to_string(),
            Need::Read => "the `read` scope".to_string(),
            Need::Post(Some(g)) => format!("the `post` or `post:{g}` scope"),
            Need::Post(None) => "the `post` scope".to_string(),
        };
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            format!("this token lacks {what}"),
        )
        .into_response();
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}

/// Whether these headers carry a token with read access (for routes outside the auth layer).
pub fn can_read(state: &ApiState, headers: &HeaderMap) -> bool {
    bearer(headers)
        .and_then(|t| state.tokens.authenticate(t))
        .is_some_and(|p| p.has(&Need::Read))
}

pub fn unauthorized(message: &str) -> Response {
    let mut resp = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_and_authorize() {
        let g = GroupId([1; 32]);
        let other = GroupId([2; 32]);
        for s in ["admin", "read", "post", &format!("post:{g}")] {
            assert_eq!(Scope::parse(s).unwrap().to_string(), s);
        }
        assert!(Scope::parse("post:xyz").is_none());
        assert!(Scope::parse("write").is_none());
        let p = Principal {
            token_id: None,
            scopes: vec![Scope::PostGroup(g)],
            revoked: CancellationToken::new(),
        };
        assert!(p.has(&Need::Post(Some(g))));
        assert!(!p.has(&Need::Post(Some(other))));
        assert!(!p.has(&Need::Read));
        let posts = "/api/v1/groups/{group_id}/posts";
        let path = format!("/api/v1/groups/{g}/posts");
        assert!(matches!(need(&Method::POST, posts, &path), Need::Post(Some(x)) if x == g));
        assert!(matches!(need(&Method::GET, posts, &path), Need::Read));
        assert!(matches!(
            need(&Method::GET, "/api/v1/tokens", "/api/v1/tokens"),
            Need::Admin
        ));
        assert!(matches!(
            need(&Method::POST, "/api/v1/groups", "/api/v1/groups"),
            Need::Admin
        ));
    }
}
