//! The replay cursor: the journal loaded when an execution starts, consumed
//! in call order within each branch, and the one determinism check that
//! compares each call with what the journal recorded at its place.

use std::collections::HashMap;
use std::sync::Arc;

use super::state::Execution;
use crate::record::{ExecutionId, StepKey};
use crate::status::{EntryKind, PauseCause};
use crate::store::{Entry, EntryAt};

/// Replay position: the journal loaded at start, consumed in call order
/// within each branch.
pub(super) struct Cursor {
    /// Recorded entries not yet reached.
    journal: Recorded,
    /// The position of the next new entry (positions order all entries).
    next_position: u32,
    /// Call order in the workflow body.
    main: BranchCursor,
    /// Call order in each [`Context::branch`](crate::Context::branch).
    branches: HashMap<Arc<str>, BranchCursor>,
}

impl Cursor {
    pub(super) fn new(journal: Vec<Entry>) -> Cursor {
        let next_position = journal.iter().map(|e| e.position + 1).max().unwrap_or(0);
        Cursor {
            journal: Recorded::new(journal),
            next_position,
            main: BranchCursor::default(),
            branches: HashMap::new(),
        }
    }

    /// The call order of `branch`.
    fn branch(&mut self, branch: &Arc<str>) -> &mut BranchCursor {
        if branch.is_empty() {
            &mut self.main
        } else {
            self.branches.entry(Arc::clone(branch)).or_default()
        }
    }
}

/// Recorded entries not yet reached, per branch, indexed by their place in
/// the branch (the workflow body's own, the usual case, without a lookup).
#[derive(Default)]
struct Recorded {
    main: Vec<Option<Entry>>,
    branches: HashMap<Arc<str>, Vec<Option<Entry>>>,
    /// Entries whose place is far beyond the journal's size (a damaged
    /// row): kept aside rather than sizing a vector by them.
    far: HashMap<(Arc<str>, u32), Entry>,
    /// A second entry for an occupied place: never reached, so the
    /// completion check reports it.
    duplicates: Vec<Entry>,
    /// How many entries are not yet taken: while any is left, the
    /// execution is replaying what an earlier run did.
    left: usize,
}

impl Recorded {
    fn new(journal: Vec<Entry>) -> Recorded {
        // Places in a branch are dense but for calls never journaled.
        let limit = journal.len().saturating_mul(2).saturating_add(64);
        let mut recorded = Recorded {
            left: journal.len(),
            ..Recorded::default()
        };
        for entry in journal {
            let local = entry.local as usize;
            if local > limit {
                let key = (Arc::clone(&entry.branch), entry.local);
                if let Some(previous) = recorded.far.insert(key, entry) {
                    recorded.duplicates.push(previous);
                }
                continue;
            }
            let slots = if entry.branch.is_empty() {
                &mut recorded.main
            } else {
                recorded
                    .branches
                    .entry(Arc::clone(&entry.branch))
                    .or_default()
            };
            if slots.len() <= local {
                slots.resize_with(local + 1, || None);
            }
            if let Some(previous) = slots[local].replace(entry) {
                recorded.duplicates.push(previous);
            }
        }
        recorded
    }

    fn take(&mut self, branch: &Arc<str>, local: u32) -> Option<Entry> {
        self.take_if(branch, local, |_| true)
    }

    /// Takes the entry at `local` in `branch` when `wanted` accepts it;
    /// otherwise leaves it in place.
    fn take_if(
        &mut self,
        branch: &Arc<str>,
        local: u32,
        wanted: impl FnOnce(&Entry) -> bool,
    ) -> Option<Entry> {
        let found = self.find(branch, local, wanted);
        if found.is_some() {
            self.left -= 1;
        }
        found
    }

    fn find(
        &mut self,
        branch: &Arc<str>,
        local: u32,
        wanted: impl FnOnce(&Entry) -> bool,
    ) -> Option<Entry> {
        let slots = if branch.is_empty() {
            Some(&mut self.main)
        } else {
            self.branches.get_mut(&**branch)
        };
        if let Some(slot) = slots.and_then(|s| s.get_mut(local as usize)) {
            return if slot.as_ref().is_some_and(wanted) {
                slot.take()
            } else {
                None
            };
        }
        if self.far.is_empty() {
            return None;
        }
        let key = (Arc::clone(branch), local);
        if self.far.get(&key).is_some_and(wanted) {
            return self.far.remove(&key);
        }
        None
    }

