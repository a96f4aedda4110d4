//! Per-contractor behavioural baselines and the population statistics derived from them.
//!
//! A [`StateStore`] is the state of one Kafka partition (or of one offline `score`
//! run): the users' [`UserBaseline`]s keyed by user id, and [`GlobalStats`] that are
//! *derived* from those baselines (the sum of their feature counts). Because the
//! population statistics are derived, restoring users from the changelog restores
//! them too: the changelog only carries user baselines.
//!
//! Time is event time (minutes since the Unix epoch), never wall-clock time, so a
//! replay scores exactly as the first run did.

use chrono_tz::Tz;

use crate::hash::FastMap;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BaselineError {
    #[error("baseline record is truncated")]
    Truncated,
    #[error("unknown baseline encoding version {0}")]
    Version(u8),
    #[error("baseline record is corrupt: {0}")]
    Corrupt(&'static str),
}

/// The features a baseline remembers. The order is part of the encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Feature {
    Ip = 0,
    Asn = 1,
    City = 2,
    Country = 3,
    Device = 4,
    UserAgent = 5,
    Browser = 6,
    Os = 7,
    Category = 8,
}

impl Feature {
    /// Population frequencies are kept for the coarse levels only (country, city,
    /// ASN, browser, OS, device category). The fine levels (address block, device,
    /// full user agent) are nearly unique per user: their population share is the
    /// model's uniform prior, which saves a large map and a cache miss per event.
    pub const fn has_population_stats(self) -> bool {
        !matches!(self, Feature::Ip | Feature::Device | Feature::UserAgent)
    }
}

pub const N_FEATURES: usize = 9;
pub const FEATURES: [Feature; N_FEATURES] = [
    Feature::Ip,
    Feature::Asn,
    Feature::City,
    Feature::Country,
    Feature::Device,
    Feature::UserAgent,
    Feature::Browser,
    Feature::Os,
    Feature::Category,
];

/// How many values each feature remembers per user (bounded memory).
pub const DEFAULT_CAPS: [u8; N_FEATURES] = [16, 8, 12, 6, 8, 8, 6, 6, 4];

/// One remembered value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub key: u64,
    pub count: u32,
    /// Last seen, minutes since the epoch (event time).
    pub last: u32,
}

/// A remembered location, for velocity checks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LastLocation {
    pub lat: f32,
    pub lon: f32,
    pub accuracy_km: u16,
    pub time_ms: i64,
}

/// Ring of recent failure times (minutes).
pub const FAIL_RING: usize = 8;

/// One contractor's baseline. Typical size: a few hundred bytes; bounded by the caps
/// (see `approx_bytes`).
#[derive(Debug, Clone, PartialEq)]
pub struct UserBaseline {
    pub features: [Vec<Entry>; N_FEATURES],
    /// Hour-of-week histogram in the user's local time (0 = Monday 00h). Counts
    /// saturate by halving the whole histogram, keeping its shape.
    pub hours: [u8; 168],
    /// Logins that taught the baseline (trusted logins).
    pub logins: u32,
    pub first_seen: u32,
    pub last_seen: u32,
    pub last_location: Option<LastLocation>,
    pub fails: [u32; FAIL_RING],
    pub fail_head: u8,
    /// Time zone learned from geo (the registry's `home_timezone` takes precedence).
    pub tz: Option<Tz>,
    /// One past the input position (Kafka offset) of the last record that changed
    /// this baseline; 0 when unknown (offline scoring). Makes replays idempotent.
    pub applied: u64,
}

/// The baseline of a user never seen (scoring reads it without allocating one).
pub static EMPTY: UserBaseline = UserBaseline::new();

impl UserBaseline {
    pub const fn new() -> Self {
        UserBaseline {
            features: [const { Vec::new() }; N_FEATURES],
            hours: [0; 168],
            logins: 0,
            first_seen: 0,
            last_seen: 0,
            last_location: None,
            fails: [0; FAIL_RING],
            fail_head: 0,
            tz: None,
            applied: 0,
        }
    }

