//! Helpers shared by the integration tests: run the real `umbra` binary, read its report.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The public corpus shipped in the repository (files nobody on the project wrote).
pub fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/public")
}

/// `umbra ARGS...`
pub fn umbra(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_umbra"))
        .args(args)
        .output()
        .expect("run umbra")
}

/// A key file with a fixed key, so outputs are comparable across runs.
pub fn fixed_key(dir: &Path) -> PathBuf {
    let p = dir.join("key");
    std::fs::write(&p, format!("{}\n", "5a".repeat(32))).unwrap();
    p
}

/// One line of `--report`.
#[derive(Debug, Clone)]
pub struct Rec {
    pub input: PathBuf,
    pub outcome: String,
    pub reason: Option<String>,
    pub output: Option<PathBuf>,
}

pub fn read_report(p: &Path) -> Vec<Rec> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            Rec {
                input: v["input"].as_str().unwrap().into(),
                outcome: v["outcome"].as_str().unwrap().into(),
                reason: v["reason"].as_str().map(String::from),
                output: v["output"].as_str().map(PathBuf::from),
            }
        })
        .collect()
}

/// Every file under `dir`, relative, sorted, with its bytes.
pub fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v = Vec::new();
    fn walk(root: &Path, d: &Path, v: &mut Vec<(PathBuf, Vec<u8>)>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, v);
            } else {
                v.push((
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    if dir.exists() {
        walk(dir, dir, &mut v);
    }
    v.sort();
    v
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

pub fn have(cmd: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

/// De-identifies one file's bytes with a fixed key and `extra` arguments; returns the single
/// output's bytes (the run must succeed and write exactly one file).
pub fn deid_one(input: &[u8], extra: &[&str]) -> Vec<u8> {
    let tmp = tempfile::tempdir().unwrap();
    let inp = tmp.path().join("in.dcm");
    std::fs::write(&inp, input).unwrap();
    let out = tmp.path().join("out");
    let key = fixed_key(tmp.path());
    let mut args = vec!["--quiet"];
    args.extend_from_slice(extra);
    let o = deid(&inp, &out, &key, &args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut files = tree(&out);
    assert_eq!(files.len(), 1);
    files.remove(0).1
}

/// `umbra deid INPUT --out OUT --key-file KEY EXTRA...`
pub fn deid(input: &Path, out: &Path, key: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "deid",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    umbra(&args)
}
