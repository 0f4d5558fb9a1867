//! The REGISTER decision (RFC 3261 section 10.3, RFC 3327, RFC 5626 section 6), sans-IO:
//! a request, the policy, the AoR's live bindings and the time in; the changes and the
//! reply out.
//!
//! Steps 1 to 3 of section 10.3 (domain, Require, authentication) happen before this;
//! the SIP layer also turns a `Contact: *` mixed with other contacts into a 400 and
//! hands a lone `*` over as [`ContactsSpec::Star`].

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::binding::{ruid, Aor, Binding, BindingKey, DbTime};

/// How long a Contact may be bound, and how many an AoR may have.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExpiresPolicy {
    /// Shortest expiry accepted (seconds); shorter non-zero requests get 423.
    pub min: u32,
    /// Longest expiry granted (seconds); longer requests are shortened to it.
    pub max: u32,
    /// Expiry when neither the contact nor the Expires header names one.
    pub default: u32,
    /// Most live bindings per AoR; a REGISTER that would exceed it gets 403.
    pub max_contacts: usize,
}

impl Default for ExpiresPolicy {
    fn default() -> Self {
        ExpiresPolicy {
            min: 60,
            max: 7200,
            default: 3600,
            max_contacts: 16,
        }
    }
}

/// What the REGISTER asked for in its Contact header fields.
#[derive(Clone, Debug, PartialEq)]
pub enum ContactsSpec {
    /// `Contact: *`: remove every binding (valid only with `Expires: 0`).
    Star,
    /// The listed contacts; empty is a query for the current bindings.
    List(Vec<ContactSpec>),
}

/// One Contact header field value of a REGISTER.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ContactSpec {
    /// The Contact URI, as it will be stored and returned.
    pub uri: String,
    /// The `expires` Contact parameter.
    pub expires_param: Option<u32>,
    /// The `q` parameter in thousandths (0..=1000).
    pub q: Option<u16>,
    /// The `+sip.instance` parameter (RFC 5626), quotes included as received.
    pub instance: Option<String>,
    /// The `reg-id` parameter (RFC 5626).
    pub reg_id: Option<u32>,
}

/// A REGISTER reduced to what the registrar decides on.
#[derive(Clone, Debug, PartialEq)]
pub struct RegisterRequest {
    /// The AoR from the To-URI.
    pub aor: Aor,
    /// The Call-ID.
    pub call_id: String,
    /// The CSeq number.
    pub cseq: u32,
    /// The Expires header.
    pub expires_header: Option<u32>,
    /// The Contact header fields.
    pub contacts: ContactsSpec,
    /// The Path header values (RFC 3327), comma-joined.
    pub path: Option<String>,
    /// The source as Kamailio stores it in `received` (e.g. `sip:192.0.2.1:5060;transport=udp`).
    pub received: Option<String>,
    /// The User-Agent header ("" when absent).
    pub user_agent: String,
    /// The local socket the request arrived on (e.g. `udp:10.0.0.5:5060`).
    pub socket: Option<String>,
    /// Whether the first Path URI carries `ob` (RFC 5626 section 5.3).
    pub path_first_hop_has_ob: bool,
}

/// A refused REGISTER; nothing was changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The SIP status code.
    pub code: u16,
    /// The reason phrase.
    pub reason: &'static str,
    /// Min-Expires for a 423.
    pub min_expires: Option<u32>,
    /// For a 401 from an authentication check: the nonce was stale (`stale=true`).
    pub stale: bool,
}

impl Rejection {
    /// A rejection with no Min-Expires and no stale flag.
    pub const fn new(code: u16, reason: &'static str) -> Self {
        Rejection {
            code,
            reason,
            min_expires: None,
            stale: false,
        }
    }
}

/// An accepted REGISTER: what to write and what to answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Accepted {
    /// Bindings to insert or update (by `ruid`).
    pub upserts: Vec<Binding>,
    /// `ruid`s of bindings to remove (soft delete).
    pub removals: Vec<String>,
    /// Every live binding of the AoR afterwards, highest q first: the 200 OK's Contacts.
    pub bindings_after: Vec<Binding>,
    /// The 200 OK carries `Require: outbound` (RFC 5626 section 6).
    pub require_outbound: bool,
    /// The time the decision was made at, for each binding's remaining expires.
    pub now: DbTime,
}

