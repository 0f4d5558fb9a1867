//! A binding: one row of `location` (Kamailio usrloc version 9), its deterministic
//! `ruid` key, and the database clock it is stamped with.

use sha2::{Digest, Sha256};

/// An address-of-record: the normalised user and domain of the To-URI.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Aor {
    /// The user part, as stored in `location.username`.
    pub username: String,
    /// The host part, as stored in `location.domain`.
    pub domain: String,
}

impl Aor {
    /// Builds an AoR from its user and domain parts.
    pub fn new(username: impl Into<String>, domain: impl Into<String>) -> Self {
        Aor {
            username: username.into(),
            domain: domain.into(),
        }
    }
}

impl std::fmt::Display for Aor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.username, self.domain)
    }
}

/// A point on the database server's clock, in microseconds since 1970-01-01 00:00:00 of
/// its DATETIME values.
///
/// Every time the registrar stores or compares comes from the active master's `NOW(6)`,
/// never from the registrar host, so operators' `expires > NOW()` queries and ours agree.
/// Like Kamailio, DATETIMEs are in the server's time zone; run the servers in UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DbTime(i64);

/// Microseconds in a second.
const MICROS: i64 = 1_000_000;
/// Seconds in a day.
const DAY_SECS: i64 = 86_400;

impl DbTime {
    /// The time `micros` microseconds after 1970-01-01 00:00:00.
    pub const fn from_micros(micros: i64) -> Self {
        DbTime(micros)
    }

    /// Microseconds since 1970-01-01 00:00:00.
    pub const fn micros(self) -> i64 {
        self.0
    }

    /// This time plus `secs` seconds.
    pub fn plus_secs(self, secs: u32) -> Self {
        DbTime(
            self.0
                .saturating_add(i64::from(secs).saturating_mul(MICROS)),
        )
    }

    /// Whole seconds from `self` until `later`, 0 if `later` is not after `self`.
    pub fn secs_until(self, later: DbTime) -> u32 {
        let secs = later.0.saturating_sub(self.0) / MICROS;
        u32::try_from(secs.max(0)).unwrap_or(u32::MAX)
    }

    /// The time of a civil date and time, `None` when a field is out of range.
    pub fn from_civil(
        year: u16,
        month: u8,
        day: u8,
        hour: u8,
        minute: u8,
        second: u8,
        micros: u32,
    ) -> Option<Self> {
        if !(1..=12).contains(&month)
            || !(1..=31).contains(&day)
            || hour > 23
            || minute > 59
            || second > 59
            || micros > 999_999
        {
            return None;
        }
        let days = days_from_civil(i64::from(year), i64::from(month), i64::from(day));
        let secs =
            days * DAY_SECS + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second);
        Some(DbTime(secs * MICROS + i64::from(micros)))
    }

    /// The civil date and time: (year, month, day, hour, minute, second, microseconds).
    pub fn to_civil(self) -> (u16, u8, u8, u8, u8, u8, u32) {
        let secs = self.0.div_euclid(MICROS);
        let micros = self.0.rem_euclid(MICROS);
        let days = secs.div_euclid(DAY_SECS);
        let in_day = secs.rem_euclid(DAY_SECS);
        let (year, month, day) = civil_from_days(days);
        // DATETIME spans years 1000..=9999; clamp rather than wrap outside it.
        let year = u16::try_from(year.clamp(0, 9999)).unwrap_or(9999);
        (
            year,
            u8::try_from(month).unwrap_or(1),
            u8::try_from(day).unwrap_or(1),
            u8::try_from(in_day / 3600).unwrap_or(0),
            u8::try_from(in_day % 3600 / 60).unwrap_or(0),
            u8::try_from(in_day % 60).unwrap_or(0),
            u32::try_from(micros).unwrap_or(0),
        )
    }

    /// Parses MySQL's text form `YYYY-MM-DD HH:MM:SS[.ffffff]`.
    pub fn parse(text: &str) -> Option<Self> {
        let (date, time) = text.trim().split_once(' ')?;
        let mut d = date.splitn(3, '-');
        let year = d.next()?.parse().ok()?;
        let month = d.next()?.parse().ok()?;
        let day = d.next()?.parse().ok()?;
        let (hms, frac) = match time.split_once('.') {
            Some((hms, frac)) => (hms, frac),
            None => (time, ""),
        };
        let mut t = hms.splitn(3, ':');
        let hour = t.next()?.parse().ok()?;
        let minute = t.next()?.parse().ok()?;
        let second = t.next()?.parse().ok()?;
        if frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let micros = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<6}").parse().ok()?
        };
        Self::from_civil(year, month, day, hour, minute, second, micros)
    }
}

impl std::fmt::Display for DbTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (y, mo, d, h, mi, s, us) = self.to_civil();
        write!(f, "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}")
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month, day) of a count of days since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// What makes two REGISTERed contacts the same binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindingKey<'a> {
    /// RFC 5626: the phone's `+sip.instance` and its `reg-id` (0 when it has none or
    /// outbound does not apply).
    Flow {
        /// The `+sip.instance` value.
        instance: &'a str,
        /// The `reg-id`, 0 for none.
        reg_id: u32,
    },
    /// RFC 3261: the Contact URI itself.
    Contact(&'a str),
}

