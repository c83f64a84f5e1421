//! `leaseline query` (being implemented).

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct QueryArgs {
    /// Server address, ADDR[:PORT].
    #[arg(long)]
    pub server: String,
}

pub fn run(_args: QueryArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
