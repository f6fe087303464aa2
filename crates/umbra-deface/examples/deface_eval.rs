//! Defacing evaluation on phantoms: removal, spared voxels, linkage before and after.
//!
//! `cargo run --release -p umbra-deface --example deface_eval -- --subjects 40 --seed 1 [--modality ct|mr] [--dims 128] [--threads 2]`
//!
//! Without `--modality` both CT and MR are evaluated. Prints markdown tables.

use std::time::Instant;
use umbra_deface::eval::evaluate;
use umbra_deface::{DefaceOptions, Modality};

fn main() {
    let mut subjects = 40usize;
    let mut seed = 1u64;
    let mut dims = 128usize;
    let mut threads = 2usize;
    let mut modalities = vec![Modality::Ct, Modality::Mr];
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--subjects" => subjects = value.parse().unwrap_or(subjects),
            "--seed" => seed = value.parse().unwrap_or(seed),
            "--dims" => dims = value.parse().unwrap_or(dims),
            "--threads" => threads = value.parse().unwrap_or(threads),
            "--modality" => {
                modalities = match value.to_ascii_lowercase().as_str() {
                    "ct" => vec![Modality::Ct],
                    "mr" => vec![Modality::Mr],
                    _ => modalities,
                }
            }
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2);
            }
        }
        i += 2;
    }
    let opts = DefaceOptions::default();
    for m in modalities {
        let t = Instant::now();
        let report = evaluate(seed, subjects, m, [dims; 3], &opts, threads);
        println!("{}", report.markdown());
        println!("({:.1} s)\n", t.elapsed().as_secs_f64());
    }
}
