//! `dbsync setup`: makes two fresh servers cross-replicate. Checks the server settings and says
//! what is wrong, creates the replication and monitor users with least privileges, points each
//! server at the other with `MASTER_USE_GTID = slave_pos`, and applies the schema. Idempotent.

use std::time::{Duration, Instant};

use mysql_async::Value;

use crate::config::{Config, Secret};
use crate::db::{opts, Db};
use crate::error::{Error, Result};
use crate::gtid::GtidPos;
use crate::ident::{account_host, Ident};
use crate::observe::slave_status;
use crate::reconcile::Side;

/// The server variables the pair depends on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    /// `@@server_id`.
    pub server_id: u64,
    /// `@@gtid_domain_id`.
    pub gtid_domain_id: u64,
    /// `@@log_bin`.
    pub log_bin: bool,
    /// `@@binlog_format`.
    pub binlog_format: String,
    /// `@@auto_increment_increment`.
    pub auto_increment_increment: u64,
    /// `@@auto_increment_offset`.
    pub auto_increment_offset: u64,
}

/// Everything wrong with the two servers' settings, each in words an operator can act on (pure).
pub fn problems(a_name: &str, a: &Settings, b_name: &str, b: &Settings) -> Vec<String> {
    let mut out = Vec::new();
    for (n, s) in [(a_name, a), (b_name, b)] {
        if s.server_id == 0 {
            out.push(format!(
                "{n}: server_id is 0; set a unique non-zero server_id in the server config"
            ));
        }
        if !s.log_bin {
            out.push(format!(
                "{n}: log_bin is OFF; enable the binary log (log_bin) and restart"
            ));
        }
        if !s.binlog_format.eq_ignore_ascii_case("ROW") {
            out.push(format!(
                "{n}: binlog_format is {}; set binlog_format=ROW (row events carry the key dbsync repairs by)",
                s.binlog_format
            ));
        }
        if s.auto_increment_increment < 2 {
            out.push(format!(
                "{n}: auto_increment_increment is {}; set it to 2 so the masters never hand out the same id",
                s.auto_increment_increment
            ));
        }
    }
    if a.server_id == b.server_id {
        out.push(format!(
            "{a_name} and {b_name} share server_id {}; each master needs its own",
            a.server_id
        ));
    }
    if a.gtid_domain_id == b.gtid_domain_id {
        out.push(format!(
            "{a_name} and {b_name} share gtid_domain_id {}; give each master its own (for example 1 and 2)",
            a.gtid_domain_id
        ));
    }
    if a.auto_increment_offset == b.auto_increment_offset {
        out.push(format!(
            "{a_name} and {b_name} share auto_increment_offset {}; use 1 and 2",
            a.auto_increment_offset
        ));
    }
    out
}

/// The statements of a SQL file whose statements end with `;` at the end of a line.
pub fn split_statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in sql.lines() {
        let t = line.trim();
        if cur.is_empty() && (t.is_empty() || t.starts_with("--")) {
            continue;
        }
        cur.push_str(line);
        cur.push('\n');
        if t.ends_with(';') {
            let stmt = cur.trim().trim_end_matches(';').trim().to_owned();
            if !stmt.is_empty() {
                out.push(stmt);
            }
            cur.clear();
        }
    }
    let rest = cur.trim();
    if !rest.is_empty() {
        out.push(rest.to_owned());
    }
    out
}

/// The administrator account setup connects as.
#[derive(Debug, Clone)]
pub struct Admin {
    /// User name.
    pub user: String,
    /// Password.
    pub password: Secret,
}

async fn settings(db: &mut Db) -> Result<Settings> {
    let rows = db
        .rows(
            "SELECT @@server_id, @@gtid_domain_id, @@log_bin, @@binlog_format, \
             @@auto_increment_increment, @@auto_increment_offset",
            vec![],
        )
        .await?;
    let r = rows.first().ok_or_else(|| Error::Unexpected {
        server: db.name.clone(),
        what: "no settings row".into(),
    })?;
    let n = |i: usize| r.get_opt::<u64, usize>(i).and_then(Result::ok).unwrap_or(0);
    Ok(Settings {
        server_id: n(0),
        gtid_domain_id: n(1),
        log_bin: n(2) == 1,
        binlog_format: r
            .get_opt::<String, usize>(3)
            .and_then(Result::ok)
            .unwrap_or_default(),
        auto_increment_increment: n(4),
        auto_increment_offset: n(5),
    })
}

/// A string literal for the few statements that cannot take bound values (CREATE USER, CHANGE MASTER),
/// escaped the way the session's sql_mode reads it.
async fn literal(db: &mut Db, s: &str) -> Result<String> {
    let mode: String = db.scalar("SELECT @@SESSION.sql_mode", vec![]).await?;
    Ok(Value::from(s).as_sql(mode.contains("NO_BACKSLASH_ESCAPES")))
}

