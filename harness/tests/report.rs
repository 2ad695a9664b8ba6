//! `report.html`: rendered for an invalid, a valid and an aborted run, and
//! loaded in a real headless Chromium (Debian `chromium`); and `chaos
//! serve`, which lists and serves such runs over loopback HTTP.
//!
//! Goal: whatever state a run directory is in, the report says what
//! happened, with the facts a debugger needs (verdict, seed, anomaly
//! explanations, proving ops, node log lines at the right moment, plots),
//! and a browser loads it without a single console message. Method: build
//! run directories from synthetic histories with injected anomalies, check
//! them with the real checker, write reports with the `chaos` binary and
//! read the HTML; render one to PNG in Chromium.

mod common;

use common::chaos;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use checker::synth::{generate, Injections, SynthConfig};

const SECOND: u64 = 1_000_000_000;
/// Wall clock of the synthetic runs' history time 0: 2026-11-26T12:59:08Z.
const START_UNIX_NS: u64 = 1_795_697_948 * SECOND;

/// A run directory holding a synthetic history, its check and run.json.
fn checked_run(store: &Path, name: &str, config: &SynthConfig, node_log: &str) -> PathBuf {
    let dir = store.join(name);
    std::fs::create_dir_all(dir.join("nodes/n1")).unwrap();
    let (history, _) = generate(config);
    std::fs::write(dir.join("history.jsonl"), history).unwrap();
    std::fs::write(dir.join("nodes/n1/n1.log"), node_log).unwrap();
    std::fs::write(dir.join("scenario.yaml"), "seed: 4242\n").unwrap();
    let info = harness::rundir::RunInfo { run_id: "abc123".into(), seed: 4242, history_start_unix_ns: START_UNIX_NS };
    info.write(&dir).unwrap();
    let history = dir.join("history.jsonl");
    let (result, _) = harness::verdict::check_file(&history, &harness::verdict::options_for(&history)).unwrap();
    harness::verdict::write_results(&dir, &result).unwrap();
    dir
}

/// Runs `chaos report DIR` and returns the page.
fn report(dir: &Path) -> String {
    let output = Command::new(chaos()).arg("report").arg(dir).output().expect("chaos runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), dir.join("report.html").display().to_string());
    std::fs::read_to_string(dir.join("report.html")).expect("report.html written")
}

/// A stamped node log line at `at_ns` of the history's clock.
fn log_line(at_ns: u64, text: &str) -> String {
    let total = START_UNIX_NS + at_ns;
    let (seconds, nanos) = (total / SECOND, total % SECOND);
    let of_day = seconds % 86_400;
    // 2026-11-26 is the day of START_UNIX_NS; the tests stay within it.
    format!(
        "2026-11-26T{:02}:{:02}:{:02}.{:06}Z  WARN {text}\n",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60,
        nanos / 1000
    )
}

fn invalid_run(store: &Path) -> (PathBuf, serde_json::Value) {
    let inject = Injections { lost: 3, reorders: 2, unexpected: 1, ..Injections::default() };
    let config = SynthConfig { ops: 30_000, seed: 9, inject, ..SynthConfig::default() };
    // First pass to learn when the first lost record was acknowledged, so
    // the node log can say something at exactly that moment.
    let probe = checked_run(store, "probe", &config, "");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(probe.join("results.json")).unwrap()).unwrap();
    let lost = &results["anomalies"]["lost"]["examples"][0];
    let ok_op = lost["ops"][1].as_u64().expect("the append's ok op");
    let history = std::fs::read_to_string(probe.join("history.jsonl")).unwrap();
    let line = history.lines().nth(ok_op as usize).unwrap();
    let op: serde_json::Value = serde_json::from_str(line).unwrap();
    let at = op["time"].as_u64().unwrap();
    let last: serde_json::Value = serde_json::from_str(history.lines().last().unwrap()).unwrap();
    let after_the_end = last["time"].as_u64().unwrap() + 60 * SECOND;
    let filler: String = (0..10).map(|i| log_line(after_the_end, &format!("filler {i}"))).collect();
    let log = [
        log_line(0, "hserver serving node=1"),
        log_line(at, "sequencer of shard lost its quorum marker-near-the-loss"),
        "thread 'main' panicked at src/store.rs:12:5:\nmarker-panic-text\n".to_string(),
        filler,
        log_line(after_the_end + 60 * SECOND, "much later marker-far-away"),
    ]
    .concat();
    let dir = checked_run(store, "20261126T125908Z-abc123", &config, &log);
    let results = serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    (dir, results)
}

