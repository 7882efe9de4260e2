//! Private files and directories (a backup holds session data and keys), copies and syncs,
//! and the check that a store copy opens.

use std::path::{Path, PathBuf};

use tessera_store_redb::RedbStore;

use super::{BResult, BackupError, io};

pub(super) fn private_dir(path: &Path) -> BResult<()> {
    let mut b = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        b.mode(0o700);
    }
    b.create(path).map_err(io(path))
}

/// A new file at `path` with mode 0600: a backup holds session data and keys.
pub(super) fn create_private(path: &Path) -> BResult<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path).map_err(io(path))
}

/// Copies the file `from` to the new file `to` (mode 0600), synced.
pub(super) fn copy_file(from: &Path, to: &Path) -> BResult<u64> {
    let mut input = std::fs::File::open(from).map_err(io(from))?;
    let mut out = create_private(to)?;
    let n = std::io::copy(&mut input, &mut out).map_err(io(to))?;
    out.sync_all().map_err(io(to))?;
    Ok(n)
}

pub(super) fn sync_dir(dir: &Path) -> BResult<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

pub(super) fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

pub(super) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Checks that the store copy `file` opens: redb's integrity check and the layout version.
/// Opening may commit (an empty transaction), so it runs before the file is hashed.
pub(super) fn check_store(file: &Path) -> BResult<()> {
    match std::fs::metadata(file) {
        // redb would make a new store of an empty file.
        Ok(m) if m.len() == 0 => Err(BackupError::NotAStore {
            path: file.to_path_buf(),
            source: None,
        }),
        Ok(_) => RedbStore::open(file)
            .map(drop)
            .map_err(|e| BackupError::NotAStore {
                path: file.to_path_buf(),
                source: Some(e),
            }),
        Err(e) => Err(io(file)(e)),
    }
}
