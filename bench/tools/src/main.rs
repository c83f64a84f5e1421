//! `leaseline-bench`: load generators and probes for bench/*.sh. Not a test:
//! it prints figures.
//!
//! - `active-latency`: drives DORA as a relay and measures, per ACK, how long
//!   until the matching Active Leasequery update reaches each of N watchers
//!   (`p50_us`, `p99_us`; an update that beats its ACK counts as 0), and the
//!   same from the REQUEST's departure (`req_p50_us`, `req_p99_us`).
//! - `watchers`: holds N idle active connections open (for a DORA rate run
//!   with watchers attached).
//! - `catchup`: time for one watcher to catch up from a given time.
//! - `mirror-lag`: drives DORA and follows a mirror's events file: replica
//!   lag per change (bench/mirror.sh).
//! - `prefill`: a server store with N ACTIVE bindings (bench/mirror.sh).
//! - `saturate`: DORA capacity, closed loop (bench/active.sh, bench/dora.sh);
//!   with `--rate`, a paced open-loop load, optionally releasing
//!   (bench/soak.sh, bench/failover.sh on PostgreSQL).
//! - `responder`: a stateless OFFER/ACK answerer, the physical limit the
//!   DORA benchmark measures leaseline and Kea against (bench/dora.sh).
//! - `http-load`: a `/metrics` scrape every second and `lease4-get` at a
//!   paced rate on the HTTP endpoint (bench/http.sh).
//! - `sse-clients`: N readers of the web view's event stream (`/ui/events`)
//!   for a DORA rate run with browsers attached (bench/webui.sh).
//! - `failover`: leases from instance A, kill -9 of A, the time until
//!   instance B ACKs those clients' rebinding (bench/failover.sh).
//!
//! Each connects in plain TCP, or in secure mode (DHCPTLS then mutual TLS,
//! RFC 7724 §7.2) with `--tls-ca`, `--tls-cert` and `--tls-key`.

mod active_latency;
mod dora;
mod failover;
mod history;
mod http_load;
mod mirror_lag;
mod mmsg;
mod prefill;
mod responder;
mod rx_time;
mod saturate;
mod sse_clients;
mod stats;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use leaseline_requestor::active::{active_query, classify, ActiveEvent, FramedConn};
use leaseline_requestor::prl;
use leaseline_requestor::tls::{TlsClient, TlsClientSettings};
use leaseline_requestor::watch::BoxStream;
use leaseline_wire::StatusCode;
use tokio::net::TcpStream;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// Secure mode: all three files, or none (plain TCP).
#[derive(clap::Args, Clone, Default)]
struct TlsOpts {
    /// CA bundle the server certificate must chain to (secure mode).
    #[arg(long, requires_all = ["tls_cert", "tls_key"])]
    tls_ca: Option<std::path::PathBuf>,
    /// This requestor's certificate (secure mode).
    #[arg(long, requires_all = ["tls_ca", "tls_key"])]
    tls_cert: Option<std::path::PathBuf>,
    /// Its private key (secure mode).
    #[arg(long, requires_all = ["tls_ca", "tls_cert"])]
    tls_key: Option<std::path::PathBuf>,
    /// Name the server certificate must carry (default: the server's IP).
    #[arg(long, requires = "tls_ca")]
    tls_server_name: Option<String>,
}

impl TlsOpts {
    fn client(&self) -> anyhow::Result<Option<Arc<TlsClient>>> {
        let (Some(ca), Some(cert), Some(key)) = (&self.tls_ca, &self.tls_cert, &self.tls_key)
        else {
            return Ok(None);
        };
        let c = TlsClient::new(&TlsClientSettings {
            ca: ca.clone(),
            cert: cert.clone(),
            key: key.clone(),
            server_name: self.tls_server_name.clone(),
        })?;
        Ok(Some(Arc::new(c)))
    }
}

/// A leasequery connection: plain TCP, or DHCPTLS then TLS.
async fn open(tcp: SocketAddr, tls: Option<&TlsClient>) -> anyhow::Result<BoxStream> {
    match tls {
        None => {
            let s = TcpStream::connect(tcp).await.context("connect")?;
            s.set_nodelay(true)?;
            Ok(Box::new(s))
        }
        Some(c) => Ok(Box::new(
            leaseline_requestor::tls::connect(tcp, c)
                .await
                .context("secure connection")?,
        )),
    }
}

