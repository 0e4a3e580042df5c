//! The PostgreSQL schema: created and migrated under a transaction-level
//! advisory lock, so that many workers starting at once do it once; a
//! schema newer than this build is refused with both versions.

use tokio_postgres::Client;

use super::pg;
use crate::error::{Error, Result};

/// The schema version this build writes.
///
/// 1: the first release. 2: journal entries of kind `patch` (the markers
/// of `Context::patched`), and the type of each journaled value
/// (`step_executions.value_type`, named in `value_types`), and the type
/// of each execution's input (`workflow_executions.input_type`). 3:
/// messages and events (`messages`, `events`, entries of kind `recv` and
/// `event`, the statuses `waiting` of executions and entries), and each
/// execution's deadline (`workflow_executions.deadline_at`).
pub(crate) const SCHEMA_VERSION: i64 = 3;

/// The oldest version that holds messages: sending needs it.
pub(crate) const MESSAGES_VERSION: i64 = 3;

/// Indexes that queries of this build use and older builds of the same
/// schema version do without: a new schema has them, and a worker's open
/// adds those an older schema lacks in the background ([`add_indexes`]),
/// while the version stays, so that workers of the older build still open
/// the schema during a rolling deploy. A name and what follows
/// `CREATE INDEX name` (`{s}`: the schema).
const ADDED_INDEXES: &[(&str, &str)] = &[(
    // The sweep's due sleepers and waiters of one worker (`due_sleepers`),
    // in wake order: what is due, not every execution the worker owns.
    "workflow_executions_due",
    "ON {s}.workflow_executions (owner, wake_at) WHERE status IN ('sleeping', 'waiting')",
)];

/// The advisory lock key under which one worker at a time adds indexes.
const INDEX_LOCK: i64 = 0x5246_4C57_0000_0002;

/// Adds the [`ADDED_INDEXES`] that `schema` lacks, or has only as the
/// invalid leftover of an interrupted build, with `CREATE INDEX
/// CONCURRENTLY`: the tables stay writable meanwhile (a plain `CREATE
/// INDEX` would hold every worker's writes for the whole build of a large
/// table). One worker at a time builds; the others skip. Best effort: the
/// queries are right without the indexes, only slower, so a failure (a
/// role that does not own the tables, say) is a warning.
pub(crate) async fn add_indexes(client: &Client, schema: &str) {
    let run = async {
        let todo = missing_indexes(client, schema).await?;
        if todo.is_empty() {
            return Ok(());
        }
        let locked: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&INDEX_LOCK])
            .await?
            .get(0);
        if !locked {
            return Ok(());
        }
        let mut built = Ok(());
        for (name, def) in todo {
            // One statement per call: several in one string would run as
            // one transaction, where `CONCURRENTLY` is refused.
            let started = std::time::Instant::now();
            built = client
                .batch_execute(&format!(
                    "DROP INDEX CONCURRENTLY IF EXISTS {schema}.{name}"
                ))
                .await;
            if built.is_ok() {
                let def = def.replace("{s}", schema);
                built = client
                    .batch_execute(&format!("CREATE INDEX CONCURRENTLY {name} {def}"))
                    .await;
            }
            if built.is_err() {
                break;
            }
            tracing::info!(schema, index = name, elapsed = ?started.elapsed(), "added an index this build uses");
        }
        client
            .execute("SELECT pg_advisory_unlock($1)", &[&INDEX_LOCK])
            .await?;
        built
    };
    if let Err(e) = run.await {
        tracing::warn!(schema, error = %e, "cannot add the indexes this build uses; its queries go without them");
    }
}

/// The [`ADDED_INDEXES`] that `schema` lacks, or holds only invalid (the
/// leftover of an interrupted concurrent build): what [`add_indexes`]
/// builds. A worker's open asks first, on the connection it already has,
/// and starts the build only when there is one.
pub(crate) async fn missing_indexes(
    client: &Client,
    schema: &str,
) -> std::result::Result<Vec<&'static (&'static str, &'static str)>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT c.relname::text, i.indisvalid FROM pg_index i
             JOIN pg_class c ON c.oid = i.indexrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1",
            &[&schema],
        )
        .await?;
    let valid = |name: &str| {
        rows.iter()
            .find(|r| r.get::<_, String>(0) == name)
            .map(|r| r.get::<_, bool>(1))
    };
    Ok(ADDED_INDEXES
        .iter()
        .filter(|(name, _)| valid(name) != Some(true))
        .collect())
}

