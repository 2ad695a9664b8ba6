//! One test per operator on a small snippet: what it changes, and the
//! near misses it must leave alone.

use super::*;

/// The changed lines `operator` proposes for `source`.
fn check(source: &str, operator: Operator) -> Vec<String> {
    mutations("src/x.rs", source).into_iter().filter(|m| m.operator == operator).map(|m| m.after).collect()
}

/// Goal: comparisons flip at their boundary; generics, arrows, shifts,
/// strings and comments do not.
#[test]
fn compare_flips_boundaries_not_generics() {
    let source = "fn f(v: Vec<u8>) -> bool {\n    a < b && c >= d || e == \"x < y\" // p != q\n}\nlet m = x << 2; match y { _ => 1 }";
    assert_eq!(
        check(source, Operator::Compare),
        vec![
            "a <= b && c >= d || e == \"x < y\" // p != q",
            "a < b && c > d || e == \"x < y\" // p != q",
            "a < b && c >= d || e != \"x < y\" // p != q",
        ]
    );
}

/// Goal: `&&` and `||` swap; closures without arguments are not
/// conditions.
#[test]
fn logic_swaps_and_or_not_closures() {
    let source = "fn f() {\n    a && b || c\n    spawn(move || run(x));\n    let e = || E::Stopped;\n}";
    assert_eq!(check(source, Operator::Logic), vec!["a || b || c", "a && b && c"]);
}

/// Goal: `+`/`-` and `+=`/`-=` flip in expressions, not in trait bounds.
#[test]
fn arithmetic_flips_expressions_not_bounds() {
    let source = "fn f<T>(t: T) where T: Send + Sync {\n    x += a - 1;\n}";
    assert_eq!(check(source, Operator::Arithmetic), vec!["x += a + 1;", "x -= a - 1;"]);
}

/// Goal: a `+ 1`/`- 1` is dropped and ranges change their end; `+ 10`,
/// open ranges and struct updates are left alone.
#[test]
fn off_by_one_drops_units_and_moves_range_ends() {
    let source = "fn f() {\n    let q = n / 2 + 1;\n    let k = n + 10 - 1;\n    for i in 0..n {}\n    for i in 1..=m {}\n    let s = &v[i..];\n    S { ..d };\n}";
    assert_eq!(
        check(source, Operator::OffByOne),
        vec!["let q = n / 2;", "let k = n + 10;", "for i in 0..=n {}", "for i in 1..m {}",]
    );
}

/// Goal: iteration direction and extremes swap; `.rev()` is dropped.
#[test]
fn direction_swaps_ends() {
    let source = "fn f() {\n    let a = v.iter().rev().next();\n    let b = m.first_key_value().max(c);\n}";
    assert_eq!(
        check(source, Operator::Direction),
        vec![
            "let a = v.iter().rev().next_back();",
            "let a = v.iter().next();",
            "let b = m.last_key_value().max(c);",
            "let b = m.first_key_value().min(c);",
        ]
    );
}

/// Goal: a statement that only waits is dropped; one whose value is used,
/// or that continues an expression, stays.
#[test]
fn drop_wait_removes_waiting_statements_only() {
    let source = "async fn f() {\n    file.sync_data()?;\n    tokio::time::sleep(d).await;\n    let x = g().await;\n    call(\n        h().await,\n    );\n}";
    assert_eq!(check(source, Operator::DropWait), vec!["", ""]);
    let edited: Vec<usize> =
        mutations("src/x.rs", source).iter().filter(|m| m.operator == Operator::DropWait).map(|m| m.line).collect();
    assert_eq!(edited, vec![2, 3]);
}

/// Goal: guards that leave early never fire; `if let` and guards that do
/// not leave stay.
#[test]
fn drop_check_disables_early_exits() {
    let source = "fn f() -> Result<(), E> {\n    if epoch < sealed {\n        return Err(E::Fenced);\n    }\n    if x.is_empty() { return Ok(()); }\n    if let Some(y) = z {\n        return Ok(());\n    }\n    if ready {\n        go();\n    }\n    Ok(())\n}";
    assert_eq!(check(source, Operator::DropCheck), vec!["if false {", "if false { return Ok(()); }"]);
}

/// Goal: two plain arguments of the same kind swap; single arguments,
/// complex arguments, macros, definitions, a reference beside a value and
/// keyword constants do not.
#[test]
fn swap_args_swaps_two_plain_arguments_of_the_same_kind() {
    let source = "fn g(a: u8, b: u8) {\n    let r = store.write(self.shard, batch_id);\n    let s = f(a + 1, b);\n    let t = h(x);\n    println!(a, b);\n    run(&shared, requests);\n    map.insert(id, None);\n    rename(&from, &to);\n}";
    assert_eq!(
        check(source, Operator::SwapArgs),
        vec!["let r = store.write(batch_id, self.shard);", "rename(&to, &from);"]
    );
}

/// Goal: functions returning `Result<()>` return `Ok(())` at once, `bool`
/// functions a constant; others are left alone.
#[test]
fn early_return_short_circuits_unit_results_and_bools() {
    let source = "fn a() -> Result<(), StoreError> {\n}\nasync fn b(&self) -> anyhow::Result<()> {\n}\nfn c() -> bool {\n}\nfn d() -> Result<u64, E> {\n}";
    assert_eq!(
        check(source, Operator::EarlyReturn),
        vec![
            "fn a() -> Result<(), StoreError> { return Ok(());",
            "async fn b(&self) -> anyhow::Result<()> { return Ok(());",
            "fn c() -> bool { return false;",
            "fn c() -> bool { return true;",
        ]
    );
}

/// Goal: applying a mutation changes exactly its span; a mutation of a
/// source that changed since is refused with the place named.
#[test]
fn apply_changes_one_span_and_refuses_stale_sources() {
    let source = "fn f() {\n    a < b\n}\n";
    let mutation = mutations("src/x.rs", source).into_iter().find(|m| m.operator == Operator::Compare).expect("one");
    assert_eq!(mutation.apply(source).expect("applies"), "fn f() {\n    a <= b\n}\n");
    let error = mutation.apply("fn f() {\n    a == b\n}\n").expect_err("stale");
    assert!(error.to_string().contains("src/x.rs:2"), "{error}");
}
