//! `registrar show AOR`: an AoR's live bindings from the database, as a text table.

use hasip::sip::uri::Uri;

use crate::binding::Aor;
use crate::reply::qvalue;
use crate::request::aor_of;
use crate::store::Snapshot;

/// Parses `alice@example.com` or `sip:alice@example.com` into an AoR.
pub fn parse_aor(text: &str) -> Option<Aor> {
    let text = text.trim();
    if text.starts_with("sip:") || text.starts_with("sips:") {
        return aor_of(&Uri::parse(text).ok()?);
    }
    aor_of(&Uri::parse(&format!("sip:{text}")).ok()?)
}

/// The bindings as an aligned table, one row each, or a line saying there are none.
pub fn table(aor: &Aor, snapshot: &Snapshot) -> String {
    if snapshot.bindings.is_empty() {
        return format!("{aor}: no live bindings\n");
    }
    let header = [
        "CONTACT",
        "EXPIRES",
        "Q",
        "RECEIVED",
        "PATH",
        "INSTANCE",
        "REG-ID",
        "CALL-ID",
        "CSEQ",
        "USER-AGENT",
        "SOCKET",
        "MODIFIED",
    ];
    let rows: Vec<[String; 12]> = snapshot
        .bindings
        .iter()
        .map(|b| {
            [
                b.contact.clone(),
                format!("{}s", b.remaining(snapshot.now)),
                qvalue(b.q),
                b.received.clone().unwrap_or_else(|| "-".into()),
                b.path.clone().unwrap_or_else(|| "-".into()),
                b.instance.clone().unwrap_or_else(|| "-".into()),
                b.reg_id.to_string(),
                b.call_id.clone(),
                b.cseq.to_string(),
                if b.user_agent.is_empty() {
                    "-".into()
                } else {
                    b.user_agent.clone()
                },
                b.socket.clone().unwrap_or_else(|| "-".into()),
                b.last_modified.to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = format!("{aor}: {} live binding(s)\n", rows.len());
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (cell, width) in cells.zip(widths) {
            text.push_str(cell);
            text.extend(std::iter::repeat_n(
                ' ',
                width.saturating_sub(cell.chars().count()) + 2,
            ));
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in &rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binding::{Binding, DbTime};

    #[test]
    fn aors_parse_with_or_without_scheme() {
        let alice = Some(Aor::new("alice", "example.com"));
        assert_eq!(parse_aor("alice@Example.com"), alice);
        assert_eq!(parse_aor("sip:alice@example.com:5060"), alice);
        assert_eq!(parse_aor("example.com"), None);
        assert_eq!(parse_aor("not a uri"), None);
    }

    #[test]
    fn table_aligns_columns() {
        let now = DbTime::from_micros(1_000_000_000_000);
        let aor = Aor::new("alice", "example.com");
        let binding = Binding {
            ruid: "r".into(),
            aor: aor.clone(),
            contact: "sip:alice@192.0.2.1:5060".into(),
            received: Some("sip:192.0.2.1:5060".into()),
            path: None,
            expires: now.plus_secs(300),
            q: 500,
            call_id: "c1".into(),
            cseq: 3,
            last_modified: now,
            user_agent: String::new(),
            socket: Some("udp:10.0.0.5:5060".into()),
            instance: None,
            reg_id: 0,
        };
        let text = table(
            &aor,
            &Snapshot {
                now,
                bindings: vec![binding],
            },
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], "alice@example.com: 1 live binding(s)");
        assert!(lines[1].starts_with("CONTACT                   EXPIRES  Q    RECEIVED"));
        assert!(lines[2].starts_with("sip:alice@192.0.2.1:5060  300s     0.5  sip:192.0.2.1:5060"));
        assert_eq!(
            table(
                &aor,
                &Snapshot {
                    now,
                    bindings: vec![]
                }
            ),
            "alice@example.com: no live bindings\n"
        );
    }
}
