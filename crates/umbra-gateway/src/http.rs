//! The HTTP listener: `GET /healthz`, `GET /metrics`, and DICOMweb STOW-RS
//! (`POST /studies`, `POST /studies/{study}`; `multipart/related; type="application/dicom"`)
//! with a bearer token.
//!
//! Each part is streamed into the spool and made durable before the response says it is
//! stored. Status: 200 every instance stored, 202 some, 409 none; 401 without the token, 415
//! for another media type, 413 for a body longer than `max_body_mib` (announced, or found so
//! while it streams: the part it breaks off is not stored), 503 when the spool's disk is nearly
//! full (with `Retry-After`).

use crate::pipeline::Shared;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What the handlers need.
#[derive(Clone)]
pub struct HttpState {
    /// The workers' shared state (spool, queue, metrics).
    pub shared: Arc<Shared>,
    /// STOW-RS bearer token; `None` turns STOW-RS off.
    pub token: Option<Arc<str>>,
    /// Refuse new objects below this much free space (bytes).
    pub min_free: u64,
    /// Largest STOW-RS request body (bytes).
    pub max_body: u64,
}

/// The router.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/studies", post(stow))
        .route("/studies/{study}", post(stow))
        .with_state(state)
}

async fn healthz(State(s): State<HttpState>) -> Response {
    let shared = s.shared.clone();
    let min_free = s.min_free;
    let trouble = tokio::task::spawn_blocking(move || {
        if shared.depth().is_err() {
            return Some("the queue cannot be read");
        }
        if shared.queue_failing() {
            return Some("the queue cannot be written");
        }
        match shared.spool.free_bytes() {
            Err(_) => Some("the spool cannot be read"),
            Ok(free) if free < min_free => Some("the spool's disk is nearly full"),
            Ok(_) => None,
        }
    })
    .await
    .unwrap_or(Some("internal error"));
    match trouble {
        None => (StatusCode::OK, "ok\n").into_response(),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

async fn metrics(State(s): State<HttpState>) -> Response {
    let shared = s.shared.clone();
    let text = tokio::task::spawn_blocking(move || {
        shared
            .metrics
            .render(shared.depth().ok(), shared.spool.free_bytes().ok())
    })
    .await
    .unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

fn plain(code: StatusCode, msg: &str) -> Response {
    (code, format!("{msg}\n")).into_response()
}

/// Constant-time comparison, so the token cannot be guessed byte by byte from timings.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The boundary of a `multipart/related` body whose root type is `application/dicom`.
fn boundary(content_type: &str) -> Result<String, &'static str> {
    let mut parts = content_type.split(';');
    let mime = parts.next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("multipart/related") {
        return Err("expected multipart/related");
    }
    let mut boundary = None;
    for p in parts {
        let Some((k, v)) = p.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"');
        match k.trim().to_ascii_lowercase().as_str() {
            "boundary" => boundary = Some(v.to_string()),
            "type" if !v.eq_ignore_ascii_case("application/dicom") => {
                return Err("only type=\"application/dicom\" is accepted");
            }
            _ => {}
        }
    }
    boundary.filter(|b| !b.is_empty()).ok_or("no boundary")
}

async fn stow(State(s): State<HttpState>, headers: HeaderMap, body: Body) -> Response {
    let Some(token) = &s.token else {
        return plain(StatusCode::NOT_FOUND, "STOW-RS is not configured");
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !same(presented.trim().as_bytes(), token.as_bytes()) {
        s.shared.metrics.refused();
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "bearer token required\n",
        )
            .into_response();
    }
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let boundary = match boundary(ct) {
        Ok(b) => b,
        Err(e) => return plain(StatusCode::UNSUPPORTED_MEDIA_TYPE, e),
    };
    if s.shared.spool.free_bytes().unwrap_or(0) < s.min_free {
        s.shared.metrics.refused();
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "60")],
            "the spool's disk is nearly full\n",
        )
            .into_response();
    }
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > s.max_body) {
        s.shared.metrics.refused();
        return plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
    }
    // the body is read as it comes (a raw body has no limit of its own): past `max_body` the
    // stream ends in an error, which breaks off the part being received
    let too_large = Arc::new(AtomicBool::new(false));
    let (max_body, over, mut seen) = (s.max_body, too_large.clone(), 0u64);
    let stream = body.into_data_stream().map(move |r| {
        let chunk = r.map_err(std::io::Error::other)?;
        seen += chunk.len() as u64;
        if seen > max_body {
            over.store(true, Ordering::Relaxed);
            return Err(std::io::Error::other("request body too large"));
        }
        Ok(chunk)
    });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut stored: Vec<(String, String)> = Vec::new();
    let mut failed = 0usize;
    loop {
        let mut field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!("STOW-RS: malformed multipart body: {e}");
                failed += 1;
                break;
            }
        };
        let is_dicom = field
            .content_type()
            .is_none_or(|m| m.essence_str().eq_ignore_ascii_case("application/dicom"));
        if !is_dicom {
            failed += 1;
            continue;
        }
        let mut incoming = match s.shared.spool.receive() {
            Ok(i) => i,
            Err(e) => {
                tracing::error!("STOW-RS: cannot write to the spool: {e}");
                failed += 1;
                continue;
            }
        };
        let mut head: Vec<u8> = Vec::new();
        let mut ok = true;
        loop {
            match field.chunk().await {
                Ok(Some(chunk)) => {
                    if head.len() < 64 << 10 {
                        let take = chunk.len().min((64 << 10) - head.len());
                        head.extend_from_slice(&chunk[..take]);
                    }
                    if let Err(e) = incoming.write_all(&chunk) {
                        tracing::error!("STOW-RS: cannot write to the spool: {e}");
                        ok = false;
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!("STOW-RS: body broke off: {e}");
                    ok = false;
                    break;
                }
            }
        }
        let meta = match umbra_dimse::parse_part10_meta(&head) {
            Ok(m) if ok => m,
            _ => {
                // not stored: the partial file goes with `incoming`
                failed += 1;
                continue;
            }
        };
        let shared = s.shared.clone();
        let committed =
            tokio::task::spawn_blocking(move || shared.store(incoming, "stow", "")).await;
        match committed {
            Ok(Ok(_)) => {
                stored.push((meta.sop_class_uid, meta.sop_instance_uid));
            }
            _ => {
                tracing::error!("STOW-RS: cannot make an object durable");
                failed += 1;
            }
        }
    }
    let code = match (stored.len(), failed) {
        _ if too_large.load(Ordering::Relaxed) => {
            s.shared.metrics.refused();
            StatusCode::PAYLOAD_TOO_LARGE
        }
        (0, 0) => return plain(StatusCode::BAD_REQUEST, "no instance in the request"),
        (_, 0) => StatusCode::OK,
        (0, _) => StatusCode::CONFLICT,
        _ => StatusCode::ACCEPTED,
    };
    // the response names the stored instances (the sender's own UIDs) only
    let refs: Vec<serde_json::Value> = stored
        .iter()
        .map(|(c, i)| {
            serde_json::json!({
                "00081150": {"vr": "UI", "Value": [c]},
                "00081155": {"vr": "UI", "Value": [i]},
            })
        })
        .collect();
    let mut body = serde_json::Map::new();
    if !refs.is_empty() {
        body.insert(
            "00081199".into(),
            serde_json::json!({"vr": "SQ", "Value": refs}),
        );
    }
    (
        code,
        [(header::CONTENT_TYPE, "application/dicom+json")],
        serde_json::Value::Object(body).to_string(),
    )
        .into_response()
}

