//! The home proxy: requests to registered users (DESIGN.md "Requests to a registered
//! user"; RFC 3261 section 16, RFC 3327, RFC 5626 section 5.3).
//!
//! - [`route`]: pure routing decisions: the section 16.3 checks (Max-Forwards, loops),
//!   Route pre-processing and loose routing, served domains, and the target set an
//!   AoR's bindings make (Request-URI = Contact, Route set = Path, q groups, flows).
//! - [`auth`]: caller authentication with 407 (proxy digest, stateless nonces, trusted
//!   peers exempt, From must be the authenticated user).
//! - [`fork`]: the sans-IO forking state of one request: parallel and sequential
//!   forking, best response, 2xx forwarding, CANCEL, Timer C, alternate flows.
//! - [`relay`]: the tokio shell that reads the bindings, drives the branches through
//!   the transaction endpoint and answers the caller.
//!
//! The registrar never Record-Routes: it stays out of the dialog, which the edges own.
//!
//! The registrar's SIP shell hands the proxy everything the endpoint delivers except
//! REGISTER (and non-SIP datagrams):
//!
//! ```no_run
//! # async fn wire(
//! #     store: hasip_registrar::store::Store,
//! #     endpoint: hasip::endpoint::Endpoint,
//! #     mut incoming: tokio::sync::mpsc::Receiver<hasip::endpoint::Incoming>,
//! # ) -> anyhow::Result<()> {
//! use hasip::endpoint::Incoming;
//! use hasip::sip::Method;
//! use hasip_registrar::proxy::{Proxy, ProxyConfig};
//!
//! let config = ProxyConfig {
//!     domains: vec!["example.com".into()],
//!     ..ProxyConfig::default()
//! };
//! let proxy = Proxy::new(&config, b"nonce secret shared by all registrars", endpoint, store)?;
//! while let Some(event) = incoming.recv().await {
//!     let proxy = proxy.clone();
//!     match event {
//!         Incoming::Request { request, flow, txn } if request.method() != Some(Method::Register) => {
//!             tokio::spawn(async move { proxy.handle(request, flow, txn).await });
//!         }
//!         Incoming::Ack { ack, .. } => {
//!             tokio::spawn(async move { proxy.forward_ack(ack).await });
//!         }
//!         Incoming::StrayResponse { response, .. } => {
//!             tokio::spawn(async move { proxy.forward_stray_response(response).await });
//!         }
//!         _ => {}
//!     }
//! }
//! # Ok(())
//! # }
//! ```

pub mod auth;
pub mod fork;
pub mod relay;
pub mod route;

use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use hasip::digest::Algorithm;
use ipnet::IpNet;
use serde::Deserialize;

use crate::binding::{Aor, Binding};
use crate::error::StoreError;
use crate::store::{Store, Subscriber};

pub use relay::Proxy;

/// Where the proxy reads bindings and credentials: the store, or a stand-in in tests.
pub trait Locations: Send + Sync + 'static {
    /// The live bindings of `aor` (one query).
    fn lookup(&self, aor: &Aor) -> impl Future<Output = Result<Vec<Binding>, StoreError>> + Send;

    /// The credentials of `username@domain`; also tells a known user from an unknown one.
    fn subscriber(
        &self,
        username: &str,
        domain: &str,
    ) -> impl Future<Output = Result<Option<Subscriber>, StoreError>> + Send;
}

impl Locations for Store {
    fn lookup(&self, aor: &Aor) -> impl Future<Output = Result<Vec<Binding>, StoreError>> + Send {
        Store::lookup(self, aor)
    }

    fn subscriber(
        &self,
        username: &str,
        domain: &str,
    ) -> impl Future<Output = Result<Option<Subscriber>, StoreError>> + Send {
        Store::subscriber(self, username, domain)
    }
}

