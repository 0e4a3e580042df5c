//! Statuses of executions, journal entries and attempts, stored as lowercase
//! text guarded by CHECK constraints (each store converts them through
//! `as_str` and `FromStr`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Declares a text-backed enum with its string conversions in one place,
/// so a status name is spelled once.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+ }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $( $(#[$vmeta])* $variant, )+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The lowercase name stored in the database.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)+ }
            }

            /// A CHECK condition allowing exactly these values in `column`.
            /// Written as an OR chain, not `column IN (...)`: SQLite runs
            /// an IN list of three or more constants through an ephemeral
            /// b-tree built on every INSERT and UPDATE, which cost more
            /// than the rest of a step's write (see BENCHMARKS.md).
            // Not every enum's column is checked by a constraint made
            // from it: the migrations keep the lists they had.
            #[allow(dead_code)]
            pub(crate) fn sql_check(column: &str) -> String {
                let terms: Vec<String> =
                    Self::ALL.iter().map(|v| format!("{column} = '{}'", v.as_str())).collect();
                terms.join(" OR ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(
                        concat!("unknown ", stringify!($name), " `{}`, expected one of: ", $($text, " ",)+),
                        other
                    )),
                }
            }
        }
    };
}

text_enum! {
    /// Where an execution stands.
    pub enum ExecutionStatus {
        /// Running (or waiting to be resumed by replay after a crash).
        Running = "running",
        /// Suspended in a durable sleep until its wake time.
        Sleeping = "sleeping",
        /// Suspended until a message arrives on the topic it waits for
        /// (`Context::recv`), or its deadline passes.
        Waiting = "waiting",
        /// Returned `Ok`; the output is journaled.
        Completed = "completed",
        /// Returned `Err`, or ran out of restarts.
        Failed = "failed",
        /// Panicked; waits for its restart.
        Panicked = "panicked",
        /// About to be restarted by replay.
        Restarting = "restarting",
        /// Cancelled by a request.
        Cancelled = "cancelled",
        /// Parked (non-determinism, an undecodable payload, a recovery budget
        /// spent) until resumed.
        Paused = "paused",
    }
}

impl ExecutionStatus {
    /// Whether the execution is suspended (sleeping, or waiting for a
    /// message or a child): what a wake-up may replay.
    pub fn is_suspended(self) -> bool {
        matches!(self, ExecutionStatus::Sleeping | ExecutionStatus::Waiting)
    }

    /// Whether the execution has ended for good (completed, failed or cancelled).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ExecutionStatus::Completed | ExecutionStatus::Failed | ExecutionStatus::Cancelled
        )
    }
}

text_enum! {
    /// Where a journal entry stands.
    pub enum StepStatus {
        /// Reserved but not started.
        Pending = "pending",
        /// An attempt is in flight (or was, when the process died).
        Running = "running",
        /// The result is journaled; the step never runs again.
        Completed = "completed",
        /// The last attempt failed; the error is journaled.
        Failed = "failed",
        /// A durable sleep that has not yet woken.
        Sleeping = "sleeping",
        /// Waiting out a backoff before the next attempt.
        Retrying = "retrying",
        /// A `Context::recv` waiting for a message (its wake time is the
        /// deadline, if it has one).
        Waiting = "waiting",
    }
}

text_enum! {
    /// What a journal entry records. Steps, sleeps and helper values share one
    /// sequence of positions.
    pub enum EntryKind {
        /// A step call (`#[step]` or `ctx.step`).
        Step = "step",
        /// A durable sleep.
        Sleep = "sleep",
        /// A journaled `ctx.now()`.
        Now = "now",
        /// A journaled random value (`ctx.random_u64()`, `ctx.uuid()`).
        Random = "random",
        /// The marker of a code change an execution reached on new code
        /// (`ctx.patched(id)`); its name is the change's id.
        Patch = "patch",
        /// A message taken by `Context::recv` (its name is the topic; no
        /// value when the wait timed out).
        Recv = "recv",
        /// A value published by `Context::set_event` (its name is the key).
        Event = "event",
        /// A value appended by `Context::write_stream`, or the end of the
        /// stream (`Context::close_stream`, no value); its name is the key.
        Stream = "stream",
        /// A child workflow started (its name is the child's workflow, its
        /// value the child's id) or ended (named by the child's id with
        /// `.result`, its value how it ended).
        Child = "child",
    }
}

