//! Unit tests of the timeline generator: determinism, no overlap, bounds,
//! selector sizes, serde names and sequencer resolution.

use super::*;

fn nodes(count: usize) -> Vec<String> {
    (1..=count).map(|index| format!("n{index}")).collect()
}

fn mix(targets: TargetSelector) -> MixSpec {
    MixSpec { faults: vec!["kill".to_string(), "pause".to_string()], interval: Duration::from_secs(10), targets }
}

/// Goal: replaying a seed gives the same faults at the same times on the same
/// nodes; a different seed gives a different timeline.
#[test]
fn same_seed_and_inputs_give_the_same_timeline() {
    let spec = mix(TargetSelector::Minority);
    let first = generate(42, &spec, Duration::from_secs(120), &nodes(5));
    let second = generate(42, &spec, Duration::from_secs(120), &nodes(5));
    let other = generate(43, &spec, Duration::from_secs(120), &nodes(5));
    assert_eq!(first.len(), 12);
    assert_eq!(first, second);
    assert_ne!(first, other);
}

/// Goal: over many seeds, faults never overlap, each heals before the next
/// starts, and the last heals before the time limit.
#[test]
fn faults_never_overlap_and_end_before_the_time_limit() {
    let time_limit = Duration::from_millis(61_500);
    for seed in 0..200 {
        let timeline = generate(seed, &mix(TargetSelector::All), time_limit, &nodes(3));
        assert_eq!(timeline.len(), 6);
        for pair in timeline.windows(2) {
            assert!(pair[0].end() < pair[1].at, "seed {seed}: {pair:?}");
        }
        for entry in &timeline {
            assert!(entry.duration >= Duration::from_millis(2_500), "seed {seed}: {entry:?}");
            assert!(entry.end() < time_limit);
        }
    }
}

/// Goal: each selector hits the documented number of distinct nodes.
#[test]
fn selectors_hit_the_documented_number_of_nodes() {
    let cases = [
        (TargetSelector::One, 5, 1),
        (TargetSelector::Minority, 5, 2),
        (TargetSelector::Minority, 3, 1),
        (TargetSelector::Minority, 1, 1),
        (TargetSelector::Majority, 5, 3),
        (TargetSelector::Majority, 4, 3),
        (TargetSelector::All, 5, 5),
        (TargetSelector::Sequencer, 5, 0),
        (TargetSelector::Owner, 5, 0),
    ];
    for (selector, node_count, expected) in cases {
        let timeline = generate(7, &mix(selector), Duration::from_secs(50), &nodes(node_count));
        for entry in &timeline {
            let mut distinct = entry.nodes.clone();
            distinct.dedup();
            assert_eq!(distinct.len(), expected, "{selector} on {node_count}");
            assert_eq!(entry.nodes.len(), expected);
        }
    }
}

/// Goal: selectors (de)serialize as their configuration names.
#[test]
fn selectors_serialize_as_their_names() {
    for selector in TargetSelector::ALL {
        let json = serde_json::to_string(&selector).expect("serialize");
        assert_eq!(json, format!("\"{selector}\""));
        let back: TargetSelector = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, selector);
        assert_eq!(selector.name().parse::<TargetSelector>(), Ok(selector));
    }
    assert!("majorty".parse::<TargetSelector>().is_err());
}

/// Goal: `sequencer` entries are resolved by the callback at run time, picking
/// deterministically among the current sequencers.
#[test]
fn sequencer_is_resolved_through_the_callback() {
    let timeline = generate(9, &mix(TargetSelector::Sequencer), Duration::from_secs(30), &nodes(3));
    let entry = &timeline[0];
    assert!(entry.nodes.is_empty());
    let current = |selector: TargetSelector| {
        assert_eq!(selector, TargetSelector::Sequencer);
        vec!["n3".to_string(), "n1".to_string()]
    };
    let chosen = entry.resolve_nodes(&current);
    assert_eq!(chosen.len(), 1);
    assert_eq!(chosen, entry.resolve_nodes(&current));
    assert!(entry.resolve_nodes(&|_| Vec::new()).is_empty());
}

/// Goal: unusable mixes are explained by `validate` and generate nothing.
#[test]
fn invalid_mixes_generate_nothing_and_validate_says_why() {
    let mut empty = mix(TargetSelector::One);
    empty.faults.clear();
    assert_eq!(validate(&empty, Duration::from_secs(60), &nodes(3)), Err(ScheduleError::NoFaults));
    assert!(generate(1, &empty, Duration::from_secs(60), &nodes(3)).is_empty());
    let short = validate(&mix(TargetSelector::One), Duration::from_secs(5), &nodes(3));
    assert!(matches!(short, Err(ScheduleError::TimeLimitTooShort { .. })));
    let no_nodes = validate(&mix(TargetSelector::One), Duration::from_secs(60), &[]);
    assert!(matches!(no_nodes, Err(ScheduleError::NoNodes { .. })));
}

/// Goal: the timeline round-trips through JSON with millisecond fields.
#[test]
fn timeline_round_trips_through_json() {
    let timeline = generate(5, &mix(TargetSelector::Majority), Duration::from_secs(30), &nodes(5));
    let json = serde_json::to_value(&timeline).expect("serialize");
    assert!(json[0]["at_ms"].is_u64());
    let back: Vec<TimelineEntry> = serde_json::from_value(json).expect("deserialize");
    assert_eq!(back, timeline);
}
