//! Kea's memfile lease file for DHCPv4 (`kea-leases4.csv`): a header
//! `address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,
//! fqdn_rev,hostname,state,user_context` (Kea 2.2; later versions add
//! `pool_id`), then one line per lease change. It is a journal: Kea
//! appends the whole lease on every change and its loader lets a later
//! line replace an earlier one for the same address; a line with
//! valid_lifetime 0 is a deleted lease, which the loader removes
//! (Kea's `LeaseFileLoader::load`). Times are Unix seconds; `expire` is the
//! end of the lease, which started `valid_lifetime` before it.
//! States: 0 default (leased), 1 declined, 2 expired-reclaimed.

use std::io::Read;
use std::net::Ipv4Addr;

use csv::ByteRecord;

use crate::text::{colon_hex, kea_unescape};
use crate::{LeaseRecord, ParseError, RecordState, Unmapped};

/// The columns a Kea 2.2 file starts with, in order.
const COLUMNS: [&str; 11] = [
    "address",
    "hwaddr",
    "client_id",
    "valid_lifetime",
    "expire",
    "subnet_id",
    "fqdn_fwd",
    "fqdn_rev",
    "hostname",
    "state",
    "user_context",
];
const ADDRESS: usize = 0;
const HWADDR: usize = 1;
const CLIENT_ID: usize = 2;
const VALID_LIFETIME: usize = 3;
const EXPIRE: usize = 4;
const HOSTNAME: usize = 8;
const STATE: usize = 9;
const USER_CONTEXT: usize = 10;

/// The lease records of a Kea DHCPv4 memfile, in file order.
pub struct KeaCsv<R> {
    reader: csv::Reader<R>,
    /// Fields each line has (the header's).
    width: Option<usize>,
    record: ByteRecord,
    unmapped: Unmapped,
    done: bool,
}

impl<R: Read> KeaCsv<R> {
    pub fn new(reader: R) -> Self {
        KeaCsv {
            reader: csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(reader),
            width: None,
            record: ByteRecord::new(),
            unmapped: Unmapped::default(),
            done: false,
        }
    }

    pub fn unmapped(&self) -> &Unmapped {
        &self.unmapped
    }

    fn header(&mut self, line: u64) -> Result<(), ParseError> {
        let names: Vec<&[u8]> = self.record.iter().collect();
        let known = names.len() >= COLUMNS.len()
            && names.iter().zip(COLUMNS).all(|(n, c)| *n == c.as_bytes());
        if !known {
            return Err(ParseError::new(
                line,
                format!(
                    "not a Kea DHCPv4 lease file: the header is not {}[,...]",
                    COLUMNS.join(",")
                ),
            ));
        }
        for extra in &names[COLUMNS.len()..] {
            self.unmapped
                .note(&format!("column {}", String::from_utf8_lossy(extra)), line);
        }
        self.width = Some(names.len());
        Ok(())
    }

    fn lease(&mut self, line: u64) -> Result<LeaseRecord, ParseError> {
        let bad = |reason: String| ParseError::new(line, reason);
        let width = self.width.unwrap_or(COLUMNS.len());
        if self.record.len() != width {
            return Err(bad(format!(
                "{} fields, the header has {width} (truncated or not a lease line)",
                self.record.len()
            )));
        }
        let field = |i: usize| -> Result<&str, ParseError> {
            std::str::from_utf8(&self.record[i]).map_err(|_| {
                ParseError::new(line, format!("{} is binary data, not text", COLUMNS[i]))
            })
        };
        let address = field(ADDRESS)?;
        let ip: Ipv4Addr = address
            .parse()
            .map_err(|_| bad(format!("address {address:?} is not an IPv4 address")))?;
        let number = |i: usize| -> Result<u64, ParseError> {
            let s = field(i)?;
            s.parse::<u64>()
                .map_err(|_| bad(format!("{} {s:?} is not a number", COLUMNS[i])))
        };
        let valid = u32::try_from(number(VALID_LIFETIME)?)
            .map_err(|_| bad("valid_lifetime is over 2^32".into()))?;
        let expire =
            u32::try_from(number(EXPIRE)?).map_err(|_| bad("expire is after 2106".into()))?;
        let state = match number(STATE)? {
            _ if valid == 0 => RecordState::Removed,
            0 => RecordState::Active,
            1 => RecordState::Abandoned,
            2 => RecordState::Expired,
            s => return Err(bad(format!("state {s} is not 0, 1 or 2"))),
        };
        let hw = colon_hex(field(HWADDR)?).map_err(|r| bad(format!("hwaddr {r}")))?;
        if hw.len() > 16 {
            return Err(bad(format!("hwaddr of {} bytes (at most 16)", hw.len())));
        }
        let client_id = colon_hex(field(CLIENT_ID)?).map_err(|r| bad(format!("client_id {r}")))?;
        let hostname = kea_unescape(field(HOSTNAME)?);
        if !field(USER_CONTEXT)?.is_empty() {
            self.unmapped.note("user_context", line);
        }
        let mut rec = LeaseRecord::new(line, ip);
        let starts = expire.saturating_sub(valid);
        rec.state = state;
        rec.starts = Some(starts);
        rec.cltt = Some(starts);
        rec.ends = Some(expire);
        rec.lease_time = Some(valid);
        // Kea records the hardware type only for its own use; DHCPv4
        // leases in the memfile are Ethernet.
        rec.hardware = (!hw.is_empty()).then_some((1, hw));
        rec.client_id = (!client_id.is_empty()).then_some(client_id);
        rec.hostname = (!hostname.is_empty()).then_some(hostname);
        Ok(rec)
    }
}

impl<R: Read> Iterator for KeaCsv<R> {
    type Item = Result<LeaseRecord, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            match self.reader.read_byte_record(&mut self.record) {
                Ok(false) => self.done = true,
                Ok(true) => {
                    let line = self.record.position().map_or(0, |p| p.line());
                    if self.width.is_none() {
                        if let Err(e) = self.header(line) {
                            // Nothing after a header that is not Kea's is read.
                            self.done = true;
                            return Some(Err(e));
                        }
                        continue;
                    }
                    return Some(self.lease(line));
                }
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    if !matches!(e.kind(), csv::ErrorKind::Io(_)) {
                        return Some(Err(ParseError::new(line, e.to_string())));
                    }
                    self.done = true;
                    return Some(Err(ParseError::new(line, format!("read error: {e}"))));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests;
