//! `tessera backup` and `tessera restore` (docs/operations.md, "Backups").
//!
//! A backup is a directory (mode 0700, files 0600):
//!
//! ```text
//! backup.json       what it holds: version, time, counts, every file's size and SHA-256
//! sessions.redb     the session store: one read transaction's snapshot (redb)
//! anonymous.redb    the anonymous store, when `[store] anonymous` is redb too
//! keys/             the token signing keys and the sealing keys, as in DATA_DIR/keys
//! csrf.key          the CSRF key
//! api-key           the generated management API key, when there is one
//! ```
//!
//! The store and the keys belong together: sealed secrets and anonymous cookies open only
//! with their sealing keys, tokens verify only with their signing keys. The keys are copied
//! under the key directory's lock, held until the store's snapshot is taken, so no rotation
//! falls between the two: the copy is the state of one moment.
//!
//! The store's copy comes from the running service (`GET /v1/admin/backup` at `listen`, with
//! the management API key): redb locks its file, so only the service can read it, and a
//! copy of the bytes taken while it commits could be torn. With no service running and the
//! file free, the copy is made from the file, the same way.
//!
//! `restore` puts a backup into the configured data directory, which must be empty or
//! absent: it never overwrites, and it refuses a store file held by a running service.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tessera::keys::files::{CSRF_KEY_FILE, KEY_DIR};
use tessera_store_redb::RedbStore;

use super::Result;
use crate::config::{Config, StoreUrl};

/// The manifest's file name in a backup.
pub const MANIFEST_FILE: &str = "backup.json";
/// The session store's file name in a backup.
pub const SESSION_FILE: &str = "sessions.redb";
/// The anonymous store's file name in a backup.
pub const ANONYMOUS_FILE: &str = "anonymous.redb";
/// The generated API key's file name, in the data directory and in a backup.
pub const API_KEY_FILE: &str = "api-key";
const FORMAT: u32 = 1;

/// Why `backup` or `restore` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// The store is not an embedded (redb) store.
    #[error(
        "the {store} store is {url}, not an embedded redb store: back it up with its own tools \
         (docs/operations.md)"
    )]
    NotRedb {
        /// `session` or `anonymous`.
        store: &'static str,
        /// The store's URL (passwords hidden).
        url: String,
    },
    /// The backup's directory, or the data directory of a restore, exists already.
    #[error("{} exists already: {hint}", path.display())]
    TargetExists {
        /// The path.
        path: PathBuf,
        /// What to do.
        hint: &'static str,
    },
    /// Writing or reading a file failed.
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The service could not be asked.
    #[error("cannot reach the service at {url}")]
    Request {
        /// The backup URL.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The service answered with a problem.
    #[error("the service refused the backup ({status}): {detail}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The problem's detail.
        detail: String,
    },
    /// No service answers at `listen`, and the store file cannot be copied directly.
    #[error("no service answers at {url}, and {}: {why}", path.display())]
    NoService {
        /// The service's address.
        url: String,
        /// The store file.
        path: PathBuf,
        /// Why no direct copy.
        why: &'static str,
    },
    /// Copying the store file directly failed.
    #[error("copying {} failed", path.display())]
    Copy {
        /// The store file.
        path: PathBuf,
        /// Why.
        #[source]
        source: tessera_core::Error,
    },
    /// A copy does not open as a Tessera store.
    #[error("{} is not a usable Tessera store", path.display())]
    NotAStore {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Option<tessera_store_redb::Error>,
    },
    /// The restore's store file is open in a running service.
    #[error(
        "{} is in use (is `tessera serve` running?): stop the service, move the data directory \
         aside, then restore",
        path.display()
    )]
    InUse {
        /// The store file.
        path: PathBuf,
    },
    /// The path is not a backup made by `tessera backup`.
    #[error("{} is not a backup made by `tessera backup`: {why}", path.display())]
    NotABackup {
        /// The path.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// A file of the backup is not what its manifest says.
    #[error(
        "{} does not match the backup's manifest (size or SHA-256): the backup is damaged",
        path.display()
    )]
    Damaged {
        /// The file.
        path: PathBuf,
    },
    /// The key directory's lock could not be taken.
    #[error("cannot lock the key directory")]
    KeysLock(#[source] tessera_token::Error),
}

