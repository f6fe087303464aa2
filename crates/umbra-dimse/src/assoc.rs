//! Association negotiation (PS3.8 §7.1, §9.3.2–9.3.4) on both sides, over dicom-ul's PDU types.

use std::fmt;

use dicom_ul::pdu::{
    AbortRQServiceProviderReason, AbortRQSource, AssociationAC, AssociationRJ, AssociationRJResult,
    AssociationRJServiceProviderASCEReason, AssociationRJServiceProviderPresentationReason,
    AssociationRJServiceUserReason, AssociationRJSource, AssociationRQ, Pdu,
    PresentationContextProposed, PresentationContextResult, PresentationContextResultReason,
    UserVariableItem,
};

use crate::error::Error;
use crate::part10::{IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME};
use crate::pdu::{Connection, Received, Stream};

/// DICOM Application Context Name.
pub(crate) const APPLICATION_CONTEXT: &str = "1.2.840.10008.3.1.1.1";

/// Why the SCP refuses an association (sent as A-ASSOCIATE-RJ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// Transient, service provider (presentation): local limit exceeded, e.g. too many
    /// associations or no disk space. The peer may try again later.
    LocalLimitExceeded,
    /// Transient, service provider (presentation): temporary congestion.
    TemporaryCongestion,
    /// Permanent, service user: calling AE title not recognised.
    CallingAeNotRecognized,
    /// Permanent, service user: called AE title not recognised.
    CalledAeNotRecognized,
    /// Permanent, service user: no reason given.
    Permanent,
}

impl RejectReason {
    pub(crate) fn to_pdu(self) -> AssociationRJ {
        use AssociationRJResult::{Permanent, Transient};
        use AssociationRJServiceProviderPresentationReason as P;
        use AssociationRJServiceUserReason as U;
        use AssociationRJSource::{ServiceProviderPresentation, ServiceUser};
        let (result, source) = match self {
            RejectReason::LocalLimitExceeded => (
                Transient,
                ServiceProviderPresentation(P::LocalLimitExceeded),
            ),
            RejectReason::TemporaryCongestion => (
                Transient,
                ServiceProviderPresentation(P::TemporaryCongestion),
            ),
            RejectReason::CallingAeNotRecognized => {
                (Permanent, ServiceUser(U::CallingAETitleNotRecognized))
            }
            RejectReason::CalledAeNotRecognized => {
                (Permanent, ServiceUser(U::CalledAETitleNotRecognized))
            }
            RejectReason::Permanent => (Permanent, ServiceUser(U::NoReasonGiven)),
        };
        AssociationRJ { result, source }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RejectReason::LocalLimitExceeded => "local limit exceeded",
            RejectReason::TemporaryCongestion => "temporary congestion",
            RejectReason::CallingAeNotRecognized => "calling AE title not recognised",
            RejectReason::CalledAeNotRecognized => "called AE title not recognised",
            RejectReason::Permanent => "no reason given",
        })
    }
}

/// An accepted presentation context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedContext {
    /// Presentation context ID (odd, 1–255).
    pub id: u8,
    /// Abstract syntax (SOP class) UID.
    pub abstract_syntax: String,
    /// The transfer syntax agreed for it.
    pub transfer_syntax: String,
}

/// The outcome of a successful negotiation.
#[derive(Debug, Clone)]
pub(crate) struct Negotiated {
    /// The peer's maximum PDU length (0: no limit).
    pub peer_max_pdu: u32,
    pub contexts: Vec<AcceptedContext>,
}

impl Negotiated {
    /// The largest PDV data this side may put in one P-DATA-TF PDU to the peer.
    pub fn max_send_data(&self, own_max_pdu: u32) -> usize {
        let limit = if self.peer_max_pdu == 0 {
            own_max_pdu
        } else {
            self.peer_max_pdu
        };
        (limit as usize)
            .saturating_sub(crate::pdu::PDV_HEADER)
            .max(1)
    }

    pub fn context(&self, id: u8) -> Option<&AcceptedContext> {
        self.contexts.iter().find(|c| c.id == id)
    }
}

pub(crate) fn abort_pdu(reason: AbortRQServiceProviderReason) -> Pdu {
    Pdu::AbortRQ {
        source: AbortRQSource::ServiceProvider(reason),
    }
}

pub(crate) fn user_variables(max_pdu: u32) -> Vec<UserVariableItem> {
    vec![
        UserVariableItem::MaxLength(max_pdu),
        UserVariableItem::ImplementationClassUID(IMPLEMENTATION_CLASS_UID.to_string()),
        UserVariableItem::ImplementationVersionName(IMPLEMENTATION_VERSION_NAME.to_string()),
    ]
}

pub(crate) fn peer_max_pdu(vars: &[UserVariableItem]) -> u32 {
    vars.iter()
        .find_map(|v| match v {
            UserVariableItem::MaxLength(n) => Some(*n),
            _ => None,
        })
        .unwrap_or(0)
}

/// The acceptor's decision for one proposed context: its transfer syntax, or why not.
pub(crate) type ContextDecision = Result<String, PresentationContextResultReason>;

