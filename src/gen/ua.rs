//! Realistic user-agent strings whose browser versions follow the real release
//! calendars (Chrome/Edge every 4 weeks, Firefox every 4 weeks, Safari with the OS
//! point releases), so a device's UA string changes every few weeks as it auto-updates.
//!
//! Release dates up to early 2026 are the published ones (approximately); later ones
//! are extrapolated at the vendors' cadence. Chrome and Edge send the reduced UA
//! (`Chrome/145.0.0.0`, `Android 10; K`, macOS frozen at `10_15_7`); iOS 26 Safari
//! freezes the OS token at `18_6`.

use chrono::{Datelike, NaiveDate};
use rand::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Os {
    Windows,
    MacOs,
    Linux,
    Ios,
    Android,
}

impl Os {
    pub fn is_mobile(self) -> bool {
        matches!(self, Os::Ios | Os::Android)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Browser {
    Chrome,
    Edge,
    Firefox,
    /// Firefox Extended Support Release (version frozen for a year).
    FirefoxEsr,
    Safari,
    Samsung,
}

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).expect("valid date")
}

/// (major, stable release date)
fn chrome_table() -> [(u32, NaiveDate); 20] {
    [
        (130, d(2024, 10, 15)),
        (131, d(2024, 11, 12)),
        (132, d(2025, 1, 14)),
        (133, d(2025, 2, 4)),
        (134, d(2025, 3, 4)),
        (135, d(2025, 4, 1)),
        (136, d(2025, 4, 29)),
        (137, d(2025, 5, 27)),
        (138, d(2025, 6, 24)),
        (139, d(2025, 8, 5)),
        (140, d(2025, 9, 2)),
        (141, d(2025, 9, 30)),
        (142, d(2025, 10, 28)),
        (143, d(2025, 12, 2)),
        (144, d(2026, 1, 13)),
        (145, d(2026, 2, 10)),
        (146, d(2026, 3, 10)),
        (147, d(2026, 4, 7)),
        (148, d(2026, 5, 5)),
        (149, d(2026, 6, 2)),
    ]
}

fn firefox_table() -> [(u32, NaiveDate); 14] {
    [
        (136, d(2025, 3, 4)),
        (137, d(2025, 4, 1)),
        (138, d(2025, 4, 29)),
        (139, d(2025, 5, 27)),
        (140, d(2025, 6, 24)),
        (141, d(2025, 7, 22)),
        (142, d(2025, 8, 19)),
        (143, d(2025, 9, 16)),
        (144, d(2025, 10, 14)),
        (145, d(2025, 11, 11)),
        (146, d(2025, 12, 9)),
        (147, d(2026, 1, 13)),
        (148, d(2026, 2, 24)),
        (149, d(2026, 3, 24)),
    ]
}

/// (major, minor, release date) of Safari / iOS / macOS point releases.
fn safari_table() -> [(u32, u32, NaiveDate); 10] {
    [
        (18, 2, d(2024, 12, 11)),
        (18, 3, d(2025, 1, 27)),
        (18, 4, d(2025, 3, 31)),
        (18, 5, d(2025, 5, 12)),
        (18, 6, d(2025, 7, 29)),
        (26, 0, d(2025, 9, 15)),
        (26, 1, d(2025, 11, 3)),
        (26, 2, d(2025, 12, 12)),
        (26, 3, d(2026, 2, 11)),
        (26, 4, d(2026, 3, 30)),
    ]
}

fn major_at(table: &[(u32, NaiveDate)], date: NaiveDate, cadence_days: i64) -> (u32, i64) {
    let (first_v, first_d) = table[0];
    let (last_v, last_d) = table[table.len() - 1];
    if date < first_d {
        let back = (first_d - date).num_days();
        let steps = (back + cadence_days - 1) / cadence_days;
        let v = first_v.saturating_sub(steps as u32);
        let rel = first_d - chrono::Duration::days(steps * cadence_days);
        return (v, (date - rel).num_days());
    }
    if date >= last_d {
        let steps = (date - last_d).num_days() / cadence_days;
        let rel = last_d + chrono::Duration::days(steps * cadence_days);
        return (last_v + steps as u32, (date - rel).num_days());
    }
    let i = table.partition_point(|&(_, rd)| rd <= date) - 1;
    (table[i].0, (date - table[i].1).num_days())
}

/// Chrome stable major on `date`, and days since that major shipped.
pub fn chrome_major(date: NaiveDate) -> (u32, i64) {
    major_at(&chrome_table(), date, 28)
}

/// Firefox release major on `date`.
pub fn firefox_major(date: NaiveDate) -> (u32, i64) {
    major_at(&firefox_table(), date, 28)
}

/// Firefox ESR major on `date` (a new ESR branch roughly every year).
pub fn firefox_esr_major(date: NaiveDate) -> u32 {
    if date < d(2025, 6, 24) {
        128
    } else if date < d(2026, 6, 23) {
        140
    } else {
        152
    }
}

