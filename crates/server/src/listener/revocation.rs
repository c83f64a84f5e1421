//! A connected requestor that a live reload no longer allows: its
//! connection waits on the listener's settings, and when new ones come it
//! checks its requestor (address, and certificate once authenticated)
//! against them. Bulk queries in flight and an active query then end with
//! QueryTerminated (RFC 6926 §8.5, RFC 7724 §8.4) and the connection
//! closes; requestors still allowed notice nothing.

use std::net::IpAddr;
use std::sync::Arc;

use tokio::sync::watch;

use super::ListenerContext;
use crate::tls::CertIdentity;

/// Who is on the other end of a connection.
#[derive(Debug, Clone)]
pub struct Requestor {
    pub ip: IpAddr,
    /// Its certificate, once authenticated in secure mode.
    pub cert: Option<CertIdentity>,
}

/// One connection's view of the listener's settings.
pub struct Revocation {
    live: watch::Receiver<Arc<ListenerContext>>,
    who: Requestor,
}

impl Revocation {
    pub fn new(live: watch::Receiver<Arc<ListenerContext>>, ip: IpAddr) -> Revocation {
        Revocation {
            live,
            who: Requestor { ip, cert: None },
        }
    }

    /// The requestor authenticated with this certificate.
    pub fn authenticated(&mut self, cert: CertIdentity) {
        self.who.cert = Some(cert);
    }

    /// Whether the current settings admit the requestor (checked after a
    /// TLS handshake, which ran with the settings of its accept).
    pub fn admitted_now(&self) -> bool {
        self.live.borrow().admits(&self.who)
    }

    /// Resolves once a reload's settings no longer admit the requestor;
    /// never if the listener's settings go away (shutdown has its own
    /// signal). Cancel safe: it can be raced in a `select!` loop.
    pub async fn revoked(&mut self) {
        loop {
            if self.live.changed().await.is_err() {
                return std::future::pending().await;
            }
            if !self.live.borrow_and_update().admits(&self.who) {
                return;
            }
        }
    }
}
