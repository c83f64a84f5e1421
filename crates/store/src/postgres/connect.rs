//! Connection settings the way libpq takes them (docs/postgresql.md,
//! "Connection settings"), on top of the `postgres` crate, which reads
//! neither the environment nor `~/.pgpass` and knows only three `sslmode`s.
//!
//! `[store] url` (a `postgres://` URL or a `key=value` string) is split into
//! libpq's parameters; each parameter it leaves out is taken from its libpq
//! environment variable (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`,
//! `PGDATABASE`, `PGSSLMODE`, ...), then from libpq's default (the unix
//! socket directory, the OS user, `dbname` = `user`, `sslmode=prefer`).
//! Without a password, `~/.pgpass` (or `passfile` / `PGPASSFILE`) is read,
//! in libpq's format, and ignored with a warning when others may read it.
//! The TLS parameters (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`) are
//! handled here (see `tls`); the others go to the client library.
//!
//! [`parse`] gives a [`Database`]: the client library's configuration, the
//! TLS settings and the description; every connection of the store (the
//! writer, the readers, the follower, and their reconnections) is opened
//! with [`Database::connect`].

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use postgres::config::Host;
use postgres::{Client, Config, NoTls};

use super::schema::{describe, error_text, open_error};
use super::tls::{SslMode, TlsSettings};
use crate::StoreError;

/// Where a parameter's value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Source {
    Url,
    Env(&'static str),
    Default,
}

/// libpq's environment variables, by the parameter each stands for.
const ENV: &[(&str, &str)] = &[
    ("host", "PGHOST"),
    ("hostaddr", "PGHOSTADDR"),
    ("port", "PGPORT"),
    ("dbname", "PGDATABASE"),
    ("user", "PGUSER"),
    ("password", "PGPASSWORD"),
    ("passfile", "PGPASSFILE"),
    ("options", "PGOPTIONS"),
    ("application_name", "PGAPPNAME"),
    ("sslmode", "PGSSLMODE"),
    ("sslrootcert", "PGSSLROOTCERT"),
    ("sslcert", "PGSSLCERT"),
    ("sslkey", "PGSSLKEY"),
    ("connect_timeout", "PGCONNECT_TIMEOUT"),
    ("target_session_attrs", "PGTARGETSESSIONATTRS"),
    ("channel_binding", "PGCHANNELBINDING"),
];

/// How long a database that stopped answering is waited for, unless the
/// URL or the environment says otherwise. The client library's own
/// defaults wait for a host that vanished without a reset (power lost, an
/// address moved to a standby, a firewall that forgot the connection) for
/// as long as TCP does: ~2 minutes for a connection, ~15 minutes for a
/// statement sent, 2 hours for an answer never sent, with no ACK leaving
/// meanwhile. With these an outage is seen in about ten seconds, logged,
/// and the connection replaced (docs/postgresql.md, "Connection settings").
/// libpq's names and units: seconds, `tcp_user_timeout` in milliseconds.
const DEAD_PEER_DEFAULTS: &[(&str, &str)] = &[
    ("connect_timeout", "5"),
    ("keepalives_idle", "5"),
    ("keepalives_interval", "2"),
    ("keepalives_retries", "3"),
    ("tcp_user_timeout", "10000"),
];

/// Parameters handled here, not passed to the client library.
const OURS: &[&str] = &["sslmode", "sslrootcert", "sslcert", "sslkey", "passfile"];

/// libpq's default unix socket directory on Debian (`DEFAULT_PGSOCKET_DIR`).
pub(super) const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

/// What the process gives a parse: its environment, home and user (tests
/// give their own).
pub(super) struct Environment<'a> {
    pub var: &'a dyn Fn(&str) -> Option<String>,
    pub home: Option<PathBuf>,
    pub os_user: Option<String>,
    /// Where a warning goes (the log, in a server).
    pub warn: &'a dyn Fn(&str),
}

/// A parsed URL: the client library's configuration, its description
/// (never the password) and the TLS settings.
#[derive(Debug)]
pub(super) struct Database {
    pub config: Config,
    pub target: String,
    pub tls: TlsSettings,
}

