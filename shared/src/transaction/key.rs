//! Transaction matching keys (RFC 3261 sections 17.1.3 and 17.2.3).
//!
//! Keys are owned, hashable values built from borrowed parts of a parsed message, so a
//! transaction table is a plain `HashMap`. Comparison rules follow RFC 3261 section
//! 7.3.1: tokens (branch, tags, host names, Via parameters) are case-insensitive and
//! are lowercased here; methods (section 7.1), Call-IDs (section 20.8) and URIs are
//! kept as they are.

/// The prefix of a branch made by an RFC 3261 element (section 8.1.1.7).
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// Whether a Via branch starts with the RFC 3261 magic cookie (as a token, compared
/// case-insensitively).
pub fn has_magic_cookie(branch: &str) -> bool {
    branch
        .get(..MAGIC_COOKIE.len())
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(MAGIC_COOKIE))
}

/// The parts of a response (or of the request sent) that pick a client transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientKeyParts<'a> {
    /// The branch of the top Via.
    pub branch: &'a str,
    /// The CSeq method of a response, or the method of the request sent.
    pub method: &'a str,
}

/// Identifies a client transaction (RFC 3261 section 17.1.3): top Via branch plus CSeq
/// method, so a CANCEL and the INVITE it cancels, which share a branch, stay apart.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientKey {
    branch: String,
    method: String,
}

impl ClientKey {
    /// Builds the key from a message's parts.
    pub fn new(parts: &ClientKeyParts<'_>) -> Self {
        ClientKey {
            branch: parts.branch.to_ascii_lowercase(),
            method: parts.method.to_owned(),
        }
    }
}

/// The parts of a request that pick a server transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerKeyParts<'a> {
    /// The branch of the top Via, if it has one.
    pub branch: Option<&'a str>,
    /// The sent-by (`host[:port]`) of the top Via.
    pub sent_by: &'a str,
    /// The request method.
    pub method: &'a str,
    /// The Request-URI as written (RFC 2543 fallback only).
    pub request_uri: &'a str,
    /// The Call-ID (RFC 2543 fallback only).
    pub call_id: &'a str,
    /// The From tag (RFC 2543 fallback only).
    pub from_tag: Option<&'a str>,
    /// The To tag (RFC 2543 fallback only).
    pub to_tag: Option<&'a str>,
    /// The CSeq number (RFC 2543 fallback only).
    pub cseq: u32,
    /// The whole top Via value, `SIP/2.0/UDP host:port;params` (RFC 2543 fallback
    /// only).
    pub top_via: &'a str,
}

/// Identifies a server transaction (RFC 3261 section 17.2.3).
///
/// In both forms an ACK gets the key of the INVITE it acknowledges, while a CANCEL
/// keeps its own method and so its own transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ServerKey {
    /// The branch carries the magic cookie: branch, sent-by and method.
    Rfc3261 {
        /// The branch, lowercased.
        branch: String,
        /// The sent-by, lowercased, without white space.
        sent_by: String,
        /// The method, with ACK taken as INVITE.
        method: String,
    },
    /// No magic cookie: the RFC 2543 rule over the dialog and request identifiers.
    Rfc2543 {
        /// The Request-URI, trimmed.
        request_uri: String,
        /// The Call-ID, trimmed.
        call_id: String,
        /// The From tag, lowercased.
        from_tag: Option<String>,
        /// The To tag, lowercased: the request's own for INVITE and others; for an ACK
        /// the tag of the response it acknowledges (see [`ServerKey::ack_key`]).
        to_tag: Option<String>,
        /// The CSeq number.
        cseq: u32,
        /// The method, with ACK taken as INVITE.
        method: String,
        /// The top Via in a canonical form (see [`canonical_via`]).
        top_via: String,
    },
}

