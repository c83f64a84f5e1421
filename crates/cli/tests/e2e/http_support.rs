//! The HTTP endpoint (issue 19) as the e2e tests reach it: one raw
//! HTTP/1.1 request, and the control API through `leaseline ctl`, with
//! the bearer token the tests configure.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_leaseline");

/// The bearer token of the tests' `[http]` sections.
pub const TOKEN: &str = "0123456789abcdef-test-token";

/// One HTTP/1.1 request; (status, body).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the http endpoint");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let auth = token.map(|t| format!("Bearer {t}"));
    s.write_all(request(method, path, auth.as_deref(), body).as_bytes())
        .expect("send");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read the answer");
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text}"));
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_owned())
}

/// A request with `Connection: close`; `auth` is the whole Authorization
/// header value, if any.
pub fn request(method: &str, path: &str, auth: Option<&str>, body: &str) -> String {
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "{method} {path} HTTP/1.1\r\nHost: leaseline\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// A server's control API, as `leaseline ctl --server URL --token TOKEN`
/// reaches it.
pub struct Ctl {
    url: String,
    token: String,
}

impl Ctl {
    /// The control API listening on `web` (`[http] listen`), [`TOKEN`]
    /// required.
    pub fn new(web: SocketAddr) -> Ctl {
        Ctl {
            url: format!("http://{web}"),
            token: TOKEN.to_owned(),
        }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(["ctl", "--server", &self.url, "--token", &self.token]);
        cmd
    }

    /// `leaseline ctl --json ARGS`: (exit status, the answer).
    pub fn run(&self, args: &[&str]) -> (i32, Value) {
        let out = self
            .command()
            .arg("--json")
            .args(args)
            .output()
            .expect("run leaseline ctl");
        let answer = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "ctl {args:?}: not JSON ({e}): {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().expect("exit status"), answer)
    }

    /// `leaseline ctl ARGS` as an operator reads it: (exit status, stdout).
    pub fn run_text(&self, args: &[&str]) -> (i32, String) {
        let out = self
            .command()
            .args(args)
            .output()
            .expect("run leaseline ctl");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.code().expect("exit status"), stdout)
    }
}
