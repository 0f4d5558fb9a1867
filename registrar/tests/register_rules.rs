//! The REGISTER path over real UDP and TCP against a registrar run in-process on the
//! harness's MariaDB pair, asserted with raw sockets and the hasip parser: RFC 3261
//! section 10.3 (domains, Require, Contact `*`, Expires, 423, CSeq ordering, q, max
//! contacts, query), RFC 3327 Path, RFC 5626 outbound, the Date header, and the rows
//! on both masters after replication.

mod register_support;

use anyhow::Context;
use hasip::sip::HeaderName;
use hasip_tests::MariaDbPair;
use register_support::{
    config, contacts, live_rows, masters, register, status, Options, Phone, Running,
};

#[tokio::test]
async fn register_rules_over_udp_and_tcp() -> anyhow::Result<()> {
    let pair = MariaDbPair::start().await?;
    let registrar = Running::start(config(&masters(&pair), &Options::default())?).await?;
    let mut udp = Phone::udp(registrar.udp).await?;
    let mut tcp = Phone::tcp(registrar.tcp).await?;

    // A first binding over UDP, with a Path whose first hop supports outbound.
    let path = "Path: <sip:tok1@edge.internal;lr;ob>\r\nPath: <sip:hop2@core.internal;lr>\r\n";
    let instance = "+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\"";
    let reply = udp
        .register(
            "alice",
            "call-a",
            1,
            &format!(
                "{path}Supported: path, outbound\r\n\
                 Contact: <sip:alice@192.0.2.10:5060;ob>;{instance};reg-id=1;q=0.7\r\n\
                 Expires: 600\r\n"
            ),
        )
        .await?;
    assert_eq!(status(&reply), 200);
    assert_eq!(
        contacts(&reply),
        vec![format!(
            "<sip:alice@192.0.2.10:5060;ob>;expires=600;q=0.7;{instance};reg-id=1"
        )]
    );
    let paths: Vec<&str> = reply.header_values(&HeaderName::Path).collect();
    assert_eq!(
        paths,
        vec![
            "<sip:tok1@edge.internal;lr;ob>",
            "<sip:hop2@core.internal;lr>"
        ]
    );
    assert_eq!(reply.header(&HeaderName::Require), Some("outbound"));
    let date = reply.header(&HeaderName::Date).context("no Date")?;
    assert!(date.ends_with(" GMT") && date.len() == 29, "{date}");
    assert!(reply.to_header()?.tag().is_some());

    // A second binding over TCP, and the 200 OK lists both, highest q first.
    let reply = tcp
        .register(
            "alice",
            "call-b",
            1,
            "Contact: <sip:alice@192.0.2.20:5062;transport=tcp>\r\n",
        )
        .await?;
    assert_eq!(status(&reply), 200);
    let listed = contacts(&reply);
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(
        listed[0],
        "<sip:alice@192.0.2.20:5062;transport=tcp>;expires=3600"
    );
    assert!(listed[1].starts_with("<sip:alice@192.0.2.10:5060;ob>;expires="));
    assert_eq!(reply.header(&HeaderName::Require), None);

    // Both rows, on both masters, with what Kamailio would store.
    pair.wait_replicated().await?;
    let on_a = live_rows(&pair.a, "alice").await?;
    let on_b = live_rows(&pair.b, "alice").await?;
    assert_eq!(on_a, on_b);
    assert_eq!(on_a.len(), 2);
    let flow = &on_a[0];
    assert_eq!(flow.contact, "sip:alice@192.0.2.10:5060;ob");
    assert_eq!(
        flow.path.as_deref(),
        Some("<sip:tok1@edge.internal;lr;ob>,<sip:hop2@core.internal;lr>")
    );
    assert_eq!(
        flow.received.as_deref(),
        Some(format!("sip:{}", udp.local()?).as_str())
    );
    assert_eq!(
        flow.socket.as_deref(),
        Some(format!("udp:{}", registrar.udp).as_str())
    );
    assert_eq!(
        flow.instance.as_deref(),
        Some("<urn:uuid:00000000-0000-1000-8000-000A95A0E128>")
    );
    assert_eq!((flow.reg_id, flow.q), (1, 0.7_f32));
    assert!((598..=600).contains(&flow.remaining), "{}", flow.remaining);
    let stream = &on_a[1];
    assert_eq!(
        stream.received.as_deref(),
        Some(format!("sip:{};transport=tcp", tcp.local()?).as_str())
    );
    assert_eq!(
        stream.socket.as_deref(),
        Some(format!("tcp:{}", registrar.tcp).as_str())
    );

    // Refresh with a higher CSeq in the same Call-ID; the contact parameter wins over
    // the Expires header, and max shortens.
    let reply = tcp
        .register(
            "alice",
            "call-b",
            2,
            "Contact: <sip:alice@192.0.2.20:5062;transport=tcp>;expires=99999\r\nExpires: 120\r\n",
        )
        .await?;
    assert_eq!(status(&reply), 200);
    assert!(contacts(&reply)
        .contains(&"<sip:alice@192.0.2.20:5062;transport=tcp>;expires=7200".to_owned()));

    // An older CSeq in the same Call-ID fails and changes nothing.
    let reply = tcp
        .register(
            "alice",
            "call-b",
            1,
            "Contact: <sip:alice@192.0.2.20:5062;transport=tcp>;expires=300\r\n",
        )
        .await?;
    assert_eq!(status(&reply), 400);
    let rows = live_rows(&pair.a, "alice").await?;
    assert_eq!(rows[1].cseq, 2);

    // Too brief: 423 with Min-Expires.
    let reply = udp
        .register(
            "carol",
            "call-c",
            1,
            "Contact: <sip:carol@h>\r\nExpires: 10\r\n",
        )
        .await?;
    assert_eq!(status(&reply), 423);
    assert_eq!(reply.header(&HeaderName::MinExpires), Some("60"));

    // Contact * needs Expires 0; mixed with another contact it is 400.
    let reply = udp.register("alice", "call-x", 1, "Contact: *\r\n").await?;
    assert_eq!(status(&reply), 400);
    let reply = udp
        .register(
            "alice",
            "call-x",
            2,
            "Contact: *, <sip:alice@h>\r\nExpires: 0\r\n",
        )
        .await?;
    assert_eq!(status(&reply), 400);

    // A query (no Contact) lists the bindings and changes nothing.
    let reply = udp.register("alice", "call-q", 1, "").await?;
    assert_eq!(status(&reply), 200);
    assert_eq!(contacts(&reply).len(), 2);

    // Unregister one binding with expires=0, then all with *.
    let reply = udp
        .register(
            "alice",
            "call-b",
            3,
            "Contact: <sip:alice@192.0.2.20:5062;transport=tcp>;expires=0\r\n",
        )
        .await?;
    assert_eq!(status(&reply), 200);
    assert_eq!(contacts(&reply).len(), 1);
    let reply = udp
        .register("alice", "call-z", 1, "Contact: *\r\nExpires: 0\r\n")
        .await?;
    assert_eq!(status(&reply), 200);
    assert!(contacts(&reply).is_empty());
    pair.wait_replicated().await?;
    assert!(live_rows(&pair.a, "alice").await?.is_empty());
    assert!(live_rows(&pair.b, "alice").await?.is_empty());

    // Max contacts per AoR (4 in this config): the fifth is 403.
    for i in 1..=4 {
        let reply = udp
            .register(
                "dave",
                &format!("d{i}"),
                1,
                &format!("Contact: <sip:dave@10.0.0.{i}>\r\n"),
            )
            .await?;
        assert_eq!(status(&reply), 200);
    }
    let reply = udp
        .register("dave", "d5", 1, "Contact: <sip:dave@10.0.0.5>\r\n")
        .await?;
    assert_eq!(status(&reply), 403);

    // Unsupported Require: 420 naming the tag.
    let reply = udp
        .register(
            "erin",
            "e1",
            1,
            "Require: path, foo\r\nContact: <sip:erin@h>\r\n",
        )
        .await?;
    assert_eq!(status(&reply), 420);
    assert_eq!(reply.header(&HeaderName::Unsupported), Some("foo"));

    // A Request-URI outside our domains is 403, a To outside them 404.
    let local = udp.local()?;
    let other_ruri = register("erin", "e2", 1, hasip::transport::Transport::Udp, local, "")
        .replace("REGISTER sip:example.com", "REGISTER sip:other.example");
    assert_eq!(status(&udp.ask(&other_ruri).await?), 403);
    let other_to = register("erin", "e3", 1, hasip::transport::Transport::Udp, local, "")
        .replace("To: <sip:erin@example.com>", "To: <sip:erin@other.example>");
    assert_eq!(status(&udp.ask(&other_to).await?), 404);

    // Non-REGISTER requests get 501 until the home proxy is wired in; OPTIONS to the
    // registrar itself gets 200 (the edges' probe).
    let message = register("erin", "e4", 1, hasip::transport::Transport::Udp, local, "")
        .replace("REGISTER sip:example.com", "MESSAGE sip:erin@example.com")
        .replace("CSeq: 1 REGISTER", "CSeq: 1 MESSAGE");
    assert_eq!(status(&udp.ask(&message).await?), 501);
    let options = register("erin", "e5", 1, hasip::transport::Transport::Udp, local, "")
        .replace("REGISTER sip:example.com", "OPTIONS sip:127.0.0.1")
        .replace("CSeq: 1 REGISTER", "CSeq: 1 OPTIONS");
    assert_eq!(status(&udp.ask(&options).await?), 200);

    // Metrics count the outcomes; health is up.
    let (code, body) = registrar.http_get("/metrics").await?;
    assert_eq!(code, 200);
    assert!(
        body.contains("hasip_registrar_registers_total{code=\"200\"}"),
        "{body}"
    );
    assert!(
        body.contains("hasip_registrar_registers_total{code=\"423\"}"),
        "{body}"
    );
    assert!(body.contains("hasip_registrar_store_seconds"), "{body}");
    let (code, body) = registrar.http_get("/health").await?;
    assert_eq!(
        (code, body.contains("\"status\":\"ok\"")),
        (200, true),
        "{body}"
    );

    // `registrar show` prints dave's four bindings from the database.
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("registrar.toml");
    std::fs::write(
        &file,
        format!(
            "[sip]\nlisten = [\"udp:127.0.0.1:0\"]\ndomains = [\"example.com\"]\n\
             trusted = [\"127.0.0.0/8\"]\n[auth]\nenabled = false\n\
             [store]\nmasters = [\"{}\", \"{}\"]\n",
            pair.a.app_url(),
            pair.b.app_url()
        ),
    )?;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_registrar"))
        .arg("--config")
        .arg(&file)
        .args(["show", "sip:dave@example.com"])
        .output()
        .await?;
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{shown}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(
        lines.first(),
        Some(&"dave@example.com: 4 live binding(s)"),
        "{shown}"
    );
    assert!(
        lines.get(1).is_some_and(|l| l.starts_with("CONTACT")),
        "{shown}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("sip:dave@10.0.0."))
            .count(),
        4
    );

    registrar.stop().await
}
