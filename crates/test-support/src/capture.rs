//! Packet capture with dumpcap, read back with tshark (package tshark).

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::netns::Netns;

/// A running dumpcap writing a pcapng file. Dropping it stops the capture.
pub struct Capture {
    child: Option<Child>,
    file: PathBuf,
    stderr: mpsc::Receiver<String>,
    stderr_seen: Vec<String>,
}

impl Capture {
    /// Starts `dumpcap -i IFACE -f FILTER -w FILE` (inside `netns` if given)
    /// and returns once dumpcap reports that it is capturing into the file.
    pub fn start(iface: &str, filter: &str, file: &Path, netns: Option<&Netns>) -> Capture {
        crate::watchdog::arm();
        let dumpcap = crate::require_tool("dumpcap");
        let mut cmd = match netns {
            Some(ns) => ns.command(dumpcap),
            None => Command::new(dumpcap),
        };
        cmd.args(["-i", iface, "-f", filter, "-w"])
            .arg(file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start dumpcap");
        let stderr = child.stderr.take().expect("dumpcap stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // dumpcap separates its packet counters with '\r'.
            let mut r = BufReader::new(stderr);
            let mut buf = Vec::new();
            while matches!(r.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
                for part in String::from_utf8_lossy(&buf).split('\r') {
                    let part = part.trim();
                    if !part.is_empty() && tx.send(part.to_owned()).is_err() {
                        return;
                    }
                }
                buf.clear();
            }
        });
        let mut cap = Capture {
            child: Some(child),
            file: file.to_owned(),
            stderr: rx,
            stderr_seen: Vec::new(),
        };
        // "Capturing on 'Loopback: lo'" comes once the capture handle is
        // active, "File: ..." once the output file is open.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match cap.stderr.recv_timeout(left.max(Duration::from_millis(1))) {
                Ok(line) => {
                    let ready = line.starts_with("File:");
                    cap.stderr_seen.push(line);
                    if ready {
                        break;
                    }
                }
                Err(_) => panic!(
                    "dumpcap did not start capturing on {iface} within 20 s: {}",
                    cap.stderr_seen.join("\n")
                ),
            }
        }
        cap
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Sends `marker` from `socket` to `to` (a UDP port the capture's
    /// filter takes) until tshark finds it in the file; panics after
    /// `timeout`. For counts that must be exact: dumpcap says "File:"
    /// before its filter is attached (packets right after [`Self::start`]
    /// can be missed), and on SIGINT drops what it has not yet taken from
    /// the kernel. A marker in the file means the capture is live, and,
    /// on an interface that delivers in order such as `lo`, that every
    /// packet sent before it is in the file.
    pub fn wait_for_marker(
        &self,
        socket: &UdpSocket,
        to: SocketAddr,
        marker: &[u8],
        timeout: Duration,
    ) {
        let hex: String = marker.iter().map(|b| format!("{b:02x}")).collect();
        crate::wait_until(
            &format!(
                "dumpcap to write the marker {:?}",
                String::from_utf8_lossy(marker)
            ),
            timeout,
            || {
                socket.send_to(marker, to).expect("send a capture marker");
                self.payloads_to(to.port()).contains(&hex).then_some(())
            },
        );
    }

    /// Payloads (hex) of the UDP datagrams to `port` in the file so far.
    /// The file may end mid-packet while dumpcap writes: tshark's status
    /// is not checked.
    fn payloads_to(&self, port: u16) -> String {
        let out = Command::new(crate::require_tool("tshark"))
            .arg("-r")
            .arg(&self.file)
            .args(["-Y", &format!("udp.dstport=={port}"), "-T", "fields"])
            .args(["-e", "data"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .expect("run tshark");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Stops the capture (SIGINT, so dumpcap finishes the file) and returns its path.
    pub fn stop(mut self) -> PathBuf {
        self.stop_inner();
        self.file.clone()
    }

    fn stop_inner(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: signal our own, not yet reaped child.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGINT);
            }
            let deadline = std::time::Instant::now() + Duration::from_secs(15);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if std::time::Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

/// One DHCP message read from a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedDhcp {
    /// Frame number in the capture (wire order).
    pub frame: u64,
    /// Option 53 value (5 = ACK).
    pub msg_type: u8,
    pub yiaddr: Ipv4Addr,
    /// What a RELEASE names.
    pub ciaddr: Ipv4Addr,
    /// chaddr as `aa:bb:cc:dd:ee:ff`.
    pub chaddr: String,
    /// The transaction id: a reply's is its request's.
    pub xid: u32,
}

/// Every DHCP message in `pcap`, in wire order, via `tshark -r FILE -T
/// fields` (frame number, option 53, yiaddr, ciaddr, chaddr, xid).
pub fn read_dhcp_capture(pcap: &Path) -> Vec<CapturedDhcp> {
    // Output to a file and a deadline: a capture that a misbehaving peer
    // filled for minutes fails here, not by holding the test up.
    let out = pcap.with_extension("tshark.txt");
    let (status, text) = crate::run_logged(
        Command::new(crate::require_tool("tshark"))
            .arg("-r")
            .arg(pcap)
            .args(["-Y", "dhcp", "-T", "fields", "-E", "separator=/t"])
            .args(["-e", "frame.number", "-e", "dhcp.option.dhcp"])
            .args(["-e", "dhcp.ip.your", "-e", "dhcp.ip.client"])
            .args(["-e", "dhcp.hw.mac_addr", "-e", "dhcp.id"]),
        &out,
        Duration::from_secs(300),
    );
    assert!(
        status.success(),
        "tshark -r {} failed: {}",
        pcap.display(),
        text.lines().rev().take(20).collect::<Vec<_>>().join("\n")
    );
    // Lines that are not a message's fields (a warning) do not parse.
    let mut msgs = parse_fields(&text);
    msgs.sort_by_key(|m| m.frame);
    msgs
}

fn parse_fields(text: &str) -> Vec<CapturedDhcp> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            // Several values of one field are comma-separated; the first
            // dhcp.hw.mac_addr is chaddr (a client-id of type 1 adds another).
            let mut first = || f.next().and_then(|v| v.split(',').next()).map(str::trim);
            Some(CapturedDhcp {
                frame: first()?.parse().ok()?,
                msg_type: first()?.parse().ok()?,
                yiaddr: first()?.parse().ok()?,
                ciaddr: first()?.parse().ok()?,
                chaddr: first()?.to_lowercase(),
                xid: u32::from_str_radix(first()?.trim_start_matches("0x"), 16).ok()?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tshark_fields() {
        let t = "3\t5\t10.0.0.10\t0.0.0.0\t00:0c:01:02:03:04,00:0c:01:02:03:04\t0x0000089e\n\
                 1\t7\t0.0.0.0\t10.0.0.9\t00:0C:01:02:03:05\t0x00000001\n\n";
        let v = parse_fields(t);
        assert_eq!(v.len(), 2);
        assert_eq!((v[0].frame, v[0].msg_type), (3, 5));
        assert_eq!(v[0].yiaddr, Ipv4Addr::new(10, 0, 0, 10));
        assert_eq!(v[0].chaddr, "00:0c:01:02:03:04");
        assert_eq!(v[1].ciaddr, Ipv4Addr::new(10, 0, 0, 9));
        assert_eq!(v[1].chaddr, "00:0c:01:02:03:05");
        assert_eq!((v[0].xid, v[1].xid), (0x89e, 1));
    }
}
