//! The incidents kept, and which of them changed lately.
//!
//! Watchers (gRPC `Watch`, the console's live list) ask after every applied
//! batch for the incidents changed since a revision. Scanning every incident
//! for that costs what the state holds, under the state's read lock, while
//! ingest waits for the write lock. So every change also goes into a bounded
//! list of `(revision, incident)` in log order, and a question about recent
//! revisions reads only the tail of that list. A question from before what the
//! list covers (a watcher resuming from long ago, or the first question after
//! a snapshot was restored) falls back to the scan.
//!
//! The list is derived data: not serialized, not compared, rebuilt from the
//! next applied entry on.

use crate::incident::{Incident, IncidentId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// Changes remembered unless told otherwise: a watcher further behind scans
/// instead (16 bytes each).
pub const RECENT_CHANGES: usize = 100_000;

/// Every incident kept, by id. Reads go through `Deref` to the map; writes
/// go through [`Incidents::get_mut`] and [`Incidents::insert`], which note
/// what changed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Incidents {
    /// Values are shared with snapshots in progress (copy on write), so
    /// copying the state for a snapshot does not copy every incident.
    map: BTreeMap<IncidentId, Arc<Incident>>,
    #[serde(skip)]
    changes: Changes,
}

#[derive(Debug, Clone, Default)]
struct Changes {
    /// Whether `recent` holds every change after `covered_after`.
    ready: bool,
    covered_after: u64,
    /// `(revision, incident)` in log order; an incident changed twice is in
    /// it twice.
    recent: VecDeque<(u64, IncidentId)>,
    /// Incidents written by the entry being applied.
    touched: Vec<IncidentId>,
    /// How many changes to remember; 0 means [`RECENT_CHANGES`].
    memory: usize,
}

impl PartialEq for Incidents {
    fn eq(&self, other: &Self) -> bool {
        self.map == other.map // the change list is derived
    }
}

impl std::ops::Deref for Incidents {
    type Target = BTreeMap<IncidentId, Arc<Incident>>;

    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl Incidents {
    /// Remember the last `changes` changes (at least one entry's) instead of
    /// [`RECENT_CHANGES`]: more memory for fewer scans.
    pub fn remember_changes(&mut self, changes: usize) {
        self.changes.memory = changes.max(1);
    }
    /// The incident to change (copied first if a snapshot still shares it).
    pub(crate) fn get_mut(&mut self, id: &IncidentId) -> Option<&mut Incident> {
        let inc = self.map.get_mut(id)?;
        self.changes.touched.push(*id);
        Some(Arc::make_mut(inc))
    }

    pub(crate) fn insert(&mut self, id: IncidentId, inc: Arc<Incident>) {
        self.changes.touched.push(id);
        self.map.insert(id, inc);
    }

    /// Forget an incident (compaction); watchers are not told.
    pub(crate) fn remove(&mut self, id: &IncidentId) -> Option<Arc<Incident>> {
        self.map.remove(id)
    }

    /// Before applying the entry after `applied`: after a restore the list
    /// starts here.
    pub(crate) fn begin(&mut self, applied: u64) {
        let c = &mut self.changes;
        if !c.ready {
            c.ready = true;
            c.covered_after = applied;
            c.recent.clear();
        }
        c.touched.clear();
    }

    /// After applying entry `index`: record the incidents it changed (those
    /// whose revision it is now), and forget the oldest changes beyond the
    /// bound, a whole entry at a time.
    pub(crate) fn settle(&mut self, index: u64) {
        let c = &mut self.changes;
        c.touched.sort_unstable();
        c.touched.dedup();
        let map = &self.map;
        c.touched
            .retain(|id| map.get(id).is_some_and(|i| i.revision == index));
        c.recent.extend(c.touched.iter().map(|&id| (index, id)));
        let memory = if c.memory == 0 {
            RECENT_CHANGES
        } else {
            c.memory
        };
        if c.recent.len() > memory {
            let mut dropped = c.covered_after;
            while c.recent.len() > memory || c.recent.front().is_some_and(|&(r, _)| r == dropped) {
                match c.recent.pop_front() {
                    Some((r, _)) => dropped = r,
                    None => break,
                }
            }
            c.covered_after = dropped;
        }
    }

    /// The incidents the entry just applied changed (after [`Incidents::settle`]).
    pub(crate) fn just_changed(&self) -> &[IncidentId] {
        &self.changes.touched
    }

    /// Incidents changed after log index `revision`, oldest change first
    /// (ties by id).
    pub(crate) fn changed_since(&self, revision: u64) -> Vec<&Incident> {
        let c = &self.changes;
        if !(c.ready && revision >= c.covered_after) {
            return self.scan(revision);
        }
        let start = c.recent.partition_point(|&(r, _)| r <= revision);
        let mut ids: Vec<IncidentId> = c.recent.range(start..).map(|&(_, id)| id).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut changed: Vec<&Incident> = ids
            .iter()
            .filter_map(|id| self.map.get(id))
            .filter(|i| i.revision > revision)
            .map(|i| &**i)
            .collect();
        changed.sort_by_key(|i| (i.revision, i.id));
        changed
    }

    /// The same answer from every incident held.
    fn scan(&self, revision: u64) -> Vec<&Incident> {
        let mut changed: Vec<&Incident> = self
            .map
            .values()
            .filter(|i| i.revision > revision)
            .map(|i| &**i)
            .collect();
        changed.sort_by_key(|i| (i.revision, i.id));
        changed
    }

    /// Whether the change list answers as the scan does, at the revisions
    /// most asked about and at the edge of what it covers.
    pub(crate) fn check(&self, applied: u64) -> Result<(), String> {
        let edge = self.changes.covered_after;
        let asked = [
            0,
            edge,
            edge + 1,
            applied.saturating_sub(3),
            applied.saturating_sub(1),
            applied,
        ];
        for r in asked {
            let ids = |v: Vec<&Incident>| v.iter().map(|i| i.id).collect::<Vec<_>>();
            let (listed, scanned) = (ids(self.changed_since(r)), ids(self.scan(r)));
            if listed != scanned {
                return Err(format!(
                    "changed since {r}: the change list says {listed:?}, the incidents {scanned:?}"
                ));
            }
        }
        Ok(())
    }
}
