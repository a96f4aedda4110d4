//! The simulation: honest users day by day, then attacks sized to the configured
//! share of login events, then one time-ordered merge.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use rand::rngs::StdRng;
use rand::Rng;

use super::geo::{haversine_km, random_in, v6_with_prefix, GeoSampler, NetKind};
use super::ua::{plausible_current_ua, same_family_ua, scripted_ua, spray_ua};
use super::world::{
    self, expo, fmt_session, is_sensitive, normal, pick, pick_weighted, poisson, sub_rng, DevKind, Mfa, User, World,
};
use super::{
    format_time_ms, AuthEvent, EventTruth, GenConfig, GenError, GenStats, GeneratedEvent, Label, LabelRecord, Phase,
    Via,
};

const MIN: i64 = 60_000;
const HOUR: i64 = 3_600_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Methods {
    Pwd,
    PwdOtp,
    PwdPush,
    Webauthn,
}

impl Methods {
    fn list(self) -> Vec<&'static str> {
        match self {
            Methods::Pwd => vec!["pwd"],
            Methods::PwdOtp => vec!["pwd", "otp"],
            Methods::PwdPush => vec!["pwd", "push"],
            Methods::Webauthn => vec!["webauthn"],
        }
    }
}

fn mfa_methods(m: Mfa) -> (u8, Methods) {
    match m {
        Mfa::Otp => (2, Methods::PwdOtp),
        Mfa::Push => (2, Methods::PwdPush),
        Mfa::Webauthn => (3, Methods::Webauthn),
    }
}

/// The second factor an attacker is asked for (and fails).
fn challenge_methods(m: Mfa) -> Methods {
    match m {
        Mfa::Push => Methods::PwdPush,
        _ => Methods::PwdOtp,
    }
}

/// Compact internal event.
#[derive(Debug, Clone)]
struct Ev {
    t: i64,
    order: u64,
    user: u32,
    login: bool,
    success: bool,
    ip: Option<IpAddr>,
    net: Option<u32>,
    ua: u32,
    device: Option<u32>,
    session: u64,
    aal: u8,
    methods: Methods,
    resource: Option<&'static str>,
    label: Label,
    attack: Option<u32>,
    via: Via,
    phys_city: Option<u32>,
    trip: Option<u32>,
}

#[derive(Default)]
struct Interner {
    map: HashMap<String, u32>,
    list: Vec<String>,
}

impl Interner {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.map.get(s) {
            return i;
        }
        let i = self.list.len() as u32;
        self.list.push(s.to_string());
        self.map.insert(s.to_string(), i);
        i
    }
    fn get(&self, i: u32) -> &str {
        &self.list[i as usize]
    }
}

/// A network attachment for one session.
#[derive(Debug, Clone, Copy)]
struct Attach {
    ip: IpAddr,
    net: u32,
    via: Via,
}

#[derive(Debug, Clone)]
struct Trip {
    id: u32,
    dest: u32,
    depart: i64,
    arrive: i64,
    ret_depart: i64,
    ret_arrive: i64,
    hotel: Attach,
    international: bool,
}

enum Where {
    Home,
    Transit,
    Away,
}

struct UserSim {
    rng: StdRng,
    seen_city: HashSet<u32>,
    seen_country: HashSet<String>,
    seen_isp: HashSet<u32>,
    seen_dev: HashSet<usize>,
    home_net: u32,
    home_ip: IpAddr,
    home_v6_ip: Option<IpAddr>,
    cowork_ip: Option<IpAddr>,
    trip: Option<Trip>,
    last_ua: Vec<Option<u32>>,
    events: Vec<Ev>,
    sessions: u32,
    /// The user as the honest simulation left them (new laptops, retired ones).
    user: Option<User>,
}

struct Ctx<'a> {
    cfg: &'a GenConfig,
    geo: &'a GeoSampler,
    uas: Interner,
    dev_ids: Interner,
    order: u64,
    win_start: i64,
    win_end: i64,
    stats: GenStats,
    trip_ids: u32,
    attack_ids: u32,
    v6_users: HashSet<u32>,
}

impl Ctx<'_> {
    fn next_order(&mut self) -> u64 {
        self.order += 1;
        self.order
    }
    fn in_window(&self, t: i64) -> bool {
        t >= self.win_start && t < self.win_end
    }
}

/// The contract as UTC instants: [contract_start 00:00, contract_end + 1 day 00:00).
fn contract_utc(u: &User) -> (i64, i64) {
    let ms = |d: NaiveDate| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc().timestamp_millis();
    (ms(u.contract_start), ms(u.contract_end + Duration::days(1)))
}

fn local_ms(tz: &Tz, date: NaiveDate, hours: f64) -> i64 {
    let base: NaiveDateTime = date.and_hms_opt(0, 0, 0).expect("midnight");
    let secs = (hours * 3600.0).round() as i64;
    let naive = base + Duration::seconds(secs);
    match tz.from_local_datetime(&naive).earliest() {
        Some(dt) => dt.timestamp_millis(),
        // inside a DST gap: an hour later exists
        None => tz
            .from_local_datetime(&(naive + Duration::hours(1)))
            .earliest()
            .map(|d| d.timestamp_millis())
            .unwrap_or_else(|| naive.and_utc().timestamp_millis()),
    }
}

fn local_dt(tz: &Tz, t: i64) -> DateTime<Tz> {
    DateTime::<Utc>::from_timestamp_millis(t)
        .unwrap_or_default()
        .with_timezone(tz)
}

fn local_date(tz: &Tz, t: i64) -> NaiveDate {
    local_dt(tz, t).date_naive()
}

fn local_hour(tz: &Tz, t: i64) -> f64 {
    let d = local_dt(tz, t);
    d.hour() as f64 + d.minute() as f64 / 60.0
}

/// Door-to-door travel time in hours for a trip of `km` (train/car below 450 km,
/// otherwise a flight at ~780 km/h plus airport time at both ends).
fn travel_hours(km: f64) -> f64 {
    if km < 450.0 {
        km / 85.0 + 0.75
    } else {
        km / 780.0 + 3.0
    }
}

// ---------------------------------------------------------------------------------

