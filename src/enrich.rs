//! Enrichment: geo (MaxMind DB, two layouts), ASN and user agent, with caches.
//!
//! The databases are opened once and shared read-only ([`GeoDatabases`] behind an
//! `Arc`); each pipeline owns an [`Enricher`] with its own bounded caches, so the hot
//! path never locks: a repeated IP or user agent costs one hash lookup.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use chrono_tz::Tz;
use serde::Deserialize;

use crate::hash::{h2, hs, FastMap, Ns};

#[derive(Debug, thiserror::Error)]
pub enum EnrichError {
    #[error("cannot open geo database {path}: {source}")]
    Open {
        path: String,
        source: maxminddb::MaxMindDbError,
    },
    #[error("geo database {path} has no records in a layout stepup understands (GeoIP2/GeoLite2-City or ip-location-db city)")]
    Layout { path: String },
}

/// Which record layout a city database uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// GeoIP2 / GeoLite2-City: nested `country.iso_code`, `city.names.en`, `location.*`.
    GeoIp2,
    /// ip-location-db (DB-IP Lite city): flat `country_code`, `city`, `latitude`, ...
    Flat,
}

/// The geo databases, opened once, shared by every pipeline.
pub struct GeoDatabases {
    /// One or more city databases (DB-IP Lite ships IPv4 and IPv6 as two files);
    /// a lookup asks each in turn until one knows the address.
    city: Vec<(maxminddb::Reader<Vec<u8>>, Layout)>,
    asn: Option<maxminddb::Reader<Vec<u8>>>,
    /// A description for logs: file names and database types.
    pub description: String,
}

/// A coordinate stored as a double (GeoIP2) or a float (DB-IP Lite): maxminddb
/// refuses to widen a float into `f64`, so accept any numeric type.
#[derive(Clone, Copy)]
struct Num(f64);

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Num;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number")
            }
            fn visit_f64<E>(self, v: f64) -> Result<Num, E> {
                Ok(Num(v))
            }
            fn visit_f32<E>(self, v: f32) -> Result<Num, E> {
                Ok(Num(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Num, E> {
                Ok(Num(v as f64))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Num, E> {
                Ok(Num(v as f64))
            }
        }
        d.deserialize_any(V)
    }
}

fn num(n: Option<Num>) -> Option<f64> {
    n.map(|n| n.0)
}

#[derive(Deserialize)]
struct Names<'a> {
    #[serde(borrow, default)]
    en: Option<&'a str>,
}
#[derive(Deserialize)]
struct Named<'a> {
    #[serde(borrow, default)]
    names: Option<Names<'a>>,
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
}
#[derive(Deserialize)]
struct Location<'a> {
    #[serde(default)]
    latitude: Option<Num>,
    #[serde(default)]
    longitude: Option<Num>,
    #[serde(borrow, default)]
    time_zone: Option<&'a str>,
    #[serde(default)]
    accuracy_radius: Option<u16>,
}
#[derive(Deserialize)]
struct GeoIp2Rec<'a> {
    #[serde(borrow, default)]
    country: Option<Named<'a>>,
    #[serde(borrow, default)]
    city: Option<Named<'a>>,
    #[serde(borrow, default)]
    location: Option<Location<'a>>,
}
#[derive(Deserialize)]
struct FlatRec<'a> {
    #[serde(borrow, default)]
    country_code: Option<&'a str>,
    #[serde(borrow, default)]
    city: Option<&'a str>,
    #[serde(default)]
    latitude: Option<Num>,
    #[serde(default)]
    longitude: Option<Num>,
    #[serde(borrow, default)]
    timezone: Option<&'a str>,
}
#[derive(Deserialize)]
struct AsnRec<'a> {
    #[serde(default)]
    autonomous_system_number: Option<u32>,
    #[serde(borrow, default)]
    autonomous_system_organization: Option<&'a str>,
}

fn open(path: &Path) -> Result<maxminddb::Reader<Vec<u8>>, EnrichError> {
    maxminddb::Reader::open_readfile(path).map_err(|source| EnrichError::Open {
        path: path.display().to_string(),
        source,
    })
}

