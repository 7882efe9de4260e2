//! `tessera backup`: the keys copied under the key directory's lock, held until the store's
//! snapshot is taken; the store copies from the running service, or from the file when none
//! runs; then the manifest.

use std::io::Write as _;
use std::path::Path;

use tessera::keys::files::{CSRF_KEY_FILE, KEY_DIR};
use tessera_store_redb::RedbStore;

use super::files::{
    check_store, copy_file, create_private, parent_of, private_dir, sync_dir, with_suffix,
};
use super::manifest::{FORMAT, Manifest};
use super::{
    ANONYMOUS_FILE, API_KEY_FILE, BResult, BackupError, SESSION_FILE, anonymous_file, io, redb_file,
};
use crate::cli::Result;
use crate::config::Config;

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
        tessera: crate::cli::VERSION.to_owned(),
        created_at: crate::cli::now(),
        layout_version: tessera_store_redb::LAYOUT_VERSION,
        source: source.to_owned(),
        sessions: counts.sessions,
        kv_entries: counts.kv_entries,
        revocations: counts.revocations,
        files: vec![],
    })
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
        manifest.write(&partial)?;
        if partial.join(KEY_DIR).is_dir() {
            sync_dir(&partial.join(KEY_DIR))?;
        }
        sync_dir(&partial)?;
        std::fs::rename(&partial, path).map_err(io(path))?;
        sync_dir(parent)?;
        Ok::<_, crate::cli::Error>(manifest)
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
