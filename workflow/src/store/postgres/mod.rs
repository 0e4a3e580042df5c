//! The PostgreSQL backend: the only code that names tokio-postgres. Many
//! worker processes share one database; each registers a row with a lease
//! ([`worker`]), owns the executions it drives, and commits through one
//! writer connection in groups ([`writer`]), fenced so that a worker
//! declared dead commits nothing. Reads go through a small pool.

mod inbox;
mod ops;
mod queries;
mod schema;
mod sends;
mod tls;
mod worker;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::sync::{mpsc, oneshot};

pub(crate) use schema::valid_schema_name;
use worker::{WorkerInfo, WorkerState};
use writer::{Deferred, Life, Shared, Work};

use crate::codec::Codec;
use crate::error::{DatabaseError, Error, Result};
use crate::record::{ExecutionId, ExecutionInfo, ExecutionSummary, ListFilter};
use crate::status::{AdminAction, ExecutionStatus};
use crate::store::{
    Claimed, Durability, Entry, EntryAt, EventRow, ExecutionRow, Inserted, JournalOp, Loaded,
    NewExecution, NewMessage, Registered, Request, Sent, Taken, Transition, TypeTag, Unfinished,
    WorkflowRow,
};

type PgResult<T> = std::result::Result<T, PgError>;

/// An error of a statement, or a value read back that does not convert.
#[derive(Debug)]
pub(crate) enum PgError {
    Pg(tokio_postgres::Error),
    Decode(String),
    /// The failure of a statement that wrote for several works (a group
    /// of the writer's batch), as each of them sees it.
    Failed(Failure),
}

impl From<tokio_postgres::Error> for PgError {
    fn from(e: tokio_postgres::Error) -> Self {
        PgError::Pg(e)
    }
}

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PgError::Pg(e) => e.fmt(f),
            PgError::Decode(m) => f.write_str(m),
            PgError::Failed(failure) => failure.fmt(f),
        }
    }
}

/// The SQLSTATE the fence raises for a dead worker.
const FENCED: &str = "RF001";

/// How a runtime opens a PostgreSQL database.
#[derive(Debug, Clone)]
pub(crate) struct PgOptions {
    pub url: String,
    pub schema: String,
    pub lease: Duration,
    pub app_version: String,
    pub durability: Durability,
    pub pool_size: usize,
    /// The PEM file of the certificates the server's must chain to.
    pub root_certificate: Option<std::path::PathBuf>,
    /// The PEM files of this client's certificate (with its chain) and
    /// key, which the server may ask for (`cert` in `pg_hba.conf`).
    pub client_certificate: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// Why a batch or a work failed, shareable by every work of the batch.
#[derive(Debug, Clone)]
pub(crate) enum Failure {
    /// The worker was declared dead.
    Fenced(i64),
    /// PostgreSQL's error, as text.
    Database(Arc<str>),
    /// The connection was lost or could not be made.
    Unavailable(Arc<str>),
}

impl Failure {
    fn of(e: &PgError) -> Failure {
        match e {
            PgError::Pg(e) => Failure::pg(e),
            PgError::Decode(m) => {
                Failure::Database(format!("a stored value does not read back: {m}").into())
            }
            PgError::Failed(failure) => failure.clone(),
        }
    }

    fn pg(e: &tokio_postgres::Error) -> Failure {
        if let Some(db) = e.as_db_error() {
            if db.code().code() == FENCED {
                let worker = db
                    .message()
                    .split_whitespace()
                    .nth(1)
                    .and_then(|w| w.parse().ok())
                    .unwrap_or(-1);
                return Failure::Fenced(worker);
            }
            let mut text = db.message().to_owned();
            if let Some(detail) = db.detail() {
                text.push_str(": ");
                text.push_str(detail);
            }
            // Class 08 (connection exception) and 57 (operator intervention:
            // a shutdown, a terminated backend, a server starting up): the
            // server went away, not the statement.
            let code = db.code().code();
            if code.starts_with("08") || code.starts_with("57") {
                return Failure::Unavailable(text.into());
            }
            return Failure::Database(text.into());
        }
        let mut text = e.to_string();
        if let Some(source) = std::error::Error::source(e) {
            text.push_str(": ");
            text.push_str(&source.to_string());
        }
        if e.is_closed() || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()) {
            return Failure::Unavailable(text.into());
        }
        Failure::Database(text.into())
    }

