//! Digest authentication headers (RFC 3261 sections 20.7, 20.27, 20.28, 20.44, 22.4
//! and 25.1; SHA-256 from RFC 7616 and RFC 8760).
//!
//! ```text
//! Authorization    = "Authorization" HCOLON credentials
//! credentials      = ("Digest" LWS digest-response) / other-response
//! digest-response  = dig-resp *(COMMA dig-resp)
//! dig-resp         = username / realm / nonce / digest-uri / dresponse / algorithm
//!                    / cnonce / opaque / message-qop / nonce-count / auth-param
//! WWW-Authenticate = "WWW-Authenticate" HCOLON challenge
//! challenge        = ("Digest" LWS digest-cln *(COMMA digest-cln)) / other-challenge
//! digest-cln       = realm / domain / nonce / opaque / stale / algorithm
//!                    / qop-options / auth-param
//! auth-param       = auth-param-name EQUAL ( token / quoted-string )
//! nonce-count      = "nc" EQUAL 8LHEX
//! ```
//!
//! Values are accepted quoted or as tokens in any order; a parameter given twice is
//! an error (RFC 7616 section 3.4 and 3.3).

use std::borrow::Cow;
use std::fmt;

use super::text::{
    is_token, skip_lws, skip_sws, split_quoted, split_token, trim_lws, unquote_lenient,
    write_quoted,
};
use super::ParseError;

/// A digest algorithm (RFC 3261, RFC 7616, RFC 8760).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm<'a> {
    /// `MD5`
    Md5,
    /// `MD5-sess`
    Md5Sess,
    /// `SHA-256`
    Sha256,
    /// `SHA-256-sess`
    Sha256Sess,
    /// `SHA-512-256`
    Sha512_256,
    /// `SHA-512-256-sess`
    Sha512_256Sess,
    /// Any other token, kept so the server can re-challenge instead of refusing.
    Other(&'a str),
}

impl<'a> Algorithm<'a> {
    /// Reads an algorithm token, ignoring case.
    pub fn from_token(t: &'a str) -> Self {
        const KNOWN: [(&str, Algorithm<'static>); 6] = [
            ("MD5", Algorithm::Md5),
            ("MD5-sess", Algorithm::Md5Sess),
            ("SHA-256", Algorithm::Sha256),
            ("SHA-256-sess", Algorithm::Sha256Sess),
            ("SHA-512-256", Algorithm::Sha512_256),
            ("SHA-512-256-sess", Algorithm::Sha512_256Sess),
        ];
        KNOWN
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(t))
            .map_or(Algorithm::Other(t), |&(_, a)| a)
    }

    /// The algorithm name as RFC 7616 writes it.
    pub fn as_str(&self) -> &'a str {
        match *self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
            Algorithm::Sha512_256 => "SHA-512-256",
            Algorithm::Sha512_256Sess => "SHA-512-256-sess",
            Algorithm::Other(t) => t,
        }
    }

    /// True for the `-sess` variants.
    pub fn is_sess(&self) -> bool {
        matches!(
            self,
            Algorithm::Md5Sess | Algorithm::Sha256Sess | Algorithm::Sha512_256Sess
        )
    }
}

impl fmt::Display for Algorithm<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The quality of protection a client chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qop<'a> {
    /// `auth`
    Auth,
    /// `auth-int`
    AuthInt,
    /// Any other token.
    Other(&'a str),
}

impl<'a> Qop<'a> {
    /// Reads a qop token, ignoring case.
    pub fn from_token(t: &'a str) -> Self {
        if t.eq_ignore_ascii_case("auth") {
            Qop::Auth
        } else if t.eq_ignore_ascii_case("auth-int") {
            Qop::AuthInt
        } else {
            Qop::Other(t)
        }
    }

    /// The qop token.
    pub fn as_str(&self) -> &'a str {
        match *self {
            Qop::Auth => "auth",
            Qop::AuthInt => "auth-int",
            Qop::Other(t) => t,
        }
    }
}

