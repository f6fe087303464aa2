//! `umbra scan`: reading files, running the independent scanner, printing findings.

use crate::Usage;
use clap::{Args, ValueEnum};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use umbra_files::ReadError;
use umbra_scan::{
    AgainstBuilder, DEFAULT_AT_RISK_MODALITIES, Finding, Policy, RawRegion, Rule, Scanner, Severity,
};

#[derive(Args)]
pub struct ScanArgs {
    /// Files or folders to scan (folders are read recursively).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Original files or folders: every identifier in them (name parts, IDs, dates, addresses,
    /// institution, station, device serial, UIDs) is searched for in the scanned files (repeatable).
    #[arg(long, value_name = "ORIGINALS")]
    against: Vec<PathBuf>,
    /// Report format: a readable report, or one JSON object per finding per line.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Exit 1 when a finding reaches this severity.
    #[arg(long, value_enum, default_value_t = Level::Error)]
    fail_on: Level,
    /// A PS3.15 option the files were de-identified with (repeatable): what it retains is
    /// not reported (e.g. retain-device-identity, retain-safe-private, retain-uids).
    #[arg(long = "option", value_name = "NAME")]
    options: Vec<String>,
    /// A UID root accepted besides 2.25 and the DICOM root (repeatable), e.g. a site's output root.
    #[arg(long, value_name = "ROOT")]
    uid_root: Vec<String>,
    /// Modalities that must say Burned In Annotation = NO (comma-separated; replaces the default list).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    at_risk_modalities: Option<Vec<String>>,
    /// Worker threads (default: the number of CPUs).
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// Which images to decode and search for burned-in text: at-risk (images of the at-risk
    /// modalities and secondary captures), all, or none.
    #[arg(long, value_enum, default_value_t = PixelCheck::AtRisk)]
    pixels: PixelCheck,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum Level {
    Error,
    Warn,
    Info,
}

impl From<Level> for Severity {
    fn from(l: Level) -> Self {
        match l {
            Level::Error => Severity::Error,
            Level::Warn => Severity::Warn,
            Level::Info => Severity::Info,
        }
    }
}

/// One finding as written by `--format json`.
#[derive(Serialize)]
struct Line<'a> {
    file: &'a Path,
    #[serde(flatten)]
    finding: &'a Finding,
}

pub fn scan(args: ScanArgs) -> Result<ExitCode, Usage> {
    let options = crate::parse_options(&args.options)?;
    for root in &args.uid_root {
        let ok = !root.is_empty()
            && root
                .split('.')
                .all(|arc| !arc.is_empty() && arc.bytes().all(|b| b.is_ascii_digit()));
        if !ok {
            return Err(Usage(format!("--uid-root {root:?} is not a UID root")));
        }
    }
    let policy = Policy {
        allow: umbra_files::allow_for(&options),
        uid_roots: args.uid_root.clone(),
        at_risk_modalities: match args.at_risk_modalities {
            Some(m) => crate::modalities(m),
            None => DEFAULT_AT_RISK_MODALITIES
                .iter()
                .map(|s| s.to_string())
                .collect(),
        },
    };
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs.max(1))
        .build()
        .map_err(|e| Usage(format!("cannot start workers: {e}")))?;

    let against = if args.against.is_empty() {
        None
    } else {
        let originals = umbra_files::list_files(&args.against).map_err(|e| Usage(e.to_string()))?;
        let objects: Vec<Option<dicom_object::InMemDicomObject>> = pool.install(|| {
            originals
                .par_iter()
                // header first: the pixel data of an original holds no identifier to harvest
                .map(|f| umbra_files::read_input(f).ok().map(|i| i.object))
                .collect()
        });
        let unread = objects.iter().filter(|o| o.is_none()).count();
        let mut b = AgainstBuilder::new(&policy.allow);
        for o in objects.iter().flatten() {
            b.harvest(o);
        }
        if unread > 0 {
            eprintln!(
                "umbra: warning: {unread} of {} --against files are not readable DICOM; their identifiers are not searched for",
                originals.len()
            );
        }
        if b.is_empty() {
            eprintln!("umbra: warning: no identifiers found in the --against files");
        }
        Some(b.build())
    };
    let n_identifiers = against.as_ref().map_or(0, |a| a.len());
    let scanner = Scanner::new(policy, against);

    let files = umbra_files::list_files(&args.paths).map_err(|e| Usage(e.to_string()))?;
    if files.is_empty() {
        eprintln!("umbra: warning: no files found");
    }
    let results: Vec<Vec<Finding>> = pool.install(|| {
        files
            .par_iter()
            .map(|f| scan_file(&scanner, f, args.pixels))
            .collect()
    });

    let fail_on = Severity::from(args.fail_on);
    let failed = results.iter().flatten().any(|f| f.severity >= fail_on);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = match args.format {
        Format::Json => write_json(&mut out, &files, &results),
        Format::Text => write_text(&mut out, &files, &results, n_identifiers),
    };
    if written.and_then(|_| out.flush()).is_err() {
        eprintln!("umbra: cannot write the report");
        return Ok(ExitCode::from(1));
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Which images `umbra scan` decodes to look for burned-in text.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PixelCheck {
    /// Images of the at-risk modalities and secondary captures.
    AtRisk,
    /// Every image.
    All,
    /// None.
    None,
}

/// Burned-in text left in the pixels: decoded and searched with the text detector.
fn pixel_findings(
    scanner: &Scanner,
    input: &umbra_files::ScanInput,
    check: PixelCheck,
) -> Option<Finding> {
    use dicom_dictionary_std::tags;
    let obj = &input.object;
    obj.get(tags::PIXEL_DATA)?;
    let text = |tag| {
        obj.get(tag)
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim().to_ascii_uppercase())
            .unwrap_or_default()
    };
    let at_risk = scanner
        .policy()
        .at_risk_modalities
        .contains(&text(tags::MODALITY))
        || text(tags::SOP_CLASS_UID).starts_with("1.2.840.10008.5.1.4.1.1.7");
    if check == PixelCheck::None || (check == PixelCheck::AtRisk && !at_risk) {
        return None;
    }
    let finding = |severity, message: String| Finding {
        path: "(7FE0,0010)".into(),
        rule: Rule::PixelText,
        severity,
        category: "",
        excerpt: String::new(),
        message,
    };
    match umbra_files::pixels::residual_text(
        obj,
        input.raw_pixel_data.as_ref(),
        &input.transfer_syntax,
        &Default::default(),
    ) {
        Ok(boxes) if boxes.is_empty() => None,
        // An image that says Burned In Annotation NO may still show technical text (scanner
        // settings, scales): a person should look (warn). Without that declaration it is an
        // error, like the flag itself.
        Ok(boxes) => Some(finding(
            if text(tags::BURNED_IN_ANNOTATION) == "NO" {
                Severity::Warn
            } else {
                Severity::Error
            },
            format!(
                "{} text-like region(s) in the pixels, the first at x {} y {} ({}x{})",
                boxes.len(),
                boxes[0].x,
                boxes[0].y,
                boxes[0].width,
                boxes[0].height
            ),
        )),
        Err(e) => Some(finding(
            Severity::Warn,
            format!("pixels not checked for burned-in text: {e}"),
        )),
    }
}