    fn to_error(&self) -> Error {
        match self {
            Failure::Fenced(worker) => Error::Fenced { worker: *worker },
            Failure::Database(text) => {
                Error::Database(DatabaseError::new(PgFailure(Arc::clone(text))))
            }
            Failure::Unavailable(text) => Error::Unavailable(text.to_string()),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.to_error().fmt(f)
    }
}

/// PostgreSQL's message, carried inside [`DatabaseError`].
#[derive(Debug)]
struct PgFailure(Arc<str>);

impl std::fmt::Display for PgFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PgFailure {}

fn pg(e: impl Into<PgError>) -> Error {
    Failure::of(&e.into()).to_error()
}

/// A column value that does not convert.
fn conversion(message: String) -> PgError {
    PgError::Decode(message)
}

/// A count as the schema stores it.
fn n(value: u32) -> i64 {
    i64::from(value)
}

/// A stored count back into the journal's type.
fn int(value: i64) -> PgResult<u32> {
    u32::try_from(value).map_err(|_| conversion(format!("{value} is out of range")))
}

/// A status (or kind, cause, action) from its text.
fn parse<T: std::str::FromStr<Err = String>>(text: &str) -> PgResult<T> {
    text.parse().map_err(conversion)
}

/// An execution's codec from its name.
fn codec(name: &str) -> PgResult<Codec> {
    Codec::from_name(name).ok_or_else(|| {
        conversion(format!(
            "unknown codec `{name}` (built without its cargo feature?)"
        ))
    })
}

/// The journal store on a PostgreSQL database.
pub(crate) struct PgStore {
    shared: Arc<Shared>,
    writer: mpsc::UnboundedSender<Work>,
    /// Sends, committed in groups (see `sends`).
    sender: mpsc::UnboundedSender<sends::Send>,
    /// The app versions whose executions this worker claims (empty: all).
    versions: Arc<Vec<String>>,
    workflows: Arc<Vec<String>>,
    /// The database's clock when this worker registered (Unix ms).
    pub db_now_at_open: Option<i64>,
    /// The PostgreSQL schema, for messages.
    schema: String,
    /// The schema's version as it was opened: older than this build's
    /// only for an admin, whose connections then read through temporary
    /// tables and views (`schema::read_as_current`), even if a worker
    /// migrates the schema meanwhile.
    schema_version: i64,
}

impl PgStore {
    /// Connects, creates or checks the schema, and (unless `admin`)
    /// registers a worker row for the workflows this process runs.
    pub(crate) async fn open(
        options: PgOptions,
        registered: &Registered,
        admin: bool,
    ) -> Result<PgStore> {
        if !valid_schema_name(&options.schema) {
            return Err(Error::InvalidOption(format!(
                "`{}` cannot name the PostgreSQL schema: use lowercase letters, digits and `_`, starting with a letter or `_`, at most 63 characters",
                options.schema
            )));
        }
        // libpq's file parameters, which tokio-postgres does not read.
        let (url, files) = tls::split_files(&options.url)?;
        let mut config: tokio_postgres::Config = url.parse().map_err(url_error)?;
        let root = files.root.or(options.root_certificate.clone());
        let client = match (files.cert, files.key, options.client_certificate.clone()) {
            (Some(cert), Some(key), _) => Some((cert, key)),
            (None, None, given) => given,
            _ => {
                return Err(Error::InvalidOption(
                    "the PostgreSQL URL names only one of sslcert and sslkey: a client certificate needs both".into(),
                ));
            }
        };
        let mut settings = format!("-c search_path={}", options.schema);
        if options.durability != Durability::Full {
            settings.push_str(" -c synchronous_commit=off");
        }
        config.options(&settings);
        // Names the schema too, so that an operator (or a test) can tell
        // the workers of one deployment apart in `pg_stat_activity`.
        config.application_name(format!("replayflow {}", options.schema));
        let mode = config.get_ssl_mode();
        let trust = tls::trust(mode, root.as_deref())?;
        let tls = {
            let trust = trust.clone();
            tokio::task::spawn_blocking(move || tls::connector(mode, &trust, client.as_ref()))
                .await
                .map_err(|_| Error::Shutdown)??
        };
        let (mut setup, connection) = config
            .connect(tls::share(&tls))
            .await
            .map_err(|e| tls::explain(&e, mode, &trust).unwrap_or_else(|| pg(e)))?;
        let driver = tokio::spawn(connection);
        let version = schema::prepare(&mut setup, &options.schema, !admin).await?;
        let missing = !admin
            && !schema::missing_indexes(&setup, &options.schema)
                .await
                .map_err(pg)?
                .is_empty();
        if missing {
            // On a connection of its own: a build may take a while.
            let (config, tls, schema) = (config.clone(), tls::share(&tls), options.schema.clone());
            tokio::spawn(async move {
                match config.connect(tls).await {
                    Ok((client, connection)) => {
                        let driver = tokio::spawn(connection);
                        schema::add_indexes(&client, &schema).await;
                        drop(client);
                        let _ = driver.await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot connect to add the indexes this build uses")
                    }
                }
            });
        }
        let mut workflows: Vec<String> = registered
            .workflows
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        workflows.sort();
        let (worker, db_now) = if admin {
            (None, None)
        } else {
            let info = WorkerInfo {
                host: hostname(),
                pid: i64::from(std::process::id()),
                app_version: options.app_version.clone(),
                workflows: workflows.clone(),
            };
            let (state, db_now) = WorkerState::register(
                &setup,
                config.clone(),
                tls::share(&tls),
                info,
                options.lease,
            )
            .await
            .map_err(pg)?;
            (Some(state), Some(db_now))
        };
        drop(setup);
        driver.abort();
        let manager = Manager::from_config(
            config,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        // Bounded waits: a server that stops answering makes reads fail
        // with `Unavailable` instead of queueing them forever.
        let mut pool = Pool::builder(manager);
        if let Some(views) = schema::read_as_current(&options.schema, version) {
            let views: Arc<str> = views.into();
            pool = pool.post_create(deadpool_postgres::Hook::async_fn(move |client, _| {
                let views = Arc::clone(&views);
                Box::pin(async move {
                    client
                        .batch_execute(&views)
                        .await
                        .map_err(deadpool_postgres::HookError::Backend)
                })
            }));
        }
        let pool = pool
            .max_size(options.pool_size.max(2))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(10)))
            .build()
            .map_err(|e| Error::InvalidOption(format!("cannot build the connection pool: {e}")))?;
        let shared = Arc::new(Shared {
            pool,
            worker,
            disowned: writer::Disowned::default(),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(writer::run(Arc::clone(&shared), rx));
        let (sender, sends) = mpsc::unbounded_channel();
        tokio::spawn(sends::run(shared.pool.clone(), sends));
        Ok(PgStore {
            shared,
            writer: tx,
            sender,
            versions: Arc::new(registered.version_list()),
            workflows: Arc::new(workflows),
            db_now_at_open: db_now,
            schema: options.schema,
            schema_version: version,
        })
    }

    fn me(&self) -> Option<i64> {
        self.shared.worker.as_ref().map(|w| w.id())
    }

    /// This worker's id, if it is one (not an admin).
    pub(crate) fn worker_id(&self) -> Option<i64> {
        self.me()
    }

    /// The workers of the schema, live ones first (a pooled read).
    pub(crate) async fn workers(&self) -> Result<Vec<crate::record::WorkerInfo>> {
        let client = self.client().await?;
        queries::workers(&client, self.me()).await.map_err(pg)
    }

    /// The worker's lease, unless an admin.
    pub(crate) fn lease(&self) -> Option<std::time::Duration> {
        self.shared.worker.as_ref().map(|w| w.lease)
    }

    /// Whether the worker lost its lease.
    pub(crate) fn fenced(&self) -> bool {
        self.shared.worker.as_ref().is_some_and(|w| w.is_fenced())
    }

    /// Whether this process must stop driving `id` without writing.
    pub(crate) fn disowned(&self, id: &ExecutionId) -> bool {
        self.fenced() || self.shared.disowned.contains(id)
    }

    /// Marks `id` as no longer this process's to write.
    pub(crate) fn disown(&self, id: &ExecutionId) {
        self.shared.disowned.mark(id);
    }

    fn own_again(&self, id: &ExecutionId) {
        self.shared.disowned.clear(id);
    }

    /// Registers a new worker row after a fence.
    pub(crate) async fn reregister(&self) -> Result<()> {
        let Some(worker) = &self.shared.worker else {
            return Ok(());
        };
        let client = self.client().await?;
        worker.reregister(&client).await.map_err(pg)?;
        Ok(())
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.shared
            .pool
            .get()
            .await
            .map_err(|e| Failure::Unavailable(e.to_string().into()).to_error())
    }

    fn send(&self, work: Work) {
        // A closed writer drops the work, and its reply with it: the
        // caller sees `Shutdown`.
        let _ = self.writer.send(work);
    }

    async fn life<T>(&self, make: impl FnOnce(Deferred<T>) -> Life) -> Result<T> {
        let (out, rx) = Deferred::new();
        self.send(Work::Life(make(out), self.me()));
        rx.await.map_err(|_| Error::Shutdown)?
    }

    pub(crate) fn close_and_wait(&self) {
        let (done, rx) = oneshot::channel();
        self.send(Work::Close(done));
        let _ = rx.blocking_recv();
    }

    pub(crate) fn close(&self) {
        let (done, _rx) = oneshot::channel();
        self.send(Work::Close(done));
    }

    pub(crate) async fn commit(&self, op: JournalOp) -> Result<()> {
        if self.disowned(op.owner()) {
            return Err(Error::Disowned(op.owner().clone()));
        }
        let (reply, rx) = oneshot::channel();
        self.send(Work::Op {
            op,
            me: self.me(),
            reply: Some(reply),
            result: None,
        });
        rx.await.map_err(|_| Error::Shutdown)?
    }

    pub(crate) fn queue(&self, op: JournalOp) {
        if self.disowned(op.owner()) {
            return;
        }
        self.send(Work::Op {
            op,
            me: self.me(),
            reply: None,
            result: None,
        });
    }

    pub(crate) async fn insert_execution(&self, new: NewExecution) -> Result<Inserted> {
        let id = new.id.clone();
        match self.life(|out| Life::Insert(new, out)).await? {
            Inserted::Existing { workflow, .. } if workflow.is_empty() => {
                // Inserted by another transaction after the statement's
                // snapshot (a start of the same id at the same moment):
                // committed by now, since the insert waited for it.
                let client = self.client().await?;
                let row = queries::load_execution(&client, &id).await.map_err(pg)?;
                Ok(Inserted::Existing {
                    workflow: row.as_ref().map(|r| r.workflow.clone()).unwrap_or_default(),
                    parent: row.and_then(|r| r.parent_id),
                })
            }
            inserted => Ok(inserted),
        }
    }

    /// Claims `id` to drive it, and loads it. What this worker runs is the
    /// registry it was opened with (`_registered` is the same, passed for
    /// the SQLite store).
    pub(crate) async fn claim_for_replay(
        &self,
        id: &ExecutionId,
        _registered: Registered,
        now: i64,
        woken: bool,
    ) -> Result<Claimed> {
        let claimed = self
            .life(|out| Life::Claim {
                id: id.clone(),
                now,
                woken,
                workflows: Arc::clone(&self.workflows),
                versions: Arc::clone(&self.versions),
                out,
            })
            .await?;
        if matches!(claimed, Claimed::Loaded(_)) {
            self.own_again(id);
        }
        Ok(claimed)
    }

    pub(crate) async fn begin_restart(&self, id: &ExecutionId, now: i64) -> Result<Option<Loaded>> {
        let loaded = self
            .life(|out| Life::BeginRestart(id.clone(), now, out))
            .await?;
        if loaded.is_some() {
            self.own_again(id);
        }
        Ok(loaded)
    }

    pub(crate) async fn set_status(
        &self,
        id: &ExecutionId,
        status: ExecutionStatus,
        transition: Transition,
        now: i64,
    ) -> Result<(bool, Transition)> {
        if self.disowned(id) {
            return Err(Error::Disowned(id.clone()));
        }
        let (reply, rx) = oneshot::channel();
        self.send(Work::Life(
            Life::SetStatus {
                id: id.clone(),
                status,
                transition,
                now,
                result: None,
                reply,
            },
            self.me(),
        ));
        rx.await.map_err(|_| Error::Shutdown)?
    }

    pub(crate) async fn wake_now(&self, id: &ExecutionId, now: i64) -> Result<()> {
        self.life(|out| Life::WakeNow(id.clone(), now, out)).await
    }

    pub(crate) async fn register_workflows(&self, rows: Vec<WorkflowRow>, now: i64) -> Result<()> {
        self.life(|out| Life::Register(rows, now, out)).await
    }

    /// Marks dead the workers whose lease ran out and releases their executions.
    pub(crate) async fn reap(&self) -> Result<Vec<i64>> {
        self.life(Life::Reap).await
    }

    /// Claims executions nobody owns that this worker can run, with the
    /// recovery count of each.
    /// Claims up to `limit` executions nobody owns: those that need a
    /// driver, and sleeping or waiting ones due by `due_by` (Unix ms).
    pub(crate) async fn claim_orphans(
        &self,
        due_by: i64,
        limit: i64,
    ) -> Result<Vec<(Unfinished, u32)>> {
        let workflows = Arc::clone(&self.workflows);
        let versions = Arc::clone(&self.versions);
        let claimed = self
            .life(|out| Life::ClaimOrphans {
                workflows,
                versions,
                due_by,
                limit,
                out,
            })
            .await?;
        for (row, _) in &claimed {
            self.own_again(&row.id);
        }
        Ok(claimed)
    }

    /// Executions this worker owns in a status that needs a driver.
    pub(crate) async fn owned_running(&self) -> Result<Vec<ExecutionId>> {
        let Some(me) = self.me() else {
            return Ok(Vec::new());
        };
        let client = self.client().await?;
        queries::owned_running(&client, me).await.map_err(pg)
    }

    pub(crate) async fn insert_request(
        &self,
        id: &ExecutionId,
        action: AdminAction,
        now: i64,
    ) -> Result<i64> {
        let client = self.client().await?;
        queries::insert_request(&client, id, action, now)
            .await
            .map_err(pg)
    }

    pub(crate) async fn request_outcome(
        &self,
        request: i64,
    ) -> Result<Option<(Option<i64>, Option<String>)>> {
        let client = self.client().await?;
        queries::request_outcome(&client, request).await.map_err(pg)
    }

    pub(crate) async fn finish_request(
        &self,
        request: i64,
        outcome: String,
        now: i64,
    ) -> Result<()> {
        self.life(|out| Life::FinishRequest(request, outcome, now, out))
            .await
    }

    pub(crate) async fn load_execution(&self, id: &ExecutionId) -> Result<Option<ExecutionRow>> {
        let client = self.client().await?;
        queries::load_execution(&client, id).await.map_err(pg)
    }

    pub(crate) async fn insert_type(&self, tag: TypeTag) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO value_types (hash, name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&tag.hash, &tag.name],
            )
            .await
            .map(drop)
            .map_err(|e| pg(PgError::from(e)))
    }

