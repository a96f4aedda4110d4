//! Shared helpers of the end-to-end suite (`tests/e2e_*.rs`) and of `benches/e2e.rs`.
//!
//! Everything talks to a real broker through rdkafka (Debian's kcat is too old
//! for tansu): admin (create topics), an idempotent producer, readers that tail
//! a topic from the beginning in a thread, committed offsets and watermarks. The
//! worker is the real binary (`CARGO_BIN_EXE_stepup`), spawned and killed as a
//! process. The broker comes from `STEPUP_TEST_BOOTSTRAP` (set by
//! `scripts/test.sh`); when it is the broker that `scripts/kafka-broker.sh`
//! manages, [`broker_control`] can stop and start it.
//!
//! Every test uses its own topics and group ([`Topics::new`]), so tests and test
//! binaries can share one broker.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};

pub const BOOTSTRAP_ENV: &str = "STEPUP_TEST_BOOTSTRAP";
pub const BROKER_SCRIPT_ENV: &str = "STEPUP_TEST_BROKER_SCRIPT";

/// `STEPUP_TEST_BOOTSTRAP`, or a failure that says how to get a broker.
pub fn bootstrap() -> String {
    match std::env::var(BOOTSTRAP_ENV) {
        Ok(s) if !s.trim().is_empty() => s.trim().to_string(),
        _ => panic!(
            "\n\n{BOOTSTRAP_ENV} is not set: the end-to-end tests need a Kafka-compatible broker.\n\
             Run `scripts/test.sh` (installs and starts a local tansu broker, exports {BOOTSTRAP_ENV}, \
             runs the whole suite),\n\
             or `scripts/kafka-broker.sh start && export {BOOTSTRAP_ENV}=$(scripts/kafka-broker.sh bootstrap)`,\n\
             or set {BOOTSTRAP_ENV}=HOST:PORT of any Apache Kafka / Redpanda broker.\n\n"
        ),
    }
}

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `stepup` binary of this build, copied once per test process: every worker
/// and every offline `stepup score` of a test then run the same code even if a
/// concurrent `cargo build` replaces target/debug/stepup meanwhile.
pub fn stepup_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let src = PathBuf::from(env!("CARGO_BIN_EXE_stepup"));
        let dst = run_dir().join("stepup");
        std::fs::copy(&src, &dst).unwrap_or_else(|e| panic!("copying {}: {e}", src.display()));
        dst
    })
    .clone()
}

/// A scratch directory for this process's logs, configs and files.
pub fn run_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e");
        // Runs keep their logs for a post-mortem; prune those older than 6 hours.
        if let Ok(rd) = std::fs::read_dir(&root) {
            for e in rd.flatten() {
                let old = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > Duration::from_secs(6 * 3600));
                if old {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let d = root.join(format!("run-{}-{}", now_ms(), std::process::id()));
        std::fs::create_dir_all(&d).expect("creating the e2e run dir");
        d
    })
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// A name no other test (or earlier run against the same broker) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        now_ms() % 100_000_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

// ---------------------------------------------------------------------------
// Broker control (only for the broker scripts/kafka-broker.sh manages)

pub struct BrokerControl {
    script: PathBuf,
}

/// Broker control when `STEPUP_TEST_BOOTSTRAP` is the script-managed tansu, else why not.
pub fn broker_control() -> Result<BrokerControl, String> {
    let bs = bootstrap();
    let script = std::env::var_os(BROKER_SCRIPT_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join("scripts/kafka-broker.sh"));
    let out = Command::new("bash")
        .arg(&script)
        .arg("status")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{BOOTSTRAP_ENV}={bs} is not a broker that {} manages (status: {})",
            script.display(),
            String::from_utf8_lossy(&out.stdout).trim()
        ));
    }
    let managed = Command::new("bash")
        .arg(&script)
        .arg("bootstrap")
        .output()
        .map_err(|e| e.to_string())?;
    let managed = String::from_utf8_lossy(&managed.stdout).trim().to_string();
    if managed != bs {
        return Err(format!(
            "{BOOTSTRAP_ENV}={bs} is an external broker (the script manages {managed}); \
             broker restarts need the script-managed tansu: run scripts/test.sh without {BOOTSTRAP_ENV}"
        ));
    }
    Ok(BrokerControl { script })
}

impl BrokerControl {
    fn run(&self, what: &str) {
        let st = Command::new("bash")
            .arg(&self.script)
            .arg(what)
            .status()
            .unwrap_or_else(|e| panic!("running {} {what}: {e}", self.script.display()));
        assert!(st.success(), "{} {what} failed: {st}", self.script.display());
    }
    pub fn stop(&self) {
        self.run("stop")
    }
    pub fn start(&self) {
        self.run("start")
    }
    pub fn kill9(&self) {
        self.run("kill")
    }
}

// ---------------------------------------------------------------------------
// Topics

pub fn client_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("client.id", "stepup-e2e")
        // Keep test clients quiet about the broker being away (broker-restart test).
        .set("log_level", "3");
    c
}

/// One test's topic names and group id, all unique.
#[derive(Clone, Debug)]
pub struct Topics {
    pub events: String,
    pub contractors: String,
    pub triggers: String,
    pub decisions: String,
    pub dlq: String,
    pub changelog: String,
    pub group: String,
    pub partitions: i32,
}

impl Topics {
    pub fn new(test: &str, partitions: i32) -> Topics {
        let id = unique(test);
        Topics {
            events: format!("{id}.auth-events"),
            contractors: format!("{id}.contractors"),
            triggers: format!("{id}.stepup-triggers"),
            decisions: format!("{id}.stepup-decisions"),
            dlq: format!("{id}.stepup-dlq"),
            changelog: format!("{id}.stepup-baselines"),
            group: format!("{id}.group"),
            partitions,
        }
    }

