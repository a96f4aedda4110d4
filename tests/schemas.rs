//! The JSON Schemas in schemas/ are valid, the committed samples conform, and every
//! decision the engine writes validates against the decision schema.

#[path = "common/scoring.rs"]
mod common;

use serde_json::Value;
use stepup::pipeline::Output;

fn schema(name: &str) -> jsonschema::Validator {
    let path = format!("{}/schemas/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    jsonschema::options()
        .should_validate_formats(true)
        .build(&v)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn lines(name: &str) -> Vec<String> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .lines()
        .map(String::from)
        .collect()
}

fn errors(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect()
}

#[test]
fn samples_conform_and_invalid_samples_do_not() {
    let ev = schema("auth-event.v1.schema.json");
    let mut valid = 0;
    for l in lines("sample-events.jsonl") {
        let Ok(doc) = serde_json::from_str::<Value>(&l) else {
            continue;
        };
        if doc.get("_invalid").is_some() {
            assert!(!ev.is_valid(&doc), "marked invalid but conforms: {l}");
        } else {
            assert!(ev.is_valid(&doc), "{l}: {:?}", errors(&ev, &doc));
            valid += 1;
        }
    }
    assert!(valid >= 10);
    let c = schema("contractor.v1.schema.json");
    for l in lines("sample-contractors.jsonl") {
        let doc: Value = serde_json::from_str(&l).unwrap();
        assert!(c.is_valid(&doc), "{l}: {:?}", errors(&c, &doc));
    }
    // the schema rejects what the decoder rejects
    for bad in [
        r#"{"event_id":"e","time":"2026-03-02T08:00:00Z","type":"login","user_id":"u"}"#,
        r#"{"event_id":"e","time":"2026-03-02T08:00:00Z","type":"login","user_id":"u","outcome":"success","ip":"1.2.3.999"}"#,
        r#"{"event_id":"e","time":"2026-03-02T08:00:00Z","type":"access","user_id":"u"}"#,
        r#"{"event_id":"e","time":"2026-03-02T08:00:00Z","type":"login","user_id":"u","outcome":"success","ip":"1.2.3.4","aal":4}"#,
    ] {
        let doc: Value = serde_json::from_str(bad).unwrap();
        assert!(!ev.is_valid(&doc), "{bad}");
        assert!(stepup::event::decode(bad.as_bytes(), 65536).is_err(), "{bad}");
    }
}

#[test]
fn every_decision_validates() {
    let dec = schema("decision.v1.schema.json");
    let mut p = common::pipeline();
    let reg = lines("sample-contractors.jsonl").join("\n");
    assert!(p.registry_mut().load_jsonl(&reg).is_empty());
    let mut out = Output::default();
    let mut kinds = std::collections::HashSet::new();
    let mut n = 0;
    for l in lines("sample-events.jsonl") {
        if p.process(l.as_bytes(), &mut out).is_err() {
            continue;
        }
        let doc: Value = serde_json::from_slice(&out.json).expect("decision JSON");
        assert!(dec.is_valid(&doc), "{doc}: {:?}", errors(&dec, &doc));
        kinds.insert(doc["decision"].as_str().unwrap_or("").to_string());
        n += 1;
    }
    assert!(n >= 10);
    assert_eq!(
        kinds.len(),
        3,
        "the sample exercises allow, step_up and deny: {kinds:?}"
    );
    // a decision with a missing field does not validate (the schema has teeth)
    let mut doc: Value = serde_json::from_slice(&out.json).unwrap();
    doc.as_object_mut().unwrap().remove("required_aal");
    assert!(!dec.is_valid(&doc));
}
