//! JSON shapes of the API (hex for keys, ids and hashes; cursors as decimal strings).

use crate::chain::{GroupId, TrxId};
use crate::node::{Engine, GroupEntry};
use crate::store::BlockSummary;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
pub struct GroupInfo {
    pub group_id: String,
    pub name: String,
    pub kind: String,
    pub app: String,
    pub owner: String,
    pub created_at: u64,
    pub role: String,
    pub height: u64,
    pub head_hash: String,
    pub producers: Vec<String>,
    pub pending: usize,
    pub sync: SyncInfo,
    pub seed: String,
}

#[derive(Debug, Serialize, Deserialize)]
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
            producers: g.rules.producers.iter().map(hex::encode).collect(),
            pending: g.pending_len(),
            sync: SyncInfo::new(engine, g, head.height),
            seed: engine.seed(g).to_url(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct GroupList {
    pub groups: Vec<GroupInfo>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateGroup {
    pub name: String,
    #[serde(default)]
    pub kind: Option<KindParam>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KindParam {
    Public,
    Private,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinGroup {
    pub seed: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Accepted {
    pub trx_id: String,
    pub status: String,
}

/// One included post as the API shows it.
#[derive(Debug, Serialize, Deserialize)]
pub struct PostItem {
    pub cursor: String,
    pub trx_id: String,
    pub height: u64,
    pub sender: String,
    pub timestamp: u64,
    /// The ActivityStreams object; `null` when this node cannot decrypt it.
    pub object: Option<serde_json::Value>,
    pub origin: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PostList {
    pub items: Vec<PostItem>,
    /// Pass as `after` to continue; equals the request's cursor when nothing new exists.
    pub next_cursor: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TrxInfo {
    pub trx_id: String,
    pub group_id: String,
    pub status: String,
    pub kind: Option<String>,
    pub sender: Option<String>,
    pub timestamp: Option<u64>,
    pub height: Option<u64>,
    pub cursor: Option<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
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

#[derive(Debug, Serialize, Deserialize)]
pub struct BlockList {
    pub blocks: Vec<BlockInfo>,
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