pub(super) fn run(
    cfg: &GenConfig,
    geo: &GeoSampler,
    mut progress: impl FnMut(Phase, u64, u64),
    mut sink: impl FnMut(GeneratedEvent),
) -> Result<GenStats, GenError> {
    if geo.cities().is_empty() {
        return Err(GenError::Geo("no cities".into()));
    }
    let world = world::build(cfg, geo);
    let win_start = cfg
        .start
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc()
        .timestamp_millis();
    let win_end = win_start + cfg.days as i64 * 24 * HOUR;
    let mut ctx = Ctx {
        cfg,
        geo,
        uas: Interner::default(),
        dev_ids: Interner::default(),
        order: 0,
        win_start,
        win_end,
        stats: GenStats {
            users: cfg.users,
            days: cfg.days,
            ..Default::default()
        },
        trip_ids: 0,
        attack_ids: 0,
        v6_users: HashSet::new(),
    };

    // 1. Honest users.
    let n = world.users.len() as u64;
    let mut sims: Vec<UserSim> = Vec::with_capacity(world.users.len());
    for (i, u) in world.users.iter().enumerate() {
        let mut s = new_sim(&ctx, u);
        simulate_honest(&mut ctx, u, &mut s);
        // A contract's dates cover whole UTC days (schemas/contractor.v1): the IdP
        // account is active from contract_start 00:00 UTC to the end of contract_end.
        let (lo, hi) = contract_utc(u);
        s.events.retain(|e| e.t >= win_start.max(lo) && e.t < win_end.min(hi));
        ctx.stats.sessions_per_user.push(s.sessions);
        sims.push(s);
        progress(Phase::Users, i as u64 + 1, n);
    }
    let honest_logins: u64 = sims
        .iter()
        .map(|s| s.events.iter().filter(|e| e.login).count() as u64)
        .sum();

    // 2. Attacks.
    let mut attacks: Vec<Ev> = Vec::new();
    plan_attacks(&mut ctx, &world, &mut sims, honest_logins, &mut attacks);
    attacks.retain(|e| e.t >= win_start && e.t < win_end);

    // 3. Merge in time order and emit.
    let mut all: Vec<Ev> = Vec::with_capacity(sims.iter().map(|s| s.events.len()).sum::<usize>() + attacks.len());
    for s in &mut sims {
        all.append(&mut s.events);
    }
    drop(sims);
    all.append(&mut attacks);
    all.sort_by_key(|e| (e.t, e.order));

    let st = &mut ctx.stats;
    for u in &world.users {
        st.contractors.push(u.record(geo));
        if u.corp_vpn.is_some() {
            st.corp_vpn_users += 1;
        }
        if u.cowork.is_some() {
            st.cowork_users += 1;
        }
        if u.allowed.is_some() {
            st.users_with_allowed_countries += 1;
        }
        let end = cfg.start + Duration::days(cfg.days as i64);
        if u.contract_end >= cfg.start && u.contract_end < end {
            st.contracts_ending_in_window += 1;
        }
        if u.contract_start >= cfg.start && u.contract_start < end {
            st.contracts_starting_in_window += 1;
        }
    }
    let total = all.len() as u64;
    let mut attack_seen: HashSet<u32> = HashSet::new();
    for (i, e) in all.into_iter().enumerate() {
        let u = &world.users[e.user as usize];
        let st = &mut ctx.stats;
        st.events += 1;
        *st.events_by_label.entry(e.label).or_default() += 1;
        if e.login {
            st.logins += 1;
            *st.logins_by_label.entry(e.label).or_default() += 1;
            if !e.success {
                st.login_failures += 1;
            }
            if e.label == Label::Legit {
                if matches!(e.ip, Some(IpAddr::V6(_))) {
                    st.ipv6_logins += 1;
                    ctx.v6_users.insert(e.user);
                }
                match e.via {
                    Via::Mobile => st.mobile_logins += 1,
                    Via::Roaming => st.roaming_logins += 1,
                    Via::Tether => st.tether_logins += 1,
                    _ => {}
                }
            }
        } else {
            st.accesses += 1;
        }
        if let Some(a) = e.attack {
            if attack_seen.insert(a) {
                *st.attacks_by_kind.entry(e.label).or_default() += 1;
            }
        }
        let ev = to_output(&ctx, u, &e, i as u64 + 1);
        sink(ev);
        if (i + 1) % 4096 == 0 || i as u64 + 1 == total {
            progress(Phase::Emit, i as u64 + 1, total);
        }
    }
    ctx.stats.ipv6_users = ctx.v6_users.len() as u64;
    ctx.stats.honest_sessions = ctx.stats.sessions_per_user.iter().map(|&n| n as u64).sum();
    Ok(ctx.stats)
}

fn to_output(ctx: &Ctx, u: &User, e: &Ev, n: u64) -> GeneratedEvent {
    let geo = ctx.geo;
    let event_id = format!("evt-{}-{}", ctx.cfg.seed, n);
    let event = AuthEvent {
        event_id: event_id.clone(),
        time: format_time_ms(e.t),
        kind: if e.login { "login" } else { "access" },
        user_id: u.id.clone(),
        outcome: if e.login {
            Some(if e.success { "success" } else { "failure" })
        } else {
            None
        },
        ip: e.ip.map(|ip| ip.to_string()),
        user_agent: ctx.uas.get(e.ua).to_string(),
        device_id: e.device.map(|d| ctx.dev_ids.get(d).to_string()),
        session_id: fmt_session(u.source, e.session),
        aal: e.aal,
        methods: e.methods.list(),
        resource: e.resource.map(|r| r.to_string()),
        groups: u.groups.clone(),
        source: u.source.as_str(),
    };
    let label = LabelRecord {
        event_id,
        label: e.label,
        user_id: u.id.clone(),
        attack_id: e.attack.map(|a| format!("atk-{}-{}", ctx.cfg.seed, a)),
    };
    let (city, country, lat, lon, network, kind, isp, asn) = match e.net {
        Some(ni) => {
            let ni = geo.net(ni);
            let c = geo.city(ni.city);
            let isp = geo.isp(ni.isp);
            (
                Some(c.name.clone()),
                Some(c.country.clone()),
                Some(c.lat),
                Some(c.lon),
                Some(ni.net),
                Some(ni.kind),
                Some(isp.name.clone()),
                isp.asn,
            )
        }
        None => (None, None, None, None, None, None, None, None),
    };
    let phys = e.phys_city.map(|c| geo.city(c));
    GeneratedEvent {
        event,
        label,
        truth: EventTruth {
            time_ms: e.t,
            ip: e.ip,
            city,
            country,
            lat,
            lon,
            network,
            net_kind: kind,
            isp,
            asn,
            via: e.via,
            phys_city: phys.map(|c| c.name.clone()),
            phys_lat: phys.map(|c| c.lat),
            phys_lon: phys.map(|c| c.lon),
            trip: e.trip,
        },
    }
}

// ---------------------------------------------------------------------------------
// Honest users.

fn new_sim(ctx: &Ctx, u: &User) -> UserSim {
    let geo = ctx.geo;
    let mut rng = sub_rng(ctx.cfg.seed, 3, u.idx as u64);
    let home_ip = random_in(&geo.net(u.home_net).net, &mut rng);
    let mut s = UserSim {
        rng,
        seen_city: HashSet::new(),
        seen_country: HashSet::new(),
        seen_isp: HashSet::new(),
        seen_dev: HashSet::new(),
        home_net: u.home_net,
        home_ip,
        home_v6_ip: None,
        cowork_ip: None,
        trip: None,
        last_ua: vec![None; u.devices.len()],
        events: Vec::new(),
        sessions: 0,
        user: None,
    };
    if let Some((n, _)) = u.cowork {
        s.cowork_ip = Some(random_in(&geo.net(n).net, &mut s.rng));
    }
    // A contractor who started before the window has an established history: the IdP
    // knows their home, carrier, VPN egress, coworking space and devices.
    if u.contract_start < ctx.cfg.start {
        let know = |net: u32, s: &mut UserSim| {
            let ni = geo.net(net);
            s.seen_city.insert(ni.city);
            s.seen_country.insert(geo.city(ni.city).country.clone());
            s.seen_isp.insert(ni.isp);
        };
        know(u.home_net, &mut s);
        for &n in geo.isp_networks(u.home_city, u.home_isp, false) {
            know(n, &mut s);
        }
        if let Some((n, _)) = u.home_v6 {
            know(n, &mut s);
        }
        if let Some(c) = &u.carrier {
            for &n in c.v4.iter().chain(c.v6.iter()) {
                know(n, &mut s);
            }
        }
        if let Some((n, _)) = u.corp_vpn {
            know(n, &mut s);
        }
        if let Some((n, _)) = u.cowork {
            know(n, &mut s);
        }
        for i in 0..u.devices.len() {
            s.seen_dev.insert(i);
        }
    }
    s
}

