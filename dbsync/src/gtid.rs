//! MariaDB GTID positions (`domain-server-seqno`, comma-separated lists), as pure values.

use std::fmt;
use std::str::FromStr;

/// One global transaction id: `domain_id-server_id-seq_no`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Gtid {
    /// gtid_domain_id of the server that wrote it.
    pub domain: u32,
    /// server_id of the server that wrote it.
    pub server: u32,
    /// Sequence number inside the domain.
    pub seq: u64,
}

/// Why a GTID text did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed GTID {0:?}")]
pub struct BadGtid(pub String);

impl FromStr for Gtid {
    type Err = BadGtid;
    fn from_str(s: &str) -> Result<Self, BadGtid> {
        let bad = || BadGtid(s.to_owned());
        let mut parts = s.trim().splitn(3, '-');
        let domain = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let server = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let seq = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        Ok(Gtid {
            domain,
            server,
            seq,
        })
    }
}

impl fmt::Display for Gtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.seq)
    }
}

/// A GTID position: at most one GTID per domain, kept sorted by domain.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct GtidPos(Vec<Gtid>);

impl FromStr for GtidPos {
    type Err = BadGtid;
    fn from_str(s: &str) -> Result<Self, BadGtid> {
        let mut pos = GtidPos::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            pos.set(part.parse()?);
        }
        Ok(pos)
    }
}

impl fmt::Display for GtidPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, g) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{g}")?;
        }
        Ok(())
    }
}

impl GtidPos {
    /// The GTID recorded for `domain`, if any.
    pub fn get(&self, domain: u32) -> Option<Gtid> {
        self.0.iter().copied().find(|g| g.domain == domain)
    }

    /// Replaces the GTID of `g.domain` with `g` (this is how a skip moves a replica past one group).
    pub fn set(&mut self, g: Gtid) {
        match self.0.binary_search_by_key(&g.domain, |x| x.domain) {
            Ok(i) => {
                if let Some(slot) = self.0.get_mut(i) {
                    *slot = g;
                }
            }
            Err(i) => self.0.insert(i, g),
        }
    }

    /// Only the given domain (what a peer must wait for is what this server itself wrote).
    pub fn only_domain(&self, domain: u32) -> GtidPos {
        GtidPos(
            self.0
                .iter()
                .copied()
                .filter(|g| g.domain == domain)
                .collect(),
        )
    }

    /// True when this position holds nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when `g` is already covered by this position (same domain, sequence not lower).
    pub fn covers(&self, g: Gtid) -> bool {
        self.get(g.domain).is_some_and(|have| have.seq >= g.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_lists() {
        let p: GtidPos = "2-2-7, 1-1-15".parse().unwrap_or_default();
        assert_eq!(p.to_string(), "1-1-15,2-2-7");
        assert_eq!(
            p.get(2),
            Some(Gtid {
                domain: 2,
                server: 2,
                seq: 7
            })
        );
        assert_eq!("".parse::<GtidPos>(), Ok(GtidPos::default()));
    }

    #[test]
    fn rejects_garbage() {
        assert!("1-2".parse::<Gtid>().is_err());
        assert!("a-b-c".parse::<Gtid>().is_err());
        assert!("1-1-1,x".parse::<GtidPos>().is_err());
        assert!("-1-1-1".parse::<Gtid>().is_err());
    }

    #[test]
    fn skip_replaces_only_the_failing_domain() {
        let mut p: GtidPos = "1-1-14,2-2-7".parse().unwrap_or_default();
        p.set(Gtid {
            domain: 1,
            server: 1,
            seq: 15,
        });
        assert_eq!(p.to_string(), "1-1-15,2-2-7");
        p.set(Gtid {
            domain: 3,
            server: 9,
            seq: 1,
        });
        assert_eq!(p.to_string(), "1-1-15,2-2-7,3-9-1");
        assert!(p.covers(Gtid {
            domain: 1,
            server: 1,
            seq: 15
        }));
        assert!(!p.covers(Gtid {
            domain: 1,
            server: 1,
            seq: 16
        }));
        assert!(!p.covers(Gtid {
            domain: 4,
            server: 1,
            seq: 1
        }));
        assert_eq!(p.only_domain(2).to_string(), "2-2-7");
    }
}
