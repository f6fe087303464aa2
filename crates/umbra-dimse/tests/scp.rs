//! Our SCU against our SCP: access control, limits, refusals, hostile peers, a large object.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use dicom_ul::pdu::{
    AssociationRQ, Pdu, PresentationContextProposed, UserVariableItem, read_pdu, write_pdu,
};
use umbra_dimse::{
    AssociationInfo, CommandSet, Error, PeerConfig, Proposals, RejectReason, ScpConfig, Scu,
    Status, StoreHandler, StoreRequest, StoreSink, commands::field,
};

fn peer(port: u16, calling: &str) -> PeerConfig {
    let mut p = PeerConfig::new("UMBRA", "127.0.0.1", port, calling);
    p.association_timeout = Duration::from_secs(5);
    p.dimse_timeout = Duration::from_secs(5);
    p
}

fn echo_ok(port: u16) {
    let mut scu = Scu::associate(&peer(port, "PROBE"), &Proposals::new().verification()).unwrap();
    assert_eq!(scu.echo().unwrap(), Status::SUCCESS);
    scu.release().unwrap();
}

#[test]
fn calling_ae_allow_list() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ScpConfig::new("UMBRA");
    cfg.allowed_calling = Some(vec!["GOOD".into(), "PROBE".into()]);
    let handler = DirHandler::new(dir.path());
    let refusals = handler.refused.clone();
    let scp = OurScp::start(cfg, handler, 4);
    let refused = Scu::associate(&peer(scp.port(), "BAD"), &Proposals::new().verification());
    match refused {
        Err(Error::Rejected { result, reason }) => {
            assert_eq!(result, "permanent");
            assert!(reason.contains("calling"), "{reason}");
        }
        Err(e) => panic!("expected a rejection, got {e}"),
        Ok(_) => panic!("expected a rejection"),
    }
    let mut wrong_called = peer(scp.port(), "GOOD");
    wrong_called.ae_title = "OTHER".into();
    assert!(matches!(
        Scu::associate(&wrong_called, &Proposals::new().verification()),
        Err(Error::Rejected { .. })
    ));
    let mut good = Scu::associate(&peer(scp.port(), "GOOD"), &Proposals::new().verification())
        .expect("allowed AE");
    assert_eq!(good.echo().unwrap(), Status::SUCCESS);
    good.release().unwrap();
    scp.stop();
    let refusals = refusals.lock().unwrap();
    assert_eq!(refusals.len(), 2, "both rejections counted: {refusals:?}");
    assert!(refusals[0].contains("calling"), "{refusals:?}");
    assert!(refusals[1].contains("called"), "{refusals:?}");
}

#[test]
fn address_allow_list() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ScpConfig::new("UMBRA");
    cfg.allowed_addresses = Some(vec!["10.0.0.0/8".parse().unwrap()]);
    let handler = DirHandler::new(dir.path());
    let refused = handler.refused.clone();
    let scp = OurScp::start(cfg, handler, 4);
    assert!(Scu::associate(&peer(scp.port(), "PROBE"), &Proposals::new().verification()).is_err());
    scp.stop();
    assert_eq!(*refused.lock().unwrap(), ["address not allowed"]);
    let mut cfg = ScpConfig::new("UMBRA");
    cfg.allowed_addresses = Some(vec!["127.0.0.0/8".parse().unwrap()]);
    let scp = OurScp::start(cfg, DirHandler::new(dir.path()), 4);
    echo_ok(scp.port());
    scp.stop();
}

/// A handler that refuses associations and objects, as a gateway does when its disk is full.
struct Full;

impl StoreHandler for Full {
    fn accept_association(&self, info: &AssociationInfo) -> Result<(), RejectReason> {
        if info.calling_ae == "LATE" {
            Err(RejectReason::LocalLimitExceeded)
        } else {
            Ok(())
        }
    }
    fn begin(&self, _: &AssociationInfo, _: &StoreRequest) -> Result<Box<dyn StoreSink>, Status> {
        Err(Status::OUT_OF_RESOURCES)
    }
}

