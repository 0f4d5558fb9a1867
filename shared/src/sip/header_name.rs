//! Header field names (RFC 3261 section 7.3 `field-name`, compact forms in section 7.3.3
//! and the IANA SIP parameter registry); names compare case-insensitively.

use std::fmt;

/// A header field name: a known header, or any other name as it was written.
///
/// Compact forms parse to the full-name variant, so `v` and `Via` are the same header.
/// `Other` names compare case-insensitively.
#[derive(Debug, Clone, Copy)]
pub enum HeaderName<'a> {
    /// `Via` (`v`).
    Via,
    /// `From` (`f`).
    From,
    /// `To` (`t`).
    To,
    /// `Call-ID` (`i`).
    CallId,
    /// `CSeq`.
    CSeq,
    /// `Contact` (`m`).
    Contact,
    /// `Expires`.
    Expires,
    /// `Min-Expires`.
    MinExpires,
    /// `Max-Forwards`.
    MaxForwards,
    /// `Content-Length` (`l`).
    ContentLength,
    /// `Content-Type` (`c`).
    ContentType,
    /// `Path` (RFC 3327).
    Path,
    /// `Route`.
    Route,
    /// `Record-Route`.
    RecordRoute,
    /// `Supported` (`k`).
    Supported,
    /// `Require`.
    Require,
    /// `Proxy-Require`.
    ProxyRequire,
    /// `Unsupported`.
    Unsupported,
    /// `Authorization`.
    Authorization,
    /// `Proxy-Authorization`.
    ProxyAuthorization,
    /// `WWW-Authenticate`.
    WwwAuthenticate,
    /// `Proxy-Authenticate`.
    ProxyAuthenticate,
    /// `Authentication-Info`.
    AuthenticationInfo,
    /// `User-Agent`.
    UserAgent,
    /// `Server`.
    Server,
    /// `Allow`.
    Allow,
    /// `Date`.
    Date,
    /// `Event` (`o`, RFC 6665).
    Event,
    /// `Subject` (`s`).
    Subject,
    /// `Content-Encoding` (`e`).
    ContentEncoding,
    /// `Retry-After`.
    RetryAfter,
    /// `Timestamp`.
    Timestamp,
    /// `Warning`.
    Warning,
    /// `Allow-Events` (`u`, RFC 6665).
    AllowEvents,
    /// `Refer-To` (`r`, RFC 3515).
    ReferTo,
    /// `Referred-By` (`b`, RFC 3892).
    ReferredBy,
    /// `Session-Expires` (`x`, RFC 4028).
    SessionExpires,
    /// `Identity` (`y`, RFC 8224).
    Identity,
    /// `Accept-Contact` (`a`, RFC 3841).
    AcceptContact,
    /// `Reject-Contact` (`j`, RFC 3841).
    RejectContact,
    /// `Request-Disposition` (`d`, RFC 3841).
    RequestDisposition,
    /// `Identity-Info` (`n`, RFC 4474).
    IdentityInfo,
    /// Any other header, spelled as received.
    Other(&'a str),
}

use HeaderName as H;

/// Every known name in index order; `index()` and `from_index()` map into it.
const KNOWN: [HeaderName<'static>; 42] = [
    H::Via,
    H::From,
    H::To,
    H::CallId,
    H::CSeq,
    H::Contact,
    H::Expires,
    H::MinExpires,
    H::MaxForwards,
    H::ContentLength,
    H::ContentType,
    H::Path,
    H::Route,
    H::RecordRoute,
    H::Supported,
    H::Require,
    H::ProxyRequire,
    H::Unsupported,
    H::Authorization,
    H::ProxyAuthorization,
    H::WwwAuthenticate,
    H::ProxyAuthenticate,
    H::AuthenticationInfo,
    H::UserAgent,
    H::Server,
    H::Allow,
    H::Date,
    H::Event,
    H::Subject,
    H::ContentEncoding,
    H::RetryAfter,
    H::Timestamp,
    H::Warning,
    H::AllowEvents,
    H::ReferTo,
    H::ReferredBy,
    H::SessionExpires,
    H::Identity,
    H::AcceptContact,
    H::RejectContact,
    H::RequestDisposition,
    H::IdentityInfo,
];

