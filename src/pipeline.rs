//! The hot path: bytes in → decode → enrich → baseline + score → decide → encode.
//!
//! Synchronous, no I/O, no locks, no await. One [`Pipeline`] owns the state of one
//! Kafka partition (or of one offline `score` run); the edges feed it records and
//! ship what it returns. `stepup score` and the Kafka worker call the same
//! [`Pipeline::process`].

use std::sync::Arc;

use crate::baseline::{Observation, Retention, StateStore, UserBaseline, N_FEATURES};
use crate::config::Settings;
use crate::contractors::{Contractor, Registry};
use crate::decision::{decide_in_tier, encode, DecisionKind, Verdict};
use crate::enrich::{Enricher, GeoDatabases};
use crate::event::{decode, DecodeError, EventKind, Outcome};
use crate::model::{assess, location_of, teaches, Inputs};
use crate::policy::Level;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The event claims a time too far past the clock: scoring it would age a
    /// baseline out (and move stream time) on the word of one record.
    #[error("time is {ahead_s} s ahead of the clock (limits.max_future_skew_s = {limit_s})")]
    TimeInFuture { ahead_s: i64, limit_s: u64 },
}

impl PipelineError {
    pub fn code(&self) -> &'static str {
        match self {
            PipelineError::Decode(e) => e.code(),
            PipelineError::TimeInFuture { .. } => "time_in_future",
        }
    }
}

/// Everything the pipeline produced for one event. Reused across calls: the
/// buffers keep their capacity, so steady state allocates nothing here.
#[derive(Debug, Default)]
pub struct Output {
    /// The decision, JSON, no trailing newline.
    pub json: Vec<u8>,
    pub event_id: String,
    pub user_id: String,
    pub time_ms: i64,
    pub kind: Option<DecisionKind>,
    pub level: Option<Level>,
    pub score: f64,
    pub signals: u16,
    pub verdict: Option<Verdict>,
    /// The user's baseline changed: the edge should persist it (changelog).
    pub baseline_changed: bool,
    pub is_login: bool,
    pub success: bool,
    pub aal: u8,
    /// ISO country of the event's address (`[0,0]` unknown).
    pub country: [u8; 2],
    /// Device identity key of the event.
    pub device_key: u64,
}

impl Output {
    fn reset(&mut self) {
        self.json.clear();
        self.event_id.clear();
        self.user_id.clear();
        self.kind = None;
        self.level = None;
        self.verdict = None;
        self.baseline_changed = false;
        self.signals = 0;
        self.score = 0.0;
        self.country = [0, 0];
        self.device_key = 0;
    }
}

/// Read-only things shared by every pipeline of a process.
#[derive(Clone)]
pub struct Shared {
    pub settings: Arc<Settings>,
    pub geo: Arc<GeoDatabases>,
}

/// The hot path and the state it owns.
pub struct Pipeline {
    shared: Shared,
    enricher: Enricher,
    state: StateStore,
    registry: Registry,
    /// resource → tier, so glob matching runs once per distinct resource (bounded).
    tiers: crate::hash::FastMap<Box<str>, usize>,
    /// Wall clock (ms) as last told by the edge; `None`: no future check.
    clock_ms: Option<i64>,
    /// Stream time: the latest event time scored (minutes).
    watermark_min: u32,
    /// Stream time of the last idle-user sweep (minutes).
    swept_min: u32,
}

/// Stream minutes between two idle-user sweeps (a sweep walks every user).
const SWEEP_EVERY_MIN: u32 = 10;

const TIER_CACHE: usize = 10_000;

fn tier_cached(
    cache: &mut crate::hash::FastMap<Box<str>, usize>,
    policy: &crate::policy::Policy,
    resource: Option<&str>,
) -> usize {
    let Some(r) = resource else { return policy.default_tier };
    if let Some(&t) = cache.get(r) {
        return t;
    }
    let t = policy.tier_of(Some(r));
    if cache.len() >= TIER_CACHE {
        cache.clear();
    }
    cache.insert(Box::from(r), t);
    t
}

