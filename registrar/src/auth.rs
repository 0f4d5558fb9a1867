//! Digest authentication of REGISTER (RFC 3261 section 22, RFC 8760), sans-IO.
//!
//! The checks that need no database run first ([`DigestAuth::precheck`]): are there
//! credentials for our realm, for the AoR's own user, with an algorithm we offered and
//! a nonce one of the registrars issued? What is left, the response against the
//! subscriber's HA1, becomes an [`AuthCheck`] the store runs inside the REGISTER's
//! batch, so authentication costs no round trip of its own.
//!
//! Answers, following common practice (Kamailio's `auth_check` with the default
//! script, Asterisk):
//! - no credentials for our realm, an unknown or forged nonce, an algorithm we did not
//!   offer: 401 with fresh challenges;
//! - a wrong response, or a user without a subscriber row: 401 again with fresh
//!   challenges (the phone may prompt for the password; the two cases look the same
//!   so nobody can probe which users exist);
//! - a right response on a nonce older than the maximum age: 401 with `stale=true`,
//!   so the phone retries at once without asking its user;
//! - credentials only for another realm, or for another user than the To-URI's:
//!   403, since retrying with the same credentials cannot help.

use std::time::Duration;

use hasip::digest::{self, Algorithm};
use hasip::nonce::{NonceCheck, NonceKey};
use hasip::sip::auth::{Challenge, Credentials, Qop};
use hasip::sip::Message;

use crate::binding::Aor;
use crate::config::AuthConfig;
use crate::error::Error;
use crate::register::Rejection;
use crate::store::{AuthCheck, Subscriber};

/// Issues challenges and checks credentials under the shared nonce secret.
#[derive(Debug, Clone)]
pub struct DigestAuth {
    key: NonceKey,
    realm: Option<String>,
    max_age: Duration,
    algorithms: Vec<Algorithm>,
}

/// What the database-free checks decided.
pub enum Precheck {
    /// Answer 401 with fresh challenges.
    Challenge,
    /// Answer 403 with this reason.
    Forbidden(&'static str),
    /// Answer 400 with this reason.
    Malformed(&'static str),
    /// Check the response against the subscriber row, in the store.
    Verify(AuthCheck),
}

impl std::fmt::Debug for Precheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Precheck::Challenge => f.write_str("Challenge"),
            Precheck::Forbidden(why) => write!(f, "Forbidden({why})"),
            Precheck::Malformed(why) => write!(f, "Malformed({why})"),
            Precheck::Verify(_) => f.write_str("Verify(..)"),
        }
    }
}

/// The 401 a failed check yields; the SIP layer adds the challenges.
pub const fn unauthorized(stale: bool) -> Rejection {
    Rejection {
        code: 401,
        reason: "Unauthorized",
        min_expires: None,
        stale,
    }
}

/// Everything the store-side check needs from the credentials, owned.
struct Answer {
    with_domain: bool,
    algorithm: Algorithm,
    nonce: String,
    cnonce: String,
    nc: String,
    qop: Option<&'static str>,
    uri: String,
    response: String,
    stale: bool,
}

impl Answer {
    /// Checks the answer against `subscriber`'s HA1.
    fn check(&self, subscriber: Option<&Subscriber>) -> Result<(), Rejection> {
        let Some(subscriber) = subscriber else {
            return Err(unauthorized(false));
        };
        let ha1 = match (self.algorithm, self.with_domain) {
            (Algorithm::Sha256 | Algorithm::Sha256Sess, false) => &subscriber.ha1_sha256,
            (Algorithm::Md5 | Algorithm::Md5Sess, false) => &subscriber.ha1,
            (Algorithm::Md5 | Algorithm::Md5Sess, true) => &subscriber.ha1b,
            // No `user@domain` HA1 is stored for SHA-256.
            (Algorithm::Sha256 | Algorithm::Sha256Sess, true) => return Err(unauthorized(false)),
        };
        if ha1.is_empty() {
            return Err(unauthorized(false));
        }
        let expected = digest::response(
            self.algorithm,
            &ha1.to_ascii_lowercase(),
            &self.nonce,
            &self.cnonce,
            &self.nc,
            self.qop,
            "REGISTER",
            &self.uri,
        );
        if !digest::verify_response(&expected, &self.response) {
            return Err(unauthorized(false));
        }
        if self.stale {
            return Err(unauthorized(true));
        }
        Ok(())
    }
}

