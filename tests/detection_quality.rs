//! The default policy meets the detection-quality bar on a generated workload
//! (fixed seed; a smaller version of the README's 2,000-contractor month so that it
//! runs in seconds in a debug build), and beats the rules baseline on both axes.

use stepup::gen::{generate, GenConfig, GeoSampler};

#[test]
fn default_policy_meets_the_bar_and_beats_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let fx = stepup::geo_fixture::write_all(dir.path()).unwrap();
    let geo = GeoSampler::open(&[&fx.city], Some(&fx.asn)).unwrap();
    let cfg = GenConfig {
        users: 800,
        days: 30,
        seed: 42,
        ..GenConfig::default()
    };
    let (mut events, mut labels) = (String::new(), String::new());
    let stats = generate(&cfg, &geo, |e| {
        events.push_str(&e.event_json());
        events.push('\n');
        labels.push_str(&e.label_json());
        labels.push('\n');
    })
    .unwrap();

    let settings = stepup::config::Settings::default_embedded().unwrap();
    let dbs = stepup::enrich::GeoDatabases::open(&fx.city, Some(&fx.asn)).unwrap();
    let shared = stepup::pipeline::Shared {
        settings: std::sync::Arc::new(settings),
        geo: std::sync::Arc::new(dbs),
    };
    let mut p = stepup::pipeline::Pipeline::new(shared);
    let registry: Vec<String> = stats
        .contractors
        .iter()
        .map(|c| serde_json::to_string(c).unwrap())
        .collect();
    assert!(p.registry_mut().load_jsonl(&registry.join("\n")).is_empty());
    let labels = stepup::eval::read_labels(labels.as_bytes()).unwrap();
    let rep = stepup::eval::evaluate(&mut p, events.as_bytes(), &labels, None, |_| {}).unwrap();

    let stopped = |k: &str| rep.attacks.get(k).map(|r| r.stepup_share()).unwrap_or(0.0);
    let report = format!("{rep:#?}");
    assert!(stopped("naive") >= 0.99, "{report}");
    assert!(stopped("vpn") >= 0.99, "{report}");
    assert!(stopped("targeted") >= 0.90, "{report}");
    assert_eq!(stopped("post_contract"), 1.0, "{report}");
    assert!(rep.honest_after_14d.events > 5_000, "{report}");
    assert!(rep.honest_after_14d.stepup_share() <= 0.03, "{report}");
    // better than the rules on both axes at once
    let all = rep.all_attacks();
    assert!(all.stepup_share() > all.rules_share(), "{report}");
    assert!(
        rep.honest_after_14d.stepup_share() <= rep.honest_after_14d.rules_share(),
        "{report}"
    );
    assert!(rep.honest.stepup_share() < rep.honest.rules_share(), "{report}");
}
