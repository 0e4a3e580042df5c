//! `workflow cancel|resume|restart ID`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use replayflow::{AdminAction, ExecutionInfo, RequestState, Runtime};

use crate::args::ActionArgs;
use crate::format::escape;
use crate::{Failure, emit};

/// How often `--wait` reads the request back. The worker sweeps requests
/// once a second, so this adds at most a tenth of that to the wait.
const POLL: Duration = Duration::from_millis(100);

pub(crate) async fn run(
    rt: &Runtime,
    action: AdminAction,
    args: &ActionArgs,
) -> Result<ExitCode, Failure> {
    let before = rt.status(args.id.as_str()).await?;
    check(&before, action)?;
    let request = rt.request(args.id.as_str(), action).await?;
    let shown = escape(&args.id);
    if !args.wait {
        emit(&format!(
            "{action} of `{shown}` requested ({}); the running application applies it within a second\n",
            before.status
        ))?;
        return Ok(ExitCode::SUCCESS);
    }
    // The request's own row says when the worker took it and what came of
    // it; the execution's row may not change at all (a resume of an
    // execution already running there, a cancel that waits for the step in
    // flight), so it cannot tell.
    let deadline = Instant::now() + args.timeout;
    loop {
        match rt.request_state(request).await? {
            RequestState::Applied => {
                let now = rt.status(args.id.as_str()).await?;
                emit(&format!(
                    "{action} of `{shown}` applied: it is {}\n",
                    now.status
                ))?;
                return Ok(ExitCode::SUCCESS);
            }
            RequestState::Refused(reason) => {
                return Err(Failure(format!(
                    "the application refused {action} of `{}`: {reason}",
                    args.id
                )));
            }
            // Pending, or a state this build does not know: wait on.
            _ => {}
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Failure(format!(
                "{action} of `{}` was requested but not applied within {:?}; is the application that runs it up? (the request stays recorded: it is applied when the application next opens the database)",
                args.id, args.timeout
            )));
        }
        tokio::time::sleep(POLL.min(left)).await;
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
