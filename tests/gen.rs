//! Behaviour of `stepup gen` (the workload generator) on the fixture databases.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::OnceLock;

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use chrono_tz::Tz;
use serde_json::Value;
use stepup::gen::{generate, GenConfig, GenStats, GeneratedEvent, GeoSampler, Label, NetKind, Via};
use stepup::geo_fixture::{self, FixturePaths};

// ---------------------------------------------------------------------------------
// Shared fixtures.

struct Fixture {
    paths: FixturePaths,
    geo: GeoSampler,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        // The fixture files are byte-for-byte reproducible: write them once under
        // target/tmp (atomically, other test processes may do the same).
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("gen-fixture");
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, bytes: Vec<u8>| {
            let path = dir.join(name);
            let tmp = dir.join(format!("{name}.{}.tmp", std::process::id()));
            std::fs::write(&tmp, bytes).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
            path
        };
        let paths = FixturePaths {
            city: write(geo_fixture::CITY_FILE, geo_fixture::city_db()),
            flat_city: write(geo_fixture::FLAT_CITY_FILE, geo_fixture::flat_city_db()),
            asn: write(geo_fixture::ASN_FILE, geo_fixture::asn_db()),
        };
        let geo = GeoSampler::open(&[&paths.city], Some(&paths.asn)).expect("sampler");
        Fixture { paths, geo }
    })
}

struct Run {
    events: Vec<GeneratedEvent>,
    lines: String,
    labels: String,
    stats: GenStats,
}

fn run_with(cfg: &GenConfig, geo: &GeoSampler) -> Run {
    let mut events = Vec::new();
    let mut lines = String::new();
    let mut labels = String::new();
    let stats = generate(cfg, geo, |e| {
        lines.push_str(&e.event_json());
        lines.push('\n');
        labels.push_str(&e.label_json());
        labels.push('\n');
        events.push(e);
    })
    .expect("generate");
    Run {
        events,
        lines,
        labels,
        stats,
    }
}

fn base_cfg(seed: u64) -> GenConfig {
    GenConfig {
        users: 200,
        days: 30,
        seed,
        ..GenConfig::default()
    }
}

/// The default run most tests look at: 200 contractors × 30 days.
fn default_run() -> &'static Run {
    static R: OnceLock<Run> = OnceLock::new();
    R.get_or_init(|| run_with(&base_cfg(42), &fixture().geo))
}

fn parsed() -> &'static Vec<Value> {
    static P: OnceLock<Vec<Value>> = OnceLock::new();
    P.get_or_init(|| {
        default_run()
            .lines
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect()
    })
}

fn t(e: &GeneratedEvent) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&e.event.time).unwrap().with_timezone(&Utc)
}

fn contractors(run: &Run) -> HashMap<String, &stepup::gen::ContractorRecord> {
    run.stats.contractors.iter().map(|c| (c.user_id.clone(), c)).collect()
}

fn tz_of(run: &Run, user: &str) -> Tz {
    contractors(run)[user].home_timezone.parse().unwrap()
}

