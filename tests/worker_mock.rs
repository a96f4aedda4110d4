//! The streaming worker against librdkafka's in-process mock cluster (real sockets,
//! real protocol: consumer groups, idempotent producer, offset commits). Each test
//! starts its own cluster and asserts behaviour: ordering, one decision per event,
//! triggers only for step_up/deny, commit after acknowledgement, dead letters,
//! restore from the changelog, a rebalance between two workers, live registry
//! updates, a broker outage.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;
use stepup::config::Settings;
use stepup::enrich::GeoDatabases;
use stepup::geo_fixture;
use stepup::pipeline::{Output, Pipeline, Shared};
use stepup::worker::mock::MockKafka;
use stepup::worker::{self, WorkerExit, WorkerHandle, WorkerOptions};

// ---------------------------------------------------------------------------
// helpers

fn geo() -> Arc<GeoDatabases> {
    static G: OnceLock<Arc<GeoDatabases>> = OnceLock::new();
    G.get_or_init(|| {
        Arc::new(GeoDatabases::from_bytes(geo_fixture::city_db(), Some(geo_fixture::asn_db())).expect("fixture dbs"))
    })
    .clone()
}

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("STEPUP_TEST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
}

fn settings(mock: &MockKafka, partitions: i32, tweak: impl FnOnce(&mut Settings)) -> Settings {
    let mut s = Settings::default_embedded().expect("defaults");
    for (k, v) in [
        ("bootstrap.servers", mock.bootstrap_servers()),
        ("fetch.wait.max.ms", "10"),
        ("session.timeout.ms", "2500"),
        ("heartbeat.interval.ms", "250"),
        ("auto.commit.interval.ms", "200"),
        ("topic.metadata.refresh.interval.ms", "1000"),
    ] {
        s.kafka.insert(k.into(), v.into());
    }
    s.worker.metrics_addr = String::new();
    s.worker.partitions = partitions;
    s.worker.drain_timeout_ms = 5000;
    tweak(&mut s);
    mock.create_worker_topics(&s.topics, partitions).expect("topics");
    s
}

fn shared(s: &Settings) -> Shared {
    Shared {
        settings: Arc::new(s.clone()),
        geo: geo(),
    }
}

fn start(s: &Settings, instance: &str) -> WorkerHandle {
    worker::start(
        shared(s),
        WorkerOptions {
            connect_timeout: Duration::from_secs(10),
            instance: instance.into(),
            ..WorkerOptions::default()
        },
    )
    .expect("worker starts")
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_ready(h: &WorkerHandle) {
    wait_for("readiness", Duration::from_secs(15), || h.readiness().ready);
}

fn producer(mock: &MockKafka) -> ThreadedProducer<DefaultProducerContext> {
    ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .set("linger.ms", "1")
        .set("partitioner", "murmur2_random")
        .create()
        .expect("producer")
}

fn send(p: &ThreadedProducer<DefaultProducerContext>, topic: &str, key: Option<&str>, value: Option<&[u8]>) {
    let mut rec = BaseRecord::<str, [u8]>::to(topic);
    if let Some(k) = key {
        rec = rec.key(k);
    }
    if let Some(v) = value {
        rec = rec.payload(v);
    }
    p.send(rec).map_err(|(e, _)| e).expect("enqueue");
}

#[derive(Debug, Clone)]
struct Rec {
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Vec<u8>)>,
}

impl Rec {
    fn json(&self) -> Value {
        serde_json::from_slice(self.value.as_deref().unwrap_or_default()).unwrap_or(Value::Null)
    }
    fn header(&self, k: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(hk, _)| hk == k)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
}

