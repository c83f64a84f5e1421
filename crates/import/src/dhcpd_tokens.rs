//! dhcpd.leases(5) and dhcpd.conf(5) tokens, one line at a time: words, quoted strings
//! (with dhcpd's `\ooo` octal and `\"` escapes), `{`, `}`, `;`; `#` starts
//! a comment. dhcpd writes every statement on one line, so a string never
//! spans lines.
//!
//! A token borrows the batch of lines it was cut from
//! ([`crate::dhcpd_batches`]; no allocation per word: a million-lease file
//! has some 30 million of them). A line is cut whole before its first
//! token is handed out, so a line that cannot be cut is one error and none
//! of its tokens.

use std::io::BufRead;

use crate::dhcpd_batches::{Batch, Source};
use crate::ParseError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Token<'a> {
    Word(&'a str),
    Str(&'a [u8]),
    Open,
    Close,
    Semi,
}

/// A token of a [`Batch`]: where its text is (words in the batch's text,
/// strings' unescaped bytes in its strings), or a line that could not be
/// cut (the reason in its errors).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cut {
    Word(usize, usize),
    Str(usize, usize),
    Open,
    Close,
    Semi,
    Error(usize),
}

/// Reads lines and cuts them into tokens, each with its line number.
pub(crate) struct Tokens<R> {
    source: Source<R>,
    batch: Batch,
    /// Items of the batch handed out.
    given: usize,
    line: u64,
}

impl<R: BufRead> Tokens<R> {
    /// Read in the caller's thread.
    pub(crate) fn new(reader: R) -> Self {
        Self::from_source(Source::inline(reader))
    }

    fn from_source(source: Source<R>) -> Self {
        Tokens {
            source,
            batch: Batch::default(),
            given: 0,
            line: 0,
        }
    }

    /// The last line read.
    pub(crate) fn line(&self) -> u64 {
        self.line
    }

    /// The next token; `Ok(None)` at the end of the input. A line that is
    /// not text is an error (the rest of it is dropped).
    pub(crate) fn next(&mut self) -> Result<Option<(u64, Token<'_>)>, ParseError> {
        while self.given == self.batch.items.len() {
            self.line = self.batch.last_line;
            if self.batch.end {
                return Ok(None);
            }
            self.given = 0;
            if let Err(e) = self.source.next_batch(&mut self.batch) {
                // Nothing more comes.
                self.batch = Batch {
                    end: true,
                    last_line: self.line,
                    ..Batch::default()
                };
                return Err(e);
            }
        }
        let (line, cut) = self.batch.items[self.given];
        self.given += 1;
        self.line = line;
        let token = match cut {
            Cut::Word(s, e) => Token::Word(&self.batch.text[s..e]),
            Cut::Str(s, e) => Token::Str(&self.batch.strings[s..e]),
            Cut::Open => Token::Open,
            Cut::Close => Token::Close,
            Cut::Semi => Token::Semi,
            Cut::Error(i) => {
                let reason = std::mem::take(&mut self.batch.errors[i]);
                return Err(ParseError::new(line, reason));
            }
        };
        Ok(Some((line, token)))
    }
}

impl<R: BufRead + Send + 'static> Tokens<R> {
    /// Read and cut in a thread of its own, ahead of the caller.
    pub(crate) fn threaded(reader: R) -> Self {
        Self::from_source(Source::threaded(reader))
    }
}

/// A control character other than tab and line ends: binary data.
pub(crate) fn has_control(t: &str) -> bool {
    if t.is_ascii() {
        // The common case, byte by byte, without an early exit (the
        // compiler checks many bytes at once): ASCII's controls are
        // 0x00-0x1f and 0x7f.
        t.bytes().fold(false, |found, b| {
            found | ((b < 0x20 && b != b'\t' && b != b'\n' && b != b'\r') || b == 0x7f)
        })
    } else {
        let control = |c: char| c.is_control() && c != '\t' && c != '\n' && c != '\r';
        t.chars().any(control)
    }
}

/// What a byte is to the tokenizer.
#[derive(Clone, Copy, PartialEq)]
enum Class {
    Space,
    Word,
    Comment,
    Open,
    Close,
    Semi,
    Quote,
}

const fn classes() -> [Class; 256] {
    let mut c = [Class::Word; 256];
    c[b' ' as usize] = Class::Space;
    c[b'\t' as usize] = Class::Space;
    c[b'\r' as usize] = Class::Space;
    c[b'\n' as usize] = Class::Space;
    c[b'#' as usize] = Class::Comment;
    c[b'{' as usize] = Class::Open;
    c[b'}' as usize] = Class::Close;
    c[b';' as usize] = Class::Semi;
    c[b'"' as usize] = Class::Quote;
    c
}

const CLASS: [Class; 256] = classes();

/// The tokens of `text` (at `base` in its batch's text, line `line`)
/// appended to `items` (strings' bytes to `strings`).
pub(crate) fn cut_line(
    text: &str,
    base: usize,
    line: u64,
    items: &mut Vec<(u64, Cut)>,
    strings: &mut Vec<u8>,
) -> Result<(), String> {
    let mut push = |cut| items.push((line, cut));
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match CLASS[usize::from(c)] {
            Class::Space => i += 1,
            Class::Comment => break,
            Class::Open => {
                push(Cut::Open);
                i += 1;
            }
            Class::Close => {
                push(Cut::Close);
                i += 1;
            }
            Class::Semi => {
                push(Cut::Semi);
                i += 1;
            }
            Class::Quote => {
                let start = strings.len();
                i = quoted(b, i + 1, strings)?;
                push(Cut::Str(start, strings.len()));
            }
            Class::Word => {
                let start = i;
                i += 1;
                while b
                    .get(i)
                    .is_some_and(|&c| CLASS[usize::from(c)] == Class::Word)
                {
                    i += 1;
                }
                push(Cut::Word(base + start, base + i));
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
        assert_eq!(
            (e.line, e.reason.as_str()),
            (1, "string without its closing quote")
        );
        assert_eq!(tokens.next().unwrap(), Some((2, Token::Word("d"))));
        assert_eq!(tokens.next().unwrap(), Some((2, Token::Semi)));
        assert_eq!(tokens.next().unwrap(), None);
    }
}
