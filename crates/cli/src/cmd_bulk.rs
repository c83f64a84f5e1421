//! `leaseline bulk`: one Bulk Leasequery (RFC 6926) over TCP, records on
//! stdout, progress and a summary on stderr.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use leaseline_proto::text::{parse_hex, parse_mac, parse_time, TimeFormat};
use leaseline_requestor::addr::server_addr;
use leaseline_requestor::bulk::{BulkClient, BulkError, BulkRequest, Primary};
use leaseline_requestor::record::Record;
use leaseline_requestor::tls::TlsError;
use leaseline_requestor::watch::BoxStream;

// Exit statuses. 1 is any local error (main prints it); 2 is left to clap,
// which exits 2 on a command-line usage error, so no outcome shares it
// (as in `leaseline query`).
/// Exit status: success.
pub const EXIT_OK: u8 = 0;
/// Exit status: the server refused the query (DHCPLEASEQUERYDONE with a
/// status code, or TLSConnectionRefused).
pub const EXIT_REFUSED: u8 = 3;
/// Exit status: no connection, or it failed before DHCPLEASEQUERYDONE.
pub const EXIT_CONNECTION: u8 = 4;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(clap::Args)]
#[command(
    group(clap::ArgGroup::new("query").required(true).args(["mac", "client_id", "remote_id", "relay_id", "all"])),
    after_help = "Records go to stdout; a progress line (when stderr is a terminal) and a summary go to stderr.\n\
                  Times (--since, --until) are Unix seconds or RFC 3339 (2026-11-23T10:00:00Z).\n\
                  Text output prints times as RFC 3339 in UTC (Unix seconds with --epoch); --json and\n\
                  --csv always give Unix seconds.\n\n\
                  Exit status:\n  \
                  0  the query completed (DHCPLEASEQUERYDONE without an error status)\n  \
                  1  error: a bad value (MAC, hex, time), unreadable TLS files\n  \
                  2  command-line usage error\n  \
                  3  refused by the server: the status code and its text are printed\n     \
                  (NotAllowed, MalformedQuery, UnspecFail, ..., or TLSConnectionRefused)\n  \
                  4  connection failure: could not connect, or the connection failed or was\n     \
                  closed before DHCPLEASEQUERYDONE (e.g. requestor not allowed, server at its\n     \
                  connection limit, BULK_LQ_DATA_TIMEOUT)"
)]
pub struct BulkArgs {
    /// Server address, ADDR[:PORT] (port 67 by default, RFC 6926 §6.3).
    #[arg(long)]
    pub server: String,
    /// Bindings of this hardware address (Ethernet): 02:42:ac:11:00:02,
    /// 2:42:ac:11:0:2, 02-42-ac-11-00-02 or 0242ac110002.
    #[arg(long, value_name = "MAC")]
    pub mac: Option<String>,
    /// Bindings of this client identifier (option 61), hex.
    #[arg(long, value_name = "HEX")]
    pub client_id: Option<String>,
    /// Bindings whose relay agent sent this remote-id (option 82.2), hex.
    #[arg(long, value_name = "HEX")]
    pub remote_id: Option<String>,
    /// Bindings relayed by this relay-id (option 82.12, RFC 6925), hex.
    #[arg(long, value_name = "HEX")]
    pub relay_id: Option<String>,
    /// Every configured address: ACTIVE ones as DHCPLEASEACTIVE, the rest
    /// as DHCPLEASEUNASSIGNED with their dhcp-state.
    #[arg(long)]
    pub all: bool,
    /// Only bindings changed on or after this time (query-start-time).
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// Only bindings changed on or before this time (query-end-time).
    #[arg(long, value_name = "T")]
    pub until: Option<String>,
    /// One JSON object per line.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// CSV with a header line.
    #[arg(long)]
    pub csv: bool,
    /// Text output: times as Unix seconds instead of RFC 3339.
    #[arg(long)]
    pub epoch: bool,
    /// Give up when the server sends nothing for this many seconds
    /// (BULK_LQ_DATA_TIMEOUT).
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub timeout: u64,
    /// No progress line, even on a terminal.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub tls: crate::tls_args::TlsArgs,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Text(TimeFormat),
    Json,
    Csv,
}

impl BulkArgs {
    pub(crate) fn request(&self) -> anyhow::Result<BulkRequest> {
        let primary = if let Some(m) = &self.mac {
            Primary::Mac {
                htype: 1,
                chaddr: parse_mac(m).map_err(|e| anyhow::anyhow!("--mac: {e}"))?,
            }
        } else if let Some(h) = &self.client_id {
            let id = parse_hex(h).map_err(|e| anyhow::anyhow!("--client-id: {e}"))?;
            anyhow::ensure!(
                id.len() >= 2,
                "--client-id: a client identifier has at least 2 octets (RFC 2132 §9.14)"
            );
            Primary::ClientId(id)
        } else if let Some(h) = &self.remote_id {
            Primary::RemoteId(parse_hex(h).map_err(|e| anyhow::anyhow!("--remote-id: {e}"))?)
        } else if let Some(h) = &self.relay_id {
            Primary::RelayId(parse_hex(h).map_err(|e| anyhow::anyhow!("--relay-id: {e}"))?)
        } else {
            Primary::All
        };
        let time = |flag: &str, v: &Option<String>| -> anyhow::Result<Option<u32>> {
            v.as_deref()
                .map(parse_time)
                .transpose()
                .map_err(|e| anyhow::anyhow!("{flag}: {e}"))
        };
        let start = time("--since", &self.since)?;
        let end = time("--until", &self.until)?;
        if let (Some(s), Some(e)) = (start, end) {
            anyhow::ensure!(s <= e, "--until is before --since");
        }
        Ok(BulkRequest::new(primary).window(start, end))
    }

