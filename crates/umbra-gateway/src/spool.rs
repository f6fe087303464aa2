//! The spool: received objects on disk, durable before they are acknowledged.
//!
//! ```text
//! SPOOL/log/SEQ.log          received objects, one record after another (SEQ: 16 hex digits)
//! SPOOL/quarantine/DEST/ID.dcm + ID.reason   objects DEST will not get, with the reason
//! SPOOL/keys/DEST.key        keys made on first start for destinations without key_file
//! SPOOL/queue.sqlite         the job queue (see queue.rs); it records where each object is
//! ```
//!
//! Received objects are appended to log segments, not written as one file each: a new file
//! needs its folder synced too before it can be acknowledged, and on the disk measured that made
//! receipt two to three times slower than appending to an open file (BENCHMARKS.md, "Gateway"). Each segment has one writer at a time (an
//! association or a STOW-RS request takes a segment from a pool and gives it back), so records
//! in a segment are written one after another and only the last can be torn.
//!
//! A record is a 56-byte header, then the object's bytes (a whole Part 10 file), then padding to
//! the next multiple of 4096 bytes, where the next record starts. An object that fits in memory
//! ([`KEEP_MAX`]) is received into a buffer with room for the header before it, and its whole
//! record goes to the disk with one write at commit, straight from that buffer (`O_DIRECT` on
//! Linux, where the file system allows it: no copy into the page cache and no writeback, about
//! half the CPU of a buffered write and its `fdatasync` on the disk measured; see BENCHMARKS.md).
//! A larger one is written through the page cache as it arrives, and its header after its bytes.
//! Either way the object is acknowledged only after one `fdatasync` of the segment has made the
//! record durable, and a record whose write was torn by a crash fails its object's CRC (checked
//! at every read, and before recovery queues a record):
//!
//! ```text
//! 0   magic "UMBRAOBJ"
//! 8   u32 format version (2; version 1 padded records to 8 bytes, and is still read)
//! 12  u32 CRC-32 of bytes 16..56
//! 16  16 bytes object id
//! 32  u64 length of the object
//! 40  u32 CRC-32 of the object
//! 44  u32 where the object came from (Origin): 1 DIMSE (its meta group, written by the
//!     gateway, names the caller in Source AE Title), 2 STOW-RS (no caller; the meta group is
//!     the client's own); 0 not recorded (records written before this field was)
//! 48  u64 the segment's number
//! ```
//!
//! A record names its segment, so bytes that do not belong to this segment's records (a file
//! copied or renamed by hand) are never read as one of them.
//!
//! At start, segments are read record by record (stopping at the first header that does not
//! check: a torn last write, never acknowledged). A record whose object the queue does not know
//! (received by a process killed before queueing it, or a queue transaction lost to a power cut)
//! is queued again once its object's CRC checks. Every read checks the CRC too, so a damaged
//! spool holds an object back instead of sending damaged bytes.
//!
//! A segment is deleted when every object in it has been purged (see `Queue::purge`), unless a
//! writer holds it; an idle one is taken out of the pool first.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A segment takes no new record once it is this long.
const SEGMENT_MAX: u64 = 64 << 20;
/// Objects up to this size are kept whole in memory while they are received, written with one
/// call at commit, and handed to the caller (the workers take them from memory instead of
/// reading them back); larger ones are written as they arrive, in chunks of this size.
pub const KEEP_MAX: usize = 2 << 20;
const STREAM_CHUNK: usize = 256 << 10;
const MAGIC: &[u8; 8] = b"UMBRAOBJ";
const VERSION: u32 = 2;
/// Records start at multiples of this (format version 2): the block size `O_DIRECT` needs, on
/// any disk.
const ALIGN: u64 = 4096;
/// Length of a record header.
pub const HEADER_LEN: u64 = 56;

/// Where a received object came from, as its record says (routing after a crash needs it:
/// the calling AE title a route may match on is in a DIMSE object's meta group, while a STOW-RS
/// object's meta group is its client's and names no caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Origin {
    /// Not recorded (a record from before the field existed).
    #[default]
    Unrecorded,
    /// A C-STORE: the meta group's Source AE Title is the calling AE title.
    Dimse,
    /// A STOW-RS request: no calling AE title.
    Stow,
}

impl Origin {
    fn code(self) -> u32 {
        match self {
            Origin::Unrecorded => 0,
            Origin::Dimse => 1,
            Origin::Stow => 2,
        }
    }

    fn from_code(c: u32) -> Origin {
        match c {
            1 => Origin::Dimse,
            2 => Origin::Stow,
            _ => Origin::Unrecorded,
        }
    }
}

/// Where an object's bytes are: `len` bytes from `offset` in log segment `segment`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Segment number.
    pub segment: u64,
    /// Offset of the object's first byte (its record header is just before it).
    pub offset: u64,
    /// Length of the object.
    pub len: u64,
}

/// Handle on the spool folder.
#[derive(Debug, Clone)]
pub struct Spool {
    root: PathBuf,
    segments: Arc<Mutex<Segments>>,
    /// Whether new segments take `O_DIRECT` writes where the file system allows (tests turn
    /// it off to test the other way).
    direct: bool,
    /// Free space (bytes) a received object may not take: room kept for the queue to record
    /// what is forwarded, so that a disk filled by received objects can still drain.
    reserve: Arc<std::sync::atomic::AtomicU64>,
    /// `SPOOL/lock`, locked (flock) while any handle lives: one process per spool.
    _lock: Arc<File>,
}

