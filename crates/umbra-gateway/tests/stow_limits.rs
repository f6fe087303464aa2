//! STOW-RS's request size limit (`[http] max_body_mib`): a body announced longer is refused
//! before it is read, one that turns out longer while it streams (chunked) is cut off there,
//! and the part it breaks off is never stored. Runs the HTTP router in-process on a real
//! socket, speaking HTTP/1.1 by hand.

mod common;

use common::{corpus, folder_gateway, metric};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use umbra_gateway::http::{HttpState, router};

const TOKEN: &str = "stow-limit-test-token";
const BOUNDARY: &str = "umbra-test-boundary";

/// A multipart/related body with one application/dicom part per item of `parts`.
fn multipart(parts: &[&[u8]]) -> Vec<u8> {
    let mut body = Vec::new();
    for p in parts {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(p);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// Posts `body` to `/studies` (with Content-Length, or chunked in 64 KiB chunks) and returns
/// the status code. A server that answers early and closes may cut the upload short: that
/// is fine, the status line is what counts.
fn post(port: u16, body: &[u8], chunked: bool) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let length = if chunked {
        "Transfer-Encoding: chunked".to_string()
    } else {
        format!("Content-Length: {}", body.len())
    };
    let head = format!(
        "POST /studies HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Authorization: Bearer {TOKEN}\r\n\
         Content-Type: multipart/related; type=\"application/dicom\"; boundary={BOUNDARY}\r\n\
         {length}\r\n\r\n"
    );
    let _ = s.write_all(head.as_bytes());
    if chunked {
        for c in body.chunks(64 << 10) {
            if s.write_all(format!("{:x}\r\n", c.len()).as_bytes())
                .is_err()
                || s.write_all(c).is_err()
                || s.write_all(b"\r\n").is_err()
            {
                break;
            }
        }
        let _ = s.write_all(b"0\r\n\r\n");
    } else {
        let _ = s.write_all(body);
    }
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"))
}

#[test]
fn a_body_longer_than_max_body_is_refused_and_its_broken_off_part_not_stored() {
    let d = tempfile::tempdir().unwrap();
    let dest = d.path().join("dest");
    let shared = folder_gateway(&d.path().join("spool"), &[("dest", &dest)]);
    let max_body = 1u64 << 20;
    let state = HttpState {
        shared: shared.clone(),
        token: Some(TOKEN.into()),
        min_free: 0,
        max_body,
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    rt.spawn(async move { axum::serve(listener, router(state)).await });

    let small = std::fs::read(corpus("CT_small.dcm")).unwrap();
    let received = || metric(&shared, "umbra_received_total{listener=\"stow\"}");

    // within the limit: stored
    assert_eq!(post(port, &multipart(&[&small]), false), 200);
    assert_eq!(post(port, &multipart(&[&small]), true), 200);
    assert_eq!(received(), 2.0);

    // announced too long: refused before anything is read
    let big = [small.as_slice(), &vec![0u8; max_body as usize]].concat();
    assert_eq!(post(port, &multipart(&[&small, &big]), false), 413);
    assert_eq!(received(), 2.0, "nothing of a refused body is stored");

    // found too long while it streams: the first part fits and is stored, the one the limit
    // breaks off is not
    assert_eq!(post(port, &multipart(&[&small, &big]), true), 413);
    assert_eq!(received(), 3.0, "only the part before the limit is stored");
}