/// The index `index()` gives to `Other` names.
pub(crate) const OTHER_INDEX: u8 = u8::MAX;

/// Classifies raw name bytes into a `KNOWN` index (or `OTHER_INDEX`). This runs once per
/// header line, so length and first letter pick (nearly always) one candidate, which is
/// then compared once.
pub(crate) fn known_index(name: &[u8]) -> u8 {
    let Some(&first) = name.first() else {
        return OTHER_INDEX;
    };
    let first = first.to_ascii_lowercase();
    let candidates: &[u8] = match (name.len(), first) {
        (1, letter) => return compact_index(letter),
        (2, b't') => &[2],
        (3, b'v') => &[0],
        (4, b'f') => &[1],
        (4, b'c') => &[4],
        (4, b'p') => &[11],
        (4, b'd') => &[26],
        (5, b'r') => &[12],
        (5, b'a') => &[25],
        (5, b'e') => &[27],
        (6, b's') => &[24],
        (7, b'c') => &[3, 5],
        (7, b'e') => &[6],
        (7, b'r') => &[15],
        (7, b's') => &[28],
        (7, b'w') => &[32],
        (8, b'r') => &[34],
        (8, b'i') => &[37],
        (9, b's') => &[14],
        (9, b't') => &[31],
        (10, b'u') => &[23],
        (11, b'm') => &[7],
        (11, b'u') => &[17],
        (11, b'r') => &[30, 35],
        (12, b'm') => &[8],
        (12, b'c') => &[10],
        (12, b'r') => &[13],
        (12, b'a') => &[33],
        (13, b'p') => &[16],
        (13, b'a') => &[18],
        (13, b'i') => &[41],
        (14, b'c') => &[9],
        (14, b'a') => &[38],
        (14, b'r') => &[39],
        (15, b's') => &[36],
        (16, b'w') => &[20],
        (16, b'c') => &[29],
        (18, b'p') => &[21],
        (19, b'p') => &[19],
        (19, b'a') => &[22],
        (19, b'r') => &[40],
        _ => return OTHER_INDEX,
    };
    candidates
        .iter()
        .copied()
        .find(|&i| {
            NAMES
                .get(usize::from(i))
                .is_some_and(|known| same_name(known.as_bytes(), name))
        })
        .unwrap_or(OTHER_INDEX)
}

/// Case-insensitive comparison of a canonical name with received bytes; most senders use
/// the canonical case, so an exact byte match is tried first.
fn same_name(canonical: &[u8], name: &[u8]) -> bool {
    canonical.len() == name.len()
        && canonical
            .iter()
            .zip(name)
            .all(|(&k, &n)| k == n || (k.is_ascii_alphabetic() && k ^ 0x20 == n))
}

/// The `KNOWN` index of a compact form letter (RFC 3261 section 7.3.3 and later RFCs).
fn compact_index(letter: u8) -> u8 {
    match letter.to_ascii_lowercase() {
        b'v' => 0,
        b'f' => 1,
        b't' => 2,
        b'i' => 3,
        b'm' => 5,
        b'l' => 9,
        b'c' => 10,
        b'k' => 14,
        b'o' => 27,
        b's' => 28,
        b'e' => 29,
        b'u' => 33,
        b'r' => 34,
        b'b' => 35,
        b'x' => 36,
        b'y' => 37,
        b'a' => 38,
        b'j' => 39,
        b'd' => 40,
        b'n' => 41,
        _ => OTHER_INDEX,
    }
}