/// An HTTPS listener for axum: a task accepts TCP connections (with TCP_NODELAY) and runs each
/// one's TLS handshake in a task of its own (at most ten seconds, at most
/// [`HANDSHAKES_AT_ONCE`] at a time), so a client that connects and stays silent holds up
/// nobody else; finished handshakes are handed to axum in the order they finish.
#[cfg(feature = "tls")]
pub struct TlsListener {
    ready: tokio::sync::mpsc::Receiver<(
        tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
        std::net::SocketAddr,
    )>,
    local: std::io::Result<std::net::SocketAddr>,
}

/// TLS handshakes under way at once; past it, new connections wait to be accepted.
#[cfg(feature = "tls")]
pub const HANDSHAKES_AT_ONCE: usize = 256;

#[cfg(feature = "tls")]
impl TlsListener {
    /// Wraps a bound TCP listener; starts accepting at once (call it inside the runtime).
    pub fn new(tcp: tokio::net::TcpListener, config: Arc<rustls::ServerConfig>) -> Self {
        let local = tcp.local_addr();
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let (tx, ready) = tokio::sync::mpsc::channel(64);
        let slots = Arc::new(tokio::sync::Semaphore::new(HANDSHAKES_AT_ONCE));
        tokio::spawn(async move {
            loop {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let accepted = tokio::select! {
                    a = tcp.accept() => a,
                    // the server is gone: stop accepting
                    () = tx.closed() => return,
                };
                let (socket, addr) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!("HTTPS accept: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = socket.set_nodelay(true);
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let shake = tokio::time::timeout(
                        std::time::Duration::from_secs(10),
                        acceptor.accept(socket),
                    );
                    match shake.await {
                        Ok(Ok(tls)) => {
                            drop(slot);
                            let _ = tx.send((tls, addr)).await;
                        }
                        Ok(Err(e)) => tracing::warn!(peer = %addr, "TLS handshake failed: {e}"),
                        Err(_) => tracing::warn!(peer = %addr, "TLS handshake timed out"),
                    }
                });
            }
        });
        TlsListener { ready, local }
    }
}

#[cfg(feature = "tls")]
impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // (the accepting task ends only once this listener is gone)
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        match &self.local {
            Ok(a) => Ok(*a),
            Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_are_read_from_a_stow_content_type() {
        assert_eq!(
            boundary("multipart/related; type=\"application/dicom\"; boundary=abc").unwrap(),
            "abc"
        );
        assert_eq!(
            boundary("Multipart/Related; boundary=\"x y\"").unwrap(),
            "x y"
        );
        assert!(boundary("multipart/form-data; boundary=a").is_err());
        assert!(boundary("multipart/related; type=\"application/dicom+xml\"; boundary=a").is_err());
        assert!(boundary("multipart/related").is_err());
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"secret", b"secret"));
        assert!(!same(b"secret", b"secreT"));
        assert!(!same(b"secret", b"secret2"));
        assert!(!same(b"", b"x"));
    }
}
