//! IANA time zone of a place from its country and coordinates, for databases without a
//! `timezone` field (DB-IP Lite). Single-zone countries map directly; for countries
//! spanning several zones the nearest reference city decides. Getting real zones (not
//! fixed offsets) matters: daylight-saving shifts move local working hours in UTC.

use super::geo::haversine_km;

/// (country, zone) for countries with one zone that matters.
const SINGLE: &[(&str, &str)] = &[
    ("AD", "Europe/Andorra"),
    ("AE", "Asia/Dubai"),
    ("AF", "Asia/Kabul"),
    ("AL", "Europe/Tirane"),
    ("AM", "Asia/Yerevan"),
    ("AO", "Africa/Luanda"),
    ("AR", "America/Argentina/Buenos_Aires"),
    ("AT", "Europe/Vienna"),
    ("AW", "America/Aruba"),
    ("AZ", "Asia/Baku"),
    ("BA", "Europe/Sarajevo"),
    ("BB", "America/Barbados"),
    ("BD", "Asia/Dhaka"),
    ("BE", "Europe/Brussels"),
    ("BF", "Africa/Ouagadougou"),
    ("BG", "Europe/Sofia"),
    ("BH", "Asia/Bahrain"),
    ("BI", "Africa/Bujumbura"),
    ("BJ", "Africa/Porto-Novo"),
    ("BN", "Asia/Brunei"),
    ("BO", "America/La_Paz"),
    ("BS", "America/Nassau"),
    ("BT", "Asia/Thimphu"),
    ("BW", "Africa/Gaborone"),
    ("BY", "Europe/Minsk"),
    ("BZ", "America/Belize"),
    ("CG", "Africa/Brazzaville"),
    ("CH", "Europe/Zurich"),
    ("CI", "Africa/Abidjan"),
    ("CL", "America/Santiago"),
    ("CM", "Africa/Douala"),
    ("CN", "Asia/Shanghai"),
    ("CO", "America/Bogota"),
    ("CR", "America/Costa_Rica"),
    ("CU", "America/Havana"),
    ("CV", "Atlantic/Cape_Verde"),
    ("CW", "America/Curacao"),
    ("CY", "Asia/Nicosia"),
    ("CZ", "Europe/Prague"),
    ("DE", "Europe/Berlin"),
    ("DJ", "Africa/Djibouti"),
    ("DK", "Europe/Copenhagen"),
    ("DO", "America/Santo_Domingo"),
    ("DZ", "Africa/Algiers"),
    ("EC", "America/Guayaquil"),
    ("EE", "Europe/Tallinn"),
    ("EG", "Africa/Cairo"),
    ("ER", "Africa/Asmara"),
    ("ET", "Africa/Addis_Ababa"),
    ("FI", "Europe/Helsinki"),
    ("FJ", "Pacific/Fiji"),
    ("FO", "Atlantic/Faroe"),
    ("FR", "Europe/Paris"),
    ("GA", "Africa/Libreville"),
    ("GB", "Europe/London"),
    ("GE", "Asia/Tbilisi"),
    ("GG", "Europe/Guernsey"),
    ("GH", "Africa/Accra"),
    ("GI", "Europe/Gibraltar"),
    ("GM", "Africa/Banjul"),
    ("GN", "Africa/Conakry"),
    ("GR", "Europe/Athens"),
    ("GT", "America/Guatemala"),
    ("GY", "America/Guyana"),
    ("HK", "Asia/Hong_Kong"),
    ("HN", "America/Tegucigalpa"),
    ("HR", "Europe/Zagreb"),
    ("HT", "America/Port-au-Prince"),
    ("HU", "Europe/Budapest"),
    ("IE", "Europe/Dublin"),
    ("IL", "Asia/Jerusalem"),
    ("IM", "Europe/Isle_of_Man"),
    ("IN", "Asia/Kolkata"),
    ("IQ", "Asia/Baghdad"),
    ("IR", "Asia/Tehran"),
    ("IS", "Atlantic/Reykjavik"),
    ("IT", "Europe/Rome"),
    ("JE", "Europe/Jersey"),
    ("JM", "America/Jamaica"),
    ("JO", "Asia/Amman"),
    ("JP", "Asia/Tokyo"),
    ("KE", "Africa/Nairobi"),
    ("KG", "Asia/Bishkek"),
    ("KH", "Asia/Phnom_Penh"),
    ("KR", "Asia/Seoul"),
    ("KW", "Asia/Kuwait"),
    ("KZ", "Asia/Almaty"),
    ("LA", "Asia/Vientiane"),
    ("LB", "Asia/Beirut"),
    ("LI", "Europe/Vaduz"),
    ("LK", "Asia/Colombo"),
    ("LR", "Africa/Monrovia"),
    ("LS", "Africa/Maseru"),
    ("LT", "Europe/Vilnius"),
    ("LU", "Europe/Luxembourg"),
    ("LV", "Europe/Riga"),
    ("LY", "Africa/Tripoli"),
    ("MA", "Africa/Casablanca"),
    ("MC", "Europe/Monaco"),
    ("MD", "Europe/Chisinau"),
    ("ME", "Europe/Podgorica"),
    ("MG", "Indian/Antananarivo"),
    ("MK", "Europe/Skopje"),
    ("ML", "Africa/Bamako"),
    ("MM", "Asia/Yangon"),
    ("MN", "Asia/Ulaanbaatar"),
    ("MO", "Asia/Macau"),
    ("MT", "Europe/Malta"),
    ("MU", "Indian/Mauritius"),
    ("MV", "Indian/Maldives"),
    ("MW", "Africa/Blantyre"),
    ("MY", "Asia/Kuala_Lumpur"),
    ("MZ", "Africa/Maputo"),
    ("NA", "Africa/Windhoek"),
    ("NE", "Africa/Niamey"),
    ("NG", "Africa/Lagos"),
    ("NI", "America/Managua"),
    ("NL", "Europe/Amsterdam"),
    ("NO", "Europe/Oslo"),
    ("NP", "Asia/Kathmandu"),
    ("NZ", "Pacific/Auckland"),
    ("OM", "Asia/Muscat"),
    ("PA", "America/Panama"),
    ("PE", "America/Lima"),
    ("PG", "Pacific/Port_Moresby"),
    ("PH", "Asia/Manila"),
    ("PK", "Asia/Karachi"),
    ("PL", "Europe/Warsaw"),
    ("PR", "America/Puerto_Rico"),
    ("PS", "Asia/Gaza"),
    ("PY", "America/Asuncion"),
    ("QA", "Asia/Qatar"),
    ("RE", "Indian/Reunion"),
    ("RO", "Europe/Bucharest"),
    ("RS", "Europe/Belgrade"),
    ("RW", "Africa/Kigali"),
    ("SA", "Asia/Riyadh"),
    ("SC", "Indian/Mahe"),
    ("SD", "Africa/Khartoum"),
    ("SE", "Europe/Stockholm"),
    ("SG", "Asia/Singapore"),
    ("SI", "Europe/Ljubljana"),
    ("SK", "Europe/Bratislava"),
    ("SL", "Africa/Freetown"),
    ("SM", "Europe/San_Marino"),
    ("SN", "Africa/Dakar"),
    ("SO", "Africa/Mogadishu"),
    ("SR", "America/Paramaribo"),
    ("SS", "Africa/Juba"),
    ("SV", "America/El_Salvador"),
    ("SY", "Asia/Damascus"),
    ("SZ", "Africa/Mbabane"),
    ("TD", "Africa/Ndjamena"),
    ("TG", "Africa/Lome"),
    ("TH", "Asia/Bangkok"),
    ("TJ", "Asia/Dushanbe"),
    ("TM", "Asia/Ashgabat"),
    ("TN", "Africa/Tunis"),
    ("TR", "Europe/Istanbul"),
    ("TT", "America/Port_of_Spain"),
    ("TW", "Asia/Taipei"),
    ("TZ", "Africa/Dar_es_Salaam"),
    ("UA", "Europe/Kyiv"),
    ("UG", "Africa/Kampala"),
    ("UY", "America/Montevideo"),
    ("UZ", "Asia/Tashkent"),
    ("VA", "Europe/Vatican"),
    ("VE", "America/Caracas"),
    ("VN", "Asia/Ho_Chi_Minh"),
    ("XK", "Europe/Belgrade"),
    ("YE", "Asia/Aden"),
    ("ZA", "Africa/Johannesburg"),
    ("ZM", "Africa/Lusaka"),
    ("ZW", "Africa/Harare"),
];

