//! The text forms of the values people type and read: hardware addresses,
//! hex octets (client-id, remote-id, relay-id, certificate fingerprints),
//! IPv4 addresses, times and durations. The configuration, every command
//! (`query`, `bulk`, `watch`, `mirror`) and their text output go through
//! this module and nothing else, so a value is read and written the same
//! way everywhere (docs/text-formats.md).
//!
//! Octets, for a MAC and for hex alike, are accepted as
//! - separated by `:`, one or two hex digits each: `02:42:ac:11:00:02`,
//!   `2:42:ac:11:0:2` (the form `ip link` and `arp` print);
//! - separated by `-`, one or two hex digits each: `02-42-AC-11-00-02`;
//! - bare hex, two digits an octet: `0242ac110002`;
//!
//! in upper or lower case, with one kind of separator per value and
//! surrounding whitespace ignored. Anything else is an error that names
//! the value and says what is wrong with it.
//!
//! Printed: a MAC as `02:42:ac:11:00:02`, other octets as bare lower-case
//! hex (`01000c01020304`), a time as RFC 3339 in UTC
//! (`2026-11-23T10:00:00Z`, or Unix seconds with [`TimeFormat::Epoch`]), a
//! duration as days, hours, minutes and seconds with the zero parts left
//! out (`1h`, `16m30s`, `1d2h`, `0s`).

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, UNIX_EPOCH};

use thiserror::Error;

/// The most octets a hardware address has (chaddr is 16 octets).
pub const MAX_MAC_OCTETS: usize = 16;
/// The most octets of one hex value: a DHCP option's whole value.
pub const MAX_HEX_OCTETS: usize = 255;

/// A value that is not in its accepted form: `` `VALUE` REASON ``.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("`{value}` {reason}")]
pub struct TextError {
    /// The value as given.
    pub value: String,
    /// What is wrong with it, and what was expected.
    pub reason: String,
}

