//! The scoring engine end to end through `Pipeline::process`: each signal, the
//! learning gate, policy rules, bad input, and state save/restore.

#[path = "common/scoring.rs"]
mod common;

use common::*;
use serde_json::json;
use stepup::baseline::file as state_file;
use stepup::contractors::Contractor;
use stepup::geo_fixture::{self, NetKind};
use stepup::pipeline::Output;

fn has(d: &serde_json::Value, s: &str) -> bool {
    signals(d).iter().any(|x| x == s)
}

#[test]
fn routine_logins_are_allowed_and_first_login_is_new_user() {
    let mut p = pipeline();
    let first = score(
        &mut p,
        &Ev::login("u1", &t(0, 9, 0), &ip_in("Lisbon", NetKind::Residential, 0, 10)),
    );
    assert!(has(&first, "new_user"), "{first}");
    assert_eq!(first["decision"], "step_up");
    assert_eq!(first["required_aal"], 2);
    routine(&mut p, "u1", 20);
    let d = score(
        &mut p,
        &Ev::login("u1", &t(30, 10, 0), &ip_in("Lisbon", NetKind::Residential, 0, 77)),
    );
    assert_eq!(d["decision"], "allow", "{d}");
    assert_eq!(d["risk"]["level"], "low");
    assert!(signals(&d).is_empty(), "{d}");
}

#[test]
fn new_country_steps_up() {
    let mut p = pipeline();
    routine(&mut p, "u1", 20);
    let d = score(
        &mut p,
        &Ev::login("u1", &t(42, 10, 0), &ip_in("Tokyo", NetKind::Residential, 0, 5)),
    );
    assert!(has(&d, "new_country"), "{d}");
    assert_eq!(d["decision"], "step_up", "{d}");
    assert_eq!(d["required_aal"], 2);
    assert_eq!(d["acr_values"], "http://idmanagement.gov/ns/assurance/aal/2");
    assert!(d["methods"].as_array().unwrap().contains(&json!("otp")));
}

#[test]
fn new_city_and_new_asn_are_named() {
    let mut p = pipeline();
    routine(&mut p, "u1", 20);
    let d = score(
        &mut p,
        &Ev::login("u1", &t(42, 10, 0), &ip_in("Porto", NetKind::Residential, 0, 5)),
    );
    assert!(has(&d, "new_city"), "{d}");
    let d = score(
        &mut p,
        &Ev::login("u1", &t(43, 10, 0), &ip_in("Lisbon", NetKind::Residential, 1, 5)),
    );
    assert!(has(&d, "new_asn") || has(&d, "new_network"), "{d}");
}

#[test]
fn new_device_steps_up_but_browser_upgrade_does_not() {
    let mut p = pipeline();
    routine(&mut p, "u1", 20);
    let home = ip_in("Lisbon", NetKind::Residential, 0, 11);
    let up = score(
        &mut p,
        &Ev::login("u1", &t(42, 10, 0), &home).set("user_agent", json!(CHROME_WIN_121)),
    );
    assert!(!has(&up, "new_device"), "an upgrade is not a new device: {up}");
    assert_eq!(up["decision"], "allow", "{up}");
    // an unknown device on another ISP of the same city: the explicit signal steps up
    let elsewhere = ip_in("Lisbon", NetKind::Residential, 1, 11);
    let d = score(
        &mut p,
        &Ev::login("u1", &t(43, 10, 0), &elsewhere)
            .set("device_id", json!("stranger"))
            .set("user_agent", json!(FIREFOX_LINUX)),
    );
    assert!(has(&d, "new_device"), "{d}");
    assert_eq!(d["decision"], "step_up", "{d}");
    // on the contractor's own verified /24 the ratio alone judges it (a new laptop
    // at home): named, but not enough to step up
    let d = score(
        &mut p,
        &Ev::login("u1", &t(44, 10, 0), &home).set("device_id", json!("laptop-2")),
    );
    assert!(has(&d, "new_device"), "{d}");
    assert_eq!(d["decision"], "allow", "{d}");
}

