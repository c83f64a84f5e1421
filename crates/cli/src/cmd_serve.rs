use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use leaseline_server::Config;

pub fn run(path: &Path) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(path)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cfg.worker_threads)
        .enable_all()
        .thread_name("leaseline")
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(leaseline_server::run::serve(cfg))?;
    Ok(ExitCode::SUCCESS)
}
