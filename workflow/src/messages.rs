//! Talking to a running workflow from outside it: sending messages
//! ([`Runtime::send`]) and reading its events ([`Runtime::get_event`]).

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::{Codec, Payload};
use crate::error::{Error, Result};
use crate::handle::Handle;
use crate::record::{ExecutionId, from_millis};
use crate::runtime::{Runtime, Workflow};
use crate::store::{NewMessage, Sent, TypeTag};

/// Options of [`Runtime::send_with`].
#[derive(Debug, Clone, Default)]
pub struct SendOptions {
    idempotency_key: Option<String>,
}

impl SendOptions {
    /// Delivers the message once per key and execution: sending it again
    /// with the same key (a retried webhook, a second process) writes
    /// nothing and gives [`Delivery::Duplicate`].
    pub fn idempotency_key(key: impl Into<String>) -> SendOptions {
        SendOptions {
            idempotency_key: Some(key.into()),
        }
    }
}

/// What [`Runtime::send`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Delivery {
    /// The message is committed to the execution's inbox.
    Delivered,
    /// A message with the same idempotency key was delivered before;
    /// nothing was written.
    Duplicate,
}

/// The latest value of one event key of an execution
/// ([`Runtime::events`]).
#[derive(Debug, Clone)]
pub struct EventRecord {
    /// The key.
    pub key: String,
    /// The value, encoded with the execution's codec.
    pub value: Payload,
    /// When it was set.
    pub updated_at: std::time::SystemTime,
}