/// An auth-param value as written.
#[derive(Debug, Clone, Copy)]
enum Value<'a> {
    Token(&'a str),
    /// The quoted string with its quotes.
    Quoted(&'a str),
}

impl<'a> Value<'a> {
    /// The value as text, unquoted.
    fn text(self) -> Cow<'a, str> {
        match self {
            Value::Token(t) => Cow::Borrowed(t),
            Value::Quoted(q) => unquote_lenient(q),
        }
    }

    /// The value as a token: a token, or a quoted string whose content is one.
    fn token(self) -> Option<&'a str> {
        match self {
            Value::Token(t) => Some(t),
            Value::Quoted(q) => q
                .strip_prefix('"')
                .and_then(|q| q.strip_suffix('"'))
                .filter(|t| is_token(t)),
        }
    }
}

/// Splits the scheme off and walks `name=value` pairs separated by commas.
fn parse_params<'a>(
    value: &'a str,
    bad: ParseError,
    mut each: impl FnMut(&'a str, Value<'a>) -> Result<(), ParseError>,
) -> Result<(), ParseError> {
    let (scheme, rest) = split_token(trim_lws(value)).ok_or(bad)?;
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(bad);
    }
    let mut rest = skip_lws(rest).ok_or(bad)?;
    loop {
        let (name, r) = split_token(skip_sws(rest)).ok_or(bad)?;
        let r = skip_sws(skip_sws(r).strip_prefix('=').ok_or(bad)?);
        let (v, r) = if r.starts_with('"') {
            let (q, r) = split_quoted(r)?;
            (Value::Quoted(q), r)
        } else {
            let (t, r) = split_token(r).ok_or(bad)?;
            (Value::Token(t), r)
        };
        each(name, v)?;
        let r = skip_sws(r);
        if r.is_empty() {
            return Ok(());
        }
        rest = r.strip_prefix(',').ok_or(bad)?;
    }
}

/// Stores a value in an empty slot; a second value is a duplicate parameter.
fn set<T>(slot: &mut Option<T>, v: T, bad: ParseError) -> Result<(), ParseError> {
    if slot.is_some() {
        return Err(bad);
    }
    *slot = Some(v);
    Ok(())
}

/// Most unknown parameters kept; the duplicate check is quadratic, so this bounds
/// the work a hostile header can cause.
const MAX_OTHER: usize = 32;

/// Keeps an unknown parameter, refusing a duplicate.
fn keep<'a>(
    other: &mut Vec<(&'a str, Cow<'a, str>)>,
    name: &'a str,
    v: Value<'a>,
    bad: ParseError,
) -> Result<(), ParseError> {
    if other.len() >= MAX_OTHER || other.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
        return Err(bad);
    }
    other.push((name, v.text()));
    Ok(())
}

/// Writes `, name="value"` (or the first pair without the comma).
fn write_pair(
    f: &mut fmt::Formatter<'_>,
    first: &mut bool,
    name: &str,
    value: &str,
    quoted: bool,
) -> fmt::Result {
    f.write_str(if *first { " " } else { ", " })?;
    *first = false;
    f.write_str(name)?;
    f.write_str("=")?;
    if quoted {
        write_quoted(f, value)
    } else {
        f.write_str(value)
    }
}

/// Digest credentials from Authorization or Proxy-Authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials<'a> {
    /// `username`
    pub username: Cow<'a, str>,
    /// `realm`
    pub realm: Cow<'a, str>,
    /// `nonce`
    pub nonce: Cow<'a, str>,
    /// `uri` (the digest-uri, compared with the Request-URI)
    pub uri: Cow<'a, str>,
    /// `response`, the hex digest as written.
    pub response: Cow<'a, str>,
    /// `algorithm`; absent means MD5.
    pub algorithm: Option<Algorithm<'a>>,
    /// `cnonce`
    pub cnonce: Option<Cow<'a, str>>,
    /// `opaque`
    pub opaque: Option<Cow<'a, str>>,
    /// `qop`
    pub qop: Option<Qop<'a>>,
    /// `nc`, the nonce count.
    pub nc: Option<u32>,
    /// Other parameters in order, values unquoted.
    pub other: Vec<(&'a str, Cow<'a, str>)>,
}

