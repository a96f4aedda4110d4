//! The population: contractors, their homes, networks, devices, habits and contracts.

use std::net::IpAddr;

use chrono::{Duration, NaiveDate};
use chrono_tz::Tz;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::geo::{random_in, random_v6_prefix, GeoSampler, NetKind};
use super::ua::{draw_laptop_install, draw_phone_install, BrowserInstall};
use super::{ContractorRecord, GenConfig};

// ---------------------------------------------------------------------------------
// Small distributions (rand 0.8 without rand_distr).

pub fn normal(rng: &mut impl Rng, mean: f64, sd: f64) -> f64 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen();
    mean + sd * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

pub fn poisson(rng: &mut impl Rng, lambda: f64) -> u32 {
    if lambda <= 0.0 {
        return 0;
    }
    if lambda > 30.0 {
        return normal(rng, lambda, lambda.sqrt()).round().max(0.0) as u32;
    }
    let l = (-lambda).exp();
    let mut k = 0u32;
    let mut p = 1.0;
    loop {
        p *= rng.gen::<f64>();
        if p <= l {
            return k;
        }
        k += 1;
    }
}

/// Exponential with the given mean.
pub fn expo(rng: &mut impl Rng, mean: f64) -> f64 {
    let u: f64 = rng.gen_range(f64::EPSILON..1.0);
    -u.ln() * mean
}

/// Weighted index.
pub fn pick_weighted(rng: &mut impl Rng, w: &[f64]) -> usize {
    let total: f64 = w.iter().sum();
    if total <= 0.0 {
        return rng.gen_range(0..w.len().max(1));
    }
    let mut x = rng.gen::<f64>() * total;
    for (i, wi) in w.iter().enumerate() {
        if x < *wi {
            return i;
        }
        x -= wi;
    }
    w.len() - 1
}

pub fn pick<'a, T>(rng: &mut impl Rng, xs: &'a [T]) -> &'a T {
    &xs[rng.gen_range(0..xs.len())]
}

/// splitmix64, for deriving independent seeds.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

pub fn sub_rng(seed: u64, stream: u64, idx: u64) -> StdRng {
    StdRng::seed_from_u64(mix(mix(seed ^ mix(stream)).wrapping_add(idx)))
}

// ---------------------------------------------------------------------------------
// Identity providers and id formats.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Okta,
    Entra,
    Keycloak,
    Auth0,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Okta => "okta",
            Source::Entra => "entra",
            Source::Keycloak => "keycloak",
            Source::Auth0 => "auth0",
        }
    }
}

const B62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn base62(mut seed: u64, n: usize) -> String {
    let mut s = String::with_capacity(n);
    for _ in 0..n {
        seed = mix(seed);
        s.push(B62[(seed % 62) as usize] as char);
    }
    s
}

