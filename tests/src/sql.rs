//! Running the repository's SQL files: a line-based statement splitter and safe
//! substitution of the `'${NAME}'` and `${NAME}` placeholders in sql/replication.sql
//! and sql/pair.sql.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

/// The repository's `sql/` directory (schema.sql, replication.sql).
pub fn sql_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("sql")
}

/// Splits an SQL script into statements.
///
/// Deliberately simple, and the SQL files are written to suit it: a statement
/// ends at a line whose last non-blank character is `;`; lines that start with
/// `--` (after indentation) and blank lines are dropped. There is no support for
/// `DELIMITER`, for `;` ending a line inside a string literal, or for `/* */`
/// comments spanning lines. Text after the last `;` is returned as a final
/// statement, so a missing terminator is not silently lost.
pub fn split_statements(script: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    for line in script.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with("--") {
            continue;
        }
        if !current.is_empty() {
            current.push('\n');
        }
        current.push_str(line.trim_end());
        if let Some(body) = trimmed.strip_suffix(';') {
            // Keep the text but drop the terminator: the client sends one
            // statement at a time.
            let end = current.len() - (trimmed.len() - body.len());
            current.truncate(end);
            statements.push(std::mem::take(&mut current));
        }
    }
    if !current.trim().is_empty() {
        statements.push(current);
    }
    statements
}

/// Quotes `value` as an SQL string literal for MariaDB's default `sql_mode`
/// (backslash escapes on): for statements such as `CREATE USER ... IDENTIFIED
/// BY` and `CHANGE MASTER TO` that cannot take bound parameters.
pub fn string_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{1a}' => out.push_str("\\Z"),
            other => out.push(other),
        }
    }
    out.push('\'');
    out
}

/// Replaces each quoted placeholder `'${NAME}'` in `script` with the quoted
/// literal of its value; fails if a placeholder is left over, so a forgotten
/// value never becomes a literal password.
pub fn fill_placeholders(script: &str, values: &[(&str, &str)]) -> anyhow::Result<String> {
    let mut out = script.to_owned();
    for (name, value) in values {
        out = out.replace(&format!("'${{{name}}}'"), &string_literal(value));
    }
    if let Some(start) = out.find("${") {
        let rest = out.get(start..).unwrap_or_default();
        let end = rest.find('}').map_or(rest.len(), |i| i + 1);
        bail!(
            "unfilled placeholder {} in SQL script",
            rest.get(..end).unwrap_or(rest)
        );
    }
    Ok(out)
}

/// Replaces each bare placeholder `${NAME}` in `script` with its number, for the
/// places (ports, ids) where SQL wants a number rather than a string literal; run
/// [`fill_placeholders`] after it, which refuses any placeholder left over.
pub fn fill_numbers(script: &str, values: &[(&str, u64)]) -> String {
    let mut out = script.to_owned();
    for (name, value) in values {
        out = out.replace(&format!("${{{name}}}"), &value.to_string());
    }
    out
}

/// Runs every statement of `script` (see [`split_statements`]) on `conn`, in
/// order, stopping at the first error.
pub async fn run_script(conn: &mut Conn, script: &str) -> anyhow::Result<()> {
    for statement in split_statements(script) {
        conn.query_drop(&statement)
            .await
            .with_context(|| format!("SQL statement failed: {statement}"))?;
    }
    Ok(())
}

/// Reads an SQL file and runs it with [`run_script`].
pub async fn run_sql_file(conn: &mut Conn, path: &Path) -> anyhow::Result<()> {
    let script = std::fs::read_to_string(path)
        .with_context(|| format!("reading SQL file {}", path.display()))?;
    run_script(conn, &script)
        .await
        .with_context(|| format!("running SQL file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_semicolon_at_line_end() {
        let script = "-- heading\nCREATE TABLE t (\n  a INT -- x; y\n);\n\nINSERT INTO t VALUES (1);  \nSELECT 'a;b' FROM t";
        assert_eq!(
            split_statements(script),
            vec![
                "CREATE TABLE t (\n  a INT -- x; y\n)".to_owned(),
                "INSERT INTO t VALUES (1)".to_owned(),
                "SELECT 'a;b' FROM t".to_owned(),
            ]
        );
    }

    #[test]
    fn empty_script_has_no_statements() {
        assert!(split_statements("\n-- only a comment\n   \n").is_empty());
    }

    #[test]
    fn schema_file_splits_into_its_statements() {
        let script = std::fs::read_to_string(sql_dir().join("schema.sql")).unwrap_or_default();
        let statements = split_statements(&script);
        let heads: Vec<&str> = statements
            .iter()
            .map(|s| s.split('(').next().unwrap_or_default().trim())
            .collect();
        assert_eq!(
            heads,
            [
                "CREATE TABLE IF NOT EXISTS version",
                "CREATE TABLE IF NOT EXISTS location",
                "CREATE INDEX IF NOT EXISTS last_modified_idx ON location",
                "CREATE TABLE IF NOT EXISTS subscriber",
                "CREATE TABLE IF NOT EXISTS dbsync_heartbeat",
                "CREATE TABLE IF NOT EXISTS dbsync_repair_log",
                "INSERT INTO version",
                "INSERT INTO version",
            ]
        );
        assert!(statements.iter().all(|s| !s.trim_end().ends_with(';')));
    }

    #[test]
    fn literal_escapes_quotes_and_backslashes() {
        assert_eq!(string_literal("plain"), "'plain'");
        assert_eq!(string_literal("it's"), "'it''s'");
        assert_eq!(string_literal("a\\'b"), "'a\\\\''b'");
        assert_eq!(string_literal("nul\0"), "'nul\\0'");
    }

    #[test]
    fn fills_quoted_placeholders() {
        let filled = fill_placeholders(
            "CREATE USER u IDENTIFIED BY '${PW}';",
            &[("PW", "x'; DROP TABLE t; --")],
        );
        assert_eq!(
            filled.ok(),
            Some("CREATE USER u IDENTIFIED BY 'x''; DROP TABLE t; --';".to_owned())
        );
    }

    #[test]
    fn refuses_unfilled_placeholder() {
        let err = fill_placeholders("IDENTIFIED BY '${OTHER}'", &[("PW", "x")]);
        assert!(err.is_err_and(|e| e.to_string().contains("${OTHER}")));
    }
}
