//! Opening a database file safely, and the schema with its migrations.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::lock::{self, WorkerLock};
use super::wal::{self, Marker};
use crate::error::{Error, Result};
use crate::store::{Durability, FileOptions, IntegrityCheck};

/// `PRAGMA application_id` of our files: "WFLW".
pub(crate) const APPLICATION_ID: i32 = 0x5746_4C57;

/// The schema version this build writes (`PRAGMA user_version`).
///
/// 1: the first release. 2: journal entries of kind `patch` (the markers
/// of `Context::patched`), the type of each journaled value
/// (`step_executions.value_type`, named in `value_types`), and the app
/// version and the input and output types of each execution
/// (`workflow_executions`). 3: messages and events (`messages`, `events`,
/// entries of kind `recv` and `event`, the statuses `waiting` of
/// executions and entries).
pub(crate) const SCHEMA_VERSION: i64 = 3;

/// The oldest schema version an admin or snapshot open reads without
/// migrating (they never migrate: a worker of an older build may still run
/// on the file). Such a connection reads an older file through
/// [`read_as_current`].
pub(crate) const READS_SINCE: i64 = 1;

/// Lets a connection that never migrates read a file of an older schema
/// version with this build's queries: temporary views (which shadow the
/// file's tables by name, on this connection only, and write nothing to
/// the file) add the columns later versions added, with the values their
/// migrations give old rows. Writing through them fails: such a
/// connection writes only admin requests.
pub(super) fn read_as_current(conn: &Connection, version: i64) -> Result<()> {
    if version < 2 {
        conn.execute_batch(
            "CREATE TEMP VIEW workflow_executions AS
                 SELECT rowid AS rowid, *, '' AS app_version, NULL AS input_type,
                        NULL AS output_type, NULL AS deadline_at, NULL AS parent_id
                 FROM main.workflow_executions;
             CREATE TEMP VIEW step_executions AS
                 SELECT *, NULL AS value_type FROM main.step_executions;
             CREATE TEMP TABLE value_types (hash INTEGER PRIMARY KEY, name TEXT NOT NULL);",
        )?;
    }
    if version == 2 {
        conn.execute_batch(
            "CREATE TEMP VIEW workflow_executions AS
                 SELECT rowid AS rowid, *, NULL AS deadline_at, NULL AS parent_id
                 FROM main.workflow_executions;",
        )?;
    }
    if version < 3 {
        // No message or event was ever written to such a file.
        conn.execute_batch(
            "CREATE TEMP TABLE messages (
                 id INTEGER PRIMARY KEY, execution_id TEXT NOT NULL, topic TEXT NOT NULL,
                 payload BLOB, value_type INTEGER, idempotency_key TEXT,
                 sent_at INTEGER NOT NULL, taken_at INTEGER, taken_position INTEGER);
             CREATE TEMP TABLE events (
                 execution_id TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
                 value_type INTEGER, updated_at INTEGER NOT NULL,
                 PRIMARY KEY (execution_id, key));
             CREATE TEMP TABLE stream_entries (
                 execution_id TEXT NOT NULL, key TEXT NOT NULL, seq INTEGER NOT NULL, value BLOB,
                 value_type INTEGER, written_at INTEGER NOT NULL,
                 PRIMARY KEY (execution_id, key, seq));",
        )?;
    }
    Ok(())
}

/// The page size of the files this build creates (SQLite's default is 4096).
///
/// Every commit writes each page it changed to the WAL whole, so a step that
/// appends one journal entry writes at least one page, and more when the
/// entry's leaf splits or rebalances. With 2 KiB pages a trivial step writes
/// 2.9 KB of WAL instead of 5.1 KB (1.42 pages of 2 KiB against 1.24 of
/// 4 KiB, see BENCHMARKS.md), and a batch of many executions' steps, each on
/// its own leaf, half as much. Entries up to about 480 bytes still fit in
/// their leaf. 1 KiB pages write less again but make reading a long journal
/// slower (more pages, more reads), and push entries over about 230 bytes
/// to overflow pages. A file keeps the page size it was created with.
const PAGE_SIZE: i64 = 2048;

/// The `auto_vacuum` mode of the files this build creates.
///
/// Pages freed by pruning (`Runtime::prune`, the builder's `retention`) go
/// to the file's free list, where later writes reuse them; in `INCREMENTAL`
/// mode the prune also gives them back to the file system
/// (`PRAGMA incremental_vacuum`, a bounded number of pages per write). The
/// mode can only be chosen before the first table is created: a file
/// created by an earlier build keeps `NONE`, reuses its free pages and
/// never shrinks, unless rewritten offline (`PRAGMA auto_vacuum =
/// INCREMENTAL; VACUUM;` with no worker running). The mode keeps a pointer
/// map (one page per about 400 pages) that a commit updates when it
/// allocates or moves pages.
const AUTO_VACUUM: &str = "INCREMENTAL";

