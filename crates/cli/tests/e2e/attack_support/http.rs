//! Raw HTTP/1.1 for the attack suite's endpoint cases: requests written
//! byte by byte as a hostile client would, the status read back.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::HTTP_TOKEN;

/// Sends `raw` on a new connection and reads the answer until the server
/// closes; (status, whole answer). Status 0: closed without an answer.
pub fn exchange(web: SocketAddr, raw: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(web).expect("connect to the http endpoint");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    // The server may answer (and close) before taking everything: the
    // answer is read while the request is still being written, so a reset
    // for the unread rest cannot discard it.
    let mut w = s.try_clone().expect("clone");
    let raw = raw.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&raw);
    });
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let _ = s.shutdown(std::net::Shutdown::Both);
    writer.join().expect("writer");
    let text = String::from_utf8_lossy(&got).into_owned();
    (status_of(&text), text)
}

/// The status code of an HTTP answer (0 if none).
pub fn status_of(text: &str) -> u16 {
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// [`crate::http_support::request`], as bytes.
pub fn request(method: &str, path: &str, auth: Option<&str>, body: &str) -> Vec<u8> {
    crate::http_support::request(method, path, auth, body).into_bytes()
}

/// `Bearer <the suite's token>`.
pub fn bearer() -> String {
    format!("Bearer {HTTP_TOKEN}")
}

/// The endpoint still answers an authorised scrape.
pub fn assert_serving(web: SocketAddr, case: &str) {
    let (status, text) = exchange(web, &request("GET", "/metrics", Some(&bearer()), ""));
    assert_eq!(
        status, 200,
        "[{case}] an authorised scrape afterwards: {text}"
    );
    assert!(text.trim_end().ends_with("# EOF"), "[{case}] a whole page");
}