impl GeoDatabases {
    /// Open one or more city databases (either layout; e.g. DB-IP Lite's IPv4 and
    /// IPv6 files) and an optional ASN database.
    pub fn open_many(cities: &[&Path], asn: Option<&Path>) -> Result<Self, EnrichError> {
        let mut city = Vec::new();
        let mut desc = Vec::new();
        for p in cities {
            let r = open(p)?;
            let layout = detect_layout(&r).ok_or_else(|| EnrichError::Layout {
                path: p.display().to_string(),
            })?;
            desc.push(format!(
                "{} ({}, {:?} layout)",
                p.display(),
                r.metadata().database_type,
                layout
            ));
            city.push((r, layout));
        }
        if city.is_empty() {
            return Err(EnrichError::Layout {
                path: "<no city database given>".into(),
            });
        }
        let asn_r = asn.map(open).transpose()?;
        if let (Some(r), Some(p)) = (&asn_r, asn) {
            desc.push(format!("{} ({})", p.display(), r.metadata().database_type));
        }
        Ok(GeoDatabases {
            city,
            asn: asn_r,
            description: desc.join(" + "),
        })
    }

    /// Open a city database and an optional ASN database. `city` may list several
    /// files separated by commas.
    pub fn open(city: &Path, asn: Option<&Path>) -> Result<Self, EnrichError> {
        let text = city.to_string_lossy();
        let parts: Vec<&Path> = text.split(',').filter(|s| !s.is_empty()).map(Path::new).collect();
        Self::open_many(&parts, asn)
    }

    /// Build from in-memory database images (tests, the embedded demo).
    pub fn from_bytes(city: Vec<u8>, asn: Option<Vec<u8>>) -> Result<Self, EnrichError> {
        let mem = |source| EnrichError::Open {
            path: "<memory>".into(),
            source,
        };
        let city_r = maxminddb::Reader::from_source(city).map_err(mem)?;
        let asn_r = asn.map(maxminddb::Reader::from_source).transpose().map_err(mem)?;
        let layout = detect_layout(&city_r).ok_or_else(|| EnrichError::Layout {
            path: "<memory>".into(),
        })?;
        Ok(GeoDatabases {
            description: format!("<memory> ({:?} layout)", layout),
            city: vec![(city_r, layout)],
            asn: asn_r,
        })
    }

    /// Layout of the first city database.
    pub fn layout(&self) -> Layout {
        self.city[0].1
    }

    /// Uncached lookup of one address.
    pub fn lookup(&self, ip: IpAddr) -> GeoInfo {
        let mut g = GeoInfo::unknown();
        g.ip_h = ip_prefix_hash(ip);
        if is_private(ip) {
            g.status = GeoStatus::Private;
            return g;
        }
        for (db, layout) in &self.city {
            // an IPv4-only database cannot answer IPv6 (an error): try the next one
            let Ok(res) = db.lookup(ip) else { continue };
            match layout {
                Layout::GeoIp2 => {
                    if let Ok(Some(r)) = res.decode::<GeoIp2Rec<'_>>() {
                        let cc = r.country.as_ref().and_then(|c| c.iso_code);
                        let city = r.city.as_ref().and_then(|c| c.names.as_ref()).and_then(|n| n.en);
                        let loc = r.location.as_ref();
                        g.fill(
                            cc,
                            city,
                            loc.and_then(|l| num(l.latitude)),
                            loc.and_then(|l| num(l.longitude)),
                            loc.and_then(|l| l.time_zone),
                            loc.and_then(|l| l.accuracy_radius),
                        );
                    }
                }
                Layout::Flat => {
                    if let Ok(Some(r)) = res.decode::<FlatRec<'_>>() {
                        g.fill(
                            r.country_code,
                            r.city,
                            num(r.latitude),
                            num(r.longitude),
                            r.timezone,
                            None,
                        );
                    }
                }
            }
            if g.status == GeoStatus::Known {
                break;
            }
        }
        if let Some(asn) = &self.asn {
            if let Ok(Some(r)) = asn.lookup(ip).and_then(|res| res.decode::<AsnRec<'_>>()) {
                if let Some(n) = r.autonomous_system_number {
                    g.asn = n;
                    g.asn_h = hs(Ns::Asn, itoa(n).as_str());
                    g.asn_org = r.autonomous_system_organization.map(Arc::from);
                }
            }
        }
        g
    }
}

