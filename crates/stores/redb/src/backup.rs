//! A consistent copy of a store while it serves: [`RedbStore::backup_to`].
//!
//! redb locks its file, so only the process that has the store open can read it, and copying
//! the file's bytes while the writer commits can tear (cberner/redb#634: back up from a read
//! transaction inside the process). The copy is therefore one read transaction's snapshot
//! (MVCC: the writer goes on meanwhile) written table by table into a fresh redb file.

use std::path::Path;

use redb::{
    ReadTransaction, ReadableDatabase as _, ReadableTable as _, TableDefinition, TableHandle as _,
    WriteTransaction,
};

use crate::{
    BLOBS, EXPIRIES, KV, KV_EXPIRIES, KV_NAMESPACES, KV_NS_EXPIRIES, KV_NS_VALUES, META,
    REVOCATION_LOG, REVOCATIONS, RedbStore, SESSIONS, StoreResult, USER_SESSIONS, backend,
};

/// What [`RedbStore::backup_to`] copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupStats {
    /// Entries of the `sessions` table: live and expired-but-unpurged records, tombstones.
    pub sessions: u64,
    /// Key-value entries (the Kask API's values).
    pub kv_entries: u64,
    /// Entries of the revocation log.
    pub revocations: u64,
    /// The size of the copy, in bytes.
    pub bytes: u64,
}

/// Every table of layout 1. A backup refuses a file with any other table, so a table added
/// later cannot be left out of backups silently: adding one means adding it here and to
/// `copy_into` (the test `every_table_is_backed_up` fails until then).
const TABLES: [&str; 12] = [
    "meta",
    "sessions",
    "user_sessions",
    "expiries",
    "revocations",
    "kv",
    "kv_expiries",
    "revocation_log",
    "kv_namespaces",
    "kv_ns_values",
    "kv_ns_expiries",
    "blobs",
];

fn copy_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    from: &ReadTransaction,
    to: &WriteTransaction,
    def: TableDefinition<'static, K, V>,
) -> StoreResult<u64> {
    let src = from.open_table(def).map_err(backend)?;
    let mut dst = to.open_table(def).map_err(backend)?;
    let mut n = 0;
    for entry in src.iter().map_err(backend)? {
        let (k, v) = entry.map_err(backend)?;
        dst.insert(k.value(), v.value()).map_err(backend)?;
        n += 1;
    }
    Ok(n)
}

impl RedbStore {
    /// Writes a consistent copy of the store into the new file `dest` while the store keeps
    /// serving. The copy is the snapshot of one read transaction: every write committed (and
    /// so acknowledged) before it began is in it, none after, none in part. It is committed
    /// durably (fsync) before this returns, with mode 0600 on Unix. Blocks while it reads
    /// every table: call it from `spawn_blocking`.
    ///
    /// The copy is a store [`RedbStore::open`] opens: to restore it, put it where the store's
    /// file goes while no process has that file open.
    ///
    /// # Examples
    ///
    /// ```
    /// use tessera_store_redb::RedbStore;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let store = RedbStore::open(dir.path().join("sessions.redb"))?;
    /// let stats = store.backup_to(dir.path().join("copy.redb"))?;
    /// assert_eq!(stats.sessions, 0);
    /// RedbStore::open(dir.path().join("copy.redb"))?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`tessera_core::Error::Backend`] with the I/O or redb error: `dest` exists already (it
    /// is never overwritten), cannot be written, or the store holds a table this build does
    /// not know. `dest` is then removed, unless it existed before.
    pub fn backup_to(&self, dest: impl AsRef<Path>) -> StoreResult<BackupStats> {
        let dest = dest.as_ref();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        // Ours from here on: remove it on failure.
        options.open(dest).map_err(backend)?;
        match self.copy_into(dest) {
            Ok(stats) => Ok(stats),
            Err(e) => {
                let _ = std::fs::remove_file(dest);
                Err(e)
            }
        }
    }

    fn copy_into(&self, dest: &Path) -> StoreResult<BackupStats> {
        let snapshot = self.db.begin_read().map_err(backend)?;
        for t in snapshot.list_tables().map_err(backend)? {
            if !TABLES.contains(&t.name()) {
                return Err(backend(std::io::Error::other(format!(
                    "the store has a table this build does not back up: {}",
                    t.name()
                ))));
            }
        }
        // `backup_to` made the file (empty, mode 0600); redb initialises it.
        let copy = redb::Builder::new().create(dest).map_err(backend)?;
        let mut txn = copy.begin_write().map_err(backend)?;
        txn.set_durability(redb::Durability::Immediate)
            .map_err(backend)?;
        copy_table(&snapshot, &txn, META)?;
        let mut stats = BackupStats {
            sessions: copy_table(&snapshot, &txn, SESSIONS)?,
            kv_entries: copy_table(&snapshot, &txn, KV)?,
            revocations: copy_table(&snapshot, &txn, REVOCATION_LOG)?,
            bytes: 0,
        };
        copy_table(&snapshot, &txn, USER_SESSIONS)?;
        copy_table(&snapshot, &txn, EXPIRIES)?;
        copy_table(&snapshot, &txn, REVOCATIONS)?;
        copy_table(&snapshot, &txn, KV_EXPIRIES)?;
        // The keyed store (`/v1/kv`).
        copy_table(&snapshot, &txn, KV_NAMESPACES)?;
        copy_table(&snapshot, &txn, KV_NS_VALUES)?;
        copy_table(&snapshot, &txn, KV_NS_EXPIRIES)?;
        // A fleet's sealed keys, when they live in this store (`[keys] storage = "store"`).
        copy_table(&snapshot, &txn, BLOBS)?;
        txn.commit().map_err(backend)?;
        drop(copy);
        stats.bytes = std::fs::metadata(dest).map_err(backend)?.len();
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use redb::{ReadableDatabase as _, TableHandle as _};

    use super::TABLES;
    use crate::RedbStore;

    /// A fresh store has exactly the tables a backup copies, and a copy has them all too.
    #[test]
    fn every_table_is_backed_up() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path().join("s.redb")).unwrap();
        let names = |db: &redb::Database| {
            let mut v: Vec<String> = db
                .begin_read()
                .unwrap()
                .list_tables()
                .unwrap()
                .map(|t| t.name().to_owned())
                .collect();
            v.sort();
            v
        };
        let mut listed: Vec<String> = TABLES.iter().map(|t| (*t).to_owned()).collect();
        listed.sort();
        assert_eq!(
            names(&store.db),
            listed,
            "a table of the store is not in backup::TABLES (or the reverse): add it there and to copy_into"
        );
        store.backup_to(dir.path().join("copy.redb")).unwrap();
        drop(store);
        let copy = redb::Database::open(dir.path().join("copy.redb")).unwrap();
        assert_eq!(names(&copy), listed, "the copy lacks a table");
    }
}
