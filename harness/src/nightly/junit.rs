//! JUnit XML for CI systems: one test case per run; invalid runs carry a
//! `<failure>` with the anomaly summary and the run directory, harness
//! failures an `<error>`, skipped runs `<skipped>`.

use std::fmt::Write as _;

use crate::batch::{Outcome, RunRecord};
use crate::markup::escape;

/// The JUnit document for a night's records.
pub fn render(suite: &str, records: &[RunRecord]) -> String {
    let count = |o: Outcome| records.iter().filter(|r| r.outcome == o).count();
    let failures = count(Outcome::Invalid) + count(Outcome::Unknown);
    let total_s: f64 = records.iter().map(|r| r.duration_s).sum();
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuites name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{}\" skipped=\"{}\" time=\"{total_s:.3}\">",
        escape(suite),
        records.len(),
        count(Outcome::Error),
        count(Outcome::Skipped)
    );
    let _ = writeln!(
        xml,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{}\" skipped=\"{}\" time=\"{total_s:.3}\">",
        escape(suite),
        records.len(),
        count(Outcome::Error),
        count(Outcome::Skipped)
    );
    for record in records {
        case(&mut xml, record);
    }
    xml.push_str("  </testsuite>\n</testsuites>\n");
    xml
}

fn case(xml: &mut String, record: &RunRecord) {
    let name = format!("{} seed {}", record.job.name, record.job.seed);
    let _ = write!(
        xml,
        "    <testcase classname=\"chaos.{}\" name=\"{}\" time=\"{:.3}\"",
        escape(&record.job.name),
        escape(&name),
        record.duration_s
    );
    let dir = record.run_dir.as_ref().map(|d| d.display().to_string()).unwrap_or_else(|| "(none)".into());
    let anomalies: Vec<String> = record.anomalies.iter().map(|(n, c)| format!("{n}: {c}")).collect();
    let body = format!("run directory: {dir}\nanomalies: {}\n{}", anomalies.join(", "), record.output_tail);
    match record.outcome {
        Outcome::Valid => xml.push_str("/>\n"),
        Outcome::Invalid | Outcome::Unknown => {
            let message = format!("{:?}: {}", record.outcome, anomalies.join(", "));
            let _ = write!(
                xml,
                ">\n      <failure message=\"{}\" type=\"{:?}\">{}</failure>\n    </testcase>\n",
                escape(&message),
                record.outcome,
                escape(&body)
            );
        }
        Outcome::Error => {
            let _ = write!(
                xml,
                ">\n      <error message=\"harness error\" type=\"HarnessError\">{}</error>\n    </testcase>\n",
                escape(&body)
            );
        }
        Outcome::Skipped => {
            let _ = write!(xml, ">\n      <skipped message=\"{}\"/>\n    </testcase>\n", escape(&record.output_tail));
        }
    }
}
