//! Seeds for the draws a nemesis makes while it runs (a shaper's delays,
//! a torn power loss's cuts), derived from names rather than from a clock,
//! so the same timeline draws the same way.

/// A seed from `text` (FNV-1a): stable across runs and platforms.
pub(crate) fn seed_from_text(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}
