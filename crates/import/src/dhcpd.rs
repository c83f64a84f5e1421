//! ISC dhcpd's lease journal, `dhcpd.leases` (dhcpd.leases(5)): `lease
//! A.B.C.D { ... }` records, each a full copy of the lease at the time it
//! was written (the last record of an address wins), among other
//! statements (`server-duid`, `authoring-byte-order`, `failover peer`
//! blocks, `host` and `class` declarations added through OMAPI) that carry
//! no binding: those are counted in [`Unmapped`].

use std::io::BufRead;
use std::net::Ipv4Addr;

use crate::dhcpd_tokens::{Token, Tokens};
use crate::text::{colon_hex, utc_date_time};
use crate::{LeaseRecord, ParseError, RecordState, Unmapped};

/// The lease records of a dhcpd.leases stream, in file order.
pub struct DhcpdLeases<R> {
    tokens: Tokens<R>,
    unmapped: Unmapped,
    done: bool,
}

/// A statement: its tokens up to the one that ended it.
struct Statement {
    line: u64,
    words: Vec<(u64, Token)>,
    end: End,
}

#[derive(PartialEq)]
enum End {
    Semi,
    Open,
    Close,
    Eof,
}

impl<R: BufRead> DhcpdLeases<R> {
    pub fn new(reader: R) -> Self {
        DhcpdLeases {
            tokens: Tokens::new(reader),
            unmapped: Unmapped::default(),
            done: false,
        }
    }

    /// What was read and not mapped so far.
    pub fn unmapped(&self) -> &Unmapped {
        &self.unmapped
    }

    fn statement(&mut self) -> Result<Statement, ParseError> {
        let mut words = Vec::new();
        loop {
            let Some((line, t)) = self.tokens.next()? else {
                let line = words.first().map_or(self.tokens.line(), |(l, _)| *l);
                return Ok(Statement {
                    line,
                    words,
                    end: End::Eof,
                });
            };
            let end = match t {
                Token::Semi => End::Semi,
                Token::Open => End::Open,
                Token::Close => End::Close,
                t => {
                    words.push((line, t));
                    continue;
                }
            };
            let line = words.first().map_or(line, |(l, _)| *l);
            return Ok(Statement { line, words, end });
        }
    }

    /// Skip a `{ ... }` block whose `{` was just read.
    fn skip_block(&mut self, opened_at: u64) -> Result<(), ParseError> {
        let mut depth = 1usize;
        while depth > 0 {
            match self.tokens.next()? {
                Some((_, Token::Open)) => depth += 1,
                Some((_, Token::Close)) => depth -= 1,
                Some(_) => {}
                None => {
                    return Err(ParseError::new(
                        opened_at,
                        format!(
                        "truncated: the block opened here has no closing }} (file ends at line {})",
                        self.tokens.line()
                    ),
                    ))
                }
            }
        }
        Ok(())
    }

