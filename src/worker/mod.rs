//! The Kafka worker behind `stepup run` (and `stepup demo`): the I/O edge around
//! the synchronous hot path ([`crate::pipeline::Pipeline::process`]).
//!
//! ```text
//!  auth-events ──► consumer thread (one group member, main queue always polled)
//!                    │  per-partition batches (one buffer each)
//!                    ▼
//!                  partition threads (one Pipeline each: baselines, caches, registry copy)
//!                    │  restore from changelog p first, then score in offset order
//!                    ▼
//!                  idempotent producer ──► stepup-triggers / -decisions / -dlq / -baselines(p)
//!                    │  delivery reports release per-record acknowledgements
//!                    ▼
//!                  Tracker: contiguous settled prefix ──► store_offsets ──► (auto) commit
//!  contractors ──► table thread (all partitions, from the beginning) ──► every Pipeline
//! ```
//!
//! Delivery guarantee: at-least-once. An input offset is stored for commit only
//! after every output it caused is acknowledged by the broker (`acks=all`,
//! idempotent producer). Deliveries are retried without a deadline by default
//! (`message.timeout.ms = 0`), so a broker outage stalls and then resumes; if a
//! delivery nevertheless fails, its partition's offsets never move past it and the
//! worker stops with an error (exit status 1) so that a restart re-processes from
//! the last committed offset.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::producer::Producer as _;
use rdkafka::ClientConfig;

use crate::config::Settings;
use crate::metrics::{Health, Metrics};
use crate::pipeline::Shared;

pub mod consumer;
pub mod mock;
pub mod offsets;
pub mod partition;
pub mod registry_table;
pub mod restore;
pub mod sinks;
pub mod topics;

use registry_table::{Table, TableTask};
use sinks::{SinkConfig, SinkContext, Sinks};

/// Errors that prevent the worker from starting.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("kafka configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Topics(#[from] topics::TopicError),
    #[error("cannot read the trigger signing key {path}: {source}")]
    SigningKey { path: String, source: std::io::Error },
    #[error("the trigger signing key file {0} is empty")]
    EmptySigningKey(String),
}

/// How the worker ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerExit {
    /// Stopped on request; every output acknowledged and its offset committed.
    Clean,
    /// Stopped on request, but some outputs were not acknowledged within the drain
    /// timeout: their input offsets were not committed and will be re-processed.
    Incomplete { unacked: usize },
    /// A fatal error (delivery failed, producer fenced, ...).
    Failed(String),
}

/// Health shared by the threads of one worker.
#[derive(Default)]
pub struct Status {
    /// A first partition assignment (possibly empty) was received.
    pub joined: AtomicBool,
    /// The last metadata request succeeded.
    pub broker_up: AtomicBool,
    /// Shutdown started.
    pub stopping: AtomicBool,
    restoring: AtomicUsize,
    fatal_flag: AtomicBool,
    fatal: Mutex<Option<String>>,
}

impl Status {
    pub fn set_fatal(&self, msg: String) {
        let mut g = self.fatal.lock().unwrap_or_else(|e| e.into_inner());
        if g.is_none() {
            tracing::error!(error = %msg, "fatal worker error; stopping");
            *g = Some(msg);
        }
        self.fatal_flag.store(true, Ordering::Release);
    }
    pub fn fatal(&self) -> Option<String> {
        if !self.fatal_flag.load(Ordering::Acquire) {
            return None;
        }
        self.fatal.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    pub fn is_fatal(&self) -> bool {
        self.fatal_flag.load(Ordering::Acquire)
    }
    pub fn restoring_started(&self) {
        self.restoring.fetch_add(1, Ordering::AcqRel);
    }
    pub fn restoring_finished(&self) {
        self.restoring.fetch_sub(1, Ordering::AcqRel);
    }
    pub fn restoring(&self) -> usize {
        self.restoring.load(Ordering::Acquire)
    }
}

/// Readiness with the reasons it is not ready.
#[derive(Debug, Clone)]
pub struct Readiness {
    pub ready: bool,
    pub reasons: Vec<&'static str>,
}

/// Options of one worker instance beyond [`Settings`].
#[derive(Clone)]
pub struct WorkerOptions {
    /// How long start waits for the cluster to answer metadata requests.
    pub connect_timeout: Duration,
    /// Records per dispatched batch, at most.
    pub batch_max: usize,
    /// Extra `client.id` suffix (tests run two workers in one process).
    pub instance: String,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            connect_timeout: Duration::from_secs(60),
            batch_max: 500,
            instance: String::new(),
        }
    }
}