#[test]
fn hosting_network_is_flagged_until_verified() {
    let mut p = pipeline();
    routine(&mut p, "u1", 20);
    let vpn = ip_in("Lisbon", NetKind::Hosting, 0, 11);
    let d = score(&mut p, &Ev::login("u1", &t(43, 10, 0), &vpn));
    assert!(has(&d, "hosting_network"), "{d}");
    assert_eq!(d["decision"], "step_up", "{d}");
    // the contractor's corporate VPN egress, once verified, is silent
    score(&mut p, &Ev::login("u1", &t(43, 10, 1), &vpn).aal2());
    let d = score(&mut p, &Ev::login("u1", &t(44, 10, 0), &vpn));
    assert!(!has(&d, "hosting_network"), "{d}");
}

#[test]
fn odd_hour_is_flagged_in_local_time() {
    let mut p = pipeline();
    routine(&mut p, "u1", 30);
    // Sunday 03:00 in Lisbon
    let d = score(
        &mut p,
        &Ev::login("u1", &t(47, 3, 0), &ip_in("Lisbon", NetKind::Residential, 0, 12)),
    );
    assert!(has(&d, "odd_hour"), "{d}");
    // a usual hour is not
    let d = score(
        &mut p,
        &Ev::login("u1", &t(49, 11, 0), &ip_in("Lisbon", NetKind::Residential, 0, 12)),
    );
    assert!(!has(&d, "odd_hour"), "{d}");
}

#[test]
fn impossible_travel_is_high_risk_and_plausible_trips_are_not() {
    let mut p = pipeline();
    routine(&mut p, "u1", 20);
    let d = score(
        &mut p,
        &Ev::login("u1", &t(42, 10, 0), &ip_in("Lisbon", NetKind::Residential, 0, 12)),
    );
    assert_eq!(d["decision"], "allow", "{d}");
    let d = score(
        &mut p,
        &Ev::login("u1", &t(42, 10, 40), &ip_in("Sydney", NetKind::Residential, 0, 12)),
    );
    assert!(has(&d, "impossible_travel"), "{d}");
    assert_eq!(d["risk"]["level"], "high");
    // Lisbon → Madrid (≈500 km) 6 hours later is a plausible trip
    let d = score(
        &mut p,
        &Ev::login("u1", &t(42, 16, 40), &ip_in("Madrid", NetKind::Residential, 0, 12)),
    );
    assert!(!has(&d, "impossible_travel"), "{d}");
}

#[test]
fn failed_burst() {
    let mut p = pipeline();
    routine(&mut p, "u1", 20);
    let ip = ip_in("Lisbon", NetKind::Residential, 0, 12);
    let mut last = json!(null);
    for i in 0..5 {
        last = score(&mut p, &Ev::login("u1", &t(42, 10, i), &ip).failed());
    }
    assert!(has(&last, "failed_burst"), "{last}");
    let d = score(&mut p, &Ev::login("u1", &t(42, 10, 6), &ip));
    assert!(
        has(&d, "failed_burst"),
        "a success right after a burst is still suspicious: {d}"
    );
    let d = score(&mut p, &Ev::login("u1", &t(43, 10, 6), &ip));
    assert!(!has(&d, "failed_burst"), "the burst is forgotten a day later: {d}");
}

#[test]
fn learning_gate_unverified_logins_never_teach() {
    let mut p = pipeline();
    routine(&mut p, "u1", 20);
    let tokyo = ip_in("Tokyo", NetKind::Residential, 0, 9);
    for i in 0..10 {
        let d = score(&mut p, &Ev::login("u1", &t(56 + (i / 5) * 7 + i % 5, 10, 0), &tokyo));
        assert!(
            has(&d, "new_country"),
            "attempt {i} from an unverified place must stay anomalous: {d}"
        );
        assert_eq!(d["decision"], "step_up");
    }
    // failed logins from there never teach either
    score(&mut p, &Ev::login("u1", &t(70, 10, 0), &tokyo).failed());
    // the contractor completes the step-up (AAL2) from Tokyo: now it is learned
    let d = score(&mut p, &Ev::login("u1", &t(71, 10, 0), &tokyo).aal2());
    assert_eq!(d["decision"], "allow", "AAL2 meets the step-up: {d}");
    let d = score(&mut p, &Ev::login("u1", &t(72, 10, 0), &tokyo));
    assert!(
        !has(&d, "new_country"),
        "after a verified login the place is known: {d}"
    );
}

