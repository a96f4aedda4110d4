//! Decisions: what the policy concludes for one event, and their JSON encoding
//! (`schemas/decision.v1.schema.json`), written straight into a reusable buffer.

use std::io::Write;

use crate::enrich::Enriched;
use crate::event::AuthEvent;
use crate::model::{Assessment, Detail, Signal};
use crate::policy::{Level, Policy};
use crate::timefmt::write_rfc3339_ms;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecisionKind {
    Allow,
    StepUp,
    Deny,
}

impl DecisionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionKind::Allow => "allow",
            DecisionKind::StepUp => "step_up",
            DecisionKind::Deny => "deny",
        }
    }
    /// Triggers are published for these.
    pub fn is_trigger(self) -> bool {
        self != DecisionKind::Allow
    }
}

/// Why a deny happened (hard rules and policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    ContractInactive,
    CountryNotAllowed,
    NoRoleForTier,
    HighRisk,
}

impl DenyReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::ContractInactive => "contract_inactive",
            DenyReason::CountryNotAllowed => "country_not_allowed",
            DenyReason::NoRoleForTier => "no_role_for_tier",
            DenyReason::HighRisk => "high_risk",
        }
    }
}

/// The outcome of the policy for one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub kind: DecisionKind,
    pub tier: usize,
    pub required_aal: u8,
    pub deny: Option<DenyReason>,
}

/// Apply the policy to an assessed event.
pub fn decide(policy: &Policy, ev: &AuthEvent<'_>, a: &Assessment) -> Verdict {
    decide_in_tier(policy, policy.tier_of(ev.resource.as_deref()), ev, a)
}

/// [`decide`] with the event's tier already resolved (the pipeline caches it).
pub fn decide_in_tier(policy: &Policy, tier_i: usize, ev: &AuthEvent<'_>, a: &Assessment) -> Verdict {
    let tier = &policy.tiers[tier_i];
    let required_aal = tier.required_aal(a.level);
    let deny = if policy.deny_outside_contract && a.has(Signal::ContractInactive) {
        Some(DenyReason::ContractInactive)
    } else if policy.deny_disallowed_country && a.has(Signal::CountryNotAllowed) {
        Some(DenyReason::CountryNotAllowed)
    } else if policy.reachable_tiers(ev.groups.iter().map(|g| &**g)) & (1 << tier_i) == 0 {
        Some(DenyReason::NoRoleForTier)
    } else if a.level == Level::High && tier.deny_at_high {
        Some(DenyReason::HighRisk)
    } else {
        None
    };
    let kind = match deny {
        Some(_) => DecisionKind::Deny,
        None if ev.aal >= required_aal => DecisionKind::Allow,
        None => DecisionKind::StepUp,
    };
    Verdict {
        kind,
        tier: tier_i,
        required_aal,
        deny,
    }
}

/// Does any byte need escaping in a JSON string? (No early exit, so the loop
/// vectorises; identifiers and reasons almost never need it.)
#[inline]
fn needs_escape(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .fold(false, |acc, &b| acc | (b < 0x20) | (b == b'"') | (b == b'\\'))
}

