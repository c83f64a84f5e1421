//! Datagrams a batch at a time: `recvmmsg(2)` and `sendmmsg(2)`. The
//! closed-loop probe shares two CPUs with the servers it measures; one
//! system call per burst instead of one per datagram leaves them more of
//! the machine (the kernel's per-datagram work is the same).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

/// The largest datagram kept (a DHCP reply fits).
pub const DATAGRAM: usize = 1500;

/// Receive buffers for up to `n` datagrams.
pub struct RecvBatch {
    bufs: Vec<[u8; DATAGRAM]>,
    lens: Vec<usize>,
    count: usize,
}

impl RecvBatch {
    pub fn new(n: usize) -> Self {
        RecvBatch {
            bufs: vec![[0; DATAGRAM]; n],
            lens: vec![0; n],
            count: 0,
        }
    }

    /// Waits for one datagram (up to the socket's read timeout), then takes
    /// whatever else is queued, up to the batch's size. Returns how many.
    pub fn recv(&mut self, sock: &UdpSocket) -> io::Result<usize> {
        let mut iovs: Vec<libc::iovec> = self
            .bufs
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: DATAGRAM,
            })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = iovs.iter_mut().map(|iov| header(iov, None)).collect();
        // SAFETY: `msgs` points at `iovs`, which point at `self.bufs`; all
        // live across the call and the lengths are theirs.
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                msgs.as_mut_ptr(),
                msgs.len() as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            self.count = 0;
            return Err(io::Error::last_os_error());
        }
        self.count = n as usize;
        for (len, m) in self.lens.iter_mut().zip(&msgs).take(self.count) {
            *len = m.msg_len as usize;
        }
        Ok(self.count)
    }

    /// The datagrams of the last `recv` (none after a failed one).
    pub fn datagrams(&self) -> impl Iterator<Item = &[u8]> {
        self.bufs
            .iter()
            .zip(&self.lens)
            .take(self.count)
            .map(|(b, &len)| &b[..len.min(DATAGRAM)])
    }
}

/// Sends every datagram of `out` to `dest`, as few system calls as the
/// kernel allows; empties `out`.
pub fn send_all(sock: &UdpSocket, dest: SocketAddr, out: &mut Vec<Vec<u8>>) -> io::Result<()> {
    let addr = socket2::SockAddr::from(dest);
    let mut sent = 0;
    while sent < out.len() {
        let mut iovs: Vec<libc::iovec> = out[sent..]
            .iter()
            .map(|d| libc::iovec {
                iov_base: d.as_ptr() as *mut libc::c_void,
                iov_len: d.len(),
            })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = iovs
            .iter_mut()
            .map(|iov| header(iov, Some(&addr)))
            .collect();
        // SAFETY: `msgs` points at `iovs` (into `out`) and at `addr`; all
        // live across the call.
        let n = unsafe {
            libc::sendmmsg(
                sock.as_raw_fd(),
                msgs.as_mut_ptr(),
                msgs.len() as libc::c_uint,
                0,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            out.clear();
            return Err(e);
        }
        sent += n as usize;
    }
    out.clear();
    Ok(())
}

/// The header of one datagram of a batch: its one buffer, and where it
/// goes (`None`: received, the sender not asked for).
fn header(iov: &mut libc::iovec, to: Option<&socket2::SockAddr>) -> libc::mmsghdr {
    // SAFETY: an all-zero mmsghdr is valid (no name, no control).
    let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
    if let Some(addr) = to {
        m.msg_hdr.msg_name = addr.as_ptr() as *mut libc::c_void;
        m.msg_hdr.msg_namelen = addr.len();
    }
    m.msg_hdr.msg_iov = iov;
    m.msg_hdr.msg_iovlen = 1;
    m
}
