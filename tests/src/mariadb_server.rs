//! One throw-away `mariadbd` process: its data dir, free port, start, clean
//! stop, SIGKILL, restart on the same data dir and port, and query helpers.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use mysql_async::prelude::{FromValue, Queryable};
use mysql_async::{Conn, Opts, OptsBuilder, Params, Row};
use tokio::time::{sleep, timeout, Instant};

use crate::mariadb_template::{init_data_dir, shared_args};

/// Database the schema lives in.
pub const APP_DATABASE: &str = "hasip";
/// Application (registrar) user created by sql/replication.sql.
pub const APP_USER: &str = "hasip";
/// Test password of [`APP_USER`].
pub const APP_PASSWORD: &str = "hasip-app-test";
/// Replication user created by sql/replication.sql.
pub const REPL_USER: &str = "hasip_repl";
/// Test password of [`REPL_USER`].
pub const REPL_PASSWORD: &str = "hasip-repl-test";
/// dbsync's user created by sql/replication.sql.
pub const DBSYNC_USER: &str = "hasip_dbsync";
/// Test password of [`DBSYNC_USER`].
pub const DBSYNC_PASSWORD: &str = "hasip-dbsync-test";

/// How long a server may take to accept connections (crash recovery included,
/// on a loaded 2-core machine running several pairs).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a clean shutdown may take before the process is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on one connection attempt, so a half-started server cannot hang us.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Lines of the server log quoted in errors.
const LOG_TAIL_LINES: usize = 40;

/// Paths of the MariaDB programs the harness runs.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// The server, `mariadbd`.
    pub mariadbd: PathBuf,
    /// The data dir initialiser, `mariadb-install-db`.
    pub install_db: PathBuf,
    /// util-linux `setpriv`, if present: it makes the kernel SIGKILL the server
    /// when its parent dies, so not even a killed test leaves one behind. The
    /// parent is the *thread* that started it: start and restart servers from
    /// the test's runtime, never from a short-lived thread (`spawn_blocking`).
    pub setpriv: Option<PathBuf>,
}

