//! STUN keepalives on the SIP UDP port (RFC 5626 section 4.4.2, RFC 5389 sections 6,
//! 7.3 and 15.2): a Binding request is answered with a Binding success response that
//! carries XOR-MAPPED-ADDRESS, the phone's address as the edge sees it.
//!
//! ```text
//! header = type (2) | length (2) | magic cookie 0x2112A442 (4) | transaction id (12)
//! XOR-MAPPED-ADDRESS = 0x0020 | len | 0x00 | family (1) | port ^ cookie>>16 | addr ^ ...
//! ```

use std::net::{IpAddr, SocketAddr};

const HEADER_LEN: usize = 20;
const MAGIC_COOKIE: u32 = 0x2112_A442;
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const XOR_MAPPED_ADDRESS: u16 = 0x0020;

/// Whether a datagram looks like STUN rather than SIP: the top two bits are zero and the
/// magic cookie is in place (RFC 5389 section 6; SIP starts with a letter).
pub fn is_stun(datagram: &[u8]) -> bool {
    datagram.len() >= HEADER_LEN
        && datagram.first().is_some_and(|b| b & 0xc0 == 0)
        && datagram.get(4..8) == Some(&MAGIC_COOKIE.to_be_bytes()[..])
}

/// The Binding success response to a Binding request from `source`; `None` for any
/// other STUN message or a malformed one.
pub fn binding_response(request: &[u8], source: SocketAddr) -> Option<Vec<u8>> {
    if !is_stun(request) {
        return None;
    }
    let msg_type = u16::from_be_bytes([*request.first()?, *request.get(1)?]);
    let length = usize::from(u16::from_be_bytes([*request.get(2)?, *request.get(3)?]));
    if msg_type != BINDING_REQUEST || length % 4 != 0 || request.len() != HEADER_LEN + length {
        return None;
    }
    let transaction_id = request.get(8..HEADER_LEN)?;
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let mut value = vec![0u8];
    let port = source.port() ^ (MAGIC_COOKIE >> 16) as u16;
    match source.ip() {
        IpAddr::V4(ip) => {
            value.push(0x01);
            value.extend_from_slice(&port.to_be_bytes());
            value.extend(ip.octets().iter().zip(cookie).map(|(a, c)| a ^ c));
        }
        IpAddr::V6(ip) => {
            value.push(0x02);
            value.extend_from_slice(&port.to_be_bytes());
            let pad = cookie.iter().chain(transaction_id);
            value.extend(ip.octets().iter().zip(pad).map(|(a, c)| a ^ c));
        }
    }
    let attr_len = u16::try_from(value.len()).ok()?;
    let mut out = Vec::with_capacity(HEADER_LEN + 4 + value.len());
    out.extend_from_slice(&BINDING_SUCCESS.to_be_bytes());
    out.extend_from_slice(&(attr_len + 4).to_be_bytes());
    out.extend_from_slice(&cookie);
    out.extend_from_slice(transaction_id);
    out.extend_from_slice(&XOR_MAPPED_ADDRESS.to_be_bytes());
    out.extend_from_slice(&attr_len.to_be_bytes());
    out.extend_from_slice(&value);
    Some(out)
}

/// Reads XOR-MAPPED-ADDRESS back out of a Binding success response (for tests and
/// tools).
pub fn mapped_address(response: &[u8]) -> Option<SocketAddr> {
    if !is_stun(response) || response.get(..2)? != BINDING_SUCCESS.to_be_bytes() {
        return None;
    }
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let transaction_id = response.get(8..HEADER_LEN)?;
    let mut at = HEADER_LEN;
    while let Some(head) = response.get(at..at + 4) {
        let kind = u16::from_be_bytes([*head.first()?, *head.get(1)?]);
        let len = usize::from(u16::from_be_bytes([*head.get(2)?, *head.get(3)?]));
        let value = response.get(at + 4..at + 4 + len)?;
        if kind == XOR_MAPPED_ADDRESS {
            let port =
                u16::from_be_bytes([*value.get(2)?, *value.get(3)?]) ^ (MAGIC_COOKIE >> 16) as u16;
            let ip = match value.get(1)? {
                0x01 => {
                    let raw: [u8; 4] = value.get(4..8)?.try_into().ok()?;
                    let mut octets = [0u8; 4];
                    for (o, (a, c)) in octets.iter_mut().zip(raw.iter().zip(cookie)) {
                        *o = a ^ c;
                    }
                    IpAddr::from(octets)
                }
                0x02 => {
                    let raw: [u8; 16] = value.get(4..20)?.try_into().ok()?;
                    let mut octets = [0u8; 16];
                    let pad = cookie.iter().chain(transaction_id);
                    for (o, (a, c)) in octets.iter_mut().zip(raw.iter().zip(pad)) {
                        *o = a ^ c;
                    }
                    IpAddr::from(octets)
                }
                _ => return None,
            };
            return Some(SocketAddr::new(ip, port));
        }
        at += 4 + len.next_multiple_of(4);
    }
    None
}

/// A Binding request with the given transaction id, as a phone sends it.
pub fn binding_request(transaction_id: [u8; 12]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN);
    out.extend_from_slice(&BINDING_REQUEST.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    out.extend_from_slice(&transaction_id);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap_or(SocketAddr::from(([0; 4], 0)))
    }

    #[test]
    fn answers_a_binding_request_with_the_source_address() {
        let request = binding_request([7; 12]);
        assert!(is_stun(&request));
        for source in [addr("198.51.100.7:40123"), addr("[2001:db8::5]:6000")] {
            let response = binding_response(&request, source).unwrap_or_default();
            assert_eq!(response.get(..2), Some(&[0x01, 0x01][..]));
            assert_eq!(response.get(8..20), Some(&[7u8; 12][..]));
            assert_eq!(mapped_address(&response), Some(source));
        }
    }

    #[test]
    fn rfc5769_ipv4_xor_mapped_address_bytes() {
        // RFC 5769 section 2.2: 192.0.2.1:32853 maps to 0xA147 and E1 12 A6 43.
        let response = binding_response(&binding_request([0; 12]), addr("192.0.2.1:32853"))
            .unwrap_or_default();
        assert_eq!(
            response.get(20..32),
            Some(&[0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43][..])
        );
    }

    #[test]
    fn sip_and_garbage_are_not_stun() {
        let source = addr("192.0.2.1:5060");
        assert!(!is_stun(b"OPTIONS sip:edge SIP/2.0\r\n\r\n"));
        assert!(!is_stun(b"\r\n\r\n"));
        assert!(binding_response(b"", source).is_none());
        let mut long = binding_request([1; 12]);
        long.push(0);
        assert!(binding_response(&long, source).is_none());
        let mut indication = binding_request([1; 12]);
        if let Some(b) = indication.get_mut(1) {
            *b = 0x11;
        }
        assert!(binding_response(&indication, source).is_none());
        for cut in 0..20 {
            assert!(binding_response(&binding_request([1; 12])[..cut], source).is_none());
        }
    }
}
