//! Sampling IP addresses that really geolocate.
//!
//! [`GeoSampler`] walks every network of one or more MaxMind-format city databases
//! (GeoLite2/GeoIP2-City layout or the flat ip-location-db / DB-IP Lite layout), keeps
//! a bounded reservoir of networks per city, and optionally tags each kept network with
//! its ISP from an ASN database (GeoLite2-ASN layout). The generator then draws random
//! addresses inside those networks, so a lookup of a generated address in the same
//! database returns the city the generator intended.
//!
//! Memory stays bounded on the real DB-IP Lite database (millions of networks): records
//! are decoded once per data-section offset, each city keeps at most
//! [`GeoOptions::max_networks_per_city`] networks per (family, kind) bucket by reservoir
//! sampling, cities with too few networks are dropped, and private/reserved ranges are
//! skipped.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use ipnetwork::IpNetwork;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::GenError;

/// What kind of access network a prefix belongs to, as far as the ASN organisation
/// name tells (without an ASN database everything is `Residential`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NetKind {
    /// Fixed-line consumer or business access (DSL, cable, fibre).
    Residential,
    /// A mobile carrier (carrier-grade NAT, addresses change per session).
    Mobile,
    /// Hosting, cloud, data-centre or commercial VPN egress.
    Hosting,
}

impl NetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NetKind::Residential => "residential",
            NetKind::Mobile => "mobile",
            NetKind::Hosting => "hosting",
        }
    }
}

/// Organisation-name keywords that mark hosting / cloud / VPN egress networks.
const HOSTING_KEYWORDS: &[&str] = &[
    "hosting",
    "host ",
    "hostinger",
    "cloud",
    "server",
    "vps",
    "datacenter",
    "data center",
    "datacentre",
    "data centre",
    "colocation",
    "vpn",
    "m247",
    "ovh",
    "hetzner",
    "digitalocean",
    "digital ocean",
    "amazon",
    "aws",
    "google",
    "microsoft",
    "azure",
    "linode",
    "akamai",
    "choopa",
    "vultr",
    "contabo",
    "leaseweb",
    "scaleway",
    "alibaba",
    "tencent",
    "oracle",
    "ionos",
    "cdn77",
    "datacamp",
    "packethub",
    "quadranet",
    "psychz",
    "zenlayer",
    "gcore",
    "g-core",
    "selectel",
    "timeweb",
    "worldstream",
    "hivelocity",
    "private internet access",
    "nordvpn",
    "expressvpn",
    "mullvad",
    "proton",
    "surfshark",
];

/// Organisation-name keywords that mark mobile carriers.
const MOBILE_KEYWORDS: &[&str] = &[
    "mobile",
    "wireless",
    "cellular",
    "gsm",
    "movil",
    "mobil",
    "jio",
    "t-mobile",
    "tmobile",
    "megafon",
    "turkcell",
    "safaricom",
    "telkomsel",
    "indosat",
    "cricket",
    "vodacom",
    "telcel",
    "docomo",
    "kyivstar",
    "china mobile",
    "ee limited",
];

/// Well-known ASNs that mostly carry mobile subscribers (the organisation name alone
/// often does not say so).
const MOBILE_ASNS: &[u32] = &[
    21928,  // T-Mobile USA
    22394,  // Verizon Wireless
    6167,   // Cellco Partnership (Verizon Wireless)
    20057,  // AT&T Mobility
    12353,  // Vodafone Portugal
    12430,  // Vodafone Spain
    12576,  // EE (UK)
    6805,   // Telefonica Germany (O2)
    31615,  // T-Mobile Netherlands / Odido
    39603,  // P4 (Play, Poland)
    15895,  // Kyivstar
    12302,  // Vodafone Romania
    1257,   // Tele2 Sweden
    15502,  // Vodafone Ireland
    8359,   // MTS
    15897,  // Vodafone Turkey
    28403,  // Radiomovil Dipsa (Telcel)
    26615,  // TIM Brasil
    27831,  // Colombia Movil (Tigo)
    27651,  // Entel Chile
    29465,  // MTN Nigeria
    36926,  // Airtel Kenya
    36935,  // Vodafone Egypt
    29975,  // Vodacom
    55836,  // Reliance Jio
    45609,  // Bharti Airtel mobile
    9605,   // NTT DOCOMO
    17858,  // LG U+
    5410,   // Bouygues Telecom
    852,    // TELUS
    23655,  // 2degrees
    4775,   // Globe Telecom
    7552,   // Viettel
    23693,  // Telkomsel
    12400,  // Partner Communications
    9808,   // China Mobile
    17547,  // M1 (Singapore)
    202024, // Virgin Mobile UAE
];

