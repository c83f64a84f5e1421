//! `leaseline watch`: follow a server's binding changes live (RFC 7724).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use leaseline_proto::text::{parse_time, TimeFormat};
use leaseline_requestor::failover::parse_servers;
use leaseline_requestor::prl;
use leaseline_requestor::tls::tls_connector;
use leaseline_requestor::watch::{self, connect_tcp, WatchEnd, WatchEvent, WatchOptions};
use serde_json::json;

/// Exit status: 0 stopped by a signal; 2 usage error (clap); 3 the server
/// refused the query (status code and text printed); 4 connection failed
/// and --no-reconnect.
#[derive(clap::Args)]
#[command(
    after_help = "Text output: one line per update, its base-time first; lines starting with # report the session.\n\
                  Times are RFC 3339 in UTC (2026-11-23T10:00:00Z), Unix seconds with --epoch; --json always gives Unix seconds.\n\n\
                  Exit status: 0 interrupted, 2 command-line usage error, 3 refused by the server (status printed), 4 connection failure (with --no-reconnect)."
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
    /// Text output: times as Unix seconds instead of RFC 3339.
    #[arg(long)]
    pub epoch: bool,
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

impl WatchArgs {
    /// `--since` as Unix seconds.
    pub(crate) fn since(&self) -> anyhow::Result<Option<u32>> {
        self.since
            .as_deref()
            .map(parse_time)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--since: {e}"))
    }
}

pub fn run(args: WatchArgs) -> anyhow::Result<ExitCode> {
    let servers = parse_servers(&args.server).map_err(anyhow::Error::msg)?;
    let since = args.since()?;
    // RFC 7724 §5.3: smaller values SHOULD NOT be used; accepted with a warning.
    if args.rcv_timeout < 120 {
        tracing::warn!(
            event = "rcv_timeout_below_rfc",
            seconds = args.rcv_timeout,
            "rcv-timeout below the RFC 7724 default of 120 s"
        );
    }
    if args.retry_interval < 60 {
        tracing::warn!(
            event = "retry_interval_below_rfc",
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
        prl: prl::BINDINGS.to_vec(),
    };
    let style = if args.json {
        Style::Json
    } else {
        Style::Text(TimeFormat::from_epoch_flag(args.epoch))
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("runtime")?;
    let end = rt.block_on(async move {
        let mut print = move |e: WatchEvent| print_event(&e, style);
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

/// How events are printed.
#[derive(Clone, Copy)]
enum Style {
    /// One JSON object per line; times as Unix seconds.
    Json,
    /// Readable lines, times as the format says.
    Text(TimeFormat),
}

fn print_event(e: &WatchEvent, style: Style) {
    use std::io::Write;
    let line = match style {
        Style::Json => json_line(e),
        Style::Text(times) => text_line(e, times),
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn json_line(e: &WatchEvent) -> String {
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
        WatchEvent::KeepAlive { base_time } => {
            json!({"event": "keepalive", "base_time": base_time}).to_string()
        }
        WatchEvent::Terminated { base_time } => {
            json!({"event": "query-terminated", "base_time": base_time}).to_string()
        }
        WatchEvent::Refused { code, text } => {
            json!({"event": "refused", "status": code.name(), "code": code.as_u8(), "text": text})
                .to_string()
        }
        WatchEvent::Disconnected { reason } => {
            json!({"event": "disconnected", "reason": reason}).to_string()
        }
    }
}

fn text_line(e: &WatchEvent, times: TimeFormat) -> String {
    let t = |v: &Option<u32>| times.time_or_dash(*v);
    match e {
        WatchEvent::Update(r) => format!("{} {}", t(&r.base_time), r.line(times)),
        WatchEvent::Connected {
            server,
            since: Some(since),
        } => format!(
            "# connected to {server}, catching up since {}",
            times.time(*since)
        ),
        WatchEvent::Connected { server, since: None } => format!("# connected to {server}"),
        WatchEvent::CatchUpComplete { base_time } => {
            format!("# catch-up complete at {}", t(base_time))
        }
        WatchEvent::DataMissing { from, until } => format!(
            "# DATA MISSING: the server has no history back to {from}; changes until {until} may be missing (fill with: leaseline bulk --since {from} --until {until})",
            from = t(from),
            until = t(until),
        ),
        WatchEvent::KeepAlive { base_time } => format!("# keepalive {}", t(base_time)),
        WatchEvent::Terminated { base_time } => {
            format!("# query terminated by the server at {}", t(base_time))
        }
        WatchEvent::Refused { code, text } => format!("# refused: {} {text}", code.name()),
        WatchEvent::Disconnected { reason } => format!("# disconnected: {reason}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use leaseline_requestor::record::Record;

    #[test]
    fn text_lines_show_times_as_chosen() {
        let r = TimeFormat::Rfc3339;
        let e = TimeFormat::Epoch;
        let missing = WatchEvent::DataMissing {
            from: Some(1_700_000_000),
            until: Some(1_700_000_060),
        };
        assert_eq!(
            text_line(&missing, r),
            "# DATA MISSING: the server has no history back to 2023-11-14T22:13:20Z; changes \
             until 2023-11-14T22:14:20Z may be missing (fill with: leaseline bulk --since \
             2023-11-14T22:13:20Z --until 2023-11-14T22:14:20Z)"
        );
        assert!(text_line(&missing, e).ends_with("--since 1700000000 --until 1700000060)"));
        let keepalive = WatchEvent::KeepAlive {
            base_time: Some(1_700_000_000),
        };
        assert_eq!(text_line(&keepalive, r), "# keepalive 2023-11-14T22:13:20Z");
        assert_eq!(text_line(&keepalive, e), "# keepalive 1700000000");
        let connected = WatchEvent::Connected {
            server: "127.0.0.1:67".into(),
            since: Some(1_700_000_000),
        };
        assert_eq!(
            text_line(&connected, r),
            "# connected to 127.0.0.1:67, catching up since 2023-11-14T22:13:20Z"
        );
        let update = WatchEvent::Update(Record {
            ip: std::net::Ipv4Addr::new(10, 0, 0, 7),
            kind: "DHCPLEASEACTIVE",
            state: None,
            htype: 1,
            mac: Some("02:00:00:00:00:07".into()),
            client_id: None,
            base_time: Some(1_700_000_000),
            cltt: Some(1_700_000_000),
            state_since: None,
            expiry: Some(1_700_003_600),
            data_source: None,
            circuit_id: None,
            remote_id: None,
            relay_id: None,
            server_id: None,
            xid: 1,
        });
        assert_eq!(
            text_line(&update, r),
            "2023-11-14T22:13:20Z 10.0.0.7        ACTIVE      mac=02:00:00:00:00:07 \
             expiry=2023-11-14T23:13:20Z cltt=2023-11-14T22:13:20Z"
        );
        assert_eq!(
            text_line(&update, e),
            "1700000000 10.0.0.7        ACTIVE      mac=02:00:00:00:00:07 expiry=1700003600 \
             cltt=1700000000"
        );
        // JSON keeps the numbers.
        let v: serde_json::Value = serde_json::from_str(&json_line(&update)).unwrap();
        assert_eq!(v["expiry"], 1_700_003_600);
        assert_eq!(v["base_time"], 1_700_000_000);
        assert_eq!(v["event"], "update");
    }
}
