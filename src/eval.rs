//! Detection quality: run labelled events through the real scoring path and count
//! how many attacks are stopped and how many honest logins are bothered, beside a
//! simple rules baseline (step up on any new device or new country, like common
//! vendor defaults) computed in the same run.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::BufRead;

use serde::{Deserialize, Serialize};

use crate::decision::DecisionKind;
use crate::pipeline::{Output, Pipeline};

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("labels line {line}: {message}")]
    Label { line: usize, message: String },
    #[error("reading {what}: {source}")]
    Io { what: &'static str, source: std::io::Error },
}

#[derive(Deserialize)]
struct LabelRec {
    event_id: String,
    label: String,
}

/// `event_id` → label (`legit` or an attack kind).
pub fn read_labels(r: impl BufRead) -> Result<HashMap<String, String>, EvalError> {
    let mut m = HashMap::new();
    for (i, line) in r.lines().enumerate() {
        let line = line.map_err(|source| EvalError::Io { what: "labels", source })?;
        if line.trim().is_empty() {
            continue;
        }
        let rec: LabelRec = serde_json::from_str(&line).map_err(|e| EvalError::Label {
            line: i + 1,
            message: e.to_string(),
        })?;
        m.insert(rec.event_id, rec.label);
    }
    Ok(m)
}

/// Counts for one group of events.
#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq)]
pub struct Rate {
    pub events: u64,
    /// stepup stopped (step_up or deny) / bothered.
    pub stepup: u64,
    /// The rules baseline stopped / bothered.
    pub rules: u64,
}

impl Rate {
    pub fn stepup_share(&self) -> f64 {
        share(self.stepup, self.events)
    }
    pub fn rules_share(&self) -> f64 {
        share(self.rules, self.events)
    }
}

fn share(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// The evaluation's result.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Report {
    /// Attack login events per attack kind.
    pub attacks: BTreeMap<String, Rate>,
    /// Honest sign-in attempts (successful legit logins that are not the completion
    /// of a step-up that was just asked for).
    pub honest: Rate,
    /// The same after each user's first 14 days in the data.
    pub honest_after_14d: Rate,
    pub events: u64,
    pub rejected: u64,
    pub unlabelled: u64,
    pub users: u64,
}

impl Report {
    /// Attack events of all kinds together.
    pub fn all_attacks(&self) -> Rate {
        self.attacks.values().fold(Rate::default(), |a, r| Rate {
            events: a.events + r.events,
            stepup: a.stepup + r.stepup,
            rules: a.rules + r.rules,
        })
    }
}

/// The rules baseline: per user, devices and countries seen on trusted logins.
#[derive(Default)]
struct Rules {
    known: HashMap<String, (HashSet<u64>, HashSet<[u8; 2]>)>,
}

impl Rules {
    /// Would the rules step up? Then learn the way vendors do: after a trusted login.
    fn judge_and_learn(&mut self, out: &Output, honest: bool) -> bool {
        let entry = self.known.entry(out.user_id.clone()).or_default();
        let new_device = !entry.0.contains(&out.device_key);
        let new_country = out.country != [0, 0] && !entry.1.contains(&out.country);
        let flagged = new_device || new_country;
        let challenged = flagged && out.aal < 2;
        if out.is_login && out.success && (out.aal >= 2 || !flagged || (challenged && honest)) {
            entry.0.insert(out.device_key);
            if out.country != [0, 0] {
                entry.1.insert(out.country);
            }
        }
        challenged
    }
}

