//! The UDP exchange: bind, send, retransmit with exponential backoff
//! under one overall deadline, take the first reply whose xid matches.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use leaseline_wire::Message;

use super::message::encode_query;
use super::{Answer, QueryError, QueryKey, QueryOptions};
use crate::random::random_u32;

/// The result of [`query`].
#[derive(Debug, Clone)]
pub enum Outcome {
    Answered {
        answer: Box<Answer>,
        /// Where the reply came from.
        from: SocketAddr,
        /// Transmissions made (1 = no retransmission).
        attempts: u32,
        elapsed: Duration,
    },
    /// Nothing matching arrived before the deadline.
    NoAnswer {
        attempts: u32,
        /// Datagrams with our xid that were not a valid answer.
        rejected: Vec<String>,
    },
}

/// What [`query`] used, for the caller to report.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    pub local: SocketAddr,
    pub giaddr: Ipv4Addr,
    pub xid: u32,
}

/// The local IPv4 address the kernel uses to reach `server` (a connected
/// probe socket; nothing is sent).
pub fn local_addr_for(server: SocketAddr) -> Result<Ipv4Addr, QueryError> {
    let probe = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))
        .map_err(|source| QueryError::Route { server, source })?;
    probe
        .connect(server)
        .map_err(|source| QueryError::Route { server, source })?;
    match probe.local_addr() {
        Ok(SocketAddr::V4(a)) if !a.ip().is_unspecified() => Ok(*a.ip()),
        Ok(other) => Err(QueryError::Route {
            server,
            source: io::Error::other(format!("the kernel picked {other}")),
        }),
        Err(source) => Err(QueryError::Route { server, source }),
    }
}

/// Binds the socket and works out giaddr per [`QueryOptions`].
pub fn open(opts: &QueryOptions) -> Result<(UdpSocket, Ipv4Addr), QueryError> {
    if !opts.server.is_ipv4() {
        return Err(QueryError::NotIpv4(opts.server));
    }
    let bind = opts
        .bind
        .unwrap_or(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)));
    let bind_v4 = match bind {
        SocketAddr::V4(a) => a,
        other => return Err(QueryError::NotIpv4(other)),
    };
    let giaddr = match opts.giaddr {
        Some(g) => g,
        None if !bind_v4.ip().is_unspecified() => *bind_v4.ip(),
        None => local_addr_for(opts.server)?,
    };
    let sock = UdpSocket::bind(bind).map_err(|source| QueryError::Bind { addr: bind, source })?;
    Ok((sock, giaddr))
}

/// One leasequery exchange: send, retransmit with backoff (1 s, 2 s, 4 s …
/// by default) until `opts.timeout` has passed since the first send, return
/// the first DHCPLEASEACTIVE / UNASSIGNED / UNKNOWN whose xid matches.
pub fn query(opts: &QueryOptions, key: &QueryKey) -> Result<(Outcome, Endpoint), QueryError> {
    key.validate()?;
    let (sock, giaddr) = open(opts)?;
    let local = sock.local_addr().map_err(QueryError::Recv)?;
    let xid = opts.xid.unwrap_or_else(random_u32);
    let bytes = encode_query(key, xid, giaddr, &opts.prl)?;
    let endpoint = Endpoint { local, giaddr, xid };
    let outcome = exchange(&sock, opts, xid, &bytes)?;
    Ok((outcome, endpoint))
}