/// Safari (major, minor) on `date`.
pub fn safari_version(date: NaiveDate) -> (u32, u32) {
    let t = safari_table();
    if date < t[0].2 {
        return (18, 1);
    }
    let last = t[t.len() - 1];
    if date >= last.2 {
        // ~7 weeks between point releases, a new major each mid-September.
        let year = date.year();
        let sept = d(year, 9, 15);
        if date >= sept {
            let m = ((date - sept).num_days() / 49) as u32;
            return (26 + (year - 2025) as u32, m.min(6));
        }
        if year > 2026 {
            let prev = d(year - 1, 9, 15);
            let m = ((date - prev).num_days() / 49) as u32;
            return (26 + (year - 1 - 2025) as u32, m.min(6));
        }
        let m = last.1 + ((date - last.2).num_days() / 49) as u32;
        return (last.0, m.min(6));
    }
    let i = t.partition_point(|&(_, _, rd)| rd <= date) - 1;
    (t[i].0, t[i].1)
}

/// Samsung Internet major (about three majors a year).
pub fn samsung_major(date: NaiveDate) -> u32 {
    let days = (date - d(2025, 1, 15)).num_days();
    (27 + days.div_euclid(120)).max(20) as u32
}

/// A concrete browser install on a device.
#[derive(Debug, Clone)]
pub struct BrowserInstall {
    pub os: Os,
    pub browser: Browser,
    /// Days this install lags behind the vendor's release (update habits).
    pub lag_days: i64,
    /// Safari on an old Mac / iPhone that cannot take the latest major.
    pub max_safari_major: Option<u32>,
    /// Linux distribution token for Firefox (`Ubuntu; ` or empty).
    pub ubuntu: bool,
}

impl BrowserInstall {
    /// The raw UA string this install sends on `date`.
    pub fn ua(&self, date: NaiveDate) -> String {
        let eff = date - chrono::Duration::days(self.lag_days.max(0));
        ua_string(self.os, self.browser, eff, self.max_safari_major, self.ubuntu)
    }

    /// A human label like "Chrome on Windows".
    pub fn family(&self) -> (Os, Browser) {
        (self.os, self.browser)
    }
}

fn chrome_build(major: u32) -> u32 {
    // Chrome 131 = 6778, about +55 builds per major.
    6778 + major.saturating_sub(131) * 55
}

fn edge_build(major: u32) -> u32 {
    2903 + major.saturating_sub(131) * 57
}

/// Build a UA string for `os`/`browser` as released on `date`.
pub fn ua_string(os: Os, browser: Browser, date: NaiveDate, max_safari_major: Option<u32>, ubuntu: bool) -> String {
    let (cm, c_age) = chrome_major(date);
    match (browser, os) {
        (Browser::Chrome, Os::Windows) => format!(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{cm}.0.0.0 Safari/537.36"
        ),
        (Browser::Chrome, Os::MacOs) => format!(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{cm}.0.0.0 Safari/537.36"
        ),
        (Browser::Chrome, Os::Linux) => format!(
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{cm}.0.0.0 Safari/537.36"
        ),
        (Browser::Chrome, Os::Android) => format!(
            "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{cm}.0.0.0 Mobile Safari/537.36"
        ),
        (Browser::Chrome, Os::Ios) => {
            let ios = ios_token(date, max_safari_major);
            let patch = 40 + (c_age.max(0) as u32 / 7) * 9;
            format!(
                "Mozilla/5.0 (iPhone; CPU iPhone OS {ios} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/{cm}.0.{}.{patch} Mobile/15E148 Safari/604.1",
                chrome_build(cm)
            )
        }
        (Browser::Edge, os) => {
            // Edge ships a few days after Chrome.
            let (em, e_age) = chrome_major(date - chrono::Duration::days(4));
            let patch = 45 + (e_age.max(0) as u32 / 7) * 13;
            let platform = match os {
                Os::MacOs => "Macintosh; Intel Mac OS X 10_15_7",
                Os::Linux => "X11; Linux x86_64",
                _ => "Windows NT 10.0; Win64; x64",
            };
            format!(
                "Mozilla/5.0 ({platform}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{em}.0.0.0 Safari/537.36 Edg/{em}.0.{}.{patch}",
                edge_build(em)
            )
        }
        (Browser::Firefox | Browser::FirefoxEsr, os) => {
            let fm = if browser == Browser::FirefoxEsr {
                firefox_esr_major(date)
            } else {
                firefox_major(date).0
            };
            match os {
                Os::Windows => format!(
                    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:{fm}.0) Gecko/20100101 Firefox/{fm}.0"
                ),
                Os::MacOs => format!(
                    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:{fm}.0) Gecko/20100101 Firefox/{fm}.0"
                ),
                Os::Android => format!(
                    "Mozilla/5.0 (Android 15; Mobile; rv:{fm}.0) Gecko/{fm}.0 Firefox/{fm}.0"
                ),
                Os::Ios => {
                    let ios = ios_token(date, max_safari_major);
                    format!(
                        "Mozilla/5.0 (iPhone; CPU iPhone OS {ios} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/{fm}.0 Mobile/15E148 Safari/605.1.15"
                    )
                }
                Os::Linux => {
                    let u = if ubuntu { "Ubuntu; " } else { "" };
                    format!(
                        "Mozilla/5.0 (X11; {u}Linux x86_64; rv:{fm}.0) Gecko/20100101 Firefox/{fm}.0"
                    )
                }
            }
        }
        (Browser::Safari, Os::Ios) => {
            let (ma, mi) = capped_safari(date, max_safari_major);
            let ios = ios_token(date, max_safari_major);
            format!(
                "Mozilla/5.0 (iPhone; CPU iPhone OS {ios} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{ma}.{mi} Mobile/15E148 Safari/604.1"
            )
        }
        (Browser::Safari, _) => {
            let (ma, mi) = capped_safari(date, max_safari_major);
            format!(
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{ma}.{mi} Safari/605.1.15"
            )
        }
        (Browser::Samsung, _) => {
            let sm = samsung_major(date);
            // Samsung Internet embeds a Chromium a few majors behind.
            let chromium = cm.saturating_sub(6);
            format!(
                "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/{sm}.0 Chrome/{chromium}.0.0.0 Mobile Safari/537.36"
            )
        }
    }
}

