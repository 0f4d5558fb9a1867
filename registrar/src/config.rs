//! The registrar's configuration (`config/registrar.toml` is the annotated example).

use std::path::Path;
use std::time::Duration;

use hasip::config::{HttpConfig, LogConfig, Secret};
use hasip::digest::Algorithm;
use hasip::sip::Limits;
use hasip::transport::ListenSpec;
use ipnet::IpNet;
use serde::Deserialize;

use crate::cleanup::CleanupConfig;
use crate::error::Error;
use crate::proxy::ProxyConfig;
use crate::register::ExpiresPolicy;
use crate::store::StoreConfig;

/// Environment overrides are named `HASIP_REGISTRAR__SECTION__KEY`.
pub const ENV_PREFIX: &str = "HASIP_REGISTRAR";

/// The shortest nonce secret accepted, in bytes.
const MIN_SECRET_LEN: usize = 16;

/// Everything the registrar reads at start-up.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrarConfig {
    /// Log level and format.
    #[serde(default)]
    pub log: LogConfig,
    /// Where `/metrics` and `/health` are served.
    #[serde(default)]
    pub http: HttpConfig,
    /// The SIP sockets, served domains and trusted sources.
    pub sip: SipConfig,
    /// Digest authentication.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Expiry bounds and the contact limit per AoR.
    #[serde(default)]
    pub expires: ExpiresPolicy,
    /// The MariaDB masters and batching.
    pub store: StoreConfig,
    /// The task deleting long-expired bindings.
    #[serde(default)]
    pub cleanup: CleanupConfig,
    /// The home proxy: routing requests to registered users. Its `domains` default to
    /// `sip.domains`; it signs its nonces with `auth.nonce_secret` and challenges callers
    /// only while `auth.enabled`.
    #[serde(default)]
    pub proxy: ProxyConfig,
    /// Size limits for every message received.
    #[serde(default)]
    pub limits: Limits,
}

/// What happens to a request from a source outside `sip.trusted`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UntrustedAction {
    /// Dropped before any transaction exists; the sender learns nothing.
    #[default]
    Drop,
    /// Answered 403 Forbidden.
    Reject,
}

/// The `[sip]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipConfig {
    /// Listeners the edges send to, such as `udp:10.0.0.5:5060`.
    pub listen: Vec<ListenSpec>,
    /// The domains whose AoRs this registrar keeps (case-insensitive).
    pub domains: Vec<String>,
    /// Networks requests are accepted from (the edges), as CIDRs.
    pub trusted: Vec<IpNet>,
    /// What to do with requests from anywhere else.
    #[serde(default)]
    pub untrusted: UntrustedAction,
}

/// The `[auth]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Whether REGISTERs must carry digest credentials (off only for trusted set-ups).
    pub enabled: bool,
    /// The digest realm; by default the domain of the AoR being registered.
    pub realm: Option<String>,
    /// The secret every registrar shares, so any of them verifies any nonce.
    pub nonce_secret: Option<Secret>,
    /// How long a nonce stays valid, in seconds; older ones get `stale=true`.
    pub nonce_max_age_secs: u64,
    /// The challenges offered, most preferred first (`SHA-256`, `MD5`).
    pub algorithms: Vec<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            enabled: true,
            realm: None,
            nonce_secret: None,
            nonce_max_age_secs: 300,
            algorithms: vec!["SHA-256".to_owned(), "MD5".to_owned()],
        }
    }
}

impl AuthConfig {
    /// The offered algorithms, parsed (checked by [`RegistrarConfig::validate`]).
    pub fn parsed_algorithms(&self) -> Result<Vec<Algorithm>, Error> {
        self.algorithms
            .iter()
            .map(|name| {
                Algorithm::parse(name).ok_or_else(|| {
                    Error::Config(format!(
                        "auth.algorithms: unknown algorithm `{name}` (SHA-256, MD5, SHA-256-sess, MD5-sess)"
                    ))
                })
            })
            .collect()
    }

    /// The nonce lifetime.
    pub fn nonce_max_age(&self) -> Duration {
        Duration::from_secs(self.nonce_max_age_secs)
    }
}

