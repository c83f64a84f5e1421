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
    /// The statement being read (its buffers reused from one to the next).
    st: Statement,
    done: bool,
}

/// A statement: its words up to the token that ended it, their text in
/// two buffers (bare words, strings' bytes).
struct Statement {
    line: u64,
    words: Vec<Word>,
    bare: String,
    quoted: Vec<u8>,
    end: End,
}

/// Where a word's text is in its statement's buffers.
#[derive(Clone, Copy)]
enum Word {
    Bare(usize, usize),
    Quoted(usize, usize),
}

/// A word of a statement: bare or a quoted string.
#[derive(Clone, Copy)]
enum Value<'a> {
    Bare(&'a str),
    Quoted(&'a [u8]),
}

#[derive(PartialEq)]
enum End {
    Semi,
    Open,
    Close,
    Eof,
}

impl Statement {
    fn new() -> Self {
        Statement {
            line: 0,
            words: Vec::new(),
            bare: String::new(),
            quoted: Vec::new(),
            end: End::Eof,
        }
    }

    fn clear(&mut self) {
        self.words.clear();
        self.bare.clear();
        self.quoted.clear();
    }

    fn push(&mut self, line: u64, t: Token<'_>) {
        if self.words.is_empty() {
            self.line = line;
        }
        let w = match t {
            Token::Word(w) => {
                let start = self.bare.len();
                self.bare.push_str(w);
                Word::Bare(start, self.bare.len())
            }
            Token::Str(s) => {
                let start = self.quoted.len();
                self.quoted.extend_from_slice(s);
                Word::Quoted(start, self.quoted.len())
            }
            Token::Open | Token::Close | Token::Semi => return,
        };
        self.words.push(w);
    }

    fn get(&self, i: usize) -> Option<Value<'_>> {
        Some(match *self.words.get(i)? {
            Word::Bare(s, e) => Value::Bare(&self.bare[s..e]),
            Word::Quoted(s, e) => Value::Quoted(&self.quoted[s..e]),
        })
    }

    /// The bare word at `i`.
    fn word(&self, i: usize) -> Option<&str> {
        match self.get(i)? {
            Value::Bare(w) => Some(w),
            Value::Quoted(_) => None,
        }
    }

    /// Two words from `from`, for the unmapped report and messages.
    fn head(&self, from: usize) -> String {
        (from..self.words.len())
            .take(2)
            .filter_map(|i| self.get(i))
            .map(|v| match v {
                Value::Bare(s) => s.to_owned(),
                Value::Quoted(s) => format!("\"{}\"", String::from_utf8_lossy(s)),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl<R: BufRead> DhcpdLeases<R> {
    pub fn new(reader: R) -> Self {
        DhcpdLeases {
            tokens: Tokens::new(reader),
            unmapped: Unmapped::default(),
            st: Statement::new(),
            done: false,
        }
    }

    /// As [`DhcpdLeases::new`], the file read and cut into tokens in a
    /// thread of its own, ahead of the parsing (for large files: the two
    /// overlap).
    pub fn threaded(reader: R) -> Self
    where
        R: Send + 'static,
    {
        DhcpdLeases {
            tokens: Tokens::threaded(reader),
            unmapped: Unmapped::default(),
            st: Statement::new(),
            done: false,
        }
    }

    /// What was read and not mapped so far.
    pub fn unmapped(&self) -> &Unmapped {
        &self.unmapped
    }

    /// Reads the next statement into `self.st`.
    fn statement(&mut self) -> Result<(), ParseError> {
        let st = &mut self.st;
        st.clear();
        loop {
            let Some((line, t)) = self.tokens.next()? else {
                if st.words.is_empty() {
                    st.line = self.tokens.line();
                }
                st.end = End::Eof;
                return Ok(());
            };
            let end = match t {
                Token::Semi => End::Semi,
                Token::Open => End::Open,
                Token::Close => End::Close,
                t => {
                    st.push(line, t);
                    continue;
                }
            };
            if st.words.is_empty() {
                st.line = line;
            }
            st.end = end;
            return Ok(());
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
            if let Err(e) = self.statement() {
                first_error.get_or_insert(e);
                continue;
            }
            let st = &self.st;
            match st.end {
                End::Semi => {
                    if let Err(reason) = field(&mut rec, st, &mut self.unmapped) {
                        first_error.get_or_insert(ParseError::new(st.line, reason));
                    }
                }
                End::Open => {
                    let at = st.line;
                    self.unmapped.note(&st.head(0), at);
                    self.skip_block(at)?;
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
}

/// One `keyword ...;` statement of a lease.
fn field(rec: &mut LeaseRecord, st: &Statement, unmapped: &mut Unmapped) -> Result<(), String> {
    let word = |i: usize| st.word(i);
    match (word(0), word(1)) {
        (Some("starts"), _) => rec.starts = time(st, 1)?,
        (Some("ends"), _) => rec.ends = time(st, 1)?,
        (Some("cltt"), _) => rec.cltt = time(st, 1)?,
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
        (Some("uid"), _) => rec.client_id = Some(bytes(st.get(1))?),
        (Some("client-hostname"), _) => rec.hostname = Some(bytes(st.get(1))?),
        (Some("abandoned"), _) => rec.state = RecordState::Abandoned,
        (Some("option"), Some("agent.circuit-id")) => rec.circuit_id = Some(bytes(st.get(2))?),
        (Some("option"), Some("agent.remote-id")) => rec.remote_id = Some(bytes(st.get(2))?),
        (Some("set"), Some("vendor-class-identifier")) => {
            rec.vendor_class_id = Some(bytes(st.get(3))?)
        }
        // What every lease of a failover-less dhcpd writes: no format.
        (Some("next"), Some("binding")) => unmapped.note("next binding", st.line),
        (Some("rewind"), Some("binding")) => unmapped.note("rewind binding", st.line),
        (Some(k @ ("option" | "set" | "next" | "rewind")), Some(name)) => {
            unmapped.note(&format!("{k} {name}"), st.line)
        }
        (Some(k), _) => unmapped.note(k, st.line),
        (None, _) => return Err("statement does not start with a keyword".into()),
    }
    Ok(())
}

/// `W YYYY/MM/DD HH:MM:SS`, `epoch N` or `never` (dhcpd.leases(5),
/// "DATES"), the words of `st` from `from`. `never` is `None`.
fn time(st: &Statement, from: usize) -> Result<Option<u32>, String> {
    let count = st.words.len().saturating_sub(from);
    let mut w = [""; 3];
    for i in 0..count {
        let word = st
            .word(from + i)
            .ok_or_else(|| "a time is words, not a string".to_owned())?;
        if let Some(slot) = w.get_mut(i) {
            *slot = word;
        }
    }
    match (count, w) {
        (1, ["never", _, _]) => Ok(None),
        (2, ["epoch", n, _]) => n
            .parse::<u32>()
            .map(Some)
            .map_err(|_| format!("epoch {n} is not a time")),
        (3, [weekday, date, time])
            if weekday.len() == 1 && weekday.as_bytes()[0].is_ascii_digit() =>
        {
            utc_date_time(date, time).map(Some)
        }
        _ => Err(format!(
            "{:?} is not a time (W YYYY/MM/DD HH:MM:SS, epoch N or never)",
            (from..st.words.len())
                .filter_map(|i| st.word(i))
                .collect::<Vec<_>>()
                .join(" ")
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
fn bytes(v: Option<Value<'_>>) -> Result<Vec<u8>, String> {
    match v {
        Some(Value::Quoted(s)) => Ok(s.to_vec()),
        Some(Value::Bare(w)) => colon_hex(w),
        None => Err("missing value".into()),
    }
}

impl<R: BufRead> DhcpdLeases<R> {
    /// The next record that is `wanted` (by its address and line): the
    /// body of any other is skipped, not parsed (a second pass that wants
    /// only each address's last record).
    pub fn next_wanted(
        &mut self,
        mut wanted: impl FnMut(Ipv4Addr, u64) -> bool,
    ) -> Option<Result<LeaseRecord, ParseError>> {
        while !self.done {
            if let Err(e) = self.statement() {
                return Some(Err(e));
            }
            let st = &self.st;
            let at = st.line;
            match st.end {
                End::Eof if st.words.is_empty() => self.done = true,
                End::Eof => {
                    self.done = true;
                    return Some(Err(ParseError::new(
                        at,
                        "truncated: the last statement has no ; or {",
                    )));
                }
                End::Close => {
                    return Some(Err(ParseError::new(at, "} without a matching {")));
                }
                End::Semi => self.unmapped.note(&st.head(0), at),
                End::Open if st.word(0) == Some("lease") => {
                    let ip = match (st.word(1).map(str::parse::<Ipv4Addr>), st.words.len()) {
                        (Some(Ok(ip)), 2) => ip,
                        _ => {
                            let shown = st.head(1);
                            let e = ParseError::new(
                                at,
                                format!("lease {shown:?}: not an IPv4 address"),
                            );
                            return Some(self.skip_block(at).and(Err(e)));
                        }
                    };
                    if !wanted(ip, at) {
                        if let Err(e) = self.skip_block(at) {
                            return Some(Err(e));
                        }
                        continue;
                    }
                    return Some(self.lease(at, ip));
                }
                End::Open => {
                    self.unmapped.note(&st.head(0), at);
                    if let Err(e) = self.skip_block(at) {
                        return Some(Err(e));
                    }
                }
            }
        }
        None
    }
}

impl<R: BufRead> Iterator for DhcpdLeases<R> {
    type Item = Result<LeaseRecord, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_wanted(|_, _| true)
    }
}

#[cfg(test)]
mod tests;
