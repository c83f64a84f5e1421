//! `leaseline mirror`: the replica daemon, and queries of its replica.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use leaseline_requestor::failover::parse_servers;
use leaseline_requestor::mirror::events::{binding_json, binding_line};
use leaseline_requestor::mirror::{self, status::read_report, MirrorOptions};
use leaseline_requestor::tls::tls_connector;
use leaseline_requestor::watch::connect_tcp;
use leaseline_store::{Binding, LeaseStore, SqliteOptions, SqliteStore};

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
#[command(
    after_help = "Run the daemon with --server and --db; `query` and `status` read a replica."
)]
pub struct MirrorArgs {
    #[command(subcommand)]
    pub cmd: Option<MirrorCmd>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// Server address, ADDR[:PORT] (port 67 by default). Repeat it, or give
    /// a comma-separated list, for several servers on one lease database:
    /// they are tried in order, and a lost connection fails over to the next.
    #[arg(long, value_name = "ADDR[,ADDR...]")]
    pub server: Vec<String>,
    /// The replica (SQLite); created if missing.
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Write one JSON line per applied change to FILE (or - for stdout).
    #[arg(long)]
    pub events: Option<PathBuf>,
    /// ACTIVE_LQ_RCV_TIMEOUT: reconnect after this many seconds of silence.
    #[arg(long, default_value_t = 120)]
    pub rcv_timeout: u64,
    /// ACTIVE_LQ_IDLE_TIMEOUT: least seconds between connection attempts to one server (plus up to 20 % jitter).
    #[arg(long, default_value_t = 60)]
    pub retry_interval: u64,
    /// Seconds between status reports (log and replica).
    #[arg(long, default_value_t = 30)]
    pub status_interval: u64,
    #[command(flatten)]
    pub tls: crate::tls_args::TlsArgs,
}

#[derive(clap::Subcommand)]
pub enum MirrorCmd {
    /// Look bindings up in a replica.
    Query(QueryArgs),
    /// Print a replica's phase, lag and counts.
    Status {
        #[arg(long)]
        db: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
#[command(group = clap::ArgGroup::new("key").required(true).args(["ip", "mac", "client_id", "remote_id", "relay_id", "all"]))]
pub struct QueryArgs {
    #[arg(long)]
    pub db: PathBuf,
    #[arg(long)]
    pub ip: Option<Ipv4Addr>,
    #[arg(long)]
    pub mac: Option<String>,
    #[arg(long)]
    pub client_id: Option<String>,
    #[arg(long)]
    pub remote_id: Option<String>,
    #[arg(long)]
    pub relay_id: Option<String>,
    #[arg(long)]
    pub all: bool,
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: MirrorArgs) -> anyhow::Result<ExitCode> {
    match args.cmd {
        Some(MirrorCmd::Query(q)) => query(q),
        Some(MirrorCmd::Status { db, json }) => status(db, json),
        None => daemon(args.run),
    }
}

fn daemon(a: RunArgs) -> anyhow::Result<ExitCode> {
    if a.server.is_empty() {
        anyhow::bail!("--server is required to run the mirror");
    }
    let servers = parse_servers(&a.server).map_err(anyhow::Error::msg)?;
    let db = a.db.context("--db is required")?;
    let tls = a.tls.client_for_servers(&servers)?;
    if a.rcv_timeout < 120 || a.retry_interval < 60 {
        tracing::warn!(
            "timeouts below the RFC 7724 defaults (120 s receive, 60 s retry) are for tests only"
        );
    }
    let opts = MirrorOptions {
        servers,
        db,
        events: a.events,
        rcv_timeout: Duration::from_secs(a.rcv_timeout.max(1)),
        retry_interval: Duration::from_secs(a.retry_interval),
        status_interval: Duration::from_secs(a.status_interval.max(1)),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("runtime")?;
    rt.block_on(async move {
        // With --tls there is never a plaintext fallback (RFC 7724 §7.2).
        let run = async {
            match tls {
                Some(client) => mirror::run(&opts, tls_connector(client)).await,
                None => mirror::run(&opts, connect_tcp).await,
            }
        };
        tokio::select! {
            r = run => r.map_err(anyhow::Error::msg),
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

fn parse_hex(s: &str) -> anyhow::Result<Vec<u8>> {
    let hex: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    if hex.is_empty()
        || !hex.len().is_multiple_of(2)
        || hex.len() != s.chars().filter(|c| *c != ':' && *c != '-').count()
    {
        anyhow::bail!("`{s}` is not hex bytes");
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| Ok(u8::from_str_radix(&hex[i..i + 2], 16)?))
        .collect()
}

fn query(q: QueryArgs) -> anyhow::Result<ExitCode> {
    if !q.db.exists() {
        anyhow::bail!("{}: no such replica", q.db.display());
    }
    let store = SqliteStore::open(
        SqliteOptions {
            path: q.db.clone(),
            history: leaseline_store::HistoryLimits {
                max_age: 1,
                max_count: 1,
            },
            max_batch: 1,
        },
        0,
    )?;
    let found: Vec<Binding> = if let Some(ip) = q.ip {
        store.get(ip)?.into_iter().collect()
    } else if let Some(mac) = &q.mac {
        store.by_chaddr(1, &parse_hex(mac)?)?
    } else if let Some(id) = &q.client_id {
        store.by_client_id(&parse_hex(id)?)?
    } else if let Some(id) = &q.remote_id {
        store.by_remote_id(&parse_hex(id)?)?
    } else if let Some(id) = &q.relay_id {
        store.by_relay_id(&parse_hex(id)?)?
    } else {
        store.load_all()?
    };
    for b in &found {
        if q.json {
            println!("{}", binding_json(b, None));
        } else {
            println!("{}", binding_line(b));
        }
    }
    // Exit 1 when nothing matched a look-up, so scripts can tell.
    Ok(if found.is_empty() && !q.all {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn status(db: PathBuf, json: bool) -> anyhow::Result<ExitCode> {
    if !db.exists() {
        anyhow::bail!("{}: no such replica", db.display());
    }
    let r = read_report(&db)?;
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!("phase:            {}", r.phase);
        println!(
            "saved base-time:  {}",
            r.saved_base_time.map_or("none".into(), |t| t.to_string())
        );
        println!(
            "last base-time:   {}",
            r.last_base_time.map_or("none".into(), |t| t.to_string())
        );
        println!(
            "lag:              {}",
            r.lag_seconds.map_or("unknown".into(), |l| format!("{l} s"))
        );
        println!(
            "status written:   {}",
            r.status_age_seconds
                .map_or("never".into(), |a| format!("{a} s ago"))
        );
        println!("applied (run):    {}", r.applied_this_run);
        for (state, n) in &r.bindings {
            println!("bindings {state:<11} {n}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
