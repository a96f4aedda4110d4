//! The group consumer: one member, polled by one thread that never blocks on
//! scoring (rebalance callbacks only run while the main queue is polled, rust-rdkafka
//! #738). It copies records into per-partition batches and hands them to the
//! partition threads, stores the settled offsets, pauses partitions whose in-flight
//! count exceeds `worker.max_in_flight`, and on revoke drains and commits
//! synchronously before the partitions move.

use std::collections::{BTreeMap, HashMap};
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer as _;
use rdkafka::{ClientConfig, ClientContext, Message, Offset, Timestamp, TopicPartitionList};

use super::offsets::Tracker;
use super::partition::{Batch, Parked, PartitionTask};
use super::registry_table::Table;
use super::sinks::{Producer, SinkConfig, Sinks};
use super::{Status, WorkerExit};
use crate::metrics::{
    ConsumerError, ConsumerLag, EventsReceived, Metrics, PartitionPaused, PartitionRevoked, PartitionsAssigned,
    PartitionsRevoked,
};
use crate::pipeline::{Pipeline, Shared};

struct PartHandle {
    id: u64,
    tx: Sender<Batch>,
    tracker: Arc<Tracker>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Option<Pipeline>>,
    paused: bool,
    last_stored: i64,
}

pub struct CoreParts {
    pub shared: Shared,
    pub producer: Arc<Producer>,
    pub sink_cfg: SinkConfig,
    pub reader_config: ClientConfig,
    pub metrics: Arc<Metrics>,
    pub status: Arc<Status>,
    pub table: Arc<Table>,
    pub stop: Arc<AtomicBool>,
    pub batch_max: usize,
    /// Names this worker in logs (tests run several in one process).
    pub instance: String,
}

/// State shared by the consumer thread and its rebalance callbacks (same thread:
/// the lock is never contended, it only makes the context `Sync`).
pub struct Core {
    p: CoreParts,
    topic: String,
    parts: Mutex<BTreeMap<i32, PartHandle>>,
    /// State of partitions released cleanly, until the next assignment.
    parked: Mutex<HashMap<i32, Parked>>,
    next_id: AtomicU64,
    epoch: AtomicU64,
    drain_timeout: Duration,
    max_in_flight: usize,
}

impl Core {
    pub fn new(p: CoreParts) -> Self {
        let s = &p.shared.settings;
        Core {
            topic: s.topics.events.clone(),
            drain_timeout: Duration::from_millis(s.worker.drain_timeout_ms),
            max_in_flight: s.worker.max_in_flight,
            parts: Mutex::new(BTreeMap::new()),
            parked: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            epoch: AtomicU64::new(0),
            p,
        }
    }

