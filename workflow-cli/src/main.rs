//! `workflow`: inspect and operate the executions in a workflow database.
//!
//! ```text
//! workflow --db app.db list --status failed --since 1h
//! workflow --db app.db show order-7
//! workflow --db app.db cancel order-7
//! workflow --db app.db watch order-7
//! workflow --db app.db serve --bind 127.0.0.1:8080
//! ```
//!
//! Every command opens the file as an admin: it never runs a workflow, and
//! cancel, resume and restart are recorded as requests that the application
//! (the worker process that has the file open) applies within a second.

mod actions;
mod args;
mod format;
mod list;
mod serve;
mod show;
mod watch;

use std::process::ExitCode;

use clap::Parser;
use replayflow::Runtime;

use args::{Cli, Command};

/// The exit code of `watch` when the execution ended without completing.
const EXIT_NOT_COMPLETED: u8 = 3;

/// A failure to report as one `error: ...` line.
#[derive(Debug)]
pub(crate) struct Failure(String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(Failure(message)) => fail(&message),
    }
}

/// Writes `text` to stdout. A reader that went away (`workflow list | head`)
/// is not an error.
pub(crate) fn emit(text: &str) -> Result<(), Failure> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn fail(message: &str) -> ExitCode {
    // One line, whatever the message holds (SQLite quotes its SQL).
    let line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    eprintln!("error: {line}");
    ExitCode::FAILURE
}

async fn run(cli: Cli) -> Result<ExitCode, Failure> {
    let Some(db) = cli.db else {
        return Err(Failure(
            "no database given: pass --db PATH or set WORKFLOW_DB".into(),
        ));
    };
    if let Command::Serve(args) = &cli.command {
        serve::check_args(args)?;
    }
    let rt = Runtime::builder()
        .path(&db)
        .admin()
        .panic_hook(false)
        .open()
        .await?;
    let code = match cli.command {
        Command::List(args) => list::run(&rt, &args).await?,
        Command::Show(args) => show::run(&rt, &args).await?,
        Command::Cancel(args) => actions::run(&rt, replayflow::AdminAction::Cancel, &args).await?,
        Command::Resume(args) => actions::run(&rt, replayflow::AdminAction::Resume, &args).await?,
        Command::Restart(args) => {
            actions::run(&rt, replayflow::AdminAction::Restart, &args).await?
        }
        Command::Watch(args) => watch::run(&rt, &args).await?,
        Command::Serve(args) => serve::run(rt.clone(), &db, &args).await?,
    };
    rt.shutdown().await?;
    Ok(code)
}