impl Pipeline {
    pub fn new(shared: Shared) -> Self {
        let m = &shared.settings.model;
        let retention = Retention {
            horizon_min: m.horizon_days.saturating_mul(24 * 60),
            ..Retention::default()
        };
        Pipeline {
            enricher: Enricher::new(shared.geo.clone()).with_hosting_keywords(&m.hosting_asn_keywords),
            state: StateStore::new(retention),
            registry: Registry::default(),
            tiers: Default::default(),
            clock_ms: None,
            watermark_min: 0,
            swept_min: 0,
            shared,
        }
    }

    /// Tell the pipeline the wall clock (the edge calls this per batch): events
    /// more than `limits.max_future_skew_s` ahead of it are rejected. Without a
    /// clock (simulations, tests) no event is too far ahead.
    pub fn set_clock(&mut self, now_ms: i64) {
        self.clock_ms = Some(now_ms);
    }

    /// Stream time: the latest event time scored, minutes since the epoch.
    pub fn watermark_min(&self) -> u32 {
        self.watermark_min
    }

    /// Every [`SWEEP_EVERY_MIN`] minutes of stream time, drop the users whose
    /// state no longer matters (see [`StateStore::expire_idle`]); a failure-only
    /// user is kept for twice the failed-login window, so a late record still
    /// sees the failures it would have. Their ids go to `removed` (the worker
    /// writes tombstones). Cheap when not due: call it after every batch.
    pub fn expire_idle(&mut self, removed: &mut Vec<String>) -> usize {
        if self.watermark_min < self.swept_min.saturating_add(SWEEP_EVERY_MIN) {
            return 0;
        }
        self.swept_min = self.watermark_min;
        let idle_fail = self.shared.settings.model.failed_window_min.saturating_mul(2);
        self.state.expire_idle(self.watermark_min, idle_fail, removed)
    }

    /// Process one record. On error nothing changed (the baseline is untouched).
    pub fn process(&mut self, bytes: &[u8], out: &mut Output) -> Result<(), PipelineError> {
        self.process_at(bytes, None, out)
    }

