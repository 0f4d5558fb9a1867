//! A shard task: it owns one connection to the active master, drains its queue into
//! a batch, and commits the whole batch as one transaction before answering each
//! REGISTER with its own outcome.
//!
//! An AoR always hashes to the same shard, so two batches in one registrar never touch
//! the same rows and cannot deadlock each other; within a batch, requests are decided
//! in arrival order against the state the earlier ones left.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use tokio::sync::{mpsc, oneshot};

use crate::binding::{Aor, Binding};
use crate::error::StoreError;
use crate::register::{decide, ExpiresPolicy, Outcome, RegisterRequest};
use crate::store::master::{needs_ping, timed, Failure, Masters};
use crate::store::sql::{self, Subscriber};
use crate::store::AuthCheck;

/// The most rows one INSERT or UPDATE carries (a power of two, see `sql::bucket`).
const ROWS_PER_STATEMENT: usize = 512;

/// How often a batch is run again after a deadlock, lock wait timeout or a duplicate
/// `ruid` inserted concurrently (by another registrar or by replication).
const TRANSIENT_RETRIES: u32 = 3;

/// The shard's connection (its own, with autocommit off, see
/// [`Masters::connect_for_batches`]), the master it goes to, and when it was last used.
/// Dropping it closes the connection.
struct Held {
    master: usize,
    conn: Conn,
    used: Instant,
}

/// A queued REGISTER and where its outcome goes.
pub(crate) struct Job {
    pub(crate) request: RegisterRequest,
    pub(crate) auth: Option<AuthCheck>,
    pub(crate) reply: oneshot::Sender<Result<Outcome, StoreError>>,
}

/// What a batch writes for one `ruid`, after all its requests.
enum Change<'a> {
    Upsert(&'a Binding),
    Remove,
}

