//! Via header (RFC 3261 section 20.42 and 25.1; `rport` from RFC 3581).
//!
//! ```text
//! Via           = ( "Via" / "v" ) HCOLON via-parm *(COMMA via-parm)
//! via-parm      = sent-protocol LWS sent-by *( SEMI via-params )
//! via-params    = via-ttl / via-maddr / via-received / via-branch / via-extension
//! sent-protocol = protocol-name SLASH protocol-version SLASH transport
//! sent-by       = host [ COLON port ]
//! via-ttl       = "ttl" EQUAL ttl                      ; 0-255
//! via-received  = "received" EQUAL (IPv4address / IPv6address)
//! response-port = "rport" [EQUAL 1*DIGIT]              ; RFC 3581
//! ```

use std::fmt::{self, Write as _};
use std::net::IpAddr;

use super::params::Params;
use super::text::{skip_lws, skip_sws, split_commas, split_token, trim_lws, SplitCommas};
use super::uri::{parse_port, Host, HostPort};
use super::ParseError;

/// The branch prefix that marks an RFC 3261 branch (section 8.1.1.7).
pub const MAGIC_COOKIE: &str = "z9hG4bK";

const BAD: ParseError = ParseError::BadHeader("Via");

/// One Via value, borrowing from the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via<'a> {
    /// The transport as written (`UDP`, `TCP`, `TLS`, `WS`, ...).
    pub transport: &'a str,
    /// The sent-by host.
    pub host: Host<'a>,
    /// The sent-by port, when written.
    pub port: Option<u16>,
    /// The via-params, checked when parsed.
    pub params: Params<'a>,
}

/// Splits `SWS "/" SWS` off `s`.
fn slash(s: &str) -> Option<&str> {
    skip_sws(s).strip_prefix('/').map(skip_sws)
}

/// Parses a `received` value: an IPv4 or IPv6 address, brackets allowed (RFC 5118).
fn parse_received(v: &str) -> Option<IpAddr> {
    let v = v
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(v);
    v.parse().ok()
}

impl<'a> Via<'a> {
    /// Parses one via-parm (one element of a comma-separated Via value).
    pub fn parse(value: &'a str) -> Result<Self, ParseError> {
        let s = trim_lws(value);
        let (name, s) = split_token(s).ok_or(BAD)?;
        let (version, s) = split_token(slash(s).ok_or(BAD)?).ok_or(BAD)?;
        let (transport, s) = split_token(slash(s).ok_or(BAD)?).ok_or(BAD)?;
        if !name.eq_ignore_ascii_case("SIP") || version != "2.0" {
            return Err(BAD);
        }
        let (host, s) = Host::parse_prefix(skip_lws(s).ok_or(BAD)?).ok_or(BAD)?;
        let (port, s) = match skip_sws(s).strip_prefix(':') {
            Some(after) => {
                let after = skip_sws(after);
                let n = after.bytes().take_while(u8::is_ascii_digit).count();
                let (digits, rest) = after.split_at(n);
                (Some(parse_port(digits).ok_or(BAD)?), rest)
            }
            None => (None, s),
        };
        let (params, rest) = Params::parse_header(s, BAD)?;
        if !skip_sws(rest).is_empty() {
            return Err(BAD);
        }
        let via = Via {
            transport,
            host,
            port,
            params,
        };
        via.check_params()?;
        Ok(via)
    }

    /// Checks the values of the parameters the accessors interpret, so they need not fail.
    fn check_params(&self) -> Result<(), ParseError> {
        for p in self.params.iter() {
            let name = p.name;
            let ok = if name.eq_ignore_ascii_case("branch") {
                p.value.is_some_and(|v| !v.starts_with('"'))
            } else if name.eq_ignore_ascii_case("received") {
                p.value.and_then(parse_received).is_some()
            } else if name.eq_ignore_ascii_case("rport") {
                p.value.is_none_or(|v| parse_port(v).is_some())
            } else if name.eq_ignore_ascii_case("ttl") {
                p.value
                    .is_some_and(|v| v.len() <= 3 && v.parse::<u8>().is_ok())
            } else if name.eq_ignore_ascii_case("maddr") {
                p.value.and_then(Host::parse).is_some()
            } else {
                true
            };
            if !ok {
                return Err(BAD);
            }
        }
        Ok(())
    }

