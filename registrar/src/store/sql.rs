//! The SQL the store runs and the mapping between `location`/`subscriber` rows and Rust
//! values. Values only ever travel as bound parameters; the text of a statement only
//! varies in how many placeholder groups it has.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};

use crate::binding::{Aor, Binding, DbTime};

/// The `location` columns read into a [`Binding`], in [`binding_from_row`]'s order.
const BINDING_COLUMNS: &str = "ruid, username, domain, contact, received, path, expires, q, \
     callid, cseq, last_modified, user_agent, socket, instance, reg_id";

/// A subscriber's credentials (Kamailio's `subscriber` plus `ha1_sha256`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscriber {
    /// The user name.
    pub username: String,
    /// The domain (digest realm).
    pub domain: String,
    /// Hex MD5 of `username:realm:password`.
    pub ha1: String,
    /// Hex MD5 of `username@domain:realm:password`.
    pub ha1b: String,
    /// Hex SHA-256 of `username:realm:password` (RFC 8760).
    pub ha1_sha256: String,
}

/// The number of placeholder groups a statement gets for `n` items: the next power of
/// two, so each connection prepares only a handful of distinct statements.
pub(crate) fn bucket(n: usize) -> usize {
    n.max(1).next_power_of_two()
}

/// `n` copies of `group` joined by `sep`.
fn repeat(group: &str, sep: &str, n: usize) -> String {
    vec![group; n].join(sep)
}

/// Pads `items` to `bucket(items.len())` by repeating the last one; repeats are
/// harmless in the `OR`/`IN` lists and upserts they feed.
fn padded<T: Clone>(items: &[T]) -> Vec<T> {
    let mut out = items.to_vec();
    if let Some(last) = items.last() {
        out.resize(bucket(items.len()), last.clone());
    }
    out
}

/// Reads the master's clock.
pub(crate) async fn now(conn: &mut Conn) -> Result<DbTime, SqlError> {
    let value: Option<Value> = conn.exec_first("SELECT NOW(6)", ()).await?;
    time_of(value.unwrap_or(Value::NULL)).map_err(SqlError::BadRow)
}

/// Commits the batch's transaction.
pub(crate) async fn commit(conn: &mut Conn) -> Result<(), SqlError> {
    conn.query_drop("COMMIT").await?;
    Ok(())
}

/// What a batch reads before it decides: the master's clock, every row of its AoRs
/// (locked) and the credentials its requests need.
#[derive(Debug)]
pub(crate) struct BatchRead {
    /// `NOW(6)` on the master.
    pub(crate) now: DbTime,
    /// Every row of the AoRs, expired ones included.
    pub(crate) bindings: Vec<Binding>,
    /// The credentials found.
    pub(crate) subscribers: Vec<Subscriber>,
}

/// How many columns [`BINDING_COLUMNS`] names.
const BINDING_WIDTH: usize = 15;
/// The `subscriber` columns read into a [`Subscriber`], in [`subscriber_from_row`]'s order.
const SUBSCRIBER_COLUMNS: &str = "username, domain, ha1, ha1b, ha1_sha256";
/// How many columns [`SUBSCRIBER_COLUMNS`] names.
const SUBSCRIBER_WIDTH: usize = 5;
/// Where each part's columns start in a [`read_batch`] row: a kind (0 the clock, 1 a
/// binding, 2 a subscriber), `NOW(6)`, the binding's columns, the subscriber's.
const CLOCK_AT: usize = 1;
const BINDING_AT: usize = 2;
const SUBSCRIBER_AT: usize = BINDING_AT + BINDING_WIDTH;

