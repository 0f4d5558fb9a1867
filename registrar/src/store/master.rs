//! The master pair: a deadpool pool of mysql_async connections per master, which one
//! is active, and how failures move the registrar to the other one.
//!
//! Every registrar writes to the first healthy master in the configured order and
//! stays there. A connection error or timeout switches the active master for all
//! shards at once; when every master has just failed, callers get `Unavailable` at
//! once until the probe interval has passed, then the next request probes again.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use deadpool::managed::{
    self, Metrics, Object, PoolError, RecycleError, RecycleResult, TimeoutType,
};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, DriverError, Opts, OptsBuilder};

use crate::error::StoreError;
use crate::store::sql::SqlError;

/// Opens mysql_async connections to one master for deadpool.
#[derive(Debug)]
pub struct ConnManager {
    opts: Opts,
    /// The same with autocommit off, for a shard's own connection (see
    /// [`Masters::connect_for_batches`]).
    batch_opts: Opts,
}

/// Statements prepared per connection; the SQL uses few distinct texts (see `sql::bucket`).
const STMT_CACHE: usize = 128;
/// A pooled connection idle longer than this is pinged before reuse.
const PING_AFTER_IDLE: Duration = Duration::from_secs(10);

impl ConnManager {
    /// A manager for the master at `url` (`mysql://user:pass@host:port/db`).
    pub fn new(url: &str) -> Result<Self, StoreError> {
        let opts = Opts::from_url(url)
            .map_err(|e| StoreError::Config(format!("{}: {e}", super::redact_url(url))))?;
        // Batches lock only the rows they read and see each other's commits.
        let isolation = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED";
        let opts = OptsBuilder::from_opts(opts)
            .stmt_cache_size(STMT_CACHE)
            .tcp_nodelay(true)
            .init(vec![isolation]);
        let batch_opts = opts
            .clone()
            .init(vec![isolation, "SET SESSION autocommit = 0"]);
        Ok(ConnManager {
            opts: opts.into(),
            batch_opts: batch_opts.into(),
        })
    }
}

impl managed::Manager for ConnManager {
    type Type = Conn;
    type Error = mysql_async::Error;

    async fn create(&self) -> Result<Conn, mysql_async::Error> {
        Conn::new(self.opts.clone()).await
    }

    async fn recycle(
        &self,
        conn: &mut Conn,
        metrics: &Metrics,
    ) -> RecycleResult<mysql_async::Error> {
        // A ping per checkout would double the round trips of lookups; only connections
        // that sat idle (and may have been cut) are checked.
        if metrics.last_used() > PING_AFTER_IDLE {
            conn.ping().await.map_err(RecycleError::Backend)?;
        }
        Ok(())
    }
}

/// A deadpool pool of connections to one master.
pub type Pool = managed::Pool<ConnManager>;
/// A connection checked out of a [`Pool`].
pub type PooledConn = Object<ConnManager>;

/// How a database call failed, for the retry decision.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The master is unreachable, timed out or refuses writes: switch masters.
    Connection(String),
    /// A deadlock, lock-wait timeout or duplicate key: the batch may succeed if run again.
    Transient(mysql_async::Error),
    /// Anything else: give up on this batch.
    Fatal(StoreError),
    /// No pooled connection became free in time: answer 503 without switching.
    Busy,
}

/// Server errors that mean "this master cannot serve us now", not "this statement is wrong".
const SWITCH_ERRORS: &[u16] = &[
    1040, // too many connections
    1044, // access denied to database
    1045, // access denied
    1049, // unknown database
    1053, // server shutdown in progress
    1290, // --read-only
    1836, // read-only mode
    1927, // connection killed
];
/// Server errors after which the same batch can simply be run again: lock wait
/// timeout, deadlock, and a duplicate `ruid` (a row that appeared since it was read).
const RETRY_ERRORS: &[u16] = &[1062, 1205, 1213];

