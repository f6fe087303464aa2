//! Interoperability with pynetdicom (PyPI `pynetdicom`, `pydicom`), a second independent peer.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;
use umbra_dimse::{PeerConfig, Proposals, ScpConfig, Scu, Status};

const SCU_SCRIPT: &str = r#"
import sys
from pydicom import dcmread
from pynetdicom import AE
port = int(sys.argv[1]); files = sys.argv[2:]
ae = AE(ae_title="PYSCU")
dss = [dcmread(f) for f in files]
for ds in dss:
    ae.add_requested_context(ds.SOPClassUID, [ds.file_meta.TransferSyntaxUID])
assoc = ae.associate("127.0.0.1", port, ae_title="UMBRA")
assert assoc.is_established, "not established"
for ds in dss:
    st = assoc.send_c_store(ds)
    print(f"{st.Status:04X}")
assoc.release()
"#;

const CHECK_SCRIPT: &str = r#"
import sys
from pydicom import dcmread
for f in sys.argv[1:]:
    ds = dcmread(f)
    ds.PixelData if "PixelData" in ds else None
    print(ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID, ds.SOPInstanceUID)
"#;

const SCP_SCRIPT: &str = r#"
import sys, os
from pynetdicom import AE, evt, AllStoragePresentationContexts, ALL_TRANSFER_SYNTAXES
port = int(sys.argv[1]); out = sys.argv[2]
count = [0]
def on_store(event):
    n = count[0]; count[0] += 1
    with open(os.path.join(out, f"{n:04d}.bin"), "wb") as f:
        f.write(event.request.DataSet.getvalue())
    with open(os.path.join(out, f"{n:04d}.txt"), "w") as f:
        f.write(event.request.AffectedSOPInstanceUID + "\n" + event.context.transfer_syntax)
    return 0x0000
ae = AE(ae_title="PYSCP")
for cx in AllStoragePresentationContexts:
    ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
ae.add_supported_context("1.2.840.10008.1.1")
server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)])
print("READY", flush=True)
sys.stdin.read()
server.shutdown()
"#;

/// Corpus files pydicom reads and pynetdicom knows the SOP class of, in several transfer
/// syntaxes.
fn sample() -> Vec<std::path::PathBuf> {
    [
        "pydicom/CT_small.dcm",
        "pydicom/MR_small_implicit.dcm",
        "pydicom/MR_small_RLE.dcm",
        "pydicom/MR_small_jp2klossless.dcm",
        "pydicom/examples_ybr_color.dcm",
        "pydicom/rtplan.dcm",
        "pydicom/waveform_ecg.dcm",
        "pydicom-data/eCT_Supplemental.dcm",
        "deid-data/us_RGB_IMAGE.dcm",
        "pydicom-data/emri_small_jpeg_2k_lossless.dcm",
    ]
    .iter()
    .map(|f| corpus().join(f))
    .collect()
}

#[test]
fn pynetdicom_scu_to_our_scp() {
    let Some(python) = pynetdicom() else { return };
    let dir = tempfile::tempdir().unwrap();
    let handler = DirHandler::new(dir.path());
    let received = handler.received.clone();
    let scp = OurScp::start(ScpConfig::new("UMBRA"), handler, 4);
    let files = sample();
    let out = Command::new(&python)
        .args(["-c", SCU_SCRIPT, &scp.port().to_string()])
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let statuses = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        statuses.lines().filter(|l| *l == "0000").count(),
        files.len()
    );
    scp.stop();
    let received = received.lock().unwrap().clone();
    assert_eq!(received.len(), files.len());
    // pydicom reads every file our part10_header wrapped around the received data set
    let out = Command::new(&python)
        .args(["-c", CHECK_SCRIPT])
        .args(received.iter().map(|r| &r.path))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        lines.lines().filter(|l| l.starts_with("True")).count(),
        files.len()
    );
    for (path, r) in files.iter().zip(&received) {
        let meta = read_meta(path).unwrap();
        assert_eq!(r.req.transfer_syntax_uid, meta.transfer_syntax_uid);
    }
}

#[test]
fn our_scu_to_pynetdicom_scp_sends_exact_bytes() {
    let Some(python) = pynetdicom() else { return };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(&python)
        .args(["-c", SCP_SCRIPT, &port.to_string()])
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready.trim(), "READY");
    let _peer = Peer(child);
    let files = sample();
    let (proposals, _) = Proposals::for_files(&files);
    let mut cfg = PeerConfig::new("PYSCP", "127.0.0.1", port, "UMBRA");
    cfg.max_pdu = 16_384;
    let mut scu = Scu::associate(&cfg, &proposals.verification()).unwrap();
    assert_eq!(scu.echo().unwrap(), Status::SUCCESS);
    for f in &files {
        assert_eq!(
            scu.store_file(f).unwrap().status,
            Status::SUCCESS,
            "{}",
            f.display()
        );
    }
    scu.release().unwrap();
    for (n, f) in files.iter().enumerate() {
        let got = std::fs::read(dir.path().join(format!("{n:04}.bin"))).unwrap();
        let info = std::fs::read_to_string(dir.path().join(format!("{n:04}.txt"))).unwrap();
        let meta = read_meta(f).unwrap();
        assert_eq!(
            info,
            format!("{}\n{}", meta.sop_instance_uid, meta.transfer_syntax_uid)
        );
        assert!(got == data_set(f), "{}: bytes differ", f.display());
    }
}