    /// Ask the CPU to start loading this baseline's own lines while other work
    /// goes on: with thousands of users a baseline is rarely in cache, and scoring
    /// it is otherwise a chain of dependent misses. A hint only (no load, so no
    /// stall here); no effect on results. See also [`Self::prefetch_lists`].
    #[inline]
    pub fn prefetch(&self) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let base = self as *const Self as *const i8;
            let mut off = 0;
            while off < std::mem::size_of::<Self>() {
                // SAFETY: prefetch never faults and reads nothing; the address is
                // inside `self`.
                unsafe { _mm_prefetch(base.wrapping_add(off), _MM_HINT_T0) };
                off += 64;
            }
        }
    }

    /// The same for the first line of each feature list. Reads the list headers,
    /// so call it once [`Self::prefetch`] had time to bring them in.
    #[inline]
    pub fn prefetch_lists(&self) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            for f in &self.features {
                if !f.is_empty() {
                    // SAFETY: prefetch never faults and reads nothing; the pointer
                    // is the list's live buffer.
                    unsafe { _mm_prefetch(f.as_ptr() as *const i8, _MM_HINT_T0) };
                }
            }
        }
    }

    /// Has the record at `position` already been applied to this baseline?
    pub fn has_applied(&self, position: Option<u64>) -> bool {
        position.is_some_and(|p| p < self.applied)
    }
}

impl Default for UserBaseline {
    fn default() -> Self {
        Self::new()
    }
}

impl UserBaseline {
    pub fn entries(&self, f: Feature) -> &[Entry] {
        &self.features[f as usize]
    }

    pub fn get(&self, f: Feature, key: u64) -> Option<&Entry> {
        self.features[f as usize].iter().find(|e| e.key == key)
    }

    pub fn count(&self, f: Feature, key: u64) -> u32 {
        self.get(f, key).map_or(0, |e| e.count)
    }

    pub fn distinct(&self, f: Feature) -> usize {
        self.features[f as usize].len()
    }

    pub fn total(&self, f: Feature) -> u32 {
        self.features[f as usize].iter().map(|e| e.count).sum()
    }

    /// Failures within `window_min` minutes before `now_min` (inclusive).
    pub fn recent_failures(&self, now_min: u32, window_min: u32) -> u32 {
        self.fails
            .iter()
            .filter(|&&t| t != 0 && t <= now_min && now_min - t <= window_min)
            .count() as u32
    }

    /// Rough heap + inline footprint in bytes.
    pub fn approx_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self
                .features
                .iter()
                .map(|v| v.capacity() * std::mem::size_of::<Entry>())
                .sum::<usize>()
    }
}

/// Population frequencies per feature value, derived from the baselines held.
#[derive(Debug, Default, Clone)]
pub struct GlobalStats {
    counts: [FastMap<u64, u32>; N_FEATURES],
    totals: [u64; N_FEATURES],
    /// Trusted logins over all users held.
    pub logins: u64,
    pub users: u64,
}

impl GlobalStats {
    pub fn count(&self, f: Feature, key: u64) -> u32 {
        self.counts[f as usize].get(&key).copied().unwrap_or(0)
    }
    pub fn total(&self, f: Feature) -> u64 {
        self.totals[f as usize]
    }
    pub fn distinct(&self, f: Feature) -> usize {
        self.counts[f as usize].len()
    }

    fn add(&mut self, f: Feature, key: u64, n: u32) {
        if !f.has_population_stats() {
            return;
        }
        let c = self.counts[f as usize].entry(key).or_insert(0);
        *c = c.saturating_add(n);
        self.totals[f as usize] = self.totals[f as usize].saturating_add(n as u64);
    }

    fn sub(&mut self, f: Feature, key: u64, n: u32) {
        if !f.has_population_stats() {
            return;
        }
        let m = &mut self.counts[f as usize];
        if let Some(c) = m.get_mut(&key) {
            let d = n.min(*c);
            *c -= d;
            self.totals[f as usize] -= d as u64;
            if *c == 0 {
                m.remove(&key);
            }
        }
    }

    fn add_user(&mut self, b: &UserBaseline) {
        for f in FEATURES {
            for e in b.entries(f) {
                self.add(f, e.key, e.count);
            }
        }
        self.logins += b.logins as u64;
        self.users += (b.logins > 0) as u64;
    }

    fn sub_user(&mut self, b: &UserBaseline) {
        for f in FEATURES {
            for e in b.entries(f) {
                self.sub(f, e.key, e.count);
            }
        }
        self.logins = self.logins.saturating_sub(b.logins as u64);
        self.users = self.users.saturating_sub((b.logins > 0) as u64);
    }
}