impl Failure {
    /// Classifies an error of a statement run on master `master`.
    pub(crate) fn of(master: usize, error: SqlError) -> Self {
        match error {
            SqlError::BadRow(what) => Failure::Fatal(StoreError::BadRow { master, what }),
            SqlError::Driver(mysql_async::Error::Server(e)) if RETRY_ERRORS.contains(&e.code) => {
                Failure::Transient(mysql_async::Error::Server(e))
            }
            SqlError::Driver(mysql_async::Error::Server(e)) if !SWITCH_ERRORS.contains(&e.code) => {
                Failure::Fatal(StoreError::Database {
                    master,
                    source: mysql_async::Error::Server(e),
                })
            }
            // Our own mistakes (parameters, types) must not make the pair flap.
            SqlError::Driver(mysql_async::Error::Driver(
                e @ (DriverError::FromValue { .. }
                | DriverError::FromRow { .. }
                | DriverError::Params(_)
                | DriverError::MixedParams
                | DriverError::NestedTransaction
                | DriverError::StmtParamsMismatch { .. }
                | DriverError::StmtParamsNumberExceedsLimit { .. }
                | DriverError::PacketTooLarge),
            )) => Failure::Fatal(StoreError::Database {
                master,
                source: mysql_async::Error::Driver(e),
            }),
            SqlError::Driver(e) => Failure::Connection(e.to_string()),
        }
    }
}

/// Runs one database call under the configured timeout; a timeout is a connection failure.
pub(crate) async fn timed<T>(
    limit: Duration,
    master: usize,
    call: impl Future<Output = Result<T, SqlError>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Failure::of(master, e)),
        Err(_) => Err(Failure::Connection(format!("no answer within {limit:?}"))),
    }
}

/// The configured masters and the failover state all shards share.
pub(crate) struct Masters {
    pools: Vec<Pool>,
    active: AtomicUsize,
    /// Set when every master just failed: until then, answer `Unavailable` at once.
    all_down_until: Mutex<Option<Instant>>,
    pub(crate) timeout: Duration,
    retry_after: Duration,
    probe_interval: Duration,
}

/// A boxed database operation on a connection, for [`Masters::run`].
pub(crate) type Op<'c, T> = Pin<Box<dyn Future<Output = Result<T, SqlError>> + Send + 'c>>;

impl Masters {
    /// Pools for `urls`, in failover order.
    pub(crate) fn new(
        urls: &[String],
        pool_size: usize,
        timeout: Duration,
        retry_after: Duration,
        probe_interval: Duration,
    ) -> Result<Self, StoreError> {
        if urls.is_empty() {
            return Err(StoreError::Config("no database masters configured".into()));
        }
        let pools = urls
            .iter()
            .map(|url| {
                Pool::builder(ConnManager::new(url)?)
                    .max_size(pool_size.max(1))
                    .runtime(deadpool::Runtime::Tokio1)
                    .wait_timeout(Some(timeout))
                    .create_timeout(Some(timeout))
                    .recycle_timeout(Some(timeout))
                    .build()
                    .map_err(|e| {
                        StoreError::Config(format!("pool for {}: {e}", super::redact_url(url)))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Masters {
            pools,
            active: AtomicUsize::new(0),
            all_down_until: Mutex::new(None),
            timeout,
            retry_after,
            probe_interval,
        })
    }

    /// How many masters are configured.
    pub(crate) fn len(&self) -> usize {
        self.pools.len()
    }

    /// The index of the master everyone writes to now.
    pub(crate) fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// The error callers get while no master is reachable.
    pub(crate) fn unavailable(&self) -> StoreError {
        StoreError::Unavailable {
            retry_after: self.retry_after,
        }
    }

    /// Whether every master failed within the last probe interval.
    pub(crate) fn all_down(&self) -> bool {
        let guard = self
            .all_down_until
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        guard.is_some_and(|until| Instant::now() < until)
    }

    /// Records that every master just failed.
    pub(crate) fn mark_all_down(&self) {
        let mut guard = self
            .all_down_until
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *guard = Some(Instant::now() + self.probe_interval);
    }

    /// Records a success on the active master.
    pub(crate) fn mark_up(&self) {
        let mut guard = self
            .all_down_until
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *guard = None;
    }

    /// Moves everyone off `failed` to the next master, unless someone already did.
    pub(crate) fn mark_failed(&self, failed: usize, why: &str) {
        let next = (failed + 1) % self.pools.len();
        if self
            .active
            .compare_exchange(failed, next, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            tracing::warn!(failed, next, why, "database master failed; switching");
        }
        // Idle connections to the failed master are likely dead; when it is chosen
        // again, fresh ones must be opened rather than these tried one by one.
        if let Some(pool) = self.pools.get(failed) {
            pool.retain(|_, _| false);
        }
    }

    /// A connection to master `master`, within the timeout.
    pub(crate) async fn get(&self, master: usize) -> Result<PooledConn, Failure> {
        let pool = self
            .pools
            .get(master)
            .ok_or_else(|| Failure::Fatal(StoreError::Config(format!("no master {master}"))))?;
        match pool.get().await {
            Ok(conn) => Ok(conn),
            // Every connection is in use: this registrar is overloaded, the master may
            // be fine, so no switch.
            Err(PoolError::Timeout(TimeoutType::Wait)) => Err(Failure::Busy),
            Err(e) => Err(Failure::Connection(format!("connect: {e}"))),
        }
    }

    /// A connection of its own to master `master`, outside the pool, with autocommit
    /// off: a store shard keeps one for its batches, whose first statement then opens
    /// the transaction, saving a round trip per batch. Dropping it closes it; it must
    /// never reach the pool, whose other users expect autocommit.
    pub(crate) async fn connect_for_batches(&self, master: usize) -> Result<Conn, Failure> {
        let pool = self
            .pools
            .get(master)
            .ok_or_else(|| Failure::Fatal(StoreError::Config(format!("no master {master}"))))?;
        let opts = pool.manager().batch_opts.clone();
        match tokio::time::timeout(self.timeout, Conn::new(opts)).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(Failure::Connection(format!("connect: {e}"))),
            Err(_) => Err(Failure::Connection(format!(
                "connect: no answer within {:?}",
                self.timeout
            ))),
        }
    }

    /// Runs `op` on a pooled connection to the active master, moving to the next master
    /// on a connection failure, at most once per master.
    pub(crate) async fn run<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        F: for<'c> Fn(&'c mut Conn) -> Op<'c, T>,
    {
        let mut transient_retried = false;
        let mut tried = 0;
        loop {
            if self.all_down() {
                return Err(self.unavailable());
            }
            let master = self.active();
            let attempt = async {
                let mut conn = self.get(master).await?;
                match timed(self.timeout, master, op(&mut conn)).await {
                    Ok(v) => Ok(v),
                    Err(e) => {
                        discard(conn);
                        Err(e)
                    }
                }
            };
            match attempt.await {
                Ok(v) => {
                    self.mark_up();
                    return Ok(v);
                }
                Err(Failure::Connection(why)) => {
                    self.mark_failed(master, &why);
                    tried += 1;
                    if tried >= self.len() {
                        self.mark_all_down();
                        return Err(self.unavailable());
                    }
                }
                Err(Failure::Transient(e)) if !transient_retried => {
                    tracing::debug!(error = %e, "retrying after a transient database error");
                    transient_retried = true;
                }
                Err(Failure::Transient(source)) => {
                    return Err(StoreError::Database { master, source })
                }
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Busy) => return Err(self.unavailable()),
            }
        }
    }
}