/// The statements that create the [`ADDED_INDEXES`] on a new schema.
fn added_indexes(s: &str) -> String {
    ADDED_INDEXES
        .iter()
        .map(|(name, def)| format!("CREATE INDEX {name} {};", def.replace("{s}", s)))
        .collect()
}

/// The advisory lock key under which the schema is created or migrated
/// ("RFLW" and the schema version family).
const MIGRATION_LOCK: i64 = 0x5246_4C57_0000_0001;

/// Whether `name` can name our PostgreSQL schema without quoting: the
/// name goes into `search_path` and DDL.
pub(crate) fn valid_schema_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63
}

/// Creates the schema, or checks its version, under the migration lock;
/// returns the version the schema is at after it. With `create` false (an
/// admin open), a missing schema is an error and an older one is left as
/// it is (see [`read_as_current`]).
pub(crate) async fn prepare(client: &mut Client, schema: &str, create: bool) -> Result<i64> {
    let tx = client.transaction().await.map_err(pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg)?;
    let exists: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = 'meta')",
            &[&schema],
        )
        .await
        .map_err(pg)?
        .get(0);
    if exists {
        let found: i64 = tx
            .query_one(
                &format!("SELECT value::bigint FROM {schema}.meta WHERE key = 'schema_version'"),
                &[],
            )
            .await
            .map_err(pg)?
            .get(0);
        if found > SCHEMA_VERSION {
            return Err(Error::SchemaTooNew {
                path: format!("postgres schema `{schema}`"),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        // An admin never migrates (workers of an older build may still
        // run on the schema): it reads through `read_as_current`.
        if create && found < SCHEMA_VERSION {
            tx.batch_execute(&migrations(schema, found))
                .await
                .map_err(pg)?;
            tracing::info!(
                schema,
                from = found,
                to = SCHEMA_VERSION,
                "migrated the workflow schema"
            );
        }
        tx.commit().await.map_err(pg)?;
        return Ok(if create { SCHEMA_VERSION } else { found });
    }
    if !create {
        return Err(Error::NoDatabase {
            path: format!("postgres schema `{schema}`"),
        });
    }
    tx.batch_execute(&ddl(schema)).await.map_err(pg)?;
    tx.batch_execute(&added_indexes(schema)).await.map_err(pg)?;
    tx.commit().await.map_err(pg)?;
    tracing::info!(schema, "created the workflow schema");
    Ok(SCHEMA_VERSION)
}

/// For a connection that reads a schema of an older version without
/// migrating it (an admin's): temporary views, which PostgreSQL looks up
/// before the schema's tables, add the columns later versions added, with
/// the values their migrations give old rows, and empty temporary tables
/// stand for the tables they created (nothing was ever written to them on
/// such a schema). `None` when the schema is current.
pub(crate) fn read_as_current(schema: &str, version: i64) -> Option<String> {
    let mut batch = String::new();
    if version < 2 {
        batch.push_str(&format!(
            "CREATE TEMP VIEW workflow_executions AS
                 SELECT *, NULL::integer AS input_type, NULL::integer AS output_type,
                        NULL::bigint AS deadline_at, NULL::text AS parent_id
                 FROM {schema}.workflow_executions;
             CREATE TEMP VIEW step_executions AS
                 SELECT *, NULL::integer AS value_type FROM {schema}.step_executions;
             CREATE TEMP TABLE value_types (hash integer PRIMARY KEY, name text NOT NULL);"
        ));
    }
    if version == 2 {
        batch.push_str(&format!(
            "CREATE TEMP VIEW workflow_executions AS
                 SELECT *, NULL::bigint AS deadline_at, NULL::text AS parent_id
                 FROM {schema}.workflow_executions;"
        ));
    }
    if version < 3 {
        batch.push_str(&format!("{MESSAGES_TEMP};{EVENTS_TEMP};{STREAMS_TEMP};"));
    }
    (!batch.is_empty()).then_some(batch)
}

/// `messages` as a temporary table of an admin's connection (see
/// [`read_as_current`]): the columns of [`ddl`]'s, without constraints.
const MESSAGES_TEMP: &str = "CREATE TEMP TABLE messages (
    id bigint PRIMARY KEY, execution_id text NOT NULL, topic text NOT NULL, payload bytea,
    value_type integer, idempotency_key text, sent_at bigint NOT NULL, taken_at bigint,
    taken_position integer)";

/// `stream_entries` as a temporary table of an admin's connection.
const STREAMS_TEMP: &str = "CREATE TEMP TABLE stream_entries (
    execution_id text NOT NULL, key text NOT NULL, seq bigint NOT NULL, value bytea,
    value_type integer, written_at bigint NOT NULL, PRIMARY KEY (execution_id, key, seq))";

