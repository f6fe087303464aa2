//! The job queue, in embedded SQLite (`SPOOL/queue.sqlite`, WAL, `synchronous=NORMAL`).
//!
//! NORMAL in WAL mode survives a killed process whole; a power loss may lose the last
//! transactions, never corrupt the file. Nothing is lost with them: received objects are
//! durable in the spool before they are acknowledged, objects the queue does not know are
//! queued again at start, and a lost `done` only means the object is forwarded again, as the
//! same bytes.
//!
//! An object row records where the object is in the spool's log (segment, offset, length). An
//! object just received is first written here once routed, together with its jobs and how the
//! first of them ended (see `pipeline::Fresh`). One queued otherwise (recovered at start,
//! waiting at shutdown, or received past the in-memory backlog) is `new`, then `routing` while a
//! worker has it. Then it is `routed` while any of its jobs is open, `done` (every destination
//! has it or quarantined it), and `purged` after the retention time; rows go with their
//! segment, once every object in it is purged. A job (one object for one destination) is
//! `pending` (waiting for its time), `running`, `done` or `quarantined`. At start, `running`
//! jobs and `routing` objects of a killed process become `pending` and `new` again: every step
//! can be repeated and gives the same bytes.

use crate::spool::Location;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The queue (one connection, shared; every operation is a short transaction).
pub struct Queue {
    conn: Mutex<Connection>,
}

/// A received object waiting to be routed.
#[derive(Debug, Clone)]
pub struct NewObject {
    /// Spool id.
    pub id: String,
    /// Calling AE title (DIMSE), else empty.
    pub calling_ae: String,
    /// `dimse`, `stow` or `recovered`.
    pub source: String,
    /// When it was received (seconds since the epoch).
    pub received_at: f64,
    /// Where it is in the spool.
    pub loc: Location,
}

/// A job claimed by a worker.
#[derive(Debug, Clone)]
pub struct Job {
    /// Spool id of the object.
    pub object: String,
    /// Destination name.
    pub dest: String,
    /// Attempts made before this one.
    pub attempts: u32,
    /// When the object was received (seconds since the epoch).
    pub received_at: f64,
    /// Where the object is in the spool.
    pub loc: Location,
}

/// How a job's attempt ended, as the queue records it.
#[derive(Debug, Clone, Copy)]
pub enum JobEnd<'a> {
    /// Delivered.
    Done,
    /// Quarantined (the copy and its reason are in the quarantine), with the reason.
    Quarantined(&'a str),
    /// Failed for a reason that may pass: try again after `delay`.
    Retry {
        /// What went wrong.
        error: &'a str,
        /// How long to wait.
        delay: Duration,
    },
}

/// A routed object, as [`Queue::record_routed`] records it.
#[derive(Debug, Clone, Copy)]
pub struct Routed<'a> {
    /// The object.
    pub object: &'a NewObject,
    /// Its destinations, in configuration order; the first one's job ran.
    pub dests: &'a [String],
    /// How the first destination's job ended (`None` without destinations).
    pub first: Option<JobEnd<'a>>,
}

/// Jobs by state, for metrics and health.
#[derive(Debug, Default, Clone, Copy)]
pub struct Depth {
    /// Objects not yet routed.
    pub unrouted: u64,
    /// Jobs waiting (including those waiting to retry).
    pub pending: u64,
    /// Jobs waiting to retry after a failure.
    pub retrying: u64,
    /// Jobs being worked on.
    pub running: u64,
    /// Jobs quarantined.
    pub quarantined: u64,
}

/// Seconds since the epoch, now.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

type Result<T> = std::result::Result<T, rusqlite::Error>;

/// Whether some object of `segment` is not purged yet.
fn segment_wanted(c: &Connection, segment: u64) -> Result<bool> {
    c.prepare_cached("SELECT 1 FROM objects WHERE segment = ?1 AND state <> 'purged'")?
        .exists([segment as i64])
}

/// Inserts an object's row as `new`, unless it has one.
fn insert_object(c: &Connection, obj: &NewObject) -> Result<()> {
    c.prepare_cached(
        "INSERT OR IGNORE INTO objects
           (id, received_at, source, calling_ae, state, segment, offset, length)
         VALUES (?1, ?2, ?3, ?4, 'new', ?5, ?6, ?7)",
    )?
    .execute(params![
        obj.id,
        obj.received_at,
        obj.source,
        obj.calling_ae,
        obj.loc.segment as i64,
        obj.loc.offset as i64,
        obj.loc.len as i64
    ])?;
    Ok(())
}