    pub(crate) async fn type_name(&self, hash: i32) -> Result<Option<String>> {
        let client = self.client().await?;
        client
            .query_opt("SELECT name FROM value_types WHERE hash = $1", &[&hash])
            .await
            .map(|row| row.map(|r| r.get(0)))
            .map_err(|e| pg(PgError::from(e)))
    }

    pub(crate) async fn type_names(&self) -> Result<std::collections::HashMap<i32, String>> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT hash, name FROM value_types", &[])
            .await
            .map_err(|e| pg(PgError::from(e)))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub(crate) async fn load_journal(&self, id: &ExecutionId) -> Result<Vec<Entry>> {
        let client = self.client().await?;
        queries::load_journal(&client, id).await.map_err(pg)
    }

    pub(crate) async fn unfinished_page(&self, after: String, limit: u32) -> Result<Vec<Loaded>> {
        let client = self.client().await?;
        queries::unfinished_page(&client, &after, limit)
            .await
            .map_err(pg)
    }

    pub(crate) async fn load_info(&self, id: &ExecutionId) -> Result<Option<ExecutionInfo>> {
        let client = self.client().await?;
        queries::load_info(&client, id).await.map_err(pg)
    }

    pub(crate) async fn list(&self, filter: ListFilter) -> Result<Vec<ExecutionSummary>> {
        let client = self.client().await?;
        queries::list(&client, &filter).await.map_err(pg)
    }

