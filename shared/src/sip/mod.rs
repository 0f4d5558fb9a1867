//! SIP messages: parsing, typed header views and writing.
//!
//! [`message::Message::parse`] splits a datagram or a framed stream message into its
//! start line, headers and body without copying: every name and value is a range of
//! the received buffer. Typed views ([`via`], [`name_addr`], [`contact`], ...) parse a
//! header value on demand. Edits (push a Via, prepend a Path, ...) are recorded so that
//! [`writer`] copies every untouched byte as it came and writes only what changed.

pub mod auth;
pub mod builder;
pub mod contact;
pub mod cseq;
pub mod error;
pub mod framing;
pub mod header_name;
pub mod limits;
pub mod message;
pub mod method;
pub mod name_addr;
pub mod numeric;
pub mod params;
pub mod text;
pub mod token_list;
pub mod typed;
pub mod uri;
pub mod via;
pub mod writer;

pub use error::ParseError;
pub use header_name::HeaderName;
pub use limits::Limits;
pub use message::Message;
pub use method::Method;
