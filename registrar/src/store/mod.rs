//! Persistence of bindings on the MariaDB master pair (DESIGN.md "Storage"): every
//! change is committed before the reply, there is no cache, and removal is a soft
//! delete.
//!
//! REGISTERs go through N shard tasks ([`shard`]). The AoR's hash picks the shard; each
//! shard drains its queue into a batch and runs it as one READ COMMITTED transaction:
//!
//! 1. `START TRANSACTION; SELECT NOW(6)` (one round trip; all times are the master's);
//! 2. when a request carries an [`AuthCheck`], one `SELECT` of the batch's subscribers;
//! 3. one `SELECT ... FOR UPDATE` of the batch's AoRs' rows;
//! 4. the pure [`crate::register::decide`] per request, in arrival order;
//! 5. the writes, each one multi-row statement: an `UPDATE ... JOIN` of bound rows for
//!    bindings whose row exists (refreshes), an `INSERT` for new ones, and the
//!    soft-delete `UPDATE` for removals; only the statements needed run;
//! 6. `COMMIT`, then each request gets its own outcome.
//!
//! So a batch costs four round trips in the common case, whatever its size. Neither
//! `INSERT ... ON DUPLICATE KEY UPDATE` nor `REPLACE` is used: they spend an
//! auto-increment id per refresh and take next-key locks that deadlock batches.
//!
//! Authentication runs inside the batch (step 2) rather than as a separate query
//! before queueing: a REGISTER with credentials then costs no round trip of its own,
//! and the credentials are read in the same snapshot as the bindings. The SIP layer
//! supplies the digest check as a closure, so the store knows nothing of digest.
//!
//! Lookups for the home proxy and `registrar show` use pooled connections directly.

mod master;
mod shard;
mod sql;

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

use crate::binding::{Aor, Binding, DbTime};
use crate::error::StoreError;
use crate::register::{ExpiresPolicy, Outcome, RegisterRequest, Rejection};

pub use master::{ConnManager, Pool, PooledConn};
pub use sql::Subscriber;

pub(crate) use master::{discard as discard_conn, Masters};

/// Verifies a REGISTER's credentials against its subscriber row (`None`: no such
/// user); an `Err` is the final response (401, 403) and nothing is changed.
pub type AuthCheck = Box<dyn Fn(Option<&Subscriber>) -> Result<(), Rejection> + Send + Sync>;

/// The `[store]` configuration.
///
/// `Debug` shows the master URLs without their passwords.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// The masters' URLs (`mysql://user:password@host:port/database`), in failover order.
    pub masters: Vec<String>,
    /// Limit on each database call (connect, statement, commit), in milliseconds.
    pub timeout_ms: u64,
    /// The number of shard tasks, each with its own connection. Fewer shards make bigger
    /// batches, and the pair's work per REGISTER falls with the batch. The active master
    /// sees every registrar's shards, so size the total: on the 2-core bench machine two
    /// registrars carried the most with 2 each (4 each about a third fewer), and a lone
    /// registrar with 4 (2 about 5% fewer, 8 about 20%, 16 about 35%).
    pub shards: usize,
    /// The most REGISTERs one transaction carries.
    pub max_batch: usize,
    /// Pooled connections per master, for lookups and cleanup; each shard opens one more
    /// of its own to the active master.
    pub pool_size: usize,
    /// REGISTERs waiting per shard before `register` waits for room.
    pub queue: usize,
    /// Retry-After of the 503 when no master is reachable, in seconds.
    pub retry_after_secs: u64,
    /// After every master failed, how long to answer 503 at once before probing again,
    /// in milliseconds.
    pub probe_interval_ms: u64,
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let masters: Vec<String> = self.masters.iter().map(|url| redact_url(url)).collect();
        f.debug_struct("StoreConfig")
            .field("masters", &masters)
            .field("timeout_ms", &self.timeout_ms)
            .field("shards", &self.shards)
            .field("max_batch", &self.max_batch)
            .field("pool_size", &self.pool_size)
            .field("queue", &self.queue)
            .field("retry_after_secs", &self.retry_after_secs)
            .field("probe_interval_ms", &self.probe_interval_ms)
            .finish()
    }
}

