use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use leaseline_server::Config;

pub fn run(path: &Path) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(path)?;
    let nice = cfg.leasequery_nice;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cfg.worker_threads)
        // Store reads for leasequery (bulk, catch-up, changes a lagging
        // session skipped) run on the blocking pool, at leasequery_nice
        // like the workers. The kernel weighs each thread on its own: a
        // hundred sessions reading at once on a hundred threads would
        // outweigh the DHCP threads whatever their nice, so as many as
        // the async workers (at least 2).
        .max_blocking_threads(cfg.worker_threads.max(2))
        // The runtime serves leasequery (sessions, fan-out, bulk reads); DHCP
        // has threads of its own, which keep the process's priority.
        .on_thread_start(move || lower_priority(nice))
        .enable_all()
        .thread_name("leaseline")
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(leaseline_server::run::serve(cfg))?;
    Ok(ExitCode::SUCCESS)
}

/// Add `nice` to the calling thread's nice value (Linux: per thread). A
/// failure only costs the priority split, so it is logged, not fatal.
fn lower_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    // SAFETY: plain syscalls on the calling thread, no pointers.
    let (tid, now) = unsafe { (libc::gettid(), libc::getpriority(libc::PRIO_PROCESS, 0)) };
    let target = (now + nice).min(19);
    // SAFETY: as above; `tid` is this thread.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, target) } != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), nice, event = "leasequery_priority_failed", "cannot lower the leasequery threads' priority");
    }
}
