//! End-to-end, real broker: two workers in one consumer group; one is killed
//! with `kill -9`. The survivor takes over its partitions (every partition keeps
//! flowing), restores their baselines from the changelog (its restore metrics or
//! logs show it), no event is lost, and the decisions after the failover equal
//! an offline `stepup score` of each partition (re-deliveries aside, see
//! `common::redelivery_windows`).
//!
//! Needs STEPUP_TEST_BOOTSTRAP (run `scripts/test.sh`).

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;

const CRASH: &str = "kill";

const EVENTS: usize = 1600;
const USERS: usize = 40;
const PARTITIONS: i32 = 4;
const RATE: f64 = 120.0;

#[test]
fn survivor_takes_over_partitions_and_baselines() {
    let bs = bootstrap();
    let t = Topics::new("e2e-failover", PARTITIONS);
    t.create(&bs);
    let events = gen_events(&unique("failover"), 3, USERS, EVENTS);
    let decisions = TopicReader::start(&bs, &t.decisions);

    let mut w1 = Worker::spawn("failover-w1", &bs, &t, &[]);
    w1.wait_ready(Duration::from_secs(90));
    let mut w2 = Worker::spawn("failover-w2", &bs, &t, &[]);
    w2.wait_ready(Duration::from_secs(90));
    let stream = Streamer::start(&bs, &t.events, &events, RATE);

    decisions.wait_distinct(
        EVENTS / 3,
        Duration::from_secs(120),
        "a third of the events decided by the two workers",
        || logs(&[&w1, &w2]),
    );
    // Both members own partitions (else the kill proves nothing).
    let members = group_members(&bs, &t.group);
    match &members {
        Ok(m) => {
            note(format!("group before the kill: {m:?}"));
            assert_eq!(m.len(), 2, "expected two members in {}: {m:?}", t.group);
            assert!(
                m.iter().all(|(_, _, a)| !a.is_empty()),
                "a member has no partitions: {m:?}"
            );
        }
        Err(e) => note(format!("DescribeGroups unavailable ({e}); relying on metrics")),
    }
    let w2_consumed = metric_sum(&w2.metrics(), "consumed");
    note(format!(
        "before the kill: w1 assigned {:?}, w2 assigned {:?}, w2 consumed {w2_consumed} events (metrics)",
        metric_samples(&w1.metrics(), "assigned_partitions"),
        metric_samples(&w2.metrics(), "assigned_partitions")
    ));
    if members.is_err() {
        assert!(
            w2_consumed > 0.0,
            "w2 consumed nothing before the kill: it owned no partitions\n{}",
            logs(&[&w1, &w2])
        );
    }
    let restore_before = metric_samples(&w1.metrics(), "restore");
    let log_len_before = w1.log().len();

    w2.kill9();
    let killed_at = Instant::now();
    let before = by_event_id(&decisions.catch_up(Duration::from_secs(30)));
    let committed = committed_offsets(&bs, &t.group, &t.events);
    note(format!(
        "killed w2 after {} decided; committed offsets {committed:?}",
        before.len()
    ));

    // The survivor should own every partition within the session timeout (6 s)
    // plus a rebalance (forced on tansu 0.6.0, see common::ensure_owns_all).
    let nudged = ensure_owns_all(&bs, &t.group, &w1, PARTITIONS);
    let took_over_in = killed_at.elapsed();
    note(format!(
        "survivor owns all partitions {:.1}s after the kill{}",
        took_over_in.as_secs_f64(),
        if nudged { " (after a forced rebalance)" } else { "" }
    ));

    let placed = stream.finish();
    decisions.wait_distinct(
        EVENTS,
        Duration::from_secs(240),
        "a decision for every event after the failover",
        || logs(&[&w1]),
    );
    let complete_in = killed_at.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let got = by_event_id(&decisions.catch_up(Duration::from_secs(30)));

    // Every partition produced decisions after the kill: only w1 was alive.
    let after: std::collections::BTreeMap<String, Vec<serde_json::Value>> = got
        .iter()
        .filter(|(k, _)| !before.contains_key(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let flowing = decided_partitions(&after, &events, &placed);
    let all: BTreeSet<i32> = (0..PARTITIONS).collect();
    assert_eq!(
        flowing.keys().copied().collect::<BTreeSet<_>>(),
        all,
        "after the kill not every partition was processed by the survivor: {flowing:?}"
    );
    if let Ok(m) = group_members(&bs, &t.group) {
        note(format!("group after the failover: {m:?}"));
    }

    // The survivor restored baselines for the partitions it took over.
    let restore_after = metric_samples(&w1.metrics(), "restore");
    let new_log = w1.log()[log_len_before..].to_lowercase();
    let metric_moved = restore_after.iter().any(|(k, v)| {
        *v > restore_before
            .iter()
            .find(|(k0, _)| k0 == k)
            .map(|(_, v0)| *v0)
            .unwrap_or(0.0)
    });
    let log_says = new_log.contains("restor");
    let brief = |v: &[(String, f64)]| -> Vec<(String, f64)> {
        v.iter()
            .filter(|(k, _)| k.contains("_count") || k.contains("restored_records"))
            .cloned()
            .collect()
    };
    note(format!(
        "survivor restore metrics before {:?} after {:?}; log mentions restore: {log_says}",
        brief(&restore_before),
        brief(&restore_after)
    ));
    assert!(
        metric_moved || log_says,
        "no sign that the survivor restored baselines from the changelog (no /metrics sample named *restore* \
         grew, no log line mentions it)\n{}",
        w1.log_tail(40)
    );

    let windows = redelivery_windows(&committed, &before, &events, &placed);
    let check = check_against_offline(&events, &placed, &got, &windows);
    note(format!(
        "all {EVENTS} decided {:.1}s after the kill; windows {windows:?}; {} matched offline, {} duplicates, \
         {} tolerated, {} re-decided differently",
        complete_in.as_secs_f64(),
        check.matched,
        check.duplicates,
        check.tolerated.len(),
        check.redecided_differently
    ));
    note(format!(
        "mismatches: {} of them first decided before the {}",
        check
            .mismatched_ids
            .iter()
            .filter(|id| before.contains_key(*id))
            .count(),
        CRASH
    ));
    check.assert_ok("failover");

    w1.stop_cleanly();
}
