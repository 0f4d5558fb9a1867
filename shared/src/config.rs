//! Configuration loading: a TOML file, then environment overrides, into a serde struct.
//!
//! An override is named `PREFIX__SECTION__KEY`, for example `HASIP_EDGE__LOG__LEVEL=debug`
//! sets `level` in the `[log]` section. Callers' structs use `#[serde(deny_unknown_fields)]`
//! so a misspelled key, in the file or in an override, fails with a message naming it.
//!
//! Override values are strings, converted to the field's type when deserialized:
//! - a number or bool field accepts `70` or `true`; a string field gets exactly what was
//!   set (`0123` stays `0123`). `config`'s `try_parsing` is left off on purpose: it would
//!   turn a numeric-looking string such as a secret into a number and print it back
//!   differently (`0123` as `123`, twenty digits as a float). The cost: a field read
//!   through `deserialize_any` (an untagged enum) sees a string, never a number.
//! - A key whose value in the file is a list takes a comma-separated override, items
//!   trimmed, empty for an empty list (`HASIP_EDGE__SIP__LISTEN=0.0.0.0:5060,[::]:5060`).
//!   A list key absent from the file cannot be overridden, and items cannot contain commas.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;

use config::builder::DefaultState;
use config::{Config, ConfigBuilder, Environment, File, FileFormat, Source, Value, ValueKind};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::Error;

/// Separates the prefix and the section and key names in an override's name.
const ENV_SEPARATOR: &str = "__";
/// Separates the items of a list in an override's value.
const LIST_SEPARATOR: char = ',';

/// Loads the TOML file at `path`, then the `{env_prefix}__...` environment overrides.
pub fn load<T: DeserializeOwned>(path: &Path, env_prefix: &str) -> Result<T, Error> {
    let file = File::from(path).format(FileFormat::Toml).required(true);
    load_from(Config::builder().add_source(file), env_prefix, None).map_err(|e| {
        let shown = path.display().to_string();
        let message = e.to_string();
        // `config` names the file itself when it is missing; say it once.
        if message.contains(&shown) {
            Error::Config(message)
        } else {
            Error::Config(format!("{shown}: {message}"))
        }
    })
}

/// Loads TOML text, then the `{env_prefix}__...` environment overrides (for tests).
pub fn load_str<T: DeserializeOwned>(toml: &str, env_prefix: &str) -> Result<T, Error> {
    let file = File::from_str(toml, FileFormat::Toml);
    load_from(Config::builder().add_source(file), env_prefix, None)
        .map_err(|e| Error::Config(e.to_string()))
}

/// Builds the file source alone, learns which keys are lists, then adds the overrides.
///
/// `env` replaces the process environment, so tests need not touch it.
fn load_from<T: DeserializeOwned>(
    file_only: ConfigBuilder<DefaultState>,
    env_prefix: &str,
    env: Option<HashMap<String, String>>,
) -> Result<T, config::ConfigError> {
    let from_file = file_only.clone().build()?;
    let mut list_keys = Vec::new();
    for (key, value) in from_file.collect()? {
        collect_list_keys(&key, &value, &mut list_keys);
    }
    let env = env.unwrap_or_else(|| {
        std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect()
    });
    // try_parsing stays off: values stay strings, which `config` converts when the field
    // is a number or a bool, so a string field gets exactly what was set.
    let mut builder = file_only.add_source(
        Environment::with_prefix(env_prefix)
            .prefix_separator(ENV_SEPARATOR)
            .separator(ENV_SEPARATOR)
            .source(Some(env.clone())),
    );
    // An override of a list key replaces the string the environment source gave it.
    let prefix = format!("{env_prefix}{ENV_SEPARATOR}").to_lowercase();
    for (name, value) in &env {
        let name = name.to_lowercase();
        let Some(key) = name.strip_prefix(&prefix) else {
            continue;
        };
        let key = key.replace(ENV_SEPARATOR, ".");
        if list_keys.contains(&key) {
            builder = builder.set_override(key, split_list(value))?;
        }
    }
    builder.build()?.try_deserialize()
}

/// The items of a comma-separated override, trimmed; an empty value is an empty list.
fn split_list(value: &str) -> Vec<String> {
    if value.trim().is_empty() {
        return Vec::new();
    }
    value
        .split(LIST_SEPARATOR)
        .map(|item| item.trim().to_owned())
        .collect()
}

