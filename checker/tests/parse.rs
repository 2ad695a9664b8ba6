//! The reader of `history.jsonl`: what it tolerates (a torn last line, a
//! trailing blank line), what it rejects with file and line (everything
//! else), and that ops round-trip in the documented format.

use checker::{parse_history, History, HistoryError, Op, OpType, Process};
use serde_json::json;

const APPEND_INVOKE: &str =
    r#"{"index":0,"time":0,"process":0,"type":"invoke","f":"append","value":{"stream":"s","key":"k","values":[1]}}"#;
const APPEND_OK: &str = r#"{"index":1,"time":5,"process":0,"type":"ok","f":"append","value":{"stream":"s","key":"k","values":[1],"ids":[[0,1,0]]}}"#;

fn parse(text: &str) -> Result<(History, Vec<String>), HistoryError> {
    parse_history(text.as_bytes(), "history.jsonl")
}

fn parse_error(text: &str) -> String {
    match parse(text) {
        Ok((history, _)) => panic!("expected an error, parsed {} ops", history.len()),
        Err(error) => error.to_string(),
    }
}

/// Goal: a crashed writer leaves half a line at the end; it is dropped
/// with a warning naming the line, and the rest of the history is kept.
#[test]
fn torn_last_line_is_dropped_with_a_warning() {
    let text = format!("{APPEND_INVOKE}\n{APPEND_OK}\n{{\"index\":2,\"time\":9,\"proc");
    let (history, warnings) = parse(&text).expect("a torn last line is tolerated");
    assert_eq!(history.len(), 2);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("history.jsonl:3:"), "{warnings:?}");
}

/// Goal: a last line that is invalid JSON is torn even with a newline.
#[test]
fn invalid_json_last_line_with_newline_is_dropped_with_a_warning() {
    let text = format!("{APPEND_INVOKE}\n{APPEND_OK}\n{{\"index\":2,\n");
    let (history, warnings) = parse(&text).expect("tolerated");
    assert_eq!(history.len(), 2);
    assert!(warnings[0].contains("history.jsonl:3:"), "{warnings:?}");
}

/// Goal: the contract says a last line without newline is torn, even if
/// it happens to be complete JSON; it is dropped, not guessed at.
#[test]
fn last_line_without_newline_is_dropped_even_if_complete() {
    let text = format!("{APPEND_INVOKE}\n{APPEND_OK}");
    let (history, warnings) = parse(&text).expect("tolerated");
    assert_eq!(history.len(), 1);
    assert!(warnings.iter().any(|warning| warning.contains("history.jsonl:2:")));
}

/// Goal: a broken line anywhere but last is an error of the form
/// `history.jsonl:N: reason`, with a hint.
#[test]
fn bad_middle_line_error_names_file_and_line() {
    let text = format!("{APPEND_INVOKE}\n{{\"index\":1,\n{APPEND_OK}\n");
    let message = parse_error(&text);
    assert!(message.starts_with("history.jsonl:2: "), "{message}");
    assert!(message.contains("hint"), "{message}");
    let error = parse(&text).expect_err("an error");
    assert_eq!(error.line(), 2);
    assert!(matches!(error, HistoryError::BadLine { line: 2, .. }));
}

/// Goal: a complete JSON last line with wrong fields is a writer bug, not a
/// torn write: it is an error.
#[test]
fn last_line_missing_fields_is_an_error_not_a_torn_line() {
    let text = format!("{APPEND_INVOKE}\n{{\"index\":1,\"time\":5}}\n");
    let message = parse_error(&text);
    assert!(message.starts_with("history.jsonl:2: "), "{message}");
    assert!(message.contains("process"), "{message}");
}

/// Goal: a completion with no open invoke of its process is rejected at
/// its line.
#[test]
fn completion_without_invoke_is_an_error() {
    let text = format!("{}\n", APPEND_OK.replace("\"index\":1", "\"index\":0"));
    let message = parse_error(&text);
    assert!(message.starts_with("history.jsonl:1: "), "{message}");
    assert!(message.contains("no open invoke"), "{message}");
}

/// Goal: a completion must repeat its invoke's `f`.
#[test]
fn completion_of_a_different_f_is_an_error() {
    let text = format!("{APPEND_INVOKE}\n{}\n", APPEND_OK.replace("\"f\":\"append\"", "\"f\":\"receive\""));
    let message = parse_error(&text);
    assert!(message.starts_with("history.jsonl:2: "), "{message}");
    assert!(message.contains("line 1"), "{message}");
}

/// Goal: one operation in flight per process.
#[test]
fn second_invoke_while_one_is_open_is_an_error() {
    let text = format!("{APPEND_INVOKE}\n{}\n", APPEND_INVOKE.replace("\"index\":0", "\"index\":1"));
    let message = parse_error(&text);
    assert!(message.starts_with("history.jsonl:2: "), "{message}");
    assert!(message.contains("still open"), "{message}");
}

