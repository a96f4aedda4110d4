//! Time parsing and formatting for the hot path: RFC 3339 in, epoch milliseconds
//! inside, RFC 3339 UTC with milliseconds out (written without allocation).

use chrono::DateTime;

/// The wall clock, epoch milliseconds (for the edges: the hot path never reads it).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Parse an RFC 3339 timestamp to epoch milliseconds. The common UTC shape
/// (`YYYY-MM-DDTHH:MM:SS[.fff...]Z`) takes a fast path; anything else goes to chrono.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    fast_utc(s.as_bytes()).or_else(|| DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp_millis()))
}

fn digits(b: &[u8]) -> Option<i64> {
    let mut v = 0i64;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as i64;
    }
    Some(v)
}

/// Days from 1970-01-01 to y-m-d (Howard Hinnant's days_from_civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn fast_utc(b: &[u8]) -> Option<i64> {
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    let (h, mi, sec) = (digits(&b[11..13])?, digits(&b[14..16])?, digits(&b[17..19])?);
    let mut ms = 0;
    let mut i = 19;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let frac = &b[start..i];
        if frac.is_empty() {
            return None;
        }
        let mut scale = 100;
        for &c in frac.iter().take(3) {
            ms += (c - b'0') as i64 * scale;
            scale /= 10;
        }
    }
    if i + 1 != b.len() || !matches!(b[i], b'Z' | b'z') {
        return None;
    }
    let dim = match mo {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => return None,
    };
    // chrono accepts a leap second (60) on the wire; leave those to it
    if d < 1 || d > dim || h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    Some(((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60_000 + sec * 1000 + ms)
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
        // the fast path agrees with chrono on every shape it takes, and declines the rest
        for s in [
            "2026-03-02T08:15:03Z",
            "2026-03-02t08:15:03.1z",
            "2024-02-29T23:59:59.123456Z",
            "1970-01-01T00:00:00.000Z",
            "2100-12-31T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-03-02T24:00:00Z",
            "2026-03-02T08:15:60Z",
            "2026-03-02T08:15:03.Z",
            "2026-03-02T08:15:03+00:00",
            "2026-03-02 08:15:03Z",
            "+026-03-02T08:15:03Z",
        ] {
            let chrono = chrono::DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|t| t.timestamp_millis());
            assert_eq!(parse_rfc3339_ms(s), chrono, "{s}");
            if let Some(fast) = fast_utc(s.as_bytes()) {
                assert_eq!(Some(fast), chrono, "{s}");
            }
        }
    }
}