    /// Create every topic of the worker explicitly (tansu never auto-creates):
    /// the input, the three outputs, the compacted registry and changelog (the
    /// changelog co-partitioned with the input).
    pub fn create(&self, bootstrap: &str) {
        let p = self.partitions;
        create_topics(
            bootstrap,
            &[
                (self.events.as_str(), p, false),
                (self.contractors.as_str(), 1, true),
                (self.triggers.as_str(), p, false),
                (self.decisions.as_str(), p, false),
                (self.dlq.as_str(), 1, false),
                (self.changelog.as_str(), p, true),
            ],
        );
    }

    pub fn worker_args(&self) -> Vec<String> {
        [
            ("--topic-events", &self.events),
            ("--topic-contractors", &self.contractors),
            ("--topic-triggers", &self.triggers),
            ("--topic-decisions", &self.decisions),
            ("--topic-dlq", &self.dlq),
            ("--topic-changelog", &self.changelog),
            ("--group-id", &self.group),
        ]
        .iter()
        .flat_map(|(f, v)| [f.to_string(), v.to_string()])
        .chain(["--partitions".to_string(), self.partitions.to_string()])
        .collect()
    }
}

/// Create topics (name, partitions, compacted); existing ones are fine. Waits
/// until the metadata shows every partition with a leader.
pub fn create_topics(bootstrap: &str, specs: &[(&str, i32, bool)]) {
    let admin: AdminClient<DefaultClientContext> = client_config(bootstrap).create().expect("admin client");
    let topics: Vec<NewTopic> = specs
        .iter()
        .map(|(name, parts, compacted)| {
            let t = NewTopic::new(name, *parts, TopicReplication::Fixed(1));
            if *compacted {
                t.set("cleanup.policy", "compact")
            } else {
                t
            }
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let res = futures::executor::block_on(admin.create_topics(&topics, &opts))
        .unwrap_or_else(|e| panic!("CreateTopics against {bootstrap}: {e}"));
    for r in res {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, e)) => panic!("creating topic {name}: {e:?}"),
        }
    }
    for (name, parts, _) in specs {
        wait_topic(bootstrap, name, *parts, Duration::from_secs(30));
    }
}

/// Wait until `topic` exists with `partitions` partitions, each with a leader.
pub fn wait_topic(bootstrap: &str, topic: &str, partitions: i32, timeout: Duration) {
    let c: BaseConsumer = client_config(bootstrap).create().expect("consumer");
    let mut last = String::new();
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match c.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            Ok(md) => {
                if let Some(t) = md.topics().iter().find(|t| t.name() == topic) {
                    if t.error().is_none()
                        && t.partitions().len() == partitions as usize
                        && t.partitions().iter().all(|p| p.leader() >= 0)
                    {
                        return;
                    }
                    last = format!("error {:?}, {} partitions", t.error(), t.partitions().len());
                }
            }
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("topic {topic} not ready with {partitions} partitions within {timeout:?}: {last}");
}

