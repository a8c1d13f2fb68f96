//! The node key file: Argon2id + XChaCha20-Poly1305 encrypted, or a mode-0600 plaintext dev file.
//!
//! The file is JSON so an operator can tell which kind it is (`"kind": "encrypted" | "plaintext"`).
//! A wrong passphrase is an error, never a reason to create a new identity.

use super::Identity;
use argon2::{Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Argon2id memory cost in KiB (19 MiB, the OWASP minimum for Argon2id).
pub const ARGON2_M_COST_KIB: u32 = 19 * 1024;
pub const ARGON2_T_COST: u32 = 2;
pub const ARGON2_P_COST: u32 = 1;
const AAD: &[u8] = b"rumgate-keystore-v1";

#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    #[error("keystore {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("keystore {path} is not a valid rumgate keystore: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error(
        "keystore {path} is encrypted: set RUMGATE_PASSPHRASE or keys.passphrase_file to unlock it"
    )]
    PassphraseRequired { path: PathBuf },
    #[error("wrong passphrase for keystore {path} (the file is unchanged)")]
    WrongPassphrase { path: PathBuf },
    #[error("keystore {path} is already encrypted")]
    AlreadyEncrypted { path: PathBuf },
    #[error("key derivation failed: {0}")]
    Kdf(String),
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum KeystoreFile {
    Encrypted {
        version: u32,
        kdf: KdfParams,
        cipher: String,
        nonce: String,
        ciphertext: String,
        public_key: String,
    },
    Plaintext {
        version: u32,
        secret_key: String,
        public_key: String,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KdfParams {
    alg: String,
    m_cost: u32,
    t_cost: u32,
    p_cost: u32,
    salt: String,
}

/// How the identity was obtained, so the node can warn about plaintext keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeystoreStatus {
    CreatedEncrypted,
    CreatedPlaintext,
    LoadedEncrypted,
    LoadedPlaintext,
}

impl KeystoreStatus {
    pub fn is_plaintext(self) -> bool {
        matches!(self, Self::CreatedPlaintext | Self::LoadedPlaintext)
    }
    pub fn created(self) -> bool {
        matches!(self, Self::CreatedEncrypted | Self::CreatedPlaintext)
    }
}

/// Loads the identity at `path`, creating it on first run (encrypted when a passphrase is given).
pub fn load_or_create(
    path: &Path,
    passphrase: Option<&SecretString>,
) -> Result<(Identity, KeystoreStatus), KeystoreError> {
    match std::fs::read(path) {
        Ok(bytes) => load(path, &bytes, passphrase),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let identity = Identity::generate();
            let status = match passphrase {
                Some(p) => {
                    write_encrypted(path, &identity, p)?;
                    KeystoreStatus::CreatedEncrypted
                }
                None => {
                    write_plaintext(path, &identity)?;
                    KeystoreStatus::CreatedPlaintext
                }
            };
            Ok((identity, status))
        }
        Err(source) => Err(KeystoreError::Io {
            path: path.into(),
            source,
        }),
    }
}

fn load(
    path: &Path,
    bytes: &[u8],
    passphrase: Option<&SecretString>,
) -> Result<(Identity, KeystoreStatus), KeystoreError> {
    let malformed = |reason: String| KeystoreError::Malformed {
        path: path.into(),
        reason,
    };
    let file: KeystoreFile = serde_json::from_slice(bytes).map_err(|e| malformed(e.to_string()))?;
    match file {
        KeystoreFile::Plaintext {
            secret_key,
            public_key,
            ..
        } => {
            let secret = decode_32(&secret_key).ok_or_else(|| malformed("secret_key".into()))?;
            let identity = Identity::from_secret(*secret);
            check_public(&identity, &public_key).map_err(malformed)?;
            Ok((identity, KeystoreStatus::LoadedPlaintext))
        }
        KeystoreFile::Encrypted {
            kdf,
            nonce,
            ciphertext,
            public_key,
            cipher,
            ..
        } => {
            let passphrase = passphrase
                .ok_or_else(|| KeystoreError::PassphraseRequired { path: path.into() })?;
            if kdf.alg != "argon2id" || cipher != "xchacha20poly1305" {
                return Err(malformed(format!(
                    "unsupported kdf/cipher {}/{cipher}",
                    kdf.alg
                )));
            }
            let salt = B64
                .decode(&kdf.salt)
                .map_err(|_| malformed("kdf.salt".into()))?;
            let nonce: [u8; 24] = B64
                .decode(&nonce)
                .ok()
                .and_then(|n| n.try_into().ok())
                .ok_or_else(|| malformed("nonce".into()))?;
            let ciphertext = B64
                .decode(&ciphertext)
                .map_err(|_| malformed("ciphertext".into()))?;
            let key = derive_key(passphrase, &salt, kdf.m_cost, kdf.t_cost, kdf.p_cost)?;
            let plain = XChaCha20Poly1305::new((&*key).into())
                .decrypt(
                    XNonce::from_slice(&nonce),
                    Payload {
                        msg: &ciphertext,
                        aad: AAD,
                    },
                )
                .map_err(|_| KeystoreError::WrongPassphrase { path: path.into() })?;
            let plain = Zeroizing::new(plain);
            let secret: [u8; 32] = plain
                .as_slice()
                .try_into()
                .map_err(|_| malformed("secret length".into()))?;
            let identity = Identity::from_secret(secret);
            check_public(&identity, &public_key).map_err(malformed)?;
            Ok((identity, KeystoreStatus::LoadedEncrypted))
        }
    }
}

