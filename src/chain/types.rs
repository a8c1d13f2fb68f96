//! Wire types of the group chain: genesis, trx and block, each a signed body.

use super::encoding::{encode, tagged_hash, TAG_BLOCK, TAG_GENESIS, TAG_TRX};
use crate::crypto::{GroupKey, Identity, PublicKey, Signature, NONCE_LEN};
use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
            /// Parses 64 lowercase or uppercase hex digits.
            pub fn from_hex(s: &str) -> Option<Self> {
                let mut out = [0u8; 32];
                hex::decode_to_slice(s, &mut out).ok()?;
                Some(Self(out))
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), &self.to_hex()[..12])
            }
        }
    };
}

id_type!(
    /// `SHA-256("rumgate/genesis/v1" || postcard(GenesisBody))`.
    GroupId
);
id_type!(
    /// `SHA-256("rumgate/trx/v1" || postcard(TrxBody))`.
    TrxId
);
id_type!(
    /// `SHA-256("rumgate/block/v1" || postcard(BlockBody))`.
    BlockHash
);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupKind {
    /// The group key travels in the seed: anyone with the seed reads and posts.
    Public,
    /// The group key is given only to approved members.
    Private,
}

impl GroupKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Private => "private",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Consensus {
    /// Proof of authority: the owner appoints producers.
    Poa,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisBody {
    pub version: u16,
    pub name: String,
    pub app: String,
    pub kind: GroupKind,
    pub owner: PublicKey,
    pub consensus: Consensus,
    /// Unix milliseconds.
    pub created_at: u64,
    pub salt: [u8; 16],
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    pub body: GenesisBody,
    pub signature: Signature,
}

impl GenesisBody {
    pub fn group_id(&self) -> GroupId {
        GroupId(tagged_hash(TAG_GENESIS, &encode(self)))
    }
}

impl Genesis {
    /// Signs a genesis body with the owner's identity.
    pub fn sign(body: GenesisBody, owner: &Identity) -> Self {
        let id = body.group_id();
        Self {
            signature: owner.sign(&id.0),
            body,
        }
    }
    pub fn group_id(&self) -> GroupId {
        self.body.group_id()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TrxKind {
    /// An ActivityStreams object, encrypted with the group key.
    Post,
    /// Owner appoints or removes producers (plaintext payload).
    Producer,
    /// Private groups: admit or remove members, carrying the sealed key.
    Member,
    /// Owner configuration: allow/deny lists, name.
    Config,
}

impl TrxKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Post => "post",
            Self::Producer => "producer",
            Self::Member => "member",
            Self::Config => "config",
        }
    }
    pub fn to_code(self) -> i64 {
        match self {
            Self::Post => 0,
            Self::Producer => 1,
            Self::Member => 2,
            Self::Config => 3,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrxBody {
    pub version: u16,
    pub group_id: GroupId,
    pub kind: TrxKind,
    pub sender: PublicKey,
    /// Unix milliseconds, set by the sender.
    pub timestamp: u64,
    /// XChaCha20 nonce for the payload (random per trx).
    pub nonce: [u8; NONCE_LEN],
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trx {
    pub body: TrxBody,
    pub signature: Signature,
}

impl TrxBody {
    pub fn trx_id(&self) -> TrxId {
        TrxId(tagged_hash(TAG_TRX, &encode(self)))
    }
}

impl Trx {
    pub fn sign(body: TrxBody, sender: &Identity) -> Self {
        let id = body.trx_id();
        Self {
            signature: sender.sign(&id.0),
            body,
        }
    }

    /// Builds and signs a POST trx whose payload is `plaintext` sealed with the group key.
    pub fn new_post(
        sender: &Identity,
        group_id: GroupId,
        key: &GroupKey,
        plaintext: &[u8],
        timestamp: u64,
        nonce: [u8; NONCE_LEN],
    ) -> Self {
        let payload = key.seal(&nonce, &group_id.0, plaintext);
        Self::sign(
            TrxBody {
                version: super::PROTOCOL_VERSION,
                group_id,
                kind: TrxKind::Post,
                sender: sender.public(),
                timestamp,
                nonce,
                payload,
            },
            sender,
        )
    }

    pub fn trx_id(&self) -> TrxId {
        self.body.trx_id()
    }

    /// Decrypts a POST payload with the group key.
    pub fn open_payload(&self, key: &GroupKey) -> Result<Vec<u8>, crate::crypto::OpenError> {
        key.open(&self.body.nonce, &self.body.group_id.0, &self.body.payload)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockBody {
    pub version: u16,
    pub group_id: GroupId,
    /// 1 for the first block after genesis.
    pub height: u64,
    /// Hash of the previous block; the group id for height 1.
    pub prev_hash: BlockHash,
    pub timestamp: u64,
    pub producer: PublicKey,
    pub trxs: Vec<Trx>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub body: BlockBody,
    pub signature: Signature,
}

impl BlockBody {
    pub fn hash(&self) -> BlockHash {
        BlockHash(tagged_hash(TAG_BLOCK, &encode(self)))
    }
}

impl Block {
    pub fn sign(body: BlockBody, producer: &Identity) -> Self {
        let hash = body.hash();
        Self {
            signature: producer.sign(&hash.0),
            body,
        }
    }
    pub fn hash(&self) -> BlockHash {
        self.body.hash()
    }
}

/// The head of a group chain: what the next block must link to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub height: u64,
    pub hash: BlockHash,
    pub timestamp: u64,
}

impl Head {
    /// The head of a chain that has only its genesis.
    pub fn genesis(group_id: GroupId, created_at: u64) -> Self {
        Self {
            height: 0,
            hash: BlockHash(group_id.0),
            timestamp: created_at,
        }
    }
}