/// Classify a network by its ASN and organisation name.
pub fn classify(asn: Option<u32>, org: &str) -> NetKind {
    if asn.is_some_and(|a| MOBILE_ASNS.contains(&a)) {
        return NetKind::Mobile;
    }
    classify_org(org)
}

/// Classify an ASN organisation name.
pub fn classify_org(org: &str) -> NetKind {
    let o = org.to_ascii_lowercase();
    let padded = format!("{o} ");
    if HOSTING_KEYWORDS.iter().any(|k| padded.contains(k)) {
        NetKind::Hosting
    } else if MOBILE_KEYWORDS.iter().any(|k| padded.contains(k)) {
        NetKind::Mobile
    } else {
        NetKind::Residential
    }
}

/// Tuning for [`GeoSampler::open_with`].
#[derive(Debug, Clone)]
pub struct GeoOptions {
    /// Networks kept per (city, address family, kind) bucket.
    pub max_networks_per_city: usize,
    /// Cities with fewer networks than this (all buckets) are dropped, unless that
    /// would leave fewer than [`GeoOptions::min_cities`].
    pub min_networks_per_city: usize,
    /// Keep at most this many cities (the ones with the most networks).
    pub max_cities: usize,
    /// If the thresholds leave fewer cities than this, keep every city.
    pub min_cities: usize,
    /// Skip networks in private, loopback, documentation, CGNAT, multicast and other
    /// reserved ranges.
    pub skip_reserved: bool,
}

impl Default for GeoOptions {
    fn default() -> Self {
        GeoOptions {
            max_networks_per_city: 48,
            min_networks_per_city: 6,
            max_cities: 4000,
            min_cities: 20,
            skip_reserved: true,
        }
    }
}

/// One city known to the sampler.
#[derive(Debug, Clone)]
pub struct CityInfo {
    pub name: String,
    /// ISO 3166-1 alpha-2 country code.
    pub country: String,
    pub lat: f64,
    pub lon: f64,
    /// IANA name of the city's time zone.
    pub tz_name: String,
    pub tz: Tz,
    /// Networks the database has for this city (before capping); the popularity weight.
    pub network_count: u64,
    /// ... of which fixed-line (all of them without an ASN database).
    pub residential_count: u64,
    pub(crate) nets: [[Vec<u32>; 3]; 2],
}

impl CityInfo {
    /// Kept network indices of one family (`v6`) and kind.
    pub fn networks(&self, v6: bool, kind: NetKind) -> &[u32] {
        &self.nets[v6 as usize][kind_idx(kind)]
    }
}

fn kind_idx(k: NetKind) -> usize {
    match k {
        NetKind::Residential => 0,
        NetKind::Mobile => 1,
        NetKind::Hosting => 2,
    }
}

/// One kept network.
#[derive(Debug, Clone)]
pub struct NetInfo {
    pub net: IpNetwork,
    pub city: u32,
    pub isp: u32,
    pub kind: NetKind,
}

/// An ISP: an autonomous system (with an ASN database) or, without one, the enclosing
/// /16 (IPv4) or /32 (IPv6) as an approximation.
#[derive(Debug, Clone)]
pub struct IspInfo {
    pub asn: Option<u32>,
    pub name: String,
    pub kind: NetKind,
}

