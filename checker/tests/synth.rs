//! The synthetic generator against the checker: every injected anomaly is
//! found, exactly, and nothing else; the same seed gives the same bytes.
//! The 1 M-operation run takes about 25 s in a debug build on 2 cores
//! (a second or two with `--release`).

use std::collections::BTreeMap;

use checker::synth::{self, Injections, SynthConfig};
use checker::{CheckOptions, Validity};

/// Generates, checks with the streaming reader, compares with the truth.
fn found_exactly(ops: u64, seed: u64, inject: Injections) {
    let config = SynthConfig { ops, seed, inject, ..SynthConfig::default() };
    let (text, synthetic) = synth::generate(&config);
    assert_eq!(synthetic.injected, inject, "every injection fitted");
    let checked = checker::check_reader(text.as_bytes(), "synthetic.jsonl", &CheckOptions::default()).expect("reads");
    assert!(checked.warnings.is_empty(), "{:?}", checked.warnings);
    let found: BTreeMap<String, u64> =
        checked.result.anomalies.iter().map(|(name, anomaly)| (name.clone(), anomaly.count)).collect();
    assert_eq!(found, synthetic.expected, "seed {seed}");
    let valid = if inject.violations() > 0 { Validity::Invalid } else { Validity::Valid };
    assert_eq!(checked.result.valid, valid, "{:?}", checked.result.stats.unknown_reason);
    assert_eq!(checked.result.stats.ops, synthetic.ops);
    assert!(synthetic.ops >= ops - ops / 20, "about the asked size: {}", synthetic.ops);
}

/// `count` of every injection, and the one `unavailable` gap.
fn some_of_each(count: u64) -> Injections {
    Injections {
        lost: count,
        duplicate_writes: count,
        reorders: count,
        inconsistent_ids: count,
        unexpected: count,
        stale_redeliveries: count,
        skips: count,
        unseen_at_end: count,
        unavailable: 1,
    }
}

/// Goal: a clean synthetic run (redeliveries after connection breaks only)
/// is valid, with exactly the redeliveries the generator made.
#[test]
fn clean_synthetic_history_is_valid() {
    found_exactly(60_000, 3, Injections::default());
}

/// Goal: five of each injection at 100 k operations are all found, each
/// exactly once, and the typed reader agrees with the streaming one; each
/// kind alone is found alone (so no kind only passes by another's count).
#[test]
fn injected_anomalies_are_found_exactly() {
    found_exactly(100_000, 11, some_of_each(5));
    let alone = [
        Injections { stale_redeliveries: 3, ..Injections::default() },
        Injections { skips: 3, ..Injections::default() },
        Injections { unseen_at_end: 3, ..Injections::default() },
        Injections { unavailable: 1, ..Injections::default() },
    ];
    for inject in alone {
        found_exactly(30_000, 12, inject);
    }
    let config = SynthConfig { ops: 20_000, seed: 5, inject: some_of_each(2), ..SynthConfig::default() };
    let (text, _) = synth::generate(&config);
    let (history, _) = checker::parse_history(text.as_bytes(), "synthetic.jsonl").expect("parses");
    let streamed = checker::check_reader(text.as_bytes(), "synthetic.jsonl", &CheckOptions::default()).expect("reads");
    assert_eq!(streamed.result, checker::check(&history));
}

/// Goal: the same config writes the same bytes; another seed does not.
#[test]
fn generation_is_deterministic_per_seed() {
    let config = SynthConfig { ops: 5_000, seed: 9, inject: some_of_each(1), ..SynthConfig::default() };
    let (first, _) = synth::generate(&config);
    let (second, _) = synth::generate(&config);
    assert_eq!(first, second);
    let (other, _) = synth::generate(&SynthConfig { seed: 10, ..config });
    assert_ne!(first, other);
}

/// Goal: at 1 M operations, 20 of each injection are all found, exactly.
#[test]
fn injected_anomalies_are_found_exactly_at_one_million_ops() {
    found_exactly(1_000_000, 42, some_of_each(20));
}
