//! The engine's side of a store shared with other servers: their committed
//! changes update this engine's copy of the bindings, and the live servers
//! decide which share of each pool this one walks first.

use std::sync::Weak;

use leaseline_store::{Binding, StoreObserver};

use crate::engine::Share;
use crate::shared::Shared;

/// Held by the store's follower: weak, so the store (owned by `Shared`)
/// does not keep itself alive through it.
pub(crate) struct EngineObserver {
    pub(crate) shared: Weak<Shared>,
}

impl StoreObserver for EngineObserver {
    fn remote_changes(&self, bindings: &[Binding]) {
        if let Some(shared) = self.shared.upgrade() {
            shared.engine.lock().apply_remote(bindings);
        }
    }

    fn share(&self, index: usize, of: usize) {
        if let Some(shared) = self.shared.upgrade() {
            shared.engine.lock().set_share(Share { index, of });
        }
    }
}