/// Canonical spellings in `KNOWN` order.
const NAMES: [&str; 42] = [
    "Via",
    "From",
    "To",
    "Call-ID",
    "CSeq",
    "Contact",
    "Expires",
    "Min-Expires",
    "Max-Forwards",
    "Content-Length",
    "Content-Type",
    "Path",
    "Route",
    "Record-Route",
    "Supported",
    "Require",
    "Proxy-Require",
    "Unsupported",
    "Authorization",
    "Proxy-Authorization",
    "WWW-Authenticate",
    "Proxy-Authenticate",
    "Authentication-Info",
    "User-Agent",
    "Server",
    "Allow",
    "Date",
    "Event",
    "Subject",
    "Content-Encoding",
    "Retry-After",
    "Timestamp",
    "Warning",
    "Allow-Events",
    "Refer-To",
    "Referred-By",
    "Session-Expires",
    "Identity",
    "Accept-Contact",
    "Reject-Contact",
    "Request-Disposition",
    "Identity-Info",
];

impl<'a> HeaderName<'a> {
    /// Classifies a header name: case-insensitive, compact forms map to the full name.
    pub fn parse(name: &'a str) -> HeaderName<'a> {
        Self::known(name.as_bytes()).unwrap_or(H::Other(name))
    }

    /// The known header this name denotes, if any.
    pub fn known(name: &[u8]) -> Option<HeaderName<'static>> {
        Self::from_index(known_index(name))
    }