fn simulate_honest(ctx: &mut Ctx, u: &User, s: &mut UserSim) {
    let cfg = ctx.cfg;
    let mut u = u.clone();
    // One day before and after the window so every time zone fills it.
    for i in -1..=cfg.days as i64 {
        let date = cfg.start + Duration::days(i);
        if date < u.contract_start || date > u.contract_end {
            continue;
        }
        simulate_day(
            ctx,
            &mut u,
            s,
            date,
            (0..cfg.days as i64).contains(&i),
            Label::Legit,
            None,
            None,
        );
    }
    s.user = Some(u);
}

/// Simulate one local day. Returns the number of login events emitted.
#[allow(clippy::too_many_arguments)]
fn simulate_day(
    ctx: &mut Ctx,
    u: &mut User,
    s: &mut UserSim,
    date: NaiveDate,
    count_stats: bool,
    label: Label,
    attack: Option<u32>,
    force_sessions: Option<u32>,
) -> u32 {
    let geo = ctx.geo;
    let honest = label == Label::Legit;
    let wd = date.weekday().num_days_from_monday();
    let weekend = wd >= 5;

    // Morning: DHCP churn / prefix change within the same ISP.
    if s.rng.gen_bool(u.churn_p) {
        let same = geo.isp_networks(u.home_city, u.home_isp, false);
        let net = if same.is_empty() {
            s.home_net
        } else {
            *pick(&mut s.rng, same)
        };
        s.home_net = net;
        s.home_ip = random_in(&geo.net(net).net, &mut s.rng);
        if count_stats && honest {
            ctx.stats.ip_churns += 1;
        }
    }
    // IPv6 privacy extensions: a new interface id every day.
    s.home_v6_ip = u.home_v6.map(|(n, p)| v6_with_prefix(&geo.net(n).net, p, &mut s.rng));

    // A new managed laptop now and then.
    if honest && s.rng.gen_bool(u.new_laptop_p_day.min(1.0)) && !weekend {
        if let Some(old) = u.devices.iter().position(|d| d.kind == DevKind::Managed && !d.retired) {
            u.devices[old].retired = true;
            let mut inst = super::ua::draw_laptop_install(&mut s.rng, true);
            if s.rng.gen_bool(0.7) {
                inst.os = u.devices[old].install.os;
                if inst.os == u.devices[old].install.os && s.rng.gen_bool(0.8) {
                    inst.browser = u.devices[old].install.browser;
                }
            }
            // A fresh machine runs the current browser.
            inst.lag_days = inst.lag_days.min(7);
            let id = world::fmt_device(u.source, s.rng.gen());
            u.devices.push(world::Device {
                kind: DevKind::Managed,
                id: Some(id.clone()),
                install: inst,
                weight: 1.0,
                retired: false,
            });
            s.last_ua.push(None);
            if count_stats {
                ctx.stats.device_changes += 1;
                ctx.stats.new_devices.push((u.id.clone(), id));
            }
        }
    }

    // Business trips: start on a Monday..Thursday.
    if honest
        && s.trip.is_none()
        && wd < 4
        && date + Duration::days(5) < u.contract_end
        && s.rng.gen_bool((u.trip_p_day * 7.0 / 4.0).min(1.0))
    {
        if let Some(t) = plan_trip(ctx, u, s, date) {
            if count_stats {
                ctx.stats.trips += 1;
                if t.international {
                    ctx.stats.international_trips += 1;
                }
            }
            s.trip = Some(t);
        }
    }
    let day_start = local_ms(&u.tz, date, 0.0);
    if let Some(t) = &s.trip {
        if t.ret_arrive < day_start {
            s.trip = None;
        }
    }

    // Which time zone does the day run in (where the user is at noon)?
    let noon = local_ms(&u.tz, date, 12.0);
    let tz = match &s.trip {
        Some(t) if noon >= t.arrive && noon < t.ret_depart => geo.city(t.dest).tz,
        _ => u.tz,
    };
    let on_trip_today = matches!(&s.trip, Some(t) if noon >= t.depart && noon < t.ret_arrive);

    // Session times (local hours).
    let mut hours: Vec<f64> = Vec::new();
    let sc = &u.sched;
    let works = match force_sessions {
        Some(_) => true,
        None => {
            let p = if weekend {
                sc.weekend_p
            } else if on_trip_today {
                sc.work_p.max(0.9)
            } else {
                sc.work_p
            };
            s.rng.gen_bool(p)
        }
    };
    if works {
        let n = match force_sessions {
            Some(n) => n,
            None => {
                let lam = if weekend { sc.rate * 0.5 } else { sc.rate };
                poisson(&mut s.rng, lam)
            }
        };
        for k in 0..n {
            let h = if k == 0 {
                normal(&mut s.rng, sc.start_h, sc.spread_h)
            } else {
                sc.start_h + s.rng.gen::<f64>() * sc.len_h
            };
            hours.push(h.clamp(0.0, 23.95));
        }
    }
    let late = force_sessions.is_none() && s.rng.gen_bool(sc.late_p);
    if late {
        hours.push(s.rng.gen_range(21.0..25.5));
    }
    hours.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));

    let mut logins = 0;
    for h in hours {
        let t0 = local_ms(&tz, date, h) + s.rng.gen_range(0..60_000);
        let (place_city, wh, trip_id) = where_at(u, s, t0);
        if matches!(wh, Where::Transit) {
            continue;
        }
        let lh = local_hour(&tz, t0);
        let in_hours = lh >= sc.start_h - 0.5 && lh <= sc.start_h + sc.len_h + 0.5;
        let dev = choose_device(u, s, in_hours && !weekend, matches!(wh, Where::Away));
        let att = attach(ctx, u, s, dev, &wh, wd, in_hours);
        logins += honest_session(ctx, u, s, t0, dev, att, place_city, trip_id, label, attack, count_stats);
        if count_stats && honest && ctx.in_window(t0) {
            s.sessions += 1;
            if !(5.0..21.0).contains(&lh) {
                ctx.stats.late_night_sessions += 1;
            }
            if weekend {
                ctx.stats.weekend_sessions += 1;
            }
        }
    }
    logins
}

fn where_at(u: &User, s: &UserSim, t: i64) -> (u32, Where, Option<u32>) {
    match &s.trip {
        Some(tr) if t >= tr.depart && t < tr.arrive => (u.home_city, Where::Transit, Some(tr.id)),
        Some(tr) if t >= tr.arrive && t < tr.ret_depart => (tr.dest, Where::Away, Some(tr.id)),
        Some(tr) if t >= tr.ret_depart && t < tr.ret_arrive => (tr.dest, Where::Transit, Some(tr.id)),
        _ => (u.home_city, Where::Home, None),
    }
}

