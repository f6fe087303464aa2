//! `umbra deface`: the face removed from a NIfTI volume (research pipelines' format).

use crate::Usage;
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Clone, Copy, ValueEnum)]
enum ModalityName {
    Ct,
    Mr,
}

#[derive(Args)]
pub struct DefaceArgs {
    /// The volume (.nii or .nii.gz).
    input: PathBuf,
    /// Where to write the defaced volume (.nii.gz compresses).
    #[arg(long)]
    out: PathBuf,
    /// CT (values in Hounsfield units) or MR.
    #[arg(long, value_enum)]
    modality: ModalityName,
    /// A brain mask (NIfTI, same grid; non-zero is brain) to use instead of the estimate.
    #[arg(long, value_name = "FILE")]
    brain_mask: Option<PathBuf>,
    /// Also write the mask of the voxels changed (NIfTI, 1 = changed).
    #[arg(long, value_name = "FILE")]
    changed_mask: Option<PathBuf>,
}

fn read(path: &PathBuf) -> Result<umbra_deface::Volume, Usage> {
    let bytes =
        std::fs::read(path).map_err(|e| Usage(format!("cannot read {}: {e}", path.display())))?;
    umbra_deface::nifti::read(&bytes).map_err(|e| Usage(format!("{}: {e}", path.display())))
}

fn write(path: &PathBuf, vol: &umbra_deface::Volume) -> Result<(), String> {
    let gz = path.extension().is_some_and(|e| e == "gz");
    let bytes = umbra_deface::nifti::write(vol, gz).map_err(|e| e.to_string())?;
    // whole or not at all: a temporary file beside it, then rename
    let tmp = path.with_extension("umbra-tmp");
    std::fs::write(&tmp, bytes)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("cannot write {}: {e}", path.display())
        })
}

pub fn deface(args: DefaceArgs) -> Result<ExitCode, Usage> {
    let vol = read(&args.input)?;
    let modality = match args.modality {
        ModalityName::Ct => umbra_deface::Modality::Ct,
        ModalityName::Mr => umbra_deface::Modality::Mr,
    };
    let mut opts = umbra_deface::DefaceOptions::default();
    if let Some(m) = &args.brain_mask {
        let mask = read(m)?;
        if mask.dims() != vol.dims() {
            return Err(Usage(format!(
                "{}: brain mask dimensions {:?} differ from the volume's {:?}",
                m.display(),
                mask.dims(),
                vol.dims()
            )));
        }
        let bits = mask.voxels().iter().map(|v| *v != 0.0).collect();
        opts.brain_mask = Some(
            umbra_deface::Mask::from_vec(mask.dims(), bits).map_err(|e| Usage(e.to_string()))?,
        );
    }
    let done = match umbra_deface::deface(&vol, modality, &opts) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("umbra: {}: {e}", args.input.display());
            return Ok(ExitCode::from(1));
        }
    };
    if let Err(e) = write(&args.out, &done.apply(&vol)) {
        eprintln!("umbra: {e}");
        return Ok(ExitCode::from(1));
    }
    if let Some(p) = &args.changed_mask {
        let values = done
            .changed
            .as_slice()
            .iter()
            .map(|&c| f32::from(u8::from(c)))
            .collect();
        let m = vol.with_voxels(values).map_err(|e| Usage(e.to_string()))?;
        if let Err(e) = write(p, &m) {
            eprintln!("umbra: {e}");
            return Ok(ExitCode::from(1));
        }
    }
    if !done.dense_surface.is_empty() {
        eprintln!(
            "umbra: warning: {} very dense objects at the skin (jewellery, piercings?): check the result",
            done.dense_surface.len()
        );
    }
    println!(
        "{} voxels changed of {}; {}",
        done.stats.changed_voxels,
        vol.len(),
        done.assessment.reason
    );
    Ok(ExitCode::SUCCESS)
}
