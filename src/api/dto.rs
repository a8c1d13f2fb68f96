//! JSON shapes of the API (hex for keys, ids and hashes; cursors as decimal strings).

use crate::chain::{GroupId, TrxId};
use crate::engine::feed::ItemView;
use crate::engine::{Engine, GroupEntry};
use crate::store::BlockSummary;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GroupInfo {
    pub group_id: String,
    pub name: String,
    /// `public` or `private`.
    pub kind: String,
    pub app: String,
    pub owner: String,
    pub created_at: u64,
    /// `owner`, `member` (holds the key) or `relay-only` (no key).
    pub role: String,
    pub height: u64,
    pub head_hash: String,
    /// Cursor of the group's latest item: stream from here for new items only.
    pub cursor: String,
    pub producers: Vec<String>,
    /// Trx stored as pending, not yet in a block.
    pub pending: usize,
    pub sync: SyncInfo,
    pub seed: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SyncInfo {
    /// `synced` (this node has every block its peers reported) or `syncing`.
    pub state: String,
    /// This node's head height.
    #[serde(default)]
    pub local_height: u64,
    /// The highest height peers have reported or gossiped (this node's own for producers).
    #[serde(default)]
    pub remote_height: u64,
    /// `local_height / remote_height`, 1.0 when synced.
    #[serde(default)]
    pub progress: f64,
}

impl SyncInfo {
    pub fn new(engine: &Engine, g: &GroupEntry, local_height: u64) -> Self {
        let remote = if engine.produces(g) {
            local_height
        } else {
            engine
                .network()
                .and_then(|n| n.sync_progress(&g.id()))
                .map_or(local_height, |p| p.remote_height.max(local_height))
        };
        let syncing = remote > local_height;
        Self {
            state: if syncing { "syncing" } else { "synced" }.into(),
            local_height,
            remote_height: remote,
            progress: if remote == 0 {
                1.0
            } else {
                local_height as f64 / remote as f64
            },
        }
    }
}

impl GroupInfo {
    pub fn new(engine: &Engine, g: &GroupEntry) -> Self {
        let head = g.head();
        Self {
            group_id: g.id().to_hex(),
            name: g.genesis.body.name.clone(),
            kind: g.rules.kind.as_str().into(),
            app: g.genesis.body.app.clone(),
            owner: hex::encode(g.rules.owner),
            created_at: g.genesis.body.created_at,
            role: g.role.as_str().into(),
            height: head.height,
            head_hash: head.hash.to_hex(),
            cursor: g.last_cursor().to_string(),
            producers: g.rules.producers.iter().map(hex::encode).collect(),
            pending: g.pending_len(),
            sync: SyncInfo::new(engine, g, head.height),
            seed: engine.seed(g).to_url(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GroupList {
    pub groups: Vec<GroupInfo>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGroup {
    pub name: String,
    /// Defaults to `public`.
    #[serde(default)]
    pub kind: Option<KindParam>,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KindParam {
    Public,
    Private,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinGroup {
    /// `rum://seed?v=1&g=…&d=…` or the bare `d` value.
    pub seed: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SeedInfo {
    pub group_id: String,
    pub seed: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LeftGroup {
    pub group_id: String,
    pub left: bool,
    pub purged: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NodeInfo {
    pub node_id: String,
    pub public_key: String,
    /// The libp2p peer id (absent when the network is not running).
    pub peer_id: Option<String>,
    pub version: String,
    pub api_listen: String,
    pub listen_addrs: Vec<String>,
    pub peer_count: usize,
    pub groups: usize,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Accepted {
    pub trx_id: String,
    /// `pending` or `included`.
    pub status: String,
    pub height: Option<u64>,
    pub cursor: Option<String>,
    /// True when an `Idempotency-Key` matched an earlier post: nothing new was stored.
    #[serde(default)]
    pub replayed: bool,
}

/// An item with its current state.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PostView {
    #[serde(flatten)]
    pub item: ItemView,
    /// Deleted by its sender or the group owner; `object` is then `null`.
    pub deleted: bool,
    /// Timestamp of the latest honoured Update.
    pub updated_at: Option<u64>,
    pub edits: usize,
    pub likes: usize,
    pub replies: usize,
    /// With `history=true`: the original and every honoured Update, oldest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<Version>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Version {
    pub trx_id: String,
    pub timestamp: u64,
    #[schema(value_type = Option<Object>)]
    pub object: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PostList {
    pub items: Vec<PostView>,
    /// Pass as `after` to continue; equals the request's cursor when nothing new exists.
    pub next_cursor: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TrxInfo {
    pub trx_id: String,
    pub group_id: String,
    /// `pending`, `included` or `rejected`.
    pub status: String,
    pub kind: Option<String>,
    pub sender: Option<String>,
    pub timestamp: Option<u64>,
    pub height: Option<u64>,
    pub cursor: Option<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BlockInfo {
    pub height: u64,
    pub hash: String,
    pub prev_hash: String,
    pub timestamp: u64,
    pub producer: String,
    pub signature: String,
    pub trx_ids: Vec<String>,
}

impl From<BlockSummary> for BlockInfo {
    fn from(b: BlockSummary) -> Self {
        Self {
            height: b.height,
            hash: b.hash.to_hex(),
            prev_hash: b.prev_hash.to_hex(),
            timestamp: b.timestamp,
            producer: hex::encode(b.producer),
            signature: hex::encode(b.signature.0),
            trx_ids: b.trx_ids.iter().map(TrxId::to_hex).collect(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BlockList {
    pub blocks: Vec<BlockInfo>,
    /// Pass as `from` to continue: the height after the last block here (a page may hold fewer
    /// than `limit` blocks when it reaches its byte budget).
    pub next_from: u64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    pub name: String,
    /// `admin`, `read`, `post`, `post:<group_id>`.
    pub scopes: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at: u64,
    pub revoked_at: Option<u64>,
    /// Only in the answer to the create request; never shown again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenList {
    pub tokens: Vec<TokenInfo>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
}

/// Parses a 64-hex-digit id from a path segment, with a 400 that says what was expected.
pub fn parse_group_id(s: &str) -> Result<GroupId, super::error::ApiError> {
    GroupId::from_hex(s).ok_or_else(|| {
        super::error::ApiError::bad_request(
            "invalid_group_id",
            format!("{s:?} is not a group id (64 hex digits)"),
        )
    })
}

pub fn parse_trx_id(s: &str) -> Result<TrxId, super::error::ApiError> {
    TrxId::from_hex(s).ok_or_else(|| {
        super::error::ApiError::bad_request(
            "invalid_trx_id",
            format!("{s:?} is not a trx id (64 hex digits)"),
        )
    })
}
