//! One assigned input partition: a thread that owns a [`Pipeline`] (its baselines,
//! caches and registry copy), restores the baselines from the changelog, then
//! scores the partition's records in offset order and hands their outputs to the
//! producer. No locks on the hot path; the only shared state it touches per batch
//! is its [`Tracker`] (one lock per batch) and the producer queue.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;

use super::offsets::{AckEntry, Tracker};
use super::registry_table::{drain_updates, Table};
use super::restore::{changelog_end, restore_partition, RestoreError};
use super::sinks::Sinks;
use super::Status;
use crate::hash::FastMap;
use crate::metrics::{BaselinesHeld, BatchProcessed, BatchTally, DeadLettered, Metrics, RestoreCompleted, StateReused};
use crate::pipeline::{Output, Pipeline, Shared};

/// Records of one partition, copied out of the consumer in one buffer.
#[derive(Default)]
pub struct Batch {
    /// Identity of the partition assignment the records belong to.
    pub handle_id: u64,
    pub data: Vec<u8>,
    pub recs: Vec<RecMeta>,
}

/// Where one record's key and payload sit in [`Batch::data`].
#[derive(Clone, Copy)]
pub struct RecMeta {
    pub offset: i64,
    pub ts_ms: i64,
    /// `(start, len)`; `None` = no key.
    pub key: Option<(u32, u32)>,
    /// `(start, len)`; `None` = null payload.
    pub payload: Option<(u32, u32)>,
}

impl Batch {
    pub fn new(handle_id: u64) -> Self {
        Batch {
            handle_id,
            data: Vec::with_capacity(4 * 1024),
            recs: Vec::with_capacity(16),
        }
    }

    pub fn push(&mut self, offset: i64, ts_ms: i64, key: Option<&[u8]>, payload: Option<&[u8]>) {
        let mut put = |b: Option<&[u8]>| {
            b.map(|b| {
                let start = self.data.len() as u32;
                self.data.extend_from_slice(b);
                (start, b.len() as u32)
            })
        };
        let key = put(key);
        let payload = put(payload);
        self.recs.push(RecMeta {
            offset,
            ts_ms,
            key,
            payload,
        });
    }

    #[inline]
    pub fn slice(&self, r: Option<(u32, u32)>) -> Option<&[u8]> {
        r.map(|(s, l)| &self.data[s as usize..(s + l) as usize])
    }

    pub fn len(&self) -> usize {
        self.recs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.recs.is_empty()
    }
}

/// A revoked partition's state, kept in case the partition comes straight back
/// (an eager rebalance revokes everything and re-assigns most of it). It is used
/// only if the changelog partition still ends where this worker left it, i.e.
/// nobody else wrote to it in between; otherwise the partition is restored.
pub struct Parked {
    pub pipeline: Pipeline,
    pub changelog_next: i64,
}

/// Everything a partition thread needs.
pub struct PartitionTask {
    pub partition: i32,
    pub events_topic: String,
    pub changelog_topic: String,
    pub shared: Shared,
    pub reader_config: ClientConfig,
    pub sinks: Sinks,
    pub tracker: Arc<Tracker>,
    pub table: Arc<Table>,
    pub metrics: Arc<Metrics>,
    pub status: Arc<Status>,
    pub stop: Arc<AtomicBool>,
    pub rx: Receiver<Batch>,
    pub parked: Option<Parked>,
    pub instance: String,
    /// Longest a baseline change waits before its changelog write (0: every batch).
    pub changelog_flush: Duration,
}

/// Users whose baseline changed since the last changelog write, each with the
/// entry of the first record that changed it. That entry holds one extra unit
/// until the write is handed to the producer, so no offset at or after it is
/// committed before the baseline it produced is durable (Kafka Streams' record
/// cache, with our commit-after-ack rule).
#[derive(Default)]
struct Dirty {
    users: FastMap<String, Arc<AckEntry>>,
    since: Option<Instant>,
}

