//! End-to-end benchmark against a real broker: the stepup worker (consume → score
//! → produce) beside a passthrough (consume → produce the same bytes, no scoring)
//! with the same rdkafka settings, on the same broker, in the same run.
//!
//!   cargo bench --bench e2e
//!
//! Broker: `STEPUP_TEST_BOOTSTRAP`, else a tansu of its own that
//! `scripts/kafka-broker.sh` starts (data in target/tansu-bench, port 19095 or
//! `STEPUP_BENCH_BROKER_PORT`), restarts empty before every run (tansu 0.6.0
//! slows down as its SQLite store grows) and removes at the end.
//!
//! Pipelines, each on its own fresh topics and group: "broker only" (produce and
//! read back the same topic: the floor), "passthrough", "passthrough x2" (each
//! input copied to two topics) and "stepup run" (a decision per event, a trigger
//! for step_up/deny, coalesced baseline changes). `STEPUP_BENCH_ONLY` = a
//! comma-separated subset of broker, passthrough, fanout, worker.
//! Two phases per run:
//! - throughput: M pre-generated events produced as fast as the client can, from
//!   the first send to the last output record read: events/s;
//! - latency: K more events paced at R/s (below saturation): p50/p99 from the
//!   send of an event to the arrival of its output (decision, or copied record).
//! Each pipeline runs `STEPUP_BENCH_REPEAT` times (3) in rotating order; the
//! table gives medians, and the ratio is of the median throughputs.
//!
//! Settings: `STEPUP_BENCH_EVENTS` (M, 20000), `STEPUP_BENCH_PACED` (K, 1000),
//! `STEPUP_BENCH_RATE` (R, 200), `STEPUP_BENCH_PARTITIONS` (4).
//! Run by `cargo test --all-targets` (no `--bench` argument) it only smoke-tests
//! with a few hundred events, and only when `STEPUP_TEST_BOOTSTRAP` is set.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::{HashMap, VecDeque};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureProducer;
use rdkafka::Message;

