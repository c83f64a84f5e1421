//! `leaseline db status|upgrade --config FILE`: the lease store's schema
//! (docs/postgresql.md, "Upgrading the schema").

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use leaseline_server::config::StoreBackend;
use leaseline_server::Config;
use leaseline_store::{
    HistoryLimits, PgSchemaStatus, PostgresStore, SqliteOptions, SqliteStore, PG_SCHEMA_VERSION,
};

#[derive(clap::Args)]
#[command(after_help = "Exit status: 0 done, 1 error (one line on stderr).")]
pub struct DbArgs {
    #[command(subcommand)]
    pub cmd: DbCmd,
}

#[derive(clap::Subcommand)]
pub enum DbCmd {
    /// Create or upgrade the configured store's schema, print the version
    /// before and after, and exit (as `serve` does at start).
    Upgrade {
        /// Server configuration file (TOML): its [store] section.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Print the configured store, its schema version and this build's.
    Status {
        /// Server configuration file (TOML): its [store] section.
        #[arg(short, long)]
        config: PathBuf,
    },
}

pub fn run(args: DbArgs) -> anyhow::Result<ExitCode> {
    match args.cmd {
        DbCmd::Upgrade { config } => upgrade(&config),
        DbCmd::Status { config } => status(&config),
    }
}

fn upgrade(path: &Path) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(path)?;
    let now = leaseline_server::clock::unix_now();
    match &cfg.store_backend {
        StoreBackend::Postgres { url } => {
            let (before, after) = PostgresStore::upgrade_schema(url, now)?;
            println!(
                "schema: {} ({})",
                change(before.version, after),
                before.target
            );
        }
        StoreBackend::Sqlite => {
            let file = &cfg.store_path;
            let before = SqliteStore::schema_version(file)?;
            if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            // Opening the store creates or upgrades its schema.
            drop(SqliteStore::open(
                SqliteOptions {
                    path: file.clone(),
                    history: HistoryLimits {
                        max_age: cfg.history_max_age,
                        max_count: cfg.history_max_count,
                    },
                    max_batch: cfg.max_batch,
                    lease_log: cfg.lease_history,
                },
                now,
            )?);
            let after = SqliteStore::schema_version(file)?.unwrap_or(0);
            let before = before.filter(|&v| v > 0);
            println!(
                "schema: {} (sqlite {})",
                change(before, after),
                file.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// "version 1 -> 2", "version 2 -> 2, already current", "none -> 2, created".
fn change(before: Option<i64>, after: i64) -> String {
    match before {
        None => format!("none -> version {after}, created"),
        Some(b) if b == after => format!("version {b} -> {after}, already current"),
        Some(b) => format!("version {b} -> {after}"),
    }
}

fn status(path: &Path) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(path)?;
    match &cfg.store_backend {
        StoreBackend::Postgres { url } => {
            let s: PgSchemaStatus = PostgresStore::schema_status(url)?;
            println!(
                "database: {} (PostgreSQL {}, {})",
                s.target,
                s.server_version,
                if s.tls { "TLS" } else { "no TLS" }
            );
            println!("schema: {}", compare(s.version, PG_SCHEMA_VERSION));
        }
        StoreBackend::Sqlite => {
            let file = &cfg.store_path;
            println!("database: sqlite {}", file.display());
            let v = SqliteStore::schema_version(file)?.filter(|&v| v > 0);
            println!("schema: {}", compare(v, SqliteStore::SCHEMA_VERSION));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn compare(version: Option<i64>, build: i64) -> String {
    match version {
        None => {
            format!("none (this build creates version {build}: `leaseline db upgrade` or a start)")
        }
        Some(v) if v == build => format!("version {v} (this build: {build}, current)"),
        Some(v) if v < build => format!(
            "version {v} (this build: {build}; `leaseline db upgrade` or a start upgrades it)"
        ),
        Some(v) => format!(
            "version {v} (this build: {build}; newer than this build, which will not start on it)"
        ),
    }
}
