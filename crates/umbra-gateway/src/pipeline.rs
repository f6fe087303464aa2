//! The work on a received object: route it, then for each destination de-identify, check,
//! and forward, or quarantine with the reason.
//!
//! Every step can run again after a crash and gives the same bytes: pseudonyms, UIDs and date
//! shifts are keyed and pixel cleaning is deterministic, so the de-identified copy is made
//! afresh for each attempt and sent as it is encoded, never kept on disk (a copy delivered to a
//! folder is written whole: temporary file, fsync, rename).

use crate::config::{CompiledRoute, Config, ConfigError, RouteFacts, Target};
use crate::forward::{Delivery, Sender};
use crate::metrics::Metrics;
use crate::queue::{Job, NewObject, Queue, now};
use crate::spool::{Recent, Spool, sync_dir};
use dicom_dictionary_std::tags;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use umbra_core::{Deidentifier, Key, Pseudonymizer};
use umbra_files::{Cleaner, Gate, Outcome};

/// Name under which objects no route takes are quarantined.
pub const UNROUTED: &str = "_unrouted";

/// Memory for objects just received, waiting for a worker ([`Recent`]); past it, workers read
/// them back from the log.
const RECENT_BUDGET: usize = 256 << 20;

/// One destination, ready to work: its own engine (options and key) and target.
pub struct Destination {
    /// Name from the configuration.
    pub name: String,
    engine: Deidentifier,
    gate: Gate,
    cleaner: Option<Arc<Cleaner>>,
    /// Where copies go.
    pub target: Target,
}

/// What the workers share.
pub struct Shared {
    /// The spool.
    pub spool: Spool,
    /// The queue.
    pub queue: Queue,
    /// Counters.
    pub metrics: Metrics,
    /// Destinations, in configuration order.
    pub dests: Vec<Destination>,
    routes: Vec<CompiledRoute>,
    retry: crate::config::Retry,
    keep_forwarded: Duration,
    /// Objects just received, in memory for the worker that takes them first.
    pub recent: Recent,
    /// Set to stop the workers after their current job.
    pub stop: AtomicBool,
    last_purge: Mutex<f64>,
    wake: (Mutex<u64>, Condvar),
}

impl Shared {
    /// Builds destinations (engines, keys; keys missing are made in the spool) from `config`.
    pub fn new(config: &Config, spool: Spool, queue: Queue) -> Result<Shared, ConfigError> {
        let mut dests = Vec::new();
        for d in &config.destinations {
            let options = config.options_of(d)?;
            let key = destination_key(&spool, &d.name, d.key_file.as_deref())?;
            let mut c = umbra_core::Config::new(options);
            if let Some(m) = &d.at_risk_modalities {
                c.at_risk_modalities = m.iter().map(|s| s.trim().to_ascii_uppercase()).collect();
            }
            let cleaner = options
                .contains(umbra_core::ProfileOption::CleanPixelData)
                .then(|| Arc::new(Cleaner::default()));
            let engine = Deidentifier::new(c, Pseudonymizer::new(&key));
            let gate = Gate::for_config(engine.config());
            dests.push(Destination {
                name: d.name.clone(),
                engine,
                gate,
                cleaner,
                target: config.target(d)?,
            });
        }
        let names: Vec<String> = dests.iter().map(|d| d.name.clone()).collect();
        Ok(Shared {
            spool,
            queue,
            metrics: Metrics::new(&names),
            dests,
            routes: config.compiled_routes()?,
            retry: config.retry.clone(),
            keep_forwarded: Duration::from_secs_f64(
                (config.retention.keep_forwarded_hours * 3600.0).clamp(0.0, 1e9),
            ),
            recent: Recent::new(RECENT_BUDGET),
            stop: AtomicBool::new(false),
            last_purge: Mutex::new(0.0),
            wake: (Mutex::new(0), Condvar::new()),
        })
    }

    /// Whether it is time to purge: `every` seconds after the last purge (workers purge every
    /// second when idle and every ten when busy, so the log shrinks under a steady inflow too).
    fn purge_due(&self, every: f64) -> bool {
        let mut last = self.last_purge.lock().unwrap_or_else(|e| e.into_inner());
        if now() - *last > every {
            *last = now();
            true
        } else {
            false
        }
    }

