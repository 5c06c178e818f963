//! Encryption at rest and keyed lookup hashes.
//!
//! Credentials are sealed with AES-256-GCM under a numbered key; the key id travels with
//! every ciphertext, so keys can be rotated: new data is sealed with the primary key and
//! old data still opens with the retired ones. Secrets that are looked up rather than
//! decrypted (Element tokens, user and organization secrets) are stored only as
//! HMAC-SHA256 under a key derived from the keyring: fast enough for every request,
//! useless to someone holding only the database. Depends on nothing but `junction-core`.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use junction_core::Secret;
use sha2::Sha256;
use std::fmt;
use zeroize::Zeroizing;

const FORMAT_VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("encryption key {0}: {1}")]
    BadKey(String, &'static str),
    #[error("the encryption key list is empty")]
    NoKeys,
    #[error("encryption key id {0} appears twice")]
    DuplicateKeyId(u32),
    #[error("ciphertext was sealed with key id {0}, which is not configured")]
    UnknownKeyId(u32),
    #[error("ciphertext is malformed")]
    Malformed,
    #[error("ciphertext failed authentication (wrong key or tampered data)")]
    Tampered,
    #[error("the system random number generator failed")]
    Random,
}

struct KeyEntry {
    id: u32,
    cipher: Aes256Gcm,
    /// HMAC-SHA256 already keyed with the entry's lookup key: keying hashes the key's
    /// inner and outer blocks, half the work of hashing a short secret, and every
    /// authenticated call hashes its secret. Cloned per hash; it lives as long as the
    /// keyring, as the key would.
    lookup_mac: Hmac<Sha256>,
}

/// The configured encryption keys. The first is the primary: it seals new data and
/// computes new lookup hashes.
pub struct Keyring {
    keys: Vec<KeyEntry>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<u32> = self.keys.iter().map(|k| k.id).collect();
        f.debug_struct("Keyring")
            .field("key_ids", &ids)
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// Parses `JUNCTION_ENCRYPTION_KEY`: either one base64 key (id 1), or a comma-separated
    /// list `id:base64,…` whose first entry is the primary.
    pub fn parse(spec: &Secret) -> Result<Self, CryptoError> {
        let mut keys = Vec::new();
        for (index, part) in spec.expose().split(',').map(str::trim).enumerate() {
            if part.is_empty() {
                continue;
            }
            let (id, encoded) = match part.split_once(':') {
                Some((id, encoded)) => {
                    let id: u32 = id.trim().parse().map_err(|_| {
                        CryptoError::BadKey(format!("#{}", index + 1), "key id must be a number")
                    })?;
                    (id, encoded.trim())
                }
                None => (1, part),
            };
            let bytes = Zeroizing::new(
                STANDARD
                    .decode(encoded)
                    .map_err(|_| CryptoError::BadKey(id.to_string(), "is not valid base64"))?,
            );
            let raw: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                CryptoError::BadKey(id.to_string(), "must decode to exactly 32 bytes")
            })?;
            let raw = Zeroizing::new(raw);
            if keys.iter().any(|k: &KeyEntry| k.id == id) {
                return Err(CryptoError::DuplicateKeyId(id));
            }
            keys.push(KeyEntry {
                id,
                cipher: Aes256Gcm::new(&Key::<Aes256Gcm>::from(*raw)),
                lookup_mac: keyed_mac(Zeroizing::new(derive_lookup_key(raw.as_slice())).as_slice()),
            });
        }
        if keys.is_empty() {
            return Err(CryptoError::NoKeys);
        }
        Ok(Self { keys })
    }

    pub fn primary_key_id(&self) -> u32 {
        self.keys[0].id
    }

    /// Seals `plaintext`. `context` is authenticated but not stored: a ciphertext copied
    /// into another row (another context) fails to open.
    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let key = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| CryptoError::Random)?;
        let sealed = key
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            .map_err(|_| CryptoError::Malformed)?;
        let mut out = Vec::with_capacity(HEADER_LEN + sealed.len());
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&key.id.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    pub fn open(&self, context: &[u8], blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if blob.len() < HEADER_LEN + 16 || blob[0] != FORMAT_VERSION {
            return Err(CryptoError::Malformed);
        }
        let id = u32::from_be_bytes([blob[1], blob[2], blob[3], blob[4]]);
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or(CryptoError::UnknownKeyId(id))?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&blob[5..HEADER_LEN]);
        key.cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &blob[HEADER_LEN..],
                    aad: context,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Tampered)
    }

    /// The lookup hash to store for a new secret.
    pub fn lookup_hash(&self, secret: &str) -> Vec<u8> {
        lookup_hash(&self.keys[0], secret)
    }

    /// Every hash the secret may be stored under, primary first, so lookups keep working
    /// for rows written before a key rotation.
    pub fn lookup_hashes(&self, secret: &str) -> Vec<Vec<u8>> {
        self.keys.iter().map(|k| lookup_hash(k, secret)).collect()
    }
}

