//! The risk model: a likelihood-ratio score in the spirit of Freeman et al.,
//! "Who Are You? A Statistical Approach to Measuring User Authenticity" (NDSS 2016),
//! plus explicit signals, each with the contribution it made.
//!
//! The score is a sum of log10 likelihood ratios `log10 p(x | attack) / p(x | legit u)`:
//!
//! * **Network** (IP /24 → ASN → city → country) and **client** (device → user agent →
//!   browser → OS → device category) are hierarchical features. We look for the
//!   coarsest level at which the value is new to the user. For a legitimate user the
//!   chance of a new value at a level is estimated with the smoothing of the authors'
//!   reference port, `U / (n + U)` (U = 1 + distinct values seen, n = logins); for an
//!   attacker drawn from the population (Freeman's assumption) it is the population
//!   mass outside what the user knows at that level. When nothing is new, the ratio
//!   uses the population and user frequencies of the finest known value (familiarity
//!   lowers the score).
//! * **Hour of week** in the user's local time: uniform for attackers against the
//!   user's kernel-smoothed histogram (circular, so there is no cliff at midnight).
//! * **User prior** `p(u | attack) / p(u | legit) = (1/#users) / (n_u/N)`.
//! * **Explicit signals** with configured weights: impossible travel, failed burst,
//!   new user, and the hard rules (contract inactive, country not allowed).
//!
//! Levels come from configurable thresholds on the total.

use chrono::{Datelike, Timelike};
use serde::Deserialize;

use crate::baseline::{Feature, GlobalStats, LastLocation, UserBaseline};
use crate::contractors::Contractor;
use crate::enrich::{haversine_km, Enriched};
use crate::event::{AuthEvent, EventKind, Outcome};
use crate::policy::Level;

/// `[model]` in stepup.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Baseline values unseen for this long age out.
    pub horizon_days: u32,
    /// Fewer trusted logins than this: the `new_user` signal.
    pub new_user_logins: u32,
    pub max_speed_kmh: f64,
    /// Hops shorter than this (after subtracting both accuracy radii) never count as travel.
    pub min_travel_km: f64,
    pub failed_burst: u32,
    pub failed_window_min: u32,
    /// Trusted logins needed before hour-of-week is judged.
    pub odd_hour_min_logins: u32,
    /// Score thresholds for the levels.
    pub medium: f64,
    pub high: f64,
    /// A successful login teaches the baseline at this AAL or above...
    pub learn_min_aal: u8,
    /// ...or at AAL1 when its risk was low.
    pub learn_low_risk_aal1: bool,
    /// Share of attackers who aim at the victim's own city/ISP or browser (Wiefling
    /// et al.'s targeted attacker): the least chance that an attacker lands inside a
    /// value the user knows. Freeman's model alone assumes attackers follow the
    /// population, which under-rates targeted attacks.
    pub targeted_attacker_share: f64,
    /// ASN organisation names containing one of these (case-insensitive) are hosting /
    /// VPN egress: a person is rarely there. Needs an ASN database. Empty: off.
    #[serde(default)]
    pub hosting_asn_keywords: Vec<String>,
    pub weights: Weights,
}

/// Fixed contributions of explicit signals and multipliers of the ratio terms.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Weights {
    pub network: f64,
    pub client: f64,
    pub hour: f64,
    pub user_prior: f64,
    pub impossible_travel: f64,
    pub failed_burst: f64,
    pub new_user: f64,
    pub hard_rule: f64,
    /// Least contribution of a new country / a new device when the ratio is smaller
    /// (explicit signals: every vendor steps up on these; the ratio can only add).
    pub new_country_floor: f64,
    pub new_device_floor: f64,
    /// Familiarity (known places, devices, hours, a frequent user) can lower the
    /// score by at most this much in total: it softens, never hides, a novelty.
    pub familiarity_cap: f64,
    /// A hosting/VPN network the user was never verified on.
    #[serde(default)]
    pub hosting_network: f64,
}

