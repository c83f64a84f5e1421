//! `leaseline bulk` (being implemented).

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct BulkArgs {
    /// Server address, ADDR[:PORT].
    #[arg(long)]
    pub server: String,
}

pub fn run(_args: BulkArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
