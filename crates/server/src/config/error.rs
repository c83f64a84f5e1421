//! What is wrong with a configuration file.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Syntax { path: String, message: String },
    #[error("{path}:{line}: `{key}`: {reason}")]
    Invalid {
        path: String,
        line: usize,
        key: String,
        reason: String,
    },
}
