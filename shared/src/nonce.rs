//! Stateless digest nonces (RFC 7616 section 3.3 leaves the nonce format to the server).
//!
//! A nonce is base64url, without padding, of 32 bytes:
//! `timestamp (8, big endian) || random (8) || HMAC-SHA256(secret, label || timestamp ||
//! random || realm)` truncated to 16 bytes. Any registrar holding the shared secret can
//! verify a nonce another one issued, so a REGISTER may land on any of them.
//!
//! Replay of a nonce within `max_age` is accepted by design: refusing it would need the
//! nonce count (`nc`) of every nonce, which is state shared by all registrars.

use std::fmt;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Separates nonce MACs from other MACs made with the same secret (flow tokens).
const LABEL: &[u8] = b"hasip nonce v1";
const TS_LEN: usize = 8;
const RAND_LEN: usize = 8;
const MAC_LEN: usize = 16;
const RAW_LEN: usize = TS_LEN + RAND_LEN + MAC_LEN;
/// base64url without padding of [`RAW_LEN`] bytes.
const ENCODED_LEN: usize = (RAW_LEN * 4).div_ceil(3);

/// How far in the future a timestamp may be, for clocks of registrars that differ a little.
pub const MAX_FUTURE_SKEW: Duration = Duration::from_secs(5);

/// The outcome of checking a nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    /// Issued by a holder of the secret for this realm, and young enough.
    Valid,
    /// Genuine but older than `max_age`: challenge again with `stale=true`.
    Stale,
    /// Not one of ours: forged, altered, for another realm, from the future, or garbage.
    Invalid,
}

/// Issues and verifies nonces under one shared secret.
#[derive(Clone)]
pub struct NonceKey {
    mac: HmacSha256,
}

impl fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key material stays out of logs.
        f.write_str("NonceKey { .. }")
    }
}

impl NonceKey {
    /// A key from the shared secret (use at least 32 random bytes).
    pub fn new(secret: &[u8]) -> Self {
        // HMAC accepts keys of any length, so this cannot fail.
        let mac = match HmacSha256::new_from_slice(secret) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        NonceKey { mac }
    }

    /// A fresh nonce for `realm`, stamped with `now_unix_secs`.
    pub fn issue(&self, realm: &str, now_unix_secs: u64) -> String {
        self.issue_with(realm, now_unix_secs, rand::random())
    }

