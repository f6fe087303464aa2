//! `umbra`: the command line. Argument handling and output only; the work is in the crates.

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use umbra_core::{Config, Deidentifier, Key, OptionSet, ProfileOption, Pseudonymizer};
use umbra_files::{Outcome, RunOptions};

mod check;
mod deface;
mod scan;
mod serve;
mod synth;

#[derive(Parser)]
#[command(
    name = "umbra",
    version,
    about = "De-identify DICOM (PS3.15 Annex E, keyed pseudonyms, fail-closed) and verify it"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// De-identify DICOM files and folders into --out.
    Deid(DeidArgs),
    /// Find identity left in DICOM files (any tool's output): an independent check.
    Scan(scan::ScanArgs),
    /// Make a synthetic corpus with planted identity and its answer key (key.json); `synth
    /// check KEY OUT` scores any tool's output against the key.
    Synth(synth::SynthArgs),
    /// Run the de-identifying gateway: receive over DIMSE and STOW-RS, forward de-identified
    /// copies per destination, durably.
    Serve(serve::ServeArgs),
    /// Remove the face from a head CT or MR volume in a NIfTI file (.nii or .nii.gz); DICOM
    /// series are defaced by `deid --option clean-recognizable-visual-features`.
    Deface(deface::DefaceArgs),
    /// Write a fresh secret key to FILE (never overwrites).
    Keygen {
        /// Where to write the key (64 hex digits; keep it secret, keep it safe).
        file: PathBuf,
    },
}

#[derive(Args)]
struct DeidArgs {
    /// Files or folders to de-identify (folders are read recursively).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Output folder; files are written as PATIENT/STUDY/SERIES/INSTANCE.dcm (pseudonymous names).
    #[arg(long)]
    out: PathBuf,
    /// A PS3.15 option, by the standard's name in kebab-case (repeatable), e.g.
    /// retain-longitudinal-modified-dates, clean-descriptors, retain-safe-private.
    #[arg(long = "option", value_name = "NAME")]
    options: Vec<String>,
    /// Secret key file (from `umbra keygen`). Without one, a random one-run key is used.
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// Worker threads (default: the number of CPUs).
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// Write one JSON line per input (input, outcome, reason, output). Names inputs, so it
    /// must not be inside --out.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Modalities held back when Burned In Annotation is absent (comma-separated; replaces the default list).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    at_risk_modalities: Option<Vec<String>>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Do not check each object with the independent scanner before writing it. Not
    /// recommended: the check is what catches what the profile misses.
    #[arg(long)]
    no_verify: bool,
    /// With `--option clean-pixel-data`: a TOML file of known text regions added to the
    /// built-in rules (repeatable; format in crates/umbra-pixels/data/rules/README.md).
    #[arg(long, value_name = "FILE")]
    pixel_rules: Vec<PathBuf>,
    /// With `--option clean-pixel-data`: pixels added around every text box.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pixel_padding: u16,
    /// With `--option clean-pixel-data`: fill boxes found in one frame in that frame only
    /// (default: every box in every frame of a multi-frame image).
    #[arg(long)]
    pixel_per_frame: bool,
    /// With `--option clean-pixel-data`: fill only the rules' known regions, without the text
    /// detector (the detector still checks the result; text it finds holds the object back).
    #[arg(long)]
    pixel_rules_only: bool,
    /// With `--option clean-pixel-data`: after cleaning, read the pixels with tesseract (must be
    /// installed) and hold back any object in which it still reads one of its own identifiers.
    #[arg(long)]
    pixel_ocr: bool,
    /// Head CT and MR a face can be rendered from (when the face is not removed): hold-back
    /// (default) or report (release them with a note in the report; not recommended).
    #[arg(long, value_name = "POLICY", default_value = "hold-back", value_parser = ["hold-back", "report"])]
    face_policy: String,
    /// Head CT slices this thin or thinner (mm) count as able to show a face.
    #[arg(long, value_name = "MM", default_value_t = 3.0)]
    face_ct_max_slice: f64,
    /// Head MR slices this thin or thinner (mm) count as able to show a face when the
    /// acquisition is not marked 2D (3D acquisitions always count).
    #[arg(long, value_name = "MM", default_value_t = 2.0)]
    face_mr_max_slice: f64,
}

