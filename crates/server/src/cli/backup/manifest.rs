//! `backup.json`: what a backup holds (counts, every file's size and SHA-256), writing it, and
//! reading a backup back by it.

use std::io::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::files::create_private;
use super::{BResult, BackupError, MANIFEST_FILE, SESSION_FILE, io};

pub(super) const FORMAT: u32 = 1;

/// `backup.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Manifest {
    pub(super) format: u32,
    /// `tessera --version` of the binary that made it.
    pub(super) tessera: String,
    /// When the copy was made, seconds since the epoch.
    pub(super) created_at: i64,
    /// The store's on-disk layout ([`tessera_store_redb::LAYOUT_VERSION`]).
    pub(super) layout_version: u64,
    /// How the store copies were made: `service` or `file`.
    pub(super) source: String,
    /// What the session store's copy holds.
    pub(super) sessions: u64,
    pub(super) kv_entries: u64,
    pub(super) revocations: u64,
    pub(super) files: Vec<FileEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileEntry {
    /// Relative to the backup, `/`-separated.
    pub(super) path: String,
    pub(super) bytes: u64,
    pub(super) sha256: String,
}

fn sha256_of(path: &Path) -> BResult<(u64, String)> {
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let mut h = Sha256::new();
    let n = std::io::copy(&mut f, &mut h).map_err(io(path))?;
    let hex = tessera_core::to_hex(&h.finalize());
    Ok((n, hex))
}

impl Manifest {
    /// Lists every file under `dir` with its size and SHA-256, then writes the manifest as
    /// `dir/backup.json` (mode 0600, synced).
    pub(super) fn write(&mut self, dir: &Path) -> crate::cli::Result<()> {
        for rel in files_under(dir)? {
            let (bytes, sha256) = sha256_of(&dir.join(&rel))?;
            self.files.push(FileEntry {
                path: rel,
                bytes,
                sha256,
            });
        }
        let text = serde_json::to_vec_pretty(self)?;
        let mpath = dir.join(MANIFEST_FILE);
        let mut f = create_private(&mpath)?;
        f.write_all(&text)
            .and_then(|()| f.write_all(b"\n"))
            .and_then(|()| f.sync_all())
            .map_err(io(&mpath))?;
        Ok(())
    }
}

/// Every file under `dir` (one level of subdirectories: `keys/`), relative, `/`-separated,
/// sorted.
fn files_under(dir: &Path) -> BResult<Vec<String>> {
    let mut out = vec![];
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = entry.file_type().map_err(io(dir))?;
        if kind.is_dir() {
            for sub in std::fs::read_dir(entry.path()).map_err(io(&entry.path()))? {
                let sub = sub.map_err(io(dir))?;
                out.push(format!("{name}/{}", sub.file_name().to_string_lossy()));
            }
        } else if name != MANIFEST_FILE {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

/// Reads and checks a backup directory: its manifest, and every file's size and SHA-256.
pub(super) fn read_backup(dir: &Path) -> BResult<Manifest> {
    let mpath = dir.join(MANIFEST_FILE);
    let not = |why: String| BackupError::NotABackup {
        path: dir.to_path_buf(),
        why,
    };
    let text = match std::fs::read(&mpath) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(not(format!("it has no {MANIFEST_FILE}")));
        }
        Err(e) => return Err(io(&mpath)(e)),
    };
    let m: Manifest = serde_json::from_slice(&text)
        .map_err(|e| not(format!("{MANIFEST_FILE} is not valid: {e}")))?;
    if m.format != FORMAT {
        return Err(not(format!(
            "its format is {}; this build reads {FORMAT}",
            m.format
        )));
    }
    for f in &m.files {
        // Only plain relative names: a manifest cannot point outside the backup.
        let ok = f
            .path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..");
        if !ok {
            return Err(not(format!("{MANIFEST_FILE} names {:?}", f.path)));
        }
        let p = dir.join(&f.path);
        match sha256_of(&p) {
            Ok((bytes, sha)) if bytes == f.bytes && sha == f.sha256 => {}
            Ok(_) => return Err(BackupError::Damaged { path: p }),
            Err(BackupError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Err(BackupError::Damaged { path: p });
            }
            Err(e) => return Err(e),
        }
    }
    if !m.files.iter().any(|f| f.path == SESSION_FILE) {
        return Err(not(format!("it has no {SESSION_FILE}")));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_cannot_name_a_file_outside_the_backup() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["../etc/passwd", "/etc/passwd", "keys/../../x", ""] {
            let m = serde_json::json!({
                "format": 1, "tessera": "t", "created_at": 0, "layout_version": 1,
                "source": "file", "sessions": 0, "kv_entries": 0, "revocations": 0,
                "files": [{"path": bad, "bytes": 0, "sha256": ""}]
            });
            std::fs::write(dir.path().join(MANIFEST_FILE), m.to_string()).unwrap();
            let e = read_backup(dir.path()).unwrap_err();
            assert_eq!(e.code(), "backup-not-a-backup", "{bad}: {e}");
        }
    }
}