/// The location in columns `at`, `at + 1`, `at + 2` (segment, offset, length).
fn location(r: &rusqlite::Row<'_>, at: usize) -> Result<Location> {
    Ok(Location {
        segment: r.get::<_, i64>(at)? as u64,
        offset: r.get::<_, i64>(at + 1)? as u64,
        len: r.get::<_, i64>(at + 2)? as u64,
    })
}

impl Queue {
    /// Opens (creating) the queue at `path` and returns `running` jobs to `pending`.
    pub fn open(path: &Path) -> Result<Queue> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(30))?;
        // every statement below stays prepared (parsing SQL per call showed in profiles)
        conn.set_prepared_statement_cache_capacity(32);
        // one process per spool (the spool's lock file says so): the queue is held exclusively,
        // which spares every transaction the shared-memory locks of WAL
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let has_table: bool = conn
            .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'objects'")?
            .exists([])?;
        let has_location: bool = conn
            .prepare("SELECT 1 FROM pragma_table_info('objects') WHERE name = 'segment'")?
            .exists([])?;
        if has_table && !has_location {
            // a queue of the version that spooled one file per object (the spool refuses to
            // open while such objects remain); its rows point nowhere now
            conn.execute_batch("DROP TABLE objects; DROP TABLE IF EXISTS jobs;")?;
        }
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS objects (
                id TEXT PRIMARY KEY,
                received_at REAL NOT NULL,
                source TEXT NOT NULL,
                calling_ae TEXT NOT NULL DEFAULT '',
                state TEXT NOT NULL,
                done_at REAL,
                segment INTEGER NOT NULL,
                offset INTEGER NOT NULL,
                length INTEGER NOT NULL
             );
             CREATE INDEX IF NOT EXISTS objects_state ON objects(state, received_at);
             CREATE INDEX IF NOT EXISTS objects_segment ON objects(segment, state);
             CREATE TABLE IF NOT EXISTS jobs (
                object_id TEXT NOT NULL,
                dest TEXT NOT NULL,
                state TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                next_at REAL NOT NULL,
                last_error TEXT,
                PRIMARY KEY (object_id, dest)
             );
             CREATE INDEX IF NOT EXISTS jobs_ready ON jobs(state, next_at);
             UPDATE jobs SET state = 'pending' WHERE state = 'running';
             UPDATE objects SET state = 'new' WHERE state = 'routing';",
        )?;
        Ok(Queue {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes every write fail from now on (SQLite's `query_only`), as a full disk would, or
    /// lets writes through again: for tests of what the gateway does then.
    #[cfg(test)]
    pub(crate) fn refuse_writes(&self, refuse: bool) {
        self.conn()
            .pragma_update(None, "query_only", refuse)
            .expect("query_only");
    }

    /// Records a received object (already durable in the spool) as waiting to be routed.
    /// Idempotent.
    pub fn add_object(&self, obj: &NewObject) -> Result<()> {
        insert_object(&self.conn(), obj)
    }

    /// Of `ids` (objects on disk), those the queue does not know.
    pub fn unknown(&self, ids: &[String]) -> Result<Vec<String>> {
        let c = self.conn();
        let mut st = c.prepare_cached("SELECT 1 FROM objects WHERE id = ?1")?;
        let mut out = Vec::new();
        for id in ids {
            if st.query_row([id], |_| Ok(())).optional()?.is_none() {
                out.push(id.clone());
            }
        }
        Ok(out)
    }

    /// Claims the oldest object waiting to be routed (it becomes `routing` until
    /// [`Self::record_routed`]; `new` again at the next start if the process dies first).
    pub fn claim_new(&self) -> Result<Option<NewObject>> {
        self.conn()
            .prepare_cached(
                "UPDATE objects SET state = 'routing'
                 WHERE id = (SELECT id FROM objects WHERE state = 'new'
                             ORDER BY received_at LIMIT 1)
                 RETURNING id, calling_ae, source, received_at, segment, offset, length",
            )?
            .query_row([], |r| {
                Ok(NewObject {
                    id: r.get(0)?,
                    calling_ae: r.get(1)?,
                    source: r.get(2)?,
                    received_at: r.get(3)?,
                    loc: location(r, 4)?,
                })
            })
            .optional()
    }

    /// Records routed objects and their jobs, one per destination, all in one transaction: the
    /// first destination's job already ran (`first` says how it ended), the others wait as
    /// `pending`. With no destination an object is done at once (the caller quarantined it).
    /// An object's row is made if it has none yet (an object just received is first written
    /// to the queue here, after its first job: were the process killed before, the spool's
    /// recovery queues it again, and the copy already sent is sent again, the same bytes).
    pub fn record_routed(&self, routed: &[Routed<'_>]) -> Result<()> {
        let mut c = self.conn();
        let tx = c.transaction()?;
        let t = now();
        for r in routed {
            insert_object(&tx, r.object)?;
            let mut open = 0;
            for (i, d) in r.dests.iter().enumerate() {
                let (state, attempts, error, next_at) = match (i, r.first) {
                    (0, Some(JobEnd::Done)) => ("done", 1, None, t),
                    (0, Some(JobEnd::Quarantined(q))) => ("quarantined", 1, Some(q), t),
                    (0, Some(JobEnd::Retry { error, delay })) => {
                        ("pending", 1, Some(error), t + delay.as_secs_f64())
                    }
                    _ => ("pending", 0, None, t),
                };
                open += usize::from(state == "pending");
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO jobs (object_id, dest, state, attempts, last_error, next_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![r.object.id, d, state, attempts, error, next_at])?;
            }
            if open == 0 {
                tx.prepare_cached("UPDATE objects SET state = 'done', done_at = ?2 WHERE id = ?1")?
                    .execute(params![r.object.id, t])?;
            } else {
                tx.prepare_cached("UPDATE objects SET state = 'routed' WHERE id = ?1")?
                    .execute(params![r.object.id])?;
            }
        }
        tx.commit()
    }

    /// Claims the job that has waited longest among those due now.
    pub fn claim(&self) -> Result<Option<Job>> {
        let c = self.conn();
        let claimed = c
            .prepare_cached(
                "UPDATE jobs SET state = 'running'
                 WHERE rowid = (SELECT rowid FROM jobs WHERE state = 'pending' AND next_at <= ?1
                                ORDER BY next_at LIMIT 1)
                 RETURNING object_id, dest, attempts",
            )?
            .query_row([now()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, u32>(2)?,
                ))
            })
            .optional()?;
        let Some((object, dest, attempts)) = claimed else {
            return Ok(None);
        };
        let job = c
            .prepare_cached(
                "SELECT received_at, segment, offset, length FROM objects WHERE id = ?1",
            )?
            .query_row([&object], |r| {
                Ok(Job {
                    received_at: r.get(0)?,
                    loc: location(r, 1)?,
                    object: object.clone(),
                    dest: dest.clone(),
                    attempts,
                })
            })
            .optional()?;
        if job.is_none() {
            // a job whose object is gone (rows are forgotten together; never expected)
            c.prepare_cached("DELETE FROM jobs WHERE object_id = ?1 AND dest = ?2")?
                .execute([&object, &dest])?;
        }
        Ok(job)
    }

    /// Seconds until the next pending job is due (`None`: nothing pending).
    pub fn next_due_in(&self) -> Result<Option<f64>> {
        let t: Option<f64> = self
            .conn()
            .prepare_cached("SELECT MIN(next_at) FROM jobs WHERE state = 'pending'")?
            .query_row([], |r| r.get(0))?;
        Ok(t.map(|t| (t - now()).max(0.0)))
    }

    /// Records how a claimed job's attempt ended.
    pub fn end(&self, job: &Job, end: JobEnd<'_>) -> Result<()> {
        match end {
            JobEnd::Done => self.finish(job, None),
            JobEnd::Quarantined(reason) => self.finish(job, Some(reason)),
            JobEnd::Retry { error, delay } => self.retry(job, error, delay),
        }
    }

    /// The job is finished: `quarantined` with a reason, or done.
    fn finish(&self, job: &Job, quarantined: Option<&str>) -> Result<()> {
        let mut c = self.conn();
        let tx = c.transaction()?;
        let (state, err) = match quarantined {
            Some(r) => ("quarantined", Some(r)),
            None => ("done", None),
        };
        tx.prepare_cached(
            "UPDATE jobs SET state = ?3, last_error = ?4, attempts = attempts + 1
             WHERE object_id = ?1 AND dest = ?2",
        )?
        .execute(params![job.object, job.dest, state, err])?;
        let open: i64 = tx.prepare_cached("SELECT COUNT(*) FROM jobs WHERE object_id = ?1 AND state IN ('pending', 'running')")?.query_row([&job.object],
            |r| r.get(0),
        )?;
        if open == 0 {
            tx.prepare_cached("UPDATE objects SET state = 'done', done_at = ?2 WHERE id = ?1")?
                .execute(params![job.object, now()])?;
        }
        tx.commit()
    }

    /// The job failed for a reason that may pass: try again after `delay`.
    fn retry(&self, job: &Job, error: &str, delay: Duration) -> Result<()> {
        self.conn()
            .prepare_cached(
                "UPDATE jobs SET state = 'pending', attempts = attempts + 1, last_error = ?3,
                 next_at = ?4
             WHERE object_id = ?1 AND dest = ?2",
            )?
            .execute(params![
                job.object,
                job.dest,
                error,
                now() + delay.as_secs_f64()
            ])?;
        Ok(())
    }

    /// Objects done before `before` (seconds since the epoch) become `purged`. Returns the
    /// segments whose every object is purged: their files may go (see
    /// [`Self::segment_unwanted`] and [`Self::forget_segment`]).
    pub fn purge(&self, before: f64) -> Result<Vec<u64>> {
        let mut c = self.conn();
        let tx = c.transaction()?;
        // only the segments of the objects purged now can have become unwanted: the work is in
        // proportion to what is purged, not to the size of the queue
        let mut touched = tx
            .prepare_cached(
                "UPDATE objects SET state = 'purged' WHERE state = 'done' AND done_at < ?1
                 RETURNING segment",
            )?
            .query_map([before], |r| r.get::<_, i64>(0))?
            .collect::<Result<Vec<_>>>()?;
        touched.sort_unstable();
        touched.dedup();
        let mut segments = Vec::new();
        for seg in touched {
            if !segment_wanted(&tx, seg as u64)? {
                segments.push(seg as u64);
            }
        }
        tx.commit()?;
        Ok(segments)
    }

    /// Every segment the queue has objects in.
    pub fn segments(&self) -> Result<Vec<u64>> {
        self.conn()
            .prepare_cached("SELECT DISTINCT segment FROM objects")?
            .query_map([], |r| r.get::<_, i64>(0).map(|n| n as u64))?
            .collect()
    }

    /// Whether no object of `segment` is wanted any more (none, or all purged).
    pub fn segment_unwanted(&self, segment: u64) -> Result<bool> {
        Ok(!segment_wanted(&self.conn(), segment)?)
    }

    /// Forgets the objects of a deleted segment and their jobs (quarantined copies stay in the
    /// quarantine).
    pub fn forget_segment(&self, segment: u64) -> Result<()> {
        let mut c = self.conn();
        let tx = c.transaction()?;
        tx.prepare_cached(
            "DELETE FROM jobs WHERE object_id IN (SELECT id FROM objects WHERE segment = ?1)",
        )?
        .execute([segment as i64])?;
        tx.prepare_cached("DELETE FROM objects WHERE segment = ?1")?
            .execute([segment as i64])?;
        tx.commit()
    }

    /// Counts by state.
    pub fn depth(&self) -> Result<Depth> {
        let c = self.conn();
        let unrouted: i64 = c
            .prepare_cached("SELECT COUNT(*) FROM objects WHERE state IN ('new', 'routing')")?
            .query_row([], |r| r.get(0))?;
        let mut d = Depth {
            unrouted: unrouted as u64,
            ..Depth::default()
        };
        let mut st =
            c.prepare_cached("SELECT state, attempts > 0, COUNT(*) FROM jobs GROUP BY 1, 2")?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, bool>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        for row in rows {
            let (state, retried, n) = row?;
            let n = n as u64;
            match state.as_str() {
                "pending" => {
                    d.pending += n;
                    if retried {
                        d.retrying += n;
                    }
                }
                "running" => d.running += n,
                "quarantined" => d.quarantined += n,
                _ => {}
            }
        }
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routed<'a>(
        object: &'a NewObject,
        dests: &'a [String],
        first: Option<JobEnd<'a>>,
    ) -> Routed<'a> {
        Routed {
            object,
            dests,
            first,
        }
    }

    fn at(segment: u64, offset: u64) -> Location {
        Location {
            segment,
            offset,
            len: 10,
        }
    }

    fn obj(id: &str, loc: Location) -> NewObject {
        NewObject {
            id: id.into(),
            calling_ae: "MODALITY".into(),
            source: "dimse".into(),
            received_at: now(),
            loc,
        }
    }

    #[test]
    fn a_job_goes_pending_running_done_and_the_object_follows() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::open(&d.path().join("q.sqlite")).unwrap();
        // received earlier (waiting in memory at a shutdown): its time is kept
        let a = NewObject {
            received_at: 1000.0,
            ..obj("a", at(1, 48))
        };
        q.add_object(&a).unwrap();
        q.add_object(&a).unwrap();
        q.add_object(&obj("b", at(2, 48))).unwrap();
        let n = q.claim_new().unwrap().unwrap();
        assert_eq!((n.id.as_str(), n.calling_ae.as_str()), ("a", "MODALITY"));
        assert_eq!((n.loc, n.received_at), (at(1, 48), 1000.0));
        assert_eq!(q.depth().unwrap().unrouted, 2, "a is routing, b is new");
        // the router ran the first destination's job: it failed and waits to retry
        let first = JobEnd::Retry {
            error: "peer down",
            delay: Duration::from_secs(3600),
        };
        let dests = ["v1".to_string(), "v2".to_string()];
        q.record_routed(&[routed(&n, &dests, Some(first))]).unwrap();
        assert_eq!(q.claim_new().unwrap().unwrap().id, "b");
        assert!(q.claim_new().unwrap().is_none(), "b is claimed");
        let j2 = q.claim().unwrap().unwrap();
        assert_eq!(
            (j2.dest.as_str(), j2.attempts, j2.loc),
            ("v2", 0, at(1, 48))
        );
        assert!(q.claim().unwrap().is_none(), "v1 is not due yet");
        let d = q.depth().unwrap();
        assert_eq!((d.running, d.retrying, d.unrouted), (1, 1, 1));
        q.end(&j2, JobEnd::Quarantined("held back: reason"))
            .unwrap();
        assert!(q.purge(now() + 1.0).unwrap().is_empty(), "v1 still open");
        assert!(!q.segment_unwanted(1).unwrap());
        // v1's retry comes due (as if its time had passed), runs and is delivered
        q.conn().execute("UPDATE jobs SET next_at = 0", []).unwrap();
        let j1 = q.claim().unwrap().unwrap();
        assert_eq!((j1.dest.as_str(), j1.attempts), ("v1", 1));
        q.end(&j1, JobEnd::Done).unwrap();
        // segment 2's object is not done: only segment 1 may go
        assert_eq!(q.purge(now() + 1.0).unwrap(), vec![1]);
        assert!(q.segment_unwanted(1).unwrap());
        assert!(!q.segment_unwanted(2).unwrap());
        q.forget_segment(1).unwrap();
        assert_eq!(
            q.unknown(&["a".into(), "b".into()]).unwrap(),
            vec!["a".to_string()]
        );
        assert_eq!(q.depth().unwrap().quarantined, 0, "its jobs went with it");
    }

    #[test]
    fn an_object_first_heard_of_when_routed_is_recorded_whole() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::open(&d.path().join("q.sqlite")).unwrap();
        let (a, b, c) = (
            obj("a", at(1, 48)),
            obj("b", at(1, 96)),
            obj("c", at(2, 48)),
        );
        let (v, vw) = (["v".to_string()], ["v".to_string(), "w".to_string()]);
        // all three in one transaction:
        q.record_routed(&[
            // delivered to its only destination: done at once, nothing left to run
            routed(&a, &v, Some(JobEnd::Done)),
            // no route: done at once too (the caller quarantined it)
            routed(&b, &[], None),
            // quarantined for the first destination, the second still to run
            routed(&c, &vw, Some(JobEnd::Quarantined("held back: reason"))),
        ])
        .unwrap();
        assert!(
            q.unknown(&["a".into(), "b".into(), "c".into()])
                .unwrap()
                .is_empty()
        );
        assert!(
            q.claim_new().unwrap().is_none(),
            "none of them waits to be routed"
        );
        let d = q.depth().unwrap();
        assert_eq!((d.pending, d.quarantined, d.unrouted), (1, 1, 0));
        let j = q.claim().unwrap().unwrap();
        assert_eq!(
            (j.object.as_str(), j.dest.as_str(), j.loc),
            ("c", "w", at(2, 48))
        );
        assert_eq!(q.purge(now() + 1.0).unwrap(), vec![1], "c is still open");
        q.end(&j, JobEnd::Done).unwrap();
        assert_eq!(q.purge(now() + 1.0).unwrap(), vec![2]);
    }

    #[test]
    fn running_jobs_and_routing_objects_of_a_killed_process_run_again() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("q.sqlite");
        {
            let q = Queue::open(&p).unwrap();
            q.add_object(&obj("a", at(3, 48))).unwrap();
            q.add_object(&obj("b", at(3, 96))).unwrap();
            let n = q.claim_new().unwrap().unwrap();
            let vw = ["v".to_string(), "w".to_string()];
            q.record_routed(&[routed(&n, &vw, None)]).unwrap();
            let j = q.claim().unwrap().unwrap();
            assert_eq!(j.dest, "v");
            assert_eq!(q.claim_new().unwrap().unwrap().id, "b");
            // dropped with a job running and an object routing: as if killed
        }
        let q = Queue::open(&p).unwrap();
        assert_eq!(q.claim_new().unwrap().unwrap().id, "b");
        let j = q.claim().unwrap().unwrap();
        assert_eq!((j.dest.as_str(), j.loc), ("v", at(3, 48)));
    }
}
