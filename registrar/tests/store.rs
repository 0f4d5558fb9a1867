//! The registrar's store against a real MariaDB master-master pair (the shared
//! harness): commits visible on both masters, refresh, soft delete, `Contact: *`,
//! CSeq ordering, max contacts, in-batch auth, batching under concurrency, master
//! failover and recovery, and cleanup under GET_LOCK.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hasip_registrar::binding::{Aor, DbTime};
use hasip_registrar::cleanup::{self, CleanupConfig, CleanupReport};
use hasip_registrar::error::StoreError;
use hasip_registrar::register::{
    Accepted, ContactSpec, ContactsSpec, ExpiresPolicy, Outcome, RegisterRequest, Rejection,
};
use hasip_registrar::store::{Store, StoreConfig};
use hasip_tests::mariadb_server::row_value;
use hasip_tests::{MariaDbPair, MariaDbServer};
use mysql_async::prelude::Queryable;
use mysql_async::{Row, Value};

const DOMAIN: &str = "example.com";

fn config(pair: &MariaDbPair) -> StoreConfig {
    StoreConfig {
        masters: vec![pair.a.app_url(), pair.b.app_url()],
        shards: 4,
        probe_interval_ms: 200,
        ..StoreConfig::default()
    }
}

fn policy() -> ExpiresPolicy {
    ExpiresPolicy {
        min: 60,
        max: 7200,
        default: 3600,
        max_contacts: 12,
    }
}

fn contact(uri: &str, expires: Option<u32>) -> ContactSpec {
    ContactSpec {
        uri: uri.to_owned(),
        expires_param: expires,
        ..ContactSpec::default()
    }
}

fn request(user: &str, call_id: &str, cseq: u32, contacts: Vec<ContactSpec>) -> RegisterRequest {
    RegisterRequest {
        aor: Aor::new(user, DOMAIN),
        call_id: call_id.to_owned(),
        cseq,
        expires_header: None,
        contacts: ContactsSpec::List(contacts),
        path: Some("<sip:token@edge.internal;lr;ob>".to_owned()),
        received: Some("sip:192.0.2.7:5060".to_owned()),
        user_agent: "store-test".to_owned(),
        socket: Some("udp:10.0.0.5:5060".to_owned()),
        path_first_hop_has_ob: true,
    }
}

fn accepted(outcome: Result<Outcome, StoreError>) -> anyhow::Result<Accepted> {
    match outcome.context("register failed")? {
        Outcome::Accept(a) => Ok(a),
        Outcome::Reject(r) => bail!("expected a 200, got {} {}", r.code, r.reason),
    }
}

fn rejected(outcome: Result<Outcome, StoreError>) -> anyhow::Result<Rejection> {
    match outcome.context("register failed")? {
        Outcome::Reject(r) => Ok(r),
        Outcome::Accept(a) => bail!("expected a rejection, got {a:?}"),
    }
}

/// Every column of `user`'s location rows (datetimes as text), by ruid.
async fn rows(server: &MariaDbServer, user: &str) -> anyhow::Result<Vec<Vec<Value>>> {
    let rows = server
        .query_rows(
            "SELECT id, ruid, username, domain, contact, received, path, \
             CAST(expires AS CHAR), q, callid, cseq, CAST(last_modified AS CHAR), \
             user_agent, socket, instance, reg_id \
             FROM location WHERE username = ? ORDER BY ruid",
            (user,),
        )
        .await?;
    Ok(rows.into_iter().map(Row::unwrap).collect())
}

/// (contact, expires, last_modified, live?) of `user`'s rows, by contact.
async fn times(
    server: &MariaDbServer,
    user: &str,
) -> anyhow::Result<Vec<(String, DbTime, DbTime, bool)>> {
    let rows = server
        .query_rows(
            "SELECT contact, CAST(expires AS CHAR), CAST(last_modified AS CHAR), \
             expires > NOW(6) FROM location WHERE username = ? ORDER BY contact",
            (user,),
        )
        .await?;
    rows.iter()
        .map(|row| {
            let parse = |i: usize| -> anyhow::Result<DbTime> {
                let text: String = row_value(row, i)?;
                DbTime::parse(&text).context("bad datetime")
            };
            Ok((
                row_value(row, 0)?,
                parse(1)?,
                parse(2)?,
                row_value::<bool>(row, 3)?,
            ))
        })
        .collect()
}

