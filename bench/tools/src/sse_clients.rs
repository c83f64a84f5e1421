//! `sse-clients`: N browsers' worth of the web view's event stream
//! (`GET /ui/events`, bearer token), each read at full speed and counted:
//! what the server's Server-Sent Events cost while DHCP runs
//! (bench/webui.sh).

use std::net::SocketAddr;
use std::time::Instant;

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bytes and `changes` events one client read.
#[derive(Default, Clone, Copy)]
pub struct Read {
    pub bytes: u64,
    pub change_events: u64,
}

/// One client: open the stream, read until `until`.
pub async fn follow(
    web: SocketAddr,
    token: Option<String>,
    until: Instant,
) -> anyhow::Result<Read> {
    let mut s = TcpStream::connect(web).await.context("connect")?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    s.write_all(
        format!(
            "GET /ui/events HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n{auth}\r\n"
        )
        .as_bytes(),
    )
    .await?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut read = Read::default();
    let mut head_checked = false;
    let deadline = tokio::time::Instant::from_std(until);
    loop {
        let n = match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return Ok(read),
            Ok(r) => r.context("read")?,
        };
        if n == 0 {
            bail!("the server closed the stream after {} bytes", read.bytes);
        }
        let chunk = &buf[..n];
        if !head_checked {
            if !chunk.starts_with(b"HTTP/1.1 200") {
                bail!("not a stream: {}", String::from_utf8_lossy(chunk));
            }
            head_checked = true;
        }
        read.bytes += n as u64;
        read.change_events += chunk
            .windows(15)
            .filter(|w| *w == b"event: changes\n")
            .count() as u64;
    }
}
