//! `leaseline import leases --from dhcpd|kea-csv FILE --config FILE
//! [--dry-run]`: take over the leases of ISC dhcpd or Kea
//! (docs/migration.md). `import config` is [`crate::cmd_import_config`].
//!
//! The file is read twice, streamed: the first pass checks every record
//! and learns the last record of each address (the only per-address
//! memory), the second maps those last records to bindings (it parses
//! nothing else of a dhcpd.leases journal) and hands them to the store,
//! which writes them in one transaction. Any malformed
//! record fails the import before the store is touched.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use leaseline_import::dhcpd::DhcpdLeases;
use leaseline_import::kea_csv::KeaCsv;
use leaseline_import::{
    to_binding, Conflict, LastRecord, LeaseRecord, Mapped, MappingRules, ParseError, Unmapped,
};
use leaseline_proto::text::{format_hex, format_mac, format_time};
use leaseline_proto::Binding;
use leaseline_server::config::StoreBackend;
use leaseline_server::Config;
use leaseline_store::{HistoryLimits, LeaseStore, PostgresOptions, PostgresStore, SqliteStore};

#[derive(clap::Args)]
#[command(
    after_help = "Exit status: 0 imported or converted (or checked, with --dry-run), \
    1 malformed input (nothing written) or an error (one line on stderr)."
)]
pub struct ImportArgs {
    #[command(subcommand)]
    pub cmd: ImportCmd,
}

#[derive(clap::Subcommand)]
pub enum ImportCmd {
    /// Import another server's lease file into the configured store.
    Leases {
        /// The lease file's format.
        #[arg(long, value_enum)]
        from: LeaseFormat,
        /// dhcpd.leases or Kea's kea-leases4.csv.
        file: PathBuf,
        /// Server configuration file (TOML): its [store] and subnets.
        #[arg(short, long)]
        config: PathBuf,
        /// Print what would be imported and write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Convert another server's configuration to a Leaseline TOML; what
    /// does not map is listed on stderr with its line.
    Config(crate::cmd_import_config::ConfigArgs),
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum LeaseFormat {
    /// ISC dhcpd's dhcpd.leases.
    Dhcpd,
    /// Kea's memfile lease file for DHCPv4.
    KeaCsv,
}

/// Errors and other per-line findings listed in full up to this many.
const LISTED: usize = 20;

pub fn run(args: ImportArgs) -> anyhow::Result<ExitCode> {
    match args.cmd {
        ImportCmd::Leases {
            from,
            file,
            config,
            dry_run,
        } => leases(from, &file, &config, dry_run),
        ImportCmd::Config(args) => crate::cmd_import_config::run(args),
    }
}

/// One pass over the file.
enum Records {
    Dhcpd(DhcpdLeases<BufReader<File>>),
    Kea(KeaCsv<BufReader<File>>),
}

/// How a pass reads a dhcpd.leases file.
#[derive(Clone, Copy)]
enum Reading {
    /// Read and cut into tokens in a thread of its own, ahead of the
    /// parser: the first pass, alone on the machine's cores.
    Ahead,
    /// In the parser's thread: the second pass, which shares them with the
    /// store's writer.
    Inline,
}

impl Records {
    fn open(from: LeaseFormat, file: &Path, reading: Reading) -> anyhow::Result<Records> {
        let f = File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
        let r = BufReader::with_capacity(1 << 20, f);
        Ok(match (from, reading) {
            (LeaseFormat::Dhcpd, Reading::Ahead) => Records::Dhcpd(DhcpdLeases::threaded(r)),
            (LeaseFormat::Dhcpd, Reading::Inline) => Records::Dhcpd(DhcpdLeases::new(r)),
            (LeaseFormat::KeaCsv, _) => Records::Kea(KeaCsv::new(r)),
        })
    }

    /// The next record that may be the last of its address (dhcpd's
    /// other records are skipped without parsing their bodies).
    fn next_last(&mut self, last: &LastRecord) -> Option<Result<LeaseRecord, ParseError>> {
        match self {
            Records::Dhcpd(p) => p.next_wanted(|ip, line| last.is_last_at(ip, line)),
            Records::Kea(p) => p.next(),
        }
    }

    fn unmapped(&self) -> &Unmapped {
        match self {
            Records::Dhcpd(p) => p.unmapped(),
            Records::Kea(p) => p.unmapped(),
        }
    }
}

impl Iterator for Records {
    type Item = Result<LeaseRecord, ParseError>;
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Records::Dhcpd(p) => p.next(),
            Records::Kea(p) => p.next(),
        }
    }
}

