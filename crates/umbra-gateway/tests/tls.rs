//! TLS against real peers: dcmtk's storescu sends over mutual TLS to the gateway, the gateway
//! forwards over mutual TLS to dcmtk's storescp, and curl posts STOW-RS over HTTPS; a gateway
//! forwards STOW-RS over mutual TLS to another's listener; a TLS caller past the association
//! limit is refused over TLS. Certificates are made by openssl for each run.
#![cfg(feature = "tls")]

mod common;

use common::metric;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/public")
}

fn have(bin: &str) -> bool {
    Path::new(bin).exists()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A CA, and a certificate for localhost it signed (server and client use).
fn make_certs(dir: &Path) {
    let d = |f: &str| dir.join(f);
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=umbra test CA",
            "-keyout",
        ])
        .arg(d("ca.key"))
        .arg("-out")
        .arg(d("ca.pem")));
    run(Command::new("openssl")
        .args([
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
        ])
        .arg(d("host.key"))
        .arg("-out")
        .arg(d("host.csr")));
    std::fs::write(
        d("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    .unwrap();
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-CAcreateserial", "-in"])
        .arg(d("host.csr"))
        .arg("-CA")
        .arg(d("ca.pem"))
        .arg("-CAkey")
        .arg(d("ca.key"))
        .arg("-out")
        .arg(d("host.pem"))
        .arg("-extfile")
        .arg(d("ext.cnf")));
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_files(dir: &Path, n: usize) -> Vec<PathBuf> {
    let start = Instant::now();
    loop {
        let files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| !p.to_string_lossy().ends_with(".part"))
            .collect();
        if files.len() >= n || start.elapsed() > Duration::from_secs(60) {
            return files;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn mutual_tls_in_and_out_and_stow_over_https() {
    if !have("/usr/bin/storescp") || Command::new("openssl").arg("version").output().is_err() {
        eprintln!("SKIPPED: needs dcmtk (/usr/bin/storescp) and openssl");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_certs(dir);
    let p = |f: &str| dir.join(f).display().to_string();
    let vendor = dir.join("vendor");
    std::fs::create_dir(&vendor).unwrap();
    std::fs::write(dir.join("token"), "t0ken\n").unwrap();
    let (dimse, http, dest) = (free_port(), free_port(), free_port());
    let _storescp = Kill(
        Command::new("/usr/bin/storescp")
            .env("TCP_NODELAY", "1")
            .args(["+tls", &p("host.key"), &p("host.pem"), "+cf", &p("ca.pem")])
            .args(["-aet", "VENDOR", "-od"])
            .arg(&vendor)
            .arg(dest.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let config = format!(
        r#"
spool = "{spool}"
workers = 1
[dimse]
listen = "127.0.0.1:{dimse}"
ae_title = "UMBRA"
tls = {{ cert_file = "{cert}", key_file = "{key}", client_ca_file = "{ca}" }}
[http]
listen = "127.0.0.1:{http}"
token_file = "{token}"
tls = {{ cert_file = "{cert}", key_file = "{key}" }}
[[destination]]
name = "vendor"
kind = "dimse"
ae_title = "VENDOR"
host = "localhost"
port = {dest}
tls = {{ ca_file = "{ca}", cert_file = "{cert}", key_file = "{key}" }}
[[route]]
destinations = ["vendor"]
"#,
        spool = p("spool"),
        cert = p("host.pem"),
        key = p("host.key"),
        ca = p("ca.pem"),
        token = p("token"),
    );
    let config = umbra_gateway::Config::parse(&config).unwrap();
    let gw = umbra_gateway::Gateway::start(&config).unwrap();

    // DIMSE over mutual TLS
    let ct = corpus().join("pydicom/CT_small.dcm");
    let sent = Command::new("/usr/bin/storescu")
        .env("TCP_NODELAY", "1")
        .args(["+tls", &p("host.key"), &p("host.pem"), "+cf", &p("ca.pem")])
        .args(["-aec", "UMBRA", "127.0.0.1", &dimse.to_string()])
        .arg(&ct)
        .output()
        .unwrap();
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    // a client without a certificate is refused by the mutual-TLS listener
    let anonymous = Command::new("/usr/bin/storescu")
        .env("TCP_NODELAY", "1")
        .args(["+tla", "-aec", "UMBRA", "127.0.0.1", &dimse.to_string()])
        .arg(&ct)
        .output()
        .unwrap();
    assert!(
        !anonymous.status.success(),
        "a client without a certificate got in"
    );
    // plain TCP to the TLS listener gets nowhere either
    let plain = Command::new("/usr/bin/storescu")
        .env("TCP_NODELAY", "1")
        .args(["-aec", "UMBRA", "127.0.0.1", &dimse.to_string()])
        .arg(&ct)
        .output()
        .unwrap();
    assert!(!plain.status.success(), "plain TCP was served");

    // STOW-RS over HTTPS, with and without the token
    let mr = corpus().join("pydicom/MR_small.dcm");
    let mut body = b"--BB\r\nContent-Type: application/dicom\r\n\r\n".to_vec();
    body.extend(std::fs::read(&mr).unwrap());
    body.extend(b"\r\n--BB--\r\n");
    std::fs::write(dir.join("body"), &body).unwrap();
    let post = |token: Option<&str>| {
        let mut c = Command::new("curl");
        c.args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--cacert",
            &p("ca.pem"),
        ])
        .args([
            "-H",
            "Content-Type: multipart/related; type=\"application/dicom\"; boundary=BB",
        ])
        .args(["--data-binary", &format!("@{}", p("body"))]);
        if let Some(t) = token {
            c.args(["-H", &format!("Authorization: Bearer {t}")]);
        }
        c.arg(format!("https://localhost:{http}/studies"));
        String::from_utf8(c.output().unwrap().stdout).unwrap()
    };
    if Command::new("curl").arg("--version").output().is_ok() {
        // a client that connects and says nothing holds up nobody else (its handshake may wait
        // ten seconds before it is dropped)
        let silent = std::net::TcpStream::connect(("127.0.0.1", http)).unwrap();
        let t0 = Instant::now();
        assert_eq!(post(None), "401");
        assert!(
            t0.elapsed() < Duration::from_secs(8),
            "a silent client held up the HTTPS listener for {:?}",
            t0.elapsed()
        );
        drop(silent);
        assert_eq!(post(Some("wrong")), "401");
        assert_eq!(post(Some("t0ken")), "200");
    } else {
        eprintln!("(curl missing: STOW-RS over HTTPS not exercised)");
    }

    let want = if Command::new("curl").arg("--version").output().is_ok() {
        2
    } else {
        1
    };
    let got = wait_for_files(&vendor, want);
    gw.shutdown();
    assert_eq!(got.len(), want, "objects forwarded over TLS: {got:?}");
    // what arrived is the de-identified copy: new UIDs, not the originals'
    for f in &got {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.contains(".2.25."), "{name}");
    }
}

/// `.dcm` files under `dir`, at any depth (a folder destination's layout).
fn dcm_under(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |rd| {
        rd.flatten()
            .map(|e| e.path())
            .map(|p| {
                if p.is_dir() {
                    dcm_under(&p)
                } else {
                    usize::from(p.extension().is_some_and(|x| x == "dcm"))
                }
            })
            .sum()
    })
}

/// A gateway whose destination is STOW-RS over HTTPS, on a server that asks for a client
/// certificate (another gateway's STOW-RS listener with `client_ca_file`): with the
/// destination's `cert_file` and `key_file` the copy is delivered; without them the server
/// refuses the connection and nothing arrives. Objects enter over plain DIMSE (storescu).
#[test]
fn a_stow_destination_over_mutual_tls_shows_its_certificate() {
    if !have("/usr/bin/storescu") || Command::new("openssl").arg("version").output().is_err() {
        eprintln!("SKIPPED: needs dcmtk (/usr/bin/storescu) and openssl");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_certs(dir);
    let p = |f: &str| dir.join(f).display().to_string();
    std::fs::write(dir.join("token"), "t0ken\n").unwrap();
    // the receiving side: STOW-RS over HTTPS, client certificates required, into a folder
    let server_http = free_port();
    let server = umbra_gateway::Config::parse(&format!(
        r#"
spool = "{spool}"
workers = 1
[http]
listen = "127.0.0.1:{server_http}"
token_file = "{token}"
tls = {{ cert_file = "{cert}", key_file = "{key}", client_ca_file = "{ca}" }}
[[destination]]
name = "archive"
kind = "folder"
path = "{archive}"
[[route]]
destinations = ["archive"]
"#,
        spool = p("server-spool"),
        token = p("token"),
        cert = p("host.pem"),
        key = p("host.key"),
        ca = p("ca.pem"),
        archive = p("archive"),
    ))
    .unwrap();
    let server = umbra_gateway::Gateway::start(&server).unwrap();
    // two senders: one shows the certificate, one does not
    let sender = |name: &str, identity: &str| {
        let dimse = free_port();
        let config = umbra_gateway::Config::parse(&format!(
            r#"
spool = "{spool}"
workers = 1
[dimse]
listen = "127.0.0.1:{dimse}"
ae_title = "UMBRA"
[[destination]]
name = "partner"
kind = "stow"
url = "https://localhost:{server_http}/studies"
token_file = "{token}"
tls = {{ ca_file = "{ca}"{identity} }}
[[route]]
destinations = ["partner"]
[retry]
first_delay_seconds = 1
max_delay_seconds = 1
"#,
            spool = p(&format!("{name}-spool")),
            token = p("token"),
            ca = p("ca.pem"),
        ))
        .unwrap();
        (umbra_gateway::Gateway::start(&config).unwrap(), dimse)
    };
    let send = |dimse: u16, file: &str| {
        let out = Command::new("/usr/bin/storescu")
            .env("TCP_NODELAY", "1")
            .args(["-aec", "UMBRA", "127.0.0.1", &dimse.to_string()])
            .arg(corpus().join(file))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let identity = format!(
        r#", cert_file = "{}", key_file = "{}""#,
        p("host.pem"),
        p("host.key")
    );
    let (with_cert, with_port) = sender("with", &identity);
    let (without_cert, without_port) = sender("without", "");
    send(without_port, "pydicom/MR_small.dcm");
    send(with_port, "pydicom/CT_small.dcm");
    let archive = dir.join("archive");
    let start = Instant::now();
    while dcm_under(&archive) < 1 && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(100));
    }
    // give the sender without a certificate time for a few attempts
    std::thread::sleep(Duration::from_secs(3));
    let failed = |g: &umbra_gateway::Gateway| {
        metric(g.shared(), "umbra_failed_total{destination=\"partner\"}")
    };
    let (failed_with, failed_without) = (failed(&with_cert), failed(&without_cert));
    with_cert.shutdown();
    without_cert.shutdown();
    server.shutdown();
    assert_eq!(
        dcm_under(&archive),
        1,
        "only the copy sent with a certificate arrives"
    );
    assert_eq!(failed_with, 0.0, "the sender with a certificate failed");
    assert!(
        failed_without >= 1.0,
        "the sender without a certificate never failed"
    );
}

/// More associations than `max_associations` over TLS: the one too many gets a proper
/// transient A-ASSOCIATE-RJ (local limit exceeded) over TLS, not a connection read as plain
/// text and dropped, and it is counted as refused.
#[test]
fn over_capacity_a_tls_caller_gets_a_transient_rejection() {
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("SKIPPED: needs openssl");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_certs(dir);
    let p = |f: &str| dir.join(f).display().to_string();
    let dimse = free_port();
    let config = umbra_gateway::Config::parse(&format!(
        r#"
spool = "{spool}"
workers = 1
[dimse]
listen = "127.0.0.1:{dimse}"
ae_title = "UMBRA"
max_associations = 1
tls = {{ cert_file = "{cert}", key_file = "{key}" }}
[[destination]]
name = "lab"
kind = "folder"
path = "{lab}"
[[route]]
destinations = ["lab"]
"#,
        spool = p("spool"),
        cert = p("host.pem"),
        key = p("host.key"),
        lab = p("lab"),
    ))
    .unwrap();
    let gw = umbra_gateway::Gateway::start(&config).unwrap();
    let client = umbra_gateway::tls::ClientTls::load(
        &umbra_gateway::tls::TlsClient {
            ca_file: dir.join("ca.pem"),
            cert_file: None,
            key_file: None,
            server_name: None,
        },
        "localhost",
    )
    .unwrap();
    let peer = |calling: &str| {
        let mut peer = umbra_dimse::PeerConfig::new("UMBRA", "127.0.0.1", dimse, calling);
        peer.tls = Some((client.config.clone(), client.name.clone()));
        peer.association_timeout = Duration::from_secs(10);
        peer
    };
    let verification = umbra_dimse::Proposals::new().verification();
    let mut first = umbra_dimse::Scu::associate(&peer("FIRST"), &verification).unwrap();
    match umbra_dimse::Scu::associate(&peer("SECOND"), &verification) {
        Err(umbra_dimse::Error::Rejected { result, reason }) => {
            assert_eq!(result, "transient");
            assert!(reason.contains("local limit exceeded"), "{reason}");
        }
        Err(e) => panic!("expected a transient rejection, got: {e}"),
        Ok(_) => panic!("a second association got in past max_associations = 1"),
    }
    assert_eq!(first.echo().unwrap(), umbra_dimse::Status::SUCCESS);
    first.release().unwrap();
    let refused = metric(gw.shared(), "umbra_refused_total");
    gw.shutdown();
    assert_eq!(refused, 1.0);
}
