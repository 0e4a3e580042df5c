//! One database, one worker: exclusive locks that the kernel releases when
//! the holding process dies, so a lock left by a killed process never blocks
//! the next one.
//!
//! Two locks, because a file has many names. The sidecar `<db>.lock`, named
//! after the database's canonical path (symlinks, `..` and relative paths
//! resolved), holds the holder's name and the record of a clean end. The
//! database file itself is locked too (`flock`, by inode), which a hard link
//! or a bind mount, whose paths differ, cannot get around. SQLite locks the
//! file with `fcntl` byte ranges, which Linux keeps apart from `flock`.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::wal::{MARK_LEN, Mark};
use crate::error::{Error, Result};

/// Held for as long as the worker runs; dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct WorkerLock {
    file: File,
    /// The database file, locked by inode; closed (and so released) after
    /// every connection of this worker is closed.
    _db_file: File,
    db: PathBuf,
    holder: String,
    /// Whether the previous worker ended with a clean shutdown (it said so
    /// in the lock file before releasing it).
    pub previous_end_clean: bool,
    /// What the previous worker last recorded of the WAL.
    pub previous_mark: Mark,
}

/// Splits a lock file's text into the journal's mark (its first line, when
/// a worker wrote one) and the rest: the holder, and after a clean end the
/// file's identity.
pub(crate) fn split_mark(text: &str) -> (Option<Mark>, &str) {
    match text.split_once('\n') {
        Some((first, rest)) => match Mark::parse(first) {
            Some(mark) => (Some(mark), rest),
            None => (None, text),
        },
        None => (None, text),
    }
}

/// The mark a lock file records, read without taking the lock. Blocking.
pub(crate) fn read_mark(db: &Path) -> Option<Mark> {
    let text = std::fs::read_to_string(lock_path(db)).ok()?;
    split_mark(&text).0
}

/// What a worker appends to the first line of its lock file when it shuts
/// down cleanly; the second line identifies the database file as it left it.
const CLEAN_END: &str = " (shut down cleanly)";

/// The database file's size and modification time, which change with any
/// write (or a restored backup); `None` if it cannot be read.
fn identity(db: &Path) -> Option<String> {
    let meta = std::fs::metadata(db).ok()?;
    let modified = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    Some(format!(
        "{} bytes, modified {} ns",
        meta.len(),
        modified.as_nanos()
    ))
}

/// Whether a lock file's text records a clean end.
fn ended_clean(text: &str) -> bool {
    text.lines().next().is_some_and(|l| l.ends_with(CLEAN_END))
}

impl WorkerLock {
    /// Records a clean end, read by the next worker; call it once every
    /// connection of this worker is closed. Best effort.
    /// A second handle on the lock file, for the keeper of the mark.
    pub(crate) fn mark_file(&self) -> std::io::Result<File> {
        self.file.try_clone()
    }

    pub(crate) fn mark_clean_end(&mut self) {
        let file = identity(&self.db).unwrap_or_default();
        // Every connection is closed: the log is in the main file.
        let mark = Mark::default().line();
        let text = format!("{mark}{}{CLEAN_END}\n{file}", self.holder);
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

/// The sidecar lock file of a database: beside the file its path resolves
/// to, so that every path to it (a symlink, a relative path, `..`) names the
/// same sidecar. A file that does not exist yet resolves through its
/// directory.
pub(crate) fn lock_path(db: &Path) -> PathBuf {
    let mut name = resolved_path(db).into_os_string();
    name.push(".lock");
    PathBuf::from(name)
}

/// `db` with symlinks, `..` and a relative start resolved (through its
/// directory when the file does not exist yet).
pub(crate) fn resolved_path(db: &Path) -> PathBuf {
    std::fs::canonicalize(db).unwrap_or_else(|_| {
        let parent = match db.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        match (std::fs::canonicalize(parent), db.file_name()) {
            (Ok(dir), Some(name)) => dir.join(name),
            _ => db.to_owned(),
        }
    })
}

/// Whether the last worker on `db` recorded a clean end in the lock file and
/// the file is as it left it (same size and modification time), read
/// without taking the lock. Blocking.
pub(crate) fn unchanged_since_clean_end(db: &Path) -> bool {
    let Ok(whole) = std::fs::read_to_string(lock_path(db)) else {
        return false;
    };
    let (_, text) = split_mark(&whole);
    ended_clean(text)
        && text
            .lines()
            .nth(1)
            .is_some_and(|l| Some(l) == identity(db).as_deref())
}

/// Takes the worker lock of `db`, or says who holds it. `fresh` when the
/// database is new (empty or missing): only then does a missing lock file
/// mean there is nothing to recover. Blocking (file I/O).
pub(crate) fn acquire(db: &Path, fresh: bool) -> Result<WorkerLock> {
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
            let mut whole = String::new();
            let _ = file.read_to_string(&mut whole);
            let (mark, previous) = split_mark(&whole);
            // A new database has nothing to recover; an existing one whose
            // lock file is missing ended in a way nobody recorded.
            let previous_end_clean = ended_clean(previous) || (fresh && previous.is_empty());
            // Kept until this worker's first commit replaces it: it still
            // describes the WAL as the previous worker left it.
            let previous_mark = mark.unwrap_or_default();
            let db_file = lock_database_file(db)?;
            let holder = format!(
                "process {} on {}",
                std::process::id(),
                std::env::args()
                    .next()
                    .unwrap_or_else(|| "an unknown program".into())
            );
            file.set_len(0).map_err(io)?;
            file.seek(SeekFrom::Start(0)).map_err(io)?;
            let text = format!("{}{holder}", previous_mark.line());
            debug_assert_eq!(text.find(&holder), Some(MARK_LEN));
            file.write_all(text.as_bytes()).map_err(io)?;
            file.flush().map_err(io)?;
            Ok(WorkerLock {
                file,
                _db_file: db_file,
                db: db.to_owned(),
                holder,
                previous_end_clean,
                previous_mark,
            })
        }
        Err(TryLockError::WouldBlock) => {
            let mut whole = String::new();
            let _ = file.read_to_string(&mut whole);
            let holder = split_mark(&whole)
                .1
                .lines()
                .next()
                .unwrap_or_default()
                .trim();
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

/// Locks the database file itself (creating it empty if it does not exist,
/// which SQLite reads as a new database): the lock every path to the file
/// meets, whatever the sidecar's name.
fn lock_database_file(db: &Path) -> Result<File> {
    let io = |source| Error::Io {
        path: db.display().to_string(),
        source,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(db)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(Error::Locked {
            path: db.display().to_string(),
            holder: "another worker process, which opened the same file through another path (a hard link or a bind mount)".to_owned(),
        }),
        Err(TryLockError::Error(source)) => Err(io(source)),
    }
}
