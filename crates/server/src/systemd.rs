//! systemd integration: readiness and reloads (`Type=notify-reload`) and
//! the watchdog, on the sd-notify crate (sd_notify(3) in a few hundred
//! dependency-free lines, rather than our own datagram code). Without
//! `NOTIFY_SOCKET` in the environment (not started by systemd) every call
//! does nothing.

use std::time::{Duration, Instant};

use sd_notify::NotifyState;

/// Every socket is bound and the store open: systemd may start what comes
/// after (`After=leaseline.service`; contrib/leaseline.service).
pub(crate) fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A reload started (`Type=notify-reload`): systemd waits for READY=1.
/// MONOTONIC_USEC tells it this RELOADING=1 is newer than its reload
/// request (sd_notify(3)).
pub(crate) fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// A reload is over, applied or refused: serving again.
pub(crate) fn reloaded() {
    send(&[NotifyState::Ready]);
}

/// Shutdown started.
pub(crate) fn stopping() {
    send(&[NotifyState::Stopping]);
}

fn send(state: &[NotifyState]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %e, event = "systemd_notify_failed", "cannot notify systemd");
    }
}

/// `WatchdogSec=`: pinged by the reaper after each wake-up (once a second;
/// it takes the engine's lock, and a pass commits through the store), at
/// half the period, so a server whose engine is stuck is restarted by
/// systemd.
pub(crate) struct Watchdog {
    every: Option<Duration>,
    last: Option<Instant>,
}

impl Watchdog {
    pub(crate) fn from_env() -> Self {
        let every = sd_notify::watchdog_enabled().map(|period| period / 2);
        if let Some(e) = every {
            tracing::info!(every = ?e, event = "systemd_watchdog", "systemd watchdog enabled");
        }
        Watchdog { every, last: None }
    }

    /// Ping if half the period has passed since the last ping.
    pub(crate) fn alive(&mut self, now: Instant) {
        let Some(every) = self.every else {
            return;
        };
        if self.last.is_none_or(|l| now.duration_since(l) >= every) {
            send(&[NotifyState::Watchdog]);
            self.last = Some(now);
        }
    }
}
