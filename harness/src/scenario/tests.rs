//! Scenario parsing: every shipped scenario loads; each kind of invalid
//! file gets its specific error, with its location.

use super::*;

fn error_of(text: &str) -> String {
    Scenario::from_yaml(text, "s.yaml").unwrap_err().to_string()
}

#[test]
fn every_shipped_scenario_loads_and_draws_a_timeline() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let mut scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
        scenario.resolve(|| 1).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(scenario.check().is_ok(), "{}", path.display());
        count += 1;
    }
    assert!(count >= 5, "expected the five shipped scenarios, found {count}");
}

#[test]
fn the_effective_scenario_reproduces_the_same_timeline() {
    let mut first = Scenario::from_yaml("seed: 9\nfaults: {mix: [kill, pause], interval: 5s}\n", "s").unwrap();
    first.resolve(|| 0).unwrap();
    let mut again = Scenario::from_yaml(&first.to_yaml(), "effective").unwrap();
    again.resolve(|| 0).unwrap();
    assert_eq!(first, again);
    let mut other_seed = Scenario::from_yaml("seed: 10\nfaults: {mix: [kill, pause], interval: 5s}\n", "s").unwrap();
    other_seed.resolve(|| 0).unwrap();
    assert_ne!(first.faults.timeline, other_seed.faults.timeline);
}

#[test]
fn unknown_keys_name_line_column_and_the_allowed_keys() {
    let message = error_of("cluster:\n  nodez: 3\n");
    assert!(message.starts_with("s.yaml:2:3:"), "{message}");
    assert!(message.contains("nodez") && message.contains("nodes"), "{message}");
}

#[test]
fn bad_durations_name_line_column_and_the_format() {
    let message = error_of("time_limit: 60\n");
    assert!(message.starts_with("s.yaml:1:"), "{message}");
    assert!(message.contains("500ms, 10s"), "{message}");
}

#[test]
fn unknown_nodes_in_a_timeline_point_at_the_entry() {
    let text = "cluster: {nodes: 3}\nfaults:\n  timeline:\n    - {at: 1s, fault: kill, for: 2s, nodes: [n1]}\n    - {at: 5s, fault: kill, for: 2s, nodes: [n7]}\n";
    let message = error_of(text);
    assert!(message.starts_with("s.yaml:5:5:"), "{message}");
    assert!(message.contains("\"n7\"") && message.contains("n1, n2, n3"), "{message}");
}

#[test]
fn overlapping_incompatible_faults_are_refused() {
    let text = "faults:\n  timeline:\n    - {at: 1s, fault: kill, for: 10s, nodes: [n2]}\n    - {at: 5s, fault: pause, for: 2s, nodes: [n2]}\n";
    let message = error_of(text);
    assert!(message.starts_with("s.yaml:4:5:") && message.contains("overlaps faults.timeline[0]"), "{message}");
    let partitions = "faults:\n  timeline:\n    - {at: 1s, fault: partition, kind: halves, for: 10s}\n    - {at: 2s, fault: partition, kind: bridge, for: 2s}\n";
    assert!(error_of(partitions).contains("overlaps"));
    // The kill nemesis restarts every node it killed when one kill ends.
    let two_kills = "faults:\n  timeline:\n    - {at: 1s, fault: kill, for: 10s, nodes: [n2]}\n    - {at: 5s, fault: kill, for: 2s, nodes: [n3]}\n";
    let message = error_of(two_kills);
    assert!(message.contains("one `kill` at a time; put all its nodes in one entry"), "{message}");
    let disjoint = "faults:\n  timeline:\n    - {at: 1s, fault: kill, for: 10s, nodes: [n2]}\n    - {at: 5s, fault: pause, for: 2s, nodes: [n3]}\n";
    assert!(Scenario::from_yaml(disjoint, "s").is_ok());
    // A partition and a kill of the same nodes act on different layers.
    let layered = "faults:\n  timeline:\n    - {at: 1s, fault: partition, kind: isolate-one, for: 10s, nodes: [n2, n1]}\n    - {at: 5s, fault: kill, for: 2s, nodes: [n2]}\n";
    assert!(Scenario::from_yaml(layered, "s").is_ok(), "{:?}", Scenario::from_yaml(layered, "s").err());
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/clients-cut-owner-kill.yaml");
    assert!(Scenario::load(&shipped).is_ok(), "{:?}", Scenario::load(&shipped).err());
}