/// The password hash computed by the server from a bound value; it is `*` and 40 hex digits, so
/// splicing it into CREATE USER cannot inject anything.
async fn password_hash(db: &mut Db, password: &Secret) -> Result<String> {
    let h: String = db
        .scalar("SELECT PASSWORD(?)", vec![password.expose().into()])
        .await?;
    let ok =
        h.len() == 41 && h.starts_with('*') && h.chars().skip(1).all(|c| c.is_ascii_hexdigit());
    if ok {
        Ok(h)
    } else {
        Err(Error::Unexpected {
            server: db.name.clone(),
            what: "PASSWORD() returned an unexpected hash".into(),
        })
    }
}

async fn ensure_user(
    db: &mut Db,
    user: &Ident,
    host: &str,
    password: &Secret,
    grants: &[String],
    log: &mut Vec<String>,
) -> Result<()> {
    let hash = password_hash(db, password).await?;
    let account = format!("'{}'@'{host}'", user.as_str());
    db.text(&format!(
        "CREATE USER IF NOT EXISTS {account} IDENTIFIED BY PASSWORD '{hash}'"
    ))
    .await?;
    db.text(&format!(
        "ALTER USER {account} IDENTIFIED BY PASSWORD '{hash}'"
    ))
    .await?;
    for g in grants {
        db.text(&format!("GRANT {g} TO {account}")).await?;
    }
    log.push(format!(
        "{}: user {account} ready ({})",
        db.name,
        grants.join("; ")
    ));
    Ok(())
}

async fn users(cfg: &Config, db: &mut Db, log: &mut Vec<String>) -> Result<()> {
    let host = account_host(&cfg.setup.account_host)
        .map_err(|e| Error::Refused(e.to_string()))?
        .to_owned();
    let monitor = cfg.server(db.side);
    let monitor_user = Ident::new(&monitor.user).map_err(|e| Error::Refused(e.to_string()))?;
    // Users are per server: created with binary logging off so they do not replicate.
    db.log_bin(false).await?;
    let res = async {
        ensure_user(
            db,
            &cfg.setup.replication_user,
            &host,
            &cfg.setup.replication_password,
            &["REPLICATION SLAVE ON *.*".to_owned()],
            log,
        )
        .await?;
        ensure_user(
            db,
            &monitor_user,
            &host,
            &monitor.password,
            &[
                "SLAVE MONITOR, BINLOG MONITOR, REPLICATION SLAVE ADMIN, BINLOG ADMIN ON *.*"
                    .to_owned(),
                format!(
                    "SELECT, INSERT, UPDATE, DELETE ON {}.*",
                    cfg.database.quoted()
                ),
            ],
            log,
        )
        .await
    }
    .await;
    db.log_bin(true).await?;
    res
}

async fn replicate(
    cfg: &Config,
    replica: &mut Db,
    source: &mut Db,
    log: &mut Vec<String>,
) -> Result<()> {
    let src = cfg.server(source.side);
    let host = src
        .replication_host
        .clone()
        .unwrap_or_else(|| src.host.clone());
    let port = src.replication_port.unwrap_or(src.port);
    if let Some(st) = slave_status(replica).await? {
        let same = st.master_host == host
            && st.master_port == u64::from(port)
            && st.using_gtid == "Slave_Pos";
        if same {
            if st.io_running == "No" && st.sql_running == "No" && st.last_sql_errno == 0 {
                replica.text("START SLAVE").await?;
                log.push(format!(
                    "{}: replication from {} started",
                    replica.name, source.name
                ));
            } else {
                log.push(format!(
                    "{}: replication from {} already configured",
                    replica.name, source.name
                ));
            }
            return Ok(());
        }
        replica.text("STOP SLAVE").await?;
    }
    account_host(&host).map_err(|e| Error::Refused(format!("replication host: {e}")))?;
    // A fresh pair starts from the peer's current position: its history holds nothing to copy.
    let slave_pos: String = replica.scalar("SELECT @@gtid_slave_pos", vec![]).await?;
    if slave_pos.is_empty() {
        let rows = source
            .rows("SELECT @@gtid_domain_id, @@gtid_binlog_pos", vec![])
            .await?;
        let (domain, pos) = rows
            .first()
            .map(|r| {
                (
                    r.get_opt::<u32, usize>(0).and_then(Result::ok).unwrap_or(0),
                    r.get_opt::<Option<String>, usize>(1)
                        .and_then(Result::ok)
                        .flatten()
                        .unwrap_or_default(),
                )
            })
            .unwrap_or_default();
        let pos: GtidPos = pos.parse().unwrap_or_default();
        let start = pos.only_domain(domain).to_string();
        replica
            .run("SET GLOBAL gtid_slave_pos = ?", vec![start.clone().into()])
            .await?;
        log.push(format!("{}: gtid_slave_pos set to {start:?}", replica.name));
    }
    let user = literal(replica, cfg.setup.replication_user.as_str()).await?;
    let pass = literal(replica, cfg.setup.replication_password.expose()).await?;
    let host_lit = literal(replica, &host).await?;
    replica
        .text(&format!(
            "CHANGE MASTER TO MASTER_HOST = {host_lit}, MASTER_PORT = {port}, MASTER_USER = {user}, \
             MASTER_PASSWORD = {pass}, MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1"
        ))
        .await?;
    replica.text("START SLAVE").await?;
    log.push(format!(
        "{}: CHANGE MASTER TO {host}:{port} MASTER_USE_GTID=slave_pos; started",
        replica.name
    ));
    Ok(())
}

