//! Server and local endpoints given on the command line, `ADDR[:PORT]` or
//! `NAME[:PORT]`: read by [`leaseline_proto::text::parse_host_port`], then
//! names looked up here (IPv4 first: Leasequery runs over IPv4).

use std::net::{SocketAddr, ToSocketAddrs};

use leaseline_proto::text::{parse_host_port, HostPort};

/// The leasequery port when none is given (RFC 4388 and RFC 6926 §6.3 use
/// the DHCP server port).
pub const DEFAULT_SERVER_PORT: u16 = 67;

/// A server, `ADDR[:PORT]` or `NAME[:PORT]`, port
/// [`DEFAULT_SERVER_PORT`] by default.
pub fn server_addr(s: &str) -> Result<SocketAddr, String> {
    addr_port(s, DEFAULT_SERVER_PORT)
}

/// `ADDR[:PORT]` or `NAME[:PORT]` with `default_port`; a name resolves to
/// its first IPv4 address, else its first address.
pub fn addr_port(s: &str, default_port: u16) -> Result<SocketAddr, String> {
    match parse_host_port(s, default_port).map_err(|e| e.to_string())? {
        HostPort::Addr(a) => Ok(a),
        HostPort::Name { host, port } => {
            let addrs: Vec<SocketAddr> = (host.as_str(), port)
                .to_socket_addrs()
                .map_err(|e| format!("`{}`: cannot resolve {host} ({e})", s.trim()))?
                .collect();
            addrs
                .iter()
                .find(|a| a.is_ipv4())
                .or(addrs.first())
                .copied()
                .ok_or_else(|| format!("`{}` resolves to no address", s.trim()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_names() {
        assert_eq!(
            server_addr("127.0.0.1").unwrap(),
            "127.0.0.1:67".parse().unwrap()
        );
        assert_eq!(
            server_addr("127.0.0.1:1067").unwrap(),
            "127.0.0.1:1067".parse().unwrap()
        );
        assert_eq!(
            addr_port("127.0.0.2", 0).unwrap(),
            "127.0.0.2:0".parse().unwrap()
        );
        let local = server_addr("localhost:1067").unwrap();
        assert_eq!(local, "127.0.0.1:1067".parse().unwrap(), "IPv4 first");
        assert!(server_addr("not an address").is_err());
    }
}
