//! The MariaDB master-master pair harness against real servers: durable
//! settings, replication both ways, id interleaving, the ruid key, schema
//! idempotence, recovery after a crash, the users' privileges, and a diverged
//! row breaking replication with 1062.

use anyhow::{bail, Context};
use hasip_tests::mariadb_server::row_value;
use hasip_tests::{MariaDbPair, MariaDbServer};
use mysql_async::prelude::Queryable;
use mysql_async::{Row, Value};

/// Inserts a live binding; returns its auto-increment id.
async fn insert_binding(
    server: &MariaDbServer,
    ruid: &str,
    username: &str,
    contact: &str,
) -> anyhow::Result<u64> {
    let (affected, id) = server
        .exec(
            "INSERT INTO location (ruid, username, domain, contact, expires, callid, cseq, \
             last_modified, instance, reg_id, user_agent) \
             VALUES (?, ?, 'example.com', ?, NOW(6) + INTERVAL 3600 SECOND, ?, 7, NOW(6), \
             '<urn:uuid:00000000-0000-0000-0000-000000000001>', 1, 'test-agent')",
            (ruid, username, contact, format!("call-{ruid}")),
        )
        .await?;
    if affected != 1 {
        bail!("insert of {ruid} affected {affected} rows");
    }
    id.context("no insert id")
}