    pub(crate) async fn count_by_status(
        &self,
        filter: ListFilter,
    ) -> Result<Vec<(ExecutionStatus, u64)>> {
        let client = self.client().await?;
        queries::count_by_status(&client, &filter).await.map_err(pg)
    }

    pub(crate) async fn registered_workflows(&self) -> Result<Vec<String>> {
        let client = self.client().await?;
        queries::registered_workflows(&client).await.map_err(pg)
    }

    pub(crate) async fn due_sleepers(&self, now: i64) -> Result<Vec<ExecutionId>> {
        let Some(me) = self.me() else {
            return Ok(Vec::new());
        };
        let client = self.client().await?;
        queries::due_sleepers(&client, me, now).await.map_err(pg)
    }

    pub(crate) async fn prune_batch(&self, cutoff: i64, limit: u32) -> Result<u64> {
        let client = self.client().await?;
        queries::prune_batch(&client, cutoff, limit)
            .await
            .map_err(pg)
    }

    /// The tables' size on disk; PostgreSQL's free space inside them is
    /// its autovacuum's to track and reuse.
    pub(crate) async fn file_space(&self) -> Result<crate::store::FileSpace> {
        let client = self.client().await?;
        let bytes = queries::schema_bytes(&client).await.map_err(pg)?;
        Ok(crate::store::FileSpace {
            bytes,
            free_bytes: 0,
            incremental: false,
        })
    }

