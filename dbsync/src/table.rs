//! A watched table as both servers define it, and its rows fetched per key range.

use std::collections::BTreeMap;

use mysql_async::Value;

use crate::chunk::Chunk;
use crate::config::TableConfig;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::ident::Ident;
use crate::reconcile::{Stamp, Version};

/// A table's columns (catalog order, with nullability) and where the key and versions sit.
#[derive(Debug, Clone, PartialEq)]
pub struct TableMeta {
    /// The configured table.
    pub cfg: TableConfig,
    /// Every column and whether it may be NULL.
    pub columns: Vec<(Ident, bool)>,
    /// Index of the key column.
    pub key: usize,
    /// Index of the version column, if present (checksum-only tables have none).
    pub version: Option<usize>,
    /// Index of the expiry column, if present.
    pub expires: Option<usize>,
    /// The column chunks are ranges of: `chunk_by` when it is an integer column, else `key`.
    pub chunk: Ident,
    /// True when `chunk` is an integer column (chunks are then planned from MIN and MAX).
    pub chunk_numeric: bool,
}

/// A key value that sorts the way the merge needs (exact, byte-wise for strings).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    /// Signed integer key.
    Int(i64),
    /// Unsigned integer key.
    UInt(u64),
    /// String or binary key.
    Bytes(Vec<u8>),
}

impl Key {
    /// Reads a key from a driver value; NULL keys do not exist for a unique key used here.
    pub fn from_value(v: &Value) -> Option<Key> {
        match v {
            Value::Int(i) => Some(Key::Int(*i)),
            Value::UInt(u) => Some(Key::UInt(*u)),
            Value::Bytes(b) => Some(Key::Bytes(b.clone())),
            _ => None,
        }
    }

    /// The key as a bound value again.
    pub fn to_value(&self) -> Value {
        match self {
            Key::Int(i) => Value::Int(*i),
            Key::UInt(u) => Value::UInt(*u),
            Key::Bytes(b) => Value::Bytes(b.clone()),
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Int(i) => write!(f, "{i}"),
            Key::UInt(u) => write!(f, "{u}"),
            Key::Bytes(b) => f.write_str(&String::from_utf8_lossy(b)),
        }
    }
}

/// One row as fetched: its values in column order and its version.
#[derive(Debug, Clone, PartialEq)]
pub struct RowData {
    /// Values in `TableMeta::columns` order.
    pub values: Vec<Value>,
    /// Version for the reconcile, when the table is versioned.
    pub version: Option<Version>,
}

/// A column as the catalog describes it: name, nullable, integer type.
type ColumnInfo = (Ident, bool, bool);

async fn columns_of(db: &mut Db, database: &Ident, table: &Ident) -> Result<Vec<ColumnInfo>> {
    let rows = db
        .rows(
            "SELECT COLUMN_NAME, IS_NULLABLE, DATA_TYPE FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            vec![database.as_str().into(), table.as_str().into()],
        )
        .await?;
    let mut cols = Vec::with_capacity(rows.len());
    for r in rows {
        let name: String = r
            .get_opt::<String, usize>(0)
            .and_then(Result::ok)
            .unwrap_or_default();
        let nullable: String = r
            .get_opt::<String, usize>(1)
            .and_then(Result::ok)
            .unwrap_or_default();
        let data_type: String = r
            .get_opt::<String, usize>(2)
            .and_then(Result::ok)
            .unwrap_or_default();
        let integer = matches!(
            data_type.as_str(),
            "tinyint" | "smallint" | "mediumint" | "int" | "bigint"
        );
        let ident = Ident::new(&name)
            .map_err(|e| Error::Refused(format!("{}: column of {table}: {e}", db.name)))?;
        cols.push((ident, nullable == "YES", integer));
    }
    Ok(cols)
}

impl TableMeta {
    /// Reads the table's definition on both servers; refuses when they differ or lack the key.
    pub async fn load(
        a: &mut Db,
        b: &mut Db,
        database: &Ident,
        cfg: &TableConfig,
    ) -> Result<TableMeta> {
        let (ca, cb) = tokio::join!(
            columns_of(a, database, &cfg.name),
            columns_of(b, database, &cfg.name)
        );
        let (ca, cb) = (ca?, cb?);
        if ca.is_empty() {
            return Err(Error::Refused(format!(
                "{}: table {} not found",
                a.name, cfg.name
            )));
        }
        if ca != cb {
            return Err(Error::Refused(format!(
                "table {} has different columns on {} and {}",
                cfg.name, a.name, b.name
            )));
        }
        let chunk_numeric = ca.iter().any(|(n, _, int)| *n == cfg.chunk_by && *int);
        let columns = ca.into_iter().map(|(n, null, _)| (n, null)).collect();
        TableMeta::new(cfg.clone(), columns, chunk_numeric)
    }

