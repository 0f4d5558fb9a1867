//! Trusted sources: the networks (the edges) the registrar accepts SIP from.

use std::net::IpAddr;

use ipnet::IpNet;

/// A list of CIDR networks; an address is trusted when one of them contains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trusted {
    nets: Vec<IpNet>,
}

impl Trusted {
    /// Trusts exactly `nets`.
    pub fn new(nets: Vec<IpNet>) -> Self {
        Trusted { nets }
    }

    /// Whether `addr` lies in a trusted network.
    ///
    /// An IPv4 address seen on a dual-stack socket as `::ffff:a.b.c.d` is checked as
    /// the IPv4 address it is, so IPv4 CIDRs keep working there.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        self.nets.iter().any(|net| net.contains(&addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(nets: &[&str]) -> Trusted {
        Trusted::new(nets.iter().filter_map(|n| n.parse().ok()).collect())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn cidrs_decide() {
        let t = trusted(&["10.1.0.0/16", "192.0.2.7/32", "fd00::/8"]);
        assert!(t.contains(ip("10.1.200.3")));
        assert!(!t.contains(ip("10.2.0.1")));
        assert!(t.contains(ip("192.0.2.7")));
        assert!(!t.contains(ip("192.0.2.8")));
        assert!(t.contains(ip("fd12::1")));
        assert!(!t.contains(ip("2001:db8::1")));
        assert!(t.contains(ip("::ffff:10.1.0.9")));
        assert!(!trusted(&[]).contains(ip("127.0.0.1")));
        assert!(trusted(&["0.0.0.0/0"]).contains(ip("203.0.113.9")));
    }
}