/// The `[proxy]` configuration.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    /// The domains whose users this registrar routes to.
    pub domains: Vec<String>,
    /// The status for a Request-URI in a domain not served: 403 or 404.
    pub refuse_code: u16,
    /// Whether callers claiming a served domain are challenged (407).
    pub authenticate: bool,
    /// Networks whose requests are never challenged (carriers, PBXs).
    pub trusted_peers: Vec<IpNet>,
    /// The edge proxies' networks. A request from an edge is judged by the address the
    /// edge stamped on the caller's Via, not by the edge's own.
    pub edge_networks: Vec<IpNet>,
    /// Digest algorithms offered, in order of preference (`SHA-256`, `MD5`).
    pub algorithms: Vec<String>,
    /// How long a nonce stays fresh, in seconds.
    pub nonce_max_age_secs: u64,
    /// Timer C (RFC 3261 section 16.8): how long an INVITE branch may ring, in seconds.
    pub timer_c_secs: u64,
    /// Host names that mean this registrar in a Route header.
    pub aliases: Vec<String>,
    /// The address put in the Via of forwarded requests when the listeners are bound
    /// to a wildcard address (0.0.0.0 or ::).
    pub via_address: Option<IpAddr>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            domains: Vec::new(),
            refuse_code: 403,
            authenticate: true,
            trusted_peers: Vec::new(),
            edge_networks: Vec::new(),
            algorithms: vec!["SHA-256".into(), "MD5".into()],
            nonce_max_age_secs: 300,
            timer_c_secs: 180,
            aliases: Vec::new(),
            via_address: None,
        }
    }
}

/// A proxy configuration that cannot work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `refuse_code` is neither 403 nor 404.
    #[error("proxy.refuse_code must be 403 or 404, not {0}")]
    RefuseCode(u16),
    /// An algorithm name is not a digest algorithm.
    #[error("proxy.algorithms: unknown digest algorithm {0:?}")]
    Algorithm(String),
    /// Authentication is on but no algorithm is offered.
    #[error("proxy.algorithms must name at least one algorithm when authenticate is on")]
    NoAlgorithm,
    /// Timer C below the RFC's 3 minutes is allowed, but not zero.
    #[error("proxy.timer_c_secs must be at least 1")]
    TimerC,
}

impl ProxyConfig {
    /// Checks the values serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !matches!(self.refuse_code, 403 | 404) {
            return Err(ConfigError::RefuseCode(self.refuse_code));
        }
        self.digest_algorithms()?;
        if self.timer_c_secs == 0 {
            return Err(ConfigError::TimerC);
        }
        Ok(())
    }

    /// The offered algorithms, parsed.
    pub fn digest_algorithms(&self) -> Result<Vec<Algorithm>, ConfigError> {
        let algs = self
            .algorithms
            .iter()
            .map(|name| Algorithm::parse(name).ok_or_else(|| ConfigError::Algorithm(name.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        if self.authenticate && algs.is_empty() {
            return Err(ConfigError::NoAlgorithm);
        }
        Ok(algs)
    }

    /// Timer C as a duration.
    pub fn timer_c(&self) -> Duration {
        Duration::from_secs(self.timer_c_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_loads_and_refuses_unknown_keys() {
        let toml = r#"
            domains = ["example.com"]
            refuse_code = 404
            trusted_peers = ["192.0.2.0/24"]
            algorithms = ["MD5"]
            timer_c_secs = 60
        "#;
        let c: ProxyConfig = match hasip::config::load_str(toml, "HASIP_PROXY_TEST") {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(c.refuse_code, 404);
        assert_eq!(c.digest_algorithms().ok(), Some(vec![Algorithm::Md5]));
        assert!(c.validate().is_ok());
        let err = hasip::config::load_str::<ProxyConfig>("domian = []", "HASIP_PROXY_TEST")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("domian"), "{err}");
    }

    #[test]
    fn invalid_values_are_refused() {
        let c = ProxyConfig {
            refuse_code: 500,
            ..ProxyConfig::default()
        };
        assert!(matches!(c.validate(), Err(ConfigError::RefuseCode(500))));
        let c = ProxyConfig {
            algorithms: vec!["SHA-1".into()],
            ..ProxyConfig::default()
        };
        assert!(matches!(c.validate(), Err(ConfigError::Algorithm(_))));
    }
}
