//! The engine's side of a store shared with other servers: their committed
//! changes update this engine's copy of the bindings, and the live servers
//! decide which share of each pool this one walks first.

use std::sync::Weak;

use leaseline_store::{Binding, StoreObserver};
use parking_lot::Mutex;

use crate::engine::{Engine, Share};

/// Held by the store's follower, which needs the engine alone: weak, so
/// that the engine goes when the server does.
pub(crate) struct EngineObserver {
    pub(crate) engine: Weak<Mutex<Engine>>,
}

impl StoreObserver for EngineObserver {
    fn remote_changes(&self, bindings: Vec<Binding>) {
        if let Some(engine) = self.engine.upgrade() {
            engine.lock().apply_remote(bindings);
        }
    }

    fn share(&self, index: usize, of: usize) {
        if let Some(engine) = self.engine.upgrade() {
            engine.lock().set_share(Share { index, of });
        }
    }
}
