//! End-to-end, real broker: `kill -9` of the worker mid-stream, then a restart.
//! Zero events lost (every event_id has a decision), and the baselines are intact:
//! every event's first decision equals an offline `stepup score` of its
//! partition's events in order, except re-deliveries (records after the group's
//! last commit that the killed worker had already decided, whose second
//! decision may see a baseline that already learned them).
//!
//! Needs STEPUP_TEST_BOOTSTRAP (run `scripts/test.sh`).

mod common;

use std::time::{Duration, Instant};

use common::*;

const CRASH: &str = "kill";

const EVENTS: usize = 1500;
const USERS: usize = 30;
const PARTITIONS: i32 = 2;
const RATE: f64 = 150.0;

#[test]
fn kill9_mid_stream_loses_nothing_and_keeps_baselines() {
    let bs = bootstrap();
    let t = Topics::new("e2e-kill9", PARTITIONS);
    t.create(&bs);
    let events = gen_events(&unique("kill9"), 2, USERS, EVENTS);
    let decisions = TopicReader::start(&bs, &t.decisions);

    let mut w1 = Worker::spawn("kill9-w1", &bs, &t, &[]);
    w1.wait_ready(Duration::from_secs(90));
    let stream = Streamer::start(&bs, &t.events, &events, RATE);

    // Mid-stream: a third of the events decided.
    decisions.wait_distinct(
        EVENTS / 3,
        Duration::from_secs(120),
        "a third of the events decided",
        || logs(&[&w1]),
    );
    w1.kill9();
    let killed_at = Instant::now();
    let sent_at_kill = stream.sent();
    // Everything the dead worker published, and the offsets its group committed.
    let before = by_event_id(&decisions.catch_up(Duration::from_secs(30)));
    let committed = committed_offsets(&bs, &t.group, &t.events);
    note(format!(
        "killed -9 after {} decided ({} sent); committed offsets {committed:?}",
        before.len(),
        sent_at_kill
    ));

    // Down for a while: events keep arriving.
    std::thread::sleep(Duration::from_secs(2));
    let mut w2 = Worker::spawn("kill9-w2", &bs, &t, &[]);
    w2.wait_ready(Duration::from_secs(90));
    // Ready can mean "ready with no partitions" while the dead member still holds
    // them; it must get them all (forced on tansu 0.6.0, see common::ensure_owns_all).
    ensure_owns_all(&bs, &t.group, &w2, PARTITIONS);
    let restarted_in = killed_at.elapsed();
    let placed = stream.finish();

    decisions.wait_distinct(
        EVENTS,
        Duration::from_secs(180),
        "a decision for every event after the restart",
        || logs(&[&w2]),
    );
    std::thread::sleep(Duration::from_secs(2));
    let got = by_event_id(&decisions.catch_up(Duration::from_secs(30)));

    let windows = redelivery_windows(&committed, &before, &events, &placed);
    let check = check_against_offline(&events, &placed, &got, &windows);
    note(format!(
        "restarted worker owns every partition {:.1}s after the kill; re-delivery windows {windows:?}; {} matched offline, {} duplicates, \
         {} tolerated differences in the windows, {} re-decided differently",
        restarted_in.as_secs_f64(),
        check.matched,
        check.duplicates,
        check.tolerated.len(),
        check.redecided_differently
    ));
    for m in check.tolerated.iter().take(3) {
        note(format!("tolerated: {m}"));
    }
    note(format!(
        "mismatches: {} of them first decided before the {}",
        check
            .mismatched_ids
            .iter()
            .filter(|id| before.contains_key(*id))
            .count(),
        CRASH
    ));
    check.assert_ok("kill -9 and restart");
    let after_restart = events.len() - before.len();
    assert!(
        after_restart > EVENTS / 3,
        "the restarted worker decided only {after_restart} new events: the kill was not mid-stream"
    );

    // The restarted worker restored baselines from the changelog (metrics or logs say so).
    let m = w2.metrics();
    let restored = metric_samples(&m, "restore");
    note(format!("w2 restore metrics: {restored:?}"));

    w2.stop_cleanly();
}
