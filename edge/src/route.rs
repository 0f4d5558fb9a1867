//! Routing decisions, without I/O: which addresses are this edge, the Path and
//! Record-Route values carrying a flow token (RFC 3327, RFC 5626 section 5.3, RFC 3261
//! section 16.6 step 4), and where a request whose Route names this edge goes
//! (RFC 3261 section 16.4: a proxy removes its own loose-route entries).

use std::net::SocketAddr;

use hasip::flow_token::{FlowTokenError, FlowTokenKey};
use hasip::sip::uri::{Host, Uri};
use hasip::sip::{Message, Method};
use hasip::transport::{Flow, ListenSpec, Transport};

/// The default SIP port, assumed when a URI leaves its port out.
const SIP_PORT: u16 = 5060;

/// The addresses this edge answers on and writes into headers.
#[derive(Debug, Clone)]
pub struct Addresses {
    /// The public sockets phones reach.
    pub public: Vec<ListenSpec>,
    /// The socket toward the core.
    pub internal: SocketAddr,
}

impl Addresses {
    /// Whether `host:port` names one of this edge's sockets.
    pub fn is_own(&self, host: &Host<'_>, port: Option<u16>) -> bool {
        let Some(ip) = host.ip() else {
            return false;
        };
        let addr = SocketAddr::new(ip, port.unwrap_or(SIP_PORT));
        addr == self.internal || self.public.iter().any(|spec| spec.addr == addr)
    }

    /// Whether a URI names this edge.
    pub fn is_own_uri(&self, uri: &Uri<'_>) -> bool {
        self.is_own(&uri.host, uri.port)
    }

    /// The public socket a flow came in on, for the phone-facing Record-Route.
    fn public_for(&self, flow: &Flow) -> SocketAddr {
        self.public
            .iter()
            .find(|spec| spec.transport == flow.transport && spec.addr == flow.local)
            .or_else(|| self.public.iter().find(|s| s.transport == flow.transport))
            .map_or(flow.local, |spec| spec.addr)
    }

    /// `<sip:TOKEN@INTERNAL;lr;ob>`: the Path a REGISTER from `flow` gets.
    pub fn path(&self, token: &str) -> String {
        format!("<sip:{token}@{};lr;ob>", self.internal)
    }

    /// The Record-Route the core side sees: the internal socket with the token.
    pub fn record_route_internal(&self, token: &str) -> String {
        format!("<sip:{token}@{};lr>", self.internal)
    }

    /// The Record-Route the phone sees: the public socket its flow uses, same token.
    pub fn record_route_public(&self, token: &str, flow: &Flow) -> String {
        let addr = self.public_for(flow);
        match flow.transport {
            Transport::Udp => format!("<sip:{token}@{addr};lr>"),
            Transport::Tcp => format!("<sip:{token}@{addr};transport=tcp;lr>"),
        }
    }
}

/// Where a request goes once the Route values naming this edge are taken off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteDecision {
    /// The top Route is not this edge (or there is none).
    NotOurs,
    /// Remove `pop` Route values, then send over `flow`, a phone's flow.
    ToFlow {
        /// How many Route values to remove.
        pop: usize,
        /// The phone's flow from the token.
        flow: Flow,
    },
    /// Remove `pop` Route values, then forward toward the core as usual.
    Onward {
        /// How many Route values to remove.
        pop: usize,
    },
    /// A Route of this edge carries a token that does not verify: answer 403.
    Forged(FlowTokenError),
    /// The Route header cannot be parsed: answer 400.
    BadRoute,
}