/// The result of a REGISTER.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Refused with a final response; nothing changed.
    Reject(Rejection),
    /// Accepted; the changes are committed before the 200 OK.
    Accept(Accepted),
}

/// How far a retransmission's recomputed expiry may lie after the stored one: a
/// non-INVITE transaction lives 64*T1 = 32 s, so a retry of the same REGISTER arrives
/// within that time of the original.
const RETRANSMISSION_WINDOW_SECS: u32 = 32;

/// Column widths of `location`; longer values would fail the whole batch in the database.
const MAX_USERNAME: usize = 64;
const MAX_DOMAIN: usize = 64;
const MAX_CONTACT: usize = 512;
const MAX_RECEIVED: usize = 128;
const MAX_PATH: usize = 512;
const MAX_CALL_ID: usize = 255;
const MAX_USER_AGENT: usize = 255;
const MAX_SOCKET: usize = 64;
const MAX_INSTANCE: usize = 255;
/// The `cseq` column is a signed INT; RFC 3261 keeps CSeq below 2**31 anyway.
const MAX_CSEQ: u32 = i32::MAX as u32;
/// reg-id is stored in a signed INT too (RFC 5626: 1 to 2**31-1).
const MAX_REG_ID: u32 = i32::MAX as u32;

/// Decides a REGISTER against the AoR's current bindings at `now`.
///
/// `current` may hold expired bindings; they are ignored. The result is
/// deterministic in its inputs.
pub fn decide(
    request: &RegisterRequest,
    policy: &ExpiresPolicy,
    current: &[Binding],
    now: DbTime,
) -> Outcome {
    match decide_inner(request, policy, current, now) {
        Ok(accepted) => Outcome::Accept(accepted),
        Err(rejection) => Outcome::Reject(rejection),
    }
}

fn decide_inner(
    request: &RegisterRequest,
    policy: &ExpiresPolicy,
    current: &[Binding],
    now: DbTime,
) -> Result<Accepted, Rejection> {
    check_sizes(request)?;
    // The AoR's bindings by ruid; a BTreeMap keeps the output order deterministic.
    let before: BTreeMap<&str, &Binding> = current
        .iter()
        .filter(|b| b.is_live(now) && b.aor == request.aor)
        .map(|b| (b.ruid.as_str(), b))
        .collect();
    let mut after: BTreeMap<String, Binding> = before
        .iter()
        .map(|(ruid, b)| ((*ruid).to_owned(), (*b).clone()))
        .collect();
    let mut require_outbound = false;

    match &request.contacts {
        ContactsSpec::Star => {
            if request.expires_header != Some(0) {
                return Err(Rejection::new(400, "Contact * Requires Expires 0"));
            }
            for binding in before.values() {
                check_order(request, binding)?;
            }
            after.clear();
        }
        ContactsSpec::List(contacts) => {
            let with_reg_id = contacts
                .iter()
                .filter(|c| c.reg_id.is_some() && c.instance.is_some())
                .count();
            if with_reg_id > 1 {
                return Err(Rejection::new(400, "More Than One reg-id"));
            }
            for contact in contacts {
                let expires = expires_of(request, contact, policy)?;
                let (key, outbound) = key_of(request, contact);
                require_outbound |= outbound;
                let id = ruid(&request.aor, key);
                if let Some(existing) = before.get(id.as_str()) {
                    if is_retransmission(request, contact, existing, expires, now) {
                        continue;
                    }
                    check_order(request, existing)?;
                }
                if expires == 0 {
                    after.remove(&id);
                } else {
                    let binding = new_binding(request, contact, id, expires, now);
                    after.insert(binding.ruid.clone(), binding);
                }
            }
        }
    }

    if after.len() > policy.max_contacts && after.len() > before.len() {
        return Err(Rejection::new(403, "Too Many Contacts"));
    }

    let upserts = after
        .values()
        .filter(|b| before.get(b.ruid.as_str()).is_none_or(|old| *old != *b))
        .cloned()
        .collect();
    let removals = before
        .keys()
        .filter(|ruid| !after.contains_key(**ruid))
        .map(|ruid| (*ruid).to_owned())
        .collect();
    let mut bindings_after: Vec<Binding> = after.into_values().collect();
    // Highest q first; ties keep the ruid order, so the answer is stable.
    bindings_after.sort_by_key(|b| std::cmp::Reverse(b.q));
    Ok(Accepted {
        upserts,
        removals,
        bindings_after,
        require_outbound,
        now,
    })
}