/// librdkafka configurations of the worker's clients, built from `[kafka]`.
#[derive(Clone)]
pub struct KafkaConfigs {
    pub user: BTreeMap<String, String>,
    pub group_id: String,
    pub instance: String,
}

/// Defaults we set before the user's `[kafka]` properties (the user may override).
const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    // never drop an output because the cluster is down for a while: retry until
    // delivered (0 = infinite); a shutdown bounds the wait instead
    ("message.timeout.ms", "0"),
    ("linger.ms", "5"),
    // same key → partition mapping as the Java client, for downstream consumers
    ("partitioner", "murmur2_random"),
];
const CONSUMER_DEFAULTS: &[(&str, &str)] = &[("auto.offset.reset", "earliest"), ("auto.commit.interval.ms", "1000")];

/// librdkafka properties that only a consumer understands (prefixes end in `.`).
/// `[kafka]` is shared by every client; giving these to a producer only makes
/// librdkafka print a CONFWARN, so they are routed to consumers only.
const CONSUMER_ONLY: &[&str] = &[
    "group.",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
    "auto.commit.",
    "enable.auto.",
    "auto.offset.reset",
    "queued.",
    "fetch.",
    "max.partition.fetch.bytes",
    "isolation.level",
    "check.crcs",
    "partition.assignment.strategy",
    "enable.partition.eof",
    "coordinator.query.interval.ms",
    "offset.store.",
    "consume.callback.max.messages",
];
/// ... and those only a producer understands.
const PRODUCER_ONLY: &[&str] = &[
    "linger.ms",
    "queue.buffering.",
    "batch.",
    "acks",
    "request.required.acks",
    "compression.",
    "message.timeout.ms",
    "delivery.timeout.ms",
    "enable.idempotence",
    "enable.gapless.guarantee",
    "partitioner",
    "transactional.id",
    "transaction.timeout.ms",
    "message.send.max.retries",
    "retries",
    "sticky.partitioning.linger.ms",
    "request.timeout.ms",
    "queuing.strategy",
    "produce.offset.report",
    "delivery.report.only.error",
];

fn matches_any(key: &str, list: &[&str]) -> bool {
    list.iter().any(|p| {
        if p.ends_with('.') {
            key.starts_with(p)
        } else {
            key == *p
        }
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Producer,
    Consumer,
}

impl KafkaConfigs {
    pub fn new(settings: &Settings, instance: &str) -> Self {
        KafkaConfigs {
            user: settings.kafka.clone(),
            group_id: settings.worker.group_id.clone(),
            instance: instance.to_string(),
        }
    }

    fn base(&self, kind: Kind, defaults: &[(&str, &str)], role: &str) -> ClientConfig {
        let mut c = ClientConfig::new();
        let id = if self.instance.is_empty() {
            format!("stepup-{role}")
        } else {
            format!("stepup-{}-{role}", self.instance)
        };
        c.set("client.id", id);
        for (k, v) in defaults {
            c.set(*k, *v);
        }
        for (k, v) in &self.user {
            let foreign = match kind {
                Kind::Producer => matches_any(k, CONSUMER_ONLY),
                Kind::Consumer => matches_any(k, PRODUCER_ONLY),
            };
            if !foreign {
                c.set(k, v);
            }
        }
        c
    }

    fn force(c: &mut ClientConfig, key: &str, value: &str) {
        if let Some(old) = c.get(key) {
            if old != value {
                tracing::warn!(
                    property = key,
                    configured = old,
                    used = value,
                    "kafka property overridden by stepup"
                );
            }
        }
        c.set(key, value);
    }

    /// The idempotent producer of every output.
    pub fn producer(&self) -> ClientConfig {
        let mut c = self.base(Kind::Producer, PRODUCER_DEFAULTS, "producer");
        Self::force(&mut c, "enable.idempotence", "true");
        Self::force(&mut c, "acks", "all");
        c
    }

    /// The group consumer of the events topic.
    pub fn consumer(&self) -> ClientConfig {
        let mut c = self.base(Kind::Consumer, CONSUMER_DEFAULTS, "consumer");
        Self::force(&mut c, "group.id", &self.group_id);
        Self::force(&mut c, "enable.auto.offset.store", "false");
        Self::force(&mut c, "enable.auto.commit", "true");
        Self::force(&mut c, "enable.partition.eof", "false");
        c
    }

    /// Non-group readers (changelog restore, registry table): assign only.
    pub fn reader(&self, role: &str) -> ClientConfig {
        let mut c = self.base(Kind::Consumer, &[], role);
        // a group.id only routes the consumer queue (librdkafka's assign() needs
        // one); these readers never join the group or commit
        c.set("group.id", format!("{}-{role}", self.group_id));
        c.set("enable.auto.commit", "false");
        c.set("enable.auto.offset.store", "false");
        c.set("enable.partition.eof", "true");
        c.set("auto.offset.reset", "earliest");
        c
    }

    pub fn admin(&self) -> ClientConfig {
        // the admin client is a producer-type handle
        self.base(Kind::Producer, &[], "admin")
    }
}

/// Client context of the non-group readers: end-of-partition events are expected
/// (they mark "caught up"), so they are not logged as errors.
pub struct ReaderContext;

impl rdkafka::ClientContext for ReaderContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        if matches!(error, rdkafka::error::KafkaError::PartitionEOF(_))
            || matches!(
                error.rdkafka_error_code(),
                Some(rdkafka::types::RDKafkaErrorCode::PartitionEOF)
            )
        {
            return;
        }
        tracing::warn!(%error, reason, "reader client error");
    }
}

