//! `/metrics`: read at each scrape from the counters the server keeps
//! anyway (`Stats`) and from the engine's pools, so the DHCP path pays
//! nothing for them. Names follow Prometheus's conventions: counters end in
//! `_total`, gauges do not, one name per meaning with labels for the rest.
//! With `kea_compat` the names kea-exporter gives Kea's statistics are
//! exported too, with the same meaning (docs/operations.md has the table).

use std::fmt::Error;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use leaseline_store::LeaseStore;

use crate::clock::unix_now;
use crate::shared::Shared;
use crate::stats::{Answer, LeasequeryStats};

type Labels = Vec<(&'static str, String)>;

pub(super) struct ServerMetrics {
    shared: Arc<Shared>,
    kea_compat: bool,
}

impl std::fmt::Debug for ServerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerMetrics")
    }
}

impl ServerMetrics {
    pub(super) fn new(shared: Arc<Shared>, kea_compat: bool) -> Self {
        ServerMetrics { shared, kea_compat }
    }
}

/// One metric family: its descriptor, then one sample per label set.
fn family<M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (Labels, M)>,
) -> Result<(), Error> {
    let mut fam = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, m) in samples {
        m.encode(fam.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A family of one unlabelled sample.
fn single<M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    m: M,
) -> Result<(), Error> {
    m.encode(enc.encode_descriptor(name, help, None, kind)?)
}

/// A histogram read from the store.
struct Histogram(leaseline_store::HistogramSnapshot);

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), Error> {
        encoder.encode_histogram::<NoLabelSet>(self.0.sum, self.0.count, &self.0.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// `DHCPDISCOVER` -> `discover`.
fn type_label(t: leaseline_wire::MessageType) -> String {
    t.name().trim_start_matches("DHCP").to_ascii_lowercase()
}

impl Collector for ServerMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), Error> {
        let stats = &self.shared.stats;
        let received = stats.received_by_type();
        let sent = stats.sent_by_type();
        let (pools, by_state) = {
            let engine = self.shared.engine.lock();
            (engine.pool_usage(), engine.count_by_state())
        };
        let e = &mut enc;
        family(
            e,
            "leaseline_dhcp_packets_received",
            "DHCP messages received, by message type",
            MetricType::Counter,
            received
                .iter()
                .map(|&(t, n)| (vec![("type", type_label(t))], ConstCounter::new(n))),
        )?;
        family(
            e,
            "leaseline_dhcp_packets_sent",
            "DHCP messages sent, by message type",
            MetricType::Counter,
            sent.iter()
                .map(|&(t, n)| (vec![("type", type_label(t))], ConstCounter::new(n))),
        )?;
        family(
            e,
            "leaseline_dhcp_drops",
            "Datagrams dropped without an answer, by reason",
            MetricType::Counter,
            stats
                .all_drops()
                .into_iter()
                .map(|(r, n)| (vec![("reason", r.to_owned())], ConstCounter::new(n))),
        )?;
        single(
            e,
            "leaseline_store_commit_failures",
            "Commits of binding changes that failed (no DHCPACK left for them)",
            MetricType::Counter,
            ConstCounter::new(stats.commit_failures()),
        )?;
        single(
            e,
            "leaseline_dhcp_enabled",
            "1 while DHCP is served, 0 while disabled by dhcp-disable",
            MetricType::Gauge,
            ConstGauge::new(i64::from(!self.shared.dhcp_switch.is_off(unix_now()))),
        )?;
        let pool_labels = |p: &crate::engine::PoolUsage| -> Labels {
            vec![
                ("subnet", p.prefix.to_string()),
                ("pool", format!("{}-{}", p.first, p.last)),
            ]
        };
        family(
            e,
            "leaseline_pool_size",
            "Addresses in each pool",
            MetricType::Gauge,
            pools
                .iter()
                .map(|p| (pool_labels(p), ConstGauge::new(p.total as i64))),
        )?;
        family(
            e,
            "leaseline_pool_addresses",
            "Addresses of each pool leased (assigned) or held back after a DHCPDECLINE (declined)",
            MetricType::Gauge,
            pools.iter().flat_map(|p| {
                [("assigned", p.assigned), ("declined", p.declined)]
                    .into_iter()
                    .map(move |(state, n)| {
                        let mut l = pool_labels(p);
                        l.push(("state", state.to_owned()));
                        (l, ConstGauge::new(n as i64))
                    })
            }),
        )?;
        family(
            e,
            "leaseline_pool_utilisation_ratio",
            "Assigned addresses over the pool's size (0 to 1)",
            MetricType::Gauge,
            pools.iter().map(|p| {
                let ratio = if p.total == 0 {
                    0.0
                } else {
                    p.assigned as f64 / p.total as f64
                };
                (pool_labels(p), ConstGauge::new(ratio))
            }),
        )?;
        family(
            e,
            "leaseline_bindings",
            "Bindings known to this server, by state (RFC 6926 dhcp-state)",
            MetricType::Gauge,
            by_state.iter().map(|(s, &n)| {
                (
                    vec![("state", format!("{s:?}").to_ascii_lowercase())],
                    ConstGauge::new(n as i64),
                )
            }),
        )?;
        let commits = self.shared.store.commit_stats();
        single(
            e,
            "leaseline_store_commit_batch_size",
            "Bindings per group commit of the lease store",
            MetricType::Histogram,
            Histogram(commits.batch_sizes()),
        )?;
        single(
            e,
            "leaseline_store_commit_duration_seconds",
            "Time per group commit (SQLite: transaction and fsync; PostgreSQL: read and commit call)",
            MetricType::Histogram,
            Histogram(commits.latencies()),
        )?;
        leasequery(e, &stats.leasequery)?;
        feed_lag(e, self.shared.store.as_ref())?;
        if self.kea_compat {
            kea_names(e, &received, &sent, &pools)?;
        }
        Ok(())
    }
}

