//! The reconcile decision between the two versions of one row (pure): last-writer-wins by
//! `last_modified`, then `expires`, then the configured server priority.

use std::cmp::Ordering;

/// Which of the two servers of the pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The first server in the config.
    A,
    /// The second server in the config.
    B,
}

impl Side {
    /// The other server.
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// A point in time as MariaDB's DATETIME(6) holds it; field order makes the derived `Ord` chronological.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp {
    /// Year.
    pub year: u16,
    /// Month 1-12.
    pub month: u8,
    /// Day 1-31.
    pub day: u8,
    /// Hour.
    pub hour: u8,
    /// Minute.
    pub minute: u8,
    /// Second.
    pub second: u8,
    /// Microseconds.
    pub micros: u32,
}

impl Stamp {
    /// Microseconds since 1970-01-01 (proleptic Gregorian calendar), for differences between stamps.
    pub fn micros(&self) -> i64 {
        // Howard Hinnant's days_from_civil.
        let (m, d) = (i64::from(self.month), i64::from(self.day));
        let y = i64::from(self.year) - i64::from(m <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        let secs = days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second);
        secs * 1_000_000 + i64::from(self.micros)
    }

    /// Reads a DATETIME value as the driver returns it (binary `Date`, or text `YYYY-MM-DD hh:mm:ss[.ffffff]`).
    pub fn from_value(v: &mysql_async::Value) -> Option<Stamp> {
        match v {
            mysql_async::Value::Date(year, month, day, hour, minute, second, micros) => {
                Some(Stamp {
                    year: *year,
                    month: *month,
                    day: *day,
                    hour: *hour,
                    minute: *minute,
                    second: *second,
                    micros: *micros,
                })
            }
            mysql_async::Value::Bytes(b) => Stamp::parse(std::str::from_utf8(b).ok()?),
            _ => None,
        }
    }

    /// Parses `YYYY-MM-DD hh:mm:ss[.ffffff]`.
    pub fn parse(s: &str) -> Option<Stamp> {
        let (date, time) = s.trim().split_once(' ')?;
        let mut d = date.splitn(3, '-');
        let (year, month, day) = (
            d.next()?.parse().ok()?,
            d.next()?.parse().ok()?,
            d.next()?.parse().ok()?,
        );
        let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
        let mut t = hms.splitn(3, ':');
        let (hour, minute, second) = (
            t.next()?.parse().ok()?,
            t.next()?.parse().ok()?,
            t.next()?.parse().ok()?,
        );
        let micros = if frac.is_empty() {
            0
        } else if frac.len() <= 6 && frac.bytes().all(|c| c.is_ascii_digit()) {
            format!("{frac:0<6}").parse().ok()?
        } else {
            return None;
        };
        Some(Stamp {
            year,
            month,
            day,
            hour,
            minute,
            second,
            micros,
        })
    }
}

/// What the reconcile needs to know about one side's copy of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    /// `last_modified` of the row.
    pub last_modified: Stamp,
    /// `expires` of the row.
    pub expires: Stamp,
    /// The row expired longer ago than the grace period (computed by the server holding it).
    pub gone: bool,
}

/// What to do about one key whose rows differ between the servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Both copies are identical: nothing to do.
    Nothing,
    /// Write the winner's row over the loser's copy, only if the loser still holds an older version.
    Overwrite {
        /// Server whose row is kept.
        winner: Side,
        /// True when the versions are equal and the priority decided (the version check then admits equality).
        tie: bool,
    },
    /// Insert the row, present only on `from`, into the other server.
    Copy {
        /// The server that has the row.
        from: Side,
    },
    /// The row exists only on `on` and expired past the grace period: remove it there too.
    Remove {
        /// The server that still has the row.
        on: Side,
    },
}

/// Orders two versions: the newer `last_modified` wins, then the later `expires`.
pub fn compare(a: &Version, b: &Version) -> Ordering {
    a.last_modified
        .cmp(&b.last_modified)
        .then(a.expires.cmp(&b.expires))
}

/// Decides the fix for one key. `same` says whether the full rows are equal; `priority` wins ties.
pub fn decide(a: Option<&Version>, b: Option<&Version>, same: bool, priority: Side) -> Action {
    match (a, b) {
        (None, None) => Action::Nothing,
        (Some(_), Some(_)) if same => Action::Nothing,
        (Some(va), Some(vb)) => match compare(va, vb) {
            Ordering::Greater => Action::Overwrite {
                winner: Side::A,
                tie: false,
            },
            Ordering::Less => Action::Overwrite {
                winner: Side::B,
                tie: false,
            },
            Ordering::Equal => Action::Overwrite {
                winner: priority,
                tie: true,
            },
        },
        (Some(v), None) => lonely(v, Side::A),
        (None, Some(v)) => lonely(v, Side::B),
    }
}