/// The shard's loop: runs until every sender (the [`crate::store::Store`]) is gone.
pub(crate) async fn run(
    masters: Arc<Masters>,
    policy: Arc<ExpiresPolicy>,
    mut queue: mpsc::Receiver<Job>,
    max_batch: usize,
) {
    let mut held: Option<Held> = None;
    let mut jobs: Vec<Job> = Vec::with_capacity(max_batch);
    while let Some(first) = queue.recv().await {
        jobs.push(first);
        while jobs.len() < max_batch {
            match queue.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let requests: Vec<(&RegisterRequest, Option<&AuthCheck>)> =
            jobs.iter().map(|j| (&j.request, j.auth.as_ref())).collect();
        let started = Instant::now();
        let batch = process(&masters, &policy, &mut held, &requests).await;
        tracing::trace!(size = requests.len(), elapsed = ?started.elapsed(), "batch done");
        let outcomes: Vec<Result<Outcome, StoreError>> = match batch {
            Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
            Err(e @ (StoreError::Database { .. } | StoreError::BadRow { .. }))
                if requests.len() > 1 =>
            {
                // One request's data may have failed the whole batch: run them one by
                // one so only that request gets the error.
                tracing::warn!(error = %e, size = requests.len(), "batch failed; running it singly");
                let mut singles = Vec::with_capacity(requests.len());
                for request in &requests {
                    let single = std::slice::from_ref(request);
                    let outcome = process(&masters, &policy, &mut held, single).await;
                    singles.push(outcome.and_then(|mut o| o.pop().ok_or(StoreError::Closed)));
                }
                singles
            }
            Err(e) => requests.iter().map(|_| Err(clone_error(&e))).collect(),
        };
        drop(requests);
        for (job, outcome) in jobs.drain(..).zip(outcomes) {
            // The caller may have given up waiting; nothing to do then.
            let _ = job.reply.send(outcome);
        }
    }
}

/// Runs a batch on the active master, moving to the next one on a connection failure
/// (once per master) and running it again after a transient error.
async fn process(
    masters: &Masters,
    policy: &ExpiresPolicy,
    held: &mut Option<Held>,
    requests: &[(&RegisterRequest, Option<&AuthCheck>)],
) -> Result<Vec<Outcome>, StoreError> {
    let mut tried = 0;
    let mut transient_retries = 0;
    loop {
        if masters.all_down() {
            return Err(masters.unavailable());
        }
        let master = masters.active();
        let result = match held.take() {
            Some(h) if h.master == master => fresh_enough(h, masters).await,
            Some(h) => {
                // The active master changed under us: this connection is to the old
                // one, which may be dead.
                drop(h);
                masters.connect_for_batches(master).await
            }
            None => masters.connect_for_batches(master).await,
        };
        let result = match result {
            Ok(mut conn) => match execute(&mut conn, master, masters, policy, requests).await {
                Ok(outcomes) => {
                    *held = Some(Held {
                        master,
                        conn,
                        used: Instant::now(),
                    });
                    Ok(outcomes)
                }
                // Closed: its session state (an open transaction, a half-read
                // result) is unknown.
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        match result {
            Ok(outcomes) => {
                masters.mark_up();
                return Ok(outcomes);
            }
            Err(Failure::Connection(why)) => {
                masters.mark_failed(master, &why);
                tried += 1;
                if tried >= masters.len() {
                    masters.mark_all_down();
                    return Err(masters.unavailable());
                }
            }
            Err(Failure::Transient(e)) if transient_retries < TRANSIENT_RETRIES => {
                tracing::debug!(error = %e, "retrying a batch after a transient error");
                transient_retries += 1;
            }
            Err(Failure::Transient(source)) => return Err(StoreError::Database { master, source }),
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::Busy) => return Err(masters.unavailable()),
        }
    }
}

/// The held connection, or a new one if it sat idle and no longer answers: a server
/// that closed an idle session is no reason to switch masters.
async fn fresh_enough(held: Held, masters: &Masters) -> Result<Conn, Failure> {
    let mut conn = held.conn;
    if !needs_ping(held.used.elapsed()) {
        return Ok(conn);
    }
    match tokio::time::timeout(masters.timeout, conn.ping()).await {
        Ok(Ok(())) => Ok(conn),
        _ => {
            drop(conn);
            masters.connect_for_batches(held.master).await
        }
    }
}

/// One transaction: read the clock, lock the AoRs' bindings and read credentials where
/// a request needs them (one statement, which opens the transaction), decide every
/// request in order, write, commit.
async fn execute(
    conn: &mut Conn,
    master: usize,
    masters: &Masters,
    policy: &ExpiresPolicy,
    requests: &[(&RegisterRequest, Option<&AuthCheck>)],
) -> Result<Vec<Outcome>, Failure> {
    let limit = masters.timeout;
    let distinct = |with_auth_only: bool| -> Vec<&Aor> {
        requests
            .iter()
            .filter(|(_, auth)| !with_auth_only || auth.is_some())
            .map(|(r, _)| &r.aor)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    let aors = distinct(false);
    let credentials = distinct(true);
    // Expired rows come too (decide ignores them): their ruids take the UPDATE path.
    let read = timed(limit, master, sql::read_batch(conn, &aors, &credentials)).await?;
    let now = read.now;
    let subscribers: HashMap<(String, String), Subscriber> = read
        .subscribers
        .into_iter()
        .map(|s| ((s.username.clone(), s.domain.clone()), s))
        .collect();
    let mut state: HashMap<Aor, Vec<Binding>> = HashMap::with_capacity(aors.len());
    let existing: HashSet<String> = read.bindings.iter().map(|b| b.ruid.clone()).collect();
    for binding in read.bindings {
        state.entry(binding.aor.clone()).or_default().push(binding);
    }

    let mut outcomes = Vec::with_capacity(requests.len());
    for (request, auth) in requests {
        if let Some(check) = auth {
            let key = (request.aor.username.clone(), request.aor.domain.clone());
            if let Err(rejection) = check(subscribers.get(&key)) {
                outcomes.push(Outcome::Reject(rejection));
                continue;
            }
        }
        let current = state.get(&request.aor).map(Vec::as_slice).unwrap_or(&[]);
        let outcome = decide(request, policy, current, now);
        if let Outcome::Accept(accepted) = &outcome {
            state.insert(request.aor.clone(), accepted.bindings_after.clone());
        }
        outcomes.push(outcome);
    }

    // Later requests override earlier ones on the same binding.
    let mut changes: BTreeMap<&str, Change<'_>> = BTreeMap::new();
    for outcome in &outcomes {
        if let Outcome::Accept(accepted) = outcome {
            for ruid in &accepted.removals {
                changes.insert(ruid, Change::Remove);
            }
            for binding in &accepted.upserts {
                changes.insert(&binding.ruid, Change::Upsert(binding));
            }
        }
    }
    let (mut updates, mut inserts, mut removals) = (Vec::new(), Vec::new(), Vec::new());
    for (ruid, change) in &changes {
        match change {
            Change::Upsert(b) if existing.contains(*ruid) => updates.push(*b),
            Change::Upsert(b) => inserts.push(*b),
            Change::Remove => removals.push(*ruid),
        }
    }
    // Chunks keep each statement far below the 65,535 placeholders MySQL allows.
    for chunk in updates.chunks(ROWS_PER_STATEMENT) {
        timed(limit, master, sql::update_existing(conn, chunk)).await?;
    }
    for chunk in inserts.chunks(ROWS_PER_STATEMENT) {
        timed(limit, master, sql::insert_new(conn, chunk)).await?;
    }
    for chunk in removals.chunks(ROWS_PER_STATEMENT) {
        timed(limit, master, sql::soft_delete(conn, chunk)).await?;
    }
    timed(limit, master, sql::commit(conn)).await?;
    Ok(outcomes)
}

/// A copy of a batch-wide error for each of the batch's requests.
fn clone_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable { retry_after } => StoreError::Unavailable {
            retry_after: *retry_after,
        },
        StoreError::BadRow { master, what } => StoreError::BadRow {
            master: *master,
            what: what.clone(),
        },
        StoreError::Config(what) => StoreError::Config(what.clone()),
        StoreError::Closed => StoreError::Closed,
        // mysql_async::Error is not Clone; keep the code and message.
        StoreError::Database { master, source } => StoreError::Database {
            master: *master,
            source: mysql_async::Error::Other(source.to_string().into()),
        },
    }
}
