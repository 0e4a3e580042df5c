//! `workflow watch ID`: follows an execution until it ends. On a terminal
//! the progress is redrawn in place; otherwise each change is one line.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::SystemTime;

use replayflow::{EntryKind, ExecutionInfo, ExecutionStatus, Runtime, StepRecord, StepStatus};

use crate::args::WatchArgs;
use crate::format::{self, escape, paint, truncate};
use crate::{EXIT_NOT_COMPLETED, Failure, emit};

/// Follows `args.id`. On a `snapshot` (a database read as it is on disk,
/// see `main::open`) nothing can change: the state is shown once, and an
/// unfinished execution is an error rather than a wait that never ends.
pub(crate) async fn run(
    rt: &Runtime,
    args: &WatchArgs,
    snapshot: bool,
) -> Result<ExitCode, Failure> {
    let tty = std::io::stdout().is_terminal();
    let colors = format::colors();
    let mut drawn_lines = 0usize;
    let mut seen = Seen::default();
    let mut tick = 0usize;
    loop {
        let info = rt.status(args.id.as_str()).await?;
        let now = SystemTime::now();
        if tty {
            let width = terminal_size::terminal_size().map_or(100, |(w, _)| usize::from(w.0));
            let lines = progress(&info, now, tick, width, colors);
            let mut frame = String::new();
            if drawn_lines > 0 {
                frame.push_str(&format!("\x1b[{drawn_lines}A\r\x1b[J"));
            }
            for line in &lines {
                frame.push_str(line);
                frame.push('\n');
            }
            drawn_lines = lines.len();
            emit(&frame)?;
        } else {
            let mut text = String::new();
            for line in seen.changes(&info) {
                text.push_str(&line);
                text.push('\n');
            }
            emit(&text)?;
        }
        if info.status.is_terminal() {
            return Ok(if info.status == ExecutionStatus::Completed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_NOT_COMPLETED)
            });
        }
        if snapshot {
            return Err(Failure(format!(
                "execution `{}` is {}, but its database was read as it is on disk (its directory is not writable), so its changes cannot be followed",
                args.id, info.status
            )));
        }
        tick = tick.wrapping_add(1);
        tokio::time::sleep(args.interval).await;
    }
}

/// What the plain output has already said.
#[derive(Default)]
struct Seen {
    execution: Option<(ExecutionStatus, u32)>,
    steps: HashMap<u32, (StepStatus, u32)>,
    /// Per position, the last attempt whose failure was printed.
    failures: HashMap<u32, u32>,
}

impl Seen {
    /// One line per change since the last call, in the order the changes
    /// happened (the journal's order is not: a branch's later entry may
    /// end first), an end last.
    fn changes(&mut self, info: &ExecutionInfo) -> Vec<String> {
        let mut lines: Vec<(SystemTime, String)> = Vec::new();
        let state = (info.status, info.restart_attempt);
        let execution_changed = self.execution != Some(state);
        self.execution = Some(state);
        let execution = format!("{}  {}", clock(info.updated_at), execution_line(info));
        if execution_changed && !info.status.is_terminal() {
            lines.push((info.updated_at, execution.clone()));
        }
        for step in &info.steps {
            let state = (step.status, step.attempts);
            if self.steps.get(&step.position) == Some(&state) {
                continue;
            }
            self.steps.insert(step.position, state);
            let printed = self.failures.entry(step.position).or_insert(0);
            let already = *printed;
            for a in step.attempt_log.iter().filter(|a| a.attempt > already) {
                let (Some(error), Some(end)) = (&a.error, a.ended_at) else {
                    continue;
                };
                *printed = a.attempt;
                // The last failure of a failed step is on the step's own line.
                if step.status == StepStatus::Failed && a.attempt == step.attempts {
                    continue;
                }
                lines.push((
                    end,
                    format!(
                        "{}  {}  attempt {} failed: {}",
                        clock(end),
                        escape(&step.key.to_string()),
                        a.attempt,
                        truncate(error, 200)
                    ),
                ));
            }
            let at = step_time(step);
            lines.push((at, format!("{}  {}", clock(at), step_line(step))));
        }
        // Stable: lines of one instant keep the journal's order.
        lines.sort_by_key(|(at, _)| *at);
        let mut lines: Vec<String> = lines.into_iter().map(|(_, line)| line).collect();
        if execution_changed && info.status.is_terminal() {
            lines.push(execution);
        }
        lines
    }
}

/// `18:48:03.120`, UTC.
fn clock(t: SystemTime) -> String {
    replayflow::http::format_time(t)[11..23].to_owned()
}

fn step_time(step: &StepRecord) -> SystemTime {
    step.completed_at
        .or_else(|| {
            step.attempt_log
                .last()
                .map(|a| a.ended_at.unwrap_or(a.started_at))
        })
        .unwrap_or(step.started_at)
}