/// What a trusted login teaches: one key per feature plus time and place.
#[derive(Debug, Clone)]
pub struct Observation {
    pub keys: [u64; N_FEATURES],
    pub time_ms: i64,
    pub hour_of_week: Option<u8>,
    pub location: Option<LastLocation>,
    pub tz: Option<Tz>,
}

/// Retention settings.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub horizon_min: u32,
    pub caps: [u8; N_FEATURES],
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            horizon_min: 180 * 24 * 60,
            caps: DEFAULT_CAPS,
        }
    }
}

pub fn minutes(ms: i64) -> u32 {
    (ms.max(0) / 60_000).min(u32::MAX as i64) as u32
}

/// A user's identity in the state map: two independent 64-bit hashes of the id (a
/// collision needs about 2^64 users in one partition), compared inline without
/// touching the heap (a `Box<str>` key costs a cache miss per probe).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserKey(u64, u64);

impl UserKey {
    pub fn of(user: &str) -> Self {
        UserKey(
            crate::hash::hs(crate::hash::Ns::User, user),
            crate::hash::hs(crate::hash::Ns::UserCheck, user),
        )
    }
}

#[derive(Debug)]
struct Slot {
    id: Box<str>,
    b: UserBaseline,
}

/// The state one partition owns.
#[derive(Debug, Default)]
pub struct StateStore {
    users: FastMap<UserKey, Box<Slot>>,
    pub global: GlobalStats,
    pub retention: Retention,
}

impl StateStore {
    pub fn new(retention: Retention) -> Self {
        StateStore {
            users: FastMap::default(),
            global: GlobalStats::default(),
            retention,
        }
    }

    pub fn get(&self, user: &str) -> Option<&UserBaseline> {
        self.get_key(UserKey::of(user))
    }

