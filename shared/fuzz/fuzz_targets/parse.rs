//! Fuzz target for `Message::parse`: arbitrary bytes never panic, and whatever parses
//! writes, reparses and writes again to the same bytes.
#![no_main]

use bytes::{Bytes, BytesMut};
use hasip::sip::{HeaderName, Limits, Message, ParseError};
use libfuzzer_sys::fuzz_target;

fn write(msg: &Message) -> Bytes {
    let mut out = BytesMut::new();
    msg.write_to(&mut out);
    out.freeze()
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let Ok(msg) = Message::parse(Bytes::copy_from_slice(data), &limits) else {
        return;
    };
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
