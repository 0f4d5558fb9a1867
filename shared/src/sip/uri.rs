//! SIP and SIPS URIs (RFC 3261 section 19.1 and 25.1) and tel URIs (RFC 3966).
//!
//! ```text
//! SIP-URI          = "sip:" [ userinfo ] hostport uri-parameters [ headers ]
//! SIPS-URI         = "sips:" [ userinfo ] hostport uri-parameters [ headers ]
//! userinfo         = ( user / telephone-subscriber ) [ ":" password ] "@"
//! user             = 1*( unreserved / escaped / user-unreserved )
//! password         = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," )
//! hostport         = host [ ":" port ]
//! host             = hostname / IPv4address / IPv6reference
//! hostname         = *( domainlabel "." ) toplabel [ "." ]
//! headers          = "?" header *( "&" header )
//! header           = hname "=" hvalue
//! telephone-uri    = "tel:" ( global-number / local-number )     ; RFC 3966
//! global-number    = "+" *phonedigit DIGIT *phonedigit *par
//! local-number     = *phonedigit-hex (HEXDIG / "*" / "#") *phonedigit-hex *par
//!                    context *par
//! ```

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::params::Params;
use super::text::{check_escapes, percent_decode};
use super::ParseError;

/// The URI schemes hasip handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `sip:`
    Sip,
    /// `sips:` (TLS end to end)
    Sips,
    /// `tel:` (RFC 3966)
    Tel,
}

impl Scheme {
    /// The scheme name in lower case, without the colon.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Sip => "sip",
            Scheme::Sips => "sips",
            Scheme::Tel => "tel",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The host of a URI or a Via sent-by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Host<'a> {
    /// A dotted IPv4 address.
    Ipv4(Ipv4Addr),
    /// An IPv6 reference; written in brackets.
    Ipv6(Ipv6Addr),
    /// A host name as written (compare it ignoring case). Empty for a tel URI.
    Name(&'a str),
}

/// True for `unreserved`: alphanumerics and `mark`.
#[inline]
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
        )
}

/// True for the bytes of `user` (`%` is checked separately as `escaped`).
#[inline]
fn is_user_byte(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/' | b'%'
        )
}

/// True for the bytes of `password`.
#[inline]
fn is_password_byte(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'&' | b'=' | b'+' | b'$' | b',' | b'%')
}

/// True for the bytes of `hname` and `hvalue`.
#[inline]
fn is_header_byte(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$' | b'%')
}

/// Checks `hostname` label rules: alphanumerics and inner hyphens, a letter first in
/// the top label, an optional final dot.
fn is_hostname(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    if s.is_empty() {
        return false;
    }
    let mut last = "";
    for label in s.split('.') {
        let b = label.as_bytes();
        let (Some(&first), Some(&end)) = (b.first(), b.last()) else {
            return false;
        };
        if !first.is_ascii_alphanumeric()
            || !end.is_ascii_alphanumeric()
            || !b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-')
        {
            return false;
        }
        last = label;
    }
    last.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
}

/// Parses `IPv4address = 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT`.
///
/// Unlike `Ipv4Addr::from_str` this takes leading zeros, which the grammar allows.
fn parse_ipv4(s: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = s.split('.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *octet = part.parse().ok()?;
    }
    parts.next().is_none().then_some(Ipv4Addr::from(octets))
}

impl<'a> Host<'a> {
    /// Splits a host off the start of `s`: the host and the rest. `None` if malformed.
    pub fn parse_prefix(s: &'a str) -> Option<(Self, &'a str)> {
        if let Some(inner) = s.strip_prefix('[') {
            let end = inner.find(']')?;
            let addr = inner.get(..end)?.parse::<Ipv6Addr>().ok()?;
            return Some((Host::Ipv6(addr), inner.get(end + 1..)?));
        }
        let n = s
            .bytes()
            .take_while(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            .count();
        let (name, rest) = s.split_at(n);
        if name.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            // All digits: an IPv4 address or nothing (a top label starts with a letter).
            return parse_ipv4(name).map(|a| (Host::Ipv4(a), rest));
        }
        is_hostname(name).then_some((Host::Name(name), rest))
    }