/// A database URL fit for logs and errors: the password becomes `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<unparsable database URL>".to_owned();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            masters: Vec::new(),
            timeout_ms: 1000,
            shards: 2,
            max_batch: 128,
            pool_size: 24,
            queue: 4096,
            retry_after_secs: 5,
            probe_interval_ms: 1000,
        }
    }
}

/// The live bindings of an AoR at a moment, for `registrar show`.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// The master's clock when read.
    pub now: DbTime,
    /// The live bindings, highest q first.
    pub bindings: Vec<Binding>,
}

/// The registrar's handle on the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    masters: Arc<Masters>,
    shards: Vec<mpsc::Sender<Job>>,
}

use shard::Job;

impl Store {
    /// Starts the shard tasks (on the current tokio runtime). Connections open lazily,
    /// so this succeeds while the masters are down.
    pub fn start(config: &StoreConfig, policy: ExpiresPolicy) -> Result<Store, StoreError> {
        if config.shards == 0 || config.max_batch == 0 || config.queue == 0 {
            return Err(StoreError::Config(
                "shards, max_batch and queue must be at least 1".into(),
            ));
        }
        let masters = Arc::new(Masters::new(
            &config.masters,
            config.pool_size.max(1),
            Duration::from_millis(config.timeout_ms),
            Duration::from_secs(config.retry_after_secs),
            Duration::from_millis(config.probe_interval_ms),
        )?);
        let policy = Arc::new(policy);
        let shards = (0..config.shards)
            .map(|_| {
                let (tx, rx) = mpsc::channel(config.queue);
                tokio::spawn(shard::run(
                    Arc::clone(&masters),
                    Arc::clone(&policy),
                    rx,
                    config.max_batch,
                ));
                tx
            })
            .collect();
        Ok(Store {
            inner: Arc::new(Inner { masters, shards }),
        })
    }

