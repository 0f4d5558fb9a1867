//! Caller authentication for proxied requests (RFC 3261 section 22.3, proxy digest with
//! 407 and Proxy-Authorization; RFC 8760 algorithms; stateless nonces).
//!
//! A request claiming a served domain in From, from a source that is not a trusted
//! peer, must carry credentials of exactly that user: a phone cannot call as someone
//! else.

use std::net::IpAddr;
use std::time::Duration;

use hasip::digest::{self, Algorithm};
use hasip::nonce::{NonceCheck, NonceKey};
use hasip::sip::auth::Challenge;
use hasip::sip::Message;
use ipnet::IpNet;

use super::route::aor_of;
use crate::binding::Aor;
use crate::store::Subscriber;

/// The authentication policy.
#[derive(Clone, Debug)]
pub struct AuthPolicy {
    /// Whether callers are challenged at all.
    pub enabled: bool,
    /// Sources never challenged (carriers, PBXs).
    pub trusted: Vec<IpNet>,
    /// The edge proxies' networks: behind them, the caller is the address the edge
    /// stamped on the Via below its own.
    pub edges: Vec<IpNet>,
    /// The algorithms offered, one challenge each, in this order.
    pub algorithms: Vec<Algorithm>,
    /// How long a nonce stays fresh.
    pub nonce_max_age: Duration,
    /// Issues and checks nonces; the secret all registrars share.
    pub nonces: NonceKey,
}

/// Whether a request must be authenticated before it is routed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Need {
    /// Authentication is off, or the request comes from a trusted peer: route it as it is.
    Trusted,
    /// The caller claims no served domain, so there is nobody to challenge. Such a call
    /// may reach a served user, but it is never relayed anywhere else.
    Foreign,
    /// The caller claims this served AoR: its credentials are required (realm = domain).
    Caller(Aor),
}

/// The address the request came from before any edge: for a request from an edge,
/// the `received` (else the sent-by IP) of the Via right below the edge's, which the
/// edge checked (RFC 3581); otherwise `source`. `None` when that Via is missing or
/// names no address.
///
/// Vias further down are written by the caller and prove nothing.
pub fn caller_ip(request: &Message, source: IpAddr, policy: &AuthPolicy) -> Option<IpAddr> {
    if !policy.edges.iter().any(|net| net.contains(&source)) {
        return Some(source);
    }
    let via = request.vias().nth(1)?.ok()?;
    via.received().or_else(|| via.sent_by().host.ip())
}

/// Decides whether a request from `source` (the peer's address) must be authenticated.
pub fn need(
    request: &Message,
    source: IpAddr,
    policy: &AuthPolicy,
    serves: impl Fn(&str) -> bool,
) -> Need {
    if !policy.enabled {
        return Need::Trusted;
    }
    let trusted = caller_ip(request, source, policy)
        .is_some_and(|ip| policy.trusted.iter().any(|net| net.contains(&ip)));
    if trusted {
        return Need::Trusted;
    }
    let Ok(from) = request.from_header() else {
        return Need::Foreign;
    };
    match aor_of(&from.uri) {
        Some(aor) if serves(&aor.domain) => Need::Caller(aor),
        _ => Need::Foreign,
    }
}

/// The outcome of checking a request's credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The credentials are those of the From user.
    Authenticated,
    /// Answer 407 with fresh challenges (`stale` when the nonce only aged).
    Challenge {
        /// Whether the credentials were right but the nonce too old.
        stale: bool,
    },
    /// Answer 403: the credentials are of another user, or the user does not exist.
    Forbidden,
}

/// The credentials for `realm` in the request, if any (the first that parses).
pub fn credentials_username(request: &Message, realm: &str) -> Option<String> {
    request
        .proxy_authorizations()
        .filter_map(Result::ok)
        .find(|c| c.realm.eq_ignore_ascii_case(realm))
        .map(|c| c.username.into_owned())
}

