//! The lease store: a [`LeaseStore`] trait, its embedded SQLite backend, and
//! the change feed that publishes every committed change as `(seq, time, ip)`.
//!
//! The trait does not assume the store lives in this process: a PostgreSQL
//! backend shared by several servers will implement it too, and then the
//! feed also carries changes committed by the other servers.

#[doc(hidden)]
pub mod battery;
pub use commit_stats::{CommitStats, HistogramSnapshot};
mod columns;
mod commit_stats;
mod error;
mod feed;
mod group_commit;
mod lease_history;
mod pending;
mod postgres;
mod sqlite;

use std::net::Ipv4Addr;

pub use error::StoreError;
pub use feed::{Backlog, Change, ChangeFeed, FeedLag, HistoryLimits, Subscription, LIVE_LOG_CAP};
pub use lease_history::{
    HistoryCursor, HistoryEntry, HistoryKey, HistoryPage, HistoryQuery, LeaseLogLimits,
};
pub use leaseline_proto::{Binding, DhcpState};
pub use pending::{Committed, PendingEntry};
pub use postgres::{
    ChangeLogPosition, LoggedChange, PgSchemaStatus, PostgresOptions, PostgresStore,
    PG_SCHEMA_VERSION,
};
pub use sqlite::{SqliteLibrary, SqliteOptions, SqliteStore, WAL_SIZE_BOUND};

/// Resolves when a submitted batch is durable (or failed). The value is the
/// feed sequence number of this submission's last change (an empty
/// submission gets the feed's last seq at its commit). If the submission
/// was grouped with others whose commit failed, it fails too: nothing of
/// that group was stored or published.
/// Runs once a submitted batch is durable (or failed).
pub type OnDurable = Box<dyn FnOnce(Result<u64, StoreError>) + Send + 'static>;

pub type CommitTicket = tokio::sync::oneshot::Receiver<Result<u64, StoreError>>;

pub trait LeaseStore: Send + Sync + 'static {
    /// Submit binding changes for a durable commit. Concurrent submissions
    /// are grouped into one transaction and one fsync (group commit). `done`
    /// runs (on the store's writer thread: keep it short) only after the
    /// changes are durable and published on the feed, in commit order, with
    /// the feed sequence number of the submission's last change.
    fn submit_then(&self, bindings: Vec<Binding>, now: u32, done: OnDurable);

    /// [`LeaseStore::submit_then`] with a ticket to await instead of a callback.
    fn submit(&self, bindings: Vec<Binding>, now: u32) -> CommitTicket {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit_then(
            bindings,
            now,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        rx
    }

    /// [`LeaseStore::submit_then`] for changes the DHCP engine decided from
    /// its copy of the bindings. A store several servers share checks each
    /// against the stored row in the committing transaction
    /// (`leaseline_proto::overwrite`) and refuses one decided from a stale
    /// copy ([`StoreError::Refused`]); a store only this server writes
    /// stores them as they are.
    fn submit_decided_then(&self, bindings: Vec<Binding>, now: u32, done: OnDurable) {
        self.submit_then(bindings, now, done);
    }

    /// [`LeaseStore::submit_decided_then`] for one grant of an address in
    /// `network` (its first and last address, RFC 2131 §4.3.1/§4.3.2). A
    /// store several servers share also refuses it while the client holds
    /// another live lease in that network
    /// (`leaseline_proto::second_lease`): the deciding server's copy had not
    /// seen a lease made through another server.
    fn submit_grant_then(
        &self,
        binding: Binding,
        network: (Ipv4Addr, Ipv4Addr),
        now: u32,
        done: OnDurable,
    ) {
        let _ = network;
        self.submit_decided_then(vec![binding], now, done);
    }

    /// [`LeaseStore::submit_decided_then`] with a ticket to await.
    fn submit_decided(&self, bindings: Vec<Binding>, now: u32) -> CommitTicket {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit_decided_then(
            bindings,
            now,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        rx
    }

    /// The stored binding for one address (None: never stored, i.e. AVAILABLE).
    fn get(&self, ip: Ipv4Addr) -> Result<Option<Binding>, StoreError>;
    /// [`LeaseStore::get`] for each address, in order, from one consistent
    /// view of the store where it has one (a catch-up chunk: one read
    /// transaction, not one per address).
    fn get_many(&self, ips: &[Ipv4Addr]) -> Result<Vec<Option<Binding>>, StoreError> {
        ips.iter().map(|&ip| self.get(ip)).collect()
    }
    /// Every stored binding with this hardware address.
    fn by_chaddr(&self, htype: u8, chaddr: &[u8]) -> Result<Vec<Binding>, StoreError>;
    fn by_client_id(&self, client_id: &[u8]) -> Result<Vec<Binding>, StoreError>;
    fn by_remote_id(&self, remote_id: &[u8]) -> Result<Vec<Binding>, StoreError>;
    fn by_relay_id(&self, relay_id: &[u8]) -> Result<Vec<Binding>, StoreError>;
    /// Stored bindings with `from <= ip <= to`, ascending by address, at most
    /// `limit` of them: a cursor for streaming (call again from the last ip + 1).
    fn range(&self, from: Ipv4Addr, to: Ipv4Addr, limit: usize)
        -> Result<Vec<Binding>, StoreError>;
    /// Every stored binding (start-up load of the engine's index).
    fn load_all(&self) -> Result<Vec<Binding>, StoreError>;

    /// One page of the lease history (`crate::lease_history`):
    /// [`StoreError::HistoryOff`] when this store keeps none.
    fn history(&self, q: &HistoryQuery) -> Result<HistoryPage, StoreError> {
        let _ = q;
        Err(StoreError::HistoryOff)
    }

    /// The change feed of this store.
    fn feed(&self) -> &ChangeFeed;

    /// How the writer's commits go (batch sizes, latencies).
    fn commit_stats(&self) -> &CommitStats;

    /// Follow the changes other servers commit to this store (a store
    /// shared by several servers), telling `observer`. A store only this
    /// server writes has nothing to tell.
    fn observe(&self, observer: std::sync::Arc<dyn StoreObserver>) {
        let _ = observer;
    }

    /// How far this server's feed is behind the store's change log (a
    /// store shared by several servers; None for one only this server
    /// writes). A database read: call it off the async workers.
    fn outbox_lag(&self) -> Option<Result<OutboxLag, StoreError>> {
        None
    }
}

/// The change log's rows not yet published on this server's feed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutboxLag {
    /// The log's newest id minus the id last published here.
    pub unpublished: u64,
    /// Seconds since the oldest of them was committed (0 when none).
    pub age_seconds: f64,
}

/// What a store shared by several servers tells the server using it.
pub trait StoreObserver: Send + Sync + 'static {
    /// Bindings other servers committed, in commit order, before they are
    /// published on this server's feed (the observer's to keep: the feed
    /// has its own).
    fn remote_changes(&self, bindings: Vec<Binding>);
    /// The live servers changed: this one is `index` of `of` (ordered by
    /// name), and prefers that share of each pool.
    fn share(&self, index: usize, of: usize);
}
