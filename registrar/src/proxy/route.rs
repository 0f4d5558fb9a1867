//! Where a request goes (RFC 3261 sections 16.3 to 16.6, RFC 3327, RFC 5626 section 5.3):
//! the checks before routing, the Route pre-processing, and the target set built from
//! an AoR's live bindings.
//!
//! Everything here is pure: a parsed request, the bindings and the registrar's own
//! addresses in, a decision or a target set out.

use std::net::SocketAddr;

use hasip::sip::name_addr::parse_name_addr_list;
use hasip::sip::uri::{Host, Scheme, Uri};
use hasip::sip::{Message, Method};
use hasip::transport::Transport;
use sha2::{Digest, Sha256};

use crate::binding::{Aor, Binding};

/// The names and sockets that mean "this registrar" in a Route or Request-URI.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnAddrs {
    /// The sockets the registrar listens on.
    pub sockets: Vec<SocketAddr>,
    /// Host names that also mean this registrar (lower case).
    pub names: Vec<String>,
}

impl OwnAddrs {
    /// Whether a URI's host and port name this registrar.
    pub fn is_own(&self, uri: &Uri<'_>) -> bool {
        let host = match uri.maddr() {
            Some(maddr) => Host::parse(maddr).unwrap_or(Host::Name(maddr)),
            None => uri.host,
        };
        match host.ip() {
            Some(ip) => {
                let port = uri.port.unwrap_or(5060);
                self.sockets
                    .iter()
                    .any(|s| s.port() == port && (s.ip() == ip || s.ip().is_unspecified()))
            }
            None => {
                let Host::Name(name) = host else {
                    return false;
                };
                let name = name.trim_end_matches('.');
                let port_ok = uri
                    .port
                    .is_none_or(|p| self.sockets.iter().any(|s| s.port() == p));
                port_ok && self.names.iter().any(|n| n.eq_ignore_ascii_case(name))
            }
        }
    }

    /// Whether a Via sent-by names this registrar.
    fn is_own_sent_by(&self, host: Host<'_>, port: Option<u16>) -> bool {
        let port = port.unwrap_or(5060);
        match host.ip() {
            Some(ip) => self
                .sockets
                .iter()
                .any(|s| s.port() == port && s.ip() == ip),
            None => false,
        }
    }
}

/// The next hop of a request: where the first datagram or connection goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hop {
    /// The host name or IP literal (maddr when the URI has one).
    pub host: String,
    /// The port, when the URI names one.
    pub port: Option<u16>,
    /// The transport: the URI's `transport` parameter, else UDP.
    pub transport: Transport,
}

impl Hop {
    /// The hop a URI names (RFC 3263 without DNS SRV: maddr, host, port, transport).
    pub fn of_uri(uri: &Uri<'_>) -> Hop {
        let host = match uri.maddr() {
            Some(maddr) => maddr.to_owned(),
            None => match uri.host {
                Host::Ipv6(ip) => ip.to_string(),
                other => other.to_string(),
            },
        };
        let transport = match uri.transport() {
            Some(t) if t.eq_ignore_ascii_case("tcp") => Transport::Tcp,
            _ if uri.scheme == Scheme::Sips => Transport::Tcp,
            _ => Transport::Udp,
        };
        Hop {
            host,
            port: uri.port,
            transport,
        }
    }

    /// The socket address when the host is an IP literal (no DNS needed).
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        let ip = self.host.parse().ok()?;
        Some(SocketAddr::new(ip, self.port.unwrap_or(5060)))
    }
}

/// One way to reach a registered contact: the request's new Request-URI and Route set,
/// and where to send it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The binding's `ruid`, for logs.
    pub ruid: String,
    /// The new Request-URI (the Contact URI).
    pub request_uri: String,
    /// The Route values to put before any the request has, in order (the stored Path).
    pub route: Vec<String>,
    /// Where to send the request.
    pub hop: Hop,
}

/// A registered device: one contact, or the flows of one RFC 5626 instance, tried one
/// after the other on 430 or a transport error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    /// The q-value in thousandths.
    pub q: u16,
    /// The flows, the one to try first first.
    pub flows: Vec<Target>,
}