/// Leasequery: UDP answers and refusals, bulk queries, active sessions.
fn leasequery(e: &mut DescriptorEncoder, lq: &LeasequeryStats) -> Result<(), Error> {
    family(
        e,
        "leaseline_leasequery_answers",
        "UDP leasequery answers (RFC 4388), by type: active, unassigned, unknown",
        MetricType::Counter,
        Answer::ALL.map(|a| {
            (
                vec![("type", a.label().to_owned())],
                ConstCounter::new(lq.answers(a)),
            )
        }),
    )?;
    family(
        e,
        "leaseline_leasequery_refusals",
        "UDP leasequeries refused without an answer, by reason",
        MetricType::Counter,
        lq.refusals()
            .into_iter()
            .map(|(r, n)| (vec![("reason", r.to_owned())], ConstCounter::new(n))),
    )?;
    let counters = [
        (
            "leaseline_bulk_queries",
            "Bulk leasequeries started (RFC 6926)",
            lq.bulk_queries(),
        ),
        (
            "leaseline_bulk_bindings_sent",
            "Bindings sent in answer to bulk leasequeries",
            lq.bulk_bindings(),
        ),
        (
            "leaseline_active_updates_sent",
            "Binding updates sent to active leasequery requestors (RFC 7724)",
            lq.active_updates(),
        ),
        (
            "leaseline_active_holds",
            "Times an active session held its updates while DHCP was overloaded",
            lq.active_holds(),
        ),
        (
            "leaseline_active_catch_ups",
            "Active queries that caught up from the history (query-start-time)",
            lq.active_catch_ups(),
        ),
        (
            "leaseline_active_data_missing",
            "Active queries answered DataMissing: their start time is before the history",
            lq.active_data_missing(),
        ),
    ];
    for (name, help, n) in counters {
        single(e, name, help, MetricType::Counter, ConstCounter::new(n))?;
    }
    Ok(())
}

