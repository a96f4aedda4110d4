//! End-to-end, real broker: poison records (not JSON, missing fields, a bad IP,
//! oversize, binary garbage, empty) interleaved with good events on one
//! partition. Every poison record lands in the DLQ with its original bytes and
//! the headers naming the error and its source (topic, partition, offset); every
//! good event is scored; the partition keeps flowing past each poison record.
//!
//! Needs STEPUP_TEST_BOOTSTRAP (run `scripts/test.sh`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;

const GOOD: usize = 300;

fn poison(good_json: &str) -> Vec<(&'static str, Vec<u8>)> {
    let mut v: serde_json::Value = serde_json::from_str(good_json).unwrap();
    let mut bad_ip = v.clone();
    bad_ip["ip"] = "999.12.1.1".into();
    bad_ip["event_id"] = "poison-bad-ip".into();
    let mut missing = v.clone();
    missing.as_object_mut().unwrap().remove("user_id");
    missing["event_id"] = "poison-missing-user".into();
    let mut bad_type = v.clone();
    bad_type["type"] = "teleport".into();
    bad_type["event_id"] = "poison-bad-type".into();
    let mut bad_time = v.clone();
    bad_time["time"] = "yesterday at noon".into();
    bad_time["event_id"] = "poison-bad-time".into();
    v["event_id"] = "poison-oversize".into();
    v["user_agent"] = "A".repeat(70_000).into();
    let oversize = v.to_string().into_bytes();
    let mut garbage = Vec::with_capacity(512);
    let mut x: u32 = 0x2545_f491;
    for _ in 0..512 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        garbage.push((x >> 24) as u8);
    }
    garbage[0] = 0xff;
    garbage[1] = 0x00;
    vec![
        ("not json", b"this is not json at all".to_vec()),
        ("truncated json", good_json.as_bytes()[..good_json.len() / 2].to_vec()),
        ("json array", b"[1,2,3]".to_vec()),
        ("json null", b"null".to_vec()),
        ("missing user_id", missing.to_string().into_bytes()),
        ("bad ip", bad_ip.to_string().into_bytes()),
        ("bad type", bad_type.to_string().into_bytes()),
        ("bad time", bad_time.to_string().into_bytes()),
        ("oversize", oversize),
        ("binary garbage", garbage),
        (
            "invalid utf-8",
            b"{\"event_id\":\"\xff\xfe\",\"type\":\"login\"}".to_vec(),
        ),
        ("empty", Vec::new()),
    ]
}