/// A login the policy asks to step up teaches nothing, even at AAL2: a stolen
/// password + OTP from a VPS abroad on a new device (high risk: the low tier wants
/// AAL3) must not make that place and device familiar enough to pass at AAL2 next
/// time. The completed AAL3 step-up does teach.
#[test]
fn learning_gate_a_login_asked_to_step_up_teaches_nothing() {
    let mut p = pipeline();
    routine(&mut p, "u1", 20);
    let cities = geo_fixture::cities();
    let city = geo_fixture::networks()
        .iter()
        .filter(|n| n.kind == NetKind::Hosting)
        .map(|n| cities[n.city].name)
        .find(|c| *c != "Lisbon" && *c != "Porto")
        .expect("a hosting network abroad");
    let egress = ip_in(city, NetKind::Hosting, 0, 9);
    let attacker = |day: u32| {
        Ev::login("u1", &t(day, 3, 0), &egress)
            .set("device_id", json!("attacker-box"))
            .set("user_agent", json!(FIREFOX_LINUX))
            .aal2()
    };
    let first = score(&mut p, &attacker(42));
    assert_eq!(first["risk"]["level"], "high", "{first}");
    assert_eq!(first["decision"], "step_up", "{first}");
    assert_eq!(first["required_aal"], 3, "{first}");
    for day in 43..48 {
        let d = score(&mut p, &attacker(day));
        assert_eq!(
            d["decision"], "step_up",
            "retry on day {day} is still asked for AAL3: {d}"
        );
        assert!(has(&d, "new_country") && has(&d, "new_device"), "{d}");
    }
    // the AAL3 completion (security key) is allowed and teaches
    let done = attacker(48)
        .set("aal", json!(3))
        .set("methods", json!(["pwd", "webauthn"]));
    assert_eq!(score(&mut p, &done)["decision"], "allow");
    let d = score(&mut p, &attacker(49));
    assert!(
        !has(&d, "new_country") && !has(&d, "new_device"),
        "learned after AAL3: {d}"
    );
}

