//! What the in-process gateway tests share: corpus files, the files a folder destination holds,
//! a gateway whose destinations are folders, and workers run until a condition holds.

#![allow(dead_code)] // each test binary uses its own part

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use umbra_gateway::Config;
use umbra_gateway::pipeline::{self, Shared};
use umbra_gateway::queue::Queue;
use umbra_gateway::spool::Spool;

/// A file of the public corpus's pydicom set.
pub fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/corpus/public/pydicom")
        .join(name)
}

/// Every `.dcm` file under `dir` (none if it does not exist yet).
pub fn dcm_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(dcm_files(&p));
            } else if p.extension().is_some_and(|x| x == "dcm") {
                out.push(p);
            }
        }
    }
    out
}

/// A gateway (spool, queue, workers' shared state; no listener started) at `spool_dir` whose
/// destinations are the folders `dests` (name, path), each with a key of its own made in the
/// spool, and one route that takes everything to all of them. Objects are purged as soon as
/// every destination has them.
pub fn folder_gateway(spool_dir: &Path, dests: &[(&str, &Path)]) -> Arc<Shared> {
    let mut toml = format!(
        "spool = \"{}\"\n[http]\nlisten = \"127.0.0.1:0\"\n\
         [retention]\nkeep_forwarded_hours = 0\n",
        spool_dir.display()
    );
    for (name, path) in dests {
        toml.push_str(&format!(
            "[[destination]]\nname = \"{name}\"\nkind = \"folder\"\npath = \"{}\"\n",
            path.display()
        ));
    }
    let names: Vec<String> = dests.iter().map(|(n, _)| format!("\"{n}\"")).collect();
    toml.push_str(&format!(
        "[[route]]\ndestinations = [{}]\n",
        names.join(", ")
    ));
    let config = Config::parse(&toml).unwrap();
    let spool = Spool::open(spool_dir).unwrap();
    let queue = Queue::open(&spool.queue_path()).unwrap();
    Arc::new(Shared::new(&config, spool, queue).unwrap())
}

/// Runs `n` workers until `done` holds (or `timeout` passes), then stops them.
pub fn run_workers_until(
    shared: &Arc<Shared>,
    n: usize,
    timeout: Duration,
    done: impl Fn() -> bool,
) {
    shared.stop.store(false, Ordering::Relaxed);
    let workers: Vec<_> = (0..n)
        .map(|_| {
            let s = shared.clone();
            std::thread::spawn(move || pipeline::worker(&s))
        })
        .collect();
    let t0 = Instant::now();
    while !done() && t0.elapsed() < timeout {
        std::thread::sleep(Duration::from_millis(50));
    }
    shared.stop.store(true, Ordering::Relaxed);
    shared.notify();
    for w in workers {
        w.join().unwrap();
    }
}

/// The value of one series of the gateway's `/metrics` text, e.g.
/// `umbra_forwarded_total{destination="lab"}` (0 when it is not there).
pub fn metric(shared: &Shared, series: &str) -> f64 {
    let prefix = format!("{series} ");
    shared
        .metrics
        .render(shared.depth().ok(), None)
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}