/// All columns of one binding, datetimes as text (microseconds included).
async fn binding(server: &MariaDbServer, ruid: &str) -> anyhow::Result<Option<Vec<Value>>> {
    let rows = server
        .query_rows(
            "SELECT id, ruid, username, domain, contact, received, path, \
             CAST(expires AS CHAR), q, callid, cseq, CAST(last_modified AS CHAR), flags, \
             cflags, user_agent, socket, methods, instance, reg_id, server_id, \
             connection_id, keepalive, `partition` \
             FROM location WHERE ruid = ?",
            (ruid,),
        )
        .await?;
    Ok(rows.into_iter().next().map(Row::unwrap))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_are_durable_and_distinct() -> anyhow::Result<()> {
    let pair = MariaDbPair::start().await?;
    for (server, id) in [(&pair.a, 1u64), (&pair.b, 2)] {
        let name = server.name();
        let settings: Vec<Row> = server
            .query_rows(
                "SELECT @@sync_binlog, @@innodb_flush_log_at_trx_commit, @@binlog_format, \
                 @@server_id, @@gtid_domain_id, @@log_slave_updates, \
                 @@auto_increment_increment, @@auto_increment_offset, @@log_bin",
                (),
            )
            .await?;
        let row = settings.first().context("no settings row")?;
        assert_eq!(row_value::<u64>(row, 0)?, 1, "{name}: sync_binlog");
        assert_eq!(
            row_value::<u64>(row, 1)?,
            1,
            "{name}: flush_log_at_trx_commit"
        );
        assert_eq!(row_value::<String>(row, 2)?, "ROW", "{name}: binlog_format");
        assert_eq!(row_value::<u64>(row, 3)?, id, "{name}: server_id");
        assert_eq!(row_value::<u64>(row, 4)?, id, "{name}: gtid_domain_id");
        assert_eq!(row_value::<u64>(row, 5)?, 1, "{name}: log_slave_updates");
        assert_eq!(
            row_value::<u64>(row, 6)?,
            2,
            "{name}: auto_increment_increment"
        );
        assert_eq!(
            row_value::<u64>(row, 7)?,
            id,
            "{name}: auto_increment_offset"
        );
        assert_eq!(row_value::<u64>(row, 8)?, 1, "{name}: log_bin");
        let status = server.slave_status().await?;
        assert!(
            status.is_running(),
            "{name}: replica not running: {status:?}"
        );
    }
    assert_ne!(pair.a.port(), pair.b.port());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_replicate_both_ways_with_interleaved_ids() -> anyhow::Result<()> {
    let pair = MariaDbPair::start().await?;

    let id_a = insert_binding(&pair.a, "ruid-a", "alice", "sip:alice@192.0.2.1:5060").await?;
    let id_b = insert_binding(&pair.b, "ruid-b", "bob", "sip:bob@192.0.2.2:5060").await?;
    pair.wait_replicated().await?;

    let on_a = binding(&pair.a, "ruid-a")
        .await?
        .context("ruid-a missing on A")?;
    let on_b = binding(&pair.b, "ruid-a")
        .await?
        .context("ruid-a missing on B")?;
    assert_eq!(on_a, on_b, "A's row differs on B");
    assert_eq!(on_b.get(4), Some(&Value::from("sip:alice@192.0.2.1:5060")));
    let on_b = binding(&pair.b, "ruid-b")
        .await?
        .context("ruid-b missing on B")?;
    let on_a = binding(&pair.a, "ruid-b")
        .await?
        .context("ruid-b missing on A")?;
    assert_eq!(on_a, on_b, "B's row differs on A");
    assert_eq!(on_a.get(2), Some(&Value::from("bob")));

    // auto_increment_offset 1 / 2 with increment 2: A's ids odd, B's even.
    let mut ids = vec![id_a, id_b];
    for n in 0..3 {
        ids.push(insert_binding(&pair.a, &format!("a{n}"), "alice", &format!("sip:a{n}@h")).await?);
        ids.push(insert_binding(&pair.b, &format!("b{n}"), "bob", &format!("sip:b{n}@h")).await?);
    }
    pair.wait_replicated().await?;
    for (i, id) in ids.iter().enumerate() {
        let expected_parity = if i % 2 == 0 { 1 } else { 0 };
        assert_eq!(id % 2, expected_parity, "id {id} from the wrong server");
    }
    let count_a: u64 = pair
        .a
        .query_value("SELECT COUNT(*) FROM location", ())
        .await?;
    let count_b: u64 = pair
        .b
        .query_value("SELECT COUNT(*) FROM location", ())
        .await?;
    assert_eq!((count_a, count_b), (8, 8));

    // The app user sees the rows, and may not change the schema.
    let mut app = pair.b.connect_with(pair.b.app_opts()).await?;
    let seen: Option<u64> = app
        .exec_first(
            "SELECT COUNT(*) FROM location WHERE username = ?",
            ("alice",),
        )
        .await?;
    assert_eq!(seen, Some(4));
    assert!(app.query_drop("DROP TABLE location").await.is_err());
    app.disconnect().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ruid_is_unique_and_schema_and_replication_set_up_are_idempotent() -> anyhow::Result<()> {
    let pair = MariaDbPair::start().await?;
    insert_binding(&pair.a, "same-binding", "carol", "sip:carol@192.0.2.3").await?;
    let duplicate = insert_binding(&pair.a, "same-binding", "carol", "sip:carol@192.0.2.4").await;
    let code = duplicate
        .as_ref()
        .err()
        .and_then(|e| e.downcast_ref::<mysql_async::Error>())
        .and_then(|e| match e {
            mysql_async::Error::Server(server) => Some(server.code),
            _ => None,
        });
    assert_eq!(code, Some(1062), "duplicate ruid: {duplicate:?}");

    pair.apply_schema_on_a().await?;
    pair.apply_schema_on_a().await?;
    // The replication set-up runs again too, and replication goes on from where it was.
    pair.replicate().await?;
    insert_binding(&pair.b, "after-rerun", "carol", "sip:carol@192.0.2.5").await?;
    pair.wait_replicated().await?;
    let replicated: u64 = pair
        .a
        .query_value(
            "SELECT COUNT(*) FROM location WHERE ruid = 'after-rerun'",
            (),
        )
        .await?;
    assert_eq!(replicated, 1, "B's write after the re-run did not reach A");
    for server in [&pair.a, &pair.b] {
        let versions: Vec<(String, u32)> = server
            .query_rows(
                "SELECT table_name, table_version FROM version ORDER BY table_name",
                (),
            )
            .await?
            .iter()
            .map(|row| Ok((row_value(row, 0)?, row_value(row, 1)?)))
            .collect::<anyhow::Result<_>>()?;
        assert_eq!(
            versions,
            vec![("location".to_owned(), 9), ("subscriber".to_owned(), 7)],
            "{}",
            server.name()
        );
        let kept: u64 = server
            .query_value(
                "SELECT COUNT(*) FROM location WHERE ruid = 'same-binding'",
                (),
            )
            .await?;
        assert_eq!(
            kept,
            1,
            "{}: row lost by re-applying the schema",
            server.name()
        );
        let status = server.slave_status().await?;
        assert!(status.is_running(), "{}: {status:?}", server.name());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_resumes_after_a_crash_and_a_clean_restart() -> anyhow::Result<()> {
    let mut pair = MariaDbPair::start().await?;
    insert_binding(&pair.a, "before-crash", "dave", "sip:dave@192.0.2.5").await?;
    pair.wait_replicated().await?;

    pair.a.kill().await?;
    assert!(!pair.a.is_running());
    // B keeps taking writes while A is down.
    insert_binding(&pair.b, "while-a-down", "erin", "sip:erin@192.0.2.6").await?;
    pair.a.start().await?;
    insert_binding(&pair.a, "after-restart", "frank", "sip:frank@192.0.2.7").await?;
    pair.wait_replicated().await?;

    for ruid in ["before-crash", "while-a-down", "after-restart"] {
        let on_a = binding(&pair.a, ruid).await?;
        let on_b = binding(&pair.b, ruid).await?;
        assert!(on_a.is_some(), "{ruid} missing on A");
        assert_eq!(on_a, on_b, "{ruid} differs");
    }

    pair.b.stop().await?;
    assert!(!pair.b.is_running());
    insert_binding(&pair.a, "while-b-stopped", "grace", "sip:grace@192.0.2.8").await?;
    pair.b.start().await?;
    pair.wait_replicated().await?;
    assert!(binding(&pair.b, "while-b-stopped").await?.is_some());
    for server in [&pair.a, &pair.b] {
        let status = server.slave_status().await?;
        assert!(status.is_running(), "{}: {status:?}", server.name());
        assert_eq!(status.last_sql_errno, 0, "{}: {status:?}", server.name());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_have_the_privileges_they_need_and_no_more() -> anyhow::Result<()> {
    let pair = MariaDbPair::start().await?;

    // dbsync: read replication state, write locally without binlogging,
    // stop / skip / start the replica; but no DDL and no user management.
    let mut dbsync = pair.b.connect_with(pair.b.dbsync_opts()).await?;
    let slave: Vec<Row> = dbsync
        .query("SHOW SLAVE STATUS")
        .await
        .context("SHOW SLAVE STATUS")?;
    assert_eq!(slave.len(), 1);
    let master: Vec<Row> = dbsync
        .query("SHOW MASTER STATUS")
        .await
        .context("SHOW MASTER STATUS")?;
    assert_eq!(master.len(), 1);
    dbsync
        .query_drop("SET SESSION sql_log_bin = 0")
        .await
        .context("SET SESSION sql_log_bin = 0")?;
    dbsync
        .exec_drop(
            "INSERT INTO dbsync_heartbeat (server_id, ts) VALUES (?, NOW(6)) \
             ON DUPLICATE KEY UPDATE ts = VALUES(ts)",
            (2u32,),
        )
        .await?;
    dbsync
        .query_drop("STOP SLAVE")
        .await
        .context("STOP SLAVE")?;
    // Skipping a broken event goes through the GTID position.
    dbsync
        .query_drop("SET GLOBAL gtid_slave_pos = @@GLOBAL.gtid_slave_pos")
        .await
        .context("SET GLOBAL gtid_slave_pos")?;
    dbsync
        .query_drop("START SLAVE")
        .await
        .context("START SLAVE")?;
    assert!(dbsync.query_drop("DROP TABLE location").await.is_err());
    assert!(dbsync
        .query_drop("CREATE USER 'intruder'@'%' IDENTIFIED BY 'x'")
        .await
        .is_err());
    dbsync.disconnect().await?;
    pair.wait_replicated().await?;
    // Written with sql_log_bin = 0: it stayed on B.
    let on_a: u64 = pair
        .a
        .query_value("SELECT COUNT(*) FROM dbsync_heartbeat", ())
        .await?;
    let on_b: u64 = pair
        .b
        .query_value("SELECT COUNT(*) FROM dbsync_heartbeat", ())
        .await?;
    assert_eq!((on_a, on_b), (0, 1));

    // The registrar: rows of its database and GET_LOCK; no replication control.
    let mut app = pair.a.connect_with(pair.a.app_opts()).await?;
    app.exec_drop(
        "INSERT INTO subscriber (username, domain, password) VALUES (?, ?, ?)",
        ("alice", "example.com", "secret"),
    )
    .await?;
    app.exec_drop(
        "UPDATE subscriber SET ha1 = ? WHERE username = ?",
        ("0123", "alice"),
    )
    .await?;
    let locked: Option<i64> = app
        .query_first("SELECT GET_LOCK('hasip_cleanup', 0)")
        .await?;
    assert_eq!(locked, Some(1));
    assert!(app.query_drop("STOP SLAVE").await.is_err());
    assert!(app.query_drop("SET SESSION sql_log_bin = 0").await.is_err());
    app.disconnect().await?;
    pair.wait_replicated().await?;
    let ha1: String = pair
        .b
        .query_value("SELECT ha1 FROM subscriber WHERE username = ?", ("alice",))
        .await?;
    assert_eq!(ha1, "0123");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diverged_row_stops_replication_with_1062() -> anyhow::Result<()> {
    let pair = MariaDbPair::start().await?;
    // The row exists on B only, so A's insert of the same ruid breaks B's
    // replica: the situation dbsync repairs.
    pair.b
        .exec_unlogged(
            "INSERT INTO location (ruid, username, contact) VALUES (?, ?, ?)",
            ("diverged", "heidi", "sip:heidi@192.0.2.9"),
        )
        .await?;
    assert!(binding(&pair.a, "diverged").await?.is_none());
    insert_binding(&pair.a, "diverged", "heidi", "sip:heidi@192.0.2.10").await?;

    let status = pair
        .b
        .wait_slave_status(
            |s| s.last_sql_errno != 0,
            std::time::Duration::from_secs(30),
        )
        .await?;
    assert_eq!(status.last_sql_errno, 1062, "{status:?}");
    assert_eq!(status.sql_running, "No");
    assert!(pair
        .wait_replicated_within(std::time::Duration::from_secs(1))
        .await
        .is_err());
    // The other direction is unaffected.
    assert!(pair.a.slave_status().await?.is_running());
    Ok(())
}
