//! `tessera restore`: a backup (or a bare store file) into an empty or absent data directory;
//! the keys first and the store last, and what was written removed again if a step fails.

use std::path::{Path, PathBuf};

use tessera::keys::files::{CSRF_KEY_FILE, KEY_DIR};
use tessera_store_redb::RedbStore;

use super::files::{check_store, copy_file, parent_of, private_dir, sync_dir, with_suffix};
use super::manifest::read_backup;
use super::{
    ANONYMOUS_FILE, API_KEY_FILE, BResult, BackupError, SESSION_FILE, anonymous_file, io, redb_file,
};
use crate::cli::Result;
use crate::config::Config;

/// Refuses a target that is in use or not empty.
fn check_target(config: &Config, stores: &[PathBuf]) -> BResult<()> {
    for file in stores {
        if file.symlink_metadata().is_ok() {
            let held = matches!(RedbStore::open(file), Err(e) if e.is_in_use());
            if held {
                return Err(BackupError::InUse { path: file.clone() });
            }
            return Err(BackupError::TargetExists {
                path: file.clone(),
                hint: "restore never overwrites: stop the service and move the old data aside",
            });
        }
    }
    let dir = &config.data_dir;
    let occupied = match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_some(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(io(dir)(e)),
    };
    if occupied {
        return Err(BackupError::TargetExists {
            path: dir.clone(),
            hint: "restore needs an empty or absent data directory: stop the service and move \
                   the old one aside",
        });
    }
    Ok(())
}

/// Gives `path` (and what is under it) to `owner` (uid, gid) unless it is theirs already.
#[cfg(unix)]
fn give(path: &Path, owner: &(u32, u32)) -> BResult<()> {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::symlink_metadata(path).map_err(io(path))?;
    if m.is_dir() {
        for e in std::fs::read_dir(path).map_err(io(path))? {
            give(&e.map_err(io(path))?.path(), owner)?;
        }
    }
    if (m.uid(), m.gid()) != *owner {
        std::os::unix::fs::chown(path, Some(owner.0), Some(owner.1)).map_err(io(path))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn give(_: &Path, _: &()) -> BResult<()> {
    Ok(())
}

/// Creates the missing directories above `file` (mode 0700), noting the topmost in `made` so
/// that a failed restore removes it.
fn make_parent(file: &Path, made: &mut Vec<PathBuf>) -> BResult<()> {
    let parent = parent_of(file);
    let mut top = None;
    let mut p = Some(parent);
    while let Some(dir) = p.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        top = Some(dir.to_path_buf());
        p = dir.parent();
    }
    if let Some(top) = top {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt as _;
            b.mode(0o700);
        }
        b.create(parent).map_err(io(parent))?;
        made.push(top);
    }
    Ok(())
}

/// Puts the store copy `from` at `to`: copied beside it, opened (integrity, layout), then
/// renamed into place.
fn place_store(from: &Path, to: &Path) -> BResult<u64> {
    let partial = with_suffix(to, ".partial");
    if partial.symlink_metadata().is_ok() {
        std::fs::remove_file(&partial).map_err(io(&partial))?;
    }
    let n = copy_file(from, &partial)?;
    if let Err(e) = check_store(&partial) {
        let _ = std::fs::remove_file(&partial);
        return Err(match e {
            BackupError::NotAStore { source, .. } => BackupError::NotAStore {
                path: from.to_path_buf(),
                source,
            },
            other => other,
        });
    }
    std::fs::rename(&partial, to).map_err(io(to))?;
    Ok(n)
}