    /// Nothing to give back by hand: autovacuum makes the space of deleted
    /// rows reusable (the hot tables are created with an aggressive
    /// `autovacuum_vacuum_scale_factor`).
    pub(crate) async fn reclaim_space(
        &self,
        _pages: u32,
    ) -> Result<(u64, crate::store::FileSpace)> {
        Ok((0, self.file_space().await?))
    }

    /// Whether another live worker owns `id` now.
    pub(crate) async fn owned_elsewhere(&self, id: &ExecutionId) -> Result<bool> {
        let client = self.client().await?;
        queries::owner_elsewhere(&client, id, self.me())
            .await
            .map(|o| o.is_some())
            .map_err(pg)
    }

    pub(crate) async fn pending_requests(&self) -> Result<Vec<Request>> {
        let Some(me) = self.me() else {
            return Ok(Vec::new());
        };
        let client = self.client().await?;
        queries::pending_requests(&client, me, &self.workflows)
            .await
            .map_err(pg)
    }

    /// Refuses `what` on a schema older than messages and start requests (an
    /// admin's open of a schema no worker of this build migrated: its
    /// connections would write to temporary tables).
    fn needs_messages(&self, what: &'static str) -> Result<()> {
        if self.schema_version < schema::MESSAGES_VERSION {
            return Err(Error::NotMigrated {
                path: format!("postgres schema `{}`", self.schema),
                found: self.schema_version,
                needed: schema::MESSAGES_VERSION,
                what,
            });
        }
        Ok(())
    }

