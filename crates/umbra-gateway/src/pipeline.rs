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
use crate::queue::{Depth, Job, JobEnd, NewObject, Queue, Routed, now};
use crate::spool::{Origin, Recent, Spool, sync_dir};
use dicom_dictionary_std::tags;
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use umbra_core::{Deidentifier, Key, Pseudonymizer};
use umbra_files::{Cleaner, Gate, Input, Outcome, ReadError};

/// Name under which objects no route takes are quarantined.
pub const UNROUTED: &str = "_unrouted";

/// Memory for objects just received, waiting for a worker ([`Recent`]); past it, workers read
/// them back from the log.
const RECENT_BUDGET: usize = 256 << 20;

/// Objects just received wait for a worker in memory up to this many; past it they wait in the
/// queue (a long backlog costs no memory).
const FRESH_MAX: usize = 4096;

/// Routed objects wait to be recorded until this many are waiting ...
const RECORD_BATCH: usize = 64;
/// ... or the first has waited this long, or a worker runs out of work (see
/// [`Shared::record_routed`]).
const RECORD_WAIT: Duration = Duration::from_millis(250);

/// Objects this process received and the queue has not heard of yet. A worker takes each one
/// from here, routes it, runs its first job at once, and only then records the object, its jobs
/// and how the first ended, with other objects' records in one transaction: a fraction of a
/// queue write per object instead of four. The spool's log has every one of them durably; were
/// the process killed, recovery at the next start queues them from there (see
/// [`Shared::recover`]), and a copy sent before the kill is sent again, the same bytes.
#[derive(Default)]
struct Fresh {
    waiting: VecDeque<NewObject>,
    /// Objects taken by a worker and not yet recorded.
    taken: usize,
    /// Per log segment, how many of its objects are waiting or taken: such a segment is wanted
    /// whatever the queue says.
    per_segment: HashMap<u64, usize>,
}

impl Fresh {
    /// Adds an object: at the back (just received), or at the front (taken, and to be taken
    /// again first).
    fn push_front_or_back(&mut self, obj: NewObject, front: bool) {
        *self.per_segment.entry(obj.loc.segment).or_default() += 1;
        if front {
            self.waiting.push_front(obj);
        } else {
            self.waiting.push_back(obj);
        }
    }

    fn take(&mut self) -> Option<NewObject> {
        let obj = self.waiting.pop_front()?;
        self.taken += 1;
        Some(obj)
    }

    /// A taken object is recorded in the queue (or handed back): it leaves the count.
    fn settled(&mut self, obj: &NewObject) {
        self.taken = self.taken.saturating_sub(1);
        self.forget(obj);
    }

    fn forget(&mut self, obj: &NewObject) {
        if let Some(n) = self.per_segment.get_mut(&obj.loc.segment) {
            *n -= 1;
            if *n == 0 {
                self.per_segment.remove(&obj.loc.segment);
            }
        }
    }
}

/// Objects routed, with their first job run, whose records wait to be written together.
#[derive(Default)]
struct Unrecorded {
    list: Vec<RoutedObject>,
    /// When the first of them began to wait.
    since: Option<Instant>,
}

/// An object routed, its first job run, as it waits to be recorded.
struct RoutedObject {
    obj: NewObject,
    dests: Vec<String>,
    /// How the first destination's job ended (none without destinations).
    first: Option<Settled>,
    from: TakenFrom,
}

