//! The parent's side of the task counters: the children's shared regions (`counters.rs`), the totals of children
//! that exited (folded in when the parent reaps them, so recycling and crashes lose nothing) plus what only the
//! parent sees (hard-timeout kills), and the fields published with the heartbeat.

use super::counters::{field_name, CounterTable, Layout, FIELDS, HARD_TIMEOUT};

/// The counter cells of a daemon with these queues and tasks.
pub fn layout(queues: &[String], tasks: &[String]) -> Layout {
    // NOTE: cell queues are the children's claim order: their broadcast list (counted as "broadcast"), then
    // the daemon's queues (worker.py's `Claimed.queue_name`).
    let mut names = vec!["broadcast".to_owned()];
    names.extend(queues.iter().cloned());
    Layout::new(names, tasks.to_vec())
}

pub struct Tally {
    table: CounterTable,
    /// Exited children and parent-side counts, per cell and field.
    retired: Vec<u64>,
    /// Totals a reaper already folded into the retired hash (it took us for dead): published minus these.
    baseline: Vec<u64>,
    /// Totals of the last successful publish.
    published: Option<Vec<u64>>,
    /// Totals sent by the publish in progress.
    sending: Vec<u64>,
}

impl Tally {
    pub fn new(children: usize, queues: &[String], tasks: &[String]) -> std::io::Result<Self> {
        Ok(Self::with_table(CounterTable::new(children, layout(queues, tasks))?))
    }

    /// A tally over a table made elsewhere (spawn mode: in a memory file).
    pub fn with_table(table: CounterTable) -> Self {
        let n = table.totals_len();
        Self {
            table,
            retired: vec![0; n],
            baseline: vec![0; n],
            published: None,
            sending: Vec::new(),
        }
    }

    pub const fn table(&self) -> &CounterTable {
        &self.table
    }

    /// Before forking a child into `slot`: its region starts from zero.
    pub fn child_forking(&self, slot: usize) {
        if let Some(r) = self.table.region(slot) {
            r.clear();
        }
    }

    /// A child was reaped: keep its final counts (the region stays as it is until the next fork clears it).
    pub fn child_exited(&mut self, slot: usize) {
        if let Some(r) = self.table.region(slot) {
            r.add_into(&mut self.retired);
        }
    }

    /// The watchdog killed the child in `slot` at the hard timeout of its sync task (`sync`) or of an async one.
    pub fn hard_timeout(&mut self, slot: usize, sync: bool) {
        let region = self.table.region(slot);
        let cell = region.and_then(|r| {
            if sync {
                r.current_cell()
            } else {
                r.async_deadline_cell()
            }
        });
        if let Some(cell) = cell {
            if let Some(v) = self.retired.get_mut(cell * FIELDS + HARD_TIMEOUT) {
                *v += 1;
            }
        }
    }

    /// (queue, task) of the sync task the child in `slot` runs now.
    pub fn current_task(&self, slot: usize) -> Option<(String, String)> {
        let cell = self.table.region(slot)?.current_cell()?;
        let (q, t) = self.table.layout.names(cell)?;
        Some((q.to_owned(), t.to_owned()))
    }

    /// The fields to publish (non-zero totals of retired + the live `slots`, minus the baseline), and whether an
    /// earlier publish succeeded.
    pub fn fields(&mut self, live_slots: impl Iterator<Item = usize>) -> (Vec<(String, u64)>, bool) {
        let mut totals = self.retired.clone();
        for slot in live_slots {
            if let Some(r) = self.table.region(slot) {
                r.add_into(&mut totals);
            }
        }
        let mut out = Vec::new();
        for (cell, values) in totals.chunks(FIELDS).enumerate() {
            let Some((queue, task)) = self.table.layout.names(cell) else {
                continue;
            };
            for (i, &v) in values.iter().enumerate() {
                let n = v.saturating_sub(self.baseline[cell * FIELDS + i]);
                if let (true, Some(name)) = (n > 0, field_name(i)) {
                    out.push((format!("{name}\x1f{queue}\x1f{task}"), n));
                }
            }
        }
        self.sending = totals;
        (out, self.published.is_some())
    }

    /// The publish of the last `fields` landed (`reaped`: no, a reaper had removed us and took what we
    /// published before; count from there).
    pub fn published(&mut self, reaped: bool) {
        if reaped {
            if let Some(last) = self.published.take() {
                self.baseline = last;
            }
            return;
        }
        self.published = Some(std::mem::take(&mut self.sending));
    }
}

#[cfg(test)]
mod tests {
    use super::super::counters::{self, DONE};
    use super::*;

    #[test]
    fn exited_children_and_reaps_keep_totals_exact() {
        let _guard = counters::TEST_LOCK
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut t = Tally::new(1, &["q".into()], &["a".into()]).expect("mmap");
        // cell of (q, a): queue 1 of ["broadcast", "q"], task 0 of ["a", "?"]
        let cell = 2;
        let done = |n| format!("done\x1fq\x1fa={n}");
        let show = |f: &[(String, u64)]| f.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>();
        t.table().make_current(0);
        counters::observe(cell, 10, true);
        counters::observe(cell, 10, true);
        let (f, again) = t.fields(std::iter::once(0));
        assert!(!again);
        assert!(show(&f).contains(&done(2)));
        t.published(false);
        t.child_exited(0);
        t.child_forking(0);
        counters::observe(cell, 10, true);
        let (f, again) = t.fields(std::iter::once(0));
        assert!(again);
        assert!(show(&f).contains(&done(3)));
        // reaped: the reaper folded the last publish (2); only what came after is ours to publish
        t.published(true);
        let (f, again) = t.fields(std::iter::once(0));
        assert!(!again);
        assert!(show(&f).contains(&done(1)));
        assert_eq!(t.retired[cell * FIELDS + DONE], 2);
    }
}
