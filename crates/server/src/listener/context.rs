//! What the leasequery TCP listener serves with: the requestor allowlist,
//! the limits, the connections' rules, Active Leasequery's settings and
//! the TLS acceptor. Built from the configuration at start and again at
//! each live reload; the listener reads the current one at each accept
//! (see `serve`), so a new connection uses the new settings at once while
//! a connection keeps the settings it was accepted with, and is closed
//! only when the new allowlists no longer admit its requestor (see
//! [`super::Revocation`]).

use std::sync::Arc;
use std::time::Duration;

use leaseline_proto::BulkConfig;
use leaseline_store::LeaseStore;
use tracing::warn;

use super::{merge_ranges, BulkContext, Kind, Limits, Requestor, Slots};
use crate::access::NetworkAllowlist;
use crate::active::ActiveContext;
use crate::config::Config;
use crate::overload::DhcpLoad;
use crate::refusal_log::RefusalLog;
use crate::stats::LeasequeryStats;
use crate::tls::{TlsConfigError, TlsSettings};

pub struct ListenerContext {
    pub allow: NetworkAllowlist,
    /// What each connection's rules need to know.
    pub conn: Arc<BulkConfig>,
    pub store: Arc<dyn LeaseStore>,
    pub active: Option<ActiveContext>,
    /// Undecided, bulk and active connections, each against its own limit
    /// (one count for the listener's life: a reload changes the limits).
    pub slots: Arc<Slots>,
    /// The limits this configuration sets (the slots' own once in place).
    pub limits: Limits,
    pub tls: Option<SecureMode>,
    /// Bulk queries and bindings sent, active sessions' work (metrics; one
    /// count for the listener's life, as the slots).
    pub stats: Arc<LeasequeryStats>,
    /// The server's refusal log (connections refused or closed).
    pub(crate) refusals: Arc<RefusalLog>,
}

/// Secure mode (RFC 7724 §8.1): the acceptor of new handshakes, and the
/// certificate allowlist it checks, kept to check connected requestors
/// again after a reload.
pub struct SecureMode {
    pub acceptor: tokio_rustls::TlsAcceptor,
    pub allowlist: Arc<crate::tls::Allowlist>,
}