impl rdkafka::consumer::ConsumerContext for ReaderContext {}

/// A running worker.
pub struct WorkerHandle {
    stop: Arc<AtomicBool>,
    status: Arc<Status>,
    metrics: Arc<Metrics>,
    table: Arc<Table>,
    thread: Option<JoinHandle<WorkerExit>>,
    aux: Vec<JoinHandle<()>>,
}

/// Something that can ask a worker to stop (signal handlers, tests).
#[derive(Clone)]
pub struct Stopper(Arc<AtomicBool>);

impl Stopper {
    pub fn stop(&self) {
        self.0.store(true, Ordering::Release);
    }
}

impl WorkerHandle {
    pub fn stopper(&self) -> Stopper {
        Stopper(self.stop.clone())
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn status(&self) -> &Arc<Status> {
        &self.status
    }

    pub fn readiness(&self) -> Readiness {
        readiness(&self.status, &self.table)
    }

    /// A `(status, body)` responder for the HTTP endpoints.
    pub fn probe(&self) -> Probe {
        Probe {
            status: self.status.clone(),
            table: self.table.clone(),
            metrics: self.metrics.clone(),
        }
    }

    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Ask to stop and wait for the drain.
    pub fn shutdown(mut self) -> WorkerExit {
        self.stop.store(true, Ordering::Release);
        self.join_inner()
    }

    /// Wait for the worker to end (after a stop request or a fatal error).
    pub fn join(mut self) -> WorkerExit {
        self.join_inner()
    }

    fn join_inner(&mut self) -> WorkerExit {
        let exit = match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| WorkerExit::Failed("worker thread panicked".into())),
            None => WorkerExit::Clean,
        };
        self.stop.store(true, Ordering::Release);
        for t in self.aux.drain(..) {
            let _ = t.join();
        }
        exit
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop.store(true, Ordering::Release);
            let _ = self.join_inner();
        }
    }
}

/// The HTTP view of a worker: `/metrics`, `/healthz`, `/readyz`.
#[derive(Clone)]
pub struct Probe {
    status: Arc<Status>,
    table: Arc<Table>,
    metrics: Arc<Metrics>,
}

impl Probe {
    pub fn respond(&self, path: &str) -> (u16, &'static str, String) {
        match path {
            "/metrics" => (200, "text/plain; version=0.0.4", self.metrics.render()),
            "/healthz" => (200, "text/plain", "ok\n".into()),
            "/readyz" => {
                let r = readiness(&self.status, &self.table);
                if r.ready {
                    (200, "text/plain", "ready\n".into())
                } else {
                    (503, "text/plain", format!("not ready: {}\n", r.reasons.join(", ")))
                }
            }
            _ => (404, "text/plain", "not found\n".into()),
        }
    }
}

fn readiness(status: &Status, table: &Table) -> Readiness {
    let mut reasons = Vec::new();
    if status.is_fatal() {
        reasons.push("fatal error");
    }
    if status.stopping.load(Ordering::Acquire) {
        reasons.push("shutting down");
    }
    if !status.broker_up.load(Ordering::Acquire) {
        reasons.push("kafka unreachable");
    }
    if !table.caught_up() {
        reasons.push("contractor registry not caught up");
    }
    if !status.joined.load(Ordering::Acquire) {
        reasons.push("no partition assignment yet");
    }
    if status.restoring() > 0 {
        reasons.push("restoring baselines");
    }
    Readiness {
        ready: reasons.is_empty(),
        reasons,
    }
}