    pub(crate) async fn insert_start_request(
        &self,
        id: &ExecutionId,
        workflow: &str,
        input: Vec<u8>,
        now: i64,
    ) -> Result<i64> {
        self.needs_messages("a request to start a workflow")?;
        let client = self.client().await?;
        queries::insert_start_request(&client, id, workflow, &input, now)
            .await
            .map_err(pg)
    }

    /// Commits a message to an execution's inbox. Not fenced, and not
    /// through the writer: any process sends, a worker or an admin (which
    /// has no worker row). Refused on a schema older than messages (an
    /// admin's open of a schema no worker of this build migrated: its
    /// connections would write the message to a temporary table).
    /// Commits a message to an inbox, in a group with the sends of this
    /// process at the same moment (see `sends`).
    pub(crate) async fn send_message(&self, message: NewMessage) -> Result<Sent> {
        self.needs_messages("sending a message")?;
        let (reply, rx) = oneshot::channel();
        // A closed sender task drops the send and its reply: `Shutdown`.
        let _ = self.sender.send(sends::Send { message, reply });
        rx.await.map_err(|_| Error::Shutdown)?
    }

    /// Takes the oldest message of topic `at.name` into the `recv` entry
    /// at `at`, through the writer's batch: only while this worker owns
    /// the execution.
    pub(crate) async fn take_message(
        &self,
        at: EntryAt,
        value_type: i32,
        sent_by: Option<i64>,
        now: i64,
    ) -> Result<Option<Taken>> {
        let id = at.execution.clone();
        if self.disowned(&id) {
            return Err(Error::Disowned(id));
        }
        match self
            .life(|out| Life::TakeMessage(at, value_type, sent_by, now, out))
            .await?
        {
            inbox::Took::Taken(taken) => Ok(taken),
            inbox::Took::NotOwned => {
                self.disown(&id);
                Err(Error::Disowned(id))
            }
        }
    }

