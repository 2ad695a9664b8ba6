//! Timelines: checking an explicit one (known nodes, parameters that fit,
//! no incompatible overlaps, within the time limit) and drawing a concrete
//! one from a mix and the seed.

use nemesis::schedule::{self, MixSpec, TargetSelector};
use rand::seq::SliceRandom;
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::composition;
use super::fault::FaultEntry;
use super::Scenario;

/// Checks every timeline entry; the error names the entry's index.
pub fn check(scenario: &Scenario) -> Result<(), (Option<usize>, String)> {
    let servers = scenario.server_names();
    let zks = scenario.zk_names();
    let limit = scenario.time_limit.0;
    for (i, entry) in scenario.faults.timeline.iter().enumerate() {
        let fail = |message: String| Err((Some(i), format!("faults.timeline[{i}] ({}): {message}", entry.fault)));
        if let Err(message) = entry.check_params() {
            return fail(message);
        }
        let Some(end) = entry.end() else {
            return fail("needs both `at` and `for`, e.g. `at: 10s` and `for: 5s`".into());
        };
        if end > limit {
            return fail(format!("ends at {end:?}, after the time limit {limit:?}"));
        }
        let known = |n: &String| servers.contains(n) || zks.contains(n);
        let named = entry.nodes.iter().chain(entry.peer.iter());
        if let Some(node) = named.into_iter().find(|n| !known(n)) {
            return fail(format!(
                "unknown node {node:?}; the nodes are {}",
                [servers.clone(), zks.clone()].concat().join(", ")
            ));
        }
        let on_zookeeper_nodes = matches!(entry.fault.as_str(), "zk-outage" | "zk-pause");
        if on_zookeeper_nodes && entry.targets.is_some_and(TargetSelector::at_run_time) {
            return fail(format!(
                "`targets: {}` picks an hserver; {} chooses ZooKeeper nodes with `scope`",
                entry.targets.map(TargetSelector::name).unwrap_or_default(),
                entry.fault
            ));
        }
        if let Some(why) = scenario.runtime_cannot_inject(entry) {
            return fail(why.to_string());
        }
        if let Some((j, other, why)) = first_clash(&scenario.faults.timeline[..i], entry) {
            return fail(format!(
                "overlaps faults.timeline[{j}] ({} at {}) and cannot run at the same time: {why}",
                other.fault,
                other.at.unwrap_or_default()
            ));
        }
    }
    Ok(())
}

/// An earlier entry that overlaps `entry` in time and cannot coexist with
/// it, and why: both are of one kind (a nemesis heals its kind as a whole,
/// so the first to end would end both), both touch a node, or both act on
/// ZooKeeper.
fn first_clash<'a>(earlier: &'a [FaultEntry], entry: &FaultEntry) -> Option<(usize, &'a FaultEntry, String)> {
    let (start, end) = (entry.at?.0, entry.end()?);
    earlier.iter().enumerate().find_map(|(j, other)| {
        let (other_start, other_end) = (other.at?.0, other.end()?);
        if !(start < other_end && other_start < end) {
            return None;
        }
        // A network fault (iptables or a qdisc in the node's namespace) and
        // a process fault (kill, pause) act on different layers of the same
        // node, and faults of different network kinds use chains of their own.
        let process = |e: &FaultEntry| matches!(e.fault.as_str(), "kill" | "pause");
        let layered = !(process(entry) && process(other));
        let shared = entry.nodes.iter().find(|n| other.nodes.contains(n)).filter(|_| !layered);
        let why = if entry.fault == other.fault {
            format!("one `{}` at a time; put all its nodes in one entry", entry.fault)
        } else if let Some(node) = shared {
            format!("both act on {node}")
        } else if entry.is_zookeeper() && other.is_zookeeper() {
            "both act on ZooKeeper".to_string()
        } else {
            return None;
        };
        Some((j, other, why))
    })
}

/// Draws a concrete timeline from the mix: one fault per interval, nodes
/// chosen with the seed. The result passes [`check`].
pub fn draw(scenario: &Scenario, seed: u64) -> Result<Vec<FaultEntry>, String> {
    let mix: Vec<FaultEntry> = scenario.faults.mix.iter().map(|m| m.entry()).collect();
    // The schedule draws labels; each label is an index into the mix, so two
    // items of one kind with different parameters stay apart.
    let spec = MixSpec {
        faults: (0..mix.len()).map(|i| i.to_string()).collect(),
        interval: scenario.faults.interval.0,
        targets: scenario.faults.targets,
    };
    let servers = scenario.server_names();
    schedule::validate(&spec, scenario.time_limit.0, &servers).map_err(|e| format!("faults: {e}"))?;
    let drawn = schedule::generate(seed, &spec, scenario.time_limit.0, &servers);
    let mut timeline = Vec::with_capacity(drawn.len());
    for (i, slot) in drawn.into_iter().enumerate() {
        let template = slot.fault.parse::<usize>().ok().and_then(|k| mix.get(k)).cloned().unwrap_or_default();
        let mut rng = entry_rng(seed, i);
        let entry = FaultEntry {
            at: Some(super::Dur(slot.at)),
            duration: Some(super::Dur(slot.duration)),
            targets: Some(slot.target),
            nodes: slot.nodes,
            pick: slot.pick,
            ..template
        };
        timeline.push(concrete_nodes(entry, scenario, &mut rng));
    }
    Ok(compose(timeline, &mix, scenario, seed))
}

