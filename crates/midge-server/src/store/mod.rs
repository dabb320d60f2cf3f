//! Persistence: sessions, subscriptions, retained messages, queued and in-flight QoS 1/2
//! messages and wills, kept in one SQLite file so that a restarted broker (after a clean
//! stop, `kill -9` or, with [`Durability::Fsync`], a power loss) carries on where it was.
//!
//! The broker describes each change as an [`Op`] and submits it; [`Store::submit`] only
//! queues it and returns a ticket. One writer thread applies everything queued in one
//! transaction per batch (see `writer.rs`), and [`Store::wait`] resolves once the ticket's
//! batch is committed — that is when the broker may acknowledge a PUBLISH. Everything is
//! read back once, at [`Store::open`], as a [`Snapshot`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), midge_server::store::StoreError> {
//! use midge_server::store::{Durability, Op, Store};
//! let (store, snapshot) = Store::open("midge.db".as_ref(), Durability::Os)?;
//! let ticket = store.submit(Op::ClearRetained { topic: "a/b".into() });
//! store.wait(ticket).await; // now it is in the file
//! store.close()?;
//! # Ok(()) }
//! ```

mod load;
mod ops;
mod schema;
mod writer;

#[cfg(test)]
mod tests;

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::Mutex;
use rusqlite::{Connection, ErrorCode, OpenFlags};

pub use ops::{
    Op, Snapshot, StoredDelivery, StoredMessage, StoredSession, StoredSubscription, StoredWill,
};
pub use schema::FORMAT;

use writer::Shared;

/// When a commit counts as done, i.e. when [`Store::wait`] resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// After the commit is on disk (`synchronous = FULL`: the WAL is fsynced at every
    /// commit). Survives a power loss or an OS crash; costs one fsync per batch.
    Fsync,
    /// After the commit reached the operating system (`synchronous = NORMAL` in WAL mode:
    /// written, not fsynced). Survives `kill -9` and any crash of the broker, not a power
    /// loss or an OS crash, after which the last commits may be missing (the file stays
    /// consistent).
    #[default]
    Os,
}

/// Why the store cannot be opened or closed. Each message names the file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("persistence file {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("persistence file {}: {source}", .path.display())]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("persistence file {} is corrupt: {reason}", .path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "persistence file {} was written by a newer Midge (format {found}, this one reads {supported})",
        .path.display()
    )]
    NewerFormat {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("persistence file {} is not a Midge persistence file: {reason}", .path.display())]
    Foreign { path: PathBuf, reason: String },
    #[error(
        "persistence file {} is in use by another process (is another broker running on it?)",
        .path.display()
    )]
    Locked { path: PathBuf },
    #[error("persistence file {}: the writer thread stopped: {reason}", .path.display())]
    Writer { path: PathBuf, reason: String },
}

impl StoreError {
    /// Sorts an SQLite error into what it means for the file.
    pub(crate) fn sqlite(path: &Path, source: rusqlite::Error) -> StoreError {
        let path = path.to_owned();
        match &source {
            rusqlite::Error::SqliteFailure(e, _) => match e.code {
                ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt => StoreError::Corrupt {
                    path,
                    reason: source.to_string(),
                },
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => StoreError::Locked { path },
                _ => StoreError::Sqlite { path, source },
            },
            // A value of the wrong type or out of range where the tables say otherwise.
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::IntegralValueOutOfRange(..)
            | rusqlite::Error::InvalidColumnType(..) => StoreError::Corrupt {
                path,
                reason: format!("unexpected value: {source}"),
            },
            _ => StoreError::Sqlite { path, source },
        }
    }
}

/// The handle to an open store: cheap to clone, usable from any thread. The writer stops
/// (after committing what was queued) at [`Store::close`] or when the last clone is
/// dropped.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Handle>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .field("committed", &self.committed())
            .finish_non_exhaustive()
    }
}

struct Handle {
    shared: Arc<Shared>,
    /// The writer thread, until `close` (or the drop of the last handle) joins it.
    thread: Mutex<Option<JoinHandle<Result<(), StoreError>>>>,
    path: PathBuf,
}

impl Store {
    /// Opens (or creates) the store at `path` and reads it back.
    ///
    /// The file and its `-wal` are created with mode 0600 (an existing file with a wider
    /// mode is narrowed to 0600). Fails with a [`StoreError`] naming the file when it is
    /// not an SQLite file, fails SQLite's `quick_check`, was written by a newer Midge,
    /// belongs to something else, or is in use by another broker. Blocks for the reading:
    /// call it before serving, or from `spawn_blocking`.
    pub fn open(path: &Path, durability: Durability) -> Result<(Store, Snapshot), StoreError> {
        create_private(path)?;
        check_length(path)?;
        let sql = |e| StoreError::sqlite(path, e);
        let mut conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql)?;
        schema::configure(&conn, durability).map_err(sql)?;
        schema::prepare(&mut conn, path)?;
        schema::quick_check(&conn, path)?;
        let snapshot = load::load(&mut conn, path)?;
        // The WAL exists now (the first write created it with the database's mode); an
        // older one left by another umask is narrowed too.
        narrow_mode(&wal_path(path))?;