/// Looks at the Route values that name this edge, from the top.
///
/// Each one with a user part must hold a genuine token. A token naming a flow other
/// than the one the request came in on is the destination: a phone reached from the
/// core, or a phone on this edge reached from another phone in a dialog. A token naming
/// the incoming flow (the caller's own Record-Route) or a Route without a token (a
/// phone's outbound-proxy Route) is just removed.
pub fn decide(
    request: &Message,
    incoming: &Flow,
    addresses: &Addresses,
    key: &FlowTokenKey,
) -> RouteDecision {
    let mut pop = 0;
    let mut destination: Option<Flow> = None;
    for route in request.routes() {
        let Ok(route) = route else {
            return RouteDecision::BadRoute;
        };
        if !addresses.is_own_uri(&route.uri) {
            break;
        }
        let flow = match route.uri.user.map(|token| key.decode(token)) {
            None => None,
            Some(Ok(flow)) => Some(flow),
            Some(Err(error)) => return RouteDecision::Forged(error),
        };
        match (destination, flow) {
            // The other half of the destination's double Record-Route goes too.
            (Some(found), Some(flow)) if flow != found => break,
            (Some(_), _) => {}
            (None, Some(flow)) if flow != *incoming => destination = Some(flow),
            (None, _) => {}
        }
        pop += 1;
    }
    match (pop, destination) {
        (0, _) => RouteDecision::NotOurs,
        (pop, Some(flow)) => RouteDecision::ToFlow { pop, flow },
        (pop, None) => RouteDecision::Onward { pop },
    }
}

/// Whether the request already passed this edge `limit` times: a loop (482), told
/// apart from a legitimate spiral (phone to edge to core to edge to phone passes twice).
pub fn is_loop(request: &Message, addresses: &Addresses, limit: usize) -> bool {
    request
        .vias()
        .filter_map(Result::ok)
        .filter(|via| addresses.is_own(&via.host, via.port))
        .count()
        >= limit
}

/// The address a request goes to when it is not for a phone of this edge: the first
/// remaining Route (after `pop`), else the Request-URI. `None` if neither names an IP.
pub fn next_hop(request: &Message, pop: usize) -> Option<SocketAddr> {
    let target = |uri: &Uri<'_>| {
        let ip = uri
            .maddr()
            .and_then(|m| Host::parse(m)?.ip())
            .or(uri.host.ip())?;
        Some(SocketAddr::new(ip, uri.port.unwrap_or(SIP_PORT)))
    };
    match request.routes().nth(pop) {
        Some(Ok(route)) => target(&route.uri),
        Some(Err(_)) => None,
        None => {
            let uri = Uri::parse(request.request_uri()?).ok()?;
            target(&uri)
        }
    }
}

/// Where a phone's request goes once the Route values naming this edge are removed and
/// none of them named another flow ([`RouteDecision::Onward`] for a request from a phone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneOnward {
    /// Handled as if it had come without a Route, as a phone that has this edge as its
    /// outbound proxy sends it: a REGISTER gets the Path and its To AoR's registrar,
    /// anything else goes by its Request-URI's AoR.
    AsPhone,
    /// Straight to this address of the core: the next Route, or an IP Request-URI once
    /// no Route is left (an in-dialog request to a core element that did not
    /// Record-Route).
    Core(SocketAddr),
    /// A Route is left that names no address of the core, or a REGISTER still carries
    /// one: the edge relays phones into the core only (403).
    Refused,
}