    /// What was never taken, by position.
    fn drain(&mut self) -> Vec<Entry> {
        let mut left: Vec<Entry> = std::mem::take(&mut self.main)
            .into_iter()
            .chain(self.branches.drain().flat_map(|(_, slots)| slots))
            .flatten()
            .chain(self.far.drain().map(|(_, e)| e))
            .chain(self.duplicates.drain(..))
            .collect();
        left.sort_by_key(|e| e.position);
        left
    }
}

/// Call order inside one branch.
#[derive(Default)]
struct BranchCursor {
    next: u32,
    occurrences: HashMap<Box<str>, u32>,
    children: u32,
}

/// What a `Context::patched` call finds at its place.
pub(crate) enum PatchPlace {
    /// The journal holds this change's marker here: the execution reached
    /// this point on new code.
    Marked,
    /// The journal goes on past this point without the marker: the
    /// execution passed it on old code (nothing is reserved).
    Passed,
    /// The journal ends before this point: a new marker goes here (boxed:
    /// a reservation holds room for a recorded entry).
    New(Box<Reservation>),
}

/// A journal place reserved by a call, with what the journal recorded there.
pub(crate) struct Reservation {
    pub position: u32,
    pub branch: Arc<str>,
    pub local: u32,
    pub name: Arc<str>,
    pub occurrence: u32,
    pub recorded: Option<Entry>,
    /// Where in the workflow's code the call was made, when known (step
    /// calls).
    pub location: Option<&'static std::panic::Location<'static>>,
}

impl Reservation {
    /// The call's key: its name and occurrence.
    pub(crate) fn key(&self) -> StepKey {
        StepKey {
            name: self.name.to_string(),
            occurrence: self.occurrence,
        }
    }

    /// Where the call's entry sits in `execution`'s journal, as a `kind`.
    pub(crate) fn entry_at(&self, execution: &ExecutionId, kind: EntryKind) -> EntryAt {
        EntryAt {
            execution: execution.clone(),
            position: self.position,
            branch: Arc::clone(&self.branch),
            local: self.local,
            kind,
            name: Arc::clone(&self.name),
            occurrence: self.occurrence,
        }
    }
}

impl Execution {
    /// Takes the next position in `branch` and the occurrence of `name`;
    /// synchronous, so a call reserves its key when it is made, not when
    /// first polled.
    pub(crate) fn reserve(&self, branch: &Arc<str>, name: &str) -> Reservation {
        // The lock is never held across an await; a panic while holding it
        // cannot leave the cursor half-updated.
        let mut guard = self.cursor.lock().unwrap_or_else(|p| p.into_inner());
        let c = &mut *guard;
        let b = c.branch(branch);
        let occurrence = match b.occurrences.get_mut(name) {
            Some(n) => {
                *n += 1;
                *n
            }
            None => {
                b.occurrences.insert(name.into(), 0);
                0
            }
        };
        let mut local = b.next;
        b.next += 1;
        let mut recorded = c.journal.take(branch, local);
        // A patch marker no call asks for (its `patched` call was removed
        // once no execution took the old path): passed over, in the same
        // way on every replay.
        while recorded
            .as_ref()
            .is_some_and(|e| e.kind == EntryKind::Patch)
        {
            let b = c.branch(branch);
            local = b.next;
            b.next += 1;
            recorded = c.journal.take(branch, local);
        }
        let position = match &recorded {
            Some(entry) => entry.position,
            None => {
                let p = c.next_position;
                c.next_position += 1;
                p
            }
        };
        Reservation {
            position,
            branch: Arc::clone(branch),
            local,
            name: Arc::from(name),
            occurrence,
            recorded,
            location: None,
        }
    }

    /// Looks for change `id`'s marker at the next place of `branch`
    /// (synchronous, in call order like [`reserve`](Self::reserve)); with
    /// `record` false (a deprecated patch) nothing new is reserved.
    pub(crate) fn reserve_patch(&self, branch: &Arc<str>, id: &str, record: bool) -> PatchPlace {
        let mut guard = self.cursor.lock().unwrap_or_else(|p| p.into_inner());
        let c = &mut *guard;
        let local = c.branch(branch).next;
        let marked = c.journal.take_if(branch, local, |e| {
            e.kind == EntryKind::Patch && *e.name == *id
        });
        if marked.is_none() && (c.journal.left > 0 || !record) {
            return PatchPlace::Passed;
        }
        let b = c.branch(branch);
        b.next += 1;
        let occurrence = match b.occurrences.get_mut(id) {
            Some(n) => {
                *n += 1;
                *n
            }
            None => {
                b.occurrences.insert(id.into(), 0);
                0
            }
        };
        if marked.is_some() {
            return PatchPlace::Marked;
        }
        let position = c.next_position;
        c.next_position += 1;
        PatchPlace::New(Box::new(Reservation {
            position,
            branch: Arc::clone(branch),
            local,
            name: Arc::from(id),
            occurrence,
            recorded: None,
            location: None,
        }))
    }