    /// Makes a received object durable and queues it (`source`: `dimse` or `stow`); objects
    /// kept in memory while received go to [`Recent`] for the worker that takes them. Only
    /// after this succeeds may the sender be told the object is stored; when it fails the
    /// record is withdrawn (the sender, told the store failed, still has the object).
    pub fn store(
        &self,
        incoming: crate::spool::Incoming,
        source: &str,
        calling_ae: &str,
    ) -> std::io::Result<String> {
        let id = incoming.commit(|id, loc, kept| {
            if let Some(bytes) = kept {
                self.recent.put(id, bytes);
            }
            self.queue
                .add_object(id, source, calling_ae, &loc)
                .map_err(std::io::Error::other)
                .inspect_err(|_| drop(self.recent.take(id)))
        })?;
        self.metrics.received(source);
        self.notify();
        Ok(id)
    }

    /// Deletes a log segment holding no object still wanted (and no writer), then forgets its
    /// rows. Returns whether it went.
    fn delete_segment_if_unwanted(&self, seq: u64) -> Result<bool, String> {
        let unwanted = || {
            self.queue
                .segment_unwanted(seq)
                .map_err(std::io::Error::other)
        };
        let deleted = self
            .spool
            .delete_segment(seq, unwanted)
            .map_err(|e| format!("cannot delete log segment {seq}: {e}"))?;
        if deleted {
            self.queue
                .forget_segment(seq)
                .map_err(|e| format!("queue: {e}"))?;
        }
        Ok(deleted)
    }

    /// Wakes a sleeping worker: there is new work.
    pub fn notify(&self) {
        let (m, c) = &self.wake;
        *m.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        c.notify_all();
    }

    fn sleep(&self, max: Duration) {
        let (m, c) = &self.wake;
        let g = m.lock().unwrap_or_else(|e| e.into_inner());
        let seen = *g;
        let _ = c
            .wait_timeout_while(g, max, |n| *n == seen && !self.stop.load(Ordering::Relaxed))
            .map(|(g, _)| drop(g));
    }

    /// Records in the spool's log the queue does not know (received by a process killed
    /// between the spool's sync and the queue's insert, or a queue transaction lost to a power
    /// cut) are queued again once their checksum holds; objects due for purging are purged,
    /// and segments holding nothing wanted are deleted. Runs before the listeners start (no
    /// segment is being written).
    pub fn recover(&self) -> Result<usize, String> {
        let list = |e: std::io::Error| format!("cannot read the spool: {e}");
        let q = |e: rusqlite::Error| format!("queue: {e}");
        // what is due for purging goes first, so that its segments go at once
        self.queue
            .purge(now() - self.keep_forwarded.as_secs_f64())
            .map_err(q)?;
        let mut recovered = 0;
        for seq in self.spool.closed_segments().map_err(list)? {
            let records = self.spool.records(seq).map_err(list)?;
            let ids: Vec<String> = records.iter().map(|(id, _)| id.clone()).collect();
            let unknown: std::collections::HashSet<String> =
                self.queue.unknown(&ids).map_err(q)?.into_iter().collect();
            for (id, loc) in records.iter().filter(|(id, _)| unknown.contains(id)) {
                if self.spool.verify(id, loc).is_ok() {
                    self.queue.add_object(id, "recovered", "", loc).map_err(q)?;
                    recovered += 1;
                }
            }
            self.delete_segment_if_unwanted(seq)?;
        }
        // rows of a segment deleted just before a crash (rows not yet forgotten): nothing is
        // wanted from them
        let on_disk = self.spool.all_segments().map_err(list)?;
        for seq in self.queue.segments().map_err(q)? {
            if !on_disk.contains(&seq) && self.queue.segment_unwanted(seq).map_err(q)? {
                self.queue.forget_segment(seq).map_err(q)?;
            }
        }
        Ok(recovered)
    }
}