impl TextError {
    fn new(value: &str, reason: impl Into<String>) -> TextError {
        TextError {
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

const OCTET_FORMS: &str = "(expected octets such as 02:42:ac:11:00:02, 2:42:ac:11:0:2, \
                           02-42-ac-11-00-02 or 0242ac110002)";

/// Hex octets (client-id, remote-id, relay-id, ...): `01:02:0a`, `1:2:a`,
/// `01-02-0A` or `01020a`; 1 to [`MAX_HEX_OCTETS`] octets.
pub fn parse_hex(s: &str) -> Result<Vec<u8>, TextError> {
    let v = octets(s)?;
    if v.len() > MAX_HEX_OCTETS {
        return Err(TextError::new(
            s,
            format!(
                "is {} octets; a value has at most {MAX_HEX_OCTETS}",
                v.len()
            ),
        ));
    }
    Ok(v)
}

/// A hardware address: the octet forms of [`parse_hex`], 1 to
/// [`MAX_MAC_OCTETS`] octets (`02:42:ac:11:00:02`, `2:42:0:0:0:0`).
pub fn parse_mac(s: &str) -> Result<Vec<u8>, TextError> {
    let v = octets(s)
        .map_err(|e| TextError::new(s, format!("is not a hardware address: {}", e.reason)))?;
    if v.len() > MAX_MAC_OCTETS {
        return Err(TextError::new(
            s,
            format!(
                "is not a hardware address: {} octets, at most {MAX_MAC_OCTETS}",
                v.len()
            ),
        ));
    }
    Ok(v)
}

fn octets(s: &str) -> Result<Vec<u8>, TextError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(TextError::new(s, format!("is empty {OCTET_FORMS}")));
    }
    let sep = match (t.contains(':'), t.contains('-')) {
        (true, true) => {
            return Err(TextError::new(
                s,
                "mixes `:` and `-`: use one kind of separator",
            ))
        }
        (true, false) => Some(':'),
        (false, true) => Some('-'),
        (false, false) => None,
    };
    let digit = |c: char| {
        c.to_digit(16)
            .map(|d| d as u8)
            .ok_or_else(|| TextError::new(s, format!("has `{c}`, not a hex digit {OCTET_FORMS}")))
    };
    match sep {
        Some(sep) => t
            .split(sep)
            .map(|group| {
                let mut v = 0u8;
                let n = group.chars().count();
                if n == 0 {
                    return Err(TextError::new(
                        s,
                        format!("has an empty octet between separators {OCTET_FORMS}"),
                    ));
                }
                if n > 2 {
                    return Err(TextError::new(
                        s,
                        format!(
                            "has `{group}`: one or two hex digits between separators {OCTET_FORMS}"
                        ),
                    ));
                }
                for c in group.chars() {
                    v = v << 4 | digit(c)?;
                }
                Ok(v)
            })
            .collect(),
        None => {
            let digits = t.chars().map(digit).collect::<Result<Vec<u8>, _>>()?;
            if digits.len() % 2 != 0 {
                return Err(TextError::new(
                    s,
                    format!(
                        "has an odd number of hex digits: without separators each octet is two digits {OCTET_FORMS}"
                    ),
                ));
            }
            Ok(digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect())
        }
    }
}

/// A hardware address as printed: `02:42:ac:11:00:02`.
pub fn format_mac(octets: &[u8]) -> String {
    let mut s = String::with_capacity(octets.len() * 3);
    for (i, b) in octets.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Octets as printed: bare lower-case hex, `01000c01020304`.
pub fn format_hex(octets: &[u8]) -> String {
    let mut s = String::with_capacity(octets.len() * 2);
    for b in octets {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// An IPv4 address in dotted-quad form, `10.0.0.1`.
pub fn parse_ipv4(s: &str) -> Result<Ipv4Addr, TextError> {
    s.trim()
        .parse()
        .map_err(|_| TextError::new(s, "is not an IPv4 address (a.b.c.d)"))
}

/// A pool range: `A-B` (inclusive, spaces around `-` allowed) or one
/// address `A`.
pub fn parse_ipv4_range(s: &str) -> Result<(Ipv4Addr, Ipv4Addr), TextError> {
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (parse_ipv4(a.trim())?, parse_ipv4(b.trim())?),
        None => {
            let a = parse_ipv4(s)?;
            (a, a)
        }
    };
    if a > b {
        return Err(TextError::new(s, "ends before it starts"));
    }
    Ok((a, b))
}

/// A server or local endpoint as typed, before any name is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPort {
    /// An address: `192.0.2.1`, `192.0.2.1:1067`, `::1`, `[::1]:1067`.
    Addr(SocketAddr),
    /// A host name to resolve: `lq.example.net`, `lq.example.net:1067`.
    Name { host: String, port: u16 },
}

/// `ADDR[:PORT]` or `NAME[:PORT]`, `default_port` when no port is given.
pub fn parse_host_port(s: &str, default_port: u16) -> Result<HostPort, TextError> {
    let t = s.trim();
    if let Ok(a) = t.parse::<SocketAddr>() {
        return Ok(HostPort::Addr(a));
    }
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Ok(HostPort::Addr(SocketAddr::new(ip, default_port)));
    }
    let bad = || TextError::new(s, "is not ADDR[:PORT] or NAME[:PORT]");
    let (host, port) = match t.rsplit_once(':') {
        Some((host, port)) => (host, port.parse::<u16>().map_err(|_| bad())?),
        None => (t, default_port),
    };
    let name_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_';
    if host.is_empty() || !host.chars().all(name_char) {
        return Err(bad());
    }
    Ok(HostPort::Name {
        host: host.to_string(),
        port,
    })
}

/// A parameter request list: option codes `51,82,91` (1 to 254), or
/// `none` (or nothing) for no option 55.
pub fn parse_prl(s: &str) -> Result<Vec<u8>, TextError> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("none") || t.is_empty() {
        return Ok(Vec::new());
    }
    t.split(',')
        .map(|p| match p.trim().parse::<u8>() {
            Ok(c) if c != 0 && c != 255 => Ok(c),
            _ => Err(TextError::new(p.trim(), "is not an option code (1 to 254)")),
        })
        .collect()
}

