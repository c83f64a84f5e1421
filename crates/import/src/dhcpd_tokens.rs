//! dhcpd.leases(5) and dhcpd.conf(5) tokens, one line at a time: words, quoted strings
//! (with dhcpd's `\ooo` octal and `\"` escapes), `{`, `}`, `;`; `#` starts
//! a comment. dhcpd writes every statement on one line, so a string never
//! spans lines.
//!
//! A token borrows the line it was read from (no allocation per word: a
//! million-lease file has some 30 million of them); the line is cut whole
//! before its first token is handed out, so a line that cannot be cut is
//! one error and none of its tokens.

use std::io::BufRead;

use crate::ParseError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Token<'a> {
    Word(&'a str),
    Str(&'a [u8]),
    Open,
    Close,
    Semi,
}

/// A token of the current line: where its text is (words in the line,
/// strings' unescaped bytes in `Tokens::strings`).
#[derive(Debug, Clone, Copy)]
enum Cut {
    Word(usize, usize),
    Str(usize, usize),
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
    /// The current line, once it is known to be text.
    text: String,
    /// Its tokens, and how many were handed out.
    cuts: Vec<Cut>,
    given: usize,
    /// Its strings' bytes, unescaped.
    strings: Vec<u8>,
}

impl<R: BufRead> Tokens<R> {
    pub(crate) fn new(reader: R) -> Self {
        Tokens {
            reader,
            line: 0,
            text: String::new(),
            cuts: Vec::new(),
            given: 0,
            strings: Vec::new(),
        }
    }

    /// The last line read.
    pub(crate) fn line(&self) -> u64 {
        self.line
    }

    /// The next token; `Ok(None)` at the end of the input. A line that is
    /// not text is an error (the rest of it is dropped).
    pub(crate) fn next(&mut self) -> Result<Option<(u64, Token<'_>)>, ParseError> {
        while self.given == self.cuts.len() {
            if !self.read_line()? {
                return Ok(None);
            }
        }
        let cut = self.cuts[self.given];
        self.given += 1;
        let token = match cut {
            Cut::Word(s, e) => Token::Word(&self.text[s..e]),
            Cut::Str(s, e) => Token::Str(&self.strings[s..e]),
            Cut::Open => Token::Open,
            Cut::Close => Token::Close,
            Cut::Semi => Token::Semi,
        };
        Ok(Some((self.line, token)))
    }

    /// Reads and cuts the next line; `Ok(false)` at the end of the input.
    fn read_line(&mut self) -> Result<bool, ParseError> {
        self.cuts.clear();
        self.given = 0;
        self.strings.clear();
        let mut buf = std::mem::take(&mut self.text).into_bytes();
        buf.clear();
        let n = std::io::Read::take(&mut self.reader, MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| ParseError::new(self.line + 1, format!("read error: {e}")))?;
        if n == 0 {
            return Ok(false);
        }
        self.line += 1;
        if buf.len() > MAX_LINE {
            // Skip the rest of the over-long line.
            while !buf.ends_with(b"\n") {
                buf.clear();
                let n = std::io::Read::take(&mut self.reader, MAX_LINE as u64)
                    .read_until(b'\n', &mut buf)
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
        self.text = match String::from_utf8(buf) {
            Ok(t) if !has_control(&t) => t,
            _ => return Err(ParseError::new(line, "binary data, not text")),
        };
        if let Err(r) = cut_line(&self.text, &mut self.cuts, &mut self.strings) {
            self.cuts.clear();
            return Err(ParseError::new(line, r));
        }
        Ok(true)
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

/// Bytes that end a word.
fn ends_word(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n' | b'{' | b'}' | b';' | b'"' | b'#')
}

/// A line's tokens appended to `cuts` (strings' bytes to `strings`).
fn cut_line(text: &str, cuts: &mut Vec<Cut>, strings: &mut Vec<u8>) -> Result<(), String> {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'#' => break,
            b'{' => {
                cuts.push(Cut::Open);
                i += 1;
            }
            b'}' => {
                cuts.push(Cut::Close);
                i += 1;
            }
            b';' => {
                cuts.push(Cut::Semi);
                i += 1;
            }
            b'"' => {
                let start = strings.len();
                i = quoted(b, i + 1, strings)?;
                cuts.push(Cut::Str(start, strings.len()));
            }
            _ => {
                let start = i;
                while i < b.len() && !ends_word(b[i]) {
                    i += 1;
                }
                cuts.push(Cut::Word(start, i));
            }
        }
    }
    Ok(())
}

/// A string's bytes from after its opening quote, appended to `s`; the
/// index after its closing quote.
fn quoted(b: &[u8], mut i: usize, s: &mut Vec<u8>) -> Result<usize, String> {
    while i < b.len() {
        match b[i] {
            b'"' => return Ok(i + 1),
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

    /// A line's tokens, owned.
    fn tokenize(text: &str) -> Result<Vec<String>, String> {
        let mut tokens = Tokens::new(text.as_bytes());
        let mut out = Vec::new();
        while let Some((_, t)) = tokens.next().map_err(|e| e.reason)? {
            out.push(match t {
                Token::Word(w) => format!("word {w}"),
                Token::Str(s) => format!("str {s:?}"),
                t => format!("{t:?}"),
            });
        }
        Ok(out)
    }

    #[test]
    fn statement_tokens() {
        assert_eq!(
            tokenize(r#"  uid "\001\000\"a"; # note"#).unwrap(),
            ["word uid", "str [1, 0, 34, 97]", "Semi"]
        );
        assert_eq!(
            tokenize("lease 10.0.0.1 {").unwrap(),
            ["word lease", "word 10.0.0.1", "Open"]
        );
        assert!(tokenize(r#"uid "abc;"#).is_err());
    }

    #[test]
    fn a_line_that_cannot_be_cut_gives_none_of_its_tokens() {
        let mut tokens = Tokens::new(&b"a \"b\" \"c\nd;\n"[..]);
        let e = tokens.next().unwrap_err();
        assert_eq!((e.line, e.reason.as_str()), (1, "string without its closing quote"));
        assert_eq!(tokens.next().unwrap(), Some((2, Token::Word("d"))));
        assert_eq!(tokens.next().unwrap(), Some((2, Token::Semi)));
        assert_eq!(tokens.next().unwrap(), None);
    }
}
