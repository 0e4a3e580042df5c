//! The [`Engine`]: what every execution of one runtime shares (the store,
//! the clock, the registry, the set of executions driven here, the waiters
//! of their ends, the timers), the claim on an execution, and status changes.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use super::descriptor::TypeRename;
use super::descriptor::WorkflowDescriptor;
use super::scheduler::Timers;
use super::state::Execution;
use crate::clock::Clock;
use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::record::{ExecutionId, to_millis};
use crate::retry::RetryPolicy;
use crate::status::ExecutionStatus;
use crate::store::{Claimable, KnownTypes, Registered, Store, Transition, TypeTag};

/// Runtime-wide defaults, from the builder.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Defaults {
    pub codec: Codec,
    pub max_payload: usize,
    pub retry: RetryPolicy,
    pub max_restarts: u32,
    pub restart_delay: Duration,
    pub auto_restart: bool,
    pub suspend_after: Duration,
    pub recovery_budget: u32,
    /// How long finished executions are kept; `None` keeps them forever.
    pub retention: Option<Duration>,
}

/// The workflows a runtime can run, by registered name.
pub(crate) type Registry = HashMap<&'static str, &'static WorkflowDescriptor>;

/// The state one runtime's executions share.
pub(crate) struct Engine {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub defaults: Defaults,
    pub registry: Registry,
    /// The registry's names and the accepted app versions, as the store
    /// filters by them.
    pub registered: Registered,
    /// The app version new executions record; `None`: the version of the
    /// package that defines each workflow.
    pub app_version: Option<String>,
    /// Executions claimed by this process; the execution itself once spawned.
    active: Mutex<HashMap<ExecutionId, Weak<Execution>>>,
    /// Claimed executions to replay once their claim is released: a
    /// message reached one that was suspending (see [`Engine::wake`]).
    /// Locked only while `active` is.
    rewake: Mutex<HashSet<ExecutionId>>,
    /// Waiters of `Handle::result`, per execution, told after each status change.
    waiters: Mutex<HashMap<ExecutionId, Waiters>>,
    pub timers: Arc<Timers>,
    /// Executions paused because the journal could not be written (a full
    /// disk), with the reason: the sweep resumes them once writes succeed,
    /// and `status` shows them paused even when the pause itself could not
    /// be written.
    storage_holds: Mutex<HashMap<ExecutionId, String>>,
    shutting_down: AtomicBool,
    /// Opened as an admin: reads, and records requests for the worker.
    pub admin: bool,
    /// Types whose names this runtime has recorded in the database.
    known_types: KnownTypes,
    /// Renamed value types: (old name, new name), from `#[renamed_from]`.
    renames: HashSet<(&'static str, &'static str)>,
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.timers.stop();
        self.store.close();
    }
}

/// The right to drive one execution in this process: taken by
/// [`Engine::claim`], released when dropped, whatever path ends the work.
pub(crate) struct Claim {
    engine: Arc<Engine>,
    id: ExecutionId,
}

impl Claim {
    pub(crate) fn id(&self) -> &ExecutionId {
        &self.id
    }

    /// Records the spawned execution, so cancel and shutdown can reach it.
    pub(crate) fn attach(&self, exec: &Arc<Execution>) {
        let mut active = self.engine.active.lock().unwrap_or_else(|p| p.into_inner());
        active.insert(self.id.clone(), Arc::downgrade(exec));
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut active = self.engine.active.lock().unwrap_or_else(|p| p.into_inner());
        active.remove(&self.id);
        let mut rewake = self.engine.rewake.lock().unwrap_or_else(|p| p.into_inner());
        if rewake.remove(&self.id) {
            drop(rewake);
            drop(active);
            self.engine.wake(self.id.clone());
        }
    }
}

impl Engine {
    pub(crate) fn new(
        store: Store,
        registry: Registry,
        claimable: Claimable,
        app_version: Option<String>,
        clock: Arc<dyn Clock>,
        defaults: Defaults,
        admin: bool,
    ) -> Engine {
        let registered = Arc::new(claimable);
        Engine {
            app_version,
            store,
            clock,
            defaults,
            registry,
            registered,
            active: Mutex::new(HashMap::new()),
            rewake: Mutex::new(HashSet::new()),
            waiters: Mutex::new(HashMap::new()),
            timers: Arc::new(Timers::default()),
            storage_holds: Mutex::new(HashMap::new()),
            shutting_down: AtomicBool::new(false),
            admin,
            known_types: KnownTypes::default(),
            renames: inventory::iter::<TypeRename>
                .into_iter()
                .map(|r| (r.from, (r.to)()))
                .collect(),
        }
    }

