//! `checker::edn` against an independent EDN reader (the `edn-format`
//! crate): the shapes Jepsen's tools expect. The round trip of a whole
//! history through `chaos export` is tested in `harness/tests/export_cli.rs`.

use edn_format::{Keyword, Value};

/// The value of `:name` in an EDN map.
fn field<'v>(map: &'v Value, name: &str) -> &'v Value {
    let Value::Map(map) = map else { panic!("not a map: {map:?}") };
    map.get(&Value::Keyword(Keyword::from_name(name))).unwrap_or_else(|| panic!("no :{name} in {map:?}"))
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
