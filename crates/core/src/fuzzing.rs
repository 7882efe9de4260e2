//! Entry points for fuzz targets and their replay as ordinary tests. Not a stable API.

use std::path::Path;

use crate::Handle;

/// Every file of `fuzz/corpus/<target>/` at the workspace root, so tests replay what fuzzing
/// found. `manifest_dir` is the calling crate's `CARGO_MANIFEST_DIR` (crates sit two levels
/// below the root).
///
/// # Errors
///
/// The directory or a file cannot be read, or the corpus is empty.
pub fn corpus(manifest_dir: &str, target: &str) -> std::io::Result<Vec<Vec<u8>>> {
    let dir = Path::new(manifest_dir)
        .join("../../fuzz/corpus")
        .join(target);
    let mut files = vec![];
    for entry in std::fs::read_dir(&dir)? {
        files.push(std::fs::read(entry?.path())?);
    }
    if files.is_empty() {
        return Err(std::io::Error::other(format!(
            "empty corpus {}",
            dir.display()
        )));
    }
    Ok(files)
}

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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    #[test]
    fn handle_corpus_replays() {
        for input in super::corpus(env!("CARGO_MANIFEST_DIR"), "handle").unwrap() {
            super::handle_from_bytes(&input);
        }
    }

    proptest! {
        #[test]
        fn handle_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            super::handle_from_bytes(&data);
        }
    }
}
