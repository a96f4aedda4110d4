//! The fixture geo databases, written to disk and read back with the
//! `maxminddb` reader exactly as the enrichment stage opens real databases.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use maxminddb::{geoip2, Reader};
use serde::Deserialize;
use stepup::geo_fixture::{self, NetKind};

/// The DB-IP Lite (ip-location-db) flat record. The coordinates are MMDB
/// `float`s (32-bit), as in the real package: maxminddb 0.32 refuses to decode
/// them into `f64` ("expected double, got type 15").
#[derive(Deserialize, Debug)]
struct FlatCity {
    city: String,
    country_code: String,
    latitude: f32,
    longitude: f32,
    postcode: String,
    state1: String,
    state2: String,
    timezone: String,
}

struct Fixtures {
    _dir: tempfile::TempDir,
    city: Reader<Vec<u8>>,
    flat: Reader<Vec<u8>>,
    asn: Reader<Vec<u8>>,
}

fn open() -> Fixtures {
    let dir = tempfile::tempdir().unwrap();
    let paths = geo_fixture::write_all(&dir.path().join("fixtures")).unwrap();
    assert!(paths.city.ends_with("stepup-fixture-city.mmdb"));
    assert!(paths.flat_city.ends_with("stepup-fixture-flat-city.mmdb"));
    assert!(paths.asn.ends_with("stepup-fixture-asn.mmdb"));
    // Only the three databases: no temporary files left behind.
    let entries = std::fs::read_dir(paths.city.parent().unwrap()).unwrap().count();
    assert_eq!(entries, 3);
    Fixtures {
        city: Reader::open_readfile(&paths.city).unwrap(),
        flat: Reader::open_readfile(&paths.flat_city).unwrap(),
        asn: Reader::open_readfile(&paths.asn).unwrap(),
        _dir: dir,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn lisbon_residential() -> &'static geo_fixture::Network {
    let lisbon = geo_fixture::city_index("Lisbon").unwrap();
    geo_fixture::city_networks(lisbon)
        .find(|n| n.kind == NetKind::Residential && n.net.is_ipv4())
        .unwrap()
}

fn assert_close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-4, "{a} != {b}");
}

#[test]
fn lisbon_in_geolite2_city_layout() {
    let f = open();
    assert_eq!(f.city.metadata().database_type, "GeoLite2-City");
    let addr = lisbon_residential().host(1234);
    let hit = f.city.lookup(addr).unwrap();
    assert_eq!(hit.network().unwrap(), lisbon_residential().net);
    let rec: geoip2::City = hit.decode().unwrap().unwrap();
    assert_eq!(rec.city.names.english, Some("Lisbon"));
    assert_eq!(rec.country.iso_code, Some("PT"));
    assert_eq!(rec.country.names.english, Some("Portugal"));
    assert_eq!(rec.continent.code, Some("EU"));
    assert_eq!(rec.location.time_zone, Some("Europe/Lisbon"));
    assert_close(rec.location.latitude.unwrap(), 38.7223);
    assert_close(rec.location.longitude.unwrap(), -9.1393);
    assert_eq!(rec.location.accuracy_radius, Some(10));

    // The documented address plan: Lisbon is 81.0.0.0/16.
    let rec: geoip2::City = f.city.lookup(ip("81.0.5.10")).unwrap().decode().unwrap().unwrap();
    assert_eq!(rec.city.names.english, Some("Lisbon"));
    // IPv4-mapped IPv6 resolves like IPv4.
    let rec: geoip2::City = f
        .city
        .lookup(ip("::ffff:81.0.5.10"))
        .unwrap()
        .decode()
        .unwrap()
        .unwrap();
    assert_eq!(rec.city.names.english, Some("Lisbon"));
}

#[test]
fn lisbon_in_flat_dbip_layout() {
    let f = open();
    assert_eq!(f.flat.metadata().database_type, "city ipv6");
    let addr = lisbon_residential().host(7);
    let rec: FlatCity = f.flat.lookup(addr).unwrap().decode().unwrap().unwrap();
    assert_eq!(rec.city, "Lisbon");
    assert_eq!(rec.country_code, "PT");
    assert_eq!(rec.state1, "Lisbon");
    assert_eq!(rec.timezone, "Europe/Lisbon");
    assert_eq!((rec.postcode.as_str(), rec.state2.as_str()), ("", ""));
    assert_close(f64::from(rec.latitude), 38.7223);
    assert_close(f64::from(rec.longitude), -9.1393);

    // Same types as the real database: a double-typed reader fails.
    #[derive(Deserialize, Debug)]
    struct DoubleLatitude {
        #[allow(dead_code)]
        latitude: f64,
    }
    assert!(f.flat.lookup(addr).unwrap().decode::<DoubleLatitude>().is_err());
}