    /// Whether a message on `topic` waits in `id`'s inbox (a pooled read).
    pub(crate) async fn has_message(&self, id: &ExecutionId, topic: &str) -> Result<bool> {
        let client = self.client().await?;
        inbox::has_message(&client, id, topic).await.map_err(pg)
    }

    /// The latest value of each event key of `id` (of `key` alone, if
    /// given), by key; `None` when there is no such execution.
    pub(crate) async fn events(
        &self,
        id: &ExecutionId,
        key: Option<String>,
    ) -> Result<Option<Vec<EventRow>>> {
        let client = self.client().await?;
        inbox::events(&client, id, key.as_deref()).await.map_err(pg)
    }

    pub(crate) async fn children(&self, id: &ExecutionId) -> Result<Vec<crate::store::ChildRow>> {
        let client = self.client().await?;
        queries::children(&client, id).await.map_err(pg)
    }

    pub(crate) async fn stream_rows(
        &self,
        id: &ExecutionId,
        key: &str,
        from: i64,
        limit: u32,
    ) -> Result<Option<crate::store::StreamRead>> {
        let client = self.client().await?;
        inbox::stream_rows(&client, id, key, from, limit)
            .await
            .map_err(pg)
    }
}

/// The URL parser's error with its cause (its own text is only "invalid
/// connection string").
fn url_error(e: tokio_postgres::Error) -> Error {
    let mut text = format!("cannot read the PostgreSQL URL: {e}");
    if let Some(cause) = std::error::Error::source(&e) {
        text = format!("{text}: {cause}");
        if cause.to_string().contains("`sslmode`") {
            text.push_str(
                " (disable, prefer or require; with the `postgres-tls` feature, require verifies the server's certificate and name, as libpq's verify-full)",
            );
        }
    }
    Error::InvalidOption(text)
}

/// This machine's name, for the worker row.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".to_owned())
}