/// Goal: an invalid run's report leads with the verdict and seed, lists
/// every anomaly with its explanation and proving ops, shows the node log
/// lines at the moment of a loss (and not far-away ones) and the cited
/// panic line, and draws all five plots, saying it downsampled.
#[test]
fn invalid_run_report_explains_every_anomaly() {
    let store = tempfile::tempdir().unwrap();
    let (dir, results) = invalid_run(store.path());
    let html = report(&dir);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<h1>INVALID</h1>"), "verdict first");
    assert!(html.contains("seed <b id=\"seed\">4242</b>"));
    assert!(html.contains("run <b>20261126T125908Z-abc123</b>"));
    let anomalies = results["anomalies"].as_object().unwrap();
    for name in ["lost", "nonmonotonic-delivery", "unexpected", "log-pattern"] {
        assert!(anomalies.contains_key(name), "{name} missing from {results}");
    }
    for (name, anomaly) in anomalies {
        assert!(html.contains(&format!("id=\"a-{name}\"")), "no drill-down for {name}");
        let explanation = anomaly["examples"][0]["explanation"].as_str().unwrap();
        assert!(html.contains(&harness::markup::escape(explanation)), "{name}: explanation missing");
    }
    let lost_ops = &results["anomalies"]["lost"]["examples"][0]["ops"];
    assert!(html.contains(&format!("proving operations: {} (", lost_ops[0])), "op times shown");
    assert!(html.contains("marker-near-the-loss"), "log line at the loss's moment");
    assert!(!html.contains("marker-far-away"), "log lines far from every anomaly stay out");
    assert!(html.contains("marker-panic-text"), "the cited panic line");
    let plots: Vec<&str> = html.split("<svg").skip(1).map(|rest| &rest[..rest.find("</svg>").unwrap()]).collect();
    assert_eq!(plots.len(), 5, "timeline, two latency plots, throughput, lag");
    let titles = [
        "operations per process",
        "append latency (invoke to completion)",
        "end-to-end latency (append invoke to first delivery)",
        "throughput per second",
        "delivery lag: acknowledged records not yet delivered, per shard",
    ];
    for (plot, title) in plots.iter().zip(titles) {
        assert!(plot.contains(title), "plot {title:?} in its place");
        assert!(plot.contains(r##"opacity="0.12" fill="#D62728""##), "{title}: fault intervals shaded");
    }
    assert!(plots[0].contains(">\nkill n"), "the timeline names the faults on their bands");
    for quantile in ["p50", "p95", "p99"] {
        assert!(plots[1].contains(quantile) && plots[2].contains(quantile), "{quantile} curves on both latency plots");
    }
    assert!(plots[4].contains("shard "), "per-shard lag legend");
    assert!(html.contains("Downsampled, evenly spread: the timeline shows"), "30 000 ops exceed the 10 000 drawn");
    for external in ["<script", "<link", "src=\"http", "href=\"http", "url(http", "@import"] {
        assert!(!html.contains(external), "self-contained: found {external}");
    }
}

/// Goal: a valid run says VALID, has no anomaly drill-down, and draws the
/// plots without a downsampling note when everything fits.
#[test]
fn valid_run_report_says_valid() {
    let store = tempfile::tempdir().unwrap();
    let config = SynthConfig { ops: 4_000, seed: 3, ..SynthConfig::default() };
    let dir = checked_run(store.path(), "20261126T130000Z-def456", &config, "");
    let html = report(&dir);
    assert!(html.contains("<h1>VALID</h1>"), "{}", &html[..2000.min(html.len())]);
    assert!(!html.contains("class=\"violation\""), "allowed anomalies only");
    assert!(!html.contains("Downsampled"));
    assert_eq!(html.matches("<svg").count(), 5);
    assert!(!html.contains("Read this first"), "nothing to warn about");
}

/// Goal: a run that ended during boot (no history, no results, no
/// run.json) and one whose history breaks off still get a report that
/// says exactly what is missing, instead of an error.
#[test]
fn aborted_runs_get_a_report_that_says_what_is_missing() {
    let store = tempfile::tempdir().unwrap();
    let empty = store.path().join("20261126T140000Z-0000aa");
    std::fs::create_dir_all(&empty).unwrap();
    let html = report(&empty);
    assert!(html.contains("<h1>NOT CHECKED</h1>"));
    assert!(html.contains("results.json"), "says the verdict is missing");
    assert!(html.contains("history.jsonl") && html.contains("ended before its workload started"));
    assert!(html.contains("run.json is missing"));
    assert_eq!(html.matches("<svg").count(), 5, "empty plots, not missing ones");

    let broken = store.path().join("20261126T140100Z-0000bb");
    std::fs::create_dir_all(&broken).unwrap();
    let (history, _) = generate(&SynthConfig { ops: 2_000, ..SynthConfig::default() });
    let cut: Vec<&str> = history.lines().collect();
    let text = format!("{}\nnot json\n{}\n", cut[..500].join("\n"), cut[500..].join("\n"));
    std::fs::write(broken.join("history.jsonl"), text).unwrap();
    let html = report(&broken);
    assert!(html.contains("could not be read to the end"));
    assert!(html.contains("history.jsonl:501"), "names the bad line");
    assert!(html.contains("500 operations"), "plots what came before");

    let missing = Command::new(chaos()).arg("report").arg(store.path().join("nope")).output().unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not a run directory"));
}

/// Debian's Chromium; CI installs it (scripts/install-deps.sh).
fn chromium() -> PathBuf {
    let path = PathBuf::from(std::env::var("CHAOS_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    assert!(path.is_file(), "{} missing: install Debian `chromium` (scripts/install-deps.sh does)", path.display());
    path
}

/// Loads `page` in headless Chromium, screenshots it to `png` and returns
/// the console messages it logged.
fn load_in_chromium(page: &Path, png: &Path, profile: &Path) -> Vec<String> {
    let output = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-extensions",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1200,2400",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium starts");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "chromium failed: {stderr}");
    stderr.lines().filter(|line| line.contains(":CONSOLE")).map(str::to_string).collect()
}

/// Goal: a report with anomalies loads in a real browser, renders to a
/// non-blank PNG, and logs nothing to the console. The same detector does
/// see console errors on a page that has them, so the assertion can fail.
#[test]
fn report_loads_in_headless_chromium_without_console_messages() {
    let store = tempfile::tempdir().unwrap();
    let (dir, _) = invalid_run(store.path());
    report(&dir);
    let png = store.path().join("report.png");
    let console = load_in_chromium(&dir.join("report.html"), &png, &store.path().join("profile"));
    assert!(console.is_empty(), "console messages: {console:#?}");
    let image = std::fs::read(&png).expect("screenshot written");
    assert!(image.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    let (width, height) =
        (u32::from_be_bytes(image[16..20].try_into().unwrap()), u32::from_be_bytes(image[20..24].try_into().unwrap()));
    assert_eq!((width, height), (1200, 2400));
    assert!(image.len() > 50_000, "a blank page compresses to a few KiB; got {} bytes", image.len());

    let bad = store.path().join("bad.html");
    std::fs::write(
        &bad,
        "<!DOCTYPE html><html><body><script>console.error('marker-error'); nope();</script></body></html>",
    )
    .unwrap();
    let console = load_in_chromium(&bad, &store.path().join("bad.png"), &store.path().join("profile-bad"));
    assert!(console.iter().any(|line| line.contains("marker-error")), "{console:#?}");
    assert!(console.iter().any(|line| line.contains("Uncaught ReferenceError")), "{console:#?}");
}

/// A `chaos serve` child, stopped (by its own pid) when dropped.
struct Server {
    child: std::process::Child,
    address: String,
}

impl Server {
    fn start(store: &Path) -> Server {
        let mut child = Command::new(chaos())
            .args(["serve", "--port", "0", "--lifetime-minutes", "5", "--store"])
            .arg(store)
            .stdout(Stdio::piped())
            .spawn()
            .expect("chaos serve starts");
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        let address = first.split("http://").nth(1).and_then(|rest| rest.split('/').next()).unwrap_or_default();
        assert!(!address.is_empty(), "no address in {first:?}");
        Server { child, address: address.to_string() }
    }

    /// GET `path`: (status, headers, body).
    fn get(&self, path: &str) -> (u16, String, Vec<u8>) {
        let mut stream = std::net::TcpStream::connect(&self.address).unwrap();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", self.address).unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        let split = response.windows(4).position(|w| w == b"\r\n\r\n").expect("a header");
        let head = String::from_utf8_lossy(&response[..split]).into_owned();
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        (status, head, response[split + 4..].to_vec())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Goal: `chaos serve` lists runs newest first with their verdicts,
/// filters by anomaly, serves reports (writing a missing one), files and
/// log listings, zips a run, and refuses paths out of a run directory.
#[test]
fn serve_lists_filters_and_serves_runs() {
    let store = tempfile::tempdir().unwrap();
    let (invalid, _) = invalid_run(store.path());
    std::fs::remove_dir_all(store.path().join("probe")).unwrap();
    let config = SynthConfig { ops: 2_000, seed: 3, ..SynthConfig::default() };
    let valid = checked_run(store.path(), "20261126T130000Z-def456", &config, "");
    std::os::unix::fs::symlink(valid.file_name().unwrap(), store.path().join("latest")).unwrap();
    let server = Server::start(store.path());

    let (status, _, body) = server.get("/");
    assert_eq!(status, 200);
    let index = String::from_utf8(body).unwrap();
    let newest = index.find("20261126T130000Z-def456").expect("valid run listed");
    let older = index.find("20261126T125908Z-abc123").expect("invalid run listed");
    assert!(newest < older, "newest first");
    assert!(index.contains("<tr class=\"valid\">") && index.contains("<tr class=\"invalid\">"));
    assert!(!index.contains(">latest<"), "the latest symlink is not a run");
    let run = "/runs/20261126T125908Z-abc123";
    for link in [
        format!("{run}/report.html"),
        format!("{run}/history.jsonl"),
        format!("{run}/results.json"),
        format!("{run}/nodes/"),
        "/zip/20261126T125908Z-abc123".to_string(),
    ] {
        assert!(index.contains(&format!("href=\"{link}\"")), "the index links {link}");
    }

    let (_, _, body) = server.get("/?anomaly=lost");
    let filtered = String::from_utf8(body).unwrap();
    assert!(filtered.contains("20261126T125908Z-abc123") && !filtered.contains("20261126T130000Z-def456"));
    assert!(filtered.contains("1 of 2 runs found <b>lost</b>"));

    assert!(!valid.join("report.html").exists());
    let (status, head, body) = server.get("/runs/20261126T130000Z-def456/report.html");
    assert_eq!(status, 200);
    assert!(head.contains("text/html"));
    assert!(String::from_utf8(body).unwrap().contains("<h1>VALID</h1>"));
    assert!(valid.join("report.html").is_file(), "written on first request");

    let (status, _, body) = server.get("/runs/20261126T125908Z-abc123/nodes/");
    assert_eq!(status, 200);
    assert!(String::from_utf8(body).unwrap().contains("href=\"/runs/20261126T125908Z-abc123/nodes/n1/\""));
    let (status, _, body) = server.get("/runs/20261126T125908Z-abc123/nodes/n1/n1.log");
    assert_eq!(status, 200);
    assert!(String::from_utf8(body).unwrap().contains("marker-panic-text"));

    for bad in
        ["/runs/20261126T125908Z-abc123/../../etc/passwd", "/runs/..%2F..%2Fetc/passwd", "/runs/nope/history.jsonl"]
    {
        assert_eq!(server.get(bad).0, 404, "{bad}");
    }

    assert_eq!(server.get("/runs/20261126T125908Z-abc123/report.html").0, 200);
    let (status, head, body) = server.get("/zip/20261126T125908Z-abc123");
    assert_eq!(status, 200);
    assert!(head.contains("application/zip"));
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(body)).expect("a zip");
    let names: Vec<String> = archive.file_names().map(|name| name.expect("a file name").into_owned()).collect();
    for file in ["history.jsonl", "results.json", "run.json", "report.html", "nodes/n1/n1.log"] {
        assert!(names.contains(&format!("20261126T125908Z-abc123/{file}")), "{file} not in {names:?}");
    }
    let mut results = String::new();
    archive.by_name("20261126T125908Z-abc123/results.json").unwrap().read_to_string(&mut results).unwrap();
    assert_eq!(results, std::fs::read_to_string(invalid.join("results.json")).unwrap());
}

/// Goal: `chaos serve` refuses to listen beyond loopback.
#[test]
fn serve_binds_loopback_only() {
    let store = tempfile::tempdir().unwrap();
    let output = Command::new(chaos())
        .args(["serve", "--address", "0.0.0.0", "--port", "0", "--store"])
        .arg(store.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("loopback addresses only"));
}
