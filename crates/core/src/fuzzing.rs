//! Entry points for fuzz targets and their replay as ordinary tests. Not a stable API.

use crate::Handle;

/// Parses `data` as a session handle; must never panic.
pub fn handle_from_bytes(data: &[u8]) {
    if let Some(h) = std::str::from_utf8(data)
        .ok()
        .and_then(|s| s.parse::<Handle>().ok())
    {
        // A parsed handle must re-expose exactly its input.
        assert_eq!(h.expose().as_bytes(), data, "handle parse is not canonical");
    }
}
