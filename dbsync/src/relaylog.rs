//! Reading the failing event group (pure): its GTID and the tables it touches, from the rows of
//! `SHOW RELAYLOG EVENTS` starting at `Relay_Log_Pos`, or from `Last_SQL_Error` as a fallback.

use crate::gtid::Gtid;

/// The event group the SQL thread stopped on.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct FailingGroup {
    /// Its GTID.
    pub gtid: Option<Gtid>,
    /// `(database, table)` of every table map in the group, without repeats.
    pub tables: Vec<(String, String)>,
    /// The group's end (COMMIT/XID, or the single DDL statement) was seen.
    pub complete: bool,
}

/// Reads the failing group from relay-log events fed page by page (pure): the caller reads on
/// (next page, next relay-log file) while [`GroupScan::ended`] is false.
#[derive(Debug, Clone, Default)]
pub struct GroupScan {
    group: FailingGroup,
    in_transaction: bool,
    /// The group's end was seen, or the next group's GTID: more events cannot change it.
    ended: bool,
}

impl GroupScan {
    /// Takes the next events `(Event_type, Info)` in relay-log order; ignores them once ended.
    pub fn feed<'a>(&mut self, events: impl IntoIterator<Item = (&'a str, &'a str)>) {
        for (kind, info) in events {
            if self.ended {
                return;
            }
            self.event(kind, info);
        }
    }

    fn event(&mut self, kind: &str, info: &str) {
        let group = &mut self.group;
        if group.gtid.is_none() {
            if kind == "Gtid" {
                group.gtid = gtid_in_info(info);
                self.in_transaction = info.trim_start().starts_with("BEGIN");
                // An unreadable GTID cannot be completed by reading on.
                self.ended = group.gtid.is_none();
            }
            return;
        }
        match kind {
            "Table_map" => {
                if let Some(t) = table_in_map(info) {
                    if !group.tables.contains(&t) {
                        group.tables.push(t);
                    }
                }
            }
            "Xid" => {
                group.complete = true;
                self.ended = true;
            }
            "Query" if !self.in_transaction || info.trim_start().starts_with("COMMIT") => {
                group.complete = true;
                self.ended = true;
            }
            // A group never spans two GTIDs: seeing the next one means this one ended unseen.
            "Gtid" => self.ended = true,
            _ => {}
        }
    }

    /// True when reading further cannot change the result.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// The group as read so far.
    pub fn into_group(self) -> FailingGroup {
        self.group
    }
}

/// Parses events `(Event_type, Info)` in relay-log order, starting at the failing group.
pub fn parse_group<'a>(events: impl IntoIterator<Item = (&'a str, &'a str)>) -> FailingGroup {
    let mut scan = GroupScan::default();
    scan.feed(events);
    scan.into_group()
}

/// The relay-log file a `Rotate` event (`Info` = `mariadb-relay-bin.000004;pos=4`) continues
/// in, when it is the relay log's own rotation: same base name as `current`, a different
/// number. Rotations of the source's binlog (`mariadb-bin.000002;pos=4`) give `None`.
pub fn next_relay_file(current: &str, rotate_info: &str) -> Option<String> {
    let (name, _pos) = rotate_info.trim().split_once(";pos=")?;
    let base = |f: &str| -> Option<(String, String)> {
        let file = f.rsplit('/').next()?;
        let (stem, number) = file.rsplit_once('.')?;
        (!number.is_empty() && number.chars().all(|c| c.is_ascii_digit()))
            .then(|| (stem.to_owned(), number.to_owned()))
    };
    let (stem, number) = base(name)?;
    let (current_stem, current_number) = base(current)?;
    if stem != current_stem || number == current_number {
        return None;
    }
    // Keep the directory of `current` (`./`), which SHOW RELAYLOG EVENTS IN accepts either way.
    let dir = current.rsplit_once('/').map(|(d, _)| d);
    let file = name.rsplit('/').next()?;
    Some(match dir {
        Some(d) => format!("{d}/{file}"),
        None => file.to_owned(),
    })
}

/// `BEGIN GTID 1-1-15` / `GTID 1-1-15 cid=9` -> `1-1-15`.
fn gtid_in_info(info: &str) -> Option<Gtid> {
    let mut words = info.split_whitespace();
    words.find(|w| *w == "GTID")?;
    words.next()?.parse().ok()
}

/// `table_id: 33 (hasip.location)` -> `("hasip", "location")`.
fn table_in_map(info: &str) -> Option<(String, String)> {
    let open = info.rfind('(')?;
    let inner = info.get(open + 1..)?.strip_suffix(')')?;
    let (db, table) = inner.split_once('.')?;
    Some((db.to_owned(), table.to_owned()))
}

