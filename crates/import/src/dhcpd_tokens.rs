//! dhcpd.leases(5) and dhcpd.conf(5) tokens, one line at a time: words, quoted strings
//! (with dhcpd's `\ooo` octal and `\"` escapes), `{`, `}`, `;`; `#` starts
//! a comment. dhcpd writes every statement on one line, so a string never
//! spans lines.

use std::io::BufRead;

use crate::ParseError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    Word(String),
    Str(Vec<u8>),
    Open,
    Close,
    Semi,
}

/// The longest line read: dhcpd's are well under 1 KiB; a longer one is junk.
const MAX_LINE: usize = 64 * 1024;

/// Reads lines and cuts them into tokens, each with its line number.
pub(crate) struct Tokens<R> {
    reader: R,
    line: u64,
    buf: Vec<u8>,
    pending: std::collections::VecDeque<(u64, Token)>,
}

impl<R: BufRead> Tokens<R> {
    pub(crate) fn new(reader: R) -> Self {
        Tokens {
            reader,
            line: 0,
            buf: Vec::new(),
            pending: Default::default(),
        }
    }

    /// The last line read.
    pub(crate) fn line(&self) -> u64 {
        self.line
    }

    /// The next token; `Ok(None)` at the end of the input. A line that is
    /// not text is an error (the rest of it is dropped).
    pub(crate) fn next(&mut self) -> Result<Option<(u64, Token)>, ParseError> {
        loop {
            if let Some(t) = self.pending.pop_front() {
                return Ok(Some(t));
            }
            self.buf.clear();
            let n = std::io::Read::take(&mut self.reader, MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut self.buf)
                .map_err(|e| ParseError::new(self.line + 1, format!("read error: {e}")))?;
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            if self.buf.len() > MAX_LINE {
                // Skip the rest of the over-long line.
                while !self.buf.ends_with(b"\n") {
                    self.buf.clear();
                    let n = std::io::Read::take(&mut self.reader, MAX_LINE as u64)
                        .read_until(b'\n', &mut self.buf)
                        .map_err(|e| ParseError::new(self.line, format!("read error: {e}")))?;
                    if n == 0 {
                        break;
                    }
                }
                return Err(ParseError::new(
                    self.line,
                    format!("line longer than {MAX_LINE} bytes (not a text file?)"),
                ));
            }
            let line = self.line;
            let text = std::str::from_utf8(&self.buf)
                .ok()
                .filter(|t| !has_control(t))
                .ok_or_else(|| ParseError::new(line, "binary data, not text"))?;
            let before = self.pending.len();
            if let Err(r) = tokenize_into(text, line, &mut self.pending) {
                self.pending.truncate(before);
                return Err(ParseError::new(line, r));
            }
        }
    }
}

/// A control character other than tab and line ends: binary data.
fn has_control(t: &str) -> bool {
    let control = |c: char| c.is_control() && c != '\t' && c != '\n' && c != '\r';
    if t.is_ascii() {
        // The common case, byte by byte.
        t.bytes().any(|b| control(char::from(b)))
    } else {
        t.chars().any(control)
    }
}

#[cfg(test)]
fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut out = std::collections::VecDeque::new();
    tokenize_into(text, 0, &mut out)?;
    Ok(out.into_iter().map(|(_, t)| t).collect())
}

/// A line's tokens, each with `line`, appended to `out`.
fn tokenize_into(
    text: &str,
    line: u64,
    out: &mut std::collections::VecDeque<(u64, Token)>,
) -> Result<(), String> {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'#' => break,
            b'{' => {
                out.push_back((line, Token::Open));
                i += 1;
            }
            b'}' => {
                out.push_back((line, Token::Close));
                i += 1;
            }
            b';' => {
                out.push_back((line, Token::Semi));
                i += 1;
            }
            b'"' => {
                let (s, next) = quoted(b, i + 1)?;
                out.push_back((line, Token::Str(s)));
                i = next;
            }
            _ => {
                let start = i;
                while i < b.len() && !b" \t\r\n{};\"#".contains(&b[i]) {
                    i += 1;
                }
                out.push_back((line, Token::Word(text[start..i].to_owned())));
            }
        }
    }
    Ok(())
}

/// A string's bytes from after its opening quote; the index after its
/// closing quote.
fn quoted(b: &[u8], mut i: usize) -> Result<(Vec<u8>, usize), String> {
    let mut s = Vec::new();
    while i < b.len() {
        match b[i] {
            b'"' => return Ok((s, i + 1)),
            b'\\' => {
                let octal = b
                    .get(i + 1..i + 4)
                    .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
                if let Some(d) = octal {
                    let v = u32::from(d[0] - b'0') * 64
                        + u32::from(d[1] - b'0') * 8
                        + u32::from(d[2] - b'0');
                    s.push(u8::try_from(v).map_err(|_| {
                        format!("octal escape \\{} is over 255", String::from_utf8_lossy(d))
                    })?);
                    i += 4;
                } else if let Some(&c) = b.get(i + 1) {
                    s.push(match c {
                        b'n' => b'\n',
                        b't' => b'\t',
                        b'r' => b'\r',
                        c => c,
                    });
                    i += 2;
                } else {
                    return Err("string ends in a lone backslash".into());
                }
            }
            c => {
                s.push(c);
                i += 1;
            }
        }
    }
    Err("string without its closing quote".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_tokens() {
        assert_eq!(
            tokenize(r#"  uid "\001\000\"a"; # note"#).unwrap(),
            vec![
                Token::Word("uid".into()),
                Token::Str(vec![1, 0, b'"', b'a']),
                Token::Semi
            ]
        );
        assert_eq!(
            tokenize("lease 10.0.0.1 {").unwrap(),
            vec![
                Token::Word("lease".into()),
                Token::Word("10.0.0.1".into()),
                Token::Open
            ]
        );
        assert!(tokenize(r#"uid "abc;"#).is_err());
    }
}
