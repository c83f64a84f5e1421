//! The control API: Kea's command envelope, `{"command": NAME,
//! "arguments": {...}}` POSTed to `/`, answered `{"result": N, "text":
//! ..., "arguments": {...}}` with Kea's result codes, so that tooling habits
//! carry over (docs/operations.md lists the commands). A `service` member
//! (Kea's Control Agent) is accepted and ignored.

use std::net::Ipv4Addr;
use std::sync::Arc;

use axum::http::StatusCode;
use leaseline_proto::Binding;
use leaseline_store::StoreError;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::lease_json::{lease, subnet_id};
use super::HttpContext;
use crate::clock::unix_now;
use leaseline_proto::text::{parse_hex, parse_mac};

mod history;

/// Kea's result codes.
const SUCCESS: u8 = 0;
const ERROR: u8 = 1;
const UNSUPPORTED: u8 = 2;
const EMPTY: u8 = 3;

/// Every command this server answers.
pub(super) const COMMANDS: &[&str] = &[
    "config-get",
    "config-reload",
    "config-test",
    "dhcp-disable",
    "dhcp-enable",
    "lease4-del",
    "lease4-get",
    "lease4-get-by-client-id",
    "lease4-get-by-hw-address",
    "lease4-get-page",
    "lease4-history",
    "leases-reclaim",
    "list-commands",
    "statistic-get-all",
    "status-get",
    "version-get",
];

/// Most leases one `lease4-get-page` returns.
const MAX_PAGE: u64 = 1000;

#[derive(Deserialize)]
struct Request {
    command: String,
    #[serde(default)]
    arguments: Option<Map<String, Value>>,
}

/// One answer.
struct Answer {
    result: u8,
    text: String,
    arguments: Option<Value>,
}

impl Answer {
    fn ok(text: impl Into<String>, arguments: Value) -> Self {
        Answer {
            result: SUCCESS,
            text: text.into(),
            arguments: Some(arguments),
        }
    }
    fn error(text: impl Into<String>) -> Self {
        Answer {
            result: ERROR,
            text: text.into(),
            arguments: None,
        }
    }
    fn empty(text: impl Into<String>) -> Self {
        Answer {
            result: EMPTY,
            text: text.into(),
            arguments: None,
        }
    }
    fn json(self) -> Value {
        let mut v = json!({"result": self.result, "text": self.text});
        if let Some(a) = self.arguments {
            v["arguments"] = a;
        }
        v
    }
}

/// Parse and run one request. A body that is not a command is HTTP 400
/// with a result-1 answer saying why; a command's own failure is HTTP 200
/// with its result code, as Kea does.
pub(super) async fn handle(ctx: &Arc<HttpContext>, body: &[u8]) -> (StatusCode, Value) {
    let req: Request = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Answer::error(format!("not a command: {e}")).json(),
            )
        }
    };
    let args = req.arguments.unwrap_or_default();
    let answer = match run(ctx, &req.command, &args).await {
        Ok(a) | Err(a) => a,
    };
    (StatusCode::OK, answer.json())
}

