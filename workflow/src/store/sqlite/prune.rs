//! Retention: deleting finished executions with everything they own, and
//! giving the freed pages back to the file system.

use rusqlite::{Connection, named_params};

use super::writer::SqliteStore;
use crate::error::Result;
use crate::store::FileSpace;

/// Deletes up to `limit` finished executions (completed, failed or
/// cancelled) that ended before `cutoff` (Unix ms), but children whose
/// parent is unfinished (it may still read their end), with their journal
/// entries, attempts, superseded entries and attempts, and admin requests.
/// Returns how many executions it deleted.
///
/// The candidates are found through `workflow_executions_by_status`
/// (status, created_at): an execution ends after it starts, so one that
/// ended before the cutoff was also created before it, and the scan stops
/// at the cutoff instead of reading every finished execution the file
/// holds. No index on `completed_at` is needed (and none is written on
/// every execution's end).
fn prune_batch(conn: &Connection, cutoff: i64, limit: u32) -> rusqlite::Result<u64> {
    let ids: Vec<String> = conn
        .prepare_cached(
            "SELECT id FROM workflow_executions
             WHERE status IN ('completed', 'failed', 'cancelled')
               AND created_at < :cutoff AND completed_at < :cutoff
               AND (parent_id IS NULL OR NOT EXISTS (
                   SELECT 1 FROM workflow_executions p
                   WHERE p.id = workflow_executions.parent_id
                     AND p.status NOT IN ('completed', 'failed', 'cancelled')))
             LIMIT :limit",
        )?
        .query_map(named_params! { ":cutoff": cutoff, ":limit": limit }, |r| {
            r.get(0)
        })?
        .collect::<rusqlite::Result<_>>()?;
    if ids.is_empty() {
        return Ok(0);
    }
    // One statement per table for the whole batch; the ids travel as one
    // JSON array parameter. Each `IN` becomes a lookup by the table's key
    // (or index) per id, except `admin_requests`, which has no index on the
    // execution and is read once per batch.
    let batch = serde_json::to_string(&ids)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    for table in [
        "step_attempts",
        "step_executions",
        "superseded_attempts",
        "superseded_steps",
        "admin_requests",
        "messages",
        "events",
        "stream_entries",
    ] {
        conn.prepare_cached(&format!(
            "DELETE FROM {table} WHERE execution_id IN (SELECT value FROM json_each(?1))"
        ))?
        .execute([&batch])?;
    }
    // The status is checked again: this runs in the writer's transaction,
    // so nothing changed since the select, but the condition stays next to
    // the deletion that relies on it.
    let deleted = conn
        .prepare_cached(
            "DELETE FROM workflow_executions
             WHERE id IN (SELECT value FROM json_each(?1))
               AND status IN ('completed', 'failed', 'cancelled')",
        )?
        .execute([&batch])?;
    Ok(u64::try_from(deleted).unwrap_or(0))
}

/// The file's size and its free pages, and whether it gives free pages
/// back (`auto_vacuum = INCREMENTAL`).
fn space(conn: &Connection) -> rusqlite::Result<FileSpace> {
    let pragma = |name: &str| conn.pragma_query_value(None, name, |r| r.get::<_, i64>(0));
    let page_size = u64::try_from(pragma("page_size")?).unwrap_or(0);
    let pages = u64::try_from(pragma("page_count")?).unwrap_or(0);
    let free = u64::try_from(pragma("freelist_count")?).unwrap_or(0);
    Ok(FileSpace {
        bytes: pages * page_size,
        free_bytes: free * page_size,
        // 2 = INCREMENTAL; 0 (NONE) keeps free pages for reuse, and 1 (FULL)
        // gives them back at every commit by itself.
        incremental: pragma("auto_vacuum")? == 2,
    })
}

/// Gives up to `pages` free pages back to the file system (the file is
/// truncated when the WAL is next copied into it); returns the bytes given
/// back and the space after, read in the same transaction.
fn reclaim(conn: &Connection, pages: u32) -> rusqlite::Result<(u64, FileSpace)> {
    let before = space(conn)?;
    if !before.incremental || before.free_bytes == 0 {
        return Ok((0, before));
    }
    // Each step of the statement gives one page back (`execute_batch`
    // would take one step): stepped to its end.
    let mut vacuum = conn.prepare(&format!("PRAGMA incremental_vacuum({pages})"))?;
    let mut steps = vacuum.query([])?;
    while steps.next()?.is_some() {}
    let after = space(conn)?;
    Ok((before.bytes.saturating_sub(after.bytes), after))
}

impl SqliteStore {
    pub(crate) async fn prune_batch(&self, cutoff: i64, limit: u32) -> Result<u64> {
        self.write(move |conn| prune_batch(conn, cutoff, limit))
            .await
    }

    pub(crate) async fn file_space(&self) -> Result<FileSpace> {
        self.write(space).await
    }