impl Binaries {
    /// Finds the programs on PATH or in /usr/sbin, /usr/bin; fails, saying how to
    /// install them, when MariaDB is missing (never a silent pass).
    pub fn find() -> anyhow::Result<Self> {
        let mut dirs = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default();
        dirs.extend([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")]);
        Self::find_in(&dirs)
    }

    /// [`Self::find`] over an explicit list of directories.
    pub fn find_in(dirs: &[PathBuf]) -> anyhow::Result<Self> {
        let missing = |name: &str| {
            anyhow!(
                "`{name}` not found on PATH or in /usr/sbin, /usr/bin: the MariaDB tests need \
                 the MariaDB server binaries; install them with `apt-get install mariadb-server` \
                 (the tests never use a running instance, they start their own)"
            )
        };
        Ok(Self {
            mariadbd: find_program(dirs, "mariadbd").ok_or_else(|| missing("mariadbd"))?,
            install_db: find_program(dirs, "mariadb-install-db")
                .ok_or_else(|| missing("mariadb-install-db"))?,
            setpriv: find_program(dirs, "setpriv"),
        })
    }
}

fn find_program(dirs: &[PathBuf], name: &str) -> Option<PathBuf> {
    dirs.iter()
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Per-server settings of the master-master pair.
#[derive(Debug, Clone, Copy)]
pub struct ServerRole {
    /// Short name used in messages ("A", "B").
    pub name: &'static str,
    /// `server_id`, also used as `gtid_domain_id` and `auto_increment_offset`.
    pub server_id: u32,
}

/// Outcome of one launch attempt.
enum Launch {
    Ready,
    PortInUse,
}

/// One `mariadbd` on 127.0.0.1 with its files under `dir`. Dropping it kills
/// the process (SIGKILL) and reaps it.
#[derive(Debug)]
pub struct MariaDbServer {
    role: ServerRole,
    binaries: Binaries,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl MariaDbServer {
    /// Initialises a data dir under `dir` (a copy of the cached template, see
    /// [`crate::mariadb_template`]), picks a free port and starts the
    /// server, retrying with another port if one is taken meanwhile.
    pub async fn create(
        binaries: Binaries,
        dir: PathBuf,
        role: ServerRole,
    ) -> anyhow::Result<Self> {
        let mut server = Self {
            role,
            binaries,
            dir,
            port: 0,
            child: None,
        };
        let tmp = server.tmp_dir();
        std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        init_data_dir(&server.binaries, &server.data_dir()).await?;
        const PORT_ATTEMPTS: usize = 8;
        for _ in 0..PORT_ATTEMPTS {
            server.port = free_port()?;
            match server.launch().await? {
                Launch::Ready => return Ok(server),
                Launch::PortInUse => continue,
            }
        }
        bail!(
            "MariaDB {}: no free port after {PORT_ATTEMPTS} attempts",
            server.role.name
        )
    }

    /// Name used in messages ("A", "B").
    pub fn name(&self) -> &'static str {
        self.role.name
    }

    /// `server_id` (also `gtid_domain_id` and `auto_increment_offset`).
    pub fn server_id(&self) -> u32 {
        self.role.server_id
    }

    /// TCP port on 127.0.0.1; stays the same across restarts.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Directory holding the data dir, socket, pid file and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server's error log.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("mariadbd.err")
    }

    /// Whether the process is running (it was started and has not exited).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    fn opts(&self, user: &str, password: &str, db: Option<&str>) -> Opts {
        OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(self.port)
            .user(Some(user))
            .pass(Some(password))
            .db_name(db)
            .prefer_socket(false)
            .into()
    }

    /// root (no password), no default database: for administration.
    pub fn root_opts(&self) -> Opts {
        self.opts("root", "", None)
    }

    /// root on the application database.
    pub fn root_app_opts(&self) -> Opts {
        self.opts("root", "", Some(APP_DATABASE))
    }

    /// The application user on the application database, as the registrar uses it.
    pub fn app_opts(&self) -> Opts {
        self.opts(APP_USER, APP_PASSWORD, Some(APP_DATABASE))
    }

    /// dbsync's least-privilege user on the application database.
    pub fn dbsync_opts(&self) -> Opts {
        self.opts(DBSYNC_USER, DBSYNC_PASSWORD, Some(APP_DATABASE))
    }

    /// URL form of [`Self::app_opts`], for configs of the binaries under test.
    pub fn app_url(&self) -> String {
        format!(
            "mysql://{APP_USER}:{APP_PASSWORD}@127.0.0.1:{}/{APP_DATABASE}",
            self.port
        )
    }

    /// URL form of [`Self::dbsync_opts`].
    pub fn dbsync_url(&self) -> String {
        format!(
            "mysql://{DBSYNC_USER}:{DBSYNC_PASSWORD}@127.0.0.1:{}/{APP_DATABASE}",
            self.port
        )
    }

    /// Opens a connection with `opts`, bounded by a timeout.
    pub async fn connect_with(&self, opts: Opts) -> anyhow::Result<Conn> {
        timeout(CONNECT_TIMEOUT, Conn::new(opts))
            .await
            .map_err(|_| anyhow!("MariaDB {}: connect timed out", self.role.name))?
            .with_context(|| {
                format!(
                    "MariaDB {}: connecting to port {}",
                    self.role.name, self.port
                )
            })
    }

    /// A root connection with no default database.
    pub async fn root_conn(&self) -> anyhow::Result<Conn> {
        self.connect_with(self.root_opts()).await
    }

    /// A root connection on the application database.
    pub async fn conn(&self) -> anyhow::Result<Conn> {
        self.connect_with(self.root_app_opts()).await
    }

    /// Runs `sql` with bound `params` as root on the application database and
    /// returns all rows.
    pub async fn query_rows(
        &self,
        sql: &str,
        params: impl Into<Params> + Send,
    ) -> anyhow::Result<Vec<Row>> {
        let mut conn = self.conn().await?;
        let rows = conn
            .exec(sql, params)
            .await
            .with_context(|| format!("MariaDB {}: {sql}", self.role.name))?;
        conn.disconnect().await.ok();
        Ok(rows)
    }

    /// Runs `sql` and returns the first column of the single row it must return.
    pub async fn query_value<T: FromValue>(
        &self,
        sql: &str,
        params: impl Into<Params> + Send,
    ) -> anyhow::Result<T> {
        let rows = self.query_rows(sql, params).await?;
        let row = match rows.as_slice() {
            [row] => row,
            other => bail!(
                "MariaDB {}: expected one row from `{sql}`, got {}",
                self.role.name,
                other.len()
            ),
        };
        row_value(row, 0)
    }

    /// Runs a statement with bound `params` as root on the application database
    /// and returns `(affected rows, last insert id)`.
    pub async fn exec(
        &self,
        sql: &str,
        params: impl Into<Params> + Send,
    ) -> anyhow::Result<(u64, Option<u64>)> {
        let mut conn = self.conn().await?;
        conn.exec_drop(sql, params)
            .await
            .with_context(|| format!("MariaDB {}: {sql}", self.role.name))?;
        let result = (conn.affected_rows(), conn.last_insert_id());
        conn.disconnect().await.ok();
        Ok(result)
    }

    /// Like [`Self::exec`], but with `sql_log_bin = 0`: the change stays on
    /// this server. This is how tests make the two servers diverge (and how
    /// dbsync writes its repairs).
    pub async fn exec_unlogged(
        &self,
        sql: &str,
        params: impl Into<Params> + Send,
    ) -> anyhow::Result<(u64, Option<u64>)> {
        let mut conn = self.conn().await?;
        conn.query_drop("SET SESSION sql_log_bin = 0").await?;
        conn.exec_drop(sql, params)
            .await
            .with_context(|| format!("MariaDB {} (unlogged): {sql}", self.role.name))?;
        let result = (conn.affected_rows(), conn.last_insert_id());
        conn.disconnect().await.ok();
        Ok(result)
    }

    /// Polls [`Self::slave_status`] until `done` holds, for at most `limit`;
    /// returns the status that satisfied it.
    pub async fn wait_slave_status(
        &self,
        done: impl Fn(&SlaveStatus) -> bool,
        limit: Duration,
    ) -> anyhow::Result<SlaveStatus> {
        let deadline = Instant::now() + limit;
        loop {
            let status = self.slave_status().await?;
            if done(&status) {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!(
                    "MariaDB {}: replica state not reached within {limit:?}: {status:?}",
                    self.role.name
                );
            }
            sleep(Duration::from_millis(50)).await;
        }
    }

    /// The replica state (`SHOW SLAVE STATUS`) of this server.
    pub async fn slave_status(&self) -> anyhow::Result<SlaveStatus> {
        let mut conn = self.root_conn().await?;
        let rows: Vec<Row> = conn.query("SHOW SLAVE STATUS").await?;
        conn.disconnect().await.ok();
        let row = rows
            .first()
            .ok_or_else(|| anyhow!("MariaDB {}: no replica configured", self.role.name))?;
        Ok(SlaveStatus {
            io_running: row_value(row, "Slave_IO_Running")?,
            sql_running: row_value(row, "Slave_SQL_Running")?,
            last_io_errno: row_value(row, "Last_IO_Errno")?,
            last_io_error: row_value(row, "Last_IO_Error")?,
            last_sql_errno: row_value(row, "Last_SQL_Errno")?,
            last_sql_error: row_value(row, "Last_SQL_Error")?,
            gtid_io_pos: row_value(row, "Gtid_IO_Pos")?,
        })
    }

    /// Starts the server again on the same data dir and port (after
    /// [`Self::stop`] or [`Self::kill`]), waiting until it accepts connections.
    /// Replication threads start by themselves from the saved GTID position.
    pub async fn start(&mut self) -> anyhow::Result<()> {
        if self.is_running() {
            bail!("MariaDB {} is already running", self.role.name);
        }
        match self.launch().await? {
            Launch::Ready => Ok(()),
            Launch::PortInUse => bail!(
                "MariaDB {}: port {} was taken by another process while the server was down",
                self.role.name,
                self.port
            ),
        }
    }

    /// Clean shutdown (`SHUTDOWN`), waiting for the process to exit.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if !self.is_running() {
            self.child = None;
            return Ok(());
        }
        let mut conn = self.root_conn().await?;
        // The server closes the connection while answering, so the result of
        // SHUTDOWN itself says nothing; the process exit below is the check.
        let _ = conn.query_drop("SHUTDOWN").await;
        drop(conn);
        let status = self.wait_exit(STOP_TIMEOUT).await;
        match status {
            Some(status) if status.success() => Ok(()),
            Some(status) => bail!(
                "MariaDB {} exited with {status} on shutdown\n{}",
                self.role.name,
                self.log_tail()
            ),
            None => {
                self.kill().await?;
                bail!(
                    "MariaDB {} did not shut down within {STOP_TIMEOUT:?}; killed\n{}",
                    self.role.name,
                    self.log_tail()
                )
            }
        }
    }

    /// Kills the server with SIGKILL (a crash: no clean shutdown) and reaps it.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(child) = self.child.as_mut() {
            // An error means the process already exited; reaping below covers it.
            let _ = child.kill();
            if self.wait_exit(STOP_TIMEOUT).await.is_none() {
                bail!("MariaDB {} survived SIGKILL", self.role.name);
            }
        }
        self.child = None;
        Ok(())
    }

    /// The last lines of the server log, for error messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log_path(), LOG_TAIL_LINES)
    }

    async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            let child = self.child.as_mut()?;
            match child.try_wait() {
                Ok(Some(status)) => {
                    self.child = None;
                    return Some(status);
                }
                Ok(None) if Instant::now() < deadline => sleep(Duration::from_millis(20)).await,
                Ok(None) => return None,
                Err(_) => {
                    self.child = None;
                    return None;
                }
            }
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn socket_path(&self) -> PathBuf {
        self.dir.join("mariadbd.sock")
    }

    fn tmp_dir(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    /// Options of `mariadbd` that do not depend on the role.
    fn common_args(&self) -> Vec<String> {
        let mut args = vec![
            // First, or my.cnf files (and the default instance's port and socket)
            // are read.
            "--no-defaults".to_owned(),
            format!("--datadir={}", self.data_dir().display()),
            format!("--tmpdir={}", self.tmp_dir().display()),
        ];
        args.extend(shared_args());
        args
    }

    fn server_args(&self) -> Vec<String> {
        let id = self.role.server_id;
        let dir = &self.dir;
        let mut args = self.common_args();
        args.extend([
            // Before the log paths: it sets their defaults.
            "--log-basename=mariadb".to_owned(),
            format!("--log-error={}", self.log_path().display()),
            format!("--socket={}", self.socket_path().display()),
            format!("--pid-file={}", dir.join("mariadbd.pid").display()),
            format!("--port={}", self.port),
            "--bind-address=127.0.0.1".to_owned(),
            "--skip-name-resolve".to_owned(),
            format!("--server-id={id}"),
            format!("--gtid-domain-id={id}"),
            "--log-bin".to_owned(),
            "--binlog-format=ROW".to_owned(),
            "--log-slave-updates=1".to_owned(),
            "--sync-binlog=1".to_owned(),
            "--innodb-flush-log-at-trx-commit=1".to_owned(),
            "--auto-increment-increment=2".to_owned(),
            format!("--auto-increment-offset={id}"),
            "--relay-log-recovery=1".to_owned(),
            "--slave-net-timeout=10".to_owned(),
            "--character-set-server=utf8mb4".to_owned(),
            "--collation-server=utf8mb4_general_ci".to_owned(),
            // now(6) must mean the same on both servers and in every test.
            "--default-time-zone=+00:00".to_owned(),
        ]);
        args
    }

    async fn launch(&mut self) -> anyhow::Result<Launch> {
        // The log of an earlier failed attempt must not be mistaken for this one's.
        let log_start = std::fs::metadata(self.log_path()).map_or(0, |m| m.len());
        let console = self.dir.join("mariadbd.console.log");
        let console_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&console)?;
        let mut command = match &self.binaries.setpriv {
            Some(setpriv) => {
                let mut command = Command::new(setpriv);
                command
                    .arg("--pdeathsig")
                    .arg("KILL")
                    .arg(&self.binaries.mariadbd);
                command
            }
            None => Command::new(&self.binaries.mariadbd),
        };
        command
            .args(self.server_args())
            .stdin(Stdio::null())
            .stdout(console_file.try_clone()?)
            .stderr(console_file);
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", self.binaries.mariadbd.display()))?;
        self.child = Some(child);

        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                let log = read_from(&self.log_path(), log_start);
                if log.contains("Address already in use") {
                    return Ok(Launch::PortInUse);
                }
                bail!(
                    "MariaDB {} exited during start-up ({status})\n{}\n{}",
                    self.role.name,
                    self.log_tail(),
                    log_tail(&console, LOG_TAIL_LINES)
                );
            }
            if let Ok(Ok(mut conn)) = timeout(CONNECT_TIMEOUT, Conn::new(self.root_opts())).await {
                // The port may belong to another test's server that bound it
                // first (ours then exits with "Address already in use"), so
                // check who answered.
                let socket: Option<String> =
                    conn.query_first("SELECT @@socket").await.ok().flatten();
                conn.disconnect().await.ok();
                if socket.as_deref() == Some(self.socket_path().to_string_lossy().as_ref()) {
                    return Ok(Launch::Ready);
                }
            }
            if Instant::now() >= deadline {
                self.kill().await.ok();
                bail!(
                    "MariaDB {} did not accept connections on port {} within {READY_TIMEOUT:?}\n{}",
                    self.role.name,
                    self.port,
                    self.log_tail()
                );
            }
            sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for MariaDbServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- MariaDB {} log ({}) ---\n{}",
                self.role.name,
                self.log_path().display(),
                self.log_tail()
            );
        }
    }
}

