//! The edge's configuration (`config/edge.toml` is the annotated example).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use hasip::config::{HttpConfig, LogConfig, Secret};
use hasip::sip::Limits;
use hasip::transport::{ListenSpec, Transport};
use serde::Deserialize;

use crate::health::HealthConfig;
use crate::pike::PikeConfig;
use crate::Error;

/// Environment overrides are named `HASIP_EDGE__SECTION__KEY`.
pub const ENV_PREFIX: &str = "HASIP_EDGE";

/// Everything the edge reads at start-up.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeConfig {
    /// Log level and format.
    #[serde(default)]
    pub log: LogConfig,
    /// Where `/metrics` and `/health` are served.
    #[serde(default)]
    pub http: HttpConfig,
    /// The SIP sockets.
    pub sip: SipConfig,
    /// The flow token secret shared by every edge.
    pub flow_token: FlowTokenConfig,
    /// The registrars behind the edge.
    pub registrars: RegistrarsConfig,
    /// Registrar health probes and thresholds.
    #[serde(default)]
    pub health: HealthConfig,
    /// NAT keepalives toward registered phones.
    #[serde(default)]
    pub keepalive: KeepaliveConfig,
    /// Flood and scanner protection.
    #[serde(default)]
    pub protection: ProtectionConfig,
    /// Size limits for every message received.
    #[serde(default)]
    pub limits: Limits,
}

/// The `[sip]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipConfig {
    /// Public listeners phones talk to, such as `udp:203.0.113.7:5060`.
    pub listen: Vec<ListenSpec>,
    /// The UDP socket toward the core registrars, such as `udp:10.0.0.2:5070`; the
    /// Path and Record-Route the edge writes name it.
    pub internal: ListenSpec,
    /// Networks of the core besides the registrars, such as the other edges' internal
    /// sockets (`["10.0.0.0/24"]`). A phone's request that a Route sends on past this
    /// edge goes out only to a registrar, this edge's internal address or one of these;
    /// anything else gets 403, so the edge is no relay into other networks.
    #[serde(default)]
    pub core_networks: Vec<ipnet::IpNet>,
}

/// The `[flow_token]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowTokenConfig {
    /// The HMAC secret, the same on every edge (at least 32 random bytes).
    pub secret: Secret,
}

/// The `[registrars]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrarsConfig {
    /// The registrars' SIP addresses (UDP), the same list on every edge.
    pub addrs: Vec<SocketAddr>,
    /// Points each registrar gets on the hash ring.
    #[serde(default = "default_virtual_nodes")]
    pub virtual_nodes: u32,
    /// Milliseconds to wait for a registrar's answer before moving the transaction to
    /// the next one on the ring.
    #[serde(default = "default_failover_ms")]
    pub failover_timeout_ms: u64,
}

fn default_virtual_nodes() -> u32 {
    512
}

fn default_failover_ms() -> u64 {
    1000
}

impl RegistrarsConfig {
    /// The failover timer.
    pub fn failover_timeout(&self) -> Duration {
        Duration::from_millis(self.failover_timeout_ms)
    }
}

/// The `[keepalive]` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeepaliveConfig {
    /// Whether the edge sends keepalives to registered UDP phones at all.
    pub enabled: bool,
    /// Milliseconds between keepalives on one flow (shorter than NAT UDP timeouts).
    pub interval_ms: u64,
    /// Most flows tracked.
    pub max_flows: usize,
}

impl Default for KeepaliveConfig {
    fn default() -> Self {
        KeepaliveConfig {
            enabled: true,
            interval_ms: 25_000,
            max_flows: 1_000_000,
        }
    }
}

impl KeepaliveConfig {
    /// The keepalive interval.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms.max(1))
    }
}

/// The `[protection]` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProtectionConfig {
    /// Messages one source IP may send per window; 0 turns rate limiting off.
    pub max_requests: u32,
    /// The rate window, in milliseconds.
    pub window_ms: u64,
    /// How long a source that went over stays blocked, in milliseconds.
    pub block_ms: u64,
    /// Most source IPs tracked at once (bounds the limiter's memory).
    pub max_sources: usize,
    /// User-Agent substrings (case-insensitive) whose requests are dropped.
    pub user_agent_deny: Vec<String>,
}

impl Default for ProtectionConfig {
    fn default() -> Self {
        let pike = PikeConfig::default();
        ProtectionConfig {
            max_requests: pike.max_requests,
            window_ms: pike.window_ms,
            block_ms: pike.block_ms,
            max_sources: pike.max_sources,
            user_agent_deny: vec![
                "friendly-scanner".into(),
                "sipvicious".into(),
                "sipcli".into(),
            ],
        }
    }
}

impl ProtectionConfig {
    /// The rate limiter's settings.
    pub fn pike(&self) -> PikeConfig {
        PikeConfig {
            max_requests: self.max_requests,
            window_ms: self.window_ms,
            block_ms: self.block_ms,
            max_sources: self.max_sources,
        }
    }
}

impl EdgeConfig {
    /// Loads and checks the file at `path` with its environment overrides.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let config: EdgeConfig = hasip::config::load(path, ENV_PREFIX)?;
        config.validate()?;
        Ok(config)
    }

    /// Rejects values that parse but cannot work.
    pub fn validate(&self) -> Result<(), Error> {
        if self.sip.listen.is_empty() {
            return Err(Error::Config("sip.listen names no socket".into()));
        }
        if self.sip.internal.transport != Transport::Udp {
            return Err(Error::Config("sip.internal must be a udp: socket".into()));
        }
        // The edge writes its addresses into Via, Path and Record-Route, where a wildcard
        // would send the phones' and the core's requests nowhere.
        let wildcard = self
            .sip
            .listen
            .iter()
            .map(|spec| ("sip.listen", spec))
            .chain([("sip.internal", &self.sip.internal)])
            .find(|(_, spec)| spec.addr.ip().is_unspecified());
        if let Some((key, spec)) = wildcard {
            return Err(Error::Config(format!(
                "{key}: {} is a wildcard address; name the address phones or registrars reach, \
                 since it is written into Via, Path and Record-Route",
                spec.addr
            )));
        }
        if self.flow_token.secret.expose().len() < 16 {
            return Err(Error::Config(
                "flow_token.secret is shorter than 16 bytes".into(),
            ));
        }
        if self.registrars.addrs.is_empty() {
            return Err(Error::Config("registrars.addrs names no registrar".into()));
        }
        // Timers are added to the clock; a day bounds them far from overflow.
        const DAY_MS: u64 = 86_400_000;
        for (key, value) in [
            (
                "registrars.failover_timeout_ms",
                self.registrars.failover_timeout_ms,
            ),
            ("health.probe_interval_ms", self.health.probe_interval_ms),
            ("health.probe_timeout_ms", self.health.probe_timeout_ms),
            ("keepalive.interval_ms", self.keepalive.interval_ms),
            ("protection.window_ms", self.protection.window_ms),
            ("protection.block_ms", self.protection.block_ms),
        ] {
            if value == 0 || value > DAY_MS {
                return Err(Error::Config(format!(
                    "{key} must be between 1 and {DAY_MS} milliseconds"
                )));
            }
        }
        Ok(())
    }
}