/// Goal: `targets: owner` is left for run time (no nodes drawn, even for a
/// partition), `kind: clients` keeps the selector's nodes, and ZooKeeper
/// faults refuse a selector that picks an hserver.
#[test]
fn owner_targets_wait_for_run_time_and_clients_partitions_keep_their_nodes() {
    let text = "faults:\n  timeline:\n    - {at: 1s, fault: partition, kind: clients, targets: owner, for: 2s}\n    - {at: 4s, fault: partition, kind: clients, targets: one, for: 2s}\n";
    let mut scenario = Scenario::from_yaml(text, "s").unwrap();
    scenario.resolve(|| 7).unwrap();
    let (owner, one) = (&scenario.faults.timeline[0], &scenario.faults.timeline[1]);
    assert!(owner.nodes.is_empty() && owner.targets == Some(TargetSelector::Owner), "{owner:?}");
    assert_eq!(one.nodes.len(), 1, "{one:?}");
    let zk = "cluster: {zk: 3}\nfaults:\n  timeline:\n    - {at: 1s, fault: zk-pause, targets: owner, for: 2s}\n";
    assert!(error_of(zk).contains("`targets: owner` picks an hserver"), "{}", error_of(zk));
}

/// Goal: an explicit partition's entry names the nodes its spec cuts (not
/// `control`, not a random pick), so the history and the effective scenario
/// say who was cut.
#[test]
fn an_explicit_partition_names_the_nodes_of_its_spec() {
    let text = "cluster: {nodes: 3, zk: 1}\nfaults:\n  timeline:\n    - {at: 1s, fault: partition, kind: explicit, spec: \"control|n3,zk1\", for: 2s}\n";
    let mut scenario = Scenario::from_yaml(text, "s").unwrap();
    scenario.resolve(|| 7).unwrap();
    assert_eq!(scenario.faults.timeline[0].nodes, ["n3", "zk1"]);
}

#[test]
fn parameters_that_do_not_fit_the_fault_are_refused() {
    let message = error_of("faults:\n  timeline:\n    - {at: 1s, fault: kill, for: 2s, percent: 5}\n");
    assert!(message.contains("`percent` does not apply to fault `kill`"), "{message}");
    let unknown = error_of("faults:\n  mix: [kill, partiton]\n");
    assert!(unknown.contains("partiton") && unknown.contains("partition"), "{unknown}");
}

#[test]
fn timed_faults_must_end_within_the_time_limit_and_network_faults_need_namespaces() {
    let late = error_of("time_limit: 10s\nfaults:\n  timeline:\n    - {at: 8s, fault: kill, for: 5s}\n");
    assert!(late.contains("after the time limit"), "{late}");
    let loopback =
        error_of("runtime: loopback\nfaults:\n  timeline:\n    - {at: 1s, fault: loss, percent: 10, for: 2s}\n");
    assert!(loopback.contains("runtime: local"), "{loopback}");
    let on_hosts = "runtime: ssh\ncluster: {hosts: hosts.yaml}\nfaults:\n  timeline:\n";
    let clock = error_of(&format!("{on_hosts}    - {{at: 1s, fault: clock-skew, offset_s: 5, for: 2s}}\n"));
    assert!(clock.contains("not offered by the ssh runtime"), "{clock}");
    for fault in ["loss, percent: 10", "delay, ms: 50"] {
        let entry = format!("{on_hosts}    - {{at: 1s, fault: {fault}, for: 2s}}\n");
        assert!(Scenario::from_yaml(&entry, "s.yaml").is_ok(), "{fault} runs over SSH");
    }
    assert!(error_of("runtime: ssh\n").contains("go together"), "an ssh run needs its hosts");
}

#[test]
fn sizes_and_names_are_checked() {
    assert!(error_of("cluster: {zk: 2}\n").contains("1, 3 or 5"));
    // Bug names are the server binary's (checked at boot); here, their shape.
    assert!(error_of("cluster: {server_bugs: [Ack_Early]}\n").contains("hserver --list-bugs"));
    assert!(Scenario::from_yaml("cluster: {server_bugs: [ack-early]}\n", "s.yaml").is_ok());
    assert!(error_of("time_limit: 10s\nworkload: {subscribe_after: 10s}\n").contains("workload.subscribe_after"));
    assert!(error_of("runtime: podman\n").contains("local, loopback, docker, ssh"));
}

/// Goal: `latency_budget` defaults to the checker's, takes a duration or
/// `null` (not judged), and refuses a budget no delivery could meet.
#[test]
fn latency_budget_is_read_and_checked() {
    let default = Scenario::from_yaml("{}\n", "s.yaml").unwrap();
    assert_eq!(default.latency_budget, Some(Dur(checker::LATENCY_BUDGET_DEFAULT)));
    let set = Scenario::from_yaml("latency_budget: 2s\n", "s.yaml").unwrap();
    assert_eq!(set.latency_budget, Some(Dur::secs(2)));
    assert_eq!(Scenario::from_yaml("latency_budget: null\n", "s.yaml").unwrap().latency_budget, None);
    assert!(error_of("latency_budget: 0s\n").contains("latency_budget must be at least 10ms"));
    assert_eq!(set.judged_latency_budget(), Some(std::time::Duration::from_secs(2)));
    let hostile = Scenario::from_yaml("latency_budget: 2s\nworkload: {ack_styles: {in-order: 2, late: 1}}\n", "s.yaml");
    assert_eq!(hostile.unwrap().judged_latency_budget(), None, "late acks throttle everyone's deliveries");
}

