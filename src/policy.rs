//! Policy: resource sensitivity tiers, the assurance level (AAL) each needs at each
//! risk level, which methods satisfy an AAL, roles, and the hard rules.
//!
//! `PolicyConfig` is the `[policy]` part of `stepup.toml` as written; [`Policy`] is
//! the compiled, validated form the hot path uses (globs compiled, names resolved to
//! indices, group → reachable-tiers bitmasks precomputed).

use std::collections::BTreeMap;

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Deserialize;

use crate::event::Methods;
use crate::hash::FastMap;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PolicyError {
    #[error("policy has no tiers")]
    NoTiers,
    #[error("tier {0:?} is defined twice")]
    DuplicateTier(String),
    #[error("more than 32 tiers")]
    TooManyTiers,
    #[error("{place} names tier {tier:?}, which is not defined (tiers: {known})")]
    UnknownTier { place: String, tier: String, known: String },
    #[error("tier {tier:?}: AAL must be 1, 2 or 3 (got {aal} for `{field}`)")]
    BadAal { tier: String, field: &'static str, aal: u8 },
    #[error("tier {tier:?}: `{field}` = {value} is lower than `aal` = {aal}; a risk level can only raise the bar")]
    LowerThanBase {
        tier: String,
        field: &'static str,
        value: u8,
        aal: u8,
    },
    #[error("resource pattern {pattern:?} is not a valid glob: {reason}")]
    BadGlob { pattern: String, reason: String },
    #[error(
        "unknown authentication method {method:?} for AAL {aal} (known: pwd, otp, sms, push, webauthn, hwk, email)"
    )]
    UnknownMethod { aal: u8, method: String },
    #[error("AAL {0} lists no methods")]
    NoMethods(u8),
}

fn default_true() -> bool {
    true
}

/// One tier as written in `stepup.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierConfig {
    pub name: String,
    /// AAL always needed.
    pub aal: u8,
    /// AAL needed when risk is medium / high (at least `aal`).
    pub medium: u8,
    pub high: u8,
    /// Deny outright at high risk instead of stepping up.
    #[serde(default)]
    pub deny_at_high: bool,
    /// Seconds: how recent the step-up must be (RFC 9470 `max_age`), and how long
    /// the decision stays valid.
    pub max_age: u32,
    /// Reachable without a role (e.g. plain logins).
    #[serde(default)]
    pub open: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceRule {
    pub pattern: String,
    pub tier: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleConfig {
    pub name: String,
    /// IdP groups that grant the role.
    pub groups: Vec<String>,
    /// Tiers the role may reach at all.
    pub tiers: Vec<String>,
}

/// The `[policy]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    pub default_tier: String,
    pub tiers: Vec<TierConfig>,
    #[serde(default)]
    pub resources: Vec<ResourceRule>,
    #[serde(default)]
    pub roles: Vec<RoleConfig>,
    /// Methods that satisfy AAL 2 and 3 (keys "2", "3"), per NIST SP 800-63B.
    pub methods: BTreeMap<String, Vec<String>>,
    /// `acr_values` a gateway sends for each AAL (keys "1", "2", "3").
    pub acr: BTreeMap<String, String>,
    /// Contractors outside their contract window are denied.
    #[serde(default = "default_true")]
    pub deny_outside_contract: bool,
    /// Logins from a country outside `allowed_countries` are denied.
    #[serde(default = "default_true")]
    pub deny_disallowed_country: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Low,
    Medium,
    High,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Tier {
    pub name: String,
    pub aal: [u8; 3],
    pub deny_at_high: bool,
    pub max_age: u32,
}

impl Tier {
    /// AAL required at a risk level.
    pub fn required_aal(&self, level: Level) -> u8 {
        self.aal[level as usize]
    }
}

/// The compiled policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub tiers: Vec<Tier>,
    pub default_tier: usize,
    globs: GlobSet,
    glob_tier: Vec<usize>,
    group_tiers: FastMap<Box<str>, u32>,
    open_tiers: u32,
    /// Method names acceptable for AAL 1..3 (index aal-1), in config order.
    pub methods: [Vec<String>; 3],
    method_bits: [u16; 3],
    pub acr: [String; 3],
    pub deny_outside_contract: bool,
    pub deny_disallowed_country: bool,
    pub roles_defined: bool,
}

