//! The fixtures' vectors and captured frames (copied from the shared fixtures into
//! `tests/fixtures/`): JWTs byte for byte, conversation ids, Blaze frames, payloads, error bodies.

use std::path::PathBuf;

use rumgate_gateway::AttachmentKind;
use rumgate_mixin::auth::{request_digest, verify, Signer};
use rumgate_mixin::blaze::{decode_frame, encode_frame, BlazeMessage, MessageView};
use rumgate_mixin::client::{batches, MessageRequest};
use rumgate_mixin::convert::{classify, payload, AttachmentPayload, Incoming};
use rumgate_mixin::{group_conversation_id, unique_conversation_id, MixinConfig, SessionKey};
use serde_json::{json, Value};

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn fixture(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture_path(name)).expect("fixture");
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn s(v: &Value) -> &str {
    v.as_str().expect("a string")
}

#[test]
fn jwt_vectors_are_reproduced_byte_for_byte_and_verify() {
    let v = fixture("jwt.vectors.json");
    let key = &v["key"];
    let session = SessionKey::parse(s(&key["ed25519_seed_hex"])).expect("seed");
    assert_eq!(
        hex::encode(session.public_key().as_bytes()),
        s(&key["ed25519_public_key_hex"])
    );
    let signer = Signer::new(
        s(&key["user_id (uid)"]),
        s(&key["session_id (sid)"]),
        session.clone(),
    );
    let vectors = v["vectors"].as_array().expect("vectors");
    assert_eq!(vectors.len(), 3);
    for vector in vectors {
        let req = &vector["request"];
        let (method, uri, body) = (s(&req["method"]), s(&req["uri"]), s(&req["body"]));
        assert_eq!(
            request_digest(method, uri, body.as_bytes()),
            s(&vector["sig"]),
            "{}",
            vector["name"]
        );
        let claims: Value = serde_json::from_str(s(&vector["claims_json"])).expect("claims");
        let token = signer.token(
            method,
            uri,
            body.as_bytes(),
            claims["iat"].as_u64().expect("iat"),
            claims["exp"].as_u64().expect("exp"),
            s(&claims["jti"]),
        );
        assert_eq!(token, s(&vector["token"]), "{}", vector["name"]);
        assert!(token.starts_with(s(&vector["signing_input"])));
        // The server's view: valid before exp, bound to this request.
        let public = session.public_key();
        let iat = claims["iat"].as_u64().expect("iat");
        let checked = verify(&token, &public, method, uri, body.as_bytes(), iat).expect("verifies");
        assert_eq!(checked.uid, s(&key["user_id (uid)"]));
        assert_eq!(checked.scp, "FULL");
        assert!(verify(&token, &public, method, "/other", body.as_bytes(), iat).is_err());
    }
}

#[test]
fn both_published_key_encodings_sign_the_same_tokens() {
    let v = fixture("jwt.vectors.json");
    let seed = s(&v["key"]["ed25519_seed_hex"]);
    let mut keypair = hex::decode(seed).expect("hex");
    keypair.extend(hex::decode(s(&v["key"]["ed25519_public_key_hex"])).expect("hex"));
    use base64::Engine as _;
    let legacy = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&keypair);
    let a = Signer::new("u", "s", SessionKey::parse(seed).expect("hex seed"));
    let b = Signer::new("u", "s", SessionKey::parse(&legacy).expect("base64url key"));
    assert_eq!(
        a.token("GET", "/me", b"", 1, 2, "j"),
        b.token("GET", "/me", b"", 1, 2, "j")
    );
}

#[test]
fn conversation_id_vectors_match_published_and_computed_ones() {
    let v = fixture("conversation_id.vectors.json");
    let published = v["published"].as_array().expect("published");
    let one = &published[0];
    assert_eq!(
        unique_conversation_id(s(&one["a"]), s(&one["b"])),
        s(&one["expected"])
    );
    assert_eq!(
        unique_conversation_id(s(&one["b"]), s(&one["a"])),
        s(&one["expected"])
    );
    let group = &published[1];
    let participants: Vec<&str> = group["participants"]
        .as_array()
        .expect("participants")
        .iter()
        .map(s)
        .collect();
    assert_eq!(
        group_conversation_id(
            s(&group["owner_id"]),
            s(&group["group_name"]),
            &participants,
            s(&group["random_id"])
        ),
        s(&group["expected"])
    );
    for c in v["computed"].as_array().expect("computed") {
        assert_eq!(
            unique_conversation_id(s(&c["a"]), s(&c["b"])),
            s(&c["expected"])
        );
    }
}

