//! [`RuntimeBuilder`]: options, the workflow registry, and opening.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::execution::{Defaults, Engine, Registration, Registry, WorkflowDescriptor, panic};
use crate::retry::RetryPolicy;
use crate::runtime::{Runtime, Workflow};
use crate::store::{Claimable, Durability, FileOptions, IntegrityCheck, Store, WorkflowRow};

/// Options for opening a [`Runtime`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), replayflow::Error> {
/// use std::time::Duration;
/// use replayflow::{Durability, RetryPolicy, Runtime};
///
/// let rt = Runtime::builder()
///     .in_memory()
///     .durability(Durability::Normal)
///     .retry(RetryPolicy::default().max_attempts(5).backoff(Duration::from_millis(100)))
///     .open()
///     .await?;
/// # drop(rt);
/// # Ok(())
/// # }
/// ```
pub struct RuntimeBuilder {
    path: Option<PathBuf>,
    durability: Durability,
    codec: Codec,
    retry: RetryPolicy,
    max_restarts: u32,
    restart_delay: Duration,
    auto_restart: bool,
    max_payload: usize,
    clock: Arc<dyn Clock>,
    panic_hook: bool,
    suspend_after: Duration,
    recovery_budget: u32,
    busy_timeout: Duration,
    max_size: Option<u64>,
    integrity_check: IntegrityCheck,
    retention: Option<Duration>,
    admin: bool,
    /// Read-only, as the file is on disk ([`RuntimeBuilder::snapshot`]).
    snapshot: bool,
    extra: Vec<&'static WorkflowDescriptor>,
    postgres: Option<String>,
    root_certificate: Option<PathBuf>,
    client_certificate: Option<(PathBuf, PathBuf)>,
    schema: String,
    lease: Duration,
    pool_size: usize,
    app_version: Option<String>,
    accept_versions: Option<HashSet<String>>,
}

impl Default for RuntimeBuilder {
    fn default() -> Self {
        RuntimeBuilder {
            path: None,
            durability: Durability::Full,
            codec: Codec::Json,
            retry: RetryPolicy::default(),
            max_restarts: 3,
            restart_delay: Duration::from_secs(5),
            auto_restart: true,
            max_payload: 16 * 1024 * 1024,
            clock: Arc::new(SystemClock),
            panic_hook: true,
            suspend_after: Duration::from_millis(500),
            recovery_budget: 3,
            busy_timeout: Duration::from_secs(5),
            max_size: None,
            integrity_check: IntegrityCheck::default(),
            retention: None,
            admin: false,
            snapshot: false,
            extra: Vec::new(),
            postgres: None,
            root_certificate: None,
            client_certificate: None,
            schema: "replayflow".to_owned(),
            lease: Duration::from_secs(10),
            pool_size: 8,
            app_version: None,
            accept_versions: None,
        }
    }
}

impl RuntimeBuilder {
    /// The database file (created if missing). Without it, or with
    /// [`RuntimeBuilder::in_memory`], the database lives in memory.
    pub fn path(mut self, path: impl AsRef<Path>) -> Self {
        self.path = Some(path.as_ref().to_owned());
        self
    }

    /// A private in-memory database.
    pub fn in_memory(mut self) -> Self {
        self.path = None;
        self.postgres = None;
        self
    }

