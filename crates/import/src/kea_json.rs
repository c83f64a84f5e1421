//! Kea's configuration file: JSON with comments (`//`, `#`, `/* */`, as
//! Kea's own parser takes them). The comments are blanked out (newlines
//! kept, so every line number stays the file's), then serde_json reads the
//! rest; a syntax error comes back with its line. [`Lines`] remembers the
//! line each value starts on, by path (`Dhcp4/subnet4/0/pools`), for the
//! list of what does not map.

use std::collections::HashMap;

use serde_json::Value;

use crate::ParseError;

/// The document and where its values are.
#[derive(Debug)]
pub(crate) struct KeaDoc {
    pub value: Value,
    pub lines: Lines,
}

pub(crate) fn read(bytes: &[u8]) -> Result<KeaDoc, ParseError> {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let line = line_at(bytes, e.valid_up_to());
            return Err(ParseError::new(line, "binary data, not text"));
        }
    };
    let plain = strip_comments(text)?;
    let value: Value = serde_json::from_str(&plain).map_err(|e| {
        let line = if e.line() == 0 { 1 } else { e.line() as u64 };
        let what = match e.classify() {
            serde_json::error::Category::Eof => "truncated: ",
            _ => "",
        };
        // serde_json's message ends in "at line L column C"; keep its words.
        let msg = e.to_string();
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_owned();
        ParseError::new(line, format!("{what}{msg} (JSON, column {})", e.column()))
    })?;
    Ok(KeaDoc {
        value,
        lines: Lines::index(&plain),
    })
}

fn line_at(bytes: &[u8], offset: usize) -> u64 {
    bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count() as u64
        + 1
}

/// `text` with comments replaced by spaces (newlines kept).
fn strip_comments(text: &str) -> Result<String, ParseError> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let mut line = 1u64;
    while i < b.len() {
        let c = b[i];
        match c {
            b'"' => {
                // A string: copied as is, escapes included.
                out.push(c);
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\n' {
                        line += 1;
                    }
                    if b[i] == b'\\' && i + 1 < b.len() {
                        out.push(b[i]);
                        i += 1;
                    }
                    out.push(b[i]);
                    i += 1;
                }
                if i < b.len() {
                    out.push(b[i]);
                    i += 1;
                }
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    out.push(b' ');
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    out.push(b' ');
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let start = line;
                out.extend_from_slice(b"  ");
                i += 2;
                loop {
                    if i >= b.len() {
                        return Err(ParseError::new(
                            start,
                            "truncated: a /* comment is never closed",
                        ));
                    }
                    if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        out.extend_from_slice(b"  ");
                        i += 2;
                        break;
                    }
                    if b[i] == b'\n' {
                        line += 1;
                        out.push(b'\n');
                    } else {
                        out.push(b' ');
                    }
                    i += 1;
                }
            }
            b'<' if b[i..].starts_with(b"<?include") => {
                return Err(ParseError::new(
                    line,
                    "<?include ...?> is not followed: inline the included file first",
                ));
            }
            _ => {
                if c == b'\n' {
                    line += 1;
                }
                out.push(c);
                i += 1;
            }
        }
    }
    // Only ASCII bytes were replaced, so the text stays UTF-8.
    String::from_utf8(out).map_err(|_| ParseError::new(1, "binary data, not text"))
}

/// The line each value starts on, by path.
#[derive(Debug, Default)]
pub(crate) struct Lines(HashMap<String, u64>);

enum Frame {
    Object { key: String, want_key: bool },
    Array { index: usize },
}

impl Lines {
    /// Scans JSON that serde_json has accepted.
    fn index(text: &str) -> Lines {
        let b = text.as_bytes();
        let mut map = HashMap::new();
        let mut stack: Vec<Frame> = Vec::new();
        let mut line = 1u64;
        let mut i = 0;
        let path = |stack: &[Frame]| {
            stack
                .iter()
                .map(|f| match f {
                    Frame::Object { key, .. } => key.clone(),
                    Frame::Array { index } => index.to_string(),
                })
                .collect::<Vec<_>>()
                .join("/")
        };
        while i < b.len() {
            match b[i] {
                b'\n' => line += 1,
                b' ' | b'\t' | b'\r' | b':' => {}
                b',' => match stack.last_mut() {
                    Some(Frame::Object { want_key, .. }) => *want_key = true,
                    Some(Frame::Array { index }) => *index += 1,
                    None => {}
                },
                b'}' | b']' => {
                    stack.pop();
                }
                b'{' | b'[' => {
                    map.entry(path(&stack)).or_insert(line);
                    stack.push(if b[i] == b'{' {
                        Frame::Object {
                            key: String::new(),
                            want_key: true,
                        }
                    } else {
                        Frame::Array { index: 0 }
                    });
                }
                b'"' => {
                    let start = i + 1;
                    i += 1;
                    while i < b.len() && b[i] != b'"' {
                        if b[i] == b'\\' {
                            i += 1;
                        }
                        i += 1;
                    }
                    let s = text.get(start..i.min(b.len())).unwrap_or("").to_owned();
                    match stack.last_mut() {
                        Some(Frame::Object { key, want_key }) if *want_key => {
                            *key = s;
                            *want_key = false;
                        }
                        _ => {
                            map.entry(path(&stack)).or_insert(line);
                        }
                    }
                }
                _ => {
                    // A number, true, false or null.
                    map.entry(path(&stack)).or_insert(line);
                    while i + 1 < b.len() && !b",}] \t\r\n".contains(&b[i + 1]) {
                        i += 1;
                    }
                }
            }
            i += 1;
        }
        Lines(map)
    }

    /// The line of the value at `path`, or of its nearest parent.
    pub fn at(&self, path: &str) -> u64 {
        let mut p = path;
        loop {
            if let Some(&l) = self.0.get(p) {
                return l;
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return self.0.get("").copied().unwrap_or(1),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_of_every_kind_are_blanked_and_lines_kept() {
        let doc = read(
            b"// a\n{ # b\n  \"x\": \"a#b//c\", /* c\n d */ \"y\": [1,\n 2, {\"z\": true}]\n}\n",
        )
        .unwrap();
        assert_eq!(doc.value["x"], "a#b//c");
        assert_eq!(doc.lines.at("x"), 3);
        assert_eq!(doc.lines.at("y"), 4);
        assert_eq!(doc.lines.at("y/1"), 5);
        assert_eq!(doc.lines.at("y/2/z"), 5);
        assert_eq!(doc.lines.at("y/2/nothing"), 5);
    }

    #[test]
    fn errors_have_lines() {
        let e = read(b"{\n \"a\": 1,\n \"b\": [1, 2\n").unwrap_err();
        assert!(e.reason.starts_with("truncated"), "{e}");
        let e = read(b"{\n \"a\": 1\n \"b\": 2 }").unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        let e = read(b"{\n /* never closed\n").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        let e = read(b"{\n\n \"a\": \"\xff\xfe\" }").unwrap_err();
        assert_eq!((e.line, e.reason.as_str()), (3, "binary data, not text"));
    }
}