impl ServerKey {
    /// Builds the key from a request's parts.
    pub fn new(parts: &ServerKeyParts<'_>) -> Self {
        let method = match parts.method {
            "ACK" => "INVITE",
            other => other,
        }
        .to_owned();
        match parts.branch {
            Some(branch) if has_magic_cookie(branch) => ServerKey::Rfc3261 {
                branch: branch.to_ascii_lowercase(),
                sent_by: without_white_space(parts.sent_by).to_ascii_lowercase(),
                method,
            },
            _ => ServerKey::Rfc2543 {
                request_uri: parts.request_uri.trim().to_owned(),
                call_id: parts.call_id.trim().to_owned(),
                from_tag: parts.from_tag.map(str::to_ascii_lowercase),
                to_tag: parts.to_tag.map(str::to_ascii_lowercase),
                cseq: parts.cseq,
                method,
                top_via: canonical_via(parts.top_via),
            },
        }
    }

    /// The key an ACK for this INVITE transaction carries once a response with
    /// `response_to_tag` was sent. RFC 2543 matches the ACK's To tag against the
    /// response's, not the INVITE's, so the table registers this key as an alias
    /// when the response goes out. `None` for RFC 3261 keys and non-INVITE keys, which
    /// need no alias.
    pub fn ack_key(&self, response_to_tag: &str) -> Option<ServerKey> {
        match self {
            ServerKey::Rfc2543 {
                request_uri,
                call_id,
                from_tag,
                cseq,
                method,
                top_via,
                ..
            } if method == "INVITE" => Some(ServerKey::Rfc2543 {
                request_uri: request_uri.clone(),
                call_id: call_id.clone(),
                from_tag: from_tag.clone(),
                to_tag: Some(response_to_tag.to_ascii_lowercase()),
                cseq: *cseq,
                method: method.clone(),
                top_via: top_via.clone(),
            }),
            _ => None,
        }
    }
    /// For a CANCEL's key, the key of the INVITE server transaction it cancels: the
    /// same matching with the method taken as INVITE (RFC 3261 section 9.2). `None`
    /// for any other method.
    pub fn cancelled_invite_key(&self) -> Option<ServerKey> {
        let mut target = self.clone();
        let method = match &mut target {
            ServerKey::Rfc3261 { method, .. } | ServerKey::Rfc2543 { method, .. } => method,
        };
        if method != "CANCEL" {
            return None;
        }
        *method = "INVITE".to_owned();
        Some(target)
    }
}

fn without_white_space(s: &str) -> String {
    s.chars().filter(|c| !c.is_ascii_whitespace()).collect()
}