/// Fallback from the error text MariaDB writes, e.g. `Could not execute Write_rows_v1 event on
/// table hasip.location; Duplicate entry ...; ... end_log_pos 1234, Gtid 1-1-15, Internal ...`.
pub fn parse_error_text(error: &str) -> FailingGroup {
    let gtid = error.split("Gtid ").nth(1).and_then(|rest| {
        let token: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '-')
            .collect();
        token.parse().ok()
    });
    let tables = error
        .split("on table ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .and_then(|t| t.trim().split_once('.'))
        .map(|(d, t)| vec![(d.to_owned(), t.to_owned())])
        .unwrap_or_default();
    FailingGroup {
        gtid,
        tables,
        complete: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_transaction_group() {
        let events = [
            ("Gtid", "BEGIN GTID 1-1-15"),
            ("Annotate_rows", "INSERT INTO location ..."),
            ("Table_map", "table_id: 33 (hasip.location)"),
            ("Write_rows_v1", "table_id: 33 flags: STMT_END_F"),
            ("Table_map", "table_id: 33 (hasip.location)"),
            ("Table_map", "table_id: 35 (hasip.subscriber)"),
            ("Xid", "COMMIT /* xid=77 */"),
            ("Gtid", "BEGIN GTID 1-1-16"),
            ("Table_map", "table_id: 40 (hasip.other)"),
        ];
        let g = parse_group(events);
        assert_eq!(
            g.gtid,
            Some(Gtid {
                domain: 1,
                server: 1,
                seq: 15
            })
        );
        assert_eq!(
            g.tables,
            vec![
                ("hasip".to_owned(), "location".to_owned()),
                ("hasip".to_owned(), "subscriber".to_owned())
            ]
        );
        assert!(g.complete);
    }

    #[test]
    fn ddl_group_ends_at_its_statement() {
        let g = parse_group([("Gtid", "GTID 2-2-3"), ("Query", "CREATE TABLE t (a INT)")]);
        assert_eq!(
            g.gtid,
            Some(Gtid {
                domain: 2,
                server: 2,
                seq: 3
            })
        );
        assert!(g.complete);
        assert!(g.tables.is_empty());
    }

    #[test]
    fn truncated_or_leading_noise() {
        let g = parse_group([
            ("Format_desc", "Server ver: 10.11"),
            ("Gtid", "BEGIN GTID 0-1-9 cid=4"),
            ("Table_map", "table_id: 1 (hasip.location)"),
        ]);
        assert_eq!(
            g.gtid,
            Some(Gtid {
                domain: 0,
                server: 1,
                seq: 9
            })
        );
        assert!(!g.complete);
        let empty = parse_group([("Rotate", "x"), ("Gtid", "garbage")]);
        assert_eq!(empty.gtid, None);
    }

    #[test]
    fn group_read_page_by_page_completes() {
        let mut scan = GroupScan::default();
        scan.feed([
            ("Gtid", "BEGIN GTID 1-1-15"),
            ("Table_map", "table_id: 33 (hasip.location)"),
        ]);
        assert!(!scan.ended());
        // The next page (or the next relay-log file) brings another table and the commit.
        scan.feed([
            ("Rotate", "mariadb-relay-bin.000004;pos=4"),
            ("Format_desc", "Server ver: 10.11"),
            ("Table_map", "table_id: 35 (hasip.subscriber)"),
            ("Xid", "COMMIT /* xid=77 */"),
            ("Table_map", "table_id: 40 (hasip.after)"),
        ]);
        assert!(scan.ended());
        let g = scan.into_group();
        assert!(g.complete);
        assert_eq!(g.tables.len(), 2, "{g:?}");
    }

    #[test]
    fn next_gtid_ends_the_scan_incomplete() {
        let mut scan = GroupScan::default();
        scan.feed([
            ("Gtid", "BEGIN GTID 1-1-15"),
            ("Table_map", "table_id: 33 (hasip.location)"),
            ("Gtid", "BEGIN GTID 1-1-16"),
        ]);
        assert!(scan.ended());
        assert!(!scan.into_group().complete);
    }

    #[test]
    fn relay_log_rotation_is_followed_and_source_rotation_is_not() {
        assert_eq!(
            next_relay_file(
                "./mariadb-relay-bin.000003",
                "mariadb-relay-bin.000004;pos=4"
            ),
            Some("./mariadb-relay-bin.000004".to_owned())
        );
        assert_eq!(
            next_relay_file(
                "./mariadb-relay-bin.000003",
                "./mariadb-relay-bin.000004;pos=4"
            ),
            Some("./mariadb-relay-bin.000004".to_owned())
        );
        assert_eq!(
            next_relay_file("./mariadb-relay-bin.000003", "mariadb-bin.000002;pos=4"),
            None
        );
        assert_eq!(
            next_relay_file(
                "./mariadb-relay-bin.000003",
                "mariadb-relay-bin.000003;pos=4"
            ),
            None
        );
        assert_eq!(next_relay_file("./mariadb-relay-bin.000003", "x"), None);
    }

    #[test]
    fn error_text_fallback() {
        let e = "Could not execute Write_rows_v1 event on table hasip.location; Duplicate entry \
                 'abc' for key 'ruid_idx', Error_code: 1062; handler error HA_ERR_FOUND_DUPP_KEY; \
                 the event's master log mysql-bin.000001, end_log_pos 1234, Gtid 1-1-15, \
                 Internal MariaDB error code: 1062";
        let g = parse_error_text(e);
        assert_eq!(
            g.gtid,
            Some(Gtid {
                domain: 1,
                server: 1,
                seq: 15
            })
        );
        assert_eq!(g.tables, vec![("hasip".to_owned(), "location".to_owned())]);
        assert_eq!(parse_error_text("nonsense"), FailingGroup::default());
    }
}