fn detect_layout(r: &maxminddb::Reader<Vec<u8>>) -> Option<Layout> {
    let iter = r.networks(Default::default()).ok()?;
    for item in iter.take(64) {
        let Ok(res) = item else { continue };
        if let Ok(Some(f)) = res.decode::<FlatRec<'_>>() {
            if f.country_code.is_some() {
                return Some(Layout::Flat);
            }
        }
        if let Ok(Some(g)) = res.decode::<GeoIp2Rec<'_>>() {
            if g.country.is_some() || g.location.is_some() {
                return Some(Layout::GeoIp2);
            }
        }
    }
    None
}

/// `Etc/GMT±N` for a longitude (15° per hour).
pub fn solar_tz(lon: f32) -> Option<Tz> {
    let h = (lon / 15.0).round().clamp(-12.0, 14.0) as i32;
    let name = match h {
        0 => "Etc/GMT".to_string(),
        h if h > 0 => format!("Etc/GMT-{h}"),
        h => format!("Etc/GMT+{}", -h),
    };
    name.parse::<Tz>().ok()
}

fn itoa(n: u32) -> String {
    n.to_string()
}

/// Private, loopback, link-local, CGNAT and documentation ranges: a known state.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || v4.is_documentation()
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback() || v6.is_unspecified() || (s[0] & 0xfe00) == 0xfc00 || (s[0] & 0xffc0) == 0xfe80
        }
    }
}

/// The "IP" level of the model is the /24 (IPv4) or /56 (IPv6) network: addresses
/// rotate inside a subscriber's prefix far more often than across it.
pub fn ip_prefix_hash(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            crate::hash::h64(Ns::Ip, &[4, o[0], o[1], o[2]])
        }
        IpAddr::V6(v6) => {
            let o = v6.octets();
            crate::hash::h64(Ns::Ip, &[6, o[0], o[1], o[2], o[3], o[4], o[5], o[6]])
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeoStatus {
    /// The database located the address.
    Known,
    /// A private/loopback/CGNAT address: no location, by design.
    Private,
    /// A public address the database does not cover.
    Unknown,
}

/// What enrichment knows about an address.
#[derive(Debug, Clone)]
pub struct GeoInfo {
    pub status: GeoStatus,
    /// ISO 3166 alpha-2, `[0,0]` when unknown.
    pub country: [u8; 2],
    pub country_h: u64,
    pub city: Option<Arc<str>>,
    pub city_h: u64,
    pub lat: f32,
    pub lon: f32,
    pub has_coords: bool,
    pub accuracy_km: u16,
    pub tz: Option<Tz>,
    pub asn: u32,
    pub asn_h: u64,
    pub asn_org: Option<Arc<str>>,
    /// The ASN organisation looks like hosting / VPN egress (see `Enricher::with_hosting_keywords`).
    pub hosting: bool,
    pub ip_h: u64,
}

impl GeoInfo {
    fn unknown() -> Self {
        GeoInfo {
            status: GeoStatus::Unknown,
            country: [0, 0],
            country_h: 0,
            city: None,
            city_h: 0,
            lat: 0.0,
            lon: 0.0,
            has_coords: false,
            accuracy_km: 0,
            tz: None,
            asn: 0,
            asn_h: 0,
            asn_org: None,
            hosting: false,
            ip_h: 0,
        }
    }

    fn fill(
        &mut self,
        cc: Option<&str>,
        city: Option<&str>,
        lat: Option<f64>,
        lon: Option<f64>,
        tz: Option<&str>,
        acc: Option<u16>,
    ) {
        if let Some(cc) = cc.filter(|c| c.len() == 2 && c.is_ascii()) {
            let b = cc.as_bytes();
            self.country = [b[0].to_ascii_uppercase(), b[1].to_ascii_uppercase()];
            self.country_h = crate::hash::h64(Ns::Country, &self.country);
            self.status = GeoStatus::Known;
        }
        if let Some(city) = city.filter(|c| !c.is_empty()) {
            self.city_h = h2(Ns::City, self.country_str(), city);
            self.city = Some(Arc::from(city));
        }
        if let (Some(la), Some(lo)) = (lat, lon) {
            if la.is_finite() && lo.is_finite() && la.abs() <= 90.0 && lo.abs() <= 180.0 {
                self.lat = la as f32;
                self.lon = lo as f32;
                self.has_coords = true;
                self.status = GeoStatus::Known;
            }
        }
        // DB-IP Lite gives no radius: assume a city-level 25 km.
        self.accuracy_km = acc.unwrap_or(25).min(1000);
        self.tz = tz.filter(|t| !t.is_empty()).and_then(|t| t.parse::<Tz>().ok());
        if self.tz.is_none() && self.has_coords {
            // DB-IP Lite ships empty time zones: approximate from the longitude
            // (solar time zone, Etc/GMT±N; note the POSIX sign inversion).
            self.tz = solar_tz(self.lon);
        }
    }

    pub fn country_str(&self) -> &str {
        std::str::from_utf8(&self.country).unwrap_or("")
    }

    pub fn is_known(&self) -> bool {
        self.status == GeoStatus::Known && self.country != [0, 0]
    }
}

/// What enrichment knows about a user agent.
#[derive(Debug, Clone)]
pub struct UaInfo {
    pub ua_h: u64,
    pub browser: Arc<str>,
    pub browser_h: u64,
    pub major: u32,
    pub os: Arc<str>,
    pub os_h: u64,
    pub category: &'static str,
    pub category_h: u64,
    /// Device identity when no `device_id` is given: browser family + OS + category,
    /// without versions, so an upgrade is not a new device.
    pub fingerprint_h: u64,
}

impl UaInfo {
    pub fn parse(ua: &str) -> Self {
        let parser = woothee::parser::Parser::new();
        let (browser, version, os, category) = match parser.parse(ua) {
            Some(r) => (
                r.name.to_string(),
                r.version.to_string(),
                r.os.to_string(),
                r.category.to_string(),
            ),
            None => ("UNKNOWN".into(), String::new(), "UNKNOWN".into(), "UNKNOWN".into()),
        };
        let category: &'static str = match category.as_str() {
            "pc" => "pc",
            "smartphone" => "smartphone",
            "mobilephone" => "mobilephone",
            "appliance" => "appliance",
            "crawler" => "crawler",
            "misc" => "misc",
            _ => "unknown",
        };
        let major = version.split('.').next().and_then(|v| v.parse().ok()).unwrap_or(0);
        let fp = format!("{browser}\u{1f}{os}\u{1f}{category}");
        UaInfo {
            ua_h: hs(Ns::UserAgent, ua),
            browser_h: hs(Ns::Browser, &browser),
            browser: Arc::from(browser),
            major,
            os_h: hs(Ns::Os, &os),
            os: Arc::from(os),
            category,
            category_h: hs(Ns::Category, category),
            fingerprint_h: hs(Ns::Fingerprint, &fp),
        }
    }

    fn none() -> Self {
        Self::parse("")
    }
}

