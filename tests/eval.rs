//! `stepup eval` counts what it claims: attacks stopped, honest logins bothered,
//! for stepup and the rules baseline, with the closed step-up loop.

#[path = "common/scoring.rs"]
mod common;

use common::*;
use serde_json::json;
use stepup::geo_fixture::NetKind;

#[test]
fn counts_a_crafted_story_exactly() {
    let lisbon = ip_in("Lisbon", NetKind::Residential, 0, 9);
    let mut events = Vec::new();
    let mut labels = Vec::new();
    let mut push = |e: Ev, label: &str| {
        labels.push(json!({"event_id": e.0["event_id"], "label": label}).to_string());
        events.push(e.0.to_string());
    };
    for d in 0..5 {
        push(Ev::login("u1", &t(d, 9, 0), &lisbon).aal2(), "legit");
    }
    // a routine login: nobody bothers it
    push(Ev::login("u1", &t(7, 9, 0), &lisbon), "legit");
    // a naive attack: both stop it
    push(
        Ev::login("u1", &t(7, 3, 0), &ip_in("Tokyo", NetKind::Hosting, 0, 9))
            .set("user_agent", json!(CURL))
            .set("device_id", serde_json::Value::Null),
        "naive",
    );
    // a new laptop at home: stepup lets the ratio judge it (the user's own /24),
    // the rules step up
    push(
        Ev::login("u1", &t(8, 9, 0), &lisbon).set("device_id", json!("laptop-2")),
        "legit",
    );
    // a new laptop away from home: both step up; the contractor completes it (the
    // closed loop) ...
    let porto = ip_in("Porto", NetKind::Residential, 0, 9);
    push(
        Ev::login("u1", &t(9, 9, 0), &porto).set("device_id", json!("laptop-3")),
        "legit",
    );
    // ... so the next login from it bothers nobody
    push(
        Ev::login("u1", &t(10, 9, 0), &porto).set("device_id", json!("laptop-3")),
        "legit",
    );
    // a login after the contract: only stepup stops it (registry rule)
    push(Ev::login("u1", &t(30, 9, 0), &lisbon), "post_contract");

    let mut p = pipeline();
    let c = stepup::contractors::Contractor::parse(br#"{"user_id":"u1","contract_end":"2026-03-20"}"#).unwrap();
    p.upsert_contractor("u1", Some(c));
    let labels = stepup::eval::read_labels(labels.join("\n").as_bytes()).unwrap();
    let mut decisions = Vec::new();
    let rep = stepup::eval::evaluate(
        &mut p,
        events.join("\n").as_bytes(),
        &labels,
        Some(&mut decisions),
        |_| {},
    )
    .unwrap();

    assert_eq!(rep.events, 11);
    assert_eq!(
        String::from_utf8(decisions).unwrap().lines().count(),
        11,
        "one decision per event"
    );
    let naive = rep.attacks["naive"];
    assert_eq!((naive.events, naive.stepup, naive.rules), (1, 1, 1));
    let post = rep.attacks["post_contract"];
    assert_eq!((post.events, post.stepup, post.rules), (1, 1, 0));
    // honest: 5 AAL2 + routine + laptop-2 + laptop-3 twice = 9 attempts
    assert_eq!(rep.honest.events, 9);
    assert_eq!(rep.honest.stepup, 1, "only laptop-3's first login: {:?}", rep.honest);
    assert_eq!(
        rep.honest.rules, 2,
        "laptop-2 and laptop-3's first login: {:?}",
        rep.honest
    );
    assert_eq!(rep.honest_after_14d.events, 0);
    assert_eq!(rep.all_attacks().events, 2);
}