    pub fn get_key(&self, key: UserKey) -> Option<&UserBaseline> {
        self.users.get(&key).map(|s| &s.b)
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    pub fn users(&self) -> impl Iterator<Item = (&str, &UserBaseline)> {
        self.users.values().map(|s| (&*s.id, &s.b))
    }

    /// Replace (or with `None`, remove) one user's baseline, keeping the
    /// population statistics consistent. Used by changelog restore.
    pub fn put(&mut self, user: &str, b: Option<UserBaseline>) {
        let key = UserKey::of(user);
        if let Some(old) = self.users.remove(&key) {
            self.global.sub_user(&old.b);
        }
        if let Some(b) = b {
            self.global.add_user(&b);
            self.users.insert(key, Box::new(Slot { id: Box::from(user), b }));
        }
    }

    /// Drop the users that no longer carry anything the model reads, as of stream
    /// time `now_min`, pushing their ids to `removed` (the worker writes a
    /// changelog tombstone for each): users that never had a trusted login and
    /// whose last failure is more than `idle_fail_min` old (failed logins against
    /// made-up names would otherwise grow the state without bound), and users
    /// unseen for longer than the retention horizon (every value they had has
    /// aged out). Returns how many were dropped.
    pub fn expire_idle(&mut self, now_min: u32, idle_fail_min: u32, removed: &mut Vec<String>) -> usize {
        let fail_cutoff = now_min.saturating_sub(idle_fail_min);
        let horizon_cutoff = now_min.saturating_sub(self.retention.horizon_min);
        let before = removed.len();
        let g = &mut self.global;
        self.users.retain(|_, s| {
            let b = &s.b;
            let idle = (b.logins == 0 && b.last_seen < fail_cutoff) || b.last_seen < horizon_cutoff;
            if idle {
                g.sub_user(b);
                removed.push(s.id.to_string());
            }
            !idle
        });
        let n = removed.len() - before;
        if n > 0 && self.users.capacity() > 4 * self.users.len().max(1024) {
            self.users.shrink_to_fit();
        }
        n
    }

    /// Drop everything (partition revoked).
    pub fn clear(&mut self) {
        self.users.clear();
        self.global = GlobalStats::default();
    }

    fn entry(&mut self, user: &str, key: UserKey, now_min: u32) -> &mut UserBaseline {
        let slot = self.users.entry(key).or_insert_with(|| {
            Box::new(Slot {
                id: Box::from(user),
                b: UserBaseline {
                    first_seen: now_min,
                    ..Default::default()
                },
            })
        });
        &mut slot.b
    }

    /// Remember that the record at `position` changed `user`'s baseline.
    pub fn mark_applied(&mut self, key: UserKey, position: u64) {
        if let Some(s) = self.users.get_mut(&key) {
            s.b.applied = s.b.applied.max(position.saturating_add(1));
        }
    }

    /// Record a failed login (never teaches places or devices).
    pub fn record_failure(&mut self, user: &str, time_ms: i64) {
        self.record_failure_key(user, UserKey::of(user), time_ms)
    }

    pub fn record_failure_key(&mut self, user: &str, key: UserKey, time_ms: i64) {
        let now = minutes(time_ms).max(1);
        let b = self.entry(user, key, now);
        let i = b.fail_head as usize % FAIL_RING;
        b.fails[i] = now;
        b.fail_head = ((i + 1) % FAIL_RING) as u8;
        b.last_seen = b.last_seen.max(now);
    }

    /// Teach a trusted login.
    pub fn learn(&mut self, user: &str, obs: &Observation) {
        self.learn_key(user, UserKey::of(user), obs)
    }

    pub fn learn_key(&mut self, user: &str, key: UserKey, obs: &Observation) {
        let now = minutes(obs.time_ms);
        let retention = self.retention;
        // split borrows: the user's baseline and the population stats
        let b = &mut self
            .users
            .entry(key)
            .or_insert_with(|| {
                Box::new(Slot {
                    id: Box::from(user),
                    b: UserBaseline {
                        first_seen: now,
                        ..Default::default()
                    },
                })
            })
            .b;
        let g = &mut self.global;
        let cutoff = now.saturating_sub(retention.horizon_min);
        for f in FEATURES {
            let key = obs.keys[f as usize];
            let v = &mut b.features[f as usize];
            // age out
            v.retain(|e| {
                let keep = e.last >= cutoff;
                if !keep {
                    g.sub(f, e.key, e.count);
                }
                keep
            });
            if key == 0 {
                continue;
            }
            if let Some(e) = v.iter_mut().find(|e| e.key == key) {
                e.count = e.count.saturating_add(1);
                e.last = e.last.max(now);
            } else {
                let cap = retention.caps[f as usize].max(1) as usize;
                if v.len() >= cap {
                    // evict the least used, oldest value
                    if let Some((i, _)) = v.iter().enumerate().min_by_key(|(_, e)| (e.count, e.last)) {
                        let e = v.swap_remove(i);
                        g.sub(f, e.key, e.count);
                    }
                }
                v.push(Entry {
                    key,
                    count: 1,
                    last: now,
                });
            }
            g.add(f, key, 1);
        }
        if let Some(h) = obs.hour_of_week {
            let h = h as usize % 168;
            if b.hours[h] == u8::MAX {
                for x in b.hours.iter_mut() {
                    *x /= 2;
                }
            }
            b.hours[h] += 1;
        }
        if obs.location.is_some() {
            b.last_location = obs.location;
        }
        if b.tz.is_none() {
            b.tz = obs.tz;
        }
        if b.logins == 0 {
            // `users` counts contractors with a trusted login: failed logins against
            // made-up names do not move the population prior
            g.users += 1;
        }
        b.logins = b.logins.saturating_add(1);
        g.logins += 1;
        b.last_seen = b.last_seen.max(now);
    }
}

// ---------------------------------------------------------------------------------
// Encoding: compact, versioned, stable. Used by `--state` files and the changelog.
// ---------------------------------------------------------------------------------

/// Encoding version 2 adds `applied`; version 1 records still decode (applied = 0).
const VERSION: u8 = 2;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Rd<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Rd<'a> {
    fn u8(&mut self) -> Result<u8, BaselineError> {
        let v = *self.b.get(self.i).ok_or(BaselineError::Truncated)?;
        self.i += 1;
        Ok(v)
    }
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], BaselineError> {
        let end = self.i.checked_add(n).ok_or(BaselineError::Truncated)?;
        let s = self.b.get(self.i..end).ok_or(BaselineError::Truncated)?;
        self.i = end;
        Ok(s)
    }
    fn varint(&mut self) -> Result<u64, BaselineError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(BaselineError::Corrupt("varint too long"))
    }
    fn u32v(&mut self) -> Result<u32, BaselineError> {
        u32::try_from(self.varint()?).map_err(|_| BaselineError::Corrupt("value out of range"))
    }
    fn u64le(&mut self) -> Result<u64, BaselineError> {
        let s = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_le_bytes(a))
    }
    fn f32le(&mut self) -> Result<f32, BaselineError> {
        let s = self.bytes(4)?;
        let mut a = [0u8; 4];
        a.copy_from_slice(s);
        Ok(f32::from_le_bytes(a))
    }
}