#[test]
fn refusals_by_the_handler() {
    let scp = OurScp::start(ScpConfig::new("UMBRA"), Full, 4);
    match Scu::associate(&peer(scp.port(), "LATE"), &Proposals::new().verification()) {
        Err(Error::Rejected { result, reason }) => {
            assert_eq!(result, "transient");
            assert!(reason.contains("local limit exceeded"), "{reason}");
        }
        _ => panic!("expected a transient rejection"),
    }
    let file = corpus().join("pydicom/CT_small.dcm");
    let (proposals, _) = umbra_dimse::Proposals::for_files(&[&file]);
    let mut scu = Scu::associate(&peer(scp.port(), "EARLY"), &proposals.verification()).unwrap();
    // refused before the data set; the data set is still read, the association goes on
    assert_eq!(
        scu.store_file(&file).unwrap().status,
        Status::OUT_OF_RESOURCES
    );
    assert_eq!(
        scu.store_file(&file).unwrap().status,
        Status::OUT_OF_RESOURCES
    );
    assert_eq!(scu.echo().unwrap(), Status::SUCCESS);
    scu.release().unwrap();
    scp.stop();
}

#[test]
fn maximum_concurrent_associations() {
    let dir = tempfile::tempdir().unwrap();
    let handler = DirHandler::new(dir.path());
    let refused = handler.refused.clone();
    let scp = OurScp::start(ScpConfig::new("UMBRA"), handler, 1);
    let mut first =
        Scu::associate(&peer(scp.port(), "FIRST"), &Proposals::new().verification()).unwrap();
    match Scu::associate(
        &peer(scp.port(), "SECOND"),
        &Proposals::new().verification(),
    ) {
        Err(Error::Rejected { result, reason }) => {
            assert_eq!(result, "transient");
            assert!(reason.contains("local limit exceeded"), "{reason}");
        }
        _ => panic!("expected a transient rejection beyond the limit"),
    }
    assert_eq!(*refused.lock().unwrap(), ["over capacity"]);
    assert_eq!(first.echo().unwrap(), Status::SUCCESS);
    first.release().unwrap();
    // the slot frees once the first association's thread ends
    let start = Instant::now();
    loop {
        match Scu::associate(&peer(scp.port(), "THIRD"), &Proposals::new().verification()) {
            Ok(scu) => {
                scu.release().unwrap();
                break;
            }
            Err(_) if start.elapsed() < Duration::from_secs(5) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("slot never freed: {e}"),
        }
    }
    scp.stop();
}

/// Sends `bytes`, then reads until the SCP closes; returns what it sent back.
fn hostile(port: u16, bytes: &[u8], close_write: bool) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(bytes);
    if close_write {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut back = Vec::new();
    let _ = s.read_to_end(&mut back);
    back
}

fn association_rq(contexts: &[(u8, &str)]) -> Vec<u8> {
    let rq = AssociationRQ {
        protocol_version: 1,
        calling_ae_title: "RAW".into(),
        called_ae_title: "UMBRA".into(),
        application_context_name: "1.2.840.10008.3.1.1.1".into(),
        presentation_contexts: contexts
            .iter()
            .map(|(id, a)| PresentationContextProposed {
                id: *id,
                abstract_syntax: a.to_string(),
                transfer_syntaxes: vec!["1.2.840.10008.1.2".into()],
            })
            .collect(),
        user_variables: vec![UserVariableItem::MaxLength(16384)],
    };
    let mut out = Vec::new();
    write_pdu(&mut out, &Pdu::AssociationRQ(rq)).unwrap();
    out
}

fn pdata(context: u8, control: u8, data: &[u8]) -> Vec<u8> {
    let mut out = vec![4, 0];
    out.extend_from_slice(&((data.len() + 6) as u32).to_be_bytes());
    out.extend_from_slice(&((data.len() + 2) as u32).to_be_bytes());
    out.push(context);
    out.push(control);
    out.extend_from_slice(data);
    out
}

/// The PDU types in `bytes`.
fn pdu_types(mut bytes: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    while bytes.len() >= 6 {
        types.push(bytes[0]);
        let len = u32::from_be_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]) as usize;
        bytes = &bytes[(6 + len).min(bytes.len())..];
    }
    types
}