    fn issue_with(&self, realm: &str, now_unix_secs: u64, random: [u8; RAND_LEN]) -> String {
        let ts = now_unix_secs.to_be_bytes();
        let tag = self.tag(&ts, &random, realm);
        let mut raw = [0u8; RAW_LEN];
        raw[..TS_LEN].copy_from_slice(&ts);
        raw[TS_LEN..TS_LEN + RAND_LEN].copy_from_slice(&random);
        raw[TS_LEN + RAND_LEN..].copy_from_slice(&tag[..MAC_LEN]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Checks a nonce received in an Authorization header for `realm` at `now_unix_secs`.
    pub fn verify(
        &self,
        nonce: &str,
        realm: &str,
        now_unix_secs: u64,
        max_age: Duration,
    ) -> NonceCheck {
        // Refuse odd lengths before decoding, so hostile input costs nothing.
        if nonce.len() != ENCODED_LEN {
            return NonceCheck::Invalid;
        }
        let mut raw = [0u8; RAW_LEN];
        match URL_SAFE_NO_PAD.decode_slice(nonce, &mut raw) {
            Ok(RAW_LEN) => {}
            _ => return NonceCheck::Invalid,
        }
        let (ts, rest) = raw.split_at(TS_LEN);
        let (random, tag) = rest.split_at(RAND_LEN);
        let mut mac = self.mac.clone();
        mac.update(LABEL);
        mac.update(ts);
        mac.update(random);
        mac.update(realm.as_bytes());
        // verify_truncated_left compares in constant time.
        if mac.verify_truncated_left(tag).is_err() {
            return NonceCheck::Invalid;
        }
        let mut ts_bytes = [0u8; TS_LEN];
        ts_bytes.copy_from_slice(ts);
        let issued = u64::from_be_bytes(ts_bytes);
        if issued > now_unix_secs.saturating_add(MAX_FUTURE_SKEW.as_secs()) {
            return NonceCheck::Invalid;
        }
        if now_unix_secs.saturating_sub(issued) > max_age.as_secs() {
            NonceCheck::Stale
        } else {
            NonceCheck::Valid
        }
    }

    fn tag(&self, ts: &[u8], random: &[u8], realm: &str) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(LABEL);
        mac.update(ts);
        mac.update(random);
        mac.update(realm.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_800_000_000;
    const MAX_AGE: Duration = Duration::from_secs(300);

    #[test]
    fn round_trip_is_valid() {
        let key = NonceKey::new(SECRET);
        let nonce = key.issue("example.com", NOW);
        assert_eq!(nonce.len(), ENCODED_LEN);
        assert_eq!(
            key.verify(&nonce, "example.com", NOW, MAX_AGE),
            NonceCheck::Valid
        );
        assert_eq!(
            key.verify(&nonce, "example.com", NOW + 300, MAX_AGE),
            NonceCheck::Valid
        );
    }

    #[test]
    fn nonces_differ_even_in_the_same_second() {
        let key = NonceKey::new(SECRET);
        assert_ne!(key.issue("example.com", NOW), key.issue("example.com", NOW));
    }

    #[test]
    fn another_registrar_with_the_same_secret_verifies() {
        let nonce = NonceKey::new(SECRET).issue("example.com", NOW);
        let other = NonceKey::new(SECRET);
        assert_eq!(
            other.verify(&nonce, "example.com", NOW + 10, MAX_AGE),
            NonceCheck::Valid
        );
    }

    #[test]
    fn wrong_secret_is_invalid() {
        let nonce = NonceKey::new(SECRET).issue("example.com", NOW);
        let other = NonceKey::new(b"another secret of thirty-two b..");
        assert_eq!(
            other.verify(&nonce, "example.com", NOW, MAX_AGE),
            NonceCheck::Invalid
        );
    }

    #[test]
    fn wrong_realm_is_invalid() {
        let key = NonceKey::new(SECRET);
        let nonce = key.issue("example.com", NOW);
        assert_eq!(
            key.verify(&nonce, "example.org", NOW, MAX_AGE),
            NonceCheck::Invalid
        );
    }

    #[test]
    fn every_tampered_byte_is_invalid() {
        let key = NonceKey::new(SECRET);
        let nonce = key.issue_with("example.com", NOW, [7; RAND_LEN]);
        let mut raw = URL_SAFE_NO_PAD.decode(&nonce).unwrap_or_default();
        assert_eq!(raw.len(), RAW_LEN);
        for i in 0..raw.len() {
            if let Some(byte) = raw.get_mut(i) {
                *byte ^= 0x01;
            }
            let forged = URL_SAFE_NO_PAD.encode(&raw);
            assert_eq!(
                key.verify(&forged, "example.com", NOW, MAX_AGE),
                NonceCheck::Invalid,
                "byte {i}"
            );
            if let Some(byte) = raw.get_mut(i) {
                *byte ^= 0x01;
            }
        }
    }

    #[test]
    fn old_nonce_is_stale() {
        let key = NonceKey::new(SECRET);
        let nonce = key.issue("example.com", NOW);
        assert_eq!(
            key.verify(&nonce, "example.com", NOW + 301, MAX_AGE),
            NonceCheck::Stale
        );
    }

    #[test]
    fn future_nonce_is_invalid_beyond_the_skew() {
        let key = NonceKey::new(SECRET);
        let nonce = key.issue("example.com", NOW + 60);
        assert_eq!(
            key.verify(&nonce, "example.com", NOW, MAX_AGE),
            NonceCheck::Invalid
        );
        let nonce = key.issue("example.com", NOW + 2);
        assert_eq!(
            key.verify(&nonce, "example.com", NOW, MAX_AGE),
            NonceCheck::Valid
        );
    }

    #[test]
    fn garbage_is_invalid() {
        let key = NonceKey::new(SECRET);
        let valid = key.issue("example.com", NOW);
        let too_long = format!("{valid}A");
        let with_padding = format!("{}=", &valid[..ENCODED_LEN - 1]);
        let not_base64 = "!".repeat(ENCODED_LEN);
        let truncated = &valid[..ENCODED_LEN - 1];
        for nonce in [
            "",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            &not_base64,
            &too_long,
            truncated,
            &with_padding,
            "ééééééééééééééééééééé",
        ] {
            assert_eq!(
                key.verify(nonce, "example.com", NOW, MAX_AGE),
                NonceCheck::Invalid,
                "{nonce:?}"
            );
        }
    }

    #[test]
    fn debug_does_not_show_the_secret() {
        let shown = format!("{:?}", NonceKey::new(SECRET));
        assert_eq!(shown, "NonceKey { .. }");
    }
}
