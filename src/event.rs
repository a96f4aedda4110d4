//! The native event contract (`schemas/auth-event.v1.schema.json`) and its decoder.
//!
//! Decoding borrows from the input buffer wherever the JSON has no escapes, so a
//! typical event decodes without allocating (only `groups` allocates its list).

use std::borrow::Cow;
use std::net::IpAddr;

use serde::Deserialize;

use crate::timefmt::parse_rfc3339_ms;

/// Why an input record could not be decoded. Every variant names the problem the
/// way an operator reading the dead-letter queue needs it.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum DecodeError {
    #[error("record is {size} bytes, over the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("not valid JSON: {0}")]
    Json(String),
    #[error("missing required field `{0}`")]
    Missing(&'static str),
    #[error("invalid `{field}`: {reason}")]
    Invalid { field: &'static str, reason: String },
}

impl DecodeError {
    /// Short stable code for metrics labels and DLQ headers.
    pub fn code(&self) -> &'static str {
        match self {
            DecodeError::TooLarge { .. } => "too_large",
            DecodeError::Json(_) => "json",
            DecodeError::Missing(_) => "missing_field",
            DecodeError::Invalid { .. } => "invalid_field",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Login,
    Access,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

/// Authentication methods as a bit set (`methods` in the contract).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Methods(pub u16);

impl Methods {
    pub const PWD: u16 = 1;
    pub const OTP: u16 = 1 << 1;
    pub const SMS: u16 = 1 << 2;
    pub const PUSH: u16 = 1 << 3;
    pub const WEBAUTHN: u16 = 1 << 4;
    pub const HWK: u16 = 1 << 5;
    pub const EMAIL: u16 = 1 << 6;
    pub const OTHER: u16 = 1 << 15;

    /// Every method name stepup knows, in a stable order.
    pub const NAMES: [(&'static str, u16); 7] = [
        ("pwd", Self::PWD),
        ("otp", Self::OTP),
        ("sms", Self::SMS),
        ("push", Self::PUSH),
        ("webauthn", Self::WEBAUTHN),
        ("hwk", Self::HWK),
        ("email", Self::EMAIL),
    ];

    pub fn bit(name: &str) -> u16 {
        Self::NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, b)| *b)
            .unwrap_or(match name {
                "password" => Self::PWD,
                "totp" | "hotp" => Self::OTP,
                "fido2" | "passkey" => Self::WEBAUTHN,
                _ => Self::OTHER,
            })
    }

    pub fn contains(self, bits: u16) -> bool {
        self.0 & bits == bits
    }
}

/// A decoded event, borrowing from the input.
#[derive(Debug, Clone)]
pub struct AuthEvent<'a> {
    pub event_id: Cow<'a, str>,
    pub time_ms: i64,
    pub kind: EventKind,
    pub user_id: Cow<'a, str>,
    pub outcome: Outcome,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<Cow<'a, str>>,
    pub device_id: Option<Cow<'a, str>>,
    pub session_id: Option<Cow<'a, str>>,
    pub aal: u8,
    pub methods: Methods,
    pub resource: Option<Cow<'a, str>>,
    pub groups: Vec<Cow<'a, str>>,
    pub source: Option<Cow<'a, str>>,
}

/// A string that borrows from the input when it can (serde's own `Cow` impl
/// always allocates inside an `Option`).
struct BStr<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for BStr<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = BStr<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<BStr<'a>, E> {
                Ok(BStr(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<BStr<'a>, E> {
                Ok(BStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<BStr<'a>, E> {
                Ok(BStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

fn cow(v: Option<BStr<'_>>) -> Option<Cow<'_, str>> {
    v.map(|b| b.0)
}

#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(borrow, default)]
    event_id: Option<BStr<'a>>,
    #[serde(borrow, default)]
    time: Option<BStr<'a>>,
    #[serde(borrow, default, rename = "type")]
    kind: Option<BStr<'a>>,
    #[serde(borrow, default)]
    user_id: Option<BStr<'a>>,
    #[serde(borrow, default)]
    outcome: Option<BStr<'a>>,
    #[serde(borrow, default)]
    ip: Option<BStr<'a>>,
    #[serde(borrow, default)]
    user_agent: Option<BStr<'a>>,
    #[serde(borrow, default)]
    device_id: Option<BStr<'a>>,
    #[serde(borrow, default)]
    session_id: Option<BStr<'a>>,
    #[serde(default)]
    aal: Option<u8>,
    #[serde(default, deserialize_with = "de_methods")]
    methods: Methods,
    #[serde(borrow, default)]
    resource: Option<BStr<'a>>,
    #[serde(borrow, default)]
    groups: Option<Vec<BStr<'a>>>,
    #[serde(borrow, default)]
    source: Option<BStr<'a>>,
}

fn de_methods<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Methods, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Methods;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an array of method names")
        }
        fn visit_unit<E>(self) -> Result<Methods, E> {
            Ok(Methods::default())
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Methods, A::Error> {
            let mut m = 0u16;
            while let Some(BStr(s)) = seq.next_element::<BStr<'de>>()? {
                m |= Methods::bit(&s);
            }
            Ok(Methods(m))
        }
    }
    d.deserialize_any(V)
}

/// Longest identifier we accept, in characters (user ids, event ids, device ids,
/// session ids, group names; the schema's `maxLength`): keeps hostile input from
/// inflating state or outputs.
pub const MAX_ID_LEN: usize = 256;
/// Longest resource name accepted, in characters.
pub const MAX_TEXT_LEN: usize = 1024;
/// User agents longer than this are cut (at a character boundary).
pub const MAX_UA_LEN: usize = 1024;
/// Most IdP groups one event may carry.
pub const MAX_GROUPS: usize = 256;

/// More than `max` characters? (The byte length bounds the character count from
/// above, so the common short string costs one comparison.)
#[inline]
fn too_long(s: &str, max: usize) -> bool {
    s.len() > max && s.chars().count() > max
}

fn id<'a>(v: Option<Cow<'a, str>>, field: &'static str) -> Result<Cow<'a, str>, DecodeError> {
    let v = v.ok_or(DecodeError::Missing(field))?;
    if v.is_empty() {
        return Err(DecodeError::Invalid {
            field,
            reason: "empty".into(),
        });
    }
    if too_long(&v, MAX_ID_LEN) {
        return Err(DecodeError::Invalid {
            field,
            reason: format!("longer than {MAX_ID_LEN} characters"),
        });
    }
    Ok(v)
}

/// Decode one native event. `limit` is the largest record accepted, in bytes.
pub fn decode(bytes: &[u8], limit: usize) -> Result<AuthEvent<'_>, DecodeError> {
    if bytes.len() > limit {
        return Err(DecodeError::TooLarge {
            size: bytes.len(),
            limit,
        });
    }
    // one UTF-8 check of the whole record (std's ASCII fast path) lets the parser
    // skip its check of every string
    let text = std::str::from_utf8(bytes).map_err(|e| {
        DecodeError::Json(format!(
            "invalid UTF-8 at byte {} (records must be UTF-8 JSON)",
            e.valid_up_to()
        ))
    })?;
    let raw: Raw<'_> = serde_json::from_str(text).map_err(|e| DecodeError::Json(e.to_string()))?;
    let event_id = id(cow(raw.event_id), "event_id")?;
    let user_id = id(cow(raw.user_id), "user_id")?;
    let time = cow(raw.time).ok_or(DecodeError::Missing("time"))?;
    let time_ms = parse_rfc3339_ms(&time).ok_or_else(|| DecodeError::Invalid {
        field: "time",
        reason: format!("not an RFC 3339 timestamp: {:?}", truncate(&time, 64)),
    })?;
    let kind = match cow(raw.kind).as_deref() {
        Some("login") => EventKind::Login,
        Some("access") => EventKind::Access,
        Some(other) => {
            return Err(DecodeError::Invalid {
                field: "type",
                reason: format!("expected \"login\" or \"access\", got {:?}", truncate(other, 32)),
            })
        }
        None => return Err(DecodeError::Missing("type")),
    };
    let outcome = match (cow(raw.outcome).as_deref(), kind) {
        (Some("success"), _) => Outcome::Success,
        (Some("failure"), _) => Outcome::Failure,
        (None, EventKind::Access) => Outcome::Success,
        (None, EventKind::Login) => return Err(DecodeError::Missing("outcome")),
        (Some(other), _) => {
            return Err(DecodeError::Invalid {
                field: "outcome",
                reason: format!("expected \"success\" or \"failure\", got {:?}", truncate(other, 32)),
            })
        }
    };
    let ip = match cow(raw.ip) {
        Some(s) => Some(s.trim().parse::<IpAddr>().map_err(|_| DecodeError::Invalid {
            field: "ip",
            reason: format!("not an IPv4/IPv6 address: {:?}", truncate(&s, 64)),
        })?),
        None if kind == EventKind::Login => return Err(DecodeError::Missing("ip")),
        None => None,
    };
    let aal = raw.aal.unwrap_or(1);
    if !(1..=3).contains(&aal) {
        return Err(DecodeError::Invalid {
            field: "aal",
            reason: format!("must be 1, 2 or 3, got {aal}"),
        });
    }
    let resource = cow(raw.resource).filter(|r| !r.is_empty());
    if kind == EventKind::Access && resource.is_none() {
        return Err(DecodeError::Missing("resource"));
    }
    // Strings that become cache keys or outputs are bounded: hostile input must not
    // inflate per-partition caches.
    if resource.as_ref().is_some_and(|v| too_long(v, MAX_TEXT_LEN)) {
        return Err(DecodeError::Invalid {
            field: "resource",
            reason: format!("longer than {MAX_TEXT_LEN} characters"),
        });
    }
    let session_id = cow(raw.session_id);
    if session_id.as_ref().is_some_and(|v| too_long(v, MAX_ID_LEN)) {
        return Err(DecodeError::Invalid {
            field: "session_id",
            reason: format!("longer than {MAX_ID_LEN} characters"),
        });
    }
    let groups: Vec<Cow<'_, str>> = raw
        .groups
        .map(|g| g.into_iter().map(|b| b.0).collect())
        .unwrap_or_default();
    if groups.len() > MAX_GROUPS || groups.iter().any(|g| too_long(g, MAX_ID_LEN)) {
        return Err(DecodeError::Invalid {
            field: "groups",
            reason: format!("at most {MAX_GROUPS} groups of at most {MAX_ID_LEN} characters"),
        });
    }
    // A user agent is evidence, not an identifier: keep a bounded prefix.
    let user_agent = cow(raw.user_agent).filter(|u| !u.is_empty()).map(|u| match u {
        Cow::Borrowed(b) => Cow::Borrowed(truncate(b, MAX_UA_LEN)),
        Cow::Owned(o) => Cow::Owned(truncate(&o, MAX_UA_LEN).to_string()),
    });
    let device_id = match cow(raw.device_id) {
        Some(d) if too_long(&d, MAX_ID_LEN) => {
            return Err(DecodeError::Invalid {
                field: "device_id",
                reason: format!("longer than {MAX_ID_LEN} characters"),
            })
        }
        Some(d) if d.is_empty() => None,
        d => d,
    };
    Ok(AuthEvent {
        event_id,
        time_ms,
        kind,
        user_id,
        outcome,
        ip,
        user_agent,
        device_id,
        session_id,
        aal,
        methods: raw.methods,
        resource,
        groups,
        source: cow(raw.source),
    })
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"{"event_id":"e1","time":"2026-03-02T08:15:03.120Z","type":"login","user_id":"u1","outcome":"success","ip":"81.2.69.142","user_agent":"Mozilla/5.0","aal":2,"methods":["pwd","otp"],"groups":["dev"],"extra":{"ignored":true}}"#;

    /// Limits count characters, as the schema's `maxLength` does: a 256-character
    /// user id in CJK (768 bytes) is valid; 257 characters are not.
    #[test]
    fn length_limits_count_characters() {
        let with =
            |field: &str, v: &str| OK.replacen(r#""user_id":"u1""#, &format!(r#""user_id":"u1","{field}":"{v}""#), 1);
        let cjk = "用".repeat(MAX_ID_LEN);
        let ok = OK.replace(r#""user_id":"u1""#, &format!(r#""user_id":"{cjk}""#));
        assert_eq!(
            decode(ok.as_bytes(), 65536).unwrap().user_id.chars().count(),
            MAX_ID_LEN
        );
        let over = OK.replace(r#""user_id":"u1""#, &format!(r#""user_id":"{cjk}x""#));
        let e = decode(over.as_bytes(), 65536).unwrap_err();
        assert!(e.to_string().contains("256 characters"), "{e}");
        let sid = with("session_id", &"é".repeat(MAX_ID_LEN));
        assert!(decode(sid.as_bytes(), 65536).is_ok());
        let sid = with("session_id", &"é".repeat(MAX_ID_LEN + 1));
        assert!(decode(sid.as_bytes(), 65536).is_err());
    }

    #[test]
    fn decodes_native_event() {
        let e = decode(OK.as_bytes(), 65536).unwrap();
        assert_eq!(e.event_id, "e1");
        assert_eq!(e.kind, EventKind::Login);
        assert_eq!(e.aal, 2);
        assert!(e.methods.contains(Methods::PWD | Methods::OTP));
        assert_eq!(e.groups, vec!["dev"]);
        assert!(
            matches!(e.event_id, Cow::Borrowed(_)),
            "no allocation for plain strings"
        );
    }

    #[test]
    fn each_bad_input_kind_has_a_clear_error() {
        let cases: &[(&str, &str)] = &[
            ("not json", "json"),
            (
                r#"{"time":"2026-03-02T08:15:03Z","type":"login","user_id":"u","outcome":"success","ip":"1.2.3.4"}"#,
                "missing_field",
            ),
            (
                r#"{"event_id":"e","time":"2026-03-02T08:15:03Z","type":"login","user_id":"u","outcome":"success","ip":"1.2.3.999"}"#,
                "invalid_field",
            ),
            (
                r#"{"event_id":"e","time":"03/02/2026","type":"login","user_id":"u","outcome":"success","ip":"1.2.3.4"}"#,
                "invalid_field",
            ),
            (
                r#"{"event_id":"e","time":"2026-03-02T08:15:03Z","type":"login","user_id":7,"outcome":"success","ip":"1.2.3.4"}"#,
                "json",
            ),
            (
                r#"{"event_id":"e","time":"2026-03-02T08:15:03Z","type":"login","user_id":"u","outcome":"success","ip":"1.2.3.4","aal":4}"#,
                "invalid_field",
            ),
            (
                r#"{"event_id":"e","time":"2026-03-02T08:15:03Z","type":"access","user_id":"u"}"#,
                "missing_field",
            ),
            (
                r#"{"event_id":"e","time":"2026-03-02T08:15:03Z","type":"login","user_id":"u","outcome":"success"}"#,
                "missing_field",
            ),
        ];
        for (input, code) in cases {
            let err = decode(input.as_bytes(), 65536).unwrap_err();
            assert_eq!(err.code(), *code, "{input} -> {err}");
        }
        let long_ua = OK.replace("Mozilla/5.0", &"M".repeat(5000));
        let e = decode(long_ua.as_bytes(), 65536).unwrap();
        assert_eq!(
            e.user_agent.as_deref().map(str::len),
            Some(MAX_UA_LEN),
            "a long user agent is cut"
        );
        let long_res = OK.replace(
            r#""type":"login""#,
            &format!(r#""type":"access","resource":"{}""#, "r".repeat(2000)),
        );
        assert_eq!(decode(long_res.as_bytes(), 65536).unwrap_err().code(), "invalid_field");
        let groups = format!("[{}]", vec!["\"g\""; 300].join(","));
        let many = OK.replace(r#"["dev"]"#, &groups);
        assert_eq!(decode(many.as_bytes(), 65536).unwrap_err().code(), "invalid_field");
        let err = decode(OK.as_bytes(), 10).unwrap_err();
        assert_eq!(
            err,
            DecodeError::TooLarge {
                size: OK.len(),
                limit: 10
            }
        );
        assert!(decode(b"\xff\xfe", 100).is_err());
    }
}