impl<'a> Credentials<'a> {
    /// Parses a credentials value; `header` names the header in the error.
    ///
    /// username, realm, nonce, uri and response are required; with `qop`, `cnonce`
    /// and `nc` are too (RFC 7616 section 3.4).
    pub fn parse(value: &'a str, header: &'static str) -> Result<Self, ParseError> {
        let bad = ParseError::BadHeader(header);
        let (mut username, mut realm, mut nonce, mut uri, mut response) =
            (None, None, None, None, None);
        let (mut algorithm, mut cnonce, mut opaque, mut qop, mut nc) =
            (None, None, None, None, None);
        let mut other = Vec::new();
        parse_params(value, bad, |name, v| {
            let is = |n: &str| name.eq_ignore_ascii_case(n);
            if is("username") {
                set(&mut username, v.text(), bad)
            } else if is("realm") {
                set(&mut realm, v.text(), bad)
            } else if is("nonce") {
                set(&mut nonce, v.text(), bad)
            } else if is("uri") {
                set(&mut uri, v.text(), bad)
            } else if is("response") {
                set(&mut response, v.text(), bad)
            } else if is("algorithm") {
                set(
                    &mut algorithm,
                    Algorithm::from_token(v.token().ok_or(bad)?),
                    bad,
                )
            } else if is("cnonce") {
                set(&mut cnonce, v.text(), bad)
            } else if is("opaque") {
                set(&mut opaque, v.text(), bad)
            } else if is("qop") {
                set(&mut qop, Qop::from_token(v.token().ok_or(bad)?), bad)
            } else if is("nc") {
                let t = v.token().filter(|t| t.len() == 8).ok_or(bad)?;
                set(&mut nc, u32::from_str_radix(t, 16).map_err(|_| bad)?, bad)
            } else {
                keep(&mut other, name, v, bad)
            }
        })?;
        if qop.is_some() && (cnonce.is_none() || nc.is_none()) {
            return Err(bad);
        }
        Ok(Credentials {
            username: username.ok_or(bad)?,
            realm: realm.ok_or(bad)?,
            nonce: nonce.ok_or(bad)?,
            uri: uri.ok_or(bad)?,
            response: response.ok_or(bad)?,
            algorithm,
            cnonce,
            opaque,
            qop,
            nc,
            other,
        })
    }

    /// The algorithm in force: the one given, else MD5 (RFC 3261 section 25.1).
    pub fn algorithm_or_default(&self) -> Algorithm<'a> {
        self.algorithm.unwrap_or(Algorithm::Md5)
    }
}

impl fmt::Display for Credentials<'_> {
    /// Writes the value a client sends: `Digest username="..", realm="..", ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Digest")?;
        let first = &mut true;
        write_pair(f, first, "username", &self.username, true)?;
        write_pair(f, first, "realm", &self.realm, true)?;
        write_pair(f, first, "nonce", &self.nonce, true)?;
        write_pair(f, first, "uri", &self.uri, true)?;
        write_pair(f, first, "response", &self.response, true)?;
        if let Some(a) = self.algorithm {
            write_pair(f, first, "algorithm", a.as_str(), false)?;
        }
        if let Some(c) = &self.cnonce {
            write_pair(f, first, "cnonce", c, true)?;
        }
        if let Some(o) = &self.opaque {
            write_pair(f, first, "opaque", o, true)?;
        }
        if let Some(q) = self.qop {
            write_pair(f, first, "qop", q.as_str(), false)?;
        }
        if let Some(nc) = self.nc {
            write!(f, ", nc={nc:08x}")?;
        }
        for (n, v) in &self.other {
            write_pair(f, first, n, v, true)?;
        }
        Ok(())
    }
}

/// A digest challenge from WWW-Authenticate or Proxy-Authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge<'a> {
    /// `realm`
    pub realm: Cow<'a, str>,
    /// `domain`, the space-separated URI list.
    pub domain: Option<Cow<'a, str>>,
    /// `nonce`
    pub nonce: Cow<'a, str>,
    /// `opaque`
    pub opaque: Option<Cow<'a, str>>,
    /// `stale=true`: the nonce expired but the credentials were right.
    pub stale: bool,
    /// `algorithm`; absent means MD5.
    pub algorithm: Option<Algorithm<'a>>,
    /// `qop`, the comma-separated options, unquoted (`auth,auth-int`).
    pub qop: Option<Cow<'a, str>>,
    /// Other parameters in order, values unquoted.
    pub other: Vec<(&'a str, Cow<'a, str>)>,
}

