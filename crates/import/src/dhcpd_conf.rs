//! dhcpd.conf(5) as a tree of statements: `words ... ;` or
//! `words ... { statements }`, each with the line it starts on. The tokens
//! are dhcpd.leases' ([`crate::dhcpd_tokens`]): both files share dhcpd's
//! lexer (words, quoted strings with octal escapes, `{ } ;`, `#` comments).
//! Nothing here knows what a statement means ([`crate::dhcpd_conf_map`]).

use crate::dhcpd_tokens::{Token, Tokens};
use crate::ParseError;

/// One statement; `body` is `Some` for a block (`subnet ... { }`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Statement {
    pub line: u64,
    pub words: Vec<Word>,
    pub body: Option<Vec<Statement>>,
}

/// A word of a statement: bare (`range`, `192.0.2.1,`) or quoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Word {
    Bare(String),
    Quoted(Vec<u8>),
}

impl Word {
    pub fn bare(&self) -> Option<&str> {
        match self {
            Word::Bare(s) => Some(s),
            Word::Quoted(_) => None,
        }
    }

    /// As written: quoted strings in quotes (for messages).
    pub fn shown(&self) -> String {
        match self {
            Word::Bare(s) => s.clone(),
            Word::Quoted(b) => format!("\"{}\"", String::from_utf8_lossy(b)),
        }
    }
}

impl Statement {
    /// The first word, lower-cased (dhcpd's keywords are case-insensitive).
    pub fn keyword(&self) -> String {
        self.words
            .first()
            .and_then(Word::bare)
            .unwrap_or("")
            .to_ascii_lowercase()
    }

    /// The bare word at `i`, lower-cased.
    pub fn word_lower(&self, i: usize) -> Option<String> {
        self.words
            .get(i)
            .and_then(Word::bare)
            .map(str::to_ascii_lowercase)
    }

    /// The statement's head as written, shortened for messages.
    pub fn head(&self) -> String {
        let s = self
            .words
            .iter()
            .map(Word::shown)
            .collect::<Vec<_>>()
            .join(" ");
        if s.chars().count() > 60 {
            format!("{}...", s.chars().take(57).collect::<String>())
        } else {
            s
        }
    }
}

/// Deepest nesting accepted: dhcpd configurations nest a few levels; more
/// is junk (and would cost stack).
const MAX_DEPTH: usize = 32;

/// The whole file as statements, or the first error.
pub(crate) fn parse(bytes: &[u8]) -> Result<Vec<Statement>, ParseError> {
    let mut tokens = Tokens::new(bytes);
    // Open blocks: (line of the `{`, head, statements so far).
    let mut stack: Vec<(u64, Vec<Word>, Vec<Statement>)> = Vec::new();
    let mut top: Vec<Statement> = Vec::new();
    let mut words: Vec<Word> = Vec::new();
    let mut first_line = 0;
    while let Some((line, tok)) = tokens.next()? {
        match tok {
            Token::Word(w) => {
                if words.is_empty() {
                    first_line = line;
                }
                words.push(Word::Bare(w.to_owned()));
            }
            Token::Str(s) => {
                if words.is_empty() {
                    first_line = line;
                }
                words.push(Word::Quoted(s.to_vec()));
            }
            Token::Semi => {
                if words.is_empty() {
                    continue; // an empty statement
                }
                let st = Statement {
                    line: first_line,
                    words: std::mem::take(&mut words),
                    body: None,
                };
                match stack.last_mut() {
                    Some((_, _, body)) => body.push(st),
                    None => top.push(st),
                }
            }
            Token::Open => {
                if words.is_empty() {
                    return Err(ParseError::new(line, "`{` without a statement before it"));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(ParseError::new(
                        line,
                        format!("blocks nested deeper than {MAX_DEPTH}"),
                    ));
                }
                stack.push((first_line, std::mem::take(&mut words), Vec::new()));
            }
            Token::Close => {
                if !words.is_empty() {
                    return Err(ParseError::new(
                        line,
                        format!(
                            "`{}` has no `;` before the `}}`",
                            Statement {
                                line,
                                words: std::mem::take(&mut words),
                                body: None
                            }
                            .head()
                        ),
                    ));
                }
                let Some((open_line, head, body)) = stack.pop() else {
                    return Err(ParseError::new(line, "`}` without a block to close"));
                };
                let st = Statement {
                    line: open_line,
                    words: head,
                    body: Some(body),
                };
                match stack.last_mut() {
                    Some((_, _, b)) => b.push(st),
                    None => top.push(st),
                }
            }
        }
    }
    let end = tokens.line();
    if !words.is_empty() {
        let head = Statement {
            line: first_line,
            words,
            body: None,
        }
        .head();
        return Err(ParseError::new(
            first_line,
            format!("truncated: `{head}` has no `;` (the file ends on line {end})"),
        ));
    }
    if let Some((open_line, head, _)) = stack.last() {
        let head = Statement {
            line: *open_line,
            words: head.clone(),
            body: None,
        }
        .head();
        return Err(ParseError::new(
            *open_line,
            format!("truncated: the block `{head} {{` has no closing `}}` (the file ends on line {end})"),
        ));
    }
    Ok(top)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_and_blocks_with_lines() {
        let t = parse(
            b"# comment\nddns-update-style none;\nsubnet 10.0.0.0 netmask 255.0.0.0 {\n  range 10.0.0.5\n    10.0.0.9;\n}\n",
        )
        .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].line, t[0].keyword()), (2, "ddns-update-style".into()));
        assert_eq!(t[1].line, 3);
        let body = t[1].body.as_ref().unwrap();
        assert_eq!((body[0].line, body[0].words.len()), (4, 3));
    }

    #[test]
    fn truncated_and_unbalanced_name_their_line() {
        let e =
            parse(b"subnet 10.0.0.0 netmask 255.0.0.0 {\n range 10.0.0.5 10.0.0.9;\n").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.reason.contains("no closing"), "{e}");
        let e = parse(b"a;\nb c").unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse(b"a;\n}\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse(b"x {\n a b\n}\n").unwrap_err();
        assert_eq!(e.line, 3);
        let e = parse("{\n".repeat(100).as_bytes()).unwrap_err();
        assert!(e.reason.contains("`{` without"), "{e}");
        let e = parse("a {\n".repeat(100).as_bytes()).unwrap_err();
        assert!(e.reason.contains("nested"), "{e}");
    }
}