/// A message's payload and the type that wrote it.
enum Message<'a, M: ?Sized> {
    Typed(&'a M),
    /// JSON text without a Rust type (the CLI, the HTTP API).
    Json(&'a serde_json::Value),
}

impl Runtime {
    /// Sends `message` to execution `id` on `topic` and returns once it is
    /// committed: the execution's next [`Context::recv`](crate::Context::recv)
    /// of that topic takes it (the oldest first), now or after any number
    /// of crashes. A suspended waiter is woken.
    ///
    /// Sending to an execution that does not exist is [`Error::NotFound`];
    /// to one that has ended, [`Error::Finished`]. An admin runtime (the
    /// CLI, a dashboard) sends too; the worker picks the message up within
    /// a second.
    ///
    /// ```
    /// # use replayflow::{workflow, AnyError, Context, Runtime};
    /// #[workflow]
    /// async fn collect_votes(ctx: Context, voters: u32) -> Result<u32, AnyError> {
    ///     let mut yes = 0;
    ///     for _ in 0..voters {
    ///         if ctx.recv::<bool>("vote").await {
    ///             yes += 1;
    ///         }
    ///     }
    ///     Ok(yes)
    /// }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = Runtime::in_memory().await?;
    /// let handle = collect_votes::start(&rt, "vote-1", 3).await?;
    /// for vote in [true, false, true] {
    ///     rt.send("vote-1", "vote", &vote).await?;
    /// }
    /// assert_eq!(handle.result().await?, 2);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send<M: Serialize + ?Sized>(
        &self,
        id: impl Into<ExecutionId>,
        topic: &str,
        message: &M,
    ) -> Result<Delivery> {
        self.send_with(id, topic, message, SendOptions::default())
            .await
    }

    /// Like [`Runtime::send`], with options: an idempotency key delivers
    /// the message once however often it is sent.
    ///
    /// ```
    /// # use replayflow::{workflow, AnyError, Context, Delivery, Runtime, SendOptions};
    /// # #[workflow]
    /// # async fn await_payment(ctx: Context) -> Result<u64, AnyError> {
    /// #     let paid = ctx.recv::<u64>("paid").await;
    /// #     ctx.recv::<()>("close").await;
    /// #     Ok(paid)
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let rt = Runtime::in_memory().await?;
    /// # let handle = await_payment::start(&rt, "pay-1").await?;
    /// // A payment provider retries its webhook: one delivery.
    /// let key = || SendOptions::idempotency_key("evt_8841");
    /// assert_eq!(rt.send_with("pay-1", "paid", &4200u64, key()).await?, Delivery::Delivered);
    /// assert_eq!(rt.send_with("pay-1", "paid", &4200u64, key()).await?, Delivery::Duplicate);
    /// # handle.send("close", &()).await?;
    /// # assert_eq!(handle.result().await?, 4200);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send_with<M: Serialize + ?Sized>(
        &self,
        id: impl Into<ExecutionId>,
        topic: &str,
        message: &M,
        options: SendOptions,
    ) -> Result<Delivery> {
        self.deliver(id.into(), topic, Message::Typed(message), options)
            .await
    }

    /// Sends a message given as JSON, without a Rust type (what the CLI's
    /// `send` and the HTTP API do): the `recv` that takes it decodes it
    /// into its own type. An execution that records its payloads with
    /// another codec than JSON refuses it.
    pub async fn send_json(
        &self,
        id: impl Into<ExecutionId>,
        topic: &str,
        message: &serde_json::Value,
        options: SendOptions,
    ) -> Result<Delivery> {
        self.deliver(id.into(), topic, Message::<()>::Json(message), options)
            .await
    }

    async fn deliver<M: Serialize + ?Sized>(
        &self,
        id: ExecutionId,
        topic: &str,
        message: Message<'_, M>,
        options: SendOptions,
    ) -> Result<Delivery> {
        let engine = &self.engine;
        // The execution's codec, as far as this process knows it; the
        // store refuses a message of another codec and names the right one.
        let mut codec = engine
            .active_execution(&id)
            .map_or(engine.defaults.codec, |exec| exec.codec);
        let value_type = match message {
            Message::Typed(_) => {
                let tag = TypeTag::of::<M>();
                engine.note_type(tag).await;
                Some(tag.hash)
            }
            Message::Json(_) => None,
        };
        let what = || format!("the message on topic `{topic}` to execution `{id}`");
        for _ in 0..2 {
            let payload = match message {
                Message::Typed(m) => codec.encode(m, what)?,
                Message::Json(_) if codec != Codec::Json => {
                    return Err(Error::InvalidOption(format!(
                        "execution `{id}` records its payloads as {codec}, not JSON: send it messages from Rust"
                    )));
                }
                Message::Json(value) => codec.encode(value, what)?,
            };
            if payload.len() > engine.defaults.max_payload {
                return Err(Error::PayloadTooLarge {
                    what: what(),
                    size: payload.len(),
                    limit: engine.defaults.max_payload,
                });
            }
            let sent = engine
                .store
                .send_message(NewMessage {
                    execution: id.clone(),
                    topic: topic.to_owned(),
                    payload,
                    codec,
                    value_type,
                    idempotency_key: options.idempotency_key.clone(),
                    now: engine.now_millis(),
                })
                .await?;
            match sent {
                Sent::Delivered { suspended } => {
                    tracing::debug!(execution = %id, topic, suspended, "message sent");
                    if let Some(exec) = engine.active_execution(&id) {
                        exec.mail.notify_waiters();
                    }
                    if suspended {
                        engine.wake(id.clone());
                    }
                    return Ok(Delivery::Delivered);
                }
                Sent::Duplicate => return Ok(Delivery::Duplicate),
                Sent::Missing => return Err(Error::NotFound(id)),
                Sent::Finished(status) => return Err(Error::Finished { id, status }),
                Sent::OtherCodec(other) => codec = other,
            }
        }
        Err(Error::InvalidOption(format!(
            "execution `{id}` changed codec while a message was sent to it"
        )))
    }

    /// The latest value of event `key` of execution `id`
    /// ([`Context::set_event`](crate::Context::set_event)); `None` when it
    /// was never set. [`Error::NotFound`] when there is no such execution.
    /// The value is decoded into `T` by its shape (a `&str` set is read as a
    /// `String`); one that does not decode is [`Error::Codec`].
    pub async fn get_event<T: DeserializeOwned>(
        &self,
        id: impl Into<ExecutionId>,
        key: &str,
    ) -> Result<Option<T>> {
        let id = id.into();
        let rows = self
            .engine
            .store
            .events(&id, Some(key.to_owned()))
            .await?
            .ok_or_else(|| Error::NotFound(id.clone()))?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(None);
        };
        // By shape: the workflow may publish a `&str` that a reader reads
        // as a `String`.
        let what = || format!("event `{key}` of execution `{id}`");
        match row.codec.decode(&row.value, what) {
            Ok(value) => Ok(Some(value)),
            Err(mut e) => {
                if let Some(hash) = row.value_type
                    && let Ok(Some(name)) = self.engine.store.type_name(hash).await
                {
                    e.message = format!("{} (it was set as `{name}`)", e.message);
                }
                Err(e.into())
            }
        }
    }

    /// Waits up to `timeout` for event `key` of execution `id` to be set,
    /// and returns its latest value; `None` when it was not set in time.
    /// A value set in this process is seen at once; one set by another
    /// process within a second.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use replayflow::{workflow, AnyError, Context, Runtime};
    /// #[workflow]
    /// async fn provision(ctx: Context) -> Result<(), AnyError> {
    ///     ctx.set_event("address", "10.0.0.7").await;
    ///     ctx.recv::<()>("done").await;
    ///     Ok(())
    /// }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = Runtime::in_memory().await?;
    /// let handle = provision::start(&rt, "vm-1").await?;
    /// let address: Option<String> = rt.wait_event("vm-1", "address", Duration::from_secs(5)).await?;
    /// assert_eq!(address.as_deref(), Some("10.0.0.7"));
    /// handle.send("done", &()).await?;
    /// handle.result().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn wait_event<T: DeserializeOwned>(
        &self,
        id: impl Into<ExecutionId>,
        key: &str,
        timeout: Duration,
    ) -> Result<Option<T>> {
        let id = id.into();
        let guard = self.engine.watch(&id);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = guard.watch.notify.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(value) = self.get_event(id.clone(), key).await? {
                return Ok(Some(value));
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let poll = (now + Duration::from_secs(1)).min(deadline);
            let _ = tokio::time::timeout_at(poll, changed).await;
        }
    }

    /// Every event of execution `id` with its latest value, by key.
    pub async fn events(&self, id: impl Into<ExecutionId>) -> Result<Vec<EventRecord>> {
        let id = id.into();
        let rows = self
            .engine
            .store
            .events(&id, None)
            .await?
            .ok_or(Error::NotFound(id))?;
        Ok(rows
            .into_iter()
            .map(|row| EventRecord {
                key: row.key,
                value: Payload::new(row.codec, row.value),
                updated_at: from_millis(row.updated_at),
            })
            .collect())
    }
}

