//! Talking to a running workflow, from inside it: taking messages
//! ([`Context::recv`]), publishing events ([`Context::set_event`]).
//!
//! A `recv` is a journal entry of kind `recv` named by its topic. Taking a
//! message is one commit that moves it from the inbox into that entry
//! ([`Store::take_message`](crate::store::Store)), so each message reaches
//! the workflow once and a replay reads the same one from the journal. A
//! wait longer than the suspension threshold suspends the execution
//! (status `waiting`, the deadline as its wake time); a send wakes it.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::context::Context;
use super::state::{Execution, WaitFor};
use crate::status::{EntryKind, PauseCause, StepStatus};
use crate::store::{EntryAt, JournalOp, Taken, TypeTag};

impl Execution {
    /// `Context::recv` and `Context::recv_timeout`: the message, or `None`
    /// when the deadline passed first.
    async fn recv<T: DeserializeOwned>(
        &self,
        branch: &Arc<str>,
        topic: &str,
        timeout: Option<Duration>,
    ) -> Option<T> {
        self.boundary().await;
        let mut r = self.reserve(branch, topic);
        let at = r.entry_at(&self.id, EntryKind::Recv);
        // From before the first look at the inbox: a sibling branch that
        // suspends the execution meanwhile wakes for this topic too.
        let _registered = self.waiting_for(WaitFor::Message(Arc::clone(&at.name)), None);
        let (deadline, record) = match self.recorded(&mut r, EntryKind::Recv).await {
            Some(entry) if entry.status == StepStatus::Completed => {
                // Timed out, on the run that journaled it.
                let payload = entry.output?;
                let what = || self.message_of(topic);
                // The type the workflow first read it as must read it again.
                self.check_type::<T>(entry.value_type, what).await;
                return Some(self.decode_or_park(&payload, what).await);
            }
            // A `recv_timeout` waits here: not this call (see `Context::recv`).
            Some(entry) if timeout.is_none() && entry.wake_at.is_some() => return None,
            // Waiting: the journaled deadline stands, whatever time it is now.
            Some(entry) => (entry.wake_at, None),
            None => {
                let now = self.now_millis();
                let deadline = timeout
                    .map(|d| now.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)));
                // Written if the first look at the inbox finds nothing.
                let record = JournalOp::RecordWait {
                    at: at.clone(),
                    deadline,
                    now,
                };
                (deadline, Some(record))
            }
        };
        let taken = self.wait_for_message::<T>(&at, deadline, record).await?;
        Some(self.received(topic, taken).await)
    }

    fn message_of(&self, topic: &str) -> String {
        format!("the message on topic `{topic}` of execution `{}`", self.id)
    }

    /// Takes the oldest message of the entry's topic (sent by `sent_by`, if
    /// given) into the journal, as read by `T`.
    async fn take<T>(&self, at: &EntryAt, sent_by: Option<i64>) -> Option<Taken> {
        let tag = TypeTag::of::<T>();
        self.engine.note_type(tag).await;
        match self
            .engine
            .store
            .take_message(at.clone(), tag.hash, sent_by, self.now_millis())
            .await
        {
            Ok(taken) => taken,
            Err(e) => self.journal_failed("a message taken", &e).await,
        }
    }

    /// Decodes a message just taken into `T`, by its shape: the sender may
    /// have used another type of the same shape. One that does not decode
    /// parks the execution, naming the topic, the type it was sent as and
    /// the serde path.
    async fn received<T: DeserializeOwned>(&self, topic: &str, taken: Taken) -> T {
        match self.codec.decode(&taken.payload, || self.message_of(topic)) {
            Ok(message) => message,
            Err(e) => {
                let sent_as = match taken.value_type {
                    Some(hash) => self.engine.store.type_name(hash).await.ok().flatten(),
                    None => None,
                };
                let reason = match sent_as {
                    Some(name) => format!("{e} (it was sent as `{name}`)"),
                    None => e.to_string(),
                };
                self.park_for(PauseCause::Undecodable, reason).await
            }
        }
    }

    /// Waits for a message on the topic of the `recv` entry at `at` until
    /// `deadline`: in memory up to the suspension threshold, then
    /// suspended. `None` when the deadline passed.
    /// `record` is the entry of a new wait, written once the first look
    /// finds the inbox empty.
    async fn wait_for_message<T>(
        &self,
        at: &EntryAt,
        deadline: Option<i64>,
        record: Option<JournalOp>,
    ) -> Option<Taken> {
        if self.stops_past_journal() {
            // What follows the wait is past the journal's end.
            self.halt().await
        }
        let _registered = self.waiting_for(WaitFor::Message(Arc::clone(&at.name)), deadline);
        let reason = || format!("waiting for a message on topic `{}`", at.name);
        // Taken by the first look that finds nothing.
        let record = std::sync::Mutex::new(record);
        let record = &record;
        self.wait_in_memory(reason, deadline, || async move {
            // A message sent after the deadline is not this wait's (it
            // waits in the inbox for a later `recv`).
            if let Some(taken) = self.take::<T>(at, deadline).await {
                return Some(Some(taken));
            }
            let pending = record.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(record) = pending {
                if deadline.is_some() {
                    // Before the wait: a restart must find the deadline it had.
                    if let Err(e) = self.engine.store.commit(record).await {
                        self.journal_failed("a wait for a message", &e).await
                    }
                } else {
                    self.engine.store.queue(record);
                }
            }
            let now = self.now_millis();
            if deadline.is_some_and(|d| d <= now) {
                let op = JournalOp::TimeOut {
                    at: at.clone(),
                    now,
                };
                if let Err(e) = self.engine.store.commit(op).await {
                    self.journal_failed("the end of a wait for a message", &e)
                        .await
                }
                return Some(None);
            }
            None
        })
        .await
    }

    /// A value published for readers outside the workflow (an event, a
    /// stream's), encoded, with its type noted; one that cannot be encoded
    /// or is over the size limit fails the execution, naming `what`.
    async fn published<V: Serialize + ?Sized>(
        &self,
        value: &V,
        what: impl Fn() -> String,
    ) -> (Vec<u8>, TypeTag) {
        let bytes = match self.codec.encode(value, &what) {
            Ok(b) => b,
            Err(e) => self.fail(e.to_string()).await,
        };
        let limit = self.engine.defaults.max_payload;
        if bytes.len() > limit {
            let reason = format!(
                "{} is {} bytes, over the configured limit of {limit} bytes",
                what(),
                bytes.len()
            );
            self.fail(reason).await
        }
        let tag = TypeTag::of::<V>();
        self.engine.note_type(tag).await;
        (bytes, tag)
    }

    /// `Context::set_event`: journaled, so a replay publishes nothing again.
    async fn set_event<V: Serialize + ?Sized>(&self, branch: &Arc<str>, key: &str, value: &V) {
        self.boundary().await;
        let mut r = self.reserve(branch, key);
        if self.recorded(&mut r, EntryKind::Event).await.is_some() {
            return;
        }
        let (bytes, tag) = self
            .published(value, || format!("the value of event `{key}`"))
            .await;
        let op = JournalOp::SetEvent {
            at: r.entry_at(&self.id, EntryKind::Event),
            value: bytes,
            value_type: tag.hash,
            now: self.now_millis(),
        };
        if let Err(e) = self.engine.store.commit(op).await {
            self.journal_failed("an event", &e).await
        }
        self.engine.notify_change(&self.id);
    }
}