        let (shared, committed_tx) = Shared::new();
        let writer_shared = Arc::clone(&shared);
        let writer_path = path.to_owned();
        let thread = std::thread::Builder::new()
            .name("midge-store".into())
            .spawn(move || writer::run(conn, writer_path, writer_shared, committed_tx))
            .map_err(|source| StoreError::Io {
                path: path.to_owned(),
                source,
            })?;
        let store = Store {
            inner: Arc::new(Handle {
                shared,
                thread: Mutex::new(Some(thread)),
                path: path.to_owned(),
            }),
        };
        Ok((store, snapshot))
    }

    /// Queues one operation and returns its ticket. Never waits for I/O (a short lock
    /// around a `Vec::push`), so it is fine on an async task. Operations are applied in
    /// the order of their tickets.
    pub fn submit(&self, op: Op) -> u64 {
        self.inner.shared.submit(std::iter::once(op))
    }

    /// Queues several operations under one ticket; they are committed in the same
    /// transaction (all or none). With no operations, returns the last ticket handed out.
    pub fn submit_all(&self, ops: impl IntoIterator<Item = Op>) -> u64 {
        // Collected first: the caller's iterator may itself submit (and the queue's lock
        // is not reentrant).
        let ops: Vec<Op> = ops.into_iter().collect();
        self.inner.shared.submit(ops.into_iter())
    }

    /// The highest ticket committed: every operation with this ticket or a lower one is in
    /// the file (as durably as the [`Durability`] says).
    pub fn committed(&self) -> u64 {
        self.inner.shared.committed.load(Ordering::Acquire)
    }

    /// Resolves once `ticket` is committed. A ticket whose batch cannot be written (the
    /// writer keeps retrying it) or that was submitted after `close` never resolves: the
    /// broker must not acknowledge what is not stored.
    pub async fn wait(&self, ticket: u64) {
        if self.committed() >= ticket {
            return;
        }
        let mut rx = self.inner.shared.committed_rx.clone();
        if rx.wait_for(|&c| c >= ticket).await.is_err() {
            // The writer stopped before committing it.
            std::future::pending::<()>().await;
        }
    }

    /// The file this store writes.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Commits everything submitted so far (from every clone), stops the writer and
    /// checkpoints the WAL into the database file. Blocks until then: call it at clean
    /// shutdown after the broker stopped submitting (from `spawn_blocking` in async code).
    /// Operations submitted through other clones afterwards are dropped.
    pub fn close(self) -> Result<(), StoreError> {
        self.inner.stop()
    }
}

impl Handle {
    fn stop(&self) -> Result<(), StoreError> {
        self.shared.shut_down();
        let Some(thread) = self.thread.lock().take() else {
            return Ok(()); // closed already
        };
        thread.join().unwrap_or_else(|_| {
            Err(StoreError::Writer {
                path: self.path.clone(),
                reason: "it panicked".into(),
            })
        })
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::error!("{e}");
        }
    }
}

fn wal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Creates the database file with mode 0600 before SQLite opens it (SQLite creates its
/// `-wal` with the database file's mode), or narrows an existing one.
fn create_private(path: &Path) -> Result<(), StoreError> {
    let io = |source| StoreError::Io {
        path: path.to_owned(),
        source,
    };
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    // SQLite takes a file shorter than its 100-byte header for a new, empty database;
    // a store is never shorter than one 512-byte page once written, so such a file is
    // one that lost its contents, and opening it would silently start afresh.
    let len = fs::metadata(path).map_err(io)?.len();
    if (1..512).contains(&len) {
        return Err(StoreError::Corrupt {
            path: path.to_owned(),
            reason: format!("truncated to {len} bytes"),
        });
    }
    narrow_mode(path)
}

/// Refuses a database file shorter than its own header says, when no WAL could hold the
/// missing pages. SQLite reads the pages past the end of a cut file as zeros, and a cut
/// inside the cell content of a page (which fills from the page's end) is not always
/// caught by `quick_check`: the file would open with values silently zeroed. A cleanly
/// closed store has no WAL (or an empty one) and its file holds every page its header
/// counts; with a non-empty WAL the file may legitimately be short (a checkpoint
/// interrupted by a crash, finished from the WAL at open), so SQLite is left to judge.
fn check_length(path: &Path) -> Result<(), StoreError> {
    let io = |source| StoreError::Io {
        path: path.to_owned(),
        source,
    };
    match fs::metadata(wal_path(path)) {
        Ok(meta) if meta.len() > 0 => return Ok(()),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(StoreError::Io {
                path: wal_path(path),
                source,
            })
        }
    }
    let mut header = [0u8; 100];
    let mut file = fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    if len < 100 {
        return Ok(()); // empty (a new store); shorter ones are refused by create_private
    }
    io::Read::read_exact(&mut file, &mut header).map_err(io)?;
    if &header[..16] != b"SQLite format 3\0" {
        return Ok(()); // not SQLite: SQLite's own error says so
    }
    let be32 = |at: usize| {
        u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65536,
        n => u64::from(n),
    };
    // The page count is valid only when the change counter matches "version valid for"
    // (SQLite before 3.7.0 did not keep it).
    let pages = u64::from(be32(28));
    if be32(24) != be32(92) || pages == 0 {
        return Ok(());
    }
    let want = pages * page_size;
    if len < want {
        return Err(StoreError::Corrupt {
            path: path.to_owned(),
            reason: format!(
                "truncated: {len} bytes where its header counts {pages} pages of {page_size} bytes ({want} bytes)"
            ),
        });
    }
    Ok(())
}

/// Takes group and other permissions off an existing file.
fn narrow_mode(path: &Path) -> Result<(), StoreError> {
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(StoreError::Io {
                path: path.to_owned(),
                source,
            })
        }
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(
            "persistence file {}: mode {mode:o} narrowed to 600",
            path.display()
        );
        fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o700)).map_err(|source| {
            StoreError::Io {
                path: path.to_owned(),
                source,
            }
        })?;
    }
    Ok(())
}
