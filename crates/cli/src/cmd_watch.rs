//! `leaseline watch`: follow a server's binding changes live (RFC 7724).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use leaseline_requestor::active::DEFAULT_PRL;
use leaseline_requestor::failover::parse_servers;
use leaseline_requestor::timearg::parse_time;
use leaseline_requestor::tls::tls_connector;
use leaseline_requestor::watch::{self, connect_tcp, WatchEnd, WatchEvent, WatchOptions};
use serde_json::json;

/// Exit status: 0 stopped by a signal; 2 usage error (clap); 3 the server
/// refused the query (status code and text printed); 4 connection failed
/// and --no-reconnect.
#[derive(clap::Args)]
#[command(
    after_help = "Exit status: 0 interrupted, 2 command-line usage error, 3 refused by the server (status printed), 4 connection failure (with --no-reconnect)."
)]
pub struct WatchArgs {
    /// Server address, ADDR[:PORT] (port 67 by default). Repeat it, or give
    /// a comma-separated list, for several servers on one lease database:
    /// they are tried in order, and a lost connection fails over to the next.
    #[arg(long, required = true, value_name = "ADDR[,ADDR...]")]
    pub server: Vec<String>,
    /// Catch up on changes since this time (Unix seconds or RFC 3339).
    #[arg(long, conflicts_with = "resume")]
    pub since: Option<String>,
    /// Resume file: start from the base-time it holds and keep it current.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
    /// ACTIVE_LQ_RCV_TIMEOUT: close after this many seconds of silence.
    #[arg(long, default_value_t = 120)]
    pub rcv_timeout: u64,
    /// ACTIVE_LQ_IDLE_TIMEOUT: least seconds between connection attempts to one server.
    #[arg(long, default_value_t = 60)]
    pub retry_interval: u64,
    /// Exit on a lost connection instead of reconnecting (with several
    /// servers, once the first one that answered is lost, or none answered).
    #[arg(long)]
    pub no_reconnect: bool,
    #[command(flatten)]
    pub tls: crate::tls_args::TlsArgs,
}

pub fn run(args: WatchArgs) -> anyhow::Result<ExitCode> {
    let servers = parse_servers(&args.server).map_err(anyhow::Error::msg)?;
    let since = args
        .since
        .as_deref()
        .map(parse_time)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    // RFC 7724 §5.3: smaller values SHOULD NOT be used; accepted with a warning.
    if args.rcv_timeout < 120 {
        tracing::warn!(
            seconds = args.rcv_timeout,
            "rcv-timeout below the RFC 7724 default of 120 s"
        );
    }
    if args.retry_interval < 60 {
        tracing::warn!(
            seconds = args.retry_interval,
            "retry-interval below the RFC 7724 default of 60 s"
        );
    }
    let tls = args.tls.client_for_servers(&servers)?;
    let opts = WatchOptions {
        servers,
        since,
        resume: args.resume,
        rcv_timeout: Duration::from_secs(args.rcv_timeout.max(1)),
        retry_interval: Duration::from_secs(args.retry_interval),
        reconnect: !args.no_reconnect,
        prl: DEFAULT_PRL.to_vec(),
    };
    let json = args.json;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("runtime")?;
    let end = rt.block_on(async move {
        let mut print = move |e: WatchEvent| print_event(&e, json);
        // With --tls there is never a plaintext fallback (RFC 7724 §7.2).
        let run = async {
            match tls {
                Some(client) => watch::watch(&opts, tls_connector(client), &mut print).await,
                None => watch::watch(&opts, connect_tcp, &mut print).await,
            }
        };
        tokio::select! {
            end = run => Some(end),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    Ok(match end {
        None => ExitCode::SUCCESS,
        Some(WatchEnd::Refused(code, text)) => {
            eprintln!(
                "leaseline watch: refused: {} ({}) {text}",
                code.name(),
                code.as_u8()
            );
            ExitCode::from(3)
        }
        Some(WatchEnd::Failed(reason)) => {
            eprintln!("leaseline watch: {reason}");
            ExitCode::from(4)
        }
    })
}

fn print_event(e: &WatchEvent, json: bool) {
    use std::io::Write;
    let line = if json {
        match e {
            WatchEvent::Update(r) => {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                v["event"] = json!("update");
                v.to_string()
            }
            WatchEvent::Connected { server, since } => {
                json!({"event": "connected", "server": server, "since": since}).to_string()
            }
            WatchEvent::CatchUpComplete { base_time } => {
                json!({"event": "catch-up-complete", "base_time": base_time}).to_string()
            }
            WatchEvent::DataMissing { from, until } => {
                json!({"event": "data-missing", "from": from, "until": until}).to_string()
            }
            WatchEvent::KeepAlive { base_time } => json!({"event": "keepalive", "base_time": base_time}).to_string(),
            WatchEvent::Terminated { base_time } => {
                json!({"event": "query-terminated", "base_time": base_time}).to_string()
            }
            WatchEvent::Refused { code, text } => {
                json!({"event": "refused", "status": code.name(), "code": code.as_u8(), "text": text}).to_string()
            }
            WatchEvent::Disconnected { reason } => json!({"event": "disconnected", "reason": reason}).to_string(),
        }
    } else {
        match e {
            WatchEvent::Update(r) => format!("{} {}", r.base_time.unwrap_or(0), r.line()),
            WatchEvent::Connected { server, since: Some(t) } => {
                format!("# connected to {server}, catching up since {t}")
            }
            WatchEvent::Connected { server, since: None } => format!("# connected to {server}"),
            WatchEvent::CatchUpComplete { base_time } => format!("# catch-up complete at {}", base_time.unwrap_or(0)),
            WatchEvent::DataMissing { from, until } => format!(
                "# DATA MISSING: the server has no history back to {}; changes until {} may be missing (fill with: leaseline bulk --since {} --until {})",
                from.unwrap_or(0),
                until.unwrap_or(0),
                from.unwrap_or(0),
                until.unwrap_or(0)
            ),
            WatchEvent::KeepAlive { base_time } => format!("# keepalive {}", base_time.unwrap_or(0)),
            WatchEvent::Terminated { base_time } => format!("# query terminated by the server at {}", base_time.unwrap_or(0)),
            WatchEvent::Refused { code, text } => format!("# refused: {} {text}", code.name()),
            WatchEvent::Disconnected { reason } => format!("# disconnected: {reason}"),
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