impl Execution {
    /// `Context::write_stream` (a value) and `Context::close_stream`
    /// (none): journaled, so a replay appends nothing again.
    async fn write_stream<V: Serialize + ?Sized>(
        &self,
        branch: &Arc<str>,
        key: &str,
        value: Option<&V>,
    ) {
        self.boundary().await;
        let mut r = self.reserve(branch, key);
        if let Some(entry) = self.recorded(&mut r, EntryKind::Stream).await {
            if entry.output.is_some() != value.is_some() {
                let (was, now) = match value {
                    Some(_) => ("the end of", "writes to"),
                    None => ("a value of", "closes"),
                };
                let reason = format!(
                    "non-determinism in workflow `{}` at position {}: the journal recorded {was} stream `{key}` but the workflow now {now} it; no step body ran. Resume it with code that makes the recorded calls.",
                    self.workflow, r.position
                );
                self.park_for(PauseCause::Nondeterminism, reason).await
            }
            return;
        }
        let (bytes, value_type) = match value {
            Some(value) => {
                let (bytes, tag) = self
                    .published(value, || format!("a value of stream `{key}`"))
                    .await;
                (Some(bytes), Some(tag.hash))
            }
            None => (None, None),
        };
        let op = JournalOp::WriteStream {
            at: r.entry_at(&self.id, EntryKind::Stream),
            value: bytes,
            value_type,
            now: self.now_millis(),
        };
        if let Err(e) = self.engine.store.commit(op).await {
            self.journal_failed("a stream", &e).await
        }
        self.engine.notify_change(&self.id);
    }
}