impl Database {
    /// A connection as `tls.mode` says (see [`connect_with`]) for the
    /// readers (Bulk Leasequery, the control API, the lease history) and
    /// the schema: every statement planned with its own arguments (a
    /// plan made for one key or range does not fit another; these run far
    /// less often than the commit path's).
    pub(super) fn connect(&self) -> Result<Client, StoreError> {
        self.connect_set("SET plan_cache_mode = force_custom_plan")
    }

    /// A connection of the writer or of the follower: a few statements,
    /// each run for every commit, thousands of times a second. Each is
    /// planned once, when first run (a generic plan), not at every run:
    /// planning was a quarter of the database's CPU time under load
    /// (bench/README.md, "Planned once"). So that a plan made while
    /// `bindings` is small (a new database) is not a scan kept for ever
    /// (7.5 ms a batch at 35,000 rows against 0.16 ms: bench/RESULTS.md,
    /// "The cold figures"), scans go through the indexes wherever one fits
    /// (`enable_seqscan = off` only prices a sequential scan out of the
    /// choice; where there is no index, as for a sequence or `instances`,
    /// it is still done), and JIT compilation is off: the price put on
    /// those scans would otherwise pass its threshold and compile every
    /// such statement, for milliseconds, at each run.
    pub(super) fn connect_hot_path(&self) -> Result<Client, StoreError> {
        self.connect_set(&hot_path_settings("; "))
    }

    fn connect_set(&self, settings: &str) -> Result<Client, StoreError> {
        let mut client = connect_with(&self.config, &self.target, &self.tls)?;
        client
            .batch_execute(settings)
            .map_err(|e| open_error(&self.target, error_text(&e)))?;
        Ok(client)
    }
}

/// The settings of [`Database::connect_hot_path`]'s sessions; the commit
/// function sets them too, for its own statements, whoever calls it.
const HOT_PATH_SETTINGS: [(&str, &str); 3] = [
    ("plan_cache_mode", "force_generic_plan"),
    ("enable_seqscan", "off"),
    ("jit", "off"),
];

/// `SET name = value` for each of [`HOT_PATH_SETTINGS`], joined by `sep`
/// (`"; "` for a session, `" "` for a function's SET clauses).
pub(super) fn hot_path_settings(sep: &str) -> String {
    HOT_PATH_SETTINGS
        .iter()
        .map(|(name, value)| format!("SET {name} = {value}"))
        .collect::<Vec<_>>()
        .join(sep)
}

/// The URL, the process's environment and `~/.pgpass`.
pub(super) fn parse(url: &str) -> Result<Database, StoreError> {
    let var = |name: &str| std::env::var(name).ok();
    let warn = |msg: &str| tracing::warn!(event = "postgres_connection_setting", "{msg}");
    let env = Environment {
        var: &var,
        home: home_dir(),
        os_user: os_user(),
        warn: &warn,
    };
    let parsed = parse_with(url, &env).map_err(|(target, e)| open_error(&target, e))?;
    parsed
        .tls
        .check()
        .map_err(|e| open_error(&parsed.target, e))?;
    Ok(parsed)
}

/// Connect as `tls.mode` says (libpq's semantics; a unix socket never uses
/// TLS). A failure is one line naming the database and the cause.
pub(super) fn connect_with(
    config: &Config,
    target: &str,
    tls: &TlsSettings,
) -> Result<Client, StoreError> {
    let fail = |reason: String| open_error(target, format!("cannot connect: {reason}"));
    let over_tcp = !config.get_hostaddrs().is_empty()
        || config.get_hosts().iter().any(|h| matches!(h, Host::Tcp(_)));
    let mode = if over_tcp { tls.mode } else { SslMode::Disable };
    let plain = || {
        let mut c = config.clone();
        c.ssl_mode(postgres::config::SslMode::Disable);
        c.connect(NoTls)
    };
    let secure = |wire_mode| -> Result<Client, String> {
        let make = tls.connector()?;
        let mut c = config.clone();
        c.ssl_mode(wire_mode);
        c.connect(make).map_err(|e| explain(&e, config, tls))
    };
    use postgres::config::SslMode as Wire;
    match mode {
        SslMode::Disable => plain().map_err(|e| fail(error_text(&e))),
        // Plain first; TLS when the server wants it (pg_hba `hostssl`).
        SslMode::Allow => plain().or_else(|first| {
            secure(Wire::Require)
                .map_err(|second| fail(format!("{} (then with TLS: {second})", error_text(&first))))
        }),
        // TLS when the server offers it; plain when it does not, or when
        // the handshake fails (as libpq does).
        SslMode::Prefer => match secure(Wire::Prefer) {
            Err(e) if e.starts_with("TLS") => {
                plain().map_err(|p| fail(format!("{} (after TLS failed: {e})", error_text(&p))))
            }
            other => other.map_err(fail),
        },
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
            secure(Wire::Require).map_err(fail)
        }
    }
}

