//! Logs go to stderr, one line per event. Dependencies log only warnings unless
//! ROTAGATE_LOG names them: their debug output could include request details.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

pub fn init(verbose: u8) {
    let level = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let directives = match std::env::var("ROTAGATE_LOG") {
        Ok(v) if v.contains('=') => v,
        Ok(v) if !v.trim().is_empty() => format!("warn,octocrab=off,rotagate={}", v.trim()),
        _ => format!("warn,octocrab=off,rotagate={level}"),
    };
    let filter =
        EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("warn,rotagate=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .without_time()
        .try_init();
}