fn exchange(
    sock: &UdpSocket,
    opts: &QueryOptions,
    xid: u32,
    bytes: &[u8],
) -> Result<Outcome, QueryError> {
    let server = opts.server;
    let start = Instant::now();
    let deadline = start + opts.timeout;
    let mut wait = opts.first_retry.max(Duration::from_millis(1));
    let mut attempts = 0u32;
    let mut rejected = Vec::new();
    let mut buf = vec![0u8; 65_536];
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Ok(Outcome::NoAnswer { attempts, rejected });
        }
        sock.send_to(bytes, server)
            .map_err(|source| QueryError::Send { server, source })?;
        attempts += 1;
        tracing::debug!(%server, xid, attempts, event = "leasequery_sent", "DHCPLEASEQUERY sent");
        let resend_at = (now + wait).min(deadline);
        wait = wait.saturating_mul(2);
        // Receive until it is time to resend.
        loop {
            let left = resend_at.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            sock.set_read_timeout(Some(left))
                .map_err(QueryError::Recv)?;
            let (n, from) = match sock.recv_from(&mut buf) {
                Ok(x) => x,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // An ICMP error from an earlier datagram: keep waiting.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err(QueryError::Recv(e)),
            };
            let Some(datagram) = buf.get(..n) else {
                continue;
            };
            // Cheap filter first: op and xid (RFC 2131 §2 header layout).
            if datagram.len() < 8
                || u32::from_be_bytes([datagram[4], datagram[5], datagram[6], datagram[7]]) != xid
            {
                tracing::debug!(%from, len = n, event = "datagram_other_xid_ignored", "ignored a datagram with another xid");
                continue;
            }
            match Message::decode(datagram) {
                Ok(m) => match Answer::from_reply(&m) {
                    Some(answer) => {
                        return Ok(Outcome::Answered {
                            answer: Box::new(answer),
                            from,
                            attempts,
                            elapsed: start.elapsed(),
                        })
                    }
                    None => {
                        let what = format!(
                            "from {from}: op {} type {} is not a leasequery reply",
                            m.op,
                            m.message_type().map(|t| t.name()).unwrap_or("none")
                        );
                        tracing::debug!(event = "leasequery_reply_ignored", "{what}");
                        rejected.push(what);
                    }
                },
                Err(e) => {
                    let what = format!("from {from}: undecodable reply: {e}");
                    tracing::debug!(event = "leasequery_reply_ignored", "{what}");
                    rejected.push(what);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::message::tests::G;
    use crate::query::ReplyKind;
    use leaseline_proto::parse_leasequery;

    #[test]
    fn exchange_retransmits_and_ignores_strangers() {
        // A fake server on loopback: drops the first query, answers the
        // second after a datagram with another xid.
        let srv = UdpSocket::bind("127.0.0.1:0").unwrap();
        let server = srv.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let (_, _) = srv.recv_from(&mut buf).unwrap();
            let (n, peer) = srv.recv_from(&mut buf).unwrap();
            let q = parse_leasequery(&Message::decode(&buf[..n]).unwrap()).unwrap();
            let mut other = q.clone();
            other.xid ^= 1;
            srv.send_to(
                &leaseline_proto::build_leaseunknown(&other, G)
                    .to_bytes()
                    .unwrap(),
                peer,
            )
            .unwrap();
            srv.send_to(b"junk", peer).unwrap();
            let reply = leaseline_proto::build_leaseunassigned(&q, Ipv4Addr::new(10, 0, 0, 9), G);
            srv.send_to(&reply.to_bytes().unwrap(), peer).unwrap();
        });
        let mut opts = QueryOptions::new(server);
        opts.first_retry = Duration::from_millis(100);
        let (out, ep) = query(&opts, &QueryKey::Ip(Ipv4Addr::new(10, 0, 0, 9))).unwrap();
        t.join().unwrap();
        assert_eq!(ep.giaddr, G);
        match out {
            Outcome::Answered {
                answer, attempts, ..
            } => {
                assert_eq!(answer.kind, ReplyKind::Unassigned);
                assert_eq!(answer.ip, Some(Ipv4Addr::new(10, 0, 0, 9)));
                assert_eq!(answer.xid, ep.xid);
                assert_eq!(attempts, 2);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn silence_is_no_answer_within_the_timeout() {
        let srv = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut opts = QueryOptions::new(srv.local_addr().unwrap());
        opts.timeout = Duration::from_millis(700);
        opts.first_retry = Duration::from_millis(100);
        let t0 = Instant::now();
        let (out, _) = query(&opts, &QueryKey::ClientId(vec![1, 2])).unwrap();
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(690) && took < Duration::from_secs(3),
            "{took:?}"
        );
        match out {
            // Sends at 0, 100, 300 ms; 700 ms is the deadline.
            Outcome::NoAnswer { attempts, .. } => assert_eq!(attempts, 3),
            other => panic!("{other:?}"),
        }
        let mut buf = [0u8; 1024];
        srv.set_nonblocking(true).unwrap();
        let mut n = 0;
        while srv.recv_from(&mut buf).is_ok() {
            n += 1;
        }
        assert_eq!(n, 3);
    }
}
