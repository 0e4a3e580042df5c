// The expansion is clean under strict lints.
#![deny(
    warnings,
    missing_docs,
    unused_qualifications,
    unreachable_pub,
    missing_debug_implementations
)]
//! A crate with strict lints.

use replayflow::step;

/// Steps of a documented library.
pub mod steps {
    use super::step;

    /// Counts the bytes of a name.
    #[step(max_attempts = 2, backoff = "10ms")]
    pub async fn count(name: String, _unused: u8) -> Result<usize, String> {
        Ok(name.len())
    }

    /// Moves its argument in.
    #[step(max_attempts = 1)]
    pub async fn take(name: String) -> Result<usize, String> {
        Ok(name.len())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(steps::count("abc".to_owned(), 0).await.unwrap(), 3);
    assert_eq!(steps::take("ab".to_owned()).await.unwrap(), 2);
}