/// Read the signing key (never logged).
fn signing_key(settings: &Settings) -> Result<Option<Arc<Vec<u8>>>, WorkerError> {
    let Some(path) = &settings.worker.signing_key_file else {
        return Ok(None);
    };
    let mut k = std::fs::read(path).map_err(|source| WorkerError::SigningKey {
        path: path.display().to_string(),
        source,
    })?;
    // A text key (`openssl rand -hex 32 > key`) loses its line ending; a binary key
    // (`head -c 32 /dev/urandom > key`) is used byte for byte, whatever it ends in.
    let text = k
        .iter()
        .all(|b| b.is_ascii_graphic() || matches!(b, b' ' | b'\t' | b'\r' | b'\n'));
    if text {
        while k.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            k.pop();
        }
    }
    if k.is_empty() {
        return Err(WorkerError::EmptySigningKey(path.display().to_string()));
    }
    Ok(Some(Arc::new(k)))
}

/// Start a worker: check/create topics, start the registry table, the producer,
/// the health checker and the consumer. Returns once the topics are in place; the
/// consumer joins the group after the registry caught up.
pub fn start(shared: Shared, opts: WorkerOptions) -> Result<WorkerHandle, WorkerError> {
    let settings = shared.settings.clone();
    let confs = KafkaConfigs::new(&settings, &opts.instance);
    let key = signing_key(&settings)?;
    tracing::info!(
        kafka = ?settings.kafka_redacted(),
        group_id = %settings.worker.group_id,
        events = %settings.topics.events,
        contractors = %settings.topics.contractors,
        triggers = %settings.topics.triggers,
        decisions = %if settings.worker.publish_decisions { settings.topics.decisions.as_str() } else { "(disabled)" },
        dlq = %settings.topics.dlq,
        changelog = %settings.topics.changelog,
        create_topics = settings.worker.create_topics,
        partitions = settings.worker.partitions,
        max_in_flight = settings.worker.max_in_flight,
        drain_timeout_ms = settings.worker.drain_timeout_ms,
        signed_triggers = key.is_some(),
        "worker configuration"
    );
    // bad properties fail here, with librdkafka's message
    let check = |c: &ClientConfig| {
        c.create_native_config()
            .map(|_| ())
            .map_err(|e| WorkerError::Config(e.to_string()))
    };
    check(&confs.producer())?;
    check(&confs.consumer())?;
    let partitions = topics::ensure(&settings, &confs.admin(), opts.connect_timeout)?;
    tracing::info!(topic = %settings.topics.events, partitions, "topics ready");

    let metrics = Arc::new(Metrics::new());
    let status = Arc::new(Status::default());
    status.broker_up.store(true, Ordering::Release);
    let stop = Arc::new(AtomicBool::new(false));
    let producer: Arc<sinks::Producer> = Arc::new(
        confs
            .producer()
            .create_with_context(SinkContext {
                metrics: metrics.clone(),
                status: status.clone(),
                changelog_topic: settings.topics.changelog.clone(),
            })
            .map_err(|e| WorkerError::Config(e.to_string()))?,
    );
    let sink_cfg = SinkConfig {
        triggers: settings.topics.triggers.clone(),
        decisions: settings
            .worker
            .publish_decisions
            .then(|| settings.topics.decisions.clone()),
        dlq: settings.topics.dlq.clone(),
        changelog: settings.topics.changelog.clone(),
        signing_key: key,
        cloudevents: settings.worker.cloudevents_headers,
    };
    let table = Arc::new(Table::default());
    let mut aux = Vec::new();
    {
        let task = TableTask {
            table: table.clone(),
            config: confs.reader("registry"),
            topic: settings.topics.contractors.clone(),
            sinks: Sinks::new(producer.clone(), sink_cfg.clone()),
            metrics: metrics.clone(),
            status: status.clone(),
            stop: stop.clone(),
        };
        aux.push(
            std::thread::Builder::new()
                .name("stepup-registry".into())
                .spawn(move || task.run())
                .expect("spawn registry thread"),
        );
    }
    {
        let producer = producer.clone();
        let status = status.clone();
        let table = table.clone();
        let metrics = metrics.clone();
        let stop = stop.clone();
        let topic = settings.topics.events.clone();
        aux.push(
            std::thread::Builder::new()
                .name("stepup-health".into())
                .spawn(move || health_loop(&producer, &topic, &status, &table, &metrics, &stop))
                .expect("spawn health thread"),
        );
    }
    let core = Arc::new(consumer::Core::new(consumer::CoreParts {
        shared,
        producer,
        sink_cfg,
        reader_config: confs.reader("restore"),
        metrics: metrics.clone(),
        status: status.clone(),
        table: table.clone(),
        stop: stop.clone(),
        batch_max: opts.batch_max.max(1),
        instance: if opts.instance.is_empty() {
            "main".into()
        } else {
            opts.instance.clone()
        },
    }));
    let consumer_config = confs.consumer();
    let thread = std::thread::Builder::new()
        .name("stepup-consumer".into())
        .spawn(move || consumer::run(core, consumer_config))
        .expect("spawn consumer thread");
    Ok(WorkerHandle {
        stop,
        status,
        metrics,
        table,
        thread: Some(thread),
        aux,
    })
}

