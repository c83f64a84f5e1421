//! `leaseline`: the server and the requestor tools in one binary.

mod cmd_bulk;
mod cmd_certs;
mod cmd_check;
mod cmd_ctl;
mod cmd_db;
mod cmd_history;
mod cmd_import;
mod cmd_import_config;
mod cmd_mirror;
mod cmd_query;
mod cmd_serve;
mod cmd_watch;
#[cfg(test)]
mod text_table;
mod tls_args;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc, not glibc's malloc: bindings are built on the DHCP threads and
/// freed wherever the last Active Leasequery session lets go of them; with
/// glibc those cross-thread frees took the DHCP thread's arena lock and
/// cost ~20 % of the DORA rate at saturation with 100 requestors attached
/// (bench/README.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// No transparent huge pages for this process. mimalloc asks for them on
/// its arenas (MADV_HUGEPAGE), so the first touch of each 2 MiB region (a
/// binding table filling up, a fresh allocator page) zeroes all of it on
/// the thread that touched it: 10-40 ms without an answer on the DHCP
/// thread at a few thousand DORA/s in a VM, and the burst of replies that
/// followed overflowed a relay's receive buffer (issue 16 item 3; the
/// largest OFFER delay fell from 30-100 ms to 3-5 ms). 4 KiB pages spread
/// the same zeroing evenly. Best effort: on failure the kernel's default
/// stays.
fn disable_transparent_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory
    // of ours.
    let _ = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

#[derive(Parser)]
#[command(
    name = "leaseline",
    version,
    about = "DHCPv4 server with Leasequery, Bulk and Active Leasequery"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the DHCP server (and the leasequery services it enables).
    Serve {
        /// Configuration file (TOML); see docs/configuration.md.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Validate a configuration file and print a summary; exit 1 when invalid.
    CheckConfig {
        /// Configuration file (TOML).
        file: PathBuf,
    },
    /// Ask a server about one binding over UDP (RFC 4388, RFC 6148).
    Query(cmd_query::QueryArgs),
    /// Fetch bindings in bulk over TCP (RFC 6926).
    Bulk(cmd_bulk::BulkArgs),
    /// Follow every binding change live, with catch-up (RFC 7724).
    Watch(cmd_watch::WatchArgs),
    /// Keep a replica of a server's bindings current (bulk, then active), and query it.
    Mirror(cmd_mirror::MirrorArgs),
    /// Make a lab PKI for secure mode (TLS): a CA, a server and a requestor certificate.
    Certs(cmd_certs::CertsArgs),
    /// The lease store's schema: `db status`, `db upgrade` (docs/postgresql.md).
    Db(cmd_db::DbArgs),
    /// Send one command to a server's control API (`[http]`; docs/operations.md).
    Ctl(cmd_ctl::CtlArgs),
    /// Take over another server: `import config --from dhcpd|kea`, `import leases --from dhcpd|kea-csv` (docs/migration.md).
    Import(cmd_import::ImportArgs),
    /// Who held an address when, and which addresses a client held (the
    /// lease history; docs/operations.md).
    History(cmd_history::HistoryArgs),
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        // A log line that cannot be written (stderr on a full disk) is
        // dropped; the default reports it with eprintln!, which panics on
        // the same full disk and took the store's writer thread with it
        // (helper-11's PostgreSQL soak).
        .log_internal_errors(false);
    match format {
        LogFormat::Text => builder.init(),
        // One object per line, the event's fields at the top level next
        // to `timestamp`, `level`, `target` and `message` (docs/operations.md).
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn main() -> ExitCode {
    disable_transparent_huge_pages();
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Serve { config } => cmd_serve::run(&config),
        Command::CheckConfig { file } => cmd_check::run(&file),
        Command::Query(args) => cmd_query::run(args),
        Command::Bulk(args) => cmd_bulk::run(args),
        Command::Watch(args) => cmd_watch::run(args),
        Command::Mirror(args) => cmd_mirror::run(args),
        Command::Certs(args) => cmd_certs::run(args),
        Command::Db(args) => cmd_db::run(args),
        Command::Ctl(args) => cmd_ctl::run(args),
        Command::Import(args) => cmd_import::run(args),
        Command::History(args) => cmd_history::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("leaseline: {e:#}");
            ExitCode::from(1)
        }
    }
}