/// Goal: `tls:` takes off, tls or mtls, defaults to off, is recorded in the
/// effective scenario, and a typo names the allowed values.
#[test]
fn tls_mode_is_read_recorded_and_checked() {
    let scenario = Scenario::from_yaml("tls: mtls\n", "s.yaml").unwrap();
    assert_eq!(scenario.tls, TlsMode::Mtls);
    assert!(scenario.to_yaml().contains("\ntls: mtls\n"), "{}", scenario.to_yaml());
    assert_eq!(Scenario::from_yaml("time_limit: 5s\n", "s.yaml").unwrap().tls, TlsMode::Off);
    let error = Scenario::from_yaml("tls: mtsl\n", "s.yaml").expect_err("typo").to_string();
    assert!(error.contains("mtls") && error.starts_with("s.yaml:1:"), "{error}");
}

/// Goal: the run without `--scenario` is `scenarios/default.yaml` with its
/// compositions; on loopback its network faults are left out (and named),
/// not refused.
#[test]
fn the_built_in_default_is_the_shipped_default_with_compositions() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/default.yaml");
    assert_eq!(Scenario::builtin_default(), Scenario::load(&shipped).unwrap());
    let mut drawn = Scenario::builtin_default();
    drawn.seed = Some(3);
    drawn.resolve(|| 0).unwrap();
    assert!(drawn.faults.timeline.iter().any(|e| e.composition.is_some()), "half the slot pairs compose");
    let mut loopback = Scenario { runtime: "loopback".into(), ..Scenario::builtin_default() };
    let dropped = loopback.drop_unsupported_faults();
    assert_eq!(dropped, ["partition", "loss", "delay"]);
    loopback.resolve(|| 1).unwrap();
    assert!(loopback.check().is_ok());
    let mut on_hosts = Scenario { runtime: "ssh".into(), ..Scenario::builtin_default() };
    on_hosts.cluster.hosts = Some("hosts.yaml".into());
    let dropped = on_hosts.drop_unsupported_faults();
    assert_eq!(dropped, ["clock-skew", "disk-lose-unsynced"], "delay runs over SSH through a shaper on the host");
    on_hosts.resolve(|| 1).unwrap();
    assert!(on_hosts.check().is_ok());
}

/// Goal: an unknown ack style and a composition chance outside 0..=1 are
/// refused with what is allowed.
#[test]
fn ack_styles_and_compose_are_checked() {
    let style = error_of("workload:\n  ack_styles: {late: 1, lazy: 2}\n");
    assert!(style.contains("unknown style \"lazy\"") && style.contains("out-of-order"), "{style}");
    let none = error_of("workload:\n  ack_styles: {late: 0}\n");
    assert!(none.contains("weight above 0"), "{none}");
    let compose = error_of("faults: {compose: 1.5}\n");
    assert!(compose.contains("faults.compose 1.5"), "{compose}");
}

/// Goal: a segment size is kept as given, and one below a page is
/// refused naming the field and the least it takes.
#[test]
fn segment_bytes_is_kept_or_refused_by_name() {
    let scenario = Scenario::from_yaml("cluster: {nodes: 3, zk: 1, segment_bytes: 65536}\n", "s.yaml").unwrap();
    assert_eq!(scenario.cluster.segment_bytes, Some(65_536));
    let small = error_of("cluster: {nodes: 3, zk: 1, segment_bytes: 100}\n");
    assert!(small.contains("cluster.segment_bytes 100") && small.contains("4096"), "{small}");
}

/// Goal: the everyday scenario draws the clock, hostile-client and disk
/// faults too (seed 54 draws all three), and so runs its nodes under
/// fake clocks and its hservers on the disk file system.
#[test]
fn the_default_mix_draws_clock_skew_rogue_clients_and_power_losses() {
    let scenario = Scenario::builtin_default();
    assert!(scenario.has_clock_faults(), "default runs start nodes under fake clocks");
    assert!(scenario.has_disk_faults(), "default runs keep hserver data on the disk file system");
    let kinds: Vec<String> = timeline::draw(&scenario, 54).expect("draw").into_iter().map(|e| e.fault).collect();
    for kind in ["clock-skew", "rogue-client", "disk-lose-unsynced"] {
        assert!(kinds.iter().any(|drawn| drawn == kind), "no {kind}: {kinds:?}");
    }
}

/// Goal: a machine without libfaketime, or without FUSE, can still run
/// the everyday scenario: its clock or disk faults leave the mix (named),
/// nothing else does, and the nodes then start without fake clocks or disk
/// file systems.
#[test]
fn clock_and_disk_faults_can_leave_the_default_mix() {
    let mut scenario = Scenario::builtin_default();
    let before = scenario.faults.mix.len();
    assert_eq!(scenario.drop_clock_faults(), ["clock-skew"]);
    assert_eq!(scenario.drop_disk_faults(), ["disk-lose-unsynced"]);
    assert_eq!(scenario.faults.mix.len(), before - 2);
    assert!(!scenario.has_clock_faults() && !scenario.has_disk_faults());
}