#[derive(Subcommand)]
enum Cmd {
    ActiveLatency {
        #[arg(long)]
        dhcp: SocketAddr,
        #[arg(long)]
        tcp: SocketAddr,
        #[arg(long, default_value = "127.0.0.30")]
        giaddr: Ipv4Addr,
        #[arg(long, default_value_t = 1)]
        watchers: usize,
        /// DORA exchanges per second.
        #[arg(long, default_value_t = 1000)]
        rate: u32,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// First client number (distinct runs use distinct clients).
        #[arg(long, default_value_t = 0)]
        first_client: u32,
        #[command(flatten)]
        tls: TlsOpts,
    },
    SseClients {
        /// The HTTP endpoint (`[http] listen`).
        #[arg(long)]
        web: SocketAddr,
        #[arg(long)]
        token: Option<String>,
        #[arg(long, default_value_t = 20)]
        count: usize,
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    Watchers {
        #[arg(long)]
        tcp: SocketAddr,
        #[arg(long, default_value_t = 100)]
        count: usize,
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        #[command(flatten)]
        tls: TlsOpts,
    },
    Catchup {
        #[arg(long)]
        tcp: SocketAddr,
        #[arg(long)]
        since: u32,
        #[command(flatten)]
        tls: TlsOpts,
    },
    MirrorLag {
        #[arg(long)]
        dhcp: SocketAddr,
        #[arg(long, default_value = "127.0.0.75")]
        giaddr: Ipv4Addr,
        /// DORA exchanges per second.
        #[arg(long, default_value_t = 1000)]
        rate: u32,
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        #[arg(long, default_value_t = 0)]
        first_client: u32,
        /// The mirror's --events file.
        #[arg(long)]
        events: std::path::PathBuf,
    },
    Saturate {
        #[arg(long)]
        dhcp: SocketAddr,
        #[arg(long, default_value = "127.0.0.1")]
        giaddr: Ipv4Addr,
        /// Exchanges kept in flight.
        #[arg(long, default_value_t = 256)]
        window: usize,
        /// Distinct clients, taken in turn (each DORA again renews its lease).
        #[arg(long, default_value_t = 50_000)]
        clients: u32,
        /// The first client's number (two drivers at once: distinct clients).
        #[arg(long, default_value_t = 0)]
        first_client: u32,
        #[arg(long, default_value_t = 15)]
        seconds: u64,
        /// Open loop: exchanges started per second (at most WINDOW in
        /// flight); 0: closed loop.
        #[arg(long, default_value_t = 0)]
        rate: u32,
        /// RELEASE the address for this many of every 100 ACKs.
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100))]
        release_percent: u32,
    },
    HttpLoad {
        /// The HTTP endpoint (`[http] listen`).
        #[arg(long)]
        http: SocketAddr,
        /// The bearer token, if the endpoint wants one.
        #[arg(long)]
        token: Option<String>,
        /// `lease4-get` commands a second.
        #[arg(long, default_value_t = 1000)]
        rate: u32,
        /// Milliseconds between `/metrics` scrapes.
        #[arg(long, default_value_t = 1000)]
        scrape_ms: u64,
        #[arg(long, default_value_t = 15)]
        seconds: u64,
    },
    Responder {
        /// Where DHCP arrives (the address the driver sends to).
        #[arg(long)]
        listen: SocketAddr,
        /// Option 54 in every reply.
        #[arg(long, default_value = "127.0.0.1")]
        server_id: Ipv4Addr,
        /// Replies go to giaddr at this port.
        #[arg(long, default_value_t = 67)]
        relay_port: u16,
    },
    Failover {
        /// Instance A: the probe's clients get their leases here, then it
        /// is killed.
        #[arg(long)]
        dhcp_a: SocketAddr,
        /// Instance B: the survivor the clients rebind through.
        #[arg(long)]
        dhcp_b: SocketAddr,
        /// The probe's relay address (a relay address of both instances).
        #[arg(long, default_value = "127.0.0.40")]
        giaddr: Ipv4Addr,
        #[arg(long, default_value_t = 16)]
        clients: u32,
        /// The first client's number (distinct rounds use distinct clients).
        #[arg(long, default_value_t = 0x8_0000)]
        first_client: u32,
        /// A's process id: sent SIGKILL after the leases.
        #[arg(long)]
        kill: i32,
        /// How often each unanswered client's REBINDING REQUEST is sent again (ms).
        #[arg(long, default_value_t = 10)]
        poll_ms: u64,
        /// Give up on unanswered clients after this long (s).
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// A year of churn into a store's lease history (bench/history.sh).
    HistoryPrefill {
        #[arg(long)]
        db: std::path::PathBuf,
        #[arg(long, default_value_t = 100_000)]
        clients: u32,
        /// Rounds of lease + release by every client.
        #[arg(long, default_value_t = 20)]
        rounds: u32,
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
    /// Time lease history queries on a store `history-prefill` wrote.
    HistoryQuery {
        #[arg(long)]
        db: std::path::PathBuf,
        #[arg(long, default_value_t = 100_000)]
        clients: u32,
        #[arg(long, default_value_t = 20)]
        rounds: u32,
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Queries of each kind.
        #[arg(long, default_value_t = 2000)]
        queries: u32,
    },
    Prefill {
        /// The server's store (created if missing).
        #[arg(long)]
        db: std::path::PathBuf,
        #[arg(long, default_value_t = 250_000)]
        count: u32,
        /// Bindings go to consecutive addresses from the prefix's network + 10.
        #[arg(long, default_value = "10.64.0.0/10")]
        prefix: String,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    match cli.cmd {
        Cmd::ActiveLatency {
            dhcp,
            tcp,
            giaddr,
            watchers,
            rate,
            seconds,
            first_client,
            tls,
        } => {
            let p = active_latency::Params {
                dhcp,
                tcp,
                giaddr,
                watchers,
                rate,
                seconds,
                first_client,
            };
            active_latency::run(&rt, &p, tls.client()?)?;
        }
        Cmd::SseClients {
            web,
            token,
            count,
            seconds,
        } => {
            let until = Instant::now() + Duration::from_secs(seconds);
            let tasks: Vec<_> = (0..count)
                .map(|_| rt.spawn(sse_clients::follow(web, token.clone(), until)))
                .collect();
            let (mut bytes, mut events) = (0, 0);
            for t in tasks {
                let r = rt.block_on(t)??;
                bytes += r.bytes;
                events += r.change_events;
            }
            println!("sse-clients count={count} change_events={events} bytes={bytes}");
        }
        Cmd::Watchers {
            tcp,
            count,
            seconds,
            tls,
        } => {
            let tls = tls.client()?;
            let until = Instant::now() + Duration::from_secs(seconds);
            let tasks: Vec<_> = (0..count)
                .map(|_| rt.spawn(active_latency::watch(tcp, tls.clone(), None, until)))
                .collect();
            let mut updates = 0;
            for t in tasks {
                updates += rt.block_on(t)??;
            }
            println!("watchers count={count} updates={updates}");
        }
        Cmd::Catchup { tcp, since, tls } => {
            let tls = tls.client()?;
            rt.block_on(async move {
                let s = open(tcp, tls.as_deref()).await?;
                let mut conn = FramedConn::new(s);
                let t0 = Instant::now();
                conn.send(&active_query(1, Some(since), prl::BINDINGS))
                    .await?;
                let mut n = 0u64;
                loop {
                    match classify(&conn.recv(Duration::from_secs(60)).await?) {
                        ActiveEvent::Update(_) => n += 1,
                        ActiveEvent::Status {
                            code: StatusCode::CatchUpComplete,
                            ..
                        } => break,
                        ActiveEvent::Status { code, .. } => anyhow::bail!("status {}", code.name()),
                        _ => {}
                    }
                }
                let secs = t0.elapsed().as_secs_f64();
                println!(
                    "catchup updates={n} seconds={secs:.3} rate={:.0}/s",
                    n as f64 / secs
                );
                anyhow::Ok(())
            })?;
        }
        Cmd::MirrorLag {
            dhcp,
            giaddr,
            rate,
            seconds,
            first_client,
            events,
        } => mirror_lag::run(dhcp, giaddr, rate, seconds, first_client, &events)?,
        Cmd::HttpLoad {
            http,
            token,
            rate,
            scrape_ms,
            seconds,
        } => http_load::run(&http_load::Params {
            http,
            token,
            rate,
            scrape_ms,
            seconds,
        })?,
        Cmd::Saturate {
            dhcp,
            giaddr,
            window,
            clients,
            first_client,
            seconds,
            rate,
            release_percent,
        } => saturate::run(&saturate::Params {
            dhcp,
            giaddr,
            window,
            clients,
            first_client,
            seconds,
            rate,
            release_percent,
        })?,
        Cmd::Failover {
            dhcp_a,
            dhcp_b,
            giaddr,
            clients,
            first_client,
            kill,
            poll_ms,
            timeout,
        } => {
            let ok = failover::run(&failover::Params {
                dhcp_a,
                dhcp_b,
                giaddr,
                clients,
                first_client,
                kill,
                poll: Duration::from_millis(poll_ms.max(1)),
                timeout: Duration::from_secs(timeout),
            })?;
            if !ok {
                std::process::exit(1);
            }
        }
        Cmd::Prefill { db, count, prefix } => prefill::run(&db, count, &prefix)?,
        Cmd::HistoryPrefill {
            db,
            clients,
            rounds,
            days,
        } => history::prefill(&db, clients, rounds, days)?,
        Cmd::HistoryQuery {
            db,
            clients,
            rounds,
            days,
            queries,
        } => history::query(&db, clients, rounds, days, queries)?,
        Cmd::Responder {
            listen,
            server_id,
            relay_port,
        } => responder::run(&responder::Params {
            listen,
            server_id,
            relay_port,
        })?,
    }
    Ok(())
}
