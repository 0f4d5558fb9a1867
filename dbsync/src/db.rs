//! One connection to one server of the pair: every call bounded by the configured timeout, every
//! value bound, every error tagged with the server's name.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Row, Value};
use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

use crate::config::{Config, ServerConfig};
use crate::error::{Error, Result};
use crate::reconcile::Side;

/// A live connection to one server.
pub struct Db {
    /// Which side of the pair.
    pub side: Side,
    /// The server's configured name.
    pub name: String,
    conn: Conn,
    timeout: Duration,
    gate: Gate,
}

/// Per server (host and port) in this process: dbsync's `MASTER_GTID_WAIT()` calls take it
/// shared, a repair's `STOP SLAVE` .. `SET GLOBAL gtid_slave_pos` .. `START SLAVE` takes it
/// exclusively. MariaDB 10.11 deadlocks a server for good when `SET GLOBAL gtid_slave_pos` runs
/// while a `MASTER_GTID_WAIT()` waits there: resetting the GTID slave state destroys the
/// condition the waiter sleeps on, under the lock the waiter needs to wake up.
type Gate = Arc<RwLock<()>>;

fn gate_for(host: &str, port: u16) -> Gate {
    static GATES: OnceLock<Mutex<HashMap<(String, u16), Gate>>> = OnceLock::new();
    let mut gates = match GATES.get_or_init(Default::default).lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    gates.entry((host.to_owned(), port)).or_default().clone()
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("side", &self.side)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Driver options for a server; `database` is `None` before the schema exists (setup).
pub fn opts(
    server: &ServerConfig,
    user: &str,
    password: &str,
    database: Option<&str>,
) -> OptsBuilder {
    OptsBuilder::default()
        .ip_or_hostname(server.host.clone())
        .tcp_port(server.port)
        .user(Some(user.to_owned()))
        .pass(Some(password.to_owned()))
        .db_name(database.map(str::to_owned))
        .prefer_socket(false)
}

impl Db {
    /// Connects to `side` as the configured monitor user, in the application database.
    pub async fn connect(cfg: &Config, side: Side) -> Result<Db> {
        let server = cfg.server(side);
        let o = opts(
            server,
            &server.user,
            server.password.expose(),
            Some(cfg.database.as_str()),
        );
        Self::connect_with(side, &server.name, o, Duration::from_secs(cfg.timeout_s)).await
    }

    /// Connects with explicit options (setup uses an admin account).
    pub async fn connect_with(
        side: Side,
        name: &str,
        o: OptsBuilder,
        timeout: Duration,
    ) -> Result<Db> {
        let o = Opts::from(o);
        let gate = gate_for(o.ip_or_hostname(), o.tcp_port());
        let conn = tokio::time::timeout(timeout, Conn::new(o))
            .await
            .map_err(|_| Error::Timeout {
                server: name.to_owned(),
                what: "connect".into(),
                after: timeout,
            })?
            .map_err(|source| Error::Db {
                server: name.to_owned(),
                source,
            })?;
        Ok(Db {
            side,
            name: name.to_owned(),
            conn,
            timeout,
            gate,
        })
    }

    fn db_err(&self, source: mysql_async::Error) -> Error {
        Error::Db {
            server: self.name.clone(),
            source,
        }
    }

    fn timeout_err(&self, what: &str, after: Duration) -> Error {
        Error::Timeout {
            server: self.name.clone(),
            what: statement_label(what),
            after,
        }
    }

    /// Holds off repairs of this server while a `MASTER_GTID_WAIT()` runs on it (see `Gate`).
    pub async fn shared_gtid_wait(&self) -> OwnedRwLockReadGuard<()> {
        self.gate.clone().read_owned().await
    }

    /// Waits (at most `timeout_s`) until no `MASTER_GTID_WAIT()` of this process runs on this
    /// server, and keeps new ones out until the guard is dropped (see `Gate`).
    pub async fn exclusive_replica_control(
        &self,
        timeout_s: u64,
    ) -> Result<OwnedRwLockWriteGuard<()>> {
        let after = Duration::from_secs(timeout_s);
        tokio::time::timeout(after, self.gate.clone().write_owned())
            .await
            .map_err(|_| self.timeout_err("waiting for MASTER_GTID_WAIT calls to end", after))
    }

    /// Runs a prepared statement and returns its rows.
    pub async fn rows(&mut self, sql: &str, params: Vec<Value>) -> Result<Vec<Row>> {
        self.rows_within(sql, params, self.timeout).await
    }

    /// Like `rows`, with a longer limit (MASTER_GTID_WAIT waits server-side).
    pub async fn rows_within(
        &mut self,
        sql: &str,
        params: Vec<Value>,
        limit: Duration,
    ) -> Result<Vec<Row>> {
        match tokio::time::timeout(limit, self.conn.exec::<Row, _, _>(sql, params)).await {
            Ok(r) => r.map_err(|e| self.db_err(e)),
            Err(_) => Err(self.timeout_err(sql, limit)),
        }
    }

    /// Runs a prepared statement that returns no rows; gives the affected row count.
    pub async fn run(&mut self, sql: &str, params: Vec<Value>) -> Result<u64> {
        let limit = self.timeout;
        match tokio::time::timeout(limit, self.conn.exec_drop(sql, params)).await {
            Ok(r) => r.map_err(|e| self.db_err(e))?,
            Err(_) => return Err(self.timeout_err(sql, limit)),
        }
        Ok(self.conn.affected_rows())
    }

    /// Runs a statement through the text protocol (SHOW and replication control cannot be prepared).
    pub async fn text(&mut self, sql: &str) -> Result<Vec<Row>> {
        let limit = self.timeout;
        match tokio::time::timeout(limit, self.conn.query::<Row, _>(sql)).await {
            Ok(r) => r.map_err(|e| self.db_err(e)),
            Err(_) => Err(self.timeout_err(sql, limit)),
        }
    }

    /// Switches binary logging of this session: off while applying fixes, so they stay local.
    pub async fn log_bin(&mut self, on: bool) -> Result<()> {
        let sql = if on {
            "SET SESSION sql_log_bin = 1"
        } else {
            "SET SESSION sql_log_bin = 0"
        };
        self.text(sql).await.map(|_| ())
    }

    /// A single value of the first row (for `SELECT @@x`).
    pub async fn scalar<T: mysql_async::prelude::FromValue>(
        &mut self,
        sql: &str,
        params: Vec<Value>,
    ) -> Result<T> {
        let rows = self.rows(sql, params).await?;
        let v = rows
            .into_iter()
            .next()
            .and_then(|mut r| r.take_opt::<T, usize>(0))
            .ok_or_else(|| Error::Unexpected {
                server: self.name.clone(),
                what: format!("no value from {sql}"),
            })?;
        v.map_err(|e| Error::Unexpected {
            server: self.name.clone(),
            what: format!("{sql}: {e}"),
        })
    }

    /// Closes the connection politely (errors ignored: it is going away anyway).
    pub async fn close(self) {
        let _ = self.conn.disconnect().await;
    }
}

/// Connects to both servers at once.
pub async fn connect_both(cfg: &Config) -> (Result<Db>, Result<Db>) {
    tokio::join!(Db::connect(cfg, Side::A), Db::connect(cfg, Side::B))
}

/// A text column of a row by name; missing or NULL gives "".
pub fn text_col(row: &Row, name: &str) -> String {
    row.get_opt::<Option<String>, &str>(name)
        .and_then(Result::ok)
        .flatten()
        .unwrap_or_default()
}

/// A numeric column of a row by name; missing, NULL or unparsable gives 0.
pub fn num_col(row: &Row, name: &str) -> u64 {
    row.get_opt::<Option<u64>, &str>(name)
        .and_then(Result::ok)
        .flatten()
        .unwrap_or(0)
}

/// The first words of a statement, to name it in errors: the rest may carry a password
/// (CHANGE MASTER, CREATE USER).
pub fn statement_label(sql: &str) -> String {
    sql.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_statement_but_not_its_values() {
        assert_eq!(
            statement_label("CHANGE MASTER TO MASTER_HOST = 'h', MASTER_PASSWORD = 'secret'"),
            "CHANGE MASTER TO"
        );
        assert_eq!(
            statement_label("  SELECT\n MASTER_GTID_WAIT(?, ?)"),
            "SELECT MASTER_GTID_WAIT(?, ?)"
        );
        assert_eq!(statement_label(""), "");
    }
}