/// What to do with a request before any branch exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Answer at once with this status.
    Reject {
        /// The status code.
        code: u16,
        /// Its reason phrase.
        reason: &'static str,
    },
    /// The request is addressed to this registrar itself (no user part).
    Local,
    /// A Route names another hop: forward with the Request-URI unchanged.
    LooseRoute {
        /// How many Route values naming this registrar to pop first.
        pop: usize,
        /// The hop of the first remaining Route.
        hop: Hop,
    },
    /// The Request-URI is a user of a served domain: look up the AoR and fork.
    Lookup {
        /// How many Route values naming this registrar to pop first.
        pop: usize,
        /// The address-of-record.
        aor: Aor,
    },
}

/// The routing policy: served domains and what foreign domains get.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoutePolicy {
    /// The domains this registrar serves (lower case).
    pub domains: Vec<String>,
    /// The status for a Request-URI in a domain not served (403 or 404).
    pub refuse_code: u16,
    /// This registrar's own addresses.
    pub own: OwnAddrs,
}

impl RoutePolicy {
    /// Whether `domain` is served (case-insensitive, a final dot ignored).
    pub fn serves(&self, domain: &str) -> bool {
        let domain = domain.trim_end_matches('.');
        self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }
}

/// The AoR of a sip or sips URI, as the `location` table keys it.
pub fn aor_of(uri: &Uri<'_>) -> Option<Aor> {
    if uri.scheme == Scheme::Tel {
        return None;
    }
    let aor = uri.aor();
    let rest = aor.strip_prefix("sip:")?;
    let (user, domain) = rest.rsplit_once('@')?;
    Some(Aor::new(user, domain))
}

/// Decides how to route a request (RFC 3261 section 16.3 checks, then 16.4 Route
/// pre-processing, then 16.5 target determination).
pub fn decide(request: &Message, policy: &RoutePolicy) -> Decision {
    match request.max_forwards() {
        Ok(Some(0)) => {
            // OPTIONS with Max-Forwards 0 is a question to this hop (section 11).
            if request.method() == Some(Method::Options) {
                return Decision::Local;
            }
            return reject(483, "Too Many Hops");
        }
        Ok(_) => {}
        Err(_) => return reject(400, "Bad Max-Forwards"),
    }
    if is_loop(request, &policy.own) {
        return reject(482, "Loop Detected");
    }
    let routes: Vec<_> = request.routes().collect();
    let mut pop = 0;
    for route in &routes {
        match route {
            Ok(r) if policy.own.is_own(&r.uri) => pop += 1,
            Ok(_) => break,
            Err(_) => return reject(400, "Bad Route"),
        }
    }
    if let Some(Ok(next)) = routes.get(pop) {
        return Decision::LooseRoute {
            pop,
            hop: Hop::of_uri(&next.uri),
        };
    }
    let Some(text) = request.request_uri() else {
        return reject(400, "Bad Request-URI");
    };
    let uri = match Uri::parse(text) {
        Ok(uri) => uri,
        Err(_) => return reject(416, "Unsupported URI Scheme"),
    };
    if uri.scheme == Scheme::Tel {
        return reject(policy.refuse_code, refuse_reason(policy.refuse_code));
    }
    let served = matches!(uri.host, Host::Name(name) if policy.serves(name));
    match (uri.user, aor_of(&uri)) {
        (Some(_), Some(aor)) if served => Decision::Lookup { pop, aor },
        (None, _) if served || policy.own.is_own(&uri) => Decision::Local,
        // A foreign domain, or a user at one of our addresses (not a served domain).
        _ => reject(policy.refuse_code, refuse_reason(policy.refuse_code)),
    }
}

fn reject(code: u16, reason: &'static str) -> Decision {
    Decision::Reject { code, reason }
}

/// The reason phrase of the refusal for a foreign domain.
fn refuse_reason(code: u16) -> &'static str {
    match code {
        404 => "Not Found",
        _ => "Forbidden",
    }
}

/// The key of a request for loop detection (RFC 3261 section 16.6 step 8): a hash of
/// the fields a spiral changes, carried in our Via branch after a dot. Leading Route
/// values naming this registrar are left out, so the key is the same whether taken
/// before or after they are popped.
pub fn loop_key(request: &Message, own: &OwnAddrs) -> String {
    let mut hash = Sha256::new();
    hash.update(request.request_uri().unwrap_or_default().as_bytes());
    hash.update(b"\0");
    if let Ok(from) = request.from_header() {
        hash.update(from.tag().unwrap_or_default().as_bytes());
    }
    hash.update(b"\0");
    if let Ok(to) = request.to_header() {
        hash.update(to.tag().unwrap_or_default().as_bytes());
    }
    hash.update(b"\0");
    hash.update(request.call_id().unwrap_or_default().as_bytes());
    hash.update(b"\0");
    if let Ok(cseq) = request.cseq() {
        hash.update(cseq.seq.to_string().as_bytes());
    }
    hash.update(b"\0");
    let routes = request
        .routes()
        .skip_while(|r| r.as_ref().is_ok_and(|r| own.is_own(&r.uri)));
    for route in routes {
        match route {
            Ok(r) => hash.update(r.to_string().as_bytes()),
            Err(_) => hash.update(b"?"),
        }
        hash.update(b",");
    }
    let digest = hash.finalize();
    hex::encode(digest.get(..8).unwrap_or_default())
}