pub fn partition_count(bootstrap: &str, topic: &str, timeout: Duration) -> i32 {
    let c: BaseConsumer = client_config(bootstrap).create().expect("consumer");
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(md) = c.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            if let Some(t) = md.topics().iter().find(|t| t.name() == topic) {
                if t.error().is_none() && !t.partitions().is_empty() {
                    return t.partitions().len() as i32;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "topic {topic} does not exist after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// High watermark (next offset) of every partition of `topic`.
pub fn high_watermarks(bootstrap: &str, topic: &str) -> Vec<i64> {
    let c: BaseConsumer = client_config(bootstrap).create().expect("consumer");
    let n = partition_count(bootstrap, topic, Duration::from_secs(30));
    (0..n)
        .map(|p| {
            c.fetch_watermarks(topic, p, Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("watermarks of {topic}/{p}: {e}"))
                .1
        })
        .collect()
}

/// The offsets `group` has committed on `topic` (None: nothing committed).
/// Uses OffsetFetch only; does not join the group.
pub fn committed_offsets(bootstrap: &str, group: &str, topic: &str) -> Vec<Option<i64>> {
    let n = partition_count(bootstrap, topic, Duration::from_secs(30));
    let c: BaseConsumer = client_config(bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..n {
        tpl.add_partition(topic, p);
    }
    let got = c
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("OffsetFetch {group} {topic}: {e}"));
    (0..n)
        .map(|p| match got.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => Some(o),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Producing

pub fn producer(bootstrap: &str) -> FutureProducer {
    client_config(bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("message.timeout.ms", "180000")
        .create()
        .expect("producer")
}

/// A producer without idempotence (acks=all, one request in flight, so retries
/// keep the order). For traffic across a tansu restart: tansu 0.6.0's storage
/// panics ("more or less than one row" in its idempotent-producer check) when an
/// idempotent producer carries on across a broker restart.
pub fn producer_plain(bootstrap: &str) -> FutureProducer {
    client_config(bootstrap)
        .set("enable.idempotence", "false")
        .set("acks", "all")
        .set("max.in.flight.requests.per.connection", "1")
        .set("linger.ms", "2")
        .set("message.timeout.ms", "180000")
        .create()
        .expect("producer")
}

/// Queue one record (waits while the local queue is full).
pub fn send(
    p: &FutureProducer,
    topic: &str,
    partition: Option<i32>,
    key: Option<&[u8]>,
    value: &[u8],
    headers: &[(&str, &[u8])],
) -> DeliveryFuture {
    loop {
        let mut r = FutureRecord::<[u8], [u8]>::to(topic).payload(value);
        if let Some(k) = key {
            r = r.key(k);
        }
        if let Some(part) = partition {
            r = r.partition(part);
        }
        if !headers.is_empty() {
            let mut h = OwnedHeaders::new();
            for (k, v) in headers {
                h = h.insert(Header {
                    key: k,
                    value: Some(*v),
                });
            }
            r = r.headers(h);
        }
        match p.send_result(r) {
            Ok(f) => return f,
            Err((e, _)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                p.poll(Duration::from_millis(10));
            }
            Err((e, _)) => panic!("producing to {topic}: {e}"),
        }
    }
}

/// Where a record landed.
pub fn delivered(f: DeliveryFuture, what: &str) -> (i32, i64) {
    match futures::executor::block_on(f) {
        Ok(Ok(d)) => (d.partition, d.offset),
        Ok(Err((e, _))) => panic!("delivery of {what} failed: {e}"),
        Err(_) => panic!("delivery of {what} cancelled"),
    }
}

/// Produce keyed records and wait for all acknowledgements; returns (partition, offset) of each.
pub fn produce_all(p: &FutureProducer, topic: &str, records: &[(Option<&[u8]>, &[u8])]) -> Vec<(i32, i64)> {
    let futs: Vec<_> = records.iter().map(|(k, v)| send(p, topic, None, *k, v, &[])).collect();
    futs.into_iter().map(|f| delivered(f, topic)).collect()
}

/// Produces events in a thread at a fixed rate; `pause()`/`resume()` and `sent()`
/// let a test act mid-stream.
pub struct Streamer {
    handle: Option<JoinHandle<Vec<(i32, i64)>>>,
    sent: Arc<AtomicUsize>,
    paused: Arc<AtomicBool>,
}

impl Streamer {
    pub fn start(bootstrap: &str, topic: &str, events: &[GenEvent], per_second: f64) -> Streamer {
        Self::start_with(producer(bootstrap), topic, events, per_second)
    }

    pub fn start_with(p: FutureProducer, topic: &str, events: &[GenEvent], per_second: f64) -> Streamer {
        let topic = topic.to_string();
        let recs: Vec<(String, String)> = events.iter().map(|e| (e.user_id.clone(), e.json.clone())).collect();
        let sent = Arc::new(AtomicUsize::new(0));
        let paused = Arc::new(AtomicBool::new(false));
        let (s2, p2) = (sent.clone(), paused.clone());
        let handle = std::thread::spawn(move || {
            let t0 = Instant::now();
            let mut futs = Vec::with_capacity(recs.len());
            let mut idle = Duration::ZERO;
            for (i, (k, v)) in recs.iter().enumerate() {
                while p2.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                    idle += Duration::from_millis(20);
                }
                let due = Duration::from_secs_f64(i as f64 / per_second) + idle;
                let el = t0.elapsed();
                if due > el {
                    std::thread::sleep(due - el);
                }
                futs.push(send(&p, &topic, None, Some(k.as_bytes()), v.as_bytes(), &[]));
                s2.store(i + 1, Ordering::Relaxed);
            }
            // A delivery the broker failed (tansu 0.6.0 answers UNKNOWN_SERVER_ERROR to
            // an idempotent producer's in-flight batch across its own restart) is sent
            // again: the test needs every event in, wherever it lands.
            let mut placed = Vec::with_capacity(futs.len());
            for (i, f) in futs.into_iter().enumerate() {
                let mut res = futures::executor::block_on(f);
                let mut attempts = 1;
                loop {
                    match res {
                        Ok(Ok(d)) => {
                            placed.push((d.partition, d.offset));
                            break;
                        }
                        Ok(Err((e, _))) if attempts < 5 => {
                            eprintln!("[e2e] delivery of event #{i} failed ({e}); sending it again");
                            let (k, v) = &recs[i];
                            let f = send(&p, &topic, None, Some(k.as_bytes()), v.as_bytes(), &[]);
                            res = futures::executor::block_on(f);
                            attempts += 1;
                        }
                        Ok(Err((e, _))) => panic!("delivery of event #{i} to {topic} failed {attempts} times: {e}"),
                        Err(_) => panic!("delivery of event #{i} to {topic} cancelled"),
                    }
                }
            }
            placed
        });
        Streamer {
            handle: Some(handle),
            sent,
            paused,
        }
    }
    pub fn sent(&self) -> usize {
        self.sent.load(Ordering::Relaxed)
    }
    pub fn pause(&self) {
        self.paused.store(true, Ordering::Relaxed)
    }
    pub fn resume(&self) {
        self.paused.store(false, Ordering::Relaxed)
    }
    /// Waits for every acknowledgement; (partition, offset) per event, in order.
    pub fn finish(mut self) -> Vec<(i32, i64)> {
        self.handle.take().unwrap().join().expect("streamer thread panicked")
    }
}

// ---------------------------------------------------------------------------
// Reading

#[derive(Clone, Debug)]
pub struct Rec {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp_ms: Option<i64>,
    pub received: Instant,
    /// `event_id` of a JSON value that has one (decisions, copied events).
    pub event_id: Option<String>,
}

impl Rec {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_deref())
    }
    pub fn header_str(&self, name: &str) -> Option<String> {
        self.header(name).map(|v| String::from_utf8_lossy(v).into_owned())
    }
    pub fn key_str(&self) -> Option<String> {
        self.key.as_deref().map(|k| String::from_utf8_lossy(k).into_owned())
    }
    pub fn json(&self) -> Value {
        let v = self.value.as_deref().unwrap_or_default();
        serde_json::from_slice(v).unwrap_or_else(|e| {
            panic!(
                "record {}@{} is not JSON ({e}): {}",
                self.partition,
                self.offset,
                lossy(v)
            )
        })
    }
}

pub fn lossy(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(&b[..b.len().min(300)]).into_owned();
    if b.len() > 300 {
        format!("{s}... ({} bytes)", b.len())
    } else {
        s
    }
}

/// Tails every partition of a topic from the beginning (no group, no commits)
/// into memory, in a thread, until dropped.
pub struct TopicReader {
    pub topic: String,
    recs: Arc<Mutex<Vec<Rec>>>,
    errors: Arc<Mutex<Vec<String>>>,
    distinct: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    bootstrap: String,
}

impl TopicReader {
    pub fn start(bootstrap: &str, topic: &str) -> TopicReader {
        let n = partition_count(bootstrap, topic, Duration::from_secs(60));
        let c: BaseConsumer = client_config(bootstrap)
            .set("group.id", unique("e2e-reader"))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", "20")
            .set("auto.offset.reset", "earliest")
            .create()
            .expect("reader consumer");
        let mut tpl = TopicPartitionList::new();
        for p in 0..n {
            tpl.add_partition_offset(topic, p, Offset::Beginning).unwrap();
        }
        c.assign(&tpl).expect("assign");
        let recs = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let distinct = Arc::new(AtomicUsize::new(0));
        let (r2, e2, s2, d2) = (recs.clone(), errors.clone(), stop.clone(), distinct.clone());
        let handle = std::thread::spawn(move || {
            let mut ids = std::collections::HashSet::new();
            while !s2.load(Ordering::Relaxed) {
                match c.poll(Duration::from_millis(100)) {
                    Some(Ok(m)) => {
                        let headers = m
                            .headers()
                            .map(|h| {
                                h.iter()
                                    .map(|h| (h.key.to_string(), h.value.map(|v| v.to_vec())))
                                    .collect()
                            })
                            .unwrap_or_default();
                        let event_id = m.payload().and_then(event_id_in);
                        if let Some(id) = &event_id {
                            if ids.insert(id.clone()) {
                                d2.store(ids.len(), Ordering::Relaxed);
                            }
                        }
                        let rec = Rec {
                            partition: m.partition(),
                            offset: m.offset(),
                            key: m.key().map(|k| k.to_vec()),
                            value: m.payload().map(|v| v.to_vec()),
                            headers,
                            timestamp_ms: m.timestamp().to_millis(),
                            received: Instant::now(),
                            event_id,
                        };
                        r2.lock().unwrap().push(rec);
                    }
                    Some(Err(e)) => {
                        let mut errs = e2.lock().unwrap();
                        if errs.len() < 100 {
                            errs.push(e.to_string());
                        }
                    }
                    None => {}
                }
            }
        });
        TopicReader {
            topic: topic.to_string(),
            recs,
            errors,
            distinct,
            stop,
            handle: Some(handle),
            bootstrap: bootstrap.to_string(),
        }
    }

    /// Distinct `event_id`s read so far.
    pub fn distinct(&self) -> usize {
        self.distinct.load(Ordering::Relaxed)
    }

    /// Wait until `n` distinct event ids have been read.
    pub fn wait_distinct(&self, n: usize, timeout: Duration, what: &str, diag: impl Fn() -> String) -> Vec<Rec> {
        let deadline = Instant::now() + timeout;
        while self.distinct() < n {
            if Instant::now() > deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what} on {}: {} of {n} event ids read ({} records; \
                     reader errors: {:?})\n{}",
                    self.topic,
                    self.distinct(),
                    self.len(),
                    self.errors().iter().take(5).collect::<Vec<_>>(),
                    diag()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.snapshot()
    }

    pub fn snapshot(&self) -> Vec<Rec> {
        self.recs.lock().unwrap().clone()
    }

    pub fn len(&self) -> usize {
        self.recs.lock().unwrap().len()
    }

    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().unwrap().clone()
    }

    /// Wait until `done(records)`; on timeout fail with `what` and `diag()`.
    /// `done` runs under the reader's lock: keep it cheap (see [`Self::wait_distinct`]).
    pub fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&[Rec]) -> bool,
        diag: impl Fn() -> String,
    ) -> Vec<Rec> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let g = self.recs.lock().unwrap();
                if done(&g) {
                    return g.clone();
                }
            }
            if Instant::now() > deadline {
                let n = self.len();
                panic!(
                    "timed out after {timeout:?} waiting for {what} on {} ({n} records read; reader errors: {:?})\n{}",
                    self.topic,
                    self.errors().iter().take(5).collect::<Vec<_>>(),
                    diag()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait until everything the broker holds now has been read.
    pub fn catch_up(&self, timeout: Duration) -> Vec<Rec> {
        let hw = high_watermarks(&self.bootstrap, &self.topic);
        self.wait_for(
            timeout,
            "the reader to reach the high watermarks",
            |recs| {
                let mut next = vec![0i64; hw.len()];
                for r in recs {
                    let p = r.partition as usize;
                    if p < next.len() {
                        next[p] = next[p].max(r.offset + 1);
                    }
                }
                // (No transactions here: the last record sits at watermark - 1.)
                next.iter().zip(&hw).all(|(n, h)| *n >= *h)
            },
            String::new,
        )
    }
}

impl Drop for TopicReader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Poll `f` until it returns Some, or fail with `what` and `diag()`.
pub fn wait_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>, diag: impl Fn() -> String) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(t) = f() {
            return t;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}\n{}", diag());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------
