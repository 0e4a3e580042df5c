//! `workflow workers`: the worker processes of a PostgreSQL database.

use std::process::ExitCode;

use replayflow::Runtime;

use crate::args::WorkersArgs;
use crate::format::{self, Table, escape};
use crate::{Failure, emit};

pub(crate) async fn run(rt: &Runtime, args: &WorkersArgs) -> Result<ExitCode, Failure> {
    let workers = rt.workers().await?;
    if args.json {
        let view: Vec<replayflow::http::WorkerView> = workers
            .iter()
            .map(replayflow::http::WorkerView::new)
            .collect();
        emit(&format!("{}\n", serde_json::to_string_pretty(&view)?))?;
        return Ok(ExitCode::SUCCESS);
    }
    if workers.is_empty() {
        emit("no workers: a SQLite database is run by the one process that holds its lock\n")?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(vec![
        "WORKER",
        "HOST:PID",
        "VERSION",
        "STATE",
        "LEASE UNTIL / DEAD SINCE (UTC)",
        "OWNS",
    ]);
    for w in &workers {
        let (state, when) = match w.dead_at {
            Some(at) => ("dead", format::time(at)),
            None => ("alive", format::time(w.lease_until)),
        };
        table.row(vec![
            (w.id.to_string(), None),
            (escape(&format!("{}:{}", w.host, w.pid)), None),
            (escape(&w.app_version), None),
            (state.to_owned(), None),
            (when, None),
            (w.owned.to_string(), None),
        ]);
    }
    emit(&table.render(format::colors()))?;
    Ok(ExitCode::SUCCESS)
}
