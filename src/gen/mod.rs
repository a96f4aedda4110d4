//! `stepup gen`: a reproducible, labelled workload of contractor login/access events.
//!
//! The generator models the world, not the scorer: contractors with a home city and
//! ISP, 1–3 devices with real-looking browsers that auto-update on the vendors'
//! calendars, working hours in local time, heavy-tailed login frequencies (Wiefling et
//! al., "Pump Up Password Security!", ACM TOPS 2022: behaviour depends strongly on how
//! often a user logs in), honest change (DHCP churn within the ISP, mobile carriers,
//! business trips with realistic travel times, new laptops, corporate VPN egress,
//! coworking, late nights, password typos), an identity provider that challenges logins
//! with anything new, and six labelled attack kinds.
//!
//! Everything is drawn from [`GenConfig::seed`]: the same seed and the same databases
//! give byte-identical output. Per-user random streams are independent of each other,
//! so adding an attack never shifts an honest user's behaviour.
//!
//! ```no_run
//! use stepup::gen::{generate, GenConfig, GeoSampler};
//! let geo = GeoSampler::open(&["city.mmdb"], None).unwrap();
//! let cfg = GenConfig { users: 100, days: 14, ..GenConfig::default() };
//! let stats = generate(&cfg, &geo, |ev| println!("{}", ev.event_json())).unwrap();
//! eprintln!("{} events", stats.events);
//! ```

use std::collections::BTreeMap;
use std::net::IpAddr;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

pub mod geo;
mod sim;
mod tz;
pub mod ua;
mod world;

pub use geo::{CityInfo, GeoOptions, GeoSampler, NetKind};

/// Errors from loading the databases or validating the configuration.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    #[error("geolocation database: {0}")]
    Geo(String),
    #[error("invalid generator configuration: {0}")]
    Config(String),
}

/// Ground-truth label of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    /// Honest activity.
    Legit,
    /// Foreign hosting IP, scripted or odd client, any hour.
    Naive,
    /// Commercial VPN / hosting egress, often in the victim's region, current browser.
    Vpn,
    /// Victim's country/city on another ISP, victim's browser family, working hours.
    Targeted,
    /// Stolen session used from far away minutes after a genuine login.
    Hijack,
    /// Password spray: failures across many users from one hosting IP.
    Spray,
    /// The contractor still logging in after `contract_end`.
    PostContract,
}

impl Label {
    pub const ALL: [Label; 7] = [
        Label::Legit,
        Label::Naive,
        Label::Vpn,
        Label::Targeted,
        Label::Hijack,
        Label::Spray,
        Label::PostContract,
    ];
    /// The attack kinds (every label but `legit`).
    pub const ATTACKS: [Label; 6] = [
        Label::Naive,
        Label::Vpn,
        Label::Targeted,
        Label::Hijack,
        Label::Spray,
        Label::PostContract,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Legit => "legit",
            Label::Naive => "naive",
            Label::Vpn => "vpn",
            Label::Targeted => "targeted",
            Label::Hijack => "hijack",
            Label::Spray => "spray",
            Label::PostContract => "post_contract",
        }
    }
    pub fn is_attack(self) -> bool {
        self != Label::Legit
    }
}

impl std::fmt::Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Relative weights of the attack kinds, as shares of the attack login events.
#[derive(Debug, Clone)]
pub struct AttackMix {
    pub naive: f64,
    pub vpn: f64,
    pub targeted: f64,
    pub hijack: f64,
    pub spray: f64,
    pub post_contract: f64,
}

impl Default for AttackMix {
    fn default() -> Self {
        AttackMix {
            naive: 0.22,
            vpn: 0.16,
            targeted: 0.22,
            hijack: 0.12,
            spray: 0.18,
            post_contract: 0.10,
        }
    }
}

impl AttackMix {
    pub fn weight(&self, l: Label) -> f64 {
        match l {
            Label::Naive => self.naive,
            Label::Vpn => self.vpn,
            Label::Targeted => self.targeted,
            Label::Hijack => self.hijack,
            Label::Spray => self.spray,
            Label::PostContract => self.post_contract,
            Label::Legit => 0.0,
        }
    }
}