/// How many rows of a stream one read takes.
const STREAM_PAGE: u32 = 256;

/// How often a stream reader looks for values written by another process
/// (values written in this process are told at once).
const STREAM_POLL: Duration = Duration::from_millis(250);

/// Where a stream reader stands.
struct StreamCursor {
    rt: Runtime,
    id: ExecutionId,
    key: String,
    next: i64,
    rows: std::collections::VecDeque<crate::store::StreamRow>,
    codec: Codec,
    done: bool,
    watch: crate::execution::WatchGuard,
}

impl StreamCursor {
    /// The next value with its offset, `None` at the end of the stream.
    async fn next<T: DeserializeOwned>(&mut self) -> Option<Result<(u64, T)>> {
        loop {
            if self.done {
                return None;
            }
            if let Some(row) = self.rows.pop_front() {
                let Some(value) = row.value else {
                    self.done = true;
                    return None;
                };
                self.next = row.seq + 1;
                let offset = u64::try_from(row.seq).unwrap_or(0);
                let what = || {
                    format!(
                        "value {offset} of stream `{}` of execution `{}`",
                        self.key, self.id
                    )
                };
                let decoded = self.codec.decode(&value, what).map_err(Error::from);
                if decoded.is_err() {
                    self.done = true;
                }
                return Some(decoded.map(|v| (offset, v)));
            }
            // Registered before the read: a write in between is not missed.
            let changed = self.watch.watch.notify.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let read = self
                .rt
                .engine
                .store
                .stream_rows(&self.id, &self.key, self.next, STREAM_PAGE)
                .await;
            let read = match read {
                Ok(Some(read)) => read,
                Ok(None) => {
                    self.done = true;
                    return Some(Err(Error::NotFound(self.id.clone())));
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            self.codec = read.codec;
            if read.rows.is_empty() {
                // The status was read first: an execution that had ended
                // had written every row it ever will.
                if read.status.is_terminal() {
                    self.done = true;
                    return None;
                }
                let _ = tokio::time::timeout(STREAM_POLL, changed).await;
                continue;
            }
            self.rows.extend(read.rows);
        }
    }
}

impl Runtime {
    /// The values of stream `key` of execution `id`
    /// ([`Context::write_stream`](crate::Context::write_stream)), from the
    /// first, as they are committed: an async [`Stream`](futures_util::Stream)
    /// that yields each value once, in order, waits for more while the
    /// execution runs, and ends when the stream is closed or the execution
    /// has ended. A value written in this process is yielded at once, one
    /// written by another process within a quarter of a second. An
    /// unknown execution yields [`Error::NotFound`]; a value that does not
    /// decode into `T` yields its codec error, and the stream ends.
    pub fn read_stream<T: DeserializeOwned + Send + 'static>(
        &self,
        id: impl Into<ExecutionId>,
        key: &str,
    ) -> impl futures_util::Stream<Item = Result<T>> + Send + 'static {
        use futures_util::StreamExt;
        self.read_stream_from(id, key, 0)
            .map(|item| item.map(|(_, value)| value))
    }

    /// Like [`Runtime::read_stream`], from value `offset` on (0 is the
    /// first), each value with its offset: a reader that stops can go on
    /// where it stopped.
    pub fn read_stream_from<T: DeserializeOwned + Send + 'static>(
        &self,
        id: impl Into<ExecutionId>,
        key: &str,
        offset: u64,
    ) -> impl futures_util::Stream<Item = Result<(u64, T)>> + Send + 'static {
        let id = id.into();
        let cursor = StreamCursor {
            rt: self.clone(),
            watch: self.engine.watch(&id),
            id,
            key: key.to_owned(),
            next: i64::try_from(offset).unwrap_or(i64::MAX),
            rows: std::collections::VecDeque::new(),
            codec: self.engine.defaults.codec,
            done: false,
        };
        futures_util::stream::unfold(cursor, |mut cursor| async move {
            let item = cursor.next::<T>().await?;
            Some((item, cursor))
        })
    }
}

impl<W: Workflow> Handle<W> {
    /// Sends `message` to this execution on `topic`; see [`Runtime::send`].
    pub async fn send<M: Serialize + ?Sized>(&self, topic: &str, message: &M) -> Result<Delivery> {
        self.runtime().send(self.id().clone(), topic, message).await
    }
}
