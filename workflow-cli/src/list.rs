//! `workflow list`.

use std::process::ExitCode;
use std::time::SystemTime;

use replayflow::http::{SummaryView, count_by_status, parse_time};
use replayflow::{ExecutionStatus, ListFilter, Runtime};
use serde_json::json;

use crate::args::ListArgs;
use crate::format::{self, Table, escape, paint, truncate};
use crate::{Failure, emit};

pub(crate) async fn run(rt: &Runtime, args: &ListArgs) -> Result<ExitCode, Failure> {
    let now = SystemTime::now();
    let mut filter = ListFilter::new();
    filter.status = args.status;
    filter.workflow = args.workflow.clone();
    if let Some(since) = &args.since {
        filter.created_after = Some(parse_time(since, now).map_err(|e| format!("--since: {e}"))?);
    }
    if let Some(until) = &args.until {
        filter.created_before = Some(parse_time(until, now).map_err(|e| format!("--until: {e}"))?);
    }
    // One more than asked, to tell whether another page follows.
    filter.limit = Some(args.limit.saturating_add(1));
    filter.offset = Some(args.offset);
    let mut rows = rt.list(filter.clone()).await?;
    let has_more = rows.len() > args.limit as usize;
    rows.truncate(args.limit as usize);
    let counts = count_by_status(rt, &filter).await?;

    if args.json {
        let executions: Vec<SummaryView> = rows.iter().map(SummaryView::from).collect();
        let out = json!({
            "executions": executions,
            "limit": args.limit,
            "offset": args.offset,
            "has_more": has_more,
            "counts": counts.counts.iter().map(|(s, n)| (s.as_str().to_owned(), json!(n))).collect::<serde_json::Map<_, _>>(),
            "total": counts.total,
        });
        emit(&format!("{}\n", serde_json::to_string_pretty(&out)?))?;
        return Ok(ExitCode::SUCCESS);
    }

    let colors = format::colors();
    let mut out = String::new();
    if rows.is_empty() {
        out.push_str("no executions match\n");
    } else {
        let mut table = Table::new(vec![
            "ID",
            "WORKFLOW",
            "VERSION",
            "STATUS",
            "RESTARTS",
            "CREATED (UTC)",
            "UPDATED (UTC)",
            "ERROR",
        ]);
        for e in &rows {
            table.row(vec![
                (escape(e.id.as_str()), None),
                (escape(&e.workflow), None),
                (escape(&e.app_version), None),
                (
                    e.status.as_str().to_owned(),
                    Some(format::execution_color(e.status)),
                ),
                (e.restart_attempt.to_string(), None),
                (format::time(e.created_at), None),
                (format::time(e.updated_at), None),
                (truncate(e.error_message.as_deref().unwrap_or(""), 60), None),
            ]);
        }
        out.push_str(&table.render(colors));
    }

    let matching = match args.status {
        Some(status) => counts.get(status),
        None => counts.total,
    };
    let shown = if rows.is_empty() {
        String::new()
    } else {
        format!(
            "showing {}-{} of {matching}",
            u64::from(args.offset) + 1,
            u64::from(args.offset) + rows.len() as u64
        )
    };
    let per_status: Vec<String> = ExecutionStatus::ALL
        .iter()
        .filter(|s| counts.get(**s) > 0)
        .map(|s| {
            paint(
                &format!("{} {}", counts.get(*s), s),
                format::execution_color(*s),
                colors,
            )
        })
        .collect();
    out.push('\n');
    if !shown.is_empty() {
        out.push_str(&shown);
        if has_more {
            let next = u64::from(args.offset) + u64::from(args.limit);
            out.push_str(&format!(" (next page: --offset {next})"));
        }
        out.push('\n');
    }
    if per_status.is_empty() {
        out.push_str("no executions\n");
    } else {
        let noun = if counts.total == 1 {
            "execution"
        } else {
            "executions"
        };
        out.push_str(&format!(
            "{} {noun}: {}\n",
            counts.total,
            per_status.join(", ")
        ));
    }
    emit(&out)?;
    Ok(ExitCode::SUCCESS)
}