// Geo fixture databases (`stepup fixtures`)

pub struct Fixtures {
    pub city: PathBuf,
    pub asn: PathBuf,
}

/// The project's fixture geo databases, written once per test binary.
pub fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| {
        let dir = run_dir().join("fixtures");
        let out = Command::new(stepup_bin())
            .arg("fixtures")
            .arg("--out")
            .arg(&dir)
            .output()
            .expect("running stepup fixtures");
        assert!(
            out.status.success(),
            "`stepup fixtures --out {}` failed: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let f = Fixtures {
            city: dir.join("stepup-fixture-city.mmdb"),
            asn: dir.join("stepup-fixture-asn.mmdb"),
        };
        assert!(f.city.exists() && f.asn.exists(), "stepup fixtures wrote no databases");
        f
    })
}

// ---------------------------------------------------------------------------
// The worker process

/// A `stepup run` process with its own metrics port and log file.
pub struct Worker {
    pub name: String,
    child: Option<Child>,
    pub metrics_addr: SocketAddr,
    pub log_path: PathBuf,
    pub exit: Option<ExitStatus>,
}

/// librdkafka settings the tests give every worker: a short session so that a
/// killed member is noticed quickly (the default 45 s would dominate the tests).
pub const WORKER_TEST_CONFIG: &str = r#"
[kafka]
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "1000"
"#;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Worker {
    /// Spawn `stepup run` on `topics` (its topic and group flags), with the fixture
    /// databases and `extra` arguments. Does not wait for readiness.
    pub fn spawn(name: &str, bootstrap: &str, topics: &Topics, extra: &[&str]) -> Worker {
        let fx = fixtures();
        let dir = run_dir();
        let config = dir.join("worker-test.toml");
        if !config.exists() {
            std::fs::write(&config, WORKER_TEST_CONFIG).unwrap();
        }
        let metrics_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let log_path = dir.join(format!("{}.log", unique(name)));
        let log = std::fs::File::create(&log_path).unwrap();
        let mut cmd = Command::new(stepup_bin());
        cmd.arg("run")
            .arg("--bootstrap-servers")
            .arg(bootstrap)
            .arg("--geoip")
            .arg(&fx.city)
            .arg("--asn-db")
            .arg(&fx.asn)
            .arg("--config")
            .arg(&config)
            .arg("--metrics-addr")
            .arg(metrics_addr.to_string())
            .args(topics.worker_args())
            .args(extra)
            .env(
                "STEPUP_LOG",
                std::env::var("STEPUP_E2E_WORKER_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", stepup_bin().display()));
        Worker {
            name: name.to_string(),
            child: Some(child),
            metrics_addr,
            log_path,
            exit: None,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Still running? (Records the exit status once it is not.)
    pub fn alive(&mut self) -> bool {
        match self.child.as_mut() {
            None => false,
            Some(c) => match c.try_wait() {
                Ok(None) => true,
                Ok(Some(st)) => {
                    self.exit = Some(st);
                    self.child = None;
                    false
                }
                Err(_) => false,
            },
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let l = self.log();
        let v: Vec<&str> = l.lines().collect();
        format!(
            "--- {} ({}), last {} lines:\n{}",
            self.name,
            self.log_path.display(),
            lines.min(v.len()),
            v[v.len().saturating_sub(lines)..].join("\n")
        )
    }

    /// GET `path` on the worker's HTTP port: (status, body).
    pub fn http_get(&self, path: &str) -> Result<(u16, String), String> {
        http_get(self.metrics_addr, path)
    }

    pub fn metrics(&self) -> String {
        self.http_get("/metrics").map(|(_, b)| b).unwrap_or_default()
    }

    pub fn readyz(&self) -> Option<u16> {
        self.http_get("/readyz").ok().map(|(s, _)| s)
    }

    /// Wait for /readyz 200; fails early if the process exits.
    pub fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.alive() {
                panic!(
                    "worker {} exited ({:?}) before it was ready\n{}",
                    self.name,
                    self.exit,
                    self.log_tail(60)
                );
            }
            if self.readyz() == Some(200) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "worker {} not ready (/readyz {:?}) within {timeout:?}\n{}",
                    self.name,
                    self.readyz(),
                    self.log_tail(60)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            self.exit = c.wait().ok();
        }
    }

    /// SIGTERM, then wait up to `timeout` for the exit status (None: still running, then killed).
    /// SIGTERM, then assert the worker drained, committed and exited 0 within 30 s.
    pub fn stop_cleanly(&mut self) {
        let st = self.terminate(Duration::from_secs(30));
        assert!(
            st.is_some_and(|s| s.success()),
            "SIGTERM: exit 0 expected, got {st:?}\n{}",
            self.log_tail(30)
        );
    }

    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let pid = self.pid()?;
        let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !self.alive() {
                return self.exit;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill9();
        None
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A minimal HTTP/1.0 GET (the tests need no HTTP client crate).
pub fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    s.set_write_timeout(Some(Duration::from_secs(5))).ok();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n").map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad HTTP response: {}", &head[..head.len().min(100)]))?;
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Prometheus text: (sample name with labels, value) of every sample whose
/// metric name contains `needle`.
pub fn metric_samples(text: &str, needle: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, v) = l.rsplit_once(' ')?;
            let metric = name.split('{').next()?;
            if metric.contains(needle) {
                Some((name.to_string(), v.parse().ok()?))
            } else {
                None
            }
        })
        .collect()
}