fn plan_trip(ctx: &mut Ctx, u: &User, s: &mut UserSim, date: NaiveDate) -> Option<Trip> {
    let geo = ctx.geo;
    let home = geo.city(u.home_city);
    let allowed_abroad: Vec<&String> = u
        .allowed
        .as_ref()
        .map(|a| a.iter().filter(|c| **c != home.country).collect())
        .unwrap_or_default();
    let domestic_p = if u.allowed.is_some() { 0.8 } else { 0.55 };
    let domestic = s.rng.gen_bool(domestic_p);
    let mut cands: Vec<u32> = Vec::new();
    let mut w: Vec<f64> = Vec::new();
    for (i, c) in geo.cities().iter().enumerate() {
        let i = i as u32;
        if i == u.home_city || c.networks(false, NetKind::Residential).is_empty() {
            continue;
        }
        let d = geo.city_distance_km(u.home_city, i);
        if d < 100.0 {
            continue;
        }
        let ok = if domestic {
            c.country == home.country
        } else if u.allowed.is_some() {
            allowed_abroad.contains(&&c.country)
        } else {
            c.country != home.country
        };
        if ok {
            cands.push(i);
            w.push(c.network_count as f64);
        }
    }
    if cands.is_empty() {
        return None;
    }
    let dest = cands[pick_weighted(&mut s.rng, &w)];
    let dc = geo.city(dest);
    let km = geo.city_distance_km(u.home_city, dest);
    let depart = local_ms(&u.tz, date, s.rng.gen_range(6.5..19.0));
    let t_out = ((travel_hours(km) + s.rng.gen_range(0.0..1.5)) * HOUR as f64) as i64;
    let nights = 1 + pick_weighted(&mut s.rng, &[0.35, 0.35, 0.2, 0.1]) as i64;
    let arrive = depart + t_out;
    let ret_date = local_date(&dc.tz, arrive) + Duration::days(nights);
    let ret_depart = local_ms(&dc.tz, ret_date, s.rng.gen_range(13.0..20.0)).max(arrive + 6 * HOUR);
    let t_back = ((travel_hours(km) + s.rng.gen_range(0.0..1.5)) * HOUR as f64) as i64;
    let res = dc.networks(false, NetKind::Residential);
    let hotel_net = *pick(&mut s.rng, res);
    ctx.trip_ids += 1;
    Some(Trip {
        id: ctx.trip_ids,
        dest,
        depart,
        arrive,
        ret_depart,
        ret_arrive: ret_depart + t_back,
        hotel: Attach {
            ip: random_in(&geo.net(hotel_net).net, &mut s.rng),
            net: hotel_net,
            via: Via::Hotel,
        },
        international: dc.country != home.country,
    })
}

fn choose_device(u: &User, s: &mut UserSim, work_time: bool, away: bool) -> usize {
    let w: Vec<f64> = u
        .devices
        .iter()
        .map(|d| {
            if d.retired {
                return 0.0;
            }
            match d.kind {
                DevKind::Managed => d.weight,
                DevKind::Personal => d.weight * if work_time { 1.0 } else { 4.0 },
                DevKind::Phone => d.weight * if work_time { 1.0 } else { 3.0 } * if away { 2.0 } else { 1.0 },
            }
        })
        .collect();
    pick_weighted(&mut s.rng, &w)
}

fn carrier_attach(ctx: &Ctx, u: &User, s: &mut UserSim, v6_ok: bool, via: Via) -> Option<Attach> {
    let c = u.carrier.as_ref()?;
    let nets = if v6_ok && u.phone_v6 && !c.v6.is_empty() {
        &c.v6
    } else {
        &c.v4
    };
    if nets.is_empty() {
        return None;
    }
    let n = *pick(&mut s.rng, nets);
    Some(Attach {
        ip: random_in(&ctx.geo.net(n).net, &mut s.rng),
        net: n,
        via,
    })
}

fn home_attach(u: &User, s: &mut UserSim) -> Attach {
    if let (Some((n6, _)), Some(ip6)) = (u.home_v6, s.home_v6_ip) {
        // Happy eyeballs: mostly IPv6 on a dual-stack line.
        if s.rng.gen_bool(0.85) {
            return Attach {
                ip: ip6,
                net: n6,
                via: Via::Home,
            };
        }
    }
    Attach {
        ip: s.home_ip,
        net: s.home_net,
        via: Via::Home,
    }
}

fn attach(ctx: &Ctx, u: &User, s: &mut UserSim, dev: usize, wh: &Where, weekday: u32, in_hours: bool) -> Attach {
    let kind = u.devices[dev].kind;
    let vpn = |s: &mut UserSim| -> Option<Attach> {
        let (n, ip) = u.corp_vpn?;
        if kind == DevKind::Managed && s.rng.gen_bool(u.vpn_share) {
            Some(Attach {
                ip,
                net: n,
                via: Via::CorpVpn,
            })
        } else {
            None
        }
    };
    match wh {
        Where::Away => {
            let trip = s.trip.clone().expect("away means on a trip");
            match kind {
                DevKind::Phone if s.rng.gen_bool(0.7) => {
                    if !trip.international {
                        if let Some(c) = &u.carrier {
                            let local = ctx.geo.isp_networks(trip.dest, c.isp, false);
                            if !local.is_empty() {
                                let n = *pick(&mut s.rng, local);
                                return Attach {
                                    ip: random_in(&ctx.geo.net(n).net, &mut s.rng),
                                    net: n,
                                    via: Via::Mobile,
                                };
                            }
                        }
                    }
                    // Home-routed roaming: the address geolocates at home.
                    carrier_attach(ctx, u, s, true, Via::Roaming).unwrap_or(trip.hotel)
                }
                _ => vpn(s).unwrap_or(trip.hotel),
            }
        }
        _ => match kind {
            DevKind::Phone => {
                if s.rng.gen_bool(0.6) {
                    if let Some(a) = carrier_attach(ctx, u, s, true, Via::Mobile) {
                        return a;
                    }
                }
                home_attach(u, s)
            }
            DevKind::Managed | DevKind::Personal => {
                if let Some(a) = vpn(s) {
                    return a;
                }
                if let (Some((n, days)), Some(ip)) = (&u.cowork, s.cowork_ip) {
                    if in_hours && days.contains(&weekday) && kind == DevKind::Managed {
                        return Attach {
                            ip,
                            net: *n,
                            via: Via::Cowork,
                        };
                    }
                }
                if s.rng.gen_bool(0.02) {
                    if let Some(a) = carrier_attach(ctx, u, s, false, Via::Tether) {
                        return a;
                    }
                }
                home_attach(u, s)
            }
        },
    }
}

