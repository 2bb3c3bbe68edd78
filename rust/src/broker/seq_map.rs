//! Maps keyed by a child's seqs (`Consumer::held`, its permits). The standard SipHash costs tens of nanoseconds a
//! key, paid twice per task (held when claimed, dropped when settled); seqs are local counters no one else picks,
//! so a multiplicative hash (spreading the dense values over the high bits hashbrown reads) is enough.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// The hasher of `SeqMap`: one multiplication per u64 key.
#[derive(Default)]
pub struct SeqHasher(u64);

impl Hasher for SeqHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // NOTE: only u64 keys come here (write_u64); any other key still hashes correctly, one byte at a time
        for &b in bytes {
            self.write_u64(u64::from(b) ^ self.0.rotate_left(8));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A HashMap keyed by seq.
pub type SeqMap<V> = HashMap<u64, V, BuildHasherDefault<SeqHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_seqs_spread_over_the_high_bits() {
        let mut tops = std::collections::HashSet::new();
        for seq in 1_000_000u64..1_000_128 {
            let mut h = SeqHasher::default();
            h.write_u64(seq);
            tops.insert(h.finish() >> 57);
        }
        assert!(tops.len() > 64, "{} distinct top-7-bit values", tops.len());
        let mut m: SeqMap<u8> = SeqMap::default();
        m.insert(7, 1);
        assert_eq!(m.get(&7), Some(&1));
    }
}