    fn parts(&self) -> std::sync::MutexGuard<'_, BTreeMap<i32, PartHandle>> {
        self.parts.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn assign(&self, consumer: &BaseConsumer<Ctx>, tpl: &TopicPartitionList) {
        if self.p.status.stopping.load(Ordering::Acquire) {
            // closing: librdkafka may still complete a rebalance; score nothing more
            return;
        }
        let mut added = Vec::new();
        let mut parked = std::mem::take(&mut *self.parked.lock().unwrap_or_else(|e| e.into_inner()));
        {
            let mut parts = self.parts();
            for e in tpl.elements_for_topic(&self.topic) {
                let p = e.partition();
                if parts.contains_key(&p) {
                    continue;
                }
                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                let tracker = Tracker::new(p, self.p.metrics.clone());
                let stop = Arc::new(AtomicBool::new(false));
                let (tx, rx) = channel();
                let s = &self.p.shared.settings;
                let task = PartitionTask {
                    partition: p,
                    events_topic: self.topic.clone(),
                    changelog_topic: s.topics.changelog.clone(),
                    shared: self.p.shared.clone(),
                    reader_config: self.p.reader_config.clone(),
                    sinks: Sinks::new(self.p.producer.clone(), self.p.sink_cfg.clone()).with_stop(stop.clone()),
                    tracker: tracker.clone(),
                    table: self.p.table.clone(),
                    metrics: self.p.metrics.clone(),
                    status: self.p.status.clone(),
                    stop: stop.clone(),
                    rx,
                    parked: parked.remove(&p),
                    instance: self.p.instance.clone(),
                    changelog_flush: Duration::from_millis(s.worker.changelog_flush_ms),
                };
                let status = self.p.status.clone();
                let thread = std::thread::Builder::new()
                    .name(format!("stepup-p{p}"))
                    .spawn(move || {
                        // a panic must not leave the partition silently stalled: stop the
                        // worker (exit non-zero) so that a restart re-processes from the
                        // last committed offset
                        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| task.run())) {
                            Ok(pipeline) => pipeline,
                            Err(e) => {
                                let msg = e
                                    .downcast_ref::<&str>()
                                    .map(|s| s.to_string())
                                    .or_else(|| e.downcast_ref::<String>().cloned())
                                    .unwrap_or_default();
                                status.set_fatal(format!("partition {p} worker panicked: {msg}"));
                                None
                            }
                        }
                    })
                    .expect("spawn partition thread");
                parts.insert(
                    p,
                    PartHandle {
                        id,
                        tx,
                        tracker,
                        stop,
                        thread,
                        paused: false,
                        last_stored: -1,
                    },
                );
                added.push(p);
            }
            self.p.metrics.emit(PartitionsAssigned {
                partitions: &added,
                total: parts.len(),
            });
        }
        // state parked at the last revoke and not re-assigned now is dropped here
        drop(parked);
        if !added.is_empty() {
            // a partition paused in an earlier assignment must fetch again
            let mut r = TopicPartitionList::new();
            for p in &added {
                r.add_partition(&self.topic, *p);
            }
            let _ = consumer.resume(&r);
        }
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.p.status.joined.store(true, Ordering::Release);
    }

    /// Stop, drain (bounded) and commit the given partitions. Their state is parked
    /// when `park` and the drain was complete (see [`Parked`]), else dropped.
    /// Returns how many processed records were left unacknowledged.
    fn release(&self, consumer: &BaseConsumer<Ctx>, which: &[i32], park: bool) -> usize {
        let t0 = Instant::now();
        let handles: Vec<(i32, PartHandle)> = {
            let mut parts = self.parts();
            which.iter().filter_map(|p| parts.remove(p).map(|h| (*p, h))).collect()
        };
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if handles.is_empty() {
            return 0;
        }
        // stop dispatching: the partition threads drop what is queued (not yet
        // scored, so the next owner scores it once) and finish their current batch
        for (_, h) in &handles {
            h.stop.store(true, Ordering::Release);
        }
        let mut waiting = Vec::with_capacity(handles.len());
        let mut pipelines = HashMap::new();
        let join_deadline = t0 + self.drain_timeout;
        for (p, h) in handles {
            drop(h.tx);
            // bounded: a partition thread that does not stop is left behind (its
            // state is dropped with it) rather than hanging the rebalance
            while !h.thread.is_finished() && Instant::now() < join_deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            if h.thread.is_finished() {
                if let Ok(Some(pl)) = h.thread.join() {
                    pipelines.insert(p, pl);
                }
            } else {
                tracing::error!(
                    partition = p,
                    "partition worker did not stop within the drain timeout; abandoned"
                );
            }
            if h.paused {
                self.p.metrics.emit(PartitionPaused {
                    partition: p,
                    paused: false,
                });
            }
            waiting.push((p, h.tracker));
        }
        // drain: wait for the acknowledgements of what was scored
        let deadline = t0 + self.drain_timeout;
        while Instant::now() < deadline
            && waiting
                .iter()
                .any(|(_, t)| t.unacked() > 0 && !t.failed() && !self.p.status.is_fatal())
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        let mut tpl = TopicPartitionList::new();
        let mut unacked_total = 0;
        let mut report = Vec::with_capacity(waiting.len());
        for (p, t) in &waiting {
            let unacked = t.unacked();
            unacked_total += unacked;
            let c = t.committable();
            if let Some(c) = c {
                let _ = tpl.add_partition_offset(&self.topic, *p, Offset::Offset(c));
            }
            report.push((*p, unacked, c));
        }
        if tpl.count() > 0 {
            // store first: librdkafka's auto-commit (on unsubscribe/close, or its
            // timer) commits the *stored* offsets, and an older stored offset
            // committed after this commit would move the group back
            if let Err(e) = consumer.store_offsets(&tpl) {
                tracing::debug!(error = %e, "store_offsets on release failed");
            }
            if let Err(e) = consumer.commit(&tpl, CommitMode::Sync) {
                tracing::warn!(error = %e, "synchronous commit on release failed; the next owner may re-process");
            }
        }
        for (p, t) in &waiting {
            let clean = t.unacked() == 0 && !t.failed() && !self.p.status.is_fatal();
            if let Some(pl) = pipelines.remove(p) {
                if park && clean && t.changelog_next() >= 0 {
                    self.parked.lock().unwrap_or_else(|e| e.into_inner()).insert(
                        *p,
                        Parked {
                            pipeline: pl,
                            changelog_next: t.changelog_next(),
                        },
                    );
                }
            }
            t.close();
        }
        for (p, unacked, c) in report {
            self.p.metrics.emit(PartitionRevoked {
                partition: p,
                drained: unacked == 0,
                unacked,
                commit_offset: c,
                elapsed: t0.elapsed(),
            });
        }
        self.p.metrics.emit(PartitionsRevoked {
            total: self.parts().len(),
        });
        unacked_total
    }

    /// Send collected batches to their partition threads.
    fn dispatch(&self, batches: &mut HashMap<i32, Batch>) {
        let parts = self.parts();
        for (p, b) in batches.drain() {
            if b.is_empty() {
                continue;
            }
            match parts.get(&p) {
                Some(h) if h.id == b.handle_id => {
                    let n = b.len();
                    h.tracker.dispatched(n);
                    self.p.metrics.emit(EventsReceived { count: n as u64 });
                    if h.tx.send(b).is_err() {
                        h.tracker.dropped(n);
                    }
                }
                _ => {} // from a revoked assignment: the next owner re-reads them
            }
        }
    }

    /// Store settled offsets; pause/resume by in-flight count.
    fn maintain(&self, consumer: &BaseConsumer<Ctx>) {
        let mut store = TopicPartitionList::new();
        let mut pause = TopicPartitionList::new();
        let mut resume = TopicPartitionList::new();
        {
            let mut parts = self.parts();
            for (p, h) in parts.iter_mut() {
                if let Some(c) = h.tracker.committable() {
                    if c > h.last_stored {
                        let _ = store.add_partition_offset(&self.topic, *p, Offset::Offset(c));
                        h.last_stored = c;
                    }
                }
                let inflight = h.tracker.in_flight();
                if !h.paused && inflight >= self.max_in_flight {
                    h.paused = true;
                    pause.add_partition(&self.topic, *p);
                    self.p.metrics.emit(PartitionPaused {
                        partition: *p,
                        paused: true,
                    });
                } else if h.paused && inflight <= self.max_in_flight / 2 {
                    h.paused = false;
                    resume.add_partition(&self.topic, *p);
                    self.p.metrics.emit(PartitionPaused {
                        partition: *p,
                        paused: false,
                    });
                }
            }
        }
        if store.count() > 0 {
            if let Err(e) = consumer.store_offsets(&store) {
                tracing::debug!(error = %e, "store_offsets failed (partition moving?)");
            }
        }
        if pause.count() > 0 {
            if let Err(e) = consumer.pause(&pause) {
                tracing::warn!(error = %e, "pause failed");
            }
        }
        if resume.count() > 0 {
            if let Err(e) = consumer.resume(&resume) {
                tracing::warn!(error = %e, "resume failed");
            }
        }
    }

    /// Consumer lag per partition from the locally cached high watermarks.
    fn report_lag(&self, consumer: &BaseConsumer<Ctx>) {
        let Ok(topic) = CString::new(self.topic.as_str()) else {
            return;
        };
        let parts = self.parts();
        let positions = consumer.position().ok();
        for (p, h) in parts.iter() {
            let (mut lo, mut hi) = (-1i64, -1i64);
            // SAFETY: a valid client handle and NUL-terminated topic; the call only reads
            // librdkafka's cached watermarks into the two out-parameters.
            let err = unsafe {
                rdkafka::bindings::rd_kafka_get_watermark_offsets(
                    consumer.client().native_ptr(),
                    topic.as_ptr(),
                    *p,
                    &mut lo,
                    &mut hi,
                )
            };
            if err != rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || hi < 0 {
                continue;
            }
            let next = h.tracker.committable().or_else(|| {
                positions.as_ref().and_then(|t| {
                    t.find_partition(&self.topic, *p).and_then(|e| match e.offset() {
                        Offset::Offset(o) => Some(o),
                        _ => None,
                    })
                })
            });
            let next = next.unwrap_or(lo.max(0));
            self.p.metrics.emit(ConsumerLag {
                partition: *p,
                lag: hi - next,
            });
        }
    }

    fn owned_ids(&self) -> HashMap<i32, u64> {
        self.parts().iter().map(|(p, h)| (*p, h.id)).collect()
    }

    fn owned(&self) -> Vec<i32> {
        self.parts().keys().copied().collect()
    }
}