    /// The `branch` parameter.
    pub fn branch(&self) -> Option<&'a str> {
        self.params.get("branch").flatten()
    }

    /// True when the branch starts with the RFC 3261 magic cookie `z9hG4bK`.
    pub fn has_magic_cookie(&self) -> bool {
        self.branch().is_some_and(|b| b.starts_with(MAGIC_COOKIE))
    }

    /// The `received` parameter.
    pub fn received(&self) -> Option<IpAddr> {
        self.params
            .get("received")
            .flatten()
            .and_then(parse_received)
    }

    /// The `rport` parameter: `Some(None)` when present without a value (a request
    /// asking for it), `Some(Some(port))` once filled in.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params.get("rport").map(|v| v.and_then(parse_port))
    }

    /// The `maddr` parameter.
    pub fn maddr(&self) -> Option<Host<'a>> {
        self.params.get("maddr").flatten().and_then(Host::parse)
    }

    /// The `ttl` parameter.
    pub fn ttl(&self) -> Option<u8> {
        self.params
            .get("ttl")
            .flatten()
            .and_then(|v| v.parse().ok())
    }

    /// The sent-by host and port.
    pub fn sent_by(&self) -> HostPort<'a> {
        HostPort {
            host: self.host,
            port: self.port,
        }
    }

    /// Writes this Via with `received` set to `ip` and a value-less `rport` filled with
    /// `port` (RFC 3581 section 4), other parameters kept in order.
    pub fn write_with_received(&self, out: &mut String, ip: IpAddr, port: u16) {
        let _ = write!(out, "SIP/2.0/{} {}", self.transport, self.sent_by());
        for p in self.params.iter() {
            if p.name.eq_ignore_ascii_case("received") {
                continue;
            }
            if p.name.eq_ignore_ascii_case("rport") && p.value.is_none() {
                let _ = write!(out, ";{}={port}", p.name);
                continue;
            }
            out.push(';');
            out.push_str(p.name);
            if let Some(v) = p.value {
                out.push('=');
                out.push_str(v);
            }
        }
        let _ = write!(out, ";received={ip}");
    }
}

impl fmt::Display for Via<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SIP/2.0/{} {}{}",
            self.transport,
            self.sent_by(),
            self.params
        )
    }
}

/// Parses a comma-separated Via header value into its via-parms, in order.
///
/// An empty value yields one error: a Via header cannot be empty.
pub fn parse_via_list(value: &str) -> ViaList<'_> {
    ViaList {
        items: split_commas(value),
        empty: trim_lws(value).is_empty(),
    }
}

/// Iterator returned by [`parse_via_list`].
#[derive(Debug, Clone)]
pub struct ViaList<'a> {
    items: SplitCommas<'a>,
    empty: bool,
}

impl<'a> Iterator for ViaList<'a> {
    type Item = Result<Via<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.empty {
            self.empty = false;
            return Some(Err(BAD));
        }
        self.items.next().map(Via::parse)
    }
}

/// Appends a Via value a proxy pushes: `SIP/2.0/UDP host:port;branch=z9hG4bK...;rport`.
///
/// `branch` is written as given, so it must already start with [`MAGIC_COOKIE`];
/// `transport` is written in upper case.
pub fn write_via(
    out: &mut String,
    transport: &str,
    sent_by: HostPort<'_>,
    branch: &str,
    rport: bool,
) {
    out.push_str("SIP/2.0/");
    out.extend(transport.chars().map(|c| c.to_ascii_uppercase()));
    let _ = write!(out, " {sent_by};branch={branch}");
    if rport {
        out.push_str(";rport");
    }
}

