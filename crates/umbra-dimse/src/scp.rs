//! The storage SCP: accepts an association, answers C-ECHO, streams each C-STORE data set into
//! a sink the caller supplies, and refuses every other command.

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use dicom_ul::pdu::{AbortRQServiceProviderReason, Pdu, PresentationContextResultReason};
use ipnet::IpNet;
use tracing::{debug, info, warn};

use crate::assoc::{self, Negotiated, RejectReason};
use crate::commands::{CommandSet, MAX_COMMAND_SET, field};
use crate::error::Error;
use crate::pdu::{Connection, Received, Stream, Taken};
use crate::sop::{VERIFICATION, choose_transfer_syntax, is_storage_sop_class};
use crate::status::Status;

/// Configuration of a storage SCP.
#[derive(Debug, Clone)]
pub struct ScpConfig {
    /// This SCP's AE title; associations calling another title are rejected.
    pub ae_title: String,
    /// Calling AE titles allowed to associate (`None`: any).
    pub allowed_calling: Option<Vec<String>>,
    /// Peer addresses allowed to connect (`None`: any). Others are disconnected before any PDU
    /// is read.
    pub allowed_addresses: Option<Vec<IpNet>>,
    /// Maximum PDU length announced to (and enforced on) peers.
    pub max_pdu: u32,
    /// Time allowed for the A-ASSOCIATE-RQ to arrive after the connection opens.
    pub association_timeout: Duration,
    /// Read and write timeout once the association is established.
    pub dimse_timeout: Duration,
    /// TLS server configuration: when set, every connection is a TLS connection.
    #[cfg(feature = "tls")]
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
}

impl ScpConfig {
    /// A configuration with `ae_title`, no allow-lists, 64 KiB PDUs, 30 s association and
    /// 60 s DIMSE timeouts.
    pub fn new(ae_title: impl Into<String>) -> Self {
        ScpConfig {
            ae_title: ae_title.into(),
            allowed_calling: None,
            allowed_addresses: None,
            max_pdu: 65_536,
            association_timeout: Duration::from_secs(30),
            dimse_timeout: Duration::from_secs(60),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Whether `ip` may connect.
    pub fn address_allowed(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.allowed_addresses
            .as_ref()
            .is_none_or(|nets| nets.iter().any(|n| n.contains(&ip)))
    }
}

/// Who is on the other end of an association.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssociationInfo {
    /// The peer's (calling) AE title.
    pub calling_ae: String,
    /// The AE title the peer called.
    pub called_ae: String,
    /// The peer's socket address.
    pub peer: SocketAddr,
}

/// A C-STORE request as the handler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreRequest {
    /// Affected SOP Class UID.
    pub sop_class_uid: String,
    /// Affected SOP Instance UID (an identifier of the object: do not log it).
    pub sop_instance_uid: String,
    /// Transfer syntax of the data set bytes that will arrive (the presentation context's).
    pub transfer_syntax_uid: String,
    /// Message ID.
    pub message_id: u16,
    /// Priority (0 medium, 1 high, 2 low).
    pub priority: u16,
    /// Move Originator AE title and Message ID, when the store is part of a C-MOVE.
    pub move_originator: Option<(String, u16)>,
}

/// Receives the objects of an SCP.
pub trait StoreHandler: Send + Sync {
    /// Called once the A-ASSOCIATE-RQ has passed the AE and address checks; an error rejects
    /// the association (e.g. disk full → [`RejectReason::LocalLimitExceeded`]).
    fn accept_association(&self, _info: &AssociationInfo) -> Result<(), RejectReason> {
        Ok(())
    }

    /// A connection or association refused before [`Self::accept_association`] was asked: its
    /// address or calling AE title not allowed, a called AE title not this SCP's, a request
    /// this SCP does not speak, or more associations than allowed. For counting; `why` says
    /// which.
    fn refused(&self, _why: &str) {}

    /// Called before the data set arrives; may refuse (e.g. disk full → Status 0xA700 "Out of
    /// resources"). The data set is then read and discarded, and the status sent.
    fn begin(
        &self,
        assoc: &AssociationInfo,
        req: &StoreRequest,
    ) -> Result<Box<dyn StoreSink>, Status>;
}