use common::*;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Stops the broker at the end when this run started it.
struct BrokerGuard(Option<std::path::PathBuf>);
impl BrokerGuard {
    /// Restart our broker with an empty store.
    fn fresh(&self) {
        if let Some(script) = &self.0 {
            for what in ["clean", "start"] {
                let ok = Command::new("bash")
                    .arg(script)
                    .arg(what)
                    .stderr(std::process::Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                assert!(ok, "scripts/kafka-broker.sh {what} failed");
            }
        }
    }
}
impl Drop for BrokerGuard {
    fn drop(&mut self) {
        if let Some(script) = self.0.take() {
            let _ = Command::new("bash").arg(script).arg("clean").status();
        }
    }
}

fn broker(quick: bool) -> Option<(String, BrokerGuard)> {
    if let Ok(bs) = std::env::var(BOOTSTRAP_ENV) {
        if !bs.trim().is_empty() {
            if !quick {
                println!(
                    "e2e bench: using {BOOTSTRAP_ENV}={bs}. Note: tansu slows down as its SQLite store grows \
                     (measured: ~14k events/s fresh, under 100/s after an hour of test traffic); unset \
                     {BOOTSTRAP_ENV} to let the bench run a fresh broker of its own"
                );
            }
            return Some((bs.trim().to_string(), BrokerGuard(None)));
        }
    }
    if quick {
        println!("e2e bench: test mode without {BOOTSTRAP_ENV}: skipped (run `cargo bench --bench e2e`)");
        return None;
    }
    // A fresh broker of its own (own data dir and port), removed at the end.
    let script = manifest_dir().join("scripts/kafka-broker.sh");
    std::env::set_var("STEPUP_BROKER_DIR", "target/tansu-bench");
    std::env::set_var(
        "STEPUP_BROKER_PORT",
        std::env::var("STEPUP_BENCH_BROKER_PORT").unwrap_or_else(|_| "19095".into()),
    );
    let run = |what: &str| {
        Command::new("bash")
            .arg(&script)
            .arg(what)
            .status()
            .is_ok_and(|s| s.success())
    };
    assert!(
        run("clean") && run("start"),
        "scripts/kafka-broker.sh start failed (is tansu installed? scripts/kafka-broker.sh install)"
    );
    let out = Command::new("bash").arg(&script).arg("bootstrap").output().unwrap();
    let bs = String::from_utf8_lossy(&out.stdout).trim().to_string();
    std::env::set_var(BOOTSTRAP_ENV, &bs);
    Some((bs, BrokerGuard(Some(script))))
}

#[derive(Debug, Default, Clone)]
struct Figures {
    events_per_s: f64,
    burst_s: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// Produce `events` (at `rate`/s, or as fast as possible), wait for one output per
/// event on `out`, and measure.
fn drive(bs: &str, topic_in: &str, out: &TopicReader, events: &[GenEvent], rate: Option<f64>, what: &str) -> Figures {
    let p = producer(bs);
    let already = out.len();
    let distinct_before = out.distinct();
    let mut sent_at: HashMap<&str, Instant> = HashMap::with_capacity(events.len());
    let t0 = Instant::now();
    let mut futs = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        if let Some(r) = rate {
            let due = Duration::from_secs_f64(i as f64 / r);
            let el = t0.elapsed();
            if due > el {
                std::thread::sleep(due - el);
            }
        }
        sent_at.insert(&e.event_id, Instant::now());
        futs.push(send(
            &p,
            topic_in,
            None,
            Some(e.user_id.as_bytes()),
            e.json.as_bytes(),
            &[],
        ));
    }
    for f in futs {
        delivered(f, topic_in);
    }
    let n = events.len();
    let timeout = Duration::from_secs(120 + (n / 200) as u64);
    let recs = out.wait_distinct(
        distinct_before + n,
        timeout,
        &format!("{what}: an output for each of {n} events"),
        String::new,
    );
    let mut first: HashMap<String, Instant> = HashMap::with_capacity(n);
    for r in &recs[already..] {
        if let Some(id) = &r.event_id {
            first.entry(id.clone()).or_insert(r.received);
        }
    }
    let mut lat: Vec<f64> = Vec::with_capacity(n);
    let mut last = t0;
    for e in events {
        let arr = first[&e.event_id];
        last = last.max(arr);
        lat.push(arr.duration_since(sent_at[e.event_id.as_str()]).as_secs_f64() * 1000.0);
    }
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let span = last.duration_since(t0).as_secs_f64();
    Figures {
        events_per_s: n as f64 / span,
        burst_s: span,
        p50_ms: percentile(&lat, 0.5),
        p99_ms: percentile(&lat, 0.99),
    }
}

/// consume → produce the same bytes, at-least-once like the worker: the input
/// offset is stored for commit only after the copy is acknowledged.
struct Passthrough {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<u64>>,
}

/// The rdkafka settings of the worker's clients (src/worker/mod.rs: KafkaConfigs,
/// plus the session settings the tests give every worker), so that the only
/// difference between the two pipelines is the work in between.
fn pipeline_consumer(bs: &str, group: &str) -> BaseConsumer {
    client_config(bs)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1000")
        .create()
        .expect("passthrough consumer")
}

fn pipeline_producer(bs: &str) -> FutureProducer {
    client_config(bs)
        .set("message.timeout.ms", "0")
        .set("linger.ms", "5")
        .set("partitioner", "murmur2_random")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .expect("passthrough producer")
}

impl Passthrough {
    /// Copies every input record to each of `topics_out` (the worker writes ~2 records
    /// per event: a decision and a baseline change, plus a trigger for some).
    fn start(bs: &str, topic_in: &str, topics_out: &[&str], group: &str, partitions: usize) -> Passthrough {
        let c = pipeline_consumer(bs, group);
        c.subscribe(&[topic_in]).expect("subscribe");
        let p = pipeline_producer(bs);
        // Joined and assigned before the clock starts, as the worker is ready.
        let deadline = Instant::now() + Duration::from_secs(60);
        while c.assignment().map(|a| a.count()).unwrap_or(0) < partitions {
            assert!(Instant::now() < deadline, "passthrough consumer got no assignment");
            if let Some(Ok(_)) = c.poll(Duration::from_millis(100)) {
                panic!("passthrough read a record before the benchmark produced any");
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let tin = topic_in.to_string();
        let touts: Vec<String> = topics_out.iter().map(|t| t.to_string()).collect();
        let handle = std::thread::spawn(move || {
            let mut pending: VecDeque<(Vec<rdkafka::producer::DeliveryFuture>, i32, i64)> = VecDeque::new();
            let mut copied = 0u64;
            while !s2.load(Ordering::Relaxed) {
                if let Some(m) = c.poll(Duration::from_millis(if pending.is_empty() { 100 } else { 1 })) {
                    let m = m.expect("passthrough consume");
                    let fs = touts
                        .iter()
                        .map(|t| send(&p, t, None, m.key(), m.payload().unwrap_or_default(), &[]))
                        .collect();
                    pending.push_back((fs, m.partition(), m.offset()));
                }
                // An input is done when all its copies are acknowledged, in order.
                while let Some((fs, part, off)) = pending.front_mut() {
                    let mut i = 0;
                    while i < fs.len() {
                        match (&mut fs[i]).now_or_never() {
                            Some(Ok(Ok(_))) => {
                                fs.swap_remove(i);
                            }
                            Some(other) => panic!("passthrough delivery failed: {other:?}"),
                            None => i += 1,
                        }
                    }
                    if !fs.is_empty() {
                        break;
                    }
                    // rd_kafka_offset_store stores offset + 1 itself (the next to read).
                    c.store_offset(&tin, *part, *off).expect("store_offset");
                    copied += 1;
                    pending.pop_front();
                }
            }
            copied
        });
        Passthrough {
            stop,
            handle: Some(handle),
        }
    }

    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Pipe {
    Broker,
    Passthrough,
    Fanout,
    Worker,
}

impl Pipe {
    fn name(self) -> &'static str {
        match self {
            Pipe::Broker => "broker only",
            Pipe::Passthrough => "passthrough",
            Pipe::Fanout => "passthrough x2",
            Pipe::Worker => "stepup run",
        }
    }
    fn key(self) -> &'static str {
        match self {
            Pipe::Broker => "broker",
            Pipe::Passthrough => "passthrough",
            Pipe::Fanout => "fanout",
            Pipe::Worker => "worker",
        }
    }
}

/// One run of one pipeline on fresh topics: (burst figures, paced figures).
fn run_pipe(pipe: Pipe, bs: &str, parts: i32, burst: &[GenEvent], paced: &[GenEvent], rate: f64) -> (Figures, Figures) {
    let name = pipe.name();
    match pipe {
        Pipe::Broker => {
            // The floor: produce → read back the same topic, no pipeline in between.
            let t = Topics::new("bench-broker", parts);
            create_topics(bs, &[(&t.events, parts, false)]);
            let out = TopicReader::start(bs, &t.events);
            let a = drive(bs, &t.events, &out, burst, None, "broker burst");
            let b = drive(bs, &t.events, &out, paced, Some(rate), "broker paced");
            (a, b)
        }
        Pipe::Passthrough | Pipe::Fanout => {
            let fanout = if pipe == Pipe::Passthrough { 1 } else { 2 };
            let t = Topics::new("bench-pt", parts);
            let outs: Vec<&str> = [t.decisions.as_str(), t.changelog.as_str()][..fanout].to_vec();
            let mut specs = vec![(t.events.as_str(), parts, false)];
            specs.extend(outs.iter().map(|o| (*o, parts, false)));
            create_topics(bs, &specs);
            let out = TopicReader::start(bs, &t.decisions);
            let pt = Passthrough::start(bs, &t.events, &outs, &t.group, parts as usize);
            let a = drive(bs, &t.events, &out, burst, None, &format!("{name} burst"));
            let b = drive(bs, &t.events, &out, paced, Some(rate), &format!("{name} paced"));
            let copied = pt.stop();
            assert_eq!(copied as usize, burst.len() + paced.len(), "{name} copied {copied}");
            (a, b)
        }
        Pipe::Worker => {
            let t = Topics::new("bench-worker", parts);
            t.create(bs);
            let out = TopicReader::start(bs, &t.decisions);
            let mut w = Worker::spawn("bench-worker", bs, &t, &[]);
            w.wait_ready(Duration::from_secs(120));
            let a = drive(bs, &t.events, &out, burst, None, "stepup burst");
            let b = drive(bs, &t.events, &out, paced, Some(rate), "stepup paced");
            let st = w.terminate(Duration::from_secs(30));
            assert!(
                st.is_some_and(|s| s.success()),
                "worker did not exit 0: {st:?}\n{}",
                w.log_tail(30)
            );
            (a, b)
        }
    }
}

fn median_by(runs: &[(Figures, Figures)], f: impl Fn(&(Figures, Figures)) -> f64) -> f64 {
    let mut v: Vec<f64> = runs.iter().map(f).collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

fn main() {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let quick = !bench_mode;
    let Some((bs, guard)) = broker(quick) else { return };
    let m = if quick {
        300
    } else {
        env_usize("STEPUP_BENCH_EVENTS", 20_000)
    };
    let k = if quick {
        200
    } else {
        env_usize("STEPUP_BENCH_PACED", 1_000)
    };
    let rate = env_usize("STEPUP_BENCH_RATE", 200) as f64;
    let parts = env_usize("STEPUP_BENCH_PARTITIONS", 4) as i32;
    let reps = if quick {
        1
    } else {
        env_usize("STEPUP_BENCH_REPEAT", 3).max(1)
    };
    let only = std::env::var("STEPUP_BENCH_ONLY").unwrap_or_default();
    let pipes: Vec<Pipe> = [Pipe::Broker, Pipe::Passthrough, Pipe::Fanout, Pipe::Worker]
        .into_iter()
        .filter(|p| only.is_empty() || only.split(',').any(|o| o.trim() == p.key()))
        .collect();
    // A broker of our own is restarted empty before every run: tansu's SQLite store
    // slows down as it grows, so a pipeline run later would be measured on a slower
    // broker. The order rotates between repetitions; medians are reported.
    let fresh = guard.0.is_some() && !quick;
    println!(
        "e2e bench: {m} events burst + {k} paced at {rate}/s, {parts} partitions, {reps} runs each{}, broker {bs}",
        if fresh { " on a fresh broker" } else { "" }
    );
    let events = gen_events(&unique("bench"), 7, 500, m + k);
    let (burst, paced) = events.split_at(m);

    let mut runs: Vec<Vec<(Figures, Figures)>> = vec![Vec::new(); pipes.len()];
    for rep in 0..reps {
        for j in 0..pipes.len() {
            let i = (j + rep) % pipes.len();
            let pipe = pipes[i];
            if fresh {
                guard.fresh();
            }
            let (a, b) = run_pipe(pipe, &bs, parts, burst, paced, rate);
            println!(
                "run {}: {:<14} {:>7.0} events/s ({m} in {:.2}s); paced p50 {:.1} ms p99 {:.1} ms",
                rep + 1,
                pipe.name(),
                a.events_per_s,
                a.burst_s,
                b.p50_ms,
                b.p99_ms
            );
            runs[i].push((a, b));
        }
    }

    println!();
    println!(
        "{:<14} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}   (medians of {reps})",
        "pipeline", "events/s", "min", "max", "burst p50", "paced p50", "paced p99"
    );
    for (i, pipe) in pipes.iter().enumerate() {
        let r = &runs[i];
        let rates: Vec<f64> = r.iter().map(|x| x.0.events_per_s).collect();
        println!(
            "{:<14} {:>10.0} {:>10.0} {:>10.0} {:>8.0}ms {:>8.1}ms {:>8.1}ms",
            pipe.name(),
            median_by(r, |x| x.0.events_per_s),
            rates.iter().cloned().fold(f64::INFINITY, f64::min),
            rates.iter().cloned().fold(0.0, f64::max),
            median_by(r, |x| x.0.p50_ms),
            median_by(r, |x| x.1.p50_ms),
            median_by(r, |x| x.1.p99_ms),
        );
    }
    let rate_of = |p: Pipe| {
        pipes
            .iter()
            .position(|x| *x == p)
            .map(|i| median_by(&runs[i], |x| x.0.events_per_s))
    };
    if let (Some(w), Some(p)) = (rate_of(Pipe::Worker), rate_of(Pipe::Passthrough)) {
        println!(
            "ratio stepup/passthrough throughput (medians): {:.2} (goal >= 0.80)",
            w / p
        );
    }
}