/// Generator parameters. Every share is a probability in `0..=1`.
#[derive(Debug, Clone)]
pub struct GenConfig {
    /// Number of contractors.
    pub users: u32,
    /// Length of the window in days.
    pub days: u32,
    /// Seed of every random draw.
    pub seed: u64,
    /// First day of the window (00:00 UTC); events outside the window are dropped.
    pub start: NaiveDate,
    /// Share of login events that belong to attacks.
    pub attack_rate: f64,
    pub attack_mix: AttackMix,
    /// Share of honest logins already at AAL2/3 (MFA required or remembered).
    pub mfa_upfront_share: f64,
    /// Share of honest AAL1 logins with something new (device, city, country, ISP) that
    /// the IdP challenges and the user completes with MFA within ~30 s.
    pub stepup_new_share: f64,
    /// Share of AAL1 sessions that step up before a sensitive resource (prod k8s, prod
    /// databases, vault).
    pub stepup_sensitive_share: f64,
    /// Share of users with a dual-stack home line (IPv6 used when the DB has it).
    pub ipv6_user_share: f64,
    /// Business trips per user per 30 days.
    pub trip_rate_per_month: f64,
    /// New managed laptops per user per 30 days.
    pub new_laptop_rate_per_month: f64,
    /// Share of users whose laptop often egresses through a corporate VPN abroad.
    pub corp_vpn_user_share: f64,
    /// Share of logins preceded by a mistyped password.
    pub typo_rate: f64,
    /// Share of contractors whose contract ends inside the window.
    pub contract_end_in_window_share: f64,
    /// Share of contractors whose contract starts inside the window.
    pub contract_start_in_window_share: f64,
    /// Share of contractors with an `allowed_countries` list.
    pub allowed_countries_share: f64,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            users: 200,
            days: 30,
            seed: 1,
            start: NaiveDate::from_ymd_opt(2026, 3, 2).expect("date"),
            attack_rate: 0.02,
            attack_mix: AttackMix::default(),
            mfa_upfront_share: 0.30,
            stepup_new_share: 1.0,
            stepup_sensitive_share: 1.0,
            ipv6_user_share: 0.15,
            trip_rate_per_month: 0.05,
            new_laptop_rate_per_month: 0.025,
            corp_vpn_user_share: 0.07,
            typo_rate: 0.03,
            contract_end_in_window_share: 0.10,
            contract_start_in_window_share: 0.05,
            allowed_countries_share: 0.30,
        }
    }
}

impl GenConfig {
    pub fn validate(&self) -> Result<(), GenError> {
        if self.users == 0 {
            return Err(GenError::Config("users must be at least 1".into()));
        }
        if self.days == 0 {
            return Err(GenError::Config("days must be at least 1".into()));
        }
        if !(0.0..0.5).contains(&self.attack_rate) {
            return Err(GenError::Config(format!(
                "attack rate must be in [0, 0.5), got {}",
                self.attack_rate
            )));
        }
        let shares = [
            ("mfa_upfront_share", self.mfa_upfront_share),
            ("stepup_new_share", self.stepup_new_share),
            ("stepup_sensitive_share", self.stepup_sensitive_share),
            ("ipv6_user_share", self.ipv6_user_share),
            ("corp_vpn_user_share", self.corp_vpn_user_share),
            ("typo_rate", self.typo_rate),
            ("contract_end_in_window_share", self.contract_end_in_window_share),
            ("contract_start_in_window_share", self.contract_start_in_window_share),
            ("allowed_countries_share", self.allowed_countries_share),
        ];
        for (n, v) in shares {
            if !(0.0..=1.0).contains(&v) {
                return Err(GenError::Config(format!("{n} must be in [0, 1], got {v}")));
            }
        }
        for (n, v) in [
            ("trip_rate_per_month", self.trip_rate_per_month),
            ("new_laptop_rate_per_month", self.new_laptop_rate_per_month),
        ] {
            if !(0.0..=30.0).contains(&v) {
                return Err(GenError::Config(format!("{n} must be in [0, 30], got {v}")));
            }
        }
        let m = &self.attack_mix;
        let ws = [m.naive, m.vpn, m.targeted, m.hijack, m.spray, m.post_contract];
        if ws.iter().any(|w| *w < 0.0 || !w.is_finite()) || ws.iter().sum::<f64>() <= 0.0 {
            return Err(GenError::Config(
                "attack mix weights must be non-negative with a positive sum".into(),
            ));
        }
        Ok(())
    }
}

/// One native event (`schemas/auth-event.v1`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AuthEvent {
    pub event_id: String,
    /// RFC 3339 UTC with milliseconds.
    pub time: String,
    /// "login" or "access".
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub user_id: String,
    /// "success" / "failure" (logins only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    pub user_agent: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    pub session_id: String,
    pub aal: u8,
    pub methods: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    pub groups: Vec<String>,
    pub source: &'static str,
}

/// One line of the labels file.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LabelRecord {
    pub event_id: String,
    pub label: Label,
    pub user_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attack_id: Option<String>,
}

/// How the client reached the internet (generator ground truth).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// The home line.
    Home,
    /// The phone on its mobile carrier.
    Mobile,
    /// The laptop tethered to the phone.
    Tether,
    /// A coworking space or café.
    Cowork,
    /// Hotel / conference network during a trip.
    Hotel,
    /// Phone abroad: home-routed roaming, the IP geolocates at home.
    Roaming,
    /// Corporate VPN egress.
    CorpVpn,
    /// An attacker's network.
    Attacker,
}

