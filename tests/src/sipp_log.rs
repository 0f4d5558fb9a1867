//! Registration times from sipp's message log (`-trace_msg`), to the microsecond.
//!
//! sipp's own response times (`-trace_rtt`) come in steps of the kernel's tick (4 ms at
//! 250 Hz), too coarse to compare two p99s at a light load. Its message log stamps every
//! message with the wall clock to the microsecond: each message follows a line of
//! dashes and `YYYY-MM-DD HH:MM:SS.ffffff`, then `UDP message sent (...)` or `UDP
//! message received [...]`, then the message itself.

use std::collections::{HashMap, HashSet};

const SECONDS_PER_DAY: f64 = 86_400.0;

/// Every registration's time in milliseconds: from the first REGISTER sent to the first
/// 200 received, matched by Call-ID. Calls with no 200 have no time.
pub fn registration_times(log: &str) -> Vec<f64> {
    let mut started: HashMap<&str, f64> = HashMap::new();
    let mut answered: HashSet<&str> = HashSet::new();
    let mut times = Vec::new();
    for message in messages(log) {
        if message.sent && message.first.starts_with("REGISTER ") {
            started.entry(message.call_id).or_insert(message.at);
        } else if !message.sent
            && message.first.starts_with("SIP/2.0 200")
            && answered.insert(message.call_id)
        {
            if let Some(start) = started.get(message.call_id) {
                let mut seconds = message.at - start;
                // A registration that spans midnight.
                if seconds < 0.0 {
                    seconds += SECONDS_PER_DAY;
                }
                times.push(seconds * 1000.0);
            }
        }
    }
    times
}

/// One message of the log, as far as timing needs it.
struct Logged<'a> {
    /// Seconds since midnight.
    at: f64,
    sent: bool,
    /// The request or status line.
    first: &'a str,
    call_id: &'a str,
}

/// The log's messages in order; entries that do not read as one are skipped.
fn messages(log: &str) -> Vec<Logged<'_>> {
    let mut out = Vec::new();
    let mut lines = log.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(at) = line.strip_prefix("-----").and_then(time_of_day) else {
            continue;
        };
        let sent = match lines.next() {
            Some(l) if l.contains("message sent") => true,
            Some(l) if l.contains("message received") => false,
            _ => continue,
        };
        let mut first = None;
        let mut call = None;
        while let Some(next) = lines.peek() {
            if next.starts_with("-----") {
                break;
            }
            let next = lines.next().unwrap_or_default();
            if next.trim().is_empty() {
                continue;
            }
            if first.is_none() {
                first = Some(next);
            } else if call.is_none() {
                call = call_id(next);
            }
        }
        if let (Some(first), Some(call_id)) = (first, call) {
            out.push(Logged {
                at,
                sent,
                first,
                call_id,
            });
        }
    }
    out
}

/// The value of a `Call-ID` (or compact `i`) header line.
fn call_id(line: &str) -> Option<&str> {
    let (name, value) = line.split_once(':')?;
    let name = name.trim();
    (name.eq_ignore_ascii_case("call-id") || name.eq_ignore_ascii_case("i")).then(|| value.trim())
}

/// Seconds since midnight of a `---- YYYY-MM-DD HH:MM:SS.ffffff` line.
fn time_of_day(line: &str) -> Option<f64> {
    let stamp = line.trim_start_matches('-').trim();
    let (_date, time) = stamp.split_once(' ')?;
    let mut parts = time.split(':');
    let hours: f64 = parts.next()?.parse().ok()?;
    let minutes: f64 = parts.next()?.parse().ok()?;
    let seconds: f64 = parts.next()?.parse().ok()?;
    Some(hours * 3600.0 + minutes * 60.0 + seconds)
}

#[cfg(test)]
mod tests {
    use super::registration_times;

    /// One message of a sipp log.
    fn message(at: &str, sent: bool, first: &str, call_id: &str) -> String {
        let how = if sent {
            "UDP message sent (300 bytes):"
        } else {
            "UDP message received [400] bytes :"
        };
        format!(
            "----------------------------------------------- 2026-12-02 {at}\n{how}\n\n{first}\nVia: SIP/2.0/UDP 127.0.0.1:6111\nCall-ID: {call_id}\nCSeq: 1 REGISTER\n\n"
        )
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6
    }

    #[test]
    fn a_registration_runs_from_its_first_register_to_its_200() {
        let log = [
            message(
                "07:12:18.408149",
                true,
                "REGISTER sip:example.com SIP/2.0",
                "a",
            ),
            message("07:12:18.408700", false, "SIP/2.0 401 Unauthorized", "a"),
            message(
                "07:12:18.408787",
                true,
                "REGISTER sip:example.com SIP/2.0",
                "a",
            ),
            message("07:12:18.413572", false, "SIP/2.0 200 OK", "a"),
        ]
        .concat();
        let times = registration_times(&log);
        assert_eq!(times.len(), 1, "{times:?}");
        assert!(close(times[0], 5.423), "{times:?}");
    }

    #[test]
    fn interleaved_calls_are_matched_by_call_id() {
        let log = [
            message(
                "07:00:00.000000",
                true,
                "REGISTER sip:example.com SIP/2.0",
                "a",
            ),
            message(
                "07:00:00.001000",
                true,
                "REGISTER sip:example.com SIP/2.0",
                "b",
            ),
            message("07:00:00.003000", false, "SIP/2.0 200 OK", "b"),
            message("07:00:00.010000", false, "SIP/2.0 200 OK", "a"),
            // A retransmitted 200 does not count again.
            message("07:00:00.510000", false, "SIP/2.0 200 OK", "a"),
            // A call never answered 200 has no time.
            message(
                "07:00:00.020000",
                true,
                "REGISTER sip:example.com SIP/2.0",
                "c",
            ),
            message("07:00:00.021000", false, "SIP/2.0 403 Forbidden", "c"),
        ]
        .concat();
        let times = registration_times(&log);
        assert_eq!(times.len(), 2, "{times:?}");
        assert!(close(times[0], 2.0) && close(times[1], 10.0), "{times:?}");
    }

    #[test]
    fn a_registration_across_midnight_is_not_negative() {
        let log = [
            message(
                "23:59:59.999000",
                true,
                "REGISTER sip:example.com SIP/2.0",
                "a",
            ),
            message("00:00:00.004000", false, "SIP/2.0 200 OK", "a"),
        ]
        .concat();
        let times = registration_times(&log);
        assert_eq!(times.len(), 1);
        assert!(close(times[0], 5.0), "{times:?}");
    }

    #[test]
    fn a_log_without_messages_gives_no_times() {
        assert!(registration_times("").is_empty());
        assert!(registration_times("garbage\n-----\nnot a time\n").is_empty());
    }
}
