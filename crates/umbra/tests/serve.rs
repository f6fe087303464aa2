//! The gateway (`umbra serve`) against real peers: dcmtk's storescu sends, dcmtk's storescp
//! receives, pynetdicom sends, a STOW-RS client posts. Each test starts the real binary with a
//! configuration of its own on free ports and waits for the work to finish by reading
//! `GET /metrics`.
//!
//! The reference for what the gateway must forward is `umbra deid` with the same key and
//! options, run over exactly the bytes the gateway received. storescu re-encodes what it sends
//! (it drops trailing padding, fixes odd lengths), so the tests first send the same files to a
//! bit-preserving storescp and take what it stored as the inputs of `umbra deid`.
//!
//! Needs the Debian package `dcmtk` (storescu, storescp in /usr/bin) and, for one test, PyPI
//! `pynetdicom` and `pydicom`; each test prints `SKIPPED: ...` and passes without them.

mod common;

use common::{corpus, fixed_key, umbra};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The destination's options, as `umbra deid --option` takes them.
const OPTIONS: [&str; 2] = ["retain-longitudinal-modified-dates", "clean-descriptors"];

// ---------------------------------------------------------------------------------------------
// peers

/// dcmtk's tool from /usr/bin (pynetdicom installs programs of the same names that may come
/// first on PATH); `None` after printing why the test is skipped.
fn dcmtk(tool: &str) -> Option<PathBuf> {
    let p = Path::new("/usr/bin").join(tool);
    if p.is_file() {
        Some(p)
    } else {
        eprintln!("SKIPPED: /usr/bin/{tool} not found (CI needs the Debian package `dcmtk`)");
        None
    }
}

/// A dcmtk command; dcmtk 3.6.7 leaves Nagle's algorithm on (40 ms per message) without
/// `TCP_NODELAY=1`.
fn dcmtk_command(tool: &Path) -> Command {
    let mut c = Command::new(tool);
    c.env("TCP_NODELAY", "1");
    c
}

/// A port free on 127.0.0.1 right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