#[test]
fn poison_records_go_to_the_dlq_and_the_partition_keeps_flowing() {
    let bs = bootstrap();
    // One partition: poison and good records share it, in a known order.
    let t = Topics::new("e2e-poison", 1);
    t.create(&bs);
    let good = gen_events(&unique("good"), 5, 20, GOOD);
    let bad = poison(&good[0].json);

    // good, good, ..., poison, good, ... and a good event last of all.
    let mut records: Vec<(Option<Vec<u8>>, Vec<u8>, Option<&str>)> = Vec::new();
    let every = GOOD / (bad.len() + 1);
    let mut bi = 0;
    for (i, e) in good.iter().enumerate() {
        records.push((Some(e.user_id.clone().into_bytes()), e.json.clone().into_bytes(), None));
        if i % every == every - 1 && bi < bad.len() {
            let (what, bytes) = &bad[bi];
            // Half keyed, half not: unkeyed records are accepted input too.
            let key = (bi % 2 == 0).then(|| b"poison-key".to_vec());
            records.push((key, bytes.clone(), Some(what)));
            bi += 1;
        }
    }
    assert_eq!(bi, bad.len());

    let decisions = TopicReader::start(&bs, &t.decisions);
    let dlq = TopicReader::start(&bs, &t.dlq);
    let mut w = Worker::spawn("poison-w1", &bs, &t, &[]);
    w.wait_ready(Duration::from_secs(90));

    let p = producer(&bs);
    let borrowed: Vec<(Option<&[u8]>, &[u8])> = records.iter().map(|(k, v, _)| (k.as_deref(), v.as_slice())).collect();
    let placed = produce_all(&p, &t.events, &borrowed);
    let poison_at: BTreeMap<i64, (&str, &[u8])> = records
        .iter()
        .zip(&placed)
        .filter_map(|((_, v, what), (_, o))| what.map(|w| (*o, (w, v.as_slice()))))
        .collect();
    note(format!(
        "produced {GOOD} good and {} poison records, poison at offsets {:?}",
        bad.len(),
        poison_at.keys().collect::<Vec<_>>()
    ));

    decisions.wait_distinct(GOOD, Duration::from_secs(120), "every good event decided", || {
        logs(&[&w])
    });
    dlq.wait_for(
        Duration::from_secs(60),
        "every poison record in the DLQ",
        |r| r.len() >= bad.len(),
        || logs(&[&w]),
    );
    std::thread::sleep(Duration::from_secs(2));
    let got = by_event_id(&decisions.catch_up(Duration::from_secs(30)));
    let dl = dlq.catch_up(Duration::from_secs(30));

    // Every good event scored (the last one comes after every poison record).
    let missing: Vec<&str> = good
        .iter()
        .filter(|e| !got.contains_key(&e.event_id))
        .map(|e| e.event_id.as_str())
        .collect();
    assert!(missing.is_empty(), "good events not scored: {missing:?}");
    let stray: Vec<&String> = got.keys().filter(|k| k.starts_with("poison-")).take(10).collect();
    assert!(stray.is_empty(), "poison records were scored: {stray:?}");

    // Every poison record in the DLQ, once (after dedup), bytes and headers intact.
    let mut found: BTreeSet<i64> = BTreeSet::new();
    let mut codes: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for r in &dl {
        let h = |n: &str| {
            r.header_str(n)
                .unwrap_or_else(|| panic!("DLQ record {} lacks header {n}; headers {:?}", r.offset, r.headers))
        };
        assert_eq!(h("stepup-source-topic"), t.events, "stepup-source-topic");
        assert_eq!(h("stepup-source-partition"), "0", "stepup-source-partition");
        let off: i64 = h("stepup-source-offset")
            .parse()
            .unwrap_or_else(|e| panic!("stepup-source-offset not a number: {e}"));
        let (what, bytes) = poison_at
            .get(&off)
            .unwrap_or_else(|| panic!("DLQ holds offset {off}, which is not a poison record"));
        assert_eq!(
            r.value.as_deref().unwrap_or_default(),
            *bytes,
            "DLQ record for {what} (offset {off}) does not carry the original bytes"
        );
        assert!(!h("stepup-error").is_empty(), "empty stepup-error for {what}");
        let code = h("stepup-error-code");
        assert!(!code.is_empty(), "empty stepup-error-code for {what}");
        codes.entry(code).or_default().push(what);
        found.insert(off);
    }
    let lost: Vec<&str> = poison_at
        .iter()
        .filter(|(o, _)| !found.contains(o))
        .map(|(_, (w, _))| *w)
        .collect();
    assert!(lost.is_empty(), "poison records missing from the DLQ: {lost:?}");
    note(format!(
        "DLQ: {} records ({} duplicates), codes {codes:?}",
        dl.len(),
        dl.len() - found.len()
    ));

    // The DLQ counter agrees, when the worker exports one.
    let m = w.metrics();
    let dlq_metric = metric_sum(&m, "dlq");
    note(format!("dlq metrics: {:?}", metric_samples(&m, "dlq")));
    if !metric_samples(&m, "dlq").is_empty() {
        assert!(
            dlq_metric >= bad.len() as f64,
            "DLQ metric {dlq_metric} below {} poison records",
            bad.len()
        );
    }

    w.stop_cleanly();
    let committed = committed_offsets(&bs, &t.group, &t.events);
    let hw = high_watermarks(&bs, &t.events);
    assert_eq!(
        committed[0],
        Some(hw[0]),
        "the partition's committed offset must reach its end: poison never stalls it"
    );
}