impl ListenerContext {
    /// `max_connections`: BULK_LQ_MAX_CONNS; the active limits come from
    /// `active`'s config.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        allow: NetworkAllowlist,
        max_connections: usize,
        data_timeout: Duration,
        max_queries: usize,
        max_message: usize,
        bulk: BulkContext,
        active: Option<ActiveContext>,
        tls: Option<SecureMode>,
        plaintext: bool,
    ) -> Self {
        let limits = limits(max_connections, active.as_ref());
        let conn = BulkConfig {
            data_timeout,
            max_queries,
            max_message,
            server_id: bulk.server_id,
            denied: bulk.denied,
            configured: bulk.configured,
            active: active.is_some(),
            plaintext,
            tls: tls.is_some(),
        };
        ListenerContext {
            allow,
            conn: Arc::new(conn),
            store: bulk.store,
            active,
            slots: Slots::new(limits),
            limits,
            tls,
            stats: Arc::default(),
            refusals: Arc::default(),
        }
    }

    /// Log refusals in the server's refusal log.
    pub(crate) fn logging_refusals_in(mut self, refusals: Arc<RefusalLog>) -> Self {
        self.refusals = refusals;
        self
    }

    /// Count bulk queries, bindings and active sessions' work in `stats`.
    pub fn counting_in(mut self, stats: Arc<LeasequeryStats>) -> Self {
        if let Some(active) = &mut self.active {
            active.stats = Arc::clone(&stats);
        }
        self.stats = stats;
        self
    }

    /// The listener as the configuration says, or None when Bulk
    /// Leasequery is off. TLS files are read here: an unreadable or
    /// mismatched one is an error, and a reload that meets it changes
    /// nothing.
    pub fn from_config(
        cfg: &Config,
        store: &Arc<dyn LeaseStore>,
        load: &Arc<DhcpLoad>,
    ) -> Result<Option<ListenerContext>, TlsConfigError> {
        let Some(b) = &cfg.leasequery.bulk else {
            return Ok(None);
        };
        let server_id = cfg
            .subnets
            .first()
            .map(|s| s.server_id)
            .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
        let mut configured = Vec::new();
        for s in &cfg.subnets {
            configured.extend(s.pools.iter().copied());
            configured.extend(
                s.reservations
                    .iter()
                    .map(|r| (u32::from(r.ip), u32::from(r.ip))),
            );
        }
        let mut denied = b.denied_options.clone();
        denied.push(leaseline_wire::code::ASSOCIATED_IP); // RFC 6926 §8.3: never in bulk replies
        let bulk = BulkContext {
            store: Arc::clone(store),
            server_id,
            denied,
            configured: merge_ranges(configured),
        };
        let active = cfg.leasequery.active.clone().map(|a| {
            // RFC 7724 §5.3: smaller values SHOULD NOT be used; accepted for tests, with a warning.
            if a.idle_timeout < Duration::from_secs(60) || a.send_timeout < Duration::from_secs(120)
            {
                warn!(idle = ?a.idle_timeout, send = ?a.send_timeout, event = "active_timeouts_below_rfc", "active leasequery timeouts below the RFC 7724 defaults (60 s idle, 120 s send)");
            }
            ActiveContext::new(Arc::clone(store), a, server_id, b.data_timeout)
                .yielding_to(Arc::clone(load))
        });
        if b.data_timeout < Duration::from_secs(300) {
            warn!(timeout = ?b.data_timeout, event = "bulk_timeout_below_rfc", "BULK_LQ_DATA_TIMEOUT below the RFC 6926 default of 300 s");
        }
        let tls = match &cfg.leasequery.tls {
            Some(f) => {
                let settings = TlsSettings::load(&f.cert, &f.key, &f.ca, &f.allowed_requestors)?;
                Some(SecureMode {
                    acceptor: settings.acceptor()?,
                    allowlist: Arc::new(settings.allowlist().clone()),
                })
            }
            None => None,
        };
        Ok(Some(ListenerContext::new(
            NetworkAllowlist::new(cfg.leasequery.allow.clone()),
            b.max_connections,
            b.data_timeout,
            b.max_queries_per_connection,
            b.max_message_size,
            bulk,
            active,
            tls,
            cfg.leasequery.plaintext,
        )))
    }

    /// This context with the running listener's counts and metrics (a live
    /// reload):
    /// its limits become the running ones when it is put in place.
    pub(crate) fn sharing_slots_of(mut self, running: &ListenerContext) -> Self {
        self.slots = Arc::clone(&running.slots);
        self.refusals = Arc::clone(&running.refusals);
        self.counting_in(Arc::clone(&running.stats))
    }

    /// What a connection is at accept: not known until its first query
    /// when the listener takes active queries too; else bulk.
    pub(super) fn kind_at_accept(&self) -> Kind {
        if self.active.is_some() {
            Kind::Undecided
        } else {
            Kind::Bulk
        }
    }

    /// Whether these settings admit `who`: its address in
    /// `leasequery.allow`, and, once it authenticated over TLS, its
    /// certificate in `allowed_requestors`.
    pub fn admits(&self, who: &Requestor) -> bool {
        if !self.allow.allows(who.ip) {
            return false;
        }
        match (&who.cert, &self.tls) {
            (Some(cert), Some(tls)) => tls.allowlist.admits(cert),
            // Secure mode cannot be turned off live (a restart): a TLS
            // requestor is always checked against a TLS allowlist.
            (Some(_), None) => false,
            (None, _) => true,
        }
    }

    /// The modes it serves, for the start-up line: bulk, active, tls, plain
    /// or insecure.
    pub fn modes(&self) -> String {
        let mut modes = vec!["bulk"];
        if self.active.is_some() {
            modes.push("active");
        }
        if self.tls.is_some() {
            modes.push("tls");
        }
        if self.conn.plaintext {
            modes.push(if self.active.is_some() {
                "insecure"
            } else {
                "plain"
            });
        }
        modes.join("+")
    }
}

fn limits(max_connections: usize, active: Option<&ActiveContext>) -> Limits {
    Limits::new(
        max_connections,
        active.map(|a| (a.cfg.max_connections, a.cfg.max_connections_per_requestor)),
    )
}
