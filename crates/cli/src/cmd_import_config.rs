//! `leaseline import config --from dhcpd|kea FILE [--output FILE]`: another
//! server's configuration as a Leaseline TOML (docs/migration.md).
//!
//! The conversion itself is leaseline-import's (pure). Here: read the file,
//! validate the generated text with the loader `serve` and `check-config`
//! use (so what is written always loads), list what does not map on
//! stderr, and write the TOML to `--output` (never over an existing file
//! without `--force`) or stdout. A malformed input writes nothing.

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use leaseline_import::{convert_dhcpd_conf, convert_kea_config, Conversion, OutputSettings};
use leaseline_server::Config;

#[derive(clap::Args)]
#[command(after_help = "What does not map is listed on stderr, one line each: \
    `line 42: class \"voip\": client classes do not map: ...`.\n\
    Exit status: 0 converted (the output passed the configuration loader), \
    1 malformed input or an output that would not load (nothing written).")]
pub struct ConfigArgs {
    /// The configuration's format.
    #[arg(long, value_enum)]
    from: ConfigFormat,
    /// dhcpd.conf, or kea-dhcp4's JSON configuration.
    file: PathBuf,
    /// Write the TOML here (default: stdout).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Replace --output if it exists.
    #[arg(long)]
    force: bool,
    /// [dhcp] listen: where Leaseline takes DHCP (and UDP leasequery).
    #[arg(long, default_value = "0.0.0.0:67")]
    listen: SocketAddr,
    /// [server] server_id (option 54), when the source names none and
    /// --listen is 0.0.0.0.
    #[arg(long)]
    server_id: Option<Ipv4Addr>,
    /// [server] state_dir: where the lease store goes.
    #[arg(long, default_value = "/var/lib/leaseline")]
    state_dir: String,
    /// The report on stderr as one JSON object instead of lines.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ConfigFormat {
    /// ISC dhcpd's dhcpd.conf (4.x).
    Dhcpd,
    /// Kea's kea-dhcp4 configuration (JSON, 2.x).
    Kea,
}

pub fn run(args: ConfigArgs) -> anyhow::Result<ExitCode> {
    let shown = args.file.display().to_string();
    let bytes = std::fs::read(&args.file).with_context(|| format!("cannot read {shown}"))?;
    let conversion = match args.from {
        ConfigFormat::Dhcpd => convert_dhcpd_conf(&bytes),
        ConfigFormat::Kea => convert_kea_config(&bytes),
    };
    let conversion = match conversion {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors {
                eprintln!("{shown}:{}: {}", e.line, e.reason);
            }
            eprintln!("{shown}: {} error(s): nothing written", errors.len());
            return Ok(ExitCode::FAILURE);
        }
    };
    let format = match args.from {
        ConfigFormat::Dhcpd => "dhcpd",
        ConfigFormat::Kea => "kea",
    };
    let text = conversion.draft.to_toml(&OutputSettings {
        source: format!("{shown} (--from {format})"),
        listen: args.listen,
        state_dir: args.state_dir.clone(),
        server_id: args.server_id,
    });
    let target = args
        .output
        .as_ref()
        .map_or("the converted configuration".to_string(), |p| {
            p.display().to_string()
        });
    // The loader `serve` and `check-config` use: what is written loads.
    let cfg = match Config::parse(&text, &target) {
        Ok(c) => c,
        Err(e) => {
            let msg = e.to_string();
            eprintln!("{shown}: the converted configuration does not load: {msg}");
            if msg.contains("server_id") {
                eprintln!(
                    "{shown}: the source names no server identifier: give --server-id A.B.C.D \
                     (the address clients and relays reach this server on) or --listen A.B.C.D:67"
                );
            }
            eprintln!("{shown}: nothing written");
            return Ok(ExitCode::FAILURE);
        }
    };
    report(&shown, &conversion, &cfg, args.json);
    match &args.output {
        Some(path) => write_file(path, &text, args.force)?,
        None => std::io::stdout().write_all(text.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}

/// What did not map, then a summary; on stderr (stdout may hold the TOML).
fn report(shown: &str, c: &Conversion, cfg: &Config, json: bool) {
    if json {
        let items: Vec<serde_json::Value> = c
            .unmapped
            .iter()
            .map(|f| serde_json::json!({"line": f.line, "what": f.what, "reason": f.reason}))
            .collect();
        let subnets: Vec<serde_json::Value> = cfg
            .subnets
            .iter()
            .map(|s| {
                serde_json::json!({
                    "prefix": s.prefix.to_string(),
                    "pool_addresses": s.pool_size(),
                    "reservations": s.reservations.len(),
                    "lease_time": s.lease_time,
                })
            })
            .collect();
        eprintln!(
            "{}",
            serde_json::json!({"file": shown, "subnets": subnets, "not_mapped": items})
        );
        return;
    }
    for f in &c.unmapped {
        eprintln!("{f}");
    }
    let reservations: usize = cfg.subnets.iter().map(|s| s.reservations.len()).sum();
    eprintln!(
        "{shown}: {} subnet(s), {} pool address(es), {reservations} reservation(s) converted; \
         {} item(s) not mapped{}",
        cfg.subnets.len(),
        cfg.subnets.iter().map(|s| s.pool_size()).sum::<u64>(),
        c.unmapped.len(),
        if c.unmapped.is_empty() {
            ""
        } else {
            " (listed above)"
        }
    );
}

/// The file is created new (never over an existing one without --force),
/// and appears whole: written beside, then renamed.
fn write_file(path: &Path, text: &str, force: bool) -> anyhow::Result<()> {
    if path.exists() && !force {
        anyhow::bail!(
            "{} exists: not overwritten (use --force to replace it)",
            path.display()
        );
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .with_context(|| format!("{}: not a file name", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    let placed = if force {
        std::fs::rename(&tmp, path)
    } else {
        // Linked, not renamed: fails if the file appeared meanwhile.
        std::fs::hard_link(&tmp, path)
    };
    // Gone already after a rename; the spare link after a hard link.
    let _ = std::fs::remove_file(&tmp);
    placed.with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