#[test]
fn hostile_peers_are_aborted_and_the_listener_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ScpConfig::new("UMBRA");
    cfg.association_timeout = Duration::from_secs(2);
    cfg.dimse_timeout = Duration::from_secs(2);
    cfg.max_pdu = 16384;
    let scp = OurScp::start(cfg, DirHandler::new(dir.path()), 4);
    let port = scp.port();

    // random bytes
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    hostile(port, &noise, true);
    echo_ok(port);

    // a huge declared PDU length: refused at the header, nothing allocated for it
    let back = hostile(port, &[1, 0, 0xFF, 0xFF, 0xFF, 0xF0, 0, 1], false);
    assert_eq!(pdu_types(&back), vec![7], "expected A-ABORT");
    let back = hostile(port, &[4, 0, 0xFF, 0xFF, 0xFF, 0xF0], false);
    assert_eq!(pdu_types(&back), vec![7]);

    // a truncated A-ASSOCIATE-RQ, then the peer goes away
    let rq = association_rq(&[(1, "1.2.840.10008.1.1")]);
    hostile(port, &rq[..rq.len() / 2], true);
    // a truncated one and silence: the association timeout ends it
    let start = Instant::now();
    hostile(port, &rq[..rq.len() / 2], false);
    assert!(start.elapsed() < Duration::from_secs(8));
    echo_ok(port);

    // P-DATA before any association
    let back = hostile(port, &pdata(1, 3, &CommandSet::echo_rq(1).encode()), false);
    assert_eq!(pdu_types(&back), vec![7]);

    // after association: a P-DATA larger than our maximum PDU, a PDV on a context never
    // accepted, a malformed command set, data before a command
    let huge = {
        let mut p = rq.clone();
        p.extend_from_slice(&[4, 0, 0x00, 0x10, 0x00, 0x00]);
        p
    };
    let cases: Vec<Vec<u8>> = vec![
        huge,
        [rq.clone(), pdata(3, 3, &CommandSet::echo_rq(1).encode())].concat(),
        [rq.clone(), pdata(1, 3, &[0xFF; 13])].concat(),
        [rq.clone(), pdata(1, 2, &[0; 16])].concat(),
        [rq.clone(), vec![4, 0, 0, 0, 0, 4, 0, 0, 0, 9]].concat(),
    ];
    for case in &cases {
        let back = hostile(port, case, false);
        assert_eq!(pdu_types(&back), vec![2, 7], "A-ASSOCIATE-AC then A-ABORT");
    }
    echo_ok(port);

    // associated, then silent: the DIMSE timeout ends the association (an A-ABORT, then the
    // connection closes)
    let start = Instant::now();
    let back = hostile(port, &rq, false);
    let took = start.elapsed();
    assert_eq!(
        pdu_types(&back),
        vec![2, 7],
        "A-ASSOCIATE-AC, then A-ABORT at the timeout"
    );
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(8),
        "ended after {took:?}, the DIMSE timeout being 2 s"
    );
    echo_ok(port);
    scp.stop();
}

#[test]
fn unknown_commands_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let scp = OurScp::start(ScpConfig::new("UMBRA"), DirHandler::new(dir.path()), 4);
    let mut s = TcpStream::connect(scp.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // Study Root FIND is not accepted; its command on the Verification context is refused
    s.write_all(&association_rq(&[
        (1, "1.2.840.10008.1.1"),
        (3, "1.2.840.10008.5.1.4.1.2.2.1"),
    ]))
    .unwrap();
    let mut buf = vec![0u8; 65536];
    let read_one = |s: &mut TcpStream, buf: &mut Vec<u8>| -> Pdu {
        let mut have = 0;
        loop {
            if let Ok(Some(p)) = read_pdu(&buf[..have], 65536, false) {
                return p;
            }
            let n = s.read(&mut buf[have..]).unwrap();
            assert!(n > 0, "closed");
            have += n;
        }
    };
    match read_one(&mut s, &mut buf) {
        Pdu::AssociationAC(ac) => {
            assert_eq!(ac.presentation_contexts.len(), 2);
            assert!(ac.presentation_contexts.iter().any(|p| p.id == 3
                && p.reason
                    == dicom_ul::pdu::PresentationContextResultReason::AbstractSyntaxNotSupported));
        }
        other => panic!("{other:?}"),
    }
    let mut find = CommandSet::echo_rq(42);
    find.command_field = field::C_FIND_RQ;
    s.write_all(&pdata(1, 3, &find.encode())).unwrap();
    match read_one(&mut s, &mut buf) {
        Pdu::PData { data } => {
            let rsp = CommandSet::decode(&data[0].data).unwrap();
            assert_eq!(rsp.command_field, 0x8020);
            assert_eq!(rsp.message_id_being_responded_to, Some(42));
            assert_eq!(rsp.status, Some(Status::UNRECOGNIZED_OPERATION));
        }
        other => panic!("{other:?}"),
    }
    drop(s);
    echo_ok(scp.port());
    scp.stop();
}