    pub(crate) async fn reclaim_space(&self, pages: u32) -> Result<(u64, FileSpace)> {
        self.write(move |conn| reclaim(conn, pages)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal() -> Connection {
        super::super::schema::open_in_memory().unwrap()
    }

    fn insert(conn: &Connection, id: &str, status: &str, created: i64, ended: Option<i64>) {
        conn.execute(
            "INSERT INTO workflow_executions
                 (id, workflow_name, status, codec, input, options, created_at, updated_at, completed_at)
             VALUES (?1, 'wf', ?2, 'json', x'00', '{}', ?3, ?3, ?4)",
            rusqlite::params![id, status, created, ended],
        )
        .unwrap();
        for table in ["step_executions", "superseded_steps"] {
            conn.execute(
                &format!(
                    "INSERT INTO {table} (execution_id, position, branch, local, kind, name, occurrence,
                                          status, attempts, started_at{extra})
                     VALUES (?1, 0, '', 0, 'step', 's', 0, 'completed', 1, ?2{values})",
                    extra = if table == "superseded_steps" { ", superseded_at, restart_attempt" } else { "" },
                    values = if table == "superseded_steps" { ", ?2, 0" } else { "" },
                ),
                rusqlite::params![id, created],
            )
            .unwrap();
        }
        for table in ["step_attempts", "superseded_attempts"] {
            conn.execute(
                &format!(
                    "INSERT INTO {table} (execution_id, position, attempt, status, started_at{extra})
                     VALUES (?1, 0, 1, 'completed', ?2{values})",
                    extra = if table == "superseded_attempts" { ", superseded_at" } else { "" },
                    values = if table == "superseded_attempts" { ", ?2" } else { "" },
                ),
                rusqlite::params![id, created],
            )
            .unwrap();
        }
        conn.execute(
            "INSERT INTO admin_requests (execution_id, action, requested_at) VALUES (?1, 'cancel', ?2)",
            rusqlite::params![id, created],
        )
        .unwrap();
    }

    fn rows_of(conn: &Connection, id: &str) -> i64 {
        [
            "step_executions",
            "step_attempts",
            "superseded_steps",
            "superseded_attempts",
            "admin_requests",
        ]
        .iter()
        .map(|t| {
            conn.query_row(
                &format!("SELECT count(*) FROM {t} WHERE execution_id = ?1"),
                [id],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
        })
        .sum::<i64>()
            + conn
                .query_row(
                    "SELECT count(*) FROM workflow_executions WHERE id = ?1",
                    [id],
                    |r| r.get::<_, i64>(0),
                )
                .unwrap()
    }

    #[test]
    fn deletes_old_finished_executions_with_every_row_they_own() {
        let conn = journal();
        insert(&conn, "old-done", "completed", 10, Some(20));
        insert(&conn, "old-failed", "failed", 10, Some(20));
        insert(&conn, "old-cancelled", "cancelled", 10, Some(20));
        insert(&conn, "old-running", "running", 10, None);
        insert(&conn, "old-sleeping", "sleeping", 10, None);
        insert(&conn, "old-paused", "paused", 10, None);
        insert(&conn, "old-panicked", "panicked", 10, None);
        // Started long ago, ended after the cutoff.
        insert(&conn, "long-done", "completed", 10, Some(200));
        insert(&conn, "new-done", "completed", 150, Some(160));

        assert_eq!(prune_batch(&conn, 100, 2).unwrap(), 2, "a batch is bounded");
        assert_eq!(prune_batch(&conn, 100, 2).unwrap(), 1);
        assert_eq!(prune_batch(&conn, 100, 2).unwrap(), 0);
        for gone in ["old-done", "old-failed", "old-cancelled"] {
            assert_eq!(rows_of(&conn, gone), 0, "{gone}");
        }
        for kept in [
            "old-running",
            "old-sleeping",
            "old-paused",
            "old-panicked",
            "long-done",
            "new-done",
        ] {
            assert_eq!(rows_of(&conn, kept), 6, "{kept}");
        }
    }

    #[test]
    fn the_pages_freed_go_back_to_the_file_system() {
        let conn = journal();
        let blob = vec![7u8; 4000];
        for i in 0..200 {
            insert(&conn, &format!("e{i}"), "completed", 1, Some(2));
            conn.execute(
                "UPDATE workflow_executions SET output = ?2 WHERE id = ?1",
                rusqlite::params![format!("e{i}"), blob],
            )
            .unwrap();
        }
        let full = space(&conn).unwrap();
        assert!(full.incremental, "new databases vacuum incrementally");
        assert_eq!(prune_batch(&conn, 100, 500).unwrap(), 200);
        let pruned = space(&conn).unwrap();
        assert!(pruned.free_bytes > 800_000, "{pruned:?}");
        let (released, mut after) = reclaim(&conn, 16).unwrap();
        assert_eq!(released, 16 * 2048);
        assert_eq!(after.free_bytes, pruned.free_bytes - released);
        let mut total = released;
        while after.free_bytes > 0 {
            let (released, space) = reclaim(&conn, 1024).unwrap();
            assert!(released > 0);
            total += released;
            after = space;
        }
        assert_eq!(after.bytes, full.bytes - total);
        assert!(total > 800_000, "{full:?} -> {after:?}");
    }
}