fn capped_safari(date: NaiveDate, max_major: Option<u32>) -> (u32, u32) {
    let (ma, mi) = safari_version(date);
    match max_major {
        Some(cap) if ma > cap => (cap, 6),
        _ => (ma, mi),
    }
}

fn ios_token(date: NaiveDate, max_major: Option<u32>) -> String {
    let (ma, mi) = capped_safari(date, max_major);
    if ma >= 26 {
        // iOS 26 freezes the UA's OS version at 18_6.
        "18_6".to_string()
    } else if mi == 0 {
        format!("{ma}_0")
    } else {
        format!("{ma}_{mi}")
    }
}

/// Draw a realistic (os, browser) for a device class.
pub fn draw_laptop_install(rng: &mut impl Rng, managed: bool) -> BrowserInstall {
    let x: f64 = rng.gen();
    let os = if managed {
        if x < 0.55 {
            Os::Windows
        } else if x < 0.90 {
            Os::MacOs
        } else {
            Os::Linux
        }
    } else if x < 0.60 {
        Os::Windows
    } else if x < 0.90 {
        Os::MacOs
    } else {
        Os::Linux
    };
    let y: f64 = rng.gen();
    let browser = match os {
        Os::Windows => {
            if y < 0.62 {
                Browser::Chrome
            } else if y < 0.90 {
                Browser::Edge
            } else {
                Browser::Firefox
            }
        }
        Os::MacOs => {
            if y < 0.55 {
                Browser::Chrome
            } else if y < 0.85 {
                Browser::Safari
            } else if y < 0.95 {
                Browser::Firefox
            } else {
                Browser::Edge
            }
        }
        _ => {
            if y < 0.50 {
                Browser::Chrome
            } else if y < 0.80 {
                Browser::Firefox
            } else {
                Browser::FirefoxEsr
            }
        }
    };
    finish_install(rng, os, browser)
}

/// Draw a phone's (os, browser).
pub fn draw_phone_install(rng: &mut impl Rng) -> BrowserInstall {
    let ios = rng.gen_bool(0.52);
    let y: f64 = rng.gen();
    let (os, browser) = if ios {
        (Os::Ios, if y < 0.85 { Browser::Safari } else { Browser::Chrome })
    } else {
        (
            Os::Android,
            if y < 0.78 {
                Browser::Chrome
            } else if y < 0.96 {
                Browser::Samsung
            } else {
                Browser::Firefox
            },
        )
    };
    finish_install(rng, os, browser)
}

fn finish_install(rng: &mut impl Rng, os: Os, browser: Browser) -> BrowserInstall {
    // Update habits: most installs within days, some weeks, a few months behind.
    let x: f64 = rng.gen();
    let lag_days = match browser {
        Browser::Safari => {
            if x < 0.5 {
                rng.gen_range(0..21)
            } else if x < 0.9 {
                rng.gen_range(21..70)
            } else {
                rng.gen_range(70..150)
            }
        }
        _ => {
            if x < 0.70 {
                rng.gen_range(0..10)
            } else if x < 0.95 {
                rng.gen_range(10..35)
            } else {
                rng.gen_range(35..90)
            }
        }
    };
    let max_safari_major = if matches!(os, Os::Ios | Os::MacOs) && rng.gen_bool(0.12) {
        Some(18)
    } else {
        None
    };
    BrowserInstall {
        os,
        browser,
        lag_days,
        max_safari_major,
        ubuntu: os == Os::Linux && rng.gen_bool(0.5),
    }
}

