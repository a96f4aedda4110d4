//! Operational metrics of the Kafka worker (Prometheus text format).
//!
//! Every metric lives in a [`Metrics`] value with its own `prometheus::Registry`, so
//! two workers in one process (tests) do not collide. Code never pokes counters
//! directly: it emits a typed [`InternalEvent`] (in the spirit of Vector's internal
//! events), and each event kind knows which counters it moves and what it logs.
//! Labels carry only bounded, non-identifying values (decision kind, signal name,
//! error code, partition number): never user ids or IP addresses.

use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::decision::DecisionKind;
use crate::model::Signal;

/// Buckets of the hot-path histogram: 1 µs … 50 ms.
pub const HOT_PATH_BUCKETS: &[f64] = &[
    1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 5e-2,
];
/// Buckets of the end-to-end histogram: 1 ms … 60 s.
pub const E2E_BUCKETS: &[f64] = &[
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
];
const RESTORE_BUCKETS: &[f64] = &[
    0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// All worker metrics.
pub struct Metrics {
    pub registry: Registry,
    pub events_consumed: IntCounter,
    pub events_scored: IntCounter,
    pub decisions: IntCounterVec,
    pub triggers: IntCounterVec,
    pub signals: IntCounterVec,
    pub dlq: IntCounterVec,
    pub changelog_writes: IntCounter,
    pub e2e_latency: Histogram,
    pub hot_path_latency: Histogram,
    pub consumer_lag: IntGaugeVec,
    pub restore_duration: Histogram,
    pub restored_records: IntCounter,
    pub restore_errors: IntCounter,
    pub state_reused: IntCounter,
    pub baselines: IntGauge,
    pub baselines_expired: IntCounter,
    pub in_flight: IntGauge,
    pub producer_errors: IntCounterVec,
    pub registry_updates: IntCounterVec,
    pub registry_contractors: IntGauge,
    pub assigned_partitions: IntGauge,
    pub rebalances: IntCounterVec,
    pub paused_partitions: IntGauge,
    pub ready: IntGauge,
    pub broker_up: IntGauge,
    pub consumer_errors: IntCounter,
    // cached children (label lookups are hashed: do them once)
    decision_children: [IntCounter; 3],
    trigger_children: [IntCounter; 3],
    signal_children: Vec<IntCounter>,
}

fn kind_index(k: DecisionKind) -> usize {
    match k {
        DecisionKind::Allow => 0,
        DecisionKind::StepUp => 1,
        DecisionKind::Deny => 2,
    }
}

const KINDS: [DecisionKind; 3] = [DecisionKind::Allow, DecisionKind::StepUp, DecisionKind::Deny];

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        macro_rules! reg {
            ($m:expr) => {{
                let m = $m;
                registry
                    .register(Box::new(m.clone()))
                    .expect("metric registers once");
                m
            }};
        }
        let counter = |name: &str, help: &str| IntCounter::new(name, help).expect("valid metric");
        let counter_vec =
            |name: &str, help: &str, l: &[&str]| IntCounterVec::new(Opts::new(name, help), l).expect("valid metric");
        let gauge = |name: &str, help: &str| IntGauge::new(name, help).expect("valid metric");
        let hist = |name: &str, help: &str, b: &[f64]| {
            Histogram::with_opts(HistogramOpts::new(name, help).buckets(b.to_vec())).expect("valid metric")
        };
        let decisions = reg!(counter_vec(
            "stepup_decisions_total",
            "Decisions made, by decision kind.",
            &["decision"]
        ));
        let triggers = reg!(counter_vec(
            "stepup_triggers_total",
            "Step-up triggers published (acknowledged or in flight), by decision kind.",
            &["decision"]
        ));
        let signals = reg!(counter_vec(
            "stepup_signals_total",
            "Risk signals raised, by signal name.",
            &["signal"]
        ));
        let decision_children = KINDS.map(|k| decisions.with_label_values(&[k.as_str()]));
        let trigger_children = KINDS.map(|k| triggers.with_label_values(&[k.as_str()]));
        let signal_children = Signal::ALL
            .iter()
            .map(|s| signals.with_label_values(&[s.as_str()]))
            .collect();
        Metrics {
            events_consumed: reg!(counter(
                "stepup_events_consumed_total",
                "Records read from the events topic."
            )),
            events_scored: reg!(counter("stepup_events_scored_total", "Events decoded and scored.")),
            decisions,
            triggers,
            signals,
            dlq: reg!(counter_vec(
                "stepup_dlq_records_total",
                "Records sent to the dead-letter topic, by error code.",
                &["code"]
            )),
            changelog_writes: reg!(counter(
                "stepup_changelog_records_total",
                "Baseline updates written to the changelog topic."
            )),
            e2e_latency: reg!(hist(
                "stepup_end_to_end_latency_seconds",
                "From the input record's timestamp to the acknowledgement of every output it caused.",
                E2E_BUCKETS
            )),
            hot_path_latency: reg!(hist(
                "stepup_hot_path_latency_seconds",
                "Time in the synchronous hot path (decode, enrich, score, decide, encode) per event.",
                HOT_PATH_BUCKETS
            )),
            consumer_lag: reg!(IntGaugeVec::new(
                Opts::new(
                    "stepup_consumer_lag",
                    "Records between the high watermark and the next offset to commit, by input partition."
                ),
                &["partition"]
            )
            .expect("valid metric")),
            restore_duration: reg!(hist(
                "stepup_restore_duration_seconds",
                "Time to restore a partition's baselines from the changelog.",
                RESTORE_BUCKETS
            )),
            restored_records: reg!(counter(
                "stepup_restored_records_total",
                "Changelog records applied while restoring."
            )),
            restore_errors: reg!(counter(
                "stepup_restore_errors_total",
                "Changelog records that could not be decoded while restoring (skipped)."
            )),
            state_reused: reg!(counter(
                "stepup_state_reused_total",
                "Partitions re-assigned to this worker whose state was kept (changelog unchanged): no restore."
            )),
            baselines: reg!(gauge(
                "stepup_baselines",
                "User baselines held in memory, all assigned partitions."
            )),
            baselines_expired: reg!(counter(
                "stepup_baselines_expired_total",
                "Baselines dropped as idle (failure-only users past the failed-login window, users unseen past the horizon); each gets a changelog tombstone."
            )),
            in_flight: reg!(gauge(
                "stepup_in_flight_records",
                "Input records dispatched whose outputs are not all acknowledged yet."
            )),
            producer_errors: reg!(counter_vec(
                "stepup_producer_errors_total",
                "Outputs the producer failed to deliver, by error code.",
                &["code"]
            )),
            registry_updates: reg!(counter_vec(
                "stepup_registry_updates_total",
                "Contractor registry records applied, by operation (upsert, delete, rejected).",
                &["op"]
            )),
            registry_contractors: reg!(gauge(
                "stepup_registry_contractors",
                "Contractors in the registry table."
            )),
            assigned_partitions: reg!(gauge(
                "stepup_assigned_partitions",
                "Input partitions assigned to this worker."
            )),
            rebalances: reg!(counter_vec(
                "stepup_rebalances_total",
                "Rebalance callbacks, by kind (assign, revoke, error).",
                &["kind"]
            )),
            paused_partitions: reg!(gauge(
                "stepup_paused_partitions",
                "Partitions whose fetching is paused because too many records are in flight."
            )),
            ready: reg!(gauge("stepup_ready", "1 when /readyz answers 200.")),
            broker_up: reg!(gauge(
                "stepup_broker_up",
                "1 when the last metadata request to the cluster succeeded."
            )),
            consumer_errors: reg!(counter(
                "stepup_consumer_errors_total",
                "Errors reported by the consumer (transport, broker down, ...)."
            )),
            decision_children,
            trigger_children,
            signal_children,
            registry,
        }
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::with_capacity(16 * 1024);
        let enc = TextEncoder::new();
        let _ = enc.encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }

    pub fn emit<E: InternalEvent>(&self, e: E) {
        e.emit(self)
    }
}

