//! Fault compositions: several fault kinds overlapping on related targets,
//! drawn at random like Jepsen's composed nemeses. One fault at a time
//! finds the bugs of one failure; the bugs of recovery hide where failures
//! meet — a sequencer dying while its replicas lag, an owner killed while
//! its consumers are cut off, a takeover while ZooKeeper is away.
//!
//! A composition takes two slots of the mix's interval. Its faults come
//! from a template: kinds, role-aware selectors resolved when each fault
//! starts (`sequencer`, `not-sequencer`, `owner`, all with one shared pick
//! so they name related nodes), and start and length as shares of the
//! span. Parameters come from the mix's item of the same kind, so a
//! scenario's `delay: 50 ms` stays 50 ms inside compositions. Only
//! templates whose kinds are all in the mix are drawn. Pure and seeded.

use nemesis::schedule::TargetSelector;
use rand::{Rng, RngCore};

use super::fault::FaultEntry;
use super::Dur;

/// One fault of a template.
#[derive(Debug)]
struct Step {
    /// Kinds that may fill the step (the first one in the mix is taken).
    kinds: &'static [&'static str],
    /// Its nodes (`None`: the fault's own choice, as for ZooKeeper faults).
    targets: Option<TargetSelector>,
    /// The partition kind, for partitions.
    partition: Option<&'static str>,
    /// The direction of a loss or delay (`in`: what the nodes receive).
    direction: Option<&'static str>,
    /// Start, as shares of the span (drawn between the two).
    start: (f64, f64),
    /// Length, as shares of the span.
    length: (f64, f64),
}

/// A named combination of faults.
#[derive(Debug)]
pub struct Template {
    /// Name recorded with each of its faults.
    pub name: &'static str,
    steps: &'static [Step],
}

const fn step(kinds: &'static [&'static str], targets: TargetSelector, start: (f64, f64), length: (f64, f64)) -> Step {
    Step { kinds, targets: Some(targets), partition: None, direction: None, start, length }
}

impl Step {
    /// The step with this partition kind.
    const fn partition(self, kind: &'static str) -> Step {
        Step { partition: Some(kind), ..self }
    }

    /// The step with this loss or delay direction.
    const fn direction(self, direction: &'static str) -> Step {
        Step { direction: Some(direction), ..self }
    }

    /// The step with its fault's own choice of nodes (ZooKeeper faults).
    const fn own_targets(self) -> Step {
        Step { targets: None, ..self }
    }
}

/// The templates, each a failure meeting another. Shares keep every fault
/// inside the span; a kill of a sequencer lasts about half of it (8 s of a
/// 16 s span: past the 6 s ZooKeeper session, so another node takes over).
pub const TEMPLATES: &[Template] = &[
    Template {
        name: "lagging-replicas-lose-their-sequencer",
        steps: &[
            // Inbound: the replicas receive the sequencer's stores late, so
            // they lag behind it (outbound would slow only their replies).
            step(&["delay", "loss"], TargetSelector::NotSequencer, (0.0, 0.1), (0.6, 0.8)).direction("in"),
            step(&["kill"], TargetSelector::Sequencer, (0.2, 0.3), (0.45, 0.55)),
        ],
    },
    Template {
        name: "isolated-sequencer-killed",
        steps: &[
            step(&["partition"], TargetSelector::Sequencer, (0.0, 0.1), (0.5, 0.7)).partition("isolate-one"),
            step(&["kill"], TargetSelector::Sequencer, (0.15, 0.25), (0.45, 0.55)),
        ],
    },
    Template {
        name: "cut-off-owner-killed",
        steps: &[
            step(&["partition"], TargetSelector::Owner, (0.0, 0.1), (0.4, 0.6)).partition("clients"),
            step(&["kill"], TargetSelector::Owner, (0.2, 0.3), (0.3, 0.5)),
        ],
    },
    Template {
        name: "slowed-owner-killed",
        steps: &[
            step(&["delay", "loss"], TargetSelector::Owner, (0.0, 0.1), (0.5, 0.7)),
            step(&["kill"], TargetSelector::Owner, (0.2, 0.3), (0.3, 0.45)),
        ],
    },
    Template {
        name: "sequencer-paused-across-takeover",
        steps: &[
            step(&["pause"], TargetSelector::Sequencer, (0.0, 0.1), (0.5, 0.6)),
            step(&["loss", "delay"], TargetSelector::NotSequencer, (0.1, 0.2), (0.3, 0.5)),
        ],
    },
    Template {
        name: "takeover-chain",
        steps: &[
            step(&["kill"], TargetSelector::Sequencer, (0.0, 0.03), (0.42, 0.45)),
            step(&["kill"], TargetSelector::Sequencer, (0.52, 0.54), (0.42, 0.45)),
        ],
    },
    Template {
        name: "sequencer-dies-without-zookeeper",
        steps: &[
            step(&["zk-outage"], TargetSelector::One, (0.0, 0.1), (0.4, 0.6)).own_targets(),
            step(&["kill"], TargetSelector::Sequencer, (0.1, 0.2), (0.45, 0.55)),
        ],
    },
];

