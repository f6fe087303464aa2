//! Loopback throughput: N CT-like objects of 512 KiB through our SCP and through dcmtk's
//! storescp (the floor), from our SCU and from dcmtk's storescu.
//! `cargo run --release --example throughput [N]`. Not a test: it prints figures.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use umbra_dimse::{
    AssociationInfo, Listener, PeerConfig, Proposals, Scp, ScpConfig, Scu, Status, StoreHandler,
    StoreRequest, StoreSink, part10_header,
};

struct Handler {
    dir: PathBuf,
    fsync: bool,
    next: AtomicU64,
}

struct Sink(BufWriter<File>, bool);

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl StoreSink for Sink {
    fn commit(mut self: Box<Self>) -> Status {
        let ok = self.0.flush().and_then(|()| {
            if self.1 {
                self.0.get_ref().sync_all()
            } else {
                Ok(())
            }
        });
        if ok.is_ok() {
            Status::SUCCESS
        } else {
            Status::OUT_OF_RESOURCES
        }
    }
    fn abort(self: Box<Self>) {}
}

impl StoreHandler for Handler {
    fn begin(&self, a: &AssociationInfo, r: &StoreRequest) -> Result<Box<dyn StoreSink>, Status> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let f = File::create(self.dir.join(format!("{n}.dcm")))
            .map_err(|_| Status::OUT_OF_RESOURCES)?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        w.write_all(&part10_header(
            &r.sop_class_uid,
            &r.sop_instance_uid,
            &r.transfer_syntax_uid,
            &a.calling_ae,
        ))
        .map_err(|_| Status::OUT_OF_RESOURCES)?;
        Ok(Box::new(Sink(w, self.fsync)))
    }
}

fn ct_like(path: &Path, n: usize) {
    let class = "1.2.840.10008.5.1.4.1.1.2";
    let instance = format!("2.25.{}", 1_000_000 + n);
    let mut f = BufWriter::new(File::create(path).unwrap());
    f.write_all(&part10_header(
        class,
        &instance,
        "1.2.840.10008.1.2.1",
        "GEN",
    ))
    .unwrap();
    let mut ds = Vec::new();
    let mut text = |g: u16, e: u16, vr: &[u8; 2], v: &str| {
        let mut v = v.as_bytes().to_vec();
        if v.len() % 2 == 1 {
            v.push(if vr == b"UI" { 0 } else { b' ' });
        }
        ds.extend_from_slice(&g.to_le_bytes());
        ds.extend_from_slice(&e.to_le_bytes());
        ds.extend_from_slice(vr);
        ds.extend_from_slice(&(v.len() as u16).to_le_bytes());
        ds.extend_from_slice(&v);
    };
    text(0x0008, 0x0016, b"UI", class);
    text(0x0008, 0x0018, b"UI", &instance);
    text(0x0008, 0x0060, b"CS", "CT");
    text(0x0010, 0x0010, b"PN", "THROUGHPUT^TEST");
    let us = |ds: &mut Vec<u8>, e: u16, v: u16| {
        ds.extend_from_slice(&0x0028u16.to_le_bytes());
        ds.extend_from_slice(&e.to_le_bytes());
        ds.extend_from_slice(b"US");
        ds.extend_from_slice(&2u16.to_le_bytes());
        ds.extend_from_slice(&v.to_le_bytes());
    };
    us(&mut ds, 0x0002, 1);
    ds.extend_from_slice(&[0x28, 0, 0x04, 0, b'C', b'S', 12, 0]);
    ds.extend_from_slice(b"MONOCHROME2 ");
    for (e, v) in [
        (0x0010u16, 512u16),
        (0x0011, 512),
        (0x0100, 16),
        (0x0101, 16),
        (0x0102, 15),
        (0x0103, 0),
    ] {
        us(&mut ds, e, v);
    }
    ds.extend_from_slice(&[0xE0, 0x7F, 0x10, 0x00, b'O', b'W', 0, 0]);
    ds.extend_from_slice(&(512u32 * 512 * 2).to_le_bytes());
    f.write_all(&ds).unwrap();
    let pixels: Vec<u8> = (0..512 * 512 * 2)
        .map(|i: usize| (i.wrapping_mul(31) ^ n) as u8)
        .collect();
    f.write_all(&pixels).unwrap();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait(port: u16) {
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn report(what: &str, n: usize, bytes: u64, t: Duration) {
    let s = t.as_secs_f64();
    println!(
        "{what:<44} {n} objects in {s:6.2} s: {:7.1} objects/s {:7.1} MB/s",
        n as f64 / s,
        bytes as f64 / s / 1e6
    );
}

fn our_scu(port: u16, ae: &str, files: &[PathBuf]) -> Duration {
    let t = Instant::now();
    let (proposals, _) = Proposals::for_files(files);
    let mut peer = PeerConfig::new(ae, "127.0.0.1", port, "UMBRA");
    peer.max_pdu = 65_536;
    let mut scu = Scu::associate(&peer, &proposals).unwrap();
    for f in files {
        assert!(scu.store_file(f).unwrap().status.is_success());
    }
    scu.release().unwrap();
    t.elapsed()
}

fn storescu(port: u16, ae: &str, files: &[PathBuf]) -> Duration {
    let t = Instant::now();
    let ok = Command::new("/usr/bin/storescu")
        .env("TCP_NODELAY", "1")
        .args([
            "-aec",
            ae,
            "-aet",
            "DCMTK",
            "-xe",
            "--max-pdu",
            "65536",
            "127.0.0.1",
        ])
        .arg(port.to_string())
        .args(files)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok);
    t.elapsed()
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let src = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = (0..n)
        .map(|i| {
            let p = src.path().join(format!("{i}.dcm"));
            ct_like(&p, i);
            p
        })
        .collect();
    let bytes: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    let dcmtk = Path::new("/usr/bin/storescp").is_file();

    for fsync in [false, true] {
        let out = tempfile::tempdir().unwrap();
        let handler = Handler {
            dir: out.path().into(),
            fsync,
            next: AtomicU64::new(0),
        };
        let mut cfg = ScpConfig::new("UMBRA");
        cfg.max_pdu = 65_536;
        let listener = Listener::bind("127.0.0.1:0", Scp::new(cfg, handler), 8).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, thread) = listener.spawn().unwrap();
        let label = if fsync { "fsync" } else { "no fsync" };
        report(
            &format!("our SCU -> our SCP ({label})"),
            n,
            bytes,
            our_scu(port, "UMBRA", &files),
        );
        if dcmtk {
            report(
                &format!("storescu -> our SCP ({label})"),
                n,
                bytes,
                storescu(port, "UMBRA", &files),
            );
        }
        stop.shutdown();
        thread.join().unwrap().unwrap();
    }
    if dcmtk {
        let out = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut child = Command::new("/usr/bin/storescp")
            .env("TCP_NODELAY", "1")
            .args(["-aet", "STORESCP", "+B", "+uf", "--max-pdu", "65536", "-od"])
            .arg(out.path())
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait(port);
        report(
            "our SCU -> storescp (no fsync)",
            n,
            bytes,
            our_scu(port, "STORESCP", &files),
        );
        report(
            "storescu -> storescp (no fsync, floor)",
            n,
            bytes,
            storescu(port, "STORESCP", &files),
        );
        let _ = child.kill();
        let _ = child.wait();
    }
}