impl Policy {
    pub fn compile(c: &PolicyConfig) -> Result<Self, PolicyError> {
        if c.tiers.is_empty() {
            return Err(PolicyError::NoTiers);
        }
        if c.tiers.len() > 32 {
            return Err(PolicyError::TooManyTiers);
        }
        let mut tiers = Vec::new();
        let mut open_tiers = 0u32;
        for (i, t) in c.tiers.iter().enumerate() {
            if tiers.iter().any(|x: &Tier| x.name == t.name) {
                return Err(PolicyError::DuplicateTier(t.name.clone()));
            }
            for (field, v) in [("aal", t.aal), ("medium", t.medium), ("high", t.high)] {
                if !(1..=3).contains(&v) {
                    return Err(PolicyError::BadAal {
                        tier: t.name.clone(),
                        field,
                        aal: v,
                    });
                }
                if v < t.aal {
                    return Err(PolicyError::LowerThanBase {
                        tier: t.name.clone(),
                        field,
                        value: v,
                        aal: t.aal,
                    });
                }
            }
            if t.open {
                open_tiers |= 1 << i;
            }
            tiers.push(Tier {
                name: t.name.clone(),
                aal: [t.aal, t.medium.max(t.aal), t.high.max(t.medium).max(t.aal)],
                deny_at_high: t.deny_at_high,
                max_age: t.max_age,
            });
        }
        let known = tiers.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ");
        let find = |place: String, name: &str| -> Result<usize, PolicyError> {
            tiers
                .iter()
                .position(|t| t.name == name)
                .ok_or_else(|| PolicyError::UnknownTier {
                    place,
                    tier: name.to_string(),
                    known: known.clone(),
                })
        };
        let default_tier = find("default_tier".into(), &c.default_tier)?;
        let mut gb = GlobSetBuilder::new();
        let mut glob_tier = Vec::new();
        for r in &c.resources {
            let g = Glob::new(&r.pattern).map_err(|e| PolicyError::BadGlob {
                pattern: r.pattern.clone(),
                reason: e.to_string(),
            })?;
            gb.add(g);
            glob_tier.push(find(format!("resource {:?}", r.pattern), &r.tier)?);
        }
        let globs = gb.build().map_err(|e| PolicyError::BadGlob {
            pattern: "*".into(),
            reason: e.to_string(),
        })?;
        let mut group_tiers: FastMap<Box<str>, u32> = FastMap::default();
        for role in &c.roles {
            let mut mask = 0u32;
            for t in &role.tiers {
                mask |= 1 << find(format!("role {:?}", role.name), t)?;
            }
            for g in &role.groups {
                *group_tiers.entry(Box::from(g.as_str())).or_insert(0) |= mask;
            }
        }
        let mut methods: [Vec<String>; 3] = [vec!["pwd".into()], Vec::new(), Vec::new()];
        let mut method_bits = [
            Methods::PWD
                | Methods::OTP
                | Methods::SMS
                | Methods::PUSH
                | Methods::WEBAUTHN
                | Methods::HWK
                | Methods::EMAIL,
            0,
            0,
        ];
        for aal in [2u8, 3] {
            let list = c.methods.get(&aal.to_string()).cloned().unwrap_or_default();
            if list.is_empty() {
                return Err(PolicyError::NoMethods(aal));
            }
            let mut bits = 0;
            for m in &list {
                let b = Methods::bit(m);
                if b == Methods::OTHER {
                    return Err(PolicyError::UnknownMethod { aal, method: m.clone() });
                }
                bits |= b;
            }
            methods[aal as usize - 1] = list;
            method_bits[aal as usize - 1] = bits;
        }
        let acr = [1u8, 2, 3].map(|a| {
            c.acr
                .get(&a.to_string())
                .cloned()
                .unwrap_or_else(|| format!("http://idmanagement.gov/ns/assurance/aal/{a}"))
        });
        Ok(Policy {
            tiers,
            default_tier,
            globs,
            glob_tier,
            group_tiers,
            open_tiers,
            methods,
            method_bits,
            acr,
            deny_outside_contract: c.deny_outside_contract,
            deny_disallowed_country: c.deny_disallowed_country,
            roles_defined: !c.roles.is_empty(),
        })
    }

