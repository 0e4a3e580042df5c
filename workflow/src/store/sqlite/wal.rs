//! A high-water mark of what the WAL holds, kept outside it, so that an
//! open can tell a damaged, truncated or missing `-wal` from an empty one.
//!
//! SQLite treats a WAL frame whose checksum fails as the torn end of the
//! log and ignores it and everything after it; a damaged WAL header makes it
//! ignore the whole log. Either way the database opens, without the commits
//! that were in it. After each commit the worker records the log's salts,
//! how many frames it holds and how many of them are already copied into
//! the main file (the first line of the lock file, one `pwrite`). An open
//! after an unclean end checks the WAL against that mark before SQLite
//! touches it: frames the mark says were committed, and not yet copied into
//! the main file, must still be there with valid checksums.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

/// WAL frames after which the worker copies the log into the main file
/// (SQLite's default auto-checkpoint, which the mark's hook replaces).
const CHECKPOINT_AFTER: i32 = 1000;

/// The mark's line at the head of the lock file: fixed width, rewritten in place.
pub(crate) const MARK_LEN: usize = 50;

/// What the WAL held after the last commit this worker recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Mark {
    pub salt1: u32,
    pub salt2: u32,
    /// Frames in the log after the last commit.
    pub frames: u32,
    /// Frames known to be copied into the main file.
    pub backfilled: u32,
    /// Whether commits were fsynced (`synchronous = FULL`): only then is a
    /// shorter log proof of damage rather than of a power loss at NORMAL.
    pub synced: bool,
}

impl Mark {
    /// The mark as the first line of the lock file.
    pub(crate) fn line(&self) -> String {
        let line = format!(
            "journal {} {:08x} {:08x} {:010} {:010}\n",
            if self.synced { 'F' } else { 'N' },
            self.salt1,
            self.salt2,
            self.frames,
            self.backfilled
        );
        debug_assert_eq!(line.len(), MARK_LEN);
        line
    }

    /// Reads a mark line; `None` if `line` is not one.
    pub(crate) fn parse(line: &str) -> Option<Mark> {
        let mut words = line.strip_prefix("journal ")?.split_whitespace();
        let synced = match words.next()? {
            "F" => true,
            "N" => false,
            _ => return None,
        };
        let salt1 = u32::from_str_radix(words.next()?, 16).ok()?;
        let salt2 = u32::from_str_radix(words.next()?, 16).ok()?;
        let frames = words.next()?.parse().ok()?;
        let backfilled = words.next()?.parse().ok()?;
        Some(Mark {
            salt1,
            salt2,
            frames,
            backfilled,
            synced,
        })
    }

    /// Whether everything committed is in the main file.
    fn all_backfilled(&self) -> bool {
        self.backfilled >= self.frames
    }
}

/// The `-wal` file SQLite uses for `db` (it resolves symlinks).
pub(crate) fn wal_path(db: &Path) -> PathBuf {
    let mut name = super::lock::resolved_path(db).into_os_string();
    name.push("-wal");
    PathBuf::from(name)
}

/// Checks the WAL against the mark a worker left. `Err` says what was lost.
pub(crate) fn verify(wal: &Path, mark: &Mark) -> Result<(), String> {
    if mark.all_backfilled() {
        return Ok(());
    }
    let missing = mark.frames - mark.backfilled;
    let log = match std::fs::read(wal) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "its write-ahead log `{}` is missing, and {missing} committed frame(s) were only there",
                wal.display()
            ));
        }
        Err(e) => return Err(format!("cannot read `{}`: {e}", wal.display())),
    };
    let Some(header) = Header::parse(&log) else {
        return Err(format!(
            "the header of its write-ahead log `{}` is damaged or truncated ({} bytes), and {missing} committed frame(s) were only in that log",
            wal.display(),
            log.len()
        ));
    };
    if (header.salt1, header.salt2) != (mark.salt1, mark.salt2) {
        // The log restarted after the mark was written, which SQLite does
        // only once every frame is in the main file.
        return Ok(());
    }
    let valid = header.committed_frames(&log);
    if valid >= mark.frames {
        return Ok(());
    }
    Err(format!(
        "its write-ahead log `{}` holds {valid} valid committed frame(s) where {} were committed (damaged or truncated)",
        wal.display(),
        mark.frames
    ))
}

/// A WAL header whose own checksum holds.
struct Header {
    big_endian: bool,
    page_size: usize,
    salt1: u32,
    salt2: u32,
    checksum: (u32, u32),
}

impl Header {
    fn parse(log: &[u8]) -> Option<Header> {
        let head = log.get(..32)?;
        let word =
            |at: usize| u32::from_be_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
        let big_endian = match word(0) {
            0x377f_0682 => false,
            0x377f_0683 => true,
            _ => return None,
        };
        let page_size = match word(8) {
            1 => 65_536,
            n if (512..=32_768).contains(&n) && n.is_power_of_two() => n as usize,
            _ => return None,
        };
        let checksum = checksum(big_endian, (0, 0), &head[..24]);
        if checksum != (word(24), word(28)) {
            return None;
        }
        Some(Header {
            big_endian,
            page_size,
            salt1: word(16),
            salt2: word(20),
            checksum,
        })
    }

