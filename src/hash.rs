//! Stable 64-bit hashing of feature values.
//!
//! Baselines store hashed feature values, not strings: a hash is 8 bytes whatever the
//! value, and the same value hashes the same in every process, so a baseline restored
//! from the changelog on another worker still matches. FNV-1a is stable by definition
//! (std's `DefaultHasher` is not) and fast enough: the enricher caches hashes of the
//! long values (user agents), so the hot path mostly hashes short strings.

/// Feature namespaces, mixed into the hash so that equal strings of different
/// features ("US" the country and "US" some city) never collide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Ns {
    Ip = 1,
    Asn = 2,
    Country = 3,
    City = 4,
    UserAgent = 5,
    Browser = 6,
    Os = 7,
    Category = 8,
    Device = 9,
    Fingerprint = 10,
    User = 11,
    UserCheck = 12,
}

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a over `bytes`, seeded by the namespace.
#[inline]
pub fn h64(ns: Ns, bytes: &[u8]) -> u64 {
    let mut h = OFFSET ^ (ns as u64);
    h = h.wrapping_mul(PRIME);
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(PRIME);
    }
    // final avalanche (from splitmix64) so that short inputs spread over all bits
    h ^= h >> 31;
    h = h.wrapping_mul(0x7fb5_d329_728e_a185);
    h ^= h >> 27;
    h
}

/// Hash of a string value in a namespace.
#[inline]
pub fn hs(ns: Ns, s: &str) -> u64 {
    h64(ns, s.as_bytes())
}

/// Hash of two parts (e.g. country + city), separated so ("ab","c") != ("a","bc").
#[inline]
pub fn h2(ns: Ns, a: &str, b: &str) -> u64 {
    let mut buf = [0u8; 128];
    let (la, lb) = (a.len().min(60), b.len().min(60));
    buf[..la].copy_from_slice(&a.as_bytes()[..la]);
    buf[la] = 0x1f;
    buf[la + 1..la + 1 + lb].copy_from_slice(&b.as_bytes()[..lb]);
    h64(ns, &buf[..la + 1 + lb])
}

/// Fast non-cryptographic hasher for in-memory maps (not stable across builds).
pub type FastState = std::hash::BuildHasherDefault<FxLike>;

/// A small multiplicative hasher for in-memory hash maps (keys are strings and u64s
/// that an attacker can influence only within the hot-path caches, which are bounded).
#[derive(Default, Clone, Copy)]
pub struct FxLike(u64);

impl std::hash::Hasher for FxLike {
    #[inline]
    fn finish(&self) -> u64 {
        let h = self.0;
        (h ^ (h >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9)
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
        for &b in chunks.remainder() {
            h = (h.rotate_left(5) ^ b as u64).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
        self.0 = h;
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// HashMap with the fast hasher.
pub type FastMap<K, V> = std::collections::HashMap<K, V, FastState>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_namespaced() {
        // Stability across processes is the point: pin one value.
        assert_eq!(hs(Ns::Country, "PT"), hs(Ns::Country, "PT"));
        assert_ne!(hs(Ns::Country, "PT"), hs(Ns::City, "PT"));
        assert_ne!(h2(Ns::City, "ab", "c"), h2(Ns::City, "a", "bc"));
        let pinned = hs(Ns::Country, "PT");
        assert_eq!(
            pinned, 0x8e48_e232_7163_9669,
            "update the pinned value only with a changelog format bump: {pinned:#x}"
        );
    }
}