/// The destination's key: its `key_file`, or one made on first start in the spool (0600).
fn destination_key(spool: &Spool, name: &str, file: Option<&Path>) -> Result<Key, ConfigError> {
    let path = match file {
        Some(p) => p.to_path_buf(),
        None => {
            let p = spool.key_path(name);
            if !p.exists() {
                let key = Key::generate().map_err(|e| ConfigError(e.to_string()))?;
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                let mut f = opts.open(&p).map_err(|e| {
                    ConfigError(format!("cannot create key file {}: {e}", p.display()))
                })?;
                use std::io::Write;
                f.write_all(key.to_hex_line().as_bytes())
                    .and_then(|_| f.sync_all())
                    .map_err(|e| {
                        ConfigError(format!("cannot write key file {}: {e}", p.display()))
                    })?;
                tracing::warn!(destination = name, path = %p.display(), "made a new key for the destination");
            }
            p
        }
    };
    let (key, warnings) = umbra_files::read_key_file(&path).map_err(ConfigError)?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    Ok(key)
}

/// A worker: routes new objects and runs due jobs until `stop`.
pub fn worker(shared: &Shared) {
    let mut senders = Sender::default();
    while !shared.stop.load(Ordering::Relaxed) {
        if shared.purge_due(10.0) {
            purge(shared);
        }
        // one new object (routed, and its first job run while it is fresh in memory), then one
        // waiting job (another destination's, a retry): neither starves under a steady inflow
        let mut worked = false;
        match shared.queue.next_new() {
            Ok(Some(obj)) => {
                if let Some(job) = route(shared, &obj) {
                    run_job(shared, &job, &mut senders);
                }
                worked = true;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!("queue: {e}");
                shared.sleep(Duration::from_secs(1));
                continue;
            }
        }
        match shared.queue.claim() {
            Ok(Some(job)) => {
                run_job(shared, &job, &mut senders);
                worked = true;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!("queue: {e}");
                shared.sleep(Duration::from_secs(1));
                continue;
            }
        }
        if worked {
            continue;
        }
        if shared.purge_due(1.0) {
            purge(shared);
        }
        senders.close_idle();
        let due = shared
            .queue
            .next_due_in()
            .ok()
            .flatten()
            .unwrap_or(1.0)
            .clamp(0.005, 1.0);
        shared.sleep(Duration::from_secs_f64(due));
    }
    senders.close_all();
}

/// Reads what routes look at and queues one job per destination, returning the first one,
/// claimed for the caller; an object no route takes, or one that cannot be read, is quarantined
/// under `_unrouted` with the reason.
fn route(shared: &Shared, obj: &NewObject) -> Option<Job> {
    let read = match shared.recent.peek(&obj.id, |b| route_facts(b, obj)) {
        Some(r) => r,
        None => open_in_log(shared, obj).and_then(|r| route_facts(r, obj)),
    };
    let (facts, unreadable) = match read {
        Ok(f) => (f, None),
        Err(e) => (RouteFacts::default(), Some(e)),
    };
    let mut dests: Vec<String> = Vec::new();
    if unreadable.is_none() {
        for r in shared.routes.iter().filter(|r| r.matches(&facts)) {
            for &i in &r.destinations {
                let n = &shared.dests[i].name;
                if !dests.contains(n) {
                    dests.push(n.clone());
                }
            }
        }
    }
    if dests.is_empty() {
        let reason = unreadable.unwrap_or_else(|| "no route matches".into());
        tracing::warn!(object = obj.id, reason, "quarantined: not routed");
        if let Err(e) = shared
            .spool
            .quarantine(UNROUTED, &obj.id, &obj.loc, &reason)
        {
            // the object stays new and is routed again; not at once, the disk needs a moment
            tracing::error!(
                object = obj.id,
                "cannot quarantine (check the spool's disk): {e}"
            );
            shared.sleep(Duration::from_secs(1));
            return None;
        }
        shared.recent.take(&obj.id);
    }
    match shared.queue.route(obj, &dests) {
        Ok(first) => first,
        Err(e) => {
            tracing::error!(object = obj.id, "queue: {e}");
            None
        }
    }
}