/// Checks the request's Proxy-Authorization for `caller` (realm = its domain) against
/// the subscriber row read for the credentials' username (`None`: no such user).
pub fn verify(
    request: &Message,
    caller: &Aor,
    subscriber: Option<&Subscriber>,
    policy: &AuthPolicy,
    now_unix_secs: u64,
) -> Verdict {
    let realm = caller.domain.as_str();
    let Some(creds) = request
        .proxy_authorizations()
        .filter_map(Result::ok)
        .find(|c| c.realm.eq_ignore_ascii_case(realm))
    else {
        return Verdict::Challenge { stale: false };
    };
    let Some(alg) = Algorithm::parse(creds.algorithm_or_default().as_str()) else {
        return Verdict::Challenge { stale: false };
    };
    if !policy.algorithms.contains(&alg) {
        return Verdict::Challenge { stale: false };
    }
    // The user authenticated must be the user the request claims to be.
    let (user, user_domain) = match creds.username.split_once('@') {
        Some((u, d)) => (u, d),
        None => (creds.username.as_ref(), realm),
    };
    if user != caller.username || !user_domain.eq_ignore_ascii_case(&caller.domain) {
        return Verdict::Forbidden;
    }
    let Some(sub) = subscriber else {
        return Verdict::Forbidden;
    };
    if request.request_uri() != Some(creds.uri.as_ref()) {
        return Verdict::Challenge { stale: false };
    }
    let nonce_check =
        policy
            .nonces
            .verify(&creds.nonce, realm, now_unix_secs, policy.nonce_max_age);
    if nonce_check == NonceCheck::Invalid {
        return Verdict::Challenge { stale: false };
    }
    let ha1 = match alg {
        Algorithm::Md5 | Algorithm::Md5Sess if creds.username.contains('@') => sub.ha1b.as_str(),
        Algorithm::Md5 | Algorithm::Md5Sess => sub.ha1.as_str(),
        Algorithm::Sha256 | Algorithm::Sha256Sess => sub.ha1_sha256.as_str(),
    };
    if ha1.is_empty() {
        return Verdict::Challenge { stale: false };
    }
    let expected = digest::response(
        alg,
        ha1,
        &creds.nonce,
        creds.cnonce.as_deref().unwrap_or_default(),
        &creds.nc.map(|nc| format!("{nc:08x}")).unwrap_or_default(),
        creds.qop.as_ref().map(|q| q.as_str()),
        request.method_str().unwrap_or_default(),
        &creds.uri,
    );
    if !digest::verify_response(&expected, &creds.response) {
        return Verdict::Forbidden;
    }
    if nonce_check == NonceCheck::Stale {
        return Verdict::Challenge { stale: true };
    }
    Verdict::Authenticated
}

