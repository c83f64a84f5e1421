//! The validation context: the text and its path, so that every error
//! names the key and, where it can, the line. Each section's checks are a
//! method of [`Validator`] in the section's own file.

use super::ConfigError;

pub(super) struct Validator<'a> {
    pub(super) text: &'a str,
    pub(super) path: &'a str,
}

impl Validator<'_> {
    pub(super) fn line(&self, span: std::ops::Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text[..end].bytes().filter(|&b| b == b'\n').count() + 1
    }

    pub(super) fn err(
        &self,
        span: std::ops::Range<usize>,
        key: &str,
        reason: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_string(),
            line: self.line(span),
            key: key.to_string(),
            reason: reason.into(),
        }
    }

    /// The line of the first occurrence of `key =` (for keys without spans).
    pub(super) fn key_err(&self, key: &str, reason: impl Into<String>) -> ConfigError {
        let leaf = key.rsplit('.').next().unwrap_or(key);
        let offset = self
            .text
            .lines()
            .scan(0usize, |off, l| {
                let here = *off;
                *off += l.len() + 1;
                Some((here, l))
            })
            .find(|(_, l)| l.trim_start().starts_with(leaf))
            .map(|(o, _)| o)
            .unwrap_or(0);
        self.err(offset..offset, key, reason)
    }
}