async fn wait_running(db: &mut Db, within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(st) = slave_status(db).await? {
            if st.io_running == "Yes" && st.sql_running == "Yes" {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Refused(format!(
                    "{}: replication not running after {within:?}: IO {} ({}), SQL {} ({})",
                    db.name, st.io_running, st.last_io_error, st.sql_running, st.last_sql_error
                )));
            }
        } else if Instant::now() >= deadline {
            return Err(Error::Refused(format!(
                "{}: replication not configured",
                db.name
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs the whole setup; returns what it did, line by line.
pub async fn run(cfg: &Config, admin: &Admin, schema_sql: &str) -> Result<Vec<String>> {
    let limit = Duration::from_secs(cfg.timeout_s);
    let connect = |side: Side| {
        let s = cfg.server(side);
        Db::connect_with(
            side,
            &s.name,
            opts(s, &admin.user, admin.password.expose(), None),
            limit,
        )
    };
    let (a, b) = tokio::join!(connect(Side::A), connect(Side::B));
    let (mut a, mut b) = (a?, b?);
    let (sa, sb) = (settings(&mut a).await?, settings(&mut b).await?);
    let wrong = problems(&a.name, &sa, &b.name, &sb);
    if !wrong.is_empty() {
        return Err(Error::Refused(format!(
            "the servers are not ready for master-master replication:\n  {}",
            wrong.join("\n  ")
        )));
    }
    let mut log = vec![format!(
        "settings ok: server_id {}/{}, gtid_domain_id {}/{}, binlog_format ROW",
        sa.server_id, sb.server_id, sa.gtid_domain_id, sb.gtid_domain_id
    )];
    users(cfg, &mut a, &mut log).await?;
    users(cfg, &mut b, &mut log).await?;
    replicate(cfg, &mut b, &mut a, &mut log).await?;
    replicate(cfg, &mut a, &mut b, &mut log).await?;
    wait_running(&mut a, limit).await?;
    wait_running(&mut b, limit).await?;

    // The schema goes to one master only and reaches the other through replication.
    a.text(&format!(
        "CREATE DATABASE IF NOT EXISTS {}",
        cfg.database.quoted()
    ))
    .await?;
    a.text(&format!("USE {}", cfg.database.quoted())).await?;
    let statements = split_statements(schema_sql);
    for s in &statements {
        a.text(s).await?;
    }
    log.push(format!(
        "{}: schema applied ({} statements)",
        a.name,
        statements.len()
    ));
    if !crate::checksum::sync_point(&mut a, &mut b, limit).await? {
        return Err(Error::Refused(format!(
            "{} did not receive the schema within {limit:?}",
            b.name
        )));
    }
    log.push(format!("{}: schema replicated", b.name));
    a.close().await;
    b.close().await;
    Ok(log)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good(id: u64) -> Settings {
        Settings {
            server_id: id,
            gtid_domain_id: id,
            log_bin: true,
            binlog_format: "ROW".into(),
            auto_increment_increment: 2,
            auto_increment_offset: id,
        }
    }

    #[test]
    fn good_pair_has_no_problems() {
        assert!(problems("a", &good(1), "b", &good(2)).is_empty());
    }

    #[test]
    fn each_problem_is_named() {
        let bad = Settings {
            server_id: 1,
            gtid_domain_id: 1,
            log_bin: false,
            binlog_format: "STATEMENT".into(),
            auto_increment_increment: 1,
            auto_increment_offset: 1,
        };
        let p = problems("a", &good(1), "b", &bad).join("\n");
        for needle in [
            "b: log_bin is OFF",
            "b: binlog_format is STATEMENT",
            "b: auto_increment_increment is 1",
            "share server_id 1",
            "share gtid_domain_id 1",
            "share auto_increment_offset 1",
        ] {
            assert!(p.contains(needle), "missing {needle:?} in\n{p}");
        }
        let zero = Settings {
            server_id: 0,
            ..good(3)
        };
        assert!(problems("a", &zero, "b", &good(2))
            .join("\n")
            .contains("a: server_id is 0"));
    }

    #[test]
    fn statements_split_at_line_ending_semicolons() {
        let sql = "-- comment\nCREATE TABLE t (\n  a INT -- x;y\n);\n\nINSERT INTO v VALUES ('a;b');\nSELECT 1";
        assert_eq!(
            split_statements(sql),
            vec![
                "CREATE TABLE t (\n  a INT -- x;y\n)".to_owned(),
                "INSERT INTO v VALUES ('a;b')".to_owned(),
                "SELECT 1".to_owned()
            ]
        );
    }
}