impl Dirty {
    fn mark(&mut self, user: &str, entry: &Arc<AckEntry>) {
        if !self.users.contains_key(user) {
            entry.add();
            self.users.insert(user.to_string(), entry.clone());
            self.since.get_or_insert_with(Instant::now);
        }
    }

    /// Time left before the oldest change must be written.
    fn due_in(&self, every: Duration) -> Option<Duration> {
        self.since.map(|t| every.saturating_sub(t.elapsed()))
    }
}

impl PartitionTask {
    /// Restore (or reuse parked state), then score until revoked; returns the
    /// pipeline when it stopped cleanly (the caller may park it).
    pub fn run(mut self) -> Option<Pipeline> {
        let p = self.partition;
        let span = tracing::info_span!("partition", worker = %self.instance, partition = p);
        let _g = span.enter();
        self.status.restoring_started();
        let prepared = self.prepare();
        self.status.restoring_finished();
        let (mut pipeline, updates, mut held) = match prepared {
            Ok(x) => x,
            Err(RestoreError::Stopped) => {
                self.drop_queued();
                return None;
            }
            Err(e) => {
                self.status.set_fatal(format!("partition {p}: {e}"));
                self.drop_queued();
                return None;
            }
        };
        let mut out = Output::default();
        let mut bl = Vec::with_capacity(4096);
        let mut entries: Vec<Arc<AckEntry>> = Vec::with_capacity(512);
        let mut dirty = Dirty::default();
        let mut expired: Vec<String> = Vec::new();
        let hot = self.metrics.hot_path_latency.local();
        loop {
            // wait for records, or until pending baseline changes are due
            let next = match dirty.due_in(self.changelog_flush) {
                None => self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(wait) => self.rx.recv_timeout(wait),
            };
            let batch = match next {
                Ok(b) => b,
                Err(RecvTimeoutError::Timeout) => {
                    self.flush_changelog(&mut dirty, &pipeline, &mut bl);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            if self.stop.load(Ordering::Relaxed) {
                self.tracker.dropped(batch.len());
                break;
            }
            drain_updates(&updates, &mut pipeline);
            pipeline.set_clock(crate::timefmt::now_ms());
            let _b = tracing::debug_span!("batch", records = batch.len()).entered();
            let mut tally = BatchTally::default();
            let mut done = 0usize;
            for r in &batch.recs {
                if self.stop.load(Ordering::Relaxed) {
                    break;
                }
                done += 1;
                let payload = batch.slice(r.payload).unwrap_or_default();
                let entry = AckEntry::new(&self.tracker, r.offset, r.ts_ms);
                let t0 = Instant::now();
                let res = pipeline.process_at(payload, u64::try_from(r.offset).ok(), &mut out);
                hot.observe(t0.elapsed().as_secs_f64());
                let sent = match res {
                    Ok(()) => {
                        let kind = out.kind.expect("a processed event has a decision");
                        tally.decision(kind, out.signals);
                        if out.baseline_changed {
                            dirty.mark(&out.user_id, &entry);
                        }
                        let mut res = self.sinks.decision(&out, &entry);
                        if res.is_ok() && kind.is_trigger() {
                            res = self.sinks.trigger(&out, &entry);
                        }
                        res
                    }
                    Err(e) => {
                        let code = e.code();
                        self.metrics.emit(DeadLettered { code });
                        // the reason (which may quote the input) goes to the DLQ header only
                        tracing::debug!(offset = r.offset, code, "record dead-lettered");
                        self.sinks.dlq(
                            &self.events_topic,
                            p,
                            r.offset,
                            batch.slice(r.key),
                            payload,
                            code,
                            &e.to_string(),
                            &entry,
                        )
                    }
                };
                if let Err(e) = sent {
                    self.send_failed(&e);
                }
                entries.push(entry);
            }
            // users whose state no longer matters: dropped, and a tombstone for
            // each goes out with the batch's other changelog writes
            if let Some(last) = entries.last() {
                expired.clear();
                tally.expired = pipeline.expire_idle(&mut expired) as u64;
                for user in &expired {
                    dirty.mark(user, last);
                }
            }
            self.tracker.push(entries.iter().cloned());
            let mut settled = false;
            for e in entries.drain(..) {
                settled |= e.release();
            }
            if settled {
                self.tracker.advance();
            }
            if done < batch.len() {
                self.tracker.dropped(batch.len() - done);
            }
            if dirty.due_in(self.changelog_flush) == Some(Duration::ZERO) {
                self.flush_changelog(&mut dirty, &pipeline, &mut bl);
            }
            hot.flush();
            self.metrics.emit(BatchProcessed { tally: &tally });
            let now = pipeline.state().len() as i64;
            self.metrics.emit(BaselinesHeld { delta: now - held });
            held = now;
        }
        // what was scored is written before the partition is let go: the drain
        // then waits for these writes like for every other output
        self.flush_changelog(&mut dirty, &pipeline, &mut bl);
        // revoked or shutting down: drop queued records (the next owner re-reads
        // them from the committed offset); the state goes back to the caller, who
        // parks or drops it
        self.drop_queued();
        self.metrics.emit(BaselinesHeld { delta: -held });
        Some(pipeline)
    }

    /// A pipeline with this partition's baselines: the parked one if the changelog
    /// did not move since it was parked, else restored from the changelog.
    #[allow(clippy::type_complexity)]
    fn prepare(&mut self) -> Result<(Pipeline, Receiver<Arc<super::registry_table::Update>>, i64), RestoreError> {
        let p = self.partition;
        if let Some(parked) = self.parked.take() {
            let end = changelog_end(&self.reader_config, &self.changelog_topic, p, &self.stop)?;
            if parked.changelog_next >= 0 && end == parked.changelog_next {
                let mut pipeline = parked.pipeline;
                let updates = self.table.subscribe(&mut pipeline);
                let users = pipeline.state().len();
                self.tracker.set_changelog_next(end);
                self.metrics.emit(StateReused { partition: p, users });
                return Ok((pipeline, updates, users as i64));
            }
            tracing::info!(
                partition = p,
                parked_at = parked.changelog_next,
                changelog_end = end,
                "changelog moved since the partition was released: restoring"
            );
        }
        let mut pipeline = Pipeline::new(self.shared.clone());
        let updates = self.table.subscribe(&mut pipeline);
        let st = restore_partition(&self.reader_config, &self.changelog_topic, p, &mut pipeline, &self.stop)?;
        self.tracker.set_changelog_next(st.high);
        self.metrics.emit(RestoreCompleted {
            partition: p,
            users: st.users,
            records: st.records,
            errors: st.errors,
            duration: st.duration,
        });
        Ok((pipeline, updates, st.users as i64))
    }

    /// One changelog record per dirty user, carrying its baseline as it is now
    /// (a tombstone when it was dropped).
    fn flush_changelog(&mut self, dirty: &mut Dirty, pipeline: &Pipeline, bl: &mut Vec<u8>) {
        dirty.since = None;
        if dirty.users.is_empty() {
            return;
        }
        let mut tally = BatchTally::default();
        for (user, entry) in dirty.users.drain() {
            let has = pipeline.baseline_bytes(&user, bl);
            let value = has.then_some(bl.as_slice());
            tally.changelog += 1;
            if let Err(e) = self.sinks.changelog(self.partition, &user, value, &entry) {
                self.send_failed(&e);
            }
            // the write holds its own unit now; release the one held since `mark`
            entry.ack();
        }
        self.metrics.emit(BatchProcessed { tally: &tally });
    }

    fn drop_queued(&self) {
        while let Ok(b) = self.rx.try_recv() {
            self.tracker.dropped(b.len());
        }
    }

    fn send_failed(&self, e: &rdkafka::error::KafkaError) {
        self.tracker.mark_failed();
        if !self.stop.load(Ordering::Relaxed) {
            self.status.set_fatal(format!(
                "partition {}: cannot hand an output to the producer: {e}",
                self.partition
            ));
        }
    }
}
