#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! The live web view (issue 20), in a real headless Chromium (Debian's
//! `chromium`, driven through `chromedriver` over WebDriver by fantoccini)
//! against a running server that leases addresses to relayed clients.
//!
//! 1. Signing in: the page asks for the token, then shows the pools with
//!    no console error (the browser's own log, `goog:loggingPrefs`).
//! 2. A DORA made by the test shows in the live table within a second
//!    (the row is awaited), and the pool's bar moves from 0 to 1 assigned.
//! 3. A search by MAC finds the client and shows its current binding.
//! 4. A screenshot goes to target/ui-screenshots/ (a CI artifact).
//! 5. With the system's dark theme (emulated), the page turns dark.
//!
//! On PostgreSQL, with two servers on one database: the view of one shows
//! a lease made through the other, live, and its timeline.
//!
//! And, without a browser: the session cookie opens `/ui/…` only, and
//! lets the page run read-only commands only.
//!
//! Relay address (giaddr): `loopback_relay` (test-support).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use leaseline_test_support::loopback_relay;
use leaseline_test_support::{
    free_tcp_port, free_udp_port, mac_string, pg_database, ChromeDriver, RelayClient, ServerConfig,
    ServerProcess, Subnet, TestClient,
};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_leaseline");
static RELAY: LazyLock<Ipv4Addr> = LazyLock::new(loopback_relay);
const TOKEN: &str = "web-view-test-token-0123456789";
/// How long the page may take to show a change (issue 20: "within a second").
const LIVE: Duration = Duration::from_secs(1);
/// Page loads and searches on a machine shared with builds.
const PATIENCE: Duration = Duration::from_secs(15);

struct Server {
    process: ServerProcess,
    relay: RelayClient,
    web: SocketAddr,
}

/// A server with `[http]` (token) and one pool of 191 addresses.
fn start_server() -> Server {
    start_server_on("")
}

/// [`start_server`] with these `[store]` lines (empty: the SQLite default).
fn start_server_on(store: &str) -> Server {
    let dhcp = SocketAddr::from((Ipv4Addr::LOCALHOST, free_udp_port()));
    let rport = free_udp_port();
    let web = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()));
    let cfg = ServerConfig::new(dhcp)
        .relay_port(rport)
        .subnet(Subnet::new(
            "10.0.0.0/24",
            "10.0.0.10-10.0.0.200",
            &[*RELAY],
        ))
        .store(store)
        .extra(&format!(
            "\n[http]\nlisten = \"{web}\"\ntoken = \"{TOKEN}\"\n"
        ))
        .build();
    let process = ServerProcess::spawn(BIN, &cfg);
    let relay = RelayClient::bind_port(*RELAY, rport, dhcp).expect("bind relay");
    Server {
        process,
        relay,
        web,
    }
}

/// A POST to one of chromedriver's own endpoints of the session:
/// `se/log` (Chromium's console messages so far; the session asks for them
/// with `goog:loggingPrefs`) or `goog/cdp/execute` (a Chrome DevTools
/// command).
#[derive(Debug)]
struct ChromedriverPost {
    path: &'static str,
    body: Value,
}

impl ChromedriverPost {
    fn browser_log() -> Self {
        ChromedriverPost {
            path: "se/log",
            body: json!({"type": "browser"}),
        }
    }

    fn dev_tools(command: Value) -> Self {
        ChromedriverPost {
            path: "goog/cdp/execute",
            body: command,
        }
    }
}

impl WebDriverCompatibleCommand for ChromedriverPost {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/{}",
            session_id.unwrap_or_default(),
            self.path
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.body.to_string()))
    }
}

/// The page's background colour (computed).
async fn background(c: &Client) -> String {
    c.execute(
        "return getComputedStyle(document.body).backgroundColor;",
        vec![],
    )
    .await
    .expect("read the background colour")
    .as_str()
    .expect("a colour")
    .to_owned()
}

/// A Chromium session through `driver`.
async fn browser(driver: &ChromeDriver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"binary": driver.chromium(), "args": driver.chromium_args()}),
    );
    caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url())
        .await
        .expect("a chromium session through chromedriver")
}