#[test]
fn the_captured_gzip_frame_decodes_to_the_plain_text_fixture() {
    let bytes = std::fs::read(fixture_path("blaze.create_message.plain_text.json.gz")).expect("gz");
    let frame = decode_frame(&bytes).expect("gzip JSON frame");
    let expected: BlazeMessage =
        serde_json::from_value(fixture("blaze.create_message.plain_text.json")).expect("frame");
    assert_eq!(frame, expected);
    assert_eq!(frame.action, "CREATE_MESSAGE");
    let view: MessageView = serde_json::from_value(frame.data.expect("data")).expect("view");
    assert_eq!(
        classify(&view, "5e9c2f1a-3b7d-4c8e-9a6f-1d2e3f4a5b6c"),
        Incoming::Text("héllo from Mixin 👋 — any news from Telegram?".into())
    );
    // Our own frames go out the same way and come back equal.
    assert_eq!(
        decode_frame(&encode_frame(&expected).expect("encode")).expect("decode"),
        expected
    );
}

fn view_of(name: &str) -> MessageView {
    serde_json::from_value(fixture(name)["data"].clone()).expect("message view")
}

#[test]
fn data_and_data_base64_decode_to_the_same_payload() {
    for name in [
        "blaze.create_message.plain_text.json",
        "blaze.create_message.plain_image.json",
        "blaze.create_message.message_recall.json",
    ] {
        let mut v = view_of(name);
        let both = payload(&v).expect("payload");
        v.data_base64.clear();
        assert_eq!(payload(&v).expect("from data"), both, "{name}");
        let mut v = view_of(name);
        v.data.clear();
        assert_eq!(payload(&v).expect("from data_base64"), both, "{name}");
    }
}

#[test]
fn image_and_recall_frames_classify_as_the_fixtures_say() {
    let image = classify(&view_of("blaze.create_message.plain_image.json"), "bot");
    let expected: AttachmentPayload =
        serde_json::from_value(fixture("payload.plain_image.json")).expect("payload");
    assert_eq!(
        image,
        Incoming::Attachment {
            kind: AttachmentKind::Image,
            payload: expected
        }
    );
    let recall = classify(&view_of("blaze.create_message.message_recall.json"), "bot");
    assert_eq!(
        recall,
        Incoming::Recall {
            target: s(&fixture("payload.message_recall.json")["message_id"]).into()
        }
    );
    // A receipt for our own message is not a message to bridge.
    let receipt = view_of("blaze.incoming_receipt.json");
    assert_eq!(receipt.source, "ACKNOWLEDGE_MESSAGE_RECEIPT");
    assert!(matches!(
        classify(&receipt, "5e9c2f1a-3b7d-4c8e-9a6f-1d2e3f4a5b6c"),
        Incoming::Skip(_)
    ));
}

#[test]
fn client_frames_have_the_fixture_shape() {
    let ack = fixture("blaze.acknowledge_message_receipt.json");
    let ours = BlazeMessage::request(
        "ACKNOWLEDGE_MESSAGE_RECEIPT",
        Some(json!({"message_id": ack["params"]["message_id"], "status": "READ"})),
    );
    let ours = serde_json::to_value(&ours).expect("json");
    assert_eq!(ours["action"], ack["action"]);
    assert_eq!(ours["params"], ack["params"]);
    let list =
        serde_json::to_value(BlazeMessage::request("LIST_PENDING_MESSAGES", None)).expect("json");
    let keys: Vec<&String> = list.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["action", "id"], "no params on LIST_PENDING_MESSAGES");
    for name in ["blaze.error.reply.json", "blaze.error.unauthorized.json"] {
        let f: BlazeMessage = serde_json::from_value(fixture(name)).expect("error frame");
        assert!(f.error.is_some(), "{name}");
    }
}

#[test]
fn the_messages_request_fixture_is_what_we_send() {
    let fixture_body = fixture("POST_messages.request.json");
    let messages: Vec<MessageRequest> =
        serde_json::from_value(fixture_body.clone()).expect("messages");
    let bodies = batches(&messages).expect("batches");
    assert_eq!(bodies.len(), 1);
    // The compact form is exactly the body the JWT vector signed.
    let jwt = fixture("jwt.vectors.json");
    assert_eq!(
        String::from_utf8(bodies[0].clone()).expect("utf-8"),
        s(&jwt["vectors"][2]["request"]["body"])
    );
}

#[test]
fn the_keystore_shapes_validate() {
    let jwt = fixture("jwt.vectors.json");
    let cfg: MixinConfig = serde_json::from_value(json!({"keystore": {
        "app_id": jwt["key"]["user_id (uid)"], "session_id": jwt["key"]["session_id (sid)"],
        "session_private_key": jwt["key"]["ed25519_seed_hex"], "server_public_key": "x"}}))
    .expect("config");
    let account = cfg.validate().expect("valid");
    assert_eq!(account.user_id, s(&jwt["key"]["user_id (uid)"]));
}
