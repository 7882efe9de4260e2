//! The service itself: request limits and management API keys.

/// Bounds on what a request may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest request body, in bytes (default 64 KiB).
    pub max_body_bytes: usize,
    /// The largest total of request header names and values, in bytes (default 16 KiB).
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            max_header_bytes: 16 * 1024,
        }
    }
}

/// API keys must be long enough to resist guessing and printable so they survive headers.
pub(crate) fn check_api_key(k: &str) -> Result<(), String> {
    if k.len() < 32 {
        return Err("an API key must be at least 32 characters".into());
    }
    if !k.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("an API key must be printable ASCII without spaces".into());
    }
    Ok(())
}
