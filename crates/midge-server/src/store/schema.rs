//! The file's layout: connection settings, tables, the format number and its checks.
//!
//! The format number lives in SQLite's `user_version` header field and Midge's mark in
//! `application_id`, so both can be read without knowing any table. A file with a newer
//! format is refused (never half-read); an older one is migrated step by step in one
//! transaction.

use std::path::Path;

use rusqlite::Connection;

use super::{Durability, StoreError};

/// The format this build writes and reads. Bump it with every change to the tables, and
/// add the step from the previous format to [`migrate`].
pub const FORMAT: i64 = 1;

/// `application_id` of a Midge store: "Mdge" in ASCII.
pub(super) const APPLICATION_ID: i64 = 0x4D64_6765;

/// The tables of format 1.
///
/// - Messages are stored once and referred to by id from deliveries, retained entries and
///   wills; each of those references has an index so that "is this message still
///   referenced?" is three index look-ups (see the writer's garbage collection).
/// - Per-session tables are keyed by client id first, so that a session's rows are
///   contiguous and read back in order (`seq` for the queue).
/// - `WITHOUT ROWID` where the natural key is not one integer: one b-tree per table
///   instead of a table plus a unique index.
const TABLES_V1: &str = "
CREATE TABLE messages (
    id                 INTEGER PRIMARY KEY,
    topic              TEXT    NOT NULL,
    payload            BLOB    NOT NULL,
    qos                INTEGER NOT NULL,
    retain             INTEGER NOT NULL,
    properties         BLOB    NOT NULL,
    expiry_unix        INTEGER,
    publisher          TEXT,
    publisher_username TEXT
);
CREATE TABLE sessions (
    client_id         TEXT    PRIMARY KEY,
    expiry_interval   INTEGER NOT NULL,
    disconnected_unix INTEGER,
    username          TEXT,
    listener          INTEGER NOT NULL,
    protocol          INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE wills (
    client_id  TEXT    PRIMARY KEY,
    message_id INTEGER NOT NULL,
    delay      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX wills_by_message ON wills (message_id);
CREATE TABLE subscriptions (
    client_id  TEXT    NOT NULL,
    filter     TEXT    NOT NULL,
    options    INTEGER NOT NULL,
    identifier INTEGER,
    PRIMARY KEY (client_id, filter)
) WITHOUT ROWID;
CREATE TABLE deliveries (
    client_id        TEXT    NOT NULL,
    seq              INTEGER NOT NULL,
    message_id       INTEGER NOT NULL,
    qos              INTEGER NOT NULL,
    retain           INTEGER NOT NULL,
    packet_id        INTEGER,
    state            INTEGER NOT NULL,
    subscription_ids BLOB    NOT NULL,
    PRIMARY KEY (client_id, seq)
) WITHOUT ROWID;
CREATE INDEX deliveries_by_message ON deliveries (message_id);
CREATE TABLE inbound_qos2 (
    client_id TEXT    NOT NULL,
    packet_id INTEGER NOT NULL,
    PRIMARY KEY (client_id, packet_id)
) WITHOUT ROWID;
CREATE TABLE retained (
    topic      TEXT    PRIMARY KEY,
    message_id INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX retained_by_message ON retained (message_id);
";

/// Connection settings, before anything is read.
///
/// - `locking_mode = EXCLUSIVE`: the writer is the only connection, ever; holding the lock
///   for the connection's life keeps a second broker off the same file (it gets
///   [`StoreError::Locked`]) and lets SQLite keep the WAL index in memory (no `-shm` file).
/// - WAL: a commit appends to the `-wal` file, one `write` per page, no rewriting of the
///   database in place; after `kill -9` the next open replays the complete commits and
///   ignores a torn last one (each frame is checksummed).
/// - `synchronous`: FULL fsyncs the WAL at every commit; NORMAL leaves the commit in the
///   OS page cache (durable against a process crash, not against power loss).
pub(super) fn configure(conn: &Connection, durability: Durability) -> rusqlite::Result<()> {
    conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
            Some(format!(
                "cannot switch to WAL mode (journal mode is {mode})"
            )),
        ));
    }
    let synchronous = match durability {
        Durability::Fsync => "FULL",
        Durability::Os => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", synchronous)?;
    // Checkpoint every ~16 MiB of WAL rather than 4 MiB: fewer checkpoints (each one
    // fsyncs the database file) at a high message rate; the WAL is cut back to 64 MiB at
    // most after a checkpoint.
    conn.pragma_update(None, "wal_autocheckpoint", 4096)?;
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
    // 16 MiB of page cache: the hot pages (the ends of the message and delivery b-trees)
    // stay in memory between batches.
    conn.pragma_update(None, "cache_size", -16 * 1024)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // Values the broker handed over are stored as given: no foreign keys to check, no
    // triggers to run.
    conn.pragma_update(None, "foreign_keys", false)?;
    conn.pragma_update(None, "trusted_schema", false)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Creates the tables of a new store, checks the format of an existing one and migrates
/// an older one.
pub(super) fn prepare(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let sql = |e| StoreError::sqlite(path, e);
    let application_id: i64 = conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .map_err(sql)?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(sql)?;
    let objects: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
        .map_err(sql)?;

    if version == 0 && application_id == 0 {
        if objects != 0 {
            return Err(StoreError::Foreign {
                path: path.to_owned(),
                reason: "an SQLite database with tables but no Midge format number".into(),
            });
        }
        let tx = conn.transaction().map_err(sql)?;
        tx.execute_batch(TABLES_V1).map_err(sql)?;
        tx.pragma_update(None, "application_id", APPLICATION_ID)
            .map_err(sql)?;
        tx.pragma_update(None, "user_version", FORMAT)
            .map_err(sql)?;
        tx.commit().map_err(sql)?;
        return Ok(());
    }
    if application_id != APPLICATION_ID {
        return Err(StoreError::Foreign {
            path: path.to_owned(),
            reason: format!("SQLite application id {application_id:#x}, not Midge's"),
        });
    }
    if version > FORMAT {
        return Err(StoreError::NewerFormat {
            path: path.to_owned(),
            found: version,
            supported: FORMAT,
        });
    }
    if version < 1 {
        return Err(StoreError::Corrupt {
            path: path.to_owned(),
            reason: format!("format number {version} was never written by Midge"),
        });
    }
    if version < FORMAT {
        migrate(conn, path, version)?;
    }
    Ok(())
}

/// The steps between formats: `MIGRATIONS[i]` takes format `i + 1` to `i + 2`. Empty
/// while format 1 is the only one.
const MIGRATIONS: &[&str] = &[];

/// Steps an older store up to [`FORMAT`], all in one transaction so that an interrupted
/// migration leaves the old format intact.
fn migrate(conn: &mut Connection, path: &Path, from: i64) -> Result<(), StoreError> {
    let sql = |e| StoreError::sqlite(path, e);
    let tx = conn.transaction().map_err(sql)?;
    for step in from..FORMAT {
        let migration = usize::try_from(step - 1)
            .ok()
            .and_then(|i| MIGRATIONS.get(i))
            .ok_or_else(|| StoreError::Corrupt {
                path: path.to_owned(),
                reason: format!("no migration from format {step}"),
            })?;
        tx.execute_batch(migration).map_err(sql)?;
    }
    tx.pragma_update(None, "user_version", FORMAT)
        .map_err(sql)?;
    tx.commit().map_err(sql)
}

/// `PRAGMA quick_check`: every page and b-tree is read and checked (not the index
/// contents, which `integrity_check` would add at several times the cost). Reports the
/// first problems found.
pub(super) fn quick_check(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let mut problems = Vec::new();
    let mut stmt = conn
        .prepare("PRAGMA quick_check(5)")
        .map_err(|e| StoreError::sqlite(path, e))?;
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(|e| StoreError::sqlite(path, e))?;
    for row in rows {
        let line = row.map_err(|e| StoreError::sqlite(path, e))?;
        if line != "ok" {
            problems.push(line);
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Corrupt {
            path: path.to_owned(),
            reason: problems.join("; "),
        })
    }
}
