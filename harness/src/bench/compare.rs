//! `chaos bench compare A.json B.json`: two benches side by side, with
//! B's figure over A's for each row — how a release compares with the
//! one before it.

use std::path::Path;

use anyhow::Context;

use super::figures::{BenchReport, Quantiles};

/// Reads a `bench.json`, naming the file in every error.
pub fn load(path: &Path) -> anyhow::Result<BenchReport> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!("{} is not a bench.json written by `chaos bench` (write, read or write-read)", path.display())
    })
}

/// One row: a name and the two figures.
type Row = (String, Option<f64>, Option<f64>);

fn quantile_rows(name: &str, a: Option<Quantiles>, b: Option<Quantiles>) -> Vec<Row> {
    let pick = |q: Option<Quantiles>, of: fn(&Quantiles) -> f64| q.as_ref().map(of);
    vec![
        (format!("{name} p50 (ms)"), pick(a, |q| q.p50), pick(b, |q| q.p50)),
        (format!("{name} p99 (ms)"), pick(a, |q| q.p99), pick(b, |q| q.p99)),
        (format!("{name} p99.9 (ms)"), pick(a, |q| q.p999), pick(b, |q| q.p999)),
    ]
}

/// The comparison's rows: totals, latencies, steady state, client cost,
/// then each fault that both runs had at the same position.
pub fn rows(a: &BenchReport, b: &BenchReport) -> Vec<Row> {
    let mut rows: Vec<Row> = vec![
        ("records/s".into(), Some(a.totals.records_per_s), Some(b.totals.records_per_s)),
        ("MB/s".into(), Some(a.totals.mb_per_s), Some(b.totals.mb_per_s)),
        ("steady records/s".into(), a.steady_records_per_s, b.steady_records_per_s),
    ];
    rows.extend(quantile_rows("append", a.totals.append_ms, b.totals.append_ms));
    rows.extend(quantile_rows("end to end", a.totals.end_to_end_ms, b.totals.end_to_end_ms));
    let cpu = |r: &BenchReport| r.client.as_ref().map(|c| c.cpu_us_per_record);
    rows.push(("client CPU µs/record".into(), cpu(a), cpu(b)));
    for (number, (fa, fb)) in a.faults.iter().zip(&b.faults).enumerate() {
        if fa.fault != fb.fault {
            break;
        }
        let name = format!("fault {} ({})", number + 1, fa.fault);
        rows.push((format!("{name} throughput vs steady"), fa.throughput_ratio, fb.throughput_ratio));
        rows.push((format!("{name} p99 (ms)"), fa.p99_ms, fb.p99_ms));
        rows.push((format!("{name} recovery (s)"), fa.recovery_s, fb.recovery_s));
    }
    rows
}

/// The table as text: name, A, B, B/A.
pub fn render(a_name: &str, b_name: &str, rows: &[Row]) -> String {
    let figure = |value: Option<f64>| value.map_or("–".to_string(), |v| format!("{v:.2}"));
    let width = rows.iter().map(|(name, _, _)| name.chars().count()).max().unwrap_or(0).max(6);
    let mut out = format!("{:width$}  {:>14}  {:>14}  {:>7}\n", "", a_name, b_name, "B/A");
    for (name, a, b) in rows {
        let ratio = match (a, b) {
            (Some(a), Some(b)) if *a != 0.0 => format!("{:.2}", b / a),
            _ => "–".to_string(),
        };
        out.push_str(&format!("{name:width$}  {:>14}  {:>14}  {ratio:>7}\n", figure(*a), figure(*b)));
    }
    out
}

/// `chaos bench compare`: prints the table; exit 0.
pub fn run(a: &Path, b: &Path) -> anyhow::Result<u8> {
    let (first, second) = (load(a)?, load(b)?);
    if first.mode != second.mode {
        eprintln!("note: comparing a {} bench with a {} bench", first.mode.name(), second.mode.name());
    }
    let name = |path: &Path, report: &BenchReport| {
        let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        if file == super::load::BENCH_JSON {
            report.run_id.clone()
        } else {
            file
        }
    };
    print!("{}", render(&name(a, &first), &name(b, &second), &rows(&first, &second)));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: ratios are B over A, and a missing figure gives no ratio
    /// rather than a division by zero.
    #[test]
    fn ratios_are_b_over_a() {
        let rows =
            vec![("records/s".to_string(), Some(1000.0), Some(1500.0)), ("p99".to_string(), Some(0.0), Some(2.0))];
        let text = render("a", "b", &rows);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].ends_with("1.50"), "{text}");
        assert!(lines[2].ends_with('–'), "{text}");
    }

    /// Goal: a file that is not a bench.json is refused with its name.
    #[test]
    fn a_foreign_file_is_named() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("results.json");
        std::fs::write(&path, "{\"valid\": true}").expect("write");
        let error = format!("{:#}", load(&path).expect_err("not a bench"));
        assert!(error.contains("results.json") && error.contains("not a bench.json"), "{error}");
    }
}
