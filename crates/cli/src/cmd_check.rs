use std::path::Path;
use std::process::ExitCode;

use leaseline_server::config::StoreBackend;
use leaseline_server::Config;

pub fn run(path: &Path) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(path)?;
    println!("{}: ok", path.display());
    match &cfg.store_backend {
        StoreBackend::Sqlite => println!("  store: {}", cfg.store_path.display()),
        StoreBackend::Postgres { .. } => println!("  store: postgresql (url not shown)"),
    }
    if let Some(l) = cfg.listen {
        println!("  dhcp listen: udp {l}");
    }
    for s in &cfg.subnets {
        let via = match &s.interface {
            Some(i) => format!("interface {i}"),
            None if s.relay_addresses.is_empty() => "relays in the prefix".to_string(),
            None => format!("relays {:?}", s.relay_addresses),
        };
        println!(
            "  subnet {}: {} pool addresses, {} reservations, lease {} s, via {via}",
            s.prefix,
            s.pool_size(),
            s.reservations.len(),
            s.lease_time
        );
    }
    if let Some(b) = &cfg.leasequery.bulk {
        let lq = &cfg.leasequery;
        let mode = match (lq.tls.is_some(), lq.plaintext) {
            (true, false) => "secure only (TLS)",
            (true, true) => "TLS and plain TCP (insecure)",
            (false, _) => "plain TCP only",
        };
        let active = if lq.active.is_some() {
            "bulk+active"
        } else {
            "bulk"
        };
        println!("  leasequery tcp {}: {active}, {mode}", b.listen);
    }
    // Secure mode: load the files as `serve` would, so a missing or
    // mismatched certificate fails here rather than at start-up.
    if let Some(t) = &cfg.leasequery.tls {
        let settings = leaseline_server::tls::TlsSettings::load(
            &t.cert,
            &t.key,
            &t.ca,
            &t.allowed_requestors,
        )?;
        println!(
            "  tls: cert {}, ca {}, {} allowed requestor(s)",
            t.cert.display(),
            t.ca.display(),
            settings.allowlist().entries().len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
