//! Writing SIP text (RFC 3261 section 7): start lines and header lines, shared by the
//! minimal-diff writer of [`super::message::Message`] and by [`super::builder`].

use bytes::{BufMut, BytesMut};

/// The only SIP version hasip writes.
pub const SIP_VERSION: &str = "SIP/2.0";

/// Writes `METHOD SP Request-URI SP SIP/2.0 CRLF`.
pub fn write_request_line(out: &mut BytesMut, method: &str, uri: &str, version: &str) {
    out.reserve(method.len() + uri.len() + version.len() + 4);
    out.put_slice(method.as_bytes());
    out.put_u8(b' ');
    out.put_slice(uri.as_bytes());
    out.put_u8(b' ');
    out.put_slice(version.as_bytes());
    out.put_slice(b"\r\n");
}

/// Writes `SIP/2.0 SP Status-Code SP Reason-Phrase CRLF`.
pub fn write_status_line(out: &mut BytesMut, code: u16, reason: &str) {
    out.reserve(SIP_VERSION.len() + reason.len() + 7);
    out.put_slice(SIP_VERSION.as_bytes());
    out.put_u8(b' ');
    write_decimal(out, u64::from(code));
    out.put_u8(b' ');
    out.put_slice(reason.as_bytes());
    out.put_slice(b"\r\n");
}

/// Writes `name: value CRLF`.
pub fn write_header(out: &mut BytesMut, name: &str, value: &str) {
    out.reserve(name.len() + value.len() + 4);
    out.put_slice(name.as_bytes());
    out.put_slice(b": ");
    out.put_slice(value.as_bytes());
    out.put_slice(b"\r\n");
}

/// Writes `n` in decimal without going through `fmt`.
pub fn write_decimal(out: &mut BytesMut, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        if let Some(d) = digits.get_mut(start) {
            // n % 10 < 10, so the cast keeps the value.
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || start == 0 {
            break;
        }
    }
    out.put_slice(digits.get(start..).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_crlf_terminated() {
        let mut out = BytesMut::new();
        write_request_line(&mut out, "INVITE", "sip:a@b", SIP_VERSION);
        write_status_line(&mut out, 180, "Ringing");
        write_header(&mut out, "Via", "SIP/2.0/UDP h");
        assert_eq!(
            &out[..],
            b"INVITE sip:a@b SIP/2.0\r\nSIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h\r\n"
        );
    }

    #[test]
    fn decimals() {
        for n in [0u64, 7, 10, 69, 4294967295, u64::MAX] {
            let mut out = BytesMut::new();
            write_decimal(&mut out, n);
            assert_eq!(&out[..], n.to_string().as_bytes());
        }
    }
}