    /// How many frames from the start of the log are valid up to the last
    /// valid commit frame: what SQLite would replay.
    fn committed_frames(&self, log: &[u8]) -> u32 {
        let frame_len = 24 + self.page_size;
        let mut sums = self.checksum;
        let mut committed = 0;
        let mut at = 32;
        let mut index = 0u32;
        while let Some(frame) = log.get(at..at + frame_len) {
            let word =
                |i: usize| u32::from_be_bytes([frame[i], frame[i + 1], frame[i + 2], frame[i + 3]]);
            if (word(8), word(12)) != (self.salt1, self.salt2) {
                break;
            }
            sums = checksum(self.big_endian, sums, &frame[..8]);
            sums = checksum(self.big_endian, sums, &frame[24..]);
            if sums != (word(16), word(20)) {
                break;
            }
            index += 1;
            if word(4) != 0 {
                committed = index;
            }
            at += frame_len;
        }
        committed
    }
}

/// SQLite's WAL checksum over `data` (a multiple of 8 bytes), continuing `sums`.
fn checksum(big_endian: bool, (mut s0, mut s1): (u32, u32), data: &[u8]) -> (u32, u32) {
    for pair in data.chunks_exact(8) {
        let read = |b: &[u8]| {
            let bytes = [b[0], b[1], b[2], b[3]];
            if big_endian {
                u32::from_be_bytes(bytes)
            } else {
                u32::from_le_bytes(bytes)
            }
        };
        s0 = s0.wrapping_add(read(&pair[..4])).wrapping_add(s1);
        s1 = s1.wrapping_add(read(&pair[4..])).wrapping_add(s0);
    }
    (s0, s1)
}

/// Keeps the mark in the lock file up to date from the writer's connection.
#[derive(Debug)]
pub(crate) struct Marker {
    /// The lock file (a second handle on it: the lock stays with the first).
    file: File,
    wal: PathBuf,
    mark: Mark,
    /// No commit recorded yet: the log's salts are read at the first.
    first: bool,
}

impl Marker {
    pub(crate) fn new(file: File, wal: PathBuf, previous: Mark, synced: bool) -> Marker {
        Marker {
            file,
            wal,
            mark: Mark { synced, ..previous },
            first: true,
        }
    }

    /// After a commit that left `frames` frames in the log.
    fn committed(&mut self, frames: u32) {
        if self.first || frames < self.mark.frames {
            // The first commit, or the log restarted: read its salts.
            if let Some(salts) = self.read_salts() {
                if salts != (self.mark.salt1, self.mark.salt2) {
                    self.mark.backfilled = 0;
                }
                (self.mark.salt1, self.mark.salt2) = salts;
                self.first = false;
            }
        }
        self.mark.frames = frames;
        self.write();
    }

    /// After a checkpoint copied `backfilled` frames of the log.
    fn checkpointed(&mut self, backfilled: u32) {
        self.mark.backfilled = self.mark.backfilled.max(backfilled);
        self.write();
    }

    fn read_salts(&self) -> Option<(u32, u32)> {
        let mut head = [0u8; 24];
        File::open(&self.wal).ok()?.read_exact(&mut head).ok()?;
        let word =
            |at: usize| u32::from_be_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
        Some((word(16), word(20)))
    }

    fn write(&self) {
        if let Err(e) = self.file.write_all_at(self.mark.line().as_bytes(), 0) {
            tracing::warn!(error = %e, "cannot record the journal's mark in the lock file");
        }
    }
}

/// Installs the mark's keeper on the writer's connection: after each commit
/// it records the log's state, and past [`CHECKPOINT_AFTER`] frames it copies
/// the log into the main file (the auto-checkpoint this hook replaces).
pub(crate) fn install(conn: &mut Connection, marker: Marker) -> rusqlite::Result<SharedMarker> {
    let shared = Arc::new(Mutex::new(marker));
    let hook = Arc::clone(&shared);
    conn.wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, frames: i32| {
        // The writer thread is the only caller: the lock is never contended.
        let mut marker = hook.lock().unwrap_or_else(|p| p.into_inner());
        marker.committed(u32::try_from(frames).unwrap_or(0));
        if frames >= CHECKPOINT_AFTER {
            let (_, backfilled) = wal.checkpoint_v2(rusqlite::wal::CheckpointMode::PASSIVE)?;
            marker.checkpointed(u32::try_from(backfilled).unwrap_or(0));
        }
        Ok(())
    }))?;
    Ok(shared)
}

/// The keeper of the mark, shared by the commit hook and the writer's close.
pub(crate) type SharedMarker = Arc<Mutex<Marker>>;

/// Before the writer closes: copies the whole log into the main file
/// (`RESTART`: the log stays valid until the close removes it) and records
/// that, so a kill between here and the close loses nothing the mark claims.
pub(crate) fn backfill_all(conn: &Connection, marker: &SharedMarker) {
    let done: rusqlite::Result<(i64, i64, i64)> =
        conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        });
    match done {
        Ok((0, log, copied)) if log == copied => {
            let mut marker = marker.lock().unwrap_or_else(|p| p.into_inner());
            marker.checkpointed(u32::try_from(copied).unwrap_or(0));
        }
        Ok(_) => tracing::debug!("the log could not be copied whole before closing"),
        Err(e) => {
            tracing::warn!(error = %e, "cannot copy the log into the database before closing")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_reads_back_and_keeps_its_width() {
        let mark = Mark {
            salt1: 0xdead_beef,
            salt2: 7,
            frames: 4_000_000_000,
            backfilled: 12,
            synced: true,
        };
        assert_eq!(mark.line().len(), MARK_LEN);
        assert_eq!(Mark::parse(&mark.line()), Some(mark));
        assert_eq!(Mark::parse("process 12 on worker"), None);
    }
}