    /// The header a compact form letter stands for (RFC 3261 section 7.3.3 and later RFCs).
    pub fn from_compact(letter: u8) -> Option<HeaderName<'static>> {
        Some(match letter.to_ascii_lowercase() {
            b'i' => H::CallId,
            b'm' => H::Contact,
            b'e' => H::ContentEncoding,
            b'l' => H::ContentLength,
            b'c' => H::ContentType,
            b'f' => H::From,
            b's' => H::Subject,
            b'k' => H::Supported,
            b't' => H::To,
            b'v' => H::Via,
            b'o' => H::Event,
            b'u' => H::AllowEvents,
            b'r' => H::ReferTo,
            b'b' => H::ReferredBy,
            b'x' => H::SessionExpires,
            b'y' => H::Identity,
            b'a' => H::AcceptContact,
            b'j' => H::RejectContact,
            b'd' => H::RequestDisposition,
            b'n' => H::IdentityInfo,
            _ => return None,
        })
    }

    /// The canonical full name (`Call-ID`, `WWW-Authenticate`); `Other` as written.
    pub fn as_str(&self) -> &'a str {
        match self {
            H::Via => "Via",
            H::From => "From",
            H::To => "To",
            H::CallId => "Call-ID",
            H::CSeq => "CSeq",
            H::Contact => "Contact",
            H::Expires => "Expires",
            H::MinExpires => "Min-Expires",
            H::MaxForwards => "Max-Forwards",
            H::ContentLength => "Content-Length",
            H::ContentType => "Content-Type",
            H::Path => "Path",
            H::Route => "Route",
            H::RecordRoute => "Record-Route",
            H::Supported => "Supported",
            H::Require => "Require",
            H::ProxyRequire => "Proxy-Require",
            H::Unsupported => "Unsupported",
            H::Authorization => "Authorization",
            H::ProxyAuthorization => "Proxy-Authorization",
            H::WwwAuthenticate => "WWW-Authenticate",
            H::ProxyAuthenticate => "Proxy-Authenticate",
            H::AuthenticationInfo => "Authentication-Info",
            H::UserAgent => "User-Agent",
            H::Server => "Server",
            H::Allow => "Allow",
            H::Date => "Date",
            H::Event => "Event",
            H::Subject => "Subject",
            H::ContentEncoding => "Content-Encoding",
            H::RetryAfter => "Retry-After",
            H::Timestamp => "Timestamp",
            H::Warning => "Warning",
            H::AllowEvents => "Allow-Events",
            H::ReferTo => "Refer-To",
            H::ReferredBy => "Referred-By",
            H::SessionExpires => "Session-Expires",
            H::Identity => "Identity",
            H::AcceptContact => "Accept-Contact",
            H::RejectContact => "Reject-Contact",
            H::RequestDisposition => "Request-Disposition",
            H::IdentityInfo => "Identity-Info",
            H::Other(name) => name,
        }
    }

    /// The compact form letter, where the header has one (`Via` gives `v`).
    pub fn compact(&self) -> Option<char> {
        Some(match self {
            H::CallId => 'i',
            H::Contact => 'm',
            H::ContentEncoding => 'e',
            H::ContentLength => 'l',
            H::ContentType => 'c',
            H::From => 'f',
            H::Subject => 's',
            H::Supported => 'k',
            H::To => 't',
            H::Via => 'v',
            H::Event => 'o',
            H::AllowEvents => 'u',
            H::ReferTo => 'r',
            H::ReferredBy => 'b',
            H::SessionExpires => 'x',
            H::Identity => 'y',
            H::AcceptContact => 'a',
            H::RejectContact => 'j',
            H::RequestDisposition => 'd',
            H::IdentityInfo => 'n',
            _ => return None,
        })
    }

    /// The same name with a known name for an `Other` that spells one (`Other("v")` is `Via`).
    pub fn normalized(&self) -> HeaderName<'a> {
        match self {
            H::Other(name) => Self::parse(name),
            known => *known,
        }
    }

    /// Position in the known-name table, or `OTHER_INDEX` for `Other`.
    pub(crate) fn index(&self) -> u8 {
        match self {
            H::Via => 0,
            H::From => 1,
            H::To => 2,
            H::CallId => 3,
            H::CSeq => 4,
            H::Contact => 5,
            H::Expires => 6,
            H::MinExpires => 7,
            H::MaxForwards => 8,
            H::ContentLength => 9,
            H::ContentType => 10,
            H::Path => 11,
            H::Route => 12,
            H::RecordRoute => 13,
            H::Supported => 14,
            H::Require => 15,
            H::ProxyRequire => 16,
            H::Unsupported => 17,
            H::Authorization => 18,
            H::ProxyAuthorization => 19,
            H::WwwAuthenticate => 20,
            H::ProxyAuthenticate => 21,
            H::AuthenticationInfo => 22,
            H::UserAgent => 23,
            H::Server => 24,
            H::Allow => 25,
            H::Date => 26,
            H::Event => 27,
            H::Subject => 28,
            H::ContentEncoding => 29,
            H::RetryAfter => 30,
            H::Timestamp => 31,
            H::Warning => 32,
            H::AllowEvents => 33,
            H::ReferTo => 34,
            H::ReferredBy => 35,
            H::SessionExpires => 36,
            H::Identity => 37,
            H::AcceptContact => 38,
            H::RejectContact => 39,
            H::RequestDisposition => 40,
            H::IdentityInfo => 41,
            H::Other(name) => known_index(name.as_bytes()),
        }
    }

    /// The known name at `index`, if `index` denotes one.
    pub(crate) fn from_index(index: u8) -> Option<HeaderName<'static>> {
        KNOWN.get(usize::from(index)).copied()
    }
}

impl PartialEq for HeaderName<'_> {
    fn eq(&self, other: &HeaderName<'_>) -> bool {
        match (self.normalized(), other.normalized()) {
            (H::Other(a), H::Other(b)) => a.eq_ignore_ascii_case(b),
            (a, b) => std::mem::discriminant(&a) == std::mem::discriminant(&b),
        }
    }
}

impl Eq for HeaderName<'_> {}

