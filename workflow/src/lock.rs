//! One database, one worker: an exclusive lock on a sidecar file
//! (`<db>.lock`). The kernel releases it when the holding process dies, so a
//! lock left by a killed process never blocks the next one.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Held for as long as the worker runs; dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct WorkerLock {
    file: File,
    holder: String,
    /// Whether the previous worker ended with a clean shutdown (it said so
    /// in the lock file before releasing it).
    pub previous_end_clean: bool,
}

/// What a worker writes into its lock file when it shuts down cleanly.
const CLEAN_END: &str = " (shut down cleanly)";

impl WorkerLock {
    /// Records a clean end, read by the next worker. Best effort.
    pub(crate) fn mark_clean_end(&mut self) {
        let text = format!("{}{CLEAN_END}", self.holder);
        let written = self
            .file
            .set_len(0)
            .and_then(|()| self.file.seek(SeekFrom::Start(0)))
            .and_then(|_| self.file.write_all(text.as_bytes()))
            .and_then(|()| self.file.sync_all());
        if let Err(e) = written {
            tracing::warn!(error = %e, "cannot record the clean shutdown in the lock file");
        }
    }
}

/// The sidecar lock file of a database.
pub(crate) fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Whether the last worker on `db` recorded a clean end in the lock file,
/// read without taking the lock; `None` without a lock file. Blocking.
pub(crate) fn previous_end_clean(db: &Path) -> Option<bool> {
    let text = std::fs::read_to_string(lock_path(db)).ok()?;
    Some(text.ends_with(CLEAN_END))
}

/// Takes the worker lock of `db`, or says who holds it. Blocking (file I/O).
pub(crate) fn acquire(db: &Path) -> Result<WorkerLock> {
    let path = lock_path(db);
    let io = |source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {
            let mut previous = String::new();
            let _ = file.read_to_string(&mut previous);
            // A missing lock file means a new database: nothing to recover.
            let previous_end_clean = previous.is_empty() || previous.ends_with(CLEAN_END);
            let holder = format!(
                "process {} on {}",
                std::process::id(),
                std::env::args()
                    .next()
                    .unwrap_or_else(|| "an unknown program".into())
            );
            file.set_len(0).map_err(io)?;
            file.seek(SeekFrom::Start(0)).map_err(io)?;
            file.write_all(holder.as_bytes()).map_err(io)?;
            file.flush().map_err(io)?;
            Ok(WorkerLock {
                file,
                holder,
                previous_end_clean,
            })
        }
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            Err(Error::Locked {
                path: db.display().to_string(),
                holder: if holder.is_empty() {
                    "another process".to_owned()
                } else {
                    holder.to_owned()
                },
            })
        }
        Err(TryLockError::Error(source)) => Err(io(source)),
    }
}
