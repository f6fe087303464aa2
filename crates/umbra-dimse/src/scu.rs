//! The storage SCU: associates with a peer, sends C-ECHO and C-STORE (streaming each data set
//! from its file in PDVs that respect the peer's maximum PDU length), and releases.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use dicom_ul::pdu::{AbortRQServiceProviderReason, Pdu};
use tracing::{debug, info};

use crate::assoc::{self, AcceptedContext, Negotiated};
use crate::commands::{CommandSet, MAX_COMMAND_SET, PRIORITY_MEDIUM, field};
use crate::error::Error;
use crate::part10::{META_PREFIX, Part10Meta, parse_part10_meta};
use crate::pdu::{Connection, PDU_HEADER, PDV_HEADER, Received, Stream};
use crate::sop::{EXPLICIT_VR_LE, IMPLICIT_VR_LE, VERIFICATION};
use crate::status::Status;

/// Deflated Explicit VR Little Endian.
const DEFLATED_EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1.99";

/// Largest P-DATA-TF this SCU sends when the peer sets no limit.
const UNLIMITED_SEND: u32 = 1024 * 1024;

/// Bytes of a data set held in memory sent per vectored write (several PDUs at once).
const SEND_BATCH: usize = 256 << 10;

/// Whether a data set of `data_len` bytes goes out with one trailing zero byte: PS3.5 §A.5 pads
/// an odd deflated bit stream so. Any other odd length is refused: every value, so every data
/// set, has an even length (PS3.5 §7.1), and peers abort on an odd fragment.
fn pads_with_zero(meta: &Part10Meta, data_len: u64) -> Result<bool, Error> {
    if data_len.is_multiple_of(2) {
        return Ok(false);
    }
    if meta.transfer_syntax_uid == DEFLATED_EXPLICIT_VR_LE {
        return Ok(true);
    }
    Err(Error::Part10(format!("data set has odd length {data_len}")))
}

/// A remote SCP and how to reach it.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// The peer's AE title (called AE).
    pub ae_title: String,
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Our AE title (calling AE).
    pub calling_ae: String,
    /// Maximum PDU length announced to the peer (what we accept).
    pub max_pdu: u32,
    /// Time allowed to open the TCP connection.
    pub connect_timeout: Duration,
    /// Time allowed for the peer to answer the association request and the release.
    pub association_timeout: Duration,
    /// Read and write timeout for DIMSE messages.
    pub dimse_timeout: Duration,
    /// TLS client configuration and the server name to verify; `None`: plain TCP.
    #[cfg(feature = "tls")]
    pub tls: Option<(
        std::sync::Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
}