/// What the second pass found, for the summary.
#[derive(Default)]
struct Tally {
    imported: u64,
    by_state: std::collections::BTreeMap<&'static str, u64>,
    expired: u64,
    available: u64,
    outside: Vec<(u64, std::net::Ipv4Addr)>,
    outside_count: u64,
}

fn leases(
    from: LeaseFormat,
    file: &Path,
    config: &Path,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(config)?;
    let now = leaseline_server::clock::unix_now();
    let shown = file.display();

    // Pass 1: every record checked; the last one of each address known.
    let mut last = LastRecord::new();
    let mut records = 0u64;
    let mut errors = 0u64;
    let mut conflicts: Vec<Conflict> = Vec::new();
    let mut conflict_count = 0u64;
    let mut pass = Records::open(from, file, Reading::Ahead)?;
    for r in pass.by_ref() {
        match r {
            Ok(rec) => {
                records += 1;
                if let Some(c) = last.see(&rec) {
                    conflict_count += 1;
                    if conflicts.len() < LISTED {
                        conflicts.push(c);
                    }
                }
            }
            Err(e) => {
                errors += 1;
                if errors <= LISTED as u64 {
                    eprintln!("{shown}:{}: {}", e.line, e.reason);
                }
            }
        }
    }
    if errors > 0 {
        if errors > LISTED as u64 {
            eprintln!("... and {} more", errors - LISTED as u64);
        }
        eprintln!("{shown}: {errors} malformed record(s): nothing imported");
        return Ok(ExitCode::FAILURE);
    }
    let unmapped = pass.unmapped().clone();
    drop(pass);

    // Pass 2: the last records, mapped, checked against the pools.
    let rules = MappingRules {
        expired_grace: cfg.expired_grace,
    };
    // The second pass (parse each address's last record, map) runs
    // in a thread of its own while this one writes: on two cores the
    // import takes the longer of the two, not their sum.
    let (chunks, received) = std::sync::mpsc::sync_channel(PIPELINE_CHUNKS);
    let (written, tally) = std::thread::scope(|s| {
        let mapper = s.spawn(|| map_last_records(from, file, &last, &cfg, now, rules, chunks));
        let mut bindings = received.into_iter().flatten();
        let written = if dry_run {
            let mut failed = None;
            for b in bindings.by_ref() {
                match b {
                    Ok(b) => println!("would import {}", describe(&b)),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            failed.map_or(Ok(None), |e| Err(anyhow::anyhow!(e)))
        } else {
            write(&cfg, &mut bindings, now).map(Some)
        };
        // Ends the mapper if the writer stopped early.
        drop(bindings);
        let tally = mapper
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the mapping thread failed")));
        (written, tally)
    });
    let written = written?;
    let tally = tally?;

    println!("{shown}: {records} records, {} addresses", last.len());
    let states = tally
        .by_state
        .iter()
        .map(|(s, n)| format!("{n} {s}"))
        .collect::<Vec<_>>()
        .join(", ");
    match written {
        Some(n) => println!("imported: {n} bindings ({states}), in one transaction"),
        None => println!(
            "would import: {} bindings ({states}); dry run, nothing written",
            tally.imported
        ),
    }
    println!(
        "expired: {} active leases past their end, imported as EXPIRED",
        tally.expired
    );
    println!(
        "available: {} addresses whose last record frees them (nothing to store)",
        tally.available
    );
    println!(
        "superseded: {} earlier records of an address (its last record wins)",
        records - last.len() as u64
    );
    println!(
        "outside the configured pools and reservations (not imported): {}{}",
        tally.outside_count,
        list(
            tally.outside.iter().map(|(l, ip)| format!("line {l} {ip}")),
            tally.outside_count
        )
    );
    println!(
        "conflicts (two clients on one address at once; the later record kept): {}{}",
        conflict_count,
        list(
            conflicts
                .iter()
                .map(|c| format!("{} lines {} and {}", c.ip, c.earlier_line, c.line)),
            conflict_count
        )
    );
    for (what, (n, lines)) in &unmapped.by_statement {
        let lines = lines
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let more = if *n > 5 { ", ..." } else { "" };
        println!("not mapped: {what} x{n} (line {lines}{more})");
    }
    Ok(ExitCode::SUCCESS)
}

/// Chunks of mapped bindings in flight between the mapping thread and the
/// writer: a bound, so memory does not grow with the file.
const PIPELINE_CHUNKS: usize = 8;
const CHUNK: usize = 1024;

type Chunk = Vec<Result<Binding, String>>;

/// The second pass: each address's last record, mapped to a binding,
/// sent in chunks until the file ends or the receiver goes.
fn map_last_records(
    from: LeaseFormat,
    file: &Path,
    last: &LastRecord,
    cfg: &Config,
    now: u32,
    rules: MappingRules,
    out: std::sync::mpsc::SyncSender<Chunk>,
) -> anyhow::Result<Tally> {
    let shown = file.display();
    let mut tally = Tally::default();
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut records = Records::open(from, file, Reading::Inline)?;
    while let Some(r) = records.next_last(last) {
        let rec = match r {
            Ok(rec) => rec,
            Err(e) => {
                chunk.push(Err(format!("{shown} changed while read: {e}")));
                break;
            }
        };
        if !last.is_last(&rec) {
            continue;
        }
        let b = match to_binding(&rec, now, rules) {
            Mapped::Available => {
                tally.available += 1;
                continue;
            }
            Mapped::Expired(b) => {
                tally.expired += 1;
                b
            }
            Mapped::Binding(b) => b,
        };
        if !served(cfg, &b) {
            tally.outside_count += 1;
            if tally.outside.len() < LISTED {
                tally.outside.push((rec.line, rec.ip));
            }
            continue;
        }
        tally.imported += 1;
        *tally.by_state.entry(b.state.name()).or_default() += 1;
        chunk.push(Ok(b));
        if chunk.len() == CHUNK {
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
            if out.send(full).is_err() {
                return Ok(tally);
            }
        }
    }
    // A closed receiver: the writer already stopped, with its own error.
    let _ = out.send(chunk);
    Ok(tally)
}

/// `: a, b, ...` for a list of findings, or nothing.
fn list(items: impl Iterator<Item = String>, count: u64) -> String {
    let items: Vec<String> = items.collect();
    if items.is_empty() {
        return String::new();
    }
    let more = if count > items.len() as u64 {
        ", ..."
    } else {
        ""
    };
    format!(": {}{more}", items.join("; "))
}

/// The address is in a configured pool or reserved for a client: the
/// server will answer for it.
fn served(cfg: &Config, b: &Binding) -> bool {
    let ip = u32::from(b.ip);
    cfg.subnets
        .iter()
        .any(|s| s.pool_contains(ip) || s.reservations.iter().any(|r| r.ip == b.ip))
}

fn describe(b: &Binding) -> String {
    let mut s = format!("{} {}", b.ip, b.state.name());
    if !b.chaddr.is_empty() {
        s += &format!(" mac {}", format_mac(&b.chaddr));
    }
    if let Some(id) = &b.client_id {
        s += &format!(" client-id {}", format_hex(id));
    }
    if b.expiry != 0 {
        s += &format!(" until {}", format_time(b.expiry));
    }
    s
}

/// Everything in one transaction of the configured store.
fn write(
    cfg: &Config,
    bindings: &mut dyn Iterator<Item = Result<Binding, String>>,
    now: u32,
) -> anyhow::Result<u64> {
    match &cfg.store_backend {
        StoreBackend::Sqlite => {
            if let Some(dir) = cfg
                .store_path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            Ok(SqliteStore::import(&cfg.store_path, bindings, now)?)
        }
        StoreBackend::Postgres { url } => {
            // One submission is one transaction of the writer (one call of
            // the commit function), published on the change log like any
            // commit: running servers and their watchers see the import.
            let all: Vec<Binding> = bindings
                .collect::<Result<_, _>>()
                .map_err(|e| anyhow::anyhow!("import abandoned, nothing written: {e}"))?;
            let count = all.len() as u64;
            let store = PostgresStore::open(
                PostgresOptions {
                    url: url.clone(),
                    history: HistoryLimits {
                        max_age: cfg.history_max_age,
                        max_count: cfg.history_max_count,
                    },
                    max_batch: cfg.max_batch,
                    instance_id: format!("import:{}", std::process::id()),
                    readers: 1,
                    lease_log: cfg.lease_history,
                },
                now,
            )?;
            store
                .submit(all, now)
                .blocking_recv()
                .map_err(|_| anyhow::anyhow!("the store's writer stopped"))??;
            Ok(count)
        }
    }
}
