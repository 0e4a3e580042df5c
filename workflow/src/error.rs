//! The runtime's error type, the serializable application error, and the
//! failures the runtime itself hands to a step.

use std::error::Error as StdError;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::record::ExecutionId;

/// The result type of the runtime's own operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error of the runtime itself: opening, journaling, starting, resuming.
///
/// Errors of the user's workflows and steps never travel through this type;
/// they reach the workflow as the step's own `Err` and the caller of
/// [`Handle::result`](crate::Handle::result) as [`RunError::Workflow`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database reported an error.
    #[error("database error: {0}")]
    Database(#[source] DatabaseError),

    /// An execution would not replay on this build
    /// ([`testing::replay`](crate::testing::replay)).
    #[error("execution `{}` of workflow `{}` would not replay on this build: {}: {}", .0.id, .0.workflow, .0.problem, .0.message)]
    WouldNotReplay(Box<crate::check::CheckFinding>),

    /// Reading or writing a file next to the database failed.
    #[error("i/o error on `{path}`: {source}")]
    Io {
        /// The file concerned.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },

    /// The file exists but is not a database of this library (another program's
    /// SQLite file, or not SQLite at all). The file was not modified.
    #[error("`{path}` is not a workflow database: {reason}; the file was left untouched")]
    ForeignDatabase {
        /// The file concerned.
        path: String,
        /// What the probe found.
        reason: String,
    },

    /// The file carries our header but its content is damaged. The file was
    /// not modified.
    #[error("`{path}` is corrupt: {message}; the file was left untouched")]
    Corrupt {
        /// The file concerned.
        path: String,
        /// What SQLite found.
        message: String,
    },

    /// The database's write-ahead log holds less than was committed to it
    /// (it was damaged, truncated or removed, or the file was replaced by an
    /// older copy). Neither the file nor its log was modified.
    #[error(
        "`{path}` has lost committed data: {detail}; the file and its log were left as they are (restore them from a backup, or move the lock file `<file>.lock` aside to open what is left)"
    )]
    JournalLost {
        /// The database file.
        path: String,
        /// What is missing.
        detail: String,
    },

    /// Another connection held the database's write lock longer than the
    /// busy timeout, through every retry. Nothing was written.
    #[error("the database is locked by another connection: {message}")]
    Busy {
        /// SQLite's message.
        message: String,
    },

    /// This worker was declared dead on a shared (PostgreSQL) database: its
    /// lease ran out before it could renew it. It may commit nothing more;
    /// other workers take its executions over, and it registers anew.
    #[error(
        "worker {worker} lost its lease on the database and was declared dead: its executions are taken over by other workers"
    )]
    Fenced {
        /// The id the worker had.
        worker: i64,
    },

    /// The database server could not be reached (the connection was lost
    /// or refused). What was not acknowledged may or may not be committed;
    /// executions stop where they are and go on by replay once it answers.
    #[error("the database cannot be reached: {0}")]
    Unavailable(String),

    /// A TLS connection to PostgreSQL could not be made as the URL's
    /// `sslmode` asks (cargo feature `postgres-tls`): the server refused
    /// TLS, its certificate is not trusted, or the root certificates could
    /// not be read. Nothing was connected in clear.
    #[error("TLS to PostgreSQL: {0}")]
    Tls(String),

    /// On a shared (PostgreSQL) database, another worker runs this
    /// execution now; this process stopped driving it and wrote nothing.
    #[error("execution `{0}` is run by another worker; this worker stopped driving it")]
    Disowned(ExecutionId),

    /// The database was written by a newer version of this library.
    #[error(
        "`{path}` has schema version {found}, newer than the {supported} this build supports; upgrade the application"
    )]
    SchemaTooNew {
        /// The file concerned.
        path: String,
        /// The schema version in the file.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },

    /// Another worker process runs the executions of this database.
    #[error("`{path}` is in use by {holder}; one database is run by one worker process")]
    Locked {
        /// The database file.
        path: String,
        /// Who holds the lock, as it wrote itself into the lock file.
        holder: String,
    },

    /// The database's full path is longer than SQLite can open. Nothing was
    /// created.
    #[error(
        "`{path}` is {len} bytes long as a full path, over the {limit} SQLite can open; use a shorter path"
    )]
    PathTooLong {
        /// The path given.
        path: String,
        /// The length of its full (resolved) path, in bytes.
        len: usize,
        /// The longest full path SQLite opens.
        limit: usize,
    },

    /// An admin open found no database at the path.
    #[error("no workflow database at `{path}`")]
    NoDatabase {
        /// The path given.
        path: String,
    },

    /// An admin open found a schema other than the one this build writes
    /// (version 0: a file stamped as ours whose tables were never created).
    #[error("{}", schema_mismatch(path, *found, *supported))]
    SchemaMismatch {
        /// The file concerned.
        path: String,
        /// The schema version in the file.
        found: i64,
        /// The version this build reads.
        supported: i64,
    },

    /// A snapshot open ([`RuntimeBuilder::snapshot`](crate::RuntimeBuilder::snapshot))
    /// cannot read the file as it is on disk.
    #[error("cannot read `{path}` in place: {reason}")]
    SnapshotRefused {
        /// The file concerned.
        path: String,
        /// Why, naming the directory.
        reason: String,
    },

    /// The operation needs a worker runtime; this one was opened as an admin.
    #[error(
        "{0} needs a worker runtime; this one was opened as an admin (it only reads and records requests)"
    )]
    AdminMode(&'static str),

    /// No execution has this id.
    #[error("no execution with id `{0}`")]
    NotFound(ExecutionId),

    /// The id is already used by an execution of another workflow.
    #[error("execution id `{id}` already belongs to workflow `{existing}`, not `{requested}`")]
    IdConflict {
        /// The contested id.
        id: ExecutionId,
        /// The workflow that owns the id.
        existing: String,
        /// The workflow the caller asked for.
        requested: String,
    },

    /// The workflow name is not registered in this process.
    #[error("workflow `{0}` is not registered in this process")]
    UnknownWorkflow(String),

    /// Two workflows were registered under one name.
    #[error("workflow name `{name}` is registered twice: by `{first}` and by `{second}`")]
    DuplicateWorkflow {
        /// The contested name.
        name: String,
        /// Path of the first function.
        first: String,
        /// Path of the second function.
        second: String,
    },

    /// A payload could not be encoded or decoded.
    #[error(transparent)]
    Codec(#[from] CodecError),

    /// A payload is larger than the configured limit; nothing was written.
    #[error("{what} is {size} bytes, over the configured limit of {limit} bytes")]
    PayloadTooLarge {
        /// What the payload is (an execution's input, a step's output).
        what: String,
        /// Its encoded size.
        size: usize,
        /// The limit.
        limit: usize,
    },

    /// The execution has ended: it takes no more messages.
    #[error("execution `{id}` is {status}; it takes no more messages")]
    Finished {
        /// The execution.
        id: ExecutionId,
        /// How it ended.
        status: crate::status::ExecutionStatus,
    },

    /// The database file has an older schema than the operation needs (an
    /// admin open never migrates: a worker of an older build may still run
    /// on it).
    #[error(
        "`{path}` has schema version {found}; {what} needs version {needed}: open it once with a worker of this build to migrate it"
    )]
    NotMigrated {
        /// The file concerned.
        path: String,
        /// The schema version in the file.
        found: i64,
        /// The version the operation needs.
        needed: i64,
        /// The operation.
        what: &'static str,
    },

    /// Only panicked and failed executions can be restarted.
    #[error("execution `{id}` is {status}; only panicked and failed executions can be restarted")]
    NotRestartable {
        /// The execution.
        id: ExecutionId,
        /// Its status.
        status: crate::status::ExecutionStatus,
    },

    /// The runtime has been shut down, or its writer thread is gone.
    #[error("the runtime is shut down")]
    Shutdown,

    /// A runtime option is out of range.
    #[error("invalid option: {0}")]
    InvalidOption(String),
}