/// Formats a Via value from parts; see [`write_via`].
pub fn format_via(transport: &str, sent_by: HostPort<'_>, branch: &str, rport: bool) -> String {
    let mut out = String::with_capacity(48 + branch.len());
    write_via(&mut out, transport, sent_by, branch, rport);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn via(s: &str) -> Via<'_> {
        match Via::parse(s) {
            Ok(v) => v,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn typical_via() {
        let v = via("SIP/2.0/UDP pc33.atlanta.com:5066;branch=z9hG4bK776asdhds;rport");
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.host, Host::Name("pc33.atlanta.com"));
        assert_eq!(v.port, Some(5066));
        assert_eq!(v.branch(), Some("z9hG4bK776asdhds"));
        assert!(v.has_magic_cookie());
        assert_eq!(v.rport(), Some(None));
        assert_eq!(v.received(), None);
        assert_eq!(v.ttl(), None);
        assert_eq!(v.maddr(), None);
        assert_eq!(v.sent_by().to_string(), "pc33.atlanta.com:5066");
        assert_eq!(
            v.to_string(),
            "SIP/2.0/UDP pc33.atlanta.com:5066;branch=z9hG4bK776asdhds;rport"
        );
    }

    #[test]
    fn all_known_params() {
        let v = via("SIP/2.0/TCP 10.0.0.1;BRANCH=1234;received=192.0.2.7;rport=40000;ttl=16;maddr=224.0.1.75;x-ext");
        assert_eq!(v.host, Host::Ipv4(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(v.port, None);
        assert_eq!(v.branch(), Some("1234"));
        assert!(!v.has_magic_cookie());
        assert_eq!(v.received(), Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))));
        assert_eq!(v.rport(), Some(Some(40000)));
        assert_eq!(v.ttl(), Some(16));
        assert_eq!(v.maddr(), Some(Host::Ipv4(Ipv4Addr::new(224, 0, 1, 75))));
        assert_eq!(v.params.get("x-ext"), Some(None));
    }

    #[test]
    fn ipv6_sent_by_and_received() {
        let v =
            via("SIP/2.0/UDP [2001:db8::9:1]:5070;received=[2001:db8::9:255];branch=z9hG4bKas3");
        assert_eq!(v.host, Host::Ipv6("2001:db8::9:1".parse().unwrap()));
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.received(), Some("2001:db8::9:255".parse().unwrap()));
        let v = via("SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255");
        assert_eq!(v.received(), Some("2001:db8::9:255".parse().unwrap()));
    }

    #[test]
    fn folded_whitespace_everywhere_lws_is_allowed() {
        let v = via(" SIP  /   2.0\r\n /UDP\r\n    192.0.2.2 : 5060 ;rport ;\r\n branch = z9hG4bK390skdjuw  ");
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.host, Host::Ipv4(Ipv4Addr::new(192, 0, 2, 2)));
        assert_eq!(v.port, Some(5060));
        assert_eq!(v.branch(), Some("z9hG4bK390skdjuw"));
        assert_eq!(v.rport(), Some(None));
    }

    #[test]
    fn malformed_vias() {
        for bad in [
            "",
            "SIP/2.0/UDP",
            "SIP/2.0/UDP ",
            "SIP/2.0 host.com",
            "SIP/3.0/UDP host.com",
            "HTTP/2.0/UDP host.com",
            "SIP/2.0/UDPhost.com",
            "SIP/2.0/UDP host.com:",
            "SIP/2.0/UDP host.com:70000",
            "SIP/2.0/UDP host.com:5060x",
            "SIP/2.0/UDP [2001:db8::1",
            "SIP/2.0/UDP [2001:db8:::1]",
            "SIP/2.0/UDP 2001:db8::1",
            "SIP/2.0/UDP host.com;branch",
            "SIP/2.0/UDP host.com;branch=",
            "SIP/2.0/UDP host.com;branch=\"z9hG4bK\"",
            "SIP/2.0/UDP host.com;received=host.com",
            "SIP/2.0/UDP host.com;rport=99999",
            "SIP/2.0/UDP host.com;ttl=256",
            "SIP/2.0/UDP host.com;ttl",
            "SIP/2.0/UDP host.com;maddr=-x",
            "SIP/2.0/UDP host.com;branch=z9hG4bK1 junk",
            "SIP/2.0/UDP host.com junk",
            "SIP/2.0/UDP host.com;;branch=1",
        ] {
            assert_eq!(Via::parse(bad).unwrap_err(), BAD, "{bad:?}");
        }
        assert_eq!(
            Via::parse("SIP/2.0/UDP h.com;x=\"open").unwrap_err(),
            ParseError::UnterminatedQuote
        );
        assert_eq!(BAD.to_string(), "Bad Via Header");
    }

    #[test]
    fn via_lists() {
        let list: Vec<_> = parse_via_list(
            "SIP/2.0/UDP a.example.com;branch=z9hG4bK1, SIP/2.0/TCP [::1]:5061;branch=z9hG4bK2,\r\n SIP/2.0/TLS b.example.com;branch=z9hG4bK3",
        )
        .collect::<Result<_, _>>()
        .unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list[1].host, Host::Ipv6(Ipv6Addr::LOCALHOST));
        assert_eq!(list[2].branch(), Some("z9hG4bK3"));
        let errs: Vec<_> = parse_via_list("SIP/2.0/UDP a.com,,SIP/2.0/UDP b.com").collect();
        assert!(errs[0].is_ok());
        assert_eq!(errs[1], Err(BAD));
        assert!(errs[2].is_ok());
        let empty: Vec<_> = parse_via_list("  ").collect();
        assert_eq!(empty, [Err(BAD)]);
    }

    #[test]
    fn writing_a_via() {
        let s = format_via(
            "udp",
            HostPort {
                host: Host::Name("edge1.example.net"),
                port: Some(5060),
            },
            "z9hG4bKabc",
            true,
        );
        assert_eq!(
            s,
            "SIP/2.0/UDP edge1.example.net:5060;branch=z9hG4bKabc;rport"
        );
        let v = via(&s);
        assert_eq!(v.branch(), Some("z9hG4bKabc"));
        assert_eq!(v.rport(), Some(None));

        let s = format_via(
            "TCP",
            HostPort {
                host: Host::Ipv6(Ipv6Addr::LOCALHOST),
                port: None,
            },
            "z9hG4bKx",
            false,
        );
        assert_eq!(s, "SIP/2.0/TCP [::1];branch=z9hG4bKx");
    }

    #[test]
    fn received_and_rport_are_filled_in() {
        let v = via("SIP/2.0/UDP 10.0.0.5:5060;received=1.1.1.1;rport;branch=z9hG4bKq");
        let mut out = String::new();
        v.write_with_received(&mut out, "203.0.113.9".parse().unwrap(), 34567);
        assert_eq!(
            out,
            "SIP/2.0/UDP 10.0.0.5:5060;rport=34567;branch=z9hG4bKq;received=203.0.113.9"
        );
        let v2 = via(&out);
        assert_eq!(v2.rport(), Some(Some(34567)));
        assert_eq!(v2.received(), Some("203.0.113.9".parse().unwrap()));
    }

    #[test]
    fn empty_params_and_elements_are_refused() {
        let items: Vec<_> = parse_via_list("SIP/2.0/UDP 192.0.2.15;;,;,,").collect();
        assert!(items.iter().all(Result::is_err));
        assert_eq!(items.len(), 4);
    }

    mod arbitrary {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn never_panics(s in "(SIP */ *2.0 */ *UDP +)?[ ;=,:\"a-z0-9\r\n\t.\\[\\]-]{0,40}") {
                for v in parse_via_list(&s).flatten() {
                    let shown = v.to_string();
                    prop_assert_eq!(Via::parse(&shown), Ok(v));
                }
            }
        }
    }
}