impl BackupError {
    /// Every code [`BackupError::code`] returns.
    pub const CODES: &'static [&'static str] = &[
        "backup-not-redb",
        "backup-target-exists",
        "backup-io",
        "backup-request",
        "backup-refused",
        "backup-no-service",
        "backup-copy",
        "backup-not-a-store",
        "backup-in-use",
        "backup-not-a-backup",
        "backup-damaged",
        "backup-keys-lock",
    ];

    /// A stable identifier for logs and runbooks.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotRedb { .. } => "backup-not-redb",
            Self::TargetExists { .. } => "backup-target-exists",
            Self::Io { .. } => "backup-io",
            Self::Request { .. } => "backup-request",
            Self::Refused { .. } => "backup-refused",
            Self::NoService { .. } => "backup-no-service",
            Self::Copy { .. } => "backup-copy",
            Self::NotAStore { .. } => "backup-not-a-store",
            Self::InUse { .. } => "backup-in-use",
            Self::NotABackup { .. } => "backup-not-a-backup",
            Self::Damaged { .. } => "backup-damaged",
            Self::KeysLock(_) => "backup-keys-lock",
        }
    }
}

type BResult<T> = std::result::Result<T, BackupError>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `backup.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    format: u32,
    /// `tessera --version` of the binary that made it.
    tessera: String,
    /// When the copy was made, seconds since the epoch.
    created_at: i64,
    /// The store's on-disk layout ([`tessera_store_redb::LAYOUT_VERSION`]).
    layout_version: u64,
    /// How the store copies were made: `service` or `file`.
    source: String,
    /// What the session store's copy holds.
    sessions: u64,
    kv_entries: u64,
    revocations: u64,
    files: Vec<FileEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    /// Relative to the backup, `/`-separated.
    path: String,
    bytes: u64,
    sha256: String,
}

/// The redb file of a store URL.
fn redb_file(url: &StoreUrl, store: &'static str) -> BResult<PathBuf> {
    match url {
        StoreUrl::Redb(p) => Ok(p.clone()),
        other => Err(BackupError::NotRedb {
            store,
            url: other.to_string(),
        }),
    }
}

/// The anonymous store's redb file, if it is configured apart and on redb.
fn anonymous_file(config: &Config) -> Option<PathBuf> {
    match &config.anon_store {
        Some(StoreUrl::Redb(p)) => Some(p.clone()),
        _ => None,
    }
}

/// The service's address as a client reaches it: a wildcard listen address becomes the
/// loopback one.
fn service_url(config: &Config) -> String {
    let mut addr = config.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("http://{addr}")
}

/// The first management API key of `config`, as the service reads them: `api_keys` (and
/// `TESSERA_API_KEY`), then `api_key_file`, then `DATA_DIR/api-key`.
fn api_key(config: &Config) -> Result<zeroize::Zeroizing<String>> {
    if let Some(k) = config.api_keys.first() {
        return Ok(zeroize::Zeroizing::new(k.clone()));
    }
    let path = config
        .api_key_file
        .clone()
        .unwrap_or_else(|| config.data_dir.join(API_KEY_FILE));
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(&path).map_err(io(&path))?);
    let key = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap_or_default();
    Ok(zeroize::Zeroizing::new(key.to_owned()))
}

fn private_dir(path: &Path) -> BResult<()> {
    let mut b = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        b.mode(0o700);
    }
    b.create(path).map_err(io(path))
}

/// A new file at `path` with mode 0600: a backup holds session data and keys.
fn create_private(path: &Path) -> BResult<std::fs::File> {
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
fn copy_file(from: &Path, to: &Path) -> BResult<u64> {
    let mut input = std::fs::File::open(from).map_err(io(from))?;
    let mut out = create_private(to)?;
    let n = std::io::copy(&mut input, &mut out).map_err(io(to))?;
    out.sync_all().map_err(io(to))?;
    Ok(n)
}

fn sync_dir(dir: &Path) -> BResult<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn sha256_of(path: &Path) -> BResult<(u64, String)> {
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let mut h = Sha256::new();
    let n = std::io::copy(&mut f, &mut h).map_err(io(path))?;
    let hex = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((n, hex))
}

/// The regular files of the key directory `dir` but its lock file, by name.
fn key_files(dir: &Path) -> BResult<Vec<String>> {
    let mut names = vec![];
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let is_file = entry.file_type().map_err(io(dir))?.is_file();
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_file && name != tessera_token::LOCK_FILE {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// What a store copy holds.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    sessions: u64,
    kv_entries: u64,
    revocations: u64,
}

fn header_count(r: &reqwest::Response, name: &str) -> u64 {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Asks the service for a copy of `store`, written to the new file `dest`. `Ok(None)` when
/// nothing listens at the address.
async fn from_service(
    config: &Config,
    key: &str,
    store: &'static str,
    dest: &Path,
) -> BResult<Option<Counts>> {
    let url = format!("{}/v1/admin/backup?store={store}", service_url(config));
    let request = |source| BackupError::Request {
        url: url.clone(),
        source,
    };
    let mut r = match reqwest::Client::new()
        .get(&url)
        .bearer_auth(key)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) if e.is_connect() => return Ok(None),
        Err(e) => return Err(request(e)),
    };
    if !r.status().is_success() {
        let status = r.status().as_u16();
        let body: serde_json::Value = r.json().await.unwrap_or_default();
        return Err(BackupError::Refused {
            status,
            detail: body["detail"].as_str().unwrap_or("no detail").to_owned(),
        });
    }
    let counts = Counts {
        sessions: header_count(&r, crate::backup::SESSIONS_HEADER),
        kv_entries: header_count(&r, crate::backup::KV_HEADER),
        revocations: header_count(&r, crate::backup::REVOCATIONS_HEADER),
    };
    let mut file = create_private(dest)?;
    while let Some(chunk) = r.chunk().await.map_err(request)? {
        file.write_all(&chunk).map_err(io(dest))?;
    }
    file.sync_all().map_err(io(dest))?;
    Ok(Some(counts))
}

/// Copies the store file `file` into `dest` itself, when no process holds it.
fn from_file(url: String, file: &Path, dest: &Path) -> BResult<Counts> {
    let no_service = |why| BackupError::NoService {
        url: url.clone(),
        path: file.to_path_buf(),
        why,
    };
    // `open` would create an absent file.
    if !file.is_file() {
        return Err(no_service("that store file does not exist"));
    }
    let store = match RedbStore::open(file) {
        Ok(s) => s,
        Err(e) if e.is_in_use() => {
            return Err(no_service(
                "that file is open in another process: is `listen` (TESSERA_LISTEN) the \
                 service's address?",
            ));
        }
        Err(e) => {
            return Err(BackupError::NotAStore {
                path: file.to_path_buf(),
                source: Some(e),
            });
        }
    };
    let stats = store.backup_to(dest).map_err(|source| BackupError::Copy {
        path: file.to_path_buf(),
        source,
    })?;
    Ok(Counts {
        sessions: stats.sessions,
        kv_entries: stats.kv_entries,
        revocations: stats.revocations,
    })
}

/// Checks that the store copy `file` opens: redb's integrity check and the layout version.
/// Opening may commit (an empty transaction), so it runs before the file is hashed.
fn check_store(file: &Path) -> BResult<()> {
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

/// Copies what the backup holds into `partial`; returns the manifest without its files.
async fn fill(config: &Config, partial: &Path) -> Result<Manifest> {
    let session_file = redb_file(&config.store, "session")?;
    let key = api_key(config)?;
    let keys_dir = config.data_dir.join(KEY_DIR);
    // Held until the store's snapshot is taken: no rotation between the keys and the store.
    let lock = if keys_dir.is_dir() {
        Some(tessera_token::Keyring::lock_dir(&keys_dir).map_err(BackupError::KeysLock)?)
    } else {
        None
    };
    if lock.is_some() {
        let to = partial.join(KEY_DIR);
        private_dir(&to)?;
        for name in key_files(&keys_dir)? {
            copy_file(&keys_dir.join(&name), &to.join(&name))?;
        }
    }
    for name in [CSRF_KEY_FILE, API_KEY_FILE] {
        let from = config.data_dir.join(name);
        if from.is_file() {
            copy_file(&from, &partial.join(name))?;
        }
    }
    let mut stores = vec![("session", session_file, SESSION_FILE)];
    if let Some(f) = anonymous_file(config) {
        stores.push(("anonymous", f, ANONYMOUS_FILE));
    }
    let mut counts = Counts::default();
    let mut source = "service";
    for (i, (label, file, name)) in stores.iter().enumerate() {
        let dest = partial.join(name);
        let got = match from_service(config, &key, label, &dest).await? {
            Some(c) => c,
            None => {
                source = "file";
                let (url, file, dest) = (service_url(config), file.clone(), dest.clone());
                tokio::task::spawn_blocking(move || from_file(url, &file, &dest))
                    .await
                    .map_err(|e| BackupError::Io {
                        path: partial.to_path_buf(),
                        source: std::io::Error::other(e),
                    })??
            }
        };
        if i == 0 {
            counts = got;
        }
    }
    drop(lock);
    for (_, _, name) in &stores {
        check_store(&partial.join(name))?;
    }
    Ok(Manifest {
        format: FORMAT,
        tessera: super::VERSION.to_owned(),
        created_at: super::now(),
        layout_version: tessera_store_redb::LAYOUT_VERSION,
        source: source.to_owned(),
        sessions: counts.sessions,
        kv_entries: counts.kv_entries,
        revocations: counts.revocations,
        files: vec![],
    })
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

/// `tessera backup PATH`: a new directory PATH with a consistent copy of the store(s) and
/// the keys of the data directory. Prints what it holds.
///
/// # Errors
///
/// [`BackupError`] (PATH is then absent), or the configuration's.
#[allow(clippy::print_stdout)]
pub async fn backup(config: &Config, path: &Path) -> Result<()> {
    redb_file(&config.store, "session")?;
    if path.symlink_metadata().is_ok() {
        return Err(BackupError::TargetExists {
            path: path.to_path_buf(),
            hint: "a backup never overwrites; name a new directory (e.g. with the date)",
        }
        .into());
    }
    let parent = parent_of(path);
    std::fs::create_dir_all(parent).map_err(|e| {
        // What create_dir_all says of a file in the way.
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            io(parent)(std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                "not a directory",
            ))
        } else {
            io(parent)(e)
        }
    })?;
    // Ours by its name: what a backup cut short left behind.
    let partial = with_suffix(path, ".partial");
    if partial.symlink_metadata().is_ok() {
        std::fs::remove_dir_all(&partial).map_err(io(&partial))?;
    }
    private_dir(&partial)?;
    let made = async {
        let mut manifest = fill(config, &partial).await?;
        for rel in files_under(&partial)? {
            let (bytes, sha256) = sha256_of(&partial.join(&rel))?;
            manifest.files.push(FileEntry {
                path: rel,
                bytes,
                sha256,
            });
        }
        let text = serde_json::to_vec_pretty(&manifest)?;
        let mpath = partial.join(MANIFEST_FILE);
        let mut f = create_private(&mpath)?;
        f.write_all(&text)
            .and_then(|()| f.write_all(b"\n"))
            .and_then(|()| f.sync_all())
            .map_err(io(&mpath))?;
        if partial.join(KEY_DIR).is_dir() {
            sync_dir(&partial.join(KEY_DIR))?;
        }
        sync_dir(&partial)?;
        std::fs::rename(&partial, path).map_err(io(path))?;
        sync_dir(parent)?;
        Ok::<_, super::Error>(manifest)
    }
    .await;
    let manifest = match made {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&partial);
            return Err(e);
        }
    };
    let how = if manifest.source == "service" {
        format!("from the running service at {}", service_url(config))
    } else {
        "from the store file (no service was running)".to_owned()
    };
    let bytes: u64 = manifest.files.iter().map(|f| f.bytes).sum();
    println!(
        "backed up {} {how} to {}: {} session entries, {} key-value entries, {} revocations; \
         {} files, {bytes} bytes",
        config.data_dir.display(),
        path.display(),
        manifest.sessions,
        manifest.kv_entries,
        manifest.revocations,
        manifest.files.len(),
    );
    println!("the backup holds the keys: keep it as secret as the data directory");
    Ok(())
}

/// Reads and checks a backup directory: its manifest, and every file's size and SHA-256.
fn read_backup(dir: &Path) -> BResult<Manifest> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_listed_and_unique() {
        let p = PathBuf::new;
        let io = || std::io::Error::other("x");
        let all = [
            BackupError::NotRedb {
                store: "session",
                url: String::new(),
            },
            BackupError::TargetExists {
                path: p(),
                hint: "",
            },
            BackupError::Io {
                path: p(),
                source: io(),
            },
            BackupError::Refused {
                status: 501,
                detail: String::new(),
            },
            BackupError::NoService {
                url: String::new(),
                path: p(),
                why: "",
            },
            BackupError::Copy {
                path: p(),
                source: tessera_core::Error::backend(io()),
            },
            BackupError::NotAStore {
                path: p(),
                source: None,
            },
            BackupError::InUse { path: p() },
            BackupError::NotABackup {
                path: p(),
                why: String::new(),
            },
            BackupError::Damaged { path: p() },
            BackupError::KeysLock(
                tessera_token::Keyring::lock_dir(Path::new("/dev/null/keys")).unwrap_err(),
            ),
        ];
        let mut codes: Vec<_> = all.iter().map(BackupError::code).collect();
        // A reqwest error comes only from a request.
        codes.push("backup-request");
        crate::codes::check(BackupError::CODES, codes);
    }

    #[test]
    fn a_wildcard_listen_address_is_reached_on_loopback() {
        let c = |listen: &str| {
            let toml = format!("listen = {listen:?}");
            service_url(&Config::from_toml(&toml, |_| None).unwrap())
        };
        assert_eq!(c("0.0.0.0:7300"), "http://127.0.0.1:7300");
        assert_eq!(c("[::]:7300"), "http://[::1]:7300");
        assert_eq!(c("10.0.0.5:80"), "http://10.0.0.5:80");
    }

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