/// Whether a connection idle for `idle` should be pinged before use.
pub(crate) fn needs_ping(idle: Duration) -> bool {
    idle > PING_AFTER_IDLE
}

/// Drops a connection that failed mid-use instead of returning it to the pool, since
/// its session state (an open transaction, a half-read result) is unknown.
pub(crate) fn discard(conn: PooledConn) {
    drop(Object::take(conn));
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_async::{Error, ServerError};

    fn server(code: u16) -> SqlError {
        SqlError::Driver(Error::Server(ServerError {
            code,
            message: String::new(),
            state: String::new(),
        }))
    }

    fn kind(f: Failure) -> &'static str {
        match f {
            Failure::Connection(_) => "switch",
            Failure::Transient(_) => "retry",
            Failure::Fatal(_) => "fail",
            Failure::Busy => "busy",
        }
    }

    #[test]
    fn failures_are_classified() {
        assert_eq!(kind(Failure::of(0, server(1213))), "retry");
        assert_eq!(kind(Failure::of(0, server(1062))), "retry");
        assert_eq!(kind(Failure::of(0, server(1290))), "switch");
        assert_eq!(kind(Failure::of(0, server(1053))), "switch");
        assert_eq!(kind(Failure::of(0, server(1064))), "fail");
        let closed = SqlError::Driver(Error::Driver(DriverError::ConnectionClosed));
        assert_eq!(kind(Failure::of(0, closed)), "switch");
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert_eq!(
            kind(Failure::of(0, SqlError::Driver(Error::Io(io.into())))),
            "switch"
        );
        let ours = DriverError::StmtParamsMismatch {
            required: 2,
            supplied: 1,
        };
        assert_eq!(
            kind(Failure::of(0, SqlError::Driver(Error::Driver(ours)))),
            "fail"
        );
        assert_eq!(kind(Failure::of(1, SqlError::BadRow("x".into()))), "fail");
    }
}
