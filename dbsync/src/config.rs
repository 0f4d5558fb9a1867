//! The dbsync configuration: both servers, the watched tables, the repair allowlist and the
//! intervals. Loaded with serde, unknown keys refused.

use std::fmt;
use std::path::Path;

use crate::ident::Ident;
use crate::reconcile::Side;

/// Prefix of the environment overrides, e.g. `HASIP_DBSYNC__A__PASSWORD`.
pub const ENV_PREFIX: &str = "HASIP_DBSYNC";

/// A password: never printed, `Debug` shows `"***"`.
#[derive(Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a password.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The password itself, only for handing to the driver.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret::new(s))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// One MariaDB server of the pair.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Name used in output, metrics and the repair log.
    pub name: String,
    /// Host name or address dbsync connects to.
    pub host: String,
    /// TCP port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Host name or address the peer's replica threads use to reach this server (defaults to `host`).
    #[serde(default)]
    pub replication_host: Option<String>,
    /// Port the peer uses to reach this server (defaults to `port`).
    #[serde(default)]
    pub replication_port: Option<u16>,
    /// dbsync's monitor user.
    #[serde(default = "default_user")]
    pub user: String,
    /// Its password.
    #[serde(default)]
    pub password: Secret,
}

/// A table to checksum and reconcile.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    /// Table name in `database`.
    pub name: Ident,
    /// Unique key the rows are matched by across the servers (the same binding is the same `ruid`).
    #[serde(default = "default_key")]
    pub key: Ident,
    /// The row version column (newer wins).
    #[serde(default = "default_last_modified")]
    pub version: Ident,
    /// The expiry column (later wins on a version tie; long-expired rows are removed).
    #[serde(default = "default_expires")]
    pub expires: Ident,
    /// Integer column the checksum chunks by (the primary key: ranges of it are sequential
    /// reads); when the table has no such column, chunks follow `key`.
    #[serde(default = "default_chunk_by")]
    pub chunk_by: Ident,
}

/// The one-time `setup` settings.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetupConfig {
    /// Replication user the peers' replica threads log in as.
    #[serde(default = "default_repl_user")]
    pub replication_user: Ident,
    /// Its password.
    #[serde(default)]
    pub replication_password: Secret,
    /// Host part of the created accounts (narrow it in production).
    #[serde(default = "default_account_host")]
    pub account_host: String,
    /// Path of the schema to apply (sql/schema.sql).
    #[serde(default = "default_schema")]
    pub schema: String,
}