/// What the generator intended for an event: where its IP should geolocate and where
/// the person physically was. Not part of the output files; for tests and evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct EventTruth {
    pub time_ms: i64,
    pub ip: Option<IpAddr>,
    /// City/country the IP was drawn from.
    pub city: Option<String>,
    pub country: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    /// The database network the IP was drawn from.
    pub network: Option<ipnetwork::IpNetwork>,
    pub net_kind: Option<NetKind>,
    pub isp: Option<String>,
    pub asn: Option<u32>,
    pub via: Via,
    /// Where the user (or attacker) physically was.
    pub phys_city: Option<String>,
    pub phys_lat: Option<f64>,
    pub phys_lon: Option<f64>,
    /// Business trip id when the event happened during a trip.
    pub trip: Option<u32>,
}

/// One generated event with its label and ground truth.
#[derive(Debug, Clone)]
pub struct GeneratedEvent {
    pub event: AuthEvent,
    pub label: LabelRecord,
    pub truth: EventTruth,
}

impl GeneratedEvent {
    /// The event as one JSON line (no trailing newline).
    pub fn event_json(&self) -> String {
        serde_json::to_string(&self.event).expect("event serialises")
    }
    /// The label as one JSON line (no trailing newline).
    pub fn label_json(&self) -> String {
        serde_json::to_string(&self.label).expect("label serialises")
    }
}

/// One line of the contractors file (`schemas/contractor.v1`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ContractorRecord {
    pub user_id: String,
    /// YYYY-MM-DD (inclusive first day).
    pub contract_start: String,
    /// YYYY-MM-DD (inclusive last day, in the contractor's home time zone).
    pub contract_end: String,
    pub sponsor: String,
    pub home_timezone: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_countries: Option<Vec<String>>,
}

/// Counts describing what was generated.
#[derive(Debug, Clone, Default)]
pub struct GenStats {
    pub users: u32,
    pub days: u32,
    pub events: u64,
    pub logins: u64,
    pub accesses: u64,
    pub login_failures: u64,
    pub events_by_label: BTreeMap<Label, u64>,
    pub logins_by_label: BTreeMap<Label, u64>,
    /// Number of distinct attacks (attack ids) per kind.
    pub attacks_by_kind: BTreeMap<Label, u64>,
    /// Honest sessions (login sequences) in the window.
    pub honest_sessions: u64,
    /// Honest sessions per user, in user order (the login-frequency spread).
    pub sessions_per_user: Vec<u32>,
    pub trips: u64,
    pub international_trips: u64,
    /// New managed laptops (new device id and UA).
    pub device_changes: u64,
    /// (user_id, device_id) of those new laptops.
    pub new_devices: Vec<(String, String)>,
    /// Changes of a device's UA string through browser/OS updates, as seen in logins.
    pub browser_upgrades: u64,
    /// Home IP changes within the same ISP (DHCP / prefix rotation).
    pub ip_churns: u64,
    pub ipv6_users: u64,
    pub ipv6_logins: u64,
    pub corp_vpn_users: u64,
    pub cowork_users: u64,
    pub users_with_allowed_countries: u64,
    pub contracts_ending_in_window: u64,
    pub contracts_starting_in_window: u64,
    /// Honest AAL1 logins with a new device, city, country or ISP.
    pub new_context_logins: u64,
    /// ... of which were followed by a completed MFA login in the same session.
    pub new_context_stepups: u64,
    /// Honest step-ups before a sensitive resource.
    pub sensitive_stepups: u64,
    /// Honest logins already at AAL2/3.
    pub mfa_upfront_logins: u64,
    pub typo_failures: u64,
    pub late_night_sessions: u64,
    pub weekend_sessions: u64,
    pub mobile_logins: u64,
    pub roaming_logins: u64,
    pub tether_logins: u64,
    pub contractors: Vec<ContractorRecord>,
}

impl GenStats {
    /// Share of login events that belong to attacks.
    pub fn attack_login_share(&self) -> f64 {
        let a: u64 = self
            .logins_by_label
            .iter()
            .filter(|(l, _)| l.is_attack())
            .map(|(_, n)| *n)
            .sum();
        if self.logins == 0 {
            0.0
        } else {
            a as f64 / self.logins as f64
        }
    }
}

/// Progress phases reported by [`generate_with_progress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Simulating users (done, total users).
    Users,
    /// Emitting events (done, total events).
    Emit,
}

/// Generate the workload, calling `sink` once per event in time order.
pub fn generate(cfg: &GenConfig, geo: &GeoSampler, sink: impl FnMut(GeneratedEvent)) -> Result<GenStats, GenError> {
    generate_with_progress(cfg, geo, |_, _, _| {}, sink)
}

/// [`generate`] with a progress callback `(phase, done, total)`.
pub fn generate_with_progress(
    cfg: &GenConfig,
    geo: &GeoSampler,
    progress: impl FnMut(Phase, u64, u64),
    sink: impl FnMut(GeneratedEvent),
) -> Result<GenStats, GenError> {
    cfg.validate()?;
    sim::run(cfg, geo, progress, sink)
}

/// RFC 3339 UTC with milliseconds.
pub fn format_time_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}
