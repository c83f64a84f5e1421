use std::path::Path;
use std::process::ExitCode;

use leaseline_server::Config;

pub fn run(path: &Path) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(path)?;
    println!("{}: ok", path.display());
    println!("  store: {}", cfg.store_path.display());
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
    Ok(ExitCode::SUCCESS)
}