/// The cause of a failed TLS connection in a few words.
fn explain(e: &postgres::Error, config: &Config, tls: &TlsSettings) -> String {
    use rustls::CertificateError as C;
    let mode = tls.mode.name();
    if let Some(r) = rustls_cause(e) {
        return match r {
            rustls::Error::InvalidCertificate(C::UnknownIssuer) => format!(
                "TLS: the server's certificate is not signed by {} (sslmode={mode})",
                tls.roots_description()
            ),
            rustls::Error::InvalidCertificate(C::NotValidForName)
            | rustls::Error::InvalidCertificate(C::NotValidForNameContext { .. }) => format!(
                "TLS: the server's certificate is not valid for the host name {} (sslmode={mode})",
                hosts(config)
            ),
            rustls::Error::InvalidCertificate(C::Expired)
            | rustls::Error::InvalidCertificate(C::ExpiredContext { .. }) => {
                format!("TLS: the server's certificate has expired (sslmode={mode})")
            }
            other => format!("TLS: {other} (sslmode={mode})"),
        };
    }
    let text = error_text(e);
    if text.contains("server does not support TLS") {
        return format!("TLS: the server does not accept TLS connections (sslmode={mode})");
    }
    if text.starts_with("error performing TLS handshake") {
        return format!("TLS: {text} (sslmode={mode})");
    }
    text
}

/// The rustls error under a client error (tokio-rustls wraps it in an
/// `io::Error`, whose `source` skips it).
fn rustls_cause(e: &postgres::Error) -> Option<&rustls::Error> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(r) = c.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        if let Some(r) = c
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(r);
        }
        cause = c.source();
    }
    None
}

fn hosts(config: &Config) -> String {
    let names: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    names.join(",")
}

/// The URL, then the environment, then libpq's defaults; then `.pgpass`.
/// A failure names the database when it is known by then (else `(url)`).
pub(super) fn parse_with(url: &str, env: &Environment<'_>) -> Result<Database, (String, String)> {
    let url_error = |e: String| ("(url)".to_owned(), e);
    let mut params: BTreeMap<String, (String, Source)> = BTreeMap::new();
    let url_params = split(url.trim()).map_err(|e| {
        url_error(format!(
            "bad PostgreSQL url: invalid connection string: {e}"
        ))
    })?;
    for (k, v) in url_params {
        params.insert(k, (v, Source::Url));
    }
    for (param, var) in ENV {
        if params.contains_key(*param) {
            continue;
        }
        if let Some(v) = (env.var)(var).filter(|v| !v.is_empty()) {
            params.insert((*param).to_owned(), (v, Source::Env(var)));
        }
    }
    // libpq's defaults.
    if !params.contains_key("host") && !params.contains_key("hostaddr") {
        let dir = if Path::new(DEFAULT_SOCKET_DIR).is_dir() || !Path::new("/tmp").is_dir() {
            DEFAULT_SOCKET_DIR
        } else {
            "/tmp"
        };
        params.insert("host".into(), (dir.into(), Source::Default));
    }
    if !params.contains_key("user") {
        if let Some(u) = &env.os_user {
            params.insert("user".into(), (u.clone(), Source::Default));
        }
    }
    if !params.contains_key("dbname") {
        if let Some((u, _)) = params.get("user").cloned() {
            params.insert("dbname".into(), (u, Source::Default));
        }
    }
    check_env_values(&params).map_err(url_error)?;
    if let Some((t, src)) = params.get("connect_timeout").cloned() {
        // libpq: a timeout of 1 s is taken as 2 s.
        if t.trim() == "1" {
            params.insert("connect_timeout".into(), ("2".into(), src));
        }
    }
    for (param, value) in DEAD_PEER_DEFAULTS {
        params
            .entry((*param).to_owned())
            .or_insert_with(|| ((*value).to_owned(), Source::Default));
    }
    if let Some((ms, src)) = params.get("tcp_user_timeout").cloned() {
        // libpq counts it in milliseconds, the client library in seconds.
        let ms: u64 = ms.trim().parse().map_err(|_| {
            url_error(format!(
                "bad PostgreSQL url: invalid value for tcp_user_timeout: {ms:?}"
            ))
        })?;
        params.insert(
            "tcp_user_timeout".into(),
            (ms.div_ceil(1_000).to_string(), src),
        );
    }
    if !params.contains_key("password") {
        let passfile = match params.get("passfile").map(|(v, _)| v.as_str()) {
            Some(p) => Some(PathBuf::from(p)),
            None => env.home.as_ref().map(|h| h.join(".pgpass")),
        };
        if let Some(path) = passfile {
            if let Some(pw) = pgpass_lookup(&path, &params, env.warn) {
                params.insert("password".into(), (pw, Source::Default));
            }
        }
    }
    let conninfo: Vec<String> = params
        .iter()
        .filter(|(k, _)| !OURS.contains(&k.as_str()))
        .map(|(k, (v, _))| format!("{k}='{}'", v.replace('\\', "\\\\").replace('\'', "\\'")))
        .collect();
    let config: Config = conninfo.join(" ").parse().map_err(|e: postgres::Error| {
        url_error(format!("bad PostgreSQL url: {}", error_text(&e)))
    })?;
    let target = describe(&config);
    let get = |k: &str| params.get(k).map(|(v, _)| v.as_str());
    let tls = TlsSettings::resolve(
        params.get("sslmode").map(|(v, s)| (v.as_str(), *s)),
        get("sslrootcert"),
        get("sslcert"),
        get("sslkey"),
        env.home.as_deref(),
        env.var,
    )
    .map_err(|e| (target.clone(), e))?;
    Ok(Database {
        config,
        target,
        tls,
    })
}