    /// Parses a whole host (name, IPv4 address or bracketed IPv6 reference).
    pub fn parse(s: &'a str) -> Option<Self> {
        match Self::parse_prefix(s)? {
            (host, "") => Some(host),
            _ => None,
        }
    }

    /// The IP address when the host is one.
    pub fn ip(&self) -> Option<IpAddr> {
        match *self {
            Host::Ipv4(a) => Some(IpAddr::V4(a)),
            Host::Ipv6(a) => Some(IpAddr::V6(a)),
            Host::Name(_) => None,
        }
    }

    /// Writes the host in lower case without a final dot (the form used in keys).
    fn write_lower(&self, out: &mut String) {
        match self {
            Host::Name(n) => {
                let n = n.strip_suffix('.').unwrap_or(n);
                out.extend(n.chars().map(|c| c.to_ascii_lowercase()));
            }
            other => {
                use fmt::Write as _;
                // Writing into a String cannot fail.
                let _ = write!(out, "{other}");
            }
        }
    }
}

impl From<IpAddr> for Host<'_> {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => Host::Ipv4(a),
            IpAddr::V6(a) => Host::Ipv6(a),
        }
    }
}

impl fmt::Display for Host<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ipv4(a) => write!(f, "{a}"),
            Host::Ipv6(a) => write!(f, "[{a}]"),
            Host::Name(n) => f.write_str(n),
        }
    }
}

/// A host with an optional port, as in `hostport` and a Via `sent-by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HostPort<'a> {
    /// The host.
    pub host: Host<'a>,
    /// The port, when written.
    pub port: Option<u16>,
}

impl fmt::Display for HostPort<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

/// Parses a `port` (1*DIGIT, at most 65535).
pub(crate) fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Splits an optional `:port` off `s`; `Err` when the colon is there but the port is
/// not a number in range.
pub(crate) fn split_port(s: &str) -> Result<(Option<u16>, &str), ()> {
    let Some(after) = s.strip_prefix(':') else {
        return Ok((None, s));
    };
    let n = after.bytes().take_while(u8::is_ascii_digit).count();
    let (digits, rest) = after.split_at(n);
    parse_port(digits).map(|p| (Some(p), rest)).ok_or(())
}

/// A parsed sip, sips or tel URI borrowing from the message.
///
/// `==` compares the text of each part, not the RFC 3261 section 19.1.4 rules; use
/// [`Uri::aor`] to key bindings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uri<'a> {
    /// The scheme.
    pub scheme: Scheme,
    /// The user part as written (escapes kept); for tel, the number.
    pub user: Option<&'a str>,
    /// The password as written (deprecated by RFC 3261, still parsed).
    pub password: Option<&'a str>,
    /// The host; `Host::Name("")` for tel.
    pub host: Host<'a>,
    /// The port, when written.
    pub port: Option<u16>,
    /// The `;` URI parameters (for tel, the RFC 3966 parameters).
    pub params: Params<'a>,
    /// The headers after `?`, as written, without the `?`.
    pub headers: Option<&'a str>,
}

const BAD: ParseError = ParseError::BadUri;

impl<'a> Uri<'a> {
    /// Parses a whole URI; surrounding whitespace or `<>` are not part of it.
    pub fn parse(s: &'a str) -> Result<Self, ParseError> {
        let colon = s.find(':').ok_or(BAD)?;
        let (name, rest) = (s.get(..colon).ok_or(BAD)?, s.get(colon + 1..).ok_or(BAD)?);
        let scheme = if name.eq_ignore_ascii_case("sip") {
            Scheme::Sip
        } else if name.eq_ignore_ascii_case("sips") {
            Scheme::Sips
        } else if name.eq_ignore_ascii_case("tel") {
            Scheme::Tel
        } else if is_scheme(name) {
            return Err(ParseError::UnsupportedScheme);
        } else {
            return Err(BAD);
        };
        match scheme {
            Scheme::Tel => parse_tel(rest),
            _ => parse_sip(scheme, rest),
        }
    }

