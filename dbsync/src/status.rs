//! Replication status of both directions: what was observed, its classification (pure) into
//! healthy / degraded / broken, the exit code, and the table rendering.

use std::fmt::Write as _;

/// Overall health; the order is the severity, so the worst direction is the maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Both threads run, no error, lag under the threshold.
    Healthy,
    /// Replicating but impaired: the IO thread reconnects, the lag is over the threshold, or the
    /// source cannot be reached.
    Degraded,
    /// Not replicating: a thread stopped, an error, not configured, or the replica unreachable.
    Broken,
}

impl Health {
    /// The process exit status for this health: 0, 1 or 2.
    pub fn exit_code(self) -> u8 {
        match self {
            Health::Healthy => 0,
            Health::Degraded => 1,
            Health::Broken => 2,
        }
    }

    /// A number for the metrics gauge (same as the exit code).
    pub fn as_gauge(self) -> f64 {
        f64::from(self.exit_code())
    }
}

/// What was read about one direction (replica applying the source's binlog).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Observed {
    /// Name of the server applying the changes.
    pub replica: String,
    /// Name of the server the changes come from.
    pub source: String,
    /// Connection error to the replica, if it could not be read.
    pub replica_error: Option<String>,
    /// Connection error to the source, if it could not be read.
    pub source_error: Option<String>,
    /// SHOW SLAVE STATUS returned a row.
    pub configured: bool,
    /// `Slave_IO_Running`: Yes, No or Connecting.
    pub io_running: String,
    /// `Slave_SQL_Running`: Yes or No.
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
    /// `@@gtid_slave_pos` on the replica.
    pub gtid_slave_pos: String,
    /// `@@gtid_binlog_pos` on the source.
    pub source_gtid_binlog_pos: String,
    /// Heartbeat lag: the source's own heartbeat minus its replicated copy on the replica.
    pub lag_ms: Option<u64>,
    /// Age of the source's heartbeat on the source itself (large when no `watch` runs).
    pub heartbeat_age_ms: Option<u64>,
}

/// One direction with its verdict.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Direction {
    /// The observation.
    #[serde(flatten)]
    pub observed: Observed,
    /// Its health.
    pub health: Health,
    /// Why, in words.
    pub reason: String,
}

/// The whole pair.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Report {
    /// Worst health of the directions.
    pub health: Health,
    /// Both directions: source A to replica B, then B to A.
    pub directions: Vec<Direction>,
}

/// Classifies one direction. `lag_threshold_ms` is the lag above which it counts as degraded.
pub fn classify(o: &Observed, lag_threshold_ms: u64) -> (Health, String) {
    if let Some(e) = &o.replica_error {
        return (
            Health::Broken,
            format!("replica {} unreachable: {e}", o.replica),
        );
    }
    if !o.configured {
        return (Health::Broken, "replication is not configured".to_owned());
    }
    if o.sql_running != "Yes" {
        return if o.last_sql_errno != 0 {
            (
                Health::Broken,
                format!("SQL thread stopped on error {}", o.last_sql_errno),
            )
        } else {
            (Health::Broken, "SQL thread stopped".to_owned())
        };
    }
    match o.io_running.as_str() {
        "Yes" => {}
        "Connecting" => {
            return (
                Health::Degraded,
                if o.last_io_errno != 0 {
                    format!("IO thread reconnecting (error {})", o.last_io_errno)
                } else {
                    "IO thread reconnecting".to_owned()
                },
            )
        }
        _ if o.last_io_errno != 0 => {
            return (
                Health::Broken,
                format!("IO thread stopped on error {}", o.last_io_errno),
            )
        }
        _ => return (Health::Broken, "IO thread stopped".to_owned()),
    }
    if let Some(e) = &o.source_error {
        return (
            Health::Degraded,
            format!("source {} unreachable: {e}", o.source),
        );
    }
    if o.using_gtid != "Slave_Pos" {
        return (
            Health::Degraded,
            format!("Using_Gtid is {:?}, expected Slave_Pos", o.using_gtid),
        );
    }
    match o.lag_ms {
        None => (Health::Degraded, "no heartbeat row yet".to_owned()),
        Some(lag) if lag > lag_threshold_ms => (
            Health::Degraded,
            format!("lag {lag} ms over {lag_threshold_ms} ms"),
        ),
        Some(_) => (Health::Healthy, "replicating".to_owned()),
    }
}

/// Builds the report from both observations.
pub fn report(observed: Vec<Observed>, lag_threshold_ms: u64) -> Report {
    let directions: Vec<Direction> = observed
        .into_iter()
        .map(|o| {
            let (health, reason) = classify(&o, lag_threshold_ms);
            Direction {
                observed: o,
                health,
                reason,
            }
        })
        .collect();
    let health = directions
        .iter()
        .map(|d| d.health)
        .max()
        .unwrap_or(Health::Broken);
    Report { health, directions }
}

