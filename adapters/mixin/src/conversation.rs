//! Conversation ids derived the way the Mixin SDKs derive them.

use md5::{Digest, Md5};

/// The id of the 1:1 (CONTACT) conversation between users `a` and `b`: MD5 of the two id
/// strings concatenated, smaller first, stamped as a version-3 RFC 4122 UUID. Order-independent.
pub fn unique_conversation_id(a: &str, b: &str) -> String {
    let (min, max) = if a <= b { (a, b) } else { (b, a) };
    let mut h = Md5::new();
    h.update(min.as_bytes());
    h.update(max.as_bytes());
    let mut bytes: [u8; 16] = h.finalize().into();
    bytes[6] = (bytes[6] & 0x0f) | 0x30;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(bytes).to_string()
}

/// The id the SDKs give a group they create: chained 1:1 derivations over the owner, the group
/// name, a random id and the sorted participants.
pub fn group_conversation_id(
    owner: &str,
    name: &str,
    participants: &[&str],
    random_id: &str,
) -> String {
    let mut sorted = participants.to_vec();
    sorted.sort_unstable();
    let mut gid = unique_conversation_id(owner, name);
    gid = unique_conversation_id(&gid, random_id);
    for p in sorted {
        gid = unique_conversation_id(&gid, p);
    }
    gid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_order_independent() {
        let (a, b) = (
            "965e5c6e-434c-3fa9-b780-c50f43cd955c",
            "d1e9ec7e-199d-4578-91a0-a69d9a7ba048",
        );
        assert_eq!(unique_conversation_id(a, b), unique_conversation_id(b, a));
        let id = unique_conversation_id(a, b);
        assert_eq!(&id[14..15], "3", "version 3: {id}");
    }
}