impl<'a> Challenge<'a> {
    /// A challenge with a realm and a nonce and nothing else set.
    pub fn new(realm: impl Into<Cow<'a, str>>, nonce: impl Into<Cow<'a, str>>) -> Self {
        Challenge {
            realm: realm.into(),
            domain: None,
            nonce: nonce.into(),
            opaque: None,
            stale: false,
            algorithm: None,
            qop: None,
            other: Vec::new(),
        }
    }

    /// Parses a challenge value; `header` names the header in the error.
    ///
    /// realm and nonce are required; `stale` must be `true` or `false`.
    pub fn parse(value: &'a str, header: &'static str) -> Result<Self, ParseError> {
        let bad = ParseError::BadHeader(header);
        let (mut realm, mut domain, mut nonce, mut opaque) = (None, None, None, None);
        let (mut stale, mut algorithm, mut qop) = (None, None, None);
        let mut other = Vec::new();
        parse_params(value, bad, |name, v| {
            let is = |n: &str| name.eq_ignore_ascii_case(n);
            if is("realm") {
                set(&mut realm, v.text(), bad)
            } else if is("domain") {
                set(&mut domain, v.text(), bad)
            } else if is("nonce") {
                set(&mut nonce, v.text(), bad)
            } else if is("opaque") {
                set(&mut opaque, v.text(), bad)
            } else if is("stale") {
                let t = v.token().ok_or(bad)?;
                let b = if t.eq_ignore_ascii_case("true") {
                    true
                } else if t.eq_ignore_ascii_case("false") {
                    false
                } else {
                    return Err(bad);
                };
                set(&mut stale, b, bad)
            } else if is("algorithm") {
                set(
                    &mut algorithm,
                    Algorithm::from_token(v.token().ok_or(bad)?),
                    bad,
                )
            } else if is("qop") {
                let text = v.text();
                if !text.split(',').all(|t| is_token(t.trim())) {
                    return Err(bad);
                }
                set(&mut qop, text, bad)
            } else {
                keep(&mut other, name, v, bad)
            }
        })?;
        Ok(Challenge {
            realm: realm.ok_or(bad)?,
            domain,
            nonce: nonce.ok_or(bad)?,
            opaque,
            stale: stale.unwrap_or(false),
            algorithm,
            qop,
            other,
        })
    }

    /// The offered qop options in order.
    pub fn qop_options(&self) -> impl Iterator<Item = Qop<'_>> {
        self.qop
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(Qop::from_token)
    }

    /// The algorithm in force: the one given, else MD5.
    pub fn algorithm_or_default(&self) -> Algorithm<'a> {
        self.algorithm.unwrap_or(Algorithm::Md5)
    }
}