#[test]
fn asn_database_gives_the_operator() {
    let f = open();
    assert_eq!(f.asn.metadata().database_type, "GeoLite2-ASN");
    let net = lisbon_residential();
    let rec: geoip2::Asn = f.asn.lookup(net.host(99)).unwrap().decode().unwrap().unwrap();
    assert_eq!(rec.autonomous_system_number, Some(net.asn));
    assert_eq!(rec.autonomous_system_organization, Some(net.org));
    assert_eq!(rec.autonomous_system_number, Some(3243));

    // A hosting network is flagged through its ASN.
    let hosting = geo_fixture::networks()
        .iter()
        .find(|n| n.kind == NetKind::Hosting)
        .unwrap();
    let rec: geoip2::Asn = f.asn.lookup(hosting.host(3)).unwrap().decode().unwrap().unwrap();
    assert!(geo_fixture::is_hosting_asn(rec.autonomous_system_number.unwrap()));
}

#[test]
fn ipv6_addresses_resolve() {
    let f = open();
    let tokyo = geo_fixture::city_index("Tokyo").unwrap();
    let v6 = geo_fixture::city_networks(tokyo)
        .find(|n| n.net.is_ipv6() && n.kind == NetKind::Mobile)
        .unwrap();
    let addr = v6.host(0xdead_beef);
    assert!(addr.is_ipv6());
    let rec: geoip2::City = f.city.lookup(addr).unwrap().decode().unwrap().unwrap();
    assert_eq!(rec.city.names.english, Some("Tokyo"));
    assert_eq!(rec.country.iso_code, Some("JP"));
    assert_eq!(rec.location.time_zone, Some("Asia/Tokyo"));
    let flat: FlatCity = f.flat.lookup(addr).unwrap().decode().unwrap().unwrap();
    assert_eq!(flat.city, "Tokyo");
    let asn: geoip2::Asn = f.asn.lookup(addr).unwrap().decode().unwrap().unwrap();
    assert_eq!(asn.autonomous_system_number, Some(9605));

    // Lisbon's documented /48.
    let rec: geoip2::City = f.city.lookup(ip("2a0c:5c00::1234")).unwrap().decode().unwrap().unwrap();
    assert_eq!(rec.city.names.english, Some("Lisbon"));
}

#[test]
fn addresses_outside_every_network_have_no_data() {
    let f = open();
    for miss in [
        "81.0.64.1",      // unused slot 4 of Lisbon's /16
        "81.200.0.1",     // beyond the last city
        "9.9.9.9",        // elsewhere
        "192.168.1.10",   // private: never in the fixture
        "10.1.2.3",       // private
        "2a0c:5c00:3::1", // unused IPv6 slot
        "2001:db8::1",    // documentation
    ] {
        for reader in [&f.city, &f.flat, &f.asn] {
            let hit = reader.lookup(ip(miss)).unwrap();
            assert!(!hit.has_data(), "{miss} should have no data");
        }
    }
}

#[test]
fn world_shape() {
    let cities = geo_fixture::cities();
    assert!(cities.len() >= 45, "{} cities", cities.len());
    let countries: HashSet<_> = cities.iter().map(|c| c.country).collect();
    assert!(countries.len() >= 25);

    // Every city has at least 3 (IPv4) networks: 2 residential + 1 mobile.
    for (i, city) in cities.iter().enumerate() {
        let nets: Vec<_> = geo_fixture::city_networks(i).filter(|n| n.net.is_ipv4()).collect();
        assert!(nets.len() >= 3, "{} has {} networks", city.name, nets.len());
        let residential = nets.iter().filter(|n| n.kind == NetKind::Residential).count();
        let mobile = nets.iter().filter(|n| n.kind == NetKind::Mobile).count();
        assert_eq!((residential, mobile), (2, 1), "{}", city.name);
    }

    // Each hosting ASN spans several countries; together they span at least 3.
    let mut hosting_countries: HashMap<u32, HashSet<&str>> = HashMap::new();
    for n in geo_fixture::networks() {
        assert_eq!(n.kind == NetKind::Hosting, geo_fixture::is_hosting_asn(n.asn));
        if n.kind == NetKind::Hosting {
            hosting_countries.entry(n.asn).or_default().insert(n.city().country);
        }
    }
    assert!(hosting_countries.len() >= 3);
    for (asn, countries) in &hosting_countries {
        assert!(countries.len() >= 3, "AS{asn} in {countries:?}");
    }
    let all: HashSet<_> = hosting_countries.values().flatten().collect();
    assert!(all.len() >= 3);

    // Residential ASNs are shared across the cities of a country.
    let us: HashSet<u32> = geo_fixture::networks()
        .iter()
        .filter(|n| n.city().country == "US" && n.kind == NetKind::Residential)
        .map(|n| n.asn)
        .collect();
    assert!(us.len() <= 3, "{us:?}");
}

#[test]
fn every_network_resolves_to_its_city_in_all_layouts() {
    let f = open();
    for n in geo_fixture::networks() {
        let addr = n.host(42);
        let city: geoip2::City = f.city.lookup(addr).unwrap().decode().unwrap().unwrap();
        assert_eq!(city.city.names.english, Some(n.city().name), "{addr}");
        assert_eq!(city.location.accuracy_radius, Some(n.accuracy_km()));
        let flat: FlatCity = f.flat.lookup(addr).unwrap().decode().unwrap().unwrap();
        assert_eq!(flat.city, n.city().name);
        assert_eq!(flat.country_code, n.city().country);
        let asn: geoip2::Asn = f.asn.lookup(addr).unwrap().decode().unwrap().unwrap();
        assert_eq!(asn.autonomous_system_number, Some(n.asn));
    }
}
