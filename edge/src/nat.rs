//! NAT detection (what Kamailio's nathelper `nat_uac_test` checks): a phone is behind
//! NAT when the address it writes in its Via or Contact differs from the source address
//! the edge sees, or is a private address.

use std::net::{IpAddr, SocketAddr};

use hasip::sip::uri::Host;

/// The default SIP port, assumed when a Via or Contact leaves the port out.
const SIP_PORT: u16 = 5060;

/// Why a phone looks NATed; each flag is one test of nathelper's `nat_uac_test`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NatFindings {
    /// The Via sent-by address or port is not the source address.
    pub via_differs: bool,
    /// The Contact address or port is not the source address.
    pub contact_differs: bool,
    /// The Via or Contact names a private (RFC 1918, RFC 6598, link-local, ULA) address.
    pub private_address: bool,
}

impl NatFindings {
    /// Whether any test says NAT.
    pub fn is_natted(&self) -> bool {
        self.via_differs || self.contact_differs || self.private_address
    }
}

/// A host and port as written in a header.
#[derive(Debug, Clone, Copy)]
pub struct Written<'a> {
    /// The host.
    pub host: Host<'a>,
    /// The port, when written.
    pub port: Option<u16>,
}

/// Runs the tests on the top Via and the first Contact (if any) against the source.
pub fn detect(source: SocketAddr, via: Written<'_>, contact: Option<Written<'_>>) -> NatFindings {
    let differs = |w: &Written<'_>| match w.host.ip() {
        Some(ip) => ip != source.ip() || w.port.unwrap_or(SIP_PORT) != source.port(),
        // A name cannot be compared with an address: it says nothing about NAT.
        None => false,
    };
    let private = |w: &Written<'_>| w.host.ip().is_some_and(is_private);
    NatFindings {
        via_differs: differs(&via),
        contact_differs: contact.as_ref().is_some_and(differs),
        private_address: private(&via) || contact.as_ref().is_some_and(private),
    }
}

/// Whether an address is private, shared (CGN) or link-local: one a phone on the
/// Internet cannot be reached at. Loopback is not counted: a phone there is on this host.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private()
                || v4.is_link_local()
                // RFC 6598 shared address space, used by carrier-grade NAT.
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments().first().copied().unwrap_or(0);
            // fc00::/7 unique local, fe80::/10 link-local.
            (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(host: &str, port: Option<u16>) -> Written<'_> {
        Written {
            host: Host::parse(host).unwrap_or(Host::Name("invalid")),
            port,
        }
    }

    fn src(s: &str) -> SocketAddr {
        s.parse().unwrap_or(SocketAddr::from(([0; 4], 0)))
    }

    #[test]
    fn a_public_phone_that_writes_its_own_address_is_not_natted() {
        let f = detect(
            src("198.51.100.7:5060"),
            w("198.51.100.7", None),
            Some(w("198.51.100.7", Some(5060))),
        );
        assert_eq!(f, NatFindings::default());
        assert!(!f.is_natted());
    }

    #[test]
    fn a_private_via_behind_nat_is_caught_three_ways() {
        let f = detect(
            src("198.51.100.7:40123"),
            w("192.168.1.20", Some(5060)),
            Some(w("192.168.1.20", Some(5060))),
        );
        assert!(f.via_differs && f.contact_differs && f.private_address);
        assert!(f.is_natted());
    }

    #[test]
    fn a_port_change_alone_means_nat() {
        let f = detect(
            src("198.51.100.7:40123"),
            w("198.51.100.7", Some(5060)),
            None,
        );
        assert!(f.via_differs);
        assert!(!f.contact_differs && !f.private_address);
    }

    #[test]
    fn names_are_not_compared() {
        let f = detect(
            src("198.51.100.7:5060"),
            w("phone.example.com", None),
            Some(w("phone.example.com", None)),
        );
        assert!(!f.is_natted());
    }

    #[test]
    fn private_ranges() {
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.0.1",
            "100.64.0.1",
            "100.127.255.255",
            "169.254.1.1",
            "fd00::1",
            "fe80::1",
        ] {
            assert!(
                is_private(ip.parse().unwrap_or(IpAddr::from([8, 8, 8, 8]))),
                "{ip}"
            );
        }
        for ip in ["8.8.8.8", "172.32.0.1", "100.128.0.1", "2001:db8::1"] {
            assert!(
                !is_private(ip.parse().unwrap_or(IpAddr::from([10, 0, 0, 1]))),
                "{ip}"
            );
        }
    }
}
