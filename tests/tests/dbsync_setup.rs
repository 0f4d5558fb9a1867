//! `dbsync setup` on two fresh servers: users, replication both ways and schema, then the same
//! again (idempotent), and the pair it made is one dbsync can watch.

mod dbsync_support;

use anyhow::Context;
use dbsync_support::*;
use hasip_dbsync::config::Secret;
use hasip_dbsync::setup::{run, Admin};
use hasip_tests::mariadb_server::{Binaries, ServerRole};
use hasip_tests::sql::sql_dir;
use hasip_tests::MariaDbServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_makes_fresh_servers_cross_replicate_and_is_idempotent() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let bins = Binaries::find()?;
    let (a, b) = tokio::join!(
        MariaDbServer::create(
            bins.clone(),
            dir.path().join("a"),
            ServerRole {
                name: "A",
                server_id: 1
            }
        ),
        MariaDbServer::create(
            bins,
            dir.path().join("b"),
            ServerRole {
                name: "B",
                server_id: 2
            }
        ),
    );
    let (a, b) = (a?, b?);
    let cfg = config_for(&a, &b);
    let schema = std::fs::read_to_string(sql_dir().join("schema.sql")).context("schema.sql")?;
    let admin = Admin {
        user: "root".into(),
        password: Secret::new(""),
    };

    let first = run(&cfg, &admin, &schema).await?.join("\n");
    assert!(first.contains("A: CHANGE MASTER TO 127.0.0.1:"), "{first}");
    assert!(first.contains("B: CHANGE MASTER TO 127.0.0.1:"), "{first}");
    assert!(first.contains("B: schema replicated"), "{first}");
    assert!(
        !first.contains("password"),
        "setup output mentions a password: {first}"
    );

    // Both directions carry writes, and the dbsync user can do its job.
    insert_binding(&a, "from-a", "sip:a@10.0.0.1").await?;
    insert_binding(&b, "from-b", "sip:b@10.0.0.2").await?;
    wait_for("both rows on both servers", LIMIT, || async {
        Ok(contact_of(&a, "from-b").await?.is_some() && contact_of(&b, "from-a").await?.is_some())
    })
    .await?;
    let watch = start_watch(cfg.clone());
    wait_for("status healthy", LIMIT, || async {
        Ok(status_code(&cfg).await == 0)
    })
    .await?;
    watch.stop().await?;

    let second = run(&cfg, &admin, &schema).await?.join("\n");
    assert!(
        second.contains("A: replication from B already configured"),
        "{second}"
    );
    assert!(
        second.contains("B: replication from A already configured"),
        "{second}"
    );
    assert_eq!(status_code(&cfg).await, 0, "status after the second setup");

    let (mut da, mut db) = connect(&cfg).await?;
    let results = hasip_dbsync::checksum::run(&cfg, &mut da, &mut db, false).await?;
    assert!(
        results.iter().all(|t| t.identical()),
        "{}",
        hasip_dbsync::checksum::render(&results)
    );
    assert_eq!(results[0].rows_a, 2);
    assert_eq!(
        row_set(&a, "location").await?,
        row_set(&b, "location").await?
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_refuses_servers_that_share_an_id_and_says_why() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let bins = Binaries::find()?;
    let (a, b) = tokio::join!(
        MariaDbServer::create(
            bins.clone(),
            dir.path().join("a"),
            ServerRole {
                name: "A",
                server_id: 1
            }
        ),
        MariaDbServer::create(
            bins,
            dir.path().join("b"),
            ServerRole {
                name: "B",
                server_id: 1
            }
        ),
    );
    let (a, b) = (a?, b?);
    let cfg = config_for(&a, &b);
    let admin = Admin {
        user: "root".into(),
        password: Secret::new(""),
    };
    let err = run(&cfg, &admin, "")
        .await
        .err()
        .context("setup accepted twin servers")?;
    let text = err.to_string();
    assert!(text.contains("share server_id 1"), "{text}");
    assert!(text.contains("share gtid_domain_id 1"), "{text}");
    assert!(text.contains("share auto_increment_offset 1"), "{text}");
    // Nothing was configured.
    let mut conn = a.root_conn().await?;
    let rows: Vec<mysql_async::Row> = {
        use mysql_async::prelude::Queryable;
        conn.query("SELECT 1 FROM mysql.user WHERE user = 'hasip_repl'")
            .await?
    };
    conn.disconnect().await.ok();
    assert!(rows.is_empty(), "users created on a refused setup");
    drop(b);
    Ok(())
}
