//! Shared helpers for scoring tests: a pipeline over the project's fixture geo
//! databases, addresses picked from the fixture's networks, and event builders.
#![allow(dead_code)]

use std::net::IpAddr;
use std::sync::Arc;

use serde_json::{json, Value};
use stepup::config::Settings;
use stepup::enrich::GeoDatabases;
use stepup::geo_fixture::{self, NetKind};
use stepup::pipeline::{Output, Pipeline, Shared};

pub fn shared_with(settings: Settings) -> Shared {
    let geo = GeoDatabases::from_bytes(geo_fixture::city_db(), Some(geo_fixture::asn_db())).expect("fixture dbs");
    Shared {
        settings: Arc::new(settings),
        geo: Arc::new(geo),
    }
}

/// A pipeline whose population already holds 30 other contractors across the
/// fixture world (production never scores against a population of one).
pub fn pipeline() -> Pipeline {
    let mut p = empty_pipeline();
    let cities = [
        "Madrid",
        "Paris",
        "Berlin",
        "London",
        "New York",
        "Tokyo",
        "Sydney",
        "São Paulo",
        "Lisbon",
        "Mumbai",
    ];
    let uas = [CHROME_WIN, FIREFOX_LINUX, CHROME_WIN_121];
    for u in 0..30u32 {
        let city = cities[u as usize % cities.len()];
        for i in 0..10u32 {
            let e = Ev::login(
                &format!("pop-{u}"),
                &t(i * 2 % 5, 8 + i % 9, u),
                &ip_in(city, NetKind::Residential, (u % 2) as usize, 50 + u),
            )
            .set("device_id", json!(format!("pop-dev-{u}")))
            .set("user_agent", json!(uas[u as usize % uas.len()]))
            .aal2();
            score(&mut p, &e);
        }
    }
    p
}

pub fn empty_pipeline() -> Pipeline {
    Pipeline::new(shared_with(Settings::default_embedded().expect("default settings")))
}

/// The `nth` address (1-based host number) of the `which`-th network of `kind` in `city`.
pub fn ip_in(city: &str, kind: NetKind, which: usize, nth: u32) -> String {
    let ci = geo_fixture::cities()
        .iter()
        .position(|c| c.name == city)
        .unwrap_or_else(|| panic!("no city {city}"));
    let nets: Vec<_> = geo_fixture::networks()
        .iter()
        .filter(|n| n.city == ci && n.kind == kind)
        .collect();
    let net = nets
        .get(which)
        .unwrap_or_else(|| panic!("{city} has no {kind:?} network #{which}"));
    match net.net {
        ipnetwork::IpNetwork::V4(v4) => {
            let base = u32::from(v4.network());
            IpAddr::V4((base + nth).into()).to_string()
        }
        ipnetwork::IpNetwork::V6(v6) => {
            let base = u128::from(v6.network());
            IpAddr::V6((base + nth as u128).into()).to_string()
        }
    }
}

pub const CHROME_WIN: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
pub const CHROME_WIN_121: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/121.0.0.0 Safari/537.36";
pub const FIREFOX_LINUX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";
pub const CURL: &str = "curl/8.4.0";

/// A builder for native events.
#[derive(Clone)]
pub struct Ev(pub Value);

static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Ev {
    pub fn login(user: &str, time: &str, ip: &str) -> Ev {
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ev(json!({
            "event_id": format!("e{n}"), "time": time, "type": "login", "user_id": user,
            "outcome": "success", "ip": ip, "user_agent": CHROME_WIN, "device_id": "laptop-1",
            "aal": 1, "methods": ["pwd"], "groups": ["contractors", "dev"]
        }))
    }
    pub fn access(user: &str, time: &str, ip: &str, resource: &str, groups: &[&str]) -> Ev {
        let mut e = Ev::login(user, time, ip);
        e.0["type"] = json!("access");
        e.0["resource"] = json!(resource);
        e.0["groups"] = json!(groups);
        e
    }
    pub fn set(mut self, k: &str, v: Value) -> Ev {
        self.0[k] = v;
        self
    }
    pub fn aal2(self) -> Ev {
        self.set("aal", json!(2)).set("methods", json!(["pwd", "otp"]))
    }
    pub fn failed(self) -> Ev {
        self.set("outcome", json!("failure"))
    }
    pub fn bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.0).expect("json")
    }
}

/// Process one event and return its decision as JSON.
pub fn score(p: &mut Pipeline, e: &Ev) -> Value {
    let mut out = Output::default();
    p.process(&e.bytes(), &mut out)
        .unwrap_or_else(|err| panic!("event rejected: {err}: {}", e.0));
    serde_json::from_slice(&out.json).expect("decision is JSON")
}

pub fn signals(d: &Value) -> Vec<String> {
    d["risk"]["reasons"].as_array().map_or(vec![], |r| {
        r.iter()
            .map(|x| x["signal"].as_str().unwrap_or("").to_string())
            .collect()
    })
}

/// RFC 3339 for day `d` (0 = Monday 2026-03-02) at `h:m` UTC.
pub fn t(d: u32, h: u32, m: u32) -> String {
    let base = chrono::NaiveDate::from_ymd_opt(2026, 3, 2).expect("date");
    let date = base + chrono::Days::new(d as u64);
    format!("{}T{:02}:{:02}:00Z", date.format("%Y-%m-%d"), h, m)
}

/// Teach a user a routine: `n` logins on weekdays 09-17 UTC from Lisbon residential
/// network 0, device laptop-1; the first three at AAL2 (so they are trusted).
pub fn routine(p: &mut Pipeline, user: &str, n: u32) {
    let mut day = 0;
    for i in 0..n {
        while day % 7 >= 5 {
            day += 1;
        }
        let ip = ip_in("Lisbon", NetKind::Residential, 0, 10 + (i % 5));
        let mut e = Ev::login(user, &t(day, 9 + (i % 8), 15), &ip).set("user_agent", json!(CHROME_WIN));
        if i < 3 {
            e = e.aal2();
        }
        score(p, &e);
        day += 1;
    }
}