/// Something that happened inside the worker and moves metrics (and maybe logs).
pub trait InternalEvent {
    fn emit(self, m: &Metrics);
}

/// Records dispatched from the consumer to a partition worker.
pub struct EventsReceived {
    pub count: u64,
}
impl InternalEvent for EventsReceived {
    fn emit(self, m: &Metrics) {
        m.events_consumed.inc_by(self.count);
        m.in_flight.add(self.count as i64);
    }
}

/// Per-batch tallies kept locally by a partition worker and flushed once per batch
/// (no shared cache line touched per event).
#[derive(Default)]
pub struct BatchTally {
    pub scored: u64,
    pub decisions: [u64; 3],
    pub triggers: [u64; 3],
    pub signals: [u64; Signal::ALL.len()],
    pub changelog: u64,
    /// Baselines dropped as idle (see `Pipeline::expire_idle`).
    pub expired: u64,
}

impl BatchTally {
    #[inline]
    pub fn decision(&mut self, k: DecisionKind, signals: u16) {
        self.scored += 1;
        self.decisions[kind_index(k)] += 1;
        if k.is_trigger() {
            self.triggers[kind_index(k)] += 1;
        }
        let mut bits = signals;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            if i < self.signals.len() {
                self.signals[i] += 1;
            }
            bits &= bits - 1;
        }
    }
}