/// A country: its cities and hosting networks.
#[derive(Debug, Clone, Default)]
pub struct CountryInfo {
    pub code: String,
    pub cities: Vec<u32>,
    /// Network-count-weighted centroid.
    pub lat: f64,
    pub lon: f64,
    pub network_count: u64,
    pub hosting_v4: Vec<u32>,
    pub hosting_v6: Vec<u32>,
}

/// Samples geolocatable IP addresses by city, ISP and network kind.
#[derive(Debug, Clone)]
pub struct GeoSampler {
    cities: Vec<CityInfo>,
    nets: Vec<NetInfo>,
    isps: Vec<IspInfo>,
    countries: Vec<CountryInfo>,
    country_idx: HashMap<String, u32>,
    city_isp_nets: HashMap<(u32, u32, bool), Vec<u32>>,
    city_cum: Vec<f64>,
    has_asn: bool,
    has_v6: bool,
    sources: Vec<PathBuf>,
}

// ---------------------------------------------------------------------------------
// Record decoding (both layouts).

/// A number stored as double, float, integer or string.
#[derive(Debug, Clone, Copy)]
struct Num(f64);

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Num;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Num, E> {
                Ok(Num(v))
            }
            fn visit_f32<E: de::Error>(self, v: f32) -> Result<Num, E> {
                Ok(Num(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Num, E> {
                Ok(Num(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Num, E> {
                Ok(Num(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Num, E> {
                v.trim().parse::<f64>().map(Num).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A name that is either a plain string (flat layout) or `{names: {en: ...}}` (GeoIP2).
#[derive(Debug, Clone, Default)]
struct Name(Option<String>);

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Name;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or a map with names")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Name, E> {
                Ok(Name(Some(v.to_string())))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Name, A::Error> {
                let mut out = None;
                while let Some(k) = m.next_key::<&str>()? {
                    if k == "names" {
                        let names: BTreeMap<&str, &str> = m.next_value()?;
                        out = names.get("en").or_else(|| names.values().next()).map(|s| s.to_string());
                    } else if k == "iso_code" && out.is_none() {
                        let v: &str = m.next_value()?;
                        out = Some(v.to_string());
                    } else {
                        m.next_value::<de::IgnoredAny>()?;
                    }
                }
                Ok(Name(out))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize, Default)]
struct Iso<'a> {
    #[serde(default, borrow)]
    iso_code: Option<&'a str>,
}

#[derive(Debug, Deserialize, Default)]
struct Loc<'a> {
    #[serde(default)]
    latitude: Option<Num>,
    #[serde(default)]
    longitude: Option<Num>,
    #[serde(default, borrow)]
    time_zone: Option<&'a str>,
}

#[derive(Debug, Deserialize, Default)]
struct AnyCityRecord<'a> {
    // GeoIP2 / GeoLite2-City layout
    #[serde(default, borrow)]
    country: Option<Iso<'a>>,
    #[serde(default, borrow)]
    location: Option<Loc<'a>>,
    #[serde(default)]
    city: Option<Name>,
    // flat ip-location-db / DB-IP layout
    #[serde(default, borrow)]
    country_code: Option<&'a str>,
    #[serde(default)]
    latitude: Option<Num>,
    #[serde(default)]
    longitude: Option<Num>,
    #[serde(default, borrow)]
    timezone: Option<&'a str>,
}

#[derive(Debug, Deserialize, Default)]
struct AsnRecord<'a> {
    #[serde(default)]
    autonomous_system_number: Option<u32>,
    #[serde(default, borrow)]
    autonomous_system_organization: Option<&'a str>,
}

#[derive(Debug, Clone)]
struct DecodedLoc {
    key: u32,
}

// ---------------------------------------------------------------------------------
// Reserved ranges.

/// True for addresses that never appear as a client's public address.
pub fn is_reserved(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_reserved_v4(v4),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            // only global unicast 2000::/3
            if s[0] & 0xe000 != 0x2000 {
                return true;
            }
            // documentation, 6to4, Teredo, ORCHID/benchmarking
            (s[0] == 0x2001 && s[1] == 0x0db8)
                || s[0] == 0x2002
                || (s[0] == 0x2001 && s[1] == 0)
                || (s[0] == 0x2001 && s[1] < 0x0200)
        }
    }
}

fn is_reserved_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    o[0] == 0
        || o[0] == 10
        || o[0] == 127
        || o[0] >= 224
        || (o[0] == 100 && (64..128).contains(&o[1]))
        || (o[0] == 169 && o[1] == 254)
        || (o[0] == 172 && (16..32).contains(&o[1]))
        || (o[0] == 192 && o[1] == 168)
        || (o[0] == 192 && o[1] == 0 && (o[2] == 0 || o[2] == 2))
        || (o[0] == 198 && (o[1] == 18 || o[1] == 19))
        || (o[0] == 198 && o[1] == 51 && o[2] == 100)
        || (o[0] == 203 && o[1] == 0 && o[2] == 113)
}

fn net_is_reserved(net: &IpNetwork) -> bool {
    match net {
        IpNetwork::V4(n) => is_reserved_v4(n.network()) || is_reserved_v4(n.broadcast()),
        IpNetwork::V6(n) => n.prefix() < 3 || is_reserved(IpAddr::V6(n.network())),
    }
}

// ---------------------------------------------------------------------------------
// Loading.

struct CityAcc {
    name: String,
    country: String,
    lat: f64,
    lon: f64,
    tz_name: String,
    count: u64,
    // reservoir per [family][kind]: (network, isp key, seen count)
    res: [[Vec<(IpNetwork, u32)>; 3]; 2],
    seen: [[u64; 3]; 2],
}

struct IspAcc {
    asn: Option<u32>,
    name: String,
    kind: NetKind,
}

fn tz_for(name: Option<&str>, country: &str, lat: f64, lon: f64) -> (String, Tz) {
    if let Some(n) = name {
        if let Ok(tz) = n.parse::<Tz>() {
            return (n.to_string(), tz);
        }
    }
    if let Some(z) = super::tz::zone_for(country, lat, lon) {
        if let Ok(tz) = z.parse::<Tz>() {
            return (z.to_string(), tz);
        }
    }
    // Fixed offset from longitude: Etc/GMT-N is UTC+N.
    let off = (lon / 15.0).round().clamp(-12.0, 14.0) as i32;
    let n = if off == 0 {
        "Etc/GMT".to_string()
    } else if off > 0 {
        format!("Etc/GMT-{off}")
    } else {
        format!("Etc/GMT+{}", -off)
    };
    let tz = n.parse::<Tz>().unwrap_or(Tz::UTC);
    (n, tz)
}

impl GeoSampler {
    /// Open one or more city databases (e.g. DB-IP's separate IPv4 and IPv6 files) and
    /// an optional ASN database, with default [`GeoOptions`].
    pub fn open<P: AsRef<Path>>(city_dbs: &[P], asn_db: Option<&Path>) -> Result<Self, GenError> {
        Self::open_with(city_dbs, asn_db, &GeoOptions::default())
    }

    /// Like [`GeoSampler::open`] with explicit options.
    pub fn open_with<P: AsRef<Path>>(
        city_dbs: &[P],
        asn_db: Option<&Path>,
        opts: &GeoOptions,
    ) -> Result<Self, GenError> {
        if city_dbs.is_empty() {
            return Err(GenError::Geo("no city database given".into()));
        }
        let asn_reader = match asn_db {
            Some(p) => Some(
                maxminddb::Reader::open_readfile(p)
                    .map_err(|e| GenError::Geo(format!("cannot open ASN database {}: {e}", p.display())))?,
            ),
            None => None,
        };
        // Reservoir sampling must not depend on the generation seed: the same database
        // always gives the same sampler.
        let mut rng = StdRng::seed_from_u64(0x9e0_5a3b1e);
        let mut cities: Vec<CityAcc> = Vec::new();
        let mut city_keys: HashMap<(String, String, i32, i32), u32> = HashMap::new();
        let mut isps: Vec<IspAcc> = Vec::new();
        let mut isp_keys: HashMap<(bool, u64), u32> = HashMap::new();
        let cap = opts.max_networks_per_city.max(1);

        for path in city_dbs {
            let path = path.as_ref();
            let reader = maxminddb::Reader::open_readfile(path)
                .map_err(|e| GenError::Geo(format!("cannot open city database {}: {e}", path.display())))?;
            let mut cache: HashMap<usize, Option<DecodedLoc>> = HashMap::new();
            let iter = reader
                .networks(Default::default())
                .map_err(|e| GenError::Geo(format!("{}: {e}", path.display())))?;
            for item in iter {
                let item = item.map_err(|e| GenError::Geo(format!("{}: {e}", path.display())))?;
                let Some(off) = item.offset() else { continue };
                let net = match item.network() {
                    Ok(n) => n,
                    Err(_) => continue,
                };
                if opts.skip_reserved && net_is_reserved(&net) {
                    continue;
                }
                let loc = match cache.get(&off) {
                    Some(l) => l.clone(),
                    None => {
                        let rec: Option<AnyCityRecord> = item.decode().unwrap_or(None);
                        let d = rec.and_then(|r| {
                            let country = r
                                .country
                                .as_ref()
                                .and_then(|c| c.iso_code)
                                .or(r.country_code)?
                                .to_ascii_uppercase();
                            if country.len() != 2 || country == "ZZ" {
                                return None;
                            }
                            let name = r.city.as_ref().and_then(|c| c.0.clone())?;
                            if name.is_empty() {
                                return None;
                            }
                            let (lat, lon, tz) = match &r.location {
                                Some(l) => (l.latitude.map(|x| x.0), l.longitude.map(|x| x.0), l.time_zone),
                                None => (None, None, None),
                            };
                            let lat = lat.or(r.latitude.map(|x| x.0))?;
                            let lon = lon.or(r.longitude.map(|x| x.0))?;
                            let tz = tz.or(r.timezone);
                            let k = (country.clone(), name.clone(), lat.round() as i32, lon.round() as i32);
                            let key = match city_keys.get(&k) {
                                Some(&i) => i,
                                None => {
                                    let i = cities.len() as u32;
                                    let (tz_name, _) = tz_for(tz, &country, lat, lon);
                                    cities.push(CityAcc {
                                        name,
                                        country,
                                        lat,
                                        lon,
                                        tz_name,
                                        count: 0,
                                        res: Default::default(),
                                        seen: [[0; 3]; 2],
                                    });
                                    city_keys.insert(k, i);
                                    i
                                }
                            };
                            Some(DecodedLoc { key })
                        });
                        cache.insert(off, d.clone());
                        d
                    }
                };
                let Some(loc) = loc else { continue };
                let v6 = net.is_ipv6();
                // ISP of this network
                let (isp_key, kind) = match &asn_reader {
                    Some(ar) => {
                        let rec: Option<AsnRecord> =
                            ar.lookup(net.network()).ok().and_then(|r| r.decode().ok().flatten());
                        match rec.and_then(|r| {
                            r.autonomous_system_number
                                .map(|n| (n, r.autonomous_system_organization.unwrap_or("")))
                        }) {
                            Some((asn, org)) => {
                                let k = (false, asn as u64);
                                let i = *isp_keys.entry(k).or_insert_with(|| {
                                    isps.push(IspAcc {
                                        asn: Some(asn),
                                        name: org.to_string(),
                                        kind: classify(Some(asn), org),
                                    });
                                    (isps.len() - 1) as u32
                                });
                                (i, isps[i as usize].kind)
                            }
                            None => prefix_isp(&net, &mut isps, &mut isp_keys),
                        }
                    }
                    None => prefix_isp(&net, &mut isps, &mut isp_keys),
                };
                let c = &mut cities[loc.key as usize];
                c.count += 1;
                let (f, k) = (v6 as usize, kind_idx(kind));
                c.seen[f][k] += 1;
                let seen = c.seen[f][k];
                let r = &mut c.res[f][k];
                if r.len() < cap {
                    r.push((net, isp_key));
                } else {
                    let j = rng.gen_range(0..seen);
                    if (j as usize) < cap {
                        r[j as usize] = (net, isp_key);
                    }
                }
            }
        }

        // Choose the cities to keep.
        let mut order: Vec<u32> = (0..cities.len() as u32).collect();
        order.sort_by(|&a, &b| {
            let (ca, cb) = (&cities[a as usize], &cities[b as usize]);
            cb.count
                .cmp(&ca.count)
                .then_with(|| ca.country.cmp(&cb.country))
                .then_with(|| ca.name.cmp(&cb.name))
                .then(a.cmp(&b))
        });
        let enough = order
            .iter()
            .filter(|&&i| cities[i as usize].count as usize >= opts.min_networks_per_city)
            .count();
        let keep_n = if enough < opts.min_cities { order.len() } else { enough }.min(opts.max_cities);
        let mut kept: Vec<u32> = order[..keep_n].to_vec();
        // Deterministic final order: by country then name.
        kept.sort_by(|&a, &b| {
            let (ca, cb) = (&cities[a as usize], &cities[b as usize]);
            ca.country
                .cmp(&cb.country)
                .then_with(|| ca.name.cmp(&cb.name))
                .then(a.cmp(&b))
        });
        if kept.is_empty() {
            return Err(GenError::Geo(
                "the city database(s) hold no usable city networks".into(),
            ));
        }

        let mut out = GeoSampler {
            cities: Vec::with_capacity(kept.len()),
            nets: Vec::new(),
            isps: Vec::new(),
            countries: Vec::new(),
            country_idx: HashMap::new(),
            city_isp_nets: HashMap::new(),
            city_cum: Vec::new(),
            has_asn: asn_reader.is_some(),
            has_v6: false,
            sources: city_dbs.iter().map(|p| p.as_ref().to_path_buf()).collect(),
        };
        let mut isp_remap: HashMap<u32, u32> = HashMap::new();
        for &ci in &kept {
            let c = &mut cities[ci as usize];
            let new_ci = out.cities.len() as u32;
            let (tz_name, tz) = tz_for(Some(&c.tz_name), &c.country, c.lat, c.lon);
            let mut info = CityInfo {
                name: std::mem::take(&mut c.name),
                country: c.country.clone(),
                lat: c.lat,
                lon: c.lon,
                tz_name,
                tz,
                network_count: c.count,
                residential_count: c.seen[0][0] + c.seen[1][0],
                nets: Default::default(),
            };
            for f in 0..2 {
                for k in 0..3 {
                    let mut r = std::mem::take(&mut c.res[f][k]);
                    r.sort_by_key(|a| a.0);
                    for (net, isp) in r {
                        let isp_new = *isp_remap.entry(isp).or_insert_with(|| {
                            let a = &isps[isp as usize];
                            out.isps.push(IspInfo {
                                asn: a.asn,
                                name: a.name.clone(),
                                kind: a.kind,
                            });
                            (out.isps.len() - 1) as u32
                        });
                        let ni = out.nets.len() as u32;
                        let kind = [NetKind::Residential, NetKind::Mobile, NetKind::Hosting][k];
                        out.nets.push(NetInfo {
                            net,
                            city: new_ci,
                            isp: isp_new,
                            kind,
                        });
                        info.nets[f][k].push(ni);
                        out.city_isp_nets.entry((new_ci, isp_new, f == 1)).or_default().push(ni);
                        if f == 1 {
                            out.has_v6 = true;
                        }
                    }
                }
            }
            out.cities.push(info);
        }
        // Countries.
        for (ci, c) in out.cities.iter().enumerate() {
            let idx = match out.country_idx.get(&c.country) {
                Some(&i) => i,
                None => {
                    out.countries.push(CountryInfo {
                        code: c.country.clone(),
                        ..Default::default()
                    });
                    let i = (out.countries.len() - 1) as u32;
                    out.country_idx.insert(c.country.clone(), i);
                    i
                }
            };
            let co = &mut out.countries[idx as usize];
            co.cities.push(ci as u32);
            let w = c.network_count as f64;
            let tot = co.network_count as f64 + w;
            if tot > 0.0 {
                co.lat = (co.lat * co.network_count as f64 + c.lat * w) / tot;
                co.lon = (co.lon * co.network_count as f64 + c.lon * w) / tot;
            }
            co.network_count += c.network_count;
            co.hosting_v4.extend_from_slice(c.networks(false, NetKind::Hosting));
            co.hosting_v6.extend_from_slice(c.networks(true, NetKind::Hosting));
        }
        let mut acc = 0.0;
        for c in &out.cities {
            acc += c.network_count as f64;
            out.city_cum.push(acc);
        }
        Ok(out)
    }

    pub fn cities(&self) -> &[CityInfo] {
        &self.cities
    }
    pub fn city(&self, i: u32) -> &CityInfo {
        &self.cities[i as usize]
    }
    pub fn networks(&self) -> &[NetInfo] {
        &self.nets
    }
    pub fn net(&self, i: u32) -> &NetInfo {
        &self.nets[i as usize]
    }
    pub fn isp(&self, i: u32) -> &IspInfo {
        &self.isps[i as usize]
    }
    pub fn countries(&self) -> &[CountryInfo] {
        &self.countries
    }
    pub fn country(&self, code: &str) -> Option<&CountryInfo> {
        self.country_idx.get(code).map(|&i| &self.countries[i as usize])
    }
    /// True when an ASN database gave real ISPs and network kinds.
    pub fn has_asn(&self) -> bool {
        self.has_asn
    }
    /// True when some kept network is IPv6.
    pub fn has_ipv6(&self) -> bool {
        self.has_v6
    }
    /// The database files this sampler was built from.
    pub fn sources(&self) -> &[PathBuf] {
        &self.sources
    }

    /// A city drawn with probability proportional to its network count.
    pub fn weighted_city(&self, rng: &mut impl Rng) -> u32 {
        let total = *self.city_cum.last().unwrap_or(&1.0);
        let x = rng.gen::<f64>() * total;
        self.city_cum.partition_point(|&c| c <= x).min(self.cities.len() - 1) as u32
    }

    /// Kept networks of one ISP in a city.
    pub fn isp_networks(&self, city: u32, isp: u32, v6: bool) -> &[u32] {
        self.city_isp_nets
            .get(&(city, isp, v6))
            .map(|v| v.as_slice())
            .unwrap_or(&[])
    }

    /// Great-circle distance between two cities in km.
    pub fn city_distance_km(&self, a: u32, b: u32) -> f64 {
        let (ca, cb) = (self.city(a), self.city(b));
        haversine_km(ca.lat, ca.lon, cb.lat, cb.lon)
    }

    /// A random address inside a kept network.
    pub fn random_ip(&self, net: u32, rng: &mut impl Rng) -> IpAddr {
        random_in(&self.nets[net as usize].net, rng)
    }
}

fn prefix_isp(net: &IpNetwork, isps: &mut Vec<IspAcc>, keys: &mut HashMap<(bool, u64), u32>) -> (u32, NetKind) {
    let (v6, key, name) = match net {
        IpNetwork::V4(n) => {
            let o = n.network().octets();
            (
                false,
                ((o[0] as u64) << 8) | o[1] as u64,
                format!("{}.{}.0.0/16", o[0], o[1]),
            )
        }
        IpNetwork::V6(n) => {
            let s = n.network().segments();
            (
                true,
                ((s[0] as u64) << 16) | s[1] as u64,
                format!("{:x}:{:x}::/32", s[0], s[1]),
            )
        }
    };
    let i = *keys.entry((true, key | ((v6 as u64) << 40))).or_insert_with(|| {
        isps.push(IspAcc {
            asn: None,
            name,
            kind: NetKind::Residential,
        });
        (isps.len() - 1) as u32
    });
    (i, NetKind::Residential)
}

/// A random host address inside `net` (avoiding the network and broadcast addresses
/// of IPv4 networks larger than /31; IPv6 gets a random /64 and interface id).
pub fn random_in(net: &IpNetwork, rng: &mut impl Rng) -> IpAddr {
    match net {
        IpNetwork::V4(n) => {
            let p = n.prefix() as u32;
            let base = u32::from(n.network());
            if p >= 31 {
                let host = if p == 32 { 0 } else { rng.gen_range(0..2) };
                return IpAddr::V4(Ipv4Addr::from(base | host));
            }
            let size = 1u64 << (32 - p);
            let host = rng.gen_range(1..size - 1) as u32;
            IpAddr::V4(Ipv4Addr::from(base | host))
        }
        IpNetwork::V6(n) => {
            let p = n.prefix() as u32;
            let base = u128::from(n.network());
            let host_bits = 128 - p;
            let mask: u128 = if host_bits >= 128 {
                u128::MAX
            } else {
                (1u128 << host_bits) - 1
            };
            let mut r: u128 = rng.gen();
            r &= mask;
            if host_bits >= 64 && (r & 0xffff_ffff_ffff_ffff) < 2 {
                r |= 0x1_0000_0001;
            }
            if r == 0 && mask > 0 {
                r = 1;
            }
            IpAddr::V6(Ipv6Addr::from(base | r))
        }
    }
}

/// A random /64 prefix inside an IPv6 network (the network itself if narrower).
pub fn random_v6_prefix(net: &IpNetwork, rng: &mut impl Rng) -> Option<u128> {
    match net {
        IpNetwork::V6(n) => {
            let base = u128::from(n.network());
            let p = n.prefix() as u32;
            if p >= 64 {
                return Some(base & !((1u128 << 64) - 1));
            }
            let sub_bits = 64 - p;
            let r: u64 = rng.gen();
            let sub = if sub_bits >= 64 {
                r
            } else {
                r & ((1u64 << sub_bits) - 1)
            };
            Some(base | ((sub as u128) << 64))
        }
        IpNetwork::V4(_) => None,
    }
}

/// An address with a fixed /64 prefix and a random (privacy-extension) interface id,
/// kept inside `net` when the network is narrower than /64.
pub fn v6_with_prefix(net: &IpNetwork, prefix: u128, rng: &mut impl Rng) -> IpAddr {
    match net {
        IpNetwork::V6(n) if n.prefix() <= 64 => {
            let mut iid: u64 = rng.gen();
            if iid < 2 {
                iid = 0x1234_5678;
            }
            IpAddr::V6(Ipv6Addr::from(prefix | iid as u128))
        }
        _ => random_in(net, rng),
    }
}

/// Great-circle distance in km.
pub fn haversine_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let r = 6371.0088;
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * r * a.sqrt().min(1.0).asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_ranges() {
        assert!(is_reserved("10.1.2.3".parse().unwrap()));
        assert!(is_reserved("100.64.0.1".parse().unwrap()));
        assert!(is_reserved("192.168.1.1".parse().unwrap()));
        assert!(!is_reserved("81.2.69.160".parse().unwrap()));
        assert!(is_reserved("2001:db8::1".parse().unwrap()));
        assert!(is_reserved("fe80::1".parse().unwrap()));
        assert!(!is_reserved("2a02:1234::1".parse().unwrap()));
    }

    #[test]
    fn classify_names() {
        assert_eq!(classify_org("DIGITALOCEAN-ASN"), NetKind::Hosting);
        assert_eq!(classify_org("M247 Europe SRL"), NetKind::Hosting);
        assert_eq!(classify_org("T-Mobile USA, Inc."), NetKind::Mobile);
        assert_eq!(classify_org("Deutsche Telekom AG"), NetKind::Residential);
    }

    #[test]
    fn random_addresses_stay_inside() {
        let mut rng = StdRng::seed_from_u64(1);
        let n: IpNetwork = "81.2.69.0/24".parse().unwrap();
        let n6: IpNetwork = "2a02:1200::/29".parse().unwrap();
        for _ in 0..200 {
            assert!(n.contains(random_in(&n, &mut rng)));
            assert!(n6.contains(random_in(&n6, &mut rng)));
            let p = random_v6_prefix(&n6, &mut rng).unwrap();
            assert!(n6.contains(v6_with_prefix(&n6, p, &mut rng)));
        }
    }
}