/// Reads the clock, locks and reads every row of `aors`, and reads the credentials of
/// `credentials`, in one statement: on a connection with autocommit off it opens the
/// batch's transaction, so a batch takes three round trips (this, its writes, COMMIT).
///
/// `FOR UPDATE` sits inside the `location` part of the UNION, so credentials are read,
/// not locked. The index is forced: on a small table the optimizer would scan it whole,
/// and a locking scan waits on (and deadlocks with) rows of other shards' AoRs. A row
/// constructor `IN` list costs MariaDB a third less than the same keys as `OR`ed pairs
/// (both become the same index ranges); buckets stay below 1,000 keys, where MariaDB
/// would turn the list into a join (`in_predicate_conversion_threshold`).
///
/// Expired rows are read too so that a binding coming back reuses its row (an UPDATE)
/// and every other binding is truly new (a plain INSERT): `INSERT ... ON DUPLICATE KEY
/// UPDATE` would take next-key locks on `ruid` that deadlock concurrent batches. Under
/// READ COMMITTED only the matching index records are locked, so shards never block
/// each other.
pub(crate) async fn read_batch(
    conn: &mut Conn,
    aors: &[&Aor],
    credentials: &[&Aor],
) -> Result<BatchRead, SqlError> {
    let nulls = |n: usize| vec!["NULL"; n].join(", ");
    let mut sql = format!(
        "(SELECT 0, NOW(6), {}, {})",
        nulls(BINDING_WIDTH),
        nulls(SUBSCRIBER_WIDTH)
    );
    let mut params: Vec<Value> = Vec::new();
    let mut part = |sql: &mut String, select: String, keys: &[&Aor]| {
        let keys = padded(keys);
        let list = format!(
            "(username, domain) IN ({})",
            repeat("(?, ?)", ", ", keys.len())
        );
        sql.push_str(&select.replace("{keys}", &list));
        for key in &keys {
            params.push(key.username.as_str().into());
            params.push(key.domain.as_str().into());
        }
    };
    if !aors.is_empty() {
        let select = format!(
            " UNION ALL (SELECT 1, NULL, {BINDING_COLUMNS}, {} FROM location \
             FORCE INDEX (account_expires_idx) WHERE {{keys}} FOR UPDATE)",
            nulls(SUBSCRIBER_WIDTH)
        );
        part(&mut sql, select, aors);
    }
    if !credentials.is_empty() {
        let select = format!(
            " UNION ALL (SELECT 2, NULL, {}, {SUBSCRIBER_COLUMNS} FROM subscriber \
             WHERE {{keys}})",
            nulls(BINDING_WIDTH)
        );
        part(&mut sql, select, credentials);
    }
    let rows: Vec<Row> = conn.exec(sql, params).await?;
    let (mut now, mut bindings, mut subscribers) = (None, Vec::new(), Vec::new());
    for mut row in rows {
        match column::<i64>(&mut row, 0, "kind").map_err(SqlError::BadRow)? {
            0 => {
                let at = column(&mut row, CLOCK_AT, "NOW(6)").and_then(time_of);
                now = Some(at.map_err(SqlError::BadRow)?);
            }
            1 => bindings.push(binding_from_row(row, BINDING_AT)?),
            _ => subscribers.push(subscriber_from_row(row, SUBSCRIBER_AT)?),
        }
    }
    let now = now.ok_or_else(|| SqlError::BadRow("NOW(6) gave no row".into()))?;
    Ok(BatchRead {
        now,
        bindings,
        subscribers,
    })
}

/// Reads the live bindings of one AoR, highest q first (no lock, autocommit).
pub(crate) async fn select_live(conn: &mut Conn, aor: &Aor) -> Result<Vec<Binding>, SqlError> {
    let sql = format!(
        "SELECT {BINDING_COLUMNS} FROM location \
         WHERE username = ? AND domain = ? AND expires > NOW(6) \
         ORDER BY q DESC, last_modified DESC"
    );
    let rows: Vec<Row> = conn.exec(sql, (&aor.username, &aor.domain)).await?;
    rows.into_iter().map(|r| binding_from_row(r, 0)).collect()
}

/// Reads the credentials of `keys` (user, domain).
pub(crate) async fn select_subscribers(
    conn: &mut Conn,
    keys: &[&Aor],
) -> Result<Vec<Subscriber>, SqlError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let keys = padded(keys);
    let sql = format!(
        "SELECT {SUBSCRIBER_COLUMNS} FROM subscriber WHERE {}",
        repeat("(username = ? AND domain = ?)", " OR ", keys.len())
    );
    let mut params: Vec<Value> = Vec::with_capacity(keys.len() * 2);
    for key in &keys {
        params.push(key.username.as_str().into());
        params.push(key.domain.as_str().into());
    }
    let rows: Vec<Row> = conn.exec(sql, params).await?;
    rows.into_iter()
        .map(|r| subscriber_from_row(r, 0))
        .collect()
}

/// Inserts new `bindings`, stamping `last_modified = NOW(6)`.
///
/// A row with the same `ruid` that appeared since [`read_batch`] (written by another
/// registrar, or replicated) fails the statement with 1062, and the batch is run again.
/// Rows go in statements of power-of-two sizes (13 = 8 + 4 + 1), since a plain INSERT
/// cannot be padded with repeats.
pub(crate) async fn insert_new(conn: &mut Conn, bindings: &[&Binding]) -> Result<(), SqlError> {
    let mut rest = bindings;
    while !rest.is_empty() {
        let size = 1usize << rest.len().ilog2();
        let (now, later) = rest.split_at(size);
        insert_rows(conn, now).await?;
        rest = later;
    }
    Ok(())
}