    /// [`Pipeline::process`] for a record at an input `position` (its Kafka offset).
    /// A record the user's baseline already contains (a replay after a crash: the
    /// changelog can be ahead of the committed offset) is scored but not learned
    /// twice, so replays leave state as one pass would.
    pub fn process_at(&mut self, bytes: &[u8], position: Option<u64>, out: &mut Output) -> Result<(), PipelineError> {
        out.reset();
        let settings = &*self.shared.settings;
        let ev = decode(bytes, settings.limits.max_event_bytes)?;
        if let Some(clock) = self.clock_ms {
            let ahead_ms = ev.time_ms.saturating_sub(clock);
            let limit_s = settings.limits.max_future_skew_s;
            if ahead_ms > (limit_s as i64).saturating_mul(1000) {
                return Err(PipelineError::TimeInFuture {
                    ahead_s: ahead_ms / 1000,
                    limit_s,
                });
            }
        }
        let uk = crate::baseline::UserKey::of(&ev.user_id);
        // start the (likely cold) baseline loading while enrichment runs
        if let Some(b) = self.state.get_key(uk) {
            b.prefetch();
        }
        let en = self
            .enricher
            .enrich(ev.ip, ev.user_agent.as_deref(), ev.device_id.as_deref());
        let baseline = self.state.get_key(uk);
        if let Some(b) = baseline {
            b.prefetch_lists();
        }
        let contractor = self.registry.get(&ev.user_id);
        let a = assess(
            &settings.model,
            &Inputs {
                event: &ev,
                enriched: &en,
                baseline,
                global: &self.state.global,
                contractor,
            },
        );
        let tier = tier_cached(&mut self.tiers, &settings.policy, ev.resource.as_deref());
        let verdict = decide_in_tier(&settings.policy, tier, &ev, &a);
        encode(&mut out.json, &settings.policy, &ev, &en, &a, &verdict);

        // Baseline update after scoring: the event is judged against the past only.
        let replay = self.state.get_key(uk).is_some_and(|b| b.has_applied(position));
        if replay {
            // already in the baseline: nothing to learn again
        } else if verdict.kind == DecisionKind::Allow && teaches(&settings.model, &ev, &a) {
            // Only a login the policy let through teaches: one it asked to step up
            // (an AAL2 session where the risk needs AAL3) or denied proves nothing
            // yet; the completed step-up is a fresh event that does.
            let obs = Observation {
                keys: observation_keys(&en),
                time_ms: ev.time_ms,
                hour_of_week: a.hour_of_week,
                location: location_of(&ev, &en),
                tz: en.geo.tz,
            };
            self.state.learn_key(&ev.user_id, uk, &obs);
            out.baseline_changed = true;
        } else if ev.kind == EventKind::Login && ev.outcome == Outcome::Failure {
            self.state.record_failure_key(&ev.user_id, uk, ev.time_ms);
            out.baseline_changed = true;
        }
        if let (true, Some(pos)) = (out.baseline_changed, position) {
            self.state.mark_applied(uk, pos);
        }

        // stream time never runs ahead of the wall clock: an event within the
        // allowed skew must not make the idle sweep drop users early
        let t = self.clock_ms.map_or(ev.time_ms, |c| ev.time_ms.min(c));
        self.watermark_min = self.watermark_min.max(crate::baseline::minutes(t));
        out.event_id.push_str(&ev.event_id);
        out.user_id.push_str(&ev.user_id);
        out.time_ms = ev.time_ms;
        out.kind = Some(verdict.kind);
        out.level = Some(a.level);
        out.score = a.score;
        out.signals = a.signals;
        out.verdict = Some(verdict);
        out.is_login = ev.kind == EventKind::Login;
        out.success = ev.outcome == Outcome::Success;
        out.aal = ev.aal;
        out.country = en.geo.country;
        out.device_key = en.device_h;
        Ok(())
    }

    /// The current encoding of a user's baseline (for the changelog).
    pub fn baseline_bytes(&self, user: &str, buf: &mut Vec<u8>) -> bool {
        buf.clear();
        match self.state.get(user) {
            Some(b) => {
                b.encode(buf);
                true
            }
            None => false,
        }
    }

    /// Restore one user from a changelog record (`None` = tombstone).
    pub fn restore(&mut self, user: &str, bytes: Option<&[u8]>) -> Result<(), crate::baseline::BaselineError> {
        let b = bytes.map(UserBaseline::decode).transpose()?;
        // A late write from a former owner must not replace a newer baseline: keep
        // the version that has applied more of the input.
        if let (Some(new), Some(old)) = (&b, self.state.get(user)) {
            if old.applied > new.applied {
                return Ok(());
            }
        }
        self.state.put(user, b);
        Ok(())
    }

    /// Apply a contractor registry record (`None` removes the user).
    pub fn upsert_contractor(&mut self, user: &str, c: Option<Contractor>) {
        match c {
            Some(c) => self.registry.upsert(c),
            None => self.registry.remove(user),
        }
    }

    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    pub fn state(&self) -> &StateStore {
        &self.state
    }

    pub fn state_mut(&mut self) -> &mut StateStore {
        &mut self.state
    }

    pub fn enricher_mut(&mut self) -> &mut Enricher {
        &mut self.enricher
    }

    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Drop all per-user state (partition revoked).
    pub fn clear_state(&mut self) {
        self.state.clear();
    }
}

fn observation_keys(en: &crate::enrich::Enriched) -> [u64; N_FEATURES] {
    let g = &en.geo;
    [
        g.ip_h,
        g.asn_h,
        g.city_h,
        g.country_h,
        en.device_h,
        en.ua.ua_h,
        en.ua.browser_h,
        en.ua.os_h,
        en.ua.category_h,
    ]
}
