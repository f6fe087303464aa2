//! `umbra synth check KEY OUT`: the scorer's command line.

use crate::Usage;
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct CheckArgs {
    /// The corpus's key.json (written by `umbra synth`).
    key: PathBuf,
    /// The de-identifier's output folder.
    out: PathBuf,
    /// text: the score, tables by action, HIPAA class and place, then failures; json: the
    /// same as one JSON object with every failure.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Failures to list in the text report.
    #[arg(long, default_value_t = 50)]
    max_failures: usize,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

/// Exit 0 for a perfect score, 1 otherwise, 2 when the key or folder cannot be read.
pub fn check(args: CheckArgs) -> Result<ExitCode, Usage> {
    let key = umbra_synth::check::read_key(&args.key).map_err(|e| Usage(e.to_string()))?;
    let report = umbra_synth::check::check(&key, &args.out).map_err(|e| Usage(e.to_string()))?;
    match args.format {
        Format::Text => print!(
            "{}",
            umbra_synth::check::render_text(&report, args.max_failures)
        ),
        Format::Json => {
            let s = serde_json::to_string_pretty(&report)
                .map_err(|e| Usage(format!("cannot write the report: {e}")))?;
            println!("{s}");
        }
    }
    Ok(if report.perfect() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