/// Values from the environment that the client library would reject with
/// a message naming the parameter, not the variable.
fn check_env_values(params: &BTreeMap<String, (String, Source)>) -> Result<(), String> {
    for (k, (v, src)) in params {
        let Source::Env(var) = src else { continue };
        let ok = match k.as_str() {
            "port" => v
                .split(',')
                .all(|p| p.is_empty() || p.trim().parse::<u16>().is_ok()),
            "connect_timeout" => v.trim().parse::<i64>().is_ok(),
            "hostaddr" => v.split(',').all(|a| a.parse::<std::net::IpAddr>().is_ok()),
            _ => true,
        };
        if !ok {
            return Err(format!("bad {var} in the environment: {v:?}"));
        }
    }
    Ok(())
}

/// A URL's or a `key=value` string's parameters, in libpq's names.
pub(super) fn split(url: &str) -> Result<Vec<(String, String)>, String> {
    match url
        .strip_prefix("postgresql://")
        .or_else(|| url.strip_prefix("postgres://"))
    {
        Some(rest) => split_url(rest),
        None => split_key_values(url),
    }
}

/// `[user[:password]@][host[:port][,...]][/dbname][?key=value&...]`.
fn split_url(rest: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (mut authority, tail) = rest.split_at(end);
    if let Some((creds, hosts)) = authority.split_once('@') {
        authority = hosts;
        let (user, password) = match creds.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (creds, None),
        };
        if !user.is_empty() {
            out.push(("user".into(), decode(user)?));
        }
        if let Some(p) = password {
            out.push(("password".into(), decode(p)?));
        }
    }
    if !authority.is_empty() {
        let (mut hosts, mut ports, mut any_port) = (Vec::new(), Vec::new(), false);
        for chunk in authority.split(',') {
            let (host, port) = if let Some(v6) = chunk.strip_prefix('[') {
                let (h, after) = v6
                    .split_once(']')
                    .ok_or_else(|| format!("unterminated [ in host {chunk:?}"))?;
                match after {
                    "" => (h, None),
                    _ => match after.strip_prefix(':') {
                        Some(p) => (h, Some(p)),
                        None => return Err(format!("bad host {chunk:?}")),
                    },
                }
            } else {
                match chunk.split_once(':') {
                    Some((h, p)) => (h, Some(p)),
                    None => (chunk, None),
                }
            };
            hosts.push(decode(host)?);
            any_port |= port.is_some();
            ports.push(decode(port.unwrap_or(""))?);
        }
        if hosts.iter().any(|h| !h.is_empty()) {
            out.push(("host".into(), hosts.join(",")));
        }
        if any_port {
            out.push(("port".into(), ports.join(",")));
        }
    }
    let (path, query) = match tail.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (tail, None),
    };
    if let Some(db) = path.strip_prefix('/') {
        if !db.is_empty() {
            out.push(("dbname".into(), decode(db)?));
        }
    }
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("missing \"=\" after {pair:?} in the query"))?;
        out.push((decode(k)?, decode(v)?));
    }
    Ok(out)
}