/// What the header of an existing file says.
pub(super) enum Probe {
    /// No file, or an empty one: ours to create.
    Fresh,
    /// One of ours, at this schema version.
    Ours,
}

/// Reads the 100-byte SQLite header without SQLite, so a foreign or corrupt
/// file is refused before anything (not even a `-wal` or `-shm` file) is created.
pub(super) fn probe(path: &Path) -> Result<Probe> {
    let display = || path.display().to_string();
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Probe::Fresh),
        Err(source) => {
            return Err(Error::Io {
                path: display(),
                source,
            });
        }
    };
    let mut header = Vec::with_capacity(100);
    file.by_ref()
        .take(100)
        .read_to_end(&mut header)
        .map_err(|source| Error::Io {
            path: display(),
            source,
        })?;
    if header.is_empty() {
        return Ok(Probe::Fresh);
    }
    if header.len() < 100 || !header.starts_with(b"SQLite format 3\0") {
        return Err(Error::ForeignDatabase {
            path: display(),
            reason: "it is not a SQLite database".into(),
        });
    }
    let be_i32 = |at: usize| {
        i32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let application_id = be_i32(68);
    let user_version = i64::from(be_i32(60));
    if application_id != APPLICATION_ID {
        return Err(Error::ForeignDatabase {
            path: display(),
            reason: format!(
                "its application_id is {application_id:#x}, not {APPLICATION_ID:#x} (a database of another program)"
            ),
        });
    }
    if user_version > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            path: display(),
            found: user_version,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(Probe::Ours)
}

/// A worker's database file, opened.
#[derive(Debug)]
pub(super) struct Opened {
    pub writer: Connection,
    pub reader: Connection,
    pub lock: WorkerLock,
    /// Keeps the journal's mark; the writer backfills through it at close.
    pub marker: wal::SharedMarker,
}

/// Opens a file for the writer thread and a reader, creating and migrating it
/// as needed. Blocking.
pub(super) fn open_file(path: &Path, options: &FileOptions) -> Result<Opened> {
    let busy_timeout = options.busy_timeout;
    check_path_length(path)?;
    let probe = probe(path)?;
    let fresh = matches!(probe, Probe::Fresh);
    let checked = !fresh && check_before_lock(path, options)?;
    // After the probe, so a foreign file gets no sidecar; before anything is
    // written, so two workers never migrate or run one file at once.
    let lock = lock::acquire(path, fresh)?;
    if !fresh {
        // Before SQLite reads the log: it would drop a damaged tail silently.
        check_journal(path, &lock.previous_mark)?;
    }
    if !fresh
        && options.integrity_check == IntegrityCheck::AfterUncleanEnd
        && !checked
        && !lock.previous_end_clean
    {
        // A worker ended uncleanly between that read and the lock: check
        // now, still before anything touches the file.
        check_integrity(path, busy_timeout, true)?;
    }
    let mut writer = open_writer(path, fresh, options)?;
    let marker = keep_mark(&mut writer, path, &lock, options.durability)?;
    let reader = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    reader.busy_timeout(busy_timeout)?;
    Ok(Opened {
        writer,
        reader,
        lock,
        marker,
    })
}

/// The longest full path SQLite's Unix layer opens (`MAX_PATHNAME`).
const MAX_FULL_PATH: usize = 512;

/// Refuses a path SQLite could not open, before anything (a lock file) is
/// created beside it; SQLite's own message would only say it cannot open it.
pub(super) fn check_path_length(path: &Path) -> Result<()> {
    let full = lock::resolved_path(path);
    let len = full.as_os_str().len();
    if len > MAX_FULL_PATH {
        return Err(Error::PathTooLong {
            path: path.display().to_string(),
            len,
            limit: MAX_FULL_PATH,
        });
    }
    Ok(())
}

/// The integrity check of an existing file, made before its lock is taken
/// (reading only, through a connection that creates nothing), when it is
/// due. Returns whether the whole file was checked. The WAL is checked
/// against the last worker's mark under the lock, once.
fn check_before_lock(path: &Path, options: &FileOptions) -> Result<bool> {
    let full = match options.integrity_check {
        IntegrityCheck::Always => true,
        // Read without the lock, which is taken only once the file is
        // known to be sound; a holder's text reads as an unclean end.
        IntegrityCheck::AfterUncleanEnd => !lock::unchanged_since_clean_end(path),
        IntegrityCheck::Never => false,
    };
    check_integrity(path, options.busy_timeout, full)?;
    Ok(full)
}

