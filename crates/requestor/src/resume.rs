//! The resume file: the highest base-time seen after catch-up
//! (RFC 7724 §7.3, §7.4.1), written atomically, at most once a second.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tracing::warn;

pub struct ResumeFile {
    path: Option<PathBuf>,
    highest: Option<u32>,
    written: Option<u32>,
    last_write: Option<Instant>,
}

impl ResumeFile {
    pub fn new(path: Option<PathBuf>) -> Self {
        ResumeFile {
            path,
            highest: None,
            written: None,
            last_write: None,
        }
    }

    /// The saved base-time, if the file exists and holds one.
    pub fn load(&mut self) -> Option<u32> {
        let path = self.path.as_ref()?;
        let text = std::fs::read_to_string(path).ok()?;
        match text.trim().parse::<u32>() {
            Ok(t) => {
                self.highest = Some(t);
                self.written = Some(t);
                Some(t)
            }
            Err(_) => {
                warn!(path = %path.display(), event = "resume_file_without_base_time", "resume file does not hold a base-time; ignoring it");
                None
            }
        }
    }

    pub fn observe(&mut self, base_time: u32) {
        if self.highest.is_none_or(|h| base_time > h) {
            self.highest = Some(base_time);
        }
    }

    pub fn highest(&self) -> Option<u32> {
        self.highest
    }

    pub fn maybe_flush(&mut self) {
        if self
            .last_write
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            self.flush();
        }
    }

    pub fn flush(&mut self) {
        let (Some(path), Some(h)) = (&self.path, self.highest) else {
            return;
        };
        if self.written == Some(h) {
            return;
        }
        let tmp = path.with_extension("tmp");
        let result =
            std::fs::write(&tmp, format!("{h}\n")).and_then(|_| std::fs::rename(&tmp, path));
        match result {
            Ok(()) => {
                self.written = Some(h);
                self.last_write = Some(Instant::now());
            }
            Err(e) => {
                warn!(path = %path.display(), error = %e, event = "resume_file_write_failed", "cannot write the resume file")
            }
        }
    }
}

impl Drop for ResumeFile {
    /// An interrupted watch (Ctrl-C) still leaves its latest base-time behind.
    fn drop(&mut self) {
        self.flush();
    }
}