impl Default for SetupConfig {
    fn default() -> Self {
        Self {
            replication_user: default_repl_user(),
            replication_password: Secret::default(),
            account_host: default_account_host(),
            schema: default_schema(),
        }
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Application database on both servers.
    #[serde(default = "default_database")]
    pub database: Ident,
    /// First server.
    pub a: ServerConfig,
    /// Second server.
    pub b: ServerConfig,
    /// Server whose row wins when both versions are equal.
    #[serde(default = "default_priority")]
    pub priority: Side,
    /// Tables checksummed and reconciled.
    #[serde(default = "default_tables")]
    pub tables: Vec<TableConfig>,
    /// Replication errors `watch` repairs by itself.
    #[serde(default = "default_repair_errors")]
    pub repair_errors: Vec<u32>,
    /// Tables whose errors `watch` repairs by itself (every table of the failing group must be listed).
    #[serde(default = "default_repair_tables")]
    pub repair_tables: Vec<Ident>,
    /// Poll and heartbeat interval in milliseconds.
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u64,
    /// Interval of the periodic reconcile in seconds (0 disables it).
    #[serde(default = "default_reconcile_s")]
    pub reconcile_interval_s: u64,
    /// Lag above which a direction counts as degraded.
    #[serde(default = "default_lag_ms")]
    pub lag_threshold_ms: u64,
    /// Rows expired longer ago than this are removed rather than copied.
    #[serde(default = "default_grace_s")]
    pub grace_period_s: u64,
    /// Rows per checksum chunk.
    #[serde(default = "default_chunk")]
    pub chunk_size: u64,
    /// Connections per server that checksum chunks at the same time.
    #[serde(default = "default_workers")]
    pub checksum_workers: u64,
    /// How long to wait for one statement or for the peer to catch up, in seconds.
    #[serde(default = "default_timeout_s")]
    pub timeout_s: u64,
    /// Logging (level, text or JSON).
    #[serde(default)]
    pub log: hasip::config::LogConfig,
    /// The `/metrics` and `/health` endpoint of `watch` (no `listen`: no endpoint).
    #[serde(default)]
    pub http: hasip::config::HttpConfig,
    /// `setup` settings.
    #[serde(default)]
    pub setup: SetupConfig,
}

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The TOML did not match the schema (the message names the key).
    #[error("invalid config {path}: {message}")]
    Parse {
        /// The path.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// Values that parse but do not make sense together.
    #[error("invalid config: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads and validates a TOML file, then the `HASIP_DBSYNC__SECTION__KEY` overrides.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let cfg: Config =
            hasip::config::load(path, ENV_PREFIX).map_err(|e| ConfigError::Parse {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses and validates TOML text (with the same overrides).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let cfg: Config =
            hasip::config::load_str(text, ENV_PREFIX).map_err(|e| ConfigError::Parse {
                path: "<text>".into(),
                message: e.to_string(),
            })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the values that serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.a.name == self.b.name {
            return Err(ConfigError::Invalid(
                "servers a and b need different names".into(),
            ));
        }
        if self.poll_interval_ms == 0 || self.chunk_size == 0 || self.timeout_s == 0 {
            return Err(ConfigError::Invalid(
                "poll_interval_ms, chunk_size and timeout_s must be positive".into(),
            ));
        }
        crate::ident::account_host(&self.setup.account_host)
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        Ok(())
    }

    /// The server config of one side.
    pub fn server(&self, side: Side) -> &ServerConfig {
        match side {
            Side::A => &self.a,
            Side::B => &self.b,
        }
    }

    /// The table config named `name`, if watched.
    pub fn table(&self, name: &str) -> Option<&TableConfig> {
        self.tables.iter().find(|t| t.name.as_str() == name)
    }
}

fn default_port() -> u16 {
    3306
}
fn default_user() -> String {
    "hasip_dbsync".into()
}
fn ident(s: &str) -> Ident {
    // Only called on the literals below, which satisfy the pattern.
    Ident::new(s).unwrap_or_else(|_| unreachable!("constant identifier {s}"))
}
fn default_key() -> Ident {
    ident("ruid")
}
fn default_last_modified() -> Ident {
    ident("last_modified")
}
fn default_expires() -> Ident {
    ident("expires")
}
fn default_chunk_by() -> Ident {
    ident("id")
}
fn default_repl_user() -> Ident {
    ident("hasip_repl")
}
fn default_account_host() -> String {
    "%".into()
}
fn default_schema() -> String {
    "sql/schema.sql".into()
}
fn default_database() -> Ident {
    ident("hasip")
}
fn default_priority() -> Side {
    Side::A
}
fn default_tables() -> Vec<TableConfig> {
    vec![TableConfig {
        name: ident("location"),
        key: default_key(),
        version: default_last_modified(),
        expires: default_expires(),
        chunk_by: default_chunk_by(),
    }]
}
fn default_repair_errors() -> Vec<u32> {
    vec![1062, 1032]
}
fn default_repair_tables() -> Vec<Ident> {
    vec![ident("location")]
}
fn default_poll_ms() -> u64 {
    1000
}
fn default_reconcile_s() -> u64 {
    60
}
fn default_lag_ms() -> u64 {
    5000
}
fn default_grace_s() -> u64 {
    3600
}
fn default_chunk() -> u64 {
    50_000
}
fn default_workers() -> u64 {
    2
}
fn default_timeout_s() -> u64 {
    10
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [a]
        name = "db1"
        host = "10.0.0.1"
        password = "s3cret"
        [b]
        name = "db2"
        host = "10.0.0.2"
    "#;

    #[test]
    fn minimal_config_gets_the_defaults() {
        let c = Config::from_toml(MINIMAL).unwrap();
        assert_eq!(c.database.as_str(), "hasip");
        assert_eq!(c.a.port, 3306);
        assert_eq!(c.repair_errors, vec![1062, 1032]);
        assert_eq!(c.repair_tables[0].as_str(), "location");
        assert_eq!(c.tables[0].key.as_str(), "ruid");
        assert_eq!(c.priority, Side::A);
        assert_eq!(c.a.password.expose(), "s3cret");
    }

    #[test]
    fn debug_never_shows_passwords() {
        let c = Config::from_toml(MINIMAL).unwrap();
        let text = format!("{c:?}");
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("***"));
    }

    #[test]
    fn misspelled_key_is_named() {
        let err =
            Config::from_toml(&format!("{MINIMAL}\nreconcile_intervall_s = 5\n")).unwrap_err();
        assert!(err.to_string().contains("reconcile_intervall_s"), "{err}");
    }

    #[test]
    fn hostile_table_name_is_refused() {
        let text = format!("{MINIMAL}\n[[tables]]\nname = \"location`; DROP TABLE x\"\n");
        let err = Config::from_toml(&text).unwrap_err();
        assert!(err.to_string().contains("not a valid identifier"), "{err}");
    }

    #[test]
    fn same_names_are_refused() {
        let text = MINIMAL.replace("db2", "db1");
        assert!(Config::from_toml(&text).is_err());
    }

    #[test]
    fn example_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/dbsync.toml");
        let c = Config::load(&path).unwrap();
        assert_eq!(c.tables.len(), 1);
    }
}