#[test]
fn large_multiframe_object_streams() {
    let src = tempfile::tempdir().unwrap();
    let path = src.path().join("large.dcm");
    write_multiframe(&path, "2.25.1234567890", 100); // 52 MB of pixel data
    let dir = tempfile::tempdir().unwrap();
    let handler = DirHandler::new(dir.path());
    let received = handler.received.clone();
    let mut cfg = ScpConfig::new("UMBRA");
    cfg.max_pdu = 65_536;
    let scp = OurScp::start(cfg, handler, 4);
    let (proposals, _) = Proposals::for_files(&[&path]);
    let mut scu = Scu::associate(&peer(scp.port(), "BIG"), &proposals).unwrap();
    assert_eq!(scu.store_file(&path).unwrap().status, Status::SUCCESS);
    scu.release().unwrap();
    scp.stop();
    let got = received.lock().unwrap()[0].clone();
    let meta = read_meta(&path).unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    assert_eq!(got.len, size - meta.data_set_offset);
    assert!(got.len > 50_000_000);
    // fragments never exceed a PDU: the object is never held whole in memory
    assert!(got.max_write <= 65_536, "{}", got.max_write);
    let got_meta = read_meta(&got.path).unwrap();
    assert!(same_file_bytes(
        &path,
        meta.data_set_offset,
        &got.path,
        got_meta.data_set_offset
    ));
}

/// What a [`MemHandler`]'s sinks saw: data sets committed, aborted, and fragments read straight
/// from the network.
#[derive(Default)]
struct MemLog {
    committed: Vec<Vec<u8>>,
    aborted: usize,
    direct_reads: usize,
}

/// A handler whose sinks keep data sets in memory and take fragments straight from the network.
struct MemHandler(std::sync::Arc<std::sync::Mutex<MemLog>>);

struct MemSink {
    buf: Vec<u8>,
    log: std::sync::Arc<std::sync::Mutex<MemLog>>,
}

impl Write for MemSink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl StoreSink for MemSink {
    fn commit(self: Box<Self>) -> Status {
        self.log.lock().unwrap().committed.push(self.buf);
        Status::SUCCESS
    }
    fn abort(self: Box<Self>) {
        self.log.lock().unwrap().aborted += 1;
    }
    fn reads_direct(&self, _n: usize) -> bool {
        true
    }
    fn read_from(&mut self, from: &mut dyn Read, n: usize) -> std::io::Result<()> {
        self.log.lock().unwrap().direct_reads += 1;
        let got = from.take(n as u64).read_to_end(&mut self.buf)?;
        if got == n {
            Ok(())
        } else {
            Err(std::io::ErrorKind::UnexpectedEof.into())
        }
    }
}

impl StoreHandler for MemHandler {
    fn begin(&self, _: &AssociationInfo, _: &StoreRequest) -> Result<Box<dyn StoreSink>, Status> {
        Ok(Box::new(MemSink {
            buf: Vec::new(),
            log: self.0.clone(),
        }))
    }
}

/// P-DATA-TF with several PDVs: (context, control, data).
fn pdata_many(pdvs: &[(u8, u8, &[u8])]) -> Vec<u8> {
    let body: Vec<u8> = pdvs
        .iter()
        .flat_map(|(c, ctl, d)| pdata(*c, *ctl, d).split_off(6))
        .collect();
    let mut out = vec![4, 0];
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend(body);
    out
}