/// Where one data set goes, fragment by fragment, exactly as received (no meta group: see
/// [`crate::part10_header`]).
pub trait StoreSink: std::io::Write + Send {
    /// Whole data set received; make it durable (fsync) and return the DIMSE status to send
    /// (0x0000 success).
    fn commit(self: Box<Self>) -> Status;
    /// The association broke mid-object, or a write failed: discard what was written.
    fn abort(self: Box<Self>);
    /// Whether the data set's next `n` bytes may be read from the network straight into the
    /// sink with [`StoreSink::read_from`] (it keeps the data set in memory, with room for
    /// them), skipping the copies through the connection's buffers. The default says no.
    fn reads_direct(&self, _n: usize) -> bool {
        false
    }
    /// Reads exactly `n` bytes of the data set from `from` into the sink; asked only after
    /// [`StoreSink::reads_direct`] said yes. An error breaks the association (the bytes of the
    /// PDU are no longer where they would be). The default reads them into a buffer and writes
    /// them.
    fn read_from(&mut self, from: &mut dyn std::io::Read, n: usize) -> std::io::Result<()> {
        let mut buf = vec![0; n];
        from.read_exact(&mut buf)?;
        self.write_all(&buf)
    }
}

/// What happened on one association.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssociationSummary {
    /// C-STORE requests answered with success or warning.
    pub stored: u32,
    /// C-STORE requests answered with a failure status.
    pub failed: u32,
    /// C-ECHO requests answered.
    pub echoes: u32,
    /// Other requests refused.
    pub refused: u32,
    /// Whether the association ended by an orderly release.
    pub released: bool,
}

/// A storage SCP: configuration and handler, serving one association per call.
pub struct Scp {
    config: ScpConfig,
    handler: Box<dyn StoreHandler>,
}