/// Rejects values the `location` columns cannot hold.
fn check_sizes(request: &RegisterRequest) -> Result<(), Rejection> {
    let too_long = |value: Option<&str>, max: usize| value.is_some_and(|v| v.len() > max);
    if request.cseq > MAX_CSEQ {
        return Err(Rejection::new(400, "Invalid CSeq"));
    }
    if too_long(Some(&request.aor.username), MAX_USERNAME)
        || too_long(Some(&request.aor.domain), MAX_DOMAIN)
        || too_long(Some(&request.call_id), MAX_CALL_ID)
        || too_long(request.path.as_deref(), MAX_PATH)
        || too_long(request.received.as_deref(), MAX_RECEIVED)
        || too_long(request.socket.as_deref(), MAX_SOCKET)
    {
        return Err(Rejection::new(400, "Header Too Long"));
    }
    if let ContactsSpec::List(contacts) = &request.contacts {
        for c in contacts {
            if too_long(Some(&c.uri), MAX_CONTACT) || too_long(c.instance.as_deref(), MAX_INSTANCE)
            {
                return Err(Rejection::new(400, "Contact Too Long"));
            }
            if c.reg_id.is_some_and(|r| r == 0 || r > MAX_REG_ID) {
                return Err(Rejection::new(400, "Invalid reg-id"));
            }
            if c.q.is_some_and(|q| q > 1000) {
                return Err(Rejection::new(400, "Invalid q"));
            }
        }
    }
    Ok(())
}

/// The expiry granted to a contact (RFC 3261 section 10.3 step 7), or 423.
fn expires_of(
    request: &RegisterRequest,
    contact: &ContactSpec,
    policy: &ExpiresPolicy,
) -> Result<u32, Rejection> {
    let asked = contact
        .expires_param
        .or(request.expires_header)
        .unwrap_or(policy.default);
    if asked == 0 {
        return Ok(0);
    }
    if asked < policy.min {
        return Err(Rejection {
            min_expires: Some(policy.min),
            ..Rejection::new(423, "Interval Too Brief")
        });
    }
    Ok(asked.min(policy.max))
}

/// The binding key of a contact, and whether outbound (RFC 5626) applies to it.
///
/// reg-id counts only with an instance and when the edge (the Path's first hop)
/// supports outbound; otherwise it is ignored, as section 6 requires.
fn key_of<'a>(request: &RegisterRequest, contact: &'a ContactSpec) -> (BindingKey<'a>, bool) {
    match (&contact.instance, contact.reg_id) {
        (Some(instance), Some(reg_id)) if request.path_first_hop_has_ob => {
            (BindingKey::Flow { instance, reg_id }, true)
        }
        (Some(instance), _) => (
            BindingKey::Flow {
                instance,
                reg_id: 0,
            },
            false,
        ),
        (None, _) => (BindingKey::Contact(&contact.uri), false),
    }
}

/// Call-ID/CSeq ordering (section 10.3 step 7): the same Call-ID needs a higher CSeq.
fn check_order(request: &RegisterRequest, existing: &Binding) -> Result<(), Rejection> {
    if existing.call_id == request.call_id && request.cseq <= existing.cseq {
        return Err(Rejection::new(400, "Out Of Order CSeq"));
    }
    Ok(())
}