/// Enrichment facts for one event.
#[derive(Debug, Clone)]
pub struct Enriched<'a> {
    /// Borrowed from the enricher's cache: no reference count to touch (the
    /// count was a second cache miss per event on a large address mix).
    pub geo: &'a GeoInfo,
    pub ua: Arc<UaInfo>,
    /// Device identity: the hashed `device_id` when given, else the UA fingerprint.
    pub device_h: u64,
    pub has_device_id: bool,
}

/// Bounded caches in front of the databases, owned by one pipeline.
pub struct Enricher {
    dbs: Arc<GeoDatabases>,
    /// Results stored in the table itself: a hit is one probe, its key and value
    /// on neighbouring cache lines.
    ip_cache: FastMap<IpAddr, GeoInfo>,
    ua_cache: FastMap<Box<str>, Arc<UaInfo>>,
    no_ua: Arc<UaInfo>,
    no_geo: GeoInfo,
    cap_ip: usize,
    cap_ua: usize,
    /// Lower-case keywords marking hosting/VPN ASN organisations.
    hosting_keywords: Vec<String>,
    pub stats: CacheStats,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct CacheStats {
    pub ip_hits: u64,
    pub ip_misses: u64,
    pub ua_hits: u64,
    pub ua_misses: u64,
}

impl Enricher {
    pub fn new(dbs: Arc<GeoDatabases>) -> Self {
        Self::with_capacity(dbs, 200_000, 20_000)
    }

    pub fn with_capacity(dbs: Arc<GeoDatabases>, cap_ip: usize, cap_ua: usize) -> Self {
        Enricher {
            dbs,
            ip_cache: FastMap::default(),
            ua_cache: FastMap::default(),
            no_ua: Arc::new(UaInfo::none()),
            no_geo: GeoInfo::unknown(),
            cap_ip: cap_ip.max(1),
            cap_ua: cap_ua.max(1),
            hosting_keywords: Vec::new(),
            stats: CacheStats::default(),
        }
    }

