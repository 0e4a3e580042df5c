//! One test, run once per store.
//!
//! `both_stores!(name, |db| async move { ... })` defines `mod name` with two
//! tests, `sqlite` (a file in a temporary directory) and `postgres` (a schema
//! of its own, skipped when no server answers outside CI). The body gets a
//! [`TestDb`] and opens its runtime with `db.builder()`.
//!
//! The two variants share the test file's statics (the counters of its step
//! bodies), so they never run at the same time: each takes the test's turn,
//! runs on a tokio runtime of its own, and lets go only once that runtime is
//! shut down and the database removed, so that no task of one variant counts
//! in the other. A body resets the statics it asserts on before it starts.
//!
//! `both_stores!(name, threads = 2, |db| ...)` runs the body on a
//! multi-threaded runtime with that many workers (the default is the
//! current-thread runtime of `#[tokio::test]`).

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use replayflow::RuntimeBuilder;

use super::TempDb;
use super::pg::PgDb;

/// Which store a variant runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Sqlite,
    Postgres,
}

enum Backing {
    Sqlite(TempDb),
    Postgres(PgDb),
}

/// A database of one test on either store, removed when the last clone is
/// dropped (after the test's runtime is shut down, under [`run`]).
#[derive(Clone)]
pub struct TestDb(Arc<Backing>);

impl TestDb {
    /// `None` when the store is PostgreSQL and no server answers outside CI.
    pub async fn new(store: StoreKind, name: &str) -> Option<TestDb> {
        let backing = match store {
            StoreKind::Sqlite => Backing::Sqlite(TempDb::new()),
            StoreKind::Postgres => Backing::Postgres(PgDb::new(name).await?),
        };
        Some(TestDb(Arc::new(backing)))
    }

    pub fn kind(&self) -> StoreKind {
        match &*self.0 {
            Backing::Sqlite(_) => StoreKind::Sqlite,
            Backing::Postgres(_) => StoreKind::Postgres,
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.kind() == StoreKind::Postgres
    }

    /// A builder on this database, with the test defaults of its store
    /// (a 20 ms restart delay; on PostgreSQL a 2 s lease).
    pub fn builder(&self) -> RuntimeBuilder {
        match &*self.0 {
            Backing::Sqlite(db) => db.builder(),
            Backing::Postgres(db) => db.builder(),
        }
    }

    /// The SQLite file, for a test that reads it directly.
    pub fn sqlite(&self) -> Option<&TempDb> {
        match &*self.0 {
            Backing::Sqlite(db) => Some(db),
            Backing::Postgres(_) => None,
        }
    }

    /// The PostgreSQL schema, for a test that queries it directly.
    pub fn postgres(&self) -> Option<&PgDb> {
        match &*self.0 {
            Backing::Sqlite(_) => None,
            Backing::Postgres(db) => Some(db),
        }
    }
}

/// Runs one variant of a [`both_stores!`] test: waits for the test's turn,
/// builds a runtime (`threads` 1: current-thread), runs `test` on a fresh
/// database of `store`, shuts the runtime down, then removes the database.
pub fn run<F, Fut>(turn: &Mutex<()>, store: StoreKind, name: &str, threads: usize, test: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    // A variant that failed poisons the turn; the other still runs.
    let _turn = turn.lock().unwrap_or_else(PoisonError::into_inner);
    let runtime = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .expect("a tokio runtime");
    let db = runtime.block_on(TestDb::new(store, name));
    let Some(db) = db else {
        return;
    };
    let body = test(db.clone());
    runtime.block_on(body);
    // Every task of the test ends (its connections close) before the
    // database goes: a schema is dropped with no transaction left open on it.
    runtime.shutdown_timeout(Duration::from_secs(10));
    drop(db);
}

/// `both_stores!(name, |db| async move { ... })`: see the module's docs.
#[allow(unused_macros)]
macro_rules! both_stores {
    ($name:ident, |$db:ident| $body:expr) => {
        $crate::support::stores::both_stores!($name, threads = 1, |$db| $body);
    };
    ($name:ident, threads = $threads:literal, |$db:ident| $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            static TURN: ::std::sync::Mutex<()> = ::std::sync::Mutex::new(());

            #[test]
            fn sqlite() {
                $crate::support::stores::run(
                    &TURN,
                    $crate::support::stores::StoreKind::Sqlite,
                    stringify!($name),
                    $threads,
                    |$db: $crate::support::stores::TestDb| $body,
                );
            }

            #[test]
            fn postgres() {
                $crate::support::stores::run(
                    &TURN,
                    $crate::support::stores::StoreKind::Postgres,
                    stringify!($name),
                    $threads,
                    |$db: $crate::support::stores::TestDb| $body,
                );
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use both_stores;