    /// The user part with `%` escapes decoded.
    pub fn user_unescaped(&self) -> Result<Option<Cow<'a, str>>, ParseError> {
        self.user.map(percent_decode).transpose()
    }

    /// A URI parameter by name (any case): `Some(None)` when present without value.
    pub fn param(&self, name: &str) -> Option<Option<&'a str>> {
        self.params.get(name)
    }

    /// The `transport` parameter.
    pub fn transport(&self) -> Option<&'a str> {
        self.param("transport").flatten()
    }

    /// True when the `lr` parameter is present (loose routing, RFC 3261 16.12).
    pub fn lr(&self) -> bool {
        self.params.contains("lr")
    }

    /// The `maddr` parameter.
    pub fn maddr(&self) -> Option<&'a str> {
        self.param("maddr").flatten()
    }

    /// The `user` parameter (`phone`, `ip`, ...).
    pub fn user_param(&self) -> Option<&'a str> {
        self.param("user").flatten()
    }

    /// Host and port together.
    pub fn host_port(&self) -> HostPort<'a> {
        HostPort {
            host: self.host,
            port: self.port,
        }
    }

    /// The normalised address-of-record: the registration and hashing key.
    ///
    /// `sip:` + unescaped user + `@` + lower-case host, with no port, parameters or
    /// headers; `sips:` maps to `sip:`. For tel, `tel:` + the number without visual
    /// separators (hex digits in lower case), plus the lower-cased `phone-context` of a
    /// local number, which is what makes a local number unique (RFC 3966 section 5.1.5).
    pub fn aor(&self) -> String {
        let mut out = String::with_capacity(8 + self.user.map_or(0, str::len) + 32);
        match self.scheme {
            Scheme::Tel => {
                out.push_str("tel:");
                let number = self.user.unwrap_or("");
                out.extend(
                    number
                        .chars()
                        .filter(|c| !is_visual_separator(*c))
                        .map(|c| c.to_ascii_lowercase()),
                );
                if !number.starts_with('+') {
                    if let Some(Some(ctx)) = self.params.get("phone-context") {
                        out.push_str(";phone-context=");
                        out.extend(ctx.chars().map(|c| c.to_ascii_lowercase()));
                    }
                }
            }
            Scheme::Sip | Scheme::Sips => {
                out.push_str("sip:");
                if let Some(user) = self.user {
                    // Escapes were checked at parse time; only non-UTF-8 can fail here,
                    // and then the raw form is still a unique key.
                    out.push_str(&percent_decode(user).unwrap_or(Cow::Borrowed(user)));
                    out.push('@');
                }
                self.host.write_lower(&mut out);
            }
        }
        out
    }
}

/// True for a valid scheme name (`ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`).
fn is_scheme(s: &str) -> bool {
    let b = s.as_bytes();
    b.first().is_some_and(u8::is_ascii_alphabetic)
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
}

#[inline]
fn is_visual_separator(c: char) -> bool {
    matches!(c, '-' | '.' | '(' | ')')
}

fn parse_sip(scheme: Scheme, s: &str) -> Result<Uri<'_>, ParseError> {
    // Neither host, parameters nor headers may hold a raw `@`, so the first one ends
    // the userinfo even when the user holds `;`, `?` or `/`.
    let (user, password, rest) = match memchr::memchr(b'@', s.as_bytes()) {
        Some(at) => {
            let userinfo = s.get(..at).ok_or(BAD)?;
            let (user, password) = match userinfo.find(':') {
                Some(c) => (
                    userinfo.get(..c).ok_or(BAD)?,
                    Some(userinfo.get(c + 1..).ok_or(BAD)?),
                ),
                None => (userinfo, None),
            };
            if user.is_empty() || !user.bytes().all(is_user_byte) {
                return Err(BAD);
            }
            check_escapes(user)?;
            if let Some(pw) = password {
                if !pw.bytes().all(is_password_byte) {
                    return Err(BAD);
                }
                check_escapes(pw)?;
            }
            (Some(user), password, s.get(at + 1..).ok_or(BAD)?)
        }
        None => (None, None, s),
    };
    let (host, rest) = Host::parse_prefix(rest).ok_or(BAD)?;
    let (port, rest) = split_port(rest).map_err(|()| BAD)?;
    let (params, rest) = Params::parse_uri(rest, BAD)?;
    let headers = match rest.strip_prefix('?') {
        Some(h) => {
            check_headers(h)?;
            Some(h)
        }
        None if rest.is_empty() => None,
        None => return Err(BAD),
    };
    Ok(Uri {
        scheme,
        user,
        password,
        host,
        port,
        params,
        headers,
    })
}