/// Every record of `topic` (all partitions, from the beginning): reads up to the
/// high watermarks, re-reading them until at least `min` records arrived or
/// `timeout` passed. Everything acknowledged before the call is included.
fn read_all(mock: &MockKafka, topic: &str, partitions: i32, min: usize, timeout: Duration) -> Vec<Rec> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .set("group.id", "test-reader")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .expect("reader");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning).unwrap();
    }
    c.assign(&tpl).unwrap();
    let t0 = Instant::now();
    let mut out = Vec::new();
    let mut next = vec![0i64; partitions as usize];
    loop {
        let highs: Vec<i64> = (0..partitions)
            .map(|p| {
                c.fetch_watermarks(topic, p, Duration::from_secs(5))
                    .map(|w| w.1)
                    .unwrap_or(0)
            })
            .collect();
        while (0..partitions as usize).any(|p| next[p] < highs[p]) && t0.elapsed() < timeout {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(50)) {
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|x| (x.key.to_string(), x.value.map(|v| v.to_vec()).unwrap_or_default()))
                            .collect()
                    })
                    .unwrap_or_default();
                next[m.partition() as usize] = m.offset() + 1;
                out.push(Rec {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(|k| k.to_vec()),
                    value: m.payload().map(|v| v.to_vec()),
                    headers,
                });
            }
        }
        if out.len() >= min || t0.elapsed() >= timeout {
            return out;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// All records of a decisions topic once `n` distinct event ids are there (or the
/// timeout passed). Under at-least-once a record count can reach `n` with
/// duplicates while later events are still missing.
fn read_distinct(mock: &MockKafka, topic: &str, partitions: i32, n: usize, timeout: Duration) -> Vec<Rec> {
    let t0 = Instant::now();
    loop {
        let recs = read_all(mock, topic, partitions, n, Duration::from_secs(5));
        let ids: HashSet<String> = recs.iter().map(event_id).collect();
        if ids.len() >= n || t0.elapsed() > timeout {
            return recs;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Committed offsets of `group` on `topic` (-1 when none).
fn committed(mock: &MockKafka, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("offset reader");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = c
        .committed_offsets(tpl, Duration::from_secs(5))
        .expect("committed offsets");
    (0..partitions)
        .map(|p| match got.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o,
            _ => -1,
        })
        .collect()
}

const UA: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
const T0_MS: i64 = 1_772_438_400_000; // 2026-03-02T08:00:00Z

/// A login event. `city` indexes the fixture cities (address plan 81.c.0.0/16).
fn login(id: &str, user: &str, t_ms: i64, city: u8, host: u8, device: &str, aal: u8) -> String {
    let methods = if aal >= 2 { r#"["pwd","otp"]"# } else { r#"["pwd"]"# };
    format!(
        r#"{{"event_id":"{id}","time":"{}","type":"login","user_id":"{user}","outcome":"success","ip":"81.{city}.0.{host}","user_agent":"{UA}","device_id":"{device}","aal":{aal},"methods":{methods},"groups":["contractors","dev"],"source":"test"}}"#,
        stepup::timefmt::rfc3339_ms(t_ms)
    )
}

/// A workload: `users` users, `per_user` events each, in time order, with a
/// foreign login now and then (triggers) and MFA logins that teach the baseline.
fn workload(prefix: &str, users: usize, per_user: usize, start_ms: i64) -> Vec<(String, String, String)> {
    let far = geo_fixture::cities()
        .iter()
        .position(|c| c.country != geo_fixture::cities()[0].country && c.country != "ES")
        .unwrap_or(20) as u8;
    let mut v = Vec::new();
    for i in 0..per_user {
        for u in 0..users {
            let user = format!("{prefix}u{u:03}");
            let id = format!("{prefix}e{u:03}-{i:04}");
            let t = start_ms + (i as i64) * 3_600_000 + (u as i64) * 1000;
            let (city, aal) = match (i + u) % 7 {
                3 => (far, 1),   // foreign, password only
                0 | 1 => (0, 2), // home, MFA: teaches
                _ => (0, 1),     // home, password
            };
            v.push((
                id.clone(),
                user.clone(),
                login(
                    &id,
                    &user,
                    t,
                    city,
                    10 + (u % 200) as u8,
                    &format!("{user}-laptop"),
                    aal,
                ),
            ));
        }
    }
    v
}

/// Decisions an offline pipeline produces for the events as partitioned and
/// ordered in the events topic (one Pipeline per input partition, as the worker).
fn offline(sh: &Shared, events: &[Rec], registry: &[(String, Vec<u8>)]) -> HashMap<String, String> {
    let mut by_part: BTreeMap<i32, Vec<&Rec>> = BTreeMap::new();
    for r in events {
        by_part.entry(r.partition).or_default().push(r);
    }
    let mut out = HashMap::new();
    for (_, mut recs) in by_part {
        recs.sort_by_key(|r| r.offset);
        let mut p = Pipeline::new(sh.clone());
        for (u, c) in registry {
            p.upsert_contractor(u, Some(stepup::contractors::Contractor::parse(c).unwrap()));
        }
        let mut o = Output::default();
        for r in recs {
            if p.process(r.value.as_deref().unwrap_or_default(), &mut o).is_ok() {
                out.insert(o.event_id.clone(), String::from_utf8(o.json.clone()).unwrap());
            }
        }
    }
    out
}

fn event_id(r: &Rec) -> String {
    r.json()["event_id"].as_str().unwrap_or_default().to_string()
}

// ---------------------------------------------------------------------------
// tests

/// Ordering within a partition, one decision per event equal to the offline
/// pipeline's, triggers exactly for step_up/deny with the header contract and a
/// valid signature, commits at the end, health endpoints.
#[test]
fn ordering_one_decision_per_event_and_trigger_contract() {
    init_logs();
    let mock = MockKafka::start(1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, "s3cret\n").unwrap();
    let s = settings(&mock, 4, |s| {
        s.worker.max_in_flight = 40; // exercise pause/resume
        s.worker.signing_key_file = Some(key_file.clone());
        s.worker.cloudevents_headers = true;
    });
    let h = start(&s, "a");
    let addr = stepup::http::spawn_thread("127.0.0.1:0", {
        let probe = h.probe();
        Arc::new(move |p: &str| probe.respond(p))
    })
    .unwrap();
    wait_ready(&h);
    assert_eq!(stepup::http::get(addr, "/readyz").unwrap().0, 200);
    assert_eq!(stepup::http::get(addr, "/healthz").unwrap().0, 200);

    let evs = workload("o", 30, 20, T0_MS);
    let p = producer(&mock);
    for (_, user, json) in &evs {
        send(&p, &s.topics.events, Some(user), Some(json.as_bytes()));
    }
    p.flush(Duration::from_secs(10)).unwrap();
    let n = evs.len();

    let decisions = read_all(&mock, &s.topics.decisions, 4, n, Duration::from_secs(20));
    let ids: Vec<String> = decisions.iter().map(event_id).collect();
    let uniq: HashSet<&String> = ids.iter().collect();
    assert_eq!(uniq.len(), n, "every event decided");
    assert_eq!(ids.len(), n, "no event decided twice");

    // per user, decisions in event order (one user → one input and one output partition)
    let mut per_user: HashMap<String, Vec<String>> = HashMap::new();
    for r in &decisions {
        let v = r.json();
        per_user
            .entry(v["user_id"].as_str().unwrap().to_string())
            .or_default()
            .push(v["event_id"].as_str().unwrap().to_string());
        assert_eq!(r.header("content-type").as_deref(), Some("application/json"));
        assert_eq!(
            r.header("ce_id").as_deref(),
            v["event_id"].as_str(),
            "cloudevents_headers on"
        );
        assert_eq!(r.key.as_deref(), v["user_id"].as_str().map(str::as_bytes));
    }
    for (user, got) in &per_user {
        let want: Vec<String> = evs.iter().filter(|e| &e.1 == user).map(|e| e.0.clone()).collect();
        assert_eq!(got, &want, "decisions of {user} out of order");
    }

    // same bytes as the offline pipeline over the same partitions
    let events = read_all(&mock, &s.topics.events, 4, n, Duration::from_secs(10));
    let want = offline(&shared(&s), &events, &[]);
    for r in &decisions {
        let id = event_id(r);
        assert_eq!(
            String::from_utf8(r.value.clone().unwrap()).unwrap(),
            want[&id],
            "decision of {id} differs from the offline pipeline"
        );
    }

    // triggers: exactly the step_up/deny decisions, with the header contract
    let expected: HashSet<String> = decisions
        .iter()
        .filter(|r| matches!(r.json()["decision"].as_str(), Some("step_up" | "deny")))
        .map(event_id)
        .collect();
    assert!(!expected.is_empty(), "the workload causes triggers");
    assert!(expected.len() < n, "and allows");
    let triggers = read_all(&mock, &s.topics.triggers, 4, expected.len(), Duration::from_secs(10));
    let got: HashSet<String> = triggers.iter().map(event_id).collect();
    assert_eq!(got, expected);
    assert_eq!(triggers.len(), expected.len());
    for t in &triggers {
        let v = t.json();
        let id = event_id(t);
        let kind = v["decision"].as_str().unwrap();
        assert_eq!(t.header("ce_id").as_deref(), Some(id.as_str()));
        assert_eq!(t.header("ce_specversion").as_deref(), Some("1.0"));
        assert_eq!(t.header("ce_source").as_deref(), Some("stepup"));
        assert_eq!(t.header("ce_type").unwrap(), format!("dev.stepup.trigger.{kind}"));
        assert_eq!(t.header("ce_subject").as_deref(), v["user_id"].as_str());
        assert_eq!(t.header("ce_time").as_deref(), v["time"].as_str());
        assert_eq!(t.header("content-type").as_deref(), Some("application/json"));
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(t.value.as_deref().unwrap());
        let sig = format!("v1={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(t.header("stepup-signature"), Some(sig));
    }

    // all offsets committed once everything is acknowledged
    let ends: Vec<i64> = (0..4)
        .map(|p| {
            events
                .iter()
                .filter(|r| r.partition == p)
                .map(|r| r.offset + 1)
                .max()
                .unwrap_or(-1)
        })
        .collect();
    wait_for("final commits", Duration::from_secs(10), || {
        committed(&mock, &s.worker.group_id, &s.topics.events, 4) == ends
    });
    let (code, text) = stepup::http::get(addr, "/metrics").unwrap();
    assert_eq!(code, 200);
    for name in [
        "stepup_events_consumed_total",
        "stepup_events_scored_total",
        "stepup_decisions_total{decision=\"allow\"}",
        "stepup_signals_total{signal=",
        "stepup_end_to_end_latency_seconds_bucket",
        "stepup_hot_path_latency_seconds_bucket{le=\"0.000001\"}",
        "stepup_consumer_lag{partition=",
        "stepup_restore_duration_seconds_count 4",
        "stepup_baselines",
        "stepup_in_flight_records 0",
    ] {
        assert!(text.contains(name), "/metrics lacks {name}:\n{text}");
    }
    assert!(!text.contains("ou0"), "no user ids in metric labels");
    assert_eq!(h.shutdown(), WorkerExit::Clean);
}

/// Committed offsets never run ahead of acknowledged outputs: produce requests are
/// failed (retriably) for a while, so acknowledgements lag; at every sample, every
/// input record below the committed offset has its decision in the output topic.
#[test]
fn commits_never_pass_unacknowledged_outputs() {
    init_logs();
    let mock = MockKafka::start(1).unwrap();
    let s = settings(&mock, 2, |_| {});
    let evs = workload("c", 10, 30, T0_MS);
    let p = producer(&mock);
    for (_, user, json) in &evs {
        send(&p, &s.topics.events, Some(user), Some(json.as_bytes()));
    }
    p.flush(Duration::from_secs(10)).unwrap();
    // the worker's produce requests fail (retriably) many times: its outputs are
    // acknowledged seconds after the events were consumed and scored
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 25],
    );
    let h = start(&s, "c");
    let events = read_all(&mock, &s.topics.events, 2, evs.len(), Duration::from_secs(10));
    let offset_of: HashMap<String, (i32, i64)> =
        events.iter().map(|r| (event_id(r), (r.partition, r.offset))).collect();
    let t0 = Instant::now();
    let mut samples = 0;
    let mut saw_progress = false;
    let mut saw_delay = false;
    loop {
        let c = committed(&mock, &s.worker.group_id, &s.topics.events, 2);
        let decided: HashSet<String> = read_all(&mock, &s.topics.decisions, 2, 0, Duration::from_secs(5))
            .iter()
            .map(event_id)
            .collect();
        for (id, (p, off)) in &offset_of {
            if *off < c[*p as usize] {
                assert!(
                    decided.contains(id),
                    "offset {off} of partition {p} committed before its decision was acknowledged"
                );
            }
        }
        samples += 1;
        saw_progress |= c.iter().any(|o| *o > 0);
        saw_delay |= h.metrics().events_scored.get() > decided.len() as u64;
        if decided.len() == evs.len()
            && c.iter().enumerate().all(|(p, o)| {
                *o == events
                    .iter()
                    .filter(|r| r.partition == p as i32)
                    .map(|r| r.offset + 1)
                    .max()
                    .unwrap_or(-1)
            })
        {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(25),
            "never caught up ({samples} samples)"
        );
    }
    assert!(saw_progress && samples > 1);
    assert!(
        saw_delay,
        "the injected errors delayed acknowledgements (else this test proves nothing)"
    );
    assert_eq!(h.shutdown(), WorkerExit::Clean);
}

/// Baseline changes are coalesced per user into one changelog write per flush
/// interval, and no input offset at or after the first record that changed a user
/// is committed before that write: with a long interval every decision is out and
/// acknowledged, yet the commits wait at the first baseline change of each
/// partition; after the flush there is one changelog record per user, and the
/// commits reach the end. Default headers: triggers carry `content-type` only,
/// decisions none.
#[test]
fn changelog_writes_are_coalesced_and_gate_commits() {
    init_logs();
    let mock = MockKafka::start(1).unwrap();
    let flush = Duration::from_secs(5);
    let s = settings(&mock, 2, |s| {
        s.worker.changelog_flush_ms = flush.as_millis() as u64;
        s.worker.cloudevents_headers = false;
    });
    let users = 10;
    let evs = workload("g", users, 12, T0_MS);
    let p = producer(&mock);
    for (_, user, json) in &evs {
        send(&p, &s.topics.events, Some(user), Some(json.as_bytes()));
    }
    p.flush(Duration::from_secs(10)).unwrap();
    let events = read_all(&mock, &s.topics.events, 2, evs.len(), Duration::from_secs(10));
    // the first record of each partition whose event changes a baseline, and the ends
    let mut first_change = [i64::MAX; 2];
    let mut ends = [0i64; 2];
    {
        let sh = shared(&s);
        for part in 0..2 {
            let mut recs: Vec<&Rec> = events.iter().filter(|r| r.partition == part).collect();
            recs.sort_by_key(|r| r.offset);
            let mut pl = Pipeline::new(sh.clone());
            let mut o = Output::default();
            for r in recs {
                ends[part as usize] = r.offset + 1;
                pl.process(r.value.as_deref().unwrap_or_default(), &mut o).unwrap();
                if o.baseline_changed {
                    first_change[part as usize] = first_change[part as usize].min(r.offset);
                }
            }
        }
    }
    assert!(
        first_change.iter().all(|&o| o < i64::MAX),
        "the workload teaches baselines"
    );

    let t0 = Instant::now();
    let h = start(&s, "g");
    let decisions = read_all(&mock, &s.topics.decisions, 2, evs.len(), Duration::from_secs(15));
    assert_eq!(decisions.len(), evs.len());
    // give auto-commit (200 ms here) time to commit whatever it may
    std::thread::sleep(Duration::from_millis(1000));
    let c = committed(&mock, &s.worker.group_id, &s.topics.events, 2);
    assert_eq!(h.metrics().changelog_writes.get(), 0, "nothing flushed yet");
    assert!(
        t0.elapsed() < flush,
        "too slow to observe the window before the flush ({:?})",
        t0.elapsed()
    );
    for part in 0..2 {
        assert!(
            c[part] <= first_change[part],
            "partition {part}: offset {} committed before the baseline change at {} was written",
            c[part],
            first_change[part]
        );
    }
    for r in &decisions {
        assert!(
            r.headers.is_empty(),
            "decisions carry no headers by default: {:?}",
            r.headers
        );
    }
    let triggers = read_all(&mock, &s.topics.triggers, 2, 1, Duration::from_secs(5));
    assert!(!triggers.is_empty());
    for t in &triggers {
        let names: Vec<&str> = t.headers.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["content-type"], "default trigger headers");
        assert_eq!(t.header("content-type").as_deref(), Some("application/json"));
        assert!(!event_id(t).is_empty(), "the payload carries the idempotency key");
    }

    wait_for("commits at the end after the flush", Duration::from_secs(15), || {
        committed(&mock, &s.worker.group_id, &s.topics.events, 2) == ends.to_vec()
    });
    let changelog = read_all(&mock, &s.topics.changelog, 2, 1, Duration::from_secs(5));
    let keys: HashSet<Vec<u8>> = changelog.iter().filter_map(|r| r.key.clone()).collect();
    assert_eq!(
        changelog.len(),
        keys.len(),
        "one write per user for the whole window, not one per event or batch"
    );
    assert!(keys.len() <= users && !keys.is_empty());
    assert_eq!(h.shutdown(), WorkerExit::Clean);
}

/// Poison records: the original bytes and key in the DLQ with the reason and the
/// source coordinates; the partition keeps flowing and its offsets are committed.
#[test]
fn poison_records_go_to_the_dlq_and_the_partition_keeps_flowing() {
    init_logs();
    let mock = MockKafka::start(1).unwrap();
    let s = settings(&mock, 1, |_| {});
    let h = start(&s, "d");
    wait_ready(&h);
    let big = format!(r#"{{"event_id":"x","pad":"{}"}}"#, "a".repeat(70_000));
    let poison: Vec<(&str, Option<&str>, Vec<u8>)> = vec![
        ("json", Some("k1"), b"not json at all".to_vec()),
        ("too_large", None, big.into_bytes()),
        (
            "missing_field",
            Some("k3"),
            br#"{"event_id":"m","type":"login"}"#.to_vec(),
        ),
        ("json", Some("k4"), vec![0xff, 0xfe, 0x00]),
        // bigger than what the DLQ takes whole: a bounded prefix, marked truncated
        (
            "too_large",
            Some("k5"),
            vec![b'x'; stepup::worker::sinks::DLQ_MAX_PAYLOAD + 40_000],
        ),
        // well-formed, but stamped in 2100: past the wall clock's allowed skew
        (
            "time_in_future",
            Some("pu"),
            login("future", "pu", 4_102_444_800_000, 0, 10, "d", 2).into_bytes(),
        ),
    ];
    let p = producer(&mock);
    let mut good = 0;
    for (i, (_, key, bytes)) in poison.iter().enumerate() {
        let id = format!("g{i}");
        send(
            &p,
            &s.topics.events,
            Some("pu"),
            Some(login(&id, "pu", T0_MS + i as i64 * 60_000, 0, 10, "d", 2).as_bytes()),
        );
        good += 1;
        send(&p, &s.topics.events, *key, Some(bytes));
    }
    send(
        &p,
        &s.topics.events,
        Some("pu"),
        Some(login("g-last", "pu", T0_MS + 3_600_000, 0, 10, "d", 2).as_bytes()),
    );
    good += 1;
    p.flush(Duration::from_secs(10)).unwrap();

    let dlq = read_all(&mock, &s.topics.dlq, 1, poison.len(), Duration::from_secs(15));
    assert_eq!(dlq.len(), poison.len());
    let events = read_all(&mock, &s.topics.events, 1, poison.len() + good, Duration::from_secs(5));
    for (d, (code, key, bytes)) in dlq.iter().zip(&poison) {
        let max = stepup::worker::sinks::DLQ_MAX_PAYLOAD;
        if bytes.len() > max {
            assert_eq!(d.value.as_deref(), Some(&bytes[..max]), "a bounded prefix");
            assert_eq!(d.header("stepup-truncated").as_deref(), Some("true"));
            assert_eq!(d.header("stepup-original-size"), Some(bytes.len().to_string()));
        } else {
            assert_eq!(d.value.as_deref(), Some(bytes.as_slice()), "original bytes");
            assert_eq!(d.header("stepup-truncated"), None);
        }
        assert_eq!(d.key.as_deref(), key.map(str::as_bytes), "original key");
        assert_eq!(d.header("stepup-error-code").as_deref(), Some(*code));
        assert!(!d.header("stepup-error").unwrap().is_empty());
        assert_eq!(
            d.header("stepup-source-topic").as_deref(),
            Some(s.topics.events.as_str())
        );
        assert_eq!(d.header("stepup-source-partition").as_deref(), Some("0"));
        let off: i64 = d.header("stepup-source-offset").unwrap().parse().unwrap();
        assert_eq!(
            events[off as usize].value.as_deref(),
            Some(bytes.as_slice()),
            "offset points at the record"
        );
    }
    let decisions = read_all(&mock, &s.topics.decisions, 1, good, Duration::from_secs(10));
    assert_eq!(decisions.len(), good);
    assert_eq!(event_id(decisions.last().unwrap()), "g-last");
    let end = events.len() as i64;
    wait_for("commit past the poison", Duration::from_secs(10), || {
        committed(&mock, &s.worker.group_id, &s.topics.events, 1) == vec![end]
    });
    assert!(h
        .metrics()
        .render()
        .contains("stepup_dlq_records_total{code=\"too_large\"} 2"));
    assert_eq!(h.shutdown(), WorkerExit::Clean);
}

/// A password spray against made-up names leaves no state behind: once stream time
/// is past twice the failed-login window, the ghosts are dropped and tombstoned in
/// the changelog (so a restore does not bring them back); contractors stay.
#[test]
fn idle_users_are_swept_with_changelog_tombstones() {
    init_logs();
    let mock = MockKafka::start(1).unwrap();
    let s = settings(&mock, 1, |s| s.worker.changelog_flush_ms = 100);
    let h = start(&s, "sw");
    wait_ready(&h);
    let p = producer(&mock);
    send(
        &p,
        &s.topics.events,
        Some("real"),
        Some(login("r0", "real", T0_MS, 0, 10, "d", 2).as_bytes()),
    );
    let ghosts = 20;
    for i in 0..ghosts {
        let user = format!("ghost-{i}");
        let ev = login(&format!("s{i}"), &user, T0_MS + i as i64 * 1000, 3, 20, "x", 1)
            .replace(r#""outcome":"success""#, r#""outcome":"failure""#);
        send(&p, &s.topics.events, Some(&user), Some(ev.as_bytes()));
    }
    p.flush(Duration::from_secs(10)).unwrap();
    // the ghosts' failures are state for now (a burst against one of them counts)
    let decisions = read_all(&mock, &s.topics.decisions, 1, ghosts + 1, Duration::from_secs(15));
    assert_eq!(decisions.len(), ghosts + 1);
    wait_for("the ghosts held", Duration::from_secs(5), || {
        h.metrics().baselines.get() == ghosts as i64 + 1
    });
    assert_eq!(h.metrics().baselines_expired.get(), 0);
    // two hours later the contractor logs in again
    send(
        &p,
        &s.topics.events,
        Some("real"),
        Some(login("r1", "real", T0_MS + 7_200_000, 0, 10, "d", 2).as_bytes()),
    );
    p.flush(Duration::from_secs(10)).unwrap();
    wait_for("the sweep", Duration::from_secs(15), || {
        h.metrics().baselines_expired.get() == ghosts as u64
    });
    assert_eq!(h.metrics().baselines.get(), 1, "only the contractor is held");
    // the last changelog record of every ghost is a tombstone; the contractor's is not
    let mut last: HashMap<Vec<u8>, Option<Vec<u8>>> = HashMap::new();
    wait_for("tombstones", Duration::from_secs(15), || {
        last.clear();
        for r in read_all(&mock, &s.topics.changelog, 1, 1, Duration::from_secs(5)) {
            last.insert(r.key.unwrap_or_default(), r.value);
        }
        last.iter().filter(|(_, v)| v.is_none()).count() == ghosts
    });
    for (k, v) in &last {
        let k = String::from_utf8_lossy(k);
        assert_eq!(v.is_none(), k.starts_with("ghost-"), "{k}");
    }
    assert_eq!(h.shutdown(), WorkerExit::Clean);
}

/// Worker A scores the first half and stops; worker B restores the baselines from
/// the changelog and scores the second half exactly as one uninterrupted pipeline.
#[test]
fn a_second_worker_restores_baselines_from_the_changelog() {
    init_logs();
    let mock = MockKafka::start(1).unwrap();
    let s = settings(&mock, 2, |_| {});
    let evs = workload("r", 12, 16, T0_MS);
    let half = evs.len() / 2;
    let p = producer(&mock);

    let a = start(&s, "a");
    wait_ready(&a);
    for (_, user, json) in &evs[..half] {
        send(&p, &s.topics.events, Some(user), Some(json.as_bytes()));
    }
    p.flush(Duration::from_secs(10)).unwrap();
    let first = read_all(&mock, &s.topics.decisions, 2, half, Duration::from_secs(15));
    assert_eq!(first.len(), half);
    assert_eq!(a.shutdown(), WorkerExit::Clean);
    let changelog = read_all(&mock, &s.topics.changelog, 2, 1, Duration::from_secs(5));
    assert!(!changelog.is_empty(), "baselines were written");
    let events_a = read_all(&mock, &s.topics.events, 2, half, Duration::from_secs(5));
    for r in &changelog {
        let user = String::from_utf8(r.key.clone().unwrap()).unwrap();
        let input_part = events_a
            .iter()
            .find(|e| e.json()["user_id"].as_str() == Some(user.as_str()))
            .map(|e| e.partition);
        assert_eq!(Some(r.partition), input_part, "changelog partition = input partition");
    }

    let b = start(&s, "b");
    wait_ready(&b);
    for (_, user, json) in &evs[half..] {
        send(&p, &s.topics.events, Some(user), Some(json.as_bytes()));
    }
    p.flush(Duration::from_secs(10)).unwrap();
    let all = read_all(&mock, &s.topics.decisions, 2, evs.len(), Duration::from_secs(15));
    assert_eq!(all.len(), evs.len(), "B decided the second half once");
    let events = read_all(&mock, &s.topics.events, 2, evs.len(), Duration::from_secs(5));
    let want = offline(&shared(&s), &events, &[]);
    let mut compared = 0;
    for r in &all[..] {
        let id = event_id(r);
        if evs[half..].iter().any(|e| e.0 == id) {
            assert_eq!(
                String::from_utf8(r.value.clone().unwrap()).unwrap(),
                want[&id],
                "B's decision for {id} differs from an uninterrupted pipeline"
            );
            compared += 1;
        }
    }
    assert_eq!(compared, evs.len() - half);
    let m = b.metrics().render();
    assert!(m.contains("stepup_restored_records_total"), "{m}");
    assert!(b.metrics().restored_records.get() > 0);
    assert_eq!(b.shutdown(), WorkerExit::Clean);
}

/// Two workers in one group. The second joins at a quiet point (everything
/// committed): both own partitions afterwards, nothing is lost or scored twice, and
/// every decision, before and after the move, equals the offline pipeline's
/// (the new owner restored the moved partitions' baselines).
#[test]
fn rebalance_between_two_workers_moves_state() {
    init_logs();
    let mock = MockKafka::start(1).unwrap();
    let s = settings(&mock, 4, |_| {});
    let evs = workload("b", 24, 16, T0_MS);
    let n = evs.len();
    let half = n / 2;
    let a = start(&s, "a");
    wait_ready(&a);
    let p = producer(&mock);
    for (_, user, json) in &evs[..half] {
        send(&p, &s.topics.events, Some(user), Some(json.as_bytes()));
    }
    p.flush(Duration::from_secs(10)).unwrap();
    let events = read_all(&mock, &s.topics.events, 4, half, Duration::from_secs(5));
    let ends: Vec<i64> = (0..4)
        .map(|p| {
            events
                .iter()
                .filter(|r| r.partition == p)
                .map(|r| r.offset + 1)
                .max()
                .unwrap_or(-1)
        })
        .collect();
    wait_for("first half committed", Duration::from_secs(15), || {
        committed(&mock, &s.worker.group_id, &s.topics.events, 4) == ends
    });
    let b = start(&s, "b");
    wait_for("both workers own partitions", Duration::from_secs(15), || {
        let (pa, pb) = (
            a.metrics().assigned_partitions.get(),
            b.metrics().assigned_partitions.get(),
        );
        pa > 0 && pb > 0 && pa + pb == 4
    });
    wait_ready(&a);
    wait_ready(&b);
    for (_, user, json) in &evs[half..] {
        send(&p, &s.topics.events, Some(user), Some(json.as_bytes()));
    }
    p.flush(Duration::from_secs(10)).unwrap();
    let decisions = read_all(&mock, &s.topics.decisions, 4, n, Duration::from_secs(20));
    let mut count: HashMap<String, usize> = HashMap::new();
    for r in &decisions {
        *count.entry(event_id(r)).or_default() += 1;
    }
    assert_eq!(count.len(), n, "no event lost");
    let dups: Vec<_> = count.iter().filter(|(_, c)| **c > 1).collect();
    assert!(dups.is_empty(), "a clean rebalance re-scores nothing: {dups:?}");
    let events = read_all(&mock, &s.topics.events, 4, n, Duration::from_secs(5));
    let want = offline(&shared(&s), &events, &[]);
    for r in &decisions {
        let id = event_id(r);
        assert_eq!(String::from_utf8(r.value.clone().unwrap()).unwrap(), want[&id], "{id}");
    }
    assert!(
        b.metrics().restored_records.get() > 0,
        "B restored the partitions it took over"
    );
    assert!(
        a.metrics().state_reused.get() >= 1,
        "A kept the state of the partitions it got back (no restore)"
    );
    assert!(a.metrics().rebalances.with_label_values(&["revoke"]).get() >= 1);
    assert_eq!(b.shutdown(), WorkerExit::Clean);
    assert_eq!(a.shutdown(), WorkerExit::Clean);
}

/// A worker joins while events stream in: nothing is lost. (Re-deliveries are
/// allowed: librdkafka's mock coordinator rejects the revoking member's final
/// commit during the join phase, which a real broker accepts.)
#[test]
fn rebalance_mid_stream_loses_nothing() {
    join_mid_stream(None);
}

/// The same with incremental (cooperative-sticky) rebalancing, which an operator
/// may set through `[kafka] partition.assignment.strategy`: revocations and
/// assignments then list only the partitions that move.
#[test]
fn cooperative_rebalance_mid_stream_loses_nothing() {
    join_mid_stream(Some("cooperative-sticky"));
}

fn join_mid_stream(strategy: Option<&str>) {
    init_logs();
    let mock = MockKafka::start(1).unwrap();
    let s = settings(&mock, 4, |s| {
        if let Some(st) = strategy {
            s.kafka.insert("partition.assignment.strategy".into(), st.into());
        }
    });
    let evs = workload("m", 24, 16, T0_MS);
    let n = evs.len();
    let a = start(&s, "mid-a");
    wait_ready(&a);
    let feeder = {
        let p = producer(&mock);
        let topic = s.topics.events.clone();
        let evs = evs.clone();
        std::thread::spawn(move || {
            for (i, (_, user, json)) in evs.iter().enumerate() {
                send(&p, &topic, Some(user), Some(json.as_bytes()));
                if i % 20 == 0 {
                    std::thread::sleep(Duration::from_millis(15));
                }
            }
            p.flush(Duration::from_secs(10)).unwrap();
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let b = start(&s, "mid-b");
    wait_for("both workers own partitions", Duration::from_secs(15), || {
        let (pa, pb) = (
            a.metrics().assigned_partitions.get(),
            b.metrics().assigned_partitions.get(),
        );
        pa > 0 && pb > 0 && pa + pb == 4
    });
    feeder.join().unwrap();
    let decisions = read_distinct(&mock, &s.topics.decisions, 4, n, Duration::from_secs(30));
    let ids: HashSet<String> = decisions.iter().map(event_id).collect();
    assert_eq!(ids.len(), n, "no event lost");
    if strategy.is_some() {
        // incremental: the first worker gave up only what moved, so it never had
        // to park and take back a partition it kept
        assert_eq!(
            a.metrics().state_reused.get(),
            0,
            "no partition was revoked and re-assigned"
        );
        assert_eq!(a.metrics().assigned_partitions.get(), 2);
    }
    assert_eq!(b.shutdown(), WorkerExit::Clean);
    assert_eq!(a.shutdown(), WorkerExit::Clean);
}

/// The contractors topic is a table applied live: a contract ended through the
/// topic denies the next event; bad registry records go to the DLQ.
#[test]
fn registry_updates_apply_live() {
    init_logs();
    let mock = MockKafka::start(1).unwrap();
    let s = settings(&mock, 2, |_| {});
    let p = producer(&mock);
    let active = br#"{"user_id":"lu","contract_start":"2025-01-01","contract_end":"2030-12-31"}"#;
    send(&p, &s.topics.contractors, Some("lu"), Some(active));
    send(&p, &s.topics.contractors, Some("zz"), Some(b"{broken"));
    p.flush(Duration::from_secs(5)).unwrap();
    let h = start(&s, "l");
    wait_ready(&h);
    assert_eq!(h.metrics().registry_contractors.get(), 1);
    send(
        &p,
        &s.topics.events,
        Some("lu"),
        Some(login("l1", "lu", T0_MS, 0, 10, "d", 2).as_bytes()),
    );
    p.flush(Duration::from_secs(5)).unwrap();
    let d = read_all(&mock, &s.topics.decisions, 2, 1, Duration::from_secs(10));
    assert_ne!(d[0].json()["deny_reason"].as_str(), Some("contract_inactive"));

    let ended = br#"{"user_id":"lu","contract_start":"2025-01-01","contract_end":"2026-01-31"}"#;
    send(&p, &s.topics.contractors, Some("lu"), Some(ended));
    p.flush(Duration::from_secs(5)).unwrap();
    wait_for("registry update applied", Duration::from_secs(10), || {
        h.metrics().registry_updates.with_label_values(&["upsert"]).get() == 2
    });
    send(
        &p,
        &s.topics.events,
        Some("lu"),
        Some(login("l2", "lu", T0_MS + 60_000, 0, 10, "d", 2).as_bytes()),
    );
    p.flush(Duration::from_secs(5)).unwrap();
    let d = read_all(&mock, &s.topics.decisions, 2, 2, Duration::from_secs(10));
    let l2 = d.iter().find(|r| event_id(r) == "l2").expect("l2 decided").json();
    assert_eq!(l2["decision"], "deny");
    assert_eq!(l2["deny_reason"], "contract_inactive");

    // a tombstone removes the contractor: the contract rule no longer applies
    send(&p, &s.topics.contractors, Some("lu"), None);
    p.flush(Duration::from_secs(5)).unwrap();
    wait_for("delete applied", Duration::from_secs(10), || {
        h.metrics().registry_contractors.get() == 0
    });
    send(
        &p,
        &s.topics.events,
        Some("lu"),
        Some(login("l3", "lu", T0_MS + 120_000, 0, 10, "d", 2).as_bytes()),
    );
    p.flush(Duration::from_secs(5)).unwrap();
    let d = read_all(&mock, &s.topics.decisions, 2, 3, Duration::from_secs(10));
    let l3 = d.iter().find(|r| event_id(r) == "l3").expect("l3 decided").json();
    assert_ne!(l3["deny_reason"].as_str(), Some("contract_inactive"));

    let dlq = read_all(&mock, &s.topics.dlq, 2, 1, Duration::from_secs(5));
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].value.as_deref(), Some(b"{broken".as_slice()));
    assert_eq!(
        dlq[0].header("stepup-source-topic").as_deref(),
        Some(s.topics.contractors.as_str())
    );
    assert_eq!(dlq[0].header("stepup-error-code").as_deref(), Some("registry_invalid"));
    assert_eq!(h.shutdown(), WorkerExit::Clean);
}

/// The only broker goes down mid-stream: the worker reports not ready, retries,
/// and after the broker returns every event is decided and committed.
#[test]
fn a_broker_outage_is_survived_without_loss() {
    init_logs();
    let mock = MockKafka::start(1).unwrap();
    let s = settings(&mock, 2, |_| {});
    let h = start(&s, "o");
    wait_ready(&h);
    let evs = workload("x", 8, 20, T0_MS);
    let n = evs.len();
    let p = producer(&mock);
    for (_, user, json) in &evs[..n / 2] {
        send(&p, &s.topics.events, Some(user), Some(json.as_bytes()));
    }
    p.flush(Duration::from_secs(5)).unwrap();
    mock.broker_down(1).unwrap();
    for (_, user, json) in &evs[n / 2..] {
        send(&p, &s.topics.events, Some(user), Some(json.as_bytes())); // queued in the client
    }
    wait_for("not ready during the outage", Duration::from_secs(10), || {
        !h.readiness().ready
    });
    std::thread::sleep(Duration::from_millis(1500));
    mock.broker_up(1).unwrap();
    p.flush(Duration::from_secs(15)).unwrap();
    wait_for("ready again", Duration::from_secs(15), || h.readiness().ready);
    // at-least-once: the records decided before the outage may come again (their
    // commit can be lost with the session), so wait for distinct ids, not records
    let decisions = read_distinct(&mock, &s.topics.decisions, 2, n, Duration::from_secs(30));
    let ids: HashSet<String> = decisions.iter().map(event_id).collect();
    assert_eq!(ids.len(), n, "no event lost (duplicates allowed: at-least-once)");
    let events = read_all(&mock, &s.topics.events, 2, n, Duration::from_secs(5));
    let ends: Vec<i64> = (0..2)
        .map(|p| {
            events
                .iter()
                .filter(|r| r.partition == p)
                .map(|r| r.offset + 1)
                .max()
                .unwrap_or(-1)
        })
        .collect();
    wait_for("commits after the outage", Duration::from_secs(10), || {
        committed(&mock, &s.worker.group_id, &s.topics.events, 2) == ends
    });
    assert_eq!(h.shutdown(), WorkerExit::Clean);
}

/// The binary: `stepup run --bootstrap-servers ... --geoip ...` with no config
/// file serves /readyz and /metrics, scores, and on SIGTERM drains, commits and
/// exits 0.
#[test]
fn the_run_command_serves_and_stops_cleanly_on_sigterm() {
    init_logs();
    let mock = MockKafka::start(1).unwrap();
    let s = settings(&mock, 2, |_| {});
    let dir = tempfile::tempdir().unwrap();
    let dbs = geo_fixture::write_all(dir.path()).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_stepup"))
        .args(["run", "--bootstrap-servers", mock.bootstrap_servers(), "--geoip"])
        .arg(&dbs.city)
        .args(["--asn-db"])
        .arg(&dbs.asn)
        .args([
            "--metrics-addr",
            &addr.to_string(),
            "--no-create-topics",
            "--group-id",
            "bin",
        ])
        .env_remove("STEPUP_CONFIG")
        .env("STEPUP_KAFKA_FETCH_WAIT_MAX_MS", "10")
        .env("STEPUP_KAFKA_AUTO_COMMIT_INTERVAL_MS", "200")
        .env("STEPUP_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn stepup run");
    wait_for("/readyz 200", Duration::from_secs(15), || {
        matches!(stepup::http::get(addr, "/readyz"), Ok((200, _)))
    });
    let evs = workload("bin", 5, 6, T0_MS);
    let p = producer(&mock);
    for (_, user, json) in &evs {
        send(&p, &s.topics.events, Some(user), Some(json.as_bytes()));
    }
    p.flush(Duration::from_secs(5)).unwrap();
    let d = read_all(&mock, &s.topics.decisions, 2, evs.len(), Duration::from_secs(15));
    assert_eq!(d.len(), evs.len());
    let (code, m) = stepup::http::get(addr, "/metrics").unwrap();
    assert_eq!(code, 200);
    assert!(m.contains(&format!("stepup_events_scored_total {}", evs.len())), "{m}");
    let t0 = Instant::now();
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status:?}");
    assert!(t0.elapsed() < Duration::from_secs(10), "bounded shutdown");
    let events = read_all(&mock, &s.topics.events, 2, evs.len(), Duration::from_secs(5));
    let ends: Vec<i64> = (0..2)
        .map(|p| {
            events
                .iter()
                .filter(|r| r.partition == p)
                .map(|r| r.offset + 1)
                .max()
                .unwrap_or(-1)
        })
        .collect();
    assert_eq!(
        committed(&mock, "bin", &s.topics.events, 2),
        ends,
        "everything committed at exit"
    );
}

/// Restore reads changelog partition p for input partition p: a changelog with a
/// different partition count is refused at start with a clear error; missing
/// topics with creation disabled too.
#[test]
fn start_refuses_a_changelog_with_another_partition_count() {
    init_logs();
    let mock = MockKafka::start(1).unwrap();
    let mut s = Settings::default_embedded().unwrap();
    s.kafka
        .insert("bootstrap.servers".into(), mock.bootstrap_servers().into());
    s.worker.create_topics = false;
    for t in [
        &s.topics.events,
        &s.topics.contractors,
        &s.topics.triggers,
        &s.topics.decisions,
        &s.topics.dlq,
    ] {
        mock.create_topic(t, 3).unwrap();
    }
    let opts = WorkerOptions {
        connect_timeout: Duration::from_secs(5),
        ..WorkerOptions::default()
    };
    let e = worker::start(shared(&s), opts.clone())
        .err()
        .expect("missing changelog refused")
        .to_string();
    assert!(
        e.contains(&s.topics.changelog) && e.contains("--no-create-topics"),
        "{e}"
    );
    mock.create_topic(&s.topics.changelog, 2).unwrap();
    let e = worker::start(shared(&s), opts)
        .err()
        .expect("mismatch refused")
        .to_string();
    assert!(e.contains("has 2 partitions") && e.contains("has 3"), "{e}");
}

/// `stepup demo` (short): mock cluster, the real worker, generated traffic; prints
/// triggers and the summary, exits 0.
#[test]
fn the_demo_runs_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let dbs = geo_fixture::write_all(dir.path()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stepup"))
        .args([
            "--log",
            "warn",
            "demo",
            "--duration",
            "6s",
            "--users",
            "15",
            "--days",
            "6",
            "--geoip",
        ])
        .arg(&dbs.city)
        .arg("--asn-db")
        .arg(&dbs.asn)
        .env_remove("STEPUP_CONFIG")
        .output()
        .expect("run the demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("triggers published"), "{stdout}");
    assert!(stdout.contains("dead-lettered records"), "{stdout}");
    let dlq_line = stdout.lines().find(|l| l.contains("dead-lettered records")).unwrap();
    assert!(dlq_line.contains(" 3 "), "the three poison records: {dlq_line}");
}
