//! Reading the replication state of each server (I/O) and turning two states into the two
//! directions' observations (pure).

use std::collections::HashMap;

use crate::db::{num_col, text_col, Db};
use crate::error::Result;
use crate::reconcile::Stamp;
use crate::status::Observed;

/// `SHOW SLAVE STATUS` of the default connection, the fields dbsync uses.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct SlaveStatus {
    /// `Slave_IO_Running`.
    pub io_running: String,
    /// `Slave_SQL_Running`.
    pub sql_running: String,
    /// `Last_SQL_Errno`.
    pub last_sql_errno: u32,
    /// `Last_SQL_Error`.
    pub last_sql_error: String,
    /// `Last_IO_Errno`.
    pub last_io_errno: u32,
    /// `Last_IO_Error`.
    pub last_io_error: String,
    /// `Using_Gtid`.
    pub using_gtid: String,
    /// `Gtid_IO_Pos`.
    pub gtid_io_pos: String,
    /// `Relay_Log_File`: where the SQL thread stands.
    pub relay_log_file: String,
    /// `Relay_Log_Pos`: start of the next (or failing) event group.
    pub relay_log_pos: u64,
    /// `Master_Host`.
    pub master_host: String,
    /// `Master_Port`.
    pub master_port: u64,
}

/// What one server says about itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerState {
    /// `@@server_id`.
    pub server_id: u32,
    /// `@@gtid_domain_id`.
    pub domain_id: u32,
    /// `@@gtid_binlog_pos`.
    pub gtid_binlog_pos: String,
    /// `@@gtid_slave_pos`.
    pub gtid_slave_pos: String,
    /// The replica status, `None` when replication is not configured.
    pub slave: Option<SlaveStatus>,
    /// Heartbeat rows held by this server: writer's server_id -> ts.
    pub heartbeats: HashMap<u32, Stamp>,
    /// `NOW(6)` on this server.
    pub now: Option<Stamp>,
}

/// Reads `SHOW SLAVE STATUS`.
pub async fn slave_status(db: &mut Db) -> Result<Option<SlaveStatus>> {
    let rows = db.text("SHOW SLAVE STATUS").await?;
    Ok(rows.first().map(|r| SlaveStatus {
        io_running: text_col(r, "Slave_IO_Running"),
        sql_running: text_col(r, "Slave_SQL_Running"),
        last_sql_errno: u32::try_from(num_col(r, "Last_SQL_Errno")).unwrap_or(u32::MAX),
        last_sql_error: text_col(r, "Last_SQL_Error"),
        last_io_errno: u32::try_from(num_col(r, "Last_IO_Errno")).unwrap_or(u32::MAX),
        last_io_error: text_col(r, "Last_IO_Error"),
        using_gtid: text_col(r, "Using_Gtid"),
        gtid_io_pos: text_col(r, "Gtid_IO_Pos"),
        relay_log_file: text_col(r, "Relay_Log_File"),
        relay_log_pos: num_col(r, "Relay_Log_Pos"),
        master_host: text_col(r, "Master_Host"),
        master_port: num_col(r, "Master_Port"),
    }))
}

/// Reads everything `status` and `watch` need from one server.
pub async fn server_state(db: &mut Db) -> Result<ServerState> {
    let rows = db
        .rows(
            "SELECT @@server_id, @@gtid_domain_id, @@gtid_binlog_pos, @@gtid_slave_pos, NOW(6)",
            vec![],
        )
        .await?;
    let mut st = ServerState::default();
    if let Some(r) = rows.first() {
        st.server_id = r.get_opt::<u32, usize>(0).and_then(Result::ok).unwrap_or(0);
        st.domain_id = r.get_opt::<u32, usize>(1).and_then(Result::ok).unwrap_or(0);
        st.gtid_binlog_pos = r
            .get_opt::<Option<String>, usize>(2)
            .and_then(Result::ok)
            .flatten()
            .unwrap_or_default();
        st.gtid_slave_pos = r
            .get_opt::<Option<String>, usize>(3)
            .and_then(Result::ok)
            .flatten()
            .unwrap_or_default();
        st.now = r.as_ref(4).and_then(Stamp::from_value);
    }
    st.slave = slave_status(db).await?;
    match db
        .rows("SELECT server_id, ts FROM dbsync_heartbeat", vec![])
        .await
    {
        Ok(rows) => {
            for r in rows {
                let id = r.get_opt::<u32, usize>(0).and_then(Result::ok);
                let ts = r.as_ref(1).and_then(Stamp::from_value);
                if let (Some(id), Some(ts)) = (id, ts) {
                    st.heartbeats.insert(id, ts);
                }
            }
        }
        // 1146: no heartbeat table yet (before setup): no lag known, not a failure to read.
        Err(e) if e.server_code() == Some(1146) => {}
        Err(e) => return Err(e),
    }
    Ok(st)
}

