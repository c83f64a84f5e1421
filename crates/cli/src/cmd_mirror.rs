//! `leaseline mirror`: the replica daemon, and queries of its replica.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use leaseline_proto::text::{parse_hex, parse_ipv4, parse_mac, TimeFormat};
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
    #[command(
        after_help = "Text output: base-times as RFC 3339 in UTC (Unix seconds with --epoch), the lag and the\n\
                      status age as durations (1m5s; 65s with --epoch). --json gives seconds."
    )]
    Status {
        #[arg(long)]
        db: PathBuf,
        #[arg(long)]
        json: bool,
        /// Text output: times as Unix seconds, durations as whole seconds.
        #[arg(long)]
        epoch: bool,
    },
}

#[derive(clap::Args)]
#[command(group = clap::ArgGroup::new("key").required(true).args(["ip", "mac", "client_id", "remote_id", "relay_id", "all"]))]
#[command(
    after_help = "Values are read as by `leaseline query` and `bulk`: MAC 02:42:ac:11:00:02, 2:42:ac:11:0:2,\n\
                  02-42-ac-11-00-02 or 0242ac110002; hex the same way. Text output prints times as RFC 3339\n\
                  in UTC (Unix seconds with --epoch); --json gives Unix seconds. Exit 1 when a look-up\n\
                  finds nothing."
)]
pub struct QueryArgs {
    /// The replica.
    #[arg(long)]
    pub db: PathBuf,
    /// The binding of this address.
    #[arg(long, value_name = "A", value_parser = parse_ipv4)]
    pub ip: Option<Ipv4Addr>,
    /// Bindings of this hardware address (Ethernet).
    #[arg(long, value_name = "MAC")]
    pub mac: Option<String>,
    /// Bindings of this client identifier (option 61), hex.
    #[arg(long, value_name = "HEX")]
    pub client_id: Option<String>,
    /// Bindings whose relay agent sent this remote-id (option 82.2), hex.
    #[arg(long, value_name = "HEX")]
    pub remote_id: Option<String>,
    /// Bindings relayed by this relay-id (option 82.12), hex.
    #[arg(long, value_name = "HEX")]
    pub relay_id: Option<String>,
    /// Every binding in the replica.
    #[arg(long)]
    pub all: bool,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
    /// Text output: times as Unix seconds instead of RFC 3339.
    #[arg(long)]
    pub epoch: bool,
}

/// What `mirror query` looks up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Ip(Ipv4Addr),
    Mac(Vec<u8>),
    ClientId(Vec<u8>),
    RemoteId(Vec<u8>),
    RelayId(Vec<u8>),
    All,
}

impl QueryArgs {
    pub(crate) fn lookup(&self) -> anyhow::Result<Lookup> {
        let hex = |flag: &str, v: &str| parse_hex(v).map_err(|e| anyhow::anyhow!("{flag}: {e}"));
        Ok(if let Some(ip) = self.ip {
            Lookup::Ip(ip)
        } else if let Some(m) = &self.mac {
            Lookup::Mac(parse_mac(m).map_err(|e| anyhow::anyhow!("--mac: {e}"))?)
        } else if let Some(v) = &self.client_id {
            Lookup::ClientId(hex("--client-id", v)?)
        } else if let Some(v) = &self.remote_id {
            Lookup::RemoteId(hex("--remote-id", v)?)
        } else if let Some(v) = &self.relay_id {
            Lookup::RelayId(hex("--relay-id", v)?)
        } else {
            Lookup::All
        })
    }
}

pub fn run(args: MirrorArgs) -> anyhow::Result<ExitCode> {
    match args.cmd {
        Some(MirrorCmd::Query(q)) => query(q),
        Some(MirrorCmd::Status { db, json, epoch }) => {
            status(db, json, TimeFormat::from_epoch_flag(epoch))
        }
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
            event = "timeouts_below_rfc",
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

fn query(q: QueryArgs) -> anyhow::Result<ExitCode> {
    let lookup = q.lookup()?;
    let times = TimeFormat::from_epoch_flag(q.epoch);
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
            lease_log: None,
        },
        0,
    )?;
    let found: Vec<Binding> = match &lookup {
        Lookup::Ip(ip) => store.get(*ip)?.into_iter().collect(),
        Lookup::Mac(mac) => store.by_chaddr(1, mac)?,
        Lookup::ClientId(id) => store.by_client_id(id)?,
        Lookup::RemoteId(id) => store.by_remote_id(id)?,
        Lookup::RelayId(id) => store.by_relay_id(id)?,
        Lookup::All => store.load_all()?,
    };
    for b in &found {
        if q.json {
            println!("{}", binding_json(b, None));
        } else {
            println!("{}", binding_line(b, times));
        }
    }
    // Exit 1 when nothing matched a look-up, so scripts can tell.
    Ok(if found.is_empty() && lookup != Lookup::All {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn status(db: PathBuf, json: bool, times: TimeFormat) -> anyhow::Result<ExitCode> {
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
            r.saved_base_time.map_or("none".into(), |t| times.time(t))
        );
        println!(
            "last base-time:   {}",
            r.last_base_time.map_or("none".into(), |t| times.time(t))
        );
        println!(
            "lag:              {}",
            r.lag_seconds
                .map_or("unknown".into(), |l| times.duration(l))
        );
        println!(
            "status written:   {}",
            r.status_age_seconds
                .map_or("never".into(), |a| format!("{} ago", times.duration(a)))
        );
        println!("applied (run):    {}", r.applied_this_run);
        for (state, n) in &r.bindings {
            println!("bindings {state:<11} {n}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