/// The object's bytes in place in the spool's log.
fn open_in_log(
    shared: &Shared,
    obj: &NewObject,
) -> Result<std::io::Take<std::io::BufReader<std::fs::File>>, String> {
    use std::io::{Read, Seek};
    let path = shared.spool.segment_path(obj.loc.segment);
    let cannot = |e: std::io::Error| format!("cannot read the spool: {e}");
    let mut segment = std::fs::File::open(path).map_err(cannot)?;
    segment
        .seek(std::io::SeekFrom::Start(obj.loc.offset))
        .map_err(cannot)?;
    Ok(std::io::BufReader::with_capacity(64 << 10, segment).take(obj.loc.len))
}

/// What routes look at, from the object's header (read up to its pixel data).
fn route_facts(object: impl std::io::Read, obj: &NewObject) -> Result<RouteFacts, String> {
    let file = dicom_object::OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .read_preamble(dicom_object::file::ReadPreamble::Always)
        .from_reader(object)
        .map_err(|e| format!("cannot read the object: {}", one_line(&e.to_string())))?;
    let text = |tag| {
        file.get(tag)
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
            .unwrap_or_default()
    };
    let calling_ae = if obj.calling_ae.is_empty() && obj.source == "recovered" {
        // received over DIMSE by a process killed before queueing it: the spool's meta group
        // recorded the caller
        file.meta()
            .source_application_entity_title
            .as_deref()
            .unwrap_or("")
            .trim_end_matches(['\0', ' '])
            .to_string()
    } else {
        obj.calling_ae.clone()
    };
    Ok(RouteFacts {
        calling_ae,
        modality: text(tags::MODALITY),
        sop_class: file.meta().media_storage_sop_class_uid().to_string(),
        study_description: text(tags::STUDY_DESCRIPTION),
    })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// How a job ended.
enum Ended {
    Delivered,
    Quarantined(String),
    Retry(String),
}

fn run_job(shared: &Shared, job: &Job, senders: &mut Sender) {
    let ended = match shared.dests.iter().find(|d| d.name == job.dest) {
        None => Ended::Quarantined("destination is no longer configured".into()),
        Some(dest) => {
            // a bug met by one object must not take a worker down, nor leave the job running
            // for ever: the object is quarantined and the worker goes on
            let run = std::panic::AssertUnwindSafe(|| deliver(shared, dest, job, senders));
            match std::panic::catch_unwind(run) {
                Ok(ended) => ended,
                Err(_) => {
                    tracing::error!(
                        object = job.object,
                        destination = job.dest,
                        "internal error"
                    );
                    *senders = Sender::default();
                    Ended::Quarantined("internal error while processing the object".into())
                }
            }
        }
    };
    let result = match &ended {
        Ended::Delivered => {
            shared
                .metrics
                .forwarded(&job.dest, (now() - job.received_at).max(0.0));
            tracing::info!(object = job.object, destination = job.dest, "forwarded");
            shared.queue.finish(job, None)
        }
        Ended::Quarantined(reason) => quarantine(shared, job, reason),
        Ended::Retry(error) => {
            shared.metrics.failed(&job.dest);
            let attempts = job.attempts + 1;
            if shared.retry.max_attempts > 0 && attempts >= shared.retry.max_attempts {
                let reason = format!("gave up after {attempts} attempts: {error}");
                quarantine(shared, job, &reason)
            } else {
                let delay = shared.retry.delay(attempts);
                tracing::warn!(
                    object = job.object,
                    destination = job.dest,
                    error,
                    attempts,
                    retry_in_seconds = delay.as_secs_f64(),
                    "forwarding failed"
                );
                shared.queue.retry(job, error, delay)
            }
        }
    };
    if let Err(e) = result {
        tracing::error!(object = job.object, "queue: {e}");
    }
    // whatever happened, the object's bytes leave memory (a later job reads the log)
    shared.recent.take(&job.object);
    shared.notify();
}

/// Quarantines the job's object for its destination with `reason` and ends the job. When the
/// quarantine cannot be written (the spool's disk), the job waits and runs again: it never stays
/// `running`, and nothing is dropped.
fn quarantine(shared: &Shared, job: &Job, reason: &str) -> rusqlite::Result<()> {
    if let Err(e) = shared
        .spool
        .quarantine(&job.dest, &job.object, &job.loc, reason)
    {
        tracing::error!(
            object = job.object,
            "cannot quarantine (check the spool's disk): {e}"
        );
        let delay = shared.retry.delay(job.attempts + 1);
        return shared
            .queue
            .retry(job, &format!("cannot quarantine: {e}"), delay);
    }
    shared.metrics.held_back(&job.dest);
    tracing::warn!(
        object = job.object,
        destination = job.dest,
        reason,
        "quarantined"
    );
    shared.queue.finish(job, Some(reason))
}

fn deliver(shared: &Shared, dest: &Destination, job: &Job, senders: &mut Sender) -> Ended {
    let produced = match produce(shared, dest, job) {
        Ok(p) => p,
        Err(e) => return e,
    };
    if let Target::Folder { path } = &dest.target {
        let to = path.join(&produced.rel);
        return match write_produced(&produced, &to) {
            Ok(()) => Ended::Delivered,
            Err(e) => Ended::Retry(format!("cannot write to the folder: {e}")),
        };
    }
    let encoded = match produced.encode() {
        Ok(e) => e,
        Err(e) => return Ended::Quarantined(format!("failed: {e}")),
    };
    match senders.send(&dest.name, &dest.target, &encoded) {
        Delivery::Delivered => Ended::Delivered,
        Delivery::Refused(r) => Ended::Quarantined(r),
        Delivery::Failed(e) => Ended::Retry(e),
    }
}

/// Takes the job's object from memory if it was just received, else reads it from the spool
/// (its checksum checked first), and de-identifies it for `dest`. Small objects are read into
/// memory once; large ones header first, their pixel data left in the log until it is sent.
fn produce(shared: &Shared, dest: &Destination, job: &Job) -> Result<umbra_files::Produced, Ended> {
    let unreadable = |e: std::io::Error| match e.kind() {
        // damaged or gone: reading again will not help
        std::io::ErrorKind::InvalidData | std::io::ErrorKind::NotFound => {
            Ended::Quarantined(format!("failed: {e}"))
        }
        _ => Ended::Retry(format!("cannot read the spool: {e}")),
    };
    let input = if let Some(bytes) = shared.recent.take(&job.object) {
        // just received: never left memory
        umbra_files::input_from_bytes(bytes)
    } else if job.loc.len < umbra_files::HEADER_FIRST_FROM {
        let bytes = shared
            .spool
            .read(&job.object, &job.loc)
            .map_err(unreadable)?;
        umbra_files::input_from_bytes(bytes)
    } else {
        shared
            .spool
            .verify(&job.object, &job.loc)
            .map_err(unreadable)?;
        umbra_files::read_input_at(
            &shared.spool.segment_path(job.loc.segment),
            job.loc.offset,
            job.loc.len,
        )
    };
    umbra_files::deidentify_input(
        input,
        &dest.engine,
        Some(&dest.gate),
        dest.cleaner.as_deref(),
        None,
    )
    .map_err(|r| {
        let what = match r.outcome {
            Outcome::HeldBack => "held back",
            Outcome::Skipped => "not an object to forward",
            _ => "failed",
        };
        Ended::Quarantined(format!("{what}: {}", r.reason))
    })
}

/// Writes a produced object to `to` whole and durably: temporary file beside it, fsync,
/// rename, fsync of the folder.
fn write_produced(p: &umbra_files::Produced, to: &Path) -> Result<(), String> {
    let dir = to.parent().ok_or("no folder")?;
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let tmp = to.with_extension("dcm.part");
    let file = std::fs::File::create(&tmp).map_err(|e| e.to_string())?;
    let r = p
        .write_to(&file)
        .and_then(|_| file.sync_all().map_err(|e| e.to_string()));
    drop(file);
    if let Err(e) = r {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, to).map_err(|e| e.to_string())?;
    sync_dir(dir).map_err(|e| e.to_string())
}

/// Purges objects whose every job ended longer ago than the retention time, and deletes the
/// log segments left holding nothing wanted.
fn purge(shared: &Shared) {
    let before = now() - shared.keep_forwarded.as_secs_f64();
    let segments = match shared.queue.purge(before) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("queue: {e}");
            return;
        }
    };
    for seq in segments {
        if let Err(e) = shared.delete_segment_if_unwanted(seq) {
            tracing::error!(segment = seq, "cannot purge: {e}");
        }
    }
}