/// Reference cities (zone, lat, lon) of countries spanning several zones.
/// (zone, latitude, longitude) of a reference city.
type Ref = (&'static str, f64, f64);

const MULTI: &[(&str, &[Ref])] = &[
    (
        "US",
        &[
            ("America/New_York", 40.7, -74.0),
            ("America/New_York", 42.4, -71.1),
            ("America/New_York", 38.9, -77.0),
            ("America/New_York", 33.7, -84.4),
            ("America/New_York", 25.8, -80.2),
            ("America/New_York", 28.5, -81.4),
            ("America/New_York", 35.2, -80.8),
            ("America/New_York", 39.95, -75.2),
            ("America/New_York", 40.4, -80.0),
            ("America/New_York", 39.1, -84.5),
            ("America/Detroit", 42.3, -83.0),
            ("America/Indiana/Indianapolis", 39.8, -86.2),
            ("America/Kentucky/Louisville", 38.25, -85.76),
            ("America/Chicago", 41.9, -87.6),
            ("America/Chicago", 29.8, -95.4),
            ("America/Chicago", 32.8, -96.8),
            ("America/Chicago", 30.3, -97.7),
            ("America/Chicago", 29.4, -98.5),
            ("America/Chicago", 44.98, -93.3),
            ("America/Chicago", 39.1, -94.6),
            ("America/Chicago", 36.2, -86.8),
            ("America/Chicago", 38.6, -90.2),
            ("America/Chicago", 29.95, -90.1),
            ("America/Chicago", 43.0, -87.9),
            ("America/Chicago", 35.5, -97.5),
            ("America/Chicago", 41.3, -96.0),
            ("America/Denver", 39.7, -105.0),
            ("America/Denver", 40.8, -111.9),
            ("America/Denver", 35.1, -106.6),
            ("America/Denver", 31.8, -106.4),
            ("America/Boise", 43.6, -116.2),
            ("America/Phoenix", 33.4, -112.1),
            ("America/Phoenix", 32.2, -110.9),
            ("America/Los_Angeles", 34.05, -118.25),
            ("America/Los_Angeles", 37.8, -122.4),
            ("America/Los_Angeles", 37.35, -121.9),
            ("America/Los_Angeles", 32.7, -117.2),
            ("America/Los_Angeles", 38.6, -121.5),
            ("America/Los_Angeles", 36.2, -115.1),
            ("America/Los_Angeles", 45.5, -122.7),
            ("America/Los_Angeles", 47.6, -122.3),
            ("America/Los_Angeles", 47.7, -117.4),
            ("America/Anchorage", 61.2, -149.9),
            ("Pacific/Honolulu", 21.3, -157.9),
        ],
    ),
    (
        "CA",
        &[
            ("America/Toronto", 43.7, -79.4),
            ("America/Toronto", 45.4, -75.7),
            ("America/Toronto", 45.5, -73.6),
            ("America/Toronto", 46.8, -71.2),
            ("America/Halifax", 44.6, -63.6),
            ("America/Moncton", 46.1, -64.8),
            ("America/St_Johns", 47.6, -52.7),
            ("America/Winnipeg", 49.9, -97.1),
            ("America/Regina", 50.4, -104.6),
            ("America/Regina", 52.1, -106.7),
            ("America/Edmonton", 53.5, -113.5),
            ("America/Edmonton", 51.0, -114.1),
            ("America/Vancouver", 49.3, -123.1),
            ("America/Vancouver", 48.4, -123.4),
        ],
    ),
    (
        "MX",
        &[
            ("America/Mexico_City", 19.4, -99.1),
            ("America/Mexico_City", 20.7, -103.3),
            ("America/Monterrey", 25.7, -100.3),
            ("America/Merida", 21.0, -89.6),
            ("America/Cancun", 21.2, -86.8),
            ("America/Chihuahua", 28.6, -106.1),
            ("America/Hermosillo", 29.1, -111.0),
            ("America/Mazatlan", 23.2, -106.4),
            ("America/Tijuana", 32.5, -117.0),
        ],
    ),
    (
        "BR",
        &[
            ("America/Sao_Paulo", -23.5, -46.6),
            ("America/Sao_Paulo", -22.9, -43.2),
            ("America/Sao_Paulo", -19.9, -43.9),
            ("America/Sao_Paulo", -25.4, -49.3),
            ("America/Sao_Paulo", -30.0, -51.2),
            ("America/Sao_Paulo", -15.8, -47.9),
            ("America/Sao_Paulo", -16.7, -49.3),
            ("America/Bahia", -13.0, -38.5),
            ("America/Fortaleza", -3.7, -38.5),
            ("America/Recife", -8.05, -34.9),
            ("America/Maceio", -9.7, -35.7),
            ("America/Belem", -1.45, -48.5),
            ("America/Manaus", -3.1, -60.0),
            ("America/Cuiaba", -15.6, -56.1),
            ("America/Campo_Grande", -20.5, -54.6),
            ("America/Porto_Velho", -8.8, -63.9),
        ],
    ),
    (
        "AU",
        &[
            ("Australia/Sydney", -33.9, 151.2),
            ("Australia/Sydney", -35.3, 149.1),
            ("Australia/Melbourne", -37.8, 145.0),
            ("Australia/Brisbane", -27.5, 153.0),
            ("Australia/Brisbane", -19.3, 146.8),
            ("Australia/Adelaide", -34.9, 138.6),
            ("Australia/Perth", -31.95, 115.9),
            ("Australia/Darwin", -12.5, 130.8),
            ("Australia/Hobart", -42.9, 147.3),
        ],
    ),
    (
        "RU",
        &[
            ("Europe/Moscow", 55.75, 37.6),
            ("Europe/Moscow", 59.9, 30.3),
            ("Europe/Moscow", 56.3, 44.0),
            ("Europe/Moscow", 55.8, 49.1),
            ("Europe/Moscow", 47.2, 39.7),
            ("Europe/Samara", 53.2, 50.1),
            ("Asia/Yekaterinburg", 56.8, 60.6),
            ("Asia/Yekaterinburg", 55.2, 61.4),
            ("Asia/Omsk", 55.0, 73.4),
            ("Asia/Novosibirsk", 55.0, 82.9),
            ("Asia/Krasnoyarsk", 56.0, 92.9),
            ("Asia/Irkutsk", 52.3, 104.3),
            ("Asia/Vladivostok", 43.1, 131.9),
            ("Europe/Kaliningrad", 54.7, 20.5),
        ],
    ),
    (
        "ID",
        &[
            ("Asia/Jakarta", -6.2, 106.8),
            ("Asia/Jakarta", -7.25, 112.75),
            ("Asia/Jakarta", 3.6, 98.7),
            ("Asia/Pontianak", -0.03, 109.3),
            ("Asia/Makassar", -5.1, 119.4),
            ("Asia/Makassar", -8.65, 115.2),
            ("Asia/Jayapura", -2.5, 140.7),
        ],
    ),
    (
        "ES",
        &[
            ("Europe/Madrid", 40.4, -3.7),
            ("Europe/Madrid", 41.4, 2.2),
            ("Europe/Madrid", 37.4, -6.0),
            ("Atlantic/Canary", 28.1, -15.4),
            ("Atlantic/Canary", 28.5, -16.3),
        ],
    ),
    (
        "PT",
        &[
            ("Europe/Lisbon", 38.7, -9.1),
            ("Europe/Lisbon", 41.15, -8.6),
            ("Atlantic/Madeira", 32.65, -16.9),
            ("Atlantic/Azores", 37.7, -25.7),
        ],
    ),
    (
        "CD",
        &[
            ("Africa/Kinshasa", -4.3, 15.3),
            ("Africa/Lubumbashi", -11.7, 27.5),
            ("Africa/Lubumbashi", -1.7, 29.2),
        ],
    ),
];

/// The IANA zone of a place, when the country is known to the table.
pub fn zone_for(country: &str, lat: f64, lon: f64) -> Option<&'static str> {
    if let Some((_, refs)) = MULTI.iter().find(|(c, _)| *c == country) {
        return refs
            .iter()
            .min_by(|a, b| {
                let da = haversine_km(lat, lon, a.1, a.2);
                let db = haversine_km(lat, lon, b.1, b.2);
                da.partial_cmp(&db).unwrap_or(std::cmp::Ordering::Equal)
            })
            .map(|r| r.0);
    }
    SINGLE
        .binary_search_by(|(c, _)| (*c).cmp(country))
        .ok()
        .map(|i| SINGLE[i].1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Tz;

    #[test]
    fn table_is_sorted_and_valid() {
        for w in SINGLE.windows(2) {
            assert!(w[0].0 < w[1].0, "{} !< {}", w[0].0, w[1].0);
        }
        for (_, z) in SINGLE {
            assert!(z.parse::<Tz>().is_ok(), "{z}");
        }
        for (_, refs) in MULTI {
            for r in refs.iter() {
                assert!(r.0.parse::<Tz>().is_ok(), "{}", r.0);
            }
        }
    }

    #[test]
    fn picks_the_right_zone() {
        assert_eq!(zone_for("GB", 51.5, -0.1), Some("Europe/London"));
        assert_eq!(zone_for("US", 39.04, -77.49), Some("America/New_York")); // Ashburn
        assert_eq!(zone_for("US", 37.77, -122.42), Some("America/Los_Angeles"));
        assert_eq!(zone_for("US", 41.88, -87.63), Some("America/Chicago"));
        assert_eq!(zone_for("AU", -31.9, 115.8), Some("Australia/Perth"));
        assert_eq!(zone_for("ZZ", 0.0, 0.0), None);
    }
}
