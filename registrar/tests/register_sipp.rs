//! sipp as the phone, with the scenarios shipped in `sipp/registrar/`: register,
//! refresh and unregister over UDP and TCP, and auth register with sipp's
//! `[authentication]`, against registrars on the harness's MariaDB pair; the rows are
//! checked on both masters.

mod register_support;

use hasip::transport::Transport;
use hasip_tests::MariaDbPair;
use register_support::{
    add_subscriber, config, live_rows, masters, run_sipp, users_csv, Options, Running,
};

const USERS: usize = 20;

fn users() -> Vec<(String, String)> {
    (0..USERS)
        .map(|i| (format!("sipp{i:03}"), format!("pw-{i}")))
        .collect()
}

#[tokio::test]
async fn sipp_register_refresh_unregister() -> anyhow::Result<()> {
    let pair = MariaDbPair::start().await?;
    let registrar = Running::start(config(&masters(&pair), &Options::default())?).await?;
    let dir = tempfile::tempdir()?;
    let csv = users_csv(dir.path(), &users())?;

    run_sipp("register.xml", registrar.udp, Transport::Udp, &csv, USERS).await?;
    pair.wait_replicated().await?;
    for (user, _) in users() {
        let on_a = live_rows(&pair.a, &user).await?;
        assert_eq!(on_a.len(), 1, "{user}: {on_a:?}");
        assert!(on_a[0].remaining > 3500, "{user}: {on_a:?}");
        assert_eq!(on_a, live_rows(&pair.b, &user).await?, "{user}");
    }

    run_sipp("refresh.xml", registrar.tcp, Transport::Tcp, &csv, USERS).await?;
    pair.wait_replicated().await?;
    for (user, _) in users() {
        let on_a = live_rows(&pair.a, &user).await?;
        // The UDP binding from before and the refreshed TCP one.
        let tcp: Vec<_> = on_a
            .iter()
            .filter(|r| r.contact.to_ascii_lowercase().contains("transport=tcp"))
            .collect();
        assert_eq!(tcp.len(), 1, "{user}: {on_a:?}");
        assert_eq!(tcp[0].cseq, 2);
        assert!(
            (1790..=1800).contains(&tcp[0].remaining),
            "{user}: {on_a:?}"
        );
        assert_eq!(on_a, live_rows(&pair.b, &user).await?, "{user}");
    }

    run_sipp("unregister.xml", registrar.udp, Transport::Udp, &csv, USERS).await?;
    pair.wait_replicated().await?;
    for (user, _) in users() {
        assert!(live_rows(&pair.a, &user).await?.is_empty(), "{user}");
        assert!(live_rows(&pair.b, &user).await?.is_empty(), "{user}");
    }
    registrar.stop().await
}

#[tokio::test]
async fn sipp_auth_register_over_udp_and_tcp() -> anyhow::Result<()> {
    let pair = MariaDbPair::start().await?;
    for (user, password) in users() {
        add_subscriber(&pair, &user, &password).await?;
    }
    // sipp 3.6 answers the first challenge only and knows no SHA-256 ("createAuthHeader:
    // authentication must use MD5"), so this registrar offers MD5 alone.
    let options = Options {
        auth: true,
        algorithms: r#"["MD5"]"#,
        ..Options::default()
    };
    let registrar = Running::start(config(&masters(&pair), &options)?).await?;
    let dir = tempfile::tempdir()?;
    let csv = users_csv(dir.path(), &users())?;

    run_sipp(
        "auth_register.xml",
        registrar.udp,
        Transport::Udp,
        &csv,
        USERS,
    )
    .await?;
    run_sipp(
        "auth_register.xml",
        registrar.tcp,
        Transport::Tcp,
        &csv,
        USERS,
    )
    .await?;
    pair.wait_replicated().await?;
    for (user, _) in users() {
        let on_a = live_rows(&pair.a, &user).await?;
        assert_eq!(on_a.len(), 2, "{user}: {on_a:?}");
        assert_eq!(on_a, live_rows(&pair.b, &user).await?, "{user}");
    }

    // A wrong password in the injection file: sipp sees a second 401 and fails.
    let wrong: Vec<(String, String)> = users()
        .into_iter()
        .take(1)
        .map(|(user, _)| (user, "not-the-password".to_owned()))
        .collect();
    let bad_dir = tempfile::tempdir()?;
    let bad_csv = users_csv(bad_dir.path(), &wrong)?;
    let failed = run_sipp(
        "auth_register.xml",
        registrar.udp,
        Transport::Udp,
        &bad_csv,
        1,
    )
    .await;
    assert!(failed.is_err(), "a wrong password registered");
    registrar.stop().await
}
