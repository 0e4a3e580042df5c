//! `workflow serve`: the HTTP API and the dashboard on the database file.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use replayflow::Runtime;
use replayflow::http::{HttpConfig, router};
use tracing_subscriber::EnvFilter;

use crate::Failure;
use crate::args::ServeArgs;

fn config(args: &ServeArgs, addr: std::net::SocketAddr) -> HttpConfig {
    let mut config = HttpConfig::for_addr(addr)
        .read_only(args.read_only)
        .max_body_bytes(args.max_body_bytes);
    if let Some(token) = &args.token {
        config = config.token(token.clone());
    }
    for host in &args.allowed_hosts {
        config = config.allow_host(host.clone());
    }
    for origin in &args.allowed_origins {
        config = config.allow_origin(origin.clone());
    }
    config
}

/// Refuses an unsafe configuration before the database is opened.
pub(crate) fn check_args(args: &ServeArgs) -> Result<(), Failure> {
    config(args, args.bind).check_bind(args.bind)?;
    Ok(())
}

pub(crate) async fn run(rt: Runtime, db: &Path, args: &ServeArgs) -> Result<ExitCode, Failure> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();

    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.bind))?;
    let addr = listener.local_addr()?;
    let config = config(args, addr);
    let app = router(rt, config);

    let shown = if addr.ip().is_unspecified() {
        format!("http://localhost:{}/", addr.port())
    } else {
        format!("http://{addr}/")
    };
    // A closed stdout must not stop the server: these lines are a courtesy.
    let mut out = std::io::stdout();
    let _ = writeln!(out, "workflow dashboard of {} on {shown}", db.display());
    let _ = writeln!(
        out,
        "listening on {addr}{}{}; actions are recorded for the application that runs the workflows",
        if args.token.is_some() {
            ", bearer token required"
        } else {
            ""
        },
        if args.read_only { ", read-only" } else { "" },
    );
    let _ = writeln!(out, "press Ctrl-C to stop");
    let _ = out.flush();

    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("the server stopped: {e}"))?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