#[test]
fn data_set_fragments_read_straight_into_the_sink_arrive_whole_and_in_order() {
    let log = std::sync::Arc::new(std::sync::Mutex::new(MemLog::default()));
    let mut cfg = ScpConfig::new("UMBRA");
    cfg.max_pdu = 262_144;
    cfg.dimse_timeout = Duration::from_secs(5);
    let scp = OurScp::start(cfg, MemHandler(log.clone()), 4);
    let ct = "1.2.840.10008.5.1.4.1.1.2";
    let store = CommandSet::store_rq(7, ct, "2.25.99", 0, None).encode();
    // distinct bytes, so that any byte out of place shows
    let bytes: Vec<u8> = (0..400_000u32).map(|i| (i % 251) as u8).collect();
    let (d1, rest) = bytes.split_at(150_000);
    let (d2, rest) = rest.split_at(1_000);
    let (d3, rest) = rest.split_at(99_000);
    let (d4, d5) = rest.split_at(149_999);
    // one write: the command's PDU is read with read-ahead, so the first fragment comes partly
    // from the connection's buffer and partly from the socket
    let mut sent = association_rq(&[(1, ct)]);
    sent.extend(pdata(1, 3, &store));
    sent.extend(pdata(1, 0, d1)); // straight into the sink
    sent.extend(pdata_many(&[(1, 0, d2), (1, 0, d3)])); // two PDVs: through the buffer
    sent.extend(pdata(1, 0, d4)); // straight
    sent.extend(pdata(1, 2, d5)); // the last one, a single byte, straight
    let mut s = TcpStream::connect(scp.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&sent).unwrap();
    let mut back = vec![0u8; 65536];
    let mut have = 0;
    let mut pdus = Vec::new();
    while pdus.len() < 2 {
        let n = s.read(&mut back[have..]).unwrap();
        assert!(n > 0, "closed after {pdus:?}");
        have += n;
        while let Ok(Some(p)) = read_pdu(&back[..have], 65536, false) {
            let mut enc = Vec::new();
            write_pdu(&mut enc, &p).unwrap();
            back.copy_within(enc.len()..have, 0);
            have -= enc.len();
            pdus.push(p);
        }
    }
    drop(s);
    let Pdu::PData { data } = &pdus[1] else {
        panic!("{:?}", pdus[1]);
    };
    let rsp = CommandSet::decode(&data[0].data).unwrap();
    assert_eq!(
        (rsp.command_field, rsp.status),
        (field::C_STORE_RSP, Some(Status::SUCCESS))
    );
    {
        let log = log.lock().unwrap();
        assert_eq!(log.committed.len(), 1);
        assert!(log.committed[0] == bytes, "the data set as sent");
        assert_eq!(log.direct_reads, 3, "the single-PDV fragments");
    }

    // broken off inside a fragment read straight: the association ends, the sink is aborted
    let mut cut = association_rq(&[(1, ct)]);
    cut.extend(pdata(1, 3, &store));
    let whole = pdata(1, 2, d1);
    cut.extend_from_slice(&whole[..whole.len() / 2]);
    hostile(scp.port(), &cut, true);
    // a PDV that claims more than its PDU holds: refused as before, not read as a fragment
    let mut lying = association_rq(&[(1, ct)]);
    lying.extend(pdata(1, 3, &store));
    lying.extend([
        4, 0, 0, 0, 0, 10, 0, 0, 0x10, 0, 1, 2, 0xAA, 0xBB, 0xCC, 0xDD,
    ]);
    let back = hostile(scp.port(), &lying, false);
    assert_eq!(pdu_types(&back), vec![2, 7], "A-ASSOCIATE-AC then A-ABORT");
    let deadline = Instant::now() + Duration::from_secs(5);
    while log.lock().unwrap().aborted < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = log.lock().unwrap();
    assert_eq!((log.committed.len(), log.aborted), (1, 2));
    drop(log);
    echo_ok(scp.port());
    scp.stop();
}