/// A batch of one partition went through the hot path.
pub struct BatchProcessed<'a> {
    pub tally: &'a BatchTally,
}
impl InternalEvent for BatchProcessed<'_> {
    fn emit(self, m: &Metrics) {
        let t = self.tally;
        if t.scored > 0 {
            m.events_scored.inc_by(t.scored);
        }
        for i in 0..3 {
            if t.decisions[i] > 0 {
                m.decision_children[i].inc_by(t.decisions[i]);
            }
            if t.triggers[i] > 0 {
                m.trigger_children[i].inc_by(t.triggers[i]);
            }
        }
        for (i, &n) in t.signals.iter().enumerate() {
            if n > 0 {
                m.signal_children[i].inc_by(n);
            }
        }
        if t.changelog > 0 {
            m.changelog_writes.inc_by(t.changelog);
        }
        if t.expired > 0 {
            m.baselines_expired.inc_by(t.expired);
        }
    }
}

/// A record went to the dead-letter topic.
pub struct DeadLettered<'a> {
    pub code: &'a str,
}
impl InternalEvent for DeadLettered<'_> {
    fn emit(self, m: &Metrics) {
        m.dlq.with_label_values(&[self.code]).inc();
    }
}

/// Input records whose outputs are all acknowledged (or that were dropped from a
/// revoked partition without being processed).
pub struct RecordsSettled {
    pub count: u64,
    /// Seconds from the record timestamp to the acknowledgement, when known.
    pub latency: Option<f64>,
}
impl InternalEvent for RecordsSettled {
    fn emit(self, m: &Metrics) {
        m.in_flight.sub(self.count as i64);
        if let Some(l) = self.latency {
            m.e2e_latency.observe(l.max(0.0));
        }
    }
}

/// The producer could not deliver an output.
pub struct ProducerFailed<'a> {
    pub code: &'a str,
    pub topic: &'a str,
    pub error: &'a str,
}
impl InternalEvent for ProducerFailed<'_> {
    fn emit(self, m: &Metrics) {
        m.producer_errors.with_label_values(&[self.code]).inc();
        tracing::error!(topic = self.topic, error = self.error, "output delivery failed");
    }
}

/// Partitions were assigned to this worker.
pub struct PartitionsAssigned<'a> {
    pub partitions: &'a [i32],
    pub total: usize,
}
impl InternalEvent for PartitionsAssigned<'_> {
    fn emit(self, m: &Metrics) {
        m.rebalances.with_label_values(&["assign"]).inc();
        m.assigned_partitions.set(self.total as i64);
        tracing::info!(partitions = ?self.partitions, total = self.total, "partitions assigned");
    }
}

/// One partition was revoked (or released at shutdown) and drained.
pub struct PartitionRevoked {
    pub partition: i32,
    pub drained: bool,
    pub unacked: usize,
    pub commit_offset: Option<i64>,
    pub elapsed: Duration,
}
impl InternalEvent for PartitionRevoked {
    fn emit(self, m: &Metrics) {
        let _ = m.consumer_lag.remove_label_values(&[&self.partition.to_string()]);
        if self.drained {
            tracing::info!(
                partition = self.partition,
                commit_offset = ?self.commit_offset,
                drain_ms = self.elapsed.as_millis() as u64,
                "partition released"
            );
        } else {
            tracing::warn!(
                partition = self.partition,
                unacked = self.unacked,
                commit_offset = ?self.commit_offset,
                "partition released before every output was acknowledged; \
                 records after the committed offset will be re-processed by the next owner"
            );
        }
    }
}

/// A rebalance revocation finished.
pub struct PartitionsRevoked {
    pub total: usize,
}
impl InternalEvent for PartitionsRevoked {
    fn emit(self, m: &Metrics) {
        m.rebalances.with_label_values(&["revoke"]).inc();
        m.assigned_partitions.set(self.total as i64);
    }
}

/// A partition's baselines were restored from the changelog.
pub struct RestoreCompleted {
    pub partition: i32,
    pub users: usize,
    pub records: u64,
    pub errors: u64,
    pub duration: Duration,
}
impl InternalEvent for RestoreCompleted {
    fn emit(self, m: &Metrics) {
        m.restore_duration.observe(self.duration.as_secs_f64());
        m.restored_records.inc_by(self.records);
        m.restore_errors.inc_by(self.errors);
        m.baselines.add(self.users as i64);
        tracing::info!(
            partition = self.partition,
            users = self.users,
            records = self.records,
            errors = self.errors,
            duration_ms = self.duration.as_secs_f64() * 1e3,
            "baselines restored from changelog"
        );
    }
}