/// `tessera restore BACKUP`: a backup directory (or a bare store file, a `sessions.redb`)
/// into the configured data directory, which must be empty or absent. Prints what it did.
///
/// # Errors
///
/// [`BackupError`]; the data directory is then as it was (what was written is removed).
#[allow(clippy::print_stdout)]
pub fn restore(config: &Config, from: &Path) -> Result<()> {
    let session_file = redb_file(&config.store, "session")?;
    let anon_file = anonymous_file(config);
    let meta = std::fs::metadata(from).map_err(io(from))?;
    let manifest = if meta.is_dir() {
        Some(read_backup(from)?)
    } else {
        None
    };
    let mut targets = vec![session_file.clone()];
    targets.extend(anon_file.clone());
    check_target(config, &targets)?;

    let dir_existed = config.data_dir.exists();
    // A data directory made for the service (systemd's StateDirectory=, a dedicated user's
    // home) is the service's: what root restores into it becomes the service's too.
    #[cfg(unix)]
    let owner = if dir_existed {
        use std::os::unix::fs::MetadataExt as _;
        let m = std::fs::metadata(&config.data_dir).map_err(io(&config.data_dir))?;
        Some((m.uid(), m.gid()))
    } else {
        None
    };
    #[cfg(not(unix))]
    let owner: Option<()> = None;
    let mut written: Vec<PathBuf> = vec![];
    let result = (|| -> BResult<(u64, Vec<&'static str>)> {
        if !dir_existed {
            let mut b = std::fs::DirBuilder::new();
            b.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt as _;
                b.mode(0o700);
            }
            b.create(&config.data_dir).map_err(io(&config.data_dir))?;
        }
        let mut notes = vec![];
        let Some(m) = &manifest else {
            make_parent(&session_file, &mut written)?;
            written.push(session_file.clone());
            let n = place_store(from, &session_file)?;
            notes.push(
                "a bare store file holds no keys: the service generates new ones, so tokens \
                 signed before stop verifying, and sealed secrets and anonymous cookies no \
                 longer open",
            );
            return Ok((n, notes));
        };
        let has = |p: &str| m.files.iter().any(|f| f.path == p);
        // The keys first, the store last: a store without its keys is what is refused.
        if m.files.iter().any(|f| f.path.starts_with("keys/")) {
            let to = config.data_dir.join(KEY_DIR);
            written.push(to.clone());
            private_dir(&to)?;
            for f in m.files.iter().filter(|f| f.path.starts_with("keys/")) {
                let name = f.path.trim_start_matches("keys/");
                copy_file(&from.join(&f.path), &to.join(name))?;
            }
            sync_dir(&to)?;
        } else if config.keys.storage == crate::config::KeyStorage::Dir {
            notes.push("the backup holds no keys: the service generates new ones");
        }
        for name in [CSRF_KEY_FILE, API_KEY_FILE] {
            if has(name) {
                let to = config.data_dir.join(name);
                written.push(to.clone());
                copy_file(&from.join(name), &to)?;
            }
        }
        let mut bytes = 0;
        if let Some(anon) = &anon_file {
            if has(ANONYMOUS_FILE) {
                make_parent(anon, &mut written)?;
                written.push(anon.clone());
                bytes += place_store(&from.join(ANONYMOUS_FILE), anon)?;
            } else {
                notes.push("the backup holds no anonymous store: it starts empty");
            }
        } else if has(ANONYMOUS_FILE) {
            notes.push(
                "the backup's anonymous store is not restored: [store] anonymous is not redb here",
            );
        }
        make_parent(&session_file, &mut written)?;
        written.push(session_file.clone());
        bytes += place_store(&from.join(SESSION_FILE), &session_file)?;
        if let Some(owner) = &owner {
            for p in &written {
                give(p, owner)?;
            }
        }
        for file in &targets {
            sync_dir(parent_of(file))?;
        }
        sync_dir(&config.data_dir)?;
        Ok((bytes, notes))
    })();
    let (bytes, notes) = match result {
        Ok(r) => r,
        Err(e) => {
            for p in written.iter().rev() {
                let _ = std::fs::remove_dir_all(p).or_else(|_| std::fs::remove_file(p));
            }
            if !dir_existed {
                let _ = std::fs::remove_dir(&config.data_dir);
            }
            return Err(e.into());
        }
    };
    match &manifest {
        Some(m) => println!(
            "restored {} (made {} by tessera {}, {} session entries) into {}: {} files",
            from.display(),
            crate::keys::utc(m.created_at),
            m.tessera,
            m.sessions,
            config.data_dir.display(),
            m.files.len()
        ),
        None => println!(
            "restored the store file {} into {} ({bytes} bytes)",
            from.display(),
            session_file.display()
        ),
    }
    for n in notes {
        println!("note: {n}");
    }
    println!("start the service: `tessera serve`");
    Ok(())
}
