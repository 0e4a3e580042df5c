//! A PostgreSQL schema of its own for one test, dropped afterwards.
//!
//! The server comes from `WORKFLOW_TEST_PG` (default
//! `postgres://postgres@127.0.0.1:5432/test`). When it cannot be reached
//! the test is skipped with a note, except under CI (`CI` set), where that
//! is a failure.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use replayflow::{Runtime, RuntimeBuilder};

pub fn url() -> String {
    std::env::var("WORKFLOW_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// The CA that signs the server's certificate, from `WORKFLOW_TEST_PG_CA`
/// (`.ci/pg-tls` sets the local server up and prints it). `None` (after a
/// note) when unset outside CI.
pub fn test_ca() -> Option<PathBuf> {
    match std::env::var_os("WORKFLOW_TEST_PG_CA") {
        Some(path) => Some(PathBuf::from(path)),
        None if std::env::var_os("CI").is_some() => {
            panic!("WORKFLOW_TEST_PG_CA is required under CI (see .ci/pg-tls)")
        }
        None => {
            eprintln!(
                "skipped: no CA for the server's certificate; run `sudo .ci/pg-tls` and set WORKFLOW_TEST_PG_CA to the path it prints"
            );
            None
        }
    }
}

/// The client certificate and key that `.ci/pg-tls` makes beside the CA,
/// for the role `replayflow_cert`, which the server authenticates by
/// certificate; and `url` with that role as its user. `None` (after a
/// note) outside CI when they are missing or the URL's user is not
/// `postgres`.
#[allow(dead_code)]
pub fn test_client_cert(url: &str) -> Option<(PathBuf, PathBuf, String)> {
    let ca = test_ca()?;
    let dir = ca.parent()?;
    let (cert, key) = (dir.join("client.crt"), dir.join("client.key"));
    let as_cert_user = url.replacen("://postgres@", "://replayflow_cert@", 1);
    if cert.exists() && key.exists() && as_cert_user != url {
        return Some((cert, key, as_cert_user));
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "the client certificate of .ci/pg-tls is missing beside {}",
            ca.display()
        );
    }
    eprintln!(
        "skipped: no client certificate beside {} (run .ci/pg-tls)",
        ca.display()
    );
    None
}

/// `url` with one more query parameter.
pub fn with_param(url: &str, param: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{param}")
}

/// A schema named after the test and the process, dropped on drop.
pub struct PgDb {
    pub url: String,
    pub schema: String,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl PgDb {
    /// `None` (after a note) when no server is reachable outside CI.
    pub async fn new(name: &str) -> Option<PgDb> {
        let url = url();
        // PostgreSQL names are at most 63 bytes: a long test name is cut,
        // the process id and the counter keep the schema unique.
        let name: String = name.chars().take(30).collect();
        let schema = format!(
            "t_{}_{}_{}",
            name,
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .await
                    .expect("drop a leftover schema");
            }
            Err(e) if std::env::var_os("CI").is_some() => {
                panic!("PostgreSQL at {url} is required under CI: {e}")
            }
            Err(e) => {
                eprintln!("skipped: no PostgreSQL at {url} ({e}); set WORKFLOW_TEST_PG");
                return None;
            }
        }
        Some(PgDb { url, schema })
    }

    pub fn builder(&self) -> RuntimeBuilder {
        Runtime::builder()
            .postgres(&self.url)
            .schema(&self.schema)
            .lease(Duration::from_secs(2))
            .restart_delay(Duration::from_millis(20))
    }

    /// A connection for the test's own queries, with the schema on its path.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .expect("connect to PostgreSQL");
        tokio::spawn(connection);
        client
            .batch_execute(&format!("SET search_path TO {}", self.schema))
            .await
            .expect("set the search path");
        client
    }
}

impl PgDb {
    /// The single number a query (a `count(*)`) of the test's schema gives.
    pub async fn count(&self, sql: &str) -> i64 {
        self.client()
            .await
            .query_one(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .get(0)
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let url = self.url.clone();
        let schema = self.schema.clone();
        // Drop runs inside the test's runtime: a thread of its own connects.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async {
                if let Ok((client, connection)) =
                    tokio_postgres::connect(&url, tokio_postgres::NoTls).await
                {
                    tokio::spawn(connection);
                    // Bounded: a test that failed may leave a worker whose
                    // transaction holds a table; the schema then stays.
                    let _ = client
                        .batch_execute(&format!(
                            "SET lock_timeout = '5s'; SET statement_timeout = '20s';
                             DROP SCHEMA IF EXISTS {schema} CASCADE"
                        ))
                        .await;
                }
            });
        })
        .join();
    }
}