/// Re-writes a plaintext keystore encrypted under `passphrase` (the `rumgate key encrypt` command).
pub fn encrypt_in_place(path: &Path, passphrase: &SecretString) -> Result<Identity, KeystoreError> {
    let bytes = std::fs::read(path).map_err(|source| KeystoreError::Io {
        path: path.into(),
        source,
    })?;
    match load(path, &bytes, None) {
        Ok((identity, KeystoreStatus::LoadedPlaintext)) => {
            write_encrypted(path, &identity, passphrase)?;
            Ok(identity)
        }
        Ok(_) | Err(KeystoreError::PassphraseRequired { .. }) => {
            Err(KeystoreError::AlreadyEncrypted { path: path.into() })
        }
        Err(e) => Err(e),
    }
}

fn check_public(identity: &Identity, public_hex: &str) -> Result<(), String> {
    if hex::encode(identity.public()) == public_hex {
        Ok(())
    } else {
        Err("public_key does not match the secret key".into())
    }
}

fn decode_32(s: &str) -> Option<Zeroizing<[u8; 32]>> {
    let v = Zeroizing::new(B64.decode(s).ok()?);
    let arr: [u8; 32] = v.as_slice().try_into().ok()?;
    Some(Zeroizing::new(arr))
}

fn derive_key(
    passphrase: &SecretString,
    salt: &[u8],
    m: u32,
    t: u32,
    p: u32,
) -> Result<Zeroizing<[u8; 32]>, KeystoreError> {
    let params = Params::new(m, t, p, Some(32)).map_err(|e| KeystoreError::Kdf(e.to_string()))?;
    let mut out = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.expose_secret().as_bytes(), salt, &mut *out)
        .map_err(|e| KeystoreError::Kdf(e.to_string()))?;
    Ok(out)
}

fn write_encrypted(
    path: &Path,
    identity: &Identity,
    passphrase: &SecretString,
) -> Result<(), KeystoreError> {
    let salt: [u8; 16] = super::random_bytes();
    let nonce: [u8; 24] = super::random_bytes();
    let key = derive_key(
        passphrase,
        &salt,
        ARGON2_M_COST_KIB,
        ARGON2_T_COST,
        ARGON2_P_COST,
    )?;
    let secret = identity.secret();
    let ciphertext = XChaCha20Poly1305::new((&*key).into())
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: secret.as_slice(),
                aad: AAD,
            },
        )
        .map_err(|_| KeystoreError::Kdf("encryption failed".into()))?;
    let file = KeystoreFile::Encrypted {
        version: 1,
        kdf: KdfParams {
            alg: "argon2id".into(),
            m_cost: ARGON2_M_COST_KIB,
            t_cost: ARGON2_T_COST,
            p_cost: ARGON2_P_COST,
            salt: B64.encode(salt),
        },
        cipher: "xchacha20poly1305".into(),
        nonce: B64.encode(nonce),
        ciphertext: B64.encode(ciphertext),
        public_key: hex::encode(identity.public()),
    };
    write_file(path, &file)
}

fn write_plaintext(path: &Path, identity: &Identity) -> Result<(), KeystoreError> {
    let secret = identity.secret();
    let file = KeystoreFile::Plaintext {
        version: 1,
        secret_key: B64.encode(secret.as_slice()),
        public_key: hex::encode(identity.public()),
    };
    write_file(path, &file)
}

fn write_file(path: &Path, file: &KeystoreFile) -> Result<(), KeystoreError> {
    let json =
        Zeroizing::new(
            serde_json::to_vec_pretty(file).map_err(|e| KeystoreError::Malformed {
                path: path.into(),
                reason: e.to_string(),
            })?,
        );
    crate::util::write_private_file(path, &json).map_err(|source| KeystoreError::Io {
        path: path.into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(s: &str) -> SecretString {
        SecretString::from(s.to_string())
    }

    #[test]
    fn plaintext_first_run_then_reload_same_identity() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        let (a, st) = load_or_create(&path, None).unwrap();
        assert_eq!(st, KeystoreStatus::CreatedPlaintext);
        let (b, st) = load_or_create(&path, None).unwrap();
        assert_eq!(st, KeystoreStatus::LoadedPlaintext);
        assert_eq!(a.public(), b.public());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn encrypted_requires_right_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        let (a, st) = load_or_create(&path, Some(&pass("correct horse"))).unwrap();
        assert_eq!(st, KeystoreStatus::CreatedEncrypted);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&B64.encode(a.secret().as_slice())));
        assert!(matches!(
            load_or_create(&path, None),
            Err(KeystoreError::PassphraseRequired { .. })
        ));
        assert!(matches!(
            load_or_create(&path, Some(&pass("wrong"))),
            Err(KeystoreError::WrongPassphrase { .. })
        ));
        let (b, _) = load_or_create(&path, Some(&pass("correct horse"))).unwrap();
        assert_eq!(a.public(), b.public());
    }

    #[test]
    fn encrypt_in_place_keeps_identity() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        let (a, _) = load_or_create(&path, None).unwrap();
        let b = encrypt_in_place(&path, &pass("pw")).unwrap();
        assert_eq!(a.public(), b.public());
        let (c, st) = load_or_create(&path, Some(&pass("pw"))).unwrap();
        assert_eq!(st, KeystoreStatus::LoadedEncrypted);
        assert_eq!(a.public(), c.public());
        assert!(matches!(
            encrypt_in_place(&path, &pass("pw")),
            Err(KeystoreError::AlreadyEncrypted { .. })
        ));
    }
}