impl Weights {
    fn validate(&self) -> Result<(), String> {
        let w = [
            ("network", self.network),
            ("client", self.client),
            ("hour", self.hour),
            ("user_prior", self.user_prior),
            ("impossible_travel", self.impossible_travel),
            ("failed_burst", self.failed_burst),
            ("new_user", self.new_user),
            ("hard_rule", self.hard_rule),
            ("new_country_floor", self.new_country_floor),
            ("new_device_floor", self.new_device_floor),
            ("familiarity_cap", self.familiarity_cap),
            ("hosting_network", self.hosting_network),
        ];
        for (name, v) in w {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("model.weights.{name} must be a number >= 0, got {v}"));
            }
        }
        Ok(())
    }
}

impl ModelConfig {
    pub fn validate(&self) -> Result<(), String> {
        let pos = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!("model.{name} must be a positive number, got {v}"))
            }
        };
        pos("max_speed_kmh", self.max_speed_kmh)?;
        pos("min_travel_km", self.min_travel_km)?;
        pos("medium", self.medium)?;
        // (also rejects NaN)
        if self.high.partial_cmp(&self.medium) != Some(std::cmp::Ordering::Greater) {
            return Err(format!(
                "model.high ({}) must be above model.medium ({})",
                self.high, self.medium
            ));
        }
        if self.horizon_days == 0 {
            return Err("model.horizon_days must be at least 1".into());
        }
        if !(1..=3).contains(&self.learn_min_aal) {
            return Err("model.learn_min_aal must be 1, 2 or 3".into());
        }
        // a burst counts the failures a baseline remembers plus the current one
        let most = crate::baseline::FAIL_RING as u32 + 1;
        if !(1..=most).contains(&self.failed_burst) {
            return Err(format!(
                "model.failed_burst must be 1 to {most} (the failures remembered per user, plus the current one), got {}",
                self.failed_burst
            ));
        }
        if self.failed_window_min == 0 {
            return Err("model.failed_window_min must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.targeted_attacker_share) {
            return Err(format!(
                "model.targeted_attacker_share must be between 0 and 1, got {}",
                self.targeted_attacker_share
            ));
        }
        self.weights.validate()
    }

    pub fn level(&self, score: f64) -> Level {
        if score >= self.high {
            Level::High
        } else if score >= self.medium {
            Level::Medium
        } else {
            Level::Low
        }
    }
}

/// The named signals. The discriminant is a bit in [`Assessment::signals`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Signal {
    NewCountry = 0,
    NewCity,
    NewAsn,
    NewNetwork,
    NewDevice,
    NewUserAgent,
    OddHour,
    ImpossibleTravel,
    FailedBurst,
    NewUser,
    InfrequentUser,
    HostingNetwork,
    CountryNotAllowed,
    ContractInactive,
}

impl Signal {
    pub const ALL: [Signal; 14] = [
        Signal::NewCountry,
        Signal::NewCity,
        Signal::NewAsn,
        Signal::NewNetwork,
        Signal::NewDevice,
        Signal::NewUserAgent,
        Signal::OddHour,
        Signal::ImpossibleTravel,
        Signal::FailedBurst,
        Signal::NewUser,
        Signal::InfrequentUser,
        Signal::HostingNetwork,
        Signal::CountryNotAllowed,
        Signal::ContractInactive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Signal::NewCountry => "new_country",
            Signal::NewCity => "new_city",
            Signal::NewAsn => "new_asn",
            Signal::NewNetwork => "new_network",
            Signal::NewDevice => "new_device",
            Signal::NewUserAgent => "new_user_agent",
            Signal::OddHour => "odd_hour",
            Signal::ImpossibleTravel => "impossible_travel",
            Signal::FailedBurst => "failed_burst",
            Signal::NewUser => "new_user",
            Signal::InfrequentUser => "infrequent_user",
            Signal::HostingNetwork => "hosting_network",
            Signal::CountryNotAllowed => "country_not_allowed",
            Signal::ContractInactive => "contract_inactive",
        }
    }

    pub fn is_hard_rule(self) -> bool {
        matches!(self, Signal::CountryNotAllowed | Signal::ContractInactive)
    }
}