/// Records the dotted path of every list in `value`, lower case as overrides are.
fn collect_list_keys(path: &str, value: &Value, out: &mut Vec<String>) {
    match &value.kind {
        ValueKind::Array(_) => out.push(path.to_lowercase()),
        ValueKind::Table(table) => {
            for (key, inner) in table {
                collect_list_keys(&format!("{path}.{key}"), inner, out);
            }
        }
        _ => {}
    }
}

/// The `[log]` section every binary's configuration embeds.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// An `EnvFilter` directive such as `info` or `hasip=debug,info`; `RUST_LOG` wins.
    pub level: String,
    /// Human-readable lines or one JSON object per line.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// The `[http]` section: where `/metrics` and `/health` are served, if anywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// The listening address; `None` serves nothing.
    pub listen: Option<SocketAddr>,
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        #[serde(default)]
        log: LogConfig,
        #[serde(default)]
        http: HttpConfig,
        sip: SipSection,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct SipSection {
        listen: Vec<SocketAddr>,
        max_forwards: u8,
        realm: String,
        #[serde(default)]
        strict: bool,
    }

    const SAMPLE: &str = r#"
        [log]
        level = "debug"
        format = "json"

        [http]
        listen = "127.0.0.1:9090"

        [sip]
        listen = ["0.0.0.0:5060"]
        max_forwards = 70
        realm = "example.com"
    "#;

    fn env(pairs: &[(&str, &str)]) -> Option<HashMap<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    fn load_with_env(toml: &str, pairs: &[(&str, &str)]) -> Result<Sample, config::ConfigError> {
        let file = File::from_str(toml, FileFormat::Toml);
        load_from(Config::builder().add_source(file), "T", env(pairs))
    }

    #[test]
    fn loads_every_section() {
        let sample: Sample = load_str(SAMPLE, "HASIP_TEST_UNUSED")
            .map_err(|e| e.to_string())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            sample,
            Sample {
                log: LogConfig {
                    level: "debug".into(),
                    format: LogFormat::Json
                },
                http: HttpConfig {
                    listen: Some(SocketAddr::from(([127, 0, 0, 1], 9090)))
                },
                sip: SipSection {
                    listen: vec![SocketAddr::from(([0, 0, 0, 0], 5060))],
                    max_forwards: 70,
                    realm: "example.com".into(),
                    strict: false,
                },
            }
        );
    }

    #[test]
    fn defaults_fill_missing_sections() {
        let sample: Result<Sample, _> = load_str(
            "[sip]\nlisten = []\nmax_forwards = 1\nrealm = \"r\"\n",
            "HASIP_TEST_UNUSED",
        );
        let sample = sample.map_err(|e| e.to_string());
        assert_eq!(sample.as_ref().map(|s| &s.log), Ok(&LogConfig::default()));
        assert_eq!(sample.as_ref().map(|s| s.http.listen), Ok(None));
        assert_eq!(LogConfig::default().level, "info");
        assert_eq!(LogConfig::default().format, LogFormat::Text);
    }

    #[test]
    fn misspelled_key_is_named() {
        let toml = SAMPLE.replace("listen = [", "listn = [");
        let err = load_str::<Sample>(&toml, "HASIP_TEST_UNUSED")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("unknown field `listn`"), "{err}");
    }

    #[test]
    fn misspelled_key_in_a_shared_section_is_named() {
        let toml = SAMPLE.replace("format = \"json\"", "fromat = \"json\"");
        let err = load_str::<Sample>(&toml, "HASIP_TEST_UNUSED")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("unknown field `fromat`"), "{err}");
    }

    #[test]
    fn missing_file_names_the_path() {
        let path = Path::new("/nonexistent/hasip-test/edge.toml");
        let err = load::<Sample>(path, "HASIP_TEST_UNUSED")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("/nonexistent/hasip-test/edge.toml"), "{err}");
    }

    #[test]
    fn error_in_a_file_names_the_file_and_the_key() {
        let mut file = match tempfile::NamedTempFile::new() {
            Ok(file) => file,
            Err(e) => panic!("temp file: {e}"),
        };
        let toml = SAMPLE.replace("realm =", "relm =");
        assert!(file.write_all(toml.as_bytes()).is_ok());
        let err = load::<Sample>(file.path(), "HASIP_TEST_UNUSED")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains(&file.path().display().to_string()), "{err}");
        assert!(err.contains("unknown field `relm`"), "{err}");
    }

    #[test]
    fn file_and_process_environment_override() {
        let mut file = match tempfile::NamedTempFile::new() {
            Ok(file) => file,
            Err(e) => panic!("temp file: {e}"),
        };
        assert!(file.write_all(SAMPLE.as_bytes()).is_ok());
        // A name no other test uses, so parallel tests do not see it.
        std::env::set_var("HASIP_CFGTEST_7F3A__SIP__REALM", "override.example");
        let sample: Result<Sample, _> = load(file.path(), "HASIP_CFGTEST_7F3A");
        std::env::remove_var("HASIP_CFGTEST_7F3A__SIP__REALM");
        let sample = sample.map_err(|e| e.to_string());
        assert_eq!(
            sample.as_ref().map(|s| s.sip.realm.as_str()),
            Ok("override.example")
        );
        assert_eq!(sample.as_ref().map(|s| s.sip.max_forwards), Ok(70));
    }

    #[test]
    fn overrides_parse_numbers_bools_and_lists() {
        let sample = load_with_env(
            SAMPLE,
            &[
                ("T__SIP__MAX_FORWARDS", "20"),
                ("T__SIP__STRICT", "true"),
                ("T__SIP__LISTEN", "10.0.0.1:5060,[::1]:5070"),
                ("T__LOG__LEVEL", "warn"),
                ("OTHER__SIP__REALM", "ignored"),
            ],
        )
        .map_err(|e| e.to_string());
        let sample = match sample {
            Ok(sample) => sample,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(sample.sip.max_forwards, 20);
        assert!(sample.sip.strict);
        assert_eq!(
            sample.sip.listen,
            vec![
                SocketAddr::from(([10, 0, 0, 1], 5060)),
                "[::1]:5070"
                    .parse()
                    .unwrap_or(SocketAddr::from(([0; 4], 0)))
            ]
        );
        assert_eq!(sample.log.level, "warn");
        assert_eq!(sample.sip.realm, "example.com");
    }

    #[test]
    fn single_item_list_override_and_numeric_string() {
        let sample = load_with_env(
            SAMPLE,
            &[
                ("T__SIP__LISTEN", "10.0.0.1:5060"),
                ("T__SIP__REALM", "0123"),
            ],
        )
        .map_err(|e| e.to_string());
        assert_eq!(
            sample.as_ref().map(|s| s.sip.listen.clone()),
            Ok(vec![SocketAddr::from(([10, 0, 0, 1], 5060))])
        );
        // A numeric-looking string is kept as written.
        assert_eq!(sample.as_ref().map(|s| s.sip.realm.as_str()), Ok("0123"));
    }

    #[test]
    fn string_overrides_are_kept_exactly() {
        for value in ["12345678901234567890123", "1e3", "true", "inf", " spaced "] {
            let sample = load_with_env(SAMPLE, &[("T__SIP__REALM", value)]);
            let realm = sample.map(|s| s.sip.realm).map_err(|e| e.to_string());
            assert_eq!(realm.as_deref(), Ok(value));
        }
    }

    #[test]
    fn list_override_items_are_trimmed_and_may_be_empty() {
        let listen = |value| {
            load_with_env(SAMPLE, &[("t__sip__listen", value)])
                .map(|s| s.sip.listen)
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            listen(" 10.0.0.1:5060 , 10.0.0.2:5060"),
            Ok(vec![
                SocketAddr::from(([10, 0, 0, 1], 5060)),
                SocketAddr::from(([10, 0, 0, 2], 5060))
            ])
        );
        assert_eq!(listen(""), Ok(vec![]));
        assert!(listen("10.0.0.1:5060,nonsense").is_err());
    }

    #[test]
    fn misspelled_override_is_named() {
        let err = load_with_env(SAMPLE, &[("T__SIP__REALN", "x")])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("unknown field `realn`"), "{err}");
    }

    #[test]
    fn bad_value_in_override_fails() {
        let err = load_with_env(SAMPLE, &[("T__SIP__MAX_FORWARDS", "many")])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("max_forwards"), "{err}");
    }
}