/// The message of [`Error::SchemaMismatch`]. Version 0 is no version at
/// all: the worker that created the file stopped before creating its tables.
fn schema_mismatch(path: &str, found: i64, supported: i64) -> String {
    if found == 0 {
        format!(
            "`{path}` is a workflow database whose tables were never created (schema version 0: the application that created it stopped before setting it up); open it once with the application to create them"
        )
    } else {
        format!(
            "`{path}` has schema version {found}, this build reads version {supported}; open it with a matching version"
        )
    }
}

/// An error the database client reported. It displays the client's message
/// and continues with the client's own source chain; the client's type stays
/// private, so that the store can change client.
#[derive(Debug)]
pub struct DatabaseError {
    source: Box<dyn StdError + Send + Sync>,
}

impl DatabaseError {
    pub(crate) fn new(source: impl StdError + Send + Sync + 'static) -> DatabaseError {
        DatabaseError {
            source: Box::new(source),
        }
    }
}

impl fmt::Display for DatabaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.source, f)
    }
}

impl StdError for DatabaseError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.source()
    }
}

/// A payload that could not be encoded or decoded with the execution's codec.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot {operation} {what} as `{type_name}`: {message}")]
pub struct CodecError {
    /// `encode` or `decode`.
    pub operation: &'static str,
    /// What the payload is, e.g. "the output of step `charge#0`".
    pub what: String,
    /// The Rust type involved.
    pub type_name: &'static str,
    /// The codec's message, with the path inside the value where it has one.
    pub message: String,
}

