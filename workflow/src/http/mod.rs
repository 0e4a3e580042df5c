//! The HTTP API and web dashboard (cargo feature `http`): an [`axum`]
//! router to serve beside the application, or with `workflow serve` on a
//! database file.
//!
//! ```
//! use replayflow::Runtime;
//! use replayflow::http::{HttpConfig, router};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let rt = Runtime::in_memory().await?;
//! let addr: std::net::SocketAddr = "127.0.0.1:8080".parse()?;
//! let config = HttpConfig::for_addr(addr);
//! config.check_bind(addr)?; // a non-loopback address needs a token
//! let app: axum::Router = router(rt, config);
//! // axum::serve(tokio::net::TcpListener::bind(addr).await?, app).await?;
//! # drop(app);
//! # Ok(())
//! # }
//! ```
//!
//! # Endpoints
//!
//! | method and path | what |
//! |---|---|
//! | `GET /api/info` | version, mode (`worker` or `admin`), read-only, registered workflows |
//! | `GET /api/executions?status=&workflow=&since=&until=&limit=&offset=` | a page of executions, newest first: `{"executions": [...], "limit", "offset", "has_more"}` |
//! | `GET /api/counts?workflow=&since=&until=` | executions per status: `{"counts": {"running": 2, ...}, "total": 7}` |
//! | `GET /api/executions/{id}` | one execution: input, output or error, and each journal entry with its attempts |
//! | `POST /api/executions/{id}/cancel` | cancels it (200 when applied here, 202 when recorded for the worker) |
//! | `POST /api/executions/{id}/resume` | resumes a sleeping, paused or interrupted one now |
//! | `POST /api/executions/{id}/restart` | restarts a panicked or failed one now, by replay |
//! | `POST /api/executions/{id}/messages` | sends it a message, `{"topic": "...", "message": <JSON>, "idempotency_key": "..."}` (key optional): `{"delivered": true}`, or `false` for a key already delivered; 404 for an unknown execution, 409 for a finished one |
//! | `GET /api/executions/{id}/streams/{key}` | the stream's values as server-sent events, live (`id`: the offset, `data`: the value as JSON, a last `end` event); resumable with `Last-Event-ID` |
//! | `GET /api/executions/{id}/events` | the latest value of each event it published: `{"events": [{"key", "value", "updated_at"}]}` |
//! | `GET /api/workers` | the worker processes of a PostgreSQL database, live ones first, each with the unfinished executions it owns: `{"workers": [{"id", "host", "pid", "app_version", "workflows", "state", "registered_at", "lease_until", "dead_at", "owned", "this_process"}]}`; empty on SQLite |
//! | `GET /api/workflows` | the workflows this process can start |
//! | `POST /api/workflows/{name}/executions` | starts one with `{"id": "...", "input": {...}}` (`id` optional); worker runtimes only |
//! | `GET /` | the dashboard (`/#/executions/{id}` shows one execution) |
//!
//! `since` and `until` take RFC 3339 (`2025-11-25T18:00:00Z`), a date, or a
//! duration before now (`15m`, `2h`, `7d`); `limit` is 1 to 1000 (50 by
//! default). Times in answers are RFC 3339 in UTC; payloads are JSON values
//! when the execution's codec is JSON, `null` otherwise.
//!
//! # Errors
//!
//! Every error answer is `{"error": "..."}`: 400 for a bad parameter or a
//! malformed body, 401 without the right token, 403 in read-only mode or
//! from another origin, 404 for an unknown execution, workflow or path, 409
//! for an action the execution's status does not allow (or a start on an
//! admin server), 413 for a body over the limit, 415 without
//! `Content-Type: application/json`, 422 for an input that does not match
//! the workflow's parameters.
//!
//! Requests hyper cannot parse never reach the router: hyper answers them
//! itself with an empty body (414 for a request target over 65,534 bytes,
//! a limit it does not let anyone raise; 431 for a head over about 400 KB
//! or with over 100 headers; 400 for a malformed head). `replayflow serve`
//! rewrites those answers into JSON on the way out; an application serving
//! this router with `axum::serve` on a plain listener sends them as hyper
//! made them.
//!
//! # Security
//!
//! - Every request's `Host` must be allowed ([`HttpConfig::allow_host`];
//!   by default `localhost`, `127.0.0.1` and `[::1]` on the bound port),
//!   so a DNS-rebinding page cannot reach a local server.
//! - With a token ([`HttpConfig::token`]), every `/api/` request needs
//!   `Authorization: Bearer <token>` (compared in constant time). The
//!   dashboard's own files need none: it asks for the token, or reads it
//!   from the address's `#token=` fragment, which browsers never send.
//!   [`HttpConfig::check_bind`] refuses a non-loopback address without one.
//! - State-changing requests (`POST`) need `Content-Type: application/json`
//!   (which a cross-site form cannot send) and, when the browser sends an
//!   `Origin`, the server's own or an allowed one
//!   ([`HttpConfig::allow_origin`]); in read-only mode they get 403.
//! - Bodies are limited ([`HttpConfig::max_body_bytes`], 1 MiB by default).
//!
//! # Admin and worker runtimes
//!
//! Served from the application's own (worker) runtime, actions apply at
//! once and workflows can be started. Served from an admin runtime
//! (`Runtime::builder().path(p).admin()`, as `workflow serve` does), the
//! API reads the file and records cancel, resume and restart as requests
//! that the application applies within a second.

mod api;
mod config;
mod dashboard;
mod guard;
mod problem;
mod query;
mod time;
mod view;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};

pub use config::{DEFAULT_MAX_BODY_BYTES, HttpConfig};
pub use query::count_by_status;
pub use time::{format_time, parse_time};
pub use view::{
    AttemptView, Counts, ExecutionView, StepView, SummaryView, SupersededView, WorkerView,
};

use crate::runtime::Runtime;

/// The API and the dashboard on `rt`, guarded as `config` says.
///
/// Serve it with `axum::serve` on a listener bound to the address given to
/// [`HttpConfig::for_addr`], after [`HttpConfig::check_bind`], or nest it
/// in the application's own router.
pub fn router(rt: Runtime, config: HttpConfig) -> Router {
    let config = Arc::new(config);
    let state = api::AppState {
        rt,
        config: Arc::clone(&config),
    };
    let mut app = Router::new()
        .route("/api/info", get(api::info))
        .route("/api/executions", get(api::list))
        .route("/api/counts", get(api::counts))
        .route("/api/executions/{id}", get(api::show))
        .route("/api/executions/{id}/messages", post(api::send))
        .route("/api/executions/{id}/events", get(api::events))
        .route("/api/executions/{id}/streams/{key}", get(api::stream))
        .route("/api/executions/{id}/{action}", post(api::act))
        .route("/api/workers", get(api::workers))
        .route("/api/workflows", get(api::workflows))
        .route("/api/workflows/{name}/executions", post(api::start))
        .with_state(state);
    if config.dashboard {
        app = app.merge(dashboard::routes());
    }
    app.fallback(api::not_found)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&config),
            guard::guard,
        ))
        .layer(middleware::from_fn(problem::json_errors))
}
