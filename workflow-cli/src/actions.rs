//! `workflow cancel|resume|restart ID`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use replayflow::{AdminAction, ExecutionInfo, Runtime};

use crate::args::ActionArgs;
use crate::{Failure, emit};

pub(crate) async fn run(
    rt: &Runtime,
    action: AdminAction,
    args: &ActionArgs,
) -> Result<ExitCode, Failure> {
    let before = rt.status(args.id.as_str()).await?;
    check(&before, action)?;
    match action {
        AdminAction::Cancel => rt.cancel(args.id.as_str()).await?,
        AdminAction::Resume => rt.resume(args.id.as_str()).await?,
        AdminAction::Restart => rt.restart(args.id.as_str()).await?,
    }
    if !args.wait {
        emit(&format!(
            "{action} of `{}` requested ({}); the running application applies it within a second\n",
            args.id, before.status
        ))?;
        return Ok(ExitCode::SUCCESS);
    }
    let deadline = Instant::now() + args.timeout;
    loop {
        let now = rt.status(args.id.as_str()).await?;
        if applied(&before, &now, action) {
            emit(&format!(
                "{action} of `{}` applied: it is {}\n",
                args.id, now.status
            ))?;
            return Ok(ExitCode::SUCCESS);
        }
        if Instant::now() >= deadline {
            return Err(Failure(format!(
                "{action} of `{}` was requested but not applied within {:?}; is the application that runs it up?",
                args.id, args.timeout
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Refuses what cannot apply, so the user learns it now rather than from
/// the application's log.
fn check(info: &ExecutionInfo, action: AdminAction) -> Result<(), Failure> {
    if action.applies_to(info.status) {
        return Ok(());
    }
    Err(Failure(match action {
        AdminAction::Restart => replayflow::Error::NotRestartable {
            id: info.id.clone(),
            status: info.status,
        }
        .to_string(),
        _ => action.refusal(info.id.as_str(), info.status),
    }))
}

/// Whether the worker has visibly applied `action`.
fn applied(before: &ExecutionInfo, now: &ExecutionInfo, action: AdminAction) -> bool {
    match action {
        AdminAction::Cancel => now.status.is_terminal(),
        AdminAction::Restart => now.restart_attempt > before.restart_attempt,
        AdminAction::Resume => {
            now.status != before.status
                || now.updated_at != before.updated_at
                || now.steps.len() != before.steps.len()
        }
    }
}