/// Emit one honest-looking login sequence plus its access events. Returns the number of
/// login events.
#[allow(clippy::too_many_arguments)]
fn honest_session(
    ctx: &mut Ctx,
    u: &User,
    s: &mut UserSim,
    t0: i64,
    dev: usize,
    att: Attach,
    place_city: u32,
    trip: Option<u32>,
    label: Label,
    attack: Option<u32>,
    count_stats: bool,
) -> u32 {
    let geo = ctx.geo;
    let cfg = ctx.cfg;
    let honest = label == Label::Legit;
    let counted = count_stats && honest && ctx.in_window(t0);
    let device = &u.devices[dev];
    let date = local_date(&u.tz, t0);
    let ua_s = device.install.ua(date);
    let ua = ctx.uas.id(&ua_s);
    if let Some(prev) = s.last_ua[dev] {
        if prev != ua && counted {
            ctx.stats.browser_upgrades += 1;
        }
    }
    s.last_ua[dev] = Some(ua);
    let device_id = device.id.as_deref().map(|d| ctx.dev_ids.id(d));
    let ni = geo.net(att.net);
    let country = &geo.city(ni.city).country;
    let novel = !s.seen_dev.contains(&dev)
        || !s.seen_city.contains(&ni.city)
        || !s.seen_country.contains(country)
        || !s.seen_isp.contains(&ni.isp);
    let session: u64 = s.rng.gen();
    let mut t = t0;
    let mut logins = 0u32;
    let push = |ctx: &mut Ctx,
                s: &mut UserSim,
                t: i64,
                login: bool,
                success: bool,
                aal: u8,
                m: Methods,
                res: Option<&'static str>| {
        let order = ctx.next_order();
        s.events.push(Ev {
            t,
            order,
            user: u.idx,
            login,
            success,
            ip: Some(att.ip),
            net: Some(att.net),
            ua,
            device: device_id,
            session,
            aal,
            methods: m,
            resource: res,
            label,
            attack,
            via: att.via,
            phys_city: Some(place_city),
            trip,
        });
    };

    let upfront = s.rng.gen_bool(cfg.mfa_upfront_share);
    let (mfa_aal, mfa_m) = mfa_methods(u.mfa);
    if !(upfront && u.mfa == Mfa::Webauthn) && s.rng.gen_bool(u.typo_p.min(1.0)) {
        push(ctx, s, t, true, false, 1, Methods::Pwd, None);
        logins += 1;
        t += s.rng.gen_range(6_000..45_000);
        if counted {
            ctx.stats.typo_failures += 1;
        }
    }
    let mut aal;
    if upfront {
        push(ctx, s, t, true, true, mfa_aal, mfa_m, None);
        logins += 1;
        aal = mfa_aal;
        if counted {
            ctx.stats.mfa_upfront_logins += 1;
        }
    } else {
        push(ctx, s, t, true, true, 1, Methods::Pwd, None);
        logins += 1;
        aal = 1;
        if novel {
            if counted {
                ctx.stats.new_context_logins += 1;
            }
            if s.rng.gen_bool(cfg.stepup_new_share) {
                t += s.rng.gen_range(8_000..35_000);
                if u.mfa != Mfa::Webauthn && s.rng.gen_bool(0.02) {
                    // mistyped code
                    push(ctx, s, t, true, false, 1, mfa_m, None);
                    logins += 1;
                    t += s.rng.gen_range(5_000..20_000);
                }
                push(ctx, s, t, true, true, mfa_aal, mfa_m, None);
                logins += 1;
                aal = mfa_aal;
                if counted {
                    ctx.stats.new_context_stepups += 1;
                }
            }
        }
    }
    // The IdP now knows this context.
    s.seen_dev.insert(dev);
    s.seen_city.insert(ni.city);
    s.seen_country.insert(country.clone());
    s.seen_isp.insert(ni.isp);

    // Access events spread over the session.
    let n_access = (1 + poisson(&mut s.rng, 1.8)).min(8);
    let w: Vec<f64> = u.favorites.iter().map(|f| f.1).collect();
    t += s.rng.gen_range(3_000..60_000);
    for k in 0..n_access {
        if k > 0 {
            t += (expo(&mut s.rng, 14.0) * MIN as f64) as i64 + 1_000;
        }
        let res = u.favorites[pick_weighted(&mut s.rng, &w)].0;
        if is_sensitive(res) && aal < 2 {
            if !s.rng.gen_bool(cfg.stepup_sensitive_share) {
                continue;
            }
            push(ctx, s, t, true, true, mfa_aal, mfa_m, None);
            logins += 1;
            aal = mfa_aal;
            t += s.rng.gen_range(2_000..12_000);
            if counted {
                ctx.stats.sensitive_stepups += 1;
            }
        }
        push(
            ctx,
            s,
            t,
            false,
            true,
            aal,
            if aal == 1 { Methods::Pwd } else { mfa_m },
            Some(res),
        );
    }
    logins
}

// ---------------------------------------------------------------------------------
// Attacks.

struct AttackCtx {
    rng: StdRng,
}

fn plan_attacks(ctx: &mut Ctx, world: &World, sims: &mut [UserSim], honest_logins: u64, out: &mut Vec<Ev>) {
    let cfg = ctx.cfg;
    if cfg.attack_rate <= 0.0 || honest_logins == 0 {
        return;
    }
    let total_budget = (honest_logins as f64 * cfg.attack_rate / (1.0 - cfg.attack_rate)).round() as i64;
    let mut a = AttackCtx {
        rng: sub_rng(cfg.seed, 7, 0),
    };
    let end_date = cfg.start + Duration::days(cfg.days as i64);
    let post_eligible: Vec<u32> = world
        .users
        .iter()
        .filter(|u| {
            u.contract_end >= cfg.start
                && u.contract_end + Duration::days(4) < end_date
                && u.contract_end > u.contract_start
        })
        .map(|u| u.idx)
        .collect();
    let hijack_eligible: Vec<u32> = sims
        .iter()
        .enumerate()
        .filter(|(_, s)| s.events.iter().any(|e| e.login && e.success))
        .map(|(i, _)| i as u32)
        .collect();
    let mut weights: Vec<(Label, f64)> = Label::ATTACKS.iter().map(|&l| (l, cfg.attack_mix.weight(l))).collect();
    for w in &mut weights {
        if (w.0 == Label::PostContract && post_eligible.is_empty())
            || (w.0 == Label::Hijack && hijack_eligible.is_empty())
        {
            w.1 = 0.0;
        }
    }
    let wsum: f64 = weights.iter().map(|w| w.1).sum();
    if wsum <= 0.0 {
        return;
    }
    let mut post_pool = post_eligible.clone();
    for (kind, w) in weights {
        if w <= 0.0 {
            continue;
        }
        let mut budget = (total_budget as f64 * w / wsum).round() as i64;
        if budget == 0 && total_budget >= 12 {
            budget = 1;
        }
        let mut used = 0i64;
        let mut guard = 0;
        while used < budget && guard < 10_000 {
            guard += 1;
            let remaining = budget - used;
            let n = match kind {
                Label::Naive => naive(ctx, world, sims, &mut a, out),
                Label::Vpn => vpn(ctx, world, &mut a, out),
                Label::Targeted => targeted(ctx, world, &mut a, out),
                Label::Hijack => hijack(ctx, world, sims, &hijack_eligible, &mut a, out),
                Label::Spray => spray(ctx, world, &mut a, remaining, out),
                Label::PostContract => {
                    if post_pool.is_empty() {
                        break;
                    }
                    let i = a.rng.gen_range(0..post_pool.len());
                    let uid = post_pool.swap_remove(i);
                    post_contract(ctx, world, sims, uid, &mut a, remaining, out)
                }
                Label::Legit => 0,
            };
            used += n as i64;
        }
    }
}

fn new_attack(ctx: &mut Ctx) -> u32 {
    ctx.attack_ids += 1;
    ctx.attack_ids
}

/// Attack-time helpers: a random instant in a user's active part of the window.
fn active_range(ctx: &Ctx, u: &User) -> (i64, i64) {
    let (cs, ce) = contract_utc(u);
    let lo = ctx.win_start.max(cs);
    let hi = ctx.win_end.min(ce);
    if hi - lo < HOUR {
        (ctx.win_start, ctx.win_end)
    } else {
        (lo, hi)
    }
}

fn victim(ctx: &Ctx, world: &World, a: &mut AttackCtx) -> u32 {
    let _ = ctx;
    a.rng.gen_range(0..world.users.len() as u32)
}

/// A time on a working day during the victim's working hours (local).
fn victim_work_time(ctx: &Ctx, u: &User, a: &mut AttackCtx, lo_h: f64, hi_h: f64) -> i64 {
    let (lo, hi) = active_range(ctx, u);
    for _ in 0..50 {
        let t = a.rng.gen_range(lo..hi);
        let date = local_date(&u.tz, t);
        if date.weekday().num_days_from_monday() >= 5 {
            continue;
        }
        let h = a.rng.gen_range(lo_h..hi_h);
        let t = local_ms(&u.tz, date, h);
        if t >= lo && t < hi {
            return t;
        }
    }
    a.rng.gen_range(lo..hi)
}