fn guid(seed: u64) -> String {
    let a = mix(seed);
    let b = mix(a);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        (a >> 32) as u32,
        (a >> 16) as u16,
        (a & 0xfff) as u16,
        (0x8000 | (b >> 48) as u16 & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// A session id in the style of the IdP.
pub fn fmt_session(src: Source, id: u64) -> String {
    match src {
        Source::Okta => format!("102{}", base62(id, 22)),
        Source::Entra | Source::Keycloak => guid(id),
        Source::Auth0 => base62(id, 32),
    }
}

/// A device id in the style of the IdP / MDM.
pub fn fmt_device(src: Source, id: u64) -> String {
    match src {
        Source::Okta => format!("guo{}", base62(id, 17)),
        Source::Entra => guid(id),
        Source::Keycloak | Source::Auth0 => format!("dev-{:012x}", mix(id) & 0xffff_ffff_ffff),
    }
}

// ---------------------------------------------------------------------------------
// Roles and resources.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Dev,
    Sre,
    Dba,
    Data,
    Qa,
    Design,
}

impl Role {
    pub fn group(self) -> &'static str {
        match self {
            Role::Dev => "dev",
            Role::Sre => "sre",
            Role::Dba => "dba",
            Role::Data => "data",
            Role::Qa => "qa",
            Role::Design => "design",
        }
    }
    /// Resources this role uses, with a base popularity.
    pub fn resources(self) -> &'static [(&'static str, f64)] {
        match self {
            Role::Dev => &[
                ("wiki/eng", 1.0),
                ("git/payments-api", 1.0),
                ("git/web-frontend", 1.0),
                ("git/mobile-app", 0.7),
                ("git/data-pipeline", 0.4),
                ("ci/builds", 0.8),
                ("k8s/staging", 0.6),
                ("jira/eng", 0.8),
                ("k8s/prod", 0.12),
            ],
            Role::Sre => &[
                ("k8s/staging", 1.0),
                ("k8s/prod", 1.0),
                ("vault/prod", 0.5),
                ("git/infra", 0.9),
                ("grafana/prod", 0.9),
                ("wiki/eng", 0.5),
                ("aws/prod-console", 0.4),
            ],
            Role::Dba => &[
                ("db/prod/payments", 1.0),
                ("db/prod/users", 0.8),
                ("db/staging/payments", 0.9),
                ("vault/prod", 0.4),
                ("grafana/prod", 0.6),
                ("wiki/eng", 0.5),
            ],
            Role::Data => &[
                ("db/warehouse", 1.0),
                ("bi/dashboards", 1.0),
                ("git/data-pipeline", 0.8),
                ("wiki/data", 0.6),
                ("db/prod/analytics-replica", 0.3),
            ],
            Role::Qa => &[
                ("k8s/staging", 1.0),
                ("ci/builds", 0.9),
                ("jira/eng", 1.0),
                ("wiki/eng", 0.6),
                ("git/web-frontend", 0.5),
            ],
            Role::Design => &[
                ("wiki/design", 1.0),
                ("figma/team", 1.0),
                ("jira/eng", 0.7),
                ("git/web-frontend", 0.3),
            ],
        }
    }
}

pub fn is_sensitive(resource: &str) -> bool {
    resource.starts_with("k8s/prod")
        || resource.starts_with("vault/")
        || resource.starts_with("db/prod/")
        || resource.starts_with("aws/prod")
}

const SPONSORS: &[&str] = &[
    "a.keller@corp.example",
    "m.rossi@corp.example",
    "j.okafor@corp.example",
    "s.tanaka@corp.example",
    "l.nguyen@corp.example",
    "p.sharma@corp.example",
    "e.johansson@corp.example",
    "r.garcia@corp.example",
    "c.dubois@corp.example",
    "k.mueller@corp.example",
    "h.kim@corp.example",
    "d.silva@corp.example",
];

// ---------------------------------------------------------------------------------
// The contractor.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevKind {
    Managed,
    Personal,
    Phone,
}

