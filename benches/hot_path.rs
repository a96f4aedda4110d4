//! The hot path: decode → enrich → score → decide → encode, on a realistic mix
//! (10k users, 50k distinct IPs, 2k distinct user agents), warm and cold caches.
//!
//! `cargo bench --bench hot_path` (geo: the fixture DB; set STEPUP_BENCH_GEOIP to a
//! real city database such as DB-IP Lite to measure with it). Besides criterion's
//! throughput, it prints per-event latency percentiles and baseline memory.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use stepup::config::Settings;
use stepup::enrich::GeoDatabases;
use stepup::geo_fixture::{self, NetKind};
use stepup::pipeline::{Output, Pipeline, Shared};

const USERS: usize = 10_000;
const IPS: usize = 50_000;
const UAS: usize = 2_000;
const EVENTS: usize = 100_000;

fn shared() -> Shared {
    let settings = Arc::new(Settings::default_embedded().expect("settings"));
    let geo = match std::env::var("STEPUP_BENCH_GEOIP") {
        Ok(p) => GeoDatabases::open(std::path::Path::new(&p), None).expect("geo db"),
        Err(_) => GeoDatabases::from_bytes(geo_fixture::city_db(), Some(geo_fixture::asn_db())).expect("fixture"),
    };
    Shared {
        settings,
        geo: Arc::new(geo),
    }
}

fn addr(net: &ipnetwork::IpNetwork, host: u32) -> IpAddr {
    match net {
        ipnetwork::IpNetwork::V4(n) => {
            let size = 1u32 << (32 - n.prefix()).min(31);
            IpAddr::V4((u32::from(n.network()) + 1 + host % (size - 2)).into())
        }
        ipnetwork::IpNetwork::V6(n) => IpAddr::V6((u128::from(n.network()) + 1 + host as u128).into()),
    }
}

/// A realistic event mix: each user has a home network and 5 addresses there, one
/// or two devices and user agents from a 2k pool; 5% of logins come from elsewhere.
fn workload(seed: u64) -> Vec<Vec<u8>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let nets: Vec<_> = geo_fixture::networks()
        .iter()
        .filter(|n| n.kind != NetKind::Hosting)
        .collect();
    let browsers = [
        ("Windows NT 10.0; Win64; x64", "Chrome"),
        ("Macintosh; Intel Mac OS X 10_15_7", "Chrome"),
        ("X11; Linux x86_64", "Firefox"),
        ("Windows NT 10.0; Win64; x64", "Edg"),
    ];
    let uas: Vec<String> = (0..UAS)
        .map(|i| {
            let (os, b) = browsers[i % browsers.len()];
            format!(
                "Mozilla/5.0 ({os}) AppleWebKit/537.36 (KHTML, like Gecko) {b}/{}.0.{}.{} Safari/537.36",
                100 + i % 30,
                i / 30,
                i % 97
            )
        })
        .collect();
    let ips_per_user = IPS / USERS;
    let users: Vec<(usize, usize)> = (0..USERS)
        .map(|_| (rng.gen_range(0..nets.len()), rng.gen_range(0..UAS)))
        .collect();
    let t0 = 1_772_438_400_000i64; // 2026-03-02
    let mut out = Vec::with_capacity(EVENTS);
    for i in 0..EVENTS {
        let u = rng.gen_range(0..USERS);
        let (home, ua) = users[u];
        let (net, host) = if rng.gen_bool(0.05) {
            (rng.gen_range(0..nets.len()), rng.gen_range(0..1000))
        } else {
            (home, (u * ips_per_user + rng.gen_range(0..ips_per_user)) as u32)
        };
        let ip = addr(&nets[net].net, host);
        let t = t0 + i as i64 * 30_000;
        let time = stepup::timefmt::rfc3339_ms(t);
        let line = if rng.gen_bool(0.3) {
            format!(
                r#"{{"event_id":"b{i}","time":"{time}","type":"access","user_id":"user-{u}","ip":"{ip}","user_agent":"{}","device_id":"dev-{u}","aal":1,"resource":"git/repo-{}","groups":["contractors","dev"]}}"#,
                uas[ua],
                i % 50
            )
        } else {
            let aal = if rng.gen_bool(0.3) { 2 } else { 1 };
            format!(
                r#"{{"event_id":"b{i}","time":"{time}","type":"login","user_id":"user-{u}","outcome":"success","ip":"{ip}","user_agent":"{}","device_id":"dev-{u}","aal":{aal},"methods":["pwd"],"groups":["contractors","dev"],"source":"okta"}}"#,
                uas[ua]
            )
        };
        out.push(line.into_bytes());
    }
    out
}

fn warm_pipeline(events: &[Vec<u8>]) -> Pipeline {
    let mut p = Pipeline::new(shared());
    let mut out = Output::default();
    for e in events {
        let _ = p.process(e, &mut out);
    }
    p
}

fn bench(c: &mut Criterion) {
    let events = workload(7);
    let mut p = warm_pipeline(&events);
    let mut out = Output::default();

    let mut g = c.benchmark_group("hot_path");
    g.throughput(Throughput::Elements(10_000));
    let mut cursor = 0usize;
    g.bench_function("warm_10k_events", |b| {
        b.iter(|| {
            for _ in 0..10_000 {
                let e = &events[cursor % events.len()];
                cursor += 1;
                let _ = p.process(e, &mut out);
            }
            out.json.len()
        })
    });
    g.throughput(Throughput::Elements(1_000));
    g.bench_function("cold_caches_1k_events", |b| {
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            for _ in 0..iters {
                p.enricher_mut().clear_caches();
                let s = Instant::now();
                for _ in 0..1_000 {
                    let e = &events[cursor % events.len()];
                    cursor += 1;
                    let _ = p.process(e, &mut out);
                }
                total += s.elapsed();
            }
            total
        })
    });
    g.finish();

    // Per-event latency percentiles (warm), and memory per baseline.
    let mut lat: Vec<u64> = Vec::with_capacity(events.len());
    for e in &events {
        let s = Instant::now();
        let _ = p.process(e, &mut out);
        lat.push(s.elapsed().as_nanos() as u64);
    }
    lat.sort_unstable();
    let pct = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    let total: u64 = lat.iter().sum();
    let users = p.state().len();
    let bytes: usize = p.state().users().map(|(_, b)| b.approx_bytes()).sum();
    let encoded: usize = p.state().users().map(|(_, b)| b.to_bytes().len()).sum();
    println!(
        "hot_path warm per-event latency: p50 {} ns, p99 {} ns, p99.9 {} ns; mean throughput {:.0} events/s on one core",
        pct(0.5),
        pct(0.99),
        pct(0.999),
        lat.len() as f64 / (total as f64 / 1e9)
    );
    println!(
        "baselines: {users} users, {:.0} bytes/user in memory, {:.0} bytes/user encoded",
        bytes as f64 / users.max(1) as f64,
        encoded as f64 / users.max(1) as f64
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