fn health_loop(
    producer: &sinks::Producer,
    topic: &str,
    status: &Status,
    table: &Table,
    metrics: &Metrics,
    stop: &AtomicBool,
) {
    let mut last_up = true;
    let mut next = Instant::now();
    while !stop.load(Ordering::Acquire) {
        if Instant::now() >= next {
            let up = producer
                .client()
                .fetch_metadata(Some(topic), Duration::from_secs(2))
                .is_ok();
            status.broker_up.store(up, Ordering::Release);
            if up != last_up {
                if up {
                    tracing::info!("kafka reachable again");
                } else {
                    tracing::warn!("kafka unreachable; outputs are retried, offsets wait");
                }
                last_up = up;
            }
            next = Instant::now() + Duration::from_secs(1);
        }
        metrics.emit(Health {
            ready: readiness(status, table).ready,
            broker_up: status.broker_up.load(Ordering::Acquire),
        });
        std::thread::sleep(Duration::from_millis(100));
    }
    metrics.emit(Health {
        ready: false,
        broker_up: status.broker_up.load(Ordering::Acquire),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_go_to_the_clients_that_understand_them_and_safety_is_forced() {
        let mut s = Settings::default_embedded().unwrap();
        for (k, v) in [
            ("bootstrap.servers", "b:9092"),
            ("session.timeout.ms", "6000"),
            ("linger.ms", "20"),
            ("acks", "1"),
            ("enable.auto.offset.store", "true"),
            ("sasl.password", "pw"),
        ] {
            s.kafka.insert(k.into(), v.into());
        }
        let c = KafkaConfigs::new(&s, "");
        let p = c.producer();
        assert_eq!(p.get("acks"), Some("all"));
        assert_eq!(p.get("enable.idempotence"), Some("true"));
        assert_eq!(p.get("linger.ms"), Some("20"));
        assert_eq!(p.get("message.timeout.ms"), Some("0"));
        assert_eq!(p.get("session.timeout.ms"), None);
        assert_eq!(p.get("sasl.password"), Some("pw"));
        let k = c.consumer();
        assert_eq!(k.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(k.get("group.id"), Some("stepup"));
        assert_eq!(k.get("session.timeout.ms"), Some("6000"));
        assert_eq!(k.get("linger.ms"), None);
        assert_eq!(k.get("auto.offset.reset"), Some("earliest"));
        let r = c.reader("restore");
        assert_eq!(r.get("enable.auto.commit"), Some("false"));
        assert_eq!(r.get("bootstrap.servers"), Some("b:9092"));
    }

    #[test]
    fn signing_keys_text_loses_its_line_ending_binary_is_kept_whole() {
        let dir = tempfile::tempdir().unwrap();
        let key = |bytes: &[u8]| {
            let f = dir.path().join("key");
            std::fs::write(&f, bytes).unwrap();
            let mut s = Settings::default_embedded().unwrap();
            s.worker.signing_key_file = Some(f);
            signing_key(&s).map(|k| k.map(|k| k.to_vec()))
        };
        assert_eq!(key(b"0123abcd\n").unwrap().unwrap(), b"0123abcd");
        assert_eq!(key(b"s3cret\r\n").unwrap().unwrap(), b"s3cret");
        // random bytes that happen to end in a newline byte stay 32 bytes
        let mut raw: Vec<u8> = (0u8..31).map(|i| i.wrapping_mul(97).wrapping_add(200)).collect();
        raw.push(b'\n');
        assert_eq!(key(&raw).unwrap().unwrap(), raw);
        assert!(matches!(key(b"\n"), Err(WorkerError::EmptySigningKey(_))));
        assert!(matches!(key(b"").unwrap_err(), WorkerError::EmptySigningKey(_)));
    }
}
