//! `workflow show ID`.

use std::process::ExitCode;
use std::time::SystemTime;

use replayflow::http::ExecutionView;
use replayflow::{ExecutionInfo, Payload, Runtime, StepRecord, StepStatus};

use crate::args::ShowArgs;
use crate::format::{self, Table, escape, escape_lines, paint, truncate};
use crate::{Failure, emit};

pub(crate) async fn run(rt: &Runtime, args: &ShowArgs) -> Result<ExitCode, Failure> {
    let info = rt.status(args.id.as_str()).await?;
    let now = SystemTime::now();
    if args.json {
        let view = ExecutionView::new(&info, now);
        emit(&format!("{}\n", serde_json::to_string_pretty(&view)?))?;
    } else {
        emit(&render(&info, now, format::colors()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A payload as compact JSON, or what it is when its codec is not JSON;
/// escaped, since JSON keeps bidirectional controls as they are.
pub(crate) fn payload_text(p: &Payload) -> String {
    match p.to_json() {
        Some(v) => escape(&v.to_string()),
        None => format!("<{} bytes of {}>", p.bytes().len(), p.codec()),
    }
}

fn render(info: &ExecutionInfo, now: SystemTime, colors: bool) -> String {
    let mut out = String::new();
    let mut field = |name: &str, value: String| {
        out.push_str(&format!("{name:<10} {value}\n"));
    };
    field("execution", escape(info.id.as_str()));
    field("workflow", escape(&info.workflow));
    if !info.app_version.is_empty() {
        field("version", escape(&info.app_version));
    }
    let patches = info.patches();
    if !patches.is_empty() {
        field("patches", escape(&patches.join(", ")));
    }
    field(
        "status",
        paint(
            info.status.as_str(),
            format::execution_color(info.status),
            colors,
        ),
    );
    field("created", format!("{} UTC", format::time(info.created_at)));
    if let Some(deadline) = info.deadline {
        field("deadline", format!("{} UTC", format::time(deadline)));
    }
    if let Some(owner) = info.owner {
        field("worker", owner.to_string());
    }
    if let Some(parent) = &info.parent {
        field("parent", escape(parent.as_str()));
    }
    for (i, child) in info.children.iter().enumerate() {
        let name = if i == 0 { "children" } else { "" };
        field(
            name,
            format!(
                "{}  {}  {}",
                escape(child.id.as_str()),
                escape(&child.workflow),
                paint(
                    child.status.as_str(),
                    format::execution_color(child.status),
                    colors
                )
            ),
        );
    }
    match info.completed_at {
        Some(done) => field(
            "ended",
            format!(
                "{} UTC (took {})",
                format::time(done),
                format::duration(format::between(info.created_at, done))
            ),
        ),
        None => field(
            "running",
            format!(
                "for {}",
                format::duration(format::between(info.created_at, now))
            ),
        ),
    }
    if let Some(wake) = info.wake_at {
        field("wakes", format!("{} UTC", format::time(wake)));
    }
    if info.restart_attempt > 0 {
        field("restarts", info.restart_attempt.to_string());
    }
    field("input", payload_text(&info.input));
    if let Some(output) = &info.output {
        field("output", payload_text(output));
    }
    if let Some(error) = &info.error {
        field("error", payload_text(error));
    }
    if let Some(message) = &info.error_message {
        // Under the field names, continuation lines of an error chain.
        field(
            "reason",
            paint(&escape_lines(message, &" ".repeat(11)), "31", colors),
        );
    }

    out.push('\n');
    if info.steps.is_empty() {
        out.push_str("no steps yet\n");
        return out;
    }
    let mut table = Table::new(vec![
        "#", "STEP", "KIND", "STATUS", "ATTEMPTS", "START", "DURATION", "RESULT",
    ]);
    for step in &info.steps {
        table.row(vec![
            (step.position.to_string(), None),
            (escape(&branched_key(step)), None),
            (step.kind.as_str().to_owned(), None),
            (
                step.status.as_str().to_owned(),
                Some(format::step_color(step.status)),
            ),
            (step.attempts.to_string(), None),
            (
                format!(
                    "+{}",
                    format::duration(format::between(info.created_at, step.started_at))
                ),
                None,
            ),
            (
                format::duration(format::between(
                    step.started_at,
                    step.completed_at.unwrap_or(now),
                )),
                None,
            ),
            (result_text(step), None),
        ]);
        // Each failed attempt, under its step.
        if step.attempt_log.len() > 1 || step.attempt_log.iter().any(|a| a.error.is_some()) {
            for a in &step.attempt_log {
                let took = a
                    .ended_at
                    .map(|end| format::duration(format::between(a.started_at, end)))
                    .unwrap_or_else(|| "…".into());
                table.row(vec![
                    (String::new(), None),
                    (format!("  attempt {}", a.attempt), None),
                    (String::new(), None),
                    (a.status.as_str().to_owned(), None),
                    (String::new(), None),
                    (
                        format!(
                            "+{}",
                            format::duration(format::between(info.created_at, a.started_at))
                        ),
                        None,
                    ),
                    (took, None),
                    (truncate(a.error.as_deref().unwrap_or(""), 70), None),
                ]);
            }
        }
    }
    out.push_str(&table.render(colors));
    if !info.superseded.is_empty() {
        // A restart of a failed execution set these aside: why it failed.
        out.push_str("\nset aside by restarts:\n");
        let mut table = Table::new(vec!["RUN", "#", "STEP", "STATUS", "ATTEMPTS", "ERROR"]);
        for s in &info.superseded {
            let step = &s.step;
            table.row(vec![
                (s.run.to_string(), None),
                (step.position.to_string(), None),
                (escape(&step.key.to_string()), None),
                (
                    step.status.as_str().to_owned(),
                    Some(format::step_color(step.status)),
                ),
                (step.attempts.to_string(), None),
                (truncate(step.error.as_deref().unwrap_or(""), 70), None),
            ]);
        }
        out.push_str(&table.render(colors));
    }
    out
}

/// A step's key, behind its branch when it was called in one (`0/charge#0`):
/// two branches may hold the same key.
fn branched_key(step: &StepRecord) -> String {
    if step.branch.is_empty() {
        step.key.to_string()
    } else {
        format!("{}/{}", step.branch, step.key)
    }
}

fn result_text(step: &StepRecord) -> String {
    // A completed step keeps its last failed attempt's message: show the result.
    match (&step.output, &step.error) {
        (Some(output), _) if step.status == StepStatus::Completed => {
            truncate(&payload_text(output), 70)
        }
        (_, Some(error)) => truncate(&format!("error: {error}"), 70),
        (Some(output), None) => truncate(&payload_text(output), 70),
        (None, None) => String::new(),
    }
}