/// Whether the request already passed through this registrar unchanged: one of its
/// Vias is ours and carries this request's loop key (section 16.3 step 4). A request
/// that comes back with a different Request-URI or Route set is a spiral, not a loop.
pub fn is_loop(request: &Message, own: &OwnAddrs) -> bool {
    let mut key = None;
    for via in request.vias() {
        let Ok(via) = via else { continue };
        let sent_by = via.sent_by();
        if !own.is_own_sent_by(sent_by.host, sent_by.port) {
            continue;
        }
        let Some((_, carried)) = via.branch().and_then(|b| b.rsplit_once('.')) else {
            continue;
        };
        let key = key.get_or_insert_with(|| loop_key(request, own));
        if carried.eq_ignore_ascii_case(key) {
            return true;
        }
    }
    false
}

/// The target of one binding: Request-URI = Contact, Route set = Path (RFC 3327
/// section 5.3), next hop = the first Route, else `received`, else the Contact.
pub fn target_of(binding: &Binding) -> Option<Target> {
    let contact = Uri::parse(&binding.contact).ok()?;
    let mut route = Vec::new();
    let mut first = None;
    if let Some(path) = binding.path.as_deref().filter(|p| !p.trim().is_empty()) {
        for entry in parse_name_addr_list(path, "Path") {
            let entry = entry.ok()?;
            if first.is_none() {
                first = Some((Hop::of_uri(&entry.uri), entry.uri.lr()));
            }
            route.push(entry.to_string());
        }
    }
    let mut request_uri = binding.contact.clone();
    let hop = match first {
        Some((hop, true)) => hop,
        Some((hop, false)) => {
            // A strict router first (section 16.6 step 7): it becomes the Request-URI
            // and the contact goes to the end of the Route set.
            let strict = route.remove(0);
            request_uri = Uri::parse(strict.trim_start_matches('<').split('>').next()?)
                .ok()?
                .to_string();
            route.push(format!("<{}>", binding.contact));
            hop
        }
        None => match binding.received.as_deref().map(Uri::parse) {
            Some(Ok(received)) => Hop::of_uri(&received),
            _ => Hop::of_uri(&contact),
        },
    };
    Some(Target {
        ruid: binding.ruid.clone(),
        request_uri,
        route,
        hop,
    })
}