    /// Names the next child branch of `parent` (synchronous: in call order).
    pub(super) fn child_branch(&self, parent: &Arc<str>) -> Arc<str> {
        let mut c = self.cursor.lock().unwrap_or_else(|p| p.into_inner());
        let b = c.branch(parent);
        let n = b.children;
        b.children += 1;
        if parent.is_empty() {
            Arc::from(n.to_string())
        } else {
            Arc::from(format!("{parent}.{n}"))
        }
    }

    /// Whether entries of the journal are still ahead: the execution is
    /// replaying what an earlier run did.
    pub(crate) fn is_replaying(&self) -> bool {
        let c = self.cursor.lock().unwrap_or_else(|p| p.into_inner());
        c.journal.left > 0
    }

    /// Journal entries the run did not reach, for the completion check
    /// (a patch marker left behind is no call of the old code: not counted).
    pub(crate) fn unreached(&self) -> Vec<Entry> {
        let mut c = self.cursor.lock().unwrap_or_else(|p| p.into_inner());
        let mut left = c.journal.drain();
        left.retain(|e| e.kind != EntryKind::Patch);
        left
    }

    /// The determinism check, for every kind of call: takes what the
    /// journal recorded at the call's place, and parks the execution (never
    /// returning) when that is another call than this one. `None` when the
    /// journal ends before this call: it runs for the first time.
    pub(crate) async fn recorded(&self, r: &mut Reservation, kind: EntryKind) -> Option<Entry> {
        let Some(entry) = r.recorded.take() else {
            if self.stops_past_journal() {
                self.halt().await
            }
            return None;
        };
        if entry.kind == kind && entry.name == r.name && entry.occurrence == r.occurrence {
            return Some(entry);
        }
        let at = r
            .location
            .map(|l| format!(" (at {}:{}:{})", l.file(), l.line(), l.column()))
            .unwrap_or_default();
        let reason = format!(
            "non-determinism in workflow `{}` at position {}: the journal recorded {} `{}#{}` but the workflow now calls {kind} `{}#{}`{at}; no step body ran. Resume it with code that makes the recorded calls.",
            self.workflow,
            r.position,
            entry.kind,
            entry.name,
            entry.occurrence,
            r.name,
            r.occurrence
        );
        self.park_for(PauseCause::Nondeterminism, reason).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::StepStatus;

    fn entry(position: u32, branch: &str, local: u32) -> Entry {
        Entry {
            position,
            kind: EntryKind::Step,
            name: Arc::from("s"),
            occurrence: local,
            status: StepStatus::Completed,
            attempts: 1,
            output: Some(b"1".to_vec()),
            error: None,
            error_message: None,
            wake_at: None,
            branch: Arc::from(branch),
            local,
            value_type: None,
        }
    }

    #[test]
    fn entries_are_taken_by_branch_and_place() {
        let main: Arc<str> = Arc::from("");
        let b0: Arc<str> = Arc::from("0");
        // A hole at main place 1 (a call that was never journaled).
        let mut r = Recorded::new(vec![entry(0, "", 0), entry(1, "0", 0), entry(2, "", 2)]);
        assert_eq!(r.take(&main, 1).map(|e| e.position), None);
        assert_eq!(r.take(&main, 2).map(|e| e.position), Some(2));
        assert_eq!(r.take(&b0, 0).map(|e| e.position), Some(1));
        assert_eq!(r.take(&b0, 0).map(|e| e.position), None);
        assert_eq!(r.take(&Arc::from("9"), 0).map(|e| e.position), None);
        let left: Vec<u32> = r.drain().iter().map(|e| e.position).collect();
        assert_eq!(left, [0]);
    }

    #[test]
    fn a_damaged_place_sizes_nothing_and_a_duplicate_is_left_unreached() {
        let main: Arc<str> = Arc::from("");
        let mut r = Recorded::new(vec![
            entry(0, "", 0),
            entry(1, "", u32::MAX - 1),
            entry(2, "", 0),
        ]);
        assert!(r.main.len() <= 1);
        assert_eq!(r.take(&main, u32::MAX - 1).map(|e| e.position), Some(1));
        assert_eq!(r.take(&main, 0).map(|e| e.position), Some(2));
        let left: Vec<u32> = r.drain().iter().map(|e| e.position).collect();
        assert_eq!(left, [0], "the shadowed entry is reported as unreached");
    }
}
