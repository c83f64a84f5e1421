//! dhcpd.leases(5) and dhcpd.conf(5) lines read and cut into tokens
//! ([`crate::dhcpd_tokens`]) a batch of lines at a time, in the reading
//! thread or, for a large file, in a thread of its own so that reading and
//! cutting overlap with the parsing of what was cut before (on two cores,
//! the first pass of an import takes about the longer of the two).
//! The batches in flight are bounded: memory does not grow with the file.

use std::io::BufRead;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use crate::dhcpd_tokens::{cut_line, has_control, Cut};
use crate::ParseError;

/// The longest line read: dhcpd's are well under 1 KiB; a longer one is junk.
const MAX_LINE: usize = 64 * 1024;

/// A batch ends after this much text (or at the end of the input).
const BATCH_TEXT: usize = 64 * 1024;

/// Batches cut ahead of the parser, in the threaded mode.
const BATCHES_AHEAD: usize = 4;

/// Lines' tokens, in order, each with its line; a line that cannot be cut
/// is an error in its place and none of its tokens.
#[derive(Default)]
pub(crate) struct Batch {
    /// The lines' text (words are ranges of it).
    pub text: String,
    /// Strings' bytes, unescaped.
    pub strings: Vec<u8>,
    pub items: Vec<(u64, Cut)>,
    /// Reasons of the `Cut::Error`s.
    pub errors: Vec<String>,
    /// Lines read up to the batch's end.
    pub last_line: u64,
    /// The input ends with this batch.
    pub end: bool,
}

impl Batch {
    fn clear(&mut self) {
        self.text.clear();
        self.strings.clear();
        self.items.clear();
        self.errors.clear();
        self.end = false;
    }

    fn error(&mut self, line: u64, reason: String) {
        self.items.push((line, Cut::Error(self.errors.len())));
        self.errors.push(reason);
    }
}

/// Reads lines into batches.
pub(crate) struct LineReader<R> {
    reader: R,
    line: u64,
    buf: Vec<u8>,
}

impl<R: BufRead> LineReader<R> {
    pub fn new(reader: R) -> Self {
        LineReader {
            reader,
            line: 0,
            buf: Vec::new(),
        }
    }

    /// Clears `batch` and fills it with the next lines.
    pub fn fill(&mut self, batch: &mut Batch) {
        batch.clear();
        while batch.text.len() < BATCH_TEXT {
            match self.read_line() {
                Ok(false) => {
                    batch.end = true;
                    break;
                }
                Ok(true) => self.cut(batch),
                Err(e) => {
                    batch.error(e.line, e.reason);
                    break;
                }
            }
        }
        batch.last_line = self.line;
    }

    /// The next line into `self.buf`; `Ok(false)` at the end of the input.
    fn read_line(&mut self) -> Result<bool, ParseError> {
        self.buf.clear();
        let n = std::io::Read::take(&mut self.reader, MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| ParseError::new(self.line + 1, format!("read error: {e}")))?;
        if n == 0 {
            return Ok(false);
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
        Ok(true)
    }

    /// The line in `self.buf`, cut into `batch`.
    fn cut(&mut self, batch: &mut Batch) {
        let line = self.line;
        let Some(text) = std::str::from_utf8(&self.buf)
            .ok()
            .filter(|t| !has_control(t))
        else {
            return batch.error(line, "binary data, not text".into());
        };
        let (base, items, strings) = (batch.text.len(), batch.items.len(), batch.strings.len());
        batch.text.push_str(text);
        if let Err(reason) = cut_line(
            &batch.text[base..],
            base,
            line,
            &mut batch.items,
            &mut batch.strings,
        ) {
            batch.text.truncate(base);
            batch.items.truncate(items);
            batch.strings.truncate(strings);
            batch.error(line, reason);
        }
    }
}

/// Where batches come from.
pub(crate) enum Source<R> {
    Inline(LineReader<R>),
    Thread {
        batches: Receiver<Batch>,
        /// Batches read, back to the thread to be filled again.
        spare: SyncSender<Batch>,
    },
}

impl<R: BufRead> Source<R> {
    pub fn inline(reader: R) -> Self {
        Source::Inline(LineReader::new(reader))
    }

    /// Replaces `batch` (read) with the next one; `Err` if the reading
    /// thread stopped before the end of the input.
    pub fn next_batch(&mut self, batch: &mut Batch) -> Result<(), ParseError> {
        match self {
            Source::Inline(lines) => {
                lines.fill(batch);
                Ok(())
            }
            Source::Thread { batches, spare } => {
                let next = batches.recv().map_err(|_| {
                    ParseError::new(batch.last_line + 1, "the thread reading the file stopped")
                })?;
                let read = std::mem::replace(batch, next);
                // The thread may be gone (at the end): then it needs none.
                let _ = spare.try_send(read);
                Ok(())
            }
        }
    }
}

impl<R: BufRead + Send + 'static> Source<R> {
    pub fn threaded(reader: R) -> Self {
        let (full, batches) = sync_channel(BATCHES_AHEAD);
        let (spare, spares) = sync_channel::<Batch>(BATCHES_AHEAD + 2);
        let mut lines = LineReader::new(reader);
        // Detached: it ends at the end of the input, or when the parser
        // (the receiver) is dropped.
        std::thread::spawn(move || loop {
            // A batch the parser is done with, or a new one.
            let mut batch: Batch = spares.try_recv().unwrap_or_default();
            lines.fill(&mut batch);
            let end = batch.end;
            if full.send(batch).is_err() || end {
                return;
            }
        });
        Source::Thread { batches, spare }
    }
}
