//! Small shared utilities every layer may use: seeded random streams (`rng`), progress bars
//! (`progress`), durable file writes (`fsio`), and what the terminal and the OS report about
//! this process.

pub mod fsio;
pub mod progress;
pub mod rng;

use std::io::IsTerminal;

/// Whether long work should draw progress: standard error is a terminal and `CI` is unset.
pub fn interactive() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("CI").is_none()
}

/// Whether diagnostics on standard error may use colour (a terminal, `NO_COLOR` unset).
pub fn color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Peak resident memory of this process in MiB (Linux `VmHWM`), or `None` elsewhere.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}