/// What the workers know without asking the queue: whether it may hold objects waiting to be
/// routed, and from when a pending job may be due. Whoever adds such work to the queue says so
/// here after adding it, and a worker clears a hint before it asks the queue, so work added
/// meanwhile is never missed; a hint that says "maybe" costs one query.
struct Hints {
    queued_new: bool,
    due_at: f64,
}

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
    fresh: Mutex<Fresh>,
    unrecorded: Mutex<Unrecorded>,
    /// The queue refused the last batch of records (see [`Shared::record_now`]).
    queue_failing: AtomicBool,
    hints: Mutex<Hints>,
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
            fresh: Mutex::new(Fresh::default()),
            unrecorded: Mutex::new(Unrecorded::default()),
            queue_failing: AtomicBool::new(false),
            // at start the queue may hold anything
            hints: Mutex::new(Hints {
                queued_new: true,
                due_at: 0.0,
            }),
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

    /// Makes a received object durable and hands it to the workers (`source`: `dimse` or
    /// `stow`); objects kept in memory while received go to [`Recent`] for the worker that
    /// takes them. Only after this succeeds may the sender be told the object is stored.
    pub fn store(
        &self,
        mut incoming: crate::spool::Incoming,
        source: &str,
        calling_ae: &str,
    ) -> std::io::Result<String> {
        incoming.set_origin(match source {
            "dimse" => Origin::Dimse,
            "stow" => Origin::Stow,
            _ => Origin::Unrecorded,
        });
        let id = incoming.commit(|id, loc, kept| {
            let obj = NewObject {
                id: id.to_string(),
                calling_ae: calling_ae.to_string(),
                source: source.to_string(),
                received_at: now(),
                loc,
            };
            if let Some(kept) = kept {
                self.recent.put(id, kept);
            }
            let mut fresh = self.fresh();
            if fresh.waiting.len() < FRESH_MAX {
                fresh.push_front_or_back(obj, false);
                return Ok(());
            }
            drop(fresh);
            // a backlog: it waits in the queue instead of in memory
            self.queue
                .add_object(&obj)
                .map_err(std::io::Error::other)
                .inspect_err(|_| {
                    // not acknowledged: the sender is told it was not stored
                    self.queue_failing.store(true, Ordering::Relaxed);
                    drop(self.recent.take(id));
                })?;
            self.hints().queued_new = true;
            Ok(())
        })?;
        self.metrics.received(source);
        // one object: one worker
        self.notify_one();
        Ok(id)
    }

    fn fresh(&self) -> std::sync::MutexGuard<'_, Fresh> {
        self.fresh.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn unrecorded(&self) -> std::sync::MutexGuard<'_, Unrecorded> {
        self.unrecorded.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a routed object in the queue together with others: records wait until
    /// [`RECORD_BATCH`] are waiting or the first has waited [`RECORD_WAIT`], or until a worker
    /// runs out of work or stops, and are then written in one transaction. Until then an object
    /// taken from memory still counts as taken there, so its log segment is kept and the depth
    /// counts it. Returns false when the queue refused a batch (its records wait to be written
    /// again).
    fn record_routed(&self, routed: RoutedObject) -> bool {
        let full = {
            let mut u = self.unrecorded();
            u.list.push(routed);
            let since = *u.since.get_or_insert_with(Instant::now);
            u.list.len() >= RECORD_BATCH || since.elapsed() >= RECORD_WAIT
        };
        !full || self.record_now()
    }

    /// Whether the queue refused the last batch of records written (and they still wait).
    pub fn queue_failing(&self) -> bool {
        self.queue_failing.load(Ordering::Relaxed)
    }

    /// Whether the first record waiting has waited [`RECORD_WAIT`].
    fn record_due(&self) -> bool {
        let u = self.unrecorded();
        u.since.is_some_and(|t| t.elapsed() >= RECORD_WAIT)
    }

    /// Writes the records waiting (see [`Self::record_routed`]) in one transaction. When the
    /// queue refuses it (a full disk, say) the records go back to wait, first in line, and are
    /// due at once; returns false then. Nothing is routed or sent again: the objects stay taken
    /// (their segments kept) until their records are written, or, should the process end
    /// first, until the next start queues them again from the log.
    pub fn record_now(&self) -> bool {
        let batch = {
            let mut u = self.unrecorded();
            u.since = None;
            std::mem::take(&mut u.list)
        };
        if batch.is_empty() {
            return true;
        }
        let rows: Vec<Routed<'_>> = batch
            .iter()
            .map(|r| Routed {
                object: &r.obj,
                dests: &r.dests,
                first: r.first.as_ref().map(Settled::as_end),
            })
            .collect();
        let written = self.queue.record_routed(&rows);
        drop(rows);
        if let Err(e) = written {
            // (a full disk, say): the records wait and are written again later; the objects
            // are not routed or delivered again meanwhile, and a worker takes no new object
            // while records are due (see `work`)
            tracing::error!(objects = batch.len(), "queue: {e}");
            self.queue_failing.store(true, Ordering::Relaxed);
            let mut u = self.unrecorded();
            let newer = std::mem::replace(&mut u.list, batch);
            u.list.extend(newer);
            let now = Instant::now();
            u.since = Some(now.checked_sub(RECORD_WAIT).unwrap_or(now));
            return false;
        }
        self.queue_failing.store(false, Ordering::Relaxed);
        {
            let mut f = self.fresh();
            for r in batch.iter().filter(|r| r.from == TakenFrom::Memory) {
                f.settled(&r.obj);
            }
        }
        let mut others = false;
        for r in &batch {
            if let Some(Settled::Retry { delay, .. }) = &r.first {
                self.due_from(now() + delay.as_secs_f64());
            }
            others |= r.dests.len() > 1;
        }
        if others {
            // the other destinations' jobs wait: for any worker
            self.due_from(0.0);
            self.notify();
        }
        true
    }

    /// The queue's counts, with the objects not yet recorded in it (waiting ones as unrouted,
    /// those a worker has as running). Memory is read first: an object leaves it only once the
    /// queue has it, so read in this order none is missed (for a moment one may count twice),
    /// and an idle gateway is never reported while an object moves from one to the other.
    pub fn depth(&self) -> rusqlite::Result<Depth> {
        let (waiting, taken) = {
            let f = self.fresh();
            (f.waiting.len() as u64, f.taken as u64)
        };
        let mut d = self.queue.depth()?;
        d.unrouted += waiting;
        d.running += taken;
        Ok(d)
    }

    /// Records in the queue the objects still waiting in memory (at shutdown, after the
    /// workers stopped): the next start routes them from there.
    pub fn flush_fresh(&self) -> rusqlite::Result<()> {
        loop {
            let Some(obj) = self.fresh().waiting.front().cloned() else {
                return Ok(());
            };
            // (with the time it was received: its latency counts from then)
            self.queue.add_object(&obj)?;
            let mut f = self.fresh();
            f.waiting.pop_front();
            f.forget(&obj);
        }
    }

    /// Deletes a log segment holding no object still wanted (and no writer), then forgets its
    /// rows. Returns whether it went.
    fn delete_segment_if_unwanted(&self, seq: u64) -> Result<bool, String> {
        let unwanted = || {
            // memory first, then the queue (an object leaves memory only once the queue has it)
            if self.fresh().per_segment.contains_key(&seq) {
                return Ok(false);
            }
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

    /// Purges objects whose every job ended longer ago than the retention time, and deletes
    /// the log segments left holding nothing wanted (the workers run this every few seconds).
    pub fn purge(&self) {
        let before = now() - self.keep_forwarded.as_secs_f64();
        let segments = match self.queue.purge(before) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("queue: {e}");
                return;
            }
        };
        for seq in segments {
            if let Err(e) = self.delete_segment_if_unwanted(seq) {
                tracing::error!(segment = seq, "cannot purge: {e}");
            }
        }
    }

    /// Wakes every sleeping worker: there is new work for several, or they are to stop.
    pub fn notify(&self) {
        let (m, c) = &self.wake;
        *m.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        c.notify_all();
    }

    /// Wakes one sleeping worker: there is one more thing to do.
    fn notify_one(&self) {
        let (m, c) = &self.wake;
        *m.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        c.notify_one();
    }

    /// How many times workers were woken so far: read before looking for work, and passed to
    /// [`Self::sleep`], so that work arriving while a worker looks is never slept through.
    fn wakes(&self) -> u64 {
        *self.wake.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sleeps up to `max`, unless woken since `seen` (see [`Self::wakes`]) or stopping.
    fn sleep(&self, seen: u64, max: Duration) {
        let (m, c) = &self.wake;
        let g = m.lock().unwrap_or_else(|e| e.into_inner());
        let _ = c
            .wait_timeout_while(g, max, |n| *n == seen && !self.stop.load(Ordering::Relaxed))
            .map(|(g, _)| drop(g));
    }

    /// Sleeps `d` after an error, unless stopping: new work does not cut it short (a failing
    /// queue or disk is not tried again for every object that arrives).
    fn pause(&self, d: Duration) {
        let (m, c) = &self.wake;
        let g = m.lock().unwrap_or_else(|e| e.into_inner());
        let _ = c
            .wait_timeout_while(g, d, |_| !self.stop.load(Ordering::Relaxed))
            .map(|(g, _)| drop(g));
    }

    fn hints(&self) -> std::sync::MutexGuard<'_, Hints> {
        self.hints.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A pending job may be due from `at` (seconds since the epoch).
    fn due_from(&self, at: f64) {
        let mut h = self.hints();
        h.due_at = h.due_at.min(at);
    }

    /// The oldest object queued to be routed, when the hints say there may be one.
    fn claim_new(&self) -> rusqlite::Result<Option<NewObject>> {
        if !std::mem::take(&mut self.hints().queued_new) {
            return Ok(None);
        }
        let claimed = self.queue.claim_new();
        if !matches!(claimed, Ok(None)) {
            // there may be more (or the queue failed: ask again)
            self.hints().queued_new = true;
        }
        claimed
    }

    /// A pending job that is due, when the hints say there may be one.
    fn claim(&self) -> rusqlite::Result<Option<Job>> {
        {
            let mut h = self.hints();
            if h.due_at > now() {
                return Ok(None);
            }
            h.due_at = f64::INFINITY;
        }
        let claimed = self.queue.claim();
        match &claimed {
            Ok(None) => {
                if let Some(t) = self.queue.next_due_in().unwrap_or(Some(0.0)) {
                    self.due_from(now() + t);
                }
            }
            // there may be more (or the queue failed: ask again)
            _ => self.due_from(0.0),
        }
        claimed
    }

    /// Seconds until the hints say a pending job may be due (at most `max`).
    fn due_in(&self, max: f64) -> f64 {
        (self.hints().due_at - now()).clamp(0.0, max)
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
            let ids: Vec<String> = records.iter().map(|(id, ..)| id.clone()).collect();
            let unknown: std::collections::HashSet<String> =
                self.queue.unknown(&ids).map_err(q)?.into_iter().collect();
            for (id, loc, origin) in records.iter().filter(|(id, ..)| unknown.contains(id)) {
                if self.spool.verify(id, loc).is_ok() {
                    let obj = NewObject {
                        id: id.clone(),
                        calling_ae: String::new(),
                        // a STOW-RS object had no caller; for the others routing reads the
                        // caller from the meta group (see `facts_of`)
                        source: match origin {
                            Origin::Stow => "stow",
                            Origin::Dimse | Origin::Unrecorded => "recovered",
                        }
                        .into(),
                        received_at: now(),
                        loc: *loc,
                    };
                    self.queue.add_object(&obj).map_err(q)?;
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

/// A worker: routes new objects and runs due jobs until `stop`. Jobs and the reading of new
/// objects catch their own panics (the object is quarantined); should one escape anyway, the
/// worker logs it and starts over, so the gateway never runs short of workers. (An object it
/// held then waits for the next start, which queues it again from the log.)
pub fn worker(shared: &Shared) {
    while !shared.stop.load(Ordering::Relaxed) {
        let run = std::panic::AssertUnwindSafe(|| work(shared));
        if std::panic::catch_unwind(run).is_ok() {
            return;
        }
        tracing::error!("internal error in a worker: it starts over");
        shared.pause(Duration::from_secs(1));
    }
}

fn work(shared: &Shared) {
    let mut senders = Sender::default();
    while !shared.stop.load(Ordering::Relaxed) {
        let seen = shared.wakes();
        if shared.purge_due(10.0) {
            shared.purge();
        }
        if shared.record_due() && !shared.record_now() {
            shared.pause(Duration::from_secs(1));
            continue;
        }
        // one new object (routed, and its first job run while it is fresh in memory), then one
        // waiting job (another destination's, a retry): neither starves under a steady inflow
        let mut worked = false;
        let fresh = shared.fresh().take();
        let new = match fresh {
            Some(obj) => Ok(Some((obj, TakenFrom::Memory))),
            None => shared.claim_new().map(|o| o.map(|o| (o, TakenFrom::Queue))),
        };
        match new {
            Ok(Some((obj, from))) => {
                take_new(shared, obj, from, &mut senders);
                worked = true;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!("queue: {e}");
                shared.pause(Duration::from_secs(1));
                continue;
            }
        }
        match shared.claim() {
            Ok(Some(job)) => {
                run_job(shared, &job, &mut senders);
                worked = true;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!("queue: {e}");
                shared.pause(Duration::from_secs(1));
                continue;
            }
        }
        if worked {
            continue;
        }
        // nothing more to do for now: what waits to be recorded is written
        if !shared.record_now() {
            shared.pause(Duration::from_secs(1));
            continue;
        }
        if shared.purge_due(1.0) {
            shared.purge();
        }
        senders.close_idle();
        let due = shared.due_in(1.0).max(0.005);
        shared.sleep(seen, Duration::from_secs_f64(due));
    }
    shared.record_now();
    senders.close_all();
}

/// Where a worker took an object not yet routed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TakenFrom {
    /// Waiting in memory ([`Fresh`]): counted there until recorded.
    Memory,
    /// Claimed from the queue (`routing`): the queue counts it.
    Queue,
}

/// Routes an object not yet routed (just received, or claimed from the queue) and runs its
/// first destination's job at once, with the object read and parsed once for both; then records
/// the object, one job per destination and how the first ended, in one transaction with other
/// objects' records (see [`Shared::record_routed`]). An object
/// no route takes, or one that cannot be read, is quarantined under `_unrouted` with the reason;
/// when that quarantine cannot be written, the object goes back to wait and is taken again.
/// When the queue refuses the records, they wait to be written again (see
/// [`Shared::record_now`]): nothing is sent twice.
fn take_new(shared: &Shared, obj: NewObject, from: TakenFrom, senders: &mut Sender) {
    // reading runs a parser over received bytes: a bug it meets must quarantine the object, not
    // take the worker down (and the next one after a restart)
    let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let input = load(shared, &obj.id, &obj.loc);
        let facts = match &input {
            Ok(Ok(input)) => Ok(facts_of(&input.object, input.meta.as_ref(), &obj)),
            // what the whole object's reading refused, its header alone may still route (the
            // destination's job then quarantines it with the reason); `load` took the bytes
            // out of memory, and the log has them
            _ => open_in_log(shared, &obj).and_then(|r| route_facts(r, &obj)),
        };
        (input, facts)
    }));
    let (input, facts) = read.unwrap_or_else(|_| {
        tracing::error!(object = obj.id, "internal error while reading the object");
        let reason = "internal error while reading the object".to_string();
        (Err(Ended::Quarantined(reason.clone())), Err(reason))
    });
    let (facts, unreadable) = match facts {
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
    let settled = if let Some(first) = dests.first() {
        let job = Job {
            object: obj.id.clone(),
            dest: first.clone(),
            attempts: 0,
            received_at: obj.received_at,
            loc: obj.loc,
        };
        let ended = attempt(shared, &job, Some(input), senders);
        Some(settle(shared, &job, ended))
    } else {
        drop(input);
        let reason = unreadable.unwrap_or_else(|| "no route matches".into());
        tracing::warn!(object = obj.id, reason, "quarantined: not routed");
        if let Err(e) = shared
            .spool
            .quarantine(UNROUTED, &obj.id, &obj.loc, &reason)
        {
            // routed again, not at once: the disk needs a moment
            tracing::error!(
                object = obj.id,
                "cannot quarantine (check the spool's disk): {e}"
            );
            wait_again(shared, obj, from);
            shared.pause(Duration::from_secs(1));
            return;
        }
        None
    };
    shared.recent.take(&obj.id);
    let routed = RoutedObject {
        obj,
        dests,
        first: settled,
        from,
    };
    if !shared.record_routed(routed) {
        shared.pause(Duration::from_secs(1));
    }
}

/// An object taken but not recorded waits again, first in line, in memory.
fn wait_again(shared: &Shared, obj: NewObject, from: TakenFrom) {
    let mut f = shared.fresh();
    if from == TakenFrom::Memory {
        f.settled(&obj);
    }
    f.push_front_or_back(obj, true);
}

/// What routes look at, from an object's data set and meta group (none for a bare data set).
fn facts_of(
    object: &dicom_object::InMemDicomObject,
    meta: Option<&dicom_object::FileMetaTable>,
    obj: &NewObject,
) -> RouteFacts {
    let text = |tag| {
        object
            .get(tag)
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
            .unwrap_or_default()
    };
    let calling_ae = if obj.calling_ae.is_empty() && obj.source == "recovered" {
        // received over DIMSE by a process killed before queueing it: the spool's meta group
        // recorded the caller
        meta.and_then(|m| m.source_application_entity_title.as_deref())
            .unwrap_or("")
            .trim_end_matches(['\0', ' '])
            .to_string()
    } else {
        obj.calling_ae.clone()
    };
    let sop_class = match meta {
        Some(m) => m.media_storage_sop_class_uid().to_string(),
        None => text(tags::SOP_CLASS_UID),
    };
    RouteFacts {
        calling_ae,
        modality: text(tags::MODALITY),
        sop_class,
        study_description: text(tags::STUDY_DESCRIPTION),
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

/// What routes look at, from the object's header alone (read up to its pixel data), for an
/// object whose whole reading failed.
fn route_facts(object: impl std::io::Read, obj: &NewObject) -> Result<RouteFacts, String> {
    let file = dicom_object::OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .read_preamble(dicom_object::file::ReadPreamble::Always)
        .from_reader(object)
        .map_err(|e| format!("cannot read the object: {}", one_line(&e.to_string())))?;
    Ok(facts_of(&file, Some(file.meta()), obj))
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

/// Runs a claimed job and records how it ended.
fn run_job(shared: &Shared, job: &Job, senders: &mut Sender) {
    let ended = attempt(shared, job, None, senders);
    let settled = settle(shared, job, ended);
    // how the job ended must reach the queue, or the job stays running until the next start
    // (which runs it again): when the queue cannot be written, this worker waits for it
    loop {
        match shared.queue.end(job, settled.as_end()) {
            Ok(()) => {
                shared.queue_failing.store(false, Ordering::Relaxed);
                break;
            }
            Err(e) => {
                tracing::error!(object = job.object, "queue: {e}");
                shared.queue_failing.store(true, Ordering::Relaxed);
                if shared.stop.load(Ordering::Relaxed) {
                    break;
                }
                shared.pause(Duration::from_secs(1));
            }
        }
    }
    if let Settled::Retry { delay, .. } = &settled {
        shared.due_from(now() + delay.as_secs_f64());
    }
    // whatever happened, the object's bytes leave memory (a later job reads the log)
    shared.recent.take(&job.object);
}

/// One attempt at a job: de-identify, check and forward (`input`: the object already read, else
/// it is read here).
fn attempt(shared: &Shared, job: &Job, input: Option<Loaded>, senders: &mut Sender) -> Ended {
    let Some(dest) = shared.dests.iter().find(|d| d.name == job.dest) else {
        return Ended::Quarantined("destination is no longer configured".into());
    };
    // a bug met by one object must not take a worker down, nor leave the job running for ever:
    // the object is quarantined and the worker goes on
    let run = std::panic::AssertUnwindSafe(|| deliver(shared, dest, job, input, senders));
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

/// How a job's attempt ends in the queue, once counted, logged and (for a quarantine) written.
enum Settled {
    Done,
    Quarantined(String),
    Retry { error: String, delay: Duration },
}

impl Settled {
    fn as_end(&self) -> JobEnd<'_> {
        match self {
            Settled::Done => JobEnd::Done,
            Settled::Quarantined(r) => JobEnd::Quarantined(r),
            Settled::Retry { error, delay } => JobEnd::Retry {
                error,
                delay: *delay,
            },
        }
    }
}

/// Counts and logs how an attempt ended, and writes the quarantine when it ends there; retries
/// past the configured attempts are quarantined.
fn settle(shared: &Shared, job: &Job, ended: Ended) -> Settled {
    match ended {
        Ended::Delivered => {
            shared
                .metrics
                .forwarded(&job.dest, (now() - job.received_at).max(0.0));
            tracing::info!(object = job.object, destination = job.dest, "forwarded");
            Settled::Done
        }
        Ended::Quarantined(reason) => quarantine(shared, job, reason),
        Ended::Retry(error) => {
            shared.metrics.failed(&job.dest);
            let attempts = job.attempts + 1;
            if shared.retry.max_attempts > 0 && attempts >= shared.retry.max_attempts {
                let reason = format!("gave up after {attempts} attempts: {error}");
                quarantine(shared, job, reason)
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
                Settled::Retry { error, delay }
            }
        }
    }
}

/// Quarantines the job's object for its destination with `reason`. When the quarantine cannot
/// be written (the spool's disk), the job waits and runs again: nothing is dropped.
fn quarantine(shared: &Shared, job: &Job, reason: String) -> Settled {
    if let Err(e) = shared
        .spool
        .quarantine(&job.dest, &job.object, &job.loc, &reason)
    {
        tracing::error!(
            object = job.object,
            "cannot quarantine (check the spool's disk): {e}"
        );
        return Settled::Retry {
            error: format!("cannot quarantine: {e}"),
            delay: shared.retry.delay(job.attempts + 1),
        };
    }
    shared.metrics.held_back(&job.dest);
    tracing::warn!(
        object = job.object,
        destination = job.dest,
        reason,
        "quarantined"
    );
    Settled::Quarantined(reason)
}

fn deliver(
    shared: &Shared,
    dest: &Destination,
    job: &Job,
    input: Option<Loaded>,
    senders: &mut Sender,
) -> Ended {
    let produced = match produce(
        dest,
        input.unwrap_or_else(|| load(shared, &job.object, &job.loc)),
    ) {
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

/// An object read for a job: `Err` when the spool could not give it (with how the job ends),
/// else how reading it as DICOM went.
type Loaded = Result<Result<Input, ReadError>, Ended>;

/// Takes an object from memory if it was just received, else reads it from the spool (its
/// checksum checked first). Small objects are read into memory once; large ones header first,
/// their pixel data left in the log until it is sent.
fn load(shared: &Shared, id: &str, loc: &crate::spool::Location) -> Loaded {
    #[cfg(test)]
    tests::panic_if_told(id);
    let unreadable = |e: std::io::Error| match e.kind() {
        // damaged or gone: reading again will not help
        std::io::ErrorKind::InvalidData | std::io::ErrorKind::NotFound => {
            Ended::Quarantined(format!("failed: {e}"))
        }
        _ => Ended::Retry(format!("cannot read the spool: {e}")),
    };
    Ok(if let Some(kept) = shared.recent.take(id) {
        // just received: never left memory
        umbra_files::input_from_bytes_at(kept.bytes, kept.start)
    } else if loc.len < umbra_files::HEADER_FIRST_FROM {
        let bytes = shared.spool.read(id, loc).map_err(unreadable)?;
        umbra_files::input_from_bytes(bytes)
    } else {
        shared.spool.verify(id, loc).map_err(unreadable)?;
        umbra_files::read_input_at(&shared.spool.segment_path(loc.segment), loc.offset, loc.len)
    })
}

/// De-identifies a loaded object for `dest`.
fn produce(dest: &Destination, input: Loaded) -> Result<umbra_files::Produced, Ended> {
    umbra_files::deidentify_input(
        input?,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// The object whose reading panics (a parser bug, injected).
    static PANIC_READING: Mutex<Option<String>> = Mutex::new(None);

    pub(super) fn panic_if_told(id: &str) {
        let told = PANIC_READING.lock().unwrap().as_deref() == Some(id);
        if told {
            panic!("injected: a bug met while reading this object");
        }
    }

    /// A gateway whose destinations are the folders `dests` (name, path), with one route to all
    /// of them on the conditions `route` (TOML lines; empty: everything).
    fn folders_shared(spool_dir: &Path, dests: &[(&str, &Path)], route: &str) -> Shared {
        let mut toml = format!(
            "spool = \"{}\"\n[http]\nlisten = \"127.0.0.1:0\"\n[retention]\n\
             keep_forwarded_hours = 0\n",
            spool_dir.display()
        );
        for (name, path) in dests {
            toml.push_str(&format!(
                "[[destination]]\nname = \"{name}\"\nkind = \"folder\"\npath = \"{}\"\n",
                path.display()
            ));
        }
        let names: Vec<String> = dests.iter().map(|(n, _)| format!("{n:?}")).collect();
        toml.push_str(&format!(
            "[[route]]\ndestinations = [{}]\n{route}\n",
            names.join(", ")
        ));
        let config = Config::parse(&toml).unwrap();
        let spool = Spool::open(spool_dir).unwrap();
        let queue = Queue::open(&spool.queue_path()).unwrap();
        Shared::new(&config, spool, queue).unwrap()
    }

    /// [`folders_shared`] with one destination, `lab` at `out`.
    fn folder_shared(spool_dir: &Path, out: &Path, route: &str) -> Shared {
        folders_shared(spool_dir, &[("lab", out)], route)
    }

    fn corpus_file(name: &str) -> Vec<u8> {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/corpus/public/pydicom")
                .join(name),
        )
        .unwrap()
    }

    /// When the queue refuses to record a delivered object (a full disk), the record waits and
    /// is written once the queue takes it again: the object is neither routed nor sent again
    /// meanwhile, and it keeps counting as at work (its log segment kept). `/healthz` hears of
    /// it through `queue_failing`.
    #[test]
    fn a_record_the_queue_refuses_waits_and_nothing_is_sent_again() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("lab");
        let shared = folder_shared(&d.path().join("spool"), &out, "");
        let mut a = shared.spool.receive().unwrap();
        a.write_all(&corpus_file("CT_small.dcm")).unwrap();
        shared.store(a, "stow", "").unwrap();
        shared.queue.refuse_writes(true);
        let obj = shared.fresh().take().unwrap();
        take_new(&shared, obj, TakenFrom::Memory, &mut Sender::default());
        assert!(!shared.record_now(), "the queue refused the record");
        assert!(shared.queue_failing());
        assert!(shared.record_due(), "the record is due again at once");
        assert!(
            shared.fresh().take().is_none(),
            "the object does not wait to be routed and sent again"
        );
        assert_eq!(
            std::fs::read_dir(&out).unwrap().count(),
            1,
            "delivered once"
        );
        let depth = shared.depth().unwrap();
        assert_eq!((depth.unrouted, depth.running), (0, 1), "still at work");
        shared.purge();
        assert!(shared.spool.segment_path(1).exists(), "its segment is kept");
        assert!(!shared.record_now(), "refused again");
        shared.queue.refuse_writes(false);
        assert!(shared.record_now());
        assert!(!shared.queue_failing());
        let depth = shared.depth().unwrap();
        assert_eq!((depth.unrouted, depth.pending, depth.running), (0, 0, 0));
        assert_eq!(
            std::fs::read_dir(&out).unwrap().count(),
            1,
            "and never sent again"
        );
    }

    /// A second destination's job whose end the queue refuses to record: the worker waits for
    /// the queue (`queue_failing` set meanwhile) and records it once it can; the job neither
    /// stays running nor is run again.
    #[test]
    fn a_job_end_the_queue_refuses_is_recorded_once_it_can_be() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        let shared = Arc::new(folders_shared(
            &d.path().join("spool"),
            &[("a", &a), ("b", &b)],
            "",
        ));
        let mut i = shared.spool.receive().unwrap();
        i.write_all(&corpus_file("CT_small.dcm")).unwrap();
        shared.store(i, "stow", "").unwrap();
        let obj = shared.fresh().take().unwrap();
        take_new(&shared, obj, TakenFrom::Memory, &mut Sender::default());
        assert!(shared.record_now());
        let job = shared
            .claim()
            .unwrap()
            .expect("the second destination's job");
        shared.queue.refuse_writes(true);
        let runner = {
            let s = shared.clone();
            std::thread::spawn(move || run_job(&s, &job, &mut Sender::default()))
        };
        let t0 = std::time::Instant::now();
        while !shared.queue_failing() && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(shared.queue_failing(), "the refusal is seen");
        assert!(!runner.is_finished(), "the worker waits for the queue");
        shared.queue.refuse_writes(false);
        runner.join().unwrap();
        assert!(!shared.queue_failing());
        let depth = shared.depth().unwrap();
        assert_eq!((depth.unrouted, depth.pending, depth.running), (0, 0, 0));
        assert!(shared.claim().unwrap().is_none(), "nothing is run again");
        assert_eq!(std::fs::read_dir(&a).unwrap().count(), 1);
        assert_eq!(std::fs::read_dir(&b).unwrap().count(), 1);
    }

    /// An object no route takes is quarantined under `_unrouted` with the reason, and leaves
    /// nothing waiting.
    #[test]
    fn an_object_no_route_takes_is_quarantined_as_unrouted() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("lab");
        let shared = folder_shared(&d.path().join("spool"), &out, "modality = [\"MR\"]");
        let mut a = shared.spool.receive().unwrap();
        a.write_all(&corpus_file("CT_small.dcm")).unwrap();
        let id = shared.store(a, "stow", "").unwrap();
        let obj = shared.fresh().take().unwrap();
        take_new(&shared, obj, TakenFrom::Memory, &mut Sender::default());
        assert!(shared.record_now());
        let q = shared.spool.quarantine_dir(UNROUTED);
        let reason = std::fs::read_to_string(q.join(format!("{id}.reason"))).unwrap();
        assert!(reason.contains("no route matches"), "{reason}");
        assert_eq!(
            std::fs::read(q.join(format!("{id}.dcm"))).unwrap(),
            corpus_file("CT_small.dcm"),
            "the object as received"
        );
        assert!(!out.exists() || std::fs::read_dir(&out).unwrap().count() == 0);
        let depth = shared.depth().unwrap();
        assert_eq!((depth.unrouted, depth.pending, depth.running), (0, 0, 0));
    }

    /// A panic while a new object is read quarantines that object (under `_unrouted`, with
    /// the reason) and the worker goes on with the next.
    #[test]
    fn a_panic_while_reading_an_object_quarantines_it_and_the_worker_goes_on() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("lab");
        let shared = Arc::new(folder_shared(&d.path().join("spool"), &out, ""));
        let mut a = shared.spool.receive().unwrap();
        a.write_all(&corpus_file("CT_small.dcm")).unwrap();
        let bad = shared.store(a, "stow", "").unwrap();
        *PANIC_READING.lock().unwrap() = Some(bad.clone());
        let mut b = shared.spool.receive().unwrap();
        b.write_all(&corpus_file("MR_small.dcm")).unwrap();
        shared.store(b, "stow", "").unwrap();
        let worker = {
            let s = shared.clone();
            std::thread::spawn(move || worker(&s))
        };
        let reason = shared
            .spool
            .quarantine_dir(UNROUTED)
            .join(format!("{bad}.reason"));
        let t0 = std::time::Instant::now();
        while (!reason.exists() || std::fs::read_dir(&out).map_or(0, |d| d.count()) < 1)
            && t0.elapsed() < Duration::from_secs(30)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        shared.stop.store(true, Ordering::Relaxed);
        shared.notify();
        worker.join().expect("the worker survived");
        let why = std::fs::read_to_string(&reason).expect("quarantined with a reason");
        assert!(why.contains("internal error"), "{why}");
        assert_eq!(
            std::fs::read_dir(&out).unwrap().count(),
            1,
            "the other object was delivered"
        );
        let depth = shared.depth().unwrap();
        assert_eq!((depth.unrouted, depth.pending, depth.running), (0, 0, 0));
    }

    /// An object claimed from the queue and one waiting in memory share a log segment: routing
    /// the first must leave the second counted (as running, and as holding its segment).
    #[test]
    fn an_object_from_the_queue_leaves_the_count_of_those_in_memory_alone() {
        let d = tempfile::tempdir().unwrap();
        let spool_dir = d.path().join("spool");
        let out = d.path().join("lab");
        let shared = folder_shared(&spool_dir, &out, "");
        // one waiting in memory, one in the queue (as past the in-memory backlog): segment 1
        let mut a = shared.spool.receive().unwrap();
        a.write_all(&corpus_file("CT_small.dcm")).unwrap();
        shared.store(a, "stow", "").unwrap();
        let mut b = shared.spool.receive().unwrap();
        b.write_all(&corpus_file("MR_small.dcm")).unwrap();
        b.commit(|id, loc, _| {
            assert_eq!(loc.segment, 1);
            let obj = NewObject {
                id: id.into(),
                calling_ae: String::new(),
                source: "stow".into(),
                received_at: now(),
                loc,
            };
            shared.queue.add_object(&obj).map_err(std::io::Error::other)
        })
        .unwrap();
        let mut senders = Sender::default();
        let in_memory = shared.fresh().take().unwrap();
        let queued = shared.claim_new().unwrap().unwrap();
        take_new(&shared, queued, TakenFrom::Queue, &mut senders);
        assert!(shared.record_now());
        assert_eq!(
            shared.depth().unwrap().running,
            1,
            "the one in memory is still at work"
        );
        shared.purge();
        assert!(
            shared.spool.segment_path(1).exists(),
            "the segment still holds the object in memory"
        );
        take_new(&shared, in_memory, TakenFrom::Memory, &mut senders);
        // delivered, its record waiting to be written with others: it still counts, and
        // still holds its segment
        assert_eq!(shared.depth().unwrap().running, 1);
        shared.purge();
        assert!(shared.spool.segment_path(1).exists());
        assert!(shared.record_now());
        let depth = shared.depth().unwrap();
        assert_eq!((depth.unrouted, depth.pending, depth.running), (0, 0, 0));
        shared.purge();
        assert!(!shared.spool.segment_path(1).exists());
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 2);
    }
}