impl Context {
    /// Appends `value` to stream `key` of this execution, for readers
    /// outside it ([`Runtime::read_stream`](crate::Runtime::read_stream)):
    /// committed before it returns, journaled, so a replay appends nothing
    /// again. Readers get the values in the order written.
    ///
    /// ```
    /// # use replayflow::{workflow, AnyError, Context, Runtime};
    /// # use futures_util::StreamExt;
    /// #[workflow]
    /// async fn summarize(ctx: Context, words: Vec<String>) -> Result<usize, AnyError> {
    ///     for word in &words {
    ///         ctx.write_stream("tokens", word).await;
    ///     }
    ///     ctx.close_stream("tokens").await;
    ///     Ok(words.len())
    /// }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = Runtime::in_memory().await?;
    /// let words = vec!["durable".to_owned(), "streams".to_owned()];
    /// summarize::start(&rt, "sum-1", words).await?;
    /// let read: Vec<String> = rt
    ///     .read_stream::<String>("sum-1", "tokens")
    ///     .map(|v| v.unwrap())
    ///     .collect()
    ///     .await;
    /// assert_eq!(read, ["durable", "streams"]);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn write_stream<V: Serialize + ?Sized>(&self, key: &str, value: &V) {
        self.exec
            .write_stream(&self.current_branch(), key, Some(value))
            .await
    }

    /// Ends stream `key`: its readers end once they have read every value
    /// before it. A stream also ends for its readers when the execution
    /// does. Values written after the end are journaled but not read.
    pub async fn close_stream(&self, key: &str) {
        self.exec
            .write_stream::<()>(&self.current_branch(), key, None)
            .await
    }

    /// Waits for the next message on `topic` and takes it: the oldest one
    /// sent to this execution ([`Runtime::send`](crate::Runtime::send))
    /// that no earlier `recv` took.
    ///
    /// Taking it is journaled: the message reaches the workflow once, and
    /// a replay (after a crash, a restart) gets the same one from the
    /// journal. A message sent before the workflow reaches the `recv`
    /// waits in its inbox. A wait longer than the runtime's suspension
    /// threshold ([`RuntimeBuilder::suspend_after`](crate::RuntimeBuilder::suspend_after))
    /// suspends the execution (status `waiting`: no task, no future) until
    /// a message arrives. The message is decoded into `T` by its shape (the
    /// sender may use another type: a `&str` for a `String`, a struct of its
    /// own crate); one that does not decode parks the execution, naming the
    /// topic, the type it was sent as and the serde path. A replay reads it
    /// as the type the workflow first read it as.
    ///
    /// ```
    /// # use replayflow::{workflow, AnyError, Context, Runtime};
    /// #[workflow]
    /// async fn await_approval(ctx: Context, order: u64) -> Result<String, AnyError> {
    ///     let approver: String = ctx.recv("approval").await;
    ///     Ok(format!("order {order} approved by {approver}"))
    /// }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = Runtime::in_memory().await?;
    /// let handle = await_approval::start(&rt, "order-7", 7).await?;
    /// handle.send("approval", &"ada").await?;
    /// assert_eq!(handle.result().await?, "order 7 approved by ada");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn recv<T: DeserializeOwned>(&self, topic: &str) -> T {
        match self.exec.recv(&self.current_branch(), topic, None).await {
            Some(message) => message,
            // A wait without a deadline ends only with a message: the
            // journal recorded a `recv_timeout` here (its deadline passed,
            // or it waits with one), which this code no longer makes.
            None => {
                let reason = format!(
                    "non-determinism in workflow `{}`: the journal recorded a recv_timeout on topic `{topic}` but the workflow now calls recv without a timeout; no step body ran. Resume it with code that makes the recorded calls.",
                    self.exec.workflow
                );
                self.exec.park_for(PauseCause::Nondeterminism, reason).await
            }
        }
    }

    /// Like [`Context::recv`], giving up after `timeout`: `None` when no
    /// message came in time. The deadline is journaled when the wait
    /// begins, so a replay (after a crash, a restart) waits only for what
    /// is left of it, and a deadline that passed while the worker was down
    /// gives `None` at once.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use replayflow::{workflow, AnyError, Context, Runtime};
    /// #[workflow]
    /// async fn reminder_or_cancel(ctx: Context) -> Result<String, AnyError> {
    ///     let answer = match ctx.recv_timeout::<bool>("confirmed", Duration::from_millis(20)).await {
    ///         Some(true) => "confirmed",
    ///         Some(false) => "declined",
    ///         None => "no answer",
    ///     };
    ///     Ok(answer.to_owned())
    /// }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = Runtime::in_memory().await?;
    /// let answer = reminder_or_cancel::start(&rt, "remind-1").await?.result().await?;
    /// assert_eq!(answer, "no answer");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn recv_timeout<T: DeserializeOwned>(
        &self,
        topic: &str,
        timeout: Duration,
    ) -> Option<T> {
        self.exec
            .recv(&self.current_branch(), topic, Some(timeout))
            .await
    }

    /// Publishes `value` as the latest value of event `key` of this
    /// execution, for readers outside it
    /// ([`Runtime::get_event`](crate::Runtime::get_event),
    /// [`Runtime::wait_event`](crate::Runtime::wait_event)). Journaled: a
    /// replay does not publish it again. Setting a key again replaces its
    /// value.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use replayflow::{workflow, AnyError, Context, Runtime};
    /// #[workflow]
    /// async fn import_rows(ctx: Context, rows: u32) -> Result<u32, AnyError> {
    ///     for done in 1..=rows {
    ///         ctx.set_event("progress", &done).await;
    ///     }
    ///     Ok(rows)
    /// }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = Runtime::in_memory().await?;
    /// import_rows::start(&rt, "import-1", 3).await?.result().await?;
    /// let progress: Option<u32> = rt.get_event("import-1", "progress").await?;
    /// assert_eq!(progress, Some(3));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set_event<V: Serialize + ?Sized>(&self, key: &str, value: &V) {
        self.exec
            .set_event(&self.current_branch(), key, value)
            .await
    }

    /// Whether this execution is replaying what an earlier run of it did
    /// (entries of its journal are still ahead of it), so that logs and
    /// metrics need not repeat on replay.
    pub fn is_replaying(&self) -> bool {
        self.exec.is_replaying()
    }
}
