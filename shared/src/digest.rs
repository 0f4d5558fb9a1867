//! HTTP digest authentication as SIP uses it: RFC 2617 section 3.2.2, RFC 7616 section 3.4
//! and RFC 8760 (SHA-256 for SIP).
//!
//! Only `qop=auth` and the RFC 2069 form without qop are supported. `qop=auth-int` is not:
//! [`response`] always hashes HA2 as `H(method:digest-uri)`, so an `auth-int` answer never
//! matches, and a registrar should offer only `qop="auth"`.
//!
//! HA1 values are password equivalents: never log them, nor passwords.

use std::fmt;

use md5::Md5;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A digest algorithm (the `algorithm` parameter of a challenge).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `MD5`, the RFC 3261 default when `algorithm` is absent.
    Md5,
    /// `MD5-sess`: HA1 is bound to the nonce and cnonce.
    Md5Sess,
    /// `SHA-256` (RFC 8760).
    Sha256,
    /// `SHA-256-sess` (RFC 8760).
    Sha256Sess,
}

impl Algorithm {
    /// Parses the `algorithm` parameter; algorithm names compare case-insensitively.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Algorithm::Md5,
            Algorithm::Md5Sess,
            Algorithm::Sha256,
            Algorithm::Sha256Sess,
        ]
        .into_iter()
        .find(|alg| alg.as_str().eq_ignore_ascii_case(s))
    }

    /// The name as written in a challenge.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    /// Whether this is a `-sess` variant, whose HA1 also covers nonce and cnonce.
    pub fn is_session(self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess)
    }

    /// Lower-hex `H(p1:p2:...)`: the parts joined by colons, hashed with this algorithm.
    fn hash_joined(self, parts: &[&[u8]]) -> String {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => hex_hash::<Md5>(parts),
            Algorithm::Sha256 | Algorithm::Sha256Sess => hex_hash::<Sha256>(parts),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Hashes the parts joined by `:` without building the joined string.
fn hex_hash<D: Digest>(parts: &[&[u8]]) -> String {
    let mut hasher = D::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hasher.update(b":");
        }
        hasher.update(part);
    }
    hex::encode(hasher.finalize())
}

/// The stored HA1, `H(username:realm:password)`, in lower hex.
///
/// For the `-sess` algorithms this is still the plain HA1 (what a subscriber table
/// stores); [`response`] applies the session step.
pub fn ha1(alg: Algorithm, username: &str, realm: &str, password: &str) -> String {
    alg.hash_joined(&[username.as_bytes(), realm.as_bytes(), password.as_bytes()])
}

/// The expected `response` value in lower hex, from the stored HA1.
///
/// With `qop` present (it must be `auth`), this is `H(HA1:nonce:nc:cnonce:qop:HA2)`;
/// without it, the RFC 2069 form `H(HA1:nonce:HA2)`, where `cnonce` and `nc` are
/// ignored. HA2 is `H(method:digest_uri)`. For `-sess` algorithms HA1 becomes
/// `H(HA1:nonce:cnonce)` first.
#[allow(clippy::too_many_arguments)] // reason: these are exactly the RFC 7616 inputs
pub fn response(
    alg: Algorithm,
    ha1: &str,
    nonce: &str,
    cnonce: &str,
    nc: &str,
    qop: Option<&str>,
    method: &str,
    digest_uri: &str,
) -> String {
    let session_ha1;
    let ha1 = if alg.is_session() {
        session_ha1 = alg.hash_joined(&[ha1.as_bytes(), nonce.as_bytes(), cnonce.as_bytes()]);
        session_ha1.as_str()
    } else {
        ha1
    };
    let ha2 = alg.hash_joined(&[method.as_bytes(), digest_uri.as_bytes()]);
    match qop {
        Some(qop) => alg.hash_joined(&[
            ha1.as_bytes(),
            nonce.as_bytes(),
            nc.as_bytes(),
            cnonce.as_bytes(),
            qop.as_bytes(),
            ha2.as_bytes(),
        ]),
        None => alg.hash_joined(&[ha1.as_bytes(), nonce.as_bytes(), ha2.as_bytes()]),
    }
}