fn step_line(step: &StepRecord) -> String {
    let key = escape(&step.key.to_string());
    let took = step
        .completed_at
        .map(|end| format::duration(format::between(step.started_at, end)));
    if step.kind != EntryKind::Step {
        return match (step.status, took) {
            (StepStatus::Completed, Some(took)) if step.kind == EntryKind::Sleep => {
                format!("{key}  slept {took}")
            }
            (StepStatus::Completed, _) => format!("{key}  recorded"),
            (status, _) => format!("{key}  {status}"),
        };
    }
    match step.status {
        StepStatus::Completed => format!(
            "{key}  completed in {} ({})",
            took.unwrap_or_default(),
            attempts(step.attempts)
        ),
        StepStatus::Failed => format!(
            "{key}  failed after {}: {}",
            attempts(step.attempts),
            truncate(step.error.as_deref().unwrap_or(""), 200)
        ),
        StepStatus::Running => format!("{key}  running (attempt {})", step.attempts),
        StepStatus::Retrying => {
            format!("{key}  retrying (attempt {} failed)", step.attempts)
        }
        StepStatus::Sleeping => format!("{key}  sleeping"),
        StepStatus::Waiting => format!("{key}  waiting for a message"),
        StepStatus::Pending => format!("{key}  pending"),
    }
}

fn attempts(n: u32) -> String {
    if n == 1 {
        "1 attempt".into()
    } else {
        format!("{n} attempts")
    }
}

fn execution_line(info: &ExecutionInfo) -> String {
    let mut line = format!("execution {} {}", escape(info.id.as_str()), info.status);
    if let Some(end) = info.completed_at {
        line.push_str(&format!(
            " after {}",
            format::duration(format::between(info.created_at, end))
        ));
    }
    match (info.status, info.wake_at) {
        (ExecutionStatus::Sleeping, Some(wake)) => {
            line.push_str(&format!(" until {} UTC", clock(wake)))
        }
        (ExecutionStatus::Waiting, Some(deadline)) => {
            line.push_str(&format!(" (deadline {} UTC)", clock(deadline)))
        }
        _ => {}
    }
    if info.restart_attempt > 0 {
        line.push_str(&format!(" (restart {})", info.restart_attempt));
    }
    if let Some(message) = &info.error_message {
        line.push_str(&format!(": {}", truncate(message, 200)));
    }
    line
}

const SPINNER: [&str; 4] = ["◐", "◓", "◑", "◒"];

/// The redrawn block: a header line and one line per journal entry.
fn progress(
    info: &ExecutionInfo,
    now: SystemTime,
    tick: usize,
    width: usize,
    colors: bool,
) -> Vec<String> {
    let elapsed = format::between(info.created_at, info.completed_at.unwrap_or(now));
    let symbol = match info.status {
        ExecutionStatus::Completed => "✓",
        ExecutionStatus::Failed | ExecutionStatus::Panicked => "✗",
        ExecutionStatus::Cancelled => "⊘",
        ExecutionStatus::Paused => "‖",
        _ => SPINNER[tick % SPINNER.len()],
    };
    let done = info
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::Completed)
        .count();
    let color = format::execution_color(info.status);
    let wakes = match (info.status, info.wake_at) {
        (ExecutionStatus::Sleeping, Some(wake)) => format!(
            "  wakes in {}",
            format::duration(format::between(now, wake))
        ),
        (ExecutionStatus::Waiting, Some(deadline)) => format!(
            "  gives up in {}",
            format::duration(format::between(now, deadline))
        ),
        _ => String::new(),
    };
    let plain_width = width.saturating_sub(1).max(20);
    let rest = truncate(
        &format!(
            "{}  {}  {}  {}  {}/{} entries done{wakes}",
            escape(info.id.as_str()),
            escape(&info.workflow),
            info.status.as_str(),
            format::duration(elapsed),
            done,
            info.steps.len()
        ),
        plain_width.saturating_sub(2),
    );
    // The status is painted in place, once the line has its width.
    let rest = rest.replacen(
        &format!("  {}  ", info.status.as_str()),
        &format!("  {}  ", paint(info.status.as_str(), color, colors)),
        1,
    );
    let mut lines = vec![format!("{} {rest}", paint(symbol, color, colors))];
    for step in &info.steps {
        let (mark, color) = match step.status {
            StepStatus::Completed => ("✓", "32"),
            StepStatus::Failed => ("✗", "31"),
            StepStatus::Running => (SPINNER[tick % SPINNER.len()], "34"),
            StepStatus::Retrying => ("↻", "33"),
            StepStatus::Sleeping => ("◷", "35"),
            StepStatus::Waiting => ("✉", "35"),
            StepStatus::Pending => ("·", "90"),
        };
        let took = format::duration(format::between(
            step.started_at,
            step.completed_at.unwrap_or(now),
        ));
        // A completed step keeps its last failure's message: not news.
        let note = match (step.status, &step.error) {
            (StepStatus::Failed | StepStatus::Retrying, Some(e)) => format!("  {}", escape(e)),
            _ => String::new(),
        };
        let tries = match step.kind {
            EntryKind::Step => attempts(step.attempts),
            kind => kind.as_str().to_owned(),
        };
        let text = format!(
            "{:<24} {:<10} {:<11} {:>8}{}",
            escape(&step.key.to_string()),
            step.status.as_str(),
            tries,
            took,
            note
        );
        // Cut to the terminal's width: a wrapped line would break the redraw.
        let text = truncate(&text, plain_width.saturating_sub(4));
        lines.push(format!("  {} {}", paint(mark, color, colors), text));
    }
    if let Some(message) = &info.error_message {
        let text = truncate(message, plain_width.saturating_sub(2));
        lines.push(format!("  {}", paint(&text, "31", colors)));
    }
    lines
}
