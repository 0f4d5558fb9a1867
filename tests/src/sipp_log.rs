//! Registration times from sipp's message log (`-trace_msg`), to the microsecond.
//!
//! sipp's own response times (`-trace_rtt`) come in steps of the kernel's tick (4 ms at
//! 250 Hz), too coarse to compare two p99s at a light load. Its message log stamps every
//! message with the wall clock to the microsecond: each message follows a line of
//! dashes and `YYYY-MM-DD HH:MM:SS.ffffff`, then `UDP message sent (...)` or `UDP
//! message received [...]`, then the message itself.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use hasip::sip::header_name::HeaderName;
use hasip::sip::limits::Limits;
use hasip::sip::message::Message;
use hasip::sip::method::Method;

const SECONDS_PER_DAY: f64 = 86_400.0;

/// The dashes each message's entry starts with.
const ENTRY: &str = "\n-----";

/// Every registration's time in milliseconds: from the first REGISTER sent to the first
/// 200 received, matched by Call-ID. Calls with no 200 have no time.
pub fn registration_times(log: &str) -> Vec<f64> {
    let mut started: HashMap<String, f64> = HashMap::new();
    let mut answered: HashSet<String> = HashSet::new();
    let mut times = Vec::new();
    for (at, sent, message) in messages(log) {
        let Some(call_id) = message.header(&HeaderName::CallId).map(str::trim) else {
            continue;
        };
        if sent && message.method() == Some(Method::Register) {
            started.entry(call_id.to_owned()).or_insert(at);
        } else if !sent && message.status_code() == Some(200) && answered.insert(call_id.into()) {
            if let Some(start) = started.get(call_id) {
                let mut seconds = at - start;
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

/// The log's messages in order, each with its time (seconds since midnight) and whether
/// sipp sent it, parsed by hasip's parser; entries that do not read as one are skipped.
fn messages(log: &str) -> impl Iterator<Item = (f64, bool, Message)> + '_ {
    // The first entry starts the file, without a newline before it.
    let log = log.strip_prefix(&ENTRY[1..]).map_or(log, |rest| rest);
    log.split(ENTRY).filter_map(|entry| {
        let (stamp, rest) = entry.split_once('\n')?;
        let (how, text) = rest.split_once('\n')?;
        let sent = if how.contains("message sent") {
            true
        } else if how.contains("message received") {
            false
        } else {
            return None;
        };
        let text = text.trim_start_matches('\n');
        let message =
            Message::parse(Bytes::copy_from_slice(text.as_bytes()), &Limits::default()).ok()?;
        Some((time_of_day(stamp)?, sent, message))
    })
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
            "----------------------------------------------- 2026-12-02 {at}\n{how}\n\n{first}\r\nVia: SIP/2.0/UDP 127.0.0.1:6111;branch=z9hG4bK-1\r\nCall-ID: {call_id}\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n\n"
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
