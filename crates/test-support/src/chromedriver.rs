//! A real headless Chromium for the web view's tests: Debian's `chromium`
//! driven through its `chromedriver` (WebDriver), started on a free port
//! and stopped on drop. The tests talk WebDriver to it (fantoccini).

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{free_tcp_port, require_tool, wait_until};

pub struct ChromeDriver {
    child: Child,
    port: u16,
    chromium: PathBuf,
    /// A fresh profile for each browser (removed on drop).
    profile: tempfile::TempDir,
}

impl ChromeDriver {
    /// Start chromedriver and wait until it accepts connections.
    pub fn start() -> ChromeDriver {
        crate::watchdog::arm();
        let driver = require_tool("chromedriver");
        let chromium = require_tool("chromium");
        let port = free_tcp_port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // A process group of its own: the browsers it starts are in it,
            // and end with it even when a test fails before closing them.
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        wait_until("chromedriver to listen", Duration::from_secs(20), || {
            TcpStream::connect(addr).ok()
        });
        ChromeDriver {
            child,
            port,
            chromium,
            profile: tempfile::tempdir().expect("browser profile dir"),
        }
    }

    /// The WebDriver URL to connect to.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The chromium binary (`goog:chromeOptions.binary`).
    pub fn chromium(&self) -> String {
        self.chromium.display().to_string()
    }

    /// Chromium's flags for a headless run as root on a machine without a
    /// display or network access: no sandbox (root), no GPU, no
    /// background requests to Google's services, a fresh profile.
    pub fn chromium_args(&self) -> Vec<String> {
        [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--no-default-browser-check",
            "--window-size=1280,1000",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("--user-data-dir={}", self.profile.path().display())])
        .collect()
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // chromedriver and the browsers it started (its process group).
        if let Ok(pgid) = i32::try_from(self.child.id()) {
            // SAFETY: kill has no memory preconditions; the group is ours.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
