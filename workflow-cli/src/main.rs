//! `workflow`: inspect and operate the executions in a workflow database.
//!
//! ```text
//! workflow --db app.db list --status failed --since 1h
//! workflow --db app.db show order-7
//! workflow --db app.db cancel order-7
//! workflow --db app.db watch order-7
//! workflow --db app.db send order-7 approval '{"approved": true}'
//! workflow --db app.db events order-7
//! workflow --db app.db start process_order order-8 '{"order": 8}'
//! workflow --db app.db serve --bind 127.0.0.1:8080
//! workflow --db app.db prune --older-than 30d
//! ```
//!
//! Every command opens the file as an admin: it never runs a workflow, and
//! cancel, resume and restart are recorded as requests that the application
//! (the worker process that has the file open) applies within a second.
//! prune deletes old finished executions itself (see `prune.rs`).

mod actions;
mod args;
mod format;
mod inbox;
mod list;
mod listener;
mod prune;
mod serve;
mod show;
mod watch;
mod workers;

use std::path::{Path, PathBuf};
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
    // Ids and messages come from the database and the command line: escaped,
    // so they cannot drive the terminal. A multi-line error chain goes on
    // indented continuation lines under the first.
    eprintln!("error: {}", format::escape_lines(message.trim(), "       "));
    ExitCode::FAILURE
}

/// Opens the database as an admin. In a directory this process cannot
/// write, SQLite cannot create the `-shm` file it needs to read a WAL-mode
/// database: commands that only read then read the file as it is on disk
/// (when that is exact), and the others say why they cannot run.
/// Returns the runtime and whether it reads such a snapshot.
async fn open(db: &Path, schema: &str, reading: bool) -> Result<(Runtime, bool), Failure> {
    let builder = || Runtime::builder().path(db).schema(schema).panic_hook(false);
    let error = match builder().admin().open().await {
        Ok(rt) => return Ok((rt, false)),
        Err(e) => e,
    };
    // These say what is wrong with the file itself: no directory is at fault.
    if matches!(
        error,
        replayflow::Error::NoDatabase { .. }
            | replayflow::Error::ForeignDatabase { .. }
            | replayflow::Error::SchemaMismatch { .. }
            | replayflow::Error::SchemaTooNew { .. }
            | replayflow::Error::Corrupt { .. }
    ) || db
        .to_str()
        .is_some_and(|d| d.starts_with("postgres://") || d.starts_with("postgresql://"))
    {
        return Err(error.into());
    }
    let Some(dir) = unwritable_dir(db) else {
        return Err(error.into());
    };
    if reading {
        let rt = builder().snapshot().open().await?;
        return Ok((rt, true));
    }
    Err(Failure(format!(
        "cannot open `{}`: its directory `{}` is not writable, and cancel, resume, restart and serve record requests and prune deletes, for which SQLite must create files there ({error})",
        db.display(),
        dir.display()
    )))
}

/// The directory of `db` when this process cannot create files in it.
/// Only asked after an open failed, so the probe file it creates and
/// removes at once never appears in a directory that opens fine.
fn unwritable_dir(db: &Path) -> Option<PathBuf> {
    let dir = match db.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let probe = dir.join(format!(".replayflow-write-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            None
        }
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
            ) =>
        {
            Some(dir)
        }
        Err(_) => None,
    }
}

async fn run(cli: Cli) -> Result<ExitCode, Failure> {
    let Some(db) = cli.db else {
        return Err(Failure(
            "no database given: pass --db PATH or set WORKFLOW_DB".into(),
        ));
    };
    let bind = match &cli.command {
        Command::Serve(args) => Some(serve::check_args(args).await?),
        _ => None,
    };
    let reading = matches!(
        cli.command,
        Command::List(_)
            | Command::Show(_)
            | Command::Watch(_)
            | Command::Events(_)
            | Command::Workers(_)
    );
    let (rt, snapshot) = open(&db, &cli.schema, reading).await?;
    let code = match cli.command {
        Command::List(args) => list::run(&rt, &args).await?,
        Command::Show(args) => show::run(&rt, &args).await?,
        Command::Cancel(args) => actions::run(&rt, replayflow::AdminAction::Cancel, &args).await?,
        Command::Resume(args) => actions::run(&rt, replayflow::AdminAction::Resume, &args).await?,
        Command::Restart(args) => {
            actions::run(&rt, replayflow::AdminAction::Restart, &args).await?
        }
        Command::Watch(args) => watch::run(&rt, &args, snapshot).await?,
        Command::Prune(args) => prune::run(&rt, &args).await?,
        Command::Send(args) => inbox::send(&rt, &args).await?,
        Command::Events(args) => inbox::events(&rt, &args).await?,
        Command::Start(args) => actions::start(&rt, &args).await?,
        Command::Workers(args) => workers::run(&rt, &args).await?,
        Command::Serve(args) => match &bind {
            Some(bind) => serve::run(rt.clone(), &db, &args, bind).await?,
            None => return Err(Failure("the address to serve on was not checked".into())),
        },
    };
    rt.shutdown().await?;
    Ok(code)
}
