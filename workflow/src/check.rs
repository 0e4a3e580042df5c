//! The pre-deploy check: which unfinished executions of a database the code
//! of this build would park ([`Runtime::check`]), and a subcommand an
//! application mounts in one line so a deploy pipeline runs it
//! ([`subcommand`]).
//!
//! [`Runtime::check`]: crate::Runtime::check

use std::fmt;
use std::io::Write;

use crate::record::ExecutionId;
use crate::runtime::Runtime;
use crate::status::{ExecutionStatus, PauseCause};

/// What [`Runtime::check`](crate::Runtime::check) found.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CheckReport {
    /// How many unfinished executions were replayed.
    pub checked: usize,
    /// The executions this build would not run on, in id order.
    pub findings: Vec<CheckFinding>,
}

impl CheckReport {
    /// Whether every unfinished execution would run on this build.
    pub fn passed(&self) -> bool {
        self.findings.is_empty()
    }
}

/// One execution the code of this build would not run on.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CheckFinding {
    /// The execution.
    pub id: ExecutionId,
    /// Its workflow's registered name.
    pub workflow: String,
    /// Its status in the database.
    pub status: ExecutionStatus,
    /// What would happen to it.
    pub problem: CheckProblem,
    /// Why: the reason it would be paused with, word for word.
    pub message: String,
}

/// What would happen to an execution on this build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CheckProblem {
    /// The workflow makes other calls than its journal recorded: it would
    /// be paused (`nondeterminism`).
    Nondeterminism,
    /// A journaled value (the input, a step's output or error, a helper
    /// value) no longer decodes into the workflow's types: it would be
    /// paused (`undecodable`).
    Undecodable,
    /// Its workflow is not registered in this build: it would be left as
    /// it is.
    UnknownWorkflow,
    /// It would fail (a journaled failure its error type cannot hold).
    Fails,
    /// The workflow body panics while replaying its journal.
    Panics,
}

impl CheckProblem {
    /// A short lowercase name, as the JSON report writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckProblem::Nondeterminism => "nondeterminism",
            CheckProblem::Undecodable => "undecodable",
            CheckProblem::UnknownWorkflow => "unknown_workflow",
            CheckProblem::Fails => "fails",
            CheckProblem::Panics => "panics",
        }
    }
}

impl From<PauseCause> for CheckProblem {
    fn from(cause: PauseCause) -> Self {
        match cause {
            PauseCause::Undecodable => CheckProblem::Undecodable,
            // A dry replay writes nothing, so storage and the recovery
            // budget never pause it: what is left is the code.
            _ => CheckProblem::Nondeterminism,
        }
    }
}

impl fmt::Display for CheckProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.findings.len();
        writeln!(
            f,
            "checked {} unfinished execution{}: {}",
            self.checked,
            if self.checked == 1 { "" } else { "s" },
            match n {
                0 => "every one runs on this build".to_owned(),
                1 => "1 would not run on this build".to_owned(),
                n => format!("{n} would not run on this build"),
            }
        )?;
        for finding in &self.findings {
            writeln!(
                f,
                "  {} (workflow `{}`, {}): {}: {}",
                finding.id, finding.workflow, finding.status, finding.problem, finding.message
            )?;
        }
        Ok(())
    }
}

impl CheckReport {
    /// The report as JSON: `{"checked": n, "findings": [{"id", "workflow",
    /// "status", "problem", "message"}]}`.
    pub fn to_json(&self) -> serde_json::Value {
        let findings: Vec<serde_json::Value> = self
            .findings
            .iter()
            .map(|f| {
                serde_json::json!({
                    "id": f.id.as_str(),
                    "workflow": f.workflow,
                    "status": f.status,
                    "problem": f.problem.as_str(),
                    "message": f.message,
                })
            })
            .collect();
        serde_json::json!({ "checked": self.checked, "findings": findings })
    }
}

/// What `PROGRAM check` was asked.
#[derive(Debug, PartialEq, Eq)]
struct CheckArgs {
    db: String,
    schema: Option<String>,
    json: bool,
}

const USAGE: &str = "usage: PROGRAM check --db DATABASE [--schema NAME] [--json]
  Replays every unfinished execution of DATABASE (a SQLite file, or a
  postgres:// URL with its schema) against the workflows of this program,
  running no step and writing nothing. Exits 0 when every execution would
  run, 1 when one would be paused or left, 2 when the check could not run.";

/// Parses the arguments after `check`.
fn parse(mut args: impl Iterator<Item = String>) -> Result<CheckArgs, String> {
    let mut db = None;
    let mut schema = None;
    let mut json = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--db" => db = Some(args.next().ok_or("--db needs a database")?),
            "--schema" => schema = Some(args.next().ok_or("--schema needs a name")?),
            "--json" => json = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unexpected argument `{other}`")),
        }
    }
    let db = db.ok_or("--db is required")?;
    Ok(CheckArgs { db, schema, json })
}

/// Mounts the pre-deploy check as a subcommand of an application: when the
/// program was started as `PROGRAM check --db DATABASE [--schema NAME]
/// [--json]`, it opens DATABASE as an admin (nothing is run, claimed or
/// written), replays every unfinished execution dry against the workflows
/// of this program ([`Runtime::check`](crate::Runtime::check)), prints the
/// report on standard output and exits: 0 when every execution would run,
/// 1 when one would be paused or left as it is, 2 when the check could not
/// run. Started any other way, it returns at once.
///
/// ```no_run
/// #[tokio::main]
/// async fn main() -> Result<(), Box<dyn std::error::Error>> {
///     // `my-app check --db /var/lib/my-app/copy-of-production.db` in a
///     // deploy pipeline, before the new build ships.
///     replayflow::check::subcommand().await;
///
///     let rt = replayflow::Runtime::open("my-app.db").await?;
///     // ... the application
///     # Ok(())
/// }
/// ```
pub async fn subcommand() {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() != Some("check") {
        return;
    }
    let code = match parse(args) {
        Ok(args) => run(args).await,
        Err(message) => {
            let mut err = std::io::stderr().lock();
            if !message.is_empty() {
                let _ = writeln!(err, "check: {message}");
            }
            let _ = writeln!(err, "{USAGE}");
            2
        }
    };
    std::process::exit(code)
}

/// Runs the check and prints its report; returns the exit code.
async fn run(args: CheckArgs) -> i32 {
    let mut builder = Runtime::builder().path(&args.db).admin();
    if let Some(schema) = &args.schema {
        builder = builder.schema(schema.clone());
    }
    let report = match builder.open().await {
        Ok(rt) => rt.check().await,
        Err(e) => Err(e),
    };
    let mut out = std::io::stdout().lock();
    match report {
        Ok(report) => {
            let _ = if args.json {
                writeln!(out, "{}", report.to_json())
            } else {
                write!(out, "{report}")
            };
            i32::from(!report.passed())
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr().lock(), "check: {e}");
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> impl Iterator<Item = String> {
        text.split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn arguments_parse_and_bad_ones_are_named() {
        assert_eq!(
            parse(args("--db a.db --json")),
            Ok(CheckArgs {
                db: "a.db".into(),
                schema: None,
                json: true
            })
        );
        assert_eq!(
            parse(args("--schema s --db postgres://h/d")).map(|a| a.schema),
            Ok(Some("s".into()))
        );
        assert_eq!(parse(args("")), Err("--db is required".into()));
        assert_eq!(parse(args("--db")), Err("--db needs a database".into()));
        assert_eq!(
            parse(args("--db a --fast")),
            Err("unexpected argument `--fast`".into())
        );
    }
}
