//! The SQLite store: one database file, WAL, one writer thread with group commit, pooled readers.
//!
//! Every write is a job run inside a savepoint of the writer's current transaction; jobs queued
//! together share one `COMMIT` (one fsync), and each caller hears back only after that commit.

mod api_ops;
mod gateway_ops;
mod migrations;
mod ops;
mod pool;
mod sync;

pub use api_ops::*;
pub use gateway_ops::*;
pub use ops::*;

use pool::ReaderPool;
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// How many queued jobs the writer folds into one transaction at most.
const MAX_BATCH: usize = 1024;
const READERS: usize = 4;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(String),
    #[error("the store is closed")]
    Closed,
    #[error("duplicate trx {0}")]
    Duplicate(crate::chain::TrxId),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error(
        "database {path} was written by a newer rumgate (schema {found}, this build knows {known})"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    IdempotencyMismatch(String),
    /// The trx was pending here once and rejected; it is not admitted again.
    #[error("trx {id} was rejected before: {reason}")]
    PreviouslyRejected {
        id: crate::chain::TrxId,
        reason: String,
    },
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(e.to_string())
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

type Reply = Box<dyn FnOnce(Result<()>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> Reply + Send>;

enum WriterMsg {
    Job(Job),
    Close(oneshot::Sender<()>),
}

/// Cheap to clone; all clones share the writer and the reader pool.
#[derive(Clone)]
pub struct Store {
    writer: mpsc::Sender<WriterMsg>,
    readers: Arc<ReaderPool>,
    path: Arc<PathBuf>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.path.display())
    }
}

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA cache_size = -8000;",
    )?;
    Ok(())
}

impl Store {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Sqlite(e.to_string()))?;
        }
        // The database holds group keys: create it owner-only. SQLite gives the -wal and -shm
        // files the same permissions as the database file.
        {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| StoreError::Sqlite(format!("{}: {e}", path.display())))?;
        }
        let mut conn = Connection::open(path)?;
        configure(&conn)?;
        migrations::apply(&mut conn, path)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let r = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            r.busy_timeout(std::time::Duration::from_secs(10))?;
            r.execute_batch("PRAGMA cache_size = -4000;")?;
            readers.push(r);
        }
        let (tx, rx) = mpsc::channel(4096);
        std::thread::Builder::new()
            .name("rumgate-store-writer".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(|e| StoreError::Sqlite(format!("cannot start writer thread: {e}")))?;
        Ok(Store {
            writer: tx,
            readers: Arc::new(ReaderPool::new(readers)),
            path: Arc::new(path.to_path_buf()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the writer connection inside a savepoint; resolves after the commit is durable.
    pub async fn write<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn: &Connection| {
            let result = in_savepoint(conn, f);
            Box::new(move |commit: Result<()>| {
                let _ = tx.send(commit.and(result));
            })
        });
        self.writer
            .send(WriterMsg::Job(job))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `f` on a pooled read-only connection on the blocking thread pool.
    pub async fn read<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        self.readers.run(f).await
    }

    /// Finishes queued writes and stops the writer; later writes fail with `Closed`.
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.writer.send(WriterMsg::Close(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

fn in_savepoint<R>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
    conn.execute_batch("SAVEPOINT job")?;
    let result = f(conn);
    let end = if result.is_ok() {
        conn.execute_batch("RELEASE job")
    } else {
        conn.execute_batch("ROLLBACK TO job; RELEASE job")
    };
    match (result, end) {
        (Ok(r), Ok(())) => Ok(r),
        (Err(e), _) => Err(e),
        (Ok(_), Err(e)) => Err(e.into()),
    }
}

fn writer_loop(conn: Connection, mut rx: mpsc::Receiver<WriterMsg>) {
    let mut closing = None;
    while closing.is_none() {
        let Some(first) = rx.blocking_recv() else {
            break;
        };
        let mut jobs = Vec::new();
        match first {
            WriterMsg::Job(j) => jobs.push(j),
            WriterMsg::Close(done) => closing = Some(done),
        }
        while closing.is_none() && jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(WriterMsg::Job(j)) => jobs.push(j),
                Ok(WriterMsg::Close(done)) => closing = Some(done),
                Err(_) => break,
            }
        }
        if jobs.is_empty() {
            continue;
        }
        let begin = conn.execute_batch("BEGIN IMMEDIATE");
        if let Err(e) = begin {
            let err = StoreError::from(e);
            for job in jobs {
                // The job never ran; answer its caller with the failure.
                job_failed(job, &conn, err.clone());
            }
            continue;
        }
        let replies: Vec<Reply> = jobs.into_iter().map(|job| job(&conn)).collect();
        let commit = conn.execute_batch("COMMIT").map_err(StoreError::from);
        if commit.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
            tracing::error!(error = ?commit, "store commit failed; callers are told");
        }
        for reply in replies {
            reply(commit.clone());
        }
    }
    let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
    drop(conn);
    if let Some(done) = closing {
        let _ = done.send(());
    }
}

/// Answers a job that could not run because its transaction did not start.
fn job_failed(job: Job, conn: &Connection, err: StoreError) {
    // Running a job outside a transaction would autocommit, so we run it inside a savepoint we
    // then roll back, only to obtain its reply handle.
    if conn.execute_batch("SAVEPOINT dead").is_ok() {
        let reply = job(conn);
        let _ = conn.execute_batch("ROLLBACK TO dead; RELEASE dead");
        reply(Err(err));
    }
}