/// One INSERT of `bindings`.
async fn insert_rows(conn: &mut Conn, bindings: &[&Binding]) -> Result<(), SqlError> {
    let sql = format!(
        "INSERT INTO location (ruid, username, domain, contact, received, path, expires, q, \
         callid, cseq, last_modified, user_agent, socket, instance, reg_id) VALUES {}",
        repeat(
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NOW(6), ?, ?, ?, ?)",
            ", ",
            bindings.len()
        )
    );
    let mut params: Vec<Value> = Vec::with_capacity(bindings.len() * 14);
    for b in bindings {
        params.extend([
            b.ruid.as_str().into(),
            b.aor.username.as_str().into(),
            b.aor.domain.as_str().into(),
            b.contact.as_str().into(),
            b.received.as_deref().into(),
            b.path.as_deref().into(),
            time_value(b.expires),
            Value::Double(f64::from(b.q) / 1000.0),
            b.call_id.as_str().into(),
            b.cseq.into(),
            b.user_agent.as_str().into(),
            b.socket.as_deref().into(),
            b.instance.as_deref().into(),
            b.reg_id.into(),
        ]);
    }
    conn.exec_drop(sql, params).await?;
    Ok(())
}

/// Rewrites bindings whose rows exist (they were locked by [`read_batch`]), stamping
/// `last_modified = NOW(6)`.
///
/// A refresh must not go through `INSERT ... ON DUPLICATE KEY UPDATE`: InnoDB spends
/// an auto-increment id on every such row even when it ends up updating, and with
/// refreshes every few minutes the INT `id` would run out within weeks. The new
/// values travel as a derived table of bound rows, joined first and then to `location`
/// through `ruid_idx`, so only the rows named are touched.
pub(crate) async fn update_existing(
    conn: &mut Conn,
    bindings: &[&Binding],
) -> Result<(), SqlError> {
    if bindings.is_empty() {
        return Ok(());
    }
    let bindings = padded(bindings);
    let first = "SELECT ? AS ruid, ? AS contact, ? AS received, ? AS path, \
                 CAST(? AS DATETIME(6)) AS expires, ? AS q, ? AS callid, ? AS cseq, \
                 ? AS user_agent, ? AS socket, ? AS instance, ? AS reg_id";
    let rest = " UNION ALL SELECT ?, ?, ?, ?, CAST(? AS DATETIME(6)), ?, ?, ?, ?, ?, ?, ?";
    let sql = format!(
        "UPDATE ({first}{}) AS v STRAIGHT_JOIN location AS l FORCE INDEX (ruid_idx) \
         ON l.ruid = v.ruid \
         SET l.contact = v.contact, l.received = v.received, l.path = v.path, \
         l.expires = v.expires, l.q = v.q, l.callid = v.callid, l.cseq = v.cseq, \
         l.last_modified = NOW(6), l.user_agent = v.user_agent, l.socket = v.socket, \
         l.instance = v.instance, l.reg_id = v.reg_id",
        rest.repeat(bindings.len() - 1)
    );
    let mut params: Vec<Value> = Vec::with_capacity(bindings.len() * 12);
    for b in &bindings {
        params.extend([
            b.ruid.as_str().into(),
            b.contact.as_str().into(),
            b.received.as_deref().into(),
            b.path.as_deref().into(),
            time_value(b.expires),
            Value::Double(f64::from(b.q) / 1000.0),
            b.call_id.as_str().into(),
            b.cseq.into(),
            b.user_agent.as_str().into(),
            b.socket.as_deref().into(),
            b.instance.as_deref().into(),
            b.reg_id.into(),
        ]);
    }
    conn.exec_drop(sql, params).await?;
    Ok(())
}

/// Soft-deletes the live bindings among `ruids`: `expires = last_modified = NOW(6)`.
pub(crate) async fn soft_delete(conn: &mut Conn, ruids: &[&str]) -> Result<(), SqlError> {
    if ruids.is_empty() {
        return Ok(());
    }
    let ruids = padded(ruids);
    let sql = format!(
        "UPDATE location SET expires = NOW(6), last_modified = NOW(6) \
         WHERE ruid IN ({}) AND expires > NOW(6)",
        repeat("?", ", ", ruids.len())
    );
    let params: Vec<Value> = ruids.iter().map(|r| Value::from(*r)).collect();
    conn.exec_drop(sql, params).await?;
    Ok(())
}

/// A failed statement: the driver's error, or a row that does not fit the schema.
#[derive(Debug)]
pub(crate) enum SqlError {
    /// The driver or server failed.
    Driver(mysql_async::Error),
    /// A row held something the schema does not allow.
    BadRow(String),
}

impl From<mysql_async::Error> for SqlError {
    fn from(e: mysql_async::Error) -> Self {
        SqlError::Driver(e)
    }
}

/// A DATETIME parameter.
pub(crate) fn time_value(t: DbTime) -> Value {
    let (y, mo, d, h, mi, s, us) = t.to_civil();
    Value::Date(y, mo, d, h, mi, s, us)
}