    /// Records `tag`'s name in the database the first time this runtime
    /// journals a value of it, so that a mismatch can name it. Only the
    /// first caller writes it (200 workflows starting at once would
    /// otherwise each take a connection to write the same row); the others
    /// go on meanwhile: the name serves only to word a later error.
    pub(crate) async fn note_type(&self, tag: TypeTag) {
        if self.known_types.contains(tag.hash) || !self.known_types.insert(tag.hash) {
            return;
        }
        /// Forgets the type again unless its name was written (the write
        /// failed, or the caller's future was dropped during it): the next
        /// value of the type tries again.
        struct Unwritten<'a>(&'a KnownTypes, i32, bool);
        impl Drop for Unwritten<'_> {
            fn drop(&mut self) {
                if !self.2 {
                    self.0.remove(self.1);
                }
            }
        }
        let mut pending = Unwritten(&self.known_types, tag.hash, false);
        match self.store.insert_type(tag).await {
            Ok(()) => pending.2 = true,
            Err(e) => {
                tracing::warn!(type_name = tag.name, error = %e, "cannot record the name of a journaled type")
            }
        }
    }

    /// Refuses a value written as another type than `V` (unless declared
    /// renamed to it), rather than decoding it by luck: what
    /// `Handle::result` and `Runtime::get_event` read.
    pub(crate) async fn readable_as<V>(
        &self,
        recorded: Option<i32>,
        what: String,
    ) -> std::result::Result<(), crate::error::CodecError> {
        let tag = TypeTag::of::<V>();
        let Some(hash) = recorded.filter(|h| *h != tag.hash) else {
            return Ok(());
        };
        let name = self.store.type_name(hash).await.ok().flatten();
        let Some(written) = self.written_as(hash, name.as_deref(), tag) else {
            return Ok(());
        };
        Err(crate::error::CodecError {
            operation: "decode",
            what,
            type_name: tag.name,
            message: format!(
                "it was written as {written}; another type would decode it only by luck (declare a renamed type with #[replayflow::renamed_from])"
            ),
        })
    }

    /// How a value written by the type of hash `hash` reads as `tag`:
    /// `None` when it may be decoded (the same type, or one declared
    /// renamed to it), otherwise the writing type as a message names it.
    /// `written` is its name, when the database has it.
    pub(crate) fn written_as(
        &self,
        hash: i32,
        written: Option<&str>,
        tag: TypeTag,
    ) -> Option<String> {
        if hash == tag.hash || written.is_some_and(|old| self.renamed(old, tag.name)) {
            return None;
        }
        Some(match written {
            Some(name) => format!("`{name}`"),
            None => format!("a type this database has no name for (fingerprint {hash:#010x})"),
        })
    }

    /// Whether type name `old` is `new` once every type declared renamed
    /// (`#[renamed_from]`) is read under its new name, wherever it appears
    /// in `old` (`Vec<app::Old>`, a tuple of arguments...).
    pub(crate) fn renamed(&self, old: &str, new: &str) -> bool {
        let mut old = old.to_owned();
        for (from, to) in &self.renames {
            old = replace_path(&old, from, to);
        }
        old == new
    }

    /// Wall time now, in Unix milliseconds.
    pub(crate) fn now_millis(&self) -> i64 {
        to_millis(self.clock.now())
    }

    pub(crate) fn descriptor(&self, name: &str) -> Result<&'static WorkflowDescriptor> {
        self.registry
            .get(name)
            .copied()
            .ok_or_else(|| Error::UnknownWorkflow(name.to_owned()))
    }

    /// Claims `id` for this process; `None` if it is already driven here.
    pub(crate) fn claim(self: &Arc<Self>, id: &ExecutionId) -> Option<Claim> {
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        if active.contains_key(id) {
            return None;
        }
        active.insert(id.clone(), Weak::new());
        Some(Claim {
            engine: Arc::clone(self),
            id: id.clone(),
        })
    }

    /// Replays a suspended execution that a message was sent to, on a
    /// task of its own. One still held here (it is writing its suspension)
    /// is replayed once its claim is released. An admin runtime wakes
    /// nothing: the send moved the waiter's wake time to now, and the
    /// worker's sweep wakes it.
    pub(crate) fn wake(self: &Arc<Self>, id: ExecutionId) {
        if self.admin || self.is_shutting_down() {
            return;
        }
        {
            let active = self.active.lock().unwrap_or_else(|p| p.into_inner());
            if active.contains_key(&id) {
                let mut rewake = self.rewake.lock().unwrap_or_else(|p| p.into_inner());
                rewake.insert(id);
                return;
            }
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let engine = Arc::clone(self);
        runtime.spawn(async move {
            if let Err(e) = engine.replay_woken(&id).await {
                tracing::warn!(execution = %id, error = %e, "cannot wake an execution; the sweep will");
            }
        });
    }

    fn drives_any(&self) -> bool {
        let active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        !active.is_empty()
    }

    pub(crate) fn is_active(&self, id: &ExecutionId) -> bool {
        let active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        active.contains_key(id)
    }

    pub(crate) fn active_execution(&self, id: &ExecutionId) -> Option<Arc<Execution>> {
        let active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        active.get(id).and_then(Weak::upgrade)
    }

    #[cfg(feature = "postgres")]
    pub(crate) fn active_ids(&self) -> Vec<ExecutionId> {
        let active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        active.keys().cloned().collect()
    }

    pub(crate) fn active_executions(&self) -> Vec<Arc<Execution>> {
        let active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        active.values().filter_map(Weak::upgrade).collect()
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// Stops the scheduler, stops every execution at its next boundary
    /// (their journal stays as it is), commits what is queued and releases
    /// the database. False if a shutdown had already begun.
    pub(crate) async fn shutdown(self: &Arc<Self>) -> Result<()> {
        if self.shutting_down.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.timers.stop();
        for exec in self.active_executions() {
            exec.interrupt();
        }
        if let Some(bound) = self.store.handover_wait() {
            // Other workers take these executions over as soon as the
            // store closes: a step body still running here would then run
            // beside its re-run there. Each stops at its next boundary.
            let deadline = tokio::time::Instant::now() + bound;
            while self.drives_any() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let engine = Arc::clone(self);
        tokio::task::spawn_blocking(move || engine.store.close_and_wait())
            .await
            .map_err(|_| Error::Shutdown)?;
        tracing::info!("runtime shut down");
        Ok(())
    }

    /// Records that `id` stopped because the journal refused a write. When
    /// even its pause could not be written, its waiters learn of the pause
    /// from here.
    pub(crate) fn hold_for_storage(&self, id: &ExecutionId, reason: String, written: bool) {
        if !written {
            let transition = Transition::paused(crate::status::PauseCause::Storage, reason.clone());
            self.notify_end(
                id,
                Ended {
                    status: ExecutionStatus::Paused,
                    transition,
                },
            );
        }
        let mut holds = self.storage_holds.lock().unwrap_or_else(|p| p.into_inner());
        holds.insert(id.clone(), reason);
    }

    /// Why `id` is held for storage, if it is.
    pub(crate) fn storage_hold(&self, id: &ExecutionId) -> Option<String> {
        let holds = self.storage_holds.lock().unwrap_or_else(|p| p.into_inner());
        holds.get(id).cloned()
    }

    /// `id` runs again: whatever held it is over.
    pub(crate) fn release_storage_hold(&self, id: &ExecutionId) {
        let mut holds = self.storage_holds.lock().unwrap_or_else(|p| p.into_inner());
        if !holds.is_empty() {
            holds.remove(id);
        }
    }

    /// Every execution held for storage, released from the hold (the sweep
    /// tries them again; a failure holds them anew).
    pub(crate) fn take_storage_holds(&self) -> Vec<(ExecutionId, String)> {
        let mut holds = self.storage_holds.lock().unwrap_or_else(|p| p.into_inner());
        holds.drain().collect()
    }

    /// Writes a status change and wakes waiters. A terminal status is never
    /// overwritten. A failure to write is logged: the execution then stays as
    /// the journal last had it, which replay handles. Returns whether the
    /// write went through.
    pub(crate) async fn set_status(
        self: &Arc<Self>,
        id: &ExecutionId,
        status: ExecutionStatus,
        transition: Transition,
    ) -> bool {
        let ends = status.is_terminal() || status == ExecutionStatus::Paused;
        let mut parent = None;
        if ends && let Some(exec) = self.active_execution(id) {
            // Before the write: see `active_codec`.
            exec.ending.store(true, Ordering::SeqCst);
            parent = exec.parent.clone();
        }
        let written = self
            .store
            .set_status(id, status, transition, self.now_millis())
            .await;
        let ok = written.is_ok();
        if matches!(written, Ok((true, _)))
            && status.is_terminal()
            && let Some(parent) = parent
        {
            self.tell_parent(parent);
        }
        match written {
            Ok((true, transition)) if ends => {
                self.notify_end(id, Ended { status, transition });
                return true;
            }
            Ok((true, _)) => {}
            Ok((false, _)) => {
                tracing::debug!(execution = %id, %status, "status unchanged: the execution had already finished")
            }
            Err(e @ (Error::Fenced { .. } | Error::Disowned(_) | Error::Unavailable(_))) => {
                tracing::warn!(execution = %id, %status, error = %e, "status not recorded: the execution goes on by replay, here or on another worker")
            }
            Err(e) => {
                tracing::error!(execution = %id, %status, error = %e, "cannot record a status change")
            }
        }
        self.notify_change(id);
        ok
    }

    /// A child of `parent` ended: a parent waiting in memory looks again,
    /// a suspended one is replayed (the store also made it due, for the
    /// sweep of whichever worker owns it).
    fn tell_parent(self: &Arc<Self>, parent: ExecutionId) {
        if let Some(exec) = self.active_execution(&parent) {
            exec.mail.notify_waiters();
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let engine = Arc::clone(self);
        runtime.spawn(async move {
            if engine
                .status_of(&parent)
                .await
                .is_ok_and(ExecutionStatus::is_suspended)
            {
                engine.wake(parent);
            }
        });
    }

    /// Wakes the waiters of `id`'s result.
    pub(crate) fn notify_change(&self, id: &ExecutionId) {
        let waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = waiters.get(id) {
            w.watch.notify.notify_waiters();
        }
    }

    /// Hands the committed end of `id` to its waiters, so they need not read it.
    fn notify_end(&self, id: &ExecutionId, ended: Ended) {
        let waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = waiters.get(id) {
            *w.watch.ended.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(ended));
            w.watch.notify.notify_waiters();
        }
    }

    /// Registers interest in `id`'s status changes until the guard drops.
    pub(crate) fn watch(self: &Arc<Self>, id: &ExecutionId) -> WatchGuard {
        let mut waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        let entry = waiters.entry(id.clone()).or_insert_with(|| Waiters {
            watch: Arc::new(Watch {
                notify: Notify::new(),
                ended: Mutex::new(None),
            }),
            count: 0,
        });
        entry.count += 1;
        WatchGuard {
            engine: Arc::clone(self),
            id: id.clone(),
            watch: Arc::clone(&entry.watch),
        }
    }

    /// The codec of an execution this process drives and that has not
    /// begun to record its end: that end will reach the watches registered
    /// before this call.
    pub(crate) fn active_codec(&self, id: &ExecutionId) -> Option<Codec> {
        self.active_execution(id)
            .filter(|exec| !exec.ending.load(Ordering::SeqCst))
            .map(|exec| exec.codec)
    }
}

/// The waiters of one execution.
struct Waiters {
    watch: Arc<Watch>,
    /// Live [`WatchGuard`]s; the entry goes when the last one drops.
    count: usize,
}

/// What the waiters of one execution share.
pub(crate) struct Watch {
    /// Told after each status change.
    pub notify: Notify,
    /// The end this process committed, once it has.
    pub ended: Mutex<Option<Arc<Ended>>>,
}

/// An execution's end (or pause) as its driver committed it.
pub(crate) struct Ended {
    pub status: ExecutionStatus,
    pub transition: Transition,
}

/// Interest in one execution's status changes; see [`Engine::watch`].
pub(crate) struct WatchGuard {
    engine: Arc<Engine>,
    id: ExecutionId,
    pub watch: Arc<Watch>,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        let mut waiters = self
            .engine
            .waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(w) = waiters.get_mut(&self.id) {
            w.count -= 1;
            if w.count == 0 {
                waiters.remove(&self.id);
            }
        }
    }
}

/// `text` with every occurrence of the type path `from` that is a whole
/// path (not followed or preceded by more of a path) replaced by `to`.
fn replace_path(text: &str, from: &str, to: &str) -> String {
    let part = |c: char| c.is_alphanumeric() || c == '_' || c == ':';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(from) {
        let before = rest[..at].chars().next_back();
        let after = rest[at + from.len()..].chars().next();
        out.push_str(&rest[..at]);
        if before.is_some_and(part) || after.is_some_and(part) {
            out.push_str(from);
        } else {
            out.push_str(to);
        }
        rest = &rest[at + from.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::replace_path;

    #[test]
    fn a_renamed_type_is_replaced_only_as_a_whole_path() {
        assert_eq!(replace_path("app::Old", "app::Old", "app::New"), "app::New");
        assert_eq!(
            replace_path("(alloc::vec::Vec<app::Old>, u32)", "app::Old", "app::New"),
            "(alloc::vec::Vec<app::New>, u32)"
        );
        assert_eq!(
            replace_path("app::OldList", "app::Old", "app::New"),
            "app::OldList"
        );
        assert_eq!(
            replace_path("myapp::Old", "app::Old", "app::New"),
            "myapp::Old"
        );
        assert_eq!(
            replace_path("app::Old::Inner", "app::Old", "app::New"),
            "app::Old::Inner"
        );
    }
}