impl RegistrarConfig {
    /// Loads and checks the file at `path` with its environment overrides.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let config: RegistrarConfig = hasip::config::load(path, ENV_PREFIX)?;
        config.validate()?;
        Ok(config)
    }

    /// Loads and checks TOML text (tests), with overrides under `env_prefix`.
    pub fn load_str(toml: &str, env_prefix: &str) -> Result<Self, Error> {
        let config: RegistrarConfig = hasip::config::load_str(toml, env_prefix)?;
        config.validate()?;
        Ok(config)
    }

    /// Rejects values that parse but cannot work.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |text: &str| Err(Error::Config(text.to_owned()));
        if self.sip.listen.is_empty() {
            return bad("sip.listen names no socket");
        }
        if self.sip.domains.iter().all(|d| d.trim().is_empty()) {
            return bad("sip.domains names no domain");
        }
        if self.sip.trusted.is_empty() {
            return bad("sip.trusted names no network (use 0.0.0.0/0 to trust everyone)");
        }
        if self.store.masters.is_empty() {
            return bad("store.masters names no database");
        }
        if self.expires.min > self.expires.max || self.expires.default == 0 {
            return bad("expires: min must not exceed max, and default must be above 0");
        }
        self.proxy_config()
            .validate()
            .map_err(|e| Error::Config(e.to_string()))?;
        if self.auth.enabled {
            let algorithms = self.auth.parsed_algorithms()?;
            if algorithms.is_empty() {
                return bad("auth.algorithms is empty while auth is enabled");
            }
            match &self.auth.nonce_secret {
                Some(secret) if secret.expose().len() >= MIN_SECRET_LEN => {}
                Some(_) => return bad("auth.nonce_secret is shorter than 16 bytes"),
                None => return bad("auth.nonce_secret is required while auth is enabled"),
            }
            if self.auth.nonce_max_age_secs == 0 {
                return bad("auth.nonce_max_age_secs must be above 0");
            }
        }
        Ok(())
    }

    /// The home proxy's settings: its domains come from `sip.domains` when empty, and
    /// with `auth.enabled = false` (a trusted set-up) callers are not challenged either.
    pub fn proxy_config(&self) -> ProxyConfig {
        let mut proxy = self.proxy.clone();
        if proxy.domains.is_empty() {
            proxy.domains = self.served_domains();
        }
        proxy.authenticate &= self.auth.enabled;
        proxy
    }

    /// The served domains, lower case, for comparison with normalised AoRs.
    pub fn served_domains(&self) -> Vec<String> {
        self.sip
            .domains
            .iter()
            .map(|d| d.trim().to_ascii_lowercase())
            .filter(|d| !d.is_empty())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [sip]
        listen = ["udp:127.0.0.1:5060"]
        domains = ["Example.COM"]
        trusted = ["10.0.0.0/8", "127.0.0.1/32"]
        [auth]
        nonce_secret = "0123456789abcdef0123456789abcdef"
        [store]
        masters = ["mysql://hasip:pw@10.0.0.1/hasip"]
    "#;

    fn load(toml: &str) -> Result<RegistrarConfig, String> {
        RegistrarConfig::load_str(toml, "HASIP_REGCFGTEST_UNUSED").map_err(|e| e.to_string())
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let config = load(MINIMAL);
        let config = match config {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(config.served_domains(), vec!["example.com".to_owned()]);
        assert_eq!(config.sip.untrusted, UntrustedAction::Drop);
        assert_eq!(config.sip.trusted.len(), 2);
        assert!(config.auth.enabled);
        assert_eq!(
            config.auth.parsed_algorithms().ok(),
            Some(vec![Algorithm::Sha256, Algorithm::Md5])
        );
        assert_eq!(config.auth.nonce_max_age(), Duration::from_secs(300));
        assert_eq!(config.expires, ExpiresPolicy::default());
        assert_eq!(config.store.timeout_ms, 1000);
    }

    #[test]
    fn misspelled_keys_are_named() {
        let err = load(&MINIMAL.replace("domains =", "domain =")).err();
        assert!(
            err.as_ref()
                .is_some_and(|e| e.contains("unknown field `domain`")),
            "{err:?}"
        );
        let err = load(&MINIMAL.replace("nonce_secret", "nonce_secert")).err();
        assert!(
            err.as_ref().is_some_and(|e| e.contains("nonce_secert")),
            "{err:?}"
        );
    }

    #[test]
    fn unusable_values_are_refused() {
        let no_secret = MINIMAL.replace(
            "nonce_secret = \"0123456789abcdef0123456789abcdef\"",
            "enabled = true",
        );
        let err = load(&no_secret).err();
        assert!(
            err.as_ref().is_some_and(|e| e.contains("nonce_secret")),
            "{err:?}"
        );
        let auth_off = MINIMAL.replace(
            "nonce_secret = \"0123456789abcdef0123456789abcdef\"",
            "enabled = false",
        );
        assert!(load(&auth_off).is_ok());
        let bad_alg = MINIMAL.replace("[auth]", "[auth]\nalgorithms = [\"SHA-1\"]");
        let err = load(&bad_alg).err();
        assert!(err.as_ref().is_some_and(|e| e.contains("SHA-1")), "{err:?}");
        let no_trust = MINIMAL.replace(
            "trusted = [\"10.0.0.0/8\", \"127.0.0.1/32\"]",
            "trusted = []",
        );
        assert!(load(&no_trust).is_err());
        let bad_cidr = MINIMAL.replace("10.0.0.0/8", "10.0.0.0/33");
        assert!(load(&bad_cidr).is_err());
        let reject = MINIMAL.replace("trusted =", "untrusted = \"reject\"\ntrusted =");
        assert_eq!(
            load(&reject).map(|c| c.sip.untrusted),
            Ok(UntrustedAction::Reject)
        );
    }
}
