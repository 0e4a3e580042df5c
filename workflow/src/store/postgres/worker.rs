//! A worker's row and lease: registration, the heartbeat that renews the
//! lease on a thread and connection of its own (a busy executor cannot
//! starve it), and fencing when the lease is lost.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::tls::{self, Connector};

/// What a worker records of itself.
#[derive(Debug, Clone)]
pub(crate) struct WorkerInfo {
    pub host: String,
    pub pid: i64,
    pub app_version: String,
    pub workflows: Vec<String>,
}

/// The live state of this process's worker row.
pub(crate) struct WorkerState {
    id: AtomicI64,
    fenced: AtomicBool,
    stopped: AtomicBool,
    pub lease: Duration,
    pub info: WorkerInfo,
    config: tokio_postgres::Config,
    /// The store's TLS settings, for the heartbeat's own connection.
    tls: Connector,
    /// Wakes the heartbeat thread to stop.
    stop: Mutex<Option<std::sync::mpsc::Sender<()>>>,
    heartbeat: Mutex<Option<thread::JoinHandle<()>>>,
}

impl WorkerState {
    /// Registers a new worker row (an id never used before) and starts the
    /// heartbeat. Returns the state and the database's clock (Unix ms) at
    /// registration.
    pub(crate) async fn register(
        client: &tokio_postgres::Client,
        config: tokio_postgres::Config,
        tls: Connector,
        info: WorkerInfo,
        lease: Duration,
    ) -> Result<(Arc<WorkerState>, i64), tokio_postgres::Error> {
        let (id, db_now) = insert_row(client, &info, lease).await?;
        let state = Arc::new(WorkerState {
            id: AtomicI64::new(id),
            fenced: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            lease,
            info,
            config,
            tls,
            stop: Mutex::new(None),
            heartbeat: Mutex::new(None),
        });
        state.start_heartbeat();
        tracing::info!(
            worker = id,
            lease_ms = lease.as_millis() as u64,
            "worker registered"
        );
        Ok((state, db_now))
    }

    /// This worker's current id.
    pub(crate) fn id(&self) -> i64 {
        self.id.load(Ordering::SeqCst)
    }

    /// Whether the worker lost its lease and must drop its executions.
    pub(crate) fn is_fenced(&self) -> bool {
        self.fenced.load(Ordering::SeqCst)
    }

    /// The lease is lost: start no step body, write nothing.
    pub(crate) fn fence(&self) {
        if !self.fenced.swap(true, Ordering::SeqCst) {
            tracing::error!(
                worker = self.id(),
                "this worker lost its lease: it drops its executions and registers anew"
            );
        }
    }

    /// Registers a new row after a fence; the old id stays dead.
    pub(crate) async fn reregister(
        &self,
        client: &tokio_postgres::Client,
    ) -> Result<i64, tokio_postgres::Error> {
        let (id, _) = insert_row(client, &self.info, self.lease).await?;
        let old = self.id.swap(id, Ordering::SeqCst);
        self.fenced.store(false, Ordering::SeqCst);
        tracing::info!(worker = id, previous = old, "worker registered anew");
        Ok(id)
    }

    /// Stops the heartbeat (the row is ended by the writer at close).
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        if let Some(tx) = self.stop.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = tx.send(());
        }
    }

    fn start_heartbeat(self: &Arc<Self>) {
        let (tx, rx) = std::sync::mpsc::channel();
        *self.stop.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
        let weak = Arc::downgrade(self);
        let spawned = thread::Builder::new()
            .name("replayflow-lease".into())
            .spawn(move || heartbeat(weak, rx));
        match spawned {
            Ok(handle) => *self.heartbeat.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the lease thread");
                self.fence();
            }
        }
    }
}

impl Drop for WorkerState {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn insert_row(
    client: &tokio_postgres::Client,
    info: &WorkerInfo,
    lease: Duration,
) -> Result<(i64, i64), tokio_postgres::Error> {
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    let row = client
        .query_one(
            "INSERT INTO workers (id, host, pid, app_version, workflows, lease_until)
             VALUES (nextval('worker_ids'), $1, $2, $3, $4, now() + $5::float8 * interval '1 millisecond')
             RETURNING id, (extract(epoch from now()) * 1000)::bigint",
            &[
                &info.host,
                &info.pid,
                &info.app_version,
                &info.workflows,
                &(lease_ms as f64),
            ],
        )
        .await?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

/// Renews the lease every third of its length until stopped. A renewal
/// that finds the row dead, or no renewal for a whole lease, fences the
/// worker.
fn heartbeat(weak: std::sync::Weak<WorkerState>, stop: std::sync::mpsc::Receiver<()>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the lease thread's runtime");
            if let Some(state) = weak.upgrade() {
                state.fence();
            }
            return;
        }
    };
    let mut client: Option<tokio_postgres::Client> = None;
    let mut renewed = Instant::now();
    loop {
        let Some(state) = weak.upgrade() else { return };
        if state.stopped.load(Ordering::SeqCst) {
            return;
        }
        let every = state.lease / 3;
        let lease_ms = state.lease.as_millis() as f64;
        let id = state.id();
        let result = runtime.block_on(async {
            if client.as_ref().is_none_or(|c| c.is_closed()) {
                let (c, connection) = state.config.connect(tls::share(&state.tls)).await?;
                tokio::spawn(connection);
                client = Some(c);
            }
            match client.as_ref() {
                Some(c) => {
                    c.execute(
                        "UPDATE workers SET lease_until = now() + $2::float8 * interval '1 millisecond'
                         WHERE id = $1 AND dead_at IS NULL",
                        &[&id, &lease_ms],
                    )
                    .await
                }
                None => Ok(0),
            }
        });
        match result {
            Ok(1) => renewed = Instant::now(),
            Ok(_) if !state.is_fenced() => state.fence(),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(worker = id, error = %e, "cannot renew the lease");
                client = None;
                if renewed.elapsed() >= state.lease {
                    state.fence();
                }
            }
        }
        drop(state);
        match stop.recv_timeout(every) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
    }
}
