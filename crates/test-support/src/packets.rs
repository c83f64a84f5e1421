//! Raw DHCPv4 datagrams built byte by byte, independent of leaseline-wire,
//! and the malformed ones the server must refuse.

use std::net::Ipv4Addr;

const COOKIE: [u8; 4] = [0x63, 0x82, 0x53, 0x63];

/// A BOOTREQUEST as bytes: the 236-byte header, the cookie, then `options`
/// exactly as given (no END is added: add it yourself).
#[derive(Debug, Clone)]
pub struct RawRequest {
    pub xid: u32,
    pub giaddr: Ipv4Addr,
    pub ciaddr: Ipv4Addr,
    pub chaddr: [u8; 6],
    pub hops: u8,
    pub flags: u16,
    /// Raw option bytes following the cookie.
    pub options: Vec<u8>,
}

impl RawRequest {
    /// A relayed DHCPDISCOVER from `chaddr` via `giaddr`, options 53 and END.
    pub fn discover(giaddr: Ipv4Addr, chaddr: [u8; 6], xid: u32) -> RawRequest {
        RawRequest {
            xid,
            giaddr,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            chaddr,
            hops: 1,
            flags: 0,
            options: vec![53, 1, 1, 255],
        }
    }

    pub fn header(&self) -> Vec<u8> {
        let mut b = vec![0u8; 236];
        b[0] = 1; // BOOTREQUEST
        b[1] = 1; // Ethernet
        b[2] = 6;
        b[3] = self.hops;
        b[4..8].copy_from_slice(&self.xid.to_be_bytes());
        b[10..12].copy_from_slice(&self.flags.to_be_bytes());
        b[12..16].copy_from_slice(&self.ciaddr.octets());
        b[24..28].copy_from_slice(&self.giaddr.octets());
        b[28..34].copy_from_slice(&self.chaddr);
        b
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = self.header();
        b.extend_from_slice(&COOKIE);
        b.extend_from_slice(&self.options);
        b
    }
}

/// A small deterministic PRNG (xorshift64*), so failures reproduce.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        XorShift(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next_u64() as u8;
        }
    }
}

/// Datagrams the server must refuse (log `dropped datagram`, send nothing).
/// Each is otherwise a plausible relayed request from `giaddr`.
pub mod malformed {
    use super::*;

    fn base(giaddr: Ipv4Addr, xid: u32) -> RawRequest {
        RawRequest::discover(giaddr, [0x02, 0xba, 0xd0, 0x00, 0x00, 0x01], xid)
    }

    /// 100 bytes: shorter than the fixed header.
    pub fn truncated(giaddr: Ipv4Addr) -> Vec<u8> {
        let mut b = base(giaddr, 0x0bad_0001).to_bytes();
        b.truncate(100);
        b
    }

    /// A complete DISCOVER whose magic cookie is 0xdeadbeef.
    pub fn bad_magic_cookie(giaddr: Ipv4Addr) -> Vec<u8> {
        let mut b = base(giaddr, 0x0bad_0002).to_bytes();
        b[236..240].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        b
    }

    /// Option 12 (hostname) claims 200 bytes but 5 follow; no END.
    pub fn option_overrun(giaddr: Ipv4Addr) -> Vec<u8> {
        let mut r = base(giaddr, 0x0bad_0003);
        r.options = vec![53, 1, 1, 12, 200, b'h', b'o', b's', b't', b'x'];
        r.to_bytes()
    }

    /// A DISCOVER carrying option 52 (overload) = 3 (file and sname).
    pub fn option_overload(giaddr: Ipv4Addr) -> Vec<u8> {
        let mut r = base(giaddr, 0x0bad_0004);
        r.options = vec![53, 1, 1, 52, 1, 3, 255];
        let mut b = r.header();
        // sname and file hold options terminated by END, as overload says.
        b[44] = 255;
        b[108] = 255;
        b.extend_from_slice(&COOKIE);
        b.extend_from_slice(&r.options);
        b
    }

    /// Message type (option 53) 99.
    pub fn unknown_message_type(giaddr: Ipv4Addr) -> Vec<u8> {
        let mut r = base(giaddr, 0x0bad_0005);
        r.options = vec![53, 1, 99, 255];
        r.to_bytes()
    }

    /// Random bytes of random length (1..=600). Half are fully random; half
    /// are a valid header and cookie followed by random option bytes, which
    /// exercises the option parser. Whenever the datagram is long enough to
    /// hold one, giaddr is set to `giaddr` and ciaddr to 0, so that even a
    /// datagram that happened to be valid could only be answered on loopback.
    pub fn random(rng: &mut XorShift, giaddr: Ipv4Addr) -> Vec<u8> {
        let len = rng.range(1, 600);
        let mut b = vec![0u8; len];
        rng.fill(&mut b);
        if rng.next_u64().is_multiple_of(2) && len > 240 {
            let mut r = base(giaddr, rng.next_u64() as u32);
            r.options = b[240..].to_vec();
            b = r.to_bytes();
        }
        if b.len() >= 28 {
            b[12..16].fill(0);
            b[24..28].copy_from_slice(&giaddr.octets());
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_discover_layout() {
        let g = Ipv4Addr::new(127, 0, 0, 9);
        let b = RawRequest::discover(g, [1, 2, 3, 4, 5, 6], 0x01020304).to_bytes();
        assert_eq!(b.len(), 244);
        assert_eq!(&b[4..8], &[1, 2, 3, 4]);
        assert_eq!(&b[24..28], &[127, 0, 0, 9]);
        assert_eq!(&b[236..240], &COOKIE);
        assert_eq!(&b[240..], &[53, 1, 1, 255]);
    }

    #[test]
    fn malformed_shapes() {
        let g = Ipv4Addr::new(127, 0, 0, 9);
        assert_eq!(malformed::truncated(g).len(), 100);
        assert_eq!(
            &malformed::bad_magic_cookie(g)[236..240],
            &[0xde, 0xad, 0xbe, 0xef]
        );
        let o = malformed::option_overload(g);
        assert_eq!(&o[240..], &[53, 1, 1, 52, 1, 3, 255]);
        let mut rng = XorShift::new(7);
        for _ in 0..1000 {
            let d = malformed::random(&mut rng, g);
            assert!(!d.is_empty() && d.len() <= 600);
            if d.len() >= 28 {
                assert_eq!(&d[24..28], &[127, 0, 0, 9]);
            }
        }
    }
}