/// Checks `header *( "&" header )` with `header = hname "=" hvalue`.
fn check_headers(h: &str) -> Result<(), ParseError> {
    for header in h.split('&') {
        let (name, value) = header.split_once('=').ok_or(BAD)?;
        if name.is_empty()
            || !name.bytes().all(is_header_byte)
            || !value.bytes().all(is_header_byte)
        {
            return Err(BAD);
        }
    }
    check_escapes(h)
}

fn parse_tel(s: &str) -> Result<Uri<'_>, ParseError> {
    let n = s.find(';').unwrap_or(s.len());
    let (number, rest) = s.split_at(n);
    let global = number.starts_with('+');
    let digits = if global {
        number.get(1..).unwrap_or("")
    } else {
        number
    };
    let valid = if global {
        digits
            .bytes()
            .all(|b| b.is_ascii_digit() || is_visual_separator(b as char))
            && digits.bytes().any(|b| b.is_ascii_digit())
    } else {
        digits.bytes().all(|b| {
            b.is_ascii_hexdigit() || matches!(b, b'*' | b'#') || is_visual_separator(b as char)
        }) && digits
            .bytes()
            .any(|b| b.is_ascii_hexdigit() || matches!(b, b'*' | b'#'))
    };
    if !valid {
        return Err(BAD);
    }
    let (params, rest) = Params::parse_uri(rest, BAD)?;
    if !rest.is_empty() || (!global && !matches!(params.get("phone-context"), Some(Some(_)))) {
        return Err(BAD);
    }
    Ok(Uri {
        scheme: Scheme::Tel,
        user: Some(number),
        password: None,
        host: Host::Name(""),
        port: None,
        params,
        headers: None,
    })
}

