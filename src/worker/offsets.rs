//! Commit-after-acknowledgement bookkeeping for one input partition.
//!
//! Each processed input record gets an [`AckEntry`] whose counter holds one unit per
//! output it caused (trigger, decision, DLQ record, changelog update) plus a guard
//! held by the partition worker until all of the record's outputs have been handed to
//! the producer. The producer's delivery callback releases one unit per
//! acknowledged output. The [`Tracker`] keeps the entries in offset order and
//! advances the *committable* offset over the contiguous prefix of settled records
//! (as Vector's Kafka source does with its finalizers): an offset is never stored
//! while an earlier record still has an output in flight. A failed delivery never
//! releases its unit, so the prefix stops there for good.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::metrics::{Metrics, RecordsSettled};

/// One input record's outstanding outputs.
pub struct AckEntry {
    remaining: AtomicU32,
    pub offset: i64,
    /// Record timestamp (ms since the epoch), or -1.
    pub ts_ms: i64,
    tracker: Option<Arc<Tracker>>,
}

impl AckEntry {
    /// An entry holding its guard (count 1).
    pub fn new(tracker: &Arc<Tracker>, offset: i64, ts_ms: i64) -> Arc<Self> {
        Arc::new(AckEntry {
            remaining: AtomicU32::new(1),
            offset,
            ts_ms,
            tracker: Some(tracker.clone()),
        })
    }

    /// An entry tied to no input offset (registry DLQ records): acknowledgements
    /// only count.
    pub fn untracked() -> Arc<Self> {
        Arc::new(AckEntry {
            remaining: AtomicU32::new(1),
            offset: -1,
            ts_ms: -1,
            tracker: None,
        })
    }

    /// One more output is about to be sent for this record.
    #[inline]
    pub fn add(&self) {
        self.remaining.fetch_add(1, Ordering::Relaxed);
    }

    /// One output acknowledged (or the guard released). Returns true when the
    /// record became settled.
    #[inline]
    pub fn release(&self) -> bool {
        self.remaining.fetch_sub(1, Ordering::AcqRel) == 1
    }

    /// Release and, when settled, let the tracker advance.
    pub fn ack(&self) {
        if self.release() {
            if let Some(t) = &self.tracker {
                t.advance();
            }
        }
    }

    pub fn tracker(&self) -> Option<&Arc<Tracker>> {
        self.tracker.as_ref()
    }

    pub fn remaining(&self) -> u32 {
        self.remaining.load(Ordering::Acquire)
    }
}

/// The ack window of one assigned input partition.
pub struct Tracker {
    pub partition: i32,
    window: Mutex<VecDeque<Arc<AckEntry>>>,
    /// Next offset that may be committed (last settled + 1), or -1.
    committable: AtomicI64,
    /// Records dispatched to the partition worker and not settled yet.
    in_flight: AtomicUsize,
    /// A delivery failed: the prefix can never pass it.
    failed: AtomicBool,
    /// Detached at revoke: late acknowledgements no longer move global gauges.
    closed: AtomicBool,
    /// Next offset of this partition's changelog partition as far as this worker
    /// knows (end at restore, then each acknowledged write + 1), or -1.
    changelog_next: AtomicI64,
    metrics: Arc<Metrics>,
}