/// Goal: a client whose operation ended `info` must not be reused.
#[test]
fn client_invoking_after_info_is_an_error() {
    let text = [
        APPEND_INVOKE.to_string(),
        r#"{"index":1,"time":5,"process":0,"type":"info","f":"append","value":{},"error":"timeout"}"#.to_string(),
        APPEND_INVOKE.replace("\"index\":0", "\"index\":2"),
    ]
    .join("\n")
        + "\n";
    let message = parse_error(&text);
    assert!(message.starts_with("history.jsonl:3: "), "{message}");
    assert!(message.contains("new process number"), "{message}");
}

/// Goal: indexes are dense and start at 0.
#[test]
fn gap_in_indexes_is_an_error() {
    let text = format!("{APPEND_INVOKE}\n{}\n", APPEND_OK.replace("\"index\":1", "\"index\":2"));
    let message = parse_error(&text);
    assert!(message.starts_with("history.jsonl:2: index 2 where 1 was expected"), "{message}");
}

/// Goal: blank lines are errors in the middle, but one trailing blank line
/// is harmless.
#[test]
fn blank_middle_line_is_an_error_but_trailing_blank_line_is_fine() {
    let message = parse_error(&format!("{APPEND_INVOKE}\n\n{APPEND_OK}\n"));
    assert!(message.starts_with("history.jsonl:2: blank line"), "{message}");
    let (history, warnings) = parse(&format!("{APPEND_INVOKE}\n{APPEND_OK}\n\n")).expect("trailing blank line");
    assert_eq!(history.len(), 2);
    assert!(warnings.is_empty(), "{warnings:?}");
}

/// Goal: operations still open at the end are legal (the run stopped) but
/// are worth a warning.
#[test]
fn operations_open_at_the_end_are_a_warning() {
    let (history, warnings) = parse(&format!("{APPEND_INVOKE}\n")).expect("legal");
    assert_eq!(history.len(), 1);
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains("still open"), "{warnings:?}");
}

/// Goal: harness events are single `info` entries, never paired.
#[test]
fn harness_event_must_be_info() {
    let text = r#"{"index":0,"time":0,"process":"harness","type":"invoke","f":"phase","value":"workload"}"#;
    let message = parse_error(&format!("{text}\n"));
    assert!(message.starts_with("history.jsonl:1: "), "{message}");
}

/// Goal: `process` is an integer, "nemesis" or "harness", nothing else.
#[test]
fn process_accepts_only_integer_nemesis_or_harness() {
    for (text, process) in
        [("7", Process::Client(7)), ("\"nemesis\"", Process::Nemesis), ("\"harness\"", Process::Harness)]
    {
        assert_eq!(serde_json::from_str::<Process>(text).expect("valid"), process);
        assert_eq!(serde_json::to_string(&process).expect("serializes"), text);
    }
    for text in ["-1", "\"client\"", "1.5", "null"] {
        assert!(serde_json::from_str::<Process>(text).is_err(), "{text} accepted");
    }
}

/// Goal: the example in HISTORY.md parses, and every line serializes back
/// with the same envelope byte for byte (field order, no `error`) and the
/// same value, so writers using serde on `Op` produce the contract. (Keys
/// inside `value` come out sorted: serde_json's default map is ordered.)
#[test]
fn history_md_example_round_trips_in_the_documented_format() {
    let document = include_str!("../HISTORY.md");
    let start = document.find("```json\n").expect("example block") + "```json\n".len();
    let length = document[start..].find("```").expect("block end");
    let example = &document[start..start + length];
    let (history, warnings) = parse(example).expect("the documented example parses");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(history.len(), example.lines().count());
    for (op, line) in history.iter().zip(example.lines()) {
        let written = serde_json::to_string(op).expect("serializes");
        let envelope = |text: &str| text[..text.find("\"value\":").expect("value")].to_string();
        assert_eq!(envelope(&written), envelope(line));
        let written: serde_json::Value = serde_json::from_str(&written).expect("json");
        let line: serde_json::Value = serde_json::from_str(line).expect("json");
        assert_eq!(written, line);
    }
}

/// Goal: the constructors give writers the contract's pairing for free:
/// a completion repeats process and f, and `error` appears only when set.
#[test]
fn op_constructors_pair_and_serialize_error_only_when_set() {
    let invoke = Op::new(0, 10, Process::Client(3), OpType::Invoke, "append", json!({"values": [1]}));
    let info = invoke.complete(1, 20, OpType::Info, json!({"values": [1]})).with_error("deadline exceeded");
    assert_eq!(info.process, Process::Client(3));
    assert_eq!(info.f, "append");
    let invoke_json = serde_json::to_value(&invoke).expect("serializes");
    assert!(invoke_json.get("error").is_none());
    let info_json = serde_json::to_value(&info).expect("serializes");
    assert_eq!(info_json["error"], "deadline exceeded");
    assert_eq!(info_json["type"], "info");
}

