//! Time parsing and formatting for the hot path: RFC 3339 in, epoch milliseconds
//! inside, RFC 3339 UTC with milliseconds out (written without allocation).

use chrono::DateTime;

/// Parse an RFC 3339 timestamp to epoch milliseconds.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp_millis())
}

/// Parse either an RFC 3339 timestamp or a `YYYY-MM-DD` date (midnight UTC).
pub fn parse_date_or_time_ms(s: &str) -> Option<i64> {
    if let Some(ms) = parse_rfc3339_ms(s) {
        return Some(ms);
    }
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

/// Days since 1970-01-01 → (year, month, day). Howard Hinnant's civil_from_days.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Append `ms` as `YYYY-MM-DDTHH:MM:SS.mmmZ` to `out`.
pub fn write_rfc3339_ms(out: &mut Vec<u8>, ms: i64) {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, mo, d) = civil_from_days(days);
    let (h, mi, s, milli) = (rem / 3_600_000, rem / 60_000 % 60, rem / 1000 % 60, rem % 1000);
    let y = y.clamp(0, 9999) as u32;
    let mut buf = *b"0000-00-00T00:00:00.000Z";
    put(&mut buf[0..4], y);
    put(&mut buf[5..7], mo);
    put(&mut buf[8..10], d);
    put(&mut buf[11..13], h as u32);
    put(&mut buf[14..16], mi as u32);
    put(&mut buf[17..19], s as u32);
    put(&mut buf[20..23], milli as u32);
    out.extend_from_slice(&buf);
}

fn put(dst: &mut [u8], mut v: u32) {
    for b in dst.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// Format to a String (for tests and the edges).
pub fn rfc3339_ms(ms: i64) -> String {
    let mut v = Vec::with_capacity(24);
    write_rfc3339_ms(&mut v, ms);
    String::from_utf8_lossy(&v).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for s in [
            "2026-03-02T08:15:03.120Z",
            "1999-12-31T23:59:59.999Z",
            "2024-02-29T00:00:00.000Z",
        ] {
            let ms = parse_rfc3339_ms(s).unwrap();
            assert_eq!(rfc3339_ms(ms), s);
        }
        assert_eq!(
            parse_rfc3339_ms("2026-03-02T09:15:03+01:00"),
            parse_rfc3339_ms("2026-03-02T08:15:03Z")
        );
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
        assert_eq!(
            parse_date_or_time_ms("2026-01-31"),
            parse_rfc3339_ms("2026-01-31T00:00:00Z")
        );
    }
}