    /// The tier of a resource (first matching rule in file order), or the default.
    pub fn tier_of(&self, resource: Option<&str>) -> usize {
        let Some(r) = resource else { return self.default_tier };
        let mut best: Option<usize> = None;
        for i in self.globs.matches(r) {
            best = Some(best.map_or(i, |b: usize| b.min(i)));
        }
        best.map_or(self.default_tier, |i| self.glob_tier[i])
    }

    /// Tiers the event's groups may reach (bitmask).
    pub fn reachable_tiers<'a>(&self, groups: impl Iterator<Item = &'a str>) -> u32 {
        let mut mask = self.open_tiers;
        for g in groups {
            if let Some(m) = self.group_tiers.get(g) {
                mask |= m;
            }
        }
        mask
    }

    /// Does the set of methods used reach `aal`? (methods alone; the IdP's `aal` wins)
    pub fn methods_reach(&self, methods: Methods, aal: u8) -> bool {
        match aal {
            0 | 1 => methods.0 != 0,
            a => methods.0 & self.method_bits[(a as usize).min(3) - 1] != 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    #[test]
    fn default_policy_compiles_and_maps_resources() {
        let s = Settings::default_embedded().unwrap();
        let p = &s.policy;
        let high = p.tier_of(Some("db/prod/payments"));
        assert_eq!(p.tiers[high].name, "high");
        assert_eq!(p.tiers[p.tier_of(None)].name, "low");
        assert_eq!(p.tiers[p.tier_of(Some("wiki/eng"))].name, "low");
        let mask = p.reachable_tiers(["contractors", "dba"].into_iter());
        assert!(mask & (1 << high) != 0);
        let mask = p.reachable_tiers(["contractors"].into_iter());
        assert_eq!(mask & (1 << high), 0, "no role, no high tier");
    }

    fn cfg(extra: &str) -> Result<Policy, String> {
        let text = format!(
            r#"
default_tier = "low"
methods = {{ "2" = ["otp"], "3" = ["webauthn"] }}
acr = {{}}
{extra}
"#
        );
        let c: PolicyConfig = toml::from_str(&text).map_err(|e| e.to_string())?;
        Policy::compile(&c).map_err(|e| e.to_string())
    }

    #[test]
    fn validation_errors_are_clear() {
        let t = r#"[[tiers]]
name = "low"
aal = 1
medium = 2
high = 2
max_age = 60
"#;
        assert!(cfg(t).is_ok());
        let e = cfg(&t.replace("medium = 2", "medium = 4")).unwrap_err();
        assert!(e.contains("AAL must be 1, 2 or 3"), "{e}");
        let e = cfg(&format!("{t}\n[[resources]]\npattern = \"db/**\"\ntier = \"secret\"\n")).unwrap_err();
        assert!(e.contains("not defined") && e.contains("secret"), "{e}");
        let e = cfg(&t.replace("aal = 1", "aal = 3")).unwrap_err();
        assert!(e.contains("lower than"), "{e}");
        let e = cfg(&format!("{t}\nbogus = 1\n")).unwrap_err();
        assert!(e.contains("bogus"), "{e}");
    }
}