/// `SHOW SLAVE STATUS`, the fields tests look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaveStatus {
    /// "Yes", "No" or "Connecting".
    pub io_running: String,
    /// "Yes" or "No".
    pub sql_running: String,
    /// Last error number of the IO thread (0 when none).
    pub last_io_errno: u32,
    /// Last error text of the IO thread.
    pub last_io_error: String,
    /// Last error number of the SQL thread, e.g. 1062 (duplicate key).
    pub last_sql_errno: u32,
    /// Last error text of the SQL thread.
    pub last_sql_error: String,
    /// GTID position received from the master.
    pub gtid_io_pos: String,
}

impl SlaveStatus {
    /// Both replica threads are running.
    pub fn is_running(&self) -> bool {
        self.io_running == "Yes" && self.sql_running == "Yes"
    }
}

/// Reads column `index` (position or name) of `row`, with an error (not a panic)
/// when it is missing or of another type.
pub fn row_value<T: FromValue>(
    row: &Row,
    index: impl mysql_async::prelude::ColumnIndex + std::fmt::Debug + Copy,
) -> anyhow::Result<T> {
    match row.get_opt::<T, _>(index) {
        Some(Ok(value)) => Ok(value),
        Some(Err(e)) => bail!("column {index:?}: {e}"),
        None => bail!("no column {index:?}"),
    }
}