/// A parameter request list as [`parse_prl`] reads it: `51,82,91`, `none`.
pub fn format_prl(codes: &[u8]) -> String {
    if codes.is_empty() {
        return "none".into();
    }
    codes
        .iter()
        .map(u8::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// A point in time: Unix seconds (`1700000000`) or RFC 3339 in UTC
/// (`2023-11-14T22:13:20Z`; a space for the `T` and no `Z` are accepted
/// too, as UTC) → Unix seconds.
pub fn parse_time(s: &str) -> Result<u32, TextError> {
    let t = s.trim();
    if let Ok(n) = t.parse::<u32>() {
        return Ok(n);
    }
    let at = humantime::parse_rfc3339_weak(t).map_err(|e| {
        TextError::new(
            s,
            format!("is neither Unix seconds nor RFC 3339 such as 2026-11-23T10:00:00Z ({e})"),
        )
    })?;
    let secs = at
        .duration_since(UNIX_EPOCH)
        .map_err(|_| TextError::new(s, "is before 1970"))?
        .as_secs();
    u32::try_from(secs).map_err(|_| TextError::new(s, "is past 2106"))
}

/// Unix seconds as RFC 3339 in UTC: `2026-11-23T10:00:00Z`.
pub fn format_time(unix: u32) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(u64::from(unix))).to_string()
}

/// Seconds as a duration: `0s`, `45s`, `16m30s`, `1h`, `1d2h3m4s`.
pub fn format_duration(secs: u32) -> String {
    if secs == 0 {
        return "0s".into();
    }
    let mut s = String::new();
    let mut left = secs;
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        let n = left / size;
        left %= size;
        if n > 0 {
            let _ = write!(s, "{n}{unit}");
        }
    }
    s
}

/// How text output prints times and durations (`--epoch` picks
/// [`TimeFormat::Epoch`]). JSON and CSV output always carry numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TimeFormat {
    /// Times as RFC 3339 in UTC, durations as `16m30s`.
    #[default]
    Rfc3339,
    /// Times as Unix seconds, durations as whole seconds (`990s`).
    Epoch,
}

impl TimeFormat {
    /// [`TimeFormat::Epoch`] when `epoch` (the `--epoch` flag) is set.
    pub fn from_epoch_flag(epoch: bool) -> TimeFormat {
        if epoch {
            TimeFormat::Epoch
        } else {
            TimeFormat::Rfc3339
        }
    }

    /// A point in time given as Unix seconds.
    pub fn time(self, unix: u32) -> String {
        match self {
            TimeFormat::Rfc3339 => format_time(unix),
            TimeFormat::Epoch => unix.to_string(),
        }
    }

    /// A time that may be unknown: `-` when it is.
    pub fn time_or_dash(self, unix: Option<u32>) -> String {
        unix.map_or_else(|| "-".into(), |t| self.time(t))
    }

