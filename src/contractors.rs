//! The contractor registry (`schemas/contractor.v1.schema.json`): contract window,
//! home time zone and allowed countries per user. Users absent from the registry
//! are scored without these rules.

use chrono_tz::Tz;
use serde::Deserialize;

use crate::hash::FastMap;
use crate::timefmt::parse_rfc3339_ms;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ContractorError {
    #[error("not valid JSON: {0}")]
    Json(String),
    #[error("missing required field `{0}`")]
    Missing(&'static str),
    #[error("invalid `{field}`: {reason}")]
    Invalid { field: &'static str, reason: String },
}

/// One registry record, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Contractor {
    pub user_id: String,
    /// Inclusive start: a `YYYY-MM-DD` start date begins at midnight of that day in
    /// the contractor's home time zone (UTC when none is given).
    pub contract_start_ms: Option<i64>,
    /// Exclusive end: a `YYYY-MM-DD` end date covers that whole day, in the home
    /// time zone likewise.
    pub contract_end_ms: Option<i64>,
    pub sponsor: Option<String>,
    pub home_tz: Option<Tz>,
    /// ISO 3166 alpha-2 codes, upper case; empty = no restriction.
    pub allowed_countries: Vec<[u8; 2]>,
}

#[derive(Deserialize)]
struct Raw {
    user_id: Option<String>,
    contract_start: Option<String>,
    contract_end: Option<String>,
    sponsor: Option<String>,
    home_timezone: Option<String>,
    allowed_countries: Option<Vec<String>>,
}

impl Contractor {
    pub fn parse(bytes: &[u8]) -> Result<Self, ContractorError> {
        let raw: Raw = serde_json::from_slice(bytes).map_err(|e| ContractorError::Json(e.to_string()))?;
        let user_id = raw
            .user_id
            .filter(|u| !u.is_empty())
            .ok_or(ContractorError::Missing("user_id"))?;
        let home_tz = match raw.home_timezone {
            None => None,
            Some(s) => Some(s.parse::<Tz>().map_err(|_| ContractorError::Invalid {
                field: "home_timezone",
                reason: format!("unknown IANA time zone {s:?}"),
            })?),
        };
        let bound = |v: Option<String>, field: &'static str, end: bool| -> Result<Option<i64>, ContractorError> {
            let Some(s) = v else { return Ok(None) };
            if let Some(ms) = parse_rfc3339_ms(&s) {
                return Ok(Some(ms));
            }
            let day = canonical_date(&s).ok_or_else(|| ContractorError::Invalid {
                field,
                reason: format!("expected an RFC 3339 timestamp or a YYYY-MM-DD date, got {s:?}"),
            })?;
            // a bare end date means "through that day": the bound is the next midnight
            let day = if end { day.succ_opt().unwrap_or(day) } else { day };
            Ok(Some(local_midnight_ms(day, home_tz)))
        };
        let contract_start_ms = bound(raw.contract_start, "contract_start", false)?;
        let contract_end_ms = bound(raw.contract_end, "contract_end", true)?;
        let mut allowed_countries = Vec::new();
        for c in raw.allowed_countries.unwrap_or_default() {
            let b = c.as_bytes();
            if b.len() != 2 || !b.iter().all(|x| x.is_ascii_alphabetic()) {
                return Err(ContractorError::Invalid {
                    field: "allowed_countries",
                    reason: format!("not an ISO 3166 alpha-2 code: {c:?}"),
                });
            }
            allowed_countries.push([b[0].to_ascii_uppercase(), b[1].to_ascii_uppercase()]);
        }
        Ok(Contractor {
            user_id,
            contract_start_ms,
            contract_end_ms,
            sponsor: raw.sponsor,
            home_tz,
            allowed_countries,
        })
    }

    /// Is the contract active at `time_ms`?
    pub fn active_at(&self, time_ms: i64) -> bool {
        self.contract_start_ms.is_none_or(|s| time_ms >= s) && self.contract_end_ms.is_none_or(|e| time_ms < e)
    }

    pub fn country_allowed(&self, cc: [u8; 2]) -> bool {
        self.allowed_countries.is_empty() || self.allowed_countries.contains(&cc)
    }
}