/// A usage problem: exit 2.
struct Usage(String);

/// glibc returns freed memory to the kernel eagerly and serves large buffers (a 512 KiB image)
/// with fresh mmaps, so every object would fault its buffers in anew; measured, that was most of
/// a run's system time. Keep freed memory for reuse instead: the process holds at most a few
/// objects' worth more, bounded by the workers in flight.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    // SAFETY: mallopt only sets allocator parameters; called once at start, before any thread.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

/// dicom-rs reports the end of every data set it reads as an error value (then treated as the
/// end), and its errors capture a backtrace whenever `RUST_BACKTRACE=1` is set: measured, a
/// few per cent of the gateway's CPU. Library backtraces stay off unless `RUST_LIB_BACKTRACE`
/// asks for them; panics still honour `RUST_BACKTRACE`.
fn library_backtraces_off() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: called once at start, before any thread exists, so nothing reads the
        // environment concurrently.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("RUST_LIB_BACKTRACE", "0");
        }
    }
}

fn main() -> ExitCode {
    library_backtraces_off();
    tune_allocator();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    // the gateway logs its work (never identifiers); the one-shot commands only errors
    let default_filter = match cli.command {
        Command::Serve(_) => "info",
        _ => "error",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // colour only for a terminal: logs kept in files stay plain text
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("UMBRA_LOG")
                .unwrap_or_else(|_| default_filter.into()),
        )
        .init();
    let result = match cli.command {
        Command::Deid(args) => deid(args),
        Command::Scan(args) => scan::scan(args),
        Command::Synth(args) => synth::synth(args),
        Command::Serve(args) => serve::serve(args),
        Command::Deface(args) => deface::deface(args),
        Command::Keygen { file } => keygen(&file),
    };
    match result {
        Ok(code) => code,
        Err(Usage(msg)) => {
            eprintln!("umbra: {msg}");
            ExitCode::from(2)
        }
    }
}