/// `key=value key='quoted \' value' ...`, as libpq reads it.
fn split_key_values(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut it = s.chars().peekable();
    loop {
        while it.next_if(|c| c.is_whitespace()).is_some() {}
        let mut key = String::new();
        while let Some(c) = it.next_if(|c| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        if key.is_empty() {
            if it.peek().is_some() {
                return Err("missing a key before \"=\"".into());
            }
            return Ok(out);
        }
        while it.next_if(|c| c.is_whitespace()).is_some() {}
        if it.next() != Some('=') {
            return Err(format!("missing \"=\" after {key:?}"));
        }
        while it.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if it.next_if_eq(&'\'').is_some() {
            loop {
                match it.next() {
                    None => return Err(format!("unterminated quoted value of {key:?}")),
                    Some('\'') => break,
                    Some('\\') => value.extend(it.next()),
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = it.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(it.next());
                } else {
                    value.push(c);
                }
            }
        }
        out.push((key, value));
    }
}

/// Percent-decoding of a URL part.
fn decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent-encoding in {s:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
}

/// The password `.pgpass` gives these parameters (libpq: the first line
/// matching host, port, database and user, each field `*` or equal; the
/// first host that has one). `None` also when the file is missing, or
/// readable by others (with a warning, as libpq).
fn pgpass_lookup(
    path: &Path,
    params: &BTreeMap<String, (String, Source)>,
    warn: &dyn Fn(&str),
) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        warn(&format!(
            "password file \"{}\" is not a plain file",
            path.display()
        ));
        return None;
    }
    if meta.permissions().mode() & 0o077 != 0 {
        warn(&format!(
            "password file \"{}\" has group or world access; permissions should be u=rw (0600) or less; not used",
            path.display()
        ));
        return None;
    }
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            warn(&format!("password file \"{}\": {e}", path.display()));
            return None;
        }
    };
    let get = |k: &str| params.get(k).map(|(v, _)| v.as_str()).unwrap_or("");
    let hosts: Vec<&str> = if params.contains_key("host") {
        get("host").split(',').collect()
    } else {
        get("hostaddr").split(',').collect()
    };
    let ports: Vec<&str> = get("port").split(',').collect();
    for (i, host) in hosts.iter().enumerate() {
        let host = if host.is_empty() || *host == DEFAULT_SOCKET_DIR {
            "localhost"
        } else {
            host
        };
        let port = match ports.get(i).or(ports.first()) {
            Some(p) if !p.is_empty() => p.trim(),
            _ => "5432",
        };
        let want = [host, port, get("dbname"), get("user")];
        if let Some(pw) = pgpass_match(&text, want) {
            return Some(pw);
        }
    }
    None
}

/// The first line of a `.pgpass` text matching `want` (host, port,
/// database, user); its password.
pub(super) fn pgpass_match(text: &str, want: [&str; 4]) -> Option<String> {
    'line: for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // Fields split at unescaped ':'; `\` escapes the next character.
        let mut fields: Vec<(String, bool)> = Vec::with_capacity(5);
        let mut cur = String::new();
        let mut raw = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            if fields.len() == 4 {
                // The password: the rest of the line, escapes removed.
                match c {
                    '\\' => cur.extend(chars.next()),
                    c => cur.push(c),
                }
                continue;
            }
            match c {
                ':' => {
                    fields.push((std::mem::take(&mut cur), raw == "*"));
                    raw.clear();
                }
                '\\' => {
                    raw.push('\\');
                    if let Some(n) = chars.next() {
                        cur.push(n);
                        raw.push(n);
                    }
                }
                c => {
                    cur.push(c);
                    raw.push(c);
                }
            }
        }
        if fields.len() < 4 {
            continue;
        }
        for ((field, wildcard), want) in fields.iter().zip(want) {
            if !wildcard && field != want {
                continue 'line;
            }
        }
        if cur.is_empty() {
            return None;
        }
        return Some(cur);
    }
    None
}

