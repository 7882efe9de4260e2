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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    /// Every file of `fuzz/corpus/<target>/`, so CI replays what fuzzing found.
    fn corpus(target: &str) -> Vec<Vec<u8>> {
        let dir = format!("{}/../../fuzz/corpus/{target}", env!("CARGO_MANIFEST_DIR"));
        let files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .collect();
        assert!(!files.is_empty(), "empty corpus {dir}");
        files
    }

    #[test]
    fn handle_corpus_replays() {
        for input in corpus("handle") {
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