impl Scp {
    /// An SCP with `config` handing objects to `handler`.
    pub fn new(config: ScpConfig, handler: impl StoreHandler + 'static) -> Self {
        Scp {
            config,
            handler: Box::new(handler),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ScpConfig {
        &self.config
    }

    /// The handler.
    pub fn handler(&self) -> &dyn StoreHandler {
        self.handler.as_ref()
    }

    /// Serves one accepted TCP connection to its end: address check, TCP_NODELAY, timeouts,
    /// TLS when configured, negotiation, then messages until release or abort.
    pub fn serve_tcp(&self, socket: TcpStream) -> Result<AssociationSummary, Error> {
        let peer = socket.peer_addr()?;
        if !self.config.address_allowed(peer.ip()) {
            warn!(%peer, "connection from an address not allowed: closed");
            self.handler().refused("address not allowed");
            let _ = socket.shutdown(std::net::Shutdown::Both);
            return Err(Error::Protocol(format!(
                "address {} not allowed",
                peer.ip()
            )));
        }
        socket.set_nodelay(true)?;
        socket.set_read_timeout(Some(self.config.association_timeout))?;
        socket.set_write_timeout(Some(self.config.dimse_timeout))?;
        let control = socket.try_clone()?;
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.config.tls {
            let conn = rustls::ServerConnection::new(tls.clone())
                .map_err(|e| Error::Tls(e.to_string()))?;
            let stream = rustls::StreamOwned::new(conn, socket);
            return serve_association(stream, peer, Some(&control), &self.config, self.handler());
        }
        serve_association(socket, peer, Some(&control), &self.config, self.handler())
    }

    /// Over capacity: reads the A-ASSOCIATE-RQ (over TLS when the SCP has it, so the caller
    /// gets a proper answer there too) and answers A-ASSOCIATE-RJ, transient, local limit
    /// exceeded; `timeout` bounds every read and write.
    pub(crate) fn refuse_tcp(&self, socket: TcpStream, timeout: Duration) -> Result<(), Error> {
        self.handler().refused("over capacity");
        socket.set_nodelay(true)?;
        socket.set_read_timeout(Some(timeout))?;
        socket.set_write_timeout(Some(timeout))?;
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.config.tls {
            let conn = rustls::ServerConnection::new(tls.clone())
                .map_err(|e| Error::Tls(e.to_string()))?;
            return refuse(rustls::StreamOwned::new(conn, socket), self.config.max_pdu);
        }
        refuse(socket, self.config.max_pdu)
    }
}

/// Reads the A-ASSOCIATE-RQ on `stream` and answers A-ASSOCIATE-RJ, transient, local limit
/// exceeded.
fn refuse<S: Stream>(stream: S, max_pdu: u32) -> Result<(), Error> {
    let mut conn = Connection::new(stream);
    if let Received::Other(Pdu::AssociationRQ(_)) = conn.receive(max_pdu)? {
        conn.send(&Pdu::AssociationRJ(
            RejectReason::LocalLimitExceeded.to_pdu(),
        ))?;
    }
    Ok(())
}

/// Serves one association on `stream` from `peer`. When `socket` is given, its read timeout is
/// switched from the association timeout to the DIMSE timeout once the association is
/// established (the caller sets the first one).
pub fn serve_association<S: Stream>(
    stream: S,
    peer: SocketAddr,
    socket: Option<&TcpStream>,
    config: &ScpConfig,
    handler: &dyn StoreHandler,
) -> Result<AssociationSummary, Error> {
    let mut conn = Connection::new(stream);
    let (negotiated, info) = match negotiate(&mut conn, peer, config, handler) {
        Ok(Some(accepted)) => accepted,
        Ok(None) => return Ok(AssociationSummary::default()),
        Err(e) => {
            if matches!(e, Error::MalformedPdu(_) | Error::PduTooLarge { .. }) {
                let _ = conn.send(&assoc::abort_pdu(
                    AbortRQServiceProviderReason::UnrecognizedPdu,
                ));
            }
            warn!(%peer, error = %e, "association request failed");
            return Err(e);
        }
    };
    if let Some(s) = socket {
        s.set_read_timeout(Some(config.dimse_timeout))?;
    }
    let mut session = Session {
        conn,
        negotiated,
        info,
        config,
        handler,
        state: State::Idle,
        summary: AssociationSummary::default(),
        outgoing: Vec::new(),
    };
    let result = session.run();
    if let State::Data {
        target: Target::Sink(sink),
        ..
    } = std::mem::replace(&mut session.state, State::Idle)
    {
        sink.abort();
    }
    match result {
        Ok(()) => {
            info!(
                calling_ae = %session.info.calling_ae,
                stored = session.summary.stored,
                failed = session.summary.failed,
                "association released"
            );
            Ok(session.summary)
        }
        Err(e) => {
            if !matches!(e, Error::Aborted | Error::Closed) {
                let reason = match &e {
                    Error::UnexpectedPdu(_) => AbortRQServiceProviderReason::UnexpectedPdu,
                    Error::MalformedPdu(_) | Error::PduTooLarge { .. } => {
                        AbortRQServiceProviderReason::UnrecognizedPdu
                    }
                    _ => AbortRQServiceProviderReason::ReasonNotSpecified,
                };
                let _ = session.conn.send(&assoc::abort_pdu(reason));
            }
            warn!(calling_ae = %session.info.calling_ae, error = %e, "association aborted");
            Err(e)
        }
    }
}

/// Reads the A-ASSOCIATE-RQ and answers it. `None`: rejected (and answered).
fn negotiate<S: Stream>(
    conn: &mut Connection<S>,
    peer: SocketAddr,
    config: &ScpConfig,
    handler: &dyn StoreHandler,
) -> Result<Option<(Negotiated, AssociationInfo)>, Error> {
    let rq = match conn.receive(config.max_pdu)? {
        Received::Other(Pdu::AssociationRQ(rq)) => rq,
        Received::Other(Pdu::AbortRQ { .. }) => return Err(Error::Aborted),
        Received::Other(other) => {
            let _ = conn.send(&assoc::abort_pdu(
                AbortRQServiceProviderReason::UnexpectedPdu,
            ));
            return Err(Error::UnexpectedPdu(other.short_description().to_string()));
        }
        Received::PData(_) => {
            let _ = conn.send(&assoc::abort_pdu(
                AbortRQServiceProviderReason::UnexpectedPdu,
            ));
            return Err(Error::UnexpectedPdu("P-DATA-TF before association".into()));
        }
    };
    let info = AssociationInfo {
        calling_ae: rq.calling_ae_title.trim().to_string(),
        called_ae: rq.called_ae_title.trim().to_string(),
        peer,
    };
    let reject = |conn: &mut Connection<S>, rj: dicom_ul::pdu::AssociationRJ, why: &str| {
        info!(calling_ae = %info.calling_ae, called_ae = %info.called_ae, %peer, reason = why, "association rejected");
        conn.send(&Pdu::AssociationRJ(rj)).map(|()| None)
    };
    if let Err(rj) = assoc::check_rq_basics(&rq) {
        let why = "protocol version or application context";
        handler.refused(why);
        return reject(conn, rj, why);
    }
    if info.called_ae != config.ae_title.trim() {
        let r = RejectReason::CalledAeNotRecognized;
        handler.refused(&r.to_string());
        return reject(conn, r.to_pdu(), &r.to_string());
    }
    if let Some(allowed) = &config.allowed_calling
        && !allowed.iter().any(|a| a.trim() == info.calling_ae)
    {
        let r = RejectReason::CallingAeNotRecognized;
        handler.refused(&r.to_string());
        return reject(conn, r.to_pdu(), &r.to_string());
    }
    if let Err(r) = handler.accept_association(&info) {
        return reject(conn, r.to_pdu(), &r.to_string());
    }
    let (ac, negotiated) = assoc::build_ac(&rq, config.max_pdu, |pc| {
        let abs = pc.abstract_syntax.trim_end_matches('\0');
        if abs != VERIFICATION && !is_storage_sop_class(abs) {
            return Err(PresentationContextResultReason::AbstractSyntaxNotSupported);
        }
        choose_transfer_syntax(pc.transfer_syntaxes.iter().map(String::as_str))
            .map(str::to_string)
            .ok_or(PresentationContextResultReason::TransferSyntaxesNotSupported)
    });
    conn.send(&Pdu::AssociationAC(ac))?;
    info!(
        calling_ae = %info.calling_ae,
        %peer,
        contexts = negotiated.contexts.len(),
        proposed = rq.presentation_contexts.len(),
        "association accepted"
    );
    Ok(Some((negotiated, info)))
}

enum Target {
    Sink(Box<dyn StoreSink>),
    /// Data set read and dropped; the status to answer with.
    Discard(Status),
}

enum State {
    Idle,
    Command {
        context_id: u8,
        bytes: Vec<u8>,
    },
    Data {
        context_id: u8,
        rq: CommandSet,
        target: Target,
    },
}

struct Session<'a, S> {
    conn: Connection<S>,
    negotiated: Negotiated,
    info: AssociationInfo,
    config: &'a ScpConfig,
    handler: &'a dyn StoreHandler,
    state: State,
    summary: AssociationSummary,
    /// Responses to send once the current PDU is processed: (context ID, command set).
    outgoing: Vec<(u8, CommandSet)>,
}

impl<S: Stream> Session<'_, S> {
    fn run(&mut self) -> Result<(), Error> {
        loop {
            let max = self.config.max_pdu;
            // a data set coming into a sink: its fragments may go straight there
            let direct = match &mut self.state {
                State::Data {
                    context_id,
                    target: Target::Sink(sink),
                    ..
                } => Some((*context_id, &mut **sink as &mut dyn StoreSink)),
                _ => None,
            };
            // The PDVs borrow the connection's buffer; the state and handler are separate
            // fields, so responses wait in `outgoing` until the PDU is processed.
            let pdu = match self.conn.receive_to(max, direct)? {
                Taken::Direct { is_last } => {
                    if is_last {
                        data_set_received(&mut self.state, &mut self.summary, &mut self.outgoing);
                    }
                    None
                }
                Taken::Pdu(Received::PData(pdvs)) => {
                    for pdv in pdvs {
                        step(
                            &mut self.state,
                            &self.negotiated,
                            &self.info,
                            self.handler,
                            &mut self.summary,
                            &mut self.outgoing,
                            pdv,
                        )?;
                    }
                    None
                }
                Taken::Pdu(Received::Other(pdu)) => Some(pdu),
            };
            for (context_id, rsp) in std::mem::take(&mut self.outgoing) {
                let max_data = self.negotiated.max_send_data(self.config.max_pdu);
                self.conn
                    .send_fragments(context_id, true, &rsp.encode(), max_data)?;
            }
            match pdu {
                None => {}
                Some(Pdu::ReleaseRQ) => {
                    if !matches!(self.state, State::Idle) {
                        return Err(Error::Protocol("release requested mid-message".into()));
                    }
                    self.conn.send(&Pdu::ReleaseRP)?;
                    self.summary.released = true;
                    return Ok(());
                }
                Some(Pdu::AbortRQ { .. }) => return Err(Error::Aborted),
                Some(other) => {
                    return Err(Error::UnexpectedPdu(other.short_description().to_string()));
                }
            }
        }
    }
}