/// The templates every step of which the mix can fill.
pub fn applicable(mix: &[FaultEntry]) -> Vec<&'static Template> {
    TEMPLATES.iter().filter(|t| t.steps.iter().all(|s| fill(s, mix).is_some())).collect()
}

/// The mix item that fills `step`: the first of its kinds in the mix.
fn fill<'a>(step: &Step, mix: &'a [FaultEntry]) -> Option<&'a FaultEntry> {
    step.kinds.iter().find_map(|kind| mix.iter().find(|entry| entry.fault == *kind))
}

/// The faults of `template` in the span starting at `span_start` of
/// length `span`, all sharing one pick; the mix's parameters fill them.
pub fn draw(
    template: &Template,
    mix: &[FaultEntry],
    span_start: Dur,
    span: Dur,
    rng: &mut impl RngCore,
) -> Vec<FaultEntry> {
    let pick = rng.next_u64();
    let share = |(low, high): (f64, f64), rng: &mut dyn RngCore| span.0.mul_f64(rng.random_range(low..=high));
    template
        .steps
        .iter()
        .filter_map(|step| {
            let item = fill(step, mix)?;
            let at = span_start.0 + share(step.start, rng);
            let length = share(step.length, rng).max(std::time::Duration::from_millis(1));
            let mut entry = FaultEntry {
                at: Some(Dur(at)),
                duration: Some(Dur(length)),
                targets: step.targets,
                nodes: Vec::new(),
                pick,
                composition: Some(template.name.to_string()),
                ..item.clone()
            };
            if let Some(kind) = step.partition {
                entry.kind = Some(kind.to_string());
                entry.spec = None;
            }
            if let Some(direction) = step.direction {
                entry.direction = Some(direction.to_string());
                // Duplicates are made of sent packets only.
                entry.duplicate_percent = None;
            }
            Some(entry)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use std::time::Duration;

    fn mix(names: &[&str]) -> Vec<FaultEntry> {
        names.iter().map(|name| FaultEntry::named(name)).collect()
    }

    /// Goal: a template is drawn only when the mix has every kind it
    /// needs; kill and delay alone allow the ones built of those two.
    #[test]
    fn templates_need_their_kinds_in_the_mix() {
        let names: Vec<&str> = applicable(&mix(&["kill", "delay"])).iter().map(|t| t.name).collect();
        assert_eq!(names, ["lagging-replicas-lose-their-sequencer", "slowed-owner-killed", "takeover-chain"]);
        assert!(applicable(&mix(&["pause"])).is_empty());
        assert_eq!(
            applicable(&mix(&["kill", "pause", "partition", "loss", "delay", "zk-outage"])).len(),
            TEMPLATES.len()
        );
    }

    /// Goal: every template's faults stay inside the span, overlap where
    /// the template says so, share one pick, carry the mix's parameters and
    /// the composition's name, and partitions get the template's kind.
    #[test]
    fn drawn_faults_stay_in_the_span_and_are_related() {
        let mut items = mix(&["kill", "pause", "partition", "loss", "zk-outage"]);
        items.push(FaultEntry { ms: Some(50), jitter_ms: Some(10), ..FaultEntry::named("delay") });
        items[2].kind = Some("halves".into());
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let (start, span) = (Dur::secs(16), Dur::secs(16));
        for template in TEMPLATES {
            for _ in 0..20 {
                let faults = draw(template, &items, start, span, &mut rng);
                assert_eq!(faults.len(), template.steps.len());
                assert!(faults.iter().all(|f| f.pick == faults[0].pick));
                for fault in &faults {
                    let (at, end) = (fault.at.expect("at").0, fault.end().expect("end"));
                    assert!(at >= start.0 && end < start.0 + span.0, "{} {fault:?}", template.name);
                    assert_eq!(fault.composition.as_deref(), Some(template.name));
                }
                let first_end = faults[0].end().expect("end");
                let second_start = faults[1].at.expect("at").0;
                if template.name == "takeover-chain" {
                    assert!(second_start > first_end + Duration::from_millis(500), "the kills follow each other");
                } else {
                    assert!(second_start < first_end, "{}: the faults overlap", template.name);
                }
            }
        }
        let lagging = draw(&TEMPLATES[0], &items, start, span, &mut rng);
        assert_eq!((lagging[0].fault.as_str(), lagging[0].targets), ("delay", Some(TargetSelector::NotSequencer)));
        assert_eq!((lagging[0].ms, lagging[0].jitter_ms), (Some(50), Some(10)), "the mix's parameters");
        assert_eq!(lagging[0].direction.as_deref(), Some("in"), "the replicas receive late");
        let isolated = draw(&TEMPLATES[1], &items, start, span, &mut rng);
        assert_eq!(isolated[0].kind.as_deref(), Some("isolate-one"));
        let slowed = draw(&TEMPLATES[3], &mix(&["kill", "delay"]), start, span, &mut rng);
        assert_eq!(slowed[0].fault, "delay");
    }
}