    /// Mark ASN organisations containing any of these words (case-insensitive) as hosting.
    pub fn with_hosting_keywords(mut self, words: &[String]) -> Self {
        self.hosting_keywords = words
            .iter()
            .map(|w| w.to_lowercase())
            .filter(|w| !w.is_empty())
            .collect();
        self
    }

    pub fn geo(&mut self, ip: Option<IpAddr>) -> &GeoInfo {
        let Some(ip) = ip else { return &self.no_geo };
        if self.ip_cache.len() >= self.cap_ip && !self.ip_cache.contains_key(&ip) {
            // Bounded: start over rather than grow (hot working sets refill at once).
            self.ip_cache.clear();
        }
        let (dbs, keywords, stats) = (&self.dbs, &self.hosting_keywords, &mut self.stats);
        stats.ip_hits += 1;
        self.ip_cache.entry(ip).or_insert_with(|| {
            stats.ip_hits -= 1;
            stats.ip_misses += 1;
            let mut g = dbs.lookup(ip);
            if let Some(org) = &g.asn_org {
                let org = org.to_lowercase();
                g.hosting = keywords.iter().any(|w| org.contains(w.as_str()));
            }
            g
        })
    }

    pub fn ua(&mut self, ua: Option<&str>) -> Arc<UaInfo> {
        let Some(ua) = ua else { return self.no_ua.clone() };
        if let Some(u) = self.ua_cache.get(ua) {
            self.stats.ua_hits += 1;
            return u.clone();
        }
        self.stats.ua_misses += 1;
        let info = Arc::new(UaInfo::parse(ua));
        if self.ua_cache.len() >= self.cap_ua {
            self.ua_cache.clear();
        }
        self.ua_cache.insert(Box::from(ua), info.clone());
        info
    }

    /// Enrich one event's network and client facts.
    pub fn enrich(&mut self, ip: Option<IpAddr>, ua: Option<&str>, device_id: Option<&str>) -> Enriched<'_> {
        let ua = self.ua(ua);
        let geo = self.geo(ip);
        let (device_h, has_device_id) = match device_id {
            Some(d) => (hs(Ns::Device, d), true),
            None => (ua.fingerprint_h, false),
        };
        Enriched {
            geo,
            ua,
            device_h,
            has_device_id,
        }
    }

    /// Drop cached lookups (tests and the cold-cache benchmark).
    pub fn clear_caches(&mut self) {
        self.ip_cache.clear();
        self.ua_cache.clear();
    }

    pub fn databases(&self) -> &Arc<GeoDatabases> {
        &self.dbs
    }
}

/// Great-circle distance in km.
pub fn haversine_km(lat1: f32, lon1: f32, lat2: f32, lon2: f32) -> f64 {
    let (p1, p2) = ((lat1 as f64).to_radians(), (lat2 as f64).to_radians());
    let dp = p2 - p1;
    let dl = ((lon2 - lon1) as f64).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * 6371.0 * a.sqrt().min(1.0).asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ua_upgrade_keeps_fingerprint() {
        let a = UaInfo::parse("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36");
        let b = UaInfo::parse("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/121.0.0.0 Safari/537.36");
        assert_eq!(&*a.browser, "Chrome");
        assert_eq!(a.major, 120);
        assert_eq!(a.category, "pc");
        assert_ne!(a.ua_h, b.ua_h);
        assert_eq!(a.fingerprint_h, b.fingerprint_h);
        let c = UaInfo::parse("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15");
        assert_ne!(a.fingerprint_h, c.fingerprint_h);
    }

    #[test]
    fn private_ranges() {
        for ip in [
            "10.1.2.3",
            "192.168.0.1",
            "127.0.0.1",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        assert!(!is_private("81.2.69.142".parse().unwrap()));
    }

    #[test]
    fn solar_time_zone_from_longitude() {
        assert_eq!(solar_tz(-9.1), Some(chrono_tz::Etc::GMTPlus1));
        assert_eq!(solar_tz(139.7), Some(chrono_tz::Etc::GMTMinus9));
        assert_eq!(solar_tz(2.0), Some(chrono_tz::Etc::GMT));
    }

    #[test]
    fn haversine_lisbon_madrid() {
        let d = haversine_km(38.72, -9.14, 40.42, -3.70);
        assert!((d - 503.0).abs() < 10.0, "{d}");
    }
}