#[test]
fn roles_tiers_and_contracts() {
    let mut p = pipeline();
    routine(&mut p, "u1", 20);
    let ip = ip_in("Lisbon", NetKind::Residential, 0, 12);
    score(&mut p, &Ev::login("u1", &t(42, 9, 55), &ip));
    // no role reaches the high tier
    let d = score(
        &mut p,
        &Ev::access("u1", &t(42, 10, 0), &ip, "db/prod/payments", &["contractors", "dev"]),
    );
    assert_eq!(d["decision"], "deny", "{d}");
    assert_eq!(d["deny_reason"], "no_role_for_tier");
    assert!(d["required_aal"].is_null());
    // a DBA at AAL1 must step up to the tier's base AAL2
    let d = score(
        &mut p,
        &Ev::access("u1", &t(42, 10, 1), &ip, "db/prod/payments", &["dba"]),
    );
    assert_eq!(d["decision"], "step_up", "{d}");
    assert_eq!(d["tier"], "high");
    assert_eq!(d["required_aal"], 2);
    assert_eq!(d["max_age"], 900);
    // at AAL2, low risk: allowed
    let d = score(
        &mut p,
        &Ev::access("u1", &t(42, 10, 2), &ip, "db/prod/payments", &["dba"]).aal2(),
    );
    assert_eq!(d["decision"], "allow", "{d}");
    // the medium tier allows developers at AAL1 when risk is low
    let d = score(&mut p, &Ev::access("u1", &t(42, 10, 3), &ip, "k8s/staging", &["dev"]));
    assert_eq!(
        (d["decision"].as_str(), d["tier"].as_str()),
        (Some("allow"), Some("medium")),
        "{d}"
    );
    // high risk on the high tier is a deny, not a step-up
    let sydney = ip_in("Sydney", NetKind::Residential, 0, 3);
    let d = score(
        &mut p,
        &Ev::access("u1", &t(42, 10, 5), &sydney, "db/prod/payments", &["dba"]).aal2(),
    );
    assert_eq!(
        (d["decision"].as_str(), d["deny_reason"].as_str()),
        (Some("deny"), Some("high_risk")),
        "{d}"
    );

    // contract window and allowed countries from the registry
    let c = Contractor::parse(br#"{"user_id":"u1","contract_end":"2026-04-30","allowed_countries":["PT"]}"#).unwrap();
    p.upsert_contractor("u1", Some(c));
    let d = score(
        &mut p,
        &Ev::login("u1", &t(44, 10, 0), &ip_in("Madrid", NetKind::Residential, 0, 4)).aal2(),
    );
    assert_eq!(
        (d["decision"].as_str(), d["deny_reason"].as_str()),
        (Some("deny"), Some("country_not_allowed")),
        "{d}"
    );
    assert!(has(&d, "country_not_allowed"));
    let d = score(&mut p, &Ev::login("u1", &t(70, 10, 0), &ip).aal2());
    assert_eq!(
        (d["decision"].as_str(), d["deny_reason"].as_str()),
        (Some("deny"), Some("contract_inactive")),
        "{d}"
    );
    assert!(has(&d, "contract_inactive"));
}

#[test]
fn bad_input_never_changes_the_baseline() {
    let mut p = pipeline();
    routine(&mut p, "u1", 10);
    let before = state_file::encode(p.state());
    let good = Ev::login("u1", &t(42, 10, 0), &ip_in("Lisbon", NetKind::Residential, 0, 12)).bytes();
    let mut huge = good.clone();
    huge.splice(1..1, format!("\"pad\":\"{}\",", "x".repeat(70_000)).into_bytes());
    let bad: Vec<Vec<u8>> = vec![
        b"not json".to_vec(),
        b"{}".to_vec(),
        br#"{"event_id":"x","time":"2026-03-02T08:00:00Z","type":"login","user_id":"u1","outcome":"success","ip":"999.1.1.1"}"#.to_vec(),
        br#"{"event_id":"x","time":"tomorrow","type":"login","user_id":"u1","outcome":"success","ip":"1.1.1.1"}"#.to_vec(),
        br#"{"event_id":"x","time":"2026-03-02T08:00:00Z","type":"login","user_id":["u1"],"outcome":"success","ip":"1.1.1.1"}"#.to_vec(),
        huge,
        vec![0xff, 0x00, 0x7b],
        good[..good.len() / 2].to_vec(),
    ];
    let mut out = Output::default();
    for b in &bad {
        let err = p.process(b, &mut out).expect_err("must be rejected");
        assert!(!err.to_string().is_empty());
    }
    assert_eq!(
        state_file::encode(p.state()),
        before,
        "rejected input must not touch state"
    );
    p.process(&good, &mut out).expect("good event after bad ones");
}

#[test]
fn state_save_restore_scores_identically() {
    let mut a = pipeline();
    routine(&mut a, "u1", 15);
    routine(&mut a, "u2", 5);
    let saved = state_file::encode(a.state());
    let mut b = pipeline();
    state_file::decode_into(&saved, b.state_mut()).expect("restore");
    assert_eq!(b.state().len(), a.state().len());
    for (i, city) in ["Lisbon", "Tokyo", "Porto"].iter().enumerate() {
        let e = Ev::login("u1", &t(42 + i as u32, 10, 0), &ip_in(city, NetKind::Residential, 0, 3));
        assert_eq!(score(&mut a, &e), score(&mut b, &e));
    }
    assert_eq!(state_file::encode(a.state()), state_file::encode(b.state()));
}

#[test]
fn baseline_memory_is_bounded() {
    let mut p = pipeline();
    // a contractor who shows up from everywhere on every device, verified each time
    let cities = [
        "Lisbon",
        "Tokyo",
        "Porto",
        "Madrid",
        "Sydney",
        "Paris",
        "Berlin",
        "London",
        "New York",
        "Singapore",
    ];
    for i in 0..400u32 {
        let c = cities[i as usize % cities.len()];
        let e = Ev::login(
            "u1",
            &t(i / 4, 8 + i % 10, 0),
            &ip_in(c, NetKind::Residential, (i as usize / 10) % 2, i),
        )
        .set("device_id", json!(format!("dev-{i}")))
        .set(
            "user_agent",
            json!(format!(
                "Mozilla/5.0 (X11; Linux x86_64; rv:{}.0) Gecko/20100101 Firefox/{}.0",
                i, i
            )),
        )
        .aal2();
        score(&mut p, &e);
    }
    let b = p.state().get("u1").unwrap();
    assert!(b.approx_bytes() <= 2048, "baseline holds {} bytes", b.approx_bytes());
    assert!(b.to_bytes().len() <= 2048, "encoded {} bytes", b.to_bytes().len());
}

#[test]
fn both_database_layouts_enrich_the_same() {
    use stepup::enrich::{GeoDatabases, GeoStatus, Layout};
    let ip: std::net::IpAddr = ip_in("Lisbon", NetKind::Residential, 0, 7).parse().unwrap();
    let nested = GeoDatabases::from_bytes(stepup::geo_fixture::city_db(), None).unwrap();
    let flat = GeoDatabases::from_bytes(stepup::geo_fixture::flat_city_db(), None).unwrap();
    assert_eq!((nested.layout(), flat.layout()), (Layout::GeoIp2, Layout::Flat));
    let (a, b) = (nested.lookup(ip), flat.lookup(ip));
    for g in [&a, &b] {
        assert_eq!(g.status, GeoStatus::Known);
        assert_eq!(g.country_str(), "PT");
        assert_eq!(g.city.as_deref(), Some("Lisbon"));
        assert!((g.lat - 38.72).abs() < 0.1 && (g.lon + 9.14).abs() < 0.1, "{g:?}");
        assert_eq!(g.tz, Some(chrono_tz::Europe::Lisbon));
    }
    assert_eq!(a.city_h, b.city_h, "the same place hashes the same whatever the layout");
    // several files (DB-IP ships IPv4 and IPv6 separately): each address finds its own
    let dir = tempfile::tempdir().unwrap();
    let paths = stepup::geo_fixture::write_all(dir.path()).unwrap();
    let both = GeoDatabases::open_many(&[&paths.flat_city, &paths.city], Some(&paths.asn)).unwrap();
    let g = both.lookup(ip);
    assert_eq!((g.country_str(), g.asn), ("PT", 3243));
    assert_eq!(both.lookup("10.0.0.1".parse().unwrap()).status, GeoStatus::Private);
    assert_eq!(both.lookup("81.0.64.1".parse().unwrap()).status, GeoStatus::Unknown);
}

#[test]
fn replayed_positions_are_not_learned_twice() {
    let mut p = pipeline();
    let home = ip_in("Lisbon", NetKind::Residential, 0, 9);
    let events: Vec<Vec<u8>> = (0..12u32)
        .map(|i| {
            let e = Ev::login("u1", &t(i, 9, 0), &home);
            (if i % 3 == 0 { e.aal2() } else { e }).bytes()
        })
        .collect();
    let mut out = Output::default();
    for (i, e) in events.iter().enumerate() {
        p.process_at(e, Some(100 + i as u64), &mut out).unwrap();
    }
    let after_one_pass = state_file::encode(p.state());
    let saved = p.state().get("u1").unwrap().to_bytes();
    // a crash: the changelog already holds the state after offset 111, the committed
    // offset was 105; a new owner restores and re-reads 105..=111
    let mut q = pipeline();
    q.restore("u1", Some(&saved)).unwrap();
    for (i, e) in events.iter().enumerate().skip(5) {
        q.process_at(e, Some(100 + i as u64), &mut out).unwrap();
        assert!(!out.baseline_changed, "offset {} was already applied", 100 + i);
    }
    assert_eq!(q.state().get("u1"), p.state().get("u1"));
    assert_eq!(state_file::encode(p.state()), after_one_pass);
    // a late write from a former owner (older state) does not replace a newer one
    let mut older = pipeline();
    for (i, e) in events.iter().enumerate().take(4) {
        older.process_at(e, Some(100 + i as u64), &mut out).unwrap();
    }
    q.restore("u1", Some(&older.state().get("u1").unwrap().to_bytes()))
        .unwrap();
    assert_eq!(q.state().get("u1"), p.state().get("u1"));
    // offline scoring has no positions: always learns
    let mut r = pipeline();
    r.process(&events[0], &mut out).unwrap();
    assert!(out.baseline_changed);
}

#[test]
fn password_spray_state_is_swept_and_scores_do_not_change() {
    let mut p = pipeline();
    routine(&mut p, "u1", 20);
    let held_before = p.state().len();
    let ip = ip_in("Lisbon", NetKind::Residential, 0, 12);
    let spray = ip_in("Tokyo", NetKind::Residential, 0, 9);
    let mut out = Output::default();
    let mut removed = Vec::new();
    // 500 made-up names, one failure each, over 50 minutes of day 42
    for i in 0..500u32 {
        let e = Ev::login(&format!("ghost-{i}"), &t(42, 10, i / 10), &spray).failed();
        p.process(&e.bytes(), &mut out).unwrap();
        p.expire_idle(&mut removed);
    }
    let held = p.state().len();
    assert!(held > 100, "the spray's recent failures are still held: {held}");
    // a real user's burst within the window is still seen
    for i in 0..5 {
        score(&mut p, &Ev::login("u1", &t(42, 10, 50 + i), &ip).failed());
    }
    // an hour later (> 2 x failed_window_min = 30 min) the ghosts are gone, the
    // contractor's baseline and its failure ring stay
    // (sweeps during the spray already dropped the ghosts older than 30 minutes)
    let before = p.state().get("u1").unwrap().clone();
    let d = score(&mut p, &Ev::login("u2", &t(42, 12, 0), &ip));
    assert!(d["decision"].is_string());
    p.expire_idle(&mut removed);
    assert!(removed.iter().all(|u| u.starts_with("ghost-")), "{removed:?}");
    let mut ghosts: Vec<&String> = removed.iter().collect();
    ghosts.sort();
    ghosts.dedup();
    assert_eq!(ghosts.len(), 500, "every ghost expires, once");
    assert_eq!(removed.len(), 500, "no ghost is reported twice");
    assert_eq!(p.state().get("u1"), Some(&before), "a trusted user is never swept");
    assert!(p.state().get("ghost-0").is_none());
    // (u2's unverified first login teaches nothing, so it holds no state)
    assert_eq!(p.state().len(), held_before, "everyone but the ghosts remains");
    // a swept ghost scores exactly like a user never seen
    let e = Ev::login("ghost-7", &t(42, 13, 0), &spray);
    let mut fresh = pipeline();
    routine(&mut fresh, "u1", 20);
    let a = score(&mut p, &e);
    let b = score(&mut fresh, &e);
    assert_eq!(a["risk"], b["risk"], "swept state scores as no state");
}

#[test]
fn users_unseen_past_the_horizon_are_swept() {
    let mut p = pipeline();
    routine(&mut p, "old", 10);
    routine(&mut p, "active", 10);
    let ip = ip_in("Lisbon", NetKind::Residential, 0, 12);
    let mut removed = Vec::new();
    // 200 days later only "active" has been seen recently
    score(&mut p, &Ev::login("active", &t(214, 10, 0), &ip).aal2());
    p.expire_idle(&mut removed);
    // the population users of `pipeline()` were last seen in the first week too
    assert!(removed.contains(&"old".to_string()), "{removed:?}");
    assert!(
        removed.iter().all(|u| u == "old" || u.starts_with("pop-")),
        "{removed:?}"
    );
    assert!(p.state().get("old").is_none());
    assert_eq!(p.state().len(), 1, "only the active user is held");
    assert!(p.state().get("active").is_some());
    assert_eq!(p.state().global.users, 1, "population stats follow the sweep");
}

#[test]
fn events_far_ahead_of_the_clock_are_rejected_and_teach_nothing() {
    let mut p = pipeline();
    routine(&mut p, "u1", 10);
    let before = state_file::encode(p.state());
    let ip = ip_in("Lisbon", NetKind::Residential, 0, 12);
    // the clock says day 20, 12:00
    let clock = stepup::timefmt::parse_rfc3339_ms(&t(20, 12, 0)).unwrap();
    p.set_clock(clock);
    let mut out = Output::default();
    let far = Ev::login("u1", "2099-01-01T00:00:00Z", &ip).aal2().bytes();
    let err = p.process(&far, &mut out).expect_err("far-future time");
    assert_eq!(err.code(), "time_in_future");
    assert!(err.to_string().contains("max_future_skew_s"), "{err}");
    assert_eq!(
        state_file::encode(p.state()),
        before,
        "nothing learned, nothing aged out"
    );
    assert!(
        p.watermark_min() < stepup::baseline::minutes(clock),
        "stream time did not jump to the rejected event's"
    );
    // within the allowed skew (1 h by default): accepted
    let near = Ev::login("u1", &t(20, 12, 59), &ip).bytes();
    p.process(&near, &mut out).expect("59 minutes ahead is within the skew");
    assert_eq!(
        p.watermark_min(),
        stepup::baseline::minutes(clock),
        "stream time stops at the clock: an early stamp cannot make the sweep drop users early"
    );
    let later = Ev::login("u1", &t(20, 13, 1), &ip).bytes();
    assert_eq!(p.process(&later, &mut out).unwrap_err().code(), "time_in_future");
    // without a clock (simulations) nothing is too far ahead
    let mut q = pipeline();
    q.process(&far, &mut out).expect("no clock, no check");
}