/// Both readers on one text: `parse_history` + `check`, and the streaming
/// `check_reader`. They must accept the same files with the same warnings
/// and results, and reject the same files with the same message.
fn both_readers_agree(text: &str) {
    let options = checker::CheckOptions::default();
    let typed = parse_history(text.as_bytes(), "history.jsonl");
    let streamed = checker::check_reader(text.as_bytes(), "history.jsonl", &options);
    match (typed, streamed) {
        (Ok((history, warnings)), Ok(checked)) => {
            assert_eq!(checked.warnings, warnings);
            assert_eq!(checked.result, checker::check(&history));
        }
        (Err(typed), Err(streamed)) => assert_eq!(streamed.to_string(), typed.to_string()),
        (typed, streamed) => panic!("readers disagree: {typed:?} vs {streamed:?}"),
    }
}

/// Goal: the streaming reader enforces exactly the typed reader's rules:
/// torn and blank last lines, bad middle lines, pairing, dense indexes,
/// retired clients, open operations at the end.
#[test]
fn streaming_reader_matches_the_typed_reader_on_every_rule() {
    let receive = r#"{"index":2,"time":6,"process":1,"type":"invoke","f":"receive","value":{"connection":"c"}}"#;
    let texts = [
        String::new(),
        format!("{APPEND_INVOKE}\n{APPEND_OK}\n"),
        format!("{APPEND_INVOKE}\n{APPEND_OK}\n\n"),
        format!("{APPEND_INVOKE}\n{APPEND_OK}\n   "),
        format!("{APPEND_INVOKE}\n{APPEND_OK}"),
        format!("{APPEND_INVOKE}\n{APPEND_OK}\n{{\"index\":2,\"time\":9,\"proc"),
        format!("{APPEND_INVOKE}\n{APPEND_OK}\n{{\"index\":2,\n"),
        format!("{APPEND_INVOKE}\n{{\"index\":1,\n{APPEND_OK}\n"),
        format!("{APPEND_INVOKE}\n\n{APPEND_OK}\n"),
        format!("{APPEND_INVOKE}\n{{\"index\":1}}\n"),
        format!("{APPEND_OK}\n"),
        format!("{APPEND_INVOKE}\n{APPEND_INVOKE}\n"),
        format!("{APPEND_INVOKE}\n{receive}\n"),
        format!("{APPEND_INVOKE}\n{}\n", APPEND_OK.replace("\"index\":1", "\"index\":3")),
        format!("{APPEND_INVOKE}\n{}\n", APPEND_OK.replace("\"f\":\"append\"", "\"f\":\"ack\"")),
        format!("{APPEND_INVOKE}\n{}\n", APPEND_OK.replace("\"type\":\"ok\"", "\"type\":\"info\"")),
        format!(
            "{APPEND_INVOKE}\n{}\n{}\n",
            APPEND_OK.replace("\"type\":\"ok\"", "\"type\":\"info\""),
            APPEND_INVOKE.replace("\"index\":0", "\"index\":2")
        ),
        r#"{"index":0,"time":0,"process":"harness","type":"invoke","f":"phase","value":"x"}"#.to_string() + "\n",
    ];
    for text in &texts {
        both_readers_agree(text);
    }
}

/// Goal: the same holds across the streaming reader's block boundaries
/// (blocks are 2 MiB): a long valid history, and the same with a broken
/// line deep inside and with a torn last line.
#[test]
fn streaming_reader_matches_across_blocks() {
    let mut text = String::new();
    for number in 0..40_000u64 {
        let (invoke, ok) = (2 * number, 2 * number + 1);
        text.push_str(&format!(
            "{{\"index\":{invoke},\"time\":{invoke},\"process\":0,\"type\":\"invoke\",\"f\":\"append\",\"value\":{{\"stream\":\"s\",\"key\":\"k\",\"values\":[{number}]}}}}\n\
             {{\"index\":{ok},\"time\":{ok},\"process\":0,\"type\":\"ok\",\"f\":\"append\",\"value\":{{\"stream\":\"s\",\"key\":\"k\",\"values\":[{number}],\"ids\":[[0,{number},0]]}}}}\n"
        ));
    }
    assert!(text.len() > 5 << 20, "spans several blocks");
    both_readers_agree(&text);
    both_readers_agree(&format!("{text}{{\"index\":80000,\"ti"));
    let middle = text.len() / 2;
    let cut = middle + text[middle..].find('\n').expect("a newline") + 1;
    both_readers_agree(&format!("{}{{\"index\":oops}}\n{}", &text[..cut], &text[cut..]));
}