pub fn metric_sum(text: &str, needle: &str) -> f64 {
    metric_samples(text, needle).iter().map(|(_, v)| v).sum()
}

// ---------------------------------------------------------------------------
// Events

#[derive(Clone, Debug)]
pub struct GenEvent {
    pub event_id: String,
    pub user_id: String,
    pub json: String,
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

const UAS: [&str; 4] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
];
const GROUPS: [&[&str]; 4] = [
    &["contractors"],
    &["contractors", "dev"],
    &["contractors", "sre"],
    &["dba"],
];
const RESOURCES: [&str; 8] = [
    "git/stepup",
    "wiki/onboarding",
    "k8s/staging/payments",
    "k8s/prod/payments",
    "db/staging/orders",
    "db/prod/orders",
    "vault/prod/keys",
    "git/infra",
];

/// Fixture-world address of city `c`, network slot `s` (0, 1 residential, 2 mobile).
fn fixture_ip(c: u64, s: u64, host: u64) -> String {
    format!("81.{}.{}.{}", c % 50, 16 * s + (host >> 8) % 16, 1 + host % 250)
}

/// Deterministic contractor traffic: `users` contractors, `n` events in event-time
/// order (the order to produce them in). Mostly logins from each user's home
/// network and device (so baselines build up), with new devices, travel (also
/// impossible), failures, and resource access across tiers and roles, so that
/// allow, step_up and deny all occur and scores depend on the baselines.
pub fn gen_events(prefix: &str, seed: u64, users: usize, n: usize) -> Vec<GenEvent> {
    let mut rng = Rng(seed);
    // 2026-03-02T07:00:00Z, a Monday.
    let mut t_ms: i64 = 1_772_434_800_000;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        t_ms += 1_000 + rng.below(90_000) as i64;
        let u = rng.below(users as u64);
        let user_id = format!("{prefix}-u{u:04}");
        let home_city = u * 7 % 50;
        let home_host = u * 131;
        let (mut ip, mut device, mut ua) = (
            fixture_ip(home_city, u % 2, home_host),
            format!("dev-{u}-a"),
            UAS[(u % 4) as usize],
        );
        let mut aal = 2;
        let mut methods = vec!["pwd", "otp"];
        let mut outcome = "success";
        let mut kind = "login";
        let mut resource = None;
        let r = rng.below(100);
        match r {
            0..=64 => {}
            65..=69 => {
                device = format!("dev-{u}-{}", rng.below(1000));
                ua = UAS[rng.below(4) as usize];
            }
            70..=73 => {
                // Mobile network in the home city.
                ip = fixture_ip(home_city, 2, rng.below(4000));
            }
            74..=77 => {
                // Elsewhere in the world (often impossible travel), weaker login.
                ip = fixture_ip(rng.below(50), rng.below(3), rng.below(4000));
                aal = 1;
                methods = vec!["pwd"];
            }
            78..=82 => {
                outcome = "failure";
                aal = 1;
                methods = vec!["pwd"];
            }
            _ => {
                kind = "access";
                resource = Some(RESOURCES[rng.below(RESOURCES.len() as u64) as usize]);
                if rng.chance(0.5) {
                    aal = 1;
                    methods = vec!["pwd"];
                }
            }
        }
        let event_id = format!("{prefix}-e{i:06}");
        let time = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(t_ms)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string();
        let mut v = json!({
            "event_id": event_id,
            "time": time,
            "type": kind,
            "user_id": user_id,
            "outcome": outcome,
            "ip": ip,
            "user_agent": ua,
            "device_id": device,
            "aal": aal,
            "methods": methods,
            "groups": GROUPS[(u % 4) as usize],
            "session_id": format!("s-{u}-{}", i / 20),
        });
        if let Some(r) = resource {
            v["resource"] = json!(r);
        }
        out.push(GenEvent {
            event_id,
            user_id,
            json: v.to_string(),
        });
    }
    out
}