impl UserBaseline {
    /// Append the compact encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(VERSION);
        put_varint(out, self.logins as u64);
        put_varint(out, self.first_seen as u64);
        put_varint(out, self.last_seen as u64);
        put_varint(out, self.applied);
        match self.tz {
            Some(tz) => {
                let n = tz.name().as_bytes();
                out.push(n.len().min(255) as u8);
                out.extend_from_slice(&n[..n.len().min(255)]);
            }
            None => out.push(0),
        }
        match self.last_location {
            Some(l) => {
                out.push(1);
                out.extend_from_slice(&l.lat.to_le_bytes());
                out.extend_from_slice(&l.lon.to_le_bytes());
                put_varint(out, l.accuracy_km as u64);
                put_varint(out, l.time_ms.max(0) as u64);
            }
            None => out.push(0),
        }
        out.push(self.fail_head);
        for t in self.fails {
            put_varint(out, t as u64);
        }
        // hour histogram: sparse (hour, count) pairs
        let nz = self.hours.iter().filter(|&&c| c > 0).count();
        out.push(nz as u8);
        for (h, &c) in self.hours.iter().enumerate() {
            if c > 0 {
                out.push(h as u8);
                out.push(c);
            }
        }
        for v in &self.features {
            out.push(v.len().min(255) as u8);
            for e in v.iter().take(255) {
                out.extend_from_slice(&e.key.to_le_bytes());
                put_varint(out, e.count as u64);
                put_varint(out, e.last as u64);
            }
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(256);
        self.encode(&mut v);
        v
    }

    /// Decode one baseline; rejects anything truncated, trailing or out of range.
    pub fn decode(bytes: &[u8]) -> Result<Self, BaselineError> {
        let mut r = Rd { b: bytes, i: 0 };
        let ver = r.u8()?;
        if ver != 1 && ver != VERSION {
            return Err(BaselineError::Version(ver));
        }
        let mut b = UserBaseline {
            logins: r.u32v()?,
            first_seen: r.u32v()?,
            last_seen: r.u32v()?,
            ..Default::default()
        };
        if ver >= 2 {
            b.applied = r.varint()?;
        }
        let tzl = r.u8()? as usize;
        if tzl > 0 {
            let name = std::str::from_utf8(r.bytes(tzl)?).map_err(|_| BaselineError::Corrupt("time zone"))?;
            b.tz = name.parse::<Tz>().ok();
        }
        if r.u8()? == 1 {
            let lat = r.f32le()?;
            let lon = r.f32le()?;
            let accuracy_km = u16::try_from(r.varint()?).map_err(|_| BaselineError::Corrupt("accuracy"))?;
            let time_ms = i64::try_from(r.varint()?).map_err(|_| BaselineError::Corrupt("time"))?;
            if !(lat.is_finite() && lon.is_finite()) {
                return Err(BaselineError::Corrupt("location"));
            }
            b.last_location = Some(LastLocation {
                lat,
                lon,
                accuracy_km,
                time_ms,
            });
        }
        b.fail_head = r.u8()? % FAIL_RING as u8;
        for t in b.fails.iter_mut() {
            *t = r.u32v()?;
        }
        let nz = r.u8()?;
        for _ in 0..nz {
            let h = r.u8()? as usize;
            let c = r.u8()?;
            *b.hours.get_mut(h).ok_or(BaselineError::Corrupt("hour"))? = c;
        }
        for v in b.features.iter_mut() {
            let n = r.u8()? as usize;
            v.reserve_exact(n);
            for _ in 0..n {
                v.push(Entry {
                    key: r.u64le()?,
                    count: r.u32v()?,
                    last: r.u32v()?,
                });
            }
        }
        if r.i != bytes.len() {
            return Err(BaselineError::Corrupt("trailing bytes"));
        }
        Ok(b)
    }
}

/// A `--state` file: a sequence of (user id, baseline) records.
pub mod file {
    use super::*;

    const MAGIC: &[u8; 8] = b"STEPUPS1";