    /// Decides and commits a REGISTER; the outcome is final once this returns.
    ///
    /// `Err(StoreError::Unavailable)` means 503 with Retry-After; other errors 500.
    pub async fn register(
        &self,
        request: RegisterRequest,
        auth: Option<AuthCheck>,
    ) -> Result<Outcome, StoreError> {
        let shard = self.shard_of(&request.aor).ok_or(StoreError::Closed)?;
        let (reply, answer) = oneshot::channel();
        shard
            .send(Job {
                request,
                auth,
                reply,
            })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// The live bindings of `aor`, highest q first (one query).
    pub async fn lookup(&self, aor: &Aor) -> Result<Vec<Binding>, StoreError> {
        let aor = aor.clone();
        self.inner
            .masters
            .run(move |conn| {
                let aor = aor.clone();
                Box::pin(async move { sql::select_live(conn, &aor).await })
            })
            .await
    }

    /// The live bindings of `aor` and the master's clock, for `registrar show`.
    pub async fn show(&self, aor: &Aor) -> Result<Snapshot, StoreError> {
        let aor = aor.clone();
        self.inner
            .masters
            .run(move |conn| {
                let aor = aor.clone();
                Box::pin(async move {
                    let now = sql::now(conn).await?;
                    let bindings = sql::select_live(conn, &aor).await?;
                    Ok(Snapshot { now, bindings })
                })
            })
            .await
    }

    /// The credentials of `username@domain`, for callers that authenticate outside
    /// a REGISTER batch.
    pub async fn subscriber(
        &self,
        username: &str,
        domain: &str,
    ) -> Result<Option<Subscriber>, StoreError> {
        let key = Aor::new(username, domain);
        self.inner
            .masters
            .run(move |conn| {
                let key = key.clone();
                Box::pin(async move {
                    Ok(sql::select_subscribers(conn, &[&key])
                        .await?
                        .into_iter()
                        .next())
                })
            })
            .await
    }

    /// The active master's clock, read through the failover logic: the health probe.
    pub async fn clock(&self) -> Result<DbTime, StoreError> {
        self.inner
            .masters
            .run(|conn| Box::pin(sql::now(conn)))
            .await
    }

    /// The index (in the configured list) of the master writes go to now.
    pub fn active_master(&self) -> usize {
        self.inner.masters.active()
    }

    /// The shared failover state, for the cleanup task.
    pub(crate) fn masters(&self) -> &Arc<Masters> {
        &self.inner.masters
    }

    /// The queue of the shard that owns `aor`.
    fn shard_of(&self, aor: &Aor) -> Option<&mpsc::Sender<Job>> {
        // DefaultHasher::new() has fixed keys: the mapping is stable within a process,
        // which is all batching needs.
        let mut hasher = DefaultHasher::new();
        aor.hash(&mut hasher);
        let count = u64::try_from(self.inner.shards.len()).ok()?;
        let index = usize::try_from(hasher.finish() % count.max(1)).ok()?;
        self.inner.shards.get(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cleanup::CleanupConfig;

    /// The registrar's storage sections as they appear in its config file.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sections {
        store: StoreConfig,
        #[serde(default)]
        expires: ExpiresPolicy,
        #[serde(default)]
        cleanup: CleanupConfig,
    }

    #[test]
    fn sections_load_with_defaults() {
        let toml = r#"
            [store]
            masters = ["mysql://hasip:pw@10.0.0.1/hasip", "mysql://hasip:pw@10.0.0.2/hasip"]
            timeout_ms = 500
            [expires]
            min = 30
            max_contacts = 4
        "#;
        let sections: Result<Sections, _> = hasip::config::load_str(toml, "HASIP_REGTEST_OK");
        let sections = sections.map_err(|e| e.to_string());
        assert_eq!(
            sections
                .as_ref()
                .map(|s| (s.store.masters.len(), s.store.timeout_ms, s.store.shards)),
            Ok((2, 500, 2))
        );
        assert_eq!(
            sections.as_ref().map(|s| s.expires.clone()),
            Ok(ExpiresPolicy {
                min: 30,
                max_contacts: 4,
                ..ExpiresPolicy::default()
            })
        );
        assert_eq!(sections.map(|s| s.cleanup), Ok(CleanupConfig::default()));
    }

    #[test]
    fn misspelled_keys_are_named() {
        let toml = "[store]\nmasters = []\ntimout_ms = 5\n";
        let err = hasip::config::load_str::<Sections>(toml, "HASIP_REGTEST_BAD")
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert!(
            err.as_ref().is_err_and(|e| e.contains("timout_ms")),
            "{err:?}"
        );
        let toml = "[store]\nmasters = []\n[expires]\nmax_contact = 5\n";
        let err = hasip::config::load_str::<Sections>(toml, "HASIP_REGTEST_BAD")
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert!(
            err.as_ref().is_err_and(|e| e.contains("max_contact")),
            "{err:?}"
        );
    }

    #[test]
    fn start_refuses_an_empty_master_list() {
        let runtime = tokio::runtime::Builder::new_current_thread().build();
        let started = runtime.map(|rt| {
            rt.block_on(async {
                Store::start(&StoreConfig::default(), ExpiresPolicy::default()).map(|_| ())
            })
        });
        assert!(matches!(started, Ok(Err(StoreError::Config(_)))));
    }

    #[test]
    fn passwords_stay_out_of_urls_in_logs() {
        assert_eq!(
            redact_url("mysql://hasip:s3cret@10.0.0.1:3306/hasip"),
            "mysql://hasip:***@10.0.0.1:3306/hasip"
        );
        assert_eq!(
            redact_url("mysql://hasip@db/hasip"),
            "mysql://hasip@db/hasip"
        );
        assert_eq!(redact_url("s3cret"), "<unparsable database URL>");
        let config = StoreConfig {
            masters: vec!["mysql://u:p4ss@a/db".into()],
            ..StoreConfig::default()
        };
        assert!(!format!("{config:?}").contains("p4ss"));
    }
}
