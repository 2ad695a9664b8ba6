//! Jepsen-compatible EDN for history operations, so Jepsen and Elle tools
//! can read our runs (`chaos export RUN_DIR --format edn`).
//!
//! One map per operation, in the shape Jepsen's interpreter records:
//! `{:index 0, :time 123, :type :invoke, :process 0, :f :append, :value {...}}`
//! with `:process` a number, `:nemesis` or `:harness`, keywords for `:type`
//! and `:f` (a string when the name is not a valid keyword), the value as
//! EDN (objects become maps whose keys are keywords where valid, strings
//! otherwise; arrays become vectors; `null` is `nil`) and `:error` when
//! there is one. Pure text conversion; the caller does the I/O.

use std::fmt::Write as _;

use serde_json::Value;

use crate::history::{Op, Process};

/// One operation as a single-line EDN map (no trailing newline).
pub fn op(op: &Op) -> String {
    let mut out = String::with_capacity(256);
    let _ = write!(out, "{{:index {}, :time {}, :type :{}, :process ", op.index, op.time, op.kind);
    match op.process {
        Process::Client(number) => {
            let _ = write!(out, "{number}");
        }
        Process::Nemesis => out.push_str(":nemesis"),
        Process::Harness => out.push_str(":harness"),
    }
    out.push_str(", :f ");
    name(&mut out, &op.f);
    out.push_str(", :value ");
    value(&mut out, &op.value);
    if let Some(error) = &op.error {
        out.push_str(", :error ");
        string(&mut out, error);
    }
    out.push('}');
    out
}

/// A JSON value as EDN.
pub fn value(out: &mut String, json: &Value) {
    match json {
        Value::Null => out.push_str("nil"),
        Value::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
        Value::Number(number) => number_text(out, number),
        Value::String(text) => string(out, text),
        Value::Array(items) => {
            out.push('[');
            for (position, item) in items.iter().enumerate() {
                if position > 0 {
                    out.push(' ');
                }
                value(out, item);
            }
            out.push(']');
        }
        Value::Object(fields) => {
            out.push('{');
            for (position, (key, item)) in fields.iter().enumerate() {
                if position > 0 {
                    out.push_str(", ");
                }
                name(out, key);
                out.push(' ');
                value(out, item);
            }
            out.push('}');
        }
    }
}

fn number_text(out: &mut String, number: &serde_json::Number) {
    if let Some(float) = number.as_f64().filter(|_| number.is_f64()) {
        if float.is_finite() {
            let text = format!("{float:?}");
            out.push_str(&text);
            return;
        }
    }
    if number.as_i64().is_none() && number.as_u64().is_some() {
        // Beyond EDN's default 64-bit signed precision: arbitrary precision.
        let _ = write!(out, "{number}N");
        return;
    }
    let _ = write!(out, "{number}");
}

/// A keyword when `text` is a valid EDN keyword name, else a string.
fn name(out: &mut String, text: &str) {
    if is_keyword_name(text) {
        out.push(':');
        out.push_str(text);
    } else {
        string(out, text);
    }
}

/// Letters, digits and `*+!-_?<>=.`, not starting with a digit (nor with
/// `-`/`+`/`.` followed by a digit), no `/` or `:` (no namespaces).
fn is_keyword_name(text: &str) -> bool {
    let bytes = text.as_bytes();
    let Some(&first) = bytes.first() else { return false };
    let allowed = |byte: u8| byte.is_ascii_alphanumeric() || b"*+!-_?<>=.".contains(&byte);
    if first.is_ascii_digit() || !bytes.iter().all(|&byte| allowed(byte)) {
        return false;
    }
    !(matches!(first, b'-' | b'+' | b'.') && bytes.get(1).is_some_and(u8::is_ascii_digit))
}

/// An EDN string: `"` and `\` escaped, control characters as `\uXXXX`.
fn string(out: &mut String, text: &str) {
    out.push('"');
    for character in text.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            control if (control as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", control as u32);
            }
            other => out.push(other),
        }
    }
    out.push('"');
}
