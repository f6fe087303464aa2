//! Forwarding a de-identified copy to its destination: C-STORE (an association kept open per
//! destination while work flows) or STOW-RS. The copy is sent as it is encoded, from memory and
//! the received object's own pixel data; it is never written to disk first.
//!
//! The outcome says what to do next: delivered; refused for a reason that will not pass
//! (quarantine); failed for a reason that may pass (retry later).

use crate::config::Target;
use std::collections::HashMap;
use std::io::Read;
use std::time::{Duration, Instant};
use umbra_files::Encoded;

/// How a delivery attempt ended.
#[derive(Debug)]
pub enum Delivery {
    /// The destination has it.
    Delivered,
    /// The destination refused it for a reason that will not pass.
    Refused(String),
    /// It failed for a reason that may pass (peer down, out of resources, network).
    Failed(String),
}

/// How long an idle association stays open.
const IDLE: Duration = Duration::from_secs(2);

/// Presentation contexts an association proposes at most (each pair takes two).
const MAX_PAIRS: usize = 60;

/// One destination's open association and what it was asked to carry.
struct Open {
    scu: umbra_dimse::Scu,
    used: Instant,
}

/// A worker's open connections, one association per DIMSE destination.
#[derive(Default)]
pub struct Sender {
    open: HashMap<String, Open>,
    /// (SOP class, transfer syntax) pairs sent to each destination so far: a new association
    /// proposes them all, so a mix of objects does not need one association each.
    seen: HashMap<String, Vec<(String, String)>>,
}

impl Sender {
    /// Sends the de-identified copy `file` to `target`.
    pub fn send(&mut self, dest: &str, target: &Target, file: &Encoded<'_>) -> Delivery {
        match target {
            Target::Dimse {
                ae_title,
                host,
                port,
                calling_ae,
                tls,
            } => {
                #[allow(unused_mut)]
                let mut peer = umbra_dimse::PeerConfig::new(
                    ae_title.as_str(),
                    host.as_str(),
                    *port,
                    calling_ae.as_str(),
                );
                #[cfg(feature = "tls")]
                {
                    peer.tls = tls.as_ref().map(|t| (t.config.clone(), t.name.clone()));
                }
                #[cfg(not(feature = "tls"))]
                let _: &Option<crate::tls::ClientTls> = tls;
                self.send_dimse(dest, &peer, file)
            }
            Target::Stow { url, token, tls } => {
                send_stow(url, token.as_deref(), tls.as_ref(), file)
            }
            Target::Folder { .. } => Delivery::Failed("a folder is written, not sent".into()),
        }
    }

    fn send_dimse(
        &mut self,
        dest: &str,
        peer: &umbra_dimse::PeerConfig,
        file: &Encoded<'_>,
    ) -> Delivery {
        let meta = match umbra_dimse::parse_part10_meta(file.head()) {
            Ok(m) => m,
            Err(e) => return Delivery::Refused(format!("cannot read the copy's meta group: {e}")),
        };
        let pair = (meta.sop_class_uid.clone(), meta.transfer_syntax_uid.clone());
        let seen = self.seen.entry(dest.to_string()).or_default();
        if !seen.contains(&pair) {
            if seen.len() >= MAX_PAIRS {
                seen.remove(0);
            }
            seen.push(pair.clone());
        }
        let usable = self
            .open
            .get(dest)
            .is_some_and(|o| o.scu.context_for(&pair.0, &pair.1).is_some());
        if !usable {
            if let Some(o) = self.open.remove(dest) {
                let _ = o.scu.release();
            }
            let proposals = seen
                .iter()
                .fold(umbra_dimse::Proposals::new(), |p, (c, t)| p.object(c, t));
            match umbra_dimse::Scu::associate(peer, &proposals) {
                Ok(scu) => {
                    if scu.context_for(&pair.0, &pair.1).is_none() {
                        let _ = scu.release();
                        return Delivery::Refused(format!(
                            "the destination accepts no presentation context for SOP class {} \
                             in transfer syntax {}",
                            pair.0, pair.1
                        ));
                    }
                    self.open.insert(
                        dest.to_string(),
                        Open {
                            scu,
                            used: Instant::now(),
                        },
                    );
                }
                Err(e) => return Delivery::Failed(format!("cannot associate: {e}")),
            }
        }
        let Some(open) = self.open.get_mut(dest) else {
            return Delivery::Failed("no association".into());
        };
        open.used = Instant::now();
        let stored = match file.parts() {
            // all in memory: sent from where it is
            Some(parts) => open.scu.store_part10_parts(&parts),
            None => match file.rest() {
                Ok(mut rest) => open.scu.store_part10(file.head(), &mut rest, file.len()),
                Err(e) => {
                    return Delivery::Failed(format!("cannot read the received object: {e}"));
                }
            },
        };
        match stored {
            Ok(r) if r.status.is_success() || r.status.is_warning() => Delivery::Delivered,
            Ok(r) => {
                // 0xA7xx out of resources may pass; the peer would refuse anything else again
                if r.status.0 & 0xFF00 == 0xA700 {
                    Delivery::Failed(format!("the destination answered status {}", r.status))
                } else {
                    Delivery::Refused(format!("the destination refused it: status {}", r.status))
                }
            }
            Err(e) => {
                // the association may be broken: a new one next time
                if let Some(o) = self.open.remove(dest) {
                    o.scu.abort();
                }
                Delivery::Failed(format!("C-STORE failed: {e}"))
            }
        }
    }

