//! The edge's example config loads, and a misspelled key is named in the error.

use std::path::Path;

use hasip_edge::config::EdgeConfig;

fn example() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/edge.toml")
}

#[test]
fn example_config_loads() {
    let config = EdgeConfig::load(&example()).expect("config/edge.toml loads");
    assert_eq!(config.sip.listen.len(), 2);
    assert_eq!(config.limits.max_message_size, 65536);
    assert_eq!(config.registrars.addrs.len(), 2);
    assert_eq!(config.registrars.failover_timeout_ms, 1000);
    assert_eq!(config.keepalive.interval_ms, 25000);
    // The secret never shows in a printed config.
    assert!(!format!("{config:?}").contains("change-me"));
}

#[test]
fn misspelled_key_is_named() {
    let text = std::fs::read_to_string(example())
        .expect("example readable")
        .replace("max_headers", "max_haeders");
    let err = hasip::config::load_str::<EdgeConfig>(&text, "HASIP_EDGE_TEST_UNSET")
        .expect_err("misspelled key refused");
    assert!(err.to_string().contains("max_haeders"), "{err}");
}

#[test]
fn empty_listen_list_is_refused() {
    let config: EdgeConfig = hasip::config::load_str(
        "[sip]\nlisten = []\ninternal = \"udp:127.0.0.1:0\"\n\
             [flow_token]\nsecret = \"0123456789abcdef0123\"\n\
             [registrars]\naddrs = [\"127.0.0.1:5080\"]\n",
        "HASIP_EDGE_TEST_UNSET",
    )
    .expect("parses");
    let err = config.validate().expect_err("no sockets refused");
    assert!(err.to_string().contains("sip.listen"), "{err}");
}

#[test]
fn timers_out_of_range_are_refused() {
    let text = std::fs::read_to_string(example())
        .expect("example readable")
        .replace("failover_timeout_ms = 1000", "failover_timeout_ms = 0");
    let config: EdgeConfig =
        hasip::config::load_str(&text, "HASIP_EDGE_TEST_UNSET").expect("parses");
    let err = config.validate().expect_err("zero refused");
    assert!(err.to_string().contains("failover_timeout_ms"), "{err}");
    let text = std::fs::read_to_string(example())
        .expect("example readable")
        .replace("interval_ms = 25000", "interval_ms = 9223372036854775807");
    let config: EdgeConfig =
        hasip::config::load_str(&text, "HASIP_EDGE_TEST_UNSET").expect("parses");
    let err = config.validate().expect_err("huge refused");
    assert!(err.to_string().contains("keepalive.interval_ms"), "{err}");
}

#[test]
fn a_wildcard_address_is_refused() {
    for (from, to, key) in [
        ("udp:127.0.0.1:5060\"", "udp:0.0.0.0:5060\"", "sip.listen"),
        ("udp:127.0.0.1:5070", "udp:[::]:5070", "sip.internal"),
    ] {
        let text = std::fs::read_to_string(example())
            .expect("example readable")
            .replacen(from, to, 1);
        assert!(text.contains(to), "the example names {from}");
        let config: EdgeConfig =
            hasip::config::load_str(&text, "HASIP_EDGE_TEST_UNSET").expect("parses");
        let err = config.validate().expect_err("a wildcard refused");
        assert!(err.to_string().contains(key), "{err}");
        assert!(err.to_string().contains("wildcard"), "{err}");
    }
}