/// Compares the expected lower-hex response with the one received, in constant time.
///
/// Hex digits in `received` compare case-insensitively, because some clients send
/// upper case although RFC 2617 asks for lower.
pub fn verify_response(expected_hex: &str, received: &str) -> bool {
    let received = received.to_ascii_lowercase();
    expected_hex.as_bytes().ct_eq(received.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_names_round_trip_and_ignore_case() {
        for alg in [
            Algorithm::Md5,
            Algorithm::Md5Sess,
            Algorithm::Sha256,
            Algorithm::Sha256Sess,
        ] {
            assert_eq!(Algorithm::parse(alg.as_str()), Some(alg));
        }
        assert_eq!(Algorithm::parse("md5"), Some(Algorithm::Md5));
        assert_eq!(
            Algorithm::parse("sha-256-SESS"),
            Some(Algorithm::Sha256Sess)
        );
        assert_eq!(Algorithm::parse("SHA-512-256"), None);
        assert_eq!(Algorithm::parse(""), None);
    }

    // RFC 2617 section 3.5.
    #[test]
    fn rfc2617_md5_example() {
        let ha1 = ha1(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
        );
        let response = response(
            Algorithm::Md5,
            &ha1,
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            "0a4f113b",
            "00000001",
            Some("auth"),
            "GET",
            "/dir/index.html",
        );
        assert_eq!(response, "6629fae49393a05397450978507c4ef1");
        assert!(verify_response(
            &response,
            "6629fae49393a05397450978507c4ef1"
        ));
    }

    // RFC 7616 section 3.9.1 (note the lower-case "of" in the password).
    #[test]
    fn rfc7616_sha256_and_md5_examples() {
        let nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        let answer = |alg| {
            let ha1 = ha1(alg, "Mufasa", "http-auth@example.org", "Circle of Life");
            response(
                alg,
                &ha1,
                nonce,
                cnonce,
                "00000001",
                Some("auth"),
                "GET",
                "/dir/index.html",
            )
        };
        assert_eq!(
            answer(Algorithm::Sha256),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
        assert_eq!(answer(Algorithm::Md5), "8ca523f5e9506fed4657c9700eebdbec");
    }

    // The RFC 2069 form, checked against an independent computation
    // (`printf 'HA1:nonce:HA2' | md5sum`).
    #[test]
    fn no_qop_form_omits_nc_and_cnonce() {
        let ha1 = ha1(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
        );
        let nonce = "dcd98b7102dd2f0e8b11d0f600bfb0c093";
        let a = response(
            Algorithm::Md5,
            &ha1,
            nonce,
            "x",
            "1",
            None,
            "GET",
            "/dir/index.html",
        );
        let b = response(
            Algorithm::Md5,
            &ha1,
            nonce,
            "y",
            "2",
            None,
            "GET",
            "/dir/index.html",
        );
        assert_eq!(a, b);
        assert_eq!(a, NO_QOP_EXPECTED);
    }

    // Computed with coreutils: see `no_qop_form_omits_nc_and_cnonce`.
    const NO_QOP_EXPECTED: &str = "670fd8c2df070c60b045671b8b24ff02";

    #[test]
    fn sess_variants_bind_nonce_and_cnonce() {
        let stored = ha1(Algorithm::Sha256Sess, "alice", "example.com", "secret");
        // The stored HA1 of a -sess algorithm is the plain one.
        assert_eq!(
            stored,
            ha1(Algorithm::Sha256, "alice", "example.com", "secret")
        );
        let sess = |cnonce| {
            response(
                Algorithm::Sha256Sess,
                &stored,
                "n",
                cnonce,
                "00000001",
                Some("auth"),
                "REGISTER",
                "sip:example.com",
            )
        };
        assert_ne!(sess("c1"), sess("c2"));
        let session_ha1 = Algorithm::Sha256.hash_joined(&[stored.as_bytes(), b"n", b"c1"]);
        let by_hand = response(
            Algorithm::Sha256,
            &session_ha1,
            "n",
            "c1",
            "00000001",
            Some("auth"),
            "REGISTER",
            "sip:example.com",
        );
        assert_eq!(sess("c1"), by_hand);
        assert_eq!(sess("c1").len(), 64);
    }

    #[test]
    fn verify_refuses_wrong_and_truncated_answers() {
        let expected = "6629fae49393a05397450978507c4ef1";
        assert!(verify_response(
            expected,
            "6629FAE49393A05397450978507C4EF1"
        ));
        assert!(!verify_response(
            expected,
            "6629fae49393a05397450978507c4ef0"
        ));
        assert!(!verify_response(
            expected,
            "6629fae49393a05397450978507c4ef"
        ));
        assert!(!verify_response(expected, ""));
    }
}