/// Processes one PDV.
fn step(
    state: &mut State,
    negotiated: &Negotiated,
    info: &AssociationInfo,
    handler: &dyn StoreHandler,
    summary: &mut AssociationSummary,
    outgoing: &mut Vec<(u8, CommandSet)>,
    pdv: crate::pdu::Pdv<'_>,
) -> Result<(), Error> {
    let Some(context) = negotiated.context(pdv.context_id) else {
        return Err(Error::Protocol(format!(
            "PDV on presentation context {} that was not accepted",
            pdv.context_id
        )));
    };
    match state {
        State::Idle | State::Command { .. } => {
            if !pdv.is_command {
                return Err(Error::Protocol(
                    "data set fragment without a command".into(),
                ));
            }
            let mut bytes = match std::mem::replace(state, State::Idle) {
                State::Command { context_id, bytes } => {
                    if context_id != pdv.context_id {
                        return Err(Error::Protocol(
                            "command fragments on different presentation contexts".into(),
                        ));
                    }
                    bytes
                }
                _ => Vec::new(),
            };
            if bytes.len() + pdv.data.len() > MAX_COMMAND_SET {
                return Err(Error::Command(crate::commands::CommandError::TooLarge));
            }
            bytes.extend_from_slice(pdv.data);
            if !pdv.is_last {
                *state = State::Command {
                    context_id: pdv.context_id,
                    bytes,
                };
                return Ok(());
            }
            let cmd = CommandSet::decode(&bytes)?;
            if cmd.is_response() {
                return Err(Error::Protocol(format!(
                    "unexpected {} from the requestor",
                    cmd.name()
                )));
            }
            *state = start_command(cmd, context, info, handler, summary, outgoing)?;
            Ok(())
        }
        State::Data {
            context_id, target, ..
        } => {
            if pdv.is_command {
                return Err(Error::Protocol("command fragment inside a data set".into()));
            }
            if *context_id != pdv.context_id {
                return Err(Error::Protocol(
                    "data set fragments on different presentation contexts".into(),
                ));
            }
            if let Target::Sink(sink) = target
                && let Err(e) = sink.write_all(pdv.data)
            {
                warn!(error = %e, "writing a received data set failed: refusing the object");
                if let Target::Sink(sink) =
                    std::mem::replace(target, Target::Discard(Status::OUT_OF_RESOURCES))
                {
                    sink.abort();
                }
            }
            if pdv.is_last {
                data_set_received(state, summary, outgoing);
            }
            Ok(())
        }
    }
}

