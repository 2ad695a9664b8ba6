//! Checks history files with the streaming reader and prints each verdict
//! with its anomaly counts: a quick look without building the harness.
//!
//! `cargo run --release -p checker --example check -- store/latest/history.jsonl`
//!
//! `... --example check -- --generate OPS PATH` writes a synthetic history
//! (seed 1, no injections) instead, for profiling.

use std::io::BufReader;

fn main() -> std::process::ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, ops, path] = arguments.as_slice() {
        if flag == "--generate" {
            return generate(ops, path);
        }
    }
    let mut worst = checker::Validity::Valid;
    for path in std::env::args().skip(1) {
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(error) => {
                eprintln!("{path}: {error}");
                return std::process::ExitCode::from(2);
            }
        };
        match checker::check_reader(BufReader::new(file), &path, &checker::CheckOptions::default()) {
            Ok(checked) => {
                let counts: Vec<String> = checked
                    .result
                    .anomalies
                    .iter()
                    .map(|(name, anomaly)| format!("{name}={}", anomaly.count))
                    .collect();
                println!("{path}: {} {}", checked.result.valid, counts.join(" "));
                if std::env::var_os("CHECK_EXAMPLES").is_some() {
                    for (name, anomaly) in &checked.result.anomalies {
                        for example in anomaly.examples.iter().take(2) {
                            println!("  {name}: {}", example["explanation"]);
                        }
                    }
                }
                for warning in checked.warnings {
                    println!("  warning: {warning}");
                }
                worst = worst.worst(checked.result.valid);
            }
            Err(error) => {
                eprintln!("{error}");
                return std::process::ExitCode::from(2);
            }
        }
    }
    std::process::ExitCode::from(worst.exit_code() as u8)
}

fn generate(ops: &str, path: &str) -> std::process::ExitCode {
    let Ok(ops) = ops.parse() else {
        eprintln!("{ops}: not a number of operations");
        return std::process::ExitCode::from(2);
    };
    let config = checker::synth::SynthConfig { ops, ..checker::synth::SynthConfig::default() };
    let written = std::fs::File::create(path).and_then(|file| {
        let mut writer = std::io::BufWriter::new(file);
        let synthetic = checker::synth::write(&config, &mut writer)?;
        std::io::Write::flush(&mut writer)?;
        Ok(synthetic)
    });
    match written {
        Ok(synthetic) => {
            println!("{path}: {} ops, {} bytes, expected {:?}", synthetic.ops, synthetic.bytes, synthetic.expected);
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{path}: {error}");
            std::process::ExitCode::from(2)
        }
    }
}
