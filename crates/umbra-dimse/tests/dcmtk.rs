//! Interoperability with dcmtk (Debian package `dcmtk`): echoscu and storescu against our SCP,
//! our SCU against storescp.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::*;
use umbra_dimse::{Error, PeerConfig, Proposals, ScpConfig, Scu, Status};

fn scp_config() -> ScpConfig {
    ScpConfig::new("UMBRA")
}

/// dcmtk 3.6.7 stalls on Nagle's algorithm without this.
fn dcmtk_command(tool: &Path) -> Command {
    let mut c = Command::new(tool);
    c.env("TCP_NODELAY", "1");
    c
}

#[test]
fn echoscu_to_our_scp() {
    let Some(echoscu) = dcmtk("echoscu") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let scp = OurScp::start(scp_config(), DirHandler::new(dir.path()), 4);
    let out = dcmtk_command(&echoscu)
        .args(["-aec", "UMBRA", "-aet", "ECHOER", "127.0.0.1"])
        .arg(scp.port().to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "echoscu: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // a wrong called AE title is rejected
    let out = dcmtk_command(&echoscu)
        .args(["-aec", "SOMEONE", "-aet", "ECHOER", "127.0.0.1"])
        .arg(scp.port().to_string())
        .output()
        .unwrap();
    assert!(!out.status.success());
    scp.stop();
}

/// Starts storescp on a free port writing bit-preserved files into `dir`; `accept_all`: all
/// transfer syntaxes it supports, otherwise its default (uncompressed only).
fn storescp(dir: &Path, accept_all: bool) -> Option<(Peer, u16)> {
    let tool = dcmtk("storescp")?;
    let port = free_port();
    let mut c = dcmtk_command(&tool);
    c.args(["-aet", "STORESCP", "+B", "+uf", "-od"]).arg(dir);
    if accept_all {
        c.arg("+xa");
    }
    let child = c
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let peer = Peer(child);
    wait_echo(port);
    Some((peer, port))
}

/// Waits until storescp answers a whole association (C-ECHO and release). A bare TCP probe is
/// not enough: storescp without `--fork` serves one connection at a time and, still busy with
/// the probe, may reset the association that follows.
fn wait_echo(port: u16) {
    let start = std::time::Instant::now();
    let cfg = PeerConfig::new("STORESCP", "127.0.0.1", port, "PROBE");
    loop {
        let answered =
            Scu::associate(&cfg, &Proposals::new().verification()).and_then(|mut scu| {
                let status = scu.echo()?;
                scu.release()?;
                Ok(status)
            });
        if matches!(answered, Ok(Status::SUCCESS)) {
            return;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(15),
            "storescp on {port} does not answer C-ECHO: {answered:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn our_echo_to_storescp() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_peer, port)) = storescp(dir.path(), false) else {
        return;
    };
    let cfg = PeerConfig::new("STORESCP", "127.0.0.1", port, "UMBRA");
    let mut scu = Scu::associate(&cfg, &Proposals::new().verification()).unwrap();
    assert_eq!(scu.echo().unwrap(), Status::SUCCESS);
    assert_eq!(scu.echo().unwrap(), Status::SUCCESS);
    scu.release().unwrap();
}

/// storescu's option proposing `ts` first.
fn storescu_option(ts: &str) -> Option<&'static str> {
    Some(match ts {
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

/// storescu re-encodes each data set it sends (it drops trailing padding, fixes odd lengths),
/// so the reference for what our SCP must store is what dcmtk's own storescp stores in
/// bit-preserving mode from the same storescu run; for well-formed files that is also the
/// original file's data set.
#[test]
fn storescu_to_our_scp_stores_what_storescp_stores() {
    let Some(storescu) = dcmtk("storescu") else {
        return;
    };
    let files = storage_files(20 << 20);
    assert!(files.len() >= 20, "corpus too small: {}", files.len());
    let ours_dir = tempfile::tempdir().unwrap();
    let theirs_dir = tempfile::tempdir().unwrap();
    let handler = DirHandler::new(ours_dir.path());
    let received = handler.received.clone();
    let scp = OurScp::start(scp_config(), handler, 4);
    let Some((_storescp, their_port)) = storescp(theirs_dir.path(), true) else {
        return;
    };
    let mut groups: std::collections::BTreeMap<&str, Vec<&Path>> = Default::default();
    for (path, meta) in &files {
        if let Some(opt) = storescu_option(&meta.transfer_syntax_uid) {
            groups.entry(opt).or_default().push(path);
        }
    }
    for (opt, paths) in &groups {
        for (aec, port) in [("UMBRA", scp.port()), ("STORESCP", their_port)] {
            let out = dcmtk_command(&storescu)
                .args(["-aec", aec, "-aet", "DCMTKSCU", "-nh", opt, "127.0.0.1"])
                .arg(port.to_string())
                .args(paths)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "storescu {opt}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    scp.stop();
    let received = received.lock().unwrap().clone();
    let theirs: Vec<_> = std::fs::read_dir(theirs_dir.path())
        .unwrap()
        .flatten()
        .map(|e| (read_meta(&e.path()).unwrap(), e.path()))
        .collect();
    // storescu skips files whose data set lacks SOP Class/Instance UIDs
    assert!(
        theirs.len() >= files.len() - 10,
        "storescp got {} of {}",
        theirs.len(),
        files.len()
    );
    assert_eq!(
        received.len(),
        theirs.len(),
        "storescp and our SCP received different counts"
    );
    let (mut compressed, mut equal_to_original) = (0, 0);
    let mut ours: Vec<_> = received.iter().collect();
    for (their_meta, their_path) in &theirs {
        let their_data = data_set(their_path);
        let pos = ours
            .iter()
            .position(|r| {
                r.req.sop_instance_uid == their_meta.sop_instance_uid
                    && r.req.transfer_syntax_uid == their_meta.transfer_syntax_uid
                    && data_set(&r.path) == their_data
            })
            .unwrap_or_else(|| panic!("{}: our SCP stored other bytes", their_path.display()));
        let got = ours.swap_remove(pos);
        assert_eq!(got.calling_ae, "DCMTKSCU");
        assert_eq!(got.req.sop_class_uid, their_meta.sop_class_uid);
        if files.iter().any(|(orig, m)| {
            m.sop_instance_uid == their_meta.sop_instance_uid && data_set(orig) == their_data
        }) {
            equal_to_original += 1;
        }
        if ![
            "1.2.840.10008.1.2",
            "1.2.840.10008.1.2.1",
            "1.2.840.10008.1.2.2",
        ]
        .contains(&their_meta.transfer_syntax_uid.as_str())
        {
            compressed += 1;
        }
    }
    eprintln!(
        "{} objects; {compressed} compressed or deflated; {equal_to_original} byte-equal to the original file",
        theirs.len()
    );
    assert!(compressed >= 8);
    let kinds: Vec<&str> = files
        .iter()
        .map(|(_, m)| m.transfer_syntax_uid.as_str())
        .collect();
    for ts in [
        "1.2.840.10008.1.2.4.50", // JPEG baseline (multi-frame ultrasound among them)
        "1.2.840.10008.1.2.4.90", // JPEG 2000 lossless
        "1.2.840.10008.1.2.5",    // RLE
        "1.2.840.10008.1.2.1.99", // deflated
        "1.2.840.10008.1.2",      // implicit
    ] {
        assert!(kinds.contains(&ts), "corpus lacks {ts}");
    }
}

#[test]
fn our_scu_to_storescp_keeps_data_set_bytes() {
    scu_to_storescp_keeps_data_set_bytes(false);
}

/// The same files sent from memory as three parts each, split at odd places (inside the data
/// set, mid-element): storescp receives the same bytes.
#[test]
fn our_scu_sends_a_file_held_in_parts_as_the_same_bytes() {
    scu_to_storescp_keeps_data_set_bytes(true);
}

fn scu_to_storescp_keeps_data_set_bytes(in_parts: bool) {
    let dir = tempfile::tempdir().unwrap();
    let Some((_peer, port)) = storescp(dir.path(), true) else {
        return;
    };
    let files = storage_files(20 << 20);
    let paths: Vec<_> = files.iter().map(|(p, _)| p.clone()).collect();
    let (proposals, metas) = Proposals::for_files(&paths);
    assert!(metas.iter().all(Result::is_ok));
    let mut cfg = PeerConfig::new("STORESCP", "127.0.0.1", port, "UMBRA");
    cfg.max_pdu = 16_384;
    let mut scu = Scu::associate(&cfg, &proposals).unwrap();
    let mut sent = 0;
    for (path, meta) in &files {
        let stored = if in_parts {
            let bytes = std::fs::read(path).unwrap();
            let a = (meta.data_set_offset as usize + 13).min(bytes.len());
            let b = a + (bytes.len() - a) / 2 + 1;
            let b = b.min(bytes.len());
            scu.store_part10_parts(&[&bytes[..a], &bytes[a..b], &bytes[b..]])
        } else {
            scu.store_file(path)
        };
        match stored {
            Ok(rsp) => {
                assert_eq!(rsp.status, Status::SUCCESS, "{}", path.display());
                sent += 1;
            }
            // storescp does not know every SOP class or transfer syntax: the object is
            // refused without breaking the association
            Err(Error::NoPresentationContext { .. }) => {
                eprintln!(
                    "not accepted by storescp: {} ({})",
                    path.display(),
                    meta.transfer_syntax_uid
                );
            }
            // a malformed file (odd data set length) is refused before sending
            Err(Error::Part10(why)) => eprintln!("not sent: {}: {why}", path.display()),
            Err(e) => panic!("{}: {e}", path.display()),
        }
    }
    scu.release().unwrap();
    assert!(
        sent >= files.len() - 6,
        "only {sent} of {} sent",
        files.len()
    );
    // storescp +B writes what it received after its own meta group. Several corpus files
    // share a SOP Instance UID (one object in several transfer syntaxes).
    let mut matched = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap().flatten() {
        let got = read_meta(&entry.path()).unwrap();
        let received = data_set(&entry.path());
        let found = files.iter().any(|(orig, m)| {
            m.sop_instance_uid == got.sop_instance_uid
                && m.transfer_syntax_uid == got.transfer_syntax_uid
                && padded_data_set(orig) == received
        });
        assert!(
            found,
            "{}: no original with these bytes",
            entry.path().display()
        );
        matched += 1;
    }
    assert_eq!(matched, sent);
}

/// A file's data set as sent: a deflated bit stream of odd length gains one zero byte.
fn padded_data_set(path: &Path) -> Vec<u8> {
    let mut d = data_set(path);
    if d.len() % 2 == 1 {
        d.push(0);
    }
    d
}

#[test]
fn transfer_syntax_not_accepted_is_an_object_error() {
    let dir = tempfile::tempdir().unwrap();
    // default storescp: uncompressed transfer syntaxes only
    let Some((_peer, port)) = storescp(dir.path(), false) else {
        return;
    };
    let jpeg = common::corpus().join("deid-data/cookies_image1.dcm");
    let plain = common::corpus().join("pydicom/CT_small.dcm");
    let (proposals, _) = Proposals::for_files(&[&jpeg, &plain]);
    let cfg = PeerConfig::new("STORESCP", "127.0.0.1", port, "UMBRA");
    let mut scu = Scu::associate(&cfg, &proposals.verification()).unwrap();
    assert!(matches!(
        scu.store_file(&jpeg),
        Err(Error::NoPresentationContext { .. })
    ));
    assert_eq!(scu.store_file(&plain).unwrap().status, Status::SUCCESS);
    assert_eq!(scu.echo().unwrap(), Status::SUCCESS);
    scu.release().unwrap();
}
