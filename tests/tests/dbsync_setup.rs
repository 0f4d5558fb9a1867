//! `dbsync setup` on two fresh servers: users, replication both ways and schema, then the same
//! again (idempotent), and the pair it made is one dbsync can watch.

mod dbsync_support;

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context;
use dbsync_support::*;
use hasip_dbsync::config::Secret;
use hasip_dbsync::setup::{run, Admin};
use hasip_tests::mariadb_server::{Binaries, ServerRole};
use hasip_tests::sql::sql_dir;
use hasip_tests::MariaDbServer;

/// The privileges of `user` on `server` by object (`*.*`, `` `hasip`.* ``), from SHOW GRANTS
/// for every host the user has; fails on a grant that can be passed on.
async fn grants_of(
    server: &MariaDbServer,
    user: &str,
) -> anyhow::Result<BTreeMap<String, BTreeSet<String>>> {
    let hosts: Vec<String> = server
        .query_rows("SELECT host FROM mysql.user WHERE user = ?", (user,))
        .await?
        .into_iter()
        .filter_map(|r| r.get_opt::<String, usize>(0).and_then(Result::ok))
        .collect();
    anyhow::ensure!(
        hosts.len() == 1,
        "{user} on {}: hosts {hosts:?}",
        server.name()
    );
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for host in hosts {
        let rows = server
            .query_rows(&format!("SHOW GRANTS FOR '{user}'@'{host}'"), ())
            .await?;
        for r in rows {
            let line: String = r.get_opt(0).and_then(Result::ok).unwrap_or_default();
            anyhow::ensure!(!line.contains("WITH GRANT OPTION"), "{line}");
            let rest = line.strip_prefix("GRANT ").context(line.clone())?;
            let (privs, rest) = rest.split_once(" ON ").context(line.clone())?;
            let (object, _) = rest.split_once(" TO ").context(line.clone())?;
            out.entry(object.to_owned())
                .or_default()
                .extend(privs.split(", ").map(str::to_owned));
        }
    }
    Ok(out)
}

/// The grants `setup` gives: the replication user may only fetch binlogs; the monitor user may
/// watch and control replication and write the application tables, nothing else (no SUPER, no
/// DDL, no other database).
async fn assert_least_privilege(
    server: &MariaDbServer,
    cfg: &hasip_dbsync::Config,
) -> anyhow::Result<()> {
    let set = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>();
    let repl = grants_of(server, cfg.setup.replication_user.as_str()).await?;
    assert_eq!(
        repl,
        BTreeMap::from([("*.*".to_owned(), set(&["REPLICATION SLAVE"]))]),
        "replication user on {}",
        server.name()
    );
    let monitor = grants_of(server, &cfg.a.user).await?;
    assert_eq!(
        monitor,
        BTreeMap::from([
            (
                "*.*".to_owned(),
                set(&[
                    "SLAVE MONITOR",
                    "BINLOG MONITOR",
                    "REPLICATION SLAVE ADMIN",
                    "BINLOG ADMIN"
                ])
            ),
            (
                "`hasip`.*".to_owned(),
                set(&["SELECT", "INSERT", "UPDATE", "DELETE"])
            ),
        ]),
        "dbsync user on {}",
        server.name()
    );
    Ok(())
}

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

    for server in [&a, &b] {
        assert_least_privilege(server, &cfg).await?;
    }

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
    // The second run granted nothing more.
    for server in [&a, &b] {
        assert_least_privilege(server, &cfg).await?;
    }

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
