//! The pools' utilisation as the web view draws it (`usage` events): the
//! engine's count, shared by every open view. It is counted again only
//! when a view asks for a state newer than the last count, so twenty
//! browsers cost one pass over the bindings per change burst, not twenty.

use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::engine::PoolUsage;
use crate::shared::Shared;

#[derive(Default)]
pub(super) struct UsageCache {
    /// The last count: the feed's last seq before it was taken, and the
    /// `usage` event's data.
    last: Mutex<Option<(u64, std::sync::Arc<str>)>>,
}

impl UsageCache {
    /// The pools' usage, counted after change `seen` (a feed seq) or later.
    /// The engine applies a change before the store publishes it, so a
    /// count taken once the feed reached `seen` includes it.
    pub(super) fn after(&self, shared: &Shared, seen: u64) -> std::sync::Arc<str> {
        let mut last = self.last.lock();
        if let Some((seq, data)) = &*last {
            if *seq >= seen {
                return data.clone();
            }
        }
        let seq = shared.store.feed().last_seq();
        let pools = shared.engine.lock().pool_usage();
        let data: std::sync::Arc<str> = usage_json(&pools).to_string().into();
        *last = Some((seq, data.clone()));
        data
    }
}

/// `[{"subnet-id", "prefix", "first", "last", "total", "assigned", "declined"}]`.
fn usage_json(pools: &[PoolUsage]) -> Value {
    Value::Array(
        pools
            .iter()
            .map(|p| {
                json!({
                    "subnet-id": p.subnet + 1,
                    "prefix": p.prefix.to_string(),
                    "first": p.first.to_string(),
                    "last": p.last.to_string(),
                    "total": p.total,
                    "assigned": p.assigned,
                    "declined": p.declined,
                })
            })
            .collect(),
    )
}
