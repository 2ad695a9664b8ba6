//! `bench.html`: a bench's report for people — the summary, the client's
//! cost, the per-second throughput and latency with each fault shaded, and
//! what each fault cost. Drawn from `bench.json` alone.

use std::fmt::Write as _;

use super::figures::{BenchReport, Mode, Quantiles, Second};
use crate::markup::escape;
use crate::report::plots::{lines_over_time, Line, PlotError};

const STYLE: &str = "
body{font-family:sans-serif;margin:0 auto;max-width:1160px;padding:0 16px 40px;color:#222}
h1{font-size:24px}table{border-collapse:collapse;margin:8px 0 16px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}.note{background:#fff7d6;padding:8px 12px;border-radius:4px}
.bad{background:#fde2e1;padding:8px 12px;border-radius:4px}figure{margin:0 0 12px}
";

/// The page for a report.
pub fn html(report: &BenchReport) -> Result<String, PlotError> {
    let mut out = String::with_capacity(256 * 1024);
    let mode = report.mode.name();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>chaos bench {mode} {}</title>\
         <style>{STYLE}</style></head><body>\n<h1>chaos bench {mode} — run {}</h1>\n",
        escape(&report.run_id),
        escape(&report.run_id)
    );
    if report.ended != "completed" {
        let _ = writeln!(out, "<p class=\"bad\">The bench ended early: {}</p>", escape(&report.ended));
    }
    if let Some(check) = &report.check {
        let _ = writeln!(out, "<p>Checker verdict on the history: <b>{}</b></p>", escape(check));
    }
    summary(&mut out, report);
    if let Some(client) = &report.client {
        let _ = writeln!(
            out,
            "<p class=\"note\">{} (client CPU {:.2} µs per record, the rest of the machine {:.2}; \
             {:.2} cores; machine {:.0} % busy)</p>",
            escape(&client.note),
            client.cpu_us_per_record,
            client.rest_cpu_us_per_record,
            client.cores_used,
            client.machine_busy * 100.0
        );
    }
    for plot in plots(report)? {
        let _ = writeln!(out, "<figure>{plot}</figure>");
    }
    faults(&mut out, report);
    batches(&mut out, report);
    let settings = serde_json::to_string_pretty(&report.settings).unwrap_or_default();
    let _ = writeln!(out, "<h2>Settings</h2>\n<pre>{}</pre>\n</body></html>", escape(&settings));
    Ok(out)
}

fn ms(value: Option<f64>) -> String {
    value.map_or("–".to_string(), |ms| format!("{ms:.2}"))
}

fn summary(out: &mut String, report: &BenchReport) {
    let totals = &report.totals;
    let _ = writeln!(
        out,
        "<h2>Measured stretch</h2><table><tr><th>seconds</th><th>records/s</th><th>MB/s</th>\
         <th>appended</th><th>delivered</th><th>steady records/s</th></tr>\
         <tr><td>{:.1}</td><td>{:.0}</td><td>{:.2}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>",
        totals.seconds,
        totals.records_per_s,
        totals.mb_per_s,
        totals.appended,
        totals.delivered,
        report.steady_records_per_s.map_or("–".to_string(), |s| format!("{s:.0}"))
    );
    out.push_str("<table><tr><th>latency (ms)</th><th>p50</th><th>p99</th><th>p99.9</th><th>max</th></tr>\n");
    for (name, quantiles) in [("append", totals.append_ms), ("end to end", totals.end_to_end_ms)] {
        let q = |of: fn(&Quantiles) -> f64| ms(quantiles.as_ref().map(of));
        let _ = writeln!(
            out,
            "<tr><td>{name}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            q(|q| q.p50),
            q(|q| q.p99),
            q(|q| q.p999),
            q(|q| q.max)
        );
    }
    out.push_str("</table>\n");
}

/// Shaded fault intervals, from the per-fault table.
fn bands(report: &BenchReport, x_end: f64) -> Vec<(f64, f64, String)> {
    let faults = report.faults.iter();
    faults.map(|f| (f.start_s, f.end_s.unwrap_or(x_end), format!("{} {}", f.fault, f.nodes.join(",")))).collect()
}

fn line(name: &str, series: &[Second], value: impl Fn(&Second) -> Option<f64>) -> Line {
    let points = series.iter().filter_map(|second| Some((second.t as f64 + 0.5, value(second)?))).collect();
    Line { name: name.to_string(), points }
}

fn plots(report: &BenchReport) -> Result<Vec<String>, PlotError> {
    let series = &report.series;
    let x_end = series.len() as f64;
    let bands = bands(report, x_end);
    let mut throughput = vec![line("records appended/s", series, |s| Some(s.appended as f64))];
    if report.mode != Mode::Write {
        throughput.push(line("records first delivered/s", series, |s| Some(s.delivered as f64)));
    }
    throughput.push(line("appends failed or unknown/s", series, |s| Some(s.append_errors as f64)));
    let measured = match (report.totals.seconds, report.measured_from_s) {
        (seconds, Some(from)) => format!("; measured {from:.0}–{:.0} s", from + seconds),
        _ => String::new(),
    };
    let title = format!("throughput per second (faults shaded{measured})");
    let throughput = lines_over_time("throughput", &title, "records/s", x_end, &bands, &throughput, false)?;
    let of =
        |pick: fn(&Second) -> Option<Quantiles>, q: fn(&Quantiles) -> f64| move |s: &Second| pick(s).map(|v| q(&v));
    let mut latency = vec![
        line("append p50", series, of(|s| s.append_ms, |q| q.p50)),
        line("append p99", series, of(|s| s.append_ms, |q| q.p99)),
        line("append p99.9", series, of(|s| s.append_ms, |q| q.p999)),
    ];
    if report.mode != Mode::Write {
        latency.push(line("end-to-end p50", series, of(|s| s.end_to_end_ms, |q| q.p50)));
        latency.push(line("end-to-end p99", series, of(|s| s.end_to_end_ms, |q| q.p99)));
    }
    let title = format!("latency per second, log scale (faults shaded{measured})");
    let latency = lines_over_time("latency", &title, "ms", x_end, &bands, &latency, true)?;
    Ok(vec![throughput, latency])
}

fn faults(out: &mut String, report: &BenchReport) {
    if report.faults.is_empty() {
        return;
    }
    out.push_str(
        "<h2>Faults</h2><table><tr><th>fault</th><th>nodes</th><th>from (s)</th><th>to (s)</th>\
         <th>throughput vs steady</th><th>p99 during (ms)</th><th>recovery after heal (s)</th></tr>\n",
    );
    for fault in &report.faults {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&fault.fault),
            escape(&fault.nodes.join(", ")),
            fault.start_s,
            fault.end_s.map_or("not healed".to_string(), |s| format!("{s:.1}")),
            fault.throughput_ratio.map_or("–".to_string(), |r| format!("{:.0} %", r * 100.0)),
            ms(fault.p99_ms),
            fault.recovery_s.map_or("not recovered".to_string(), |s| format!("{s:.1}"))
        );
    }
    out.push_str("</table>\n");
}

fn batches(out: &mut String, report: &BenchReport) {
    let b = &report.batches;
    let _ = writeln!(
        out,
        "<h2>Batches</h2><table><tr><th>appends</th><th>most records</th><th>most bytes</th>\
         <th>buffer wait p99 (ms)</th><th>buffer wait max (ms)</th><th>most bytes held by a producer</th></tr>\
         <tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{}</td></tr></table>",
        b.count, b.max_records, b.max_bytes, b.p99_buffered_ms, b.max_buffered_ms, b.max_flow_bytes
    );
}