fn keygen(file: &Path) -> Result<ExitCode, Usage> {
    let key = Key::generate().map_err(|e| Usage(e.to_string()))?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(file)
        .map_err(|e| Usage(format!("cannot create key file {}: {e}", file.display())))?;
    f.write_all(key.to_hex_line().as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| Usage(format!("cannot write key file {}: {e}", file.display())))?;
    eprintln!(
        "umbra: wrote a new key to {} (keep it secret: it links pseudonyms to people)",
        file.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn parse_options(names: &[String]) -> Result<OptionSet, Usage> {
    OptionSet::from_names(names).map_err(Usage)
}

/// `--at-risk-modalities` values as Modality (0008,0060) codes: trimmed, upper case.
fn modalities(list: Vec<String>) -> Vec<String> {
    list.into_iter()
        .map(|s| s.trim().to_ascii_uppercase())
        .collect()
}

fn load_key(path: Option<&Path>) -> Result<Key, Usage> {
    let Some(path) = path else {
        eprintln!(
            "umbra: warning: no --key-file; using a random one-run key: pseudonyms, UIDs and date \
             shifts will not match any other run (create a key with `umbra keygen FILE`)"
        );
        return Key::generate().map_err(|e| Usage(e.to_string()));
    };
    let (key, warnings) = umbra_files::read_key_file(path).map_err(Usage)?;
    for w in warnings {
        eprintln!("umbra: warning: {w}");
    }
    Ok(key)
}

fn deid(args: DeidArgs) -> Result<ExitCode, Usage> {
    let options = parse_options(&args.options)?;
    if let Some(report) = &args.report {
        let out_abs = std::path::absolute(&args.out).unwrap_or(args.out.clone());
        let rep_abs = std::path::absolute(report).unwrap_or(report.clone());
        if rep_abs.starts_with(&out_abs) {
            return Err(Usage(
                "--report names the inputs: write it outside --out".into(),
            ));
        }
    }
    let pixels = if options.contains(ProfileOption::CleanPixelData) {
        let mut cleaner = umbra_files::Cleaner {
            padding: args.pixel_padding,
            per_frame: args.pixel_per_frame,
            detect_text: !args.pixel_rules_only,
            ..Default::default()
        };
        if args.pixel_ocr {
            let found = std::process::Command::new("tesseract")
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success());
            if !found {
                return Err(Usage(
                    "--pixel-ocr needs tesseract (apt-get install tesseract-ocr)".into(),
                ));
            }
            cleaner.ocr = Some("tesseract".into());
        }
        for f in &args.pixel_rules {
            let text = std::fs::read_to_string(f)
                .map_err(|e| Usage(format!("cannot read {}: {e}", f.display())))?;
            let more = umbra_pixels::rules::RuleSet::from_toml(&text, &f.display().to_string())
                .map_err(|e| Usage(e.to_string()))?;
            cleaner.rules.extend(more);
        }
        Some(std::sync::Arc::new(cleaner))
    } else {
        if !args.pixel_rules.is_empty() || args.pixel_ocr {
            return Err(Usage(
                "--pixel-rules and --pixel-ocr need --option clean-pixel-data".into(),
            ));
        }
        None
    };
    let key = load_key(args.key_file.as_deref())?;
    if args.no_verify {
        eprintln!("umbra: warning: --no-verify: objects are written without the independent check");
    }
    let mut config = Config::new(options);
    if let Some(m) = args.at_risk_modalities {
        config.at_risk_modalities = modalities(m);
    }
    config.face = umbra_core::FacePolicy {
        hold_back: args.face_policy == "hold-back",
        ct_max_slice_mm: args.face_ct_max_slice,
        mr_max_slice_mm: args.face_mr_max_slice,
    };
    let engine = Deidentifier::new(config, Pseudonymizer::new(&key));

    let files =
        umbra_files::collect_inputs(&args.inputs, &args.out).map_err(|e| Usage(e.to_string()))?;
    if files.is_empty() {
        eprintln!("umbra: warning: no files found in the inputs");
    }
    std::fs::create_dir_all(&args.out).map_err(|e| {
        Usage(format!(
            "cannot create output folder {}: {e}",
            args.out.display()
        ))
    })?;
    let mut report = match &args.report {
        Some(p) => Some(std::io::BufWriter::new(std::fs::File::create(p).map_err(
            |e| Usage(format!("cannot create report {}: {e}", p.display())),
        )?)),
        None => None,
    };

    let bar = if !args.quiet && std::io::stderr().is_terminal() {
        let b = ProgressBar::new(files.len() as u64);
        b.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} files  {per_sec}  eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let summary = umbra_files::run(
        &files,
        &engine,
        &RunOptions {
            out: args.out.clone(),
            jobs,
            verify: !args.no_verify,
            pixels,
        },
        &|_| bar.inc(1),
    );
    bar.finish_and_clear();

    if let Some(w) = report.as_mut() {
        for r in &summary.records {
            let line = serde_json::to_string(r).expect("records serialize");
            if writeln!(w, "{line}").is_err() {
                eprintln!("umbra: cannot write the report");
                return Ok(ExitCode::from(1));
            }
        }
        if w.flush().is_err() {
            eprintln!("umbra: cannot write the report");
            return Ok(ExitCode::from(1));
        }
    }

    print_summary(&summary);
    let bad = summary.count(Outcome::HeldBack) + summary.count(Outcome::Failed);
    Ok(if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_summary(s: &umbra_files::Summary) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{} written, {} held back, {} failed, {} skipped",
        s.count(Outcome::Written),
        s.count(Outcome::HeldBack),
        s.count(Outcome::Failed),
        s.count(Outcome::Skipped)
    );
    for (label, o) in [
        ("held back", Outcome::HeldBack),
        ("failed", Outcome::Failed),
        ("skipped", Outcome::Skipped),
    ] {
        for (reason, n) in s.reasons(o) {
            let _ = writeln!(out, "  {label} ({n}): {reason}");
        }
    }
}
