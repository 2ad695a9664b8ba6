//! `checker::edn` against an independent EDN reader (the `edn-format`
//! crate): every exported operation parses, and the op counts by `:type`,
//! `:f` and `:process` kind round-trip.

use std::collections::BTreeMap;

use checker::synth::{self, Injections, SynthConfig};
use edn_format::{Keyword, Value};

/// The value of `:name` in an EDN map.
fn field<'v>(map: &'v Value, name: &str) -> &'v Value {
    let Value::Map(map) = map else { panic!("not a map: {map:?}") };
    map.get(&Value::Keyword(Keyword::from_name(name))).unwrap_or_else(|| panic!("no :{name} in {map:?}"))
}

fn label(value: &Value) -> String {
    match value {
        Value::Keyword(keyword) => format!(":{}", keyword.name()),
        Value::Integer(_) => "client".to_string(),
        other => format!("{other:?}"),
    }
}

/// Goal: a realistic history (appends, receives, acks, nemesis, observe,
/// phases, errors) exports to EDN that an EDN reader accepts line by line,
/// with the same operations by type, f and process kind, and the same
/// indexes and values.
#[test]
fn exported_history_parses_as_edn_and_round_trips_counts() {
    let config = SynthConfig {
        ops: 20_000,
        seed: 4,
        inject: Injections { unexpected: 1, ..Injections::default() },
        ..SynthConfig::default()
    };
    let (text, synthetic) = synth::generate(&config);
    let (history, _) = checker::parse_history(text.as_bytes(), "synthetic.jsonl").expect("parses");
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    let mut found: BTreeMap<String, u64> = BTreeMap::new();
    for op in history.iter() {
        let process = if op.process.is_client() { "client".to_string() } else { format!(":{}", op.process) };
        *expected.entry(format!(":{} :{} {process}", op.kind, op.f)).or_default() += 1;
        let edn = checker::edn::op(op);
        let parsed = edn_format::parse_str(&edn).unwrap_or_else(|error| panic!("{error:?} in {edn}"));
        assert_eq!(field(&parsed, "index"), &Value::Integer(op.index as i64));
        let key = format!(
            "{} {} {}",
            label(field(&parsed, "type")),
            label(field(&parsed, "f")),
            label(field(&parsed, "process"))
        );
        *found.entry(key).or_default() += 1;
    }
    assert_eq!(found, expected);
    assert_eq!(found.values().sum::<u64>(), synthetic.ops);
}

/// Goal: the documented shapes: keywords for :type and :f, :nemesis as a
/// keyword process, maps with keyword keys where valid and string keys
/// otherwise, nil, strings with escapes, and :error.
#[test]
fn exported_op_has_the_jepsen_shape() {
    let line = r#"{"index":3,"time":7,"process":"nemesis","type":"info","f":"kill","value":{"nodes":["n1"],"shards":{"1":"a\"b"},"x":null,"big":18446744073709551615,"f":1.5},"error":"line\nbreak"}"#;
    let op: checker::Op = serde_json::from_str(line).expect("an op");
    let edn = checker::edn::op(&op);
    assert!(edn.starts_with("{:index 3, :time 7, :type :info, :process :nemesis, :f :kill, :value {"), "{edn}");
    let parsed = edn_format::parse_str(&edn).unwrap_or_else(|error| panic!("{error:?} in {edn}"));
    let value = field(&parsed, "value");
    assert_eq!(field(value, "nodes"), &Value::Vector(vec![Value::String("n1".to_string())]));
    assert_eq!(field(value, "x"), &Value::Nil);
    let Value::Map(shards) = field(value, "shards") else { panic!("shards is a map") };
    assert_eq!(shards.get(&Value::String("1".to_string())), Some(&Value::String("a\"b".to_string())));
    assert_eq!(field(&parsed, "error"), &Value::String("line\nbreak".to_string()));
    assert!(matches!(field(value, "big"), Value::BigInt(_)), "{:?}", field(value, "big"));
}
