//! Tracing set-up: an `EnvFilter` from the configured level, text or JSON lines on stderr.

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};
use crate::Error;

/// Installs the global subscriber described by `log`; `RUST_LOG`, when set, wins.
///
/// A second call (tests, or a library user who installed one first) leaves the existing
/// subscriber in place and returns `Ok`. An invalid level is an error.
pub fn init(log: &LogConfig) -> Result<(), Error> {
    let filter = build_filter(log, std::env::var(EnvFilter::DEFAULT_ENV).ok().as_deref())?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // try_init fails only when a global subscriber is already set, which is fine.
    let _already_set = match log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    Ok(())
}

/// The filter from `RUST_LOG` if set and non-empty, else from the configured level.
fn build_filter(log: &LogConfig, rust_log: Option<&str>) -> Result<EnvFilter, Error> {
    let (directives, source) = match rust_log {
        Some(value) if !value.trim().is_empty() => (value, EnvFilter::DEFAULT_ENV),
        _ => (log.level.as_str(), "log.level"),
    };
    EnvFilter::try_new(directives)
        .map_err(|e| Error::Config(format!("{source} = {directives:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(level: &str) -> LogConfig {
        LogConfig {
            level: level.into(),
            format: LogFormat::Text,
        }
    }

    #[test]
    fn configured_level_is_used_without_rust_log() {
        let shown = build_filter(&level("hasip=debug,warn"), None).map(|f| f.to_string());
        assert_eq!(shown.ok().as_deref(), Some("hasip=debug,warn"));
    }

    #[test]
    fn rust_log_wins_over_the_configured_level() {
        let shown = build_filter(&level("info"), Some("trace")).map(|f| f.to_string());
        assert_eq!(shown.ok().as_deref(), Some("trace"));
        let shown = build_filter(&level("info"), Some("  ")).map(|f| f.to_string());
        assert_eq!(shown.ok().as_deref(), Some("info"));
    }

    #[test]
    fn invalid_level_is_a_config_error_naming_the_key() {
        let err = build_filter(&level("hasip=loud"), None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("log.level"), "{err}");
    }

    #[test]
    fn init_twice_is_harmless() {
        // Only this module logs, so other tests' output stays quiet.
        let json = LogConfig {
            level: "hasip::telemetry=info".into(),
            format: LogFormat::Json,
        };
        assert!(init(&json).is_ok());
        assert!(init(&level("debug")).is_ok());
        tracing::info!("telemetry test line");
    }
}
