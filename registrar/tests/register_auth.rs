//! Digest authentication end to end: challenges for SHA-256 and MD5, a challenge
//! from registrar A answered to registrar B (same secret), stale nonces, wrong user,
//! realm or password; and the trusted-source gate (403 or silence).

mod register_support;

use std::time::Duration;

use hasip::digest::Algorithm;
use hasip::sip::auth::Challenge;
use hasip::sip::HeaderName;
use hasip_tests::MariaDbPair;
use register_support::{
    add_subscriber, answer, authorization, config, contacts, live_rows, masters, status, Options,
    Phone, Running,
};

fn auth_on() -> Options {
    Options {
        auth: true,
        ..Options::default()
    }
}

#[tokio::test]
async fn digest_auth_across_two_registrars() -> anyhow::Result<()> {
    let pair = MariaDbPair::start().await?;
    add_subscriber(&pair, "alice", "alice-pw").await?;
    add_subscriber(&pair, "bob", "bob-pw").await?;
    // A writes to A first, B to B first: the nonce and the rows cross servers.
    let a = Running::start(config(&masters(&pair), &auth_on())?).await?;
    let b_masters = vec![pair.b.app_url(), pair.a.app_url()];
    let b = Running::start(config(&b_masters, &auth_on())?).await?;
    let mut to_a = Phone::udp(a.udp).await?;
    let mut to_b = Phone::tcp(b.tcp).await?;
    let contact = "Contact: <sip:alice@192.0.2.1:5060>\r\n";

    // A challenges with SHA-256 first, then MD5, one nonce for both.
    let challenge = to_a.register("alice", "c1", 1, contact).await?;
    assert_eq!(status(&challenge), 401);
    let offered: Vec<Challenge<'_>> = challenge.www_authenticates().collect::<Result<_, _>>()?;
    let algorithms: Vec<&str> = offered
        .iter()
        .map(|c| c.algorithm_or_default().as_str())
        .collect();
    assert_eq!(algorithms, vec!["SHA-256", "MD5"]);
    assert_eq!(offered[0].realm, "example.com");
    assert_eq!(offered[0].nonce, offered[1].nonce);
    assert!(!offered[0].stale);

    // The answer to A's challenge goes to B, which accepts it (SHA-256).
    let credentials = answer(&challenge, Algorithm::Sha256, "alice", "alice-pw")?;
    let reply = to_b
        .register(
            "alice",
            "c1",
            2,
            &format!("{contact}Authorization: {credentials}\r\n"),
        )
        .await?;
    assert_eq!(status(&reply), 200);
    assert_eq!(
        contacts(&reply),
        vec!["<sip:alice@192.0.2.1:5060>;expires=3600"]
    );
    // B's row reaches A before A writes the same binding; otherwise A inserts it too
    // and replication stops on the duplicate (the conflict dbsync exists for; this test
    // runs no dbsync).
    pair.wait_replicated().await?;
    // And MD5 works too, on A.
    let credentials = answer(&challenge, Algorithm::Md5, "alice", "alice-pw")?;
    let reply = to_a
        .register(
            "alice",
            "c1",
            3,
            &format!("{contact}Authorization: {credentials}\r\n"),
        )
        .await?;
    assert_eq!(status(&reply), 200);
    pair.wait_replicated().await?;
    assert_eq!(live_rows(&pair.a, "alice").await?.len(), 1);
    assert_eq!(
        live_rows(&pair.b, "alice").await?,
        live_rows(&pair.a, "alice").await?
    );

    // A wrong password is challenged again, and changes nothing.
    let credentials = answer(&challenge, Algorithm::Md5, "alice", "wrong")?;
    let reply = to_a
        .register(
            "alice",
            "c1",
            4,
            &format!("Contact: <sip:alice@198.51.100.1>\r\nAuthorization: {credentials}\r\n"),
        )
        .await?;
    assert_eq!(status(&reply), 401);
    assert_eq!(reply.www_authenticates().count(), 2);
    assert_eq!(live_rows(&pair.a, "alice").await?.len(), 1);

    // Credentials for another user than the To-URI's: 403.
    let credentials = answer(&challenge, Algorithm::Md5, "bob", "bob-pw")?;
    let reply = to_a
        .register(
            "alice",
            "c1",
            5,
            &format!("{contact}Authorization: {credentials}\r\n"),
        )
        .await?;
    assert_eq!(status(&reply), 403);

    // Credentials only for another realm: 403.
    let mut foreign = offered[1].clone();
    foreign.realm = "other.example".into();
    let credentials = authorization(&foreign, Algorithm::Md5, "alice", "alice-pw");
    let reply = to_a
        .register(
            "alice",
            "c1",
            6,
            &format!("{contact}Authorization: {credentials}\r\n"),
        )
        .await?;
    assert_eq!(status(&reply), 403);

    // A nonce not issued under our secret: a fresh challenge, not stale.
    let mut forged = offered[1].clone();
    forged.nonce = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into();
    let credentials = authorization(&forged, Algorithm::Md5, "alice", "alice-pw");
    let reply = to_a
        .register(
            "alice",
            "c1",
            7,
            &format!("{contact}Authorization: {credentials}\r\n"),
        )
        .await?;
    assert_eq!(status(&reply), 401);
    assert!(reply.www_authenticates().all(|c| c.is_ok_and(|c| !c.stale)));

    // Metrics count the challenges.
    let (_, body) = a.http_get("/metrics").await?;
    assert!(
        body.contains("hasip_registrar_auth_challenges_total{stale=\"false\"}"),
        "{body}"
    );

    a.stop().await?;
    b.stop().await
}

