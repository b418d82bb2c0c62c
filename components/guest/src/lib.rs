//! What every Vitrine edge function shares, so they all behave alike: the HTTP answers
//! ([`http`]: JSON bodies, JSON errors, 405 with `allow`, the admin bearer check) and the
//! lazily created SQLite tables ([`sqlite`]), signed webhook deliveries ([`webhook`]), and a
//! stable hash for ids and ETags ([`fnv1a`]).

pub mod http;
pub mod sqlite;
pub mod webhook;

/// FNV-1a (64-bit) of `bytes`: a stable, dependency-free hash for ids, cache keys and ETags
/// (not for anything an attacker may choose to collide).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn fnv1a_matches_the_reference_values() {
        // From the FNV reference test vectors.
        assert_eq!(super::fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(super::fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(super::fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
