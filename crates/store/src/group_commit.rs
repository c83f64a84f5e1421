//! What every backend's writer thread shares (architecture, data flow 1):
//! the queued submission, gathering a group from the queue, and publishing
//! a committed group on the feed before its tickets resolve. The backend
//! only says how one group is committed.

use std::sync::mpsc::{Receiver, SendError, Sender};
use std::sync::Arc;

use crate::{Binding, ChangeFeed, Committed, OnDurable, StoreError};

pub(crate) struct Request {
    pub(crate) bindings: Vec<Binding>,
    pub(crate) now: u32,
    /// Decided by the DHCP engine from its copy: checked against the stored
    /// rows where several servers share the store.
    pub(crate) decided: bool,
    /// A grant of a new lease in this network (first and last address): a
    /// store several servers share also refuses it while the client holds
    /// another live lease there (`leaseline_proto::second_lease`).
    pub(crate) network: Option<(std::net::Ipv4Addr, std::net::Ipv4Addr)>,
    /// Called on the writer thread once the group is durable and published.
    pub(crate) done: OnDurable,
}

/// Queue a submission for the writer (`None` or a writer gone: it fails at
/// once). The channel is unbounded: sending never blocks, also inside a
/// runtime.
pub(crate) fn submit(
    tx: Option<&Sender<Request>>,
    bindings: Vec<Binding>,
    now: u32,
    decided: bool,
    network: Option<(std::net::Ipv4Addr, std::net::Ipv4Addr)>,
    done: OnDurable,
) {
    let req = Request {
        bindings,
        now,
        decided,
        network,
        done,
    };
    let sent = match tx {
        Some(tx) => tx.send(req).map_err(|SendError(req)| req),
        None => Err(req),
    };
    if let Err(req) = sent {
        // Resolved on a thread of its own, never on the caller's: callers
        // submit under their own locks (the DHCP engine's, to keep its
        // order) and the callback may take them (an undo). Only a writer
        // that died gets here.
        let spawned = std::thread::Builder::new()
            .name("leaseline-store-gone".into())
            .spawn(move || (req.done)(Err(StoreError::WriterGone)));
        if let Err(e) = spawned {
            tracing::error!(error = %e, event = "store_writer_gone", "store writer gone; a submission was dropped unanswered");
        }
    }
}

/// Blocks for one submission, then takes whatever else is already queued,
/// up to `max_batch` bindings, into `batch`. Returns the number of
/// bindings, or `None` once every sender is gone and the queue is drained.
pub(crate) fn gather(
    rx: &Receiver<Request>,
    batch: &mut Vec<Request>,
    max_batch: usize,
) -> Option<usize> {
    let first = rx.recv().ok()?;
    let mut count = first.bindings.len();
    batch.push(first);
    while count < max_batch {
        match rx.try_recv() {
            Ok(req) => {
                count += req.bindings.len();
                batch.push(req);
            }
            Err(_) => break,
        }
    }
    Some(count)
}

/// The whole group is published at once (one feed lock, one wake-up per
/// subscriber however many requests it held: an Active Leasequery session
/// then writes the group's changes in one go). Tickets resolve afterwards,
/// in queue (= commit) order, each with the seq of its own last change.
pub(crate) fn publish_and_resolve(feed: &ChangeFeed, batch: &mut Vec<Request>) {
    let Some(now) = batch.iter().map(|r| r.now).max() else {
        return;
    };
    let mut counts = Vec::with_capacity(batch.len());
    let mut committed: Vec<Arc<Committed>> = Vec::new();
    for req in batch.iter_mut() {
        counts.push(req.bindings.len() as u64);
        committed.extend(req.bindings.drain(..).map(|b| Arc::new(Committed::new(b))));
    }
    let last = feed.publish_bindings(now, &committed);
    let mut seq = last - committed.len() as u64;
    for (req, count) in batch.drain(..).zip(counts) {
        seq += count;
        (req.done)(Ok(seq));
    }
}

/// A failed commit fails every submission of its group: nothing of it was
/// stored or published.
pub(crate) fn fail(batch: &mut Vec<Request>, e: &StoreError) {
    for req in batch.drain(..) {
        // A dropped ticket is the submitter's business.
        (req.done)(Err(e.duplicate()));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::submit;
    use crate::StoreError;

    /// With the writer gone, a caller holding a lock that the callback
    /// takes is not deadlocked (the DHCP thread submits under the engine's
    /// lock; its failure callback undoes in the engine).
    #[test]
    fn a_gone_writer_answers_off_the_callers_thread() {
        let lock = std::sync::Arc::new(parking_lot::Mutex::new(()));
        let (tx, rx) = mpsc::channel();
        let guard = lock.lock();
        let l = std::sync::Arc::clone(&lock);
        submit(
            None,
            Vec::new(),
            0,
            true,
            None,
            Box::new(move |r| {
                // On the caller's thread this would wait for itself.
                let held = l.try_lock_for(Duration::from_secs(5)).is_some();
                let _ = tx.send(held && matches!(r, Err(StoreError::WriterGone)));
            }),
        );
        drop(guard);
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(true));
    }
}
