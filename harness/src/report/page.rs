//! The report as one self-contained HTML page: inline CSS and SVG, no
//! script, no external resource, so it opens offline and can be mailed or
//! attached to a CI job as a single file.

use std::fmt::Write as _;

use checker::{Anomaly, CheckResult, Severity};
use serde_json::Value;

use super::logs::{self, Excerpt, NodeLog};
use super::series::{Series, Thinned};
use super::Inputs;
use crate::markup::escape;

/// Examples per anomaly that get node log excerpts.
const EXCERPTED_EXAMPLES: usize = 3;
/// Log window before and after each of an example's operations.
const BEFORE_NS: u64 = 2_000_000_000;
const AFTER_NS: u64 = 1_000_000_000;

const STYLE: &str = "
body{font-family:sans-serif;margin:0 auto;max-width:1160px;padding:0 16px 40px;color:#222}
header{padding:14px 18px;border-radius:6px;margin:16px 0;color:#fff}
header h1{margin:0 0 4px;font-size:26px}
.valid{background:#2c8a2c}.invalid{background:#c0392b}.unknown{background:#8a6d00}.none{background:#666}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}.violation{color:#c0392b;font-weight:bold}.allowed{color:#666}
details{border:1px solid #ddd;border-radius:4px;margin:6px 0;padding:4px 10px}summary{cursor:pointer;font-weight:bold}
.example{border-left:3px solid #ccc;margin:8px 0;padding:2px 10px}
pre{background:#f7f7f7;padding:6px;overflow-x:auto;font-size:12px;margin:4px 0}
.problem{background:#fff4e5;border:1px solid #f0b46c;padding:8px 12px;border-radius:4px}
.note{color:#666;font-size:13px}svg{max-width:100%;height:auto}code{background:#f3f3f3;padding:0 3px}
";

/// The whole page; `plots` are the SVG plots in display order.
pub fn html(inputs: &Inputs, plots: &[String]) -> String {
    let mut out = String::with_capacity(plots.iter().map(String::len).sum::<usize>() + 64 * 1024);
    let verdict = inputs.results.as_ref().map_or("none", |r| crate::verdict::name(&r.valid));
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>chaos run {}: {verdict}</title><style>{STYLE}</style></head><body>\n",
        escape(&inputs.run_name)
    );
    header(&mut out, inputs, verdict);
    problems(&mut out, inputs);
    if let Some(results) = &inputs.results {
        anomalies(&mut out, inputs, results);
    }
    out.push_str("<h2 id=\"plots\">Plots</h2>\n");
    downsampling_note(&mut out, &inputs.series);
    for plot in plots {
        out.push_str("<figure>");
        out.push_str(plot);
        out.push_str("</figure>\n");
    }
    faults(&mut out, &inputs.series);
    if let Some(results) = &inputs.results {
        stats(&mut out, results);
    }
    out.push_str("</body></html>\n");
    out
}

/// Says which plots show a sample, and of how many: the timeline and the
/// two scatters are thinned independently (one receive can deliver many
/// records, so the end-to-end scatter may be thinned alone).
fn downsampling_note(out: &mut String, series: &Series) {
    fn sample<T>(what: &str, thinned: &Thinned<T>) -> Option<String> {
        thinned.is_thinned().then(|| {
            let shown = thinned.items.len().max(1) as u64;
            format!("{what} shows {shown} of {} (about one in {})", thinned.total, thinned.total.div_ceil(shown))
        })
    }
    let samples: Vec<String> = [
        sample("the timeline", &series.spans),
        sample("the append latency scatter", &series.appends),
        sample("the end-to-end latency scatter", &series.deliveries),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !samples.is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"note\">Downsampled, evenly spread: {}. Quantiles, throughput and lag use every operation.</p>",
            samples.join("; ")
        );
    }
}

fn header(out: &mut String, inputs: &Inputs, verdict: &str) {
    let title = match verdict {
        "valid" => "VALID",
        "invalid" => "INVALID",
        "unknown" => "UNKNOWN",
        _ => "NOT CHECKED",
    };
    let _ = write!(out, "<header class=\"{verdict}\"><h1>{title}</h1>run <b>{}</b>", escape(&inputs.run_name));
    let seed = inputs.info.as_ref().map(|i| i.seed).or_else(|| inputs.scenario.as_ref().and_then(|s| s.seed));
    if let Some(seed) = seed {
        let _ = write!(out, " · seed <b id=\"seed\">{seed}</b>");
    }
    let series = &inputs.series;
    let _ = write!(out, " · {} operations over {:.1} s", series.ops, series.end_time as f64 / 1e9);
    if let Some(scenario) = &inputs.scenario {
        let cluster = &scenario.cluster;
        let _ = write!(out, " · {} hservers, {} ZooKeeper", cluster.nodes, cluster.zk);
        if !cluster.server_bugs.is_empty() {
            let _ = write!(out, " · server bugs: {}", escape(&cluster.server_bugs.join(", ")));
        }
    }
    out.push_str("</header>\n");
    let _ = writeln!(
        out,
        "<p>Reproduce: <code>chaos replay {0}</code> · re-check: <code>chaos check {0}</code> · files: \
         <a href=\"history.jsonl\">history</a>, <a href=\"results.json\">results</a>, \
         <a href=\"scenario.yaml\">scenario</a>, <a href=\"harness.log\">harness log</a></p>",
        escape(&inputs.run_dir_display)
    );
}

fn problems(out: &mut String, inputs: &Inputs) {
    let mut notes = Vec::new();
    if let Some(problem) = &inputs.results_problem {
        notes.push(problem.clone());
    }
    if let Some(error) = &inputs.series.error {
        notes.push(format!("the history could not be read to the end; the plots show what came before: {error}"));
    }
    notes.extend(inputs.series.warnings.iter().map(|w| format!("history: {w}")));
    if inputs.info.is_none() {
        notes.push("run.json is missing, so node log lines cannot be placed on the history's clock".into());
    }
    if notes.is_empty() {
        return;
    }
    out.push_str("<div class=\"problem\" id=\"problems\"><b>Read this first</b><ul>");
    for note in notes {
        let _ = write!(out, "<li>{}</li>", escape(&note));
    }
    out.push_str("</ul></div>\n");
}

fn anomalies(out: &mut String, inputs: &Inputs, results: &CheckResult) {
    out.push_str("<h2 id=\"anomalies\">Anomalies</h2>\n");
    if results.anomalies.is_empty() {
        out.push_str("<p>None found.</p>\n");
        if let Some(reason) = &results.stats.unknown_reason {
            let _ = writeln!(out, "<p class=\"problem\">Unknown because: {}</p>", escape(reason));
        }
        return;
    }
    let mut ordered: Vec<(&String, &Anomaly)> = results.anomalies.iter().collect();
    ordered.sort_by_key(|(_, anomaly)| anomaly.severity != Severity::Violation);
    out.push_str("<table><tr><th>anomaly</th><th>kind</th><th>count</th><th>what it means</th></tr>\n");
    for (name, anomaly) in &ordered {
        let kind = severity(anomaly.severity);
        let meaning = checker::names::meaning(name).unwrap_or("");
        let _ = writeln!(
            out,
            "<tr><td><a href=\"#a-{0}\">{0}</a></td><td class=\"{kind}\">{kind}</td><td>{1}</td><td>{2}</td></tr>",
            escape(name),
            anomaly.count,
            escape(meaning)
        );
    }
    out.push_str("</table>\n");
    for (name, anomaly) in ordered {
        let open = if anomaly.is_violation() { " open" } else { "" };
        let _ = writeln!(
            out,
            "<details id=\"a-{0}\"{open}><summary>{0}: {1} ({2}); {3} example(s)</summary>",
            escape(name),
            anomaly.count,
            severity(anomaly.severity),
            anomaly.examples.len()
        );
        let mut previous = None;
        for (number, example) in anomaly.examples.iter().enumerate() {
            self::example(out, inputs, example, number < EXCERPTED_EXAMPLES, &mut previous);
        }
        out.push_str("</details>\n");
    }
}

fn severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Violation => "violation",
        Severity::Allowed => "allowed",
    }
}

/// One example; `previous` holds the log excerpts shown for the example
/// before, so identical ones (examples proven by the same operations) are
/// not repeated.
fn example(out: &mut String, inputs: &Inputs, example: &Value, with_logs: bool, previous: &mut Option<Vec<Excerpt>>) {
    out.push_str("<div class=\"example\">");
    let explanation = example.get("explanation").and_then(Value::as_str).unwrap_or("(no explanation)");
    let _ = write!(out, "<p>{}</p>", escape(explanation));
    let ops = cited_ops(example);
    if !ops.is_empty() {
        let listed: Vec<String> = ops
            .iter()
            .map(|op| match inputs.series.cited_times.get(op) {
                Some(time) => format!("{op} ({:.3} s)", *time as f64 / 1e9),
                None => op.to_string(),
            })
            .collect();
        let _ = write!(out, "<p class=\"note\">proving operations: {}</p>", listed.join(", "));
    }
    if !with_logs {
        out.push_str("</div>\n");
        return;
    }
    let excerpts = excerpts(inputs, example, &ops);
    if !excerpts.is_empty() && previous.as_ref() == Some(&excerpts) {
        out.push_str("<p class=\"note\">Node log lines: the same as for the example above.</p>");
    } else {
        for excerpt in &excerpts {
            let _ =
                write!(out, "<p class=\"note\">{} from line {}:</p><pre>", escape(&excerpt.file), excerpt.first_line);
            let half = excerpt.lines.len() / 2;
            for (number, line) in excerpt.lines.iter().enumerate() {
                if excerpt.omitted > 0 && number == half {
                    let _ = writeln!(out, "… {} lines left out …", excerpt.omitted);
                }
                let _ = writeln!(out, "{}", escape(line));
            }
            out.push_str("</pre>");
        }
    }
    *previous = Some(excerpts);
    out.push_str("</div>\n");
}

/// The op indexes an example cites (its `"ops"`).
pub fn cited_ops(example: &Value) -> Vec<u64> {
    example.get("ops").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_u64).collect()
}

/// The log lines that go with an example: the cited line of a
/// `log-pattern`, else every node's lines around the cited operations.
fn excerpts(inputs: &Inputs, example: &Value, ops: &[u64]) -> Vec<Excerpt> {
    let cited_line = example.get("file").and_then(Value::as_str).zip(example.get("line").and_then(Value::as_u64));
    if let Some((file, line)) = cited_line {
        return logs::around_line(&inputs.logs, file, line as usize).into_iter().collect();
    }
    let Some(info) = &inputs.info else { return Vec::new() };
    let mut times: Vec<u64> = ops.iter().filter_map(|op| inputs.series.cited_times.get(op).copied()).collect();
    times.sort_unstable();
    // One window around each cited moment, overlapping windows merged.
    let mut windows: Vec<(u64, u64)> = Vec::new();
    for time in times {
        let (from, to) = (time.saturating_sub(BEFORE_NS), time + AFTER_NS);
        match windows.last_mut() {
            Some(last) if from <= last.1 => last.1 = to,
            _ => windows.push((from, to)),
        }
    }
    let start = info.history_start_unix_ns;
    let server_logs: Vec<NodeLog> = inputs.logs.iter().filter(|log| !log.name.contains("/zk")).cloned().collect();
    windows.into_iter().flat_map(|(from, to)| logs::around_time(&server_logs, start + from, start + to)).collect()
}

fn faults(out: &mut String, series: &Series) {
    out.push_str("<h2 id=\"faults\">Faults</h2>\n");
    if series.faults.faults.is_empty() {
        out.push_str("<p>No fault was applied.</p>\n");
        return;
    }
    out.push_str("<table><tr><th>fault</th><th>nodes</th><th>from (s)</th><th>to (s)</th></tr>\n");
    for fault in &series.faults.faults {
        let end = if fault.end_time == u64::MAX {
            "never healed".to_string()
        } else {
            format!("{:.3}", fault.end_time as f64 / 1e9)
        };
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{:.3}</td><td>{end}</td></tr>",
            escape(&fault.f),
            escape(&fault.nodes.join(", ")),
            fault.start_time as f64 / 1e9
        );
    }
    out.push_str("</table>\n");
}

fn stats(out: &mut String, results: &CheckResult) {
    out.push_str("<h2 id=\"stats\">Statistics</h2>\n<table>");
    let Ok(Value::Object(fields)) = serde_json::to_value(&results.stats) else { return };
    for (name, value) in fields {
        let shown = match &value {
            Value::String(text) => text.clone(),
            Value::Null => "—".into(),
            other => other.to_string(),
        };
        let _ = write!(out, "<tr><th>{}</th><td>{}</td></tr>", escape(&name), escape(&shown));
    }
    out.push_str("</table>\n");
}