fn km(a: &GeneratedEvent, b: &GeneratedEvent) -> f64 {
    let (la, oa, lb, ob) = (
        a.truth.lat.unwrap(),
        a.truth.lon.unwrap(),
        b.truth.lat.unwrap(),
        b.truth.lon.unwrap(),
    );
    let (p1, p2) = (la.to_radians(), lb.to_radians());
    let h = ((lb - la).to_radians() / 2.0).sin().powi(2)
        + p1.cos() * p2.cos() * ((ob - oa).to_radians() / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().asin()
}

fn kmh(a: &GeneratedEvent, b: &GeneratedEvent) -> f64 {
    let hours = (b.truth.time_ms - a.truth.time_ms).abs() as f64 / 3_600_000.0;
    km(a, b) / hours.max(1.0 / 3600.0)
}

fn is_login(e: &GeneratedEvent) -> bool {
    e.event.kind == "login"
}

// ---------------------------------------------------------------------------------
// Reproducibility and the output contract.

#[test]
fn same_seed_gives_identical_bytes_and_another_seed_does_not() {
    let geo = &fixture().geo;
    let small = |seed| GenConfig {
        users: 60,
        days: 10,
        seed,
        ..GenConfig::default()
    };
    let a = run_with(&small(5), geo);
    let b = run_with(&small(5), geo);
    assert!(a.events.len() > 500, "{} events", a.events.len());
    assert!(a.lines == b.lines, "same seed, different events");
    assert!(a.labels == b.labels, "same seed, different labels");
    let ca: Vec<String> = a
        .stats
        .contractors
        .iter()
        .map(|c| serde_json::to_string(c).unwrap())
        .collect();
    let cb: Vec<String> = b
        .stats
        .contractors
        .iter()
        .map(|c| serde_json::to_string(c).unwrap())
        .collect();
    assert_eq!(ca, cb);
    // A sampler rebuilt from the same file gives the same bytes too.
    let geo2 = GeoSampler::open(&[&fixture().paths.city], Some(&fixture().paths.asn)).unwrap();
    assert!(run_with(&small(5), &geo2).lines == a.lines);
    let c = run_with(&small(6), geo);
    assert!(c.lines != a.lines);
    assert!(c.lines.lines().next().unwrap().contains("\"evt-6-1\""));
}

#[test]
fn every_line_follows_the_event_contract() {
    let allowed_keys: HashSet<&str> = [
        "event_id",
        "time",
        "type",
        "user_id",
        "outcome",
        "ip",
        "user_agent",
        "device_id",
        "session_id",
        "aal",
        "methods",
        "resource",
        "groups",
        "source",
    ]
    .into_iter()
    .collect();
    let mut ids = HashSet::new();
    for v in parsed() {
        let o = v.as_object().unwrap();
        for k in o.keys() {
            assert!(allowed_keys.contains(k.as_str()), "unexpected key {k} in {v}");
        }
        let id = o["event_id"].as_str().unwrap();
        assert!(id.starts_with("evt-42-"), "{id}");
        assert!(ids.insert(id.to_string()), "duplicate {id}");
        let time = o["time"].as_str().unwrap();
        assert_eq!(time.len(), 24, "{time}");
        assert!(time.ends_with('Z') && time.as_bytes()[19] == b'.', "{time}");
        DateTime::parse_from_rfc3339(time).unwrap();
        let kind = o["type"].as_str().unwrap();
        assert!(!o["user_id"].as_str().unwrap().is_empty());
        assert!(!o["user_agent"].as_str().unwrap().is_empty());
        assert!(!o["session_id"].as_str().unwrap().is_empty());
        if let Some(d) = o.get("device_id") {
            assert!(!d.as_str().unwrap().is_empty());
        }
        let aal = o["aal"].as_u64().unwrap();
        assert!((1..=3).contains(&aal), "{v}");
        let methods: Vec<&str> = o["methods"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_str().unwrap())
            .collect();
        assert!(!methods.is_empty());
        for m in &methods {
            assert!(["pwd", "otp", "push", "webauthn"].contains(m), "{v}");
        }
        let groups: Vec<&str> = o["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g.as_str().unwrap())
            .collect();
        assert!(groups.contains(&"contractors"), "{v}");
        assert!(["okta", "entra", "keycloak", "auth0"].contains(&o["source"].as_str().unwrap()));
        let ip: IpAddr = o["ip"]
            .as_str()
            .expect("every generated event carries an ip")
            .parse()
            .unwrap();
        assert!(!ip.is_loopback() && !ip.is_unspecified());
        match kind {
            "login" => {
                let outcome = o["outcome"].as_str().unwrap();
                assert!(outcome == "success" || outcome == "failure");
                assert!(o.get("resource").is_none());
                if outcome == "success" {
                    // AAL matches the factors used.
                    match aal {
                        1 => assert_eq!(methods, ["pwd"], "{v}"),
                        2 => assert!(methods.len() == 2 && methods[0] == "pwd", "{v}"),
                        _ => assert_eq!(methods, ["webauthn"], "{v}"),
                    }
                }
            }
            "access" => {
                assert!(o.get("outcome").is_none());
                assert!(!o["resource"].as_str().unwrap().is_empty());
            }
            other => panic!("type {other}"),
        }
    }
    assert_eq!(ids.len(), default_run().stats.events as usize);
}

fn schema(name: &str) -> jsonschema::Validator {
    let path = format!("{}/schemas/{name}", env!("CARGO_MANIFEST_DIR"));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    jsonschema::options().should_validate_formats(true).build(&v).unwrap()
}

#[test]
fn output_validates_against_the_published_schemas() {
    let ev = schema("auth-event.v1.schema.json");
    for v in parsed() {
        let errs: Vec<String> = ev
            .iter_errors(v)
            .map(|e| format!("{e} at {}", e.instance_path))
            .collect();
        assert!(errs.is_empty(), "{v}: {errs:?}");
    }
    let ct = schema("contractor.v1.schema.json");
    for c in &default_run().stats.contractors {
        let v = serde_json::to_value(c).unwrap();
        let errs: Vec<String> = ct
            .iter_errors(&v)
            .map(|e| format!("{e} at {}", e.instance_path))
            .collect();
        assert!(errs.is_empty(), "{v}: {errs:?}");
    }
}

#[test]
fn events_are_in_time_order() {
    let r = default_run();
    for w in r.events.windows(2) {
        assert!(
            w[0].truth.time_ms <= w[1].truth.time_ms,
            "{} after {}",
            w[0].event.time,
            w[1].event.time
        );
        assert!(w[0].event.time <= w[1].event.time);
    }
    let start = NaiveDate::from_ymd_opt(2026, 3, 2)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    assert!(t(&r.events[0]) >= start);
    assert!(t(r.events.last().unwrap()) < start + chrono::Duration::days(30));
}

#[test]
fn every_event_has_exactly_one_label() {
    let r = default_run();
    let labels: Vec<Value> = r.labels.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(labels.len(), parsed().len());
    for (l, e) in labels.iter().zip(parsed()) {
        assert_eq!(l["event_id"], e["event_id"]);
        assert_eq!(l["user_id"], e["user_id"]);
        let label = l["label"].as_str().unwrap();
        assert!(["legit", "naive", "vpn", "targeted", "hijack", "spray", "post_contract"].contains(&label));
        assert_eq!(l.get("attack_id").is_some(), label != "legit", "{l}");
    }
    let n: u64 = r.stats.events_by_label.values().sum();
    assert_eq!(n, r.stats.events);
}

// ---------------------------------------------------------------------------------
// Attacks.

#[test]
fn attack_share_follows_the_configured_rate() {
    let r = default_run();
    let share = r.stats.attack_login_share();
    assert!((0.015..=0.026).contains(&share), "attack share of logins {share}");
    let logins: Vec<&GeneratedEvent> = r.events.iter().filter(|e| is_login(e)).collect();
    let attacks = logins.iter().filter(|e| e.label.label.is_attack()).count();
    assert!((share - attacks as f64 / logins.len() as f64).abs() < 1e-12);

    let cfg = GenConfig {
        users: 100,
        days: 14,
        seed: 9,
        attack_rate: 0.08,
        ..GenConfig::default()
    };
    let high = run_with(&cfg, &fixture().geo);
    let s = high.stats.attack_login_share();
    assert!((0.065..=0.095).contains(&s), "attack share {s} at rate 0.08");
    let none = run_with(
        &GenConfig {
            attack_rate: 0.0,
            ..cfg
        },
        &fixture().geo,
    );
    assert_eq!(none.stats.attack_login_share(), 0.0);
}

#[test]
fn every_attack_kind_is_present_and_grouped() {
    let r = default_run();
    for k in Label::ATTACKS {
        assert!(
            r.stats.attacks_by_kind.get(&k).copied().unwrap_or(0) >= 1,
            "no {k} attack: {:?}",
            r.stats.attacks_by_kind
        );
    }
    // An attack id belongs to one kind; all but sprays target one victim.
    let mut by_attack: BTreeMap<String, (Label, HashSet<String>)> = BTreeMap::new();
    for e in &r.events {
        if let Some(a) = &e.label.attack_id {
            let x = by_attack.entry(a.clone()).or_insert((e.label.label, HashSet::new()));
            assert_eq!(x.0, e.label.label);
            x.1.insert(e.event.user_id.clone());
        }
    }
    for (a, (k, users)) in &by_attack {
        if *k == Label::Spray {
            assert!(users.len() >= 3, "spray {a} hit {} users", users.len());
        } else {
            assert_eq!(users.len(), 1, "{k} attack {a} hit {users:?}");
        }
    }
}

/// Legit facts about each user, for comparing attacks against.
struct UserFacts {
    countries: HashSet<String>,
    top_country: String,
    top_isp: String,
    uas: HashSet<String>,
    devices: HashSet<String>,
}

fn user_facts(r: &Run) -> HashMap<String, UserFacts> {
    type Acc = (
        HashMap<String, u32>,
        HashMap<String, u32>,
        HashSet<String>,
        HashSet<String>,
    );
    let mut m: HashMap<String, Acc> = HashMap::new();
    for e in r.events.iter().filter(|e| e.label.label == Label::Legit) {
        let x = m.entry(e.event.user_id.clone()).or_default();
        // home facts from the home line; every country the user shows up in
        let w = if e.truth.via == Via::Home { 1000 } else { 1 };
        *x.0.entry(e.truth.country.clone().unwrap()).or_default() += w;
        *x.1.entry(e.truth.isp.clone().unwrap()).or_default() += w;
        x.2.insert(e.event.user_agent.clone());
        if let Some(d) = &e.event.device_id {
            x.3.insert(d.clone());
        }
    }
    m.into_iter()
        .map(|(u, (c, i, uas, devices))| {
            let top = |h: &HashMap<String, u32>| h.iter().max_by_key(|(k, n)| (**n, (*k).clone())).unwrap().0.clone();
            (
                u,
                UserFacts {
                    top_country: top(&c),
                    top_isp: top(&i),
                    countries: c.into_keys().collect(),
                    uas,
                    devices,
                },
            )
        })
        .collect()
}

fn os_token(ua: &str) -> &'static str {
    for t in ["Windows NT", "Macintosh", "iPhone", "Android", "X11"] {
        if ua.contains(t) {
            return t;
        }
    }
    ""
}

#[test]
fn attacks_look_like_their_kind() {
    let r = default_run();
    let facts = user_facts(r);
    let mut checked: BTreeMap<Label, usize> = BTreeMap::new();
    let mut spray_ips: HashMap<String, (HashSet<String>, i64, i64)> = HashMap::new();
    let mut targeted_in_hours = (0, 0);
    for e in r.events.iter().filter(|e| e.label.label.is_attack()) {
        let f = facts.get(&e.event.user_id);
        *checked.entry(e.label.label).or_default() += 1;
        assert_eq!(
            e.truth.via,
            if e.label.label == Label::PostContract {
                e.truth.via
            } else {
                Via::Attacker
            }
        );
        if e.label.label != Label::PostContract {
            assert!(
                e.event.device_id.is_none(),
                "attackers never know the victim's device id: {:?}",
                e.event
            );
        }
        match e.label.label {
            Label::Naive => {
                assert_eq!(e.truth.net_kind, Some(NetKind::Hosting), "{:?}", e.truth);
                if let Some(f) = f {
                    assert!(
                        !f.countries.contains(e.truth.country.as_ref().unwrap()),
                        "naive from a victim's country"
                    );
                    assert!(!f.uas.contains(&e.event.user_agent));
                }
            }
            Label::Vpn => {
                assert_eq!(e.truth.net_kind, Some(NetKind::Hosting), "{:?}", e.truth);
                assert!(
                    e.event.user_agent.starts_with("Mozilla/5.0 ("),
                    "{}",
                    e.event.user_agent
                );
            }
            Label::Targeted => {
                assert_eq!(e.truth.net_kind, Some(NetKind::Residential));
                if let Some(f) = f {
                    assert_eq!(
                        e.truth.country.as_ref().unwrap(),
                        &f.top_country,
                        "targeted from another country"
                    );
                    assert_ne!(
                        e.truth.isp.as_ref().unwrap(),
                        &f.top_isp,
                        "targeted from the victim's ISP"
                    );
                    let os = os_token(&e.event.user_agent);
                    assert!(
                        f.uas.iter().any(|u| os_token(u) == os),
                        "{} vs {:?}",
                        e.event.user_agent,
                        f.uas
                    );
                }
                if is_login(e) {
                    let tz = tz_of(r, &e.event.user_id);
                    let local = t(e).with_timezone(&tz);
                    targeted_in_hours.1 += 1;
                    if (6..=22).contains(&local.hour()) && local.weekday().num_days_from_monday() < 5 {
                        targeted_in_hours.0 += 1;
                    }
                }
            }
            Label::Spray => {
                let x = spray_ips
                    .entry(e.label.attack_id.clone().unwrap())
                    .or_insert((HashSet::new(), i64::MAX, 0));
                x.0.insert(e.event.ip.clone().unwrap());
                x.1 = x.1.min(e.truth.time_ms);
                x.2 = x.2.max(e.truth.time_ms);
                assert_eq!(e.truth.net_kind, Some(NetKind::Hosting));
            }
            Label::PostContract => {
                // Honest-looking: the contractor's own devices.
                if let (Some(f), Some(d)) = (f, &e.event.device_id) {
                    assert!(f.devices.contains(d), "post-contract from an unknown device");
                }
            }
            Label::Hijack | Label::Legit => {}
        }
    }
    for (a, (ips, lo, hi)) in spray_ips {
        assert_eq!(ips.len(), 1, "spray {a} from several IPs");
        assert!(hi - lo < 20 * 60_000, "spray {a} lasted {} s", (hi - lo) / 1000);
    }
    assert!(
        targeted_in_hours.0 as f64 >= 0.85 * targeted_in_hours.1 as f64,
        "{targeted_in_hours:?}"
    );
    assert!(checked.len() == 6, "{checked:?}");
}

#[test]
fn challenged_attackers_fail_mfa() {
    let r = default_run();
    // Group attack events by session.
    let mut sessions: HashMap<(String, String), Vec<&GeneratedEvent>> = HashMap::new();
    for e in r.events.iter().filter(|e| {
        matches!(
            e.label.label,
            Label::Naive | Label::Vpn | Label::Targeted | Label::Spray
        )
    }) {
        sessions
            .entry((e.event.user_id.clone(), e.event.session_id.clone()))
            .or_default()
            .push(e);
    }
    let mut challenged = 0;
    for evs in sessions.values() {
        for (i, e) in evs.iter().enumerate() {
            if is_login(e) && e.event.outcome == Some("success") && e.event.aal == 1 {
                let next = evs.get(i + 1).expect("a password success is challenged");
                assert!(
                    is_login(next) && next.event.outcome == Some("failure"),
                    "{:?}",
                    next.event
                );
                assert_eq!(next.event.methods.len(), 2, "{:?}", next.event);
                assert!(next.truth.time_ms - e.truth.time_ms <= 60_000);
                assert_eq!(next.event.ip, e.event.ip);
                challenged += 1;
            }
        }
    }
    assert!(challenged >= 10, "{challenged}");
}

#[test]
fn hijacks_are_impossible_travel_after_a_genuine_login() {
    let r = default_run();
    let mut last_legit: HashMap<&str, &GeneratedEvent> = HashMap::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut n = 0;
    for e in &r.events {
        if e.label.label == Label::Legit && is_login(e) && e.event.outcome == Some("success") {
            last_legit.insert(&e.event.user_id, e);
        }
        if e.label.label == Label::Hijack && is_login(e) && seen.insert(e.label.attack_id.clone().unwrap()) {
            let g = last_legit
                .get(e.event.user_id.as_str())
                .expect("a genuine login precedes the hijack");
            let dt = e.truth.time_ms - g.truth.time_ms;
            assert!(
                dt > 0 && dt <= 2 * 3_600_000 + 60_000,
                "hijack {} min after the genuine login",
                dt / 60_000
            );
            let speed = kmh(g, e);
            assert!(speed > 1000.0, "hijack at {speed:.0} km/h ({:.0} km)", km(g, e));
            assert_eq!(e.event.outcome, Some("success"));
            n += 1;
        }
    }
    assert!(n >= 3, "{n} hijacks");
}

// ---------------------------------------------------------------------------------
// Honest behaviour.

#[test]
fn honest_trips_are_possible_travel() {
    let r = default_run();
    assert!(
        r.stats.trips >= 2 && r.stats.trips <= 40,
        "{} trips for 200 users in a month",
        r.stats.trips
    );
    let grounded = |v: Via| matches!(v, Via::Home | Via::Cowork | Via::Hotel | Via::Mobile | Via::Tether);
    let mut last: HashMap<&str, &GeneratedEvent> = HashMap::new();
    let mut trip_legs = 0;
    let mut fastest: f64 = 0.0;
    for e in r.events.iter().filter(|e| e.label.label == Label::Legit && is_login(e)) {
        if let Some(p) = last.get(e.event.user_id.as_str()) {
            let crosses = (p.truth.via == Via::Hotel) != (e.truth.via == Via::Hotel) || p.truth.trip != e.truth.trip;
            if crosses && grounded(p.truth.via) && grounded(e.truth.via) && km(p, e) > 100.0 {
                let s = kmh(p, e);
                fastest = fastest.max(s);
                assert!(
                    s < 1000.0,
                    "honest trip leg at {s:.0} km/h: {:?} -> {:?}",
                    p.truth,
                    e.truth
                );
                trip_legs += 1;
            }
        }
        if e.truth.via != Via::CorpVpn && e.truth.via != Via::Roaming {
            last.insert(&e.event.user_id, e);
        }
    }
    assert!(trip_legs >= 2, "{trip_legs} trip legs");
    eprintln!("{trip_legs} trip legs, fastest {fastest:.0} km/h");
}

#[test]
fn new_contexts_are_followed_by_completed_mfa() {
    let r = default_run();
    let st = &r.stats;
    assert!(st.new_context_logins >= 5, "{}", st.new_context_logins);
    assert_eq!(
        st.new_context_stepups, st.new_context_logins,
        "stepup_new_share is 1.0 by default"
    );
    // Every AAL1 success followed by an AAL2+ success in the same session is a proper
    // step-up: within a minute, same IP, UA and device.
    let mut by_session: HashMap<&str, Vec<&GeneratedEvent>> = HashMap::new();
    for e in r.events.iter().filter(|e| e.label.label == Label::Legit) {
        by_session.entry(&e.event.session_id).or_default().push(e);
    }
    for evs in by_session.values() {
        let logins: Vec<&&GeneratedEvent> = evs.iter().filter(|e| is_login(e)).collect();
        for w in logins.windows(2) {
            if w[0].event.aal == 1 && w[0].event.outcome == Some("success") && w[1].event.aal >= 2 {
                assert_eq!(w[0].event.ip, w[1].event.ip);
                assert_eq!(w[0].event.user_agent, w[1].event.user_agent);
                assert_eq!(w[0].event.device_id, w[1].event.device_id);
            }
        }
    }
    // New laptops: their first session reaches AAL2+ within a minute.
    assert!(!st.new_devices.is_empty() || st.device_changes == 0);
    for (user, dev) in &st.new_devices {
        let first = r
            .events
            .iter()
            .find(|e| &e.event.user_id == user && e.event.device_id.as_ref() == Some(dev) && is_login(e));
        let Some(first) = first else { continue };
        let strong = r.events.iter().find(|e| {
            e.event.session_id == first.event.session_id
                && is_login(e)
                && e.event.outcome == Some("success")
                && e.event.aal >= 2
        });
        let strong = strong.unwrap_or_else(|| panic!("new laptop {dev} of {user} never reached AAL2"));
        assert!(strong.truth.time_ms - first.truth.time_ms <= 90_000);
    }
    // About 30% of honest sessions are at AAL2+ from the first success.
    let mut first_success: HashMap<&str, u8> = HashMap::new();
    for e in r
        .events
        .iter()
        .filter(|e| e.label.label == Label::Legit && is_login(e) && e.event.outcome == Some("success"))
    {
        first_success.entry(&e.event.session_id).or_insert(e.event.aal);
    }
    let upfront = first_success.values().filter(|a| **a >= 2).count() as f64 / first_success.len() as f64;
    assert!((0.24..=0.38).contains(&upfront), "upfront MFA share {upfront}");
}

#[test]
fn typos_are_followed_by_a_success() {
    let r = default_run();
    let mut n = 0;
    for (i, e) in r.events.iter().enumerate() {
        if e.label.label == Label::Legit && is_login(e) && e.event.outcome == Some("failure") {
            let next = r.events[i + 1..]
                .iter()
                .find(|x| x.event.session_id == e.event.session_id && is_login(x))
                .expect("a retry");
            assert_eq!(next.event.outcome, Some("success"));
            assert!(next.truth.time_ms - e.truth.time_ms <= 60_000);
            n += 1;
        }
    }
    assert!(n >= 20, "{n} honest typos");
}

#[test]
fn login_frequency_is_heavy_tailed() {
    let r = default_run();
    let start = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
    let end = start + chrono::Duration::days(30);
    let mut s: Vec<u32> = r
        .stats
        .contractors
        .iter()
        .zip(&r.stats.sessions_per_user)
        .filter(|(c, _)| {
            NaiveDate::parse_from_str(&c.contract_start, "%Y-%m-%d").unwrap() < start
                && NaiveDate::parse_from_str(&c.contract_end, "%Y-%m-%d").unwrap() >= end
        })
        .map(|(_, n)| *n)
        .collect();
    s.sort();
    let q = |p: usize| s[(s.len() - 1) * p / 100];
    eprintln!(
        "sessions per user in 30 days: p10 {} p50 {} p90 {} max {}",
        q(10),
        q(50),
        q(90),
        q(100)
    );
    assert!(q(10) <= 4, "p10 {}", q(10));
    assert!(q(90) >= 45, "p90 {}", q(90));
    assert!(q(100) >= 5 * q(50).max(1), "max {} median {}", q(100), q(50));
    assert!((8..=40).contains(&q(50)), "median {}", q(50));
}

#[test]
fn honest_logins_keep_local_working_hours() {
    let r = default_run();
    let (mut day, mut weekend, mut total) = (0, 0, 0);
    for e in r
        .events
        .iter()
        .filter(|e| e.label.label == Label::Legit && is_login(e) && e.truth.trip.is_none())
    {
        let local = t(e).with_timezone(&tz_of(r, &e.event.user_id));
        total += 1;
        if (6..20).contains(&local.hour()) {
            day += 1;
        }
        if local.weekday().num_days_from_monday() >= 5 {
            weekend += 1;
        }
    }
    let (d, w) = (day as f64 / total as f64, weekend as f64 / total as f64);
    assert!(d >= 0.75, "daytime share {d}");
    assert!((0.005..0.12).contains(&w), "weekend share {w}");
}

#[test]
fn honest_access_matches_groups_and_sensitive_access_is_aal2() {
    let allowed: HashMap<&str, &[&str]> = [
        ("dev", &["wiki/", "git/", "ci/", "k8s/", "jira/"][..]),
        ("sre", &["k8s/", "vault/", "git/", "grafana/", "wiki/", "aws/"][..]),
        ("dba", &["db/", "vault/", "grafana/", "wiki/"][..]),
        ("data", &["db/", "bi/", "git/", "wiki/"][..]),
        ("qa", &["k8s/", "ci/", "jira/", "wiki/", "git/"][..]),
        ("design", &["wiki/", "figma/", "jira/", "git/"][..]),
    ]
    .into_iter()
    .collect();
    let r = default_run();
    let mut n = 0;
    for e in r
        .events
        .iter()
        .filter(|e| e.label.label == Label::Legit && !is_login(e))
    {
        let role = e.event.groups[1].as_str();
        let res = e.event.resource.as_deref().unwrap();
        assert!(
            allowed[role].iter().any(|p| res.starts_with(p)),
            "{role} accessed {res}"
        );
        let sensitive = res.starts_with("k8s/prod")
            || res.starts_with("vault/")
            || res.starts_with("db/prod/")
            || res.starts_with("aws/prod");
        if sensitive {
            assert!(e.event.aal >= 2, "honest {res} at AAL1");
        }
        n += 1;
    }
    assert!(n as u64 == r.stats.events_by_label[&Label::Legit] - r.stats.logins_by_label[&Label::Legit]);
}

#[test]
fn devices_keep_ids_and_browsers_only_upgrade() {
    let r = default_run();
    assert!(r.stats.browser_upgrades >= 20, "{}", r.stats.browser_upgrades);
    assert!(r.stats.device_changes <= 20, "{}", r.stats.device_changes);
    let version = |ua: &str| -> Option<(String, u32)> {
        for tok in ["Edg/", "Firefox/", "Chrome/", "Version/", "SamsungBrowser/", "CriOS/"] {
            if let Some(i) = ua.find(tok) {
                let rest = &ua[i + tok.len()..];
                let major: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
                return Some((tok.to_string(), major.parse().ok()?));
            }
        }
        None
    };
    let mut last: HashMap<&str, (String, u32, String)> = HashMap::new();
    let mut bumps = 0;
    for e in r.events.iter().filter(|e| e.label.label == Label::Legit && is_login(e)) {
        let Some(d) = e.event.device_id.as_deref() else {
            continue;
        };
        let (fam, v) = version(&e.event.user_agent).expect("a browser UA");
        if let Some((f0, v0, u0)) = last.get(d) {
            assert_eq!(f0, &fam, "device {d} changed browser");
            assert_eq!(os_token(u0), os_token(&e.event.user_agent), "device {d} changed OS");
            assert!(v >= *v0, "device {d} downgraded {u0} -> {}", e.event.user_agent);
            if v > *v0 {
                bumps += 1;
            }
        }
        last.insert(d, (fam, v, e.event.user_agent.clone()));
    }
    assert!(bumps >= 10, "{bumps} major-version bumps");
}

#[test]
fn ipv6_is_a_minority_and_geolocates() {
    let r = default_run();
    let share = r.stats.ipv6_users as f64 / r.stats.users as f64;
    assert!((0.05..=0.40).contains(&share), "IPv6 users {share}");
    let v6 = r
        .events
        .iter()
        .filter(|e| matches!(e.truth.ip, Some(IpAddr::V6(_))))
        .count();
    let frac = v6 as f64 / r.events.len() as f64;
    assert!((0.02..0.35).contains(&frac), "IPv6 event share {frac}");
}

/// Look every attack event and a sample of honest ones up in the database the
/// generator used: the city, country and network are the ones it intended.
#[test]
fn sampled_ips_geolocate_to_the_intended_city() {
    let r = default_run();
    let reader = maxminddb::Reader::open_readfile(&fixture().paths.city).unwrap();
    let fixture_nets = geo_fixture::networks();
    let mut checked = 0;
    let mut kinds: HashSet<NetKind> = HashSet::new();
    for (i, e) in r.events.iter().enumerate() {
        if !(e.label.label.is_attack() || i % 7 == 0 || matches!(e.truth.ip, Some(IpAddr::V6(_))) && i % 3 == 0) {
            continue;
        }
        let ip: IpAddr = e.event.ip.as_ref().unwrap().parse().unwrap();
        let res = reader.lookup(ip).unwrap();
        let city: Option<maxminddb::geoip2::City> = res.decode().unwrap();
        let city = city.unwrap_or_else(|| panic!("{ip} not in the database"));
        assert_eq!(city.city.names.english, e.truth.city.as_deref(), "{ip}");
        assert_eq!(city.country.iso_code, e.truth.country.as_deref(), "{ip}");
        assert!(e.truth.network.unwrap().contains(ip));
        // The network kind the generator inferred from the ASN database is the one
        // the fixture world built.
        let fx = fixture_nets
            .iter()
            .find(|n| n.net.contains(ip))
            .expect("a fixture network");
        let want = match fx.kind {
            geo_fixture::NetKind::Residential => NetKind::Residential,
            geo_fixture::NetKind::Mobile => NetKind::Mobile,
            geo_fixture::NetKind::Hosting => NetKind::Hosting,
        };
        assert_eq!(e.truth.net_kind, Some(want), "{ip} ({})", fx.org);
        assert_eq!(e.truth.asn, Some(fx.asn));
        kinds.insert(want);
        checked += 1;
    }
    assert!(checked > 3000, "{checked}");
    assert_eq!(kinds.len(), 3, "{kinds:?}");
}

#[test]
fn flat_layout_without_asn_database_works() {
    let f = fixture();
    let geo = GeoSampler::open(&[&f.paths.flat_city], None).unwrap();
    assert!(!geo.has_asn());
    assert!(geo.cities().len() >= 40);
    let r = run_with(
        &GenConfig {
            users: 60,
            days: 10,
            seed: 3,
            ..GenConfig::default()
        },
        &geo,
    );
    assert!(r.stats.events > 500);
    let reader = maxminddb::Reader::open_readfile(&f.paths.flat_city).unwrap();
    for e in r.events.iter().step_by(5) {
        let ip: IpAddr = e.event.ip.as_ref().unwrap().parse().unwrap();
        let city: Option<String> = reader
            .lookup(ip)
            .unwrap()
            .decode_path(&maxminddb::path!["city"])
            .unwrap();
        assert_eq!(city.as_deref(), e.truth.city.as_deref(), "{ip}");
    }
    // Time zones come from the database.
    let tzs: HashSet<&str> = r.stats.contractors.iter().map(|c| c.home_timezone.as_str()).collect();
    assert!(tzs.iter().all(|z| z.contains('/') && !z.starts_with("Etc/")), "{tzs:?}");
}

// ---------------------------------------------------------------------------------
// Contracts.

#[test]
fn contractors_file_is_complete_and_varied() {
    let r = default_run();
    let st = &r.stats;
    assert_eq!(st.contractors.len(), 200);
    let start = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
    let end = start + chrono::Duration::days(30);
    let (mut ending, mut starting, mut allowed) = (0, 0, 0);
    for c in &st.contractors {
        let s = NaiveDate::parse_from_str(&c.contract_start, "%Y-%m-%d").unwrap();
        let e = NaiveDate::parse_from_str(&c.contract_end, "%Y-%m-%d").unwrap();
        assert!(s < e);
        c.home_timezone.parse::<Tz>().unwrap();
        assert!(c.sponsor.contains('@'));
        if e >= start && e < end {
            ending += 1;
        }
        if s >= start && s < end {
            starting += 1;
        }
        if let Some(a) = &c.allowed_countries {
            assert!(!a.is_empty() && a.iter().all(|x| x.len() == 2));
            allowed += 1;
        }
    }
    assert!((8..=40).contains(&ending), "{ending} contracts end in the window");
    assert!((2..=25).contains(&starting), "{starting} start in the window");
    assert!((30..=100).contains(&allowed), "{allowed} with allowed countries");
    // Honest activity stays inside the contract (dates cover whole UTC days).
    let cs = contractors(r);
    for e in r.events.iter().filter(|e| e.label.label == Label::Legit) {
        let c = cs[&e.event.user_id];
        let d = t(e).date_naive();
        let s = NaiveDate::parse_from_str(&c.contract_start, "%Y-%m-%d").unwrap();
        let en = NaiveDate::parse_from_str(&c.contract_end, "%Y-%m-%d").unwrap();
        assert!(d >= s && d <= en, "{} on {d} outside {s}..{en}", e.event.user_id);
    }
    // Users with allowed countries mostly log in from them (VPN egress included).
    let (mut inside, mut all) = (0, 0);
    for e in r.events.iter().filter(|e| e.label.label == Label::Legit && is_login(e)) {
        if let Some(a) = &cs[&e.event.user_id].allowed_countries {
            all += 1;
            if a.contains(e.truth.country.as_ref().unwrap()) {
                inside += 1;
            }
        }
    }
    assert!(inside as f64 >= 0.95 * all as f64, "{inside}/{all}");
}

#[test]
fn post_contract_logins_come_after_the_contract_end() {
    let r = default_run();
    let cs = contractors(r);
    let mut n = 0;
    for e in r.events.iter().filter(|e| e.label.label == Label::PostContract) {
        let c = cs[&e.event.user_id];
        let end = NaiveDate::parse_from_str(&c.contract_end, "%Y-%m-%d").unwrap();
        let tz: Tz = c.home_timezone.parse().unwrap();
        assert!(
            t(e).with_timezone(&tz).date_naive() > end,
            "{} at {} but contract ended {end}",
            e.event.user_id,
            e.event.time
        );
        // and after the end of that (UTC) day
        assert!(t(e).date_naive() > end);
        n += 1;
    }
    assert!(n >= 3);
}

// ---------------------------------------------------------------------------------
// The command line (once `gen` is wired into the CLI).

#[test]
fn cli_writes_the_same_bytes_as_the_library() {
    let exe = env!("CARGO_BIN_EXE_stepup");
    let help = std::process::Command::new(exe)
        .args(["gen", "--help"])
        .output()
        .unwrap();
    if !help.status.success() {
        eprintln!("`stepup gen` is not wired into the CLI yet; skipping");
        return;
    }
    let f = fixture();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("gen-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ev, lb, ct) = (
        dir.join("events.jsonl"),
        dir.join("labels.jsonl"),
        dir.join("contractors.jsonl"),
    );
    let out = std::process::Command::new(exe)
        .args(["gen", "--users", "40", "--days", "7", "--seed", "11", "--quiet"])
        .arg("--geoip")
        .arg(&f.paths.city)
        .arg("--asn-db")
        .arg(&f.paths.asn)
        .arg("--output")
        .arg(&ev)
        .arg("--labels")
        .arg(&lb)
        .arg("--contractors")
        .arg(&ct)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lib = run_with(
        &GenConfig {
            users: 40,
            days: 7,
            seed: 11,
            ..GenConfig::default()
        },
        &f.geo,
    );
    assert!(std::fs::read_to_string(&ev).unwrap() == lib.lines);
    assert!(std::fs::read_to_string(&lb).unwrap() == lib.labels);
    assert_eq!(std::fs::read_to_string(&ct).unwrap().lines().count(), 40);
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------
// A real database (not in CI): STEPUP_GEN_TEST_GEOIP=city.mmdb[,city6.mmdb]
// [STEPUP_GEN_TEST_ASN_DB=asn.mmdb] cargo test --test gen -- --ignored

#[test]
#[ignore = "needs the real DB-IP database (scripts/fetch-geoip.sh) given in STEPUP_GEN_TEST_GEOIP"]
fn real_database_from_env() {
    let Ok(list) = std::env::var("STEPUP_GEN_TEST_GEOIP") else {
        eprintln!("STEPUP_GEN_TEST_GEOIP not set");
        return;
    };
    let files: Vec<PathBuf> = list.split(',').map(PathBuf::from).collect();
    let asn = std::env::var("STEPUP_GEN_TEST_ASN_DB").ok().map(PathBuf::from);
    let started = std::time::Instant::now();
    let geo = GeoSampler::open(&files, asn.as_deref()).unwrap();
    eprintln!(
        "{} cities, {} networks, {} countries, asn={}, ipv6={} in {:?}",
        geo.cities().len(),
        geo.networks().len(),
        geo.countries().len(),
        geo.has_asn(),
        geo.has_ipv6(),
        started.elapsed()
    );
    let r = run_with(
        &GenConfig {
            users: 300,
            days: 14,
            seed: 3,
            ..GenConfig::default()
        },
        &geo,
    );
    let readers: Vec<maxminddb::Reader<Vec<u8>>> = files
        .iter()
        .map(|f| maxminddb::Reader::open_readfile(f).unwrap())
        .collect();
    let mut checked = 0;
    for e in r.events.iter().step_by(3) {
        let ip: IpAddr = e.event.ip.as_ref().unwrap().parse().unwrap();
        let city = readers.iter().find_map(|rd| {
            let res = rd.lookup(ip).ok()?;
            let flat: Option<String> = res.decode_path(&maxminddb::path!["city"]).ok().flatten();
            flat.or_else(|| res.decode_path(&maxminddb::path!["city", "names", "en"]).ok().flatten())
        });
        assert_eq!(city.as_deref(), e.truth.city.as_deref(), "{ip}");
        checked += 1;
    }
    eprintln!(
        "{} events, {checked} checked, attack share {:.4}",
        r.stats.events,
        r.stats.attack_login_share()
    );
}