/// Data for a reason's human-readable detail (rendered at encode time, so the hot
/// path formats nothing it does not write).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Detail {
    None,
    /// Levels known / logins behind the ratio.
    Novel {
        logins: u32,
        known: u32,
    },
    Hour {
        local_hour: u8,
        weekday: u8,
    },
    Travel {
        km: u32,
        kmh: u32,
        minutes: u32,
    },
    Failures {
        count: u32,
        window_min: u32,
    },
    Logins(u32),
    Contract {
        ended: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reason {
    pub signal: Signal,
    pub contribution: f64,
    pub detail: Detail,
}

pub const MAX_REASONS: usize = 8;

/// The model's verdict on one event.
#[derive(Debug, Clone)]
pub struct Assessment {
    pub score: f64,
    pub level: Level,
    reasons: [Reason; MAX_REASONS],
    n_reasons: usize,
    /// Bit set of [`Signal`]s that fired.
    pub signals: u16,
    /// Local hour of week used (for learning).
    pub hour_of_week: Option<u8>,
}

impl Assessment {
    fn new() -> Self {
        Assessment {
            score: 0.0,
            level: Level::Low,
            reasons: [Reason {
                signal: Signal::NewUser,
                contribution: 0.0,
                detail: Detail::None,
            }; MAX_REASONS],
            n_reasons: 0,
            signals: 0,
            hour_of_week: None,
        }
    }

    fn add(&mut self, signal: Signal, contribution: f64, detail: Detail) {
        self.score += contribution;
        self.signals |= 1 << signal as u8;
        if self.n_reasons < MAX_REASONS {
            self.reasons[self.n_reasons] = Reason {
                signal,
                contribution,
                detail,
            };
            self.n_reasons += 1;
        }
    }

    /// The reasons that drove the decision, largest contribution first.
    pub fn reasons(&self) -> &[Reason] {
        &self.reasons[..self.n_reasons]
    }

    pub fn has(&self, s: Signal) -> bool {
        self.signals & (1 << s as u8) != 0
    }

    /// Did anything new show up (place, network, device)? An unverified login
    /// with a novelty never teaches, however low its score.
    pub fn novel(&self) -> bool {
        [
            Signal::NewCountry,
            Signal::NewCity,
            Signal::NewAsn,
            Signal::NewDevice,
            Signal::NewUserAgent,
        ]
        .into_iter()
        .any(|s| self.has(s))
    }

    pub fn hard_rule(&self) -> Option<Signal> {
        [Signal::ContractInactive, Signal::CountryNotAllowed]
            .into_iter()
            .find(|s| self.has(*s))
    }
}

fn log10_ratio(p_attack: f64, p_legit: f64) -> f64 {
    (p_attack.max(1e-9) / p_legit.max(1e-9)).log10()
}

/// Nominal number of distinct values per feature, for the population prior.
fn vocabulary(f: Feature) -> f64 {
    match f {
        Feature::Country => 250.0,
        Feature::City => 20_000.0,
        Feature::Asn => 70_000.0,
        Feature::Ip => 1_000_000.0,
        Feature::Device | Feature::UserAgent => 1_000_000.0,
        Feature::Browser => 50.0,
        Feature::Os => 30.0,
        Feature::Category => 6.0,
    }
}

/// Population share of `key` at level `f`: the observed frequency, shrunk towards a
/// uniform prior with `POPULATION_PRIOR` pseudo-logins, so a small population (one
/// partition's first users) does not look like the whole world.
const POPULATION_PRIOR: f64 = 200.0;

fn p_global(g: &GlobalStats, f: Feature, key: u64) -> f64 {
    (g.count(f, key) as f64 + POPULATION_PRIOR / vocabulary(f)) / (g.total(f) as f64 + POPULATION_PRIOR)
}

/// Population mass an attacker would land in *outside* what the user knows at level `f`.
fn p_outside_known(g: &GlobalStats, b: &UserBaseline, f: Feature) -> f64 {
    let known: f64 = b.entries(f).iter().map(|e| p_global(g, f, e.key)).sum();
    (1.0 - known).clamp(0.02, 1.0)
}

/// Hierarchical likelihood-ratio term. `levels` go coarsest first with the event's
/// key at each level; returns (log10 ratio, index of the coarsest new level or None).
fn hierarchy_term(
    g: &GlobalStats,
    b: &UserBaseline,
    levels: &[(Feature, u64)],
    targeted: f64,
    targeted_depth: usize,
) -> (f64, Option<usize>) {
    let n = b.logins.max(1) as f64;
    for (i, &(f, key)) in levels.iter().enumerate() {
        if key == 0 {
            continue; // unknown at this level (no geo / no UA): no evidence either way
        }
        if b.count(f, key) == 0 {
            let u = 1.0 + b.distinct(f) as f64;
            let p_legit = u / (n + u);
            // the attacker landed inside the user's nearest known ancestor value (a level
            // without evidence, e.g. ASN without an ASN database, is skipped)
            let ancestor = levels[..i].iter().rev().find(|(_, k)| *k != 0);
            let p_attack = match ancestor {
                None => p_outside_known(g, b, f),
                Some(&(pf, pk)) => {
                    // a targeted attacker can pick the victim's city or browser, not the
                    // victim's own ISP: the floor stops at `targeted_depth`
                    let floor = if i <= targeted_depth { targeted } else { 0.0 };
                    p_global(g, pf, pk).max(floor).min(1.0)
                }
            };
            return (log10_ratio(p_attack, p_legit), Some(i));
        }
    }
    // Everything known: familiarity at the finest level with evidence.
    let Some(&(f, key)) = levels.iter().rev().find(|(_, k)| *k != 0) else {
        return (0.0, None);
    };
    let c = b.count(f, key) as f64;
    let total = b.total(f).max(1) as f64;
    let u = 1.0 + b.distinct(f) as f64;
    let p_legit = c / total * (1.0 - u / (total + u));
    (log10_ratio(p_global(g, f, key), p_legit).clamp(-1.0, 0.0), None)
}

/// Probability of the hour of week under the user's smoothed histogram.
fn p_hour(b: &UserBaseline, how: usize) -> f64 {
    // integer sum: vectorises (a float sum is a 168-long dependency chain)
    let total = b.hours.iter().map(|&c| c as u32).sum::<u32>() as f64;
    if total == 0.0 {
        return 1.0 / 168.0;
    }
    let at = |h: isize| b.hours[h.rem_euclid(168) as usize] as f64;
    let h = how as isize;
    // same day, circular kernel ±2h
    let day = 0.4 * at(h) + 0.2 * (at(h - 1) + at(h + 1)) + 0.1 * (at(h - 2) + at(h + 2));
    // same hour on the other days of the same kind (weekday vs weekend), ±1h
    let weekday = how / 24 < 5;
    let mut same = 0.0;
    let mut n = 0.0;
    for d in 0..7isize {
        if (d < 5) == weekday && d != h / 24 {
            let x = d * 24 + h % 24;
            same += 0.5 * at(x) + 0.25 * (at(x - 1) + at(x + 1));
            n += 1.0;
        }
    }
    let same = if n > 0.0 { same / n } else { 0.0 };
    let prior = 2.0;
    (0.6 * day + 0.4 * same + prior / 168.0) / (total + prior)
}

/// Local hour of week (0 = Monday 00h) of `time_ms` in `tz`.
pub fn hour_of_week(time_ms: i64, tz: chrono_tz::Tz) -> Option<u8> {
    let t = chrono::DateTime::from_timestamp_millis(time_ms)?.with_timezone(&tz);
    Some((t.weekday().num_days_from_monday() * 24 + t.hour()) as u8)
}

/// Inputs to one assessment.
pub struct Inputs<'a, 'e> {
    pub event: &'a AuthEvent<'e>,
    pub enriched: &'a Enriched<'a>,
    pub baseline: Option<&'a UserBaseline>,
    pub global: &'a GlobalStats,
    pub contractor: Option<&'a Contractor>,
}

/// Score one event. Pure: reads the baseline, changes nothing.
pub fn assess(cfg: &ModelConfig, x: &Inputs<'_, '_>) -> Assessment {
    let mut a = Assessment::new();
    let ev = x.event;
    let en = x.enriched;
    let geo = &en.geo;

    // Hard rules first: they hold whatever the history.
    if let Some(c) = x.contractor {
        if !c.active_at(ev.time_ms) {
            let ended = c.contract_end_ms.is_some_and(|e| ev.time_ms >= e);
            a.add(
                Signal::ContractInactive,
                cfg.weights.hard_rule,
                Detail::Contract { ended },
            );
        }
        if geo.is_known() && !c.country_allowed(geo.country) {
            a.add(Signal::CountryNotAllowed, cfg.weights.hard_rule, Detail::None);
        }
    }

    let tz = x
        .contractor
        .and_then(|c| c.home_tz)
        .or(x.baseline.and_then(|b| b.tz))
        .or(geo.tz);
    a.hour_of_week = tz.and_then(|tz| hour_of_week(ev.time_ms, tz));

    let b = x.baseline.unwrap_or(&crate::baseline::EMPTY);
    let g = x.global;
    let logins = b.logins;
    let mut familiarity = 0.0f64;

    if ev.kind == EventKind::Login || ev.ip.is_some() {
        // Network hierarchy, coarsest first.
        let net = [
            (Feature::Country, geo.country_h),
            (Feature::City, geo.city_h),
            (Feature::Asn, geo.asn_h),
            (Feature::Ip, geo.ip_h),
        ];
        // Is the address inside a network block the user was verified in?
        let home_network = logins > 0 && geo.ip_h != 0 && b.count(Feature::Ip, geo.ip_h) > 0;
        if logins > 0 && ev.ip.is_some() {
            let (t, new_at) = hierarchy_term(g, b, &net, cfg.targeted_attacker_share, 2);
            let t = t * cfg.weights.network;
            let signal = match new_at {
                Some(0) => Some(Signal::NewCountry),
                Some(1) => Some(Signal::NewCity),
                Some(2) => Some(Signal::NewAsn),
                Some(_) => Some(Signal::NewNetwork),
                None => None,
            };
            let t = if signal == Some(Signal::NewCountry) {
                t.max(cfg.weights.new_country_floor)
            } else {
                t
            };
            // A novelty is always named (with what it contributed, possibly nothing);
            // a negative ratio is familiarity.
            if let Some(s) = signal {
                let known = b.distinct(net[new_at.unwrap_or(0)].0) as u32;
                a.add(s, t.max(0.0), Detail::Novel { logins, known });
            }
            familiarity += t.min(0.0);
        }

        // Hosting / VPN egress the user was never verified on (IP intelligence, used
        // with care: corporate VPN egress is learned once verified, then silent).
        if geo.hosting && logins > 0 && b.count(Feature::Asn, geo.asn_h) == 0 {
            a.add(Signal::HostingNetwork, cfg.weights.hosting_network, Detail::None);
        }

        // Client hierarchy: device category → OS → browser family → device identity
        // (the device_id, or the version-free UA fingerprint). The full UA string is
        // remembered but not judged: a browser upgrade is not a new device.
        let client = [
            (Feature::Category, en.ua.category_h),
            (Feature::Os, en.ua.os_h),
            (Feature::Browser, en.ua.browser_h),
            (Feature::Device, en.device_h),
        ];
        if logins > 0 {
            let known_device = b.count(Feature::Device, en.device_h) > 0;
            let (t, new_at) = hierarchy_term(g, b, &client, cfg.targeted_attacker_share, 3);
            let mut t = t * cfg.weights.client;
            // A new device always steps up (the explicit signal), except on a network
            // block the user was verified in: a new laptop at home is scored by the
            // ratio alone (attackers essentially never share the victim's /24).
            if !known_device && !home_network {
                t = t.max(cfg.weights.new_device_floor);
            }
            if t > 0.0 {
                let s = if !known_device {
                    Signal::NewDevice
                } else {
                    Signal::NewUserAgent
                };
                let f = new_at.map_or(Feature::Device, |i| client[i].0);
                a.add(
                    s,
                    t,
                    Detail::Novel {
                        logins,
                        known: b.distinct(f) as u32,
                    },
                );
            } else {
                familiarity += t;
            }
        }

        // Hour of week.
        if let Some(how) = a.hour_of_week {
            if logins >= cfg.odd_hour_min_logins {
                let t = log10_ratio(1.0 / 168.0, p_hour(b, how as usize)).clamp(-0.5, 1.5) * cfg.weights.hour;
                if t >= 0.3 * cfg.weights.hour {
                    a.add(
                        Signal::OddHour,
                        t,
                        Detail::Hour {
                            local_hour: how % 24,
                            weekday: how / 24,
                        },
                    );
                } else {
                    familiarity += t.min(0.0);
                }
            }
        }

        // Velocity against the last verified location. A place where the user has
        // already been verified is never "impossible" (home ↔ corporate VPN egress,
        // a phone on a coarse mobile geolocation): Entra ignores such places too.
        let known_place = if geo.city_h != 0 {
            b.count(Feature::City, geo.city_h) > 0
        } else {
            b.count(Feature::Country, geo.country_h) > 0
        };
        if let (Some(last), true, false) = (b.last_location, geo.has_coords, known_place) {
            let km = haversine_km(last.lat, last.lon, geo.lat, geo.lon);
            let slack = last.accuracy_km as f64 + geo.accuracy_km as f64;
            let adjusted = (km - slack).max(0.0);
            let minutes = (ev.time_ms.abs_diff(last.time_ms) as f64 / 60_000.0).max(1.0);
            let kmh = adjusted / (minutes / 60.0);
            if adjusted >= cfg.min_travel_km && kmh > cfg.max_speed_kmh {
                a.add(
                    Signal::ImpossibleTravel,
                    cfg.weights.impossible_travel,
                    Detail::Travel {
                        km: km as u32,
                        kmh: kmh.min(u32::MAX as f64) as u32,
                        minutes: minutes as u32,
                    },
                );
            }
        }
    }

    // Failed-login burst (this event's own failure included).
    let now = crate::baseline::minutes(ev.time_ms).max(1);
    let mut fails = b.recent_failures(now, cfg.failed_window_min);
    if ev.outcome == Outcome::Failure {
        fails += 1;
    }
    if fails >= cfg.failed_burst {
        a.add(
            Signal::FailedBurst,
            cfg.weights.failed_burst,
            Detail::Failures {
                count: fails,
                window_min: cfg.failed_window_min,
            },
        );
    }

    // Too little history to judge.
    if logins < cfg.new_user_logins {
        a.add(Signal::NewUser, cfg.weights.new_user, Detail::Logins(logins));
    } else if g.users > 1 && g.logins > 0 {
        // Freeman's user prior: (1/#users) / (n_u / N).
        let t = log10_ratio(1.0 / g.users as f64, logins as f64 / g.logins as f64).clamp(-0.5, 0.5)
            * cfg.weights.user_prior;
        if t > 0.1 {
            a.add(Signal::InfrequentUser, t, Detail::Logins(logins));
        } else {
            familiarity += t.min(0.0);
        }
    }
    a.score += familiarity.max(-cfg.weights.familiarity_cap);

    a.reasons[..a.n_reasons].sort_by(|x, y| y.contribution.total_cmp(&x.contribution));
    a.level = cfg.level(a.score);
    if a.hard_rule().is_some() {
        a.level = Level::High;
    }
    a
}

/// Should this event teach the baseline? (the learning gate)
pub fn teaches(cfg: &ModelConfig, ev: &AuthEvent<'_>, a: &Assessment) -> bool {
    ev.kind == EventKind::Login
        && ev.outcome == Outcome::Success
        && a.hard_rule().is_none()
        && !a.has(Signal::ImpossibleTravel)
        && (ev.aal >= cfg.learn_min_aal || (cfg.learn_low_risk_aal1 && a.level == Level::Low && !a.novel()))
}

/// Location worth remembering for velocity (coordinates known).
pub fn location_of(ev: &AuthEvent<'_>, en: &Enriched) -> Option<LastLocation> {
    en.geo.has_coords.then_some(LastLocation {
        lat: en.geo.lat,
        lon: en.geo.lon,
        accuracy_km: en.geo.accuracy_km,
        time_ms: ev.time_ms,
    })
}