#[derive(Debug, Clone)]
pub struct Device {
    pub kind: DevKind,
    /// Index into the simulation's device-id table (managed and registered devices).
    pub id: Option<String>,
    pub install: BrowserInstall,
    pub weight: f64,
    /// Retired (replaced by a new laptop).
    pub retired: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mfa {
    Otp,
    Push,
    Webauthn,
}

#[derive(Debug, Clone)]
pub struct Schedule {
    /// Local start of the working day, hours.
    pub start_h: f64,
    pub len_h: f64,
    /// Standard deviation of the first login around `start_h`, hours.
    pub spread_h: f64,
    /// Probability of working on a weekday.
    pub work_p: f64,
    /// Probability of working on a weekend day.
    pub weekend_p: f64,
    /// Probability of a late-night session on a given day.
    pub late_p: f64,
    /// Mean sessions per working day.
    pub rate: f64,
}

#[derive(Debug, Clone)]
pub struct Carrier {
    pub isp: u32,
    pub v4: Vec<u32>,
    pub v6: Vec<u32>,
}

#[derive(Debug, Clone)]
pub struct User {
    pub idx: u32,
    pub id: String,
    pub source: Source,
    pub role: Role,
    pub groups: Vec<String>,
    pub home_city: u32,
    pub tz: Tz,
    pub home_isp: u32,
    pub home_net: u32,
    /// Dual-stack home line: (v6 network, fixed /64 prefix).
    pub home_v6: Option<(u32, u128)>,
    pub carrier: Option<Carrier>,
    /// The phone prefers IPv6 on its carrier.
    pub phone_v6: bool,
    /// Corporate VPN egress (network, fixed address) and share of laptop sessions on it.
    pub corp_vpn: Option<(u32, IpAddr)>,
    pub vpn_share: f64,
    /// Coworking space network and the weekdays (0 = Monday) spent there.
    pub cowork: Option<(u32, Vec<u32>)>,
    pub devices: Vec<Device>,
    pub sched: Schedule,
    pub contract_start: NaiveDate,
    pub contract_end: NaiveDate,
    pub allowed: Option<Vec<String>>,
    pub sponsor: String,
    pub mfa: Mfa,
    pub typo_p: f64,
    pub favorites: Vec<(&'static str, f64)>,
    /// Daily probability of a new home address (DHCP lease / prefix change).
    pub churn_p: f64,
    pub trip_p_day: f64,
    pub new_laptop_p_day: f64,
}

impl User {
    pub fn record(&self, geo: &GeoSampler) -> ContractorRecord {
        ContractorRecord {
            user_id: self.id.clone(),
            contract_start: self.contract_start.format("%Y-%m-%d").to_string(),
            contract_end: self.contract_end.format("%Y-%m-%d").to_string(),
            sponsor: self.sponsor.clone(),
            home_timezone: geo.city(self.home_city).tz_name.clone(),
            allowed_countries: self.allowed.clone(),
        }
    }
}

/// Everything fixed before the simulation starts.
pub struct World {
    pub users: Vec<User>,
}

/// Where contractors live: a country first (damped by the square root of its size, so
/// one country with most of the world's networks does not take everyone), then a city
/// weighted by its fixed-line networks.
struct HomePicker {
    /// (country, weight, cities, city weights)
    countries: Vec<(String, f64, Vec<u32>, Vec<f64>)>,
    /// Indices of the hub countries (the agency's talent pools).
    hubs: Vec<usize>,
}

impl HomePicker {
    fn new(geo: &GeoSampler, rng: &mut StdRng) -> Self {
        let mut countries: Vec<(String, f64, Vec<u32>, Vec<f64>)> = Vec::new();
        for co in geo.countries() {
            let mut ids = Vec::new();
            let mut w = Vec::new();
            for &ci in &co.cities {
                let c = geo.city(ci);
                // Homes need a fixed-line IPv4 network.
                if c.networks(false, NetKind::Residential).is_empty() {
                    continue;
                }
                ids.push(ci);
                // With an ASN database count fixed-line networks; without one, damp
                // the data-centre hubs that dominate raw network counts.
                w.push(if geo.has_asn() {
                    c.residential_count.max(1) as f64
                } else {
                    (c.network_count as f64).powf(0.75)
                });
            }
            if !ids.is_empty() {
                let total: f64 = w.iter().sum();
                countries.push((co.code.clone(), total.sqrt(), ids, w));
            }
        }
        let mut pool: Vec<usize> = (0..countries.len()).collect();
        let mut hubs = Vec::new();
        for _ in 0..countries.len().min(8) {
            // Hubs: the big internet countries are likelier (weight ~ size).
            let w: Vec<f64> = pool.iter().map(|&i| countries[i].1 * countries[i].1).collect();
            hubs.push(pool.swap_remove(pick_weighted(rng, &w)));
        }
        HomePicker { countries, hubs }
    }

    fn pick(&self, r: &mut StdRng) -> Option<u32> {
        if self.countries.is_empty() {
            return None;
        }
        let ci = if !self.hubs.is_empty() && r.gen_bool(0.72) {
            // A main pool and smaller ones: hub k has weight ~ 1/(k+1).
            let w: Vec<f64> = (0..self.hubs.len()).map(|k| 1.0 / (k as f64 + 1.0)).collect();
            self.hubs[pick_weighted(r, &w)]
        } else {
            let w: Vec<f64> = self.countries.iter().map(|c| c.1).collect();
            pick_weighted(r, &w)
        };
        let (_, _, ids, w) = &self.countries[ci];
        Some(ids[pick_weighted(r, w)])
    }

