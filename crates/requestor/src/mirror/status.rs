//! The mirror's status: phase, lag (server time minus the last base-time),
//! counts; stored in the replica for `leaseline mirror status` and logged.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use leaseline_store::StoreError;
use serde::Serialize;
use tracing::info;

use super::replica::{meta_connection, read_meta, Replica};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Bulk,
    CatchUp,
    Filling,
    Live,
    Reconnecting,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Bulk => "bulk",
            Phase::CatchUp => "catch-up",
            Phase::Filling => "filling",
            Phase::Live => "live",
            Phase::Reconnecting => "reconnecting",
        }
    }
}

fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

pub struct Status {
    phase: Option<Phase>,
    last_base_time: Option<u32>,
    /// Local time when that base-time arrived.
    received_at: u32,
    applied: u64,
}

impl Status {
    pub fn new(_replica: &Replica) -> Status {
        Status {
            phase: None,
            last_base_time: None,
            received_at: 0,
            applied: 0,
        }
    }

    pub fn observe_base_time(&mut self, t: u32) {
        self.last_base_time = Some(self.last_base_time.map_or(t, |l| l.max(t)));
        self.received_at = unix_now();
    }

    pub fn applied(&mut self) {
        self.applied += 1;
    }

    pub fn set_phase(&mut self, replica: &Replica, p: Phase) {
        self.phase = Some(p);
        info!(phase = p.name(), event = "mirror_phase", "mirror phase");
        self.store(replica);
    }

    pub fn set_phase_if_changed(&mut self, replica: &Replica, p: Phase) {
        if self.phase != Some(p) {
            self.set_phase(replica, p);
        }
    }

    /// Lag: how far behind the server's clock the replica is, estimated as
    /// the time since the last message (the server sends at least a
    /// keepalive every ACTIVE_LQ_IDLE_TIMEOUT).
    pub fn lag(&self) -> Option<u32> {
        self.last_base_time
            .map(|_| unix_now().saturating_sub(self.received_at))
    }

    pub fn report(&mut self, replica: &Replica) {
        info!(
            event = "mirror_status",
            phase = self.phase.map(Phase::name).unwrap_or("starting"),
            last_base_time = ?self.last_base_time,
            lag_seconds = ?self.lag(),
            applied = self.applied,
            "mirror status"
        );
        self.store(replica);
    }

    fn store(&self, replica: &Replica) {
        let _ = replica.set_meta("phase", self.phase.map(Phase::name).unwrap_or("starting"));
        if let Some(t) = self.last_base_time {
            let _ = replica.set_meta("last_base_time", &t.to_string());
            let _ = replica.set_meta("last_message_at", &self.received_at.to_string());
        }
        let _ = replica.set_meta("applied", &self.applied.to_string());
        let _ = replica.set_meta("updated_at", &unix_now().to_string());
    }
}

/// What `leaseline mirror status` prints.
#[derive(Debug, Serialize)]
pub struct Report {
    pub phase: String,
    pub saved_base_time: Option<u32>,
    pub last_base_time: Option<u32>,
    pub lag_seconds: Option<u32>,
    pub status_age_seconds: Option<u32>,
    pub applied_this_run: u64,
    pub bindings: Vec<(String, u64)>,
}

pub fn read_report(db: &Path) -> Result<Report, StoreError> {
    let c = meta_connection(db)?;
    let num = |k: &str| -> Result<Option<u32>, StoreError> {
        Ok(read_meta(&c, k)?.and_then(|v| v.parse().ok()))
    };
    let now = unix_now();
    let last_message_at = num("last_message_at")?;
    let mut bindings = Vec::new();
    let mut stmt =
        c.prepare("SELECT state, COUNT(*) FROM bindings GROUP BY state ORDER BY state")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, u8>(0)?, r.get::<_, u64>(1)?)))?;
    for row in rows {
        let (s, n) = row?;
        let name = leaseline_proto::DhcpState::from_u8(s)
            .map(|s| s.name())
            .unwrap_or("?");
        bindings.push((name.to_string(), n));
    }
    Ok(Report {
        phase: read_meta(&c, "phase")?.unwrap_or_else(|| "never run".into()),
        saved_base_time: num("saved_base_time")?,
        last_base_time: num("last_base_time")?,
        lag_seconds: last_message_at.map(|t| now.saturating_sub(t)),
        status_age_seconds: num("updated_at")?.map(|t| now.saturating_sub(t)),
        applied_this_run: read_meta(&c, "applied")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        bindings,
    })
}