/// A failure that originates in the runtime rather than in a step's body:
/// an attempt that timed out, a result that cannot be encoded, a result over
/// the size limit.
///
/// It reaches the workflow as the step's own error when that error type
/// implements `From<StepFailure>` ([`AnyError`] does). A step whose error type
/// cannot hold it ends the execution as failed, with this failure as the reason.
///
/// ```
/// use std::time::Duration;
/// use serde::{Deserialize, Serialize};
/// use replayflow::{step, workflow, Context, Runtime, StepFailure};
///
/// #[derive(Debug, Serialize, Deserialize)]
/// enum QuoteError {
///     Runtime(StepFailure),
/// }
///
/// impl From<StepFailure> for QuoteError {
///     fn from(failure: StepFailure) -> Self {
///         QuoteError::Runtime(failure)
///     }
/// }
///
/// #[step(timeout = "10ms", max_attempts = 1)]
/// async fn live_quote() -> Result<u64, QuoteError> {
///     tokio::time::sleep(Duration::from_secs(5)).await; // a slow service
///     Ok(120)
/// }
///
/// #[workflow]
/// async fn quote(ctx: Context) -> Result<u64, QuoteError> {
///     match live_quote().await {
///         Err(QuoteError::Runtime(StepFailure::Timeout { .. })) => Ok(100), // a fallback price
///         other => other,
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let rt = Runtime::in_memory().await?;
/// assert_eq!(quote::start(&rt, "quote-1").await?.result().await?, 100);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum StepFailure {
    /// An attempt ran longer than the step's `timeout`. Timeouts are retried.
    #[error("step `{step}` attempt {attempt} timed out after {timeout_ms} ms")]
    Timeout {
        /// The step's key.
        step: String,
        /// The attempt that timed out.
        attempt: u32,
        /// The configured timeout.
        timeout_ms: u64,
    },
    /// An attempt of an `at_most_once` step was in flight when the process
    /// stopped (or it panicked): whether its effect happened is unknown, so
    /// it counts as failed and is left to the retry policy, never silently
    /// run again. Retried like a timeout while attempts are left.
    #[error(
        "step `{step}` attempt {attempt} was interrupted (the process stopped or the step panicked while it ran); it is not run again unless its retry policy allows"
    )]
    Interrupted {
        /// The step's key.
        step: String,
        /// The attempt that was interrupted.
        attempt: u32,
    },
    /// The step's result could not be encoded (permanent).
    #[error("step `{step}` produced a value that cannot be journaled: {message}")]
    Encode {
        /// The step's key.
        step: String,
        /// The codec's message, naming the type.
        message: String,
    },
    /// The step's encoded result is over the configured size limit (permanent).
    #[error("step `{step}` produced {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// The step's key.
        step: String,
        /// The encoded size.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
}

impl StepFailure {
    /// Whether retrying the step could help.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StepFailure::Timeout { .. } | StepFailure::Interrupted { .. }
        )
    }
}

/// A serializable error for steps and workflows whose errors are not serde
/// types: it converts from anything `?` could turn into a
/// `Box<dyn Error + Send + Sync>` (`anyhow::Error`, `std::io::Error`, boxed
/// errors, `String`, `&str`) and keeps the whole message chain.
///
/// Replay gives back an equivalent `AnyError` (the same messages), not the
/// original error value: use a serde error type where the workflow must match
/// on variants.
///
/// ```
/// use replayflow::AnyError;
///
/// fn parse(s: &str) -> Result<u32, AnyError> {
///     let n: u32 = s.parse()?; // ParseIntError -> AnyError
///     Ok(n)
/// }
/// let err = parse("x").unwrap_err();
/// assert_eq!(err.to_string(), "invalid digit found in string");
/// ```
///
/// `AnyError` deliberately does not implement [`std::error::Error`] (that
/// would collide with the blanket conversion, as for `anyhow::Error`); use
/// [`AnyError::chain`] to walk the causes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnyError {
    message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    causes: Vec<String>,
}

impl AnyError {
    /// An error with one message and no causes.
    pub fn msg(message: impl fmt::Display) -> Self {
        AnyError {
            message: message.to_string(),
            causes: Vec::new(),
        }
    }

    /// The outermost message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The messages from the outermost to the root cause.
    pub fn chain(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.message.as_str()).chain(self.causes.iter().map(String::as_str))
    }
}