    fn hub_codes(&self) -> Vec<String> {
        self.hubs.iter().map(|&i| self.countries[i].0.clone()).collect()
    }
}

pub fn build(cfg: &GenConfig, geo: &GeoSampler) -> World {
    let mut rng = sub_rng(cfg.seed, 1, 0);
    let homes = HomePicker::new(geo, &mut rng);
    let hubs = homes.hub_codes();
    let window_end = cfg.start + Duration::days(cfg.days as i64);
    let mut users = Vec::with_capacity(cfg.users as usize);
    for idx in 0..cfg.users {
        let mut r = sub_rng(cfg.seed, 2, idx as u64);
        users.push(build_user(cfg, geo, &mut r, idx, &hubs, &homes, window_end));
    }
    World { users }
}

#[allow(clippy::too_many_arguments)]
fn build_user(
    cfg: &GenConfig,
    geo: &GeoSampler,
    r: &mut StdRng,
    idx: u32,
    hubs: &[String],
    homes: &HomePicker,
    window_end: NaiveDate,
) -> User {
    let id = format!("ctr-{:05}", idx + 1);
    let source = match pick_weighted(r, &[0.45, 0.35, 0.10, 0.10]) {
        0 => Source::Okta,
        1 => Source::Entra,
        2 => Source::Keycloak,
        _ => Source::Auth0,
    };
    let role = match pick_weighted(r, &[0.42, 0.15, 0.08, 0.12, 0.13, 0.10]) {
        0 => Role::Dev,
        1 => Role::Sre,
        2 => Role::Dba,
        3 => Role::Data,
        4 => Role::Qa,
        _ => Role::Design,
    };
    let mut groups = vec!["contractors".to_string(), role.group().to_string()];
    if role == Role::Sre && r.gen_bool(0.5) {
        groups.push("oncall".into());
    }

    // Home city and line.
    let home_city = homes.pick(r).unwrap_or_else(|| geo.weighted_city(r));
    let city = geo.city(home_city);
    let tz = city.tz;
    let res = city.networks(false, NetKind::Residential);
    let home_net = if !res.is_empty() {
        *pick(r, res)
    } else {
        // a city with only other networks: take any of them
        let any: Vec<u32> = [NetKind::Mobile, NetKind::Hosting]
            .iter()
            .flat_map(|k| city.networks(false, *k).iter().copied())
            .chain(city.networks(true, NetKind::Residential).iter().copied())
            .collect();
        *pick(r, &any)
    };
    let home_isp = geo.net(home_net).isp;
    let home_v6 = if r.gen_bool(cfg.ipv6_user_share) {
        // A dual-stack line is one ISP; without an ASN database the v6 "ISP" (its /32)
        // never equals the v4 one, so any fixed-line v6 network of the city will do.
        let same_isp = geo.isp_networks(home_city, home_isp, true);
        let cands: &[u32] = if geo.has_asn() {
            same_isp
        } else {
            city.networks(true, NetKind::Residential)
        };
        if cands.is_empty() {
            None
        } else {
            let n = *pick(r, cands);
            random_v6_prefix(&geo.net(n).net, r).map(|p| (n, p))
        }
    } else {
        None
    };

    // Mobile carrier: a mobile network in the city, else the country, else another ISP.
    let carrier = {
        let mut c: Option<(u32, u32)> = None; // (net, city)
        let m = city.networks(false, NetKind::Mobile);
        if !m.is_empty() {
            c = Some((*pick(r, m), home_city));
        } else if let Some(co) = geo.country(&city.country) {
            let cands: Vec<(u32, u32)> = co
                .cities
                .iter()
                .flat_map(|&ci| {
                    geo.city(ci)
                        .networks(false, NetKind::Mobile)
                        .iter()
                        .map(move |&n| (n, ci))
                })
                .collect();
            if !cands.is_empty() {
                c = Some(*pick(r, &cands));
            }
        }
        if c.is_none() {
            let other: Vec<u32> = res.iter().copied().filter(|&n| geo.net(n).isp != home_isp).collect();
            if !other.is_empty() {
                c = Some((*pick(r, &other), home_city));
            }
        }
        c.map(|(n, ci)| {
            let isp = geo.net(n).isp;
            let v4 = geo.isp_networks(ci, isp, false).to_vec();
            let v6 = geo.isp_networks(ci, isp, true).to_vec();
            Carrier { isp, v4, v6 }
        })
    };
    let phone_v6 = carrier.as_ref().is_some_and(|c| !c.v6.is_empty()) && r.gen_bool(0.5);

    // Corporate VPN egress abroad (the client's network), consistently the same.
    let corp_vpn = if r.gen_bool(cfg.corp_vpn_user_share) {
        let abroad: Vec<&String> = hubs.iter().filter(|h| **h != city.country).collect();
        let cc = if abroad.is_empty() {
            geo.countries()
                .iter()
                .map(|c| &c.code)
                .find(|c| **c != city.country)
                .cloned()
        } else {
            Some((*pick(r, &abroad)).clone())
        };
        cc.and_then(|cc| {
            let co = geo.country(&cc)?;
            let net = if !co.hosting_v4.is_empty() {
                *pick(r, &co.hosting_v4)
            } else {
                let big = *co
                    .cities
                    .iter()
                    .max_by_key(|&&ci| (geo.city(ci).network_count, std::cmp::Reverse(ci)))?;
                let nets: Vec<u32> = [NetKind::Residential, NetKind::Mobile, NetKind::Hosting]
                    .iter()
                    .flat_map(|k| geo.city(big).networks(false, *k).iter().copied())
                    .collect();
                if nets.is_empty() {
                    return None;
                }
                *pick(r, &nets)
            };
            Some((net, random_in(&geo.net(net).net, r)))
        })
    } else {
        None
    };
    let vpn_share = r.gen_range(0.3..0.9);

    let cowork = if r.gen_bool(0.12) {
        let other: Vec<u32> = res.iter().copied().filter(|&n| geo.net(n).isp != home_isp).collect();
        if other.is_empty() {
            None
        } else {
            let n = *pick(r, &other);
            let ndays = r.gen_range(1..=3);
            let mut days: Vec<u32> = Vec::new();
            while days.len() < ndays {
                let d = r.gen_range(0..5);
                if !days.contains(&d) {
                    days.push(d);
                }
            }
            Some((n, days))
        }
    } else {
        None
    };

    // Devices.
    let mut devices = vec![Device {
        kind: DevKind::Managed,
        id: Some(fmt_device(source, r.gen())),
        install: draw_laptop_install(r, true),
        weight: 1.0,
        retired: false,
    }];
    if r.gen_bool(0.35) {
        devices.push(Device {
            kind: DevKind::Personal,
            id: if r.gen_bool(0.15) {
                Some(fmt_device(source, r.gen()))
            } else {
                None
            },
            install: draw_laptop_install(r, false),
            weight: r.gen_range(0.03..0.15),
            retired: false,
        });
    }
    if r.gen_bool(0.6) {
        devices.push(Device {
            kind: DevKind::Phone,
            id: if r.gen_bool(0.3) {
                Some(fmt_device(source, r.gen()))
            } else {
                None
            },
            install: draw_phone_install(r),
            weight: r.gen_range(0.04..0.2),
            retired: false,
        });
    }

    // Habits.
    let x: f64 = r.gen();
    let start_h = if x < 0.80 {
        normal(r, 8.7, 0.9).clamp(6.0, 11.5)
    } else if x < 0.92 {
        normal(r, 11.0, 1.0).clamp(9.0, 14.0)
    } else {
        // works the hours of a client in another time zone
        normal(r, 14.5, 2.0).clamp(12.0, 20.0)
    };
    let len_h = normal(r, 8.3, 1.0).clamp(4.0, 11.0);
    let work_p = if r.gen_bool(0.85) {
        r.gen_range(0.85..0.98)
    } else {
        r.gen_range(0.35..0.7)
    };
    let weekend_p = match pick_weighted(r, &[0.70, 0.25, 0.05]) {
        0 => r.gen_range(0.0..0.04),
        1 => r.gen_range(0.05..0.2),
        _ => r.gen_range(0.3..0.6),
    };
    let late_p = if r.gen_bool(0.1) {
        r.gen_range(0.08..0.2)
    } else {
        r.gen_range(0.0..0.05)
    };
    // Heavy-tailed login frequency: median ~1 session per working day, from about
    // monthly (0.04/day) to a dozen a day.
    let rate = (normal(r, 0.0, 1.25)).exp().clamp(0.04, 12.0);
    let sched = Schedule {
        start_h,
        len_h,
        spread_h: r.gen_range(0.15..1.0),
        work_p,
        weekend_p,
        late_p,
        rate,
    };

    // Contract.
    let start = cfg.start;
    let days = cfg.days as i64;
    let contract_start = if days > 4 && r.gen_bool(cfg.contract_start_in_window_share) {
        start + Duration::days(r.gen_range(1..days - 2))
    } else {
        start - Duration::days(r.gen_range(20..900))
    };
    let earliest_end = (contract_start + Duration::days(3)).max(start + Duration::days(2));
    let contract_end = if r.gen_bool(cfg.contract_end_in_window_share) && earliest_end < window_end {
        let span = (window_end - earliest_end).num_days().max(1);
        earliest_end + Duration::days(r.gen_range(0..span))
    } else {
        window_end + Duration::days(r.gen_range(5..400))
    };

    let allowed = if r.gen_bool(cfg.allowed_countries_share) {
        let mut v = vec![city.country.clone()];
        if let Some((n, _)) = &corp_vpn {
            let c = &geo.city(geo.net(*n).city).country;
            if !v.contains(c) {
                v.push(c.clone());
            }
        }
        if r.gen_bool(0.3) {
            if let Some(h) = hubs.iter().find(|h| !v.contains(h)) {
                v.push(h.clone());
            }
        }
        v.sort();
        Some(v)
    } else {
        None
    };

    let mfa = match pick_weighted(r, &[0.5, 0.35, 0.15]) {
        0 => Mfa::Otp,
        1 => Mfa::Push,
        _ => Mfa::Webauthn,
    };

    // Favourite resources: a few of the role's, Zipf-weighted.
    let mut pool: Vec<(&'static str, f64)> = role.resources().to_vec();
    let k = r.gen_range(3..=pool.len().min(6));
    let mut favorites = Vec::new();
    for rank in 0..k {
        let w: Vec<f64> = pool.iter().map(|p| p.1).collect();
        let i = pick_weighted(r, &w);
        let (res, base) = pool.remove(i);
        favorites.push((res, base / ((rank + 1) as f64).powf(1.1)));
    }

    let churn_p = match pick_weighted(r, &[0.15, 0.35, 0.50]) {
        0 => r.gen_range(0.5..0.95),
        1 => r.gen_range(0.05..0.15),
        _ => r.gen_range(0.005..0.03),
    };

    User {
        idx,
        id,
        source,
        role,
        groups,
        home_city,
        tz,
        home_isp,
        home_net,
        home_v6,
        carrier,
        phone_v6,
        corp_vpn,
        vpn_share,
        cowork,
        devices,
        sched,
        contract_start,
        contract_end,
        allowed,
        sponsor: pick(r, SPONSORS).to_string(),
        mfa,
        typo_p: cfg.typo_rate * r.gen_range(0.3..1.7),
        favorites,
        churn_p,
        trip_p_day: cfg.trip_rate_per_month / 30.0 * r.gen_range(0.2..1.8),
        new_laptop_p_day: cfg.new_laptop_rate_per_month / 30.0,
    }
}
