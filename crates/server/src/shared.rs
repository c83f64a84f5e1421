//! What the front ends share: the DHCP engine, the store, the counters
//! and the switches the control API turns. Built by `run::serve`; the
//! front ends take it (or the part they need), never the other way round.

use std::sync::Arc;

use leaseline_store::LeaseStore;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::dhcp_switch::DhcpSwitch;
use crate::engine::Engine;
use crate::leasequery::UdpLeasequery;
use crate::listener::ListenerContext;
use crate::overload::DhcpLoad;
use crate::refusal_log::RefusalLog;
use crate::stats::Stats;

/// State shared by the front ends.
pub struct Shared {
    /// Shared further with the reaper and the store's follower, which need
    /// only the engine.
    pub engine: Arc<Mutex<Engine>>,
    /// UDP leasequery, when configured (replaced by a live reload).
    pub leasequery: parking_lot::RwLock<Option<Arc<UdpLeasequery>>>,
    pub store: Arc<dyn LeaseStore>,
    pub stats: Stats,
    /// Whether DHCP is overloaded (its UDP threads say; leasequery yields).
    pub load: Arc<DhcpLoad>,
    /// DHCP service on or off (control API).
    pub dhcp_switch: DhcpSwitch,
    /// The leasequery TCP listener's settings, when it runs (replaced by a
    /// live reload; read at each accept).
    pub tcp: std::sync::OnceLock<watch::Sender<Arc<ListenerContext>>>,
    /// The HTTP endpoint's TLS acceptor, when it serves HTTPS (replaced by
    /// a live reload; read at each accept).
    pub http_tls: std::sync::OnceLock<watch::Sender<tokio_rustls::TlsAcceptor>>,
    /// Every front end's refusals, under one throttle.
    pub(crate) refusals: Arc<RefusalLog>,
}