/// `events` as a temporary table of an admin's connection.
const EVENTS_TEMP: &str = "CREATE TEMP TABLE events (
    execution_id text NOT NULL, key text NOT NULL, value bytea NOT NULL, value_type integer,
    updated_at bigint NOT NULL, PRIMARY KEY (execution_id, key))";

// The CHECK lists, spelled out: a migration is frozen, so none is made
// from the enums of this build
// (`the_latest_schema_allows_every_value_of_this_build` compares them).

/// The kinds of entries of version 2 (version 1 lacked `patch`).
const V2_KIND: &str = "kind IN ('step', 'sleep', 'now', 'random', 'patch')";

/// The kinds of entries from version 3 on: besides this build's, `stream`
/// and `child`, the entries of streams and child workflows, so that
/// adding them needs no migration.
const V3_KIND: &str =
    "kind IN ('step', 'sleep', 'now', 'random', 'patch', 'recv', 'event', 'stream', 'child')";

/// The statuses of executions from version 3 on (`waiting` is new).
const V3_EXECUTION_STATUS: &str = "status IN ('running', 'sleeping', 'waiting', 'completed', 'failed', 'panicked', 'restarting', 'cancelled', 'paused')";

/// The statuses of entries from version 3 on (`waiting` is new).
const V3_STEP_STATUS: &str =
    "status IN ('pending', 'running', 'completed', 'failed', 'sleeping', 'retrying', 'waiting')";

/// The statuses of attempts, as version 1 made them.
const ATTEMPT_STATUS: &str = "status IN ('running', 'completed', 'failed')";

/// The causes of a pause, as version 1 made them.
const PAUSE_CAUSE: &str =
    "pause_cause IN ('nondeterminism', 'undecodable', 'recovery_budget', 'storage')";

/// The actions of admin requests, as version 1 made them.
/// Admin requests: version 3 also takes requests to start an execution.
const V3_ADMIN_ACTION: &str = "action IN ('cancel', 'resume', 'restart', 'start')";

/// The predicate of the partial index `workflow_executions_claimable`
/// from version 3 on: unowned and unfinished. The claim path's query
/// (`queries::claim_orphans`) implies it, so that the planner can use it.
const V3_CLAIMABLE: &str =
    "owner IS NULL AND status IN ('running', 'restarting', 'sleeping', 'waiting', 'panicked')";