/// The write connection: a new file stamped and sized, WAL mode, the
/// schema migrated (and, in a new file, copied into the main file at once),
/// the size cap.
fn open_writer(path: &Path, fresh: bool, options: &FileOptions) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let writer = Connection::open_with_flags(path, flags)?;
    writer.busy_timeout(options.busy_timeout)?;
    if fresh {
        // Before the first write: it fixes the file's page size for good.
        writer.pragma_update(None, "page_size", PAGE_SIZE)?;
        // Also before the first table: see `AUTO_VACUUM`.
        writer.pragma_update(None, "auto_vacuum", AUTO_VACUUM)?;
        // Stamp the file while still in rollback-journal mode, so its header
        // names it ours on disk from the first write on.
        writer.pragma_update(None, "application_id", APPLICATION_ID)?;
    }
    let mode: String = writer.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(mode, "the database could not switch to WAL mode");
    }
    configure(&writer, options.durability)?;
    migrate(&writer, path)?;
    if fresh {
        // The schema goes into the main file at once: a log lost later can
        // never make the file look new (and be created over).
        writer.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    }
    if let Some(bytes) = options.max_size {
        let page_size: i64 = writer.pragma_query_value(None, "page_size", |r| r.get(0))?;
        let pages = bytes.div_ceil(u64::try_from(page_size.max(1)).unwrap_or(4096));
        writer.pragma_update(
            None,
            "max_page_count",
            i64::try_from(pages).unwrap_or(i64::MAX),
        )?;
    }
    Ok(writer)
}

/// Installs the keeper of the WAL's mark on the write connection, writing
/// through a second handle on the lock file.
fn keep_mark(
    writer: &mut Connection,
    path: &Path,
    lock: &WorkerLock,
    durability: Durability,
) -> Result<wal::SharedMarker> {
    let wal_file = match writer.path() {
        Some(p) if !p.is_empty() => std::path::PathBuf::from(format!("{p}-wal")),
        _ => wal::wal_path(path),
    };
    let mark_file = lock.mark_file().map_err(|source| Error::Io {
        path: lock::lock_path(path).display().to_string(),
        source,
    })?;
    let synced = durability == Durability::Full;
    let marker = Marker::new(mark_file, wal_file, lock.previous_mark, synced);
    Ok(wal::install(writer, marker)?)
}

/// A read-only connection that creates nothing beside the file. A plain
/// read-only open of a WAL-mode file creates its `-wal` and `-shm` when they
/// are missing; with neither a log nor its index there is nothing but the
/// main file to read, so it is opened `immutable` (no locks, no sidecars).
/// When both exist (a worker runs, or was killed) the plain open reads the
/// log too and creates nothing. When only the log exists, the index would
/// be created: the main file alone is read, and the log is checked against
/// the worker's mark instead ([`check_journal`]).
fn open_probe(path: &Path) -> Result<Connection> {
    let base = lock::resolved_path(path);
    let sidecar = |suffix: &str| {
        let mut name = base.clone().into_os_string();
        name.push(suffix);
        Path::new(&name).exists()
    };
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if sidecar("-wal") && sidecar("-shm") {
        return Ok(Connection::open_with_flags(path, flags)?);
    }
    let uri = super::snapshot::uri(path)?;
    Ok(Connection::open_with_flags(
        uri,
        flags | OpenFlags::SQLITE_OPEN_URI,
    )?)
}

/// Reads the file read-only before anything writes to it, so a damaged file
/// is refused as it is: its schema always, and with `full` every page
/// (`PRAGMA integrity_check`, about linear in the file's size).
///
/// Not `quick_check`: it checks each b-tree's shape but not that an index
/// holds its table's rows, so an index page whose keys were garbled passes
/// it, and the worker would then write through that index (a lookup by it
/// misses rows, an update corrupts further). `integrity_check` also looks
/// every row up in each index of its table; on a journal of mostly steps
/// (a table without secondary indexes) it took about 1.7 times as long.
fn check_integrity(path: &Path, busy_timeout: Duration, full: bool) -> Result<()> {
    let corrupt = |message: String| Error::Corrupt {
        path: path.display().to_string(),
        message,
    };
    let conn = open_probe(path)?;
    conn.busy_timeout(busy_timeout)?;
    let verdict: rusqlite::Result<String> = if full {
        conn.query_row("PRAGMA integrity_check(1)", [], |r| r.get(0))
    } else {
        // Parses the whole schema, whose pages lead the file.
        conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
            r.get::<_, i64>(0)
        })
        .map(|_| "ok".to_owned())
    };
    match verdict {
        Ok(v) if v == "ok" => Ok(()),
        Ok(v) => Err(corrupt(v)),
        Err(e) => match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase) => {
                Err(corrupt(e.to_string()))
            }
            _ => Err(e.into()),
        },
    }
}