/// Open `/ui`, sign in with the token, and wait until the page shows the
/// pools and says it is live.
async fn signed_in(c: &Client, web: SocketAddr) {
    c.goto(&format!("http://{web}/ui")).await.expect("open /ui");
    let token = c
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css("#token"))
        .await
        .expect("the sign-in form");
    token.send_keys(TOKEN).await.expect("type the token");
    c.find(Locator::Css("form button[type=submit]"))
        .await
        .expect("sign-in button")
        .click()
        .await
        .expect("sign in");
    c.wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css("#status.live"))
        .await
        .expect("the page connects to its event stream");
    c.wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css("#pools .pool"))
        .await
        .expect("the page shows the pools");
}

/// The pool element's `data-assigned`.
async fn assigned(c: &Client) -> u64 {
    c.find(Locator::Css(r#"div[id="pool-1-10.0.0.10"]"#))
        .await
        .expect("the pool's bar")
        .attr("data-assigned")
        .await
        .expect("read data-assigned")
        .and_then(|v| v.parse().ok())
        .expect("data-assigned is a number")
}

/// Wait (at most `within`) until the pool shows `n` assigned addresses.
async fn wait_assigned(c: &Client, n: u64, within: Duration) {
    let bar = format!(r#"div[id="pool-1-10.0.0.10"][data-assigned="{n}"]"#);
    if let Err(e) = c
        .wait()
        .at_most(within)
        .for_element(Locator::Css(&bar))
        .await
    {
        panic!(
            "the pool bar did not reach {n} assigned within {within:?} (shows {}): {e}",
            assigned(c).await
        );
    }
}

/// Search by `kind` for `value` and wait for the current binding of `ip`.
/// The timeline a search shows for a client that held an address, released
/// it and got `again`: at least the two holdings, the last one open ("now").
async fn assert_held_again(c: &Client, again: Ipv4Addr) {
    c.wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css("#timeline li"))
        .await
        .expect("a timeline");
    let items = c
        .find_all(Locator::Css("#timeline li"))
        .await
        .expect("timeline entries");
    assert!(items.len() >= 2, "{} timeline entries", items.len());
    let last = items.last().expect("an entry").text().await.expect("text");
    assert!(last.contains("now"), "{last}");
    assert!(last.contains(&again.to_string()), "{last}");
}

/// The text of `ip`'s row in the live table, once it shows (within [`LIVE`]).
async fn live_row(c: &Client, ip: Ipv4Addr) -> String {
    let row = c
        .wait()
        .at_most(LIVE)
        .for_element(Locator::Css(&format!(
            r#"#changes tbody tr[data-ip="{ip}"]"#
        )))
        .await
        .unwrap_or_else(|e| panic!("{ip} not in the live table within {LIVE:?}: {e}"));
    row.text().await.expect("row text")
}

async fn search(c: &Client, kind: &str, value: &str, ip: Ipv4Addr) -> String {
    c.find(Locator::Css("#search-kind"))
        .await
        .expect("search kind")
        .select_by_value(kind)
        .await
        .expect("choose the kind");
    let input = c
        .find(Locator::Css("#search-value"))
        .await
        .expect("search box");
    input.clear().await.expect("clear the search box");
    input.send_keys(value).await.expect("type");
    c.find(Locator::Css("#search button[type=submit]"))
        .await
        .expect("search button")
        .click()
        .await
        .expect("search");
    c.wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css(&format!(
            r#"#search-result dl.binding[data-ip="{ip}"]"#
        )))
        .await
        .unwrap_or_else(|e| panic!("search {kind}={value} shows no binding of {ip}: {e}"))
        .text()
        .await
        .expect("binding text")
}

/// Console messages at level SEVERE (errors) since the last call.
async fn console_errors(c: &Client) -> Vec<Value> {
    let log = c
        .issue_cmd(ChromedriverPost::browser_log())
        .await
        .expect("read the browser log");
    log.as_array()
        .expect("a list of log entries")
        .iter()
        .filter(|e| e["level"] == "SEVERE")
        .cloned()
        .collect()
}

fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("ui-screenshots");
    std::fs::create_dir_all(&dir).expect("create target/ui-screenshots");
    dir
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn live_view_shows_a_new_lease_and_finds_its_client() {
    let mut server = start_server();
    let driver = ChromeDriver::start();
    let client = TestClient::new(0x0121_0001).with_client_id(&[0xff, 0x01, 0x21, 0, 1]);
    let mac = mac_string(&client.chaddr);
    runtime().block_on(async {
        let c = browser(&driver).await;
        // 1. Sign in; the page loads without a console error.
        signed_in(&c, server.web).await;
        assert_eq!(assigned(&c).await, 0, "a fresh pool");
        let errors = console_errors(&c).await;
        assert!(errors.is_empty(), "console errors on load: {errors:?}");

        // 2. A DORA: its row within a second, and the bar moves.
        let lease = server.relay.dora(&client).expect("DORA");
        let text = live_row(&c, lease.ip).await;
        assert!(text.contains("active"), "{text}");
        assert!(text.contains(&mac), "{text}");
        wait_assigned(&c, 1, LIVE).await;

        // 3. Search by MAC and by address: the current binding.
        let found = search(&c, "hw-address", &mac, lease.ip).await;
        assert!(found.contains(&lease.ip.to_string()), "{found}");
        assert!(found.contains("active"), "{found}");
        assert!(found.contains("ff:01:21:00:01"), "client id: {found}");
        let found = search(&c, "ip-address", &lease.ip.to_string(), lease.ip).await;
        assert!(found.contains(&mac), "{found}");

        // 4. The page as it is now, for CI's artifacts.
        let png = c.screenshot().await.expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        let path = screenshot_dir().join("live-view.png");
        std::fs::write(&path, png).expect("save the screenshot");
        eprintln!("screenshot: {}", path.display());

        // 5. Dark mode follows the system's preference.
        assert_eq!(background(&c).await, "rgb(255, 255, 255)");
        c.issue_cmd(ChromedriverPost::dev_tools(json!({
            "cmd": "Emulation.setEmulatedMedia",
            "params": {"features": [{"name": "prefers-color-scheme", "value": "dark"}]},
        })))
        .await
        .expect("emulate a dark system theme");
        assert_eq!(background(&c).await, "rgb(15, 23, 42)");
        let png = c.screenshot().await.expect("screenshot");
        std::fs::write(screenshot_dir().join("live-view-dark.png"), png)
            .expect("save the dark screenshot");

        let errors = console_errors(&c).await;
        assert!(errors.is_empty(), "console errors: {errors:?}");
        c.close().await.expect("close the browser");
    });
    server.process.assert_running();
}

/// Search → timeline: needs `lease4-history` (the history branch).
#[test]
fn search_shows_the_clients_timeline() {
    let mut server = start_server();
    let driver = ChromeDriver::start();
    let client = TestClient::new(0x0121_0002);
    let mac = mac_string(&client.chaddr);
    runtime().block_on(async {
        let c = browser(&driver).await;
        signed_in(&c, server.web).await;
        let first = server.relay.dora(&client).expect("DORA");
        server
            .relay
            .release(&client, first.ip, first.server_id)
            .expect("RELEASE");
        let again = server.relay.dora(&client).expect("DORA again");
        search(&c, "hw-address", &mac, again.ip).await;
        assert_held_again(&c, again.ip).await;
        let errors = console_errors(&c).await;
        assert!(errors.is_empty(), "console errors: {errors:?}");
        c.close().await.expect("close the browser");
    });
    server.process.assert_running();
}

/// Issue 20 on PostgreSQL: two servers on one database. The browser on A
/// shows, live, a lease made through B (the feed carries every instance's
/// changes), A's pool bar counts it, and a search on A shows the client's
/// timeline of leases made through B (the history all instances share).
#[test]
fn on_postgres_one_instances_view_shows_a_lease_made_through_another() {
    let db = pg_database();
    let store = format!("backend = \"postgres\"\nurl = \"{}\"\n", db.url);
    let mut a = start_server_on(&store);
    let mut b = start_server_on(&store);
    let driver = ChromeDriver::start();
    let client = TestClient::new(0x0121_0003);
    let mac = mac_string(&client.chaddr);
    runtime().block_on(async {
        let c = browser(&driver).await;
        signed_in(&c, a.web).await;
        let before = assigned(&c).await;
        let lease = b.relay.dora(&client).expect("DORA through B");
        let text = live_row(&c, lease.ip).await;
        assert!(text.contains("active") && text.contains(&mac), "{text}");
        wait_assigned(&c, before + 1, LIVE).await;
        // Released and leased again through B: A's timeline shows both.
        b.relay
            .release(&client, lease.ip, lease.server_id)
            .expect("RELEASE through B");
        let again = b.relay.dora(&client).expect("DORA again through B");
        search(&c, "hw-address", &mac, again.ip).await;
        assert_held_again(&c, again.ip).await;
        let errors = console_errors(&c).await;
        assert!(errors.is_empty(), "console errors: {errors:?}");
        c.close().await.expect("close the browser");
    });
    a.process.assert_running();
    b.process.assert_running();
}

/// One HTTP/1.1 request; (status, headers, body).
fn http(web: SocketAddr, request: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(web).expect("connect");
    s.set_read_timeout(Some(PATIENCE)).expect("timeout");
    s.write_all(request.as_bytes()).expect("send");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text}"));
    (status, head.to_owned(), body.to_owned())
}

