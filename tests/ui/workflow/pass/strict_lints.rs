// The expansion is clean under strict lints.
#![deny(
    warnings,
    missing_docs,
    unused_qualifications,
    unreachable_pub,
    missing_debug_implementations
)]
//! A crate with strict lints.

use replayflow::{Context, Runtime, workflow};

/// Workflows of a documented library.
pub mod flows {
    use super::{Context, workflow};

    /// Counts the bytes of a name.
    #[workflow(max_restarts = 1)]
    pub async fn count(_ctx: Context, name: String, _unused: u8) -> Result<usize, String> {
        Ok(name.len())
    }

    #[workflow]
    pub(crate) async fn undocumented_private(_ctx: Context) -> Result<(), String> {
        Ok(())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let rt = Runtime::in_memory().await.unwrap();
    let handle = flows::count::start(&rt, "count-1", "abc".to_owned(), 0)
        .await
        .unwrap();
    assert_eq!(handle.result().await.unwrap(), 3);
    flows::undocumented_private::start(&rt, "p-1")
        .await
        .unwrap()
        .result()
        .await
        .unwrap();
}
