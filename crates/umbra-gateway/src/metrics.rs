//! Counters for `/metrics`, in the Prometheus text format. Labels are listener and destination
//! names only: never anything from an object.

use crate::queue::Depth;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds (seconds) of the latency histogram's buckets: received → forwarded.
const BUCKETS: [f64; 12] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Per-destination counters.
#[derive(Debug, Default)]
struct DestCounters {
    forwarded: u64,
    held_back: u64,
    failed_attempts: u64,
    buckets: [u64; BUCKETS.len()],
    latency_sum: f64,
    latency_count: u64,
}

/// Everything `/metrics` reports.
#[derive(Debug)]
pub struct Metrics {
    received_dimse: AtomicU64,
    received_stow: AtomicU64,
    refused: AtomicU64,
    dests: Mutex<Vec<(String, DestCounters)>>,
}

impl Metrics {
    /// Counters for these destinations.
    pub fn new(dests: &[String]) -> Metrics {
        Metrics {
            received_dimse: AtomicU64::new(0),
            received_stow: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            dests: Mutex::new(
                dests
                    .iter()
                    .map(|d| (d.clone(), DestCounters::default()))
                    .collect(),
            ),
        }
    }

    /// One object received and spooled.
    pub fn received(&self, source: &str) {
        let c = if source == "stow" {
            &self.received_stow
        } else {
            &self.received_dimse
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// One connection, association, object or request refused: over DIMSE an address or
    /// calling AE title not allowed, a called AE title not the gateway's, more associations
    /// than allowed, a full disk; over STOW-RS a missing or wrong token, a full disk, a body
    /// too large.
    pub fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    fn with(&self, dest: &str, f: impl FnOnce(&mut DestCounters)) {
        let mut g = self.dests.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, c)) = g.iter_mut().find(|(n, _)| n == dest) {
            f(c);
        }
    }

    /// One object delivered to `dest`, `seconds` after it was received.
    pub fn forwarded(&self, dest: &str, seconds: f64) {
        self.with(dest, |c| {
            c.forwarded += 1;
            for (i, b) in BUCKETS.iter().enumerate() {
                if seconds <= *b {
                    c.buckets[i] += 1;
                }
            }
            c.latency_sum += seconds.max(0.0);
            c.latency_count += 1;
        });
    }

    /// One object held back from (quarantined for) `dest`.
    pub fn held_back(&self, dest: &str) {
        self.with(dest, |c| c.held_back += 1);
    }

    /// One failed attempt to forward to `dest` (it will be retried or quarantined).
    pub fn failed(&self, dest: &str) {
        self.with(dest, |c| c.failed_attempts += 1);
    }

    /// The text for `/metrics`.
    pub fn render(&self, depth: Option<Depth>, free_bytes: Option<u64>) -> String {
        let mut s = String::new();
        header(
            &mut s,
            "umbra_received_total",
            "counter",
            "Objects received and spooled.",
        );
        let _ = writeln!(
            s,
            "umbra_received_total{{listener=\"dimse\"}} {}",
            self.received_dimse.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "umbra_received_total{{listener=\"stow\"}} {}",
            self.received_stow.load(Ordering::Relaxed)
        );
        header(
            &mut s,
            "umbra_refused_total",
            "counter",
            "Associations, objects or requests refused.",
        );
        let _ = writeln!(
            s,
            "umbra_refused_total {}",
            self.refused.load(Ordering::Relaxed)
        );
        let g = self.dests.lock().unwrap_or_else(|e| e.into_inner());
        for (name, kind, help, get) in [
            (
                "umbra_forwarded_total",
                "counter",
                "De-identified objects delivered.",
                (|c: &DestCounters| c.forwarded) as fn(&DestCounters) -> u64,
            ),
            (
                "umbra_held_back_total",
                "counter",
                "Objects quarantined instead of delivered.",
                |c: &DestCounters| c.held_back,
            ),
            (
                "umbra_failed_total",
                "counter",
                "Failed delivery attempts (retried or quarantined).",
                |c: &DestCounters| c.failed_attempts,
            ),
        ] {
            header(&mut s, name, kind, help);
            for (d, c) in g.iter() {
                let _ = writeln!(s, "{name}{{destination=\"{d}\"}} {}", get(c));
            }
        }
        header(
            &mut s,
            "umbra_latency_seconds",
            "histogram",
            "Time from receipt to delivery.",
        );
        for (d, c) in g.iter() {
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "umbra_latency_seconds_bucket{{destination=\"{d}\",le=\"{b}\"}} {}",
                    c.buckets[i]
                );
            }
            let _ = writeln!(
                s,
                "umbra_latency_seconds_bucket{{destination=\"{d}\",le=\"+Inf\"}} {}",
                c.latency_count
            );
            let _ = writeln!(
                s,
                "umbra_latency_seconds_sum{{destination=\"{d}\"}} {}",
                c.latency_sum
            );
            let _ = writeln!(
                s,
                "umbra_latency_seconds_count{{destination=\"{d}\"}} {}",
                c.latency_count
            );
        }
        drop(g);
        if let Some(q) = depth {
            header(
                &mut s,
                "umbra_queue_depth",
                "gauge",
                "Work waiting, by state.",
            );
            for (state, n) in [
                ("unrouted", q.unrouted),
                ("pending", q.pending),
                ("retrying", q.retrying),
                ("running", q.running),
                ("quarantined", q.quarantined),
            ] {
                let _ = writeln!(s, "umbra_queue_depth{{state=\"{state}\"}} {n}");
            }
        }
        if let Some(b) = free_bytes {
            header(
                &mut s,
                "umbra_spool_free_bytes",
                "gauge",
                "Free space on the spool's disk.",
            );
            let _ = writeln!(s, "umbra_spool_free_bytes {b}");
        }
        s
    }
}

fn header(s: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_show_up_under_their_labels_and_buckets_are_cumulative() {
        let m = Metrics::new(&["vendor".into()]);
        m.received("dimse");
        m.received("stow");
        m.received("dimse");
        m.forwarded("vendor", 0.2);
        m.forwarded("vendor", 20.0);
        m.held_back("vendor");
        let t = m.render(Some(Depth::default()), Some(5));
        assert!(t.contains("umbra_received_total{listener=\"dimse\"} 2\n"));
        assert!(t.contains("umbra_forwarded_total{destination=\"vendor\"} 2\n"));
        assert!(t.contains("umbra_held_back_total{destination=\"vendor\"} 1\n"));
        assert!(t.contains("umbra_latency_seconds_bucket{destination=\"vendor\",le=\"0.25\"} 1\n"));
        assert!(t.contains("umbra_latency_seconds_bucket{destination=\"vendor\",le=\"30\"} 2\n"));
        assert!(t.contains("umbra_latency_seconds_count{destination=\"vendor\"} 2\n"));
        assert!(t.contains("umbra_spool_free_bytes 5\n"));
        // every sample line is "name{labels} value" or "name value"
        for line in t.lines().filter(|l| !l.starts_with('#')) {
            let (_, v) = line.rsplit_once(' ').unwrap();
            assert!(v.parse::<f64>().is_ok(), "{line}");
        }
    }
}