fn post(
    web: SocketAddr,
    path: &str,
    extra: &str,
    ctype: &str,
    body: &str,
) -> (u16, String, String) {
    http(
        web,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: leaseline\r\nConnection: close\r\n{extra}\
             Content-Type: {ctype}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

#[test]
fn the_session_cookie_opens_the_view_and_read_only_commands_only() {
    let server = start_server();
    let web = server.web;
    let get = |path: &str, extra: &str| {
        http(
            web,
            &format!("GET {path} HTTP/1.1\r\nHost: leaseline\r\nConnection: close\r\n{extra}\r\n"),
        )
    };
    // Not signed in: the form, and nothing else.
    let (status, _, body) = get("/ui", "");
    assert_eq!(status, 200);
    assert!(body.contains(r#"name="token""#), "{body}");
    assert_eq!(get("/ui/events", "").0, 401);
    let status_get = r#"{"command":"status-get"}"#;
    assert_eq!(
        post(web, "/ui/command", "", "application/json", status_get).0,
        401
    );
    // The assets need no session (no secret in them), and come with the
    // page's policy.
    let (status, head, _) = get("/ui/app.js", "");
    assert_eq!(status, 200);
    assert!(
        head.contains("content-security-policy: default-src 'none'"),
        "{head}"
    );

    // A wrong token: the form again, with 401 and a message.
    let (status, head, body) = post(
        web,
        "/ui/login",
        "",
        "application/x-www-form-urlencoded",
        "token=wrong-token-wrong-token",
    );
    assert_eq!(status, 401);
    assert!(!head.to_ascii_lowercase().contains("set-cookie"), "{head}");
    assert!(body.contains("login-error"), "{body}");

    // The token: a cookie the page's scripts cannot read, never sent by
    // another site, for /ui only.
    let (status, head, _) = post(
        web,
        "/ui/login",
        "",
        "application/x-www-form-urlencoded",
        &format!("token={TOKEN}"),
    );
    assert_eq!(status, 303, "{head}");
    let set_cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .unwrap_or_else(|| panic!("no cookie: {head}"));
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(set_cookie.contains(attr), "{set_cookie}");
    }
    assert!(
        !set_cookie.contains(TOKEN),
        "the token itself is in the cookie"
    );
    let cookie = format!(
        "Cookie: {}\r\n",
        set_cookie.split(';').next().expect("name=value")
    );

    // Signed in: the view, and read-only commands.
    let (status, _, body) = get("/ui", &cookie);
    assert_eq!(status, 200);
    assert!(body.contains(r#"id="changes""#), "{body}");
    let (status, _, body) = post(web, "/ui/command", &cookie, "application/json", status_get);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("json")["result"],
        0
    );
    // Not a command that changes anything, nor a form post.
    let del = r#"{"command":"lease4-del","arguments":{"ip-address":"10.0.0.10"}}"#;
    let (status, _, body) = post(web, "/ui/command", &cookie, "application/json", del);
    assert_eq!(status, 403, "{body}");
    let (status, _, _) = post(web, "/ui/command", &cookie, "text/plain", status_get);
    assert_eq!(status, 415);
    // And the control API still wants the bearer token.
    let (status, _, _) = post(web, "/", &cookie, "application/json", status_get);
    assert_eq!(status, 401);
    // The bearer token opens the view's endpoints too (scripts).
    let bearer = format!("Authorization: Bearer {TOKEN}\r\n");
    let (status, _, _) = post(web, "/ui/command", &bearer, "application/json", status_get);
    assert_eq!(status, 200);
    // Signing out clears the cookie.
    let (status, head, _) = post(
        web,
        "/ui/logout",
        &cookie,
        "application/x-www-form-urlencoded",
        "",
    );
    assert_eq!(status, 303);
    assert!(head.contains("Max-Age=0"), "{head}");
}