/// Binds 127.0.0.1:0 and releases it, to learn a port that is free now. Another
/// process may take it before the server binds it; callers retry on that.
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn read_from(path: &Path, offset: u64) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let start = usize::try_from(offset).unwrap_or(0).min(text.len());
    String::from_utf8_lossy(text.get(start..).unwrap_or_default()).into_owned()
}

pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    let text = read_from(path, 0);
    let all: Vec<&str> = text.lines().collect();
    let mut out = format!("--- last lines of {} ---", path.display());
    for line in all.iter().skip(all.len().saturating_sub(lines)) {
        let _ = write!(out, "\n{line}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binaries_say_how_to_install() {
        let empty = tempfile::tempdir().ok();
        let dirs: Vec<PathBuf> = empty.iter().map(|d| d.path().to_owned()).collect();
        let err = Binaries::find_in(&dirs).err().map(|e| e.to_string());
        let err = err.unwrap_or_default();
        assert!(err.contains("`mariadbd` not found"), "{err}");
        assert!(err.contains("apt-get install mariadb-server"), "{err}");
    }

    #[test]
    fn log_tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().ok();
        let path = dir
            .as_ref()
            .map(|d| d.path().join("log"))
            .unwrap_or_default();
        let text: String = (1..=50).map(|n| format!("line {n}\n")).collect();
        assert!(std::fs::write(&path, text).is_ok());
        let tail = log_tail(&path, 3);
        assert!(tail.ends_with("\nline 48\nline 49\nline 50"), "{tail}");
        assert!(!tail.contains("line 47"), "{tail}");
    }

    #[test]
    fn server_args_carry_the_pair_settings() {
        let server = MariaDbServer {
            role: ServerRole {
                name: "B",
                server_id: 2,
            },
            binaries: Binaries {
                mariadbd: PathBuf::from("mariadbd"),
                install_db: PathBuf::from("mariadb-install-db"),
                setpriv: None,
            },
            dir: PathBuf::from("/tmp/x/b"),
            port: 4242,
            child: None,
        };
        let args = server.server_args();
        assert_eq!(args.first().map(String::as_str), Some("--no-defaults"));
        for expected in [
            "--port=4242",
            "--bind-address=127.0.0.1",
            "--server-id=2",
            "--gtid-domain-id=2",
            "--auto-increment-offset=2",
            "--auto-increment-increment=2",
            "--sync-binlog=1",
            "--innodb-flush-log-at-trx-commit=1",
            "--binlog-format=ROW",
            "--socket=/tmp/x/b/mariadbd.sock",
        ] {
            assert!(
                args.iter().any(|a| a == expected),
                "{expected} missing: {args:?}"
            );
        }
    }
}