/// The tables version 3 created: the inbox of each execution and the
/// latest value of each of its event keys.
///
/// `messages` keeps every message sent to an execution: untaken ones wait
/// in the partial index by topic; a taken one keeps its row without its
/// payload (the `recv` entry holds it), so that its idempotency key still
/// refuses a second delivery.
fn v3_tables(s: &str) -> String {
    format!(
        "CREATE TABLE {s}.messages (
             id               bigserial PRIMARY KEY,
             execution_id     text NOT NULL,
             topic            text NOT NULL,
             payload          bytea,
             value_type       integer,
             idempotency_key  text,
             sent_at          bigint NOT NULL,
             taken_at         bigint,
             taken_position   integer,
             UNIQUE (execution_id, idempotency_key)
         );
         CREATE INDEX messages_untaken ON {s}.messages (execution_id, topic, id)
             WHERE taken_at IS NULL;
         CREATE TABLE {s}.events (
             execution_id  text NOT NULL,
             key           text NOT NULL,
             value         bytea NOT NULL,
             value_type    integer,
             updated_at    bigint NOT NULL,
             PRIMARY KEY (execution_id, key)
         ) WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.05);
         CREATE TABLE {s}.stream_entries (
             execution_id  text NOT NULL,
             key           text NOT NULL,
             seq           bigint NOT NULL,
             value         bytea,
             value_type    integer,
             written_at    bigint NOT NULL,
             PRIMARY KEY (execution_id, key, seq)
         );
        "
    )
}

/// The migrations from version `found` on, as one batch run inside the
/// migration's transaction.
fn migrations(s: &str, found: i64) -> String {
    let mut batch = String::new();
    if found < 2 {
        batch.push_str(&format!(
            "ALTER TABLE {s}.step_executions DROP CONSTRAINT step_executions_kind_check,
                 ADD CONSTRAINT step_executions_kind_check CHECK ({V2_KIND}),
                 ADD COLUMN value_type integer;
             ALTER TABLE {s}.workflow_executions ADD COLUMN input_type integer,
                 ADD COLUMN output_type integer;
             CREATE TABLE {s}.value_types (hash integer PRIMARY KEY, name text NOT NULL);"
        ));
    }
    if found < 3 {
        // Widening a CHECK constraint is dropping and adding it; the claim
        // index takes waiting executions in too.
        batch.push_str(&format!(
            "ALTER TABLE {s}.workflow_executions DROP CONSTRAINT workflow_executions_status_check,
                 ADD CONSTRAINT workflow_executions_status_check CHECK ({V3_EXECUTION_STATUS});
             ALTER TABLE {s}.step_executions DROP CONSTRAINT step_executions_status_check,
                 ADD CONSTRAINT step_executions_status_check CHECK ({V3_STEP_STATUS}),
                 DROP CONSTRAINT step_executions_kind_check,
                 ADD CONSTRAINT step_executions_kind_check CHECK ({V3_KIND});
             ALTER TABLE {s}.workflow_executions ADD COLUMN deadline_at bigint,
                 ADD COLUMN parent_id text;
             CREATE INDEX workflow_executions_by_parent ON {s}.workflow_executions (parent_id)
                 WHERE parent_id IS NOT NULL;
             ALTER TABLE {s}.admin_requests DROP CONSTRAINT admin_requests_action_check,
                 ADD CONSTRAINT admin_requests_action_check CHECK ({V3_ADMIN_ACTION}),
                 ADD COLUMN workflow_name text, ADD COLUMN input bytea;
             DROP INDEX {s}.workflow_executions_claimable;
             CREATE INDEX workflow_executions_claimable ON {s}.workflow_executions (created_at)
                 WHERE {V3_CLAIMABLE};
             {tables}",
            tables = v3_tables(s)
        ));
    }
    batch.push_str(&format!(
        "UPDATE {s}.meta SET value = '{SCHEMA_VERSION}' WHERE key = 'schema_version';"
    ));
    batch
}