/// Append `s` as a JSON string literal.
pub fn json_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    if !needs_escape(bytes) {
        out.reserve(bytes.len() + 2);
        out.push(b'"');
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0..=0x1f => None,
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        match esc {
            Some(e) => out.extend_from_slice(e),
            None => {
                let _ = write!(out, "\\u{:04x}", b);
            }
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// An unsigned integer in decimal, without the formatter.
#[inline]
fn uint(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// A number rounded to 3 decimals, written without the float formatter.
fn num(out: &mut Vec<u8>, x: f64) {
    let m = if x.is_finite() { (x * 1000.0).round() } else { 0.0 };
    let m = m.clamp(-1e15, 1e15) as i64;
    if m < 0 {
        out.push(b'-');
    }
    let m = m.unsigned_abs();
    uint(out, m / 1000);
    let mut frac = m % 1000;
    if frac != 0 {
        out.push(b'.');
        let mut digits = [b'0'; 3];
        for d in digits.iter_mut().rev() {
            *d = b'0' + (frac % 10) as u8;
            frac /= 10;
        }
        let len = 3 - digits.iter().rev().take_while(|&&d| d == b'0').count();
        out.extend_from_slice(&digits[..len]);
    }
}

fn detail(out: &mut Vec<u8>, r: &crate::model::Reason, en: &Enriched) {
    out.push(b'"');
    let mut s = Esc(out);
    let geo = &en.geo;
    let place = |out: &mut Esc<'_>| {
        if let Some(c) = &geo.city {
            let _ = write!(out, "{}, ", c);
        }
        let _ = write!(out, "{}", geo.country_str());
    };
    match (r.signal, r.detail) {
        (Signal::NewCountry, Detail::Novel { logins, known }) => {
            let _ = write!(
                s,
                "first login from {} (knows {known} countries over {logins} logins)",
                geo.country_str()
            );
        }
        (Signal::NewCity, Detail::Novel { logins, known }) => {
            let _ = s.write_all(b"first login from ");
            place(&mut s);
            let _ = write!(s, " (knows {known} cities over {logins} logins)");
        }
        (Signal::NewAsn, Detail::Novel { logins, known }) => {
            let _ = write!(s, "first login from AS{}", geo.asn);
            if let Some(o) = &geo.asn_org {
                let _ = write!(s, " {o}");
            }
            let _ = write!(s, " (knows {known} networks over {logins} logins)");
        }
        (Signal::NewNetwork, Detail::Novel { logins, .. }) => {
            let _ = write!(s, "address block not seen in {logins} logins");
        }
        (Signal::NewDevice, Detail::Novel { logins, .. }) => {
            let _ = write!(
                s,
                "unrecognised device: {} {} on {} ({}; {logins} logins)",
                en.ua.browser,
                en.ua.major,
                en.ua.os,
                if en.has_device_id {
                    "new device_id"
                } else {
                    "no device_id"
                }
            );
        }
        (Signal::NewUserAgent, _) => {
            let _ = write!(
                s,
                "known device, unfamiliar client {} {} on {}",
                en.ua.browser, en.ua.major, en.ua.os
            );
        }
        (Signal::OddHour, Detail::Hour { local_hour, weekday }) => {
            const D: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
            let _ = write!(s, "unusual time: {} {:02}h local", D[weekday as usize % 7], local_hour);
        }
        (Signal::ImpossibleTravel, Detail::Travel { km, kmh, minutes }) => {
            let _ = write!(
                s,
                "{km} km from the last verified location in {minutes} min ({kmh} km/h)"
            );
        }
        (Signal::FailedBurst, Detail::Failures { count, window_min }) => {
            let _ = write!(s, "{count} failed logins within {window_min} min");
        }
        (Signal::NewUser, Detail::Logins(n)) => {
            let _ = write!(s, "only {n} trusted logins so far");
        }
        (Signal::HostingNetwork, _) => {
            let _ = write!(s, "hosting / VPN network AS{}", geo.asn);
            if let Some(o) = &geo.asn_org {
                let _ = write!(s, " {o}");
            }
            let _ = write!(s, ", never verified for this user");
        }
        (Signal::InfrequentUser, Detail::Logins(n)) => {
            let _ = write!(s, "rarely logs in ({n} trusted logins)");
        }
        (Signal::CountryNotAllowed, _) => {
            let _ = write!(
                s,
                "{} is not among the contractor's allowed countries",
                geo.country_str()
            );
        }
        (Signal::ContractInactive, Detail::Contract { ended }) => {
            let _ = s.write_all(if ended {
                b"contract has ended"
            } else {
                b"contract has not started"
            });
        }
        _ => {}
    }
    out.push(b'"');
}

/// Writes through JSON string escaping (for reason details built with `write!`).
struct Esc<'a>(&'a mut Vec<u8>);

impl Write for Esc<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !needs_escape(buf) {
            self.0.extend_from_slice(buf);
            return Ok(buf.len());
        }
        for &b in buf {
            match b {
                b'"' => self.0.extend_from_slice(b"\\\""),
                b'\\' => self.0.extend_from_slice(b"\\\\"),
                0..=0x1f => {
                    let _ = write!(self.0, "\\u{:04x}", b);
                }
                _ => self.0.push(b),
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Encode one decision as a JSON object (no trailing newline).
pub fn encode(out: &mut Vec<u8>, policy: &Policy, ev: &AuthEvent<'_>, en: &Enriched, a: &Assessment, v: &Verdict) {
    let tier = &policy.tiers[v.tier];
    out.extend_from_slice(b"{\"event_id\":");
    json_str(out, &ev.event_id);
    out.extend_from_slice(b",\"user_id\":");
    json_str(out, &ev.user_id);
    out.extend_from_slice(b",\"time\":\"");
    write_rfc3339_ms(out, ev.time_ms);
    out.extend_from_slice(b"\",\"decision\":\"");
    out.extend_from_slice(v.kind.as_str().as_bytes());
    out.extend_from_slice(b"\",\"risk\":{\"score\":");
    num(out, a.score);
    out.extend_from_slice(b",\"level\":\"");
    out.extend_from_slice(a.level.as_str().as_bytes());
    out.extend_from_slice(b"\",\"reasons\":[");
    for (i, r) in a.reasons().iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"signal\":\"");
        out.extend_from_slice(r.signal.as_str().as_bytes());
        out.extend_from_slice(b"\",\"detail\":");
        detail(out, r, en);
        out.extend_from_slice(b",\"contribution\":");
        num(out, r.contribution);
        out.push(b'}');
    }
    out.extend_from_slice(b"]},\"tier\":");
    json_str(out, &tier.name);
    out.extend_from_slice(b",\"current_aal\":");
    uint(out, u64::from(ev.aal));
    match v.deny {
        Some(d) => {
            out.extend_from_slice(
                b",\"required_aal\":null,\"methods\":[],\"acr_values\":null,\"max_age\":null,\"deny_reason\":\"",
            );
            out.extend_from_slice(d.as_str().as_bytes());
            out.push(b'"');
        }
        None => {
            let aal = v.required_aal.clamp(1, 3);
            out.extend_from_slice(b",\"required_aal\":");
            uint(out, u64::from(aal));
            out.extend_from_slice(b",\"methods\":[");
            for (i, m) in policy.methods[aal as usize - 1].iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                json_str(out, m);
            }
            out.extend_from_slice(b"],\"acr_values\":");
            json_str(out, &policy.acr[aal as usize - 1]);
            out.extend_from_slice(b",\"max_age\":");
            uint(out, u64::from(tier.max_age));
        }
    }
    if let Some(r) = &ev.resource {
        out.extend_from_slice(b",\"resource\":");
        json_str(out, r);
    }
    if let Some(s) = &ev.session_id {
        out.extend_from_slice(b",\"session_id\":");
        json_str(out, s);
    }
    out.extend_from_slice(b",\"expires_at\":\"");
    write_rfc3339_ms(out, ev.time_ms.saturating_add(tier.max_age as i64 * 1000));
    out.extend_from_slice(b"\"}");
}