impl Tracker {
    pub fn new(partition: i32, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Tracker {
            partition,
            window: Mutex::new(VecDeque::with_capacity(1024)),
            committable: AtomicI64::new(-1),
            in_flight: AtomicUsize::new(0),
            failed: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            changelog_next: AtomicI64::new(-1),
            metrics,
        })
    }

    /// Records handed to the partition worker.
    pub fn dispatched(&self, n: usize) {
        self.in_flight.fetch_add(n, Ordering::Relaxed);
    }

    /// Records the partition worker dropped unprocessed (partition revoked).
    pub fn dropped(&self, n: usize) {
        if n > 0 {
            self.in_flight.fetch_sub(n, Ordering::Relaxed);
            if !self.closed.load(Ordering::Relaxed) {
                self.metrics.emit(RecordsSettled {
                    count: n as u64,
                    latency: None,
                });
            }
        }
    }

    /// Append processed records' entries (in offset order) before their guards
    /// are released.
    pub fn push(&self, entries: impl IntoIterator<Item = Arc<AckEntry>>) {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        w.extend(entries);
    }

    /// Pop the settled prefix and publish the new committable offset.
    pub fn advance(&self) {
        let now_ms = now_ms();
        let mut n = 0usize;
        let mut last = None;
        {
            let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
            while let Some(front) = w.front() {
                if front.remaining() != 0 {
                    break;
                }
                let e = w.pop_front().expect("front exists");
                last = Some(e.offset);
                n += 1;
                if e.ts_ms > 0 && !self.closed.load(Ordering::Relaxed) {
                    self.metrics.e2e_latency.observe((now_ms - e.ts_ms).max(0) as f64 / 1e3);
                }
            }
        }
        if let Some(off) = last {
            self.committable.fetch_max(off + 1, Ordering::AcqRel);
            self.in_flight.fetch_sub(n, Ordering::Relaxed);
            if !self.closed.load(Ordering::Relaxed) {
                self.metrics.emit(RecordsSettled {
                    count: n as u64,
                    latency: None,
                });
            }
        }
    }

    /// Next offset to commit (every earlier record settled), if any record settled.
    pub fn committable(&self) -> Option<i64> {
        let c = self.committable.load(Ordering::Acquire);
        (c >= 0).then_some(c)
    }

    /// Records dispatched and not settled (queued, being processed, or awaiting acks).
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Processed records still waiting for acknowledgements.
    pub fn unacked(&self) -> usize {
        self.window.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// A changelog write of this partition was acknowledged at `offset`.
    pub fn note_changelog(&self, offset: i64) {
        self.changelog_next.fetch_max(offset + 1, Ordering::AcqRel);
    }

    pub fn set_changelog_next(&self, next: i64) {
        self.changelog_next.fetch_max(next, Ordering::AcqRel);
    }

    pub fn changelog_next(&self) -> i64 {
        self.changelog_next.load(Ordering::Acquire)
    }

    pub fn mark_failed(&self) {
        self.failed.store(true, Ordering::Release);
    }

    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Detach after revoke: returns how many records were still in flight (their
    /// gauge share is released here) and breaks the entry ↔ tracker cycles.
    pub fn close(&self) -> usize {
        if self.closed.swap(true, Ordering::AcqRel) {
            return 0;
        }
        let left = self.in_flight.load(Ordering::Relaxed);
        self.metrics.emit(RecordsSettled {
            count: left as u64,
            latency: None,
        });
        self.window.lock().unwrap_or_else(|e| e.into_inner()).clear();
        left
    }
}

use crate::timefmt::now_ms;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_advances_only_over_settled_records() {
        let t = Tracker::new(0, Arc::new(Metrics::new()));
        t.dispatched(3);
        let e: Vec<_> = [10, 11, 13].iter().map(|&o| AckEntry::new(&t, o, -1)).collect();
        e[0].add(); // one output for record 10
        e[1].add();
        e[1].add(); // two for 11
        e[2].add(); // one for 13 (12 was compacted away)
        t.push(e.iter().cloned());
        for x in &e {
            x.ack(); // guards
        }
        assert_eq!(t.committable(), None);
        e[2].ack();
        assert_eq!(t.committable(), None, "13 settled but 10 is not");
        e[0].ack();
        assert_eq!(t.committable(), Some(11));
        e[1].ack();
        assert_eq!(t.committable(), Some(11));
        e[1].ack();
        assert_eq!(t.committable(), Some(14));
        assert_eq!(t.in_flight(), 0);
        assert_eq!(t.unacked(), 0);
    }

    #[test]
    fn a_record_without_outputs_settles_with_its_guard() {
        let t = Tracker::new(0, Arc::new(Metrics::new()));
        t.dispatched(1);
        let e = AckEntry::new(&t, 5, -1);
        t.push([e.clone()]);
        e.ack();
        assert_eq!(t.committable(), Some(6));
    }
}