/// Consumer callbacks: rebalances go to [`Core`].
pub struct Ctx {
    core: Arc<Core>,
}

impl ClientContext for Ctx {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "consumer client error");
        if matches!(error, KafkaError::Global(rdkafka::types::RDKafkaErrorCode::Fatal)) {
            self.core.p.status.set_fatal(format!("consumer fatal error: {reason}"));
        }
    }
}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let ps: Vec<i32> = tpl
                    .elements_for_topic(&self.core.topic)
                    .iter()
                    .map(|e| e.partition())
                    .collect();
                tracing::info!(partitions = ?ps, "partitions revoked: draining");
                self.core.release(consumer, &ps, true);
            }
            Rebalance::Assign(_) => {}
            Rebalance::Error(e) => {
                self.core.p.metrics.rebalances.with_label_values(&["error"]).inc();
                tracing::warn!(error = %e, "rebalance error");
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            self.core.assign(consumer, tpl);
        }
    }

    fn commit_callback(&self, result: rdkafka::error::KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            tracing::debug!(error = %e, "offset commit failed (will be retried with later offsets)");
        }
    }

    fn main_queue_min_poll_interval(&self) -> rdkafka::util::Timeout {
        rdkafka::util::Timeout::After(Duration::from_millis(100))
    }
}