/// Seed stream of the composition draw, apart from the single faults'.
const COMPOSE_STREAM: u64 = 0xc0_4d05_e000;

/// Replaces pairs of adjacent slots, each pair with chance
/// `faults.compose`, by a composition drawn from the templates the mix can
/// fill (see [`composition`]). `singles` holds one fault per slot, in
/// slot order.
fn compose(singles: Vec<FaultEntry>, mix: &[FaultEntry], scenario: &Scenario, seed: u64) -> Vec<FaultEntry> {
    let templates = composition::applicable(mix);
    if scenario.faults.compose <= 0.0 || templates.is_empty() {
        return singles;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ COMPOSE_STREAM);
    let interval = scenario.faults.interval.0;
    let mut timeline = Vec::with_capacity(singles.len());
    let mut slot = 0;
    while slot < singles.len() {
        if slot + 1 < singles.len() && rng.random_bool(scenario.faults.compose.min(1.0)) {
            let template = templates[rng.random_range(0..templates.len())];
            let span_start = super::Dur(interval * slot as u32);
            for entry in composition::draw(template, mix, span_start, super::Dur(interval * 2), &mut rng) {
                timeline.push(concrete_nodes(entry, scenario, &mut rng));
            }
            slot += 2;
        } else {
            timeline.push(singles[slot].clone());
            slot += 1;
        }
    }
    timeline
}

/// Gives every entry of an explicit timeline concrete nodes (drawn with
/// the seed where it names only a selector), so the effective scenario
/// replays exactly.
pub fn concretize(scenario: &mut Scenario, seed: u64) {
    let servers = scenario.server_names();
    let snapshot = scenario.clone();
    for (i, entry) in scenario.faults.timeline.iter_mut().enumerate() {
        if !entry.nodes.is_empty() {
            continue;
        }
        let mut rng = entry_rng(seed, i);
        let selector = *entry.targets.get_or_insert(TargetSelector::One);
        let mut picked = servers.clone();
        picked.shuffle(&mut rng);
        picked.truncate(selector.count(servers.len()));
        picked.sort();
        entry.nodes = picked;
        *entry = concrete_nodes(entry.clone(), &snapshot, &mut rng);
    }
}

fn entry_rng(seed: u64, index: usize) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// Fault kinds whose nodes are not the selector's servers get theirs here.
fn concrete_nodes(mut entry: FaultEntry, scenario: &Scenario, rng: &mut ChaCha8Rng) -> FaultEntry {
    let run_time = entry.targets.is_some_and(TargetSelector::at_run_time);
    match entry.fault.as_str() {
        "partition" if entry.spec.is_some() => {
            // The nodes an explicit spec names (not `control`), so the
            // history and the effective scenario say who was cut.
            let spec = entry.spec.as_deref().unwrap_or_default();
            let known = [scenario.server_names(), scenario.zk_names()].concat();
            let mut named: Vec<String> = nemesis::grudge::parse_groups(spec)
                .map(|groups| groups.into_iter().flatten().filter(|n| known.contains(n)).collect())
                .unwrap_or_default();
            named.sort();
            if !named.is_empty() {
                entry.nodes = named;
                entry.targets = None;
            }
        }
        // `clients` cuts the control namespace from the targets alone, so the
        // selector's nodes stand.
        "partition" if entry.kind.as_deref() != Some("clients") && !run_time => {
            let mut all = scenario.server_names();
            all.shuffle(rng);
            entry.nodes = all;
            entry.targets = None;
            entry.kind.get_or_insert_with(|| "halves".into());
        }
        "zk-outage" | "zk-pause" => {
            let mut zks = scenario.zk_names();
            zks.shuffle(rng);
            let count = match entry.scope.as_deref() {
                Some("all") => zks.len(),
                Some("one") => 1,
                Some("some") => zks.len().div_ceil(2).min(zks.len().saturating_sub(1)).max(1),
                _ => zks.len() / 2 + 1,
            };
            zks.truncate(count);
            zks.sort();
            entry.nodes = zks;
            entry.targets = None;
            entry.scope.get_or_insert_with(|| "majority".into());
        }
        _ if run_time => entry.nodes.clear(),
        _ => {}
    }
    entry
}
