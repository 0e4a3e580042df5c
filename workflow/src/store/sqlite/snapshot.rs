//! Reading a database in a directory this process cannot write.
//!
//! SQLite reads a WAL-mode file through its `-shm` index, which it creates
//! beside the file; in a read-only directory it cannot, and every read
//! fails. Opened with `immutable=1`, SQLite reads the main file alone and
//! creates nothing. That is exact when no `-wal` file holds content (the
//! last worker shut down cleanly, or the file is in rollback mode), and
//! only then: content in a `-wal` would be missed, so the open is refused.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::schema::{self, Probe, READS_SINCE, SCHEMA_VERSION};
use crate::error::{Error, Result};

/// Two read-only connections (the writer thread's and the reader) on `path`
/// as it is on disk. Blocking.
pub(super) fn open(path: &Path, busy_timeout: Duration) -> Result<(Connection, Connection)> {
    let shown = path.display().to_string();
    if let Probe::Fresh = schema::probe(path)? {
        return Err(Error::NoDatabase { path: shown });
    }
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let wal = PathBuf::from(wal);
    if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.display().to_string(),
            _ => ".".to_owned(),
        };
        return Err(Error::SnapshotRefused {
            path: shown,
            reason: format!(
                "`{}` holds changes not yet in the database (a worker is running, or stopped without shutting down), and SQLite cannot read them without creating files in `{dir}`, which is not writable; run the command where that directory can be written, or as a user who can write it",
                wal.display()
            ),
        });
    }
    if let Some(mark) = super::lock::read_mark(path) {
        schema::check_journal(path, &mark)?;
    }
    let connect = || -> Result<Connection> {
        let conn = Connection::open_with_flags(
            uri(path)?,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_URI
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(busy_timeout)?;
        Ok(conn)
    };
    let reader = connect()?;
    // The schema parses, and is the one this build reads.
    reader.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
        r.get::<_, i64>(0)
    })?;
    let version: i64 = reader.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if !(READS_SINCE..=SCHEMA_VERSION).contains(&version) {
        return Err(Error::SchemaMismatch {
            path: shown,
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    let other = connect()?;
    schema::read_as_current(&other, version)?;
    schema::read_as_current(&reader, version)?;
    Ok((other, reader))
}

/// `file:/abs/path?immutable=1` (read-only besides: SQLite opens an
/// immutable file read-only), the path percent-encoded so that a `?`,
/// `#` or `%` in it stays part of the name.
pub(super) fn uri(path: &Path) -> Result<String> {
    let absolute = std::path::absolute(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    let Some(text) = absolute.to_str() else {
        return Err(Error::SnapshotRefused {
            path: path.display().to_string(),
            reason: "its path is not valid UTF-8".into(),
        });
    };
    let mut out = String::from("file:");
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"/-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out.push_str("?immutable=1");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_encoded_in_the_uri() {
        let u = uri(Path::new("/tmp/a b?c#d%e.db")).unwrap();
        assert_eq!(u, "file:/tmp/a%20b%3Fc%23d%25e.db?immutable=1");
    }
}
