//! End-to-end, real broker: the broker is killed mid-stream and started again
//! (same data, `scripts/kafka-broker.sh kill` / `start`). The worker survives:
//! /readyz goes 503 while the broker is away and back to 200 after, the process
//! never exits, no event is lost, and decisions equal the offline engine's.
//!
//! Needs STEPUP_TEST_BOOTSTRAP and broker control, i.e. the tansu broker that
//! `scripts/test.sh` starts; against an external broker it says why it skips.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

const CRASH: &str = "broker stop";

const EVENTS: usize = 1200;
const USERS: usize = 30;
const PARTITIONS: i32 = 2;
const RATE: f64 = 100.0;
const DOWN_FOR: Duration = Duration::from_secs(8);

#[test]
fn broker_restart_mid_stream_loses_nothing() {
    let bs = bootstrap();
    let ctl = match broker_control() {
        Ok(c) => c,
        Err(why) => {
            eprintln!("SKIPPED e2e_broker_restart: needs to restart the broker, and {why}");
            println!("SKIPPED e2e_broker_restart: {why}");
            return;
        }
    };
    let t = Topics::new("e2e-broker-restart", PARTITIONS);
    t.create(&bs);
    let events = gen_events(&unique("brestart"), 4, USERS, EVENTS);
    let decisions = TopicReader::start(&bs, &t.decisions);

    let mut w = Worker::spawn("brestart-w1", &bs, &t, &[]);
    w.wait_ready(Duration::from_secs(90));

    // /readyz, every 100 ms, for the whole test.
    let t0 = Instant::now();
    let seen: Arc<Mutex<Vec<(Duration, Option<u16>)>>> = Arc::default();
    let stop_poll = Arc::new(AtomicBool::new(false));
    let poller = {
        let (seen, stop, addr) = (seen.clone(), stop_poll.clone(), w.metrics_addr);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let st = http_get(addr, "/readyz").ok().map(|(s, _)| s);
                seen.lock().unwrap().push((t0.elapsed(), st));
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };

    // The IdP side: not idempotent (see common::producer_plain), so that only the
    // worker's own idempotent producer meets tansu across the restart.
    let stream = Streamer::start_with(producer_plain(&bs), &t.events, &events, RATE);
    decisions.wait_distinct(
        EVENTS / 4,
        Duration::from_secs(120),
        "a quarter of the events decided",
        || logs(&[&w]),
    );
    let before = by_event_id(&decisions.catch_up(Duration::from_secs(30)));
    let committed = committed_offsets(&bs, &t.group, &t.events);

    let stopped_at = t0.elapsed();
    // kill -9 rather than a graceful stop: tansu 0.6.0's storage task panics during
    // a graceful shutdown while a consumer group is active ("entered unreachable
    // code", service.rs:337), and after that restart answers every produce with
    // UNKNOWN_SERVER_ERROR. A crash is the harsher test anyway; SQLite's WAL keeps
    // the data consistent.
    ctl.kill9();
    note(format!("broker killed (-9) after {} decided", before.len()));
    let not_ready = wait_until(
        DOWN_FOR + Duration::from_secs(30),
        "/readyz to report not-ready while the broker is down",
        || match w.readyz() {
            Some(200) => None,
            other => Some(other),
        },
        || w.log_tail(30),
    );
    let went_unready_in = t0.elapsed() - stopped_at;
    let down = t0.elapsed() - stopped_at;
    if down < DOWN_FOR {
        std::thread::sleep(DOWN_FOR - down);
    }
    assert!(
        w.alive(),
        "the worker exited while the broker was down\n{}",
        w.log_tail(40)
    );
    let started_at = t0.elapsed();
    ctl.start();
    note(format!(
        "broker started again after {:.1}s down; /readyz said {not_ready:?} {:.1}s after the stop",
        (started_at - stopped_at).as_secs_f64(),
        went_unready_in.as_secs_f64()
    ));

    let placed = stream.finish();
    decisions.wait_distinct(
        EVENTS,
        Duration::from_secs(240),
        "a decision for every event after the broker restart",
        || logs(&[&w]),
    );
    wait_until(
        Duration::from_secs(60),
        "/readyz back to 200",
        || (w.readyz() == Some(200)).then_some(()),
        || w.log_tail(30),
    );
    let ready_again = t0.elapsed();
    stop_poll.store(true, Ordering::Relaxed);
    poller.join().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let got = by_event_id(&decisions.catch_up(Duration::from_secs(30)));

    let seen = seen.lock().unwrap().clone();
    let during: Vec<Option<u16>> = seen
        .iter()
        .filter(|(at, _)| *at > stopped_at && *at < started_at)
        .map(|(_, s)| *s)
        .collect();
    assert!(
        during.contains(&Some(503)),
        "/readyz never answered 503 while the broker was down (saw {:?})",
        dedup_runs(&during)
    );
    note(format!(
        "/readyz while down: {:?}; 200 again {:.1}s after the broker started",
        dedup_runs(&during),
        (ready_again - started_at).as_secs_f64()
    ));
    assert!(w.alive(), "the worker exited\n{}", w.log_tail(40));

    let windows = redelivery_windows(&committed, &before, &events, &placed);
    let check = check_against_offline(&events, &placed, &got, &windows);
    note(format!(
        "{} matched offline, {} duplicates, {} tolerated, windows {windows:?}",
        check.matched,
        check.duplicates,
        check.tolerated.len()
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
    check.assert_ok("broker restart");

    w.stop_cleanly();
}

/// [a, a, b, b, a] → [(a, 2), (b, 2), (a, 1)]
fn dedup_runs(v: &[Option<u16>]) -> Vec<(Option<u16>, usize)> {
    let mut out: Vec<(Option<u16>, usize)> = Vec::new();
    for s in v {
        match out.last_mut() {
            Some((x, n)) if x == s => *n += 1,
            _ => out.push((*s, 1)),
        }
    }
    out
}
