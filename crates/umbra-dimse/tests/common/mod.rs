//! Shared pieces of the integration tests: free ports, peers on this machine, a handler that
//! writes Part 10 files, corpus selection.
#![allow(dead_code)]

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use umbra_dimse::{
    AssociationInfo, Listener, Part10Meta, Scp, ScpConfig, ShutdownHandle, Status, StoreHandler,
    StoreRequest, StoreSink, parse_part10_meta, part10_header, sop::is_storage_sop_class,
};

/// A port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// A dcmtk tool from the Debian package `dcmtk` (found in /usr/bin: pynetdicom installs
/// programs of the same names that shadow dcmtk's on some PATHs). `None` after printing why the
/// test is skipped.
pub fn dcmtk(tool: &str) -> Option<PathBuf> {
    for dir in ["/usr/bin", "/usr/local/bin"] {
        let p = Path::new(dir).join(tool);
        if p.is_file() {
            return Some(p);
        }
    }
    eprintln!("SKIPPED: dcmtk's {tool} not found (CI needs the Debian package `dcmtk`)");
    None
}

/// `python3` if it can import pynetdicom and pydicom; `None` after printing why the test is
/// skipped.
pub fn pynetdicom() -> Option<PathBuf> {
    let ok = Command::new("python3")
        .args(["-c", "import pynetdicom, pydicom"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Some(PathBuf::from("python3"))
    } else {
        eprintln!(
            "SKIPPED: python3 with pynetdicom and pydicom not found (CI needs PyPI `pynetdicom` and `pydicom`)"
        );
        None
    }
}

/// Waits until something listens on `port`.
pub fn wait_listening(port: u16) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "nothing listens on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process killed on drop.
pub struct Peer(pub Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One object received by [`DirHandler`].
#[derive(Debug, Clone)]
pub struct Received {
    pub req: StoreRequest,
    pub calling_ae: String,
    pub path: PathBuf,
    /// bytes of the data set
    pub len: u64,
    /// largest single write the SCP made into the sink
    pub max_write: usize,
}

/// Writes each object as a Part 10 file (meta group from [`part10_header`]) under `dir`.
pub struct DirHandler {
    pub dir: PathBuf,
    pub received: Arc<Mutex<Vec<Received>>>,
    /// Refuse every object with this status (instead of storing it).
    pub refuse: Option<Status>,
    /// What the SCP said it refused ([`StoreHandler::refused`]), in order.
    pub refused: Arc<Mutex<Vec<String>>>,
    next: AtomicU32,
}

impl DirHandler {
    pub fn new(dir: &Path) -> Self {
        DirHandler {
            dir: dir.to_path_buf(),
            received: Arc::default(),
            refuse: None,
            refused: Arc::default(),
            next: AtomicU32::new(0),
        }
    }
}

struct FileSink {
    file: BufWriter<File>,
    record: Received,
    out: Arc<Mutex<Vec<Received>>>,
}

impl Write for FileSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.record.max_write = self.record.max_write.max(buf.len());
        self.record.len += buf.len() as u64;
        self.file.write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl StoreSink for FileSink {
    fn commit(mut self: Box<Self>) -> Status {
        let durable = self
            .file
            .flush()
            .and_then(|()| self.file.get_ref().sync_all());
        match durable {
            Ok(()) => {
                self.out.lock().unwrap().push(self.record.clone());
                Status::SUCCESS
            }
            Err(_) => Status::OUT_OF_RESOURCES,
        }
    }
    fn abort(self: Box<Self>) {
        let _ = std::fs::remove_file(&self.record.path);
    }
}

impl StoreHandler for DirHandler {
    fn refused(&self, why: &str) {
        self.refused.lock().unwrap().push(why.to_string());
    }

    fn begin(
        &self,
        assoc: &AssociationInfo,
        req: &StoreRequest,
    ) -> Result<Box<dyn StoreSink>, Status> {
        if let Some(s) = self.refuse {
            return Err(s);
        }
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let path = self.dir.join(format!("{n:06}.dcm"));
        let mut file = BufWriter::with_capacity(
            1 << 20,
            File::create(&path).map_err(|_| Status::OUT_OF_RESOURCES)?,
        );
        file.write_all(&part10_header(
            &req.sop_class_uid,
            &req.sop_instance_uid,
            &req.transfer_syntax_uid,
            &assoc.calling_ae,
        ))
        .map_err(|_| Status::OUT_OF_RESOURCES)?;
        Ok(Box::new(FileSink {
            file,
            record: Received {
                req: req.clone(),
                calling_ae: assoc.calling_ae.clone(),
                path,
                len: 0,
                max_write: 0,
            },
            out: self.received.clone(),
        }))
    }
}

/// A running listener of ours on 127.0.0.1.
pub struct OurScp {
    pub addr: SocketAddr,
    pub shutdown: ShutdownHandle,
    pub thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl OurScp {
    pub fn start(config: ScpConfig, handler: impl StoreHandler + 'static, max: usize) -> Self {
        let listener = Listener::bind("127.0.0.1:0", Scp::new(config, handler), max).expect("bind");
        let addr = listener.local_addr().unwrap();
        let (shutdown, thread) = listener.spawn().unwrap();
        OurScp {
            addr,
            shutdown,
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn stop(mut self) {
        self.shutdown.shutdown();
        if let Some(t) = self.thread.take() {
            t.join().unwrap().unwrap();
        }
    }
}

impl Drop for OurScp {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.shutdown.shutdown();
        }
    }
}

/// The public corpus folder.
pub fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/public")
}

/// Part 10 files of storage SOP classes in the corpus, with their meta, smaller than
/// `max_bytes`.
pub fn storage_files(max_bytes: u64) -> Vec<(PathBuf, Part10Meta)> {
    let mut out = Vec::new();
    let mut stack = vec![corpus()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if entry.metadata().map(|m| m.len()).unwrap_or(u64::MAX) > max_bytes {
                continue;
            }
            if let Ok(meta) = read_meta(&p)
                && is_storage_sop_class(&meta.sop_class_uid)
            {
                out.push((p, meta));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

pub fn read_meta(path: &Path) -> Result<Part10Meta, umbra_dimse::Error> {
    let mut prefix = Vec::new();
    File::open(path)?.take(64 * 1024).read_to_end(&mut prefix)?;
    parse_part10_meta(&prefix)
}

/// The data set bytes of a Part 10 file (after its meta group).
pub fn data_set(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    let meta = parse_part10_meta(&bytes).unwrap();
    bytes[meta.data_set_offset as usize..].to_vec()
}

/// A synthetic multi-frame Part 10 file (Multi-frame Grayscale Word SC, explicit VR little
/// endian) of `frames` 512×512 16-bit frames, pixel values from a simple pattern.
pub fn write_multiframe(path: &Path, instance: &str, frames: u32) {
    let class = "1.2.840.10008.5.1.4.1.1.7.3";
    let mut f = BufWriter::new(File::create(path).unwrap());
    f.write_all(&part10_header(
        class,
        instance,
        "1.2.840.10008.1.2.1",
        "GEN",
    ))
    .unwrap();
    let mut ds = Vec::new();
    let text = |ds: &mut Vec<u8>, g: u16, e: u16, vr: &[u8; 2], v: &str, pad: u8| {
        let mut v = v.as_bytes().to_vec();
        if v.len() % 2 == 1 {
            v.push(pad);
        }
        ds.extend_from_slice(&g.to_le_bytes());
        ds.extend_from_slice(&e.to_le_bytes());
        ds.extend_from_slice(vr);
        ds.extend_from_slice(&(v.len() as u16).to_le_bytes());
        ds.extend_from_slice(&v);
    };
    let us = |ds: &mut Vec<u8>, g: u16, e: u16, v: u16| {
        ds.extend_from_slice(&g.to_le_bytes());
        ds.extend_from_slice(&e.to_le_bytes());
        ds.extend_from_slice(b"US");
        ds.extend_from_slice(&2u16.to_le_bytes());
        ds.extend_from_slice(&v.to_le_bytes());
    };
    text(&mut ds, 0x0008, 0x0016, b"UI", class, 0);
    text(&mut ds, 0x0008, 0x0018, b"UI", instance, 0);
    text(&mut ds, 0x0008, 0x0060, b"CS", "OT", b' ');
    text(&mut ds, 0x0010, 0x0010, b"PN", "SYNTHETIC^LARGE", b' ');
    us(&mut ds, 0x0028, 0x0002, 1);
    text(&mut ds, 0x0028, 0x0004, b"CS", "MONOCHROME2", b' ');
    text(&mut ds, 0x0028, 0x0008, b"IS", &frames.to_string(), b' ');
    us(&mut ds, 0x0028, 0x0010, 512);
    us(&mut ds, 0x0028, 0x0011, 512);
    us(&mut ds, 0x0028, 0x0100, 16);
    us(&mut ds, 0x0028, 0x0101, 16);
    us(&mut ds, 0x0028, 0x0102, 15);
    us(&mut ds, 0x0028, 0x0103, 0);
    let pixel_len = 512u32 * 512 * 2 * frames;
    ds.extend_from_slice(&[0xE0, 0x7F, 0x10, 0x00, b'O', b'W', 0, 0]);
    ds.extend_from_slice(&pixel_len.to_le_bytes());
    f.write_all(&ds).unwrap();
    let mut frame = vec![0u8; 512 * 512 * 2];
    for n in 0..frames {
        for (i, px) in frame.chunks_exact_mut(2).enumerate() {
            let v = ((i as u32).wrapping_mul(2654435761).wrapping_add(n * 7919) >> 20) as u16;
            px.copy_from_slice(&v.to_le_bytes());
        }
        f.write_all(&frame).unwrap();
    }
    f.flush().unwrap();
}

/// Compares two files' bytes without loading either whole.
pub fn same_file_bytes(a: &Path, a_offset: u64, b: &Path, b_offset: u64) -> bool {
    use std::io::{BufReader, Seek, SeekFrom};
    let mut fa = BufReader::new(File::open(a).unwrap());
    let mut fb = BufReader::new(File::open(b).unwrap());
    fa.seek(SeekFrom::Start(a_offset)).unwrap();
    fb.seek(SeekFrom::Start(b_offset)).unwrap();
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let na = read_full(&mut fa, &mut ba);
        let nb = read_full(&mut fb, &mut bb);
        if na != nb || ba[..na] != bb[..nb] {
            return false;
        }
        if na == 0 {
            return true;
        }
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]).unwrap() {
            0 => break,
            k => n += k,
        }
    }
    n
}