/// The next auto-increment id of `location`.
async fn next_auto_increment(server: &MariaDbServer) -> anyhow::Result<u64> {
    server
        .query_value(
            "SELECT AUTO_INCREMENT FROM information_schema.tables \
             WHERE table_schema = DATABASE() AND table_name = 'location'",
            (),
        )
        .await
}

async fn live_count(server: &MariaDbServer, user: &str) -> anyhow::Result<u64> {
    server
        .query_value(
            "SELECT COUNT(*) FROM location WHERE username = ? AND expires > NOW(6)",
            (user,),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_rules_commit_on_a_and_replicate_to_b() -> anyhow::Result<()> {
    let pair = MariaDbPair::start().await?;
    let store = Store::start(&config(&pair), policy())?;
    let alice = Aor::new("alice", DOMAIN);

    // A new binding is committed on A before the reply and replicates to B unchanged.
    let r = request(
        "alice",
        "call-a",
        1,
        vec![contact("sip:alice@192.0.2.7", Some(600))],
    );
    let a = accepted(store.register(r, None).await)?;
    assert_eq!(a.bindings_after.len(), 1);
    assert_eq!(a.bindings_after[0].remaining(a.now), 600);
    assert!(!a.require_outbound);
    let on_a = rows(&pair.a, "alice").await?;
    assert_eq!(
        on_a.len(),
        1,
        "the binding is on A when the outcome arrives"
    );
    pair.wait_replicated().await?;
    assert_eq!(
        rows(&pair.b, "alice").await?,
        on_a,
        "B holds the same row as A"
    );

    let found = store.lookup(&alice).await?;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].contact, "sip:alice@192.0.2.7");
    assert_eq!(
        found[0].path.as_deref(),
        Some("<sip:token@edge.internal;lr;ob>")
    );
    assert_eq!(found[0].received.as_deref(), Some("sip:192.0.2.7:5060"));
    let shown = store.show(&alice).await?;
    assert_eq!(shown.bindings, found);
    assert!((598..=600).contains(&shown.bindings[0].remaining(shown.now)));

    // Refresh: expires and last_modified move forward, the row stays the same row,
    // and no auto-increment id is spent on it.
    let before = times(&pair.a, "alice").await?;
    let next_id = next_auto_increment(&pair.a).await?;
    let r = request(
        "alice",
        "call-a",
        2,
        vec![contact("sip:alice@192.0.2.7", Some(1200))],
    );
    let a = accepted(store.register(r.clone(), None).await)?;
    assert_eq!(a.bindings_after[0].remaining(a.now), 1200);
    let after = times(&pair.a, "alice").await?;
    assert_eq!(after.len(), 1);
    assert!(
        after[0].1 > before[0].1,
        "expires moved: {after:?} vs {before:?}"
    );
    assert!(after[0].2 > before[0].2, "last_modified moved");
    let refreshed = rows(&pair.a, "alice").await?;
    assert_eq!(
        refreshed[0][0], on_a[0][0],
        "same id: an update, not a new row"
    );
    assert_eq!(
        next_auto_increment(&pair.a).await?,
        next_id,
        "a refresh spends no id"
    );

    // An exact retransmission (same Call-ID, CSeq, contact, expires) succeeds, writes nothing.
    let a = accepted(store.register(r, None).await)?;
    assert_eq!(a.bindings_after.len(), 1);
    assert_eq!(rows(&pair.a, "alice").await?, refreshed);

    // The same CSeq with other content, or an older one, fails and changes nothing.
    let r = request(
        "alice",
        "call-a",
        2,
        vec![contact("sip:alice@192.0.2.7", Some(300))],
    );
    assert_eq!(rejected(store.register(r, None).await)?.code, 400);
    let r = request(
        "alice",
        "call-a",
        1,
        vec![contact("sip:alice@192.0.2.7", Some(0))],
    );
    assert_eq!(rejected(store.register(r, None).await)?.code, 400);
    assert_eq!(rows(&pair.a, "alice").await?, refreshed);

    // 423 below min, with Min-Expires; nothing written.
    let r = request(
        "alice",
        "call-a",
        3,
        vec![contact("sip:alice@192.0.2.8", Some(10))],
    );
    let rej = rejected(store.register(r, None).await)?;
    assert_eq!((rej.code, rej.min_expires), (423, Some(60)));
    assert_eq!(rows(&pair.a, "alice").await?, refreshed);

    // Unregister is a soft delete: the row stays, expired, and lookups skip it.
    let r = request(
        "alice",
        "call-a",
        4,
        vec![contact("sip:alice@192.0.2.7", Some(0))],
    );
    let a = accepted(store.register(r, None).await)?;
    assert!(a.bindings_after.is_empty());
    let gone = times(&pair.a, "alice").await?;
    assert_eq!(gone.len(), 1, "the row remains");
    assert!(!gone[0].3, "expires <= now");
    assert!(
        gone[0].2 > after[0].2,
        "last_modified moved with the removal"
    );
    assert!(store.lookup(&alice).await?.is_empty());

    // Contact: * with Expires: 0 removes every binding; without it, 400.
    let three: Vec<ContactSpec> = (1..=3)
        .map(|i| contact(&format!("sip:bob@192.0.2.{i}"), None))
        .collect();
    accepted(
        store
            .register(request("bob", "call-b", 1, three), None)
            .await,
    )?;
    assert_eq!(live_count(&pair.a, "bob").await?, 3);
    let mut star = request("bob", "call-b", 2, vec![]);
    star.contacts = ContactsSpec::Star;
    star.expires_header = Some(60);
    assert_eq!(
        rejected(store.register(star.clone(), None).await)?.code,
        400
    );
    assert_eq!(live_count(&pair.a, "bob").await?, 3);
    star.expires_header = Some(0);
    assert!(accepted(store.register(star, None).await)?
        .bindings_after
        .is_empty());
    assert_eq!(live_count(&pair.a, "bob").await?, 0);
    assert_eq!(
        rows(&pair.a, "bob").await?.len(),
        3,
        "soft-deleted rows remain"
    );

    // Max contacts: the 13th binding is refused, a refresh of an existing one is not.
    let twelve: Vec<ContactSpec> = (1..=12)
        .map(|i| contact(&format!("sip:carol@192.0.2.{i}"), None))
        .collect();
    accepted(
        store
            .register(request("carol", "call-c", 1, twelve), None)
            .await,
    )?;
    let r = request(
        "carol",
        "call-c",
        2,
        vec![contact("sip:carol@192.0.2.13", None)],
    );
    assert_eq!(rejected(store.register(r, None).await)?.code, 403);
    assert_eq!(live_count(&pair.a, "carol").await?, 12);
    let mut r = request(
        "carol",
        "call-c",
        3,
        vec![contact("sip:carol@192.0.2.1", None)],
    );
    (r.received, r.socket, r.path) = (None, None, None);
    assert_eq!(
        accepted(store.register(r, None).await)?
            .bindings_after
            .len(),
        12
    );
    let carol = store.lookup(&Aor::new("carol", DOMAIN)).await?;
    let refreshed = carol.iter().find(|b| b.contact == "sip:carol@192.0.2.1");
    assert_eq!(
        refreshed.map(|b| (b.received.clone(), b.socket.clone(), b.path.clone(), b.cseq)),
        Some((None, None, None, 3)),
        "a refresh can clear the optional columns"
    );

    // RFC 5626: instance + reg-id behind an `ob` edge is a flow; Require: outbound.
    let flow = ContactSpec {
        instance: Some("\"<urn:uuid:00000000-0000-0000-0000-000000000001>\"".to_owned()),
        reg_id: Some(1),
        ..contact("sip:dave@192.0.2.9:40000", None)
    };
    let a = accepted(
        store
            .register(request("dave", "call-d", 1, vec![flow.clone()]), None)
            .await,
    )?;
    assert!(a.require_outbound);
    let moved = ContactSpec {
        uri: "sip:dave@192.0.2.9:40001".to_owned(),
        ..flow
    };
    accepted(
        store
            .register(request("dave", "call-d2", 1, vec![moved]), None)
            .await,
    )?;
    let dave = store.lookup(&Aor::new("dave", DOMAIN)).await?;
    assert_eq!(dave.len(), 1, "the same flow replaced its binding");
    assert_eq!(
        (dave[0].contact.as_str(), dave[0].reg_id),
        ("sip:dave@192.0.2.9:40001", 1)
    );

    // Auth inside the batch: the check sees the subscriber row, or None.
    pair.a
        .exec(
            "INSERT INTO subscriber (username, domain, ha1, ha1b, ha1_sha256) VALUES (?, ?, ?, '', '')",
            ("erin", DOMAIN, "0123abcd"),
        )
        .await?;
    let check = || -> hasip_registrar::store::AuthCheck {
        Box::new(|s| match s {
            Some(s) if s.ha1 == "0123abcd" => Ok(()),
            _ => Err(Rejection::new(403, "Forbidden")),
        })
    };
    let r = request(
        "erin",
        "call-e",
        1,
        vec![contact("sip:erin@192.0.2.10", None)],
    );
    accepted(store.register(r, Some(check())).await)?;
    let r = request(
        "frank",
        "call-f",
        1,
        vec![contact("sip:frank@192.0.2.11", None)],
    );
    assert_eq!(rejected(store.register(r, Some(check())).await)?.code, 403);
    assert!(rows(&pair.a, "frank").await?.is_empty());
    assert_eq!(
        store.subscriber("erin", DOMAIN).await?.map(|s| s.ha1),
        Some("0123abcd".to_owned())
    );

    // Everything above reached B too.
    pair.wait_replicated().await?;
    for user in ["alice", "bob", "carol", "dave", "erin"] {
        assert_eq!(
            rows(&pair.b, user).await?,
            rows(&pair.a, user).await?,
            "{user} on B"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_registers_are_batched_and_each_answered() -> anyhow::Result<()> {
    const TASKS: usize = 200;
    const PER_TASK: usize = 10;
    let pair = MariaDbPair::start().await?;
    let store = Store::start(&config(&pair), policy())?;

    let started = Instant::now();
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let user = format!("user{t}");
            for i in 0..PER_TASK {
                let uri = format!("sip:{user}-{i}@198.51.100.1");
                let cseq = u32::try_from(i + 1)?;
                let r = request(&user, &format!("call-{t}"), cseq, vec![contact(&uri, None)]);
                let a = accepted(store.register(r, None).await)?;
                // Its own outcome: this AoR's bindings, the new one among them.
                let mine: BTreeSet<String> =
                    a.bindings_after.iter().map(|b| b.contact.clone()).collect();
                let expected: BTreeSet<String> = (0..=i)
                    .map(|j| format!("sip:{user}-{j}@198.51.100.1"))
                    .collect();
                if mine != expected {
                    bail!("{user} cseq {cseq}: got {mine:?}");
                }
            }
            // A stale CSeq for an existing binding (stored with CSeq 2) is refused in
            // the crowd, too.
            let uri = format!("sip:{user}-1@198.51.100.1");
            let r = request(&user, &format!("call-{t}"), 1, vec![contact(&uri, Some(0))]);
            let rej = rejected(store.register(r, None).await)?;
            anyhow::ensure!(rej.code == 400, "{user}: stale CSeq got {}", rej.code);
            Ok(())
        }));
    }
    for handle in handles {
        handle.await??;
    }
    let elapsed = started.elapsed();
    let total = TASKS * (PER_TASK + 1);
    println!(
        "new bindings: {total} REGISTERs from {TASKS} tasks in {elapsed:?}: {:.0}/s",
        total as f64 / elapsed.as_secs_f64()
    );

    // The refresh loop of a running system: every binding refreshed once, concurrently.
    let next_id = next_auto_increment(&pair.a).await?;
    let started = Instant::now();
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let user = format!("user{t}");
            for i in 0..PER_TASK {
                let uri = format!("sip:{user}-{i}@198.51.100.1");
                let cseq = u32::try_from(20 + i)?;
                let r = request(&user, &format!("call-{t}"), cseq, vec![contact(&uri, None)]);
                let a = accepted(store.register(r, None).await)?;
                let mine = a.bindings_after.iter().find(|b| b.contact == uri);
                anyhow::ensure!(
                    a.bindings_after.len() == PER_TASK && mine.map(|b| b.cseq) == Some(cseq),
                    "{user} refresh {i}: {:?}",
                    a.bindings_after
                );
            }
            Ok(())
        }));
    }
    for handle in handles {
        handle.await??;
    }
    let elapsed = started.elapsed();
    let total = TASKS * PER_TASK;
    let deadlocks: Vec<Row> = pair
        .a
        .query_rows("SHOW GLOBAL STATUS LIKE 'Innodb_deadlocks'", ())
        .await?;
    let deadlocks: Option<String> = deadlocks.first().map(|r| row_value(r, 1)).transpose()?;
    println!(
        "refreshes: {total} REGISTERs from {TASKS} tasks in {elapsed:?}: {:.0}/s",
        total as f64 / elapsed.as_secs_f64(),
    );
    assert_eq!(
        next_auto_increment(&pair.a).await?,
        next_id,
        "refreshes spend no auto-increment id"
    );
    // Shards own disjoint AoRs and lock only their rows, so they never deadlock.
    assert_eq!(deadlocks.as_deref(), Some("0"), "InnoDB deadlocks on A");

    let expected: BTreeSet<(String, String)> = (0..TASKS)
        .flat_map(|t| {
            (0..PER_TASK)
                .map(move |i| (format!("user{t}"), format!("sip:user{t}-{i}@198.51.100.1")))
        })
        .collect();
    for server in [&pair.a, &pair.b] {
        if server.name() == "B" {
            pair.wait_replicated().await?;
        }
        let rows = server
            .query_rows(
                "SELECT username, contact FROM location WHERE expires > NOW(6)",
                (),
            )
            .await?;
        let got: BTreeSet<(String, String)> = rows
            .iter()
            .map(|r| Ok((row_value(r, 0)?, row_value(r, 1)?)))
            .collect::<anyhow::Result<_>>()?;
        assert_eq!(
            got.len(),
            TASKS * PER_TASK,
            "row count on {}",
            server.name()
        );
        assert_eq!(got, expected, "row set on {}", server.name());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_over_to_b_then_503_then_recovers() -> anyhow::Result<()> {
    let mut pair = MariaDbPair::start().await?;
    let store = Store::start(&config(&pair), policy())?;
    let reg = |user: &str| {
        request(
            user,
            "call-x",
            1,
            vec![contact(&format!("sip:{user}@h"), None)],
        )
    };

    accepted(store.register(reg("before"), None).await)?;
    assert_eq!(store.active_master(), 0);
    pair.wait_replicated().await?;

    // A goes away: the next REGISTERs commit on B, and everyone stays there.
    pair.a.stop().await?;
    accepted(store.register(reg("during"), None).await)?;
    assert_eq!(store.active_master(), 1);
    assert_eq!(live_count(&pair.b, "during").await?, 1);
    assert_eq!(store.lookup(&Aor::new("during", DOMAIN)).await?.len(), 1);

    // Both down: Unavailable with a Retry-After, no panic, no hang.
    pair.b.kill().await?;
    let err = store.register(reg("nowhere"), None).await;
    match err {
        Err(StoreError::Unavailable { retry_after }) => assert!(retry_after > Duration::ZERO),
        other => bail!("expected Unavailable, got {other:?}"),
    }
    assert!(matches!(
        store.lookup(&Aor::new("before", DOMAIN)).await,
        Err(StoreError::Unavailable { .. })
    ));

    // A returns: the store finds it by itself.
    pair.a.start().await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match store.register(reg("after"), None).await {
            Ok(outcome) => {
                accepted(Ok(outcome))?;
                break;
            }
            Err(StoreError::Unavailable { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => bail!("no recovery after A restarted: {e}"),
        }
    }
    assert_eq!(store.active_master(), 0);
    assert_eq!(live_count(&pair.a, "after").await?, 1);

    // With B back, nothing that got a 200 is missing on either master.
    pair.b.start().await?;
    pair.wait_replicated().await?;
    for user in ["before", "during", "after"] {
        for server in [&pair.a, &pair.b] {
            assert_eq!(
                live_count(server, user).await?,
                1,
                "{user} on {}",
                server.name()
            );
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_deletes_old_rows_under_get_lock() -> anyhow::Result<()> {
    let pair = MariaDbPair::start().await?;
    let store = Store::start(&config(&pair), policy())?;
    let other = Store::start(&config(&pair), policy())?;
    for (ruid, age) in [
        ("old1", 7200),
        ("old2", 7300),
        ("old3", 9000),
        ("recent", 10),
        ("live", -600),
    ] {
        pair.a
            .exec(
                "INSERT INTO location (ruid, username, domain, contact, expires, last_modified) \
                 VALUES (?, 'gc', ?, ?, NOW(6) - INTERVAL ? SECOND, NOW(6))",
                (ruid, DOMAIN, format!("sip:{ruid}@h"), age),
            )
            .await?;
    }
    let config = CleanupConfig {
        interval_secs: 60,
        grace_secs: 3600,
        batch: 2,
    };
    let remaining = || async {
        let rows = pair
            .a
            .query_rows(
                "SELECT ruid FROM location WHERE username = 'gc' ORDER BY ruid",
                (),
            )
            .await?;
        rows.iter()
            .map(|r| row_value::<String>(r, 0))
            .collect::<anyhow::Result<Vec<_>>>()
    };

    // Another registrar holds the lock, on A or, after a failover, on B: neither cleaner
    // runs, or both masters could delete the same rows and break replication.
    for server in [&pair.a, &pair.b] {
        let mut holder = server.conn().await?;
        let got: Option<i64> = holder
            .query_first("SELECT GET_LOCK('hasip_cleanup', 0)")
            .await?;
        assert_eq!(got, Some(1), "lock on {}", server.name());
        for cleaner in [&store, &other] {
            assert_eq!(
                cleanup::run_once(cleaner, &config).await?,
                CleanupReport::LockBusy,
                "lock held on {}",
                server.name()
            );
        }
        assert_eq!(remaining().await?.len(), 5);
        holder
            .query_drop("DO RELEASE_LOCK('hasip_cleanup')")
            .await?;
        holder.disconnect().await?;
    }

    // Released: two cleaners at once delete the old rows exactly once between them.
    let (x, y) = tokio::join!(
        cleanup::run_once(&store, &config),
        cleanup::run_once(&other, &config)
    );
    let deleted = |r: CleanupReport| match r {
        CleanupReport::Ran { deleted } => deleted,
        CleanupReport::LockBusy => 0,
    };
    assert_eq!(deleted(x?) + deleted(y?), 3);
    assert_eq!(
        remaining().await?,
        vec!["live".to_owned(), "recent".to_owned()]
    );

    // The lock was released after the run: it can be taken again.
    let mut holder = pair.a.conn().await?;
    let got: Option<i64> = holder
        .query_first("SELECT GET_LOCK('hasip_cleanup', 0)")
        .await?;
    assert_eq!(got, Some(1));
    holder.disconnect().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_database_refuses_fails_alone() -> anyhow::Result<()> {
    let pair = MariaDbPair::start().await?;
    // A trigger stands in for any value the database refuses.
    let mut root = pair.a.conn().await?;
    root.query_drop(
        "CREATE TRIGGER refuse_poison BEFORE INSERT ON location FOR EACH ROW \
         IF NEW.contact = 'sip:poison@h' THEN \
         SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'poison'; END IF",
    )
    .await?;
    root.disconnect().await?;
    // One shard, so the concurrent requests share batches.
    let store = Store::start(
        &StoreConfig {
            shards: 1,
            ..config(&pair)
        },
        policy(),
    )?;
    let mut handles = Vec::new();
    for i in 0..50 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let uri = if i == 25 {
                "sip:poison@h".to_owned()
            } else {
                format!("sip:ok{i}@h")
            };
            let r = request(&format!("p{i}"), "call-p", 1, vec![contact(&uri, None)]);
            (i, store.register(r, None).await)
        }));
    }
    for handle in handles {
        let (i, outcome) = handle.await?;
        if i == 25 {
            assert!(
                matches!(outcome, Err(StoreError::Database { master: 0, .. })),
                "the poisoned request fails: {outcome:?}"
            );
        } else {
            accepted(outcome).with_context(|| format!("request {i}"))?;
        }
    }
    let live: u64 = pair
        .a
        .query_value(
            "SELECT COUNT(*) FROM location WHERE username LIKE 'p%' AND expires > NOW(6)",
            (),
        )
        .await?;
    assert_eq!(live, 49);
    assert_eq!(
        store.active_master(),
        0,
        "a refused statement is no reason to switch"
    );
    Ok(())
}

/// A batch reads, locks and decides in one statement: the AoR's rows are locked until
/// its commit (a REGISTER waits for a transaction holding them), credentials only read
/// (a REGISTER does not wait for one holding the subscriber row).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_locks_the_aors_rows_and_only_reads_credentials() -> anyhow::Result<()> {
    let pair = MariaDbPair::start().await?;
    let store = Store::start(&config(&pair), policy())?;
    pair.a
        .exec(
            "INSERT INTO subscriber (username, domain, ha1, ha1b, ha1_sha256) VALUES (?, ?, ?, '', '')",
            ("gina", DOMAIN, "0123abcd"),
        )
        .await?;
    let check = || -> hasip_registrar::store::AuthCheck {
        Box::new(|s| match s {
            Some(s) if s.ha1 == "0123abcd" => Ok(()),
            _ => Err(Rejection::new(403, "Forbidden")),
        })
    };
    let uri = "sip:gina@192.0.2.12";
    let r = request("gina", "call-g", 1, vec![contact(uri, None)]);
    accepted(store.register(r, Some(check())).await)?;

    // Another session holds gina's credentials: her refresh goes through anyway.
    let mut other = pair.a.conn().await?;
    other.query_drop("START TRANSACTION").await?;
    other
        .exec_drop(
            "SELECT ha1 FROM subscriber WHERE username = ? AND domain = ? FOR UPDATE",
            ("gina", DOMAIN),
        )
        .await?;
    let r = request("gina", "call-g", 2, vec![contact(uri, None)]);
    let refresh = tokio::time::timeout(Duration::from_secs(5), store.register(r, Some(check())))
        .await
        .context("a REGISTER waited for a lock on its subscriber row")?;
    accepted(refresh)?;
    other.query_drop("COMMIT").await?;

    // Another session holds her binding: the next refresh waits for its commit and
    // then decides on what it committed (CSeq 10, so CSeq 3 is stale).
    other.query_drop("START TRANSACTION").await?;
    other
        .exec_drop(
            "UPDATE location SET cseq = 10 WHERE username = ? AND domain = ?",
            ("gina", DOMAIN),
        )
        .await?;
    let waiting = {
        let store = store.clone();
        let r = request("gina", "call-g", 3, vec![contact(uri, None)]);
        tokio::spawn(async move { store.register(r, Some(check())).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "a REGISTER went ahead while another transaction held its binding"
    );
    other.query_drop("COMMIT").await?;
    let stale = rejected(waiting.await?)?;
    assert_eq!(stale.code, 400, "CSeq 3 after the committed 10: {stale:?}");
    Ok(())
}

/// Sends `signal` (STOP, CONT) to a server's process.
fn signal(server: &MariaDbServer, signal: &str) -> anyhow::Result<()> {
    let pid = std::fs::read_to_string(server.dir().join("mariadbd.pid"))?;
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.trim())
        .status()?;
    anyhow::ensure!(status.success(), "kill -{signal} {pid} failed");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_master_times_out_and_b_takes_over() -> anyhow::Result<()> {
    let pair = MariaDbPair::start().await?;
    let store = Store::start(
        &StoreConfig {
            timeout_ms: 500,
            ..config(&pair)
        },
        policy(),
    )?;
    let reg = |user: &str| {
        request(
            user,
            "call-h",
            1,
            vec![contact(&format!("sip:{user}@h"), None)],
        )
    };
    accepted(store.register(reg("h1"), None).await)?;
    assert_eq!(store.active_master(), 0);

    // A stops answering but keeps its sockets open: only the timeout can tell.
    signal(&pair.a, "STOP")?;
    let outcome = store.register(reg("h2"), None).await;
    let active = store.active_master();
    let lookup = store.lookup(&Aor::new("h2", DOMAIN)).await;
    signal(&pair.a, "CONT")?;
    accepted(outcome)?;
    assert_eq!(active, 1, "moved to B");
    assert_eq!(lookup?.len(), 1, "lookups follow to B");
    assert_eq!(live_count(&pair.b, "h2").await?, 1);

    // B stays the active master after A is back.
    accepted(store.register(reg("h3"), None).await)?;
    assert_eq!(store.active_master(), 1);
    pair.wait_replicated().await?;
    for user in ["h1", "h2", "h3"] {
        assert_eq!(live_count(&pair.a, user).await?, 1, "{user} on A");
    }
    Ok(())
}
