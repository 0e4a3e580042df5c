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
    _file: File,
}

/// The sidecar lock file of a database.
pub(crate) fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
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
            Ok(WorkerLock { _file: file })
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