    pub fn encode(store: &StateStore) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + store.len() * 300);
        out.extend_from_slice(MAGIC);
        put_varint(&mut out, store.len() as u64);
        let mut users: Vec<_> = store.users().collect();
        users.sort_by(|a, b| a.0.cmp(b.0));
        let mut buf = Vec::new();
        for (u, b) in users {
            put_varint(&mut out, u.len() as u64);
            out.extend_from_slice(u.as_bytes());
            buf.clear();
            b.encode(&mut buf);
            put_varint(&mut out, buf.len() as u64);
            out.extend_from_slice(&buf);
        }
        out
    }

    pub fn decode_into(bytes: &[u8], store: &mut StateStore) -> Result<usize, BaselineError> {
        if bytes.len() < 8 || &bytes[..8] != MAGIC {
            return Err(BaselineError::Corrupt("not a stepup state file"));
        }
        let mut r = Rd { b: bytes, i: 8 };
        let n = r.varint()?;
        for _ in 0..n {
            let ul = r.varint()? as usize;
            let u = std::str::from_utf8(r.bytes(ul)?).map_err(|_| BaselineError::Corrupt("user id"))?;
            let bl = r.varint()? as usize;
            let b = UserBaseline::decode(r.bytes(bl)?)?;
            store.put(u, Some(b));
        }
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(keys: [u64; N_FEATURES], t: i64) -> Observation {
        Observation {
            keys,
            time_ms: t,
            hour_of_week: Some(33),
            location: Some(LastLocation {
                lat: 38.7,
                lon: -9.1,
                accuracy_km: 20,
                time_ms: t,
            }),
            tz: Some(chrono_tz::Europe::Lisbon),
        }
    }

    #[test]
    fn learn_counts_and_global_stay_consistent() {
        let mut s = StateStore::new(Retention::default());
        let k = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        s.learn("a", &obs(k, 1_700_000_000_000));
        s.learn("a", &obs(k, 1_700_000_060_000));
        s.learn("b", &obs(k, 1_700_000_060_000));
        assert_eq!(s.get("a").unwrap().count(Feature::Country, 4), 2);
        assert_eq!(s.global.count(Feature::Country, 4), 3);
        assert_eq!(s.global.users, 2);
        s.put("a", None);
        assert_eq!(s.global.count(Feature::Country, 4), 1);
        assert_eq!(s.global.users, 1);
    }

    #[test]
    fn caps_and_horizon_bound_memory() {
        let mut s = StateStore::new(Retention {
            horizon_min: 60,
            caps: DEFAULT_CAPS,
        });
        for i in 0..100u64 {
            let k = [i + 1; N_FEATURES];
            s.learn("a", &obs(k, 1_700_000_000_000 + i as i64 * 1000));
        }
        let b = s.get("a").unwrap();
        for f in FEATURES {
            assert!(b.distinct(f) <= DEFAULT_CAPS[f as usize] as usize);
        }
        // everything but the newest ages out two hours later
        s.learn("a", &obs([7777; N_FEATURES], 1_700_000_000_000 + 2 * 3_600_000));
        let b = s.get("a").unwrap();
        assert_eq!(b.distinct(Feature::Ip), 1);
        assert_eq!(s.global.distinct(Feature::Asn), 1);
        assert_eq!(
            s.global.distinct(Feature::Ip),
            0,
            "no population stats for address blocks"
        );
        assert!(b.approx_bytes() < 2048, "{}", b.approx_bytes());
    }

    #[test]
    fn encoding_round_trips_and_rejects_garbage() {
        let mut s = StateStore::new(Retention::default());
        for i in 0..20u64 {
            s.learn(
                "a",
                &obs(
                    [i % 3 + 1, 2, 3, 4, 5, i + 10, 7, 8, 9],
                    1_700_000_000_000 + i as i64 * 60_000,
                ),
            );
        }
        s.record_failure("a", 1_700_000_000_000);
        let b = s.get("a").unwrap().clone();
        let bytes = b.to_bytes();
        assert_eq!(UserBaseline::decode(&bytes).unwrap(), b);
        for cut in 0..bytes.len() {
            assert!(UserBaseline::decode(&bytes[..cut]).is_err(), "truncated at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(UserBaseline::decode(&longer).is_err());
        assert_eq!(UserBaseline::decode(&[9]), Err(BaselineError::Version(9)));
        let f = file::encode(&s);
        let mut s2 = StateStore::new(Retention::default());
        assert_eq!(file::decode_into(&f, &mut s2).unwrap(), 1);
        assert_eq!(s2.get("a"), s.get("a"));
        assert_eq!(s2.global.count(Feature::Asn, 2), 20);
    }
}
