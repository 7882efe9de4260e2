//! The schema and its migrations, applied at start-up.
//!
//! `tessera_schema_version` records every migration applied. [`migrate`] takes a
//! transaction-scoped advisory lock first, so servers starting together apply each migration
//! once, one after the other; the whole run is one transaction (Postgres DDL is
//! transactional), so a failed migration leaves nothing half-applied. Running it again is a
//! no-op. Migrations are append-only: a released one is never edited.

use crate::Error;

/// The schema version this build writes. [`PostgresStore::connect`](crate::PostgresStore::connect)
/// refuses a database with a later one.
pub const SCHEMA_VERSION: i32 = 5;

/// The advisory lock key that serialises migrations ("tessera1" as ASCII).
const MIGRATION_LOCK: i64 = 0x7465_7373_6572_6131;

/// `(version, SQL)`, in order.
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        r"
CREATE TABLE tessera_sessions (
    key        bytea  PRIMARY KEY CHECK (octet_length(key) = 32),
    -- NULL for tombstones.
    version    bigint,
    -- The user index: set for authenticated records only, NULL for tombstones.
    user_id    text,
    created_at bigint,
    -- A record's expiry or a tombstone's end (ms since the epoch): what purge looks at.
    dead_at    bigint NOT NULL,
    -- The record as JSON; NULL for a tombstone.
    record     json,
    CHECK ((record IS NULL) = (version IS NULL))
);
CREATE INDEX tessera_sessions_user_id ON tessera_sessions (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX tessera_sessions_dead_at ON tessera_sessions (dead_at);
CREATE TABLE tessera_user_revocations (
    user_id    text   PRIMARY KEY,
    revoked_at bigint NOT NULL
);
",
    ),
    (
        2,
        r"
-- The key-value namespace of the Kask-compatible API.
CREATE TABLE tessera_kv (
    key        bytea  PRIMARY KEY CHECK (octet_length(key) <= 1024),
    value      bytea  NOT NULL,
    -- Expiry, ms since the epoch on the engine's clock: what reads and purge look at.
    expires_at bigint NOT NULL
);
CREATE INDEX tessera_kv_expires_at ON tessera_kv (expires_at);
",
    ),
    (
        3,
        r"
-- The revocation log behind the revocation feed.
CREATE TABLE tessera_revocations (
    seq          bigserial PRIMARY KEY,
    subject_kind text      NOT NULL CHECK (subject_kind IN ('user', 'session')),
    subject_id   text      NOT NULL,
    -- The revocation's time, ms since the epoch: what purge looks at.
    at           bigint    NOT NULL
);
CREATE INDEX tessera_revocations_at ON tessera_revocations (at);
",
    ),
    (
        4,
        r"
-- The keyed store (/v1/kv): each namespace's generation and count of values, so that
-- counting and clearing it read and write this one row.
CREATE TABLE tessera_kv_namespaces (
    ns         text   PRIMARY KEY,
    generation bigint NOT NULL,
    count      bigint NOT NULL
);
-- Its values, under the SHA-256 of the application's key. A row of an older generation than
-- its namespace's was cleared: never read, and purged at its expiry.
CREATE TABLE tessera_kv_values (
    ns         text   NOT NULL,
    key        bytea  NOT NULL CHECK (octet_length(key) = 32),
    generation bigint NOT NULL,
    -- The generation of the row the last write replaced (NULL: it inserted): how one
    -- statement tells a new key, which counts, from a replacement.
    replaced   bigint,
    value      bytea  NOT NULL,
    -- Expiry, ms since the epoch on the engine's clock: what reads and purge look at.
    expires_at bigint NOT NULL,
    PRIMARY KEY (ns, key)
);
CREATE INDEX tessera_kv_values_expires_at ON tessera_kv_values (expires_at);
",
    ),
    (
        5,
        r"
-- Versioned blobs under names (a fleet's sealed keys, the rotation lease), changed only by
-- compare-and-set on the version; never expire.
CREATE TABLE tessera_blobs (
    name    text   PRIMARY KEY CHECK (octet_length(name) <= 256),
    version bigint NOT NULL CHECK (version > 0),
    value   bytea  NOT NULL
);
",
    ),
];

/// Brings the schema to [`SCHEMA_VERSION`].
///
/// # Errors
///
/// [`Error::Migrate`] if a statement fails; [`Error::UnsupportedSchema`] if the database has
/// a later schema than this build knows.
pub(crate) async fn migrate(client: &mut tokio_postgres::Client) -> Result<Vec<i32>, Error> {
    let tx = client.transaction().await.map_err(Error::Migrate)?;
    tx.query_one("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(Error::Migrate)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS tessera_schema_version (
            version    integer     PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now()
        )",
    )
    .await
    .map_err(Error::Migrate)?;
    let current: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM tessera_schema_version",
            &[],
        )
        .await
        .map_err(Error::Migrate)?
        .get(0);
    if current > SCHEMA_VERSION {
        return Err(Error::UnsupportedSchema {
            found: current,
            supported: SCHEMA_VERSION,
        });
    }
    let mut applied = vec![];
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.batch_execute(sql).await.map_err(Error::Migrate)?;
        tx.execute(
            "INSERT INTO tessera_schema_version (version) VALUES ($1)",
            &[version],
        )
        .await
        .map_err(Error::Migrate)?;
        applied.push(*version);
    }
    tx.commit().await.map_err(Error::Migrate)?;
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order_up_to_the_schema_version() {
        let versions: Vec<i32> = MIGRATIONS.iter().map(|(v, _)| *v).collect();
        let want: Vec<i32> = (1..=SCHEMA_VERSION).collect();
        assert_eq!(versions, want);
    }
}