/// Reads both servers (in parallel) and classifies both directions: what `dbsync status` shows.
pub async fn status(cfg: &crate::config::Config) -> crate::status::Report {
    async fn read(
        cfg: &crate::config::Config,
        side: crate::reconcile::Side,
    ) -> std::result::Result<ServerState, String> {
        let mut db = Db::connect(cfg, side).await.map_err(|e| e.to_string())?;
        let st = server_state(&mut db).await.map_err(|e| e.to_string());
        db.close().await;
        st
    }
    let (sa, sb) = tokio::join!(
        read(cfg, crate::reconcile::Side::A),
        read(cfg, crate::reconcile::Side::B)
    );
    let (na, nb) = (&cfg.a.name, &cfg.b.name);
    crate::status::report(
        vec![direction(na, nb, &sa, &sb), direction(nb, na, &sb, &sa)],
        cfg.lag_threshold_ms,
    )
}

/// Writes this server's heartbeat row; it travels to the peer through replication.
pub async fn beat(db: &mut Db) -> Result<()> {
    db.run(
        "INSERT INTO dbsync_heartbeat (server_id, ts) VALUES (@@server_id, NOW(6)) \
         ON DUPLICATE KEY UPDATE ts = VALUES(ts)",
        vec![],
    )
    .await
    .map(|_| ())
}

/// The observation of the direction `source -> replica` from both servers' states.
pub fn direction(
    source_name: &str,
    replica_name: &str,
    source: &std::result::Result<ServerState, String>,
    replica: &std::result::Result<ServerState, String>,
) -> Observed {
    let mut o = Observed {
        replica: replica_name.to_owned(),
        source: source_name.to_owned(),
        ..Observed::default()
    };
    let r = match replica {
        Ok(r) => r,
        Err(e) => {
            o.replica_error = Some(e.clone());
            if let Err(e) = source {
                o.source_error = Some(e.clone());
            }
            return o;
        }
    };
    o.gtid_slave_pos = r.gtid_slave_pos.clone();
    if let Some(s) = &r.slave {
        o.configured = true;
        o.io_running = s.io_running.clone();
        o.sql_running = s.sql_running.clone();
        o.last_sql_errno = s.last_sql_errno;
        o.last_sql_error = s.last_sql_error.clone();
        o.last_io_errno = s.last_io_errno;
        o.last_io_error = s.last_io_error.clone();
        o.using_gtid = s.using_gtid.clone();
        o.gtid_io_pos = s.gtid_io_pos.clone();
    }
    match source {
        Err(e) => o.source_error = Some(e.clone()),
        Ok(s) => {
            o.source_gtid_binlog_pos = s.gtid_binlog_pos.clone();
            let own = s.heartbeats.get(&s.server_id);
            let copy = r.heartbeats.get(&s.server_id);
            // Both stamps were written by the source's clock, so the difference has no clock skew.
            if let (Some(own), Some(copy)) = (own, copy) {
                o.lag_ms = Some(micros_to_ms(own.micros() - copy.micros()));
            }
            if let (Some(own), Some(now)) = (own, s.now) {
                o.heartbeat_age_ms = Some(micros_to_ms(now.micros() - own.micros()));
            }
        }
    }
    o
}

fn micros_to_ms(d: i64) -> u64 {
    u64::try_from(d.max(0) / 1000).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(id: u32, beats: &[(u32, &str)]) -> ServerState {
        ServerState {
            server_id: id,
            domain_id: id,
            gtid_binlog_pos: format!("{id}-{id}-10"),
            gtid_slave_pos: String::new(),
            slave: Some(SlaveStatus {
                io_running: "Yes".into(),
                sql_running: "Yes".into(),
                using_gtid: "Slave_Pos".into(),
                ..SlaveStatus::default()
            }),
            heartbeats: beats
                .iter()
                .filter_map(|(i, t)| Some((*i, Stamp::parse(t)?)))
                .collect(),
            now: Stamp::parse("2026-11-23 18:00:10"),
        }
    }

    #[test]
    fn lag_is_the_sources_beat_minus_its_copy() {
        let a = Ok(state(
            1,
            &[(1, "2026-11-23 18:00:09.900"), (2, "2026-11-23 18:00:09")],
        ));
        let b = Ok(state(
            2,
            &[
                (1, "2026-11-23 18:00:07.400"),
                (2, "2026-11-23 18:00:09.500"),
            ],
        ));
        let ab = direction("a", "b", &a, &b);
        assert_eq!(ab.lag_ms, Some(2500));
        assert_eq!(ab.heartbeat_age_ms, Some(100));
        assert_eq!(ab.source_gtid_binlog_pos, "1-1-10");
        let ba = direction("b", "a", &b, &a);
        assert_eq!(ba.lag_ms, Some(500));
        assert!(ba.configured);
    }

    #[test]
    fn unreachable_servers_are_named() {
        let a: std::result::Result<ServerState, String> = Err("refused".into());
        let b = Ok(state(2, &[]));
        let ab = direction("a", "b", &a, &b);
        assert_eq!(ab.source_error.as_deref(), Some("refused"));
        assert_eq!(ab.lag_ms, None);
        let ba = direction("b", "a", &b, &a);
        assert_eq!(ba.replica_error.as_deref(), Some("refused"));
        assert!(!ba.configured);
    }
}