/// Refuses a file whose WAL holds less than its last worker committed
/// there (see [`wal`]). At `synchronous = NORMAL` a power loss may take the
/// last commits by design: that is a warning, not a refusal.
pub(super) fn check_journal(path: &Path, mark: &wal::Mark) -> Result<()> {
    match wal::verify(&wal::wal_path(path), mark) {
        Ok(()) => Ok(()),
        Err(detail) if mark.synced => Err(Error::JournalLost {
            path: path.display().to_string(),
            detail,
        }),
        Err(detail) => {
            tracing::warn!(path = %path.display(), %detail, "the journal lost its last commits (they were not synced to disk)");
            Ok(())
        }
    }
}

/// Opens an existing database as an admin: no worker lock, no migration,
/// nothing run. The schema must be the one this build writes.
pub(super) fn open_admin(path: &Path, busy_timeout: Duration) -> Result<(Connection, Connection)> {
    check_path_length(path)?;
    match probe(path)? {
        Probe::Fresh => {
            return Err(Error::NoDatabase {
                path: path.display().to_string(),
            });
        }
        // An admin open writes nothing but its requests: the schema check only.
        Probe::Ours => {
            if let Some(mark) = lock::read_mark(path) {
                check_journal(path, &mark)?;
            }
            check_integrity(path, busy_timeout, false)?;
        }
    }
    let writer = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    writer.busy_timeout(busy_timeout)?;
    let version: i64 = writer.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if !(READS_SINCE..=SCHEMA_VERSION).contains(&version) {
        return Err(Error::SchemaMismatch {
            path: path.display().to_string(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    configure(&writer, Durability::Full)?;
    // The log belongs to the worker: an admin never copies it into the main
    // file, and its last close leaves it in place.
    writer.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )?;
    writer.pragma_update(None, "wal_autocheckpoint", 0)?;
    let reader = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    reader.busy_timeout(busy_timeout)?;
    read_as_current(&writer, version)?;
    read_as_current(&reader, version)?;
    Ok((writer, reader))
}

/// A private in-memory database for the writer thread.
pub(super) fn open_in_memory() -> Result<Connection> {
    let conn = Connection::open_in_memory()?;
    conn.pragma_update(None, "page_size", PAGE_SIZE)?;
    conn.pragma_update(None, "auto_vacuum", AUTO_VACUUM)?;
    conn.pragma_update(None, "application_id", APPLICATION_ID)?;
    configure(&conn, Durability::Off)?;
    migrate(&conn, Path::new(":memory:"))?;
    Ok(conn)
}

fn configure(conn: &Connection, durability: Durability) -> Result<()> {
    let synchronous = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
        Durability::Off => "OFF",
    };
    conn.pragma_update(None, "synchronous", synchronous)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // The journal's statements are few and hot.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Brings the schema to [`SCHEMA_VERSION`] in one transaction.
fn migrate(conn: &Connection, path: &Path) -> Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(Error::SchemaTooNew {
                path: path.display().to_string(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version < 1 {
            conn.execute_batch(&schema_v1())?;
        }
        if version < 2 {
            conn.execute_batch(&schema_v2())?;
        }
        if version < 3 {
            conn.execute_batch(SCHEMA_V3)?;
        }
        if version < SCHEMA_VERSION {
            conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => {
            conn.execute_batch("COMMIT")?;
            Ok(())
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

fn schema_v1() -> String {
    // The statuses as version 1 had them; version 3 widens them.
    let execution_status = "status = 'running' OR status = 'sleeping' OR status = 'completed' OR status = 'failed' OR status = 'panicked' OR status = 'restarting' OR status = 'cancelled' OR status = 'paused'";
    let step_status = V2_STEP_STATUS;
    // As version 1 had it; version 2 widens it.
    let kind = "kind = 'step' OR kind = 'sleep' OR kind = 'now' OR kind = 'random'";
    // Spelled out, as the statuses are: a migration is frozen.
    let attempt_status = "status = 'running' OR status = 'completed' OR status = 'failed'";
    let pause_cause = "pause_cause = 'nondeterminism' OR pause_cause = 'undecodable' OR pause_cause = 'recovery_budget' OR pause_cause = 'storage'";
    let admin_action = "action = 'cancel' OR action = 'resume' OR action = 'restart'";
    format!(
        "
        CREATE TABLE workflows (
            name          TEXT PRIMARY KEY,
            module_path   TEXT NOT NULL,
            options       TEXT NOT NULL,
            registered_at INTEGER NOT NULL
        ) STRICT;

        CREATE TABLE workflow_executions (
            id                 TEXT PRIMARY KEY,
            workflow_name      TEXT NOT NULL,
            status             TEXT NOT NULL CHECK ({execution_status}),
            codec              TEXT NOT NULL,
            input              BLOB NOT NULL,
            output             BLOB,
            error              BLOB,
            error_message      TEXT,
            options            TEXT NOT NULL,
            restart_attempt    INTEGER NOT NULL DEFAULT 0,
            recovery_attempts  INTEGER NOT NULL DEFAULT 0,
            pause_cause        TEXT CHECK ({pause_cause}),
            wake_at            INTEGER,
            created_at         INTEGER NOT NULL,
            updated_at         INTEGER NOT NULL,
            completed_at       INTEGER
        ) STRICT;
        CREATE INDEX workflow_executions_by_status ON workflow_executions (status, created_at);
        CREATE INDEX workflow_executions_by_created ON workflow_executions (created_at);
        CREATE INDEX workflow_executions_by_wake ON workflow_executions (wake_at) WHERE status = 'sleeping';

        CREATE TABLE step_executions (
            execution_id   TEXT NOT NULL,
            position       INTEGER NOT NULL,
            branch         TEXT NOT NULL DEFAULT '',
            local          INTEGER NOT NULL,
            kind           TEXT NOT NULL CHECK ({kind}),
            name           TEXT NOT NULL,
            occurrence     INTEGER NOT NULL,
            status         TEXT NOT NULL CHECK ({step_status}),
            attempts       INTEGER NOT NULL DEFAULT 0,
            output         BLOB,
            error          BLOB,
            error_message  TEXT,
            wake_at        INTEGER,
            started_at     INTEGER NOT NULL,
            completed_at   INTEGER,
            PRIMARY KEY (execution_id, position)
        ) STRICT, WITHOUT ROWID;
        -- No index on (execution_id, branch, local): replay reads the whole
        -- journal by the primary key, and a second b-tree to update cost a
        -- fifth of each step's write.

        -- Entries and attempts set aside when a failed execution is restarted:
        -- its journal from the first failed entry on, kept as history.
        CREATE TABLE superseded_steps (
            execution_id     TEXT NOT NULL,
            position         INTEGER NOT NULL,
            branch           TEXT NOT NULL,
            local            INTEGER NOT NULL,
            kind             TEXT NOT NULL,
            name             TEXT NOT NULL,
            occurrence       INTEGER NOT NULL,
            status           TEXT NOT NULL,
            attempts         INTEGER NOT NULL,
            output           BLOB,
            error            BLOB,
            error_message    TEXT,
            wake_at          INTEGER,
            started_at       INTEGER NOT NULL,
            completed_at     INTEGER,
            superseded_at    INTEGER NOT NULL,
            restart_attempt  INTEGER NOT NULL
        ) STRICT;
        CREATE INDEX superseded_steps_by_execution ON superseded_steps (execution_id, position);

        CREATE TABLE superseded_attempts (
            execution_id   TEXT NOT NULL,
            position       INTEGER NOT NULL,
            attempt        INTEGER NOT NULL,
            status         TEXT NOT NULL,
            started_at     INTEGER NOT NULL,
            ended_at       INTEGER,
            error_message  TEXT,
            superseded_at  INTEGER NOT NULL
        ) STRICT;
        CREATE INDEX superseded_attempts_by_execution ON superseded_attempts (execution_id, position);

        CREATE TABLE admin_requests (
            id            INTEGER PRIMARY KEY,
            execution_id  TEXT NOT NULL,
            action        TEXT NOT NULL CHECK ({admin_action}),
            requested_at  INTEGER NOT NULL,
            applied_at    INTEGER,
            outcome       TEXT
        ) STRICT;
        CREATE INDEX admin_requests_pending ON admin_requests (id) WHERE applied_at IS NULL;

        CREATE TABLE step_attempts (
            execution_id   TEXT NOT NULL,
            position       INTEGER NOT NULL,
            attempt        INTEGER NOT NULL,
            status         TEXT NOT NULL CHECK ({attempt_status}),
            started_at     INTEGER NOT NULL,
            ended_at       INTEGER,
            error_message  TEXT,
            PRIMARY KEY (execution_id, position, attempt)
        ) STRICT, WITHOUT ROWID;
        "
    )
}

/// Version 2: `step_executions` allows every kind of this build (a CHECK
/// constraint cannot be altered in place, so the table is rebuilt: one
/// copy of the journal, inside the migration's transaction) and records
/// which type wrote each value; `value_types` names those types.
fn schema_v2() -> String {
    let step_status = V2_STEP_STATUS;
    let kind =
        "kind = 'step' OR kind = 'sleep' OR kind = 'now' OR kind = 'random' OR kind = 'patch'";
    format!(
        "
        CREATE TABLE step_executions_v2 (
            execution_id   TEXT NOT NULL,
            position       INTEGER NOT NULL,
            branch         TEXT NOT NULL DEFAULT '',
            local          INTEGER NOT NULL,
            kind           TEXT NOT NULL CHECK ({kind}),
            name           TEXT NOT NULL,
            occurrence     INTEGER NOT NULL,
            status         TEXT NOT NULL CHECK ({step_status}),
            attempts       INTEGER NOT NULL DEFAULT 0,
            output         BLOB,
            error          BLOB,
            error_message  TEXT,
            wake_at        INTEGER,
            started_at     INTEGER NOT NULL,
            completed_at   INTEGER,
            value_type     INTEGER,
            PRIMARY KEY (execution_id, position)
        ) STRICT, WITHOUT ROWID;
        INSERT INTO step_executions_v2
            (execution_id, position, branch, local, kind, name, occurrence, status, attempts,
             output, error, error_message, wake_at, started_at, completed_at)
        SELECT execution_id, position, branch, local, kind, name, occurrence, status, attempts,
               output, error, error_message, wake_at, started_at, completed_at
        FROM step_executions;
        DROP TABLE step_executions;
        ALTER TABLE step_executions_v2 RENAME TO step_executions;

        CREATE TABLE value_types (
            hash  INTEGER PRIMARY KEY,
            name  TEXT NOT NULL
        ) STRICT;

        ALTER TABLE workflow_executions ADD COLUMN app_version TEXT NOT NULL DEFAULT '';
        ALTER TABLE workflow_executions ADD COLUMN input_type INTEGER;
        ALTER TABLE workflow_executions ADD COLUMN output_type INTEGER;
        "
    )
}

/// The statuses of entries as versions 1 and 2 had them.
const V2_STEP_STATUS: &str = "status = 'pending' OR status = 'running' OR status = 'completed' OR status = 'failed' OR status = 'sleeping' OR status = 'retrying'";

/// Version 3: messages and events, each execution's deadline
/// (`deadline_at`, from its timeout) and its parent (`parent_id`, a child
/// workflow's). The CHECK constraints of both status
/// columns and of `kind` widen, so `workflow_executions` and
/// `step_executions` are rebuilt (a copy of each, inside the migration's
/// transaction, with the indexes made again). Besides this build's kinds,
/// `kind` allows `stream` and `child`, the entries of streams and child
/// workflows, so that adding them copies no journal again.
///
/// `messages` keeps every message sent to an execution: untaken ones wait
/// in the partial index by topic; a taken one keeps its row without its
/// payload (the `recv` entry holds it), so that its idempotency key still
/// refuses a second delivery. `events` holds the latest value of each key;
/// `stream_entries` each stream's values in order, a row without a value
/// ending it. `admin_requests` takes requests to start an execution too
/// (action `start`, with the workflow and its input).
const SCHEMA_V3: &str = "
    CREATE TABLE workflow_executions_v3 (
        id                 TEXT PRIMARY KEY,
        workflow_name      TEXT NOT NULL,
        status             TEXT NOT NULL CHECK (status = 'running' OR status = 'sleeping' OR status = 'waiting' OR status = 'completed' OR status = 'failed' OR status = 'panicked' OR status = 'restarting' OR status = 'cancelled' OR status = 'paused'),
        codec              TEXT NOT NULL,
        input              BLOB NOT NULL,
        output             BLOB,
        error              BLOB,
        error_message      TEXT,
        options            TEXT NOT NULL,
        restart_attempt    INTEGER NOT NULL DEFAULT 0,
        recovery_attempts  INTEGER NOT NULL DEFAULT 0,
        pause_cause        TEXT CHECK (pause_cause = 'nondeterminism' OR pause_cause = 'undecodable' OR pause_cause = 'recovery_budget' OR pause_cause = 'storage'),
        wake_at            INTEGER,
        created_at         INTEGER NOT NULL,
        updated_at         INTEGER NOT NULL,
        completed_at       INTEGER,
        app_version        TEXT NOT NULL DEFAULT '',
        input_type         INTEGER,
        output_type        INTEGER,
        deadline_at        INTEGER,
        parent_id          TEXT
    ) STRICT;
    INSERT INTO workflow_executions_v3
        (id, workflow_name, status, codec, input, output, error, error_message, options,
         restart_attempt, recovery_attempts, pause_cause, wake_at, created_at, updated_at,
         completed_at, app_version, input_type, output_type)
    SELECT id, workflow_name, status, codec, input, output, error, error_message, options,
           restart_attempt, recovery_attempts, pause_cause, wake_at, created_at, updated_at,
           completed_at, app_version, input_type, output_type
    FROM workflow_executions;
    DROP TABLE workflow_executions;
    ALTER TABLE workflow_executions_v3 RENAME TO workflow_executions;
    CREATE INDEX workflow_executions_by_status ON workflow_executions (status, created_at);
    CREATE INDEX workflow_executions_by_created ON workflow_executions (created_at);
    CREATE INDEX workflow_executions_by_wake ON workflow_executions (wake_at)
        WHERE status = 'sleeping' OR status = 'waiting';
    CREATE INDEX workflow_executions_by_parent ON workflow_executions (parent_id)
        WHERE parent_id IS NOT NULL;

    CREATE TABLE step_executions_v3 (
        execution_id   TEXT NOT NULL,
        position       INTEGER NOT NULL,
        branch         TEXT NOT NULL DEFAULT '',
        local          INTEGER NOT NULL,
        kind           TEXT NOT NULL CHECK (kind = 'step' OR kind = 'sleep' OR kind = 'now' OR kind = 'random' OR kind = 'patch' OR kind = 'recv' OR kind = 'event' OR kind = 'stream' OR kind = 'child'),
        name           TEXT NOT NULL,
        occurrence     INTEGER NOT NULL,
        status         TEXT NOT NULL CHECK (status = 'pending' OR status = 'running' OR status = 'completed' OR status = 'failed' OR status = 'sleeping' OR status = 'retrying' OR status = 'waiting'),
        attempts       INTEGER NOT NULL DEFAULT 0,
        output         BLOB,
        error          BLOB,
        error_message  TEXT,
        wake_at        INTEGER,
        started_at     INTEGER NOT NULL,
        completed_at   INTEGER,
        value_type     INTEGER,
        PRIMARY KEY (execution_id, position)
    ) STRICT, WITHOUT ROWID;
    INSERT INTO step_executions_v3 SELECT * FROM step_executions;
    DROP TABLE step_executions;
    ALTER TABLE step_executions_v3 RENAME TO step_executions;

    CREATE TABLE admin_requests_v3 (
        id             INTEGER PRIMARY KEY,
        execution_id   TEXT NOT NULL,
        action         TEXT NOT NULL CHECK (action = 'cancel' OR action = 'resume' OR action = 'restart' OR action = 'start'),
        requested_at   INTEGER NOT NULL,
        applied_at     INTEGER,
        outcome        TEXT,
        workflow_name  TEXT,
        input          BLOB
    ) STRICT;
    INSERT INTO admin_requests_v3 (id, execution_id, action, requested_at, applied_at, outcome)
    SELECT id, execution_id, action, requested_at, applied_at, outcome FROM admin_requests;
    DROP TABLE admin_requests;
    ALTER TABLE admin_requests_v3 RENAME TO admin_requests;
    CREATE INDEX admin_requests_pending ON admin_requests (id) WHERE applied_at IS NULL;

    CREATE TABLE messages (
        id               INTEGER PRIMARY KEY,
        execution_id     TEXT NOT NULL,
        topic            TEXT NOT NULL,
        payload          BLOB,
        value_type       INTEGER,
        idempotency_key  TEXT,
        sent_at          INTEGER NOT NULL,
        taken_at         INTEGER,
        taken_position   INTEGER,
        UNIQUE (execution_id, idempotency_key)
    ) STRICT;
    CREATE INDEX messages_untaken ON messages (execution_id, topic, id) WHERE taken_at IS NULL;

    CREATE TABLE events (
        execution_id  TEXT NOT NULL,
        key           TEXT NOT NULL,
        value         BLOB NOT NULL,
        value_type    INTEGER,
        updated_at    INTEGER NOT NULL,
        PRIMARY KEY (execution_id, key)
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE stream_entries (
        execution_id  TEXT NOT NULL,
        key           TEXT NOT NULL,
        seq           INTEGER NOT NULL,
        value         BLOB,
        value_type    INTEGER,
        written_at    INTEGER NOT NULL,
        PRIMARY KEY (execution_id, key, seq)
    ) STRICT, WITHOUT ROWID;
";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{
        AdminAction, AttemptStatus, EntryKind, ExecutionStatus, PauseCause, StepStatus,
    };

    #[test]
    fn the_latest_schema_allows_every_status_and_kind_of_this_build() {
        for (column, values) in [
            (
                "status",
                ExecutionStatus::ALL
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>(),
            ),
            (
                "status",
                StepStatus::ALL.iter().map(|s| s.as_str()).collect(),
            ),
            ("kind", EntryKind::ALL.iter().map(|s| s.as_str()).collect()),
            (
                "pause_cause",
                PauseCause::ALL.iter().map(|s| s.as_str()).collect(),
            ),
            (
                "action",
                AdminAction::ALL.iter().map(|s| s.as_str()).collect(),
            ),
        ] {
            for value in values {
                assert!(
                    SCHEMA_V3.contains(&format!("{column} = '{value}'")),
                    "{column} = '{value}' is missing from the CHECK constraints"
                );
            }
        }
        // `step_attempts` keeps the constraint of version 1.
        let v1 = schema_v1();
        for value in AttemptStatus::ALL {
            assert!(
                v1.contains(&format!("status = '{}'", value.as_str())),
                "attempt status `{value}` needs a migration"
            );
        }
    }

    #[test]
    fn foreign_file_is_refused_and_untouched() {
        let dir = tempfile_dir();
        let path = dir.join("notes.txt");
        std::fs::write(
            &path,
            b"hello, this is not a database at all, just some text",
        )
        .unwrap();
        let before = std::fs::read(&path).unwrap();
        let err = open_file(&path, &test_options()).unwrap_err();
        assert!(matches!(err, Error::ForeignDatabase { .. }), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert!(!dir.join("notes.txt-wal").exists());
        assert!(!dir.join("notes.txt-shm").exists());
        assert!(!dir.join("notes.txt.lock").exists());
    }

    #[test]
    fn another_programs_sqlite_file_is_refused() {
        let dir = tempfile_dir();
        let path = dir.join("other.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
                .unwrap();
        }
        let before = std::fs::read(&path).unwrap();
        let err = open_file(&path, &test_options()).unwrap_err();
        assert!(err.to_string().contains("another program"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn fresh_file_is_stamped_and_reopens() {
        let dir = tempfile_dir();
        let path = dir.join("wf.db");
        drop(open_file(&path, &test_options()).unwrap());
        assert!(matches!(probe(&path).unwrap(), Probe::Ours));
        assert!(!dir.join("notes.txt.lock").exists());
        drop(open_file(&path, &test_options()).unwrap());
    }

    #[test]
    fn fresh_files_get_the_page_size() {
        let dir = tempfile_dir();
        let path = dir.join("wf.db");
        let opened = open_file(&path, &test_options()).unwrap();
        let size: i64 = opened
            .writer
            .pragma_query_value(None, "page_size", |r| r.get(0))
            .unwrap();
        assert_eq!(size, PAGE_SIZE);
        let mem = open_in_memory().unwrap();
        let size: i64 = mem
            .pragma_query_value(None, "page_size", |r| r.get(0))
            .unwrap();
        assert_eq!(size, PAGE_SIZE);
    }

    #[test]
    fn fresh_files_vacuum_incrementally() {
        let dir = tempfile_dir();
        let path = dir.join("wf.db");
        let mode = |c: &Connection| -> i64 {
            c.pragma_query_value(None, "auto_vacuum", |r| r.get(0))
                .unwrap()
        };
        let opened = open_file(&path, &test_options()).unwrap();
        assert_eq!(mode(&opened.writer), 2, "INCREMENTAL");
        drop(opened);
        assert_eq!(mode(&open_file(&path, &test_options()).unwrap().writer), 2);
        assert_eq!(mode(&open_in_memory().unwrap()), 2);
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile_dir();
        let path = dir.join("wf.db");
        {
            let opened = open_file(&path, &test_options()).unwrap();
            let w = &opened.writer;
            w.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
                .unwrap();
            w.pragma_update(None, "journal_mode", "DELETE").unwrap();
        }
        let err = open_file(&path, &test_options()).unwrap_err();
        assert!(
            matches!(err, Error::SchemaTooNew { found, .. } if found == SCHEMA_VERSION + 1),
            "{err}"
        );
    }

    fn test_options() -> FileOptions {
        FileOptions {
            durability: Durability::Full,
            busy_timeout: Duration::from_secs(5),
            max_size: None,
            integrity_check: IntegrityCheck::default(),
        }
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "workflow-schema-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
