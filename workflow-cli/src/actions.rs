//! `workflow cancel|resume|restart ID`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use replayflow::{AdminAction, ExecutionInfo, RequestState, Runtime};

use crate::args::{ActionArgs, StartArgs};
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
    let what = format!("{action} of `{}`", args.id);
    wait_applied(rt, request, args.timeout, &what).await?;
    let now = rt.status(args.id.as_str()).await?;
    emit(&format!(
        "{action} of `{shown}` applied: it is {}\n",
        now.status
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// Waits until the worker has applied `request` (`what` it asks, for
/// messages), up to `timeout`; a refusal or no answer is the error.
async fn wait_applied(
    rt: &Runtime,
    request: replayflow::RequestId,
    timeout: Duration,
    what: &str,
) -> Result<(), Failure> {
    let deadline = Instant::now() + timeout;
    loop {
        match rt.request_state(request).await? {
            RequestState::Applied => return Ok(()),
            RequestState::Refused(reason) => {
                return Err(Failure(format!("the application refused {what}: {reason}")));
            }
            // Pending, or a state this build does not know: wait on.
            _ => {}
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Failure(format!(
                "{what} was requested but not applied within {timeout:?}; is the application that runs it up? (the request stays recorded: it is applied when the application next opens the database)"
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

/// `workflow start WORKFLOW ID [INPUT]`: a request the application applies.
pub(crate) async fn start(rt: &Runtime, args: &StartArgs) -> Result<ExitCode, Failure> {
    let input: serde_json::Value = serde_json::from_str(&args.input).map_err(|e| {
        Failure(format!(
            "the input is not JSON ({e}); give an object keyed by parameter name: '{{\"order\": 7}}'"
        ))
    })?;
    let request = rt
        .request_start(&args.workflow, args.id.as_str(), &input)
        .await?;
    let (id, workflow) = (escape(&args.id), escape(&args.workflow));
    if !args.wait {
        emit(&format!(
            "start of `{id}` (workflow `{workflow}`) requested; the running application applies it within a second\n"
        ))?;
        return Ok(ExitCode::SUCCESS);
    }
    let what = format!("the start of `{}`", args.id);
    wait_applied(rt, request, args.timeout, &what).await?;
    let now = rt.status(args.id.as_str()).await?;
    emit(&format!("`{id}` started: it is {}\n", now.status))?;
    Ok(ExitCode::SUCCESS)
}
