//! `[store]`: where the leases are kept.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ConfigError, Validator};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// "sqlite" (the default) or "postgres".
    #[serde(default)]
    pub backend: Option<String>,
    /// PostgreSQL URL (backend = "postgres" only).
    #[serde(default)]
    pub url: Option<String>,
    /// Store file; relative paths are under `server.state_dir`.
    #[serde(default = "default_store_path")]
    pub path: PathBuf,
    #[serde(default = "default_history_age")]
    pub history_max_age: u32,
    #[serde(default = "default_history_count")]
    pub history_max_count: usize,
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection {
            backend: None,
            url: None,
            path: default_store_path(),
            history_max_age: default_history_age(),
            history_max_count: default_history_count(),
            max_batch: default_max_batch(),
        }
    }
}

fn default_store_path() -> PathBuf {
    PathBuf::from("leaseline.db")
}
fn default_history_age() -> u32 {
    3_600
}
fn default_history_count() -> usize {
    1_000_000
}
fn default_max_batch() -> usize {
    4_096
}

/// Where the leases are kept.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreBackend {
    /// The embedded SQLite file at `Config::store_path`.
    Sqlite,
    /// A PostgreSQL database (the URL may hold a password: not printed).
    Postgres { url: String },
}

impl std::fmt::Debug for StoreBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreBackend::Sqlite => f.write_str("Sqlite"),
            StoreBackend::Postgres { .. } => f.write_str("Postgres { url: <hidden> }"),
        }
    }
}

impl Validator<'_> {
    /// The backend and the store file's path (under `state_dir` when relative).
    pub(super) fn store(
        &self,
        raw: &StoreSection,
        state_dir: &Path,
    ) -> Result<(StoreBackend, PathBuf), ConfigError> {
        if raw.max_batch == 0 {
            return Err(self.key_err("store.max_batch", "must be at least 1"));
        }
        if raw.history_max_count == 0 {
            return Err(self.key_err("store.history_max_count", "must be at least 1"));
        }
        let store_backend = match (raw.backend.as_deref(), &raw.url) {
            (None | Some("sqlite"), None) => StoreBackend::Sqlite,
            (None | Some("sqlite"), Some(_)) => {
                return Err(self.key_err("store.url", "is only for backend = \"postgres\""))
            }
            (Some("postgres"), Some(url)) if !url.trim().is_empty() => {
                StoreBackend::Postgres { url: url.clone() }
            }
            (Some("postgres"), _) => {
                return Err(self.key_err(
                    "store.backend",
                    "backend = \"postgres\" needs store.url (postgres://user:password@host:port/dbname)",
                ))
            }
            (Some(other), _) => {
                return Err(self.key_err(
                    "store.backend",
                    format!("unknown backend {other:?}: expected \"sqlite\" or \"postgres\""),
                ))
            }
        };
        let store_path = if raw.path.is_absolute() {
            raw.path.clone()
        } else {
            state_dir.join(&raw.path)
        };
        Ok((store_backend, store_path))
    }
}

#[cfg(test)]
mod tests {
    use super::StoreBackend;
    use crate::config::{Config, GOOD};

    #[test]
    fn store_backend_defaults_to_sqlite_and_selects_postgres() {
        assert_eq!(
            Config::parse(GOOD, "t").unwrap().store_backend,
            StoreBackend::Sqlite
        );
        let text = format!("{GOOD}[store]\nbackend = \"sqlite\"\n");
        assert_eq!(
            Config::parse(&text, "t").unwrap().store_backend,
            StoreBackend::Sqlite
        );
        let text = format!(
            "{GOOD}[store]\nbackend = \"postgres\"\nurl = \"postgres://u:p@db:5432/leases\"\n"
        );
        let c = Config::parse(&text, "t").unwrap();
        assert_eq!(
            c.store_backend,
            StoreBackend::Postgres {
                url: "postgres://u:p@db:5432/leases".into()
            }
        );
        assert!(
            !format!("{c:?}").contains("u:p@"),
            "the password is not printed"
        );
    }

    #[test]
    fn bad_store_backend_names_key_and_line() {
        let text = format!("{GOOD}[store]\nbackend = \"mysql\"\n");
        let e = Config::parse(&text, "t").unwrap_err().to_string();
        assert!(e.contains("t:11:"), "{e}");
        assert!(e.contains("store.backend"), "{e}");
        assert!(e.contains("unknown backend \"mysql\""), "{e}");
    }

    #[test]
    fn postgres_without_url_and_url_without_postgres_refused() {
        let text = format!("{GOOD}[store]\nbackend = \"postgres\"\n");
        let e = Config::parse(&text, "t").unwrap_err().to_string();
        assert!(e.contains("store.backend"), "{e}");
        assert!(e.contains("needs store.url"), "{e}");
        let text = format!("{GOOD}[store]\nurl = \"postgres://db/leases\"\n");
        let e = Config::parse(&text, "t").unwrap_err().to_string();
        assert!(e.contains("store.url"), "{e}");
        assert!(e.contains("t:11:"), "{e}");
    }

    #[test]
    fn postgres_example_parses() {
        let text = include_str!("../../../../examples/postgres.toml");
        let c = Config::parse(text, "postgres.toml").expect("example must validate");
        assert!(matches!(c.store_backend, StoreBackend::Postgres { .. }));
    }
}