async fn run(
    ctx: &Arc<HttpContext>,
    command: &str,
    args: &Map<String, Value>,
) -> Result<Answer, Answer> {
    let shared = &ctx.shared;
    Ok(match command {
        "list-commands" => Answer::ok(format!("{} commands", COMMANDS.len()), json!(COMMANDS)),
        "version-get" => Answer::ok(
            format!("leaseline {}", env!("CARGO_PKG_VERSION")),
            json!({"extended": format!("leaseline {} (DHCPv4; RFC 4388, 6148, 6926, 7724)", env!("CARGO_PKG_VERSION"))}),
        ),
        "status-get" => {
            let now = unix_now();
            let (bindings, store) = {
                let engine = shared.engine.lock();
                let n: usize = engine.count_by_state().values().sum();
                let store = match engine.config().store_backend {
                    crate::config::StoreBackend::Sqlite => "sqlite",
                    crate::config::StoreBackend::Postgres { .. } => "postgresql",
                };
                (n, store)
            };
            Answer::ok(
                "server is running",
                json!({
                    "pid": std::process::id(),
                    "uptime": now.saturating_sub(ctx.started),
                    "store": store,
                    "bindings": bindings,
                    "dhcp-state": {
                        "disabled": shared.dhcp_switch.is_off(now),
                        "remaining": shared.dhcp_switch.remaining(now),
                    },
                }),
            )
        }
        "config-get" => config_get(ctx)?,
        "config-test" => config_test(ctx, args)?,
        "config-reload" => {
            let r = crate::reload::reload(shared, ctx.config_path.as_deref())
                .map_err(|e| Answer::error(format!("configuration not reloaded: {e}")))?;
            Answer::ok(
                if r.need_restart.is_empty() {
                    "Configuration reloaded."
                } else {
                    "Configuration reloaded; some changes take effect at the next restart."
                },
                json!({"need-restart": r.need_restart}),
            )
        }
        "dhcp-disable" => {
            let period = match args.get("max-period") {
                None => None,
                Some(v) => Some(
                    v.as_u64()
                        .and_then(|p| u32::try_from(p).ok())
                        .filter(|&p| p > 0)
                        .ok_or_else(|| {
                            Answer::error("max-period: a number of seconds, at least 1")
                        })?,
                ),
            };
            shared.dhcp_switch.disable(period, unix_now());
            tracing::warn!(max_period = ?period, event = "dhcp_disabled", "DHCP disabled by the control API");
            Answer::ok("DHCP service disabled", json!({}))
        }
        "dhcp-enable" => {
            shared.dhcp_switch.enable();
            tracing::info!(event = "dhcp_enabled", "DHCP enabled by the control API");
            Answer::ok("DHCP service enabled", json!({}))
        }
        "leases-reclaim" => {
            let n = crate::reaper::reclaim(&shared.engine, shared.store.as_ref(), unix_now())
                .await
                .map_err(|e| Answer::error(format!("reclaim failed: {e}")))?;
            Answer::ok(format!("{n} bindings changed state"), json!({"changed": n}))
        }
        "lease4-get" => lease4_get(ctx, args).await?,
        "lease4-del" => lease4_del(ctx, args).await?,
        "lease4-get-by-hw-address" => {
            let mac = mac_arg(args, "hw-address")?;
            many(ctx, move |s| s.by_chaddr(1, &mac)).await?
        }
        "lease4-get-by-client-id" => {
            let id = hex_arg(args, "client-id")?;
            many(ctx, move |s| s.by_client_id(&id)).await?
        }
        "lease4-get-page" => lease4_get_page(ctx, args).await?,
        "lease4-history" => {
            let q = history::query(args)?;
            let store = Arc::clone(&ctx.shared.store);
            let page = tokio::task::spawn_blocking(move || store.history(&q))
                .await
                .map_err(|e| Answer::error(format!("store read: {e}")))?;
            history::answer(page)?
        }
        "statistic-get-all" => statistics(ctx),
        other => Answer {
            result: UNSUPPORTED,
            text: format!("'{other}' command not supported."),
            arguments: None,
        },
    })
}

fn str_arg<'a>(args: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, Answer> {
    match args.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Answer::error(format!("{name}: a string"))),
    }
}

fn mac_arg(args: &Map<String, Value>, name: &str) -> Result<Vec<u8>, Answer> {
    let s = str_arg(args, name)?.ok_or_else(|| Answer::error(format!("{name} is required")))?;
    parse_mac(s).map_err(|e| Answer::error(format!("{name}: {e}")))
}

fn hex_arg(args: &Map<String, Value>, name: &str) -> Result<Vec<u8>, Answer> {
    let s = str_arg(args, name)?.ok_or_else(|| Answer::error(format!("{name} is required")))?;
    parse_hex(s).map_err(|e| Answer::error(format!("{name}: {e}")))
}

fn ip_arg(s: &str, name: &str) -> Result<Ipv4Addr, Answer> {
    s.parse()
        .map_err(|_| Answer::error(format!("{name}: `{s}` is not an IPv4 address")))
}