/// Builds the A-ASSOCIATE-AC for `rq` given a decision per proposed context.
pub(crate) fn build_ac(
    rq: &AssociationRQ,
    max_pdu: u32,
    decide: impl Fn(&PresentationContextProposed) -> ContextDecision,
) -> (AssociationAC, Negotiated) {
    let mut results = Vec::with_capacity(rq.presentation_contexts.len());
    let mut contexts = Vec::new();
    for pc in &rq.presentation_contexts {
        match decide(pc) {
            Ok(ts) => {
                contexts.push(AcceptedContext {
                    id: pc.id,
                    abstract_syntax: pc.abstract_syntax.trim_end_matches('\0').to_string(),
                    transfer_syntax: ts.clone(),
                });
                results.push(PresentationContextResult {
                    id: pc.id,
                    reason: PresentationContextResultReason::Acceptance,
                    transfer_syntax: ts,
                });
            }
            Err(reason) => results.push(PresentationContextResult {
                id: pc.id,
                reason,
                // ignored by the requestor; must still be present
                transfer_syntax: crate::sop::IMPLICIT_VR_LE.to_string(),
            }),
        }
    }
    let ac = AssociationAC {
        protocol_version: 1,
        calling_ae_title: rq.calling_ae_title.clone(),
        called_ae_title: rq.called_ae_title.clone(),
        application_context_name: APPLICATION_CONTEXT.to_string(),
        presentation_contexts: results,
        user_variables: user_variables(max_pdu),
    };
    let negotiated = Negotiated {
        peer_max_pdu: peer_max_pdu(&rq.user_variables),
        contexts,
    };
    (ac, negotiated)
}

/// Checks the fixed parts of an A-ASSOCIATE-RQ: protocol version and application context.
pub(crate) fn check_rq_basics(rq: &AssociationRQ) -> Result<(), AssociationRJ> {
    if rq.protocol_version & 1 == 0 {
        return Err(AssociationRJ {
            result: AssociationRJResult::Permanent,
            source: AssociationRJSource::ServiceProviderASCE(
                AssociationRJServiceProviderASCEReason::ProtocolVersionNotSupported,
            ),
        });
    }
    if rq.application_context_name.trim_end_matches('\0') != APPLICATION_CONTEXT {
        return Err(AssociationRJ {
            result: AssociationRJResult::Permanent,
            source: AssociationRJSource::ServiceUser(
                AssociationRJServiceUserReason::ApplicationContextNameNotSupported,
            ),
        });
    }
    Ok(())
}

/// Requestor side: sends an A-ASSOCIATE-RQ proposing `contexts` (ID, abstract syntax,
/// transfer syntaxes) and waits for the answer.
pub(crate) fn request<S: Stream>(
    conn: &mut Connection<S>,
    calling_ae: &str,
    called_ae: &str,
    max_pdu: u32,
    contexts: &[(u8, String, Vec<String>)],
) -> Result<Negotiated, Error> {
    let rq = AssociationRQ {
        protocol_version: 1,
        calling_ae_title: calling_ae.to_string(),
        called_ae_title: called_ae.to_string(),
        application_context_name: APPLICATION_CONTEXT.to_string(),
        presentation_contexts: contexts
            .iter()
            .map(|(id, abs, ts)| PresentationContextProposed {
                id: *id,
                abstract_syntax: abs.clone(),
                transfer_syntaxes: ts.clone(),
            })
            .collect(),
        user_variables: user_variables(max_pdu),
    };
    conn.send(&Pdu::AssociationRQ(rq))?;
    let pdu = match conn.receive(max_pdu)? {
        Received::Other(pdu) => pdu,
        Received::PData(_) => {
            let _ = conn.send(&abort_pdu(AbortRQServiceProviderReason::UnexpectedPdu));
            return Err(Error::UnexpectedPdu(
                "P-DATA-TF before A-ASSOCIATE-AC".into(),
            ));
        }
    };
    match pdu {
        Pdu::AssociationAC(ac) => {
            let accepted = ac
                .presentation_contexts
                .iter()
                .filter(|r| r.reason == PresentationContextResultReason::Acceptance)
                .filter_map(|r| {
                    let (_, abs, _) = contexts.iter().find(|(id, _, _)| *id == r.id)?;
                    Some(AcceptedContext {
                        id: r.id,
                        abstract_syntax: abs.clone(),
                        transfer_syntax: r.transfer_syntax.trim_end_matches('\0').to_string(),
                    })
                })
                .collect();
            Ok(Negotiated {
                peer_max_pdu: peer_max_pdu(&ac.user_variables),
                contexts: accepted,
            })
        }
        Pdu::AssociationRJ(rj) => Err(Error::Rejected {
            result: match rj.result {
                AssociationRJResult::Permanent => "permanent".into(),
                AssociationRJResult::Transient => "transient".into(),
            },
            reason: match &rj.source {
                AssociationRJSource::ServiceUser(r) => format!("service user: {r}"),
                AssociationRJSource::ServiceProviderASCE(r) => {
                    format!("service provider (ACSE): {r}")
                }
                AssociationRJSource::ServiceProviderPresentation(r) => {
                    format!("service provider (presentation): {r}")
                }
            },
        }),
        Pdu::AbortRQ { .. } => Err(Error::Aborted),
        other => {
            let _ = conn.send(&abort_pdu(AbortRQServiceProviderReason::UnexpectedPdu));
            Err(Error::UnexpectedPdu(other.short_description().to_string()))
        }
    }
}