/// The target set of an AoR's live bindings, as q groups (highest q first; tried one
/// group after the other, the destinations of a group in parallel).
///
/// Bindings that share a `+sip.instance` are one destination whose flows are
/// alternatives (RFC 5626 section 5.3), the most recently refreshed first. Bindings
/// whose Contact or Path does not parse are left out.
pub fn q_groups(bindings: &[Binding]) -> Vec<Vec<Destination>> {
    let mut sorted: Vec<&Binding> = bindings.iter().collect();
    sorted.sort_by_key(|b| std::cmp::Reverse(b.last_modified));
    let mut destinations: Vec<(Option<&str>, Destination)> = Vec::new();
    for binding in sorted {
        let Some(target) = target_of(binding) else {
            tracing::warn!(ruid = %binding.ruid, "binding with an unusable contact or path");
            continue;
        };
        let instance = binding.instance.as_deref().filter(|i| !i.is_empty());
        let existing = instance.and_then(|i| {
            destinations
                .iter_mut()
                .find(|(key, _)| *key == Some(i))
                .map(|(_, d)| d)
        });
        match existing {
            Some(dest) => {
                dest.q = dest.q.max(binding.q);
                dest.flows.push(target);
            }
            None => destinations.push((
                instance,
                Destination {
                    q: binding.q,
                    flows: vec![target],
                },
            )),
        }
    }
    let mut destinations: Vec<Destination> = destinations.into_iter().map(|(_, d)| d).collect();
    // Stable: equal q keeps the most recent first.
    destinations.sort_by_key(|d| std::cmp::Reverse(d.q));
    let mut groups: Vec<Vec<Destination>> = Vec::new();
    for dest in destinations {
        match groups.last_mut() {
            Some(group) if group.first().is_some_and(|d| d.q == dest.q) => group.push(dest),
            _ => groups.push(vec![dest]),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use hasip::sip::Limits;

    use super::*;
    use crate::binding::DbTime;

    fn parse(text: &str) -> Message {
        let text = text.replace('\n', "\r\n");
        match Message::parse(Bytes::from(text), &Limits::default()) {
            Ok(m) => m,
            Err(e) => panic!("{e}"),
        }
    }

    fn policy() -> RoutePolicy {
        RoutePolicy {
            domains: vec!["example.com".into()],
            refuse_code: 403,
            own: OwnAddrs {
                sockets: vec!["10.0.0.5:5060".parse().unwrap_or_else(|e| panic!("{e}"))],
                names: vec!["reg1.internal".into()],
            },
        }
    }

    fn invite(ruri: &str, extra: &str) -> Message {
        parse(&format!(
            "INVITE {ruri} SIP/2.0\n\
             Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKedge1\n\
             Max-Forwards: 70\n\
             {extra}\
             From: <sip:alice@example.com>;tag=a1\n\
             To: <sip:bob@example.com>\n\
             Call-ID: c1\n\
             CSeq: 1 INVITE\n\
             Content-Length: 0\n\n"
        ))
    }

    fn binding(
        contact: &str,
        path: Option<&str>,
        q: u16,
        instance: Option<&str>,
        t: i64,
    ) -> Binding {
        Binding {
            ruid: format!("r-{contact}"),
            aor: Aor::new("bob", "example.com"),
            contact: contact.into(),
            received: None,
            path: path.map(str::to_owned),
            expires: DbTime::from_micros(i64::MAX),
            q,
            call_id: "x".into(),
            cseq: 1,
            last_modified: DbTime::from_micros(t),
            user_agent: String::new(),
            socket: None,
            instance: instance.map(str::to_owned),
            reg_id: 0,
        }
    }

    #[test]
    fn served_user_is_looked_up() {
        let d = decide(&invite("sip:Bob@Example.COM", ""), &policy());
        assert_eq!(
            d,
            Decision::Lookup {
                pop: 0,
                aor: Aor::new("Bob", "example.com")
            }
        );
    }

    #[test]
    fn foreign_domain_is_refused_with_the_configured_code() {
        let mut p = policy();
        assert_eq!(
            decide(&invite("sip:bob@evil.example", ""), &p),
            Decision::Reject {
                code: 403,
                reason: "Forbidden"
            }
        );
        p.refuse_code = 404;
        assert_eq!(
            decide(&invite("sip:bob@10.1.1.1", ""), &p),
            Decision::Reject {
                code: 404,
                reason: "Not Found"
            }
        );
    }

    #[test]
    fn own_route_is_popped_and_foreign_route_is_loose_routed() {
        let d = decide(
            &invite(
                "sip:carol@elsewhere.example",
                "Route: <sip:10.0.0.5;lr>, <sip:192.0.2.1:5070;lr;transport=tcp>\n",
            ),
            &policy(),
        );
        assert_eq!(
            d,
            Decision::LooseRoute {
                pop: 1,
                hop: Hop {
                    host: "192.0.2.1".into(),
                    port: Some(5070),
                    transport: Transport::Tcp
                }
            }
        );
        let d = decide(
            &invite("sip:bob@example.com", "Route: <sip:reg1.internal;lr>\n"),
            &policy(),
        );
        assert_eq!(
            d,
            Decision::Lookup {
                pop: 1,
                aor: Aor::new("bob", "example.com")
            }
        );
    }

    #[test]
    fn max_forwards_zero_is_483_and_local_address_is_local() {
        let m = parse(
            "INVITE sip:bob@example.com SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\n\
             Max-Forwards: 0\nFrom: <sip:a@b>;tag=1\nTo: <sip:bob@example.com>\n\
             Call-ID: c\nCSeq: 1 INVITE\nContent-Length: 0\n\n",
        );
        assert_eq!(
            decide(&m, &policy()),
            Decision::Reject {
                code: 483,
                reason: "Too Many Hops"
            }
        );
        assert_eq!(
            decide(&invite("sip:10.0.0.5", ""), &policy()),
            Decision::Local
        );
        assert_eq!(
            decide(&invite("sip:bob@10.0.0.5", ""), &policy()),
            Decision::Reject {
                code: 403,
                reason: "Forbidden"
            }
        );
        assert_eq!(
            decide(&invite("sip:example.com", ""), &policy()),
            Decision::Local
        );
    }

    #[test]
    fn loop_is_detected_by_our_via_and_key() {
        let own = policy().own;
        let base = invite("sip:bob@example.com", "");
        let key = loop_key(&base, &own);
        let looped = invite(
            "sip:bob@example.com",
            &format!(
                "Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKab12.{key}\n\
                 Route: <sip:10.0.0.5;lr>\n"
            ),
        );
        assert_eq!(loop_key(&looped, &own), key);
        assert!(is_loop(&looped, &policy().own));
        assert_eq!(
            decide(&looped, &policy()),
            Decision::Reject {
                code: 482,
                reason: "Loop Detected"
            }
        );
        // The same Via with another Request-URI is a spiral.
        let spiral = invite(
            "sip:carol@example.com",
            &format!("Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKab12.{key}\n"),
        );
        assert!(!is_loop(&spiral, &policy().own));
    }

    #[test]
    fn path_becomes_route_set_and_first_hop() {
        let b = binding(
            "sip:bob@192.168.1.20:5062",
            Some("<sip:tok1@10.0.0.9:5070;lr;ob>, <sip:10.0.0.8;lr>"),
            1000,
            None,
            1,
        );
        let t = target_of(&b);
        assert_eq!(
            t,
            Some(Target {
                ruid: "r-sip:bob@192.168.1.20:5062".into(),
                request_uri: "sip:bob@192.168.1.20:5062".into(),
                route: vec![
                    "<sip:tok1@10.0.0.9:5070;lr;ob>".into(),
                    "<sip:10.0.0.8;lr>".into()
                ],
                hop: Hop {
                    host: "10.0.0.9".into(),
                    port: Some(5070),
                    transport: Transport::Udp
                }
            })
        );
    }

    #[test]
    fn no_path_goes_to_received_then_contact() {
        let mut b = binding(
            "sip:bob@192.168.1.20:5062;transport=tcp",
            None,
            1000,
            None,
            1,
        );
        let t = target_of(&b).map(|t| (t.route, t.hop.socket_addr(), t.hop.transport));
        assert_eq!(
            t,
            Some((vec![], "192.168.1.20:5062".parse().ok(), Transport::Tcp))
        );
        b.received = Some("sip:198.51.100.7:40000".into());
        let t = target_of(&b).map(|t| (t.request_uri, t.hop.socket_addr()));
        assert_eq!(
            t,
            Some((
                "sip:bob@192.168.1.20:5062;transport=tcp".into(),
                "198.51.100.7:40000".parse().ok()
            ))
        );
    }

    #[test]
    fn strict_first_path_hop_becomes_request_uri() {
        let b = binding(
            "sip:bob@192.168.1.20",
            Some("<sip:10.0.0.9>"),
            1000,
            None,
            1,
        );
        let t = target_of(&b).map(|t| (t.request_uri, t.route));
        assert_eq!(
            t,
            Some(("sip:10.0.0.9".into(), vec!["<sip:bob@192.168.1.20>".into()]))
        );
    }

    #[test]
    fn q_groups_and_instance_flows() {
        let bindings = vec![
            binding("sip:a@1.1.1.1", None, 500, None, 1),
            binding("sip:b@1.1.1.2", None, 1000, Some("<urn:uuid:x>"), 2),
            binding("sip:c@1.1.1.3", None, 1000, Some("<urn:uuid:x>"), 3),
            binding("sip:d@1.1.1.4", None, 1000, None, 4),
            binding("not a uri", None, 1000, None, 5),
        ];
        let groups = q_groups(&bindings);
        let shape: Vec<Vec<Vec<String>>> = groups
            .iter()
            .map(|g| {
                g.iter()
                    .map(|d| d.flows.iter().map(|f| f.request_uri.clone()).collect())
                    .collect()
            })
            .collect();
        assert_eq!(
            shape,
            vec![
                vec![
                    vec!["sip:d@1.1.1.4".to_owned()],
                    vec!["sip:c@1.1.1.3".to_owned(), "sip:b@1.1.1.2".to_owned()],
                ],
                vec![vec!["sip:a@1.1.1.1".to_owned()]],
            ]
        );
    }
}