/// A DATETIME from the binary (prepared) or the text protocol.
fn time_of(value: Value) -> Result<DbTime, String> {
    match value {
        Value::Date(y, mo, d, h, mi, s, us) => DbTime::from_civil(y, mo, d, h, mi, s, us)
            .ok_or_else(|| format!("invalid datetime {y}-{mo}-{d} {h}:{mi}:{s}.{us}")),
        Value::Bytes(bytes) => std::str::from_utf8(&bytes)
            .ok()
            .and_then(DbTime::parse)
            .ok_or_else(|| "unparseable datetime".to_owned()),
        other => Err(format!("expected a datetime, got {other:?}")),
    }
}

/// Takes column `i` of `row` as `T`, naming it in the error.
fn column<T: mysql_async::prelude::FromValue>(
    row: &mut Row,
    i: usize,
    name: &str,
) -> Result<T, String> {
    match row.take_opt::<T, _>(i) {
        Some(Ok(v)) => Ok(v),
        Some(Err(e)) => Err(format!("column {name}: {e}")),
        None => Err(format!("column {name} missing")),
    }
}

/// A `location` row selected with [`BINDING_COLUMNS`], starting at column `at`.
fn binding_from_row(mut row: Row, at: usize) -> Result<Binding, SqlError> {
    let mut read = || -> Result<Binding, String> {
        let q: f64 = column(&mut row, at + 7, "q")?;
        let cseq: i64 = column(&mut row, at + 9, "cseq")?;
        let reg_id: i64 = column(&mut row, at + 14, "reg_id")?;
        Ok(Binding {
            ruid: column(&mut row, at, "ruid")?,
            aor: Aor {
                username: column(&mut row, at + 1, "username")?,
                domain: column::<Option<String>>(&mut row, at + 2, "domain")?.unwrap_or_default(),
            },
            contact: column(&mut row, at + 3, "contact")?,
            received: column(&mut row, at + 4, "received")?,
            path: column(&mut row, at + 5, "path")?,
            expires: time_of(column(&mut row, at + 6, "expires")?)?,
            q: q_of(q),
            call_id: column(&mut row, at + 8, "callid")?,
            cseq: u32::try_from(cseq).map_err(|_| format!("negative cseq {cseq}"))?,
            last_modified: time_of(column(&mut row, at + 10, "last_modified")?)?,
            user_agent: column(&mut row, at + 11, "user_agent")?,
            socket: column(&mut row, at + 12, "socket")?,
            instance: column(&mut row, at + 13, "instance")?,
            reg_id: u32::try_from(reg_id).unwrap_or(0),
        })
    };
    read().map_err(SqlError::BadRow)
}

/// The stored q (a FLOAT with two decimals) in thousandths; Kamailio's "unspecified"
/// (negative) reads as 1.0.
fn q_of(q: f64) -> u16 {
    if !(0.0..=1.0).contains(&q) {
        return 1000;
    }
    // In range by the check above, so the cast neither truncates nor wraps.
    (q * 1000.0).round() as u16
}

/// A `subscriber` row.
fn subscriber_from_row(mut row: Row, at: usize) -> Result<Subscriber, SqlError> {
    let mut read = || -> Result<Subscriber, String> {
        Ok(Subscriber {
            username: column(&mut row, at, "username")?,
            domain: column(&mut row, at + 1, "domain")?,
            ha1: column(&mut row, at + 2, "ha1")?,
            ha1b: column(&mut row, at + 3, "ha1b")?,
            ha1_sha256: column(&mut row, at + 4, "ha1_sha256")?,
        })
    };
    read().map_err(SqlError::BadRow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_powers_of_two() {
        assert_eq!(
            [0, 1, 2, 3, 5, 128, 129].map(bucket),
            [1, 1, 2, 4, 8, 128, 256]
        );
        assert_eq!(padded(&[1, 2, 3]), vec![1, 2, 3, 3]);
        assert_eq!(padded::<u8>(&[]), Vec::<u8>::new());
    }

    #[test]
    fn times_convert_both_ways() {
        let t = DbTime::from_civil(2026, 11, 23, 18, 5, 52, 7).unwrap_or(DbTime::from_micros(0));
        assert_eq!(time_of(time_value(t)), Ok(t));
        assert_eq!(time_of(Value::from("2026-11-23 18:05:52.000007")), Ok(t));
        assert!(time_of(Value::Int(3)).is_err());
    }

    #[test]
    fn q_reads_in_thousandths() {
        assert_eq!(
            [1.0, 0.5, 0.0, 0.129_999_995, -1.0, 7.0].map(q_of),
            [1000, 500, 0, 130, 1000, 1000]
        );
    }
}