/// The deterministic `ruid` of a binding: hex SHA-256 over the AoR and its key.
///
/// Both masters compute the same value for the same binding, so an upsert on either
/// one hits the same `UNIQUE(ruid)` row. Fields are NUL-separated and the key kind is
/// tagged, so no two different inputs hash the same text.
pub fn ruid(aor: &Aor, key: BindingKey<'_>) -> String {
    let mut hash = Sha256::new();
    hash.update(b"hasip-ruid-1\0");
    hash.update(aor.username.as_bytes());
    hash.update(b"\0");
    hash.update(aor.domain.as_bytes());
    match key {
        BindingKey::Flow { instance, reg_id } => {
            hash.update(b"\0i\0");
            hash.update(instance.as_bytes());
            hash.update(b"\0");
            hash.update(reg_id.to_string().as_bytes());
        }
        BindingKey::Contact(contact) => {
            hash.update(b"\0c\0");
            hash.update(contact.as_bytes());
        }
    }
    hex::encode(hash.finalize())
}

/// One registered contact of an AoR, as stored in `location`.
#[derive(Clone, Debug, PartialEq)]
pub struct Binding {
    /// The deterministic key (see [`ruid`]).
    pub ruid: String,
    /// The address-of-record.
    pub aor: Aor,
    /// The Contact URI.
    pub contact: String,
    /// Where the REGISTER came from (`received`), as Kamailio stores it.
    pub received: Option<String>,
    /// The Path header (RFC 3327), comma-joined as received.
    pub path: Option<String>,
    /// When the binding expires.
    pub expires: DbTime,
    /// The q-value in thousandths (1000 = 1.0); the column keeps two decimals.
    pub q: u16,
    /// The Call-ID of the REGISTER that last wrote it.
    pub call_id: String,
    /// The CSeq number of the REGISTER that last wrote it.
    pub cseq: u32,
    /// When it was last written: its version for last-writer-wins.
    pub last_modified: DbTime,
    /// The User-Agent header.
    pub user_agent: String,
    /// The local socket the REGISTER arrived on.
    pub socket: Option<String>,
    /// The `+sip.instance` Contact parameter (RFC 5626).
    pub instance: Option<String>,
    /// The `reg-id` Contact parameter, 0 when none applies.
    pub reg_id: u32,
}

impl Binding {
    /// Whether the binding is still live at `now`.
    pub fn is_live(&self, now: DbTime) -> bool {
        self.expires > now
    }

    /// The seconds it has left at `now`, for the 200 OK's `expires` parameter.
    pub fn remaining(&self, now: DbTime) -> u32 {
        now.secs_until(self.expires)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        let t = DbTime::from_civil(2026, 11, 23, 18, 5, 52, 123_456);
        assert_eq!(
            t.map(DbTime::to_civil),
            Some((2026, 11, 23, 18, 5, 52, 123_456))
        );
        assert_eq!(DbTime::from_civil(1970, 1, 1, 0, 0, 0, 0), Some(DbTime(0)));
        assert_eq!(
            DbTime::from_civil(2000, 3, 1, 0, 0, 1, 0).map(DbTime::micros),
            Some(951_868_801_000_000)
        );
        assert_eq!(DbTime::from_civil(2000, 13, 1, 0, 0, 0, 0), None);
    }

    #[test]
    fn parse_text_datetimes() {
        let t = DbTime::parse("2026-11-23 18:05:52.120000");
        assert_eq!(t, DbTime::from_civil(2026, 11, 23, 18, 5, 52, 120_000));
        assert_eq!(
            DbTime::parse("2026-11-23 18:05:52.12"),
            DbTime::from_civil(2026, 11, 23, 18, 5, 52, 120_000)
        );
        assert_eq!(
            DbTime::parse("2000-01-01 00:00:01"),
            DbTime::from_civil(2000, 1, 1, 0, 0, 1, 0)
        );
        assert_eq!(
            t.map(|t| t.to_string()).as_deref(),
            Some("2026-11-23 18:05:52.120000")
        );
        assert_eq!(DbTime::parse("2026-11-23"), None);
        assert_eq!(DbTime::parse("2026-11-23 18:05:52.1234567"), None);
        assert_eq!(DbTime::parse("x-11-23 18:05:52"), None);
    }

    #[test]
    fn remaining_seconds() {
        let now = DbTime::from_micros(10 * MICROS);
        assert_eq!(now.secs_until(now.plus_secs(3600)), 3600);
        assert_eq!(now.plus_secs(5).secs_until(now), 0);
    }

    #[test]
    fn ruid_is_deterministic_and_keyed() {
        let aor = Aor::new("alice", "example.com");
        let a = ruid(&aor, BindingKey::Contact("sip:a@10.0.0.1"));
        assert_eq!(a, ruid(&aor, BindingKey::Contact("sip:a@10.0.0.1")));
        assert_eq!(a.len(), 64);
        assert_ne!(a, ruid(&aor, BindingKey::Contact("sip:a@10.0.0.2")));
        let flow = |instance, reg_id| ruid(&aor, BindingKey::Flow { instance, reg_id });
        assert_ne!(flow("<urn:uuid:1>", 1), flow("<urn:uuid:1>", 2));
        assert_ne!(flow("<urn:uuid:1>", 1), flow("<urn:uuid:2>", 1));
        assert_ne!(
            ruid(&Aor::new("alice", "example.com"), BindingKey::Contact("x")),
            ruid(&Aor::new("alic", "eexample.com"), BindingKey::Contact("x"))
        );
    }
}