/// A store read, off the async threads (the store's reads block).
async fn read<T: Send + 'static>(
    ctx: &Arc<HttpContext>,
    f: impl FnOnce(&dyn leaseline_store::LeaseStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Answer> {
    let store = Arc::clone(&ctx.shared.store);
    tokio::task::spawn_blocking(move || f(&*store))
        .await
        .map_err(|e| Answer::error(format!("store read: {e}")))?
        .map_err(|e| Answer::error(format!("store read: {e}")))
}

/// The leases of a client (by MAC or client id): `{"leases": [...], "count": n}`.
async fn many(
    ctx: &Arc<HttpContext>,
    f: impl FnOnce(&dyn leaseline_store::LeaseStore) -> Result<Vec<Binding>, StoreError>
        + Send
        + 'static,
) -> Result<Answer, Answer> {
    let found = read(ctx, f).await?;
    Ok(leases_answer(ctx, &found))
}

fn leases_answer(ctx: &HttpContext, found: &[Binding]) -> Answer {
    if found.is_empty() {
        return Answer::empty("0 IPv4 lease(s) found.");
    }
    let engine = ctx.shared.engine.lock();
    let cfg = engine.config();
    let leases: Vec<Value> = found.iter().map(|b| lease(cfg, b)).collect();
    Answer::ok(
        format!("{} IPv4 lease(s) found.", leases.len()),
        json!({"leases": leases, "count": leases.len()}),
    )
}

/// By `ip-address`, or by `hw-address` / `client-id` (also Kea's
/// `identifier-type` + `identifier`, with an optional `subnet-id`).
async fn lease4_get(ctx: &Arc<HttpContext>, args: &Map<String, Value>) -> Result<Answer, Answer> {
    if let Some(ip) = str_arg(args, "ip-address")? {
        let ip = ip_arg(ip, "ip-address")?;
        let engine = ctx.shared.engine.lock();
        return Ok(match engine.binding(ip) {
            // A free address has no lease (as in Kea after lease4-del).
            Some(b) if b.state != leaseline_proto::DhcpState::Available => {
                Answer::ok("IPv4 lease found.", lease(engine.config(), b))
            }
            _ => Answer::empty("Lease not found."),
        });
    }
    let (kind, value) =
        match (
            str_arg(args, "identifier-type")?,
            str_arg(args, "identifier")?,
        ) {
            (Some(k), Some(v)) => (k.to_owned(), v.to_owned()),
            _ => match (str_arg(args, "hw-address")?, str_arg(args, "client-id")?) {
                (Some(m), None) => ("hw-address".to_owned(), m.to_owned()),
                (None, Some(c)) => ("client-id".to_owned(), c.to_owned()),
                _ => return Err(Answer::error(
                    "give ip-address, hw-address or client-id (or identifier-type and identifier)",
                )),
            },
        };
    let subnet = args.get("subnet-id").and_then(Value::as_u64);
    let found = match kind.as_str() {
        "hw-address" => {
            let mac = parse_mac(&value).map_err(|e| Answer::error(format!("hw-address: {e}")))?;
            read(ctx, move |s| s.by_chaddr(1, &mac)).await?
        }
        "client-id" => {
            let id = parse_hex(&value).map_err(|e| Answer::error(format!("client-id: {e}")))?;
            read(ctx, move |s| s.by_client_id(&id)).await?
        }
        other => {
            return Err(Answer::error(format!(
                "identifier-type `{other}`: hw-address or client-id"
            )))
        }
    };
    let engine = ctx.shared.engine.lock();
    let cfg = engine.config();
    // The client's current lease: in the subnet asked for, the latest.
    let best = found
        .iter()
        .filter(|b| subnet.is_none_or(|id| subnet_id(cfg, b.ip) as u64 == id))
        .max_by_key(|b| (b.state == leaseline_proto::DhcpState::Active, b.cltt));
    Ok(match best {
        Some(b) => Answer::ok("IPv4 lease found.", lease(cfg, b)),
        None => Answer::empty("Lease not found."),
    })
}

/// `{"ip-address": A}`: the address is freed, a binding change like any
/// other: committed (the answer waits for it), on the change feed, seen by
/// Active Leasequery requestors, on every instance of a shared database.
async fn lease4_del(ctx: &Arc<HttpContext>, args: &Map<String, Value>) -> Result<Answer, Answer> {
    let ip = str_arg(args, "ip-address")?.ok_or_else(|| Answer::error("ip-address is required"))?;
    let ip = ip_arg(ip, "ip-address")?;
    let now = unix_now();
    let shared = &ctx.shared;
    // Queued under the engine's lock, like every change (udp.rs).
    let (ticket, old) = {
        let mut engine = shared.engine.lock();
        let old = engine.binding(ip).cloned();
        match engine.free(ip, now) {
            Some(b) => (shared.store.submit(vec![b], now), old),
            None => return Ok(Answer::empty("IPv4 lease not found.")),
        }
    };
    let failed = match ticket.await {
        Ok(Ok(_)) => {
            tracing::info!(%ip, event = "lease_deleted", "lease deleted by the control API");
            return Ok(Answer::ok("IPv4 lease deleted.", json!({})));
        }
        Ok(Err(e)) => format!("not committed: {e}"),
        Err(_) => "not committed: the store writer stopped".to_owned(),
    };
    // Not stored: the engine's copy goes back to what is.
    shared.engine.lock().follow_stored(&[(ip, old)]);
    Err(Answer::error(failed))
}

/// `{"from": "start" | ADDRESS, "limit": N}`: the leases after `from`
/// (Kea's paging: pass the last address of a page to get the next).
async fn lease4_get_page(
    ctx: &Arc<HttpContext>,
    args: &Map<String, Value>,
) -> Result<Answer, Answer> {
    let from = match str_arg(args, "from")? {
        Some("start") => Ipv4Addr::UNSPECIFIED,
        Some(s) => {
            let last = u32::from(ip_arg(s, "from")?);
            if last == u32::MAX {
                return Ok(Answer::empty("0 IPv4 lease(s) found."));
            }
            Ipv4Addr::from(last + 1)
        }
        None => return Err(Answer::error("from is required (\"start\" or an address)")),
    };
    let limit = args
        .get("limit")
        .and_then(Value::as_u64)
        .filter(|&l| (1..=MAX_PAGE).contains(&l))
        .ok_or_else(|| Answer::error(format!("limit: 1 to {MAX_PAGE}")))?;
    let found = read(ctx, move |s| {
        s.range(from, Ipv4Addr::BROADCAST, limit as usize)
    })
    .await?;
    Ok(leases_answer(ctx, &found))
}

/// The configuration file as JSON, secrets hidden.
fn config_get(ctx: &HttpContext) -> Result<Answer, Answer> {
    let Some(path) = &ctx.config_path else {
        return Err(Answer::error("the configuration was not read from a file"));
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| Answer::error(format!("{}: {e}", path.display())))?;
    let mut value: toml::Value = text
        .parse::<toml::Table>()
        .map(toml::Value::Table)
        .map_err(|e| Answer::error(format!("{}: {e}", path.display())))?;
    for (section, key) in [("store", "url"), ("http", "token")] {
        if let Some(v) = value.get_mut(section).and_then(|s| s.get_mut(key)) {
            *v = toml::Value::String("<hidden>".into());
        }
    }
    let json = serde_json::to_value(&value).map_err(|e| Answer::error(e.to_string()))?;
    Ok(Answer::ok(
        format!("configuration of {}", path.display()),
        json!({"path": path.display().to_string(), "leaseline": json}),
    ))
}

/// `{"path": FILE}` or the running configuration's file: validated as a
/// start would, nothing applied. A failure names the key and line.
fn config_test(ctx: &HttpContext, args: &Map<String, Value>) -> Result<Answer, Answer> {
    let path = match str_arg(args, "path")? {
        Some(p) => std::path::PathBuf::from(p),
        None => ctx.config_path.clone().ok_or_else(|| {
            Answer::error("give path: the configuration was not read from a file")
        })?,
    };
    let cfg = crate::config::Config::load(&path).map_err(|e| Answer::error(e.to_string()))?;
    Ok(Answer::ok(
        "Configuration seems sane.",
        json!({"path": path.display().to_string(), "subnets": cfg.subnets.len()}),
    ))
}

/// Kea's statistic names and shape: `{"name": [[value, "time"]]}`.
fn statistics(ctx: &HttpContext) -> Answer {
    let stats = &ctx.shared.stats;
    let now = time::OffsetDateTime::now_utc();
    let stamp = now
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let mut out = Map::new();
    let mut put = |name: String, v: u64| {
        out.insert(name, json!([[v, stamp.clone()]]));
    };
    let received = stats.received_by_type();
    let sent = stats.sent_by_type();
    put(
        "pkt4-received".into(),
        received.iter().map(|(_, n)| n).sum(),
    );
    put("pkt4-sent".into(), sent.iter().map(|(_, n)| n).sum());
    for (t, n) in &received {
        let name = t.name().trim_start_matches("DHCP").to_ascii_lowercase();
        put(format!("pkt4-{name}-received"), *n);
    }
    for (t, n) in &sent {
        let name = t.name().trim_start_matches("DHCP").to_ascii_lowercase();
        put(format!("pkt4-{name}-sent"), *n);
    }
    put(
        "pkt4-receive-drop".into(),
        stats.all_drops().iter().map(|(_, n)| n).sum(),
    );
    put("pkt4-parse-failed".into(), stats.drops("malformed"));
    let pools = ctx.shared.engine.lock().pool_usage();
    let mut by_subnet: Vec<(usize, u64, u64, u64)> = Vec::new();
    for p in &pools {
        match by_subnet.last_mut() {
            Some(s) if s.0 == p.subnet => {
                s.1 += p.total;
                s.2 += p.assigned;
                s.3 += p.declined;
            }
            _ => by_subnet.push((p.subnet, p.total, p.assigned, p.declined)),
        }
    }
    for (i, total, assigned, declined) in by_subnet {
        let id = i + 1;
        put(format!("subnet[{id}].total-addresses"), total);
        put(format!("subnet[{id}].assigned-addresses"), assigned);
        put(format!("subnet[{id}].declined-addresses"), declined);
    }
    Answer::ok("statistics", Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::COMMANDS;

    /// docs/openapi.yaml lists exactly the commands this server answers.
    #[test]
    fn the_openapi_description_lists_every_command() {
        let spec = include_str!("../../../../docs/openapi.yaml");
        let (_, rest) = spec
            .split_once("command:\n          type: string\n          enum:\n")
            .expect("the command enum");
        let listed: Vec<&str> = rest
            .lines()
            .map_while(|l| l.trim().strip_prefix("- "))
            .collect();
        assert_eq!(listed, COMMANDS);
    }
}