impl DigestAuth {
    /// The authenticator for `config`, or `None` when auth is switched off.
    pub fn from_config(config: &AuthConfig) -> Result<Option<Self>, Error> {
        if !config.enabled {
            return Ok(None);
        }
        let secret = config
            .nonce_secret
            .as_ref()
            .ok_or_else(|| Error::Config("auth.nonce_secret is required".into()))?;
        Ok(Some(DigestAuth {
            key: NonceKey::new(secret.expose().as_bytes()),
            realm: config.realm.clone(),
            max_age: config.nonce_max_age(),
            algorithms: config.parsed_algorithms()?,
        }))
    }

    /// The realm for a REGISTER to `domain`: the configured one, else the domain.
    pub fn realm<'a>(&'a self, domain: &'a str) -> &'a str {
        self.realm.as_deref().unwrap_or(domain)
    }

    /// The WWW-Authenticate values of a 401: one per offered algorithm, preferred first
    /// (RFC 8760 section 2.4), sharing one fresh nonce.
    pub fn challenges(&self, realm: &str, stale: bool, now_unix_secs: u64) -> Vec<String> {
        let nonce = self.key.issue(realm, now_unix_secs);
        self.algorithms
            .iter()
            .map(|algorithm| {
                let mut challenge = Challenge::new(realm, nonce.as_str());
                challenge.algorithm =
                    Some(hasip::sip::auth::Algorithm::from_token(algorithm.as_str()));
                challenge.qop = Some("auth".into());
                challenge.stale = stale;
                challenge.to_string()
            })
            .collect()
    }

    /// Runs the checks that need no database on `request` for `aor` at `now`.
    pub fn precheck(&self, request: &Message, aor: &Aor, now_unix_secs: u64) -> Precheck {
        let realm = self.realm(&aor.domain);
        let mut other_realm = false;
        let mut ours = None;
        for credentials in request.authorizations() {
            let Ok(credentials) = credentials else {
                return Precheck::Malformed("Bad Authorization");
            };
            if credentials.realm == realm {
                ours = Some(credentials);
                break;
            }
            other_realm = true;
        }
        let Some(credentials) = ours else {
            return if other_realm {
                Precheck::Forbidden("Wrong Realm")
            } else {
                Precheck::Challenge
            };
        };
        let with_domain = if credentials.username == aor.username {
            false
        } else if is_user_at_domain(&credentials.username, aor) {
            true
        } else {
            return Precheck::Forbidden("Authentication User Mismatch");
        };
        match self.answer(&credentials, realm, with_domain, now_unix_secs) {
            Some(answer) => Precheck::Verify(Box::new(move |subscriber| answer.check(subscriber))),
            None => Precheck::Challenge,
        }
    }

    /// The owned answer, or `None` when the credentials cannot be checked and a fresh
    /// challenge is the reply.
    fn answer(
        &self,
        credentials: &Credentials<'_>,
        realm: &str,
        with_domain: bool,
        now_unix_secs: u64,
    ) -> Option<Answer> {
        let algorithm = Algorithm::parse(credentials.algorithm_or_default().as_str())
            .filter(|a| self.algorithms.contains(a))?;
        let stale = match self
            .key
            .verify(&credentials.nonce, realm, now_unix_secs, self.max_age)
        {
            NonceCheck::Valid => false,
            NonceCheck::Stale => true,
            NonceCheck::Invalid => return None,
        };
        let (qop, cnonce, nc) = match credentials.qop {
            Some(Qop::Auth) => (
                Some("auth"),
                credentials.cnonce.as_deref()?.to_owned(),
                format!("{:08x}", credentials.nc?),
            ),
            None if !algorithm.is_session() => (None, String::new(), String::new()),
            _ => return None,
        };
        Some(Answer {
            with_domain,
            algorithm,
            nonce: credentials.nonce.to_string(),
            cnonce,
            nc,
            qop,
            uri: credentials.uri.to_string(),
            response: credentials.response.to_string(),
            stale,
        })
    }
}