// ---------------------------------------------------------------------------
// Decisions

/// The fields of a decision that the model determines (schema decision.v1);
/// anything a worker might add beside them is left out of comparisons.
pub fn decision_view(v: &Value) -> Value {
    let mut m = serde_json::Map::new();
    for k in [
        "event_id",
        "user_id",
        "time",
        "decision",
        "risk",
        "tier",
        "current_aal",
        "required_aal",
        "methods",
        "acr_values",
        "max_age",
        "deny_reason",
        "resource",
        "session_id",
        "expires_at",
    ] {
        if let Some(x) = v.get(k) {
            m.insert(k.to_string(), x.clone());
        }
    }
    Value::Object(m)
}

/// Decision records grouped by event_id, in the order read.
pub fn by_event_id(recs: &[Rec]) -> BTreeMap<String, Vec<Value>> {
    let mut m: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for r in recs {
        let v = r.json();
        let id = v["event_id"]
            .as_str()
            .unwrap_or_else(|| panic!("decision without event_id: {v}"))
            .to_string();
        m.entry(id).or_default().push(v);
    }
    m
}

/// `stepup score` over each partition's events in offset order, as the worker's
/// per-partition state would see them: event_id → decision.
pub fn offline_decisions(events: &[GenEvent], placed: &[(i32, i64)]) -> HashMap<String, Value> {
    assert_eq!(events.len(), placed.len());
    let fx = fixtures();
    let mut parts: BTreeMap<i32, Vec<(i64, &GenEvent)>> = BTreeMap::new();
    for (e, (p, o)) in events.iter().zip(placed) {
        parts.entry(*p).or_default().push((*o, e));
    }
    let mut out = HashMap::new();
    for (p, mut evs) in parts {
        evs.sort_by_key(|(o, _)| *o);
        let dir = run_dir().join(unique(&format!("offline-p{p}")));
        std::fs::create_dir_all(&dir).unwrap();
        let input = dir.join("events.jsonl");
        let output = dir.join("decisions.jsonl");
        let mut text = String::new();
        for (_, e) in &evs {
            text.push_str(&e.json);
            text.push('\n');
        }
        std::fs::write(&input, text).unwrap();
        let st = Command::new(stepup_bin())
            .arg("score")
            .arg("--geoip")
            .arg(&fx.city)
            .arg("--asn-db")
            .arg(&fx.asn)
            .arg("--input")
            .arg(&input)
            .arg("--output")
            .arg(&output)
            .env("STEPUP_LOG", "warn")
            .stderr(Stdio::inherit())
            .status()
            .expect("running stepup score");
        assert!(st.success(), "stepup score failed on partition {p}: {st}");
        let text = std::fs::read_to_string(&output).unwrap();
        for line in text.lines().filter(|l| !l.is_empty()) {
            let v: Value = serde_json::from_str(line).unwrap();
            out.insert(v["event_id"].as_str().unwrap().to_string(), v);
        }
    }
    assert_eq!(out.len(), events.len(), "offline scoring lost events");
    out
}

