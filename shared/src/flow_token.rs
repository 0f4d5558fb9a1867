//! Flow tokens (RFC 5626 section 5.2): an edge's flow, sealed with an HMAC, carried as the
//! user part of the edge's Path and Record-Route URIs (`<sip:TOKEN@edge;lr;ob>`).
//!
//! Layout before base64url (no padding), all integers big endian:
//!
//! ```text
//! version (1) | flags (1) | remote ip (4|16) | remote port (2) | local ip (4|16)
//!   | local port (2) | [conn id (8)] | HMAC-SHA256(secret, label || all before) [..16]
//! ```
//!
//! `flags`: bit 0 TCP, bit 1 remote is IPv6, bit 2 local is IPv6, bit 3 a conn id follows.
//! base64url uses only `A-Z a-z 0-9 - _`, all unreserved in a SIP URI user part
//! (RFC 3261 section 25.1), so the token needs no escaping.
//!
//! IPv6 flow labels and scope ids are not carried: a decoded flow has them zero.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::transport::{ConnId, Flow, Transport};

type HmacSha256 = Hmac<Sha256>;

/// Separates flow token MACs from other MACs made with the same secret (nonces).
const LABEL: &[u8] = b"hasip flow token v1";
const VERSION: u8 = 1;
const MAC_LEN: usize = 16;
const FLAG_TCP: u8 = 0b0001;
const FLAG_REMOTE_V6: u8 = 0b0010;
const FLAG_LOCAL_V6: u8 = 0b0100;
const FLAG_CONN: u8 = 0b1000;
const KNOWN_FLAGS: u8 = FLAG_TCP | FLAG_REMOTE_V6 | FLAG_LOCAL_V6 | FLAG_CONN;
/// The largest body: version, flags, two IPv6 socket addresses and a conn id.
const MAX_BODY_LEN: usize = 2 + 2 * (16 + 2) + 8;
/// Longer input cannot be a token; refused before any decoding.
const MAX_TOKEN_LEN: usize = ((MAX_BODY_LEN + MAC_LEN) * 4).div_ceil(3);

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlowTokenError {
    /// Not base64url, or too short or too long to be a token.
    #[error("flow token is malformed")]
    Malformed,
    /// The HMAC does not match: forged, altered, or made under another secret.
    #[error("flow token has a bad MAC")]
    BadMac,
    /// Genuine, but its layout is not one this version knows.
    #[error("flow token has an unknown version or layout")]
    Unsupported,
}

/// Encodes and decodes flow tokens under one secret shared by the edges.
#[derive(Clone)]
pub struct FlowTokenKey {
    mac: HmacSha256,
}

impl fmt::Debug for FlowTokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key material stays out of logs.
        f.write_str("FlowTokenKey { .. }")
    }
}

impl FlowTokenKey {
    /// A key from the shared secret (use at least 32 random bytes).
    pub fn new(secret: &[u8]) -> Self {
        let mac = match HmacSha256::new_from_slice(secret) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        FlowTokenKey { mac }
    }

    /// The token for `flow`, safe to use unescaped as a SIP URI user part.
    pub fn encode(&self, flow: &Flow) -> String {
        let mut buf = Vec::with_capacity(MAX_BODY_LEN + MAC_LEN);
        let mut flags = 0;
        if flow.transport == Transport::Tcp {
            flags |= FLAG_TCP;
        }
        if flow.remote.is_ipv6() {
            flags |= FLAG_REMOTE_V6;
        }
        if flow.local.is_ipv6() {
            flags |= FLAG_LOCAL_V6;
        }
        if flow.conn.is_some() {
            flags |= FLAG_CONN;
        }
        buf.push(VERSION);
        buf.push(flags);
        put_addr(&mut buf, flow.remote);
        put_addr(&mut buf, flow.local);
        if let Some(ConnId(id)) = flow.conn {
            buf.extend_from_slice(&id.to_be_bytes());
        }
        let tag = self.tag(&buf);
        buf.extend_from_slice(&tag[..MAC_LEN]);
        URL_SAFE_NO_PAD.encode(&buf)
    }

    /// The flow in `token`, if the token is genuine.
    pub fn decode(&self, token: &str) -> Result<Flow, FlowTokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(FlowTokenError::Malformed);
        }
        let raw = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| FlowTokenError::Malformed)?;
        let body_len = raw
            .len()
            .checked_sub(MAC_LEN)
            .ok_or(FlowTokenError::Malformed)?;
        let (body, tag) = raw.split_at(body_len);
        let mut mac = self.mac.clone();
        mac.update(LABEL);
        mac.update(body);
        // verify_truncated_left compares in constant time.
        mac.verify_truncated_left(tag)
            .map_err(|_| FlowTokenError::BadMac)?;
        parse_body(body).ok_or(FlowTokenError::Unsupported)
    }

    fn tag(&self, body: &[u8]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(LABEL);
        mac.update(body);
        mac.finalize().into_bytes().into()
    }
}

