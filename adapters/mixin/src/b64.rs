//! Base64 as Mixin uses it: lenient decoding of what it sends (either alphabet, padding or
//! not), URL-safe unpadded encoding of what we send. A leaf module: config and convert both
//! need it, and neither may import the other.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;

/// Decodes base64 in either alphabet, with or without padding, ignoring surrounding whitespace.
pub fn decode_base64_lenient(s: &str) -> Option<Vec<u8>> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &alphabet::URL_SAFE,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    let normalized: String = s
        .trim()
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    LENIENT.decode(normalized).ok()
}

/// Encodes a payload the way Mixin wants it sent: URL-safe base64 without padding.
pub fn encode_payload(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_both_alphabets_with_and_without_padding() {
        let bytes = "héllo 👋 — ?>>".as_bytes();
        for engine in [
            base64::engine::general_purpose::STANDARD,
            base64::engine::general_purpose::STANDARD_NO_PAD,
            base64::engine::general_purpose::URL_SAFE,
            base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ] {
            let enc = engine.encode(bytes);
            assert_eq!(decode_base64_lenient(&enc).as_deref(), Some(bytes), "{enc}");
        }
        assert_eq!(decode_base64_lenient("!!"), None);
        assert_eq!(encode_payload(bytes), URL_SAFE_NO_PAD.encode(bytes));
        assert!(!encode_payload(bytes).contains(['=', '+', '/']));
    }
}