/// A Via value in a form where equal Vias (RFC 3261 section 20.42: same sent-protocol,
/// sent-by and set of parameters with equal values) give equal strings: white space
/// dropped, lowercased, parameters sorted.
pub fn canonical_via(via: &str) -> String {
    let mut pieces = via.split(';');
    let head = pieces
        .next()
        .map(|head| without_white_space(head).to_ascii_lowercase())
        .unwrap_or_default();
    let mut params: Vec<String> = pieces
        .map(|param| without_white_space(param).to_ascii_lowercase())
        .filter(|param| !param.is_empty())
        .collect();
    params.sort_unstable();
    let mut out = head;
    for param in params {
        out.push(';');
        out.push_str(&param);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn invite<'a>() -> ServerKeyParts<'a> {
        ServerKeyParts {
            branch: Some("z9hG4bK776asdhds"),
            sent_by: "pc33.atlanta.com:5060",
            method: "INVITE",
            request_uri: "sip:bob@biloxi.com",
            call_id: "a84b4c76e66710@pc33.atlanta.com",
            from_tag: Some("1928301774"),
            to_tag: None,
            cseq: 314159,
            top_via: "SIP/2.0/UDP pc33.atlanta.com:5060;branch=z9hG4bK776asdhds",
        }
    }

    fn rfc2543<'a>() -> ServerKeyParts<'a> {
        ServerKeyParts {
            branch: None,
            top_via: "SIP/2.0/UDP pc33.atlanta.com:5060",
            ..invite()
        }
    }

    #[test]
    fn magic_cookie() {
        assert!(has_magic_cookie("z9hG4bK776asdhds"));
        assert!(has_magic_cookie("z9hG4bK"));
        assert!(has_magic_cookie("Z9HG4BKabc"));
        assert!(!has_magic_cookie("z9hG4b"));
        assert!(!has_magic_cookie("776asdhds"));
        assert!(!has_magic_cookie(""));
        // A multi-byte character across the prefix boundary must not panic.
        assert!(!has_magic_cookie("z9hG4b\u{e9}x"));
    }

    #[test]
    fn client_key_is_branch_and_method() {
        let sent = ClientKey::new(&ClientKeyParts {
            branch: "z9hG4bKnashds8",
            method: "INVITE",
        });
        let response = ClientKey::new(&ClientKeyParts {
            branch: "z9hG4bKnashds8",
            method: "INVITE",
        });
        let cancel = ClientKey::new(&ClientKeyParts {
            branch: "z9hG4bKnashds8",
            method: "CANCEL",
        });
        let other = ClientKey::new(&ClientKeyParts {
            branch: "z9hG4bKnashds9",
            method: "INVITE",
        });
        assert_eq!(sent, response);
        assert_ne!(sent, cancel);
        assert_ne!(sent, other);
        let mut table = HashMap::new();
        table.insert(sent, 1);
        table.insert(cancel, 2);
        assert_eq!(table.get(&response), Some(&1));
    }

    #[test]
    fn client_key_method_is_case_sensitive_and_branch_is_not() {
        let a = ClientKey::new(&ClientKeyParts {
            branch: "z9hG4bKabc",
            method: "INVITE",
        });
        let b = ClientKey::new(&ClientKeyParts {
            branch: "Z9HG4BKABC",
            method: "INVITE",
        });
        let c = ClientKey::new(&ClientKeyParts {
            branch: "z9hG4bKabc",
            method: "invite",
        });
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn rfc3261_key_ignores_dialog_fields() {
        let key = ServerKey::new(&invite());
        assert_eq!(
            key,
            ServerKey::Rfc3261 {
                branch: "z9hg4bk776asdhds".into(),
                sent_by: "pc33.atlanta.com:5060".into(),
                method: "INVITE".into(),
            }
        );
        let retransmission = ServerKeyParts {
            request_uri: "sip:other@example.com",
            cseq: 1,
            sent_by: "PC33.Atlanta.COM : 5060",
            ..invite()
        };
        assert_eq!(ServerKey::new(&retransmission), key);
    }

    #[test]
    fn rfc3261_ack_matches_invite_and_cancel_does_not() {
        let key = ServerKey::new(&invite());
        let ack = ServerKeyParts {
            method: "ACK",
            to_tag: Some("a6c85cf"),
            ..invite()
        };
        let cancel = ServerKeyParts {
            method: "CANCEL",
            ..invite()
        };
        assert_eq!(ServerKey::new(&ack), key);
        assert_ne!(ServerKey::new(&cancel), key);
        assert_eq!(key.ack_key("a6c85cf"), None);
    }

    #[test]
    fn rfc3261_key_separates_branch_and_sent_by() {
        let key = ServerKey::new(&invite());
        let other_branch = ServerKeyParts {
            branch: Some("z9hG4bK776asdhdt"),
            ..invite()
        };
        let other_host = ServerKeyParts {
            sent_by: "pc34.atlanta.com:5060",
            ..invite()
        };
        let no_port = ServerKeyParts {
            sent_by: "pc33.atlanta.com",
            ..invite()
        };
        assert_ne!(ServerKey::new(&other_branch), key);
        assert_ne!(ServerKey::new(&other_host), key);
        assert_ne!(ServerKey::new(&no_port), key);
    }

    #[test]
    fn rfc2543_fallback_without_cookie() {
        let key = ServerKey::new(&rfc2543());
        assert!(matches!(key, ServerKey::Rfc2543 { .. }));
        // A non-cookie branch also falls back.
        let old_branch = ServerKeyParts {
            branch: Some("776asdhds"),
            ..rfc2543()
        };
        assert!(matches!(
            ServerKey::new(&old_branch),
            ServerKey::Rfc2543 { .. }
        ));
        // A retransmission with the Via respelled matches.
        let retransmission = ServerKeyParts {
            top_via: "SIP/2.0/UDP  PC33.atlanta.com : 5060 ",
            ..rfc2543()
        };
        assert_eq!(ServerKey::new(&retransmission), key);
        for different in [
            ServerKeyParts {
                request_uri: "sip:carol@biloxi.com",
                ..rfc2543()
            },
            ServerKeyParts {
                call_id: "other@pc33.atlanta.com",
                ..rfc2543()
            },
            ServerKeyParts {
                from_tag: Some("99"),
                ..rfc2543()
            },
            ServerKeyParts {
                to_tag: Some("314"),
                ..rfc2543()
            },
            ServerKeyParts {
                cseq: 314160,
                ..rfc2543()
            },
            ServerKeyParts {
                top_via: "SIP/2.0/UDP pc34.atlanta.com:5060",
                ..rfc2543()
            },
            ServerKeyParts {
                top_via: "SIP/2.0/UDP pc33.atlanta.com:5060;received=192.0.2.1",
                ..rfc2543()
            },
            ServerKeyParts {
                method: "CANCEL",
                ..rfc2543()
            },
        ] {
            assert_ne!(ServerKey::new(&different), key, "{different:?}");
        }
    }

    #[test]
    fn rfc2543_ack_matches_invite_through_the_response_to_tag() {
        let invite_key = ServerKey::new(&rfc2543());
        let ack = ServerKeyParts {
            method: "ACK",
            to_tag: Some("A6C85CF"),
            ..rfc2543()
        };
        let ack_key = ServerKey::new(&ack);
        // The INVITE had no To tag, the ACK has the response's: no direct match.
        assert_ne!(ack_key, invite_key);
        let mut table = HashMap::new();
        table.insert(invite_key.clone(), "invite");
        if let Some(alias) = invite_key.ack_key("a6c85cf") {
            table.insert(alias, "invite");
        }
        assert_eq!(table.get(&ack_key), Some(&"invite"));
        // An ACK carrying another tag (for a different response) does not match.
        let stray = ServerKeyParts {
            method: "ACK",
            to_tag: Some("ffff"),
            ..rfc2543()
        };
        assert_eq!(table.get(&ServerKey::new(&stray)), None);
    }

    #[test]
    fn cancel_finds_the_invite_it_cancels() {
        for base in [invite(), rfc2543()] {
            let invite_key = ServerKey::new(&base);
            let cancel_key = ServerKey::new(&ServerKeyParts {
                method: "CANCEL",
                ..base
            });
            assert_ne!(cancel_key, invite_key);
            assert_eq!(cancel_key.cancelled_invite_key(), Some(invite_key.clone()));
            assert_eq!(invite_key.cancelled_invite_key(), None);
        }
        let bye = ServerKey::new(&ServerKeyParts {
            method: "BYE",
            ..invite()
        });
        assert_eq!(bye.cancelled_invite_key(), None);
    }

    #[test]
    fn rfc2543_non_invite_has_no_ack_alias() {
        let register = ServerKeyParts {
            method: "REGISTER",
            ..rfc2543()
        };
        assert_eq!(ServerKey::new(&register).ack_key("x"), None);
    }

    #[test]
    fn via_canonical_form() {
        assert_eq!(
            canonical_via("SIP/2.0/UDP Host.Example:5060 ; ttl=16;maddr=224.2.0.1"),
            "sip/2.0/udphost.example:5060;maddr=224.2.0.1;ttl=16"
        );
        assert_eq!(
            canonical_via("SIP/2.0/UDP h;b=1;a=2"),
            canonical_via("SIP/2.0/UDP h;a=2;b=1")
        );
        assert_eq!(canonical_via(""), "");
    }
}