fn put_addr(buf: &mut Vec<u8>, addr: SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => buf.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => buf.extend_from_slice(&ip.octets()),
    }
    buf.extend_from_slice(&addr.port().to_be_bytes());
}

/// Reads a body whose MAC was good; `None` if its layout is unknown.
fn parse_body(body: &[u8]) -> Option<Flow> {
    let mut r = Reader(body);
    if r.take::<1>()? != [VERSION] {
        return None;
    }
    let [flags] = r.take::<1>()?;
    if flags & !KNOWN_FLAGS != 0 {
        return None;
    }
    let transport = if flags & FLAG_TCP != 0 {
        Transport::Tcp
    } else {
        Transport::Udp
    };
    let remote = r.addr(flags & FLAG_REMOTE_V6 != 0)?;
    let local = r.addr(flags & FLAG_LOCAL_V6 != 0)?;
    let conn = if flags & FLAG_CONN != 0 {
        Some(ConnId(u64::from_be_bytes(r.take::<8>()?)))
    } else {
        None
    };
    if !r.0.is_empty() {
        return None;
    }
    Some(Flow {
        transport,
        local,
        remote,
        conn,
    })
}

/// Takes fixed-size fields off the front of a byte slice, never past its end.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    fn addr(&mut self, v6: bool) -> Option<SocketAddr> {
        let ip = if v6 {
            IpAddr::V6(Ipv6Addr::from(self.take::<16>()?))
        } else {
            IpAddr::V4(Ipv4Addr::from(self.take::<4>()?))
        };
        let port = u16::from_be_bytes(self.take::<2>()?);
        Some(SocketAddr::new(ip, port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: &[u8] = b"edge shared secret, 32 bytes ok!";

    fn udp4() -> Flow {
        Flow {
            transport: Transport::Udp,
            local: "203.0.113.10:5060"
                .parse()
                .unwrap_or(SocketAddr::from(([0; 4], 0))),
            remote: "198.51.100.7:40123"
                .parse()
                .unwrap_or(SocketAddr::from(([0; 4], 0))),
            conn: None,
        }
    }

    fn tcp6() -> Flow {
        Flow {
            transport: Transport::Tcp,
            local: SocketAddr::new(
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
                5060,
            ),
            remote: SocketAddr::new(
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0xff, 1, 2, 3, 4, 5)),
                61000,
            ),
            conn: Some(ConnId(0x0123_4567_89ab_cdef)),
        }
    }

    fn mixed() -> Flow {
        Flow {
            transport: Transport::Tcp,
            local: SocketAddr::from(([10, 0, 0, 1], 5060)),
            remote: SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 1),
            conn: Some(ConnId(u64::MAX)),
        }
    }

    fn is_user_safe(token: &str) -> bool {
        token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }

    #[test]
    fn round_trips_udp_tcp_ipv4_ipv6() {
        let key = FlowTokenKey::new(SECRET);
        for flow in [udp4(), tcp6(), mixed()] {
            let token = key.encode(&flow);
            assert!(is_user_safe(&token), "{token}");
            assert!(token.len() <= MAX_TOKEN_LEN);
            assert_eq!(key.decode(&token), Ok(flow));
        }
    }

    #[test]
    fn ipv4_udp_token_is_short() {
        // 14 bytes of body and 16 of MAC.
        assert_eq!(FlowTokenKey::new(SECRET).encode(&udp4()).len(), 40);
    }

    #[test]
    fn another_edge_with_the_same_secret_decodes() {
        let token = FlowTokenKey::new(SECRET).encode(&tcp6());
        assert_eq!(FlowTokenKey::new(SECRET).decode(&token), Ok(tcp6()));
    }

    #[test]
    fn different_secret_is_refused() {
        let token = FlowTokenKey::new(SECRET).encode(&udp4());
        assert_eq!(
            FlowTokenKey::new(b"another secret").decode(&token),
            Err(FlowTokenError::BadMac)
        );
    }

    #[test]
    fn every_altered_byte_is_refused() {
        let key = FlowTokenKey::new(SECRET);
        let token = key.encode(&tcp6());
        let raw = URL_SAFE_NO_PAD.decode(&token).unwrap_or_default();
        assert!(!raw.is_empty());
        for i in 0..raw.len() {
            for bit in [0x01u8, 0x80] {
                let mut forged = raw.clone();
                if let Some(byte) = forged.get_mut(i) {
                    *byte ^= bit;
                }
                assert_eq!(
                    key.decode(&URL_SAFE_NO_PAD.encode(&forged)),
                    Err(FlowTokenError::BadMac),
                    "byte {i}"
                );
            }
        }
    }

    #[test]
    fn forged_flow_without_the_secret_is_refused() {
        // An attacker rewrites the remote address and keeps the old MAC.
        let key = FlowTokenKey::new(SECRET);
        let mut raw = URL_SAFE_NO_PAD
            .decode(key.encode(&udp4()))
            .unwrap_or_default();
        if let Some(octet) = raw.get_mut(2) {
            *octet = 192;
        }
        assert_eq!(
            key.decode(&URL_SAFE_NO_PAD.encode(&raw)),
            Err(FlowTokenError::BadMac)
        );
    }

    #[test]
    fn truncated_and_extended_tokens_are_refused() {
        let key = FlowTokenKey::new(SECRET);
        let token = key.encode(&udp4());
        for cut in 0..token.len() {
            let short = token.get(..cut).unwrap_or_default();
            assert!(key.decode(short).is_err(), "cut at {cut}");
        }
        assert!(key.decode(&format!("{token}AA")).is_err());
        assert_eq!(
            key.decode(&"A".repeat(MAX_TOKEN_LEN + 1)),
            Err(FlowTokenError::Malformed)
        );
    }

    #[test]
    fn garbage_is_malformed() {
        let key = FlowTokenKey::new(SECRET);
        for token in ["", "a", "!!!!", "abc=", "sip:alice", "ab+/cd", "éé"] {
            assert!(key.decode(token).is_err(), "{token:?}");
        }
        assert_eq!(key.decode("!!!!"), Err(FlowTokenError::Malformed));
        assert_eq!(key.decode(""), Err(FlowTokenError::Malformed));
    }

    #[test]
    fn genuine_but_unknown_layouts_are_unsupported() {
        // Made with the right key, so only the layout check can refuse them.
        let key = FlowTokenKey::new(SECRET);
        let seal = |body: &[u8]| {
            let mut raw = body.to_vec();
            raw.extend_from_slice(&key.tag(body)[..MAC_LEN]);
            URL_SAFE_NO_PAD.encode(raw)
        };
        let v4 = [1, 0, 10, 0, 0, 1, 0x13, 0xc4, 10, 0, 0, 2, 0x13, 0xc4];
        assert!(key.decode(&seal(&v4)).is_ok());
        let mut wrong_version = v4;
        wrong_version[0] = 2;
        let mut unknown_flag = v4;
        unknown_flag[1] = 0x10;
        for body in [
            &wrong_version[..],
            &unknown_flag[..],
            &v4[..13],
            &[1, 0][..],
            &[][..],
        ] {
            assert_eq!(
                key.decode(&seal(body)),
                Err(FlowTokenError::Unsupported),
                "{body:?}"
            );
        }
        let mut trailing = v4.to_vec();
        trailing.push(0);
        assert_eq!(
            key.decode(&seal(&trailing)),
            Err(FlowTokenError::Unsupported)
        );
    }

    #[test]
    fn debug_does_not_show_the_secret() {
        assert_eq!(
            format!("{:?}", FlowTokenKey::new(SECRET)),
            "FlowTokenKey { .. }"
        );
    }

    fn any_addr() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port))),
            (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port))),
        ]
    }

    fn any_flow() -> impl Strategy<Value = Flow> {
        (
            any::<bool>(),
            any_addr(),
            any_addr(),
            proptest::option::of(any::<u64>()),
        )
            .prop_map(|(tcp, local, remote, conn)| Flow {
                transport: if tcp { Transport::Tcp } else { Transport::Udp },
                local,
                remote,
                conn: conn.map(ConnId),
            })
    }

    proptest! {
        #[test]
        fn any_flow_round_trips(flow in any_flow()) {
            let key = FlowTokenKey::new(SECRET);
            let token = key.encode(&flow);
            prop_assert!(is_user_safe(&token));
            prop_assert!(token.len() <= MAX_TOKEN_LEN);
            prop_assert_eq!(key.decode(&token), Ok(flow));
        }

        #[test]
        fn any_string_is_handled(token in "\\PC{0,120}") {
            // Never panics; random text is never accepted.
            prop_assert!(FlowTokenKey::new(SECRET).decode(&token).is_err());
        }
    }
}