fn lonely(v: &Version, on: Side) -> Action {
    if v.gone {
        Action::Remove { on }
    } else {
        Action::Copy { from: on }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: u8, micros: u32) -> Stamp {
        Stamp {
            year: 2026,
            month: 11,
            day: 23,
            hour: 18,
            minute: 0,
            second,
            micros,
        }
    }

    fn v(lm: (u8, u32), exp: (u8, u32)) -> Version {
        Version {
            last_modified: at(lm.0, lm.1),
            expires: at(exp.0, exp.1),
            gone: false,
        }
    }

    #[test]
    fn newer_last_modified_wins_even_by_one_microsecond() {
        let a = v((10, 1), (40, 0));
        let b = v((10, 0), (50, 0));
        assert_eq!(
            decide(Some(&a), Some(&b), false, Side::B),
            Action::Overwrite {
                winner: Side::A,
                tie: false
            }
        );
        assert_eq!(
            decide(Some(&b), Some(&a), false, Side::A),
            Action::Overwrite {
                winner: Side::B,
                tie: false
            }
        );
    }

    #[test]
    fn equal_last_modified_falls_back_to_expires_then_priority() {
        let a = v((10, 0), (40, 0));
        let b = v((10, 0), (41, 0));
        assert_eq!(
            decide(Some(&a), Some(&b), false, Side::A),
            Action::Overwrite {
                winner: Side::B,
                tie: false
            }
        );
        assert_eq!(
            decide(Some(&a), Some(&a), false, Side::B),
            Action::Overwrite {
                winner: Side::B,
                tie: true
            }
        );
        assert_eq!(
            decide(Some(&a), Some(&a), false, Side::A),
            Action::Overwrite {
                winner: Side::A,
                tie: true
            }
        );
    }

    #[test]
    fn identical_rows_need_nothing() {
        let a = v((10, 0), (40, 0));
        assert_eq!(decide(Some(&a), Some(&a), true, Side::A), Action::Nothing);
        assert_eq!(decide(None, None, false, Side::A), Action::Nothing);
    }

    #[test]
    fn missing_rows_are_copied_unless_long_expired() {
        let live = v((10, 0), (40, 0));
        let gone = Version { gone: true, ..live };
        assert_eq!(
            decide(Some(&live), None, false, Side::B),
            Action::Copy { from: Side::A }
        );
        assert_eq!(
            decide(None, Some(&live), false, Side::A),
            Action::Copy { from: Side::B }
        );
        assert_eq!(
            decide(Some(&gone), None, false, Side::A),
            Action::Remove { on: Side::A }
        );
        assert_eq!(
            decide(None, Some(&gone), false, Side::A),
            Action::Remove { on: Side::B }
        );
    }

    #[test]
    fn stamp_arithmetic_and_parsing() {
        let epoch = Stamp {
            year: 1970,
            month: 1,
            day: 1,
            hour: 0,
            minute: 0,
            second: 0,
            micros: 0,
        };
        assert_eq!(epoch.micros(), 0);
        let s = Stamp::parse("2026-11-23 18:00:01.5").unwrap();
        assert_eq!(s, at(1, 500_000));
        assert_eq!(s.micros() - at(0, 0).micros(), 1_500_000);
        // 2000-03-01 is 11017 days after the epoch (leap day 2000-02-29 included).
        let m = Stamp::parse("2000-03-01 00:00:00").unwrap();
        assert_eq!(m.micros(), 11_017 * 86_400 * 1_000_000);
        assert_eq!(Stamp::parse("2026-11-23"), None);
        assert_eq!(Stamp::parse("2026-11-23 1:2:3.1234567"), None);
        let v = mysql_async::Value::Date(2026, 11, 23, 18, 0, 1, 500_000);
        assert_eq!(Stamp::from_value(&v), Some(s));
        assert_eq!(
            Stamp::from_value(&mysql_async::Value::Bytes(
                b"2026-11-23 18:00:01.500000".to_vec()
            )),
            Some(s)
        );
        assert_eq!(Stamp::from_value(&mysql_async::Value::NULL), None);
    }

    #[test]
    fn stamps_order_chronologically() {
        let earlier = Stamp {
            year: 2025,
            month: 12,
            day: 31,
            hour: 23,
            minute: 59,
            second: 59,
            micros: 999_999,
        };
        assert!(earlier < at(0, 0));
        assert!(at(0, 1) > at(0, 0));
    }
}