struct AEv {
    t: i64,
    login: bool,
    success: bool,
    aal: u8,
    m: Methods,
    res: Option<&'static str>,
}

#[allow(clippy::too_many_arguments)]
fn emit_attack(
    ctx: &mut Ctx,
    out: &mut Vec<Ev>,
    user: u32,
    label: Label,
    attack: u32,
    att: Attach,
    ua: u32,
    session: u64,
    phys: Option<u32>,
    evs: &[AEv],
) -> u32 {
    let mut logins = 0;
    for e in evs {
        let order = ctx.next_order();
        if e.login {
            logins += 1;
        }
        out.push(Ev {
            t: e.t,
            order,
            user,
            login: e.login,
            success: e.success,
            ip: Some(att.ip),
            net: Some(att.net),
            ua,
            device: None,
            session,
            aal: e.aal,
            methods: e.m,
            resource: e.res,
            label,
            attack: Some(attack),
            via: Via::Attacker,
            phys_city: phys,
            trip: None,
        });
    }
    logins
}

/// Countries the victim is seen in (home, carrier, VPN, trips).
fn victim_countries(ctx: &Ctx, u: &User, s: &UserSim) -> HashSet<String> {
    let geo = ctx.geo;
    let mut c: HashSet<String> = s.seen_country.clone();
    c.insert(geo.city(u.home_city).country.clone());
    for e in &s.events {
        if let Some(n) = e.net {
            c.insert(geo.city(geo.net(n).city).country.clone());
        }
    }
    c
}

/// A hosting network (commercial VPN / VPS) in `country`, or without an ASN database
/// any network there.
fn hosting_in(ctx: &Ctx, country: &str, rng: &mut StdRng, avoid_isp: Option<u32>) -> Option<u32> {
    let geo = ctx.geo;
    let co = geo.country(country)?;
    let mut nets: Vec<u32> = co.hosting_v4.clone();
    if nets.is_empty() {
        nets = co
            .cities
            .iter()
            .flat_map(|&ci| {
                let c = geo.city(ci);
                [NetKind::Residential, NetKind::Mobile, NetKind::Hosting]
                    .into_iter()
                    .flat_map(move |k| c.networks(false, k).iter().copied())
            })
            .collect();
    }
    if let Some(isp) = avoid_isp {
        nets.retain(|&n| geo.net(n).isp != isp);
    }
    if nets.is_empty() {
        None
    } else {
        Some(*pick(rng, &nets))
    }
}

fn attach_net(ctx: &Ctx, n: u32, rng: &mut StdRng) -> Attach {
    Attach {
        ip: random_in(&ctx.geo.net(n).net, rng),
        net: n,
        via: Via::Attacker,
    }
}

/// Countries weighted by their hosting capacity (where attackers rent machines).
fn attacker_country(ctx: &Ctx, rng: &mut StdRng, exclude: &HashSet<String>) -> Option<String> {
    let geo = ctx.geo;
    let cands: Vec<(&str, f64)> = geo
        .countries()
        .iter()
        .filter(|c| !exclude.contains(&c.code))
        .map(|c| {
            let w = if geo.has_asn() {
                c.hosting_v4.len() as f64
            } else {
                (c.network_count as f64).sqrt()
            };
            (c.code.as_str(), w)
        })
        .filter(|c| c.1 > 0.0)
        .collect();
    if cands.is_empty() {
        return None;
    }
    let w: Vec<f64> = cands.iter().map(|c| c.1).collect();
    Some(cands[pick_weighted(rng, &w)].0.to_string())
}

/// Password attempt(s) then, on success, the IdP's MFA challenge that the attacker
/// fails. Appends to `evs`, returns the time after the sequence.
fn password_then_challenge(
    rng: &mut StdRng,
    evs: &mut Vec<AEv>,
    mut t: i64,
    mfa: Mfa,
    wrong_first: u32,
    gap_ms: (i64, i64),
    succeed: bool,
) -> i64 {
    for _ in 0..wrong_first {
        evs.push(AEv {
            t,
            login: true,
            success: false,
            aal: 1,
            m: Methods::Pwd,
            res: None,
        });
        t += rng.gen_range(gap_ms.0..gap_ms.1);
    }
    if succeed {
        evs.push(AEv {
            t,
            login: true,
            success: true,
            aal: 1,
            m: Methods::Pwd,
            res: None,
        });
        t += rng.gen_range(10_000..50_000);
        evs.push(AEv {
            t,
            login: true,
            success: false,
            aal: 1,
            m: challenge_methods(mfa),
            res: None,
        });
    }
    t
}

fn naive(ctx: &mut Ctx, world: &World, sims: &[UserSim], a: &mut AttackCtx, out: &mut Vec<Ev>) -> u32 {
    let v = victim(ctx, world, a);
    let u = &world.users[v as usize];
    let used = victim_countries(ctx, u, &sims[v as usize]);
    let Some(cc) = attacker_country(ctx, &mut a.rng, &used) else {
        return 0;
    };
    let Some(net) = hosting_in(ctx, &cc, &mut a.rng, None) else {
        return 0;
    };
    let id = new_attack(ctx);
    let (lo, hi) = active_range(ctx, u);
    let mut t = a.rng.gen_range(lo..hi);
    let date = local_date(&u.tz, t);
    let ua = ctx.uas.id(&scripted_ua(&mut a.rng, date));
    let mut att = attach_net(ctx, net, &mut a.rng);
    let attempts = 1 + pick_weighted(&mut a.rng, &[0.5, 0.3, 0.2]) as u32;
    let mut logins = 0;
    for k in 0..attempts {
        if k > 0 {
            t += (expo(&mut a.rng, 40.0) * MIN as f64) as i64 + MIN;
            if a.rng.gen_bool(0.25) {
                if let Some(n2) = hosting_in(ctx, &cc, &mut a.rng, None) {
                    att = attach_net(ctx, n2, &mut a.rng);
                }
            }
        }
        let wrong = if a.rng.gen_bool(0.4) { a.rng.gen_range(1..=3) } else { 0 };
        let succeed = wrong == 0 || a.rng.gen_bool(0.6);
        let mut evs = Vec::new();
        t = password_then_challenge(&mut a.rng, &mut evs, t, u.mfa, wrong, (1_000, 9_000), succeed);
        let session = a.rng.gen();
        let phys = Some(ctx.geo.net(att.net).city);
        logins += emit_attack(ctx, out, v, Label::Naive, id, att, ua, session, phys, &evs);
    }
    logins
}