/// Count decisions by kind ("allow", "step_up", "deny").
pub fn decision_mix<'a>(vals: impl Iterator<Item = &'a Value>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for v in vals {
        *m.entry(v["decision"].as_str().unwrap_or("?").to_string()).or_insert(0) += 1;
    }
    m
}

/// First differing decisions between the worker and the offline run, for messages.
pub fn describe_mismatch(id: &str, got: &Value, want: &Value) -> String {
    format!(
        "event {id}:\n  worker:  {}\n  offline: {}",
        decision_view(got),
        decision_view(want)
    )
}

/// Both the worker log and a marker: used in failure messages of scenarios.
pub fn logs(workers: &[&Worker]) -> String {
    workers.iter().map(|w| w.log_tail(40)).collect::<Vec<_>>().join("\n")
}

/// Write to stderr with a prefix, visible with `--nocapture` and in failures.
pub fn note(msg: impl AsRef<str>) {
    eprintln!("[e2e] {}", msg.as_ref());
    let _ = std::io::stderr().flush();
}

// ---------------------------------------------------------------------------
// Crash scenarios: what must match the offline engine

/// Records after the last one decided before a crash that a worker may already
/// have processed (its changelog update acknowledged, its decision not yet).
pub const IN_FLIGHT_SLACK: i64 = 0;

/// Per partition, the offsets a crashed worker's successor may process a second
/// time: from the group's committed offset at the crash to the last record whose
/// decision was published before it (+ [`IN_FLIGHT_SLACK`]). A second processing
/// sees a baseline that already learned the event, so its decision may differ.
pub fn redelivery_windows(
    committed: &[Option<i64>],
    decided_before: &BTreeMap<String, Vec<Value>>,
    events: &[GenEvent],
    placed: &[(i32, i64)],
) -> BTreeMap<i32, (i64, i64)> {
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    for (e, (p, o)) in events.iter().zip(placed) {
        if decided_before.contains_key(&e.event_id) {
            let l = last.entry(*p).or_insert(-1);
            *l = (*l).max(*o);
        }
    }
    let mut w = BTreeMap::new();
    for (p, c) in committed.iter().enumerate() {
        let from = c.unwrap_or(0);
        let to = last.get(&(p as i32)).copied().unwrap_or(-1) + IN_FLIGHT_SLACK;
        if to >= from {
            w.insert(p as i32, (from, to));
        }
    }
    w
}

#[derive(Debug, Default)]
pub struct OfflineCheck {
    /// Events whose first decision was compared and matched.
    pub matched: usize,
    /// Events without any decision.
    pub missing: Vec<String>,
    /// First decisions that differ, outside the re-delivery windows.
    pub mismatches: Vec<String>,
    /// Differences inside the windows (reported, allowed).
    pub tolerated: Vec<String>,
    /// Re-decided events whose later decisions differ from the first (allowed).
    pub redecided_differently: usize,
    pub duplicates: usize,
    /// Event ids of `mismatches`.
    pub mismatched_ids: Vec<String>,
    /// Per input partition: (mismatches, first offset, last offset, events).
    pub by_partition: BTreeMap<i32, (usize, i64, i64, usize)>,
}

/// Every event has a decision; the first one published equals the offline
/// engine's, except inside the re-delivery `windows`.
pub fn check_against_offline(
    events: &[GenEvent],
    placed: &[(i32, i64)],
    got: &BTreeMap<String, Vec<Value>>,
    windows: &BTreeMap<i32, (i64, i64)>,
) -> OfflineCheck {
    let offline = offline_decisions(events, placed);
    let mut c = OfflineCheck::default();
    for (e, (p, o)) in events.iter().zip(placed) {
        let Some(vs) = got.get(&e.event_id) else {
            c.missing.push(format!("{} ({p}@{o})", e.event_id));
            continue;
        };
        c.duplicates += vs.len() - 1;
        c.by_partition.entry(*p).or_insert((0, i64::MAX, i64::MIN, 0)).3 += 1;
        let want = decision_view(&offline[&e.event_id]);
        if vs[1..].iter().any(|v| decision_view(v) != decision_view(&vs[0])) {
            c.redecided_differently += 1;
        }
        if decision_view(&vs[0]) == want {
            c.matched += 1;
            continue;
        }
        let msg = format!("{p}@{o} {}", describe_mismatch(&e.event_id, &vs[0], &want));
        match windows.get(p) {
            Some((from, to)) if o >= from && o <= to => c.tolerated.push(msg),
            _ => {
                c.mismatches.push(msg);
                c.mismatched_ids.push(e.event_id.clone());
                let e = c.by_partition.entry(*p).or_insert((0, *o, *o, 0));
                e.0 += 1;
                e.1 = e.1.min(*o);
                e.2 = e.2.max(*o);
            }
        }
    }
    c
}

impl OfflineCheck {
    pub fn assert_ok(&self, what: &str) {
        assert!(
            self.missing.is_empty(),
            "{what}: {} events were lost (no decision): {:?}",
            self.missing.len(),
            &self.missing[..self.missing.len().min(10)]
        );
        assert!(
            self.mismatches.is_empty(),
            "{what}: {} decisions differ from the offline engine (baselines not intact); \
             per input partition (mismatches, first offset, last offset, events): {:?}; first ones:\n{}",
            self.mismatches.len(),
            self.by_partition,
            self.mismatches[..self.mismatches.len().min(5)].join("\n")
        );
    }
}