/// A plausible current desktop/mobile browser UA, drawn by global market share (what a
/// VPN-using attacker's real browser would send).
pub fn plausible_current_ua(rng: &mut impl Rng, date: NaiveDate) -> String {
    let x: f64 = rng.gen();
    let (os, browser) = if x < 0.42 {
        (Os::Windows, Browser::Chrome)
    } else if x < 0.55 {
        (Os::Windows, Browser::Edge)
    } else if x < 0.67 {
        (Os::MacOs, Browser::Chrome)
    } else if x < 0.76 {
        (Os::MacOs, Browser::Safari)
    } else if x < 0.82 {
        (Os::Windows, Browser::Firefox)
    } else if x < 0.86 {
        (Os::Linux, Browser::Chrome)
    } else if x < 0.94 {
        (Os::Android, Browser::Chrome)
    } else {
        (Os::Ios, Browser::Safari)
    };
    let lag = rng.gen_range(0..30);
    ua_string(os, browser, date - chrono::Duration::days(lag), None, false)
}

/// A UA for the same browser family and OS with a plausible (current or one behind)
/// version: what a targeted attacker who profiled the victim would send.
pub fn same_family_ua(rng: &mut impl Rng, inst: &BrowserInstall, date: NaiveDate) -> String {
    let lag = if rng.gen_bool(0.5) {
        rng.gen_range(0..7)
    } else {
        rng.gen_range(20..45)
    };
    ua_string(
        inst.os,
        inst.browser,
        date - chrono::Duration::days(lag),
        inst.max_safari_major,
        inst.ubuntu,
    )
}

/// Scripted or odd clients used by naive attackers.
pub fn scripted_ua(rng: &mut impl Rng, date: NaiveDate) -> String {
    let (cm, _) = chrome_major(date);
    let old = cm.saturating_sub(rng.gen_range(2..20));
    match rng.gen_range(0..12) {
        0 => "python-requests/2.32.3".into(),
        1 => "python-requests/2.31.0".into(),
        2 => "curl/8.5.0".into(),
        3 => "curl/7.81.0".into(),
        4 => "Go-http-client/1.1".into(),
        5 => "okhttp/4.12.0".into(),
        6 => "axios/1.7.9".into(),
        7 => "Python-urllib/3.11".into(),
        8 => format!(
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/{old}.0.0.0 Safari/537.36"
        ),
        9 => "Mozilla/5.0 (Windows NT 6.1; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/109.0.0.0 Safari/537.36".into(),
        10 => "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/99.0.4844.51 Safari/537.36".into(),
        _ => "Mozilla/5.0 (compatible; MSIE 10.0; Windows NT 6.1; Trident/6.0)".into(),
    }
}

/// Clients seen in password-spray campaigns.
pub fn spray_ua(rng: &mut impl Rng, source: &str) -> String {
    if source == "entra" && rng.gen_bool(0.5) {
        return "BAV2ROPC".into();
    }
    match rng.gen_range(0..5) {
        0 => "python-requests/2.31.0".into(),
        1 => "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36".into(),
        2 => "Go-http-client/2.0".into(),
        3 => "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.12026; Pro)".into(),
        _ => "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:109.0) Gecko/20100101 Firefox/115.0".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_follow_calendar() {
        assert_eq!(chrome_major(d(2026, 3, 2)).0, 145);
        assert_eq!(chrome_major(d(2026, 3, 10)).0, 146);
        assert_eq!(chrome_major(d(2026, 7, 1)).0, 150);
        assert_eq!(chrome_major(d(2024, 9, 20)).0, 129);
        assert_eq!(firefox_major(d(2026, 3, 2)).0, 148);
        assert_eq!(safari_version(d(2026, 3, 2)), (26, 3));
        assert_eq!(safari_version(d(2025, 6, 1)), (18, 5));
    }

    #[test]
    fn ua_strings_look_real() {
        let s = ua_string(Os::Windows, Browser::Edge, d(2026, 3, 2), None, false);
        assert!(s.contains("Chrome/145.0.0.0") && s.contains("Edg/145.0."), "{s}");
        let s = ua_string(Os::Ios, Browser::Safari, d(2026, 3, 2), None, false);
        assert!(s.contains("iPhone OS 18_6") && s.contains("Version/26.3"), "{s}");
        let s = ua_string(Os::Ios, Browser::Safari, d(2026, 3, 2), Some(18), false);
        assert!(s.contains("iPhone OS 18_6") && s.contains("Version/18.6"), "{s}");
    }
}