fn vpn(ctx: &mut Ctx, world: &World, a: &mut AttackCtx, out: &mut Vec<Ev>) -> u32 {
    let geo = ctx.geo;
    let v = victim(ctx, world, a);
    let u = &world.users[v as usize];
    let home = geo.city(u.home_city);
    let x: f64 = a.rng.gen();
    let country = if x < 0.55 {
        home.country.clone()
    } else if x < 0.9 {
        // the nearest other country with networks
        let hc = geo.country(&home.country);
        let (hlat, hlon) = hc.map(|c| (c.lat, c.lon)).unwrap_or((home.lat, home.lon));
        geo.countries()
            .iter()
            .filter(|c| c.code != home.country)
            .min_by(|p, q| {
                let dp = haversine_km(hlat, hlon, p.lat, p.lon);
                let dq = haversine_km(hlat, hlon, q.lat, q.lon);
                dp.partial_cmp(&dq).unwrap_or(std::cmp::Ordering::Equal)
            })
            .map(|c| c.code.clone())
            .unwrap_or_else(|| home.country.clone())
    } else {
        attacker_country(ctx, &mut a.rng, &HashSet::new()).unwrap_or_else(|| home.country.clone())
    };
    let avoid = [u.home_isp];
    let Some(net) = hosting_in(ctx, &country, &mut a.rng, Some(avoid[0])) else {
        return 0;
    };
    let id = new_attack(ctx);
    let t = victim_work_time(ctx, u, a, 7.0, 23.0);
    let date = local_date(&u.tz, t);
    let ua = ctx.uas.id(&plausible_current_ua(&mut a.rng, date));
    let att = attach_net(ctx, net, &mut a.rng);
    let attempts = if a.rng.gen_bool(0.3) { 2 } else { 1 };
    let mut logins = 0;
    let mut t = t;
    for k in 0..attempts {
        if k > 0 {
            t += (expo(&mut a.rng, 90.0) * MIN as f64) as i64 + 5 * MIN;
        }
        let wrong = if a.rng.gen_bool(0.25) { 1 } else { 0 };
        let mut evs = Vec::new();
        t = password_then_challenge(&mut a.rng, &mut evs, t, u.mfa, wrong, (4_000, 30_000), true);
        let session = a.rng.gen();
        logins += emit_attack(ctx, out, v, Label::Vpn, id, att, ua, session, None, &evs);
    }
    logins
}

fn targeted(ctx: &mut Ctx, world: &World, a: &mut AttackCtx, out: &mut Vec<Ev>) -> u32 {
    let geo = ctx.geo;
    let v = victim(ctx, world, a);
    let u = &world.users[v as usize];
    let home = geo.city(u.home_city);
    // Not any network the victim is known on.
    let mut known: Vec<u32> = vec![u.home_isp];
    known.extend(u.carrier.as_ref().map(|c| c.isp));
    known.extend(u.home_v6.map(|(n, _)| geo.net(n).isp));
    known.extend(u.cowork.as_ref().map(|(n, _)| geo.net(*n).isp));
    let ok = |n: &u32| !known.contains(&geo.net(*n).isp);
    let mut cands: Vec<u32> = if a.rng.gen_bool(0.75) {
        home.networks(false, NetKind::Residential)
            .iter()
            .copied()
            .filter(ok)
            .collect()
    } else {
        Vec::new()
    };
    if cands.is_empty() {
        if let Some(co) = geo.country(&home.country) {
            cands = co
                .cities
                .iter()
                .flat_map(|&ci| geo.city(ci).networks(false, NetKind::Residential).iter().copied())
                .filter(ok)
                .collect();
        }
    }
    if cands.is_empty() {
        cands = home
            .networks(false, NetKind::Residential)
            .iter()
            .copied()
            .filter(|&n| n != u.home_net)
            .collect();
    }
    if cands.is_empty() {
        return 0;
    }
    let net = *pick(&mut a.rng, &cands);
    let id = new_attack(ctx);
    let sc = &u.sched;
    let mut t = victim_work_time(ctx, u, a, sc.start_h, (sc.start_h + sc.len_h).min(23.9));
    let date = local_date(&u.tz, t);
    let primary = u
        .devices
        .iter()
        .find(|d| d.kind == DevKind::Managed)
        .unwrap_or(&u.devices[0]);
    let ua_s = if a.rng.gen_bool(0.35) {
        primary.install.ua(date)
    } else {
        same_family_ua(&mut a.rng, &primary.install, date)
    };
    let ua = ctx.uas.id(&ua_s);
    let att = attach_net(ctx, net, &mut a.rng);
    let phys = Some(geo.net(net).city);
    let attempts = if a.rng.gen_bool(0.3) { 2 } else { 1 };
    let mut logins = 0;
    for k in 0..attempts {
        if k > 0 {
            // another working day
            t += 24 * HOUR * a.rng.gen_range(1..4) + a.rng.gen_range(-2 * HOUR..2 * HOUR);
        }
        let session = a.rng.gen();
        let wrong = if a.rng.gen_bool(0.3) { 1 } else { 0 };
        let mut evs = Vec::new();
        if u.mfa == Mfa::Push && a.rng.gen_bool(0.3) {
            // MFA fatigue: push bombing until the victim accepts.
            let mut tt = password_then_challenge(&mut a.rng, &mut evs, t, u.mfa, wrong, (5_000, 40_000), false);
            evs.push(AEv {
                t: tt,
                login: true,
                success: true,
                aal: 1,
                m: Methods::Pwd,
                res: None,
            });
            for k in 0..a.rng.gen_range(2..=5) {
                tt += if k == 0 {
                    a.rng.gen_range(10_000..50_000)
                } else {
                    a.rng.gen_range(20_000..90_000)
                };
                evs.push(AEv {
                    t: tt,
                    login: true,
                    success: false,
                    aal: 1,
                    m: Methods::PwdPush,
                    res: None,
                });
            }
            tt += a.rng.gen_range(20_000..90_000);
            evs.push(AEv {
                t: tt,
                login: true,
                success: true,
                aal: 2,
                m: Methods::PwdPush,
                res: None,
            });
            let targets = loot(u, &mut a.rng);
            for r in targets {
                tt += a.rng.gen_range(10_000..300_000);
                evs.push(AEv {
                    t: tt,
                    login: false,
                    success: true,
                    aal: 2,
                    m: Methods::PwdPush,
                    res: Some(r),
                });
            }
            t = tt;
        } else {
            t = password_then_challenge(&mut a.rng, &mut evs, t, u.mfa, wrong, (5_000, 40_000), true);
        }
        logins += emit_attack(ctx, out, v, Label::Targeted, id, att, ua, session, phys, &evs);
    }
    logins
}

/// What an attacker with a session goes for: the victim's sensitive resources first.
fn loot(u: &User, rng: &mut StdRng) -> Vec<&'static str> {
    let mut pool: Vec<&'static str> = u
        .role
        .resources()
        .iter()
        .map(|r| r.0)
        .filter(|r| is_sensitive(r))
        .collect();
    if pool.is_empty() {
        pool = u.favorites.iter().map(|f| f.0).collect();
    }
    let n = rng.gen_range(1..=4);
    (0..n).map(|_| *pick(rng, &pool)).collect()
}

