//! `workflow prune --older-than 30d`.
//!
//! The deletion is made here, through the admin open, rather than recorded
//! as a request for the worker as cancel is: a cancel must reach an
//! execution the worker may be driving, while a prune removes only
//! finished executions, which no worker drives. Each batch is one
//! transaction under SQLite's locking (the busy timeout makes the worker's
//! writer and this one wait their turn, never fail), and the status is
//! checked inside it, so an execution a worker restarts meanwhile is
//! either restarted first and kept, or deleted first and not found by the
//! restart. It also works with no worker running, when a request would
//! wait for the next one.

use std::process::ExitCode;

use replayflow::Runtime;

use crate::args::PruneArgs;
use crate::{Failure, emit};

pub(crate) async fn run(rt: &Runtime, args: &PruneArgs) -> Result<ExitCode, Failure> {
    let report = rt.prune(args.older_than).await?;
    if args.json {
        let json = serde_json::json!({
            "executions": report.executions,
            "batches": report.batches,
            "bytes_freed": report.bytes_freed,
            "bytes_free": report.bytes_free,
            "database_bytes": report.database_bytes,
        });
        emit(&format!("{json}\n"))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = format!(
        "removed {} finished execution{}; freed {}",
        report.executions,
        if report.executions == 1 { "" } else { "s" },
        bytes(report.bytes_freed),
    );
    if report.bytes_free > 0 {
        // A file created before incremental vacuum: its free pages stay in it.
        out.push_str(&format!(
            " ({} free inside the database, reused by later writes)",
            bytes(report.bytes_free)
        ));
    }
    out.push_str(&format!(
        "; the database holds {}\n",
        bytes(report.database_bytes)
    ));
    emit(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// `1234567` -> `1.2 MB (1234567 bytes)`: readable, and exact.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if n < 1000 {
        return format!("{n} bytes");
    }
    let mut value = n as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {} ({n} bytes)", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::bytes;

    #[test]
    fn sizes_read_well() {
        assert_eq!(bytes(0), "0 bytes");
        assert_eq!(bytes(999), "999 bytes");
        assert_eq!(bytes(2048), "2.0 kB (2048 bytes)");
        assert_eq!(bytes(5_300_000), "5.3 MB (5300000 bytes)");
    }
}