/// `YYYY-MM-DD` exactly (chrono alone also takes `2026-3-1` or leading spaces).
fn canonical_date(s: &str) -> Option<chrono::NaiveDate> {
    let b = s.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape {
        return None;
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

/// Midnight at the start of `day` in `tz` (UTC without one), epoch milliseconds.
/// Where a time-zone change skips midnight, the first quarter hour that exists.
fn local_midnight_ms(day: chrono::NaiveDate, tz: Option<Tz>) -> i64 {
    use chrono::TimeZone;
    let midnight = day.and_time(chrono::NaiveTime::MIN);
    let Some(tz) = tz else {
        return midnight.and_utc().timestamp_millis();
    };
    (0..=180)
        .step_by(15)
        .find_map(|m| {
            tz.from_local_datetime(&(midnight + chrono::Duration::minutes(m)))
                .earliest()
        })
        .map_or_else(|| midnight.and_utc().timestamp_millis(), |t| t.timestamp_millis())
}

/// The registry: user id → record. Each pipeline owns its copy (no locks in the hot
/// path); the Kafka edge applies live updates to every copy.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    by_user: FastMap<Box<str>, Contractor>,
}

impl Registry {
    pub fn get(&self, user: &str) -> Option<&Contractor> {
        self.by_user.get(user)
    }
    pub fn upsert(&mut self, c: Contractor) {
        self.by_user.insert(c.user_id.clone().into_boxed_str(), c);
    }
    pub fn remove(&mut self, user: &str) {
        self.by_user.remove(user);
    }
    pub fn len(&self) -> usize {
        self.by_user.len()
    }
    pub fn is_empty(&self) -> bool {
        self.by_user.is_empty()
    }

    /// Load a JSONL file's contents; returns the records' errors by line (1-based).
    pub fn load_jsonl(&mut self, text: &str) -> Vec<(usize, ContractorError)> {
        let mut errors = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match Contractor::parse(line.as_bytes()) {
                Ok(c) => self.upsert(c),
                Err(e) => errors.push((i + 1, e)),
            }
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_applies_window() {
        let c = Contractor::parse(
            br#"{"user_id":"u1","contract_start":"2026-01-01","contract_end":"2026-03-31","allowed_countries":["pt","ES"]}"#,
        )
        .unwrap();
        let t = |s: &str| crate::timefmt::parse_rfc3339_ms(s).unwrap();
        assert!(!c.active_at(t("2025-12-31T23:59:59Z")));
        assert!(c.active_at(t("2026-01-01T00:00:00Z")));
        assert!(c.active_at(t("2026-03-31T23:59:59Z")), "end date is inclusive");
        assert!(!c.active_at(t("2026-04-01T00:00:00Z")));
        // timestamps are taken as they are
        let c2 = Contractor::parse(br#"{"user_id":"u1","contract_end":"2026-03-31T12:00:00Z"}"#).unwrap();
        assert!(c2.active_at(t("2026-03-31T11:59:59Z")) && !c2.active_at(t("2026-03-31T12:00:00Z")));
        // only the canonical date shape (chrono alone would read these as other days' bounds)
        for bad in ["2026-3-31", " 2026-03-31", "2026-03-31 ", "2026/03/31", "2026-02-30"] {
            let rec = format!(r#"{{"user_id":"u","contract_end":"{bad}"}}"#);
            assert!(Contractor::parse(rec.as_bytes()).is_err(), "{bad:?}");
        }
        let c = Contractor::parse(
            br#"{"user_id":"u1","contract_start":"2026-01-01","contract_end":"2026-03-31","home_timezone":"Etc/GMT+5","allowed_countries":["pt","ES"]}"#,
        )
        .unwrap();
        assert!(c.country_allowed(*b"PT") && !c.country_allowed(*b"US"));
        assert_eq!(c.home_tz, Some(chrono_tz::Etc::GMTPlus5));
        assert!(Contractor::parse(br#"{"user_id":"u","home_timezone":"Mars/Olympus"}"#).is_err());
        assert!(Contractor::parse(br#"{"user_id":"u","contract_end":"soon"}"#).is_err());
        assert!(Contractor::parse(br#"{"sponsor":"x"}"#).is_err());
    }

    /// Bare dates are days in the contractor's home time zone: the whole last day
    /// there, from local midnight of the first.
    #[test]
    fn dates_are_days_in_the_home_time_zone() {
        let t = |s: &str| crate::timefmt::parse_rfc3339_ms(s).unwrap();
        // UTC-5: 2026-03-31 local ends at 2026-04-01T05:00Z
        let ny = Contractor::parse(
            br#"{"user_id":"u","contract_start":"2026-01-01","contract_end":"2026-03-31","home_timezone":"Etc/GMT+5"}"#,
        )
        .unwrap();
        assert!(
            !ny.active_at(t("2026-01-01T04:59:59Z")),
            "before local midnight of the first day"
        );
        assert!(ny.active_at(t("2026-01-01T05:00:00Z")));
        assert!(
            ny.active_at(t("2026-04-01T04:59:59Z")),
            "19:00-23:59 local on the last day"
        );
        assert!(!ny.active_at(t("2026-04-01T05:00:00Z")));
        // Tokyo (UTC+9): the first day starts at 15:00Z the day before
        let tokyo = Contractor::parse(br#"{"user_id":"u","contract_start":"2026-03-02","home_timezone":"Asia/Tokyo"}"#)
            .unwrap();
        assert!(tokyo.active_at(t("2026-03-01T15:00:00Z")));
        assert!(!tokyo.active_at(t("2026-03-01T14:59:59Z")));
        // daylight saving: Lisbon is UTC+1 in summer
        let lis = Contractor::parse(br#"{"user_id":"u","contract_end":"2026-07-10","home_timezone":"Europe/Lisbon"}"#)
            .unwrap();
        assert!(lis.active_at(t("2026-07-10T22:59:59Z")) && !lis.active_at(t("2026-07-10T23:00:00Z")));
        // a zone whose clocks skip midnight (America/Santiago, DST starts at 00:00 on
        // 2026-09-06): the day starts at the first local time that exists
        let scl =
            Contractor::parse(br#"{"user_id":"u","contract_start":"2026-09-06","home_timezone":"America/Santiago"}"#)
                .unwrap();
        assert_eq!(scl.contract_start_ms, Some(t("2026-09-06T04:00:00Z")));
    }
}