/// The readable table for a terminal.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    for d in &r.directions {
        let o = &d.observed;
        let lag = o
            .lag_ms
            .map_or_else(|| "-".to_owned(), |l| format!("{l} ms"));
        let _ = writeln!(
            out,
            "{} -> {}: {:?} ({})",
            o.source, o.replica, d.health, d.reason
        );
        if o.replica_error.is_some() {
            continue;
        }
        let _ = writeln!(
            out,
            "  IO {:<10} SQL {:<4} Using_Gtid {:<9} lag {}",
            o.io_running, o.sql_running, o.using_gtid, lag
        );
        let _ = writeln!(
            out,
            "  Gtid_IO_Pos {}  gtid_slave_pos {}  source gtid_binlog_pos {}",
            dash(&o.gtid_io_pos),
            dash(&o.gtid_slave_pos),
            dash(&o.source_gtid_binlog_pos)
        );
        if o.last_sql_errno != 0 {
            let _ = writeln!(
                out,
                "  Last_SQL_Error {}: {}",
                o.last_sql_errno, o.last_sql_error
            );
        }
        if o.last_io_errno != 0 {
            let _ = writeln!(
                out,
                "  Last_IO_Error {}: {}",
                o.last_io_errno, o.last_io_error
            );
        }
    }
    let _ = writeln!(out, "overall: {:?}", r.health);
    out
}

fn dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Observed {
        Observed {
            replica: "b".into(),
            source: "a".into(),
            configured: true,
            io_running: "Yes".into(),
            sql_running: "Yes".into(),
            using_gtid: "Slave_Pos".into(),
            lag_ms: Some(20),
            ..Observed::default()
        }
    }

    #[test]
    fn healthy_direction_exits_zero() {
        let r = report(vec![healthy(), healthy()], 5000);
        assert_eq!(r.health, Health::Healthy);
        assert_eq!(r.health.exit_code(), 0);
    }

    #[test]
    fn lag_over_threshold_or_reconnecting_is_degraded() {
        let lagging = Observed {
            lag_ms: Some(6000),
            ..healthy()
        };
        assert_eq!(classify(&lagging, 5000).0, Health::Degraded);
        let connecting = Observed {
            io_running: "Connecting".into(),
            last_io_errno: 2003,
            ..healthy()
        };
        let (h, why) = classify(&connecting, 5000);
        assert_eq!(h, Health::Degraded);
        assert!(why.contains("2003"), "{why}");
        let r = report(vec![healthy(), lagging], 5000);
        assert_eq!(r.health.exit_code(), 1);
    }

    #[test]
    fn stopped_sql_thread_or_unreachable_replica_is_broken() {
        let failed = Observed {
            sql_running: "No".into(),
            last_sql_errno: 1062,
            ..healthy()
        };
        let (h, why) = classify(&failed, 5000);
        assert_eq!(h, Health::Broken);
        assert!(why.contains("1062"));
        let gone = Observed {
            replica_error: Some("refused".into()),
            ..healthy()
        };
        assert_eq!(classify(&gone, 5000).0, Health::Broken);
        let unset = Observed {
            configured: false,
            ..healthy()
        };
        assert_eq!(classify(&unset, 5000).0, Health::Broken);
        let r = report(
            vec![
                failed,
                Observed {
                    lag_ms: Some(9999),
                    ..healthy()
                },
            ],
            5000,
        );
        assert_eq!(r.health.exit_code(), 2);
    }

    #[test]
    fn source_unreachable_or_no_heartbeat_is_degraded() {
        let o = Observed {
            source_error: Some("timeout".into()),
            ..healthy()
        };
        assert_eq!(classify(&o, 5000).0, Health::Degraded);
        let o = Observed {
            lag_ms: None,
            ..healthy()
        };
        assert_eq!(classify(&o, 5000).0, Health::Degraded);
    }

    #[test]
    fn empty_report_is_broken_and_table_mentions_errors() {
        assert_eq!(report(vec![], 1).health, Health::Broken);
        let failed = Observed {
            sql_running: "No".into(),
            last_sql_errno: 1032,
            last_sql_error: "Can't find record".into(),
            ..healthy()
        };
        let text = render(&report(vec![failed], 5000));
        assert!(text.contains("a -> b: Broken"), "{text}");
        assert!(
            text.contains("Last_SQL_Error 1032: Can't find record"),
            "{text}"
        );
        assert!(text.contains("overall: Broken"), "{text}");
    }
}
