//! Helpers for an application's own tests.
//!
//! A journal captured from production becomes a regression test: keep a
//! copy of the database file (one file, with its log folded in) beside
//! the tests, and replay the execution that matters against the code being
//! changed:
//!
//! ```sh
//! # a consistent one-file copy, safe while the worker runs
//! sqlite3 /var/lib/my-app/app.db "VACUUM INTO 'tests/fixtures/order-7.db'"
//! ```
//!
//! ```no_run
//! # use replayflow::{workflow, AnyError, Context};
//! # #[workflow]
//! # async fn order(ctx: Context) -> Result<(), AnyError> { Ok(()) }
//! #[tokio::test]
//! async fn order_7_still_replays() {
//!     replayflow::testing::replay::<order>("tests/fixtures/order-7.db", "order-7")
//!         .await
//!         .unwrap();
//! }
//! ```

use std::path::Path;

use crate::error::{Error, Result};
use crate::record::ExecutionId;
use crate::runtime::{Runtime, Workflow};

/// Replays execution `id` of the database file at `path` against workflow
/// `W` of this build, dry (see [`Runtime::check`]): no step body runs and
/// the file is read as it is on disk, never written (not even a `-wal` or
/// `-shm` beside it). `Ok` when it would run on; [`Error::WouldNotReplay`]
/// with the reason a real run would park it with; [`Error::InvalidOption`]
/// when the execution belongs to another workflow; [`Error::NotFound`] when
/// the file has no such execution.
pub async fn replay<W: Workflow>(path: impl AsRef<Path>, id: impl Into<ExecutionId>) -> Result<()> {
    let id = id.into();
    let rt = Runtime::builder()
        .path(path)
        .snapshot()
        .register::<W>()
        .panic_hook(false)
        .open()
        .await?;
    let workflow = rt.status(id.clone()).await?.workflow;
    let expected = W::descriptor().name;
    if workflow != expected {
        return Err(Error::InvalidOption(format!(
            "execution `{id}` belongs to workflow `{workflow}`, not `{expected}`"
        )));
    }
    match rt.check_execution(id).await? {
        None => Ok(()),
        Some(finding) => Err(Error::WouldNotReplay(Box::new(finding))),
    }
}