fn derive_lookup_key(raw: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&hmac_sha256(raw, b"junction lookup-hash key v1"));
    out
}

fn lookup_hash(key: &KeyEntry, secret: &str) -> Vec<u8> {
    let mut mac = key.lookup_mac.clone();
    mac.update(secret.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn keyed_mac(key: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so this cannot fail.
    <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = keyed_mac(key);
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// A fresh random 32-byte key, base64: the format `JUNCTION_ENCRYPTION_KEY` takes.
pub fn generate_key() -> Result<Secret, CryptoError> {
    let mut raw = Zeroizing::new([0u8; 32]);
    getrandom::fill(raw.as_mut_slice()).map_err(|_| CryptoError::Random)?;
    Ok(Secret::new(STANDARD.encode(raw.as_slice())))
}

/// A new high-entropy secret (Element tokens, user and organization secrets): `bytes`
/// random bytes, URL-safe base64 so it survives headers, shells and query strings.
pub fn generate_secret(bytes: usize) -> Result<Secret, CryptoError> {
    let mut raw = Zeroizing::new(vec![0u8; bytes]);
    getrandom::fill(raw.as_mut_slice()).map_err(|_| CryptoError::Random)?;
    Ok(Secret::new(URL_SAFE_NO_PAD.encode(raw.as_slice())))
}

/// The S256 PKCE code challenge of `verifier` (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    use sha2::Digest;
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_matches_rfc_7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    fn ring(spec: &str) -> Keyring {
        Keyring::parse(&Secret::new(spec)).unwrap()
    }

    const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

    #[test]
    fn sealed_data_opens_with_the_same_context_only() {
        let k = ring(K1);
        let blob = k.seal(b"instance:1", b"refresh-token").unwrap();
        assert!(!blob.windows(13).any(|w| w == b"refresh-token"));
        assert_eq!(
            k.open(b"instance:1", &blob).unwrap().as_slice(),
            b"refresh-token"
        );
        assert_eq!(k.open(b"instance:2", &blob), Err(CryptoError::Tampered));
    }

    #[test]
    fn tampered_ciphertext_is_refused() {
        let k = ring(K1);
        let mut blob = k.seal(b"c", b"secret").unwrap();
        let last = blob.len() - 1;
        blob[last] ^= 1;
        assert_eq!(k.open(b"c", &blob), Err(CryptoError::Tampered));
    }

    /// Stored hashes must keep matching: the value is HMAC-SHA256(HMAC-SHA256(key,
    /// "junction lookup-hash key v1"), secret), computed independently.
    #[test]
    fn lookup_hashes_are_the_documented_hmac() {
        let hash = ring(K1).lookup_hash("token");
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "33fbc7f71ec5f6215f41d006dcdeb9cbada706fa39b3f15f8d7e4b7cb6b9e089"
        );
        assert_eq!(ring(K1).lookup_hashes("token"), vec![hash]);
    }

    #[test]
    fn rotation_keeps_old_data_readable_and_seals_with_the_new_key() {
        let old = ring(K1);
        let blob = old.seal(b"c", b"v").unwrap();
        let old_hash = old.lookup_hash("token");

        let rotated = ring(&format!("2:{K2},1:{K1}"));
        assert_eq!(rotated.open(b"c", &blob).unwrap().as_slice(), b"v");
        let new_blob = rotated.seal(b"c", b"v").unwrap();
        assert_eq!(&new_blob[1..5], &2u32.to_be_bytes());
        assert!(rotated.lookup_hashes("token").contains(&old_hash));

        let only_new = ring(&format!("2:{K2}"));
        assert_eq!(
            only_new.open(b"c", &blob),
            Err(CryptoError::UnknownKeyId(1))
        );
    }

    #[test]
    fn bad_keys_are_reported_without_their_value() {
        let err = Keyring::parse(&Secret::new("c2hvcnQ=")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "encryption key 1: must decode to exactly 32 bytes"
        );
        assert!(Keyring::parse(&Secret::new("not base64!")).is_err());
        assert_eq!(
            Keyring::parse(&Secret::new(format!("1:{K1},1:{K2}"))).unwrap_err(),
            CryptoError::DuplicateKeyId(1)
        );
    }

    #[test]
    fn debug_shows_key_ids_only() {
        let k = ring(K1);
        assert_eq!(format!("{k:?}"), "Keyring { key_ids: [1], .. }");
    }

    #[test]
    fn generated_secrets_are_distinct_and_long() {
        let a = generate_secret(30).unwrap();
        let b = generate_secret(30).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 40);
    }
}