    /// Releases associations idle for more than two seconds.
    pub fn close_idle(&mut self) {
        let idle: Vec<String> = self
            .open
            .iter()
            .filter(|(_, o)| o.used.elapsed() > IDLE)
            .map(|(k, _)| k.clone())
            .collect();
        for k in idle {
            if let Some(o) = self.open.remove(&k) {
                let _ = o.scu.release();
            }
        }
    }

    /// Releases every association.
    pub fn close_all(&mut self) {
        for (_, o) in self.open.drain() {
            let _ = o.scu.release();
        }
    }
}

/// POSTs one copy to a STOW-RS `/studies` URL as multipart/related; type="application/dicom".
fn send_stow(
    url: &str,
    token: Option<&str>,
    tls: Option<&crate::tls::ClientTls>,
    file: &Encoded<'_>,
) -> Delivery {
    let rest = match file.rest() {
        Ok(r) => r,
        Err(e) => return Delivery::Failed(format!("cannot read the received object: {e}")),
    };
    let boundary = format!("umbra-{}", crate::spool::new_id());
    let head = format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n");
    let tail = format!("\r\n--{boundary}--\r\n");
    let mut body = std::io::Cursor::new(head.into_bytes())
        .chain(file.head())
        .chain(rest)
        .chain(std::io::Cursor::new(tail.into_bytes()));
    #[allow(unused_mut)]
    let mut config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(600)));
    #[cfg(feature = "tls")]
    if let Some(t) = tls {
        let roots: Vec<ureq::tls::Certificate<'static>> = t
            .cas
            .iter()
            .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
            .collect();
        config = config.tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::new_with_certs(&roots))
                // the gateway's own certificate, for servers that ask for one (mutual TLS)
                .client_cert(t.stow_identity.clone())
                .build(),
        );
    }
    #[cfg(not(feature = "tls"))]
    let _ = tls;
    let agent: ureq::Agent = config.build().into();
    let mut req = agent.post(url).header(
        "Content-Type",
        format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"),
    );
    req = req.header("Accept", "application/dicom+json");
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    match req.send(ureq::SendBody::from_reader(&mut body)) {
        Ok(resp) => classify_stow(resp.status().as_u16()),
        Err(e) => Delivery::Failed(format!("STOW-RS request failed: {e}")),
    }
}

/// STOW-RS status → what to do. 200: stored. 202 (stored with warnings or failures: with one
/// instance, it was not stored as sent), 400, 409, 413, 415: the server will say it again.
/// Authentication, throttling and server errors may pass.
fn classify_stow(code: u16) -> Delivery {
    match code {
        200 => Delivery::Delivered,
        202 | 400 | 409 | 413 | 415 => Delivery::Refused(format!("STOW-RS answered {code}")),
        _ => Delivery::Failed(format!("STOW-RS answered {code}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stow_statuses_that_will_not_pass_quarantine_the_rest_retry() {
        assert!(matches!(classify_stow(200), Delivery::Delivered));
        for c in [202, 400, 409, 413, 415] {
            assert!(matches!(classify_stow(c), Delivery::Refused(_)), "{c}");
        }
        for c in [401, 403, 408, 429, 500, 503] {
            assert!(matches!(classify_stow(c), Delivery::Failed(_)), "{c}");
        }
    }
}
