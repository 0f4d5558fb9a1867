//! The edge's configuration (`config/edge.toml` is the annotated example).

use std::path::Path;

use hasip::config::{HttpConfig, LogConfig};
use hasip::sip::Limits;
use hasip::transport::ListenSpec;
use serde::Deserialize;

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
        Ok(())
    }
}