#[tokio::test]
async fn stale_nonce_gets_stale_true() -> anyhow::Result<()> {
    let pair = MariaDbPair::start().await?;
    add_subscriber(&pair, "alice", "alice-pw").await?;
    let options = Options {
        nonce_max_age_secs: 1,
        ..auth_on()
    };
    let a = Running::start(config(&masters(&pair), &options)?).await?;
    let mut phone = Phone::udp(a.udp).await?;
    let contact = "Contact: <sip:alice@192.0.2.1:5060>\r\n";
    let challenge = phone.register("alice", "s1", 1, contact).await?;
    assert_eq!(status(&challenge), 401);
    // Nonces carry whole seconds: wait until this one is over a second old.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let credentials = answer(&challenge, Algorithm::Sha256, "alice", "alice-pw")?;
    let reply = phone
        .register(
            "alice",
            "s1",
            2,
            &format!("{contact}Authorization: {credentials}\r\n"),
        )
        .await?;
    assert_eq!(status(&reply), 401);
    let fresh: Vec<Challenge<'_>> = reply.www_authenticates().collect::<Result<_, _>>()?;
    assert!(fresh.iter().all(|c| c.stale), "{fresh:?}");
    // The fresh nonce works at once.
    let credentials = answer(&reply, Algorithm::Sha256, "alice", "alice-pw")?;
    let reply = phone
        .register(
            "alice",
            "s1",
            3,
            &format!("{contact}Authorization: {credentials}\r\n"),
        )
        .await?;
    assert_eq!(status(&reply), 200);
    let (_, body) = a.http_get("/metrics").await?;
    assert!(
        body.contains("hasip_registrar_auth_challenges_total{stale=\"true\"}"),
        "{body}"
    );
    a.stop().await
}

#[tokio::test]
async fn untrusted_sources_are_refused_or_dropped() -> anyhow::Result<()> {
    let pair = MariaDbPair::start().await?;
    // 127.0.0.1 is outside 10.0.0.0/8: every test phone is untrusted here.
    let reject = Options {
        trusted: r#"["10.0.0.0/8"]"#,
        untrusted: "reject",
        ..Options::default()
    };
    let registrar = Running::start(config(&masters(&pair), &reject)?).await?;
    let mut phone = Phone::udp(registrar.udp).await?;
    let reply = phone
        .register("mallory", "m1", 1, "Contact: <sip:mallory@h>\r\n")
        .await?;
    assert_eq!(status(&reply), 403);
    let mut phone = Phone::tcp(registrar.tcp).await?;
    let reply = phone
        .register("mallory", "m2", 1, "Contact: <sip:mallory@h>\r\n")
        .await?;
    assert_eq!(status(&reply), 403);
    registrar.stop().await?;

    let drop = Options {
        trusted: r#"["10.0.0.0/8"]"#,
        untrusted: "drop",
        ..Options::default()
    };
    let registrar = Running::start(config(&masters(&pair), &drop)?).await?;
    let mut phone = Phone::udp(registrar.udp).await?;
    let local = phone.local()?;
    let text = register_support::register(
        "mallory",
        "m3",
        1,
        phone.transport(),
        local,
        "Contact: <sip:mallory@h>\r\n",
    );
    phone.send(&text).await?;
    assert!(
        phone.silent_for(Duration::from_secs(2)).await,
        "an untrusted source got an answer"
    );
    assert!(live_rows(&pair.a, "mallory").await?.is_empty());
    let (_, body) = registrar.http_get("/metrics").await?;
    assert!(
        body.contains("hasip_registrar_untrusted_total{action=\"drop\"}"),
        "{body}"
    );
    registrar.stop().await?;

    // Auth off and trusted: the same REGISTER is accepted without credentials.
    let registrar = Running::start(config(&masters(&pair), &Options::default())?).await?;
    let mut phone = Phone::udp(registrar.udp).await?;
    let reply = phone
        .register("trent", "t1", 1, "Contact: <sip:trent@h>\r\n")
        .await?;
    assert_eq!(status(&reply), 200);
    assert_eq!(reply.header(&HeaderName::WwwAuthenticate), None);
    registrar.stop().await
}