/// A re-assigned partition kept its in-memory state (the changelog did not move).
pub struct StateReused {
    pub partition: i32,
    pub users: usize,
}
impl InternalEvent for StateReused {
    fn emit(self, m: &Metrics) {
        m.state_reused.inc();
        m.baselines.add(self.users as i64);
        tracing::info!(
            partition = self.partition,
            users = self.users,
            "partition state kept across the rebalance (changelog unchanged): no restore"
        );
    }
}

/// The number of baselines a partition holds changed.
pub struct BaselinesHeld {
    pub delta: i64,
}
impl InternalEvent for BaselinesHeld {
    fn emit(self, m: &Metrics) {
        if self.delta != 0 {
            m.baselines.add(self.delta);
        }
    }
}

/// A contractor registry record was applied (or rejected).
pub struct RegistryUpdated {
    pub op: &'static str,
    pub contractors: usize,
}
impl InternalEvent for RegistryUpdated {
    fn emit(self, m: &Metrics) {
        m.registry_updates.with_label_values(&[self.op]).inc();
        m.registry_contractors.set(self.contractors as i64);
    }
}

/// Consumer lag of one partition.
pub struct ConsumerLag {
    pub partition: i32,
    pub lag: i64,
}
impl InternalEvent for ConsumerLag {
    fn emit(self, m: &Metrics) {
        m.consumer_lag
            .with_label_values(&[&self.partition.to_string()])
            .set(self.lag.max(0));
    }
}

/// Readiness / broker reachability changed or was re-evaluated.
pub struct Health {
    pub ready: bool,
    pub broker_up: bool,
}
impl InternalEvent for Health {
    fn emit(self, m: &Metrics) {
        m.ready.set(self.ready as i64);
        m.broker_up.set(self.broker_up as i64);
    }
}

/// The consumer reported an error (not fatal by itself).
pub struct ConsumerError<'a> {
    pub error: &'a str,
}
impl InternalEvent for ConsumerError<'_> {
    fn emit(self, m: &Metrics) {
        m.consumer_errors.inc();
        tracing::debug!(error = self.error, "consumer error");
    }
}

/// A partition was paused (`true`) or resumed.
pub struct PartitionPaused {
    pub partition: i32,
    pub paused: bool,
}
impl InternalEvent for PartitionPaused {
    fn emit(self, m: &Metrics) {
        if self.paused {
            m.paused_partitions.inc();
        } else {
            m.paused_partitions.dec();
        }
        tracing::debug!(partition = self.partition, paused = self.paused, "fetch flow control");
    }
}

/// Histogram quantile estimate from cumulative buckets (linear interpolation),
/// for human summaries (the demo); Prometheus does the same server-side.
pub fn histogram_quantile(h: &Histogram, q: f64) -> Option<f64> {
    use prometheus::core::Collector;
    let mfs = h.collect();
    let m = mfs.first()?.get_metric().first()?;
    let hist = m.get_histogram();
    let total = hist.get_sample_count();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut prev_bound = 0.0;
    let mut prev_count = 0u64;
    for b in hist.get_bucket() {
        let c = b.cumulative_count();
        let ub = b.upper_bound();
        if c as f64 >= rank {
            let in_bucket = (c - prev_count) as f64;
            let frac = if in_bucket > 0.0 {
                (rank - prev_count as f64) / in_bucket
            } else {
                0.0
            };
            return Some(prev_bound + (ub - prev_bound) * frac);
        }
        prev_bound = ub;
        prev_count = c;
    }
    Some(prev_bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_counts_signals_by_name() {
        let m = Metrics::new();
        let mut t = BatchTally::default();
        t.decision(
            DecisionKind::StepUp,
            (1 << Signal::NewCountry as u16) | (1 << Signal::NewDevice as u16),
        );
        t.decision(DecisionKind::Allow, 0);
        m.emit(BatchProcessed { tally: &t });
        m.emit(DeadLettered { code: "json" });
        let text = m.render();
        assert!(
            text.contains("stepup_signals_total{signal=\"new_country\"} 1"),
            "{text}"
        );
        assert!(text.contains("stepup_decisions_total{decision=\"step_up\"} 1"));
        assert!(text.contains("stepup_triggers_total{decision=\"step_up\"} 1"));
        assert!(text.contains("stepup_dlq_records_total{code=\"json\"} 1"));
        assert!(text.contains("stepup_events_scored_total 2"));
        for v in [1e-6, 3e-6, 4e-6] {
            m.hot_path_latency.observe(v);
        }
        let p50 = histogram_quantile(&m.hot_path_latency, 0.5).unwrap();
        assert!(p50 > 1e-6 && p50 <= 5e-6, "{p50}");
    }
}