impl PeerConfig {
    /// A peer at `host:port` called `ae_title`, calling as `calling_ae`, 64 KiB PDUs, 10 s
    /// connect, 30 s association and 60 s DIMSE timeouts.
    pub fn new(
        ae_title: impl Into<String>,
        host: impl Into<String>,
        port: u16,
        calling_ae: impl Into<String>,
    ) -> Self {
        PeerConfig {
            ae_title: ae_title.into(),
            host: host.into(),
            port,
            calling_ae: calling_ae.into(),
            max_pdu: 65_536,
            connect_timeout: Duration::from_secs(10),
            association_timeout: Duration::from_secs(30),
            dimse_timeout: Duration::from_secs(60),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

/// The presentation contexts to propose: abstract syntaxes with their transfer syntaxes.
#[derive(Debug, Clone, Default)]
pub struct Proposals {
    contexts: Vec<(String, Vec<String>)>,
}

impl Proposals {
    /// No contexts yet.
    pub fn new() -> Self {
        Proposals::default()
    }

    /// Adds Verification in Implicit VR Little Endian.
    pub fn verification(mut self) -> Self {
        self.push(VERIFICATION, vec![IMPLICIT_VR_LE.to_string()]);
        self
    }

    /// Adds what sending an object of `sop_class` in `transfer_syntax` needs: a context with
    /// exactly its transfer syntax, and one with Explicit and Implicit VR Little Endian for the
    /// SOP class. Duplicates are not added twice.
    pub fn object(mut self, sop_class: &str, transfer_syntax: &str) -> Self {
        self.push(sop_class, vec![transfer_syntax.to_string()]);
        self.push(
            sop_class,
            vec![EXPLICIT_VR_LE.to_string(), IMPLICIT_VR_LE.to_string()],
        );
        self
    }

    /// Proposals for a set of files: reads each file's meta group. Returns the proposals and
    /// each file's meta (or why it cannot be sent).
    pub fn for_files<P: AsRef<Path>>(paths: &[P]) -> (Self, Vec<Result<Part10Meta, Error>>) {
        let mut proposals = Proposals::new();
        let metas: Vec<_> = paths.iter().map(|p| read_meta(p.as_ref())).collect();
        for meta in metas.iter().flatten() {
            proposals = proposals.object(&meta.sop_class_uid, &meta.transfer_syntax_uid);
        }
        (proposals, metas)
    }

    /// Number of presentation contexts.
    pub fn len(&self) -> usize {
        self.contexts.len()
    }

    /// Whether nothing is proposed.
    pub fn is_empty(&self) -> bool {
        self.contexts.is_empty()
    }

    fn push(&mut self, abstract_syntax: &str, ts: Vec<String>) {
        if !self
            .contexts
            .iter()
            .any(|(a, t)| a == abstract_syntax && *t == ts)
        {
            self.contexts.push((abstract_syntax.to_string(), ts));
        }
    }
}

/// Reads the meta group of a Part 10 file.
pub fn read_meta(path: &Path) -> Result<Part10Meta, Error> {
    let mut file = File::open(path)?;
    let mut prefix = Vec::with_capacity(4096);
    file.by_ref()
        .take(META_PREFIX as u64)
        .read_to_end(&mut prefix)?;
    parse_part10_meta(&prefix)
}

/// A C-STORE response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreResponse {
    /// Status (0000,0900).
    pub status: Status,
    /// Error Comment (0000,0902), if the peer sent one.
    pub error_comment: Option<String>,
}

/// An established association as requestor.
pub struct Scu {
    conn: Connection<Box<dyn Stream>>,
    negotiated: Negotiated,
    socket: TcpStream,
    max_pdu: u32,
    send_pdu: u32,
    next_message_id: u16,
    association_timeout: Duration,
    frame: Vec<u8>,
}

impl Scu {
    /// Connects (TCP_NODELAY on), proposes `proposals` and waits for acceptance.
    pub fn associate(peer: &PeerConfig, proposals: &Proposals) -> Result<Scu, Error> {
        if proposals.contexts.len() > 128 {
            return Err(Error::TooManyPresentationContexts(proposals.contexts.len()));
        }
        if proposals.is_empty() {
            return Err(Error::Protocol("no presentation context to propose".into()));
        }
        let addr = (peer.host.as_str(), peer.port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| Error::Protocol(format!("{} does not resolve", peer.host)))?;
        let socket = TcpStream::connect_timeout(&addr, peer.connect_timeout)?;
        socket.set_nodelay(true)?;
        socket.set_read_timeout(Some(peer.association_timeout))?;
        socket.set_write_timeout(Some(peer.dimse_timeout))?;
        let control = socket.try_clone()?;
        let stream: Box<dyn Stream> = {
            #[cfg(feature = "tls")]
            {
                match &peer.tls {
                    Some((config, name)) => {
                        let conn = rustls::ClientConnection::new(config.clone(), name.clone())
                            .map_err(|e| Error::Tls(e.to_string()))?;
                        Box::new(rustls::StreamOwned::new(conn, socket))
                    }
                    None => Box::new(socket),
                }
            }
            #[cfg(not(feature = "tls"))]
            {
                Box::new(socket)
            }
        };
        let mut conn = Connection::new(stream);
        let contexts: Vec<(u8, String, Vec<String>)> = proposals
            .contexts
            .iter()
            .enumerate()
            .map(|(i, (a, t))| ((2 * i + 1) as u8, a.clone(), t.clone()))
            .collect();
        let negotiated = assoc::request(
            &mut conn,
            &peer.calling_ae,
            &peer.ae_title,
            peer.max_pdu,
            &contexts,
        )?;
        control.set_read_timeout(Some(peer.dimse_timeout))?;
        let send_pdu = match negotiated.peer_max_pdu {
            0 => UNLIMITED_SEND,
            n if n < 64 => {
                let _ = conn.send(&assoc::abort_pdu(
                    AbortRQServiceProviderReason::InvalidPduParameter,
                ));
                return Err(Error::Protocol(format!(
                    "peer's maximum PDU length {n} is too small"
                )));
            }
            n => n,
        };
        info!(
            called_ae = %peer.ae_title,
            host = %peer.host,
            port = peer.port,
            accepted = negotiated.contexts.len(),
            proposed = contexts.len(),
            "association established"
        );
        Ok(Scu {
            conn,
            negotiated,
            socket: control,
            max_pdu: peer.max_pdu,
            send_pdu,
            next_message_id: 1,
            association_timeout: peer.association_timeout,
            frame: Vec::new(),
        })
    }

    /// The accepted presentation contexts.
    pub fn accepted_contexts(&self) -> &[AcceptedContext] {
        &self.negotiated.contexts
    }

    /// The peer's maximum PDU length (0: no limit).
    pub fn peer_max_pdu(&self) -> u32 {
        self.negotiated.peer_max_pdu
    }

    /// The accepted context for `sop_class` in exactly `transfer_syntax`, if any.
    pub fn context_for(&self, sop_class: &str, transfer_syntax: &str) -> Option<&AcceptedContext> {
        self.negotiated
            .contexts
            .iter()
            .find(|c| c.abstract_syntax == sop_class && c.transfer_syntax == transfer_syntax)
    }

    fn message_id(&mut self) -> u16 {
        let id = self.next_message_id;
        self.next_message_id = self.next_message_id.checked_add(1).unwrap_or(1);
        id
    }

    /// Sends C-ECHO and returns the peer's status.
    pub fn echo(&mut self) -> Result<Status, Error> {
        let context = self
            .negotiated
            .contexts
            .iter()
            .find(|c| c.abstract_syntax == VERIFICATION)
            .map(|c| c.id)
            .ok_or_else(|| Error::NoPresentationContext {
                sop_class: VERIFICATION.into(),
                transfer_syntax: IMPLICIT_VR_LE.into(),
            })?;
        let id = self.message_id();
        self.send_command(context, &CommandSet::echo_rq(id))?;
        let rsp = self.receive_response(field::C_ECHO_RSP, id)?;
        Ok(rsp.status.unwrap_or(Status::PROCESSING_FAILURE))
    }

    /// Sends the Part 10 file at `path` with C-STORE: its data set (the bytes after the meta
    /// group) streams from the file in the file's transfer syntax. If the peer accepted no
    /// context for the object's SOP class in that transfer syntax, fails with
    /// [`Error::NoPresentationContext`] before sending anything (the association stays usable);
    /// so does a file whose data set has an odd length ([`Error::Part10`]).
    pub fn store_file(&mut self, path: &Path) -> Result<StoreResponse, Error> {
        let mut file = File::open(path)?;
        let mut prefix = Vec::with_capacity(4096);
        file.by_ref()
            .take(META_PREFIX as u64)
            .read_to_end(&mut prefix)?;
        let meta = parse_part10_meta(&prefix)?;
        drop(prefix);
        let data_len = file.metadata()?.len().saturating_sub(meta.data_set_offset);
        file.seek(SeekFrom::Start(meta.data_set_offset))?;
        self.store_data_set(&meta, data_len, &mut file)
    }

    /// [`Self::store_file`] on a Part 10 file that is not on disk as one (a copy made to be
    /// sent is never written first): `head` holds the file's start, at least its whole meta
    /// group; `rest` yields the bytes after `head`; `len` is the whole file's length.
    pub fn store_part10(
        &mut self,
        head: &[u8],
        rest: &mut dyn Read,
        len: u64,
    ) -> Result<StoreResponse, Error> {
        let meta = parse_part10_meta(head)?;
        let data = usize::try_from(meta.data_set_offset)
            .ok()
            .and_then(|at| head.get(at..))
            .ok_or_else(|| Error::Part10("the meta group runs past the head".into()))?;
        let data_len = len
            .checked_sub(meta.data_set_offset)
            .ok_or_else(|| Error::Part10("the file is shorter than its meta group".into()))?;
        self.store_data_set(&meta, data_len, &mut data.chain(rest))
    }

    /// Sends the data set of a Part 10 file described by `meta`: `data_len` bytes from `data`.
    fn store_data_set(
        &mut self,
        meta: &Part10Meta,
        data_len: u64,
        data: &mut dyn Read,
    ) -> Result<StoreResponse, Error> {
        if self
            .context_for(&meta.sop_class_uid, &meta.transfer_syntax_uid)
            .is_none()
        {
            return Err(Error::NoPresentationContext {
                sop_class: meta.sop_class_uid.clone(),
                transfer_syntax: meta.transfer_syntax_uid.clone(),
            });
        }
        if pads_with_zero(meta, data_len)? {
            let mut padded = data.chain(&[0u8][..]);
            return self.store(
                &meta.sop_class_uid,
                &meta.sop_instance_uid,
                &meta.transfer_syntax_uid,
                &mut padded,
            );
        }
        self.store(
            &meta.sop_class_uid,
            &meta.sop_instance_uid,
            &meta.transfer_syntax_uid,
            data,
        )
    }

    /// Sends C-STORE for a data set read from `data` (to its end), encoded in
    /// `transfer_syntax`.
    pub fn store(
        &mut self,
        sop_class: &str,
        sop_instance: &str,
        transfer_syntax: &str,
        data: &mut dyn Read,
    ) -> Result<StoreResponse, Error> {
        self.store_with(sop_class, sop_instance, transfer_syntax, |scu, context| {
            scu.send_data(context, data)
        })
    }

    /// [`Self::store_file`] on a Part 10 file held in memory as consecutive `parts` (the first
    /// holding at least the whole meta group): the parts are sent as they are, each PDU
    /// gathered from them by the kernel, never copied into a buffer first.
    pub fn store_part10_parts(&mut self, parts: &[&[u8]]) -> Result<StoreResponse, Error> {
        let head = parts.first().copied().unwrap_or_default();
        let meta = parse_part10_meta(head)?;
        let mut skip = usize::try_from(meta.data_set_offset)
            .ok()
            .filter(|&at| at <= head.len())
            .ok_or_else(|| Error::Part10("the meta group runs past the head".into()))?;
        let mut data: Vec<&[u8]> = Vec::with_capacity(parts.len() + 1);
        for p in parts {
            let n = skip.min(p.len());
            skip -= n;
            if n < p.len() {
                data.push(&p[n..]);
            }
        }
        let data_len: usize = data.iter().map(|p| p.len()).sum();
        if pads_with_zero(&meta, data_len as u64)? {
            data.push(&[0]);
        }
        self.store_with(
            &meta.sop_class_uid,
            &meta.sop_instance_uid,
            &meta.transfer_syntax_uid,
            |scu, context| scu.send_data_parts(context, &data),
        )
    }

    /// C-STORE-RQ, the data set as `send` sends it on the presentation context given, then the
    /// response.
    fn store_with(
        &mut self,
        sop_class: &str,
        sop_instance: &str,
        transfer_syntax: &str,
        send: impl FnOnce(&mut Self, u8) -> Result<(), Error>,
    ) -> Result<StoreResponse, Error> {
        let context = self
            .context_for(sop_class, transfer_syntax)
            .map(|c| c.id)
            .ok_or_else(|| Error::NoPresentationContext {
                sop_class: sop_class.to_string(),
                transfer_syntax: transfer_syntax.to_string(),
            })?;
        let id = self.message_id();
        let rq = CommandSet::store_rq(id, sop_class, sop_instance, PRIORITY_MEDIUM, None);
        self.send_command(context, &rq)?;
        send(self, context)?;
        let rsp = self.receive_response(field::C_STORE_RSP, id)?;
        let status = rsp.status.unwrap_or(Status::PROCESSING_FAILURE);
        debug!(%sop_class, %status, "C-STORE answered");
        Ok(StoreResponse {
            status,
            error_comment: rsp.error_comment,
        })
    }

    fn send_command(&mut self, context: u8, cmd: &CommandSet) -> Result<(), Error> {
        let max = (self.send_pdu as usize).saturating_sub(PDV_HEADER);
        self.conn.send_fragments(context, true, &cmd.encode(), max)
    }

    /// Streams `data` in PDVs of the largest size the peer allows, one PDV per PDU, the data
    /// read straight into the frame sent. One chunk is read ahead so that the last one is
    /// flagged.
    fn send_data(&mut self, context: u8, data: &mut dyn Read) -> Result<(), Error> {
        let chunk = (self.send_pdu as usize).saturating_sub(PDV_HEADER).max(1);
        let head = PDU_HEADER + PDV_HEADER;
        let mut current = std::mem::take(&mut self.frame);
        current.resize(head + chunk, 0);
        let mut next = vec![0u8; head + chunk];
        let mut len = read_full(data, &mut current[head..])?;
        loop {
            let next_len = if len == chunk {
                read_full(data, &mut next[head..])?
            } else {
                0
            };
            let last = next_len == 0;
            self.conn
                .send_pdv_frame(&mut current[..head + len], context, false, last)?;
            if last {
                break;
            }
            std::mem::swap(&mut current, &mut next);
            len = next_len;
        }
        self.frame = current;
        Ok(())
    }

    /// Sends the data set held as consecutive `parts` in PDVs of the largest size the peer
    /// allows, one PDV per PDU, each PDU's data taken from the parts in place; PDUs go out
    /// [`SEND_BATCH`] bytes at a time, one vectored write for many.
    fn send_data_parts(&mut self, context: u8, parts: &[&[u8]]) -> Result<(), Error> {
        let chunk = (self.send_pdu as usize).saturating_sub(PDV_HEADER).max(1);
        let mut left: usize = parts.iter().map(|p| p.len()).sum();
        let mut parts = parts.iter().copied().filter(|p| !p.is_empty());
        let mut current: &[u8] = &[];
        let mut batch: Vec<(Vec<&[u8]>, bool)> = Vec::new();
        let mut batched = 0;
        loop {
            // one PDV: `chunk` bytes (fewer for the last), from as many parts as it spans
            let mut pdv = Vec::with_capacity(2);
            let mut need = chunk.min(left);
            while need > 0 {
                if current.is_empty() {
                    // `left` is what the parts hold, so they never run out before it does
                    let Some(next) = parts.next() else { break };
                    current = next;
                }
                let n = need.min(current.len());
                pdv.push(&current[..n]);
                current = &current[n..];
                need -= n;
            }
            let len: usize = pdv.iter().map(|p| p.len()).sum();
            if len == 0 && left > 0 {
                return Err(Error::Part10("the data set's parts ended early".into()));
            }
            left -= len;
            let last = left == 0;
            batch.push((pdv, last));
            batched += len;
            if last || batched >= SEND_BATCH {
                self.conn.send_pdvs(context, false, &batch)?;
                batch.clear();
                batched = 0;
            }
            if last {
                return Ok(());
            }
        }
    }

    fn receive_response(&mut self, expected: u16, id: u16) -> Result<CommandSet, Error> {
        let mut bytes = Vec::new();
        loop {
            let mut complete = false;
            match self.conn.receive(self.max_pdu)? {
                Received::PData(pdvs) => {
                    for pdv in pdvs {
                        if !pdv.is_command || complete {
                            return Err(Error::Protocol(
                                "unexpected data set in a response".into(),
                            ));
                        }
                        if bytes.len() + pdv.data.len() > MAX_COMMAND_SET {
                            return Err(Error::Command(crate::commands::CommandError::TooLarge));
                        }
                        bytes.extend_from_slice(pdv.data);
                        complete = pdv.is_last;
                    }
                }
                Received::Other(Pdu::AbortRQ { .. }) => return Err(Error::Aborted),
                Received::Other(other) => {
                    let _ = self.conn.send(&assoc::abort_pdu(
                        AbortRQServiceProviderReason::UnexpectedPdu,
                    ));
                    return Err(Error::UnexpectedPdu(other.short_description().to_string()));
                }
            }
            if complete {
                let rsp = CommandSet::decode(&bytes)?;
                rsp.validate()?;
                if rsp.command_field != expected || rsp.message_id_being_responded_to != Some(id) {
                    return Err(Error::Protocol(format!(
                        "expected a response to message {id}, got {} for {:?}",
                        rsp.name(),
                        rsp.message_id_being_responded_to
                    )));
                }
                if rsp.has_data_set {
                    return Err(Error::Protocol("response announces a data set".into()));
                }
                return Ok(rsp);
            }
        }
    }

    /// Releases the association (A-RELEASE-RQ, waits for A-RELEASE-RP) and closes the socket.
    pub fn release(mut self) -> Result<(), Error> {
        self.socket
            .set_read_timeout(Some(self.association_timeout))?;
        self.conn.send(&Pdu::ReleaseRQ)?;
        let result = match self.conn.receive(self.max_pdu)? {
            Received::Other(Pdu::ReleaseRP) => Ok(()),
            Received::Other(Pdu::AbortRQ { .. }) => Err(Error::Aborted),
            Received::Other(other) => {
                Err(Error::UnexpectedPdu(other.short_description().to_string()))
            }
            Received::PData(_) => Err(Error::UnexpectedPdu("P-DATA-TF after A-RELEASE-RQ".into())),
        };
        let _ = self.socket.shutdown(std::net::Shutdown::Both);
        result
    }

    /// Aborts the association (A-ABORT) and closes the socket.
    pub fn abort(mut self) {
        let _ = self.conn.send(&Pdu::AbortRQ {
            source: dicom_ul::pdu::AbortRQSource::ServiceUser,
        });
        let _ = self.socket.shutdown(std::net::Shutdown::Both);
    }
}

/// Reads until `buf` is full or the reader ends; returns the count.
fn read_full(data: &mut dyn Read, buf: &mut [u8]) -> Result<usize, Error> {
    let mut filled = 0;
    while filled < buf.len() {
        match data.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::Io(e)),
        }
    }
    Ok(filled)
}