/// The consumer thread: wait for the registry, join the group, poll until stopped,
/// then drain and commit.
pub fn run(core: Arc<Core>, config: ClientConfig) -> WorkerExit {
    let span = tracing::info_span!("consumer", worker = %core.p.instance, topic = %core.topic);
    let _g = span.enter();
    let status = core.p.status.clone();
    let stop = core.p.stop.clone();
    // score nothing before the registry is caught up
    let mut waited = Instant::now();
    while !core.p.table.caught_up() {
        if stop.load(Ordering::Acquire) || status.is_fatal() {
            return finish(&core, None, 0);
        }
        if waited.elapsed() > Duration::from_secs(10) {
            tracing::info!("waiting for the contractor registry to catch up");
            waited = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let consumer: BaseConsumer<Ctx> = match config.create_with_context(Ctx { core: core.clone() }) {
        Ok(c) => c,
        Err(e) => {
            status.set_fatal(format!("cannot create the consumer: {e}"));
            return finish(&core, None, 0);
        }
    };
    if let Err(e) = consumer.subscribe(&[core.topic.as_str()]) {
        status.set_fatal(format!("cannot subscribe to {}: {e}", core.topic));
        return finish(&core, Some(consumer), 0);
    }
    tracing::info!(group_id = %core.p.shared.settings.worker.group_id, "subscribed");
    let mut batches: HashMap<i32, Batch> = HashMap::new();
    let mut owned: HashMap<i32, u64> = HashMap::new();
    let mut seen_epoch = u64::MAX;
    let mut last_lag = Instant::now();
    let mut last_err_log = Instant::now() - Duration::from_secs(60);
    let batch_max = core.p.batch_max;
    while !stop.load(Ordering::Acquire) && !status.is_fatal() {
        let mut n = 0;
        let mut timeout = Duration::from_millis(100);
        while n < batch_max {
            let polled = consumer.poll(timeout);
            let e = core.epoch.load(Ordering::Acquire);
            if e != seen_epoch {
                seen_epoch = e;
                owned = core.owned_ids();
            }
            match polled {
                None => break,
                Some(Err(e)) => {
                    core.p.metrics.emit(ConsumerError { error: &e.to_string() });
                    if last_err_log.elapsed() > Duration::from_secs(10) {
                        last_err_log = Instant::now();
                        tracing::warn!(error = %e, "consumer error");
                    }
                    break;
                }
                Some(Ok(m)) => {
                    let p = m.partition();
                    let Some(&id) = owned.get(&p) else {
                        continue;
                    };
                    let b = batches.entry(p).or_insert_with(|| Batch::new(id));
                    if b.handle_id != id {
                        *b = Batch::new(id);
                    }
                    let ts = match m.timestamp() {
                        Timestamp::CreateTime(t) | Timestamp::LogAppendTime(t) => t,
                        Timestamp::NotAvailable => -1,
                    };
                    b.push(m.offset(), ts, m.key(), m.payload());
                    n += 1;
                    timeout = Duration::ZERO;
                }
            }
        }
        if !batches.is_empty() {
            core.dispatch(&mut batches);
        }
        core.maintain(&consumer);
        if last_lag.elapsed() >= Duration::from_secs(1) {
            last_lag = Instant::now();
            core.report_lag(&consumer);
        }
    }
    finish(&core, Some(consumer), 0)
}

/// Shutdown: stop fetching, drain, commit, leave the group, flush the producer.
fn finish(core: &Core, consumer: Option<BaseConsumer<Ctx>>, _unused: usize) -> WorkerExit {
    let status = &core.p.status;
    status.stopping.store(true, Ordering::Release);
    let t0 = Instant::now();
    let mut unacked = 0;
    if let Some(consumer) = consumer {
        if let Ok(a) = consumer.assignment() {
            if a.count() > 0 {
                let _ = consumer.pause(&a);
            }
        }
        let owned = core.owned();
        if !owned.is_empty() {
            tracing::info!(partitions = ?owned, "shutting down: draining");
        }
        unacked = core.release(&consumer, &owned, false);
        consumer.unsubscribe();
        // leave the group (close), bounded
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(consumer);
            let _ = tx.send(());
        });
        if rx.recv_timeout(Duration::from_secs(10)).is_err() {
            tracing::warn!("consumer close did not finish in 10 s; continuing");
        }
    }
    let left = core
        .drain_timeout
        .saturating_sub(t0.elapsed())
        .max(Duration::from_millis(500));
    if let Err(e) = core.p.producer.flush(left) {
        tracing::warn!(error = %e, "producer flush incomplete at shutdown");
    }
    if let Some(f) = status.fatal() {
        return WorkerExit::Failed(f);
    }
    if unacked > 0 {
        return WorkerExit::Incomplete { unacked };
    }
    tracing::info!(elapsed_ms = t0.elapsed().as_millis() as u64, "worker stopped cleanly");
    WorkerExit::Clean
}