fn wait_listening(port: u16, child: &mut Child, what: &str) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(st)) = child.try_wait() {
            panic!("{what} exited at start: {st}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what}: nothing listens on {port}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// dcmtk's storescp on its own port, writing what it receives bit for bit (`+B`), in every
/// transfer syntax it knows (`+xa`), for any SOP class (`-pm`). `unique`: one file per object
/// received (`+uf`); otherwise files are named by SOP Instance UID, so a copy delivered twice
/// is one file.
struct Storescp {
    tool: PathBuf,
    child: Option<Child>,
    port: u16,
    aet: String,
    dir: PathBuf,
    unique: bool,
}

impl Storescp {
    fn start(tool: &Path, aet: &str, dir: &Path, unique: bool) -> Storescp {
        std::fs::create_dir_all(dir).unwrap();
        let mut s = Storescp {
            tool: tool.to_path_buf(),
            child: None,
            port: free_port(),
            aet: aet.into(),
            dir: dir.to_path_buf(),
            unique,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let mut c = dcmtk_command(&self.tool);
        c.args(["-aet", &self.aet, "+B", "+xa", "-pm"]);
        if self.unique {
            c.arg("+uf");
        }
        let mut child = c
            .arg("-od")
            .arg(&self.dir)
            .arg(self.port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_listening(self.port, &mut child, "storescp");
        self.child = Some(child);
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Storescp {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// storescu's option proposing a transfer syntax first (storescu proposes one compressed
/// syntax per run, so files are sent in groups by their transfer syntax).
fn storescu_option(ts: &str) -> Option<&'static str> {
    Some(match ts {
        "" => "",
        "1.2.840.10008.1.2" => "-xi",
        "1.2.840.10008.1.2.1" => "-xe",
        "1.2.840.10008.1.2.2" => "-xb",
        "1.2.840.10008.1.2.1.99" => "-xd",
        "1.2.840.10008.1.2.5" => "-xr",
        "1.2.840.10008.1.2.4.50" => "-xy",
        "1.2.840.10008.1.2.4.51" => "-xx",
        "1.2.840.10008.1.2.4.70" => "-xs",
        "1.2.840.10008.1.2.4.80" => "-xt",
        "1.2.840.10008.1.2.4.81" => "-xu",
        "1.2.840.10008.1.2.4.90" => "-xv",
        "1.2.840.10008.1.2.4.91" => "-xw",
        _ => return None,
    })
}

/// Every file under `dir`, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    fn walk(d: &Path, v: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, v);
            } else {
                v.push(p);
            }
        }
    }
    let mut v = Vec::new();
    if dir.exists() {
        walk(dir, &mut v);
    }
    v.sort();
    v
}

/// Files grouped by the storescu option for their transfer syntax (files without a meta group:
/// storescu's default). Files in a syntax storescu cannot propose are left out.
fn storescu_groups(files: &[PathBuf]) -> BTreeMap<&'static str, Vec<PathBuf>> {
    let mut g: BTreeMap<&'static str, Vec<PathBuf>> = BTreeMap::new();
    for f in files {
        let ts = meta_of(&std::fs::read(f).unwrap()).map_or(String::new(), |m| m.ts);
        if let Some(opt) = storescu_option(&ts) {
            g.entry(opt).or_default().push(f.clone());
        }
    }
    g
}

/// Runs storescu once per group against `port`. `no_halt`: go on past files it cannot read or
/// send. True when every run exited with success.
fn storescu(
    tool: &Path,
    aec: &str,
    port: u16,
    groups: &BTreeMap<&'static str, Vec<PathBuf>>,
    no_halt: bool,
) -> bool {
    let mut ok = true;
    for (opt, files) in groups {
        let mut c = dcmtk_command(tool);
        c.args(["-aec", aec, "-aet", "MODALITY", "-R"]);
        if !opt.is_empty() {
            c.arg(opt);
        }
        if no_halt {
            c.arg("-nh");
        }
        let st = c
            .arg("127.0.0.1")
            .arg(port.to_string())
            .args(files)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        ok &= st.success();
    }
    ok
}

/// Runs storescu (verbose) once per group against `port` and returns the files it was told were
/// stored: a response of success or warning (PS3.4 B.2.3: stored either way). storescu stops a
/// group at its first failure, e.g. an association broken off by the gateway's death; the
/// files after it were not stored by this run.
fn storescu_stored(
    tool: &Path,
    aec: &str,
    port: u16,
    groups: &BTreeMap<&'static str, Vec<PathBuf>>,
) -> BTreeSet<PathBuf> {
    let mut stored = BTreeSet::new();
    for (opt, files) in groups {
        let mut c = dcmtk_command(tool);
        c.args(["-v", "-aec", aec, "-aet", "MODALITY", "-R"]);
        if !opt.is_empty() {
            c.arg(opt);
        }
        let out = c
            .arg("127.0.0.1")
            .arg(port.to_string())
            .args(files)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        // dcmtk logs to stderr: "I: Sending file: F", later "I: Received Store Response (S)"
        let mut sending: Option<PathBuf> = None;
        for line in String::from_utf8_lossy(&out.stderr).lines() {
            if let Some(f) = line.strip_prefix("I: Sending file: ") {
                sending = Some(PathBuf::from(f));
            } else if let Some(status) = line.strip_prefix("I: Received Store Response (") {
                let file = sending.take();
                if status.starts_with("Success") || status.starts_with("Warning") {
                    stored.extend(file);
                }
            }
        }
    }
    stored
}

// ---------------------------------------------------------------------------------------------
// Part 10 files

/// What the tests read from a meta group.
#[derive(Debug, Clone, Default)]
struct Meta {
    sop_instance: String,
    ts: String,
    /// Where the data set starts.
    data_offset: usize,
}

/// The meta group of a Part 10 file (`None` without one). Explicit VR little endian, as PS3.10
/// requires.
fn meta_of(b: &[u8]) -> Option<Meta> {
    if b.len() < 132 || &b[128..132] != b"DICM" {
        return None;
    }
    let mut m = Meta::default();
    let mut i = 132;
    while i + 8 <= b.len() && u16::from_le_bytes([b[i], b[i + 1]]) == 2 {
        let elem = u16::from_le_bytes([b[i + 2], b[i + 3]]);
        let vr = &b[i + 4..i + 6];
        let (len, head) = if matches!(
            vr,
            b"OB" | b"OW" | b"OF" | b"SQ" | b"UT" | b"UN" | b"OD" | b"OL" | b"OV" | b"UC" | b"UR"
        ) {
            (
                u32::from_le_bytes(b.get(i + 8..i + 12)?.try_into().ok()?) as usize,
                12,
            )
        } else {
            (u16::from_le_bytes([b[i + 6], b[i + 7]]) as usize, 8)
        };
        let v = b.get(i + head..i + head + len)?;
        let text = || {
            String::from_utf8_lossy(v)
                .trim_end_matches(['\0', ' '])
                .to_string()
        };
        match elem {
            0x0003 => m.sop_instance = text(),
            0x0010 => m.ts = text(),
            _ => {}
        }
        i += head + len;
    }
    m.data_offset = i;
    Some(m)
}

/// The file with (0002,0016) Source Application Entity Title dropped from its meta group
/// (group length fixed). storescp records there the AE title that called it (the gateway's
/// own, UMBRA): the receiver's note of who sent the object, not part of what was sent.
fn without_source_ae(b: &[u8]) -> Vec<u8> {
    let m = meta_of(b).expect("a meta group");
    let mut elements = Vec::new();
    let mut i = 132;
    while i < m.data_offset {
        let elem = u16::from_le_bytes([b[i + 2], b[i + 3]]);
        let long = matches!(
            &b[i + 4..i + 6],
            b"OB" | b"OW" | b"OF" | b"SQ" | b"UT" | b"UN" | b"OD" | b"OL" | b"OV" | b"UC" | b"UR"
        );
        let end = if long {
            i + 12 + u32::from_le_bytes(b[i + 8..i + 12].try_into().unwrap()) as usize
        } else {
            i + 8 + u16::from_le_bytes([b[i + 6], b[i + 7]]) as usize
        };
        if elem != 0x0000 && elem != 0x0016 {
            elements.extend_from_slice(&b[i..end]);
        }
        i = end;
    }
    let mut out = b[..132].to_vec();
    out.extend_from_slice(&[0x02, 0x00, 0x00, 0x00, b'U', b'L', 4, 0]);
    out.extend_from_slice(&(elements.len() as u32).to_le_bytes());
    out.extend_from_slice(&elements);
    out.extend_from_slice(&b[m.data_offset..]);
    out
}

/// SOP Instance UID (from the meta group) → data set bytes, for every file under `dir`.
fn data_sets(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for f in files_under(dir) {
        let b = std::fs::read(&f).unwrap();
        let m = meta_of(&b).unwrap_or_else(|| panic!("{}: no meta group", f.display()));
        let prev = out.insert(m.sop_instance.clone(), b[m.data_offset..].to_vec());
        assert!(
            prev.is_none(),
            "{}: SOP Instance UID seen twice",
            f.display()
        );
    }
    out
}

fn sop_instance_of(f: &Path) -> String {
    meta_of(&std::fs::read(f).unwrap())
        .unwrap_or_else(|| panic!("{}: no meta group", f.display()))
        .sop_instance
}

/// What `umbra deid` makes of `inputs` with `key` and the destination's options.
///
/// Inputs that share a SOP Instance UID (the same object in two transfer syntaxes) are one
/// output path: `umbra deid` writes the first and holds the others back ("same SOP Instance
/// UID as ..."), while the gateway, which sees objects one at a time, forwards each and the
/// destination keeps the last it got. Such inputs are de-identified alone too, and the
/// destination's copy may be any of them.
struct Reference {
    /// De-identified SOP Instance UID → the data sets the destination may hold for it.
    written: BTreeMap<String, Vec<Vec<u8>>>,
    /// SOP Instance UIDs (the inputs' own) of inputs held back, failed or skipped.
    not_written: BTreeSet<String>,
    /// Inputs the gateway forwards (written, alone or in the run).
    deliveries: usize,
    /// Inputs the gateway quarantines.
    held_back: usize,
}

/// `umbra deid INPUTS --out OUT` with the destination's options and a report; the report's
/// records as (input, outcome, reason).
fn deid_run(inputs: &Path, key: &Path, out: &Path, report: &Path) -> Vec<common::Rec> {
    let mut args = vec![
        "deid".to_string(),
        inputs.display().to_string(),
        "--out".into(),
        out.display().to_string(),
        "--key-file".into(),
        key.display().to_string(),
        "--report".into(),
        report.display().to_string(),
        "--quiet".into(),
    ];
    for o in OPTIONS {
        args.extend(["--option".to_string(), o.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = umbra(&args);
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "umbra deid: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    common::read_report(report)
}

fn reference(inputs: &Path, key: &Path, work: &Path) -> Reference {
    let out = work.join("deid-out");
    let records = deid_run(inputs, key, &out, &work.join("deid-report.jsonl"));
    let mut r = Reference {
        written: data_sets(&out)
            .into_iter()
            .map(|(k, v)| (k, vec![v]))
            .collect(),
        not_written: BTreeSet::new(),
        deliveries: 0,
        held_back: 0,
    };
    for (i, rec) in records.iter().enumerate() {
        let displaced = rec
            .reason
            .as_deref()
            .is_some_and(|x| x.starts_with("same SOP Instance UID as"));
        if rec.outcome == "written" {
            r.deliveries += 1;
        } else if displaced {
            let alone = work.join(format!("deid-alone-{i}"));
            std::fs::create_dir_all(&alone).unwrap();
            let input = alone.join("in.dcm");
            std::fs::copy(&rec.input, &input).unwrap();
            let recs = deid_run(&input, key, &alone.join("out"), &alone.join("report.jsonl"));
            assert_eq!(recs[0].outcome, "written", "{}", rec.input.display());
            for (uid, ds) in data_sets(&alone.join("out")) {
                r.written.entry(uid).or_default().push(ds);
            }
            r.deliveries += 1;
        } else {
            r.held_back += 1;
            r.not_written.insert(sop_instance_of(&rec.input));
        }
    }
    r
}

/// `umbra scan` over what the destination holds (its meta groups without the Source AE
/// Title storescp adds, see [`without_source_ae`]) with the destination's options: true when
/// nothing identifying is found (exit status 0 at the default `--fail-on error`), else prints
/// the report. (Not `--against` the originals: over a corpus of unrelated files that also
/// matches one file's values in another's text, e.g. a Branch of Service "ABDOMEN" in another
/// file's Study Description; `umbra deid`'s gate checks each object against its own original.)
fn scan_clean(received: &Path) -> bool {
    let dir = received.with_extension("scanned");
    std::fs::create_dir_all(&dir).unwrap();
    for f in files_under(received) {
        let b = without_source_ae(&std::fs::read(&f).unwrap());
        std::fs::write(dir.join(f.file_name().unwrap()), b).unwrap();
    }
    let mut args = vec!["scan".to_string(), dir.display().to_string()];
    for o in OPTIONS {
        args.extend(["--option".to_string(), o.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = umbra(&args);
    if o.status.code() != Some(0) {
        eprintln!(
            "umbra scan {}:\n{}\n{}",
            dir.display(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    o.status.code() == Some(0)
}

// ---------------------------------------------------------------------------------------------
// HTTP

/// One HTTP/1.1 request on its own connection: (status, body).
fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the HTTP listener");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut plain = Vec::new();
        let mut rest = &body[..];
        loop {
            let nl = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let n = usize::from_str_radix(std::str::from_utf8(&rest[..nl]).unwrap().trim(), 16)
                .unwrap();
            if n == 0 {
                break;
            }
            plain.extend_from_slice(&rest[nl + 2..nl + 2 + n]);
            rest = &rest[nl + 2 + n + 2..];
        }
        body = plain;
    }
    (status, body)
}

/// `/metrics` as sample name (with labels) → value.
type Metrics = BTreeMap<String, f64>;

fn get(m: &Metrics, name: &str) -> f64 {
    m.get(name).copied().unwrap_or(0.0)
}

fn received(m: &Metrics) -> f64 {
    get(m, "umbra_received_total{listener=\"dimse\"}")
        + get(m, "umbra_received_total{listener=\"stow\"}")
}

fn forwarded(m: &Metrics) -> f64 {
    get(m, "umbra_forwarded_total{destination=\"vendor\"}")
}

fn held_back(m: &Metrics) -> f64 {
    get(m, "umbra_held_back_total{destination=\"vendor\"}")
}

// ---------------------------------------------------------------------------------------------
// the gateway

struct GatewayOptions {
    /// `[retention] min_free_mib`.
    min_free_mib: u64,
    /// A STOW-RS bearer token.
    token: Option<&'static str>,
    /// `[dimse] allowed_calling`.
    allowed_calling: Option<&'static str>,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        GatewayOptions {
            min_free_mib: 64,
            token: None,
            allowed_calling: None,
        }
    }
}

/// The real binary, `umbra serve --config FILE`, its log appended to `DIR/gateway.log`.
struct Gateway {
    child: Option<Child>,
    /// What `/healthz` answers once the gateway is up: 200, or 503 when its disk is "full".
    up_status: u16,
    config: PathBuf,
    log: PathBuf,
    spool: PathBuf,
    dimse: u16,
    http: u16,
}

impl Gateway {
    fn start(dir: &Path, key: &Path, vendor_port: u16, o: GatewayOptions) -> Gateway {
        let (dimse, http) = (free_port(), free_port());
        let spool = dir.join("spool");
        let q = |p: &Path| format!("{:?}", p.display().to_string());
        let token = match o.token {
            Some(t) => {
                let f = dir.join("stow.token");
                std::fs::write(&f, format!("{t}\n")).unwrap();
                format!("token_file = {}\n", q(&f))
            }
            None => String::new(),
        };
        let options: Vec<String> = OPTIONS.iter().map(|o| format!("{o:?}")).collect();
        let allowed = o
            .allowed_calling
            .map_or(String::new(), |a| format!("allowed_calling = [{a:?}]\n"));
        let text = format!(
            "spool = {spool}\nworkers = 2\n\n[dimse]\nlisten = \"127.0.0.1:{dimse}\"\nae_title = \"UMBRA\"\n{allowed}\n\
             [http]\nlisten = \"127.0.0.1:{http}\"\n{token}\n\
             [retention]\nkeep_forwarded_hours = 0\nmin_free_mib = {min_free}\n\n\
             [retry]\nfirst_delay_seconds = 0.2\nmax_delay_seconds = 1.0\n\n\
             [[destination]]\nname = \"vendor\"\nkind = \"dimse\"\nae_title = \"VENDOR\"\n\
             host = \"127.0.0.1\"\nport = {vendor_port}\noptions = [{options}]\nkey_file = {key}\n\n\
             [[route]]\ndestinations = [\"vendor\"]\n",
            spool = q(&spool),
            min_free = o.min_free_mib,
            options = options.join(", "),
            key = q(key),
        );
        let config = dir.join("gateway.toml");
        std::fs::write(&config, text).unwrap();
        let mut g = Gateway {
            child: None,
            up_status: if o.min_free_mib >= 1 << 40 { 503 } else { 200 },
            config,
            log: dir.join("gateway.log"),
            spool,
            dimse,
            http,
        };
        g.spawn();
        g
    }

    /// Starts the process and waits until `/healthz` answers as it should once up (200; 503
    /// when the gateway was given a disk too full to take anything).
    fn spawn(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_umbra"))
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let start = Instant::now();
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                panic!("umbra serve exited at start ({st}):\n{}", self.log_text());
            }
            let ok = TcpStream::connect(("127.0.0.1", self.http)).is_ok()
                && http(self.http, "GET", "/healthz", &[], b"").0 == self.up_status;
            if ok {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "umbra serve did not become healthy:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
    }

    /// SIGKILL: no shutdown, no flushing.
    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn metrics(&self) -> Metrics {
        let (status, body) = http(self.http, "GET", "/metrics", &[], b"");
        assert_eq!(status, 200);
        String::from_utf8(body)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect()
    }

    /// Waits until at least `min_received` objects were received and nothing is left to do:
    /// no object waiting to be routed, no job pending (or waiting to retry) or running.
    fn wait_idle(&self, min_received: f64, timeout: Duration) -> Metrics {
        let start = Instant::now();
        loop {
            let m = self.metrics();
            let idle = ["unrouted", "pending", "running"]
                .iter()
                .all(|s| get(&m, &format!("umbra_queue_depth{{state=\"{s}\"}}")) == 0.0);
            if idle && received(&m) >= min_received {
                return m;
            }
            assert!(
                start.elapsed() < timeout,
                "the gateway did not finish: {m:?}\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Quarantined objects (for the destination, or `_unrouted`): the received object's SOP
    /// Instance UID and its reason, one per `.reason` file.
    fn quarantined(&self) -> Vec<(String, String)> {
        let dir = self.spool.join("quarantine");
        files_under(&dir)
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "reason"))
            .map(|r| {
                let reason = std::fs::read_to_string(&r).unwrap().trim().to_string();
                (sop_instance_of(&r.with_extension("dcm")), reason)
            })
            .collect()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Captures what storescu puts on the wire for `files`: sends them (grouped by transfer
/// syntax, going on past files it cannot send) to a bit-preserving storescp writing one file
/// per object into `dir`. Returns the groups of inputs.
fn capture(
    storescu_tool: &Path,
    storescp_tool: &Path,
    files: &[PathBuf],
    dir: &Path,
) -> BTreeMap<&'static str, Vec<PathBuf>> {
    let groups = storescu_groups(files);
    let cap = Storescp::start(storescp_tool, "CAPTURE", dir, true);
    storescu(storescu_tool, "CAPTURE", cap.port, &groups, true);
    drop(cap);
    groups
}

/// Whether the destination's data set `got` is `umbra deid`'s `want`. The one allowed
/// difference: PS3.5 A.5 has an odd-length deflated bit stream padded with one zero byte on
/// the wire, and `umbra deid` writes the stream unpadded to its files, so the gateway's SCU
/// adds the byte when it sends.
fn same_data_set(want: &[u8], got: &[u8]) -> bool {
    want == got
        || (want.len() % 2 == 1
            && got.len() == want.len() + 1
            && got.starts_with(want)
            && got.ends_with(&[0]))
}

/// Every received object was forwarded or quarantined with a reason, the destination holds
/// exactly `umbra deid`'s output for the same inputs, and nothing identifying reached it.
/// (Files named by SOP Instance UID: one copy of each.)
fn assert_matches_reference(g: &Gateway, m: &Metrics, vendor_dir: &Path, reference: &Reference) {
    let got = data_sets(vendor_dir)
        .into_iter()
        .map(|(uid, ds)| (uid, vec![ds]))
        .collect();
    assert_copies_match_reference(g, m, got, vendor_dir, reference);
}

/// [`assert_matches_reference`] on every copy the destination received (`got`: SOP Instance
/// UID → each copy's data set): each is `umbra deid`'s output, whichever time it came.
fn assert_copies_match_reference(
    g: &Gateway,
    m: &Metrics,
    got: BTreeMap<String, Vec<Vec<u8>>>,
    vendor_dir: &Path,
    reference: &Reference,
) {
    let quarantined = g.quarantined();
    for (uid, reason) in &quarantined {
        assert!(!reason.is_empty(), "{uid}: quarantined without a reason");
    }
    let quarantined_uids: BTreeSet<String> = quarantined.iter().map(|(u, _)| u.clone()).collect();
    let copies: usize = got.values().map(Vec::len).sum();
    eprintln!(
        "received {}, forwarded {}, held back {}; storescp holds {} objects in {copies} copies; \
         umbra deid wrote {} and held back {}",
        received(m),
        forwarded(m),
        held_back(m),
        got.len(),
        reference.deliveries,
        reference.held_back
    );
    assert!(!got.is_empty(), "nothing forwarded");
    assert_eq!(
        quarantined_uids, reference.not_written,
        "the gateway quarantined other objects than umbra deid held back"
    );
    let missing: Vec<_> = reference
        .written
        .keys()
        .filter(|k| !got.contains_key(*k))
        .collect();
    let extra: Vec<_> = got
        .keys()
        .filter(|k| !reference.written.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing at the destination: {missing:?}; not made by umbra deid: {extra:?}"
    );
    for (uid, copies) in &got {
        for ds in copies {
            assert!(
                reference.written[uid].iter().any(|r| same_data_set(r, ds)),
                "{uid}: a copy the destination got differs from umbra deid's data set"
            );
        }
    }
    assert!(
        scan_clean(vendor_dir),
        "umbra scan finds identity at the destination"
    );
}

// ---------------------------------------------------------------------------------------------
// the tests

/// Every sendable file of the public corpus, storescu → gateway → storescp: each object
/// received is forwarded or quarantined with a reason, the counts add up, and the destination
/// holds, data set for data set, what `umbra deid` writes with the same key and options.
#[test]
fn storescu_to_gateway_to_storescp_equals_umbra_deid() {
    let (Some(scu), Some(scp)) = (dcmtk("storescu"), dcmtk("storescp")) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let key = fixed_key(t);
    let inputs = files_under(&corpus());
    let sent = t.join("sent");
    let groups = capture(&scu, &scp, &inputs, &sent);
    let sendable = files_under(&sent).len();
    assert!(sendable >= 50, "storescu sent only {sendable} files");

    let vendor_dir = t.join("vendor");
    let vendor = Storescp::start(&scp, "VENDOR", &vendor_dir, false);
    let g = Gateway::start(t, &key, vendor.port, GatewayOptions::default());
    storescu(&scu, "UMBRA", g.dimse, &groups, true);
    let m = g.wait_idle(sendable as f64, Duration::from_secs(60));
    assert_eq!(
        received(&m),
        sendable as f64,
        "the gateway received another number of objects than storescp did from the same run"
    );
    let quarantined = g.quarantined().len() as f64;
    assert_eq!(held_back(&m), quarantined);
    assert_eq!(
        received(&m),
        forwarded(&m) + quarantined,
        "received != forwarded + quarantined"
    );
    assert!(forwarded(&m) > 0.0);
    let reference = reference(&sent, &key, t);
    let reasons: BTreeSet<String> = g.quarantined().into_iter().map(|(_, r)| r).collect();
    assert_eq!(
        forwarded(&m),
        reference.deliveries as f64,
        "the gateway forwarded another number of objects than umbra deid writes; its quarantine \
         reasons: {reasons:#?}"
    );
    assert_eq!(quarantined, reference.held_back as f64);
    assert_matches_reference(&g, &m, &vendor_dir, &reference);
    assert_log_has_no_identifiers(&g.log_text(), &sent);
}

/// The gateway's log names none of the identifying values of the objects it received (patient
/// names and IDs, birth dates, accession numbers, institution and referring physicians' names, the study,
/// series and instance UIDs), though it logs every object it receives, forwards or quarantines
/// (with the reason).
fn assert_log_has_no_identifiers(log: &str, received: &Path) {
    use dicom_dictionary_std::tags;
    assert!(
        log.contains("forwarded"),
        "the log is not the gateway's: {log}"
    );
    let mut values = BTreeSet::new();
    for f in files_under(received) {
        let Ok(obj) = dicom_object::open_file(&f) else {
            continue;
        };
        for tag in [
            tags::PATIENT_NAME,
            tags::PATIENT_ID,
            tags::PATIENT_BIRTH_DATE,
            tags::ACCESSION_NUMBER,
            tags::INSTITUTION_NAME,
            tags::REFERRING_PHYSICIAN_NAME,
            tags::STUDY_INSTANCE_UID,
            tags::SERIES_INSTANCE_UID,
            tags::SOP_INSTANCE_UID,
        ] {
            if let Some(v) = obj.element(tag).ok().and_then(|e| e.to_str().ok()) {
                for part in v.split('\\') {
                    let part = part.trim_matches(|c: char| c == '\0' || c.is_whitespace());
                    // (short values such as "1" or "CT" are in any text, and short runs of hex
                    // digits in the log's timestamps and spool ids)
                    let hexish = part.bytes().all(|b| b.is_ascii_hexdigit());
                    if part.len() >= 6 && !(hexish && part.len() < 16) {
                        values.insert(part.to_string());
                    }
                }
            }
        }
    }
    assert!(values.len() > 100, "too few values to look for: {values:?}");
    let found: Vec<&String> = values.iter().filter(|v| log.contains(v.as_str())).collect();
    assert!(found.is_empty(), "the gateway's log names {found:?}");
}

/// A small xorshift generator: the kill schedule is the same for a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo))
    }
}

/// `n` copies of the corpus's CT_small.dcm as patients of 50 slices each: every copy has its
/// own SOP Instance UID and instance number, every patient its own name, ID, study and series.
fn ct_replicas(dir: &Path, n: usize) {
    use dicom_core::value::PrimitiveValue;
    use dicom_core::{DataElement, VR};
    use dicom_dictionary_std::tags;
    let src = corpus().join("pydicom/CT_small.dcm");
    for k in 0..n {
        let p = k / 50;
        let mut o = dicom_object::open_file(&src).unwrap();
        let root = "1.3.6.1.4.1.5962.99.7133";
        let uid = format!("{root}.3.{p}.{k}");
        for (tag, vr, v) in [
            (tags::PATIENT_NAME, VR::PN, format!("REPLICA^PATIENT{p}")),
            (tags::PATIENT_ID, VR::LO, format!("R{:06}", 4711 + p)),
            (tags::STUDY_INSTANCE_UID, VR::UI, format!("{root}.1.{p}")),
            (tags::SERIES_INSTANCE_UID, VR::UI, format!("{root}.2.{p}")),
            (tags::SOP_INSTANCE_UID, VR::UI, uid.clone()),
            (tags::INSTANCE_NUMBER, VR::IS, (k % 50 + 1).to_string()),
        ] {
            o.put(DataElement::new(tag, vr, PrimitiveValue::from(v)));
        }
        o.update_meta(|m| m.media_storage_sop_instance_uid = uid.clone());
        let to = dir.join(format!("p{p}/ct{k:04}.dcm"));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        o.write_to_file(&to).unwrap();
    }
}

/// 500+ objects (a small synthetic corpus with its hazards, and CT slices made from one
/// corpus file with new UIDs) sent by storescu while the gateway is killed with SIGKILL at
/// random moments and restarted, and the destination is killed once and restarted. storescu
/// sends each file until the gateway has acknowledged it, and never again after: an object
/// the gateway lost after its acknowledgement would be missing. In the end every object has
/// arrived, every copy of it (the destination keeps each copy it is sent) exactly as `umbra
/// deid` makes it, none with identity, and what the gateway quarantines is what `umbra deid`
/// holds back.
#[test]
fn kill_9_at_random_moments_loses_nothing_and_changes_nothing() {
    let (Some(scu), Some(scp)) = (dcmtk("storescu"), dcmtk("storescp")) else {
        return;
    };
    let seed: u64 = std::env::var("UMBRA_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2026);
    eprintln!("kill schedule seed {seed} (set UMBRA_CRASH_SEED to change it)");
    let mut rng = Rng(seed | 1);
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let key = fixed_key(t);
    let synth = t.join("synth");
    let o = umbra(&[
        "synth",
        "--out",
        synth.to_str().unwrap(),
        "--patients",
        "10",
        "--seed",
        "7",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let replicas = t.join("replicas");
    ct_replicas(&replicas, 450);
    let mut inputs = files_under(&synth.join("corpus"));
    inputs.extend(files_under(&replicas));
    let sent = t.join("sent");
    capture(&scu, &scp, &inputs, &sent);
    // from here on storescu sends the captured files: exactly what it can send, and what it
    // sends of them is what was captured
    let sendable = files_under(&sent);
    assert!(
        sendable.len() >= 500,
        "storescu sent only {} files",
        sendable.len()
    );
    let groups = storescu_groups(&sendable);
    let reference = reference(&sent, &key, t);

    // the destination keeps every copy it gets (+uf), in one folder until it is killed (where
    // the file it was writing then may be cut short) and another after
    let vendor_dir = t.join("vendor");
    let (before, after) = (vendor_dir.join("before"), vendor_dir.join("after"));
    let mut vendor = Storescp::start(&scp, "VENDOR", &before, true);
    let mut g = Gateway::start(t, &key, vendor.port, GatewayOptions::default());
    let done = Arc::new(AtomicBool::new(false));
    let sender = {
        let (port, done) = (g.dimse, done.clone());
        std::thread::spawn(move || {
            let mut left = groups;
            let (start, mut run) = (Instant::now(), 0);
            while start.elapsed() < Duration::from_secs(300) {
                run += 1;
                let stored = storescu_stored(&scu, "UMBRA", port, &left);
                for files in left.values_mut() {
                    files.retain(|f| !stored.contains(f));
                }
                left.retain(|_, files| !files.is_empty());
                if left.is_empty() {
                    done.store(true, Ordering::SeqCst);
                    return run;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            panic!("storescu never got every file stored: {left:?}");
        })
    };
    // the gateway is killed at random moments while storescu sends (and the destination once,
    // while objects flow to it)
    let mut kills = 0;
    while kills < 8 {
        std::thread::sleep(rng.millis(10, 200));
        if done.load(Ordering::SeqCst) {
            break;
        }
        g.kill9();
        kills += 1;
        std::thread::sleep(rng.millis(0, 150));
        g.spawn();
        if kills == 2 {
            vendor.kill9();
            std::thread::sleep(rng.millis(300, 1000));
            std::fs::create_dir_all(&after).unwrap();
            vendor.dir = after.clone();
            vendor.spawn();
        }
    }
    let runs = sender.join().expect("the storescu loop");
    eprintln!(
        "{kills} kills while storescu was sending; every file acknowledged after {runs} storescu runs"
    );
    assert!(
        kills >= 3,
        "the transfer ended after {kills} kills: too few to test recovery"
    );
    let m = g.wait_idle(0.0, Duration::from_secs(120));
    let log = g.log_text();
    assert!(
        log.contains("forwarding failed"),
        "the destination's restart was not seen"
    );
    assert!(
        log.matches("gateway started").count() == kills + 1,
        "every restart starts"
    );
    let mut got: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    let mut cut_short = Vec::new();
    for f in files_under(&before).into_iter().chain(files_under(&after)) {
        let b = std::fs::read(&f).unwrap();
        let whole = meta_of(&b).filter(|m| {
            reference
                .written
                .get(&m.sop_instance)
                .is_some_and(|r| r.iter().any(|r| same_data_set(r, &b[m.data_offset..])))
        });
        match whole {
            Some(m) => got
                .entry(m.sop_instance)
                .or_default()
                .push(b[m.data_offset..].to_vec()),
            None => cut_short.push((f, b)),
        }
    }
    // only the file storescp was writing when it was killed may be incomplete: a beginning
    // of a right copy, in the first folder
    assert!(
        cut_short.len() <= 1,
        "copies that are not umbra deid's: {:?}",
        cut_short.iter().map(|(f, _)| f).collect::<Vec<_>>()
    );
    for (f, b) in &cut_short {
        assert!(f.starts_with(&before), "{}: not a right copy", f.display());
        if let Some(m) = meta_of(b) {
            let ds = &b[m.data_offset..];
            assert!(
                reference
                    .written
                    .get(&m.sop_instance)
                    .is_some_and(|r| r.iter().any(|r| r.len() > ds.len() && r.starts_with(ds))),
                "{}: neither a right copy nor the beginning of one",
                f.display()
            );
        }
        std::fs::remove_file(f).unwrap();
    }
    let again = got.values().filter(|c| c.len() > 1).count();
    eprintln!("{again} objects delivered more than once, every copy the same");
    assert_copies_match_reference(&g, &m, got, &vendor_dir, &reference);
    assert_eq!(reference.deliveries + reference.held_back, sendable.len());
}

/// With less free space than `min_free_mib`, associations are refused with a transient
/// rejection, STOW-RS answers 503 with Retry-After, and nothing is written to the spool.
#[test]
fn a_full_disk_refuses_associations_and_stow_and_writes_nothing() {
    let Some(scu) = dcmtk("storescu") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let key = fixed_key(t);
    let g = Gateway::start(
        t,
        &key,
        free_port(),
        GatewayOptions {
            // 1 EiB: more than any disk has free
            min_free_mib: 1 << 40,
            token: Some("s3cret-token"),
            ..Default::default()
        },
    );
    let file = corpus().join("pydicom/CT_small.dcm");
    let out = dcmtk_command(&scu)
        .args(["-v", "-aec", "UMBRA", "-aet", "MODALITY", "127.0.0.1"])
        .arg(g.dimse.to_string())
        .arg(&file)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "storescu succeeded: {text}");
    assert!(
        text.contains("Association Rejected") && text.contains("Transient"),
        "expected a transient rejection: {text}"
    );
    let (body, boundary) = multipart(&[file]);
    let ct = format!("multipart/related; type=\"application/dicom\"; boundary={boundary}");
    let (status, _) = http(
        g.http,
        "POST",
        "/studies",
        &[
            ("Content-Type", &ct),
            ("Authorization", "Bearer s3cret-token"),
        ],
        &body,
    );
    assert_eq!(status, 503);
    // and /healthz says why, for a load balancer to send elsewhere
    let (status, body) = http(g.http, "GET", "/healthz", &[], b"");
    assert_eq!(status, 503);
    assert!(
        String::from_utf8_lossy(&body).contains("nearly full"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let m = g.metrics();
    assert_eq!(received(&m), 0.0);
    assert!(get(&m, "umbra_refused_total") >= 2.0);
    // nothing was spooled: no log segment was even made
    assert!(g.spool.join("log").is_dir());
    assert!(
        files_under(&g.spool.join("log")).is_empty(),
        "log/ is not empty"
    );
}

fn multipart(files: &[PathBuf]) -> (Vec<u8>, String) {
    let boundary = "umbra-test-boundary-7f3a".to_string();
    let mut body = Vec::new();
    for f in files {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(&std::fs::read(f).unwrap());
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (body, boundary)
}

/// Part 10 files of the corpus in syntaxes every peer here handles, for the small tests.
fn a_few_files() -> Vec<PathBuf> {
    [
        "pydicom/CT_small.dcm",
        "pydicom/MR_small.dcm",
        "pydicom/rtdose.dcm",
        "pydicom/rtplan.dcm",
        "pydicom/test-SR.dcm",
    ]
    .iter()
    .map(|f| corpus().join(f))
    .collect()
}

/// STOW-RS: without the bearer token (or with another) 401 and nothing stored; with it 200,
/// the response names the stored instances, and the objects reach storescp exactly as
/// `umbra deid` makes them from the same files (STOW-RS carries the files' own bytes).
#[test]
fn stow_rs_with_the_token_is_forwarded_without_it_401() {
    let Some(scp) = dcmtk("storescp") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let key = fixed_key(t);
    let vendor_dir = t.join("vendor");
    let vendor = Storescp::start(&scp, "VENDOR", &vendor_dir, false);
    let g = Gateway::start(
        t,
        &key,
        vendor.port,
        GatewayOptions {
            token: Some("s3cret-token"),
            ..Default::default()
        },
    );
    let files = a_few_files();
    let (body, boundary) = multipart(&files);
    let ct = format!("multipart/related; type=\"application/dicom\"; boundary={boundary}");
    for auth in [None, Some("Bearer wrong-token"), Some("s3cret-token")] {
        let mut h = vec![("Content-Type", ct.as_str())];
        if let Some(a) = auth {
            h.push(("Authorization", a));
        }
        let (status, _) = http(g.http, "POST", "/studies", &h, &body);
        assert_eq!(status, 401, "{auth:?}");
    }
    assert_eq!(received(&g.metrics()), 0.0);
    let (status, resp) = http(
        g.http,
        "POST",
        "/studies",
        &[
            ("Content-Type", &ct),
            ("Authorization", "Bearer s3cret-token"),
            ("Accept", "application/dicom+json"),
        ],
        &body,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
    let v: serde_json::Value = serde_json::from_slice(&resp).unwrap();
    assert_eq!(
        v["00081199"]["Value"].as_array().map(Vec::len),
        Some(files.len())
    );
    let m = g.wait_idle(files.len() as f64, Duration::from_secs(60));
    assert_eq!(
        get(&m, "umbra_received_total{listener=\"stow\"}"),
        files.len() as f64
    );
    assert_eq!(forwarded(&m), files.len() as f64);
    let originals = t.join("originals");
    std::fs::create_dir_all(&originals).unwrap();
    for f in &files {
        std::fs::copy(f, originals.join(f.file_name().unwrap())).unwrap();
    }
    let reference = reference(&originals, &key, t);
    assert_matches_reference(&g, &m, &vendor_dir, &reference);
}

/// pynetdicom as the sending peer: its C-STORE requests are spooled, acknowledged and
/// forwarded to storescp, each as `umbra deid` makes it from the same file.
#[test]
fn pynetdicom_sends_through_the_gateway() {
    let Some(scp) = dcmtk("storescp") else {
        return;
    };
    let have_pynetdicom = Command::new("python3")
        .args(["-c", "import pynetdicom, pydicom"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have_pynetdicom {
        eprintln!(
            "SKIPPED: python3 with pynetdicom and pydicom not found (CI needs PyPI `pynetdicom` and `pydicom`)"
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let key = fixed_key(t);
    let vendor_dir = t.join("vendor");
    let vendor = Storescp::start(&scp, "VENDOR", &vendor_dir, false);
    let g = Gateway::start(t, &key, vendor.port, GatewayOptions::default());
    let files = a_few_files();
    let script = r#"
import sys
from pydicom import dcmread
from pynetdicom import AE
port, files = int(sys.argv[1]), sys.argv[2:]
datasets = [dcmread(f) for f in files]
ae = AE(ae_title="PYNETDICOM")
for ds in datasets:
    ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
assoc = ae.associate("127.0.0.1", port, ae_title="UMBRA")
assert assoc.is_established, "association refused"
for ds in datasets:
    status = assoc.send_c_store(ds)
    assert status and status.Status == 0, status
assoc.release()
print("sent", len(datasets))
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(g.dimse.to_string())
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pynetdicom: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let m = g.wait_idle(files.len() as f64, Duration::from_secs(60));
    assert_eq!(forwarded(&m), files.len() as f64);
    // pydicom writes these well-formed files back as they were read, so the originals are
    // the gateway's inputs
    let originals = t.join("originals");
    std::fs::create_dir_all(&originals).unwrap();
    for f in &files {
        std::fs::copy(f, originals.join(f.file_name().unwrap())).unwrap();
    }
    let reference = reference(&originals, &key, t);
    assert_matches_reference(&g, &m, &vendor_dir, &reference);
}

/// SIGTERM while storescu is sending: the gateway stops accepting, lets the association in
/// flight go on to its end (storescu gets every object stored), finishes its jobs and exits 0;
/// what was acknowledged but not yet forwarded waits in the spool and goes out after the next
/// start. Nothing acknowledged is lost.
#[test]
fn sigterm_stops_cleanly_and_the_next_start_forwards_the_rest() {
    let (Some(scu), Some(scp)) = (dcmtk("storescu"), dcmtk("storescp")) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let key = fixed_key(t);
    let replicas = t.join("replicas");
    ct_replicas(&replicas, 300);
    let files = files_under(&replicas);
    let groups = storescu_groups(&files);
    let vendor_dir = t.join("vendor");
    let vendor = Storescp::start(&scp, "VENDOR", &vendor_dir, false);
    let mut g = Gateway::start(t, &key, vendor.port, GatewayOptions::default());
    let sender = {
        let port = g.dimse;
        std::thread::spawn(move || storescu(&scu, "UMBRA", port, &groups, false))
    };
    // SIGTERM while storescu's association is still sending
    let start = Instant::now();
    while received(&g.metrics()) < 5.0 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "nothing received"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut child = g.child.take().unwrap();
    let term = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(term.success());
    assert!(
        !sender.is_finished(),
        "storescu had finished before SIGTERM: nothing was in flight"
    );
    // the association in flight goes on to its end: storescu gets every object stored
    assert!(sender.join().unwrap(), "storescu failed:\n{}", g.log_text());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "umbra serve did not stop:\n{}",
            g.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit {status}:\n{}", g.log_text());
    assert!(g.log_text().contains("gateway stopped"), "{}", g.log_text());
    // a stopped gateway accepts nothing
    assert!(TcpStream::connect(("127.0.0.1", g.dimse)).is_err());
    // the next start forwards whatever was left: all 300 arrive
    g.spawn();
    let start = Instant::now();
    loop {
        let n = files_under(&vendor_dir).len();
        if n >= files.len() {
            assert_eq!(n, files.len());
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{n} of {} forwarded:\n{}",
            files.len(),
            g.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The shipped `examples/gateway.toml`, run as README.md shows it: dcmtk's storescp on 11113
/// as VENDOR, `umbra serve --config examples/gateway.toml`, storescu to UMBRA on 11112. The
/// object arrives de-identified and `/metrics` on 8080 counts it. (The example's ports are
/// fixed: when one is taken on this machine the test says SKIPPED.)
#[test]
fn the_shipped_example_forwards_what_storescu_sends_to_storescp() {
    let (Some(scu), Some(scp)) = (dcmtk("storescu"), dcmtk("storescp")) else {
        return;
    };
    let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
    if ![11112, 11113, 8080].into_iter().all(free) {
        eprintln!("SKIPPED: port 11112, 11113 or 8080 is taken here");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/gateway.toml");
    let vendor_dir = t.join("vendor");
    std::fs::create_dir_all(&vendor_dir).unwrap();
    let mut vendor = Kill(
        dcmtk_command(&scp)
            .args(["11113", "-aet", "VENDOR", "-od"])
            .arg(&vendor_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_listening(11113, &mut vendor.0, "storescp");
    // the example's spool is relative: it goes into the working folder
    let mut gateway = Kill(
        Command::new(env!("CARGO_BIN_EXE_umbra"))
            .args(["serve", "--config"])
            .arg(&example)
            .current_dir(t)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(t.join("gateway.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_listening(11112, &mut gateway.0, "umbra serve");
    let start = Instant::now();
    let health = loop {
        let (code, body) = http(8080, "GET", "/healthz", &[], b"");
        if code == 200 || start.elapsed() > Duration::from_secs(10) {
            break (code, String::from_utf8_lossy(&body).to_string());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if health.1.contains("nearly full") {
        eprintln!("SKIPPED: the example keeps 1 GiB free, and this disk has less");
        return;
    }
    assert_eq!(health.0, 200, "{}", health.1);
    let ct = corpus().join("pydicom/CT_small.dcm");
    let sent = dcmtk_command(&scu)
        .args(["-aec", "UMBRA", "127.0.0.1", "11112"])
        .arg(&ct)
        .output()
        .unwrap();
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    // storescp's file is complete once it has answered, and the gateway counts the object
    // forwarded only then
    let forwarded = |body: &str| body.contains("umbra_forwarded_total{destination=\"vendor\"} 1");
    let start = Instant::now();
    let body = loop {
        let (code, body) = http(8080, "GET", "/metrics", &[], b"");
        let body = String::from_utf8(body).unwrap();
        if (code == 200 && forwarded(&body)) || start.elapsed() > Duration::from_secs(30) {
            break body;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(forwarded(&body), "{body}");
    let got = files_under(&vendor_dir);
    assert_eq!(
        got.len(),
        1,
        "storescp got {got:?}; the gateway's log:\n{}",
        std::fs::read_to_string(t.join("gateway.log")).unwrap_or_default()
    );
    let original = sop_instance_of(&ct);
    let forwarded = sop_instance_of(&got[0]);
    assert!(
        forwarded != original && forwarded.starts_with("2.25."),
        "{forwarded}: not a new UID"
    );
    assert!(
        t.join("gateway-spool").is_dir(),
        "the spool is where the example says"
    );
}

/// A child process killed when the test ends, however it ends.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `[dimse] allowed_calling` reaches the listener: a caller not on the list is rejected (and
/// counted as refused), one on it is served.
#[test]
fn callers_not_allowed_are_rejected_and_counted() {
    let (Some(scu), Some(scp)) = (dcmtk("storescu"), dcmtk("storescp")) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let key = fixed_key(t);
    let vendor_dir = t.join("vendor");
    let vendor = Storescp::start(&scp, "VENDOR", &vendor_dir, false);
    let g = Gateway::start(
        t,
        &key,
        vendor.port,
        GatewayOptions {
            allowed_calling: Some("MODALITY"),
            ..Default::default()
        },
    );
    let ct = corpus().join("pydicom/CT_small.dcm");
    let send = |calling: &str| {
        dcmtk_command(&scu)
            .args(["-aet", calling, "-aec", "UMBRA", "127.0.0.1"])
            .arg(g.dimse.to_string())
            .arg(&ct)
            .output()
            .unwrap()
    };
    let intruder = send("INTRUDER");
    assert!(
        !intruder.status.success(),
        "a caller not allowed was served"
    );
    assert!(
        String::from_utf8_lossy(&intruder.stderr).contains("Rejected"),
        "{}",
        String::from_utf8_lossy(&intruder.stderr)
    );
    let allowed = send("MODALITY");
    assert!(
        allowed.status.success(),
        "{}",
        String::from_utf8_lossy(&allowed.stderr)
    );
    let m = g.wait_idle(1.0, Duration::from_secs(30));
    assert_eq!(received(&m), 1.0);
    assert_eq!(get(&m, "umbra_refused_total"), 1.0);
}

/// A mounted file system, unmounted (lazily) when dropped.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A spool whose disk really fills up, from outside (a file written into the spool's 96 MiB
/// tmpfs until nothing is left) while storescu sends: what finds no room is refused with status
/// A700 (out of resources) or a transient association rejection, the gateway goes on running
/// and `/healthz` answers 503; once the file is deleted the gateway carries on by itself, and
/// every object it acknowledged arrives exactly once. Needs the right to mount (root): SKIPPED
/// otherwise.
#[test]
fn a_spool_disk_filled_from_outside_refuses_then_drains_sending_each_object_once() {
    let (Some(scu), Some(scp)) = (dcmtk("storescu"), dcmtk("storescp")) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let spool = t.join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=96m", "tmpfs"])
        .arg(&spool)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIPPED: cannot mount a small tmpfs here (needs root)");
        return;
    }
    let _disk = Mounted(spool.clone());
    let key = fixed_key(t);
    let replicas = t.join("replicas");
    ct_replicas(&replicas, 400);
    let files = files_under(&replicas);
    let groups = storescu_groups(&files);
    let vendor_dir = t.join("vendor");
    let vendor = Storescp::start(&scp, "VENDOR", &vendor_dir, true);
    let mut g = Gateway::start(
        t,
        &key,
        vendor.port,
        GatewayOptions {
            min_free_mib: 64,
            ..Default::default()
        },
    );
    let sender = {
        let port = g.dimse;
        std::thread::spawn(move || storescu_stored(&scu, "UMBRA", port, &groups))
    };
    let start = Instant::now();
    while received(&g.metrics()) < 20.0 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "nothing received"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // fill the disk to the last byte
    let filler = spool.join("filler");
    {
        let mut f = File::create(&filler).unwrap();
        let block = vec![0u8; 1 << 20];
        while f.write_all(&block).is_ok() {}
        let small = [0u8; 512];
        while f.write_all(&small).is_ok() {}
    }
    let stored = sender.join().unwrap();
    assert!(
        stored.len() < files.len(),
        "storescu got all {} stored on a full disk",
        files.len()
    );
    let (status, body) = http(g.http, "GET", "/healthz", &[], b"");
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    eprintln!(
        "{} of {} acknowledged before the disk was full; /healthz: {}",
        stored.len(),
        files.len(),
        String::from_utf8_lossy(&body).trim()
    );
    std::thread::sleep(Duration::from_secs(2));
    // room again: the gateway carries on by itself
    std::fs::remove_file(&filler).unwrap();
    let start = Instant::now();
    while files_under(&vendor_dir).len() < stored.len() && start.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    // (give copies sent twice, if any, time to show)
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        files_under(&vendor_dir).len(),
        stored.len(),
        "the destination's copies against the {} objects acknowledged:\n{}",
        stored.len(),
        g.log_text()
    );
    let (status, _) = http(g.http, "GET", "/healthz", &[], b"");
    assert_eq!(status, 200, "healthy again once there is room");
    g.kill9();
}