/// Event ids with a decision, keyed by partition of the input, for "is every
/// partition flowing" checks.
pub fn decided_partitions(
    got: &BTreeMap<String, Vec<Value>>,
    events: &[GenEvent],
    placed: &[(i32, i64)],
) -> BTreeMap<i32, usize> {
    let mut m = BTreeMap::new();
    for (e, (p, _)) in events.iter().zip(placed) {
        if got.contains_key(&e.event_id) {
            *m.entry(*p).or_insert(0) += 1;
        }
    }
    m
}

/// Count the distinct event ids among records.
pub fn distinct_ids(recs: &[Rec]) -> usize {
    recs.iter()
        .filter_map(|r| r.event_id.as_deref())
        .collect::<std::collections::HashSet<_>>()
        .len()
}

/// The `event_id` of a JSON object, without parsing the rest.
pub fn event_id_in(v: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Id<'a> {
        #[serde(borrow)]
        event_id: std::borrow::Cow<'a, str>,
    }
    serde_json::from_slice::<Id>(v).ok().map(|i| i.event_id.into_owned())
}

/// A consumer group's members and their assignments (DescribeGroups), when the
/// broker answers it: (member id, client id, [(topic, partition)]).
pub fn group_members(bootstrap: &str, group: &str) -> Result<Vec<(String, String, Vec<(String, i32)>)>, String> {
    let c: BaseConsumer = client_config(bootstrap).create().map_err(|e| e.to_string())?;
    let list = c
        .fetch_group_list(Some(group), Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    let g = list
        .groups()
        .iter()
        .find(|g| g.name() == group)
        .ok_or_else(|| format!("group {group} not described"))?;
    Ok(g.members()
        .iter()
        .map(|m| {
            (
                m.id().to_string(),
                m.client_id().to_string(),
                m.assignment().map(parse_assignment).unwrap_or_default(),
            )
        })
        .collect())
}

/// ConsumerProtocolAssignment: version, [topic, [partition]], user data.
fn parse_assignment(b: &[u8]) -> Vec<(String, i32)> {
    fn i16_at(b: &[u8], o: usize) -> Option<i16> {
        Some(i16::from_be_bytes(b.get(o..o + 2)?.try_into().ok()?))
    }
    fn i32_at(b: &[u8], o: usize) -> Option<i32> {
        Some(i32::from_be_bytes(b.get(o..o + 4)?.try_into().ok()?))
    }
    let mut out = Vec::new();
    let mut o = 2;
    let Some(nt) = i32_at(b, o) else { return out };
    o += 4;
    for _ in 0..nt.max(0) {
        let Some(l) = i16_at(b, o) else { return out };
        o += 2;
        let Some(name) = b.get(o..o + l.max(0) as usize) else {
            return out;
        };
        let name = String::from_utf8_lossy(name).into_owned();
        o += l.max(0) as usize;
        let Some(np) = i32_at(b, o) else { return out };
        o += 4;
        for _ in 0..np.max(0) {
            let Some(p) = i32_at(b, o) else { return out };
            o += 4;
            out.push((name.clone(), p));
        }
    }
    out
}

/// Make a consumer group rebalance: a short-lived member joins `group`
/// subscribed only to a topic of its own (so it takes none of the group's
/// partitions), waits for its assignment, and leaves again.
///
/// Why: tansu 0.6.0 drops a member whose session expired (kill -9) from the
/// group but keeps the last generation's assignments and does not ask the
/// leader to reassign, so the survivor keeps only its own partitions and the
/// dead member's partitions are never consumed. A join forces a new generation.
/// Apache Kafka and Redpanda reassign on expiry and never need this.
pub fn nudge_rebalance(bootstrap: &str, group: &str) {
    let topic = unique("nudge");
    create_topics(bootstrap, &[(&topic, 1, false)]);
    let c: BaseConsumer = client_config(bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1000")
        .create()
        .expect("nudge consumer");
    c.subscribe(&[&topic]).expect("subscribe");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let _ = c.poll(Duration::from_millis(100));
        if c.assignment().map(|a| a.count()).unwrap_or(0) > 0 {
            break;
        }
    }
    c.unsubscribe();
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        let _ = c.poll(Duration::from_millis(100));
    }
    drop(c);
}

/// Poll `f` every 100 ms until it is true or `timeout` passes.
pub fn wait_until_ok(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Wait until `w` owns all `partitions` partitions of its group (its
/// `stepup_assigned_partitions` gauge). When the broker does not get there within
/// 25 s (tansu 0.6.0 never reassigns a kill -9'd member's partitions, see
/// [`nudge_rebalance`]), say so and force a rebalance. Returns whether it had to.
pub fn ensure_owns_all(bootstrap: &str, group: &str, w: &Worker, partitions: i32) -> bool {
    let owns_all = || metric_sum(&w.metrics(), "stepup_assigned_partitions") >= partitions as f64;
    if wait_until_ok(Duration::from_secs(25), owns_all) {
        return false;
    }
    note(format!(
        "BROKER BUG: 25 s on, {} owns {} of {partitions} partitions: the broker did not reassign the partitions \
         of the member killed with -9 (tansu 0.6.0 keeps an expired member's assignment). Forcing a rebalance \
         with a member that joins and leaves.",
        w.name,
        metric_sum(&w.metrics(), "stepup_assigned_partitions")
    ));
    nudge_rebalance(bootstrap, group);
    assert!(
        wait_until_ok(Duration::from_secs(60), owns_all),
        "even after a forced rebalance {} does not own all {partitions} partitions\n{}",
        w.name,
        w.log_tail(40)
    );
    true
}