/// Whether `username` is `user@domain` of `aor` (the form `ha1b` is stored for).
fn is_user_at_domain(username: &str, aor: &Aor) -> bool {
    username.split_once('@').is_some_and(|(user, domain)| {
        user == aor.username && domain.eq_ignore_ascii_case(&aor.domain)
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use hasip::config::Secret;
    use hasip::sip::Limits;

    use super::*;

    const NOW: u64 = 1_800_000_000;
    const DOMAIN: &str = "example.com";

    fn auth(algorithms: &[&str]) -> DigestAuth {
        let config = AuthConfig {
            enabled: true,
            realm: None,
            nonce_secret: Some(Secret::new("0123456789abcdef0123456789abcdef")),
            nonce_max_age_secs: 300,
            algorithms: algorithms.iter().map(|a| (*a).to_owned()).collect(),
        };
        match DigestAuth::from_config(&config) {
            Ok(Some(a)) => a,
            other => panic!("{other:?}"),
        }
    }

    fn subscriber() -> Subscriber {
        Subscriber {
            username: "alice".into(),
            domain: DOMAIN.into(),
            ha1: digest::ha1(Algorithm::Md5, "alice", DOMAIN, "secret"),
            ha1b: digest::ha1(Algorithm::Md5, "alice@example.com", DOMAIN, "secret"),
            ha1_sha256: digest::ha1(Algorithm::Sha256, "alice", DOMAIN, "secret"),
        }
    }

    /// A REGISTER with an Authorization header answering `nonce` with `password`.
    fn register(user: &str, realm: &str, nonce: &str, alg: Algorithm, password: &str) -> Message {
        let uri = "sip:example.com";
        let ha1 = digest::ha1(alg, user, realm, password);
        let response = digest::response(
            alg,
            &ha1,
            nonce,
            "c0ffee",
            "00000001",
            Some("auth"),
            "REGISTER",
            uri,
        );
        let text = format!(
            "REGISTER {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n\
             From: <sip:alice@example.com>;tag=1\r\nTo: <sip:alice@example.com>\r\n\
             Call-ID: c1\r\nCSeq: 2 REGISTER\r\n\
             Authorization: Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", \
             uri=\"{uri}\", response=\"{response}\", algorithm={}, qop=auth, nc=00000001, cnonce=\"c0ffee\"\r\n\
             Content-Length: 0\r\n\r\n",
            alg.as_str()
        );
        match Message::parse(Bytes::from(text), &Limits::default()) {
            Ok(m) => m,
            Err(e) => panic!("{e}"),
        }
    }

    fn verify(check: Precheck) -> Result<(), Rejection> {
        match check {
            Precheck::Verify(f) => f(Some(&subscriber())),
            other => panic!("expected Verify, got {other:?}"),
        }
    }

    fn aor() -> Aor {
        Aor::new("alice", DOMAIN)
    }

    #[test]
    fn challenges_offer_each_algorithm_with_one_nonce() {
        let a = auth(&["SHA-256", "MD5"]);
        let values = a.challenges(DOMAIN, true, NOW);
        assert_eq!(values.len(), 2);
        let parsed: Vec<Challenge<'_>> = values
            .iter()
            .filter_map(|v| Challenge::parse(v, "WWW-Authenticate").ok())
            .collect();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].algorithm_or_default().as_str(), "SHA-256");
        assert_eq!(parsed[1].algorithm_or_default().as_str(), "MD5");
        assert_eq!(parsed[0].nonce, parsed[1].nonce);
        assert!(parsed[0].stale && parsed[1].stale);
        assert_eq!(parsed[0].realm, DOMAIN);
        assert_eq!(parsed[0].qop.as_deref(), Some("auth"));
    }

    #[test]
    fn right_answers_pass_for_both_algorithms() {
        let a = auth(&["SHA-256", "MD5"]);
        let nonce = a.key.issue(DOMAIN, NOW);
        for alg in [Algorithm::Sha256, Algorithm::Md5] {
            let m = register("alice", DOMAIN, &nonce, alg, "secret");
            assert_eq!(verify(a.precheck(&m, &aor(), NOW + 10)), Ok(()), "{alg:?}");
        }
        // user@domain uses ha1b.
        let m = register(
            "alice@example.com",
            DOMAIN,
            &nonce,
            Algorithm::Md5,
            "secret",
        );
        assert_eq!(verify(a.precheck(&m, &aor(), NOW)), Ok(()));
    }

    #[test]
    fn wrong_password_or_unknown_user_is_401() {
        let a = auth(&["SHA-256", "MD5"]);
        let nonce = a.key.issue(DOMAIN, NOW);
        let m = register("alice", DOMAIN, &nonce, Algorithm::Md5, "wrong");
        assert_eq!(
            verify(a.precheck(&m, &aor(), NOW)),
            Err(unauthorized(false))
        );
        let m = register("alice", DOMAIN, &nonce, Algorithm::Md5, "secret");
        match a.precheck(&m, &aor(), NOW) {
            Precheck::Verify(f) => assert_eq!(f(None), Err(unauthorized(false))),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stale_nonce_with_right_answer_is_stale_401() {
        let a = auth(&["MD5"]);
        let nonce = a.key.issue(DOMAIN, NOW);
        let m = register("alice", DOMAIN, &nonce, Algorithm::Md5, "secret");
        assert_eq!(
            verify(a.precheck(&m, &aor(), NOW + 301)),
            Err(unauthorized(true))
        );
        let m = register("alice", DOMAIN, &nonce, Algorithm::Md5, "wrong");
        assert_eq!(
            verify(a.precheck(&m, &aor(), NOW + 301)),
            Err(unauthorized(false))
        );
    }

    #[test]
    fn forged_nonce_or_unoffered_algorithm_is_challenged() {
        let a = auth(&["MD5"]);
        let forged = auth(&["MD5"]);
        let forged = DigestAuth {
            key: NonceKey::new(b"another secret, another registrar"),
            ..forged
        };
        let nonce = forged.key.issue(DOMAIN, NOW);
        let m = register("alice", DOMAIN, &nonce, Algorithm::Md5, "secret");
        assert!(matches!(a.precheck(&m, &aor(), NOW), Precheck::Challenge));
        let nonce = a.key.issue(DOMAIN, NOW);
        let m = register("alice", DOMAIN, &nonce, Algorithm::Sha256, "secret");
        assert!(matches!(a.precheck(&m, &aor(), NOW), Precheck::Challenge));
    }

    #[test]
    fn wrong_user_or_realm_is_403() {
        let a = auth(&["MD5"]);
        let nonce = a.key.issue(DOMAIN, NOW);
        let m = register("bob", DOMAIN, &nonce, Algorithm::Md5, "secret");
        assert!(matches!(
            a.precheck(&m, &aor(), NOW),
            Precheck::Forbidden(_)
        ));
        let m = register("alice", "other.example", &nonce, Algorithm::Md5, "secret");
        assert!(matches!(
            a.precheck(&m, &aor(), NOW),
            Precheck::Forbidden(_)
        ));
    }

    #[test]
    fn no_credentials_is_a_challenge() {
        let a = auth(&["MD5"]);
        let text = "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
            From: <sip:alice@example.com>;tag=1\r\nTo: <sip:alice@example.com>\r\n\
            Call-ID: c1\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n";
        let m = Message::parse(Bytes::from(text), &Limits::default());
        let m = m.unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(a.precheck(&m, &aor(), NOW), Precheck::Challenge));
    }
}
