//! `http-load`: an operator's steady use of the HTTP endpoint
//! (bench/http.sh): a `/metrics` scrape every SCRAPE_MS and `lease4-get`
//! commands paced at RATE a second, each on its own keep-alive connection,
//! for SECONDS. Prints how many of each succeeded, failed, and the slowest
//! answer. Plain HTTP/1.1 on std sockets: two requests kinds, no client
//! crate needed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

pub struct Params {
    pub http: SocketAddr,
    pub token: Option<String>,
    pub rate: u32,
    pub scrape_ms: u64,
    pub seconds: u64,
}

/// One keep-alive connection; reconnects after an error.
struct Conn {
    addr: SocketAddr,
    stream: Option<BufReader<TcpStream>>,
}

impl Conn {
    fn request(&mut self, raw: &[u8]) -> anyhow::Result<(u16, usize)> {
        if self.stream.is_none() {
            let s = TcpStream::connect(self.addr)?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            self.stream = Some(BufReader::new(s));
        }
        let r = self.exchange(raw);
        if r.is_err() {
            self.stream = None;
        }
        r
    }

    fn exchange(&mut self, raw: &[u8]) -> anyhow::Result<(u16, usize)> {
        let s = self.stream.as_mut().expect("connected");
        s.get_mut().write_all(raw)?;
        let mut line = String::new();
        s.read_line(&mut line)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("not an HTTP answer: {line:?}"))?;
        let mut length = 0usize;
        loop {
            line.clear();
            s.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse()?;
                }
            }
        }
        let mut body = vec![0u8; length];
        s.read_exact(&mut body)?;
        Ok((status, length))
    }
}

fn request(method: &str, path: &str, token: &Option<String>, body: &str) -> Vec<u8> {
    let auth = token
        .as_ref()
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    format!(
        "{method} {path} HTTP/1.1\r\nHost: leaseline\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[derive(Default)]
struct Tally {
    ok: u64,
    failed: u64,
    slowest: Duration,
    bytes: usize,
}

impl Tally {
    fn add(&mut self, took: Duration, r: anyhow::Result<(u16, usize)>) {
        self.slowest = self.slowest.max(took);
        match r {
            Ok((200, n)) => {
                self.ok += 1;
                self.bytes += n;
            }
            _ => self.failed += 1,
        }
    }
}

pub fn run(p: &Params) -> anyhow::Result<()> {
    let scrape_req = request("GET", "/metrics", &p.token, "");
    let mut scraper = Conn {
        addr: p.http,
        stream: None,
    };
    let mut getter = Conn {
        addr: p.http,
        stream: None,
    };
    let (mut scrapes, mut gets) = (Tally::default(), Tally::default());
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs(p.seconds);
    let scrape_every = Duration::from_millis(p.scrape_ms.max(1));
    let mut next_scrape = t0;
    let mut started = 0u64;
    while Instant::now() < end {
        let now = Instant::now();
        if now >= next_scrape {
            let r = scraper.request(&scrape_req);
            scrapes.add(now.elapsed(), r);
            next_scrape += scrape_every;
            continue;
        }
        // lease4-get due by now: RATE a second since the start.
        let due = (now.duration_since(t0).as_secs_f64() * f64::from(p.rate)) as u64;
        if started < due {
            // Addresses of the benchmark's pool in turn: leased or not, each
            // a store read and an answer.
            let n = started % 60_000;
            let ip = format!("10.0.{}.{}", 10 + n / 250, 1 + n % 250);
            let body = format!(r#"{{"command":"lease4-get","arguments":{{"ip-address":"{ip}"}}}}"#);
            let t = Instant::now();
            // Found (200, result 0) and not found (200, result 3) both count.
            let r = getter.request(&request("POST", "/", &p.token, &body));
            gets.add(t.elapsed(), r);
            started += 1;
            continue;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "http-load seconds={secs:.1} scrapes_ok={} scrapes_failed={} scrape_bytes={} scrape_max_ms={:.1} \
         gets_ok={} gets_failed={} get_rate={:.0}/s get_max_ms={:.1}",
        scrapes.ok,
        scrapes.failed,
        scrapes.bytes / scrapes.ok.max(1) as usize,
        scrapes.slowest.as_secs_f64() * 1e3,
        gets.ok,
        gets.failed,
        gets.ok as f64 / secs,
        gets.slowest.as_secs_f64() * 1e3,
    );
    Ok(())
}
