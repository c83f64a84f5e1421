//! The side channel from the verifier to [`super::accept`]: rustls calls
//! the verifier synchronously while the accept future is polled, so the
//! verdict goes through a task-local slot.

use std::sync::Arc;

use parking_lot::Mutex;

use super::{CertIdentity, PeerIdentity};

/// What the verifier decided, for [`super::accept`] to report. Set through a
/// task-local because rustls calls the verifier synchronously while the
/// accept future is polled.
#[derive(Debug, Clone)]
pub(super) enum Verdict {
    Allowed(PeerIdentity),
    Refused(Box<CertIdentity>),
}

tokio::task_local! {
    pub(super) static VERDICT: Arc<Mutex<Option<Verdict>>>;
}

pub(super) fn note(v: Verdict) {
    let _ = VERDICT.try_with(|slot| *slot.lock() = Some(v));
}
