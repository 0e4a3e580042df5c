//! The command line, with clap's derive.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use replayflow::ExecutionStatus;

/// Inspect and operate the durable workflow executions in a workflow
/// database file.
///
/// Commands open the file as an admin: they never run a workflow, and
/// cancel, resume and restart are recorded as requests that the running
/// application applies within a second. prune deletes directly.
#[derive(Debug, Parser)]
#[command(name = "replayflow", version, max_term_width = 100)]
pub(crate) struct Cli {
    /// The workflow database file, or a PostgreSQL URL
    /// (`postgres://user@host/db`) that workers share.
    #[arg(long, env = "WORKFLOW_DB", global = true, value_name = "PATH")]
    pub db: Option<PathBuf>,

    /// The PostgreSQL schema of the tables, with a `postgres://` database.
    #[arg(
        long,
        env = "WORKFLOW_SCHEMA",
        global = true,
        value_name = "NAME",
        default_value = "replayflow"
    )]
    pub schema: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// List executions, newest first, with counts per status.
    List(ListArgs),
    /// Show one execution: its input, output or error, and its step timeline.
    Show(ShowArgs),
    /// Cancel an execution (a request the running application applies).
    Cancel(ActionArgs),
    /// Resume a sleeping, paused or interrupted execution now.
    Resume(ActionArgs),
    /// Restart a panicked or failed execution now, by replay.
    Restart(ActionArgs),
    /// Follow a live execution until it ends.
    ///
    /// Exits 0 when it completed and 3 when it failed or was cancelled.
    Watch(WatchArgs),
    /// Send a message to an execution: the next `ctx.recv` of its topic takes it.
    ///
    /// The message is JSON, decoded by the workflow into the type its recv
    /// asks for. It is committed before the command returns; a waiting
    /// execution is woken by the running application within a second.
    Send(SendArgs),
    /// Show the latest value of each event an execution published.
    Events(EventsArgs),
    /// Start an execution of a workflow the running application registers
    /// (a request it applies within a second).
    ///
    /// The input is a JSON object keyed by the workflow's parameter names.
    Start(StartArgs),
    /// Serve the HTTP API and the web dashboard on the database.
    Serve(ServeArgs),
    /// List the worker processes of a PostgreSQL database, live ones first,
    /// with the unfinished executions each owns (none on SQLite).
    Workers(WorkersArgs),
    /// Delete finished executions that ended longer ago than --older-than.
    ///
    /// Completed, failed and cancelled executions go, each with its journal,
    /// attempts, superseded entries and admin requests; unfinished ones stay,
    /// however old. The deletion is direct (not a request), in batches of
    /// 500, each its own transaction, so a running application's commits go
    /// on between them. Freed space goes back to the file system in files
    /// created by this version (the file shrinks when the application next
    /// copies its write-ahead log into it); older files keep it for reuse.
    /// Prints how many executions were removed and the bytes freed.
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub(crate) struct WorkersArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct PruneArgs {
    /// Remove executions that ended longer ago than this (e.g. 30d, 12h).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub older_than: Duration,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Only executions in this status.
    #[arg(long, value_parser = parse_status)]
    pub status: Option<ExecutionStatus>,
    /// Only executions of this workflow.
    #[arg(long, value_name = "NAME")]
    pub workflow: Option<String>,
    /// Only executions started at or after this time: RFC 3339
    /// (2025-11-25T18:00:00Z), a date, or a duration before now (30m, 2h, 7d).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only executions started before this time (same forms as --since).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// At most this many executions.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub limit: u32,
    /// Skip this many executions (for the next page).
    #[arg(long, default_value_t = 0)]
    pub offset: u32,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// The execution id.
    pub id: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ActionArgs {
    /// The execution id.
    pub id: String,
    /// Wait until the running application has applied the request.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits (e.g. 10s, 1m).
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    /// The execution id.
    pub id: String,
    /// The topic its workflow receives on.
    pub topic: String,
    /// The message, as JSON (`'{"approved": true}'`, `'"text"'`, `42`).
    pub message: String,
    /// Deliver the message once per key: sending again with the same key
    /// does nothing.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct StartArgs {
    /// The registered workflow name.
    pub workflow: String,
    /// The new execution's id.
    pub id: String,
    /// Its input: a JSON object keyed by parameter name (`'{"order": 7}'`).
    #[arg(default_value = "{}")]
    pub input: String,
    /// Wait until the running application has started it, and report a
    /// refusal.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits (e.g. 10s, 1m).
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
pub(crate) struct EventsArgs {
    /// The execution id.
    pub id: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct WatchArgs {
    /// The execution id.
    pub id: String,
    /// How often to read the database (e.g. 250ms, 1s).
    #[arg(long, default_value = "250ms", value_parser = parse_duration, value_name = "DURATION")]
    pub interval: Duration,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The address to listen on: `IP:PORT` or `HOST:PORT` (`localhost:8080`).
    /// Any address but a loopback one needs --token.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub bind: String,
    /// Require `Authorization: Bearer TOKEN` on the API (the dashboard asks
    /// for it).
    #[arg(
        long,
        env = "WORKFLOW_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// Refuse cancel, resume and restart (403).
    #[arg(long)]
    pub read_only: bool,
    /// Also accept requests for this Host (`name` or `name:port`); repeatable.
    /// By default only localhost, 127.0.0.1 and [::1] on the bound port.
    #[arg(long = "allowed-host", value_name = "HOST")]
    pub allowed_hosts: Vec<String>,
    /// Also accept state-changing requests from this Origin
    /// (`https://ops.example.com`); repeatable. By default only the server's own.
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    pub allowed_origins: Vec<String>,
    /// The largest request body, in bytes.
    #[arg(long, default_value_t = replayflow::http::DEFAULT_MAX_BODY_BYTES, value_name = "BYTES")]
    pub max_body_bytes: usize,
}

fn parse_status(text: &str) -> Result<ExecutionStatus, String> {
    text.parse::<ExecutionStatus>().map_err(|_| {
        let known: Vec<&str> = ExecutionStatus::ALL.iter().map(|s| s.as_str()).collect();
        format!("expected one of: {}", known.join(", "))
    })
}

/// `250ms`, `10s`, `2m`, `1h`, `30d`, `2w`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid =
        || format!("expected a duration such as 250ms, 10s, 2m, 12h or 30d, not `{text}`");
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let n: u64 = text[..digits].parse().map_err(|_| invalid())?;
    let ms = match &text[digits..] {
        "ms" => n,
        "s" => n.saturating_mul(1000),
        "m" => n.saturating_mul(60_000),
        "h" => n.saturating_mul(3_600_000),
        "d" => n.saturating_mul(86_400_000),
        "w" => n.saturating_mul(604_800_000),
        _ => return Err(invalid()),
    };
    Ok(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("1w"), Ok(Duration::from_secs(7 * 86_400)));
        assert!(parse_duration("2").is_err());
        assert!(parse_duration("ms").is_err());
    }
}