    /// A PostgreSQL database (`postgres://user@host/db`) that several
    /// worker processes share: each registers itself with a lease, owns the
    /// executions it drives, and takes over those of a worker whose lease
    /// ran out. Needs the `postgres` cargo feature. A `path` that is such a
    /// URL does the same.
    ///
    /// The URL's `sslmode` is honoured, with the `postgres-tls` cargo
    /// feature (rustls), by every connection the runtime opens:
    ///
    /// - `disable`: in clear.
    /// - `prefer` (the default): TLS when the server offers it, else in
    ///   clear; as libpq does, the server's certificate is verified only
    ///   against a [root certificate](Self::postgres_root_certificate)
    ///   given here.
    /// - `require`: TLS or no connection, and the server's certificate must
    ///   chain to the given root certificate, or else to a root certificate
    ///   of the system (read from `SSL_CERT_FILE` or `SSL_CERT_DIR` when
    ///   set), and name the URL's host. This is stricter than libpq's `require`,
    ///   which verifies nothing without a root certificate: it is libpq's
    ///   `verify-full`, a mode the URL parser does not know.
    ///
    /// Without the feature there is no TLS: `prefer` connects in clear,
    /// and `sslmode=require` refuses to open ([`Error::InvalidOption`],
    /// naming the feature). A failed handshake at open is [`Error::Tls`].
    ///
    /// libpq's file parameters work in the URL too: `sslrootcert` (as
    /// [`postgres_root_certificate`](Self::postgres_root_certificate)),
    /// `sslcert` and `sslkey` (as
    /// [`postgres_client_certificate`](Self::postgres_client_certificate)),
    /// paths percent-encoded; the URL's win over the builder's.
    ///
    /// ```no_run
    /// # async fn open() -> Result<(), replayflow::Error> {
    /// let rt = replayflow::Runtime::builder()
    ///     .postgres("postgres://app@db.internal/app?sslmode=require")
    ///     .postgres_root_certificate("/etc/app/db-ca.pem") // a private CA
    ///     .open()
    ///     .await?;
    /// # drop(rt);
    /// # Ok(())
    /// # }
    /// ```
    pub fn postgres(mut self, url: impl Into<String>) -> Self {
        self.postgres = Some(url.into());
        self.path = None;
        self
    }

    /// A PEM file of the certificates (a private CA, or the server's own
    /// self-signed one) that the PostgreSQL server's certificate must chain
    /// to, instead of the system's root certificates; it must also name the
    /// URL's host. It applies with `sslmode=prefer` and `require` (see
    /// [`postgres`](Self::postgres)) and needs the `postgres-tls` cargo
    /// feature: without it, opening fails rather than ignoring it.
    pub fn postgres_root_certificate(mut self, pem: impl AsRef<Path>) -> Self {
        self.root_certificate = Some(pem.as_ref().to_owned());
        self
    }