    /// A duration given in seconds.
    pub fn duration(self, secs: u32) -> String {
        match self {
            TimeFormat::Rfc3339 => format_duration(secs),
            TimeFormat::Epoch => format!("{secs}s"),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The accepted set of octets is tested as one table in the `leaseline`
    //! binary (crates/cli/src/text_table.rs), through this module and every
    //! place that reads such a value; here: printing and times.
    use super::*;

    #[test]
    fn octets_print_and_read_back() {
        let m = [0x02, 0x42, 0xac, 0x11, 0x00, 0x02];
        assert_eq!(format_mac(&m), "02:42:ac:11:00:02");
        assert_eq!(format_hex(&m), "0242ac110002");
        assert_eq!(parse_mac(&format_mac(&m)).unwrap(), m);
        assert_eq!(parse_hex(&format_hex(&m)).unwrap(), m);
        assert_eq!(format_mac(&[]), "");
    }

    #[test]
    fn errors_name_the_value() {
        let e = parse_mac("2:42:0:0:0:xy").unwrap_err();
        assert_eq!(e.value, "2:42:0:0:0:xy");
        assert!(
            e.to_string()
                .starts_with("`2:42:0:0:0:xy` is not a hardware address"),
            "{e}"
        );
        assert!(e.to_string().contains("`x`"), "{e}");
        let e = parse_hex("abc").unwrap_err().to_string();
        assert!(e.contains("odd number of hex digits"), "{e}");
        let e = parse_ipv4("10.0.0").unwrap_err().to_string();
        assert_eq!(e, "`10.0.0` is not an IPv4 address (a.b.c.d)");
    }

    #[test]
    fn addresses_ranges_and_endpoints() {
        let a = Ipv4Addr::new(10, 0, 0, 10);
        let b = Ipv4Addr::new(10, 0, 0, 20);
        assert_eq!(parse_ipv4(" 10.0.0.10 "), Ok(a));
        assert_eq!(parse_ipv4_range("10.0.0.10-10.0.0.20"), Ok((a, b)));
        assert_eq!(parse_ipv4_range("10.0.0.10 - 10.0.0.20"), Ok((a, b)));
        assert_eq!(parse_ipv4_range("10.0.0.10"), Ok((a, a)));
        assert!(parse_ipv4_range("10.0.0.20-10.0.0.10").is_err());
        assert!(parse_ipv4_range("10.0.0.x-10.0.0.10").is_err());
        let addr = |s: &str| HostPort::Addr(s.parse().unwrap());
        assert_eq!(parse_host_port("127.0.0.1", 67), Ok(addr("127.0.0.1:67")));
        assert_eq!(
            parse_host_port("127.0.0.1:1067", 67),
            Ok(addr("127.0.0.1:1067"))
        );
        assert_eq!(parse_host_port("::1", 67), Ok(addr("[::1]:67")));
        assert_eq!(parse_host_port("[::1]:1067", 67), Ok(addr("[::1]:1067")));
        let name = |h: &str, port| HostPort::Name {
            host: h.into(),
            port,
        };
        assert_eq!(
            parse_host_port("lq.example.net", 67),
            Ok(name("lq.example.net", 67))
        );
        assert_eq!(
            parse_host_port("localhost:1067", 0),
            Ok(name("localhost", 1067))
        );
        for bad in ["", "not an address", "host:port", "host:70000", ":67"] {
            assert!(parse_host_port(bad, 67).is_err(), "{bad}");
        }
    }

    #[test]
    fn parameter_request_lists() {
        assert_eq!(parse_prl("51, 82,91"), Ok(vec![51, 82, 91]));
        assert_eq!(parse_prl("none"), Ok(vec![]));
        assert_eq!(parse_prl(""), Ok(vec![]));
        assert!(parse_prl("0").is_err());
        assert!(parse_prl("255").is_err());
        assert!(parse_prl("300").is_err());
        assert!(parse_prl("51,,82").is_err());
        assert_eq!(format_prl(&[51, 82, 91]), "51,82,91");
        assert_eq!(format_prl(&[]), "none");
    }

    #[test]
    fn times_read_and_print() {
        assert_eq!(parse_time("1700000000"), Ok(1_700_000_000));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000));
        assert_eq!(parse_time("2023-11-14 22:13:20"), Ok(1_700_000_000));
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("1969-12-31T23:59:59Z").is_err());
        assert!(parse_time("2107-01-01T00:00:00Z").is_err());
        assert_eq!(format_time(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(u32::MAX), "2106-02-07T06:28:15Z");
        for t in [0, 1_700_000_000, u32::MAX] {
            assert_eq!(parse_time(&format_time(t)), Ok(t));
        }
    }

    #[test]
    fn durations_print() {
        for (secs, text) in [
            (0, "0s"),
            (45, "45s"),
            (60, "1m"),
            (990, "16m30s"),
            (3_600, "1h"),
            (3_661, "1h1m1s"),
            (86_400, "1d"),
            (93_784, "1d2h3m4s"),
        ] {
            assert_eq!(format_duration(secs), text);
        }
    }

    #[test]
    fn time_format_picks_the_form() {
        let r = TimeFormat::default();
        assert_eq!(r.time(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(r.duration(990), "16m30s");
        let e = TimeFormat::from_epoch_flag(true);
        assert_eq!(e.time(1_700_000_000), "1700000000");
        assert_eq!(e.duration(990), "990s");
        assert_eq!(r.time_or_dash(None), "-");
        assert_eq!(e.time_or_dash(None), "-");
    }
}