impl fmt::Display for HeaderName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_name_parses_to_itself_in_any_case() {
        for known in KNOWN {
            let name = known.as_str();
            assert_eq!(HeaderName::parse(name).index(), known.index(), "{name}");
            let upper = name.to_ascii_uppercase();
            assert_eq!(HeaderName::parse(&upper), known, "{upper}");
            let lower = name.to_ascii_lowercase();
            assert_eq!(HeaderName::parse(&lower), known, "{lower}");
        }
    }

    #[test]
    fn names_table_matches_as_str_and_compact_letters() {
        for (i, known) in KNOWN.iter().enumerate() {
            assert_eq!(NAMES.get(i).copied(), Some(known.as_str()));
            if let Some(letter) = known.compact() {
                assert_eq!(usize::from(compact_index(letter as u8)), i, "{known}");
            }
        }
        for letter in b'a'..=b'z' {
            let by_table = HeaderName::from_index(compact_index(letter));
            assert_eq!(
                by_table,
                HeaderName::from_compact(letter),
                "{}",
                letter as char
            );
        }
    }

    #[test]
    fn length_candidates_cover_every_known_name() {
        for (i, known) in KNOWN.iter().enumerate() {
            assert_eq!(
                usize::from(known_index(known.as_str().as_bytes())),
                i,
                "{known}"
            );
        }
    }

    #[test]
    fn index_round_trips_through_the_table() {
        for (i, known) in KNOWN.iter().enumerate() {
            assert_eq!(usize::from(known.index()), i);
            assert_eq!(HeaderName::from_index(known.index()), Some(*known));
        }
        assert_eq!(HeaderName::Other("X-Foo").index(), OTHER_INDEX);
        assert_eq!(HeaderName::from_index(OTHER_INDEX), None);
    }

    #[test]
    fn compact_forms_map_to_full_names_both_ways() {
        let pairs = [
            ("i", H::CallId),
            ("m", H::Contact),
            ("e", H::ContentEncoding),
            ("l", H::ContentLength),
            ("c", H::ContentType),
            ("f", H::From),
            ("s", H::Subject),
            ("k", H::Supported),
            ("t", H::To),
            ("v", H::Via),
            ("o", H::Event),
            ("u", H::AllowEvents),
            ("r", H::ReferTo),
            ("b", H::ReferredBy),
            ("x", H::SessionExpires),
            ("y", H::Identity),
            ("a", H::AcceptContact),
            ("j", H::RejectContact),
            ("d", H::RequestDisposition),
            ("n", H::IdentityInfo),
        ];
        for (letter, name) in pairs {
            assert_eq!(HeaderName::parse(letter), name, "{letter}");
            assert_eq!(HeaderName::parse(&letter.to_ascii_uppercase()), name);
            assert_eq!(name.compact().map(String::from).as_deref(), Some(letter));
        }
        assert_eq!(HeaderName::parse("q"), H::Other("q"));
        assert_eq!(H::CSeq.compact(), None);
    }

    #[test]
    fn canonical_spelling_of_odd_names() {
        assert_eq!(HeaderName::parse("call-id").as_str(), "Call-ID");
        assert_eq!(
            HeaderName::parse("www-authenticate").as_str(),
            "WWW-Authenticate"
        );
        assert_eq!(HeaderName::parse("cseq").as_str(), "CSeq");
    }

    #[test]
    fn other_names_compare_case_insensitively_and_keep_spelling() {
        let name = HeaderName::parse("X-Custom-Thing");
        assert_eq!(name, H::Other("x-custom-thing"));
        assert_ne!(name, H::Other("X-Custom"));
        assert_eq!(name.as_str(), "X-Custom-Thing");
        assert_eq!(H::Other("v"), H::Via);
        assert_ne!(H::Via, H::To);
        assert_ne!(H::Other("Via"), H::Other("To"));
    }

    #[test]
    fn near_misses_are_other() {
        for name in ["Vias", "Fro", "Contacts", "Content-Lengt", "", "Call_ID"] {
            assert!(matches!(HeaderName::parse(name), H::Other(_)), "{name}");
        }
    }
}
