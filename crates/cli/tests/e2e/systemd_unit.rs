#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! contrib/leaseline.service (issue 19): `systemd-analyze verify` finds
//! nothing wrong with it (its ExecStart pointed at the binary under test),
//! and `systemd-analyze security` rates its sandbox at an exposure of 2.5
//! or less. systemd before 253 does not know `Type=notify-reload`: that
//! one line is then the only complaint allowed, and the unit says what to
//! use instead.

use std::path::Path;
use std::process::Command;

use leaseline_test_support::require_tool;

const BIN: &str = env!("CARGO_BIN_EXE_leaseline");

fn unit_text() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib/leaseline.service");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The major version `systemd-analyze --version` prints (`systemd 252 (…)`).
fn systemd_version(analyze: &Path) -> u32 {
    let out = Command::new(analyze)
        .arg("--version")
        .output()
        .expect("systemd-analyze --version");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("version in {text:?}"))
}

#[test]
fn the_unit_verifies_and_its_sandbox_is_tight() {
    let analyze = require_tool("systemd-analyze");
    let text = unit_text();
    for line in [
        "Type=notify-reload",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "ProtectSystem=strict",
        "StateDirectory=leaseline",
        "WatchdogSec=30",
    ] {
        assert!(text.lines().any(|l| l == line), "`{line}` not in the unit");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = dir.path().join("leaseline.service");
    std::fs::write(&unit, text.replace("/usr/local/bin/leaseline", BIN)).expect("write the unit");

    let out = Command::new(&analyze)
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze verify");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let old = systemd_version(&analyze) < 253;
    let complaints: Vec<&str> = said
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| !(old && l.contains("Failed to parse service type, ignoring: notify-reload")))
        .collect();
    assert!(
        out.status.success() && complaints.is_empty(),
        "systemd-analyze verify: {said}"
    );

    let out = Command::new(&analyze)
        .args(["security", "--offline=yes", "--threshold=25"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze security");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exposure above 2.5: {}",
        report.lines().last().unwrap_or_default()
    );
}
