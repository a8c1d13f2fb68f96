//! In-memory registry of joined groups: rules, key, head and the producer's pending queue.

use crate::chain::verify::GroupRules;
use crate::chain::{Genesis, GroupId, Head, Trx, Verified};
use crate::crypto::GroupKey;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

/// What this node can do in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Owner (and the producer in the single-producer case).
    Owner,
    /// Holds the key: reads and posts.
    Member,
    /// No key: stores and relays ciphertext only.
    RelayOnly,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Member => "member",
            Self::RelayOnly => "relay-only",
        }
    }
}

pub struct GroupEntry {
    pub genesis: Verified<Genesis>,
    pub rules: GroupRules,
    pub key: Option<GroupKey>,
    pub bootstrap: Vec<String>,
    pub joined_at: u64,
    pub role: Role,
    pub(crate) state: Mutex<GroupState>,
    /// Set while a producer wake-up for this group is outstanding.
    pub(crate) scheduled: std::sync::atomic::AtomicBool,
}

pub(crate) struct GroupState {
    pub head: Head,
    /// Stream cursor of the group's latest included trx (0 if none).
    pub last_cursor: i64,
    /// Trx durably stored as pending, in arrival order, waiting for a block.
    pub pending: VecDeque<Verified<Trx>>,
}

impl GroupEntry {
    pub fn new(
        genesis: Verified<Genesis>,
        key: Option<GroupKey>,
        bootstrap: Vec<String>,
        joined_at: u64,
        head: Head,
        last_cursor: i64,
        me: &[u8; 32],
    ) -> Self {
        let rules = GroupRules::from_genesis(&genesis);
        let role = if genesis.body.owner == *me {
            Role::Owner
        } else if key.is_some() {
            Role::Member
        } else {
            Role::RelayOnly
        };
        Self {
            rules,
            key,
            bootstrap,
            joined_at,
            role,
            genesis,
            state: Mutex::new(GroupState {
                head,
                last_cursor,
                pending: VecDeque::new(),
            }),
            scheduled: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn id(&self) -> GroupId {
        self.rules.group_id
    }

    pub fn head(&self) -> Head {
        self.lock().head
    }

    pub fn last_cursor(&self) -> i64 {
        self.lock().last_cursor
    }

    pub fn pending_len(&self) -> usize {
        self.lock().pending.len()
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, GroupState> {
        // A panic while holding this lock cannot leave the state half-updated (every update is a
        // single assignment or push), so a poisoned lock is safe to keep using.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Default)]
pub struct Groups {
    map: RwLock<HashMap<GroupId, Arc<GroupEntry>>>,
}

impl Groups {
    pub fn get(&self, id: &GroupId) -> Option<Arc<GroupEntry>> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    pub fn insert(&self, entry: Arc<GroupEntry>) {
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(entry.id(), entry);
    }

    pub fn remove(&self, id: &GroupId) -> Option<Arc<GroupEntry>> {
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
    }

    /// All groups, oldest joined first.
    pub fn list(&self) -> Vec<Arc<GroupEntry>> {
        let mut v: Vec<_> = self
            .map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        v.sort_by_key(|g| (g.joined_at, g.id()));
        v
    }
}
