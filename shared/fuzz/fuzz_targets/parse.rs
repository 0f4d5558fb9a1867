//! Fuzz target for `Message::parse`: arbitrary bytes never panic, every typed view of
//! whatever parses (read lazily, so only this reaches their grammars) never panics, and
//! the message writes, reparses and writes again to the same bytes.
#![no_main]

use bytes::{Bytes, BytesMut};
use hasip::sip::uri::Uri;
use hasip::sip::typed::Contacts;
use hasip::sip::{HeaderName, Limits, Message, ParseError};
use libfuzzer_sys::fuzz_target;

fn write(msg: &Message) -> Bytes {
    let mut out = BytesMut::new();
    msg.write_to(&mut out);
    out.freeze()
}

/// Reads every typed view; only panics matter, so the values are dropped.
fn read_typed(msg: &Message) {
    if let Some(uri) = msg.request_uri() {
        if let Ok(uri) = Uri::parse(uri) {
            let _ = (uri.aor(), uri.maddr(), uri.transport(), uri.lr());
        }
    }
    for via in msg.vias().flatten() {
        let _ = (via.branch(), via.received(), via.rport(), via.maddr(), via.ttl());
        let _ = via.sent_by();
    }
    for addr in [msg.from_header(), msg.to_header()].into_iter().flatten() {
        let _ = (addr.tag(), addr.uri.aor());
    }
    let _ = (msg.call_id(), msg.cseq(), msg.expires(), msg.max_forwards());
    let _ = msg.content_length();
    if let Ok(Contacts::List(list)) = msg.contacts() {
        for contact in list {
            let _ = (contact.expires(), contact.q(), contact.sip_instance());
            let _ = (contact.reg_id(), contact.ob(), contact.methods());
        }
    }
    for addr in msg.paths().chain(msg.routes()).chain(msg.record_routes()) {
        let _ = addr.map(|a| a.uri.lr());
    }
    let _ = (msg.supports("outbound"), msg.requires("path"));
    let _ = msg.required_tags().count();
    let _ = msg.authorizations().count() + msg.proxy_authorizations().count();
    let _ = msg.www_authenticates().count() + msg.proxy_authenticates().count();
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let Ok(msg) = Message::parse(Bytes::copy_from_slice(data), &limits) else {
        return;
    };
    read_typed(&msg);
    let written = write(&msg);
    let again = match Message::parse(written.clone(), &limits) {
        Ok(again) => again,
        Err(e) => panic!("written message does not reparse: {e}"),
    };
    assert_eq!(write(&again), written);
    assert_eq!(again.headers().count(), msg.headers().count());

    // An edited message must reparse too.
    let mut edited = msg;
    edited.push_via("SIP/2.0/UDP fuzz.invalid;branch=z9hG4bK-fuzz");
    edited.pop_first_value(&HeaderName::Route);
    edited.decrement_max_forwards();
    match Message::parse(edited.to_bytes(), &limits) {
        // The added lines may push a message that was at a limit over it.
        Ok(_) | Err(ParseError::TooLarge | ParseError::TooManyHeaders) => {}
        Err(e) => panic!("edited message does not reparse: {e}"),
    }
});