    /// Builds the metadata from a known column list; `chunk_numeric` says `chunk_by` is an
    /// integer column of the table.
    pub fn new(
        cfg: TableConfig,
        columns: Vec<(Ident, bool)>,
        chunk_numeric: bool,
    ) -> Result<TableMeta> {
        let find = |c: &Ident| columns.iter().position(|(n, _)| n == c);
        let key = find(&cfg.key).ok_or_else(|| {
            Error::Refused(format!("table {} has no key column {}", cfg.name, cfg.key))
        })?;
        let version = find(&cfg.version);
        let expires = find(&cfg.expires);
        let (chunk, chunk_numeric) = if chunk_numeric && find(&cfg.chunk_by).is_some() {
            (cfg.chunk_by.clone(), true)
        } else {
            (cfg.key.clone(), false)
        };
        Ok(TableMeta {
            columns,
            key,
            version,
            expires,
            chunk,
            chunk_numeric,
            cfg,
        })
    }

    /// True when rows carry `last_modified` and `expires`, so the reconcile can pick a winner.
    pub fn versioned(&self) -> bool {
        self.version.is_some() && self.expires.is_some()
    }

    /// The column list for SELECT and INSERT.
    pub fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|(c, _)| c.quoted())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The rows of one chunk on one server, by key. `grace_s` decides which expired rows count as gone.
pub async fn fetch_rows(
    db: &mut Db,
    meta: &TableMeta,
    chunk: &Chunk<Value>,
    grace_s: u64,
) -> Result<BTreeMap<Key, RowData>> {
    let (cond, params) = chunk.condition(&meta.chunk);
    fetch_where(db, meta, &cond, params, grace_s).await
}

/// How many keys go into one `IN (...)` list.
const KEYS_PER_QUERY: usize = 500;

/// The rows with the given keys on one server (rows may sit in different chunks on each server).
pub async fn fetch_keys(
    db: &mut Db,
    meta: &TableMeta,
    keys: &[Key],
    grace_s: u64,
) -> Result<BTreeMap<Key, RowData>> {
    let mut out = BTreeMap::new();
    for batch in keys.chunks(KEYS_PER_QUERY) {
        let marks = vec!["?"; batch.len()].join(", ");
        let cond = format!("{} IN ({marks})", meta.cfg.key.quoted());
        let params = batch.iter().map(Key::to_value).collect();
        out.extend(fetch_where(db, meta, &cond, params, grace_s).await?);
    }
    Ok(out)
}

/// The rows whose version (`last_modified`) is less than `since_s` seconds old on one
/// server's clock. Without a version column there is nothing recent.
pub async fn fetch_recent(
    db: &mut Db,
    meta: &TableMeta,
    since_s: u64,
    grace_s: u64,
) -> Result<BTreeMap<Key, RowData>> {
    if meta.version.is_none() {
        return Ok(BTreeMap::new());
    }
    let cond = format!(
        "{} >= NOW(6) - INTERVAL ? SECOND",
        meta.cfg.version.quoted()
    );
    fetch_where(db, meta, &cond, vec![Value::UInt(since_s)], grace_s).await
}

async fn fetch_where(
    db: &mut Db,
    meta: &TableMeta,
    cond: &str,
    mut params: Vec<Value>,
    grace_s: u64,
) -> Result<BTreeMap<Key, RowData>> {
    let gone = match meta.expires {
        Some(_) => format!(
            "({} < NOW(6) - INTERVAL ? SECOND)",
            meta.cfg.expires.quoted()
        ),
        None => "0".to_owned(),
    };
    let sql = format!(
        "SELECT {}, {gone} FROM {} WHERE {cond}",
        meta.column_list(),
        meta.cfg.name.quoted()
    );
    if meta.expires.is_some() {
        params.insert(0, Value::UInt(grace_s));
    }
    let rows = db.rows(&sql, params).await?;
    let mut out = BTreeMap::new();
    let n = meta.columns.len();
    for row in rows {
        let mut values: Vec<Value> = row
            .unwrap_raw()
            .into_iter()
            .map(|v| v.unwrap_or(Value::NULL))
            .collect();
        let gone_flag = values.pop();
        if values.len() != n {
            return Err(Error::Unexpected {
                server: db.name.clone(),
                what: format!(
                    "{} columns from {}, expected {n}",
                    values.len(),
                    meta.cfg.name
                ),
            });
        }
        let key = values
            .get(meta.key)
            .and_then(Key::from_value)
            .ok_or_else(|| Error::Unexpected {
                server: db.name.clone(),
                what: format!("NULL or odd key in {}", meta.cfg.name),
            })?;
        let version = match (meta.version, meta.expires) {
            (Some(v), Some(e)) => {
                let lm = values.get(v).and_then(Stamp::from_value);
                let ex = values.get(e).and_then(Stamp::from_value);
                match (lm, ex) {
                    (Some(last_modified), Some(expires)) => Some(Version {
                        last_modified,
                        expires,
                        gone: matches!(gone_flag, Some(Value::Int(1)) | Some(Value::UInt(1))),
                    }),
                    _ => None,
                }
            }
            _ => None,
        };
        out.insert(key, RowData { values, version });
    }
    Ok(out)
}
