//! End-to-end, real broker: N events in → exactly one decision per event_id after
//! deduplication, every event_id present, decisions equal to an offline
//! `stepup score` of each partition; triggers for exactly the step_up/deny
//! decisions, keyed by user_id with the idempotency headers; nothing in the DLQ;
//! SIGTERM ends the worker with exit 0.
//!
//! Needs STEPUP_TEST_BOOTSTRAP (run `scripts/test.sh`).

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use common::*;

const EVENTS: usize = 2000;
const USERS: usize = 40;
const PARTITIONS: i32 = 4;

#[test]
fn every_event_gets_exactly_one_decision_after_dedup() {
    let bs = bootstrap();
    let t = Topics::new("e2e-once", PARTITIONS);
    t.create(&bs);
    let events = gen_events(&unique("once"), 1, USERS, EVENTS);
    let ids: BTreeSet<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    let user_of: HashMap<&str, &str> = events
        .iter()
        .map(|e| (e.event_id.as_str(), e.user_id.as_str()))
        .collect();

    let decisions = TopicReader::start(&bs, &t.decisions);
    let triggers = TopicReader::start(&bs, &t.triggers);
    let dlq = TopicReader::start(&bs, &t.dlq);

    let mut w = Worker::spawn("once-w1", &bs, &t, &[]);
    w.wait_ready(Duration::from_secs(90));
    let p = producer(&bs);
    let recs: Vec<(Option<&[u8]>, &[u8])> = events
        .iter()
        .map(|e| (Some(e.user_id.as_bytes()), e.json.as_bytes()))
        .collect();
    let placed = produce_all(&p, &t.events, &recs);
    note(format!("produced {EVENTS} events to {} partitions", PARTITIONS));

    decisions.wait_distinct(EVENTS, Duration::from_secs(180), "a decision for every event", || {
        logs(&[&w])
    });
    // Anything still in flight (duplicates included) lands before we count.
    std::thread::sleep(Duration::from_secs(2));
    let got = by_event_id(&decisions.catch_up(Duration::from_secs(30)));

    // 1. exactly the event_ids that went in, each with one distinct decision.
    let unknown: Vec<&String> = got.keys().filter(|k| !ids.contains(k.as_str())).collect();
    assert!(unknown.is_empty(), "decisions for unknown event ids: {unknown:?}");
    let missing: Vec<&&str> = ids.iter().filter(|k| !got.contains_key(**k)).collect();
    assert!(
        missing.is_empty(),
        "{} events have no decision: {:?}",
        missing.len(),
        missing
    );
    let dups: usize = got.values().map(|v| v.len() - 1).sum();
    for (id, vs) in &got {
        for v in &vs[1..] {
            assert_eq!(
                decision_view(v),
                decision_view(&vs[0]),
                "event {id}: duplicate decisions differ (re-delivery must reproduce the same output)"
            );
        }
    }

    // 2. the same decisions as the offline engine over each partition, in order.
    let offline = offline_decisions(&events, &placed);
    let mut mismatches = Vec::new();
    for (id, vs) in &got {
        let want = &offline[id.as_str()];
        if decision_view(&vs[0]) != decision_view(want) {
            mismatches.push(describe_mismatch(id, &vs[0], want));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {EVENTS} decisions differ from `stepup score` per partition; first ones:\n{}",
        mismatches.len(),
        mismatches[..mismatches.len().min(5)].join("\n")
    );
    let mix = decision_mix(got.values().map(|v| &v[0]));
    note(format!("decisions: {mix:?}, {dups} duplicates"));
    for kind in ["allow", "step_up", "deny"] {
        assert!(
            mix.get(kind).copied().unwrap_or(0) > 0,
            "test data produced no {kind}: {mix:?}"
        );
    }

    // 3. triggers: exactly the step_up/deny decisions, keyed by user_id, with headers.
    let want_triggers: BTreeSet<&str> = got
        .iter()
        .filter(|(_, v)| matches!(v[0]["decision"].as_str(), Some("step_up") | Some("deny")))
        .map(|(k, _)| k.as_str())
        .collect();
    triggers.wait_for(
        Duration::from_secs(60),
        "a trigger for every step_up/deny decision",
        |recs| recs.len() >= want_triggers.len(),
        || logs(&[&w]),
    );
    std::thread::sleep(Duration::from_secs(1));
    let trig = triggers.catch_up(Duration::from_secs(30));
    let mut trig_ids: BTreeMap<String, usize> = BTreeMap::new();
    for r in &trig {
        let ct = r.header_str("content-type");
        assert!(
            ct.as_deref().is_some_and(|c| !c.is_empty()),
            "trigger {}@{} has no content-type header",
            r.partition,
            r.offset
        );
        let hid = r.header_str("ce_id"); // with cloudevents_headers = true
        let body_id = r
            .value
            .as_deref()
            .and_then(|v| serde_json::from_slice::<serde_json::Value>(v).ok())
            .and_then(|v| {
                v.get("event_id")
                    .or_else(|| v.pointer("/data/event_id"))
                    .and_then(|x| x.as_str())
                    .map(str::to_string)
            });
        let id = hid
            .clone()
            .or(body_id.clone())
            .unwrap_or_else(|| panic!("trigger {}@{} names no event_id", r.partition, r.offset));
        if let (Some(h), Some(b)) = (&hid, &body_id) {
            assert_eq!(h, b, "trigger header ce_id and body event_id differ");
        }
        let user = user_of
            .get(id.as_str())
            .unwrap_or_else(|| panic!("trigger for unknown event {id}"));
        assert_eq!(
            r.key_str().as_deref(),
            Some(*user),
            "trigger for {id} must be keyed by user_id"
        );
        *trig_ids.entry(id).or_insert(0) += 1;
    }
    let allow_triggered: Vec<&String> = trig_ids
        .keys()
        .filter(|k| !want_triggers.contains(k.as_str()))
        .collect();
    assert!(
        allow_triggered.is_empty(),
        "{} triggers for decisions that are not step_up/deny: {:?}",
        allow_triggered.len(),
        &allow_triggered[..allow_triggered.len().min(10)]
    );
    let untriggered: Vec<&&str> = want_triggers.iter().filter(|k| !trig_ids.contains_key(**k)).collect();
    assert!(
        untriggered.is_empty(),
        "{} step_up/deny decisions without a trigger: {:?}",
        untriggered.len(),
        &untriggered[..untriggered.len().min(10)]
    );
    note(format!(
        "triggers: {} distinct, {} duplicates",
        trig_ids.len(),
        trig.len() - trig_ids.len()
    ));

    // 4. nothing was poison.
    let dl = dlq.snapshot();
    assert!(
        dl.is_empty(),
        "{} good events went to the DLQ, first: {:?}",
        dl.len(),
        dl.first().map(|r| r.header_str("stepup-error"))
    );

    // 5. graceful shutdown.
    let st = w.terminate(Duration::from_secs(30));
    assert!(
        st.is_some_and(|s| s.success()),
        "SIGTERM: worker must drain, commit and exit 0, got {st:?}\n{}",
        w.log_tail(30)
    );
    let committed = committed_offsets(&bs, &t.group, &t.events);
    let hw = high_watermarks(&bs, &t.events);
    assert_eq!(
        committed.iter().map(|c| c.unwrap_or(0)).collect::<Vec<_>>(),
        hw,
        "after a graceful shutdown the group's committed offsets equal the end of every partition"
    );
}