    fn format(&self) -> Format {
        if self.json {
            Format::Json
        } else if self.csv {
            Format::Csv
        } else {
            Format::Text(TimeFormat::from_epoch_flag(self.epoch))
        }
    }
}

pub fn run(args: BulkArgs) -> anyhow::Result<ExitCode> {
    let server = server_addr(&args.server).map_err(anyhow::Error::msg)?;
    let req = args.request()?;
    let tls = args.tls.client(&args.server)?;
    let format = args.format();
    let progress = !args.quiet && std::io::stderr().is_terminal();
    let timeout = Duration::from_secs(args.timeout.max(1));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("runtime")?;
    let outcome = rt.block_on(async move {
        let stream: BoxStream = match &tls {
            None => {
                let c = BulkClient::connect(server, CONNECT_TIMEOUT).await?;
                Box::new(c.into_inner())
            }
            // RFC 7724 §7.2: DHCPTLS, then TLS; never a plaintext fallback.
            Some(client) => match leaseline_requestor::tls::connect(server, client).await {
                Ok(s) => Box::new(s),
                Err(TlsError::Refused) => return Ok(Outcome::TlsRefused),
                Err(e) => return Ok(Outcome::TlsFailed(e.to_string())),
            },
        };
        let client = BulkClient::new(stream).with_timeout(timeout);
        stream_records(client, &req, format, progress).await
    });
    let code = match outcome {
        Ok(Outcome::Done(s)) => {
            eprintln!("leaseline bulk: {}", s.summary());
            EXIT_OK
        }
        Ok(Outcome::Refused { code, text, stats }) => {
            eprintln!(
                "leaseline bulk: refused by the server: {} ({}){}{} — after {} binding(s)",
                code.name(),
                code.as_u8(),
                if text.is_empty() { "" } else { ": " },
                text,
                stats.count
            );
            EXIT_REFUSED
        }
        Ok(Outcome::TlsRefused) => {
            eprintln!(
                "leaseline bulk: refused by the server: TLSConnectionRefused (8): the server does not offer TLS"
            );
            EXIT_REFUSED
        }
        Ok(Outcome::TlsFailed(e)) => {
            eprintln!("leaseline bulk: secure connection to {server} failed: {e}");
            EXIT_CONNECTION
        }
        Ok(Outcome::OutputClosed) => EXIT_OK,
        Err(Failure::Bulk(e, stats)) => {
            let after = match stats.count {
                0 => String::new(),
                n => format!(" (after {} binding(s))", thousands(n)),
            };
            eprintln!("leaseline bulk: connection to {server} failed: {e}{after}");
            if e.is_connection_failure() {
                EXIT_CONNECTION
            } else {
                1
            }
        }
        Err(Failure::Output(e)) => return Err(anyhow::Error::new(e).context("writing stdout")),
    };
    Ok(ExitCode::from(code))
}

enum Outcome {
    Done(Stats),
    Refused {
        code: leaseline_wire::StatusCode,
        text: String,
        stats: Stats,
    },
    TlsRefused,
    TlsFailed(String),
    /// stdout went away (e.g. `| head`): stop quietly.
    OutputClosed,
}

enum Failure {
    Bulk(BulkError, Stats),
    Output(std::io::Error),
}

impl From<BulkError> for Failure {
    fn from(e: BulkError) -> Self {
        Failure::Bulk(e, Stats::new())
    }
}

struct Stats {
    count: u64,
    by_state: BTreeMap<&'static str, u64>,
    started: Instant,
}

impl Stats {
    fn new() -> Self {
        Stats {
            count: 0,
            by_state: BTreeMap::new(),
            started: Instant::now(),
        }
    }
    fn add(&mut self, r: &Record) {
        self.count += 1;
        *self.by_state.entry(state_name(r)).or_insert(0) += 1;
    }
    fn rate(&self) -> f64 {
        let s = self.started.elapsed().as_secs_f64();
        if s > 0.0 {
            self.count as f64 / s
        } else {
            0.0
        }
    }
    fn summary(&self) -> String {
        let states: Vec<String> = self
            .by_state
            .iter()
            .map(|(k, v)| format!("{k} {}", thousands(*v)))
            .collect();
        format!(
            "{} binding(s){} in {:.2} s ({}/s)",
            thousands(self.count),
            if states.is_empty() {
                String::new()
            } else {
                format!(" ({})", states.join(", "))
            },
            self.started.elapsed().as_secs_f64(),
            thousands(self.rate() as u64)
        )
    }
}