fn hijack(
    ctx: &mut Ctx,
    world: &World,
    sims: &[UserSim],
    eligible: &[u32],
    a: &mut AttackCtx,
    out: &mut Vec<Ev>,
) -> u32 {
    let geo = ctx.geo;
    // Victims uniform over users with a genuine login in the window.
    let v = *pick(&mut a.rng, eligible);
    let u = &world.users[v as usize];
    let genuine: Vec<&Ev> = sims[v as usize]
        .events
        .iter()
        .filter(|e| e.login && e.success && e.net.is_some() && e.label == Label::Legit)
        .collect();
    if genuine.is_empty() {
        return 0;
    }
    // Adversary-in-the-middle phishing captures the cookie after MFA: mostly sessions
    // that reached AAL2+.
    let strong: Vec<&Ev> = genuine.iter().copied().filter(|e| e.aal >= 2).collect();
    let g = if !strong.is_empty() && a.rng.gen_bool(0.8) {
        *pick(&mut a.rng, &strong)
    } else {
        *pick(&mut a.rng, &genuine)
    };
    let gcity = geo.net(g.net.expect("filtered")).city;
    // A far-away city.
    let far: Vec<(u32, f64)> = geo
        .cities()
        .iter()
        .enumerate()
        .map(|(i, _)| (i as u32, geo.city_distance_km(gcity, i as u32)))
        .filter(|(_, d)| *d >= 2500.0)
        .collect();
    let (fc, dist) = if far.is_empty() {
        (0..geo.cities().len() as u32)
            .map(|i| (i, geo.city_distance_km(gcity, i)))
            .max_by(|p, q| p.1.partial_cmp(&q.1).unwrap_or(std::cmp::Ordering::Equal))
            .expect("cities")
    } else {
        let w: Vec<f64> = far.iter().map(|(i, _)| geo.city(*i).network_count as f64).collect();
        far[pick_weighted(&mut a.rng, &w)]
    };
    let city = geo.city(fc);
    let mut nets: Vec<u32> = if a.rng.gen_bool(0.5) {
        city.networks(false, NetKind::Hosting).to_vec()
    } else {
        Vec::new()
    };
    if nets.is_empty() {
        nets = city.networks(false, NetKind::Residential).to_vec();
    }
    if nets.is_empty() {
        nets = [NetKind::Mobile, NetKind::Hosting]
            .iter()
            .flat_map(|k| city.networks(false, *k).iter().copied())
            .collect();
    }
    if nets.is_empty() {
        return 0;
    }
    let net = *pick(&mut a.rng, &nets);
    let id = new_attack(ctx);
    // Faster than any airliner: distance / delay well above 1000 km/h.
    let max_h = (dist / 1250.0).min(2.0);
    let min_h = 2.0 / 60.0;
    let delay_h = if max_h > min_h {
        a.rng.gen_range(min_h..max_h)
    } else {
        min_h
    };
    let mut t = g.t + (delay_h * HOUR as f64) as i64;
    let date = local_date(&u.tz, t);
    let ua = if a.rng.gen_bool(0.7) {
        g.ua
    } else {
        ctx.uas.id(&plausible_current_ua(&mut a.rng, date))
    };
    let session = if a.rng.gen_bool(0.6) { g.session } else { a.rng.gen() };
    let att = attach_net(ctx, net, &mut a.rng);
    let (aal, m) = (g.aal, g.methods);
    let mut evs = vec![AEv {
        t,
        login: true,
        success: true,
        aal,
        m,
        res: None,
    }];
    let rounds = if a.rng.gen_bool(0.3) { 2 } else { 1 };
    let mut challenged = false;
    for round in 0..rounds {
        if round > 0 {
            t += a.rng.gen_range(20 * MIN..90 * MIN);
            evs.push(AEv {
                t,
                login: true,
                success: true,
                aal,
                m,
                res: None,
            });
        }
        for r in loot(u, &mut a.rng) {
            t += a.rng.gen_range(10_000..600_000);
            if is_sensitive(r) && aal < 2 {
                // The stolen session is only AAL1: the step-up challenge fails.
                if !challenged {
                    challenged = true;
                    evs.push(AEv {
                        t,
                        login: true,
                        success: false,
                        aal,
                        m: challenge_methods(u.mfa),
                        res: None,
                    });
                }
                continue;
            }
            evs.push(AEv {
                t,
                login: false,
                success: true,
                aal,
                m,
                res: Some(r),
            });
        }
    }
    // Nothing sensitive reachable: browse what the victim usually uses.
    if !evs.iter().any(|e| !e.login) {
        let favs: Vec<&'static str> = u.favorites.iter().map(|f| f.0).filter(|r| !is_sensitive(r)).collect();
        if !favs.is_empty() {
            t += a.rng.gen_range(10_000..300_000);
            evs.push(AEv {
                t,
                login: false,
                success: true,
                aal,
                m,
                res: Some(*pick(&mut a.rng, &favs)),
            });
        }
    }
    emit_attack(ctx, out, v, Label::Hijack, id, att, ua, session, Some(fc), &evs)
}

fn spray(ctx: &mut Ctx, world: &World, a: &mut AttackCtx, remaining: i64, out: &mut Vec<Ev>) -> u32 {
    let geo = ctx.geo;
    // A spray hits one IdP tenant: pick the IdP of a random user.
    let src = world.users[a.rng.gen_range(0..world.users.len())].source;
    let Some(cc) = attacker_country(ctx, &mut a.rng, &HashSet::new()) else {
        return 0;
    };
    let Some(net) = hosting_in(ctx, &cc, &mut a.rng, None) else {
        return 0;
    };
    let t0 = a.rng.gen_range(ctx.win_start..ctx.win_end - HOUR);
    let mut targets: Vec<u32> = world
        .users
        .iter()
        .filter(|u| u.source == src)
        .filter(|u| {
            let (lo, hi) = active_range(ctx, u);
            t0 >= lo && t0 < hi
        })
        .map(|u| u.idx)
        .collect();
    if targets.is_empty() {
        return 0;
    }
    let want = a.rng.gen_range(15..=80).min(targets.len() as i64).min(remaining.max(3));
    // sample without replacement
    let mut chosen = Vec::new();
    for _ in 0..want {
        let i = a.rng.gen_range(0..targets.len());
        chosen.push(targets.swap_remove(i));
    }
    let id = new_attack(ctx);
    let ua = ctx.uas.id(&spray_ua(&mut a.rng, src.as_str()));
    let att = attach_net(ctx, net, &mut a.rng);
    let phys = Some(geo.net(net).city);
    let lucky = a.rng.gen_bool(0.4);
    let mut t = t0;
    let mut logins = 0;
    let n = chosen.len();
    for (k, &uid) in chosen.iter().enumerate() {
        t += a.rng.gen_range(1_500..8_000);
        let session = a.rng.gen();
        let u = &world.users[uid as usize];
        let mut evs = Vec::new();
        if lucky && k + 1 == n {
            password_then_challenge(&mut a.rng, &mut evs, t, u.mfa, 0, (1_000, 2_000), true);
        } else {
            evs.push(AEv {
                t,
                login: true,
                success: false,
                aal: 1,
                m: Methods::Pwd,
                res: None,
            });
        }
        logins += emit_attack(ctx, out, uid, Label::Spray, id, att, ua, session, phys, &evs);
    }
    logins
}

fn post_contract(
    ctx: &mut Ctx,
    world: &World,
    sims: &mut [UserSim],
    uid: u32,
    a: &mut AttackCtx,
    remaining: i64,
    out: &mut Vec<Ev>,
) -> u32 {
    let cfg = ctx.cfg;
    let s = &mut sims[uid as usize];
    let mut u = s.user.clone().unwrap_or_else(|| world.users[uid as usize].clone());
    let id = new_attack(ctx);
    let budget = a.rng.gen_range(3..=12).min(remaining.max(1)) as u32;
    // The honest events stay in `s.events`; the continuation goes to `out`.
    let honest_events = std::mem::take(&mut s.events);
    s.trip = None;
    let mut logins = 0;
    // Strictly after the contract's last day in every time zone.
    let first = u.contract_end + Duration::days(2);
    let end = cfg.start + Duration::days(cfg.days as i64);
    let mut date = first;
    while date < end && logins < budget {
        let wd = date.weekday().num_days_from_monday();
        if wd < 5 && a.rng.gen_bool(0.6) {
            let n = a.rng.gen_range(1..=2);
            logins += simulate_day(ctx, &mut u, s, date, false, Label::PostContract, Some(id), Some(n));
        }
        date += Duration::days(1);
    }
    let mut cont = std::mem::replace(&mut s.events, honest_events);
    let (_, end_utc) = contract_utc(&u);
    cont.retain(|e| e.t >= end_utc);
    let logins = cont.iter().filter(|e| e.login).count() as u32;
    out.extend(cont);
    logins
}