/// Segments that may still be written: free ones in `pool`, and those a writer holds.
#[derive(Debug, Default)]
struct Segments {
    pool: Vec<Segment>,
    live: HashSet<u64>,
    next: u64,
}

#[derive(Debug)]
struct Segment {
    seq: u64,
    file: File,
    /// The same file opened for `O_DIRECT` writes, where the file system allows them.
    direct: Option<File>,
    /// Where the next record starts.
    end: u64,
}

/// An object id: 32 hex digits, random (names files; says nothing about the object).
pub fn new_id() -> String {
    let mut b = [0u8; 16];
    // getrandom fails only without an OS random source; then fall back to time and counter,
    // which are unique within this spool.
    if getrandom::fill(&mut b).is_err() {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        b[..8].copy_from_slice(&t.to_be_bytes());
        b[8..].copy_from_slice(&N.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    }
    hex::encode(b)
}

/// Whether `s` is an id this spool made (guards paths built from ids read back).
pub fn is_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Spool {
    /// Opens (creating) the spool at `root`. Segments of an earlier process are kept for
    /// reading; new records go to new segments.
    pub fn open(root: &Path) -> io::Result<Spool> {
        for d in ["log", "quarantine", "keys"] {
            std::fs::create_dir_all(root.join(d))?;
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // identifying data lives here: owner only
            std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700))?;
        }
        let lock = lock_spool(&root.join("lock"))?;
        let legacy = root.join("objects");
        if legacy.is_dir() && std::fs::read_dir(&legacy)?.next().is_some() {
            return Err(io::Error::other(format!(
                "{} holds objects spooled one file each by an earlier version; let that \
                 version forward them, or move them aside and send them again",
                legacy.display()
            )));
        }
        let next = segment_numbers(&root.join("log"))?
            .last()
            .map_or(1, |n| n + 1);
        Ok(Spool {
            root: root.to_path_buf(),
            segments: Arc::new(Mutex::new(Segments {
                next,
                ..Segments::default()
            })),
            direct: true,
            reserve: Arc::default(),
            _lock: Arc::new(lock),
        })
    }

    /// The spool's folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Path of a log segment.
    pub fn segment_path(&self, seq: u64) -> PathBuf {
        self.root.join("log").join(format!("{seq:016x}.log"))
    }

    /// The quarantine folder of a destination.
    pub fn quarantine_dir(&self, dest: &str) -> PathBuf {
        self.root.join("quarantine").join(dest)
    }

    /// Path of the SQLite queue.
    pub fn queue_path(&self) -> PathBuf {
        self.root.join("queue.sqlite")
    }

    /// The key file made for a destination without `key_file`.
    pub fn key_path(&self, dest: &str) -> PathBuf {
        self.root.join("keys").join(format!("{dest}.key"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Segments> {
        self.segments.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts receiving a new object into a segment of its own until it is committed.
    pub fn receive(&self) -> io::Result<Incoming> {
        let pooled = self.lock().pool.pop();
        let segment = match pooled {
            Some(s) => s,
            None => self.new_segment()?,
        };
        // room for the largest object kept in memory, its header before it at a multiple of
        // ALIGN in memory, and the padding after it: the buffer never moves while it fills
        let mut buf: Vec<u8> = Vec::with_capacity(KEEP_MAX + 2 * ALIGN as usize);
        // (align_offset may answer "cannot": then the record goes through the page cache)
        let pad = Some(buf.as_ptr().align_offset(ALIGN as usize)).filter(|&n| n < ALIGN as usize);
        let lead = pad.unwrap_or(0) + HEADER_LEN as usize;
        buf.resize(lead, 0);
        Ok(Incoming {
            id: new_id(),
            start: segment.end,
            at: segment.end + HEADER_LEN,
            segment: Some(segment),
            buf,
            lead,
            streaming: false,
            crc: crc32fast::Hasher::new(),
            len: 0,
            origin: Origin::Unrecorded,
            spool: self.clone(),
        })
    }

    /// A new, empty segment; its name is made durable now, once for all its records.
    fn new_segment(&self) -> io::Result<Segment> {
        let seq = {
            let mut s = self.lock();
            let seq = s.next;
            s.next += 1;
            s.live.insert(seq);
            seq
        };
        let made = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(self.segment_path(seq))
            .and_then(|file| sync_dir(&self.root.join("log")).map(|()| file));
        match made {
            Ok(file) => Ok(Segment {
                seq,
                file,
                direct: self
                    .direct
                    .then(|| open_direct(&self.segment_path(seq)))
                    .flatten(),
                end: 0,
            }),
            Err(e) => {
                self.lock().live.remove(&seq);
                Err(e)
            }
        }
    }

    /// A writer is done with `segment`: back to the pool, or closed for good when full.
    fn give_back(&self, segment: Segment) {
        let mut s = self.lock();
        if segment.end < SEGMENT_MAX {
            s.pool.push(segment);
        } else {
            s.live.remove(&segment.seq);
        }
    }

    /// Segments no writer will add to any more, in order (every segment of an earlier
    /// process, and full ones).
    pub fn closed_segments(&self) -> io::Result<Vec<u64>> {
        let live = self.lock().live.clone();
        Ok(segment_numbers(&self.root.join("log"))?
            .into_iter()
            .filter(|n| !live.contains(n))
            .collect())
    }

    /// Every segment on disk, in order.
    pub fn all_segments(&self) -> io::Result<Vec<u64>> {
        segment_numbers(&self.root.join("log"))
    }

    /// Deletes a segment no writer holds (a closed one, or one waiting in the pool) when
    /// `still_empty` (asked while no writer can take the segment) says none of its objects is
    /// wanted any more. Returns whether it was deleted.
    pub fn delete_segment(
        &self,
        seq: u64,
        still_empty: impl FnOnce() -> io::Result<bool>,
    ) -> io::Result<bool> {
        let mut s = self.lock();
        let pooled = s.pool.iter().position(|x| x.seq == seq);
        if (s.live.contains(&seq) && pooled.is_none()) || !still_empty()? {
            return Ok(false);
        }
        if let Some(i) = pooled {
            s.pool.swap_remove(i);
            s.live.remove(&seq);
        }
        match std::fs::remove_file(self.segment_path(seq)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(true)
    }

    /// Every record of a closed segment whose header checks, in order: (id, location, where the
    /// object came from). Stops at the first header that does not (a torn last write). Objects
    /// are not checked here.
    pub fn records(&self, seq: u64) -> io::Result<Vec<(String, Location, Origin)>> {
        let f = File::open(self.segment_path(seq))?;
        let size = f.metadata()?.len();
        let mut out = Vec::new();
        let mut at = 0u64;
        let mut h = [0u8; HEADER_LEN as usize];
        while at + HEADER_LEN <= size {
            read_exact_at(&f, &mut h, at)?;
            let Some(Header {
                id,
                len,
                version,
                origin,
                ..
            }) = parse_header(&h, seq)
            else {
                break;
            };
            let offset = at + HEADER_LEN;
            if offset + len > size {
                break;
            }
            out.push((
                id,
                Location {
                    segment: seq,
                    offset,
                    len,
                },
                origin,
            ));
            at = record_end(version, offset + len);
        }
        Ok(out)
    }

    /// The object at `loc`, after checking its record (header, id and CRC).
    pub fn read(&self, id: &str, loc: &Location) -> io::Result<Vec<u8>> {
        let len = usize::try_from(loc.len).map_err(|_| io::Error::other("object too large"))?;
        let (mut f, crc) = self.open_record(id, loc)?;
        std::io::Seek::seek(&mut f, io::SeekFrom::Start(loc.offset))?;
        // read_to_end into reserved space: no zeroing of a buffer about to be overwritten
        let mut buf = Vec::with_capacity(len);
        f.take(loc.len).read_to_end(&mut buf)?;
        if buf.len() != len {
            return Err(damaged("the segment ends inside the object"));
        }
        if crc32fast::hash(&buf) != crc {
            return Err(damaged("the object's checksum does not match"));
        }
        Ok(buf)
    }

    /// The segment holding `loc`, once the record's header checks and names `id`; and the
    /// object's CRC from it.
    fn open_record(&self, id: &str, loc: &Location) -> io::Result<(File, u32)> {
        let start = loc
            .offset
            .checked_sub(HEADER_LEN)
            .ok_or_else(|| damaged("bad offset"))?;
        let f = File::open(self.segment_path(loc.segment))?;
        let mut h = [0u8; HEADER_LEN as usize];
        read_exact_at(&f, &mut h, start)?;
        let head = parse_header(&h, loc.segment)
            .ok_or_else(|| damaged("the record header does not check"))?;
        if head.id != id || head.len != loc.len {
            return Err(damaged("the record is not the queued object"));
        }
        Ok((f, head.crc))
    }

    /// Checks the record at `loc` (header, id and CRC) without keeping the object in memory.
    pub fn verify(&self, id: &str, loc: &Location) -> io::Result<()> {
        let (f, crc) = self.open_record(id, loc)?;
        let mut hasher = crc32fast::Hasher::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut at = loc.offset;
        let end = loc.offset + loc.len;
        while at < end {
            let n = buf.len().min((end - at) as usize);
            read_exact_at(&f, &mut buf[..n], at)?;
            hasher.update(&buf[..n]);
            at += n as u64;
        }
        if hasher.finalize() != crc {
            return Err(damaged("the object's checksum does not match"));
        }
        Ok(())
    }

    /// Free space on the spool's file system, in bytes.
    pub fn free_bytes(&self) -> io::Result<u64> {
        free_bytes(&self.root)
    }

    /// Keeps `bytes` of the disk free: a received object that would leave less is refused (as
    /// if the disk were full) before its bytes are written.
    pub fn set_reserve(&self, bytes: u64) {
        self.reserve
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// Fails (`StorageFull`) when writing `n` more bytes would leave less than the reserve free.
    fn room_for(&self, n: u64) -> io::Result<()> {
        let reserve = self.reserve.load(std::sync::atomic::Ordering::Relaxed);
        if reserve == 0 {
            return Ok(());
        }
        if self.free_bytes()? < reserve.saturating_add(n) {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "the spool's disk is full (room is kept for the queue)",
            ));
        }
        Ok(())
    }

    /// Writes a received object into a destination's quarantine with its reason. The reason
    /// names no identifier (the engine's reasons never do). An object that cannot be read from
    /// the spool any more is quarantined by its reason alone.
    pub fn quarantine(&self, dest: &str, id: &str, loc: &Location, reason: &str) -> io::Result<()> {
        let dir = self.quarantine_dir(dest);
        std::fs::create_dir_all(&dir)?;
        let to = dir.join(format!("{id}.dcm"));
        let mut reason = reason.to_string();
        if !to.exists() {
            // checked, then copied in place: a large object never enters memory whole
            match self.verify(id, loc) {
                Ok(()) => {
                    let (mut f, _) = self.open_record(id, loc)?;
                    std::io::Seek::seek(&mut f, io::SeekFrom::Start(loc.offset))?;
                    copy_durably(&mut f.take(loc.len), &to)?;
                }
                Err(e) => reason.push_str(&format!(" (the spooled object cannot be read: {e})")),
            }
        }
        write_durably(
            &dir.join(format!("{id}.reason")),
            format!("{reason}\n").as_bytes(),
        )?;
        sync_dir(&dir)
    }
}

/// Objects just received, kept in memory (up to a budget) so that the worker that takes each
/// one first need not read it back from the log. A miss is never an error: the log has it.
#[derive(Debug)]
pub struct Recent {
    budget: usize,
    inner: Mutex<(std::collections::HashMap<String, Kept>, usize)>,
}

impl Recent {
    /// Keeps at most `budget` bytes.
    pub fn new(budget: usize) -> Recent {
        Recent {
            budget,
            inner: Mutex::new(Default::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (std::collections::HashMap<String, Kept>, usize)> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `bytes` for `id`, unless that would pass the budget (then the newest objects are
    /// the ones left in the log: the oldest are taken first).
    pub fn put(&self, id: &str, kept: Kept) {
        let mut g = self.lock();
        let len = kept.bytes.len();
        if g.1 + len <= self.budget {
            g.1 += len;
            if let Some(old) = g.0.insert(id.to_string(), kept) {
                g.1 -= old.bytes.len();
            }
        }
    }

    /// Takes the bytes of `id`, if kept.
    pub fn take(&self, id: &str) -> Option<Kept> {
        let mut g = self.lock();
        let k = g.0.remove(id)?;
        g.1 -= k.bytes.len();
        Some(k)
    }

    /// Bytes kept now.
    pub fn bytes(&self) -> usize {
        self.lock().1
    }
}

/// Opens and locks the spool's lock file; another process holding it is an error at once.
fn lock_spool(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor this function owns; no memory is passed.
        #[allow(unsafe_code)]
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r != 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::WouldBlock {
                return Err(io::Error::other(
                    "the spool is in use by another running gateway (each spool has one)",
                ));
            }
            return Err(e);
        }
    }
    Ok(f)
}

fn damaged(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("spool damaged: {why}"))
}

/// Where the record after one ending at `end` starts, by the format version of the one ending.
fn record_end(version: u32, end: u64) -> u64 {
    let align = if version == 1 { 8 } else { ALIGN };
    end.div_ceil(align) * align
}

/// `path` opened for `O_DIRECT` writes, if the file system takes them.
#[cfg(target_os = "linux")]
fn open_direct(path: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .ok()
}

#[cfg(not(target_os = "linux"))]
fn open_direct(_path: &Path) -> Option<File> {
    None
}

/// Segment numbers in `dir`, ascending.
fn segment_numbers(dir: &Path) -> io::Result<Vec<u64>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let name = e?.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name
            .strip_suffix(".log")
            .filter(|n| n.len() == 16)
            .and_then(|n| u64::from_str_radix(n, 16).ok())
        {
            v.push(n);
        }
    }
    v.sort_unstable();
    Ok(v)
}

fn header(
    seq: u64,
    id: &[u8; 16],
    len: u64,
    crc: u32,
    origin: Origin,
) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[16..32].copy_from_slice(id);
    h[32..40].copy_from_slice(&len.to_le_bytes());
    h[40..44].copy_from_slice(&crc.to_le_bytes());
    h[44..48].copy_from_slice(&origin.code().to_le_bytes());
    h[48..56].copy_from_slice(&seq.to_le_bytes());
    let hc = crc32fast::hash(&h[16..]);
    h[12..16].copy_from_slice(&hc.to_le_bytes());
    h
}

/// A record header that checks.
struct Header {
    id: String,
    len: u64,
    /// CRC-32 of the object.
    crc: u32,
    version: u32,
    origin: Origin,
}

/// The header `h`, if it checks and belongs to segment `seq`.
fn parse_header(h: &[u8], seq: u64) -> Option<Header> {
    if h.len() != HEADER_LEN as usize || &h[..8] != MAGIC {
        return None;
    }
    let u32_at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    let u64_at = |i: usize| u64::from_le_bytes(h[i..i + 8].try_into().unwrap_or_default());
    let version = u32_at(8);
    if !(1..=VERSION).contains(&version)
        || u32_at(12) != crc32fast::hash(&h[16..])
        || u64_at(48) != seq
    {
        return None;
    }
    Some(Header {
        id: hex::encode(&h[16..32]),
        len: u64_at(32),
        crc: u32_at(40),
        version,
        origin: Origin::from_code(u32_at(44)),
    })
}

/// An object being received: its bytes go to a segment this writer holds; `commit` makes it
/// durable.
pub struct Incoming {
    id: String,
    /// Where its record starts.
    start: u64,
    /// Where the next bytes go.
    at: u64,
    segment: Option<Segment>,
    /// Bytes not yet written: until the object grows past [`KEEP_MAX`], room for its record's
    /// header (starting at a multiple of [`ALIGN`] in memory) and then the object so far;
    /// after, the bytes not yet written.
    buf: Vec<u8>,
    /// Where the object starts in `buf` (0 once streaming).
    lead: usize,
    /// Past [`KEEP_MAX`]: written as it arrives, not kept.
    streaming: bool,
    crc: crc32fast::Hasher,
    len: u64,
    origin: Origin,
    spool: Spool,
}

impl Incoming {
    /// The id the object will have.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Records where the object came from in its record (read back by recovery).
    pub fn set_origin(&mut self, origin: Origin) {
        self.origin = origin;
    }

    /// While streaming: writes what is gathered in `buf` and empties it.
    fn flush_buf(&mut self) -> io::Result<()> {
        let Some(seg) = self.segment.as_ref() else {
            return Err(io::Error::other("object already committed"));
        };
        let pending = &self.buf[self.lead..];
        if pending.is_empty() {
            return Ok(());
        }
        self.spool.room_for(pending.len() as u64)?;
        write_all_at(&seg.file, pending, self.at)?;
        self.at += pending.len() as u64;
        self.buf.clear();
        self.lead = 0;
        Ok(())
    }

    /// Writes a kept object's whole record (header, bytes, zeros up to the next record's
    /// start) with one write: straight to the disk when the segment and the buffer allow it,
    /// otherwise through the page cache.
    fn write_record(&mut self, seg: &mut Segment, head: &[u8]) -> io::Result<()> {
        let from = self.lead - HEADER_LEN as usize;
        self.buf[from..self.lead].copy_from_slice(head);
        let end = from + (HEADER_LEN + self.len).div_ceil(ALIGN) as usize * ALIGN as usize;
        self.buf.resize(end, 0);
        let record = &self.buf[from..end];
        if let Some(direct) = &seg.direct
            && record.as_ptr().align_offset(ALIGN as usize) == 0
        {
            match write_all_at(direct, record, self.start) {
                // the file system refuses this alignment after all: the page cache from now on
                Err(e) if e.kind() == io::ErrorKind::InvalidInput => seg.direct = None,
                done => return done,
            }
        }
        write_all_at(&seg.file, record, self.start)
    }

    /// Makes the record durable (a kept object's whole record in one write; a streamed one's
    /// last bytes, then its header) with one `fdatasync`, then runs `record` (which hands the
    /// object on, to the workers or the queue) with the object's bytes when they were kept in
    /// memory (at most [`KEEP_MAX`]); the segment goes back to the pool only after that, so it
    /// is never deleted with a record about to be known. Only after this returns may the sender
    /// be told the object is stored. If `record` fails the record is withdrawn (its header
    /// erased) and the error returned.
    pub fn commit(
        mut self,
        record: impl FnOnce(&str, Location, Option<Kept>) -> io::Result<()>,
    ) -> io::Result<String> {
        if self.streaming {
            self.flush_buf()?;
        }
        let mut id = [0u8; 16];
        hex::decode_to_slice(&self.id, &mut id).map_err(io::Error::other)?;
        let Some(mut seg) = self.segment.take() else {
            return Err(io::Error::other("object already committed"));
        };
        let crc = std::mem::take(&mut self.crc).finalize();
        let loc = Location {
            segment: seg.seq,
            offset: self.start + HEADER_LEN,
            len: self.len,
        };
        let head = header(seg.seq, &id, self.len, crc, self.origin);
        let written = if self.streaming {
            write_all_at(&seg.file, &head, self.start)
        } else {
            if let Err(e) = self.spool.room_for(HEADER_LEN + self.len) {
                // nothing written: the segment is as it was
                self.spool.give_back(seg);
                return Err(e);
            }
            self.write_record(&mut seg, &head)
        };
        if let Err(e) = written.and_then(|()| seg.file.sync_data()) {
            // the segment's end is unknown now: it takes no more records
            self.spool.lock().live.remove(&seg.seq);
            return Err(e);
        }
        let kept = (!self.streaming).then(|| {
            let mut bytes = std::mem::take(&mut self.buf);
            bytes.truncate(self.lead + self.len as usize);
            // the room for the largest object goes back (glibc shrinks in place: no copy)
            bytes.shrink_to_fit();
            Kept {
                bytes,
                start: self.lead,
            }
        });
        if let Err(e) = record(&self.id, loc, kept) {
            let erased = write_all_at(&seg.file, &[0u8; HEADER_LEN as usize], self.start)
                .and_then(|()| seg.file.sync_data());
            if erased.is_ok() {
                self.spool.give_back(seg);
            } else {
                self.spool.lock().live.remove(&seg.seq);
            }
            return Err(e);
        }
        seg.end = record_end(VERSION, loc.offset + loc.len);
        self.spool.give_back(seg);
        Ok(std::mem::take(&mut self.id))
    }
}

/// An object's bytes as received, kept in memory: `bytes[start..]` (before them is the room its
/// record's header was written from).
#[derive(Debug)]
pub struct Kept {
    /// The object's bytes, from `start`.
    pub bytes: Vec<u8>,
    /// Where the object starts in `bytes`.
    pub start: usize,
}

impl Kept {
    /// Bytes kept in memory outside a record, as a whole object (`start` 0).
    pub fn whole(bytes: Vec<u8>) -> Kept {
        Kept { bytes, start: 0 }
    }

    /// The object.
    pub fn object(&self) -> &[u8] {
        &self.bytes[self.start..]
    }
}

impl Incoming {
    /// Whether `n` more bytes fit in memory with the object so far (it is kept whole, and
    /// stays within [`KEEP_MAX`]).
    pub fn has_room(&self, n: usize) -> bool {
        self.segment.is_some() && !self.streaming && self.buf.len() - self.lead + n <= KEEP_MAX
    }

    /// Reads exactly `n` more bytes of the object from `from` (the network) straight into its
    /// buffer, where [`Self::has_room`] says they fit (else as [`Write`] takes them). On an
    /// error nothing of them counts.
    pub fn read_from(&mut self, from: &mut dyn Read, n: usize) -> io::Result<()> {
        if !self.has_room(n) {
            let mut buf = vec![0; n];
            from.read_exact(&mut buf)?;
            return self.write_all(&buf);
        }
        let old = self.buf.len();
        // into the room reserved at `receive`: no reallocation, and no zeroing first
        let read = from.take(n as u64).read_to_end(&mut self.buf);
        if read.as_ref().map_or(true, |&got| got != n) {
            self.buf.truncate(old);
            return Err(read
                .err()
                .unwrap_or_else(|| io::ErrorKind::UnexpectedEof.into()));
        }
        self.crc.update(&self.buf[old..]);
        self.len += n as u64;
        Ok(())
    }
}

impl Write for Incoming {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.segment.is_none() {
            return Err(io::Error::other("object already committed"));
        }
        self.crc.update(data);
        self.len += data.len() as u64;
        if !self.streaming && self.buf.len() - self.lead + data.len() > KEEP_MAX {
            // too large to keep: written as it arrives from now on
            self.streaming = true;
            self.flush_buf()?;
        }
        if self.streaming && self.buf.len() + data.len() > STREAM_CHUNK {
            self.flush_buf()?;
        }
        if self.streaming && data.len() >= STREAM_CHUNK {
            self.spool.room_for(data.len() as u64)?;
            let seg = self.segment.as_ref().expect("checked above");
            write_all_at(&seg.file, data, self.at)?;
            self.at += data.len() as u64;
        } else {
            self.buf.extend_from_slice(data);
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Incoming {
    /// Not committed: the segment goes back as it was (the partial bytes past its end are
    /// overwritten by the next record; the sender was never told the object was stored).
    fn drop(&mut self) {
        if let Some(seg) = self.segment.take() {
            self.spool.give_back(seg);
        }
    }
}

#[cfg(unix)]
fn write_all_at(f: &File, buf: &[u8], at: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(f, buf, at)
}

#[cfg(unix)]
fn read_exact_at(f: &File, buf: &mut [u8], at: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(f, buf, at)
}

#[cfg(not(unix))]
fn write_all_at(mut f: &File, buf: &[u8], at: u64) -> io::Result<()> {
    use std::io::Seek;
    f.seek(io::SeekFrom::Start(at))?;
    f.write_all(buf)
}

#[cfg(not(unix))]
fn read_exact_at(mut f: &File, buf: &mut [u8], at: u64) -> io::Result<()> {
    use std::io::Seek;
    f.seek(io::SeekFrom::Start(at))?;
    f.read_exact(buf)
}

/// Writes `bytes` to `path` through a temporary file, fsync and rename (the folder is synced
/// by the caller when it matters).
pub fn write_durably(path: &Path, mut bytes: &[u8]) -> io::Result<()> {
    copy_durably(&mut bytes, path)
}

/// [`write_durably`] for what `from` yields, to its end.
fn copy_durably(from: &mut impl Read, path: &Path) -> io::Result<()> {
    let tmp = path.with_extension("tmp-write");
    {
        let mut f = File::create(&tmp)?;
        io::copy(from, &mut f)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// fsync of a folder, so renames and new entries in it survive a power loss.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(unix)]
fn free_bytes(path: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::other("path has a NUL byte"))?;
    let mut s = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid NUL-terminated path and `s` a valid out-pointer for statvfs.
    #[allow(unsafe_code)]
    let r = unsafe { libc::statvfs(c.as_ptr(), s.as_mut_ptr()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled `s`.
    #[allow(unsafe_code)]
    let s = unsafe { s.assume_init() };
    // (the field types differ between platforms)
    #[allow(clippy::unnecessary_cast)]
    Ok((s.f_bavail as u64).saturating_mul(s.f_frsize as u64))
}

#[cfg(not(unix))]
fn free_bytes(_path: &Path) -> io::Result<u64> {
    Ok(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: Origin = Origin::Unrecorded;

    fn put(s: &Spool, bytes: &[u8]) -> (String, Location) {
        let mut i = s.receive().unwrap();
        // as the network delivers it: in pieces
        for piece in bytes.chunks(16 << 10) {
            i.write_all(piece).unwrap();
        }
        let (mut loc, mut kept) = (None, None);
        let id = i
            .commit(|_, l, k| {
                (loc, kept) = (Some(l), k);
                Ok(())
            })
            .unwrap();
        // small objects are handed over whole, large ones were written as they came
        if bytes.len() <= KEEP_MAX {
            assert_eq!(kept.as_ref().map(Kept::object), Some(bytes));
        } else {
            assert!(kept.is_none());
        }
        let loc = loc.unwrap();
        assert_eq!(
            (loc.offset - HEADER_LEN) % ALIGN,
            0,
            "records start aligned"
        );
        (id, loc)
    }

    /// The first test's steps, on a spool whose segments take `O_DIRECT` writes or not.
    fn objects_read_back(direct: bool) {
        let d = tempfile::tempdir().unwrap();
        let mut s = Spool::open(d.path()).unwrap();
        s.direct = direct;
        // past KEEP_MAX, so streamed in chunks; then the largest kept whole; then odd sizes
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let sizes = [
            KEEP_MAX,
            1,
            4096 - HEADER_LEN as usize,
            4097,
            524_288 + 1234,
        ];
        let mut put_all = vec![put(&s, &big)];
        for n in sizes {
            put_all.push(put(&s, &big[..n]));
        }
        let used_direct = s.lock().pool[0].direct.is_some();
        if direct {
            // where the file system takes O_DIRECT (ext4, xfs, tmpfs since Linux 6.6)
            assert_eq!(
                used_direct,
                open_direct(&s.segment_path(1)).is_some(),
                "O_DIRECT where it can be had"
            );
        } else {
            assert!(!used_direct);
        }
        drop(s);
        let s = Spool::open(d.path()).unwrap();
        let recs = s.records(1).unwrap();
        assert_eq!(recs.len(), 1 + sizes.len());
        for (i, ((id, loc), rec)) in put_all.iter().zip(&recs).enumerate() {
            assert_eq!((id, loc), (&rec.0, &rec.1));
            let want = if i == 0 {
                &big[..]
            } else {
                &big[..sizes[i - 1]]
            };
            assert_eq!(s.read(id, loc).unwrap(), want, "object {i}");
        }
    }

    #[test]
    fn objects_read_back_whether_written_straight_to_the_disk_or_through_the_page_cache() {
        objects_read_back(true);
        objects_read_back(false);
    }

    #[test]
    fn records_of_format_version_1_are_still_read() {
        // version 1: records padded to 8 bytes, not 4096 (as the spool wrote before)
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("log")).unwrap();
        let (ids, objects) = ([[1u8; 16], [2u8; 16]], [&b"first, 11 b"[..], b"second"]);
        let mut seg = Vec::new();
        for (id, obj) in ids.iter().zip(objects) {
            let mut h = header(
                5,
                id,
                obj.len() as u64,
                crc32fast::hash(obj),
                Origin::Unrecorded,
            );
            h[8..12].copy_from_slice(&1u32.to_le_bytes());
            seg.extend_from_slice(&h);
            seg.extend_from_slice(obj);
            seg.resize(seg.len().div_ceil(8) * 8, 0);
        }
        std::fs::write(d.path().join("log/0000000000000005.log"), &seg).unwrap();
        let s = Spool::open(d.path()).unwrap();
        let recs = s.records(5).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(
            recs[1].1.offset,
            72 + HEADER_LEN,
            "the second right after the first"
        );
        for ((id, loc, _), obj) in recs.iter().zip(objects) {
            assert_eq!(s.read(id, loc).unwrap(), obj);
        }
        // a version this build does not know is not read
        let mut future = seg.clone();
        future[8..12].copy_from_slice(&(VERSION + 1).to_le_bytes());
        std::fs::write(d.path().join("log/0000000000000005.log"), &future).unwrap();
        assert!(s.records(5).unwrap().is_empty());
        // new records go to a new segment, in the current version
        let (_, l) = put(&s, b"new");
        assert_eq!(l.segment, 6);
    }

    #[test]
    fn committed_objects_read_back_and_a_broken_off_one_leaves_no_record() {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::open(d.path()).unwrap();
        // past KEEP_MAX, so streamed in chunks
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let (a, la) = put(&s, b"abc");
        let mut broken = s.receive().unwrap();
        broken.write_all(&big).unwrap();
        drop(broken);
        let (b, lb) = put(&s, &big);
        let (c, lc) = put(&s, b"");
        assert_eq!(s.read(&a, &la).unwrap(), b"abc");
        assert_eq!(s.read(&b, &lb).unwrap(), big);
        assert_eq!(s.read(&c, &lc).unwrap(), b"");
        assert!(s.read(&a, &lb).is_err(), "another object's location");
        // one writer at a time: all three in the same segment, in order
        assert_eq!((la.segment, lb.segment, lc.segment), (1, 1, 1));
        // one process per spool
        let e = Spool::open(d.path()).unwrap_err().to_string();
        assert!(e.contains("in use"), "{e}");
        // the next process reads them back and writes to a new segment
        drop(s);
        let s = Spool::open(d.path()).unwrap();
        assert_eq!(s.closed_segments().unwrap(), vec![1]);
        let recs = s.records(1).unwrap();
        assert_eq!(recs, vec![(a, la, U), (b, lb, U), (c.clone(), lc, U)]);
        let (_, ld) = put(&s, b"next");
        assert_eq!(ld.segment, 2);
        assert_eq!(s.closed_segments().unwrap(), vec![1]);
        let writing = s.receive().unwrap();
        assert!(
            !s.delete_segment(2, || Ok(true)).unwrap(),
            "a segment being written stays"
        );
        drop(writing);
        assert!(!s.delete_segment(2, || Ok(false)).unwrap());
        assert!(
            s.delete_segment(2, || Ok(true)).unwrap(),
            "an idle one in the pool goes"
        );
        let (_, le) = put(&s, b"after");
        assert_eq!(le.segment, 3, "a new segment, not the deleted one");
        assert!(!s.delete_segment(1, || Ok(false)).unwrap());
        assert!(s.delete_segment(1, || Ok(true)).unwrap());
        assert!(s.read(&c, &lc).is_err());
    }

    #[test]
    fn a_record_is_read_only_in_its_own_segment() {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::open(d.path()).unwrap();
        let (a, la) = put(&s, b"an object");
        drop(s);
        // the same bytes under another segment's name are not its records
        std::fs::copy(
            d.path().join("log/0000000000000001.log"),
            d.path().join("log/0000000000000007.log"),
        )
        .unwrap();
        let s = Spool::open(d.path()).unwrap();
        assert_eq!(s.records(1).unwrap(), vec![(a.clone(), la, U)]);
        assert!(s.records(7).unwrap().is_empty());
        let moved = Location { segment: 7, ..la };
        assert_eq!(
            s.read(&a, &moved).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }

    #[test]
    fn a_torn_or_damaged_record_is_never_read_as_an_object() {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::open(d.path()).unwrap();
        let (a, la) = put(&s, b"first object");
        let (b, lb) = put(&s, &[9u8; 5000]);
        let path = s.segment_path(1);
        drop(s);
        // a bit flipped in b's bytes: its header checks, its object does not
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[lb.offset as usize + 100] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let s = Spool::open(d.path()).unwrap();
        assert_eq!(s.records(1).unwrap().len(), 2);
        assert!(s.verify(&a, &la).is_ok());
        assert!(s.verify(&b, &lb).is_err());
        assert_eq!(
            s.read(&b, &lb).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        // cut inside b (a write torn by a crash): only a is left
        std::fs::write(&path, &bytes[..lb.offset as usize + 10]).unwrap();
        assert_eq!(s.records(1).unwrap(), vec![(a.clone(), la, U)]);
        // a header cut short: nothing after a
        std::fs::write(&path, &bytes[..lb.offset as usize - 20]).unwrap();
        assert_eq!(s.records(1).unwrap(), vec![(a, la, U)]);
    }

    #[test]
    fn a_record_the_queue_refuses_is_erased() {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::open(d.path()).unwrap();
        let mut i = s.receive().unwrap();
        i.write_all(b"refused").unwrap();
        assert!(i.commit(|_, _, _| Err(io::Error::other("queue"))).is_err());
        let (a, la) = put(&s, b"kept");
        assert_eq!(
            la.offset, HEADER_LEN,
            "the refused record's place is reused"
        );
        drop(s);
        let s = Spool::open(d.path()).unwrap();
        assert_eq!(s.records(1).unwrap(), vec![(a, la, U)]);
        assert!(s.free_bytes().unwrap() > 0);
    }

    /// An object that would eat into the reserve is refused before any of it is written (kept
    /// in memory or streamed), and the segment takes the next object where it would have.
    #[test]
    fn an_object_that_would_eat_into_the_reserve_is_refused_and_nothing_written() {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::open(d.path()).unwrap();
        let free = s.free_bytes().unwrap();
        // more than is free: every object is refused
        s.set_reserve(free + (1 << 30));
        for len in [1000, KEEP_MAX + 3 * STREAM_CHUNK] {
            let mut i = s.receive().unwrap();
            let wrote = i.write_all(&vec![7u8; len]);
            let e = wrote
                .and_then(|()| i.commit(|_, _, _| Ok(())).map(|_| ()))
                .unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::StorageFull, "{len}: {e}");
        }
        assert!(s.records(1).unwrap().is_empty(), "nothing recorded");
        s.set_reserve(0);
        let (_, loc) = put(&s, b"after");
        assert_eq!(
            (loc.segment, loc.offset),
            (1, HEADER_LEN),
            "the first record of the same segment"
        );
    }

    #[test]
    fn recent_objects_stay_within_their_budget() {
        let r = Recent::new(10);
        r.put("a", Kept::whole(vec![1; 6]));
        r.put("b", Kept::whole(vec![2; 6])); // would pass the budget: left in the log
        assert_eq!(r.bytes(), 6);
        assert!(r.take("b").is_none());
        assert_eq!(r.take("a").map(|k| k.bytes), Some(vec![1; 6]));
        assert!(r.take("a").is_none());
        r.put("b", Kept::whole(vec![2; 10]));
        assert_eq!(r.bytes(), 10);
    }

    #[test]
    fn objects_of_an_earlier_version_stop_the_start() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("objects")).unwrap();
        std::fs::write(d.path().join("objects/x.dcm"), b"x").unwrap();
        let e = Spool::open(d.path()).unwrap_err().to_string();
        assert!(e.contains("earlier version"), "{e}");
    }
}