fn state_name(r: &Record) -> &'static str {
    match r.state {
        Some(s) => s.name(),
        None if r.kind == "DHCPLEASEACTIVE" => "ACTIVE",
        None => "UNASSIGNED",
    }
}

/// 1234567 → "1,234,567".
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

const CSV_HEADER: &str = "ip,type,state,mac,client_id,base_time,cltt,state_since,expiry,data_source,circuit_id,remote_id,relay_id";

fn write_record(out: &mut impl Write, r: &Record, format: Format) -> std::io::Result<()> {
    match format {
        Format::Text(times) => writeln!(out, "{}", r.line(times)),
        Format::Json => {
            serde_json::to_writer(&mut *out, r)?;
            out.write_all(b"\n")
        }
        Format::Csv => {
            let o = |v: &Option<String>| v.clone().unwrap_or_default();
            let n = |v: Option<u32>| v.map(|x| x.to_string()).unwrap_or_default();
            writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{},{},{}",
                r.ip,
                r.kind,
                state_name(r),
                o(&r.mac),
                o(&r.client_id),
                n(r.base_time),
                n(r.cltt),
                n(r.state_since),
                n(r.expiry),
                r.data_source.map(|d| d.to_string()).unwrap_or_default(),
                o(&r.circuit_id),
                o(&r.remote_id),
                o(&r.relay_id),
            )
        }
    }
}

async fn stream_records(
    mut client: BulkClient<BoxStream>,
    req: &BulkRequest,
    format: Format,
    progress: bool,
) -> Result<Outcome, Failure> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(256 * 1024, stdout.lock());
    let mut stats = Stats::new();
    let broken = |e: std::io::Error, _stats: Stats| {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Ok(Outcome::OutputClosed)
        } else {
            Err(Failure::Output(e))
        }
    };
    if format == Format::Csv {
        if let Err(e) = writeln!(out, "{CSV_HEADER}") {
            return broken(e, stats);
        }
    }
    let mut q = client.query(req).await?;
    let mut last_progress = Instant::now();
    loop {
        let next = q.next().await;
        match next {
            Ok(Some(r)) => {
                stats.add(&r);
                if let Err(e) = write_record(&mut out, &r, format) {
                    return broken(e, stats);
                }
                if progress
                    && stats.count.is_multiple_of(1024)
                    && last_progress.elapsed() >= Duration::from_millis(200)
                {
                    last_progress = Instant::now();
                    eprint!(
                        "\r\x1b[2K{} bindings  {}/s",
                        thousands(stats.count),
                        thousands(stats.rate() as u64)
                    );
                }
            }
            Ok(None) => break,
            Err(e) => {
                let _ = out.flush();
                if progress {
                    eprint!("\r\x1b[2K");
                }
                return Err(Failure::Bulk(e, stats));
            }
        }
    }
    if progress {
        eprint!("\r\x1b[2K");
    }
    if let Err(e) = out.flush() {
        return broken(e, stats);
    }
    let done = q.done().cloned();
    match done.and_then(|d| d.status) {
        Some((code, text)) if code != leaseline_wire::StatusCode::Success => {
            Ok(Outcome::Refused { code, text, stats })
        }
        _ => Ok(Outcome::Done(stats)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        bulk: BulkArgs,
    }

    fn parse(args: &[&str]) -> Result<BulkArgs, clap::Error> {
        let mut v = vec!["bulk", "--server", "127.0.0.1"];
        v.extend_from_slice(args);
        Cmd::try_parse_from(v).map(|c| c.bulk)
    }

    #[test]
    fn exactly_one_query_kind() {
        assert!(parse(&[]).is_err(), "a query kind is required");
        assert!(parse(&["--all", "--mac", "02:00:00:00:00:01"]).is_err());
        let a = parse(&["--mac", "02:00:00:00:00:01", "--since", "100"]).unwrap();
        let r = a.request().unwrap();
        assert_eq!(
            r.primary,
            Primary::Mac {
                htype: 1,
                chaddr: vec![2, 0, 0, 0, 0, 1]
            }
        );
        assert_eq!((r.start, r.end), (Some(100), None));
    }

    #[test]
    fn times_and_ids_are_checked() {
        let a = parse(&[
            "--all",
            "--since",
            "2023-11-14T22:13:20Z",
            "--until",
            "1700000001",
        ])
        .unwrap();
        let r = a.request().unwrap();
        assert_eq!((r.start, r.end), (Some(1_700_000_000), Some(1_700_000_001)));
        assert!(parse(&["--all", "--since", "200", "--until", "100"])
            .unwrap()
            .request()
            .is_err());
        assert!(parse(&["--client-id", "01"]).unwrap().request().is_err());
        assert_eq!(
            parse(&["--remote-id", "72:31"])
                .unwrap()
                .request()
                .unwrap()
                .primary,
            Primary::RemoteId(b"r1".to_vec())
        );
        assert!(parse(&["--all", "--json", "--csv"]).is_err());
    }

    #[test]
    fn numbers_get_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
