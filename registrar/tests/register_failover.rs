//! Master failover seen from SIP: with A stopped the registrar writes to B and keeps
//! answering 200; with both stopped it answers 503 with Retry-After and `/health` is
//! down; once they are back it serves again by itself, and replication brings every
//! 200 OK'd binding to both masters.

mod register_support;

use std::time::{Duration, Instant};

use anyhow::bail;
use hasip::sip::HeaderName;
use hasip_tests::MariaDbPair;
use register_support::{config, live_rows, masters, status, Options, Phone, Running};

/// Polls `/health` until its status is `code`, within 15 s.
async fn wait_health(registrar: &Running, code: u16) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = registrar.http_get("/health").await?;
        if status == code {
            return Ok(body);
        }
        if Instant::now() > deadline {
            bail!("/health stayed {status}: {body}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn failover_to_b_then_503_then_recovery() -> anyhow::Result<()> {
    let mut pair = MariaDbPair::start().await?;
    let registrar = Running::start(config(&masters(&pair), &Options::default())?).await?;
    let mut phone = Phone::udp(registrar.udp).await?;
    let body = wait_health(&registrar, 200).await?;
    assert!(body.contains("\"status\":\"ok\""), "{body}");

    let reply = phone
        .register("alice", "a1", 1, "Contact: <sip:alice@192.0.2.1>\r\n")
        .await?;
    assert_eq!(status(&reply), 200);
    pair.wait_replicated().await?;

    // A stops: the next REGISTER goes to B within the same transaction.
    pair.a.stop().await?;
    let reply = phone
        .register("bob", "b1", 1, "Contact: <sip:bob@192.0.2.2>\r\n")
        .await?;
    assert_eq!(status(&reply), 200);
    let bob = live_rows(&pair.b, "bob").await?;
    assert_eq!(bob.len(), 1);
    // Alice, written on A before it stopped, is read back from B.
    let reply = phone.register("alice", "a1", 2, "").await?;
    assert_eq!(status(&reply), 200);
    assert_eq!(register_support::contacts(&reply).len(), 1);
    let body = wait_health(&registrar, 200).await?;
    assert!(body.contains("\"status\":\"degraded\""), "{body}");

    // Both stopped: 503 with the configured Retry-After, and /health is down.
    pair.b.stop().await?;
    let reply = phone
        .register("carol", "c1", 1, "Contact: <sip:carol@192.0.2.3>\r\n")
        .await?;
    assert_eq!(status(&reply), 503);
    assert_eq!(reply.header(&HeaderName::RetryAfter), Some("7"));
    wait_health(&registrar, 503).await?;

    // Both back: the registrar serves again without a restart.
    pair.a.start().await?;
    pair.b.start().await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut cseq = 1;
    loop {
        let reply = phone
            .register("carol", "c2", cseq, "Contact: <sip:carol@192.0.2.3>\r\n")
            .await?;
        if status(&reply) == 200 {
            break;
        }
        if Instant::now() > deadline {
            bail!("still {} after the masters came back", status(&reply));
        }
        cseq += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    wait_health(&registrar, 200).await?;

    // Replication catches up: every 200 OK'd binding is on both masters.
    pair.wait_replicated().await?;
    for user in ["alice", "bob", "carol"] {
        let on_a = live_rows(&pair.a, user).await?;
        let on_b = live_rows(&pair.b, user).await?;
        assert_eq!(on_a.len(), 1, "{user} on A: {on_a:?}");
        assert_eq!(on_a, on_b, "{user}");
    }
    registrar.stop().await
}
