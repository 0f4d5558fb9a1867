//! Size limits applied before and during parsing, so hostile input costs bounded work.

use serde::Deserialize;

/// Limits on one message; the defaults suit a public SIP edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest whole message (start line, headers and body) in bytes.
    pub max_message_size: usize,
    /// Most header lines (a folded header counts once).
    pub max_headers: usize,
    /// Longest start line or header line in bytes (a folded header counts as one line).
    pub max_line_length: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_size: 64 * 1024,
            max_headers: 128,
            max_line_length: 8 * 1024,
        }
    }
}