/// The current schema, made at once on a new database.
fn ddl(s: &str) -> String {
    let tables = v3_tables(s);
    format!(
        "
        CREATE SCHEMA IF NOT EXISTS {s};
        CREATE TABLE {s}.meta (key text PRIMARY KEY, value text NOT NULL);
        INSERT INTO {s}.meta VALUES ('schema_version', '{SCHEMA_VERSION}');

        -- One row per worker process, its id never reused. A worker whose
        -- lease ran out is marked dead by any live one, and can commit
        -- nothing afterwards (see the function fence).
        CREATE SEQUENCE {s}.worker_ids;
        CREATE TABLE {s}.workers (
            id             bigint PRIMARY KEY,
            host           text NOT NULL,
            pid            bigint NOT NULL,
            app_version    text NOT NULL,
            workflows      text[] NOT NULL,
            registered_at  timestamptz NOT NULL DEFAULT now(),
            lease_until    timestamptz NOT NULL,
            dead_at        timestamptz
        ) WITH (fillfactor = 50);

        -- Raises unless worker w is alive, and holds its fence (a shared
        -- advisory lock) until the transaction ends: the reaper takes the
        -- fence exclusively before it declares a worker dead, so a batch
        -- either commits before its worker is declared dead, or not at
        -- all. An advisory lock, not a row lock: a row lock would write a
        -- WAL record in every batch.
        CREATE FUNCTION {s}.fence(w bigint) RETURNS void LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_advisory_xact_lock_shared(hashtext('{s}'), (w % 2147483647)::int4);
            PERFORM 1 FROM {s}.workers WHERE id = w AND dead_at IS NULL;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'worker % was declared dead: it may commit nothing more', w
                    USING ERRCODE = 'RF001';
            END IF;
        END $$;

        CREATE TABLE {s}.workflows (
            name          text PRIMARY KEY,
            module_path   text NOT NULL,
            options       text NOT NULL,
            registered_at bigint NOT NULL
        );

        CREATE TABLE {s}.workflow_executions (
            id                 text PRIMARY KEY,
            seq                bigserial NOT NULL,
            workflow_name      text NOT NULL,
            status             text NOT NULL CHECK ({V3_EXECUTION_STATUS}),
            codec              text NOT NULL,
            input              bytea NOT NULL,
            output             bytea,
            error              bytea,
            error_message      text,
            options            text NOT NULL,
            restart_attempt    bigint NOT NULL DEFAULT 0,
            recovery_attempts  bigint NOT NULL DEFAULT 0,
            pause_cause        text CHECK ({PAUSE_CAUSE}),
            wake_at            bigint,
            created_at         bigint NOT NULL,
            updated_at         bigint NOT NULL,
            completed_at       bigint,
            owner              bigint,
            claim_seq          bigint NOT NULL DEFAULT 0,
            app_version        text NOT NULL DEFAULT '',
            input_type         integer,
            output_type        integer,
            deadline_at        bigint,
            parent_id          text
        ) WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.05);
        CREATE INDEX workflow_executions_by_parent ON {s}.workflow_executions (parent_id)
            WHERE parent_id IS NOT NULL;
        CREATE INDEX workflow_executions_by_status ON {s}.workflow_executions (status, created_at);
        CREATE INDEX workflow_executions_by_created ON {s}.workflow_executions (created_at, seq);
        CREATE INDEX workflow_executions_by_owner ON {s}.workflow_executions (owner) WHERE owner IS NOT NULL;
        -- What the claim path looks for: unowned and unfinished.
        CREATE INDEX workflow_executions_claimable ON {s}.workflow_executions (created_at)
            WHERE {V3_CLAIMABLE};

        CREATE TABLE {s}.step_executions (
            execution_id   text NOT NULL,
            position       bigint NOT NULL,
            branch         text NOT NULL DEFAULT '',
            local          bigint NOT NULL,
            kind           text NOT NULL CHECK ({V3_KIND}),
            name           text NOT NULL,
            occurrence     bigint NOT NULL,
            status         text NOT NULL CHECK ({V3_STEP_STATUS}),
            attempts       bigint NOT NULL DEFAULT 0,
            output         bytea,
            error          bytea,
            error_message  text,
            wake_at        bigint,
            started_at     bigint NOT NULL,
            completed_at   bigint,
            value_type     integer,
            PRIMARY KEY (execution_id, position)
        ) WITH (fillfactor = 90, autovacuum_vacuum_scale_factor = 0.05);
        CREATE TABLE {s}.value_types (hash integer PRIMARY KEY, name text NOT NULL);

        CREATE TABLE {s}.superseded_steps (
            execution_id     text NOT NULL,
            position         bigint NOT NULL,
            branch           text NOT NULL,
            local            bigint NOT NULL,
            kind             text NOT NULL,
            name             text NOT NULL,
            occurrence       bigint NOT NULL,
            status           text NOT NULL,
            attempts         bigint NOT NULL,
            output           bytea,
            error            bytea,
            error_message    text,
            wake_at          bigint,
            started_at       bigint NOT NULL,
            completed_at     bigint,
            superseded_at    bigint NOT NULL,
            restart_attempt  bigint NOT NULL
        );
        CREATE INDEX superseded_steps_by_execution ON {s}.superseded_steps (execution_id, position);

        CREATE TABLE {s}.superseded_attempts (
            execution_id   text NOT NULL,
            position       bigint NOT NULL,
            attempt        bigint NOT NULL,
            status         text NOT NULL,
            started_at     bigint NOT NULL,
            ended_at       bigint,
            error_message  text,
            superseded_at  bigint NOT NULL
        );
        CREATE INDEX superseded_attempts_by_execution ON {s}.superseded_attempts (execution_id, position);

        CREATE TABLE {s}.admin_requests (
            id            bigserial PRIMARY KEY,
            execution_id  text NOT NULL,
            action        text NOT NULL CHECK ({V3_ADMIN_ACTION}),
            requested_at  bigint NOT NULL,
            applied_at    bigint,
            outcome       text,
            workflow_name text,
            input         bytea
        );
        CREATE INDEX admin_requests_pending ON {s}.admin_requests (id) WHERE applied_at IS NULL;

        CREATE TABLE {s}.step_attempts (
            execution_id   text NOT NULL,
            position       bigint NOT NULL,
            attempt        bigint NOT NULL,
            status         text NOT NULL CHECK ({ATTEMPT_STATUS}),
            started_at     bigint NOT NULL,
            ended_at       bigint,
            error_message  text,
            PRIMARY KEY (execution_id, position, attempt)
        );

        {tables}
        "
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{
        AdminAction, AttemptStatus, EntryKind, ExecutionStatus, PauseCause, StepStatus,
    };

    fn quoted<T: Copy>(all: &[T], text: impl Fn(T) -> &'static str) -> Vec<String> {
        all.iter().map(|v| format!("'{}'", text(*v))).collect()
    }

    #[test]
    fn the_latest_schema_allows_every_value_of_this_build() {
        for (check, values) in [
            (
                V3_EXECUTION_STATUS,
                quoted(ExecutionStatus::ALL, ExecutionStatus::as_str),
            ),
            (V3_STEP_STATUS, quoted(StepStatus::ALL, StepStatus::as_str)),
            (V3_KIND, quoted(EntryKind::ALL, EntryKind::as_str)),
            (
                ATTEMPT_STATUS,
                quoted(AttemptStatus::ALL, AttemptStatus::as_str),
            ),
            (PAUSE_CAUSE, quoted(PauseCause::ALL, PauseCause::as_str)),
            (
                V3_ADMIN_ACTION,
                quoted(AdminAction::ALL, AdminAction::as_str),
            ),
        ] {
            for value in values {
                assert!(
                    check.contains(&value),
                    "{value} is missing from `{check}`: a new value needs a migration"
                );
            }
        }
        let ddl = ddl("s");
        for check in [
            V3_EXECUTION_STATUS,
            V3_STEP_STATUS,
            V3_KIND,
            ATTEMPT_STATUS,
            PAUSE_CAUSE,
            V3_ADMIN_ACTION,
            V3_CLAIMABLE,
        ] {
            assert!(ddl.contains(check), "the new schema lacks `{check}`");
        }
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(valid_schema_name("replayflow"));
        assert!(valid_schema_name("_t1"));
        assert!(!valid_schema_name(""));
        assert!(!valid_schema_name("1abc"));
        assert!(!valid_schema_name("a-b"));
        assert!(!valid_schema_name("Upper"));
        assert!(!valid_schema_name("x; DROP TABLE y"));
        assert!(!valid_schema_name(&"a".repeat(64)));
    }
}
