//! The one helper every checker test goes through: parse a hand-written
//! history, check it, and compare the verdict and anomaly counts with what
//! the test expects, printing the whole result when they differ.

use std::collections::BTreeMap;

use checker::{parse_history, CheckOptions, CheckResult, Validity};

/// What a test expects of a history: the verdict and the exact anomalies
/// (name, count) that occur; anything not listed must not occur.
#[derive(Clone, Copy)]
pub struct Expect {
    pub valid: Validity,
    pub anomalies: &'static [(&'static str, u64)],
}

/// Normalises indented test text into jsonl: one trimmed line each,
/// `\n`-terminated, so tests can be indented like code.
pub fn jsonl(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines().map(str::trim).filter(|line| !line.is_empty()) {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Parses and checks `history`, asserts `expect`, returns the result for
/// further assertions on examples and stats.
#[allow(dead_code)] // not every test file uses both helpers
pub fn check(history: &str, expect: Expect) -> CheckResult {
    check_with(history, &CheckOptions::default(), expect)
}

/// Like [`check`] with explicit options. Also checks the same text with
/// the streaming reader, which must agree exactly.
pub fn check_with(history: &str, options: &CheckOptions, expect: Expect) -> CheckResult {
    let text = jsonl(history);
    let (history, _warnings) = match parse_history(text.as_bytes(), "test.jsonl") {
        Ok(parsed) => parsed,
        Err(error) => panic!("test history does not parse: {error}"),
    };
    let result = checker::check_with(&history, options);
    let streamed = checker::check_reader(text.as_bytes(), "test.jsonl", options).expect("the stream reads it");
    assert_eq!(streamed.result, result, "the streaming reader disagrees with the typed one");
    let pretty = serde_json::to_string_pretty(&result).expect("results serialize");
    let found: BTreeMap<&str, u64> =
        result.anomalies.iter().map(|(name, anomaly)| (name.as_str(), anomaly.count)).collect();
    let wanted: BTreeMap<&str, u64> = expect.anomalies.iter().copied().collect();
    assert_eq!(found, wanted, "anomalies differ; result:\n{pretty}");
    assert_eq!(result.valid, expect.valid, "verdict differs; result:\n{pretty}");
    for (name, anomaly) in &result.anomalies {
        assert!(anomaly.examples.len() <= checker::MAX_EXAMPLES, "{name}: too many examples");
        for example in &anomaly.examples {
            assert!(example["ops"].is_array(), "{name}: example without ops: {example}");
            assert!(example["explanation"].is_string(), "{name}: example without explanation: {example}");
        }
    }
    result
}
