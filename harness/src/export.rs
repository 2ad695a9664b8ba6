//! `chaos export RUN_DIR --format edn`: writes a run's history in another
//! format, so other tools can read our runs. `edn` is Jepsen's: one map per
//! operation per line in `history.edn`, readable by Jepsen and Elle.
//!
//! The history is streamed (checked against HISTORY.md's rules on the way,
//! torn last line tolerated with a warning), so any size exports in
//! constant memory; the output appears under its final name only when
//! complete.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::verdict;

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Jepsen's EDN: `{:index 0, :time 1, :type :invoke, :process 0, :f :append, :value {...}}`.
    Edn,
}

/// `chaos export` arguments.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// A run directory (store/<run>) or a history.jsonl file.
    pub path: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "edn")]
    pub format: Format,
    /// Output file (default: history.edn next to the history).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    /// The file written.
    pub path: PathBuf,
    /// Operations written.
    pub ops: u64,
    /// What the reader tolerated (torn last line, open operations).
    pub warnings: Vec<String>,
}

/// Runs `chaos export`; prints where the file went. Exit code 0.
pub fn run(args: &ExportArgs) -> anyhow::Result<u8> {
    let history = verdict::history_path(&args.path)?;
    let out = args.out.clone().unwrap_or_else(|| history.with_file_name("history.edn"));
    let exported = export(&history, &out, args.format)?;
    for warning in &exported.warnings {
        eprintln!("warning: {warning}");
    }
    println!("wrote {} operations to {}", exported.ops, exported.path.display());
    Ok(0)
}

/// Converts `history` into `out` (written to a temporary name, then renamed).
pub fn export(history: &Path, out: &Path, format: Format) -> anyhow::Result<Exported> {
    let Format::Edn = format;
    let input = File::open(history).with_context(|| format!("{}: cannot open the history", history.display()))?;
    let partial = out.with_extension("edn.partial");
    let file = File::create(&partial).with_context(|| format!("{}: cannot create the export", partial.display()))?;
    let mut writer = BufWriter::new(file);
    let (mut ops, mut write_error) = (0u64, None);
    let warnings = checker::read_ops(BufReader::new(input), &history.display().to_string(), |op| {
        let mut line = checker::edn::op(&op);
        line.push('\n');
        match writer.write_all(line.as_bytes()) {
            Ok(()) => {
                ops += 1;
                true
            }
            Err(error) => {
                write_error = Some(error);
                false
            }
        }
    })?;
    if let Some(error) = write_error {
        return Err(error).with_context(|| format!("{}: cannot write the export", partial.display()));
    }
    writer.flush().with_context(|| format!("{}: cannot write the export", partial.display()))?;
    drop(writer);
    std::fs::rename(&partial, out).with_context(|| format!("cannot move the export to {}", out.display()))?;
    Ok(Exported { path: out.to_path_buf(), ops, warnings })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: a run directory exports to history.edn beside the history, one
    /// EDN map per operation, and a torn last line is dropped with a warning.
    #[test]
    fn run_directory_exports_one_map_per_operation() {
        let directory = std::env::temp_dir().join(format!("chaos-export-test-{}", std::process::id()));
        std::fs::create_dir_all(&directory).expect("a directory");
        let config = checker::synth::SynthConfig { ops: 2_000, ..checker::synth::SynthConfig::default() };
        let (mut text, synthetic) = checker::synth::generate(&config);
        text.push_str("{\"index\":");
        std::fs::write(directory.join("history.jsonl"), &text).expect("written");
        let history = verdict::history_path(&directory).expect("found");
        let exported = export(&history, &directory.join("history.edn"), Format::Edn).expect("exported");
        assert_eq!(exported.ops, synthetic.ops);
        assert_eq!(exported.warnings.len(), 1, "{:?}", exported.warnings);
        let edn = std::fs::read_to_string(directory.join("history.edn")).expect("read");
        assert_eq!(edn.lines().count() as u64, synthetic.ops);
        assert!(edn.starts_with("{:index 0, :time "), "{}", &edn[..80]);
        assert!(edn.lines().all(|line| line.starts_with("{:index ") && line.ends_with('}')));
        std::fs::remove_dir_all(&directory).expect("cleaned up");
    }
}