/// The last fragment of a data set came: the sink commits it (or the status it was refused
/// with stands), and the response waits in `outgoing`.
fn data_set_received(
    state: &mut State,
    summary: &mut AssociationSummary,
    outgoing: &mut Vec<(u8, CommandSet)>,
) {
    if let State::Data {
        context_id,
        rq,
        target,
    } = std::mem::replace(state, State::Idle)
    {
        let status = match target {
            Target::Sink(sink) => sink.commit(),
            Target::Discard(status) => status,
        };
        finish(context_id, &rq, status, summary, outgoing);
    }
}

/// Acts on a complete command set: the next state.
fn start_command(
    cmd: CommandSet,
    context: &crate::AcceptedContext,
    info: &AssociationInfo,
    handler: &dyn StoreHandler,
    summary: &mut AssociationSummary,
    outgoing: &mut Vec<(u8, CommandSet)>,
) -> Result<State, Error> {
    let context_id = context.id;
    match cmd.command_field {
        field::C_ECHO_RQ => {
            cmd.validate()?;
            debug!(calling_ae = %info.calling_ae, "C-ECHO");
            summary.echoes += 1;
            let rsp = CommandSet::echo_rsp(cmd.message_id.unwrap_or(0), Status::SUCCESS);
            if cmd.has_data_set {
                return Ok(State::Data {
                    context_id,
                    rq: cmd,
                    target: Target::Discard(Status::SUCCESS),
                });
            }
            outgoing.push((context_id, rsp));
            Ok(State::Idle)
        }
        field::C_STORE_RQ => {
            cmd.validate()?;
            let sop_class = cmd.affected_sop_class_uid.clone().unwrap_or_default();
            let target = if sop_class != context.abstract_syntax {
                warn!(%sop_class, context = %context.abstract_syntax, "C-STORE on a context of another SOP class");
                Target::Discard(Status::SOP_CLASS_NOT_SUPPORTED)
            } else {
                let req = StoreRequest {
                    sop_class_uid: sop_class,
                    sop_instance_uid: cmd.affected_sop_instance_uid.clone().unwrap_or_default(),
                    transfer_syntax_uid: context.transfer_syntax.clone(),
                    message_id: cmd.message_id.unwrap_or(0),
                    priority: cmd.priority.unwrap_or(0),
                    move_originator: cmd
                        .move_originator_ae
                        .clone()
                        .map(|ae| (ae, cmd.move_originator_message_id.unwrap_or(0))),
                };
                debug!(
                    calling_ae = %info.calling_ae,
                    sop_class = %req.sop_class_uid,
                    transfer_syntax = %req.transfer_syntax_uid,
                    "C-STORE"
                );
                match handler.begin(info, &req) {
                    Ok(sink) => Target::Sink(sink),
                    Err(status) => Target::Discard(status),
                }
            };
            Ok(State::Data {
                context_id,
                rq: cmd,
                target,
            })
        }
        field::C_CANCEL_RQ => Ok(State::Idle),
        _ => {
            debug!(
                command = cmd.name(),
                field = cmd.command_field,
                "refused: unrecognised operation"
            );
            summary.refused += 1;
            let rsp = CommandSet::refusal(&cmd, Status::UNRECOGNIZED_OPERATION);
            if cmd.has_data_set {
                // answered once its data set has been read and dropped
                return Ok(State::Data {
                    context_id,
                    rq: cmd,
                    target: Target::Discard(Status::UNRECOGNIZED_OPERATION),
                });
            }
            outgoing.push((context_id, rsp));
            Ok(State::Idle)
        }
    }
}

/// Queues the response to a request whose data set has been read.
fn finish(
    context_id: u8,
    rq: &CommandSet,
    status: Status,
    summary: &mut AssociationSummary,
    outgoing: &mut Vec<(u8, CommandSet)>,
) {
    let rsp = match rq.command_field {
        field::C_STORE_RQ => {
            if status.is_failure() {
                summary.failed += 1;
            } else {
                summary.stored += 1;
            }
            debug!(status = %status, "C-STORE answered");
            CommandSet::store_rsp(rq, status, None)
        }
        field::C_ECHO_RQ => CommandSet::echo_rsp(rq.message_id.unwrap_or(0), status),
        _ => CommandSet::refusal(rq, status),
    };
    outgoing.push((context_id, rsp));
}