    /// This client's certificate (a PEM file, with the intermediate
    /// certificates after it, if any) and its private key (a PEM file:
    /// PKCS#8, PKCS#1 or SEC1), offered to a PostgreSQL server that asks
    /// for one: with `cert` authentication in its `pg_hba.conf` the
    /// certificate's common name is the user. Needs TLS (`sslmode=prefer`
    /// or `require`) and the `postgres-tls` cargo feature: without it,
    /// opening fails rather than ignoring it. A key that does not match the
    /// certificate is [`Error::Tls`] at open.
    ///
    /// ```no_run
    /// # async fn open() -> Result<(), replayflow::Error> {
    /// let rt = replayflow::Runtime::builder()
    ///     .postgres("postgres://worker@db.internal/app?sslmode=require")
    ///     .postgres_root_certificate("/etc/app/db-ca.pem")
    ///     .postgres_client_certificate("/etc/app/worker.crt", "/etc/app/worker.key")
    ///     .open()
    ///     .await?;
    /// # drop(rt);
    /// # Ok(())
    /// # }
    /// ```
    pub fn postgres_client_certificate(
        mut self,
        certificate: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Self {
        self.client_certificate = Some((certificate.as_ref().to_owned(), key.as_ref().to_owned()));
        self
    }

    /// The PostgreSQL schema of the tables (default `replayflow`): lowercase
    /// letters, digits and `_`.
    pub fn schema(mut self, name: impl Into<String>) -> Self {
        self.schema = name.into();
        self
    }

    /// How long a worker on PostgreSQL stays owner of its executions without
    /// renewing its lease (default 10 s; renewed every third of it). A
    /// worker killed or cut off is taken over within this time and a sweep
    /// (1 s); a shorter lease takes over sooner but fences a worker stalled
    /// for less.
    pub fn lease(mut self, ttl: Duration) -> Self {
        self.lease = ttl;
        self
    }

    /// How many connections to PostgreSQL the runtime opens at most besides
    /// its lease's (default 8, at least 2): one is the writer's, the others
    /// serve reads, sends and admin calls. Sends from many tasks at once go
    /// as fast as this many connections commit; each costs a server backend.
    pub fn postgres_pool_size(mut self, connections: usize) -> Self {
        self.pool_size = connections;
        self
    }

    /// The version of the application's code, recorded with each execution
    /// this runtime starts (and, on PostgreSQL, with the worker). By
    /// default each execution records the version of the package that
    /// defines its workflow (its `CARGO_PKG_VERSION`). `list`, `show` and
    /// the HTTP API show it; see [`accept_versions`](Self::accept_versions).
    pub fn app_version(mut self, version: impl Into<String>) -> Self {
        self.app_version = Some(version.into());
        self
    }

    /// Runs only executions started by these versions of the code (and
    /// those that record none): the others are left as they are, with a
    /// warning, for a process of their version to run, e.g. while two
    /// versions of an application run side by side. By default every
    /// version is run: the pre-deploy check
    /// ([`Runtime::check`](crate::Runtime::check)) tells whether this code
    /// can.
    ///
    /// ```
    /// # use replayflow::Runtime;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = Runtime::builder()
    ///     .in_memory()
    ///     .app_version("2.1.0")
    ///     .accept_versions(["2.0.0", "2.1.0"])
    ///     .open()
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn accept_versions<I, S>(mut self, versions: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.accept_versions = Some(versions.into_iter().map(Into::into).collect());
        self
    }

    /// How hard commits push to the disk (default [`Durability::Full`]).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// The codec of new executions (default JSON).
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// The default retry policy of steps (3 attempts, 1 s, exponential).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Restarts allowed after panics, by default (3).
    pub fn max_restarts(mut self, n: u32) -> Self {
        self.max_restarts = n;
        self
    }

    /// Wait before a restart, by default (5 s).
    pub fn restart_delay(mut self, delay: Duration) -> Self {
        self.restart_delay = delay;
        self
    }

    /// Whether panicked executions restart by themselves (default on).
    pub fn auto_restart(mut self, on: bool) -> Self {
        self.auto_restart = on;
        self
    }

    /// The largest encoded input or step result accepted (default 16 MiB).
    pub fn max_payload_bytes(mut self, limit: usize) -> Self {
        self.max_payload = limit;
        self
    }

    /// Where wall time comes from (default the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Whether to install the panic hook that records panic locations
    /// (default on; it chains to the hook already installed).
    pub fn panic_hook(mut self, on: bool) -> Self {
        self.panic_hook = on;
        self
    }

    /// Sleeps (and retry backoffs) longer than this suspend the execution:
    /// its task and future are dropped and it is resumed by replay when due.
    /// Shorter ones wait in memory, because suspending costs two journal
    /// writes and a replay, more than holding a future for a moment.
    /// Default 500 ms.
    pub fn suspend_after(mut self, threshold: Duration) -> Self {
        self.suspend_after = threshold;
        self
    }

    /// How many times in a row an execution may be taken over after an
    /// unclean end (the process died while it ran) before it is paused
    /// instead: a workflow that kills its process every time must not loop
    /// forever. Progress (a completed step) resets the count. Default 3.
    pub fn recovery_budget(mut self, n: u32) -> Self {
        self.recovery_budget = n;
        self
    }

    /// How long a write waits for another connection's lock on the file
    /// before trying again (three tries, then [`Error::Busy`]). Default 5 s.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// When opening a file reads all of it to check its integrity before
    /// anything writes to it (default [`IntegrityCheck::AfterUncleanEnd`]).
    pub fn integrity_check(mut self, when: IntegrityCheck) -> Self {
        self.integrity_check = when;
        self
    }

    /// Caps the database file's size: a write that would grow it further
    /// fails, and the execution that made it is paused (resumable once space
    /// is freed) instead of going on unrecorded. Default: no cap.
    pub fn max_database_size(mut self, bytes: u64) -> Self {
        self.max_size = Some(bytes);
        self
    }

    /// Deletes finished executions (completed, failed or cancelled) once
    /// they ended longer ago than `keep`, with their journal, attempts,
    /// superseded entries and admin requests, and gives the space back
    /// (see [`Runtime::prune`], which this runs at open and every minute
    /// after). The deletion goes in batches through the journal's writer,
    /// pacing itself so that steps keep committing meanwhile. Unfinished
    /// executions are never touched, however old. Default: executions are
    /// kept forever. An admin open ignores it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), replayflow::Error> {
    /// use std::time::Duration;
    /// use replayflow::Runtime;
    ///
    /// let rt = Runtime::builder()
    ///     .in_memory() // an application gives `.path("app.db")`
    ///     .retention(Duration::from_secs(30 * 24 * 3600))
    ///     .open()
    ///     .await?;
    /// # drop(rt);
    /// # Ok(())
    /// # }
    /// ```
    pub fn retention(mut self, keep: Duration) -> Self {
        self.retention = Some(keep);
        self
    }

    /// Opens an existing database file as an admin (for a CLI or a
    /// dashboard beside the application): no worker lock is taken and
    /// nothing is run or recovered; `status` and `list` read, and `cancel`,
    /// `resume` and `restart` record requests that the worker process picks
    /// up within a second.
    pub fn admin(mut self) -> Self {
        self.admin = true;
        self
    }

    /// Like [`admin`](Self::admin), but reads the file strictly read-only,
    /// as it is on disk when opened (SQLite's `immutable` mode): for a
    /// database in a directory this process cannot write, where SQLite
    /// cannot create the `-wal` and `-shm` files it needs to read a
    /// WAL-mode file. Writes (`cancel`, `resume`, `restart`) fail, and
    /// changes made after the open are not seen. Refused, naming the
    /// directory, when a `-wal` file with content lies beside the database
    /// (a worker is running or stopped uncleanly): reading in place would
    /// miss that content.
    pub fn snapshot(mut self) -> Self {
        self.admin = true;
        self.snapshot = true;
        self
    }

    /// Registers a workflow explicitly (workflows also register themselves
    /// at link time; registering one twice is harmless).
    pub fn register<W: Workflow>(mut self) -> Self {
        self.extra.push(W::descriptor());
        self
    }

    /// Opens the database and builds the runtime.
    pub async fn open(self) -> Result<Runtime> {
        if self.retry.max_attempts == 0 {
            return Err(Error::InvalidOption(
                "retry.max_attempts must be at least 1".into(),
            ));
        }
        if self.accept_versions.as_ref().is_some_and(HashSet::is_empty) {
            return Err(Error::InvalidOption(
                "accept_versions needs at least one version".into(),
            ));
        }
        let registry = build_registry(
            inventory::iter::<Registration>
                .into_iter()
                .map(|r| (r.0)())
                .chain(self.extra.iter().copied()),
        )?;
        if self.panic_hook {
            panic::install_hook();
        }
        let path = self.path.clone();
        let durability = self.durability;
        let busy_timeout = self.busy_timeout;
        let file_options = FileOptions {
            durability,
            busy_timeout,
            max_size: self.max_size,
            integrity_check: self.integrity_check,
        };
        let admin = self.admin;
        let snapshot = self.snapshot;
        let url = self.postgres.clone().or_else(|| {
            let text = path.as_ref()?.to_str()?;
            is_postgres_url(text).then(|| text.to_owned())
        });
        if let Some(url) = url {
            let store = self.open_postgres(url, &registry).await?;
            return self.finish(store, registry).await;
        }
        if admin && path.is_none() {
            return Err(Error::InvalidOption(
                "an admin open needs a database file".into(),
            ));
        }
        let store = tokio::task::spawn_blocking(move || match path {
            Some(path) if snapshot => Store::open_snapshot(&path, busy_timeout),
            Some(path) if admin => Store::open_admin(&path, busy_timeout),
            Some(path) => Store::open_file(&path, &file_options),
            None => Store::open_in_memory(),
        })
        .await
        .map_err(|_| Error::Shutdown)??;
        self.finish(store, registry).await
    }

    #[cfg(feature = "postgres")]
    async fn open_postgres(&self, url: String, registry: &Registry) -> Result<Store> {
        if self.lease < Duration::from_millis(300) {
            return Err(Error::InvalidOption(
                "the lease must be at least 300 ms".into(),
            ));
        }
        let options = crate::store::PgOptions {
            url,
            schema: self.schema.clone(),
            lease: self.lease,
            app_version: self.app_version.clone().unwrap_or_default(),
            durability: self.durability,
            pool_size: self.pool_size,
            root_certificate: self.root_certificate.clone(),
            client_certificate: self.client_certificate.clone(),
        };
        let registered = Arc::new(self.claimable(registry));
        let store = Store::open_postgres(options, &registered, self.admin).await?;
        if let Some(db_now) = store.shared().and_then(|s| s.db_now_at_open) {
            let skew = (crate::record::to_millis(self.clock.now()) - db_now).abs();
            if skew > 1000 {
                tracing::warn!(
                    skew_ms = skew,
                    "the runtime's clock and the database's differ by over a second: leases follow the database's, wake times the runtime's"
                );
            }
        }
        Ok(store)
    }

    #[cfg(not(feature = "postgres"))]
    async fn open_postgres(&self, _url: String, _registry: &Registry) -> Result<Store> {
        Err(Error::InvalidOption(
            "this build has no PostgreSQL store: enable the `postgres` cargo feature of replayflow"
                .into(),
        ))
    }

    async fn finish(self, store: Store, registry: Registry) -> Result<Runtime> {
        let admin = self.admin;
        let defaults = Defaults {
            codec: self.codec,
            max_payload: self.max_payload,
            retry: self.retry,
            max_restarts: self.max_restarts,
            restart_delay: self.restart_delay,
            auto_restart: self.auto_restart,
            suspend_after: self.suspend_after,
            recovery_budget: self.recovery_budget,
            retention: self.retention,
        };
        let claimable = self.claimable(&registry);
        let engine = Arc::new(Engine::new(
            store,
            registry,
            claimable,
            self.app_version,
            self.clock,
            defaults,
            admin,
        ));
        if admin {
            return Ok(Runtime { engine });
        }
        let rows: Vec<WorkflowRow> = engine
            .registry
            .values()
            .map(|d| WorkflowRow {
                name: d.name.to_owned(),
                module_path: format!("{}::{}", d.module_path, d.fn_name),
                options: serde_json::json!({
                    "max_restarts": d.max_restarts,
                    "restart_delay_ms": d.restart_delay.map(|d| d.as_millis() as u64),
                })
                .to_string(),
            })
            .collect();
        engine
            .store
            .register_workflows(rows, engine.now_millis())
            .await?;
        engine.recover().await?;
        engine.start_scheduler();
        Ok(Runtime { engine })
    }
}

impl RuntimeBuilder {
    /// What the runtime takes on: its workflows, of the versions it accepts.
    fn claimable(&self, registry: &Registry) -> Claimable {
        Claimable {
            workflows: registry.keys().copied().collect(),
            versions: self.accept_versions.clone(),
        }
    }
}

/// Whether `text` names a PostgreSQL database rather than a file.
pub(crate) fn is_postgres_url(text: &str) -> bool {
    text.starts_with("postgres://") || text.starts_with("postgresql://")
}

fn build_registry(
    descriptors: impl Iterator<Item = &'static WorkflowDescriptor>,
) -> Result<Registry> {
    let mut registry = Registry::new();
    for d in descriptors {
        match registry.get(d.name) {
            Some(existing) if std::ptr::eq(*existing, d) => {}
            Some(existing) => {
                return Err(Error::DuplicateWorkflow {
                    name: d.name.to_owned(),
                    first: format!("{}::{}", existing.module_path, existing.fn_name),
                    second: format!("{}::{}", d.module_path, d.fn_name),
                });
            }
            None => {
                registry.insert(d.name, d);
            }
        }
    }
    Ok(registry)
}