text_enum! {
    /// How one attempt of a step ended.
    pub enum AttemptStatus {
        /// In flight, or interrupted by a crash.
        Running = "running",
        /// Returned `Ok`.
        Completed = "completed",
        /// Returned `Err`, timed out, or panicked.
        Failed = "failed",
    }
}

text_enum! {
    /// Why an execution is paused.
    pub enum PauseCause {
        /// The workflow made other calls than its journal recorded; resumed
        /// automatically when a process opens the database (its code may be fixed).
        Nondeterminism = "nondeterminism",
        /// A journaled payload no longer decodes into the workflow's types.
        Undecodable = "undecodable",
        /// The execution was interrupted too many times in a row without progress.
        RecoveryBudget = "recovery_budget",
        /// The journal refused a write (disk full, database locked).
        Storage = "storage",
    }
}

text_enum! {
    /// A request written by an admin (CLI, dashboard) for the worker to apply.
    pub enum AdminAction {
        /// `Runtime::cancel`.
        Cancel = "cancel",
        /// `Runtime::resume`.
        Resume = "resume",
        /// `Runtime::restart`.
        Restart = "restart",
    }
}

/// How the outcome of a refused admin request starts in the
/// `admin_requests` table; the reason follows.
pub(crate) const REFUSED: &str = "refused: ";

impl AdminAction {
    /// Whether the action can apply to an execution in `status`: cancel to
    /// an unfinished one, resume to a running (perhaps interrupted),
    /// sleeping, waiting or paused one, restart to a panicked, restarting or failed
    /// one (resuming those would bypass their restart count). The CLI, the
    /// HTTP API and the dashboard refuse the others up front.
    pub fn applies_to(self, status: ExecutionStatus) -> bool {
        match self {
            AdminAction::Cancel => !status.is_terminal(),
            AdminAction::Resume => matches!(
                status,
                ExecutionStatus::Running
                    | ExecutionStatus::Sleeping
                    | ExecutionStatus::Waiting
                    | ExecutionStatus::Paused
            ),
            AdminAction::Restart => matches!(
                status,
                ExecutionStatus::Panicked | ExecutionStatus::Restarting | ExecutionStatus::Failed
            ),
        }
    }

    /// Why the action does not apply to execution `id` in `status`, for a
    /// user (see [`AdminAction::applies_to`]).
    pub fn refusal(self, id: &str, status: ExecutionStatus) -> String {
        match self {
            AdminAction::Restart => format!(
                "execution `{id}` is {status}; only panicked and failed executions can be restarted"
            ),
            _ if status.is_terminal() => {
                format!("execution `{id}` is {status}; there is nothing to {self}")
            }
            _ => format!("execution `{id}` is {status}; restart it instead of resuming it"),
        }
    }

    /// The actions that apply to an execution in `status`.
    pub fn allowed_for(status: ExecutionStatus) -> Vec<AdminAction> {
        AdminAction::ALL
            .iter()
            .copied()
            .filter(|a| a.applies_to(status))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_text() {
        for s in ExecutionStatus::ALL {
            assert_eq!(s.as_str().parse::<ExecutionStatus>().unwrap(), *s);
        }
        for s in StepStatus::ALL {
            assert_eq!(s.as_str().parse::<StepStatus>().unwrap(), *s);
        }
        assert!("Running".parse::<ExecutionStatus>().is_err());
    }

    #[test]
    fn actions_apply_to_the_statuses_they_can_change() {
        use AdminAction::*;
        use ExecutionStatus::*;
        assert_eq!(AdminAction::allowed_for(Running), [Cancel, Resume]);
        assert_eq!(AdminAction::allowed_for(Panicked), [Cancel, Restart]);
        assert_eq!(AdminAction::allowed_for(Paused), [Cancel, Resume]);
        assert_eq!(AdminAction::allowed_for(Failed), [Restart]);
        assert_eq!(AdminAction::allowed_for(Completed), []);
        assert_eq!(AdminAction::allowed_for(Cancelled), []);
    }

    #[test]
    fn sql_check_names_every_value() {
        assert_eq!(
            EntryKind::sql_check("kind"),
            "kind = 'step' OR kind = 'sleep' OR kind = 'now' OR kind = 'random' OR kind = 'patch' OR kind = 'recv' OR kind = 'event' OR kind = 'stream' OR kind = 'child'"
        );
    }
}