    /// The body of `lease IP {`, up to its `}`. A bad statement fails the
    /// record (the first error is reported) but the rest of it is still
    /// read, so that the next record starts in the right place.
    fn lease(&mut self, line: u64, ip: Ipv4Addr) -> Result<LeaseRecord, ParseError> {
        let mut rec = LeaseRecord::new(line, ip);
        let mut first_error: Option<ParseError> = None;
        loop {
            let st = match self.statement() {
                Ok(st) => st,
                Err(e) => {
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            match st.end {
                End::Semi => {
                    if let Err(reason) = self.field(&mut rec, &st) {
                        first_error.get_or_insert(ParseError::new(st.line, reason));
                    }
                }
                End::Open => {
                    self.unmapped.note(&head(&st.words), st.line);
                    self.skip_block(st.line)?;
                }
                End::Close if st.words.is_empty() => break,
                End::Close => {
                    first_error.get_or_insert(ParseError::new(st.line, "statement without its ;"));
                    break;
                }
                End::Eof => {
                    return Err(ParseError::new(
                        line,
                        format!(
                            "truncated: lease {ip} has no closing }} (file ends at line {})",
                            self.tokens.line()
                        ),
                    ))
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        if let (Some(s), Some(e)) = (rec.starts, rec.ends) {
            rec.lease_time = Some(e.saturating_sub(s));
        }
        Ok(rec)
    }

    /// One `keyword ...;` statement of a lease.
    fn field(&mut self, rec: &mut LeaseRecord, st: &Statement) -> Result<(), String> {
        let w = &st.words;
        let token = |i: usize| w.get(i).map(|(_, t)| t);
        let word = |i: usize| match token(i) {
            Some(Token::Word(s)) => Some(s.as_str()),
            _ => None,
        };
        match (word(0), word(1)) {
            (Some("starts"), _) => rec.starts = time(&w[1..])?,
            (Some("ends"), _) => rec.ends = time(&w[1..])?,
            (Some("cltt"), _) => rec.cltt = time(&w[1..])?,
            (Some("binding"), Some("state")) => rec.state = state(word(2))?,
            (Some("hardware"), Some(kind)) => {
                let htype = match kind {
                    "ethernet" => 1,
                    "token-ring" => 6,
                    "fddi" => 8,
                    "infiniband" => 32,
                    k => return Err(format!("unknown hardware type {k:?}")),
                };
                let mac = colon_hex(word(2).ok_or("hardware without an address")?)?;
                if mac.len() > 16 {
                    return Err(format!(
                        "hardware address of {} bytes (at most 16)",
                        mac.len()
                    ));
                }
                rec.hardware = Some((htype, mac));
            }
            (Some("uid"), _) => rec.client_id = Some(bytes(token(1))?),
            (Some("client-hostname"), _) => rec.hostname = Some(bytes(token(1))?),
            (Some("abandoned"), _) => rec.state = RecordState::Abandoned,
            (Some("option"), Some("agent.circuit-id")) => rec.circuit_id = Some(bytes(token(2))?),
            (Some("option"), Some("agent.remote-id")) => rec.remote_id = Some(bytes(token(2))?),
            (Some("set"), Some("vendor-class-identifier")) => {
                rec.vendor_class_id = Some(bytes(token(3))?)
            }
            // What every lease of a failover-less dhcpd writes: no format.
            (Some("next"), Some("binding")) => self.unmapped.note("next binding", st.line),
            (Some("rewind"), Some("binding")) => self.unmapped.note("rewind binding", st.line),
            (Some(k @ ("option" | "set" | "next" | "rewind")), Some(name)) => {
                self.unmapped.note(&format!("{k} {name}"), st.line)
            }
            (Some(k), _) => self.unmapped.note(k, st.line),
            (None, _) => return Err("statement does not start with a keyword".into()),
        }
        Ok(())
    }
}

/// A statement's first two words, for the unmapped report.
fn head(words: &[(u64, Token)]) -> String {
    words
        .iter()
        .take(2)
        .map(|(_, t)| match t {
            Token::Word(s) => s.clone(),
            Token::Str(s) => format!("\"{}\"", String::from_utf8_lossy(s)),
            _ => String::new(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `W YYYY/MM/DD HH:MM:SS`, `epoch N` or `never` (dhcpd.leases(5),
/// "DATES"). `never` is `None`.
fn time(w: &[(u64, Token)]) -> Result<Option<u32>, String> {
    let s: Vec<&str> = w
        .iter()
        .map(|(_, t)| match t {
            Token::Word(s) => Ok(s.as_str()),
            _ => Err("a time is words, not a string".to_owned()),
        })
        .collect::<Result<_, _>>()?;
    match s[..] {
        ["never"] => Ok(None),
        ["epoch", n] => n
            .parse::<u32>()
            .map(Some)
            .map_err(|_| format!("epoch {n} is not a time")),
        [weekday, date, time] if weekday.len() == 1 && weekday.as_bytes()[0].is_ascii_digit() => {
            utc_date_time(date, time).map(Some)
        }
        _ => Err(format!(
            "{:?} is not a time (W YYYY/MM/DD HH:MM:SS, epoch N or never)",
            s.join(" ")
        )),
    }
}

fn state(s: Option<&str>) -> Result<RecordState, String> {
    Ok(match s {
        Some("active") => RecordState::Active,
        Some("free") => RecordState::Free,
        Some("backup") => RecordState::Backup,
        Some("expired") => RecordState::Expired,
        Some("released") => RecordState::Released,
        Some("abandoned") => RecordState::Abandoned,
        // Failover states of an address being reset or recovered.
        Some("reset") | Some("bootp") => RecordState::Free,
        Some(s) => return Err(format!("unknown binding state {s:?}")),
        None => return Err("binding state without a state".into()),
    })
}

/// A quoted string, or unquoted colon hex (dhcpd writes non-printable
/// values that way).
fn bytes(t: Option<&Token>) -> Result<Vec<u8>, String> {
    match t {
        Some(Token::Str(s)) => Ok(s.clone()),
        Some(Token::Word(w)) => colon_hex(w),
        _ => Err("missing value".into()),
    }
}

impl<R: BufRead> Iterator for DhcpdLeases<R> {
    type Item = Result<LeaseRecord, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let st = match self.statement() {
                Ok(st) => st,
                Err(e) => return Some(Err(e)),
            };
            let first = |i: usize| match st.words.get(i) {
                Some((_, Token::Word(s))) => Some(s.as_str()),
                _ => None,
            };
            match st.end {
                End::Eof if st.words.is_empty() => self.done = true,
                End::Eof => {
                    self.done = true;
                    return Some(Err(ParseError::new(
                        st.line,
                        "truncated: the last statement has no ; or {",
                    )));
                }
                End::Close => {
                    return Some(Err(ParseError::new(st.line, "} without a matching {")));
                }
                End::Semi => self.unmapped.note(&head(&st.words), st.line),
                End::Open if first(0) == Some("lease") => {
                    let ip = match (first(1).map(str::parse::<Ipv4Addr>), st.words.len()) {
                        (Some(Ok(ip)), 2) => ip,
                        _ => {
                            let shown = head(&st.words[1..]);
                            let e = ParseError::new(
                                st.line,
                                format!("lease {shown:?}: not an IPv4 address"),
                            );
                            return Some(self.skip_block(st.line).and(Err(e)));
                        }
                    };
                    return Some(self.lease(st.line, ip));
                }
                End::Open => {
                    self.unmapped.note(&head(&st.words), st.line);
                    if let Err(e) = self.skip_block(st.line) {
                        return Some(Err(e));
                    }
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests;