/// The step-up an honest user completes: the same login 20 s later at the AAL asked for
/// (password + OTP for AAL2, + a security key for AAL3).
fn completion(line: &[u8], aal: u8) -> Option<Vec<u8>> {
    let mut v: serde_json::Value = serde_json::from_slice(line).ok()?;
    let o = v.as_object_mut()?;
    let id = format!("{}-mfa", o.get("event_id")?.as_str()?);
    let t = crate::timefmt::parse_rfc3339_ms(o.get("time")?.as_str()?)? + 20_000;
    o.insert("event_id".into(), id.into());
    o.insert("time".into(), crate::timefmt::rfc3339_ms(t).into());
    // at the level asked for: OTP for AAL2, a security key for AAL3
    let aal = aal.clamp(2, 3);
    o.insert("aal".into(), aal.into());
    let second = if aal >= 3 { "webauthn" } else { "otp" };
    o.insert("methods".into(), serde_json::json!(["pwd", second]));
    serde_json::to_vec(&v).ok()
}

const FOURTEEN_DAYS_MS: i64 = 14 * 86_400_000;
const COMPLETION_WINDOW_MS: i64 = 5 * 60_000;

/// Evaluate `events` (JSONL) against `labels` with the pipeline's configuration.
pub fn evaluate(
    p: &mut Pipeline,
    events: impl BufRead,
    labels: &HashMap<String, String>,
    mut decisions: Option<&mut dyn std::io::Write>,
    mut progress: impl FnMut(u64),
) -> Result<Report, EvalError> {
    let mut rep = Report::default();
    let mut rules = Rules::default();
    let mut out = Output::default();
    let mut scratch = Output::default();
    let mut first_seen: HashMap<String, i64> = HashMap::new();
    // last time stepup / the rules asked this user to step up
    let mut asked: HashMap<String, (i64, i64)> = HashMap::new();
    for line in events.split(b'\n') {
        let line = line.map_err(|source| EvalError::Io { what: "events", source })?;
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        rep.events += 1;
        if rep.events % 10_000 == 0 {
            progress(rep.events);
        }
        if p.process(&line, &mut out).is_err() {
            rep.rejected += 1;
            continue;
        }
        if let Some(w) = decisions.as_mut() {
            w.write_all(&out.json)
                .and_then(|()| w.write_all(b"\n"))
                .map_err(|source| EvalError::Io {
                    what: "decisions",
                    source,
                })?;
        }
        let label = labels.get(&out.event_id);
        // The closed loop: an honest contractor asked to step up completes it (a
        // fresh login from the same place and device at the AAL asked for, which
        // teaches the baseline); an attacker fails it. The completion is not counted.
        let honest = label.is_some_and(|l| l == "legit");
        let challenged = out.kind == Some(DecisionKind::StepUp);
        if honest && challenged && out.is_login && out.success {
            let aal = out.verdict.as_ref().map_or(2, |v| v.required_aal);
            if let Some(done) = completion(&line, aal) {
                let _ = p.process(&done, &mut scratch);
            }
        }
        let first = *first_seen.entry(out.user_id.clone()).or_insert(out.time_ms);
        let ours = matches!(out.kind, Some(DecisionKind::StepUp | DecisionKind::Deny));
        let theirs = rules.judge_and_learn(&out, honest);
        let Some(label) = label else {
            rep.unlabelled += 1;
            continue;
        };
        if !out.is_login {
            continue;
        }
        let a = asked.entry(out.user_id.clone()).or_insert((i64::MIN / 2, i64::MIN / 2));
        let completion = out.aal >= 2 && (out.time_ms - a.0.max(a.1)) <= COMPLETION_WINDOW_MS;
        if ours {
            a.0 = out.time_ms;
        }
        if theirs {
            a.1 = out.time_ms;
        }
        if label == "legit" {
            if !out.success || completion {
                continue;
            }
            let bump = |r: &mut Rate| {
                r.events += 1;
                r.stepup += ours as u64;
                r.rules += theirs as u64;
            };
            bump(&mut rep.honest);
            if out.time_ms - first >= FOURTEEN_DAYS_MS {
                bump(&mut rep.honest_after_14d);
            }
        } else {
            let r = rep.attacks.entry(label.clone()).or_default();
            r.events += 1;
            r.stepup += ours as u64;
            r.rules += theirs as u64;
        }
    }
    rep.users = first_seen.len() as u64;
    Ok(rep)
}
