//! Catching panics of workflow and step bodies, with their location.

use std::any::Any;
use std::cell::RefCell;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Once;
use std::task::{Context, Poll};

thread_local! {
    /// The location of the last panic on this thread, left by the hook for
    /// the `CatchUnwind` that catches it on the same thread.
    static LAST_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// Installs (once per process) a panic hook that records each panic's
/// location and then calls the hook that was there before.
pub(crate) fn install_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(loc) = info.location() {
                let text = format!("{}:{}:{}", loc.file(), loc.line(), loc.column());
                LAST_LOCATION.with(|l| *l.borrow_mut() = Some(text));
            }
            previous(info);
        }));
    });
}

/// A panic caught from a body: its message and, with the hook, its location.
#[derive(Debug, Clone)]
pub(crate) struct Panic {
    pub message: String,
    pub location: Option<String>,
}

impl Panic {
    fn from_payload(payload: &(dyn Any + Send)) -> Panic {
        let message = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "panic with a non-string payload".to_owned()
        };
        Panic {
            message,
            location: LAST_LOCATION.with(|l| l.borrow_mut().take()),
        }
    }
}

impl std::fmt::Display for Panic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.location {
            Some(at) => write!(f, "panicked at {at}: {}", self.message),
            None => write!(f, "panicked: {}", self.message),
        }
    }
}

pin_project_lite::pin_project! {
    /// Polls a future, turning a panic during a poll into `Err(Panic)`.
    pub(crate) struct CatchUnwind<F> {
        #[pin]
        inner: F,
    }
}

impl<F> CatchUnwind<F> {
    pub(crate) fn new(inner: F) -> Self {
        CatchUnwind { inner }
    }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, (Panic, Box<dyn Any + Send>)>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.project().inner;
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(payload) => Poll::Ready(Err((Panic::from_payload(&*payload), payload))),
        }
    }
}