/// Active sessions and how far they are behind the feed; for a store
/// shared by several servers, how far the feed is behind the change log.
fn feed_lag(e: &mut DescriptorEncoder, store: &dyn LeaseStore) -> Result<(), Error> {
    let lag = store.feed().lag();
    let gauges = [
        (
            "leaseline_active_sessions",
            "Active leasequery sessions now connected",
            lag.subscribers as i64,
        ),
        (
            "leaseline_active_pending_changes",
            "Changes still to send, summed over the active sessions",
            lag.pending_total as i64,
        ),
        (
            "leaseline_active_pending_changes_max",
            "Changes still to send by the active session furthest behind",
            lag.pending_max as i64,
        ),
    ];
    for (name, help, v) in gauges {
        single(e, name, help, MetricType::Gauge, ConstGauge::new(v))?;
    }
    single(
        e,
        "leaseline_feed_lag_seconds",
        "Feed time of the newest change minus that of the oldest change an active session has not sent (0 when all are sent)",
        MetricType::Gauge,
        ConstGauge::new(i64::from(lag.seconds())),
    )?;
    match store.outbox_lag() {
        None => {}
        Some(Ok(outbox)) => {
            single(
                e,
                "leaseline_outbox_lag_changes",
                "Change-log rows committed (by any server) not yet published on this server's feed",
                MetricType::Gauge,
                ConstGauge::new(outbox.unpublished as i64),
            )?;
            single(
                e,
                "leaseline_outbox_lag_seconds",
                "Age of the oldest change-log row not yet published here (0 when none)",
                MetricType::Gauge,
                ConstGauge::new(outbox.age_seconds),
            )?;
        }
        Some(Err(error)) => {
            // The scrape goes on without them; the store's own log says more.
            tracing::warn!(%error, event = "metrics_outbox_lag_failed", "metrics: cannot read the change log's lag");
        }
    }
    Ok(())
}

/// kea-exporter's names for the same numbers (docs/operations.md).
fn kea_names(
    e: &mut DescriptorEncoder,
    received: &[(leaseline_wire::MessageType, u64)],
    sent: &[(leaseline_wire::MessageType, u64)],
    pools: &[crate::engine::PoolUsage],
) -> Result<(), Error> {
    family(
        e,
        "kea_dhcp4_packets_received",
        "Packets received (kea-exporter name)",
        MetricType::Counter,
        received
            .iter()
            .map(|&(t, n)| (vec![("operation", type_label(t))], ConstCounter::new(n))),
    )?;
    family(
        e,
        "kea_dhcp4_packets_sent",
        "Packets sent (kea-exporter name)",
        MetricType::Counter,
        sent.iter()
            .map(|&(t, n)| (vec![("operation", type_label(t))], ConstCounter::new(n))),
    )?;
    // Kea's statistics are per subnet; kea-exporter labels them with the
    // subnet and its id (Kea's subnet-id: here the subnet's position, from 1).
    let mut subnets: Vec<(usize, String, u64, u64, u64)> = Vec::new();
    for p in pools {
        match subnets.last_mut() {
            Some(s) if s.0 == p.subnet => {
                s.2 += p.total;
                s.3 += p.assigned;
                s.4 += p.declined;
            }
            _ => subnets.push((
                p.subnet,
                p.prefix.to_string(),
                p.total,
                p.assigned,
                p.declined,
            )),
        }
    }
    let labels = |s: &(usize, String, u64, u64, u64)| -> Labels {
        vec![
            ("subnet", s.1.clone()),
            ("subnet_id", (s.0 + 1).to_string()),
        ]
    };
    for (name, help, pick) in [
        (
            "kea_dhcp4_addresses_total",
            "Addresses in the subnet's pools (kea-exporter name)",
            2usize,
        ),
        (
            "kea_dhcp4_addresses_assigned_total",
            "Assigned addresses (kea-exporter name; a gauge despite the suffix)",
            3,
        ),
        (
            "kea_dhcp4_addresses_declined_total",
            "Declined addresses (kea-exporter name; a gauge despite the suffix)",
            4,
        ),
    ] {
        family(
            e,
            name,
            help,
            MetricType::Gauge,
            subnets.iter().map(|s| {
                let v = match pick {
                    2 => s.2,
                    3 => s.3,
                    _ => s.4,
                };
                (labels(s), ConstGauge::new(v as i64))
            }),
        )?;
    }
    Ok(())
}
