//! RAII network namespaces and veth pairs (needs root and iproute2).
//!
//! Names are fixed per test (so a namespace left behind by a crashed run is
//! deleted before it is created again) and distinct between tests.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// Runs `ip ARGS`; panics with its stderr on failure.
pub(crate) fn ip(args: &[&str]) -> Output {
    let out = Command::new(crate::require_tool("ip"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "`ip {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `ip ARGS`, ignoring failure (cleanup of things that may not exist).
fn ip_quiet(args: &[&str]) -> bool {
    Command::new(crate::require_tool("ip"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A named network namespace with its loopback up. Dropping it kills the
/// processes still inside it (ones the test started there), then deletes it.
///
/// It also creates `/etc/netns/NAME/resolv.conf`, which `ip netns exec`
/// bind-mounts over `/etc/resolv.conf`, so a DHCP client script run inside
/// writes there and never touches the host's resolver configuration.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates namespace `name` (at most 15 characters is advisable), deleting
    /// a stale one of the same name first.
    pub fn new(name: &str) -> Netns {
        crate::watchdog::arm();
        crate::require_root();
        assert!(!name.is_empty() && name.len() <= 32, "netns name {name:?}");
        if netns_exists(name) {
            kill_pids_in(name);
            ip_quiet(&["netns", "del", name]);
        }
        ip(&["netns", "add", name]);
        let ns = Netns {
            name: name.to_owned(),
        };
        std::fs::create_dir_all(ns.etc_dir()).expect("create /etc/netns/NAME");
        std::fs::write(ns.resolv_conf(), "").expect("create /etc/netns/NAME/resolv.conf");
        ip(&["-n", name, "link", "set", "lo", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/etc/netns/NAME`.
    pub fn etc_dir(&self) -> PathBuf {
        PathBuf::from("/etc/netns").join(&self.name)
    }

    /// The file that is `/etc/resolv.conf` for programs run in this namespace.
    pub fn resolv_conf(&self) -> PathBuf {
        self.etc_dir().join("resolv.conf")
    }

    /// `ip netns exec NAME program`: add arguments and run it.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(crate::require_tool("ip"));
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Runs `f` on a thread of its own that has entered this namespace
    /// (setns(2) moves only the calling thread) and returns its result.
    /// Sockets `f` opens belong to the namespace for good, whichever thread
    /// uses them afterwards: this is how the test process itself talks to
    /// servers inside the namespace (e.g. [`crate::RelayClient`] on giaddr:67).
    pub fn run_inside<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = PathBuf::from("/run/netns").join(&self.name);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path)
                .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
            use std::os::fd::AsRawFd;
            // SAFETY: setns(2) on a namespace file we hold open; it changes
            // only this thread's network namespace.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(
                rc,
                0,
                "setns {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            );
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }

    /// Runs `ip -n NAME ARGS` and returns its stdout; panics on failure.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        String::from_utf8_lossy(&ip(&full).stdout).into_owned()
    }

    /// Runs `program ARGS` inside the namespace; panics on failure.
    pub fn run(&self, program: &str, args: &[&str]) -> String {
        let out = self
            .command(crate::require_tool(program))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run in netns");
        assert!(
            out.status.success(),
            "`ip netns exec {} {program} {}` failed: {}{}",
            self.name,
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// IPv4 addresses (`a.b.c.d/len`) on `dev` in this namespace.
    pub fn ipv4_addrs(&self, dev: &str) -> Vec<String> {
        self.ip(&["-4", "-o", "addr", "show", "dev", dev])
            .lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                it.position(|w| w == "inet")?;
                it.next().map(str::to_owned)
            })
            .collect()
    }

    /// The MAC address of `dev` in this namespace.
    pub fn mac(&self, dev: &str) -> String {
        let out = self.ip(&["-o", "link", "show", "dev", dev]);
        let mut it = out.split_whitespace();
        it.position(|w| w == "link/ether")
            .and_then(|_| it.next())
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no link/ether on {dev}: {out}"))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        kill_pids_in(&self.name);
        ip_quiet(&["netns", "del", &self.name]);
        let _ = std::fs::remove_dir_all(self.etc_dir());
    }
}

fn netns_exists(name: &str) -> bool {
    PathBuf::from("/run/netns").join(name).exists()
}

/// SIGKILL the processes inside namespace `name` (`ip netns pids`): only
/// processes a test started there, since the namespace is the test's own.
fn kill_pids_in(name: &str) {
    let Ok(out) = Command::new(crate::require_tool("ip"))
        .args(["netns", "pids", name])
        .stderr(Stdio::null())
        .output()
    else {
        return;
    };
    for pid in String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse::<libc::pid_t>().ok())
    {
        // SAFETY: kill(2) with a pid read just now from the test's own namespace.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

/// Two namespaces joined by a veth pair: `server` holds `server_if`,
/// `client` holds `client_if`, both up and without addresses.
pub struct NetnsPair {
    // Field order matters for Drop: nothing to do for the veth itself, it
    // vanishes with its namespaces.
    pub server: Netns,
    pub client: Netns,
    pub server_if: String,
    pub client_if: String,
}

impl NetnsPair {
    /// `tag` (at most 10 characters) names everything: namespaces
    /// `ll-TAG-srv` / `ll-TAG-cli`, interfaces `TAG-s` / `TAG-c`.
    pub fn new(tag: &str) -> NetnsPair {
        assert!(tag.len() <= 10, "tag {tag:?} too long for interface names");
        let server = Netns::new(&format!("ll-{tag}-srv"));
        let client = Netns::new(&format!("ll-{tag}-cli"));
        let server_if = format!("{tag}-s");
        let client_if = format!("{tag}-c");
        // A stale veth left in the root namespace by an interrupted creation.
        ip_quiet(&["link", "del", &server_if]);
        ip_quiet(&["link", "del", &client_if]);
        ip(&[
            "link",
            "add",
            &server_if,
            "netns",
            server.name(),
            "type",
            "veth",
            "peer",
            "name",
            &client_if,
            "netns",
            client.name(),
        ]);
        server.ip(&["link", "set", &server_if, "up"]);
        client.ip(&["link", "set", &client_if, "up"]);
        NetnsPair {
            server,
            client,
            server_if,
            client_if,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_is_created_and_removed() {
        let names;
        {
            let pair = NetnsPair::new("lltsp");
            names = (pair.server.name().to_owned(), pair.client.name().to_owned());
            assert!(netns_exists(&names.0) && netns_exists(&names.1));
            assert!(pair
                .server
                .ip(&["link", "show", "dev", &pair.server_if])
                .contains("UP"));
            assert!(pair.client.mac(&pair.client_if).len() == 17);
            assert!(pair.client.resolv_conf().exists());
            pair.server
                .ip(&["addr", "add", "192.0.2.1/24", "dev", &pair.server_if]);
            assert_eq!(
                pair.server.ipv4_addrs(&pair.server_if),
                vec!["192.0.2.1/24".to_owned()]
            );
        }
        assert!(!netns_exists(&names.0) && !netns_exists(&names.1));
        assert!(!PathBuf::from("/etc/netns").join(&names.0).exists());
    }

    #[test]
    fn stale_namespace_is_replaced() {
        std::mem::forget(Netns::new("ll-tsstale"));
        let ns = Netns::new("ll-tsstale");
        assert_eq!(ns.ipv4_addrs("lo"), vec!["127.0.0.1/8".to_owned()]);
    }
}