/// Whether the stored binding already is this very REGISTER's result.
///
/// A REGISTER retried (possibly on the other master) after a commit whose reply was
/// lost must succeed, not fail the CSeq check: same Call-ID, same CSeq, same contact
/// and Path, and an expiry that the same request made less than a transaction
/// lifetime ago.
fn is_retransmission(
    request: &RegisterRequest,
    contact: &ContactSpec,
    existing: &Binding,
    expires: u32,
    now: DbTime,
) -> bool {
    if existing.call_id != request.call_id
        || existing.cseq != request.cseq
        || existing.contact != contact.uri
        || existing.path != request.path
        || expires == 0
    {
        return false;
    }
    let wanted = now.plus_secs(expires);
    existing.expires <= wanted && existing.expires.secs_until(wanted) <= RETRANSMISSION_WINDOW_SECS
}

/// The binding a contact creates or refreshes.
fn new_binding(
    request: &RegisterRequest,
    contact: &ContactSpec,
    ruid: String,
    expires: u32,
    now: DbTime,
) -> Binding {
    let (_, outbound) = key_of(request, contact);
    Binding {
        ruid,
        aor: request.aor.clone(),
        contact: contact.uri.clone(),
        received: request.received.clone(),
        path: request.path.clone(),
        expires: now.plus_secs(expires),
        q: contact.q.unwrap_or(1000),
        call_id: request.call_id.clone(),
        cseq: request.cseq,
        last_modified: now,
        user_agent: truncate(&request.user_agent, MAX_USER_AGENT).to_owned(),
        socket: request.socket.clone(),
        instance: contact.instance.clone(),
        reg_id: if outbound {
            contact.reg_id.unwrap_or(0)
        } else {
            0
        },
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DbTime {
        DbTime::from_civil(2026, 11, 23, 12, 0, 0, 0).unwrap_or(DbTime::from_micros(0))
    }

    fn policy() -> ExpiresPolicy {
        ExpiresPolicy {
            min: 60,
            max: 3600,
            default: 1800,
            max_contacts: 3,
        }
    }

    fn contact(uri: &str) -> ContactSpec {
        ContactSpec {
            uri: uri.to_owned(),
            ..ContactSpec::default()
        }
    }

    fn request(cseq: u32, contacts: Vec<ContactSpec>) -> RegisterRequest {
        RegisterRequest {
            aor: Aor::new("alice", "example.com"),
            call_id: "call-1".to_owned(),
            cseq,
            expires_header: None,
            contacts: ContactsSpec::List(contacts),
            path: Some("<sip:tok@edge;lr;ob>".to_owned()),
            received: Some("sip:192.0.2.1:5060".to_owned()),
            user_agent: "phone".to_owned(),
            socket: Some("udp:10.0.0.5:5060".to_owned()),
            path_first_hop_has_ob: true,
        }
    }

    fn accepted(outcome: Outcome) -> Accepted {
        match outcome {
            Outcome::Accept(a) => a,
            Outcome::Reject(r) => panic!("expected acceptance, got {r:?}"),
        }
    }

    fn rejected(outcome: Outcome) -> Rejection {
        match outcome {
            Outcome::Reject(r) => r,
            Outcome::Accept(a) => panic!("expected rejection, got {a:?}"),
        }
    }

    /// The bindings after applying `request` to `current`.
    fn apply(current: &[Binding], request: &RegisterRequest, at: DbTime) -> Vec<Binding> {
        accepted(decide(request, &policy(), current, at)).bindings_after
    }

    #[test]
    fn new_binding_uses_default_expires_and_is_listed() {
        let a = accepted(decide(
            &request(1, vec![contact("sip:a@1.2.3.4")]),
            &policy(),
            &[],
            now(),
        ));
        assert_eq!(a.upserts.len(), 1);
        assert!(a.removals.is_empty());
        assert_eq!(a.bindings_after, a.upserts);
        let b = &a.bindings_after[0];
        assert_eq!(b.remaining(now()), 1800);
        assert_eq!(b.contact, "sip:a@1.2.3.4");
        assert_eq!(b.path.as_deref(), Some("<sip:tok@edge;lr;ob>"));
        assert_eq!(b.q, 1000);
        assert_eq!(b.cseq, 1);
        assert_eq!(b.ruid, ruid(&b.aor, BindingKey::Contact("sip:a@1.2.3.4")));
        assert!(!a.require_outbound);
    }

    #[test]
    fn contact_param_overrides_header_and_max_shortens() {
        let mut r = request(
            1,
            vec![
                ContactSpec {
                    expires_param: Some(120),
                    ..contact("sip:a@h")
                },
                contact("sip:b@h"),
                ContactSpec {
                    expires_param: Some(99_999),
                    ..contact("sip:c@h")
                },
            ],
        );
        r.expires_header = Some(300);
        let after = apply(&[], &r, now());
        let remaining = |uri: &str| {
            after
                .iter()
                .find(|b| b.contact == uri)
                .map(|b| b.remaining(now()))
        };
        assert_eq!(remaining("sip:a@h"), Some(120));
        assert_eq!(remaining("sip:b@h"), Some(300));
        assert_eq!(remaining("sip:c@h"), Some(3600));
    }

    #[test]
    fn too_brief_is_423_with_min_expires_and_zero_is_not() {
        let mut r = request(1, vec![contact("sip:a@h")]);
        r.expires_header = Some(59);
        let rej = rejected(decide(&r, &policy(), &[], now()));
        assert_eq!((rej.code, rej.min_expires), (423, Some(60)));
        r.expires_header = Some(0);
        let a = accepted(decide(&r, &policy(), &[], now()));
        assert!(a.upserts.is_empty() && a.removals.is_empty() && a.bindings_after.is_empty());
    }

    #[test]
    fn refresh_updates_expires_and_cseq() {
        let first = apply(&[], &request(1, vec![contact("sip:a@h")]), now());
        let later = now().plus_secs(100);
        let a = accepted(decide(
            &request(2, vec![contact("sip:a@h")]),
            &policy(),
            &first,
            later,
        ));
        assert_eq!(a.upserts.len(), 1);
        assert_eq!(a.upserts[0].ruid, first[0].ruid);
        assert_eq!(a.upserts[0].cseq, 2);
        assert_eq!(a.upserts[0].expires, later.plus_secs(1800));
        assert_eq!(a.upserts[0].last_modified, later);
    }

    #[test]
    fn unregister_removes_one_binding() {
        let two = apply(
            &[],
            &request(1, vec![contact("sip:a@h"), contact("sip:b@h")]),
            now(),
        );
        let mut r = request(2, vec![contact("sip:a@h")]);
        r.expires_header = Some(0);
        let a = accepted(decide(&r, &policy(), &two, now()));
        assert_eq!(
            a.removals,
            vec![ruid(&r.aor, BindingKey::Contact("sip:a@h"))]
        );
        assert!(a.upserts.is_empty());
        assert_eq!(a.bindings_after.len(), 1);
        assert_eq!(a.bindings_after[0].contact, "sip:b@h");
    }

    #[test]
    fn star_needs_expires_zero_and_removes_all() {
        let two = apply(
            &[],
            &request(1, vec![contact("sip:a@h"), contact("sip:b@h")]),
            now(),
        );
        let mut r = request(2, vec![]);
        r.contacts = ContactsSpec::Star;
        assert_eq!(rejected(decide(&r, &policy(), &two, now())).code, 400);
        r.expires_header = Some(5);
        assert_eq!(rejected(decide(&r, &policy(), &two, now())).code, 400);
        r.expires_header = Some(0);
        let a = accepted(decide(&r, &policy(), &two, now()));
        assert_eq!(a.removals.len(), 2);
        assert!(a.bindings_after.is_empty());
        // A star with the same Call-ID and an old CSeq fails.
        r.cseq = 1;
        assert_eq!(rejected(decide(&r, &policy(), &two, now())).code, 400);
        // Another Call-ID removes regardless of CSeq.
        r.call_id = "other".to_owned();
        assert_eq!(
            accepted(decide(&r, &policy(), &two, now())).removals.len(),
            2
        );
    }

    #[test]
    fn empty_contact_list_is_a_query() {
        let one = apply(&[], &request(1, vec![contact("sip:a@h")]), now());
        let a = accepted(decide(
            &request(9, vec![]),
            &policy(),
            &one,
            now().plus_secs(10),
        ));
        assert!(a.upserts.is_empty() && a.removals.is_empty());
        assert_eq!(a.bindings_after, one);
        assert_eq!(a.bindings_after[0].remaining(a.now), 1790);
    }

    #[test]
    fn older_or_equal_cseq_in_same_call_id_fails() {
        let one = apply(&[], &request(5, vec![contact("sip:a@h")]), now());
        let r = request(4, vec![contact("sip:a@h")]);
        assert_eq!(rejected(decide(&r, &policy(), &one, now())).code, 400);
        // Equal CSeq with a different Path is not a retransmission.
        let mut r = request(5, vec![contact("sip:a@h")]);
        r.path = Some("<sip:other@edge2;lr>".to_owned());
        assert_eq!(rejected(decide(&r, &policy(), &one, now())).code, 400);
        // The rejection of one contact refuses the whole request.
        let r = request(4, vec![contact("sip:new@h"), contact("sip:a@h")]);
        assert_eq!(rejected(decide(&r, &policy(), &one, now())).code, 400);
        // A different Call-ID may use any CSeq.
        let mut r = request(1, vec![contact("sip:a@h")]);
        r.call_id = "call-2".to_owned();
        assert_eq!(
            accepted(decide(&r, &policy(), &one, now())).upserts.len(),
            1
        );
    }

    #[test]
    fn exact_retransmission_succeeds_and_changes_nothing() {
        let r = request(5, vec![contact("sip:a@h"), contact("sip:b@h")]);
        let stored = apply(&[], &r, now());
        let a = accepted(decide(&r, &policy(), &stored, now().plus_secs(3)));
        assert!(a.upserts.is_empty() && a.removals.is_empty());
        assert_eq!(a.bindings_after.len(), 2);
        // Too late to be the same transaction: an ordinary out-of-order request.
        assert_eq!(
            rejected(decide(&r, &policy(), &stored, now().plus_secs(40))).code,
            400
        );
    }

    #[test]
    fn q_values_order_the_answer() {
        let r = request(
            1,
            vec![
                ContactSpec {
                    q: Some(100),
                    ..contact("sip:low@h")
                },
                ContactSpec {
                    q: Some(900),
                    ..contact("sip:high@h")
                },
                contact("sip:none@h"),
            ],
        );
        let after = apply(&[], &r, now());
        let order: Vec<(&str, u16)> = after.iter().map(|b| (b.contact.as_str(), b.q)).collect();
        assert_eq!(
            order,
            vec![
                ("sip:none@h", 1000),
                ("sip:high@h", 900),
                ("sip:low@h", 100)
            ]
        );
        let bad = request(
            2,
            vec![ContactSpec {
                q: Some(1001),
                ..contact("sip:x@h")
            }],
        );
        assert_eq!(rejected(decide(&bad, &policy(), &after, now())).code, 400);
    }

    #[test]
    fn max_contacts_refuses_growth_but_allows_refresh() {
        let three = apply(
            &[],
            &request(
                1,
                vec![contact("sip:a@h"), contact("sip:b@h"), contact("sip:c@h")],
            ),
            now(),
        );
        let r = request(2, vec![contact("sip:d@h")]);
        let rej = rejected(decide(&r, &policy(), &three, now()));
        assert_eq!(rej.code, 403);
        let r = request(2, vec![contact("sip:a@h")]);
        assert_eq!(
            accepted(decide(&r, &policy(), &three, now()))
                .bindings_after
                .len(),
            3
        );
        // Replacing one with another in the same request keeps the count.
        let r = request(
            2,
            vec![
                ContactSpec {
                    expires_param: Some(0),
                    ..contact("sip:a@h")
                },
                contact("sip:d@h"),
            ],
        );
        assert_eq!(
            accepted(decide(&r, &policy(), &three, now()))
                .bindings_after
                .len(),
            3
        );
    }

    #[test]
    fn expired_bindings_are_ignored() {
        let one = apply(&[], &request(1, vec![contact("sip:a@h")]), now());
        let later = now().plus_secs(1801);
        let a = accepted(decide(&request(1, vec![]), &policy(), &one, later));
        assert!(a.bindings_after.is_empty());
        // An expired binding does not enforce CSeq ordering either.
        let a = accepted(decide(
            &request(1, vec![contact("sip:a@h")]),
            &policy(),
            &one,
            later,
        ));
        assert_eq!(a.upserts.len(), 1);
    }

    fn flow(uri: &str, instance: &str, reg_id: Option<u32>) -> ContactSpec {
        ContactSpec {
            instance: Some(instance.to_owned()),
            reg_id,
            ..contact(uri)
        }
    }

    #[test]
    fn outbound_same_instance_and_reg_id_replaces_the_flow() {
        let r = request(
            1,
            vec![flow("sip:a@10.0.0.1:1111", "<urn:uuid:1>", Some(1))],
        );
        let a = accepted(decide(&r, &policy(), &[], now()));
        assert!(a.require_outbound);
        assert_eq!(a.upserts[0].reg_id, 1);
        let first = a.bindings_after;
        // New Call-ID after a reboot, new source port: the same binding is replaced.
        let mut r = request(
            1,
            vec![flow("sip:a@10.0.0.1:2222", "<urn:uuid:1>", Some(1))],
        );
        r.call_id = "call-2".to_owned();
        let after = apply(&first, &r, now());
        assert_eq!(after.len(), 1);
        assert_eq!(after[0].contact, "sip:a@10.0.0.1:2222");
        assert_eq!(after[0].ruid, first[0].ruid);
        // Same instance, another reg-id: a second flow.
        let r = request(
            2,
            vec![flow("sip:a@10.0.0.1:3333", "<urn:uuid:1>", Some(2))],
        );
        assert_eq!(apply(&after, &r, now()).len(), 2);
    }

    #[test]
    fn reg_id_is_ignored_without_ob_or_instance() {
        let mut r = request(1, vec![flow("sip:a@h", "<urn:uuid:1>", Some(1))]);
        r.path_first_hop_has_ob = false;
        let a = accepted(decide(&r, &policy(), &[], now()));
        assert!(!a.require_outbound);
        assert_eq!(a.upserts[0].reg_id, 0);
        assert_eq!(
            a.upserts[0].ruid,
            ruid(
                &r.aor,
                BindingKey::Flow {
                    instance: "<urn:uuid:1>",
                    reg_id: 0
                }
            )
        );
        let r = request(
            1,
            vec![ContactSpec {
                reg_id: Some(1),
                ..contact("sip:a@h")
            }],
        );
        let a = accepted(decide(&r, &policy(), &[], now()));
        assert!(!a.require_outbound);
        assert_eq!(
            a.upserts[0].ruid,
            ruid(&r.aor, BindingKey::Contact("sip:a@h"))
        );
    }

    #[test]
    fn two_reg_ids_in_one_request_is_400() {
        let r = request(
            1,
            vec![
                flow("sip:a@h", "<urn:uuid:1>", Some(1)),
                flow("sip:b@h", "<urn:uuid:1>", Some(2)),
            ],
        );
        assert_eq!(rejected(decide(&r, &policy(), &[], now())).code, 400);
    }

    #[test]
    fn oversized_fields_are_refused() {
        let r = request(1, vec![contact(&"x".repeat(513))]);
        assert_eq!(rejected(decide(&r, &policy(), &[], now())).code, 400);
        let r = request(u32::MAX, vec![contact("sip:a@h")]);
        assert_eq!(rejected(decide(&r, &policy(), &[], now())).code, 400);
        let mut r = request(1, vec![contact("sip:a@h")]);
        r.user_agent = "é".repeat(200);
        let a = accepted(decide(&r, &policy(), &[], now()));
        assert!(a.upserts[0].user_agent.len() <= 255);
    }

    #[test]
    fn other_aors_in_current_are_ignored() {
        let mut other = request(1, vec![contact("sip:a@h")]);
        other.aor = Aor::new("bob", "example.com");
        let bobs = apply(&[], &other, now());
        let a = accepted(decide(&request(1, vec![]), &policy(), &bobs, now()));
        assert!(a.bindings_after.is_empty());
    }
}
