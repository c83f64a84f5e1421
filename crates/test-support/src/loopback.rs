//! Relay addresses on the host's loopback, one per caller.
//!
//! A test's relay binds `giaddr:67` (the server answers a relay there), so
//! two tests running at the same time need two addresses. All of
//! 127.0.0.0/8 is local on Linux: an address there can be bound without
//! configuring it.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

/// Where [`loopback_relay`] hands addresses out: a range no test names by
/// hand (they may still use 127.0.0.0/16 for fixed sources and inside their
/// own network namespaces).
const SECOND_OCTET: u8 = 100;

/// A loopback address no other caller in this process has been given and
/// whose UDP port 67 was free a moment ago (from 127.100.0.1 on; an address
/// another process holds port 67 on is skipped).
pub fn loopback_relay() -> Ipv4Addr {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(n < 254 * 256, "out of loopback relay addresses");
        let addr = Ipv4Addr::new(127, SECOND_OCTET, (n / 254) as u8, (n % 254 + 1) as u8);
        // Without root the probe cannot bind port 67 at all; the address is
        // then as good as any (the test needs root to use it anyway).
        match UdpSocket::bind(SocketAddrV4::new(addr, 67)) {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
            _ => return addr,
        }
    }
}

/// The relay a test module numbers `n` (`module_path!()`, n): the same
/// address for the same pair, a [`loopback_relay`] at its first use.
pub fn loopback_relay_for(module: &'static str, n: u32) -> Ipv4Addr {
    static GIVEN: Mutex<BTreeMap<(&'static str, u32), Ipv4Addr>> = Mutex::new(BTreeMap::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    *given.entry((module, n)).or_insert_with(loopback_relay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relays_are_distinct_loopback_addresses() {
        let a = loopback_relay();
        let b = loopback_relay();
        assert_ne!(a, b);
        assert!(a.is_loopback() && b.is_loopback());
        assert_eq!(a.octets()[1], SECOND_OCTET);
    }

    #[test]
    fn a_numbered_relay_is_the_same_each_time() {
        let a = loopback_relay_for("m", 1);
        assert_eq!(loopback_relay_for("m", 1), a);
        assert_ne!(loopback_relay_for("m", 2), a);
        assert_ne!(loopback_relay_for("n", 1), a);
    }
}
