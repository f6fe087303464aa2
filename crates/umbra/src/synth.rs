//! `umbra synth`: write a synthetic corpus and its answer key; `umbra synth check`: score a
//! tool's output against the key.

use crate::Usage;
use clap::{Args, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use umbra_synth::{Options, Profile};

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SynthArgs {
    #[command(subcommand)]
    command: Option<SynthCommand>,
    /// Output folder (must not exist or be empty): the files go to DIR/corpus, the answer key
    /// to DIR/key.json.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Number of synthetic patients.
    #[arg(long, default_value_t = 10)]
    patients: usize,
    /// Seed: the same seed makes the same corpus, byte for byte.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// small: every modality, transfer syntax, character set and hazard in small images (the
    /// correctness corpus); ct512: one CT series of 512×512 slices per patient (throughput);
    /// us640: 640×480 ultrasound with burned-in text (pixel-cleaning speed); heads: head CT
    /// and 3D MR phantoms with faces, each scanned twice, and a chest CT, with ground-truth
    /// masks (defacing).
    #[arg(long, value_enum, default_value_t = ProfileName::Small)]
    profile: ProfileName,
    /// Slices per patient for --profile ct512.
    #[arg(long, default_value_t = 100)]
    slices: usize,
    /// Frames of each patient's clip for --profile us640.
    #[arg(long, default_value_t = 20)]
    frames: u32,
    /// Voxels along each side of the volumes for --profile heads (2 mm at 128).
    #[arg(long, default_value_t = 128)]
    voxels: usize,
}

#[derive(Clone, Copy, ValueEnum)]
enum ProfileName {
    Small,
    Ct512,
    Us640,
    Heads,
}

#[derive(Subcommand)]
enum SynthCommand {
    /// Score a de-identifier's output folder against a corpus's key.json.
    Check(crate::check::CheckArgs),
}

pub fn synth(args: SynthArgs) -> Result<ExitCode, Usage> {
    if let Some(SynthCommand::Check(c)) = args.command {
        return crate::check::check(c);
    }
    let out = args
        .out
        .clone()
        .ok_or_else(|| Usage("synth needs --out DIR (or the check subcommand)".into()))?;
    if out.exists() {
        let mut entries = std::fs::read_dir(&out)
            .map_err(|e| Usage(format!("cannot read {}: {e}", out.display())))?;
        if entries.next().is_some() {
            return Err(Usage(format!(
                "{} is not empty; synth writes only into a new or empty folder",
                out.display()
            )));
        }
    }
    let profile = match args.profile {
        ProfileName::Heads => return heads(&out, &args),
        ProfileName::Small => Profile::Small,
        ProfileName::Ct512 => Profile::Ct512 {
            slices: args.slices,
        },
        ProfileName::Us640 => Profile::Us640 {
            frames: args.frames,
        },
    };
    let opts = Options {
        patients: args.patients,
        seed: args.seed,
        profile,
        version: env!("CARGO_PKG_VERSION").into(),
    };
    let root = out.join("corpus");
    std::fs::create_dir_all(&root)
        .map_err(|e| Usage(format!("cannot create {}: {e}", root.display())))?;
    let sink = |rel: &str, bytes: &[u8]| -> std::io::Result<()> {
        let path = root.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, bytes)
    };
    let key = match umbra_synth::generate(&opts, &sink) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("umbra: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let key_path = out.join("key.json");
    write_json(&key_path, &key)?;
    let held = key
        .files
        .iter()
        .filter(|f| f.expect == umbra_synth::key::Expect::HoldBack)
        .count();
    eprintln!(
        "umbra: {} files for {} patients in {} ({} to write, {} to hold back), {} identifiers \
         planted {} times; key in {}",
        key.files.len(),
        key.patients.len(),
        root.display(),
        key.files.len() - held,
        held,
        key.identifiers.len(),
        key.files.iter().map(|f| f.plants.len()).sum::<usize>(),
        key_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `--profile heads`: DICOM series of head phantoms under DIR/corpus, ground-truth masks
/// under DIR/truth, the series list in DIR/key.json.
fn heads(out: &Path, args: &SynthArgs) -> Result<ExitCode, Usage> {
    if !(16..=512).contains(&args.voxels) {
        return Err(Usage("--voxels must be between 16 and 512".into()));
    }
    let patients =
        u32::try_from(args.patients).map_err(|_| Usage("--patients too large".into()))?;
    let mut sink = |rel: &str, bytes: &[u8]| -> std::io::Result<()> {
        let path = out.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, bytes)
    };
    let series = umbra_synth::heads::generate(args.seed, patients, args.voxels, &mut sink)
        .map_err(|e| Usage(format!("cannot write the heads corpus: {e}")))?;
    let key_path = out.join("key.json");
    write_json(
        &key_path,
        &serde_json::json!({ "schema": "umbra-synth-heads/1", "seed": args.seed, "series": series }),
    )?;
    eprintln!(
        "umbra: {} series of {} subjects in {}; ground truth in {}; key in {}",
        series.len(),
        patients,
        out.join("corpus").display(),
        out.join("truth").display(),
        key_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<(), Usage> {
    let f = std::fs::File::create(path)
        .map_err(|e| Usage(format!("cannot write {}: {e}", path.display())))?;
    let mut w = std::io::BufWriter::new(f);
    serde_json::to_writer(&mut w, value)
        .map_err(|e| Usage(format!("cannot write {}: {e}", path.display())))?;
    std::io::Write::flush(&mut w)
        .map_err(|e| Usage(format!("cannot write {}: {e}", path.display())))
}