fn scan_file(scanner: &Scanner, file: &Path, pixels: PixelCheck) -> Vec<Finding> {
    let finding = |rule: Rule, severity: Severity, message: String| Finding {
        path: String::new(),
        rule,
        severity,
        category: "",
        excerpt: String::new(),
        message,
    };
    match umbra_files::read_for_scan(file) {
        Ok(input) => {
            let mut findings = scanner.scan(
                &input.object,
                input.meta.as_ref(),
                Some(RawRegion {
                    bytes: &input.head,
                    offset: 0,
                }),
            );
            findings.extend(pixel_findings(scanner, &input, pixels));
            findings
        }
        Err(ReadError::NotDicom) => vec![finding(
            Rule::NotDicom,
            Severity::Warn,
            "not a DICOM file: not verified (check what it is before sharing it)".into(),
        )],
        Err(e) => vec![finding(
            Rule::Unreadable,
            Severity::Error,
            format!("{e}: nothing in it can be verified"),
        )],
    }
}

fn write_json(
    out: &mut impl Write,
    files: &[PathBuf],
    results: &[Vec<Finding>],
) -> std::io::Result<()> {
    for (file, findings) in files.iter().zip(results) {
        for f in findings {
            let line =
                serde_json::to_string(&Line { file, finding: f }).expect("findings serialize");
            writeln!(out, "{line}")?;
        }
    }
    Ok(())
}

fn write_text(
    out: &mut impl Write,
    files: &[PathBuf],
    results: &[Vec<Finding>],
    n_identifiers: usize,
) -> std::io::Result<()> {
    let mut table: BTreeMap<Rule, [usize; 3]> = BTreeMap::new();
    let (mut with_errors, mut with_warnings, mut clean) = (0, 0, 0);
    for (file, findings) in files.iter().zip(results) {
        let worst = findings.iter().map(|f| f.severity).max();
        match worst {
            Some(Severity::Error) => with_errors += 1,
            Some(Severity::Warn) => with_warnings += 1,
            _ => clean += 1,
        }
        if findings.is_empty() {
            continue;
        }
        writeln!(out, "{}", file.display())?;
        let mut sorted: Vec<&Finding> = findings.iter().collect();
        sorted.sort_by_key(|f| std::cmp::Reverse(f.severity));
        for f in sorted {
            table.entry(f.rule).or_default()[2 - f.severity as usize] += 1;
            let category = if f.category.is_empty() {
                String::new()
            } else {
                format!(" [{}]", f.category)
            };
            let excerpt = if f.excerpt.is_empty() {
                String::new()
            } else {
                format!(" {:?}", f.excerpt)
            };
            let path = if f.path.is_empty() { "-" } else { &f.path };
            writeln!(
                out,
                "  {:<5} {}{category} {path}{excerpt}: {}",
                f.severity.name(),
                f.rule.name(),
                f.message
            )?;
        }
    }
    writeln!(out)?;
    writeln!(
        out,
        "{:<30} {:>7} {:>7} {:>7}",
        "rule", "error", "warn", "info"
    )?;
    for rule in Rule::ALL {
        if let Some([e, w, i]) = table.get(rule) {
            writeln!(out, "{:<30} {e:>7} {w:>7} {i:>7}", rule.name())?;
        }
    }
    let against = if n_identifiers > 0 {
        format!(" (searched for {n_identifiers} identifiers of the originals)")
    } else {
        String::new()
    };
    writeln!(
        out,
        "{} files scanned{against}: {with_errors} with errors, {with_warnings} with warnings only, {clean} clean",
        files.len()
    )
}