/// `$HOME`, else the password database's home.
fn home_dir() -> Option<PathBuf> {
    if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return Some(PathBuf::from(h));
    }
    passwd_entry().map(|(_, home)| home)
}

/// The effective user's name (libpq's default `user`).
fn os_user() -> Option<String> {
    passwd_entry().map(|(name, _)| name)
}

fn passwd_entry() -> Option<(String, PathBuf)> {
    // SAFETY: getpwuid_r writes into the buffers given, of the sizes given;
    // the strings read back point into `buf`, alive for the whole block.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 4096];
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(
            libc::geteuid(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        );
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        let name = std::ffi::CStr::from_ptr(pwd.pw_name)
            .to_string_lossy()
            .into_owned();
        let home = if pwd.pw_dir.is_null() {
            PathBuf::new()
        } else {
            PathBuf::from(
                std::ffi::CStr::from_ptr(pwd.pw_dir)
                    .to_string_lossy()
                    .into_owned(),
            )
        };
        Some((name, home))
    }
}

/// libpq refuses a private key others may read: 0600 or less when the
/// file is the user's, 0640 or less when it is root's.
pub(super) fn check_key_permissions(path: &Path) -> Result<(), String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("private key file {}: {e}", path.display()))?;
    let mode = meta.permissions().mode();
    let too_open = if meta.uid() == 0 {
        mode & 0o037 != 0
    } else {
        mode & 0o077 != 0
    };
    if too_open {
        return Err(format!(
            "private key file {} has group or world access; permissions must be u=rw (0600) or less if owned by the current user, or u=rw,g=r (0640) or less if owned by root",
            path.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn env_of<'a>(
        vars: &'a [(&'a str, &'a str)],
        home: Option<PathBuf>,
        warnings: &'a RefCell<Vec<String>>,
    ) -> impl Fn(&str) -> Result<Database, (String, String)> + 'a {
        move |url: &str| {
            let var = |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            };
            let warn = |m: &str| warnings.borrow_mut().push(m.to_owned());
            let env = Environment {
                var: &var,
                home: home.clone(),
                os_user: Some("osuser".into()),
                warn: &warn,
            };
            parse_with(url, &env)
        }
    }

    fn host_names(c: &Config) -> Vec<String> {
        c.get_hosts()
            .iter()
            .map(|h| match h {
                Host::Tcp(n) => n.clone(),
                Host::Unix(p) => p.display().to_string(),
            })
            .collect()
    }

    #[test]
    fn url_forms_split_into_libpq_parameters() {
        let p = split("postgres://u%40x:p%3Aw@h1:5433,[::1]:5434/db%2F1?sslmode=verify-full&application_name=a%20b").unwrap();
        assert_eq!(
            p,
            vec![
                ("user".into(), "u@x".into()),
                ("password".into(), "p:w".into()),
                ("host".into(), "h1,::1".into()),
                ("port".into(), "5433,5434".into()),
                ("dbname".into(), "db/1".into()),
                ("sslmode".into(), "verify-full".into()),
                ("application_name".into(), "a b".into()),
            ]
        );
        assert_eq!(
            split("postgresql:///leaseline").unwrap(),
            vec![("dbname".to_owned(), "leaseline".to_owned())]
        );
        assert!(split("postgres://").unwrap().is_empty());
        assert_eq!(
            split("postgres://%2Fvar%2Frun%2Fpostgresql/db").unwrap()[0],
            ("host".into(), "/var/run/postgresql".into())
        );
        assert!(split("host=/tmp password='it''s'").is_err());
        assert_eq!(
            split("host=/tmp user = me password='a b\\'c' port=1").unwrap(),
            vec![
                ("host".into(), "/tmp".into()),
                ("user".into(), "me".into()),
                ("password".into(), "a b'c".into()),
                ("port".into(), "1".into()),
            ]
        );
        assert!(split("postgres://h?sslmode").is_err());
        assert!(split("postgres://u@h/%zz").is_err());
    }

    #[test]
    fn url_then_environment_then_defaults() {
        let w = RefCell::new(Vec::new());
        let vars = [
            ("PGHOST", "envhost"),
            ("PGPORT", "6543"),
            ("PGUSER", "envuser"),
            ("PGPASSWORD", "envpw"),
            ("PGDATABASE", "envdb"),
            ("PGAPPNAME", "envapp"),
            ("PGCONNECT_TIMEOUT", "7"),
            ("PGSSLMODE", "disable"),
        ];
        let parse = env_of(&vars, None, &w);
        // Everything from the environment.
        let p = parse("postgres:///").unwrap();
        assert_eq!(host_names(&p.config), ["envhost"]);
        assert_eq!(p.config.get_ports(), [6543]);
        assert_eq!(p.config.get_user(), Some("envuser"));
        assert_eq!(p.config.get_password(), Some(&b"envpw"[..]));
        assert_eq!(p.config.get_dbname(), Some("envdb"));
        assert_eq!(p.config.get_application_name(), Some("envapp"));
        assert_eq!(
            p.config.get_connect_timeout(),
            Some(&std::time::Duration::from_secs(7))
        );
        assert_eq!(p.tls.mode, SslMode::Disable);
        assert_eq!(p.target, "postgres://envuser@envhost:6543/envdb");
        // The URL wins over the environment, parameter by parameter.
        let p = parse("postgres://u:pw@h/leaseline?sslmode=require").unwrap();
        assert_eq!(host_names(&p.config), ["h"]);
        assert_eq!(p.config.get_ports(), [6543], "no port in the URL: PGPORT");
        assert_eq!(p.config.get_user(), Some("u"));
        assert_eq!(p.config.get_password(), Some(&b"pw"[..]));
        assert_eq!(p.config.get_dbname(), Some("leaseline"));
        assert_eq!(p.tls.mode, SslMode::Require);
        let p = parse("host=h port=1 dbname=d").unwrap();
        assert_eq!(p.config.get_ports(), [1]);
        assert_eq!(p.config.get_user(), Some("envuser"));
        // Defaults: the socket directory, the OS user, dbname = user, prefer.
        let none = env_of(&[], None, &w);
        let p = none("postgres://").unwrap();
        assert!(matches!(p.config.get_hosts(), [Host::Unix(_)]));
        assert_eq!(p.config.get_user(), Some("osuser"));
        assert_eq!(p.config.get_dbname(), Some("osuser"));
        assert_eq!(p.config.get_password(), None);
        assert_eq!(p.tls.mode, SslMode::Prefer);
        // libpq: a 1 s connect timeout is 2 s.
        let p = none("postgres://h/d?connect_timeout=1").unwrap();
        assert_eq!(
            p.config.get_connect_timeout(),
            Some(&std::time::Duration::from_secs(2))
        );
    }

    /// A database host that vanished without a reset is given up on in
    /// seconds, not after TCP's own minutes and hours; the URL (or the
    /// environment) still decides, in libpq's units.
    #[test]
    fn a_database_that_stops_answering_is_given_up_on_in_seconds() {
        use std::time::Duration;
        let w = RefCell::new(Vec::new());
        let none = env_of(&[], None, &w);
        let c = none("postgres://h/d").unwrap().config;
        assert_eq!(c.get_connect_timeout(), Some(&Duration::from_secs(5)));
        assert!(c.get_keepalives());
        assert_eq!(c.get_keepalives_idle(), Duration::from_secs(5));
        assert_eq!(c.get_keepalives_interval(), Some(Duration::from_secs(2)));
        assert_eq!(c.get_keepalives_retries(), Some(3));
        assert_eq!(c.get_tcp_user_timeout(), Some(&Duration::from_secs(10)));
        let c = none(
            "postgres://h/d?connect_timeout=30&keepalives_idle=60&keepalives_retries=9\
             &tcp_user_timeout=2500",
        )
        .unwrap()
        .config;
        assert_eq!(c.get_connect_timeout(), Some(&Duration::from_secs(30)));
        assert_eq!(c.get_keepalives_idle(), Duration::from_secs(60));
        assert_eq!(c.get_keepalives_retries(), Some(9));
        assert_eq!(
            c.get_tcp_user_timeout(),
            Some(&Duration::from_secs(3)),
            "libpq's milliseconds, rounded up to the library's seconds"
        );
        let env = env_of(&[("PGCONNECT_TIMEOUT", "12")], None, &w);
        let c = env("postgres://h/d").unwrap().config;
        assert_eq!(c.get_connect_timeout(), Some(&Duration::from_secs(12)));
        let e = none("postgres://h/d?tcp_user_timeout=soon").unwrap_err().1;
        assert!(e.contains("tcp_user_timeout"), "{e}");
    }

    #[test]
    fn bad_values_name_their_source() {
        let w = RefCell::new(Vec::new());
        let e = env_of(&[("PGPORT", "x")], None, &w)("postgres://h/d")
            .unwrap_err()
            .1;
        assert_eq!(e, "bad PGPORT in the environment: \"x\"");
        let e = env_of(&[("PGSSLMODE", "sometimes")], None, &w)("postgres://h/d")
            .unwrap_err()
            .1;
        assert!(e.contains("PGSSLMODE") && e.contains("sometimes"), "{e}");
        let e = env_of(&[], None, &w)("postgres://h/d?sslmode=sometimes")
            .unwrap_err()
            .1;
        assert!(e.starts_with("bad PostgreSQL url: invalid sslmode"), "{e}");
        let e = env_of(&[], None, &w)("postgres://h/d?nonsense=1")
            .unwrap_err()
            .1;
        assert!(
            e.starts_with("bad PostgreSQL url:") && e.contains("nonsense"),
            "{e}"
        );
    }

    #[test]
    fn pgpass_lines_match_as_libpq_does() {
        let text = "# comment\n\
                    db1:5432:*:u:first\n\
                    localhost:*:leaseline:u:sock\\:pw\n\
                    h\\:x:5432:d:u:esc\n\
                    *:*:*:*:any\\\\thing\n";
        assert_eq!(
            pgpass_match(text, ["db1", "5432", "x", "u"]).as_deref(),
            Some("first")
        );
        assert_eq!(
            pgpass_match(text, ["localhost", "6000", "leaseline", "u"]).as_deref(),
            Some("sock:pw")
        );
        assert_eq!(
            pgpass_match(text, ["h:x", "5432", "d", "u"]).as_deref(),
            Some("esc")
        );
        assert_eq!(
            pgpass_match(text, ["other", "1", "d", "v"]).as_deref(),
            Some("any\\thing")
        );
        assert_eq!(pgpass_match("a:b:c\n", ["a", "b", "c", "d"]), None);
    }

    #[test]
    fn pgpass_only_without_password_and_only_when_private() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pgpass");
        std::fs::write(&file, "*:*:leaseline:u:frompass\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let w = RefCell::new(Vec::new());
        let vars = [("PGPASSFILE", file.to_str().unwrap())];
        let parse = env_of(&vars, None, &w);
        let p = parse("postgres://u@h/leaseline").unwrap();
        assert_eq!(p.config.get_password(), Some(&b"frompass"[..]));
        let p = parse("postgres://u:given@h/leaseline").unwrap();
        assert_eq!(p.config.get_password(), Some(&b"given"[..]));
        let p = env_of(
            &[
                ("PGPASSFILE", file.to_str().unwrap()),
                ("PGPASSWORD", "env"),
            ],
            None,
            &w,
        )("postgres://u@h/leaseline")
        .unwrap();
        assert_eq!(p.config.get_password(), Some(&b"env"[..]));
        // ~/.pgpass by default.
        let home = tempfile::tempdir().unwrap();
        std::fs::copy(&file, home.path().join(".pgpass")).unwrap();
        let p = env_of(&[], Some(home.path().into()), &w)("postgres://u@h/leaseline").unwrap();
        assert_eq!(p.config.get_password(), Some(&b"frompass"[..]));
        assert!(w.borrow().is_empty());
        // Readable by the group: ignored, with a warning.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let p = parse("postgres://u@h/leaseline").unwrap();
        assert_eq!(p.config.get_password(), None);
        let w = w.borrow();
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("has group or world access"), "{}", w[0]);
    }

    #[test]
    fn each_database_keeps_its_own_tls_settings() {
        let a = parse("postgres://u:p@h/d?sslmode=disable").unwrap();
        let b = parse("postgres://u:p@h/d2?sslmode=require").unwrap();
        assert_eq!(a.tls.mode, SslMode::Disable);
        assert_eq!(b.tls.mode, SslMode::Require);
    }
}