/// The Proxy-Authenticate values of a 407 for `realm`, one per offered algorithm.
pub fn challenges(
    realm: &str,
    stale: bool,
    policy: &AuthPolicy,
    now_unix_secs: u64,
) -> Vec<String> {
    let nonce = policy.nonces.issue(realm, now_unix_secs);
    policy
        .algorithms
        .iter()
        .map(|alg| {
            let mut c = Challenge::new(realm, nonce.as_str());
            c.algorithm = Some(hasip::sip::auth::Algorithm::from_token(alg.as_str()));
            c.qop = Some("auth".into());
            c.stale = stale;
            c.to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use hasip::sip::Limits;

    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn policy() -> AuthPolicy {
        AuthPolicy {
            enabled: true,
            trusted: vec!["192.0.2.0/24".parse().unwrap_or_else(|e| panic!("{e}"))],
            edges: vec!["10.0.0.0/24".parse().unwrap_or_else(|e| panic!("{e}"))],
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            nonce_max_age: Duration::from_secs(300),
            nonces: NonceKey::new(b"0123456789abcdef0123456789abcdef"),
        }
    }

    fn subscriber() -> Subscriber {
        Subscriber {
            username: "alice".into(),
            domain: "example.com".into(),
            ha1: digest::ha1(Algorithm::Md5, "alice", "example.com", "secret"),
            ha1b: digest::ha1(Algorithm::Md5, "alice@example.com", "example.com", "secret"),
            ha1_sha256: digest::ha1(Algorithm::Sha256, "alice", "example.com", "secret"),
        }
    }

    fn request(from_user: &str, auth: Option<String>) -> Message {
        request_via(from_user, auth, "")
    }

    fn request_via(from_user: &str, auth: Option<String>, below: &str) -> Message {
        let auth = auth
            .map(|a| format!("Proxy-Authorization: {a}\r\n"))
            .unwrap_or_default();
        let text = format!(
            "INVITE sip:bob@example.com SIP/2.0\r\n\
             Via: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK1\r\n{below}\
             From: <sip:{from_user}@example.com>;tag=1\r\n\
             To: <sip:bob@example.com>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n{auth}\
             Content-Length: 0\r\n\r\n"
        );
        match Message::parse(Bytes::from(text), &Limits::default()) {
            Ok(m) => m,
            Err(e) => panic!("{e}"),
        }
    }

    fn credentials(alg: Algorithm, user: &str, password: &str, nonce: &str) -> String {
        let ha1 = digest::ha1(alg, user, "example.com", password);
        let uri = "sip:bob@example.com";
        let response = digest::response(
            alg,
            &ha1,
            nonce,
            "cn",
            "00000001",
            Some("auth"),
            "INVITE",
            uri,
        );
        format!(
            "Digest username=\"{user}\", realm=\"example.com\", nonce=\"{nonce}\", \
             uri=\"{uri}\", response=\"{response}\", algorithm={alg}, qop=auth, \
             cnonce=\"cn\", nc=00000001"
        )
    }

    fn serves(d: &str) -> bool {
        d == "example.com"
    }

    #[test]
    fn trusted_and_foreign_callers_are_exempt() {
        let p = policy();
        let r = request("alice", None);
        assert_eq!(
            need(
                &r,
                "192.0.2.9".parse().unwrap_or_else(|e| panic!("{e}")),
                &p,
                serves
            ),
            Need::Trusted
        );
        assert_eq!(
            need(
                &r,
                "10.0.0.9".parse().unwrap_or_else(|e| panic!("{e}")),
                &p,
                serves
            ),
            Need::Caller(Aor::new("alice", "example.com"))
        );
        assert_eq!(
            need(
                &r,
                "10.0.0.9".parse().unwrap_or_else(|e| panic!("{e}")),
                &p,
                |_| false
            ),
            Need::Foreign
        );
    }

    #[test]
    fn behind_an_edge_the_stamped_via_decides_trust() {
        let p = policy();
        let edge: IpAddr = "10.0.0.1".parse().unwrap_or_else(|e| panic!("{e}"));
        let alice = Need::Caller(Aor::new("alice", "example.com"));
        // A carrier behind the edge: the edge stamped its address.
        let r = request_via(
            "alice",
            None,
            "Via: SIP/2.0/UDP sbc.carrier;branch=z9hG4bK2;received=192.0.2.7\r\n",
        );
        assert_eq!(need(&r, edge, &p, serves), Need::Trusted);
        // A phone forging a carrier Via below its own gains nothing.
        let r = request_via(
            "alice",
            None,
            "Via: SIP/2.0/UDP 198.51.100.4;branch=z9hG4bK2\r\n\
             Via: SIP/2.0/UDP 192.0.2.7;branch=z9hG4bK3\r\n",
        );
        assert_eq!(need(&r, edge, &p, serves), alice);
        // No Via below the edge's: nothing to trust.
        assert_eq!(need(&request("alice", None), edge, &p, serves), alice);
    }

    #[test]
    fn right_credentials_pass_in_both_algorithms() {
        let p = policy();
        let caller = Aor::new("alice", "example.com");
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            let nonce = p.nonces.issue("example.com", NOW);
            let r = request("alice", Some(credentials(alg, "alice", "secret", &nonce)));
            assert_eq!(
                verify(&r, &caller, Some(&subscriber()), &p, NOW),
                Verdict::Authenticated
            );
        }
    }

    #[test]
    fn missing_wrong_stale_and_impersonating_credentials() {
        let p = policy();
        let caller = Aor::new("alice", "example.com");
        let sub = subscriber();
        let r = request("alice", None);
        assert_eq!(
            verify(&r, &caller, Some(&sub), &p, NOW),
            Verdict::Challenge { stale: false }
        );

        let nonce = p.nonces.issue("example.com", NOW);
        let r = request(
            "alice",
            Some(credentials(Algorithm::Md5, "alice", "wrong", &nonce)),
        );
        assert_eq!(verify(&r, &caller, Some(&sub), &p, NOW), Verdict::Forbidden);

        let r = request(
            "alice",
            Some(credentials(Algorithm::Md5, "alice", "secret", &nonce)),
        );
        assert_eq!(
            verify(&r, &caller, Some(&sub), &p, NOW + 301),
            Verdict::Challenge { stale: true }
        );

        let forged = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let r = request(
            "alice",
            Some(credentials(Algorithm::Md5, "alice", "secret", forged)),
        );
        assert_eq!(
            verify(&r, &caller, Some(&sub), &p, NOW),
            Verdict::Challenge { stale: false }
        );

        // Mallory's own valid credentials do not let her call as Alice.
        let r = request(
            "alice",
            Some(credentials(Algorithm::Md5, "mallory", "m", &nonce)),
        );
        assert_eq!(verify(&r, &caller, None, &p, NOW), Verdict::Forbidden);
    }

    #[test]
    fn challenges_offer_each_algorithm_with_one_nonce() {
        let p = policy();
        let c = challenges("example.com", true, &p, NOW);
        assert_eq!(c.len(), 2);
        let parsed: Vec<_> = c
            .iter()
            .filter_map(|v| Challenge::parse(v, "Proxy-Authenticate").ok())
            .map(|ch| {
                (
                    ch.realm.to_string(),
                    ch.algorithm_or_default().as_str().to_owned(),
                    ch.stale,
                )
            })
            .collect();
        assert_eq!(
            parsed,
            vec![
                ("example.com".into(), "SHA-256".into(), true),
                ("example.com".into(), "MD5".into(), true)
            ]
        );
        let nonce = c
            .first()
            .and_then(|v| Challenge::parse(v, "Proxy-Authenticate").ok())
            .map(|ch| ch.nonce.to_string())
            .unwrap_or_default();
        assert_eq!(
            p.nonces.verify(&nonce, "example.com", NOW, p.nonce_max_age),
            NonceCheck::Valid
        );
    }
}
