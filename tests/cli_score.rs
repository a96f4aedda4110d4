//! `stepup score` as a user runs it: on a file and on stdin, bad lines reported on
//! stderr with their line numbers, output in input order, state saved and restored.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_stepup"))
}

fn data(name: &str) -> String {
    format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn fixture() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let paths = stepup::geo_fixture::write_all(dir.path()).unwrap();
    let city = paths.city.display().to_string();
    (dir, city)
}

fn json_lines(s: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(s)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn scores_a_file_in_order_and_reports_bad_lines() {
    let (_d, city) = fixture();
    let out = bin()
        .args([
            "score",
            "--geoip",
            &city,
            "--input",
            &data("sample-events.jsonl"),
            "--contractors",
        ])
        .arg(data("sample-contractors.jsonl"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let input: Vec<String> = std::fs::read_to_string(data("sample-events.jsonl"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let decisions = json_lines(&out.stdout);
    let errors: Vec<Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("{\"error\"") || l.starts_with("{\"line\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!errors.is_empty());
    assert_eq!(
        decisions.len() + errors.len(),
        input.iter().filter(|l| !l.trim().is_empty()).count()
    );
    // order: decisions follow the input's event ids
    let ids: Vec<String> = input
        .iter()
        .enumerate()
        .filter(|(i, _)| !errors.iter().any(|e| e["line"] == (*i as u64 + 1)))
        .filter_map(|(_, l)| {
            serde_json::from_str::<Value>(l)
                .ok()
                .and_then(|v| v["event_id"].as_str().map(String::from))
        })
        .collect();
    let got: Vec<String> = decisions
        .iter()
        .map(|d| d["event_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, ids);
    for e in &errors {
        let n = e["line"].as_u64().unwrap() as usize;
        assert!(
            input[n - 1].contains("_invalid") || serde_json::from_str::<Value>(&input[n - 1]).is_err(),
            "line {n} rejected: {e}"
        );
        assert!(e["error"].as_str().unwrap().len() > 5);
    }
}

#[test]
fn reads_stdin_and_keeps_state_across_runs() {
    let (d, city) = fixture();
    let state = d.path().join("baselines.bin");
    let events = std::fs::read_to_string(data("sample-events.jsonl")).unwrap();
    let run = |input: &str| {
        let mut child = bin()
            .args(["score", "--geoip", &city, "--state"])
            .arg(&state)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        json_lines(&out.stdout)
    };
    let all: Vec<&str> = events.lines().collect();
    let half = all.len() / 2;
    let whole = {
        let s = d.path().join("whole.bin");
        let out = bin()
            .args([
                "score",
                "--geoip",
                &city,
                "--input",
                &data("sample-events.jsonl"),
                "--state",
            ])
            .arg(&s)
            .output()
            .unwrap();
        json_lines(&out.stdout)
    };
    let mut split = run(&all[..half].join("\n"));
    assert!(state.exists());
    split.extend(run(&all[half..].join("\n")));
    assert_eq!(split, whole, "two runs with --state equal one run");
}

#[test]
fn fatal_problems_exit_non_zero() {
    let out = bin()
        .args(["score", "--geoip", "/nonexistent.mmdb"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.mmdb"));
    let (d, city) = fixture();
    let cfg = d.path().join("bad.toml");
    std::fs::write(&cfg, "[model]\nhigh = 0.1\n").unwrap();
    let out = bin()
        .args(["score", "--geoip", &city, "--config"])
        .arg(&cfg)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("model.high"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `stepup score` on `input` through stdin (written from a thread, so a large input
/// cannot deadlock against the output pipes): the decided event ids in output order
/// and the first error record on stderr.
fn score_stdin(city: &str, input: String) -> (Vec<String>, Value) {
    let mut child = bin()
        .args(["score", "--geoip", city])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ids = json_lines(&out.stdout)
        .iter()
        .map(|d| d["event_id"].as_str().unwrap().to_string())
        .collect();
    let err = String::from_utf8_lossy(&out.stderr)
        .lines()
        .find(|l| l.starts_with("{\"error\"") || l.starts_with("{\"line\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .expect("an error record");
    (ids, err)
}

fn login_line(id: &str, time: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","time":"{time}","type":"login","user_id":"u1","outcome":"success","ip":"81.0.0.10","aal":2}}"#
    )
}

#[test]
fn events_stamped_far_past_the_wall_clock_are_rejected() {
    let (_d, city) = fixture();
    let input = [
        login_line("past", "2026-03-02T08:00:00Z"),
        login_line("future", "2099-01-01T00:00:00Z"),
        login_line("after", "2026-03-02T09:00:00Z"),
    ]
    .join("\n");
    let (ids, err) = score_stdin(&city, input);
    assert_eq!(ids, ["past", "after"]);
    assert_eq!(err["line"], 2);
    assert!(err["error"].as_str().unwrap().contains("ahead of the clock"), "{err}");
}

#[test]
fn an_over_long_line_is_rejected_and_the_next_one_scores() {
    let (_d, city) = fixture();
    // 1 MiB on one line, far over limits.max_event_bytes (64 KiB)
    let huge = format!(r#"{{"event_id":"big","pad":"{}"}}"#, "x".repeat(1 << 20));
    let t = "2026-03-02T08:00:00Z";
    let input = [login_line("a", t), huge.clone(), login_line("b", t)].join("\n");
    let (ids, err) = score_stdin(&city, input);
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(err["line"], 2);
    let msg = err["error"].as_str().unwrap();
    assert!(
        msg.contains(&format!("{} bytes", huge.len() + 1)) && msg.contains("65536"),
        "{msg}"
    );
}