impl<E> From<E> for AnyError
where
    E: Into<Box<dyn StdError + Send + Sync + 'static>>,
{
    fn from(error: E) -> Self {
        let boxed: Box<dyn StdError + Send + Sync + 'static> = error.into();
        let mut causes = Vec::new();
        let mut source = boxed.source();
        while let Some(cause) = source {
            causes.push(cause.to_string());
            source = cause.source();
        }
        AnyError {
            message: boxed.to_string(),
            causes,
        }
    }
}

impl fmt::Display for AnyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if f.alternate() {
            for cause in &self.causes {
                write!(f, ": {cause}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for AnyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if !self.causes.is_empty() {
            f.write_str("\n\nCaused by:")?;
            for (i, cause) in self.causes.iter().enumerate() {
                write!(f, "\n    {i}: {cause}")?;
            }
        }
        Ok(())
    }
}

/// Why [`Handle::result`](crate::Handle::result) did not return the
/// workflow's output.
///
/// Only [`RunError::Workflow`] holds the workflow's own `Err`; the other
/// variants say that the execution ended, or stopped, without one.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use replayflow::{workflow, Context, ExecutionStatus, RunError, Runtime};
///
/// #[derive(Debug, Serialize, Deserialize)]
/// enum SignUpError {
///     EmailTaken(String),
/// }
///
/// #[workflow]
/// async fn sign_up(ctx: Context, email: String) -> Result<u64, SignUpError> {
///     Err(SignUpError::EmailTaken(email))
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let rt = Runtime::in_memory().await?;
/// let handle = sign_up::start(&rt, "sign-up-1", "ada@example.com".into()).await?;
/// let message = match handle.result().await {
///     Ok(user) => format!("welcome, user {user}"),
///     Err(RunError::Workflow(SignUpError::EmailTaken(email))) => {
///         format!("{email} already has an account")
///     }
///     Err(RunError::Cancelled) => "sign-up cancelled".to_owned(),
///     // Out of restarts, or parked: for an operator to look at.
///     Err(RunError::Failed(reason) | RunError::Paused(reason)) => format!("stuck: {reason}"),
///     // The runtime could not tell (a database error, a shutdown).
///     Err(e) => return Err(e.into()),
/// };
/// assert_eq!(message, "ada@example.com already has an account");
/// // A workflow that returned `Err` ended as failed.
/// assert_eq!(rt.status("sign-up-1").await?.status, ExecutionStatus::Failed);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum RunError<E> {
    /// The workflow returned its own error.
    Workflow(E),
    /// The execution was cancelled.
    Cancelled,
    /// The execution's deadline passed
    /// ([`StartOptions::timeout`](crate::StartOptions::timeout),
    /// `#[workflow(timeout = "...")]`): it was cancelled at its next
    /// boundary. The reason names the deadline.
    DeadlineExceeded(String),
    /// The execution failed for a reason that is not the workflow's error:
    /// its panic budget ran out, or a runtime failure its error type could not hold.
    Failed(String),
    /// The execution is parked (non-determinism, an undecodable payload) and
    /// waits for a fixed process to resume it.
    Paused(String),
    /// The runtime could not tell (database error, shutdown).
    Runtime(Error),
}

// Debug, not Display, of `E`: serde error enums often have no Display.
impl<E: fmt::Debug> fmt::Display for RunError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Workflow(e) => write!(f, "workflow returned an error: {e:?}"),
            RunError::Cancelled => f.write_str("execution was cancelled"),
            RunError::DeadlineExceeded(reason) => write!(f, "execution was cancelled: {reason}"),
            RunError::Failed(reason) => write!(f, "execution failed: {reason}"),
            RunError::Paused(reason) => write!(f, "execution is paused: {reason}"),
            RunError::Runtime(e) => write!(f, "runtime error: {e}"),
        }
    }
}

impl<E: fmt::Debug> StdError for RunError<E> {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            RunError::Runtime(e) => Some(e),
            _ => None,
        }
    }
}

impl<E> From<Error> for RunError<E> {
    fn from(e: Error) -> Self {
        RunError::Runtime(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("loading config")
        }
    }
    impl StdError for Outer {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn any_error_keeps_the_chain() {
        let e = AnyError::from(Outer(std::io::Error::other("disk gone")));
        assert_eq!(
            e.chain().collect::<Vec<_>>(),
            ["loading config", "disk gone"]
        );
        assert_eq!(format!("{e:#}"), "loading config: disk gone");
        let json = serde_json::to_string(&e).unwrap();
        let back: AnyError = serde_json::from_str(&json).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn any_error_from_strings() {
        assert_eq!(AnyError::from("boom").message(), "boom");
        assert_eq!(AnyError::from(String::from("bang")).to_string(), "bang");
    }
}