#[cfg(test)]
mod tests {
    use super::json_str;

    #[test]
    fn numbers_round_to_three_decimals() {
        for (x, want) in [
            (1.0, "1"),
            (-0.25, "-0.25"),
            (0.1234, "0.123"),
            (2.0005, "2.001"),
            (-0.0004, "0"),
            (12.5, "12.5"),
        ] {
            let mut v = Vec::new();
            super::num(&mut v, x);
            assert_eq!(String::from_utf8(v).unwrap(), want, "{x}");
        }
    }

    #[test]
    fn escapes_json() {
        let mut v = Vec::new();
        json_str(&mut v, "a\"b\\c\n\u{1}é");
        let s = String::from_utf8(v).unwrap();
        assert_eq!(serde_json::from_str::<String>(&s).unwrap(), "a\"b\\c\n\u{1}é");
        // the no-escape fast path, and each special byte alone at either end
        for t in ["plain-id_42 é", "\"x", "x\"", "\\", "\u{1f}", "x\u{0}", ""] {
            let mut v = Vec::new();
            json_str(&mut v, t);
            assert_eq!(serde_json::from_slice::<String>(&v).unwrap(), t, "{t:?}");
        }
        let mut v = Vec::new();
        let _ = std::io::Write::write_all(&mut super::Esc(&mut v), "ok \"q\" \\ \t".as_bytes());
        let quoted = format!("\"{}\"", String::from_utf8(v).unwrap());
        assert_eq!(serde_json::from_str::<String>(&quoted).unwrap(), "ok \"q\" \\ \t");
    }

    #[test]
    fn integers_without_the_formatter() {
        for n in [0u64, 7, 10, 99, 100, 86_400, u64::MAX] {
            let mut v = Vec::new();
            super::uint(&mut v, n);
            assert_eq!(String::from_utf8(v).unwrap(), n.to_string());
        }
    }
}