impl fmt::Display for Uri<'_> {
    /// Writes the canonical form: lower-case scheme, IP addresses in their standard
    /// text form, everything else as received.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.scheme)?;
        if self.scheme == Scheme::Tel {
            return write!(f, "{}{}", self.user.unwrap_or(""), self.params);
        }
        if let Some(user) = self.user {
            f.write_str(user)?;
            if let Some(pw) = self.password {
                write!(f, ":{pw}")?;
            }
            f.write_str("@")?;
        }
        write!(f, "{}{}", self.host_port(), self.params)?;
        if let Some(h) = self.headers {
            write!(f, "?{h}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Uri<'_> {
        match Uri::parse(s) {
            Ok(u) => u,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn plain_sip_uri() {
        let u = uri("sip:alice@atlanta.com");
        assert_eq!(u.scheme, Scheme::Sip);
        assert_eq!(u.user, Some("alice"));
        assert_eq!(u.password, None);
        assert_eq!(u.host, Host::Name("atlanta.com"));
        assert_eq!(u.port, None);
        assert!(u.params.is_empty());
        assert_eq!(u.headers, None);
        assert_eq!(u.to_string(), "sip:alice@atlanta.com");
    }

    #[test]
    fn full_sip_uri() {
        let u = uri("SIPS:alice:secr%65t@Atlanta.COM:5061;transport=TCP;lr;maddr=239.255.255.1?subject=project%20x&priority=urgent");
        assert_eq!(u.scheme, Scheme::Sips);
        assert_eq!(u.user, Some("alice"));
        assert_eq!(u.password, Some("secr%65t"));
        assert_eq!(u.host, Host::Name("Atlanta.COM"));
        assert_eq!(u.port, Some(5061));
        assert_eq!(u.transport(), Some("TCP"));
        assert!(u.lr());
        assert_eq!(u.maddr(), Some("239.255.255.1"));
        assert_eq!(u.param("LR"), Some(None));
        assert_eq!(u.headers, Some("subject=project%20x&priority=urgent"));
        assert_eq!(u.aor(), "sip:alice@atlanta.com");
        assert_eq!(
            u.to_string(),
            "sips:alice:secr%65t@Atlanta.COM:5061;transport=TCP;lr;maddr=239.255.255.1?subject=project%20x&priority=urgent"
        );
    }

    #[test]
    fn escapes_in_user_decode_for_the_aor() {
        let a = uri("sip:%61lice@Example.com:5070;transport=udp");
        let b = uri("sips:alice@example.COM");
        assert_eq!(a.user, Some("%61lice"));
        assert_eq!(a.user_unescaped().unwrap().as_deref(), Some("alice"));
        assert!(matches!(
            b.user_unescaped().unwrap(),
            Some(Cow::Borrowed("alice"))
        ));
        assert_eq!(a.aor(), b.aor());
        assert_eq!(a.aor(), "sip:alice@example.com");
    }

    #[test]
    fn escaped_separators_stay_in_the_user() {
        // RFC 4475 style: an escaped ':' and '@' are part of the user, not delimiters.
        let u = uri("sip:sips%3Auser%40example.com@example.net");
        assert_eq!(u.host, Host::Name("example.net"));
        assert_eq!(
            u.user_unescaped().unwrap().as_deref(),
            Some("sips:user@example.com")
        );
        let u = uri("sip:null-%00-null@example.com");
        assert_eq!(u.user_unescaped().unwrap().as_deref(), Some("null-\0-null"));
    }

    #[test]
    fn semicolon_in_user_part() {
        let u = uri("sip:user;par=u%40example.net@example.com");
        assert_eq!(u.user, Some("user;par=u%40example.net"));
        assert_eq!(u.host, Host::Name("example.com"));
        assert!(u.params.is_empty());
    }

    #[test]
    fn unusual_but_valid_userinfo() {
        let s = "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com";
        let u = uri(s);
        assert_eq!(
            u.user,
            Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
        );
        assert_eq!(
            u.password,
            Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
        );
        assert_eq!(u.host, Host::Name("example.com"));
        assert_eq!(u.to_string(), s);
    }

    #[test]
    fn ip_hosts() {
        let u = uri("sip:[2001:db8::1]:5060;transport=tcp");
        assert_eq!(u.host, Host::Ipv6("2001:db8::1".parse().unwrap()));
        assert_eq!(u.port, Some(5060));
        assert_eq!(u.user, None);
        assert_eq!(u.to_string(), "sip:[2001:db8::1]:5060;transport=tcp");
        let u = uri("sip:bob@[2001:DB8:0:0:0:0:0:1]");
        assert_eq!(u.aor(), "sip:bob@[2001:db8::1]");
        let u = uri("sip:bob@[::ffff:192.0.2.1]");
        assert!(matches!(u.host, Host::Ipv6(_)));
        let u = uri("sip:bob@192.000.002.010");
        assert_eq!(u.host, Host::Ipv4(Ipv4Addr::new(192, 0, 2, 10)));
        let u = uri("sip:alice@Example.COM.");
        assert_eq!(u.aor(), "sip:alice@example.com");
        assert_eq!(u.to_string(), "sip:alice@Example.COM.");
        let u = uri("sip:192.0.2.4:5080");
        assert_eq!(u.host, Host::Ipv4(Ipv4Addr::new(192, 0, 2, 4)));
        assert_eq!(u.host.ip(), Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 4))));
        assert_eq!(u.aor(), "sip:192.0.2.4");
    }

    #[test]
    fn hostnames() {
        assert_eq!(uri("sip:example.com.").host, Host::Name("example.com."));
        assert_eq!(uri("sip:a-b.c9.x").host, Host::Name("a-b.c9.x"));
        assert_eq!(uri("sip:3com.com").host, Host::Name("3com.com"));
        assert_eq!(uri("sip:localhost").host, Host::Name("localhost"));
        for bad in [
            "sip:-a.com",
            "sip:a-.com",
            "sip:a..com",
            "sip:a.1com",
            "sip:1.2.3.4.5",
            "sip:10.0.0.256",
            "sip:10.0.0.1000",
            "sip:10.0.0",
            "sip:10.0.0.1.",
            "sip:a_b.com",
            "sip:",
            "sip:user@",
            "sip:.com",
        ] {
            assert_eq!(Uri::parse(bad).unwrap_err(), ParseError::BadUri, "{bad}");
        }
    }

    #[test]
    fn ports() {
        assert_eq!(uri("sip:a.b:0").port, Some(0));
        assert_eq!(uri("sip:a.b:65535").port, Some(65535));
        for bad in [
            "sip:a.b:65536",
            "sip:a.b:99999999",
            "sip:a.b:",
            "sip:a.b:-1",
            "sip:a.b:5x",
            "sip:[::1]:",
            "sip:a.b:+5",
        ] {
            assert_eq!(Uri::parse(bad).unwrap_err(), ParseError::BadUri, "{bad}");
        }
    }

    #[test]
    fn malformed_uris() {
        for bad in [
            "sip:2001:db8::1",
            "sip:[2001:db8::1",
            "sip:[2001:db8:::1]",
            "sip:[example.com]",
            "sip:[::1]x",
            "sip:@host.com",
            "sip:a b@host.com",
            "sip:a@b@host.com",
            "sip:a@host.com;=x",
            "sip:a@host.com;x=",
            "sip:a@host.com?subject",
            "sip:a@host.com?=x",
            "sip:a@host.com junk",
            "<sip:a@host.com>",
            "alice@host.com",
            "sip:a\"b@host.com",
            ":a@host.com",
        ] {
            assert_eq!(Uri::parse(bad).unwrap_err(), ParseError::BadUri, "{bad}");
        }
        assert_eq!(
            Uri::parse("sip:%6@host.com").unwrap_err(),
            ParseError::BadEscape
        );
        assert_eq!(
            Uri::parse("sip:a@host.com;p=%g1").unwrap_err(),
            ParseError::BadEscape
        );
        assert_eq!(
            Uri::parse("sip:a@host.com?s=%").unwrap_err(),
            ParseError::BadEscape
        );
        assert_eq!(
            Uri::parse("http://example.com").unwrap_err(),
            ParseError::UnsupportedScheme
        );
        assert_eq!(
            Uri::parse("nobodyknowsthisscheme:totallyopaquecontent").unwrap_err(),
            ParseError::UnsupportedScheme
        );
    }

    #[test]
    fn user_without_escape_decoding_to_utf8_still_has_a_key() {
        let u = uri("sip:%FF@host.com");
        assert_eq!(u.user_unescaped().unwrap_err(), ParseError::BadEscape);
        assert_eq!(u.aor(), "sip:%FF@host.com");
    }

    #[test]
    fn empty_password_is_kept() {
        let u = uri("sip:alice:@host.com");
        assert_eq!(u.password, Some(""));
        assert_eq!(u.to_string(), "sip:alice:@host.com");
    }

    #[test]
    fn telephone_subscriber_user_part() {
        let u = uri("sip:+1-212-555-1212:1234@gateway.com;user=phone");
        assert_eq!(u.user, Some("+1-212-555-1212"));
        assert_eq!(u.password, Some("1234"));
        assert_eq!(u.user_param(), Some("phone"));
    }

    #[test]
    fn tel_uris() {
        let u = uri("tel:+1-201-555-0123;ext=12");
        assert_eq!(u.scheme, Scheme::Tel);
        assert_eq!(u.user, Some("+1-201-555-0123"));
        assert_eq!(u.param("ext"), Some(Some("12")));
        assert_eq!(u.aor(), "tel:+12015550123");
        assert_eq!(u.to_string(), "tel:+1-201-555-0123;ext=12");
        assert_eq!(uri("TEL:+1(201)555.0123").aor(), "tel:+12015550123");
        let u = uri("tel:7042;phone-context=Example.COM");
        assert_eq!(u.aor(), "tel:7042;phone-context=example.com");
        assert_eq!(
            uri("tel:*1A#;phone-context=+1").aor(),
            "tel:*1a#;phone-context=+1"
        );
        for bad in [
            "tel:", "tel:+", "tel:+-", "tel:7042", "tel:+1 2", "tel:+12a", "tel:+1;=", "tel:+1@x",
        ] {
            assert_eq!(Uri::parse(bad).unwrap_err(), ParseError::BadUri, "{bad}");
        }
    }

    #[test]
    fn host_port_display() {
        let hp = HostPort {
            host: Host::Ipv6(Ipv6Addr::LOCALHOST),
            port: Some(5060),
        };
        assert_eq!(hp.to_string(), "[::1]:5060");
        assert_eq!(Host::parse("EXAMPLE.com"), Some(Host::Name("EXAMPLE.com")));
        assert_eq!(Host::parse("example.com:5"), None);
    }

    mod roundtrip {
        use super::*;
        use proptest::prelude::*;

        fn user() -> impl Strategy<Value = String> {
            prop::collection::vec(
                prop_oneof!["[a-zA-Z0-9\\-_.!~*'()&=+$,;?/]", "%[0-9A-F][0-9a-f]",],
                1..12,
            )
            .prop_map(|v| v.concat())
        }

        fn host() -> impl Strategy<Value = String> {
            prop_oneof![
                "([a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?\\.){0,3}[a-zA-Z]([a-z0-9-]{0,6}[a-z0-9])?\\.?",
                any::<[u8; 4]>().prop_map(|b| Ipv4Addr::from(b).to_string()),
                any::<[u16; 8]>().prop_map(|s| format!("[{}]", Ipv6Addr::from(s))),
            ]
        }

        fn params() -> impl Strategy<Value = String> {
            prop::collection::vec(
                (
                    "[a-zA-Z0-9\\-_.!~*'()\\[\\]/:&+$]{1,8}",
                    prop::option::of("[a-zA-Z0-9\\-_.:]{1,8}|%2[0-9]"),
                ),
                0..4,
            )
            .prop_map(|v| {
                v.into_iter()
                    .map(|(n, v)| match v {
                        Some(v) => format!(";{n}={v}"),
                        None => format!(";{n}"),
                    })
                    .collect()
            })
        }

        fn sip_uri() -> impl Strategy<Value = String> {
            (
                prop_oneof![Just("sip"), Just("SIPS"), Just("Sip")],
                prop::option::of((user(), prop::option::of("[a-z0-9&=+$,]{0,6}"))),
                host(),
                prop::option::of(any::<u16>()),
                params(),
                prop::option::of("[a-z]{1,5}=[a-z0-9%:/?]{0,5}(&[a-z]{1,4}=[a-z0-9]{0,3}){0,2}"),
            )
                .prop_map(|(scheme, userinfo, host, port, params, headers)| {
                    let mut s = format!("{scheme}:");
                    if let Some((u, pw)) = userinfo {
                        s.push_str(&u);
                        if let Some(pw) = pw {
                            s.push(':');
                            s.push_str(&pw);
                        }
                        s.push('@');
                    }
                    s.push_str(&host);
                    if let Some(p) = port {
                        s.push_str(&format!(":{p}"));
                    }
                    s.push_str(&params);
                    if let Some(h) = headers {
                        s.push('?');
                        s.push_str(&h);
                    }
                    s
                })
                .prop_filter("headers may not leave a bad escape", |s| {
                    check_escapes(s).is_ok()
                })
        }

        proptest! {
            #[test]
            fn display_parse_display_is_stable(s in sip_uri()) {
                let first = Uri::parse(&s).map_err(|e| TestCaseError::fail(format!("{s}: {e}")))?;
                let shown = first.to_string();
                let second = Uri::parse(&shown).map_err(|e| TestCaseError::fail(format!("{shown}: {e}")))?;
                prop_assert_eq!(second.to_string(), shown.clone());
                prop_assert_eq!(second.user, first.user);
                prop_assert_eq!(second.host, first.host);
                prop_assert_eq!(second.port, first.port);
                prop_assert_eq!(second.params.as_str(), first.params.as_str());
                prop_assert_eq!(second.aor(), first.aor());
            }

            #[test]
            fn arbitrary_input_never_panics(s in "\\PC{0,40}") {
                let _ = Uri::parse(&s);
            }

            #[test]
            fn arbitrary_sip_ish_input_never_panics(s in "(sip|tel):[a-z0-9@:;=%\\[\\]?&.+-]{0,30}") {
                if let Ok(u) = Uri::parse(&s) {
                    let _ = u.aor();
                    prop_assert!(Uri::parse(&u.to_string()).is_ok());
                }
            }
        }
    }
}