/// Decides [`PhoneOnward`] for `request`, whose own Route values were already removed;
/// `is_core` says whether an address belongs to the core.
pub fn phone_onward(request: &Message, is_core: impl Fn(SocketAddr) -> bool) -> PhoneOnward {
    let route_left = request.routes().next().is_some();
    if request.method() == Some(Method::Register) {
        return if route_left {
            PhoneOnward::Refused
        } else {
            PhoneOnward::AsPhone
        };
    }
    match next_hop(request, 0) {
        Some(addr) if is_core(addr) => PhoneOnward::Core(addr),
        _ if route_left => PhoneOnward::Refused,
        _ => PhoneOnward::AsPhone,
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use hasip::sip::Limits;
    use hasip::transport::ConnId;

    use super::*;

    const SECRET: &[u8] = b"a secret shared by all the edges";

    fn addresses() -> Addresses {
        Addresses {
            public: vec![
                "udp:203.0.113.10:5060"
                    .parse()
                    .unwrap_or_else(|e| panic!("{e}")),
                "tcp:203.0.113.10:5060"
                    .parse()
                    .unwrap_or_else(|e| panic!("{e}")),
            ],
            internal: SocketAddr::from(([10, 0, 0, 1], 5070)),
        }
    }

    fn phone() -> Flow {
        Flow {
            transport: Transport::Udp,
            local: SocketAddr::from(([203, 0, 113, 10], 5060)),
            remote: SocketAddr::from(([198, 51, 100, 7], 40123)),
            conn: None,
        }
    }

    fn core() -> Flow {
        Flow {
            transport: Transport::Udp,
            local: SocketAddr::from(([10, 0, 0, 1], 5070)),
            remote: SocketAddr::from(([10, 0, 0, 20], 5060)),
            conn: None,
        }
    }

    fn request(routes: &str, vias: &str) -> Message {
        let text = format!(
            "INVITE sip:bob@192.168.1.9:5060 SIP/2.0\r\n{vias}\
             Via: SIP/2.0/UDP 10.0.0.20;branch=z9hG4bKc\r\n{routes}\
             From: <sip:a@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\n\
             Call-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        );
        Message::parse(Bytes::from(text), &Limits::default()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn header_values() {
        let a = addresses();
        assert_eq!(a.path("TOK"), "<sip:TOK@10.0.0.1:5070;lr;ob>");
        assert_eq!(a.record_route_internal("TOK"), "<sip:TOK@10.0.0.1:5070;lr>");
        assert_eq!(
            a.record_route_public("TOK", &phone()),
            "<sip:TOK@203.0.113.10:5060;lr>"
        );
        let tcp = Flow {
            transport: Transport::Tcp,
            conn: Some(ConnId(3)),
            local: SocketAddr::from(([203, 0, 113, 10], 5060)),
            ..phone()
        };
        assert_eq!(
            a.record_route_public("TOK", &tcp),
            "<sip:TOK@203.0.113.10:5060;transport=tcp;lr>"
        );
    }

    #[test]
    fn own_addresses() {
        let a = addresses();
        assert!(a.is_own(
            &Host::parse("10.0.0.1").unwrap_or(Host::Name("")),
            Some(5070)
        ));
        assert!(a.is_own(&Host::parse("203.0.113.10").unwrap_or(Host::Name("")), None));
        assert!(!a.is_own(&Host::parse("10.0.0.1").unwrap_or(Host::Name("")), None));
        assert!(!a.is_own(&Host::parse("edge.example").unwrap_or(Host::Name("")), None));
    }

    #[test]
    fn a_request_from_the_core_goes_to_the_phone_in_the_token() {
        let key = FlowTokenKey::new(SECRET);
        let token = key.encode(&phone());
        let req = request(&format!("Route: <sip:{token}@10.0.0.1:5070;lr;ob>\r\n"), "");
        assert_eq!(
            decide(&req, &core(), &addresses(), &key),
            RouteDecision::ToFlow {
                pop: 1,
                flow: phone()
            }
        );
        // Both halves of a double Record-Route are removed.
        let req = request(
            &format!(
                "Route: <sip:{token}@10.0.0.1:5070;lr>, <sip:{token}@203.0.113.10:5060;lr>\r\n"
            ),
            "",
        );
        assert_eq!(
            decide(&req, &core(), &addresses(), &key),
            RouteDecision::ToFlow {
                pop: 2,
                flow: phone()
            }
        );
    }

    #[test]
    fn a_phones_own_record_route_and_outbound_route_are_removed() {
        let key = FlowTokenKey::new(SECRET);
        let token = key.encode(&phone());
        let req = request(
            &format!(
                "Route: <sip:203.0.113.10;lr>\r\nRoute: <sip:{token}@203.0.113.10:5060;lr>, \
                 <sip:{token}@10.0.0.1:5070;lr>, <sip:10.0.0.50;lr>\r\n"
            ),
            "",
        );
        assert_eq!(
            decide(&req, &phone(), &addresses(), &key),
            RouteDecision::Onward { pop: 3 }
        );
        assert_eq!(
            next_hop(&req, 3),
            Some(SocketAddr::from(([10, 0, 0, 50], 5060)))
        );
        assert_eq!(
            next_hop(&req, 4),
            Some(SocketAddr::from(([192, 168, 1, 9], 5060)))
        );
    }

    #[test]
    fn forged_and_foreign_routes() {
        let key = FlowTokenKey::new(SECRET);
        let other = FlowTokenKey::new(b"not the edges' secret");
        let forged = other.encode(&phone());
        let req = request(&format!("Route: <sip:{forged}@10.0.0.1:5070;lr>\r\n"), "");
        assert_eq!(
            decide(&req, &core(), &addresses(), &key),
            RouteDecision::Forged(FlowTokenError::BadMac)
        );
        let req = request("Route: <sip:garbage@10.0.0.1:5070;lr>\r\n", "");
        assert!(matches!(
            decide(&req, &core(), &addresses(), &key),
            RouteDecision::Forged(_)
        ));
        let req = request("Route: <sip:x@10.0.0.99;lr>\r\n", "");
        assert_eq!(
            decide(&req, &core(), &addresses(), &key),
            RouteDecision::NotOurs
        );
        assert_eq!(
            decide(&request("", ""), &core(), &addresses(), &key),
            RouteDecision::NotOurs
        );
        let req = request("Route: not a uri\r\n", "");
        assert_eq!(
            decide(&req, &core(), &addresses(), &key),
            RouteDecision::BadRoute
        );
    }

    fn is_core(addr: SocketAddr) -> bool {
        addr.ip() == std::net::IpAddr::from([10, 0, 0, 20])
    }

    fn with_uri(uri: &str, method: &str, routes: &str) -> Message {
        let text = format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.168.1.9;branch=z9hG4bKp\r\n\
             {routes}From: <sip:a@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\n\
             Call-ID: c\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
        );
        Message::parse(Bytes::from(text), &Limits::default()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_phone_is_routed_on_into_the_core_only() {
        use PhoneOnward::{AsPhone, Core, Refused};
        let core_hop = "Route: <sip:10.0.0.20:5080;lr>\r\n";
        let foreign_hop = "Route: <sip:198.51.100.1;lr>\r\n";
        let named_hop = "Route: <sip:proxy.example.net;lr>\r\n";
        let cases = [
            // The outbound-proxy Route was all: the request is the phone's like any other.
            (with_uri("sip:example.com", "REGISTER", ""), AsPhone),
            (with_uri("sip:bob@example.com", "INVITE", ""), AsPhone),
            // No Route left and an IP Request-URI outside the core: the ring decides.
            (with_uri("sip:bob@198.51.100.1", "MESSAGE", ""), AsPhone),
            (
                with_uri("sip:bob@10.0.0.20:5090", "BYE", ""),
                Core(SocketAddr::from(([10, 0, 0, 20], 5090))),
            ),
            (
                with_uri("sip:bob@example.com", "BYE", core_hop),
                Core(SocketAddr::from(([10, 0, 0, 20], 5080))),
            ),
            (
                with_uri("sip:bob@example.com", "INVITE", foreign_hop),
                Refused,
            ),
            (with_uri("sip:bob@10.0.0.20", "INVITE", named_hop), Refused),
            // A REGISTER only ever goes to the ring with this edge's Path.
            (with_uri("sip:example.com", "REGISTER", core_hop), Refused),
        ];
        for (request, expected) in cases {
            assert_eq!(
                phone_onward(&request, is_core),
                expected,
                "{}",
                String::from_utf8_lossy(&request.to_bytes())
            );
        }
    }

    #[test]
    fn loops_are_told_from_spirals() {
        let a = addresses();
        let once = "Via: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bK1\r\n";
        assert!(!is_loop(&request("", ""), &a, 2));
        assert!(!is_loop(&request("", once), &a, 2));
        assert!(is_loop(&request("", &format!("{once}{once}")), &a, 2));
    }
}