impl fmt::Display for Challenge<'_> {
    /// Writes `Digest realm="x", nonce="y", opaque="", algorithm=SHA-256, qop="auth", stale=true`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Digest")?;
        let first = &mut true;
        write_pair(f, first, "realm", &self.realm, true)?;
        if let Some(d) = &self.domain {
            write_pair(f, first, "domain", d, true)?;
        }
        write_pair(f, first, "nonce", &self.nonce, true)?;
        if let Some(o) = &self.opaque {
            write_pair(f, first, "opaque", o, true)?;
        }
        if let Some(a) = self.algorithm {
            write_pair(f, first, "algorithm", a.as_str(), false)?;
        }
        if let Some(q) = &self.qop {
            write_pair(f, first, "qop", q, true)?;
        }
        if self.stale {
            write_pair(f, first, "stale", "true", false)?;
        }
        for (n, v) in &self.other {
            write_pair(f, first, n, v, true)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUTHZ: ParseError = ParseError::BadHeader("Authorization");
    const WWW: ParseError = ParseError::BadHeader("WWW-Authenticate");

    #[test]
    fn rfc3261_credentials() {
        let c = Credentials::parse(
            "Digest username=\"bob\",\r\n realm=\"biloxi.com\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"sip:bob@biloxi.com\", qop=auth, nc=00000001, cnonce=\"0a4f113b\", response=\"6629fae49393a05397450978507c4ef1\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
            "Authorization",
        )
        .unwrap();
        assert_eq!(c.username, "bob");
        assert_eq!(c.realm, "biloxi.com");
        assert_eq!(c.nonce, "dcd98b7102dd2f0e8b11d0f600bfb0c093");
        assert_eq!(c.uri, "sip:bob@biloxi.com");
        assert_eq!(c.qop, Some(Qop::Auth));
        assert_eq!(c.nc, Some(1));
        assert_eq!(c.cnonce.as_deref(), Some("0a4f113b"));
        assert_eq!(c.response, "6629fae49393a05397450978507c4ef1");
        assert_eq!(
            c.opaque.as_deref(),
            Some("5ccc069c403ebaf9f0171e9517f40e41")
        );
        assert_eq!(c.algorithm, None);
        assert_eq!(c.algorithm_or_default(), Algorithm::Md5);
        assert!(c.other.is_empty());
        assert!(matches!(c.username, Cow::Borrowed(_)));
    }

    #[test]
    fn credentials_any_order_token_values_and_unknown_params() {
        let c = Credentials::parse(
            "digest response=abc123 ,URI=\"sip:r.example.com\",nonce=n1,realm=r,ALGORITHM=\"sha-256-SESS\",username=\"a\\\"b\",x-foo=\"bar\",userhash=false",
            "Proxy-Authorization",
        )
        .unwrap();
        assert_eq!(c.response, "abc123");
        assert_eq!(c.uri, "sip:r.example.com");
        assert_eq!(c.nonce, "n1");
        assert_eq!(c.username, "a\"b");
        assert_eq!(c.algorithm, Some(Algorithm::Sha256Sess));
        assert!(c.algorithm_or_default().is_sess());
        assert_eq!(
            c.other,
            [
                ("x-foo", Cow::Borrowed("bar")),
                ("userhash", Cow::Borrowed("false"))
            ]
        );
        let c = Credentials::parse(
            "Digest username=a, realm=r, nonce=n, uri=\"u\", response=r, algorithm=SHA-512-256-foo",
            "Authorization",
        )
        .unwrap();
        assert_eq!(c.algorithm, Some(Algorithm::Other("SHA-512-256-foo")));
    }

    #[test]
    fn malformed_credentials() {
        let base = "username=\"a\", realm=\"r\", nonce=\"n\", uri=\"sip:x\", response=\"0\"";
        for bad in [
            String::new(),
            "Digest".to_string(),
            format!("Basic {base}"),
            format!("Digest{base}"),
            format!("Digest {base}, realm=\"again\""),
            format!("Digest {base}, REALM=again"),
            format!("Digest {base}, x=1, X=2"),
            format!("Digest {base},"),
            format!("Digest {base},, x=1"),
            format!("Digest {base} x=1"),
            format!("Digest {base}, qop=auth"),
            format!("Digest {base}, qop=auth, cnonce=\"c\""),
            format!("Digest {base}, qop=auth, cnonce=\"c\", nc=1"),
            format!("Digest {base}, qop=auth, cnonce=\"c\", nc=0000000g"),
            format!("Digest {base}, algorithm=\"a b\""),
            format!("Digest {base}, x="),
            format!("Digest {base}, =x"),
            "Digest realm=\"r\", nonce=\"n\", uri=\"sip:x\", response=\"0\"".to_string(),
        ] {
            assert_eq!(
                Credentials::parse(&bad, "Authorization").unwrap_err(),
                AUTHZ,
                "{bad:?}"
            );
        }
        assert_eq!(
            Credentials::parse("Digest username=\"a", "Authorization").unwrap_err(),
            ParseError::UnterminatedQuote
        );
    }

    #[test]
    fn credentials_round_trip() {
        let c = Credentials {
            username: "alice".into(),
            realm: "example.com".into(),
            nonce: "abc".into(),
            uri: "sip:example.com".into(),
            response: "0123abcd".into(),
            algorithm: Some(Algorithm::Sha256),
            cnonce: Some("xyz".into()),
            opaque: Some("".into()),
            qop: Some(Qop::Auth),
            nc: Some(0x1f),
            other: vec![("x", "y\"z".into())],
        };
        let s = c.to_string();
        assert_eq!(
            s,
            "Digest username=\"alice\", realm=\"example.com\", nonce=\"abc\", uri=\"sip:example.com\", response=\"0123abcd\", algorithm=SHA-256, cnonce=\"xyz\", opaque=\"\", qop=auth, nc=0000001f, x=\"y\\\"z\""
        );
        assert_eq!(Credentials::parse(&s, "Authorization").unwrap(), c);
    }

    #[test]
    fn challenges() {
        let c = Challenge::parse(
            "Digest realm=\"atlanta.com\",\r\n domain=\"sip:ss1.carrier.com\", qop=\"auth,auth-int\", nonce=\"f84f1cec41e6cbe5aea9c8e88d359\", opaque=\"\", stale=FALSE, algorithm=MD5",
            "WWW-Authenticate",
        )
        .unwrap();
        assert_eq!(c.realm, "atlanta.com");
        assert_eq!(c.domain.as_deref(), Some("sip:ss1.carrier.com"));
        assert_eq!(c.nonce, "f84f1cec41e6cbe5aea9c8e88d359");
        assert_eq!(c.opaque.as_deref(), Some(""));
        assert!(!c.stale);
        assert_eq!(c.algorithm, Some(Algorithm::Md5));
        assert_eq!(
            c.qop_options().collect::<Vec<_>>(),
            [Qop::Auth, Qop::AuthInt]
        );
        let c =
            Challenge::parse("Digest realm=r, nonce=n, stale=true", "WWW-Authenticate").unwrap();
        assert!(c.stale);
        assert_eq!(c.qop_options().count(), 0);
    }

    #[test]
    fn malformed_challenges() {
        for bad in [
            "Digest nonce=\"n\"",
            "Digest realm=\"r\"",
            "Digest realm=\"r\", nonce=\"n\", stale=maybe",
            "Digest realm=\"r\", nonce=\"n\", nonce=\"m\"",
            "Digest realm=\"r\", nonce=\"n\", qop=\"auth, a b\"",
            "Digest realm=\"r\", nonce=\"n\", stale=true, stale=false",
            "Bearer realm=\"r\"",
        ] {
            assert_eq!(
                Challenge::parse(bad, "WWW-Authenticate").unwrap_err(),
                WWW,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn challenge_formatting() {
        let mut c = Challenge::new("x", "y");
        c.opaque = Some("".into());
        c.algorithm = Some(Algorithm::Sha256);
        c.qop = Some("auth".into());
        c.stale = true;
        let s = c.to_string();
        assert_eq!(
            s,
            "Digest realm=\"x\", nonce=\"y\", opaque=\"\", algorithm=SHA-256, qop=\"auth\", stale=true"
        );
        assert_eq!(Challenge::parse(&s, "WWW-Authenticate").unwrap(), c);
        assert_eq!(
            Challenge::new("a\"b", "n").to_string(),
            "Digest realm=\"a\\\"b\", nonce=\"n\""
        );
    }

    #[test]
    fn too_many_unknown_params_are_refused() {
        let mut s = String::from("Digest realm=r, nonce=n");
        for i in 0..=MAX_OTHER {
            s.push_str(&format!(", p{i}=v"));
        }
        assert_eq!(Challenge::parse(&s, "WWW-Authenticate").unwrap_err(), WWW);
    }

    mod arbitrary {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn never_panics(s in "Digest [ \",=a-z0-9\\\\]{0,60}") {
                if let Ok(c) = Challenge::parse(&s, "WWW-Authenticate") {
                    let shown = c.to_string();
                    prop_assert_eq!(Challenge::parse(&shown, "WWW-Authenticate"), Ok(c));
                }
                let _ = Credentials::parse(&s, "Authorization");
            }
        }
    }
}
