//! `chaos export RUN_DIR --format edn` end to end: the command's output
//! file, read back by an independent EDN reader (the `edn-format` crate).
//!
//! Goal: what the CLI writes is EDN that Jepsen and Elle tools can read,
//! with every operation of the history, the same counts by `:type`, `:f`
//! and process kind, nemesis operations as `:process :nemesis`, and a
//! clear error for a directory without a history.

mod common;

use common::chaos;
use std::collections::BTreeMap;
use std::process::Command;

use checker::synth::{self, Injections, SynthConfig};
use edn_format::{Keyword, Value};

/// The value of `:name` in an EDN map.
fn field<'v>(map: &'v Value, name: &str) -> &'v Value {
    let Value::Map(map) = map else { panic!("not a map: {map:?}") };
    map.get(&Value::Keyword(Keyword::from_name(name))).unwrap_or_else(|| panic!("no :{name} in {map:?}"))
}

/// ":kill", "client" for an integer process, or the value's debug form.
fn label(value: &Value) -> String {
    match value {
        Value::Keyword(keyword) => format!(":{}", keyword.name()),
        Value::Integer(_) => "client".to_string(),
        other => format!("{other:?}"),
    }
}

/// Counts of "type f process-kind" in the JSON Lines history.
fn json_counts(history: &str) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for line in history.lines() {
        let op: serde_json::Value = serde_json::from_str(line).expect("a history line");
        let process = match &op["process"] {
            serde_json::Value::Number(_) => "client".to_string(),
            other => format!(":{}", other.as_str().expect("a named process")),
        };
        let key = format!(":{} :{} {process}", op["type"].as_str().expect("type"), op["f"].as_str().expect("f"));
        *counts.entry(key).or_default() += 1;
    }
    counts
}

#[test]
fn export_writes_history_edn_that_an_edn_reader_round_trips() {
    let run = tempfile::tempdir().unwrap();
    let config = SynthConfig {
        ops: 5_000,
        seed: 9,
        inject: Injections { lost: 1, ..Injections::default() },
        ..SynthConfig::default()
    };
    let (history, synthetic) = synth::generate(&config);
    std::fs::write(run.path().join("history.jsonl"), &history).unwrap();

    let output = Command::new(chaos()).arg("export").arg(run.path()).args(["--format", "edn"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains(&format!("wrote {} operations", synthetic.ops)), "{stdout}");

    let edn = std::fs::read_to_string(run.path().join("history.edn")).unwrap();
    let mut counts = BTreeMap::new();
    let mut nemesis = 0;
    for (line_number, line) in edn.lines().enumerate() {
        let op =
            edn_format::parse_str(line).unwrap_or_else(|error| panic!("line {}: {error:?}: {line}", line_number + 1));
        assert_eq!(field(&op, "index"), &Value::Integer(line_number as i64), "{line}");
        let process = field(&op, "process");
        if process == &Value::Keyword(Keyword::from_name("nemesis")) {
            nemesis += 1;
        }
        let key = format!("{} {} {}", label(field(&op, "type")), label(field(&op, "f")), label(process));
        *counts.entry(key).or_default() += 1;
    }
    assert_eq!(counts, json_counts(&history));
    assert_eq!(counts.values().sum::<u64>(), synthetic.ops);
    assert!(nemesis > 0, "the synthetic history has nemesis operations");

    let empty = tempfile::tempdir().unwrap();
    let output = Command::new(chaos()).arg("export").arg(empty.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("history.jsonl"), "{stderr}");
}
